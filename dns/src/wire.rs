//! The DNS wire format on the hot path: reading a query and writing a response in place.
//!
//! hickory's `Message` builds a tree of owned names and records for every packet; an
//! authoritative server that must answer hundreds of thousands of queries a second
//! cannot afford that, so queries are read here with bounds-checked slices and answers
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
    pub(crate) const SOA: u16 = 6;
    pub(crate) const TXT: u16 = 16;
    pub(crate) const AAAA: u16 = 28;
    pub(crate) const SRV: u16 = 33;
    pub(crate) const OPT: u16 = 41;
    pub(crate) const DS: u16 = 43;
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
}

/// EDNS option code of Client Subnet (RFC 7871).
pub(crate) const OPTION_ECS: u16 = 8;

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
    pub(crate) edns: Option<Edns>,
    pub(crate) error: Option<u16>,
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

    /// Skips an owner name of another section. A pointer ends the name (where it points is
    /// never followed, so loops are impossible); returns whether the name was the root.
    fn skip_name(&mut self) -> Option<bool> {
        let mut root = true;
        let mut total = 0;
        loop {
            let len = self.u8()? as usize;
            match len {
                0 => return Some(root),
                1..=63 => {
                    self.skip(len)?;
                    total += len + 1;
                    if total > crate::name::MAX_NAME {
                        return None;
                    }
                    root = false;
                }
                0xC0..=0xFF => {
                    self.u8()?;
                    return Some(false);
                }
                _ => return None,
            }
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
    let mut q = Query { id, flags, question: None, edns: None, error: None };
    if qd != 1 {
        // Zero questions or several: RFC 9619 makes QDCOUNT > 1 a format error.
        q.error = Some(if opcode == 0 { rcode::FORMERR } else { rcode::NOTIMP });
        return Parsed::Query(q);
    }
    let start = r.pos;
    let Some(name) = r.question_name() else {
        q.error = Some(rcode::FORMERR);
        return Parsed::Query(q);
    };
    let (Some(qtype), Some(qclass)) = (r.u16(), r.u16()) else {
        q.error = Some(rcode::FORMERR);
        return Parsed::Query(q);
    };
    q.question = Some(Question { name, qtype, qclass, raw: start..r.pos });
    match read_edns(&mut r, an, ns, ar) {
        Ok(edns) => q.edns = edns,
        Err(()) => {
            q.error = Some(rcode::FORMERR);
            return Parsed::Query(q);
        }
    }
    if opcode != 0 {
        q.error = Some(rcode::NOTIMP);
    } else if qtype == rtype::OPT {
        q.error = Some(rcode::FORMERR);
    }
    Parsed::Query(q)
}

/// Walks the answer, authority and additional sections for the OPT record.
fn read_edns(r: &mut Reader<'_>, an: u16, ns: u16, ar: u16) -> Result<Option<Edns>, ()> {
    let mut edns = None;
    let total = u32::from(an) + u32::from(ns) + u32::from(ar);
    for i in 0..total {
        let root = r.skip_name().ok_or(())?;
        let rtype = r.u16().ok_or(())?;
        let class = r.u16().ok_or(())?;
        let ttl = r.u32().ok_or(())?;
        let rdlen = r.u16().ok_or(())? as usize;
        let data = r.pos;
        r.skip(rdlen).ok_or(())?;
        if rtype == rtype::OPT {
            let in_additional = i >= u32::from(an) + u32::from(ns);
            // RFC 6891 §6.1.1: one OPT, in the additional section, owned by the root.
            if !in_additional || !root || edns.is_some() {
                return Err(());
            }
            let options = data..data + rdlen;
            let ecs = match r.buf.get(options.clone()) {
                Some(opts) => read_ecs(opts)?,
                None => return Err(()),
            };
            edns =
                Some(Edns { payload: class, version: (ttl >> 16) as u8, dnssec_ok: ttl & 0x8000 != 0, options, ecs });
        }
    }
    Ok(edns)
}

/// Finds the Client Subnet option among EDNS options; `Err` when the options are
/// malformed, or the ECS option is (or appears twice).
fn read_ecs(mut opts: &[u8]) -> Result<Option<Ecs>, ()> {
    let mut ecs = None;
    while !opts.is_empty() {
        let (head, rest) = opts.split_at_checked(4).ok_or(())?;
        let code = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
        let (data, rest) = rest.split_at_checked(len).ok_or(())?;
        if code == OPTION_ECS {
            if ecs.is_some() {
                return Err(());
            }
            ecs = Some(Ecs::parse(data).ok_or(())?);
        }
        opts = rest;
    }
    Ok(ecs)
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
        let flags = FLAG_QR | (q.flags & (0x7800 | FLAG_RD | FLAG_CD));
        buf.extend_from_slice(&q.id.to_be_bytes());
        buf.extend_from_slice(&flags.to_be_bytes());
        let raw = q.question.as_ref().and_then(|qu| packet.get(qu.raw.clone()));
        buf.extend_from_slice(&[0, u8::from(raw.is_some()), 0, 0, 0, 0, 0, 0]);
        if let Some(raw) = raw {
            buf.extend_from_slice(raw);
        }
        let question_end = buf.len();
        Self { buf, counts: [0; 3], question_end, overflow: false }
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
    /// an extended RCODE, and the Client Subnet option echoed with `ecs_scope`), the
    /// section counts, and truncation to `limit` (TC=1, every section emptied, so a client
    /// never caches a partial RRset).
    pub(crate) fn finish(mut self, edns: Option<&Edns>, rcode: u16, limit: usize, ecs_scope: u8) {
        self.set_rcode(rcode);
        let write_counts = |buf: &mut Vec<u8>, counts: [u16; 3], ar: u16| {
            for (i, c) in [counts[0], counts[1], ar].into_iter().enumerate() {
                if let Some(b) = buf.get_mut(6 + 2 * i..8 + 2 * i) {
                    b.copy_from_slice(&c.to_be_bytes());
                }
            }
        };
        let ecs = edns.and_then(|e| e.ecs.as_ref());
        let opt_len = if edns.is_some() { 11 + ecs.map_or(0, Ecs::wire_len) } else { 0 };
        let truncated = self.overflow || self.buf.len() + opt_len > limit;
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
            match ecs {
                Some(ecs) => {
                    self.buf.extend_from_slice(&(ecs.wire_len() as u16).to_be_bytes());
                    ecs.write(ecs_scope, self.buf);
                }
                None => self.buf.extend_from_slice(&[0, 0]),
            }
            ar += 1;
        }
        write_counts(self.buf, self.counts, ar);
    }
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
