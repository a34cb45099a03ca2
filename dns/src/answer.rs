//! The query handler: one packet in, one response (or nothing) out, from the published
//! [`Index`]. No locks, no I/O; allocation only when the output buffer must grow.

use std::cell::{Cell, RefCell};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use meridian_config::ranking::MAX_ANSWERS_CEILING;
use meridian_model::geo::{Geo, Located, Place};
use meridian_model::rank;

use crate::candidates::{Addrs, Candidates, Mode};
use crate::explain::Trace;
use crate::index::{Index, Lookup, ZoneEntry};
use crate::name::{MAX_NAME, NameBuf};
use crate::record::{Cname, Node, Rrset};
use crate::wire::{
    self, CLASS_ANY, CLASS_IN, Ecs, Edns, MAX_MESSAGE, OptReply, Owner, Parsed, Question, Response, Section, TsigError,
    ede, rcode, rtype,
};
use crate::xfr::tsig;

/// Longest CNAME chain followed inside a zone (zone → region → global is 2; a zone file may
/// add a few, or DNAMEs). Longer chains stop here with what was written; loops stop where
/// they come back.
const MAX_CHAIN: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// Who asked, for the ranking step (EDNS Client Subnet is read from the packet's OPT).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Client {
    pub(crate) transport: Transport,
    /// The query's source; used to locate the client when it sent no Client Subnet.
    pub(crate) addr: Option<SocketAddr>,
}

/// The asker as the ranking step sees it: located at most once per query, and the ECS
/// scope the answer ends up depending on.
struct Asker<'a> {
    client: &'a Client,
    ecs: Option<&'a Ecs>,
    geo: &'a Geo,
    located: Option<Located>,
    /// RFC 7871 SCOPE PREFIX-LENGTH to echo: 0 unless a location-dependent name answered.
    scope: u8,
    /// What `meridian explain` records of this answer's making; `None` when serving.
    trace: Option<&'a mut Trace>,
}

impl Asker<'_> {
    /// Where the client is (ECS first, else the source address); records the scope. An
    /// explanation given a location starts with it in `located`.
    fn place(&mut self) -> Option<&Place> {
        if self.located.is_none() {
            let located = match (self.ecs, self.client.addr) {
                // RFC 7871 §7.1.2: source prefix 0 asks for an answer not tailored to anyone.
                (Some(e), _) if e.source_prefix == 0 => Located { place: None, scope: 0 },
                (Some(e), _) => locate_subnet(self.geo, e),
                (None, Some(a)) => self.geo.locate(a.ip(), 128),
                (None, None) => Located { place: None, scope: 0 },
            };
            self.located = Some(located);
        }
        let l = self.located.as_ref()?;
        self.scope = self.scope.max(l.scope);
        l.place.as_ref()
    }
}

/// Locates a Client Subnet. The SCOPE echoed counts bits of the option's FAMILY (RFC 7871
/// §7.2.1): an IPv4-mapped IPv6 subnet (`::ffff:a.b.c.d/n`, n ≥ 96) is located as the
/// IPv4 subnet of its last n − 96 bits, and its scope counted back in IPv6 bits.
fn locate_subnet(geo: &Geo, e: &Ecs) -> Located {
    if let IpAddr::V6(v6) = e.addr
        && e.source_prefix >= 96
        && let Some(v4) = v6.to_ipv4_mapped()
    {
        let l = geo.locate(IpAddr::V4(v4), e.source_prefix - 96);
        // Scope 0 (the answer depends on no bits) stays 0.
        let scope = if l.scope == 0 { 0 } else { l.scope + 96 };
        return Located { scope, ..l };
    }
    geo.locate(e.addr, e.source_prefix)
}

/// What happened, for metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// False when the packet is dropped without an answer.
    pub(crate) respond: bool,
    pub(crate) zone: Option<Arc<str>>,
    pub(crate) qtype: u16,
    pub(crate) rcode: u16,
    /// The query carried a server cookie of ours (RFC 7873 §5.2.4): its source address is
    /// not spoofed, so rate limiting leaves it alone (as Knot does).
    pub(crate) valid_cookie: bool,
}

