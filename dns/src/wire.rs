//! The DNS wire format on the hot path: reading a query and writing a response in place.
//!
//! hickory's `Message` builds a tree of owned names and records for every packet, which
//! an authoritative server cannot afford on every query; so queries are read here with
//! bounds-checked slices and answers
//! are written from precomputed RDATA into one reused buffer. hickory still encodes every
//! RDATA once, when the index is built.

use std::ops::Range;

use crate::name::NameBuf;

pub(crate) const HEADER_LEN: usize = 12;
/// Largest DNS message (the TCP length prefix is 16 bits).
pub(crate) const MAX_MESSAGE: usize = 65_535;
/// Answer limit without EDNS (RFC 1035 §4.2.1).
pub(crate) const CLASSIC_UDP: usize = 512;
/// The payload size advertised and honoured at most: the DNS Flag Day 2020 value, which
/// avoids IP fragmentation on every common path.
pub(crate) const EDNS_PAYLOAD: u16 = 1232;

pub(crate) mod rtype {
    pub(crate) const A: u16 = 1;
    pub(crate) const NS: u16 = 2;
    pub(crate) const CNAME: u16 = 5;
    pub(crate) const PTR: u16 = 12;
    pub(crate) const SOA: u16 = 6;
    pub(crate) const MX: u16 = 15;
    pub(crate) const TXT: u16 = 16;
    pub(crate) const AAAA: u16 = 28;
    pub(crate) const SRV: u16 = 33;
    pub(crate) const DNAME: u16 = 39;
    pub(crate) const OPT: u16 = 41;
    pub(crate) const DS: u16 = 43;
    pub(crate) const TSIG: u16 = 250;
    pub(crate) const IXFR: u16 = 251;
    pub(crate) const AXFR: u16 = 252;
    pub(crate) const ANY: u16 = 255;
}

pub(crate) mod rcode {
    pub(crate) const NOERROR: u16 = 0;
    pub(crate) const FORMERR: u16 = 1;
    pub(crate) const SERVFAIL: u16 = 2;
    pub(crate) const NXDOMAIN: u16 = 3;
    pub(crate) const NOTIMP: u16 = 4;
    pub(crate) const REFUSED: u16 = 5;
    /// A DNAME substitution made a name longer than 255 octets (RFC 6672 §2.2).
    pub(crate) const YXDOMAIN: u16 = 6;
    /// The query was signed with a key this server does not have (RFC 8945 §5.2.1).
    pub(crate) const NOTAUTH: u16 = 9;
    /// Extended (needs OPT): 16 = upper bits 1, header bits 0.
    pub(crate) const BADVERS: u16 = 16;
}

pub(crate) const CLASS_IN: u16 = 1;
pub(crate) const CLASS_ANY: u16 = 255;

const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_TC: u16 = 0x0200;
const FLAG_RD: u16 = 0x0100;
const FLAG_CD: u16 = 0x0010;

/// The client's EDNS(0) OPT record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edns {
    /// Advertised UDP payload size.
    pub(crate) payload: u16,
    pub(crate) version: u8,
    /// DNSSEC OK, copied back (RFC 3225).
    pub(crate) dnssec_ok: bool,
    /// Where the options are in the packet.
    pub(crate) options: Range<usize>,
    /// The EDNS Client Subnet option, when the query carried a valid one.
    pub(crate) ecs: Option<Ecs>,
    /// The query asked for the server's identifier (an NSID option, RFC 5001).
    pub(crate) nsid: bool,
    /// The COOKIE option (RFC 7873), when the query carried a well-formed one.
    pub(crate) cookie: Option<Cookie>,
}

/// EDNS option code of NSID (RFC 5001).
pub(crate) const OPTION_NSID: u16 = 3;
/// EDNS option code of Client Subnet (RFC 7871).
pub(crate) const OPTION_ECS: u16 = 8;
/// EDNS option code of COOKIE (RFC 7873).
pub(crate) const OPTION_COOKIE: u16 = 10;
/// EDNS option code of Extended DNS Error (RFC 8914).
pub(crate) const OPTION_EDE: u16 = 15;

/// A query's COOKIE option: the client cookie and, when it sent one, the server cookie
/// it holds (8 to 32 octets, RFC 7873 §4), kept inline so parsing stays allocation-free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cookie {
    pub(crate) client: [u8; crate::cookie::CLIENT_LEN],
    server: [u8; 32],
    server_len: u8,
}