thread_local! {
    /// Rotation of equal-rank records. Per thread, so busy cores never share a cache line;
    /// consecutive answers from one thread still start at a different record.
    static ROTATION: Cell<usize> = const { Cell::new(0) };
    /// Member order of a weighted or long answer being written; reused so ranking never
    /// allocates.
    static ORDER: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
    /// xorshift64* state for weighted draws: cheap, and quality enough for load sharing.
    static RNG: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

fn next_random() -> u64 {
    RNG.with(|r| {
        let mut x = r.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        r.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

fn next_rotation() -> usize {
    ROTATION.with(|r| {
        let v = r.get().wrapping_add(1);
        r.set(v);
        v
    })
}

/// Answers `packet` into `out`.
#[inline]
pub(crate) fn answer(index: &Index, packet: &[u8], client: &Client, out: &mut Vec<u8>) -> Outcome {
    answer_traced(index, packet, client, out, None)
}

/// Answers `packet` into `out`, recording into `trace` how the answer was made: the one
/// code path of both serving (`None`, which costs a branch at each recording point) and
/// `meridian explain`.
pub(crate) fn answer_traced(
    index: &Index,
    packet: &[u8],
    client: &Client,
    out: &mut Vec<u8>,
    trace: Option<&mut Trace>,
) -> Outcome {
    let q = match wire::parse(packet) {
        Parsed::Drop => return Outcome::default(),
        Parsed::Query(q) => q,
    };
    let limit = match client.transport {
        Transport::Udp => wire::udp_limit(q.edns.as_ref()),
        Transport::Tcp => MAX_MESSAGE,
    };
    // A signed query (RFC 8945): verified here, its answer signed after it is written,
    // in room kept for the signature.
    let signature = q.tsig.as_ref().map(|t| tsig::check_query(&index.identity.policy.keys, packet, t));
    let limit = match &signature {
        Some(Ok((key, _))) => limit.saturating_sub(tsig::record_len(key)),
        _ => limit,
    };
    let mut outcome =
        Outcome { respond: true, qtype: q.question.as_ref().map_or(0, |x| x.qtype), ..Default::default() };
    let reply = opt_reply(index, q.edns.as_ref(), client, &mut outcome);
    let mut resp = Response::start(out, &q, packet);
    resp.set_room(limit.saturating_sub(wire::opt_len(q.edns.as_ref(), &reply)));
    let ecs = q.edns.as_ref().and_then(|e| e.ecs.as_ref());
    let located = trace.as_ref().and_then(|t| t.given.clone());
    let mut asker = Asker { client, ecs, geo: &index.geo, located, scope: 0, trace };
    // In BIND's order: the message's format, its EDNS version, its signature, then the
    // opcode and the question.
    let mut tsig = None;
    let rc = match (&q.error, &q.question, &q.edns) {
        (Some(rcode::FORMERR), _, _) => rcode::FORMERR,
        (_, _, Some(e)) if e.version > 0 => rcode::BADVERS,
        // An unknown key, a MAC that does not verify, a stale time (RFC 8945 §5.2).
        _ if matches!(signature, Some(Err(_))) => {
            let error = signature.as_ref().and_then(|s| s.as_ref().err()).copied().unwrap_or(tsig::error::BADKEY);
            tsig = q.tsig.as_ref().map(|t| TsigError { packet, tsig: t, error });
            rcode::NOTAUTH
        }
        (Some(rc), _, _) => {
            if *rc == rcode::NOTIMP {
                resp.set_ede(ede::NOT_SUPPORTED, "unknown opcode");
            }
            *rc
        }
        // RFC 7873 §5.4: no question but a cookie (parse lets only that through) is a
        // request for a server cookie.
        (None, None, Some(e)) if e.cookie.is_some() => rcode::NOERROR,
        (None, None, _) => rcode::FORMERR,
        (None, Some(question), _) => resolve_query(index, question, &mut asker, &mut resp, &mut outcome),
    };
    outcome.rcode = rc;
    let scope = asker.scope;
    if let Some(t) = asker.trace {
        t.located = asker.located;
    }
    resp.finish(q.edns.as_ref(), rc, limit, scope, &reply, tsig);
    if let Some(Ok((key, mac))) = &signature {
        tsig::Signer::new(key, mac, tsig::now()).sign(out, 0, &[]);
    }
    outcome
}

/// The NSID (when asked for and configured) and the COOKIE (a fresh server cookie for the
/// client's) of the reply's OPT. A query without those options pays two branches.
fn opt_reply<'i>(index: &'i Index, edns: Option<&Edns>, client: &Client, outcome: &mut Outcome) -> OptReply<'i> {
    let Some(e) = edns else { return OptReply::default() };
    let nsid = if e.nsid { index.identity.nsid.as_deref() } else { None };
    let cookie = e.cookie.map(|c| {
        let (secret, ip, now) = (&index.identity.secret, client.addr.map(|a| a.ip()), crate::cookie::now());
        outcome.valid_cookie = !c.server().is_empty() && secret.verify(&c.client, c.server(), ip, now);
        let mut data = [0u8; crate::cookie::REPLY_LEN];
        let (head, tail) = data.split_at_mut(crate::cookie::CLIENT_LEN);
        head.copy_from_slice(&c.client);
        tail.copy_from_slice(&secret.server_cookie(&c.client, ip, now));
        data
    });
    OptReply { nsid, cookie }
}

/// Answers one question from the zone it falls in: a refusal, a referral, or the chase
/// from the question's name to its data.
fn resolve_query(
    index: &Index,
    q: &Question,
    client: &mut Asker<'_>,
    resp: &mut Response<'_>,
    outcome: &mut Outcome,
) -> u16 {
    if let Some((rc, code, text)) = refusal(q) {
        resp.set_ede(code, text);
        return rc;
    }
    if q.qtype == rtype::IXFR {
        return ixfr_over_udp(index, q, resp, outcome);
    }
    let Some(zi) = index.zone_of(&q.name) else {
        resp.set_ede(ede::NOT_AUTHORITATIVE, "");
        return rcode::REFUSED;
    };
    let Some(zone) = index.zones.get(zi) else {
        resp.set_ede(ede::OTHER, "zone missing from the index");
        return rcode::SERVFAIL;
    };
    outcome.zone = Some(zone.data.name.clone());
    // At or below a zone cut the data belongs to the child zone: a referral, except DS,
    // which lives on the parent side of the cut (RFC 4035 §2.4), and except below a DNAME
    // above the cut, which occludes it.
    if let Some(cut) = index.cut_of(zone, q.name.wire())
        && !(q.qtype == rtype::DS && cut == q.name.wire())
        && index.dname_of(zone, q.name.wire()).is_none_or(|(owner, _)| owner.len() >= cut.len())
    {
        refer(index, zone, cut, q, resp);
        return rcode::NOERROR;
    }
    resp.set_authoritative();
    let mut chase = Chase::new(index, zi, zone, q);
    chase.run(client, resp)
}

/// The RCODE of a question this server does not answer from its data, if it is one, with
/// the Extended DNS Error that says why (RFC 8914).
fn refusal(q: &Question) -> Option<(u16, u16, &'static str)> {
    if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
        return Some((rcode::REFUSED, ede::NOT_SUPPORTED, "only class IN is served"));
    }
    match q.qtype {
        // Transfers are answered over TCP (`xfr`), never from here: over UDP an AXFR
        // cannot fit (RFC 5936 §4.2); IXFR over UDP gets the SOA (`ixfr_over_udp`).
        rtype::AXFR => Some((rcode::REFUSED, ede::NOT_SUPPORTED, "zone transfers only over TCP")),
        // TKEY, TSIG, MAILB, MAILA: meta-types this server does not implement.
        249 | 250 | 253 | 254 => Some((rcode::NOTIMP, ede::NOT_SUPPORTED, "")),
        _ => None,
    }
}

/// IXFR over UDP (transfers over TCP never reach this handler): the zone's current SOA
/// alone, which RFC 1995 §2 answers when the changes do not fit — a client that is
/// behind then asks again over TCP. Only for a zone's apex.
fn ixfr_over_udp(index: &Index, q: &Question, resp: &mut Response<'_>, outcome: &mut Outcome) -> u16 {
    let Some(zone) = index.zones.iter().find(|z| z.data.apex[..] == *q.name.wire()) else {
        resp.set_ede(ede::NOT_AUTHORITATIVE, "");
        return rcode::NOTAUTH;
    };
    outcome.zone = Some(zone.data.name.clone());
    resp.set_authoritative();
    resp.record(Section::Answer, Owner::Ptr(wire::HEADER_LEN as u16), rtype::SOA, zone.data.soa_ttl, &zone.soa);
    rcode::NOERROR
}

/// What a chase does after one CNAME or DNAME.
enum Step {
    /// Look the target up next (its owner is already set).
    Follow,
    /// The answer is complete: this RCODE.
    Done(u16),
}

/// The chase from the question's name through CNAMEs and DNAMEs inside its zone, writing
/// each record on the way into the answer section.
struct Chase<'a> {
    index: &'a Index,
    /// The zone's position in the index, to tell whether a target is in the same zone.
    zone_index: usize,
    zone: &'a ZoneEntry,
    q: &'a Question,
    /// The apex inside the echoed question, for the SOA owner of negative answers.
    apex_ptr: u16,
    /// How the name being looked up is written as an owner.
    owner: Owner<'a>,
    /// Where each name the chase reached is written in the response (the question, then
    /// each CNAME target): reaching one again is a loop, which ends the chase before any
    /// record is written twice (RFC 2181 §5).
    reached: [usize; MAX_CHAIN + 1],
    n_reached: usize,
    /// DNAMEs written, so one that redirects twice in a chain is written once.
    dnames: [&'a [u8]; MAX_CHAIN],
    n_dnames: usize,
    hops: usize,
}

impl<'a> Chase<'a> {
    fn new(index: &'a Index, zone_index: usize, zone: &'a ZoneEntry, q: &'a Question) -> Self {
        Chase {
            index,
            zone_index,
            zone,
            q,
            apex_ptr: (wire::HEADER_LEN + q.name.wire().len() - zone.data.apex.len()) as u16,
            owner: Owner::Ptr(wire::HEADER_LEN as u16),
            reached: [wire::HEADER_LEN; MAX_CHAIN + 1],
            n_reached: 1,
            dnames: [&[]; MAX_CHAIN],
            n_dnames: 0,
            hops: 0,
        }
    }

    /// Follows the question's name to its data and writes the answer; returns the RCODE.
    fn run(&mut self, client: &mut Asker<'_>, resp: &mut Response<'_>) -> u16 {
        // The name a DNAME redirected the chase to, when one did (on the stack, filled only then).
        let (index, zone, q) = (self.index, self.zone, self.q);
        let mut synthesised: Option<NameBuf> = None;
        let mut key: &[u8] = q.name.wire();
        loop {
            // RFC 6672 §3.2: below a DNAME, the DNAME and a CNAME synthesised from it.
            if let Some((dname_owner, dname)) = index.dname_of(zone, key) {
                match self.dname(key, dname_owner, dname, resp) {
                    Ok(next) => key = synthesised.insert(next).wire(),
                    Err(rc) => return rc,
                }
                continue;
            }
            let node = match index.lookup(zone, key) {
                Lookup::Missing => return self.negative(resp, rcode::NXDOMAIN),
                Lookup::Empty => return self.negative(resp, rcode::NOERROR),
                Lookup::Node(node) => node,
            };
            if let Some(t) = client.trace.as_deref_mut() {
                t.reached(key, node);
            }
            let Some(c) = &node.cname else {
                let at_apex = key == &zone.data.apex[..];
                let addrs = index.addrs(key, node);
                if write_data(node, addrs, zone, at_apex, q.qtype, self.owner, client, resp) == 0 {
                    negative(zone, self.apex_ptr, resp);
                } else if let Some(at) = target_offset(q.qtype) {
                    target_addresses(index, node, q.qtype, at, resp);
                }
                return rcode::NOERROR;
            };
            match self.cname(c, resp) {
                Step::Follow => key = &c.key,
                Step::Done(rc) => return rc,
            }
        }
    }

    /// Writes the SOA of a negative answer and returns `rc`.
    fn negative(&self, resp: &mut Response<'_>, rc: u16) -> u16 {
        negative(self.zone, self.apex_ptr, resp);
        rc
    }

    /// Writes `key`'s redirection by the DNAME `dname` at `dname_owner` (the DNAME itself
    /// once per chain, then the synthesised CNAME); the name to look up next, or the RCODE
    /// when the chase ends here.
    fn dname(
        &mut self,
        key: &[u8],
        dname_owner: &'a [u8],
        dname: &'a Rrset,
        resp: &mut Response<'_>,
    ) -> Result<NameBuf, u16> {
        let Some(target) = dname.rdata.first() else {
            resp.set_ede(ede::OTHER, "DNAME without a target");
            return Err(rcode::SERVFAIL);
        };
        // The labels of `key` above the DNAME's owner.
        let prefix = key.len().saturating_sub(dname_owner.len());
        if !self.dnames.get(..self.n_dnames).unwrap_or_default().contains(&dname_owner) {
            let at = suffix(self.owner, prefix, dname_owner);
            resp.record(Section::Answer, at, rtype::DNAME, dname.ttl, target);
            if let Some(slot) = self.dnames.get_mut(self.n_dnames) {
                *slot = dname_owner;
                self.n_dnames += 1;
            }
        }
        let mut buf = [0u8; MAX_NAME];
        let Some(cname) = substitute(&mut buf, key.get(..prefix).unwrap_or_default(), target) else {
            return Err(rcode::YXDOMAIN);
        };
        let at = resp.record(Section::Answer, self.owner, rtype::CNAME, dname.ttl, cname);
        if self.q.qtype == rtype::CNAME || self.q.qtype == rtype::ANY {
            return Err(rcode::NOERROR);
        }
        let Some(next) = NameBuf::from_wire(cname) else { return Err(rcode::NOERROR) };
        self.hops += 1;
        // A full message (it is truncated), a loop, or a target elsewhere ends the chase.
        let Some(at) = at.filter(|&at| at <= 0x3FFF) else { return Err(rcode::NOERROR) };
        if self.ends_at(resp, next.wire()) {
            return Err(rcode::NOERROR);
        }
        self.reach(at);
        self.owner = Owner::Ptr(at as u16);
        Ok(next)
    }

    /// Writes the CNAME `c` of the name being looked up and says whether to follow it.
    fn cname(&mut self, c: &'a Cname, resp: &mut Response<'_>) -> Step {
        let at = resp.record(Section::Answer, self.owner, rtype::CNAME, c.ttl, &c.target);
        if self.q.qtype == rtype::CNAME || self.q.qtype == rtype::ANY {
            return Step::Done(rcode::NOERROR);
        }
        self.hops += 1;
        // The chase stays inside the zone: elsewhere the client follows it. A full
        // message (it is truncated) or a loop ends it too.
        let Some(at) = at else { return Step::Done(rcode::NOERROR) };
        if self.ends_at(resp, &c.key) {
            return Step::Done(rcode::NOERROR);
        }
        self.reach(at);
        self.owner = if at <= 0x3FFF { Owner::Ptr(at as u16) } else { Owner::Wire(&c.target) };
        Step::Follow
    }

    /// Whether the chase stops before `next`: too many hops, a loop, or another zone.
    fn ends_at(&self, resp: &Response<'_>, next: &[u8]) -> bool {
        let reached = self.reached.get(..self.n_reached).unwrap_or_default();
        self.hops >= MAX_CHAIN
            || reached_before(resp, reached, next)
            || NameBuf::from_wire(next).and_then(|n| self.index.zone_of(&n)) != Some(self.zone_index)
    }

    /// Records that the chase reached the name written at `at`.
    fn reach(&mut self, at: usize) {
        if let Some(slot) = self.reached.get_mut(self.n_reached) {
            *slot = at;
            self.n_reached += 1;
        }
    }
}

/// The name `owner` without its first `skip` octets of labels, which is `name`: a pointer
/// into it when one can reach it, else `name` written out.
fn suffix<'a>(owner: Owner<'a>, skip: usize, name: &'a [u8]) -> Owner<'a> {
    match owner {
        Owner::Ptr(p) if usize::from(p) + skip <= 0x3FFF => Owner::Ptr(p + skip as u16),
        Owner::Wire(w) => Owner::Wire(w.get(skip..).unwrap_or(name)),
        Owner::Ptr(_) => Owner::Wire(name),
    }
}

/// `prefix` followed by `target` in `buf`: the name a DNAME substitution makes (RFC 6672
/// §2.2); `None` when it is longer than 255 octets.
fn substitute<'b>(buf: &'b mut [u8; MAX_NAME], prefix: &[u8], target: &[u8]) -> Option<&'b [u8]> {
    let out = buf.get_mut(..prefix.len() + target.len())?;
    let (head, tail) = out.split_at_mut(prefix.len());
    head.copy_from_slice(prefix);
    tail.copy_from_slice(target);
    Some(out)
}