impl Cookie {
    /// Reads the option's data; `None` when its length is not 8 or 16 to 40 (RFC 7873
    /// §5.2.2: FORMERR).
    pub(crate) fn parse(data: &[u8]) -> Option<Cookie> {
        let (client, server) = data.split_at_checked(crate::cookie::CLIENT_LEN)?;
        if !(server.is_empty() || (8..=32).contains(&server.len())) {
            return None;
        }
        let mut c = Cookie { client: client.try_into().ok()?, server: [0; 32], server_len: server.len() as u8 };
        c.server.get_mut(..server.len())?.copy_from_slice(server);
        Some(c)
    }

    /// The server cookie the client sent (empty when it sent only its own).
    pub(crate) fn server(&self) -> &[u8] {
        self.server.get(..usize::from(self.server_len)).unwrap_or_default()
    }
}

/// An Extended DNS Error (RFC 8914): why an answer is what it is, for the resolver's
/// operator. Written only into the OPT of a query that had one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ede {
    pub(crate) code: u16,
    /// EXTRA-TEXT: fixed text, so setting one never allocates.
    pub(crate) text: &'static str,
}

/// INFO-CODEs of RFC 8914 §4 this server sends.
pub(crate) mod ede {
    /// An unexpected internal state; the text says which.
    pub(crate) const OTHER: u16 = 0;
    /// The name is outside every zone served here (§4.21).
    pub(crate) const NOT_AUTHORITATIVE: u16 = 20;
    /// The query asks for something this server does not do (§4.22).
    pub(crate) const NOT_SUPPORTED: u16 = 21;
}

/// What the OPT of a reply carries besides Client Subnet, decided before the answer is
/// written (their length is reserved from the UDP budget).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OptReply<'a> {
    /// The server's identifier, when asked for and configured.
    pub(crate) nsid: Option<&'a [u8]>,
    /// The COOKIE option's data: the client cookie and a fresh server cookie.
    pub(crate) cookie: Option<[u8; crate::cookie::REPLY_LEN]>,
}

impl OptReply<'_> {
    fn wire_len(&self) -> usize {
        self.nsid.map_or(0, |n| 4 + n.len()) + self.cookie.map_or(0, |c| 4 + c.len())
    }
}

/// An EDNS Client Subnet option (RFC 7871 §6) as sent by the resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ecs {
    /// 1 = IPv4, 2 = IPv6.
    pub(crate) family: u16,
    pub(crate) source_prefix: u8,
    /// The address, zero beyond the source prefix (only `source_prefix` bits were sent).
    pub(crate) addr: std::net::IpAddr,
}

impl Ecs {
    /// Octets of ADDRESS on the wire: exactly enough for the source prefix.
    pub(crate) fn address_len(&self) -> usize {
        usize::from(self.source_prefix).div_ceil(8)
    }

    /// Reads the option's data; `None` when malformed (RFC 7871 §7.1.1: FORMERR).
    pub(crate) fn parse(data: &[u8]) -> Option<Ecs> {
        let (head, addr) = data.split_at_checked(4)?;
        let family = u16::from_be_bytes([head[0], head[1]]);
        let (source_prefix, scope) = (head[2], head[3]);
        let max = match family {
            1 => 32,
            2 => 128,
            _ => return None,
        };
        // A query's SCOPE PREFIX-LENGTH must be 0, and ADDRESS exactly as long as needed.
        if source_prefix > max || scope != 0 || addr.len() != usize::from(source_prefix).div_ceil(8) {
            return None;
        }
        // Bits beyond the source prefix must be zero (§6).
        if let Some(last) = addr.last() {
            let used = source_prefix % 8;
            if used != 0 && last & (0xFFu8 >> used) != 0 {
                return None;
            }
        }
        let ip = if family == 1 {
            let mut b = [0u8; 4];
            b.get_mut(..addr.len())?.copy_from_slice(addr);
            std::net::IpAddr::from(b)
        } else {
            let mut b = [0u8; 16];
            b.get_mut(..addr.len())?.copy_from_slice(addr);
            std::net::IpAddr::from(b)
        };
        Some(Ecs { family, source_prefix, addr: ip })
    }

    /// The option as echoed in a response, with `scope` (RFC 7871 §7.2.1).
    fn write(&self, scope: u8, buf: &mut Vec<u8>) {
        let n = self.address_len();
        buf.extend_from_slice(&OPTION_ECS.to_be_bytes());
        buf.extend_from_slice(&((4 + n) as u16).to_be_bytes());
        buf.extend_from_slice(&self.family.to_be_bytes());
        buf.push(self.source_prefix);
        buf.push(scope);
        let octets: &[u8] = match &self.addr {
            std::net::IpAddr::V4(a) => &a.octets()[..],
            std::net::IpAddr::V6(a) => &a.octets()[..],
        };
        buf.extend_from_slice(octets.get(..n).unwrap_or(octets));
    }

    /// Bytes the echoed option adds to the OPT record.
    fn wire_len(&self) -> usize {
        8 + self.address_len()
    }
}

/// The question, with the name lower-cased for lookup; `raw` is the question as sent.
pub(crate) struct Question {
    pub(crate) name: NameBuf,
    pub(crate) qtype: u16,
    pub(crate) qclass: u16,
    /// Byte range of the whole question (name, type, class) in the packet.
    pub(crate) raw: Range<usize>,
}

/// What [`parse`] made of a packet.
// Boxing the query would cost an allocation per packet; the enum lives on the stack.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    /// Not worth answering: shorter than a header, or a response (answering those could
    /// start a loop between two servers).
    Drop,
    /// A query; `error` is set when it is malformed (FORMERR) or uses an unknown opcode
    /// (NOTIMP). `question` and `edns` are present when they could be read.
    Query(Query),
}

pub(crate) struct Query {
    pub(crate) id: u16,
    pub(crate) flags: u16,
    pub(crate) question: Option<Question>,
    /// The OPT record when it was valid — also in a query that is otherwise a format
    /// error, whose FORMERR then carries an OPT too (RFC 6891 §6.1.1).
    pub(crate) edns: Option<Edns>,
    /// The TSIG record, when the query was signed (RFC 8945).
    pub(crate) tsig: Option<Tsig>,
    pub(crate) error: Option<u16>,
}

/// Where a query's TSIG record (RFC 8945 §4.2) is, to answer it with an unsigned TSIG
/// carrying an error (§5.3.2) when its signature is refused (`xfr::tsig` verifies it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tsig {
    /// Start of the owner (the key name), possibly compressed: where the record starts.
    pub(crate) owner: usize,
    /// Wire length of the owner once decompressed.
    owner_len: usize,
    /// The algorithm name (never compressed, §4.2).
    algorithm: Range<usize>,
    /// Time Signed and Fudge: echoed as sent, as Knot does (no clock read per query).
    time_fudge: Range<usize>,
    original_id: u16,
}