/// Whether `name` (lower-cased wire format) is written at one of the offsets `at` of the
/// response (each the start of an uncompressed name). Wire names are self-delimiting and
/// their length octets are below `A`, so comparing `name.len()` octets case-insensitively
/// compares the names.
fn reached_before(resp: &Response<'_>, at: &[usize], name: &[u8]) -> bool {
    at.iter().any(|&i| resp.buf.get(i..i + name.len()).is_some_and(|w| w.eq_ignore_ascii_case(name)))
}

/// A referral to the child zone at `cut` (RFC 1034 §4.3.2): not authoritative, the cut's
/// NS RRset in the authority section, and the addresses of name servers inside the cut
/// (glue, which the cut occludes) in the additional section.
fn refer(index: &Index, zone: &ZoneEntry, cut: &[u8], q: &Question, resp: &mut Response<'_>) {
    let Lookup::Node(node) = index.lookup(zone, cut) else { return };
    let Some(ns) = node.rrsets.iter().find(|r| r.rtype == rtype::NS) else { return };
    // The cut's name is the end of the question's name.
    let owner = Owner::Ptr((wire::HEADER_LEN + q.name.wire().len() - cut.len()) as u16);
    for target in &ns.rdata {
        resp.record(Section::Authority, owner, rtype::NS, ns.ttl, target);
    }
    for target in &ns.rdata {
        let key: Vec<u8> = target.iter().map(u8::to_ascii_lowercase).collect();
        if !crate::name::is_within(&key, cut) {
            continue;
        }
        let Some(glue) = zone.data.nodes.get(&key[..]) else { continue };
        for set in glue.rrsets.iter().filter(|s| s.rtype == rtype::A || s.rtype == rtype::AAAA) {
            for r in &set.rdata {
                resp.record(Section::Additional, Owner::Wire(target), set.rtype, set.ttl, r);
            }
        }
    }
}

/// Where the target name starts in the RDATA of a type whose answers carry its targets'
/// addresses (RFC 1034 §4.3.2 step 6 for NS and MX, RFC 2782 for SRV).
fn target_offset(qtype: u16) -> Option<usize> {
    match qtype {
        rtype::NS => Some(0),
        rtype::MX => Some(2),
        rtype::SRV => Some(6),
        _ => None,
    }
}

/// The A and AAAA records of the targets of `node`'s `qtype` records (NS, MX, SRV) that
/// this server serves, in the additional section (as Knot and BIND do), each target once:
/// a resolver that asks for a zone's NS set gets its name servers' addresses with it.
/// They are left out, never truncating the answer, when the message has no room for them
/// (RFC 2181 §9).
fn target_addresses(index: &Index, node: &Node, qtype: u16, offset: usize, resp: &mut Response<'_>) {
    let Some(set) = node.rrsets.iter().find(|s| s.rtype == qtype) else { return };
    let mut written = 0;
    let targets = set.rdata.iter().filter_map(|r| r.get(offset..));
    for (i, target) in targets.clone().enumerate() {
        let Some(name) = NameBuf::from_wire(target) else { continue };
        let repeated = targets.clone().take(i).any(|t| t.eq_ignore_ascii_case(target));
        if repeated || name.wire() == [0] {
            continue; // "." means no service (RFC 2782)
        }
        let Some(zone) = index.zone_of(&name).and_then(|zi| index.zones.get(zi)) else { continue };
        if index.cut_of(zone, name.wire()).is_some() || index.dname_of(zone, name.wire()).is_some() {
            continue; // another server's data
        }
        let Lookup::Node(t) = index.lookup(zone, name.wire()) else { continue };
        let mut write = |rt: u16, ttl: u32, rdata: &[u8]| {
            let ok = written < MAX_ANSWERS_CEILING && resp.extra(Owner::Wire(target), rt, ttl, rdata);
            written += usize::from(ok);
            ok
        };
        if let Some(c) = index.addrs(name.wire(), t)
            && !c.each_record(|rt, r| write(rt, c.c.ttl, r))
        {
            return;
        }
        for set in t.rrsets.iter().filter(|s| s.rtype == rtype::A || s.rtype == rtype::AAAA) {
            if !set.rdata.iter().all(|r| write(set.rtype, set.ttl, r)) {
                return;
            }
        }
    }
}