impl Tsig {
    /// Octets of the unsigned error TSIG written for it.
    fn reply_len(&self) -> usize {
        self.owner_len + 10 + self.algorithm.len() + self.time_fudge.len() + 8
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn u8(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.buf.get(self.pos..self.pos + 2)?;
        self.pos += 2;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.buf.get(self.pos..self.pos + 4)?;
        self.pos += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn skip(&mut self, n: usize) -> Option<()> {
        if self.buf.len() - self.pos < n {
            return None;
        }
        self.pos += n;
        Some(())
    }

    /// Reads the question name. Compression pointers are refused: the only earlier bytes
    /// are the header, so any pointer in a question is malformed.
    fn question_name(&mut self) -> Option<NameBuf> {
        let mut name = NameBuf::new();
        loop {
            let len = self.u8()? as usize;
            if len == 0 {
                name.finish().ok()?;
                return Some(name);
            }
            if len > crate::name::MAX_LABEL {
                return None; // pointer (0xC0), or the reserved 0x40/0x80 label types
            }
            let label = self.buf.get(self.pos..self.pos + len)?;
            self.pos += len;
            name.push_label(label).ok()?;
        }
    }

    /// Skips an owner name of another section; says whether it is the root, a name of
    /// labels, or ends in a pointer (to an earlier octet, else the name is malformed).
    fn skip_name(&mut self) -> Option<NameEnd> {
        let mut end = NameEnd::Root;
        let mut total = 0;
        loop {
            let at = self.pos;
            let len = self.u8()? as usize;
            match len {
                0 => return Some(end),
                1..=63 => {
                    self.skip(len)?;
                    total += len + 1;
                    if total > crate::name::MAX_NAME {
                        return None;
                    }
                    end = NameEnd::Labels;
                }
                0xC0..=0xFF => {
                    let target = ((len & 0x3F) << 8) | self.u8()? as usize;
                    // RFC 1035 §4.1.4: a pointer refers to a prior occurrence of a name.
                    if target >= at {
                        return None;
                    }
                    return Some(match end {
                        NameEnd::Root => NameEnd::Pointer(target),
                        _ => NameEnd::Labels,
                    });
                }
                _ => return None,
            }
        }
    }
}

/// How an owner name ended, for [`Reader::skip_name`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum NameEnd {
    /// The root label alone.
    Root,
    /// One or more labels (and possibly a pointer after them).
    Labels,
    /// A pointer alone: the name is the one at the target.
    Pointer(usize),
}

/// Whether the name at `at` is the root, following pointers (each strictly backwards, so
/// the walk ends within `at / 2` steps).
fn is_root_at(buf: &[u8], mut at: usize) -> bool {
    loop {
        match buf.get(at) {
            Some(0) => return true,
            Some(&b) if b >= 0xC0 => {
                let Some(&lo) = buf.get(at + 1) else { return false };
                let target = (usize::from(b & 0x3F) << 8) | usize::from(lo);
                if target >= at {
                    return false;
                }
                at = target;
            }
            _ => return false,
        }
    }
}

/// The wire length of the name at `at` once decompressed; `None` when it is malformed or
/// longer than 255 octets. Pointers must go strictly backwards.
pub(crate) fn name_len_at(buf: &[u8], mut at: usize) -> Option<usize> {
    let mut total = 0;
    loop {
        let len = usize::from(*buf.get(at)?);
        match len {
            0 => return (total < crate::name::MAX_NAME).then_some(total + 1),
            1..=63 => {
                total += len + 1;
                if total >= crate::name::MAX_NAME || at + 1 + len > buf.len() {
                    return None;
                }
                at += 1 + len;
            }
            0xC0..=0xFF => {
                let target = ((len & 0x3F) << 8) | usize::from(*buf.get(at + 1)?);
                if target >= at {
                    return None;
                }
                at = target;
            }
            _ => return None,
        }
    }
}

/// Appends the name at `at` decompressed (checked by [`name_len_at`] first).
pub(crate) fn copy_name(buf: &[u8], mut at: usize, out: &mut Vec<u8>) {
    loop {
        let Some(&len) = buf.get(at) else { return };
        match len {
            0 => {
                out.push(0);
                return;
            }
            1..=63 => {
                let end = (at + 1 + usize::from(len)).min(buf.len());
                out.extend_from_slice(buf.get(at..end).unwrap_or_default());
                at = end;
            }
            0xC0..=0xFF => {
                let Some(&lo) = buf.get(at + 1) else { return };
                let target = (usize::from(len & 0x3F) << 8) | usize::from(lo);
                if target >= at {
                    return;
                }
                at = target;
            }
            _ => return,
        }
    }
}

/// Reads a packet. Never panics, never loops more than once per byte.
pub(crate) fn parse(packet: &[u8]) -> Parsed {
    let mut r = Reader { buf: packet, pos: 0 };
    let (Some(id), Some(flags)) = (r.u16(), r.u16()) else { return Parsed::Drop };
    let (Some(qd), Some(an), Some(ns), Some(ar)) = (r.u16(), r.u16(), r.u16(), r.u16()) else {
        return Parsed::Drop;
    };
    if flags & FLAG_QR != 0 {
        return Parsed::Drop;
    }
    let opcode = ((flags >> 11) & 0x0F) as u8;
    let mut q = Query { id, flags, question: None, edns: None, tsig: None, error: None };
    // What the sections of an unknown opcode hold is unknown: not understanding them is
    // NOTIMP, not a format error (as Knot answers).
    let malformed = if opcode == 0 { rcode::FORMERR } else { rcode::NOTIMP };
    if qd == 1 {
        let start = r.pos;
        let name = r.question_name();
        if name.is_none() {
            // A malformed name (a pointer, say) may still be framed: skipped, the OPT
            // after it is found for the FORMERR.
            q.error = Some(malformed);
            r.pos = start;
            if r.skip_name().is_none() {
                return Parsed::Query(q);
            }
        }
        let (Some(qtype), Some(qclass)) = (r.u16(), r.u16()) else {
            q.error = Some(malformed);
            return Parsed::Query(q);
        };
        if let Some(name) = name {
            q.question = Some(Question { name, qtype, qclass, raw: start..r.pos });
        }
    } else {
        // Zero questions or several: RFC 9619 makes QDCOUNT > 1 a format error. Several
        // are skipped (a later one may point into an earlier one) to find the OPT after.
        // Zero is answered when the OPT carries a cookie (RFC 7873 §5.4), decided below.
        q.error = Some(malformed);
        for _ in 0..qd {
            if r.skip_name().is_none() || r.skip(4).is_none() {
                return Parsed::Query(q);
            }
        }
    }
    let extra = read_extra(&mut r, an, ns, ar);
    q.edns = extra.edns;
    q.tsig = extra.tsig;
    if qd == 0 && opcode == 0 && !extra.malformed && q.edns.as_ref().is_some_and(|e| e.cookie.is_some()) {
        q.error = None;
    }
    if extra.malformed {
        q.error = Some(malformed);
    } else if q.error.is_none() {
        if opcode != 0 {
            q.error = Some(rcode::NOTIMP);
        } else if q.question.as_ref().is_some_and(|x| x.qtype == rtype::OPT) {
            q.error = Some(rcode::FORMERR);
        }
    }
    Parsed::Query(q)
}

/// The OPT and TSIG records of a query, and whether the records around them were sound.
struct Extra {
    edns: Option<Edns>,
    tsig: Option<Tsig>,
    /// A record could not be read, or broke a placement rule (FORMERR). A valid OPT read
    /// before is kept, so the FORMERR carries it.
    malformed: bool,
}

/// Walks the answer, authority and additional sections for the OPT and TSIG records.
fn read_extra(r: &mut Reader<'_>, an: u16, ns: u16, ar: u16) -> Extra {
    let mut x = Extra { edns: None, tsig: None, malformed: false };
    let total = u32::from(an) + u32::from(ns) + u32::from(ar);
    let mut opts = 0;
    for i in 0..total {
        let owner = r.pos;
        let Some(record) = read_record(r) else {
            x.malformed = true;
            return x;
        };
        let in_additional = i >= u32::from(an) + u32::from(ns);
        match record.rtype {
            rtype::OPT => {
                opts += 1;
                let root = match record.owner {
                    NameEnd::Root => true,
                    NameEnd::Pointer(target) => is_root_at(r.buf, target),
                    NameEnd::Labels => false,
                };
                // RFC 6891 §6.1.1: one OPT, in the additional section, owned by the root.
                if !in_additional || !root || opts > 1 {
                    x.edns = None;
                    x.malformed = true;
                    return x;
                }
                let Some(options) = r.buf.get(record.data.clone()) else {
                    x.malformed = true;
                    return x;
                };
                let Ok(o) = read_options(options) else {
                    x.malformed = true;
                    return x;
                };
                x.malformed |= !o.ok;
                let ttl = record.ttl;
                x.edns = Some(Edns {
                    payload: record.class,
                    version: (ttl >> 16) as u8,
                    dnssec_ok: ttl & 0x8000 != 0,
                    options: record.data,
                    ecs: o.ecs,
                    nsid: o.nsid,
                    cookie: o.cookie,
                });
            }
            rtype::TSIG => {
                // RFC 8945 §5.2: one TSIG, the last record of the additional section.
                let last = i + 1 == total;
                match (in_additional && last, read_tsig(r.buf, owner, record.data)) {
                    (true, Some(t)) => x.tsig = Some(t),
                    _ => x.malformed = true,
                }
            }
            _ => {}
        }
    }
    x
}

/// The fixed fields of a record after its owner.
struct Record {
    owner: NameEnd,
    rtype: u16,
    class: u16,
    ttl: u32,
    data: Range<usize>,
}

fn read_record(r: &mut Reader<'_>) -> Option<Record> {
    let owner = r.skip_name()?;
    let (rtype, class, ttl) = (r.u16()?, r.u16()?, r.u32()?);
    let rdlen = r.u16()? as usize;
    let data = r.pos..r.pos + rdlen;
    r.skip(rdlen)?;
    Some(Record { owner, rtype, class, ttl, data })
}

/// Reads a TSIG RDATA (RFC 8945 §4.2); `None` when it cannot be interpreted (FORMERR).
fn read_tsig(buf: &[u8], owner: usize, data: Range<usize>) -> Option<Tsig> {
    let owner_len = name_len_at(buf, owner)?;
    let rdata = buf.get(data.clone())?;
    let mut r = Reader { buf: rdata, pos: 0 };
    // The algorithm name, uncompressed.
    loop {
        match r.u8()? {
            0 => break,
            len @ 1..=63 => r.skip(usize::from(len))?,
            _ => return None,
        }
    }
    let alg_end = r.pos;
    r.skip(8)?; // Time Signed (48 bits) and Fudge
    let mac_len = r.u16()? as usize;
    r.skip(mac_len)?;
    let original_id = r.u16()?;
    r.skip(2)?; // Error
    let other_len = r.u16()? as usize;
    r.skip(other_len)?;
    if r.pos != rdata.len() || alg_end > crate::name::MAX_NAME {
        return None;
    }
    Some(Tsig {
        owner,
        owner_len,
        algorithm: data.start..data.start + alg_end,
        time_fudge: data.start + alg_end..data.start + alg_end + 8,
        original_id,
    })
}

/// The EDNS options this server reads.
#[derive(Debug, Default, PartialEq, Eq)]
struct Options {
    ecs: Option<Ecs>,
    nsid: bool,
    cookie: Option<Cookie>,
    /// False when Client Subnet is malformed or appears twice (RFC 7871 §7.1.1), or the
    /// first COOKIE is malformed (RFC 7873 §5.2.2): FORMERR, still with an OPT.
    ok: bool,
}

/// Reads the Client Subnet, NSID and COOKIE options. `Err` when the options are not
/// framed (the OPT is unusable). Only the first COOKIE counts; later ones are ignored.
fn read_options(mut opts: &[u8]) -> Result<Options, ()> {
    let mut o = Options { ok: true, ..Options::default() };
    let (mut ecs_seen, mut cookie_seen) = (false, false);
    while !opts.is_empty() {
        let (head, rest) = opts.split_at_checked(4).ok_or(())?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let (data, rest) = rest.split_at_checked(len).ok_or(())?;
        match code {
            OPTION_ECS => {
                match (ecs_seen, Ecs::parse(data)) {
                    (false, Some(e)) => o.ecs = Some(e),
                    _ => o.ok = false,
                }
                ecs_seen = true;
            }
            // RFC 5001 §2.3: a query's NSID is empty; any data is ignored.
            OPTION_NSID => o.nsid = true,
            OPTION_COOKIE if !cookie_seen => {
                cookie_seen = true;
                o.cookie = Cookie::parse(data);
                o.ok &= o.cookie.is_some();
            }
            _ => {}
        }
        opts = rest;
    }
    if !o.ok {
        o.ecs = None;
        o.cookie = None;
    }
    Ok(o)
}

/// Where a record's owner name comes from.
#[derive(Clone, Copy)]
pub(crate) enum Owner<'a> {
    /// A compression pointer to a name already in the message.
    Ptr(u16),
    /// A full wire name.
    Wire(&'a [u8]),
}

/// A response being written into a reused buffer.
pub(crate) struct Response<'b> {
    pub(crate) buf: &'b mut Vec<u8>,
    counts: [u16; 3],
    /// End of the question: truncation cuts back to here.
    question_end: usize,
    /// Set when a record was left out because the message reached 65535 octets.
    pub(crate) overflow: bool,
    /// The Extended DNS Error to put in the OPT, if any.
    ede: Option<Ede>,
    /// Octets the message may reach before its OPT (and TSIG) and still not be truncated:
    /// optional additional records are written only within it (RFC 2181 §9).
    room: usize,
}