/// RFC 2308: the zone SOA in the authority section, TTL = the negative TTL.
fn negative(zone: &ZoneEntry, apex_ptr: u16, resp: &mut Response<'_>) {
    resp.record(Section::Authority, Owner::Ptr(apex_ptr), rtype::SOA, zone.data.negative_ttl, &zone.soa);
}

/// Writes the RRset of `qtype` at a name; returns how many records were written.
#[allow(clippy::too_many_arguments)]
fn write_data(
    node: &Node,
    addrs: Option<Addrs<'_>>,
    zone: &ZoneEntry,
    at_apex: bool,
    qtype: u16,
    owner: Owner<'_>,
    client: &mut Asker<'_>,
    resp: &mut Response<'_>,
) -> usize {
    let soa = |resp: &mut Response<'_>| {
        usize::from(resp.record(Section::Answer, owner, rtype::SOA, zone.data.soa_ttl, &zone.soa).is_some())
    };
    if qtype == rtype::ANY {
        // RFC 8482: one RRset is a complete answer to ANY.
        if at_apex {
            return soa(resp);
        }
        if let Some(c) = addrs {
            let n = write_addrs(c, rtype::A, owner, client, resp);
            if n > 0 {
                return n;
            }
            let n = write_addrs(c, rtype::AAAA, owner, client, resp);
            if n > 0 {
                return n;
            }
        }
        return node.rrsets.first().map_or(0, |set| write_rrset(set.rtype, set.ttl, &set.rdata, owner, resp));
    }
    if at_apex && qtype == rtype::SOA {
        return soa(resp);
    }
    let mut n = 0;
    if let (Some(c), rtype::A | rtype::AAAA) = (addrs, qtype) {
        n += write_addrs(c, qtype, owner, client, resp);
    }
    for set in node.rrsets.iter().filter(|s| s.rtype == qtype) {
        n += write_rrset(set.rtype, set.ttl, &set.rdata, owner, resp);
    }
    n
}

/// Writes the A or AAAA records of the candidates in answer order: the ranking step.
///
/// Roundrobin with no answer limit (the common case) is a rotation of the flat record
/// list. Other policies order member (shard) indices in a reused per-thread buffer —
/// a stable sort of a handful of integers — then write each member's records, rotated
/// within the member, up to `max_answers` (never above [`MAX_ANSWERS_CEILING`]).
fn write_addrs(c: Addrs<'_>, qtype: u16, owner: Owner<'_>, who: &mut Asker<'_>, resp: &mut Response<'_>) -> usize {
    // Apart from the asker, whose location the ranking borrows.
    let mut trace = who.trace.take();
    let written = rank_and_write(c, qtype, owner, who, resp, trace.as_deref_mut());
    who.trace = trace;
    written
}

fn rank_and_write(
    here: Addrs<'_>,
    qtype: u16,
    owner: Owner<'_>,
    who: &mut Asker<'_>,
    resp: &mut Response<'_>,
    mut trace: Option<&mut Trace>,
) -> usize {
    let rot = next_rotation();
    let c = here.c;
    let rank = &c.rank;
    let limit = match rank.max_answers {
        0 => MAX_ANSWERS_CEILING,
        n => n.min(MAX_ANSWERS_CEILING),
    };
    let place = if rank.mode == Mode::Geo { who.place() } else { None };
    let (mode, order) = match (rank.mode, place) {
        (Mode::Geo, None) => (rank.fallback, &rank.fallback_order),
        (m, _) => (m, &rank.order),
    };
    let mut written = 0;
    // An address several members share is written once (see `Candidates::shared`).
    let mut seen: Vec<[u8; 16]> = Vec::new();
    let mut write = |r: &[u8]| {
        let mut padded = [0u8; 16];
        if c.shared {
            padded.iter_mut().zip(r).for_each(|(p, b)| *p = *b);
            if seen.contains(&padded) {
                return true;
            }
        }
        if written >= limit || resp.record(Section::Answer, owner, qtype, c.ttl, r).is_none() {
            return false;
        }
        if c.shared {
            seen.push(padded);
        }
        written += 1;
        true
    };
    if mode == Mode::Rotate && order.len() == c.members.len() && here.is_flat() {
        if let Some(t) = trace.as_deref_mut() {
            t.ranked(here, mode, order, limit);
        }
        match qtype {
            rtype::A => write_rotated(&c.a, rot, &mut write),
            _ => write_rotated(&c.aaaa, rot, &mut write),
        };
        return written;
    }
    // A handful of members is ordered on the stack; weighted draws (which drop members),
    // long lists and the members of one place use the per-thread buffer.
    const INLINE: usize = 16;
    let arrange = |idx: &mut [usize]| match (mode, place) {
        (Mode::Rotate | Mode::RotateSubset, _) if !idx.is_empty() => {
            let n = rot % idx.len();
            idx.rotate_left(n);
        }
        (Mode::Geo, Some(p)) => rank::geo_order(&rank.candidates, p, idx),
        _ => {}
    };
    if mode != Mode::Weighted && order.len() <= INLINE && here.place.is_none() {
        let mut inline = [0usize; INLINE];
        for (slot, &i) in inline.iter_mut().zip(order) {
            *slot = i;
        }
        let idx = &mut inline[..order.len()];
        arrange(idx);
        if let Some(t) = trace.as_deref_mut() {
            t.ranked(here, mode, idx, limit);
        }
        write_members(c, idx, qtype, rot, &mut write);
        return written;
    }
    ORDER.with(|buf| {
        let Ok(mut idx) = buf.try_borrow_mut() else { return };
        idx.clear();
        members_here(here, mode, order, &mut idx);
        if mode == Mode::Weighted {
            rank::weighted_order(&rank.candidates, &mut idx, next_random);
        } else {
            arrange(&mut idx);
        }
        if let Some(t) = trace {
            t.ranked(here, mode, &idx, limit);
        }
        write_members(c, &idx, qtype, rot, &mut write);
    });
    written
}