/// Sections of a response, in wire order.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Section {
    Answer = 0,
    Authority = 1,
    Additional = 2,
}

impl<'b> Response<'b> {
    /// Starts a response to `q`: header, and the question as sent when there is one.
    pub(crate) fn start(buf: &'b mut Vec<u8>, q: &Query, packet: &[u8]) -> Self {
        buf.clear();
        // RD and CD mean something for QUERY only (RFC 1035 §4.1.1, RFC 4035 §3.1.6); an
        // opcode this server does not know gets them clear, as BIND answers.
        let opcode = q.flags & 0x7800;
        let copied = if opcode == 0 { FLAG_RD | FLAG_CD } else { 0 };
        let flags = FLAG_QR | (q.flags & (0x7800 | copied));
        buf.extend_from_slice(&q.id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        let raw = q.question.as_ref().and_then(|qu| packet.get(qu.raw.clone()));
        buf.extend_from_slice(&[0, u8::from(raw.is_some()), 0, 0, 0, 0, 0, 0]);
        if let Some(raw) = raw {
            buf.extend_from_slice(raw);
        }
        let question_end = buf.len();
        Self { buf, counts: [0; 3], question_end, overflow: false, ede: None, room: MAX_MESSAGE }
    }

    /// Sets how long the message may grow before its OPT and TSIG (see [`Response::extra`]).
    pub(crate) fn set_room(&mut self, room: usize) {
        self.room = room;
    }

    /// Says why the answer is what it is, when the query had an OPT (RFC 8914).
    pub(crate) fn set_ede(&mut self, code: u16, text: &'static str) {
        self.ede = Some(Ede { code, text });
    }

    /// Appends an additional record the answer is complete without (the address of an SRV
    /// target): only when it fits the room left, so it is left out rather than making
    /// the answer truncated (RFC 2181 §9). False when it was left out.
    pub(crate) fn extra(&mut self, owner: Owner<'_>, rtype: u16, ttl: u32, rdata: &[u8]) -> bool {
        let owner_len = match owner {
            Owner::Ptr(_) => 2,
            Owner::Wire(w) => w.len(),
        };
        if self.buf.len() + owner_len + 10 + rdata.len() > self.room {
            return false;
        }
        self.record(Section::Additional, owner, rtype, ttl, rdata).is_some()
    }

    pub(crate) fn set_rcode(&mut self, rcode: u16) {
        if let Some(b) = self.buf.get_mut(3) {
            *b = (*b & 0xF0) | (rcode & 0x0F) as u8;
        }
    }

    pub(crate) fn set_authoritative(&mut self) {
        self.set_flag(FLAG_AA);
    }

    fn set_flag(&mut self, flag: u16) {
        if let Some(b) = self.buf.get_mut(2..4) {
            let v = u16::from_be_bytes([b[0], b[1]]) | flag;
            b.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Appends one record; returns the offset of its RDATA (for compression pointers to a
    /// CNAME target), or `None` when the message is full.
    pub(crate) fn record(
        &mut self,
        section: Section,
        owner: Owner<'_>,
        rtype: u16,
        ttl: u32,
        rdata: &[u8],
    ) -> Option<usize> {
        let owner_len = match owner {
            Owner::Ptr(_) => 2,
            Owner::Wire(w) => w.len(),
        };
        if self.buf.len() + owner_len + 10 + rdata.len() > MAX_MESSAGE || self.counts[section as usize] == u16::MAX {
            self.overflow = true;
            return None;
        }
        match owner {
            Owner::Ptr(p) => self.buf.extend_from_slice(&(0xC000 | p).to_be_bytes()),
            Owner::Wire(w) => self.buf.extend_from_slice(w),
        }
        self.buf.extend_from_slice(&rtype.to_be_bytes());
        self.buf.extend_from_slice(&CLASS_IN.to_be_bytes());
        self.buf.extend_from_slice(&ttl.to_be_bytes());
        self.buf.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        let at = self.buf.len();
        self.buf.extend_from_slice(rdata);
        self.counts[section as usize] += 1;
        Some(at)
    }

    /// Finishes the message: the OPT record when the query had one (with the upper bits of
    /// an extended RCODE, and the Client Subnet option echoed with `ecs_scope`), then, when
    /// `tsig` is given, an unsigned TSIG carrying its error (RFC 8945 §5.3.2); the section
    /// counts; and truncation to `limit` (TC=1, every section emptied, so a client never
    /// caches a partial RRset). A truncated answer too small for the TSIG goes without it:
    /// the client retries over TCP, where it fits.
    pub(crate) fn finish(
        mut self,
        edns: Option<&Edns>,
        rcode: u16,
        limit: usize,
        ecs_scope: u8,
        reply: &OptReply<'_>,
        tsig: Option<TsigError<'_>>,
    ) {
        self.set_rcode(rcode);
        let write_counts = |buf: &mut Vec<u8>, counts: [u16; 3], ar: u16| {
            for (i, c) in [counts[0], counts[1], ar].into_iter().enumerate() {
                if let Some(b) = buf.get_mut(6 + 2 * i..8 + 2 * i) {
                    b.copy_from_slice(&c.to_be_bytes());
                }
            }
        };
        let ecs = edns.and_then(|e| e.ecs.as_ref());
        let ede = self.ede.filter(|_| edns.is_some());
        let options_len = ecs.map_or(0, Ecs::wire_len) + reply.wire_len() + ede.map_or(0, |e| 6 + e.text.len());
        let opt_len = if edns.is_some() { 11 + options_len } else { 0 };
        let tsig_len = tsig.as_ref().map_or(0, |t| t.tsig.reply_len());
        let truncated = self.overflow || self.buf.len() + opt_len + tsig_len > limit;
        if truncated {
            self.buf.truncate(self.question_end);
            self.counts = [0; 3];
            self.set_flag(FLAG_TC);
        }
        let mut ar = self.counts[2];
        if let Some(e) = edns {
            let ttl = (u32::from((rcode >> 4) as u8) << 24) | if e.dnssec_ok { 0x8000 } else { 0 };
            self.buf.push(0);
            self.buf.extend_from_slice(&rtype::OPT.to_be_bytes());
            self.buf.extend_from_slice(&EDNS_PAYLOAD.to_be_bytes());
            self.buf.extend_from_slice(&ttl.to_be_bytes());
            self.buf.extend_from_slice(&(options_len as u16).to_be_bytes());
            if let Some(ecs) = ecs {
                ecs.write(ecs_scope, self.buf);
            }
            let mut option = |code: u16, parts: &[&[u8]]| {
                let len: usize = parts.iter().map(|p| p.len()).sum();
                self.buf.extend_from_slice(&code.to_be_bytes());
                self.buf.extend_from_slice(&(len as u16).to_be_bytes());
                parts.iter().for_each(|p| self.buf.extend_from_slice(p));
            };
            if let Some(nsid) = reply.nsid {
                option(OPTION_NSID, &[nsid]);
            }
            if let Some(cookie) = &reply.cookie {
                option(OPTION_COOKIE, &[cookie]);
            }
            if let Some(e) = ede {
                option(OPTION_EDE, &[&e.code.to_be_bytes(), e.text.as_bytes()]);
            }
            ar += 1;
        }
        if let Some(t) = tsig
            && self.buf.len() + tsig_len <= limit
        {
            t.write(self.buf);
            ar += 1;
        }
        write_counts(self.buf, self.counts, ar);
    }
}

/// The unsigned TSIG of an error answer (RFC 8945 §5.3.2): the query's key name and
/// algorithm, its Time Signed and Fudge, no MAC, the original ID, and `error`.
pub(crate) struct TsigError<'a> {
    pub(crate) packet: &'a [u8],
    pub(crate) tsig: &'a Tsig,
    pub(crate) error: u16,
}

impl TsigError<'_> {
    fn write(&self, buf: &mut Vec<u8>) {
        let t = self.tsig;
        let rdlen = t.algorithm.len() + t.time_fudge.len() + 8;
        copy_name(self.packet, t.owner, buf);
        buf.extend_from_slice(&rtype::TSIG.to_be_bytes());
        buf.extend_from_slice(&CLASS_ANY.to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&(rdlen as u16).to_be_bytes());
        buf.extend_from_slice(self.packet.get(t.algorithm.clone()).unwrap_or_default());
        buf.extend_from_slice(self.packet.get(t.time_fudge.clone()).unwrap_or_default());
        buf.extend_from_slice(&0u16.to_be_bytes()); // MAC Size: unsigned
        buf.extend_from_slice(&t.original_id.to_be_bytes());
        buf.extend_from_slice(&self.error.to_be_bytes());
        buf.extend_from_slice(&0u16.to_be_bytes()); // Other Len
    }
}

/// The question of a message written by [`Response`] (name, type and class), when it has one.
pub(crate) fn question(msg: &[u8]) -> Option<&[u8]> {
    if msg.get(4..6)? == [0, 0] {
        return None;
    }
    let mut at = HEADER_LEN;
    loop {
        let len = usize::from(*msg.get(at)?);
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    msg.get(HEADER_LEN..at + 4)
}

/// ANCOUNT of a message.
pub(crate) fn answer_count(msg: &[u8]) -> u16 {
    msg.get(6..8).map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
}

/// Cuts a response down to its header and question, with TC=1 and no records but its
/// OPT (RFC 6891 §6.1.1: an EDNS query gets an EDNS answer): what a rate-limited client
/// gets instead of the answer, to retry over TCP.
pub(crate) fn truncate_to_question(msg: &mut Vec<u8>) {
    let end = HEADER_LEN + question(msg).map_or(0, <[u8]>::len);
    let opt = opt_record(msg, end).map(<[u8]>::to_vec);
    msg.truncate(end);
    if let Some(flags) = msg.get_mut(2) {
        *flags |= (FLAG_TC >> 8) as u8;
    }
    if let Some(counts) = msg.get_mut(6..12) {
        counts.fill(0);
    }
    if let Some(opt) = opt {
        msg.extend_from_slice(&opt);
        if let Some(ar) = msg.get_mut(10..12) {
            ar.copy_from_slice(&1u16.to_be_bytes());
        }
    }
}

/// The OPT record of a response this server wrote (records start at `from`): always
/// the last record, owned by the root.
fn opt_record(msg: &[u8], from: usize) -> Option<&[u8]> {
    let count = |at: usize| msg.get(at..at + 2).map_or(0, |b| usize::from(u16::from_be_bytes([b[0], b[1]])));
    let records = count(6) + count(8) + count(10);
    let mut at = from;
    let mut last = None;
    for _ in 0..records {
        let start = at;
        // An owner is a compression pointer or labels ending in the root.
        loop {
            let len = *msg.get(at)?;
            if len & 0xC0 == 0xC0 {
                at += 2;
                break;
            }
            at += 1 + usize::from(len);
            if len == 0 {
                break;
            }
        }
        let rtype = msg.get(at..at + 2)?;
        let is_opt = start + 1 == at && rtype == rtype::OPT.to_be_bytes();
        let rdlen = usize::from(u16::from_be_bytes([*msg.get(at + 8)?, *msg.get(at + 9)?]));
        at += 10 + rdlen;
        if is_opt {
            last = msg.get(start..at);
        }
    }
    last
}

/// Octets the OPT record of a reply takes (none without EDNS), before any EDE.
pub(crate) fn opt_len(edns: Option<&Edns>, reply: &OptReply<'_>) -> usize {
    edns.map_or(0, |e| 11 + e.ecs.as_ref().map_or(0, Ecs::wire_len) + reply.wire_len())
}

/// The most a UDP answer to this client may carry.
pub(crate) fn udp_limit(edns: Option<&Edns>) -> usize {
    match edns {
        None => CLASSIC_UDP,
        Some(e) => usize::from(e.payload.clamp(CLASSIC_UDP as u16, EDNS_PAYLOAD)),
    }
}

#[cfg(test)]
mod tests;