/// The members of `order` (the name's ranking under `mode`) that answer `here`, into
/// `idx`. For a place, failover's first group is the first among the place's members,
/// which the global name's order (its own first group only) may not hold.
fn members_here(here: Addrs<'_>, mode: Mode, order: &[usize], idx: &mut Vec<usize>) {
    if here.place.is_none() {
        idx.extend_from_slice(order);
        return;
    }
    if mode != Mode::RotateSubset {
        idx.extend(order.iter().copied().filter(|&i| here.has(i)));
        return;
    }
    let group = |i: usize| here.c.rank.candidates.get(i).map_or(usize::MAX, |m| m.group);
    let all = (0..here.c.members.len()).filter(|&i| here.has(i));
    let Some(first) = all.clone().map(group).min() else { return };
    idx.extend(all.filter(|&i| group(i) == first));
}

/// Writes the records of the members `idx` in that order, each member's rotated by `rot`,
/// until `write` refuses one.
fn write_members(c: &Candidates, idx: &[usize], qtype: u16, rot: usize, write: &mut impl FnMut(&[u8]) -> bool) {
    for &i in idx {
        let Some(m) = c.members.get(i) else { continue };
        let more = match qtype {
            rtype::A => write_all_rotated(c.a.get(m.a.clone()).unwrap_or_default(), rot, write),
            _ => write_all_rotated(c.aaaa.get(m.aaaa.clone()).unwrap_or_default(), rot, write),
        };
        if !more {
            break;
        }
    }
}

/// Writes every item starting at `rot % len`; false when `write` refused one.
fn write_all_rotated<T: AsRef<[u8]>>(items: &[T], rot: usize, write: &mut impl FnMut(&[u8]) -> bool) -> bool {
    let n = items.len();
    if n == 0 {
        return true;
    }
    let (tail, head) = items.split_at(rot % n);
    head.iter().chain(tail).all(|item| write(item.as_ref()))
}

fn write_rrset(rt: u16, ttl: u32, rdata: &[Box<[u8]>], owner: Owner<'_>, resp: &mut Response<'_>) -> usize {
    // RRsets that are not address sets keep a stable order when they hold one record;
    // larger ones (the SRV set of a headless service) rotate, at most the ceiling at once.
    let mut written = 0;
    write_rotated(rdata, next_rotation(), |r| {
        let ok = written < MAX_ANSWERS_CEILING && resp.record(Section::Answer, owner, rt, ttl, r).is_some();
        written += usize::from(ok);
        ok
    })
}

/// Calls `write` for each item, starting at `rot % len` and wrapping; stops when it fails.
fn write_rotated<T: AsRef<[u8]>>(items: &[T], rot: usize, mut write: impl FnMut(&[u8]) -> bool) -> usize {
    let n = items.len();
    if n == 0 {
        return 0;
    }
    let start = rot % n;
    let (tail, head) = items.split_at(start);
    let mut written = 0;
    for item in head.iter().chain(tail) {
        if !write(item.as_ref()) {
            break;
        }
        written += 1;
    }
    written
}

#[cfg(test)]
mod tests;
