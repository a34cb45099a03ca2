//! The query handler: one packet in, one response (or nothing) out, from the published
//! [`Index`]. No locks, no I/O; allocation only when the output buffer must grow.

use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::Arc;

use crate::index::{Candidates, Index, Lookup, Node, ZoneEntry};
use crate::name::NameBuf;
use crate::wire::{self, CLASS_ANY, CLASS_IN, MAX_MESSAGE, Owner, Parsed, Question, Response, Section, rcode, rtype};

/// Longest CNAME chain followed inside a zone (zone → region → global is 2; a zone file may
/// add a few). Longer chains and loops stop here with what was written.
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
    #[allow(dead_code)] // read by the ranking policies of the next issue
    pub(crate) addr: Option<SocketAddr>,
}

/// What happened, for metrics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outcome {
    /// False when the packet is dropped without an answer.
    pub(crate) respond: bool,
    pub(crate) zone: Option<Arc<str>>,
    pub(crate) qtype: u16,
    pub(crate) rcode: u16,
}

thread_local! {
    /// Rotation of equal-rank records. Per thread, so busy cores never share a cache line;
    /// consecutive answers from one thread still start at a different record.
    static ROTATION: Cell<usize> = const { Cell::new(0) };
}

fn next_rotation() -> usize {
    ROTATION.with(|r| {
        let v = r.get().wrapping_add(1);
        r.set(v);
        v
    })
}

/// Answers `packet` into `out`.
pub(crate) fn answer(index: &Index, packet: &[u8], client: &Client, out: &mut Vec<u8>) -> Outcome {
    let q = match wire::parse(packet) {
        Parsed::Drop => return Outcome::default(),
        Parsed::Query(q) => q,
    };
    let limit = match client.transport {
        Transport::Udp => wire::udp_limit(q.edns.as_ref()),
        Transport::Tcp => MAX_MESSAGE,
    };
    let mut outcome =
        Outcome { respond: true, qtype: q.question.as_ref().map_or(0, |x| x.qtype), ..Default::default() };
    let mut resp = Response::start(out, &q, packet);
    let rc = match (&q.error, &q.question, &q.edns) {
        (Some(rc), _, _) => *rc,
        (None, _, Some(e)) if e.version > 0 => rcode::BADVERS,
        (None, None, _) => rcode::FORMERR,
        (None, Some(question), _) => resolve_query(index, question, client, &mut resp, &mut outcome),
    };
    outcome.rcode = rc;
    resp.finish(q.edns.as_ref(), rc, limit);
    outcome
}

fn resolve_query(index: &Index, q: &Question, client: &Client, resp: &mut Response<'_>, outcome: &mut Outcome) -> u16 {
    if q.qclass != CLASS_IN && q.qclass != CLASS_ANY {
        return rcode::REFUSED;
    }
    match q.qtype {
        // Zone transfers are not offered: secondaries are other Meridian instances.
        rtype::AXFR | rtype::IXFR => return rcode::REFUSED,
        // TKEY, TSIG, MAILB, MAILA: meta-types this server does not implement.
        249 | 250 | 253 | 254 => return rcode::NOTIMP,
        _ => {}
    }
    let Some(zi) = index.zone_of(&q.name) else { return rcode::REFUSED };
    let Some(zone) = index.zones.get(zi) else { return rcode::SERVFAIL };
    outcome.zone = Some(zone.data.name.clone());
    resp.set_authoritative();
    // The apex inside the echoed question, for the SOA owner of negative answers.
    let apex_ptr = (wire::HEADER_LEN + q.name.wire().len() - zone.data.apex.len()) as u16;
    let mut key: &[u8] = q.name.wire();
    let mut owner = Owner::Ptr(wire::HEADER_LEN as u16);
    let mut hops = 0;
    loop {
        match index.lookup(zone, key) {
            Lookup::Missing => {
                negative(zone, apex_ptr, resp);
                return rcode::NXDOMAIN;
            }
            Lookup::Empty => {
                negative(zone, apex_ptr, resp);
                return rcode::NOERROR;
            }
            Lookup::Node(node) => {
                if let Some(c) = &node.cname {
                    let at = resp.record(Section::Answer, owner, rtype::CNAME, c.ttl, &c.target);
                    if q.qtype == rtype::CNAME || q.qtype == rtype::ANY {
                        return rcode::NOERROR;
                    }
                    hops += 1;
                    // The chase stays inside the zone: elsewhere the client follows it.
                    let same_zone = NameBuf::from_wire(&c.key).and_then(|n| index.zone_of(&n)) == Some(zi);
                    if hops >= MAX_CHAIN || !same_zone {
                        return rcode::NOERROR;
                    }
                    owner = match at {
                        Some(at) if at <= 0x3FFF => Owner::Ptr(at as u16),
                        _ => Owner::Wire(&c.target),
                    };
                    key = &c.key;
                    continue;
                }
                let at_apex = key == &zone.data.apex[..];
                if write_data(node, zone, at_apex, q.qtype, owner, client, resp) == 0 {
                    negative(zone, apex_ptr, resp);
                }
                return rcode::NOERROR;
            }
        }
    }
}

/// RFC 2308: the zone SOA in the authority section, TTL = the negative TTL.
fn negative(zone: &ZoneEntry, apex_ptr: u16, resp: &mut Response<'_>) {
    resp.record(Section::Authority, Owner::Ptr(apex_ptr), rtype::SOA, zone.data.negative_ttl, &zone.soa);
}

/// Writes the RRset of `qtype` at a name; returns how many records were written.
fn write_data(
    node: &Node,
    zone: &ZoneEntry,
    at_apex: bool,
    qtype: u16,
    owner: Owner<'_>,
    client: &Client,
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
        if let Some(c) = &node.addrs {
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
    if let (Some(c), rtype::A | rtype::AAAA) = (&node.addrs, qtype) {
        n += write_addrs(c, qtype, owner, client, resp);
    }
    for set in node.rrsets.iter().filter(|s| s.rtype == qtype) {
        n += write_rrset(set.rtype, set.ttl, &set.rdata, owner, resp);
    }
    n
}

/// Writes the A or AAAA records of the candidates in answer order.
///
/// This is the ranking step: today every shard has the same rank and the records are
/// rotated between answers; geo/weighted/failover policies order `c.members` here first.
fn write_addrs(c: &Candidates, qtype: u16, owner: Owner<'_>, _client: &Client, resp: &mut Response<'_>) -> usize {
    let rot = next_rotation();
    match qtype {
        rtype::A => write_rotated(&c.a, rot, |r| resp.record(Section::Answer, owner, rtype::A, c.ttl, r).is_some()),
        _ => write_rotated(&c.aaaa, rot, |r| resp.record(Section::Answer, owner, rtype::AAAA, c.ttl, r).is_some()),
    }
}

fn write_rrset(rt: u16, ttl: u32, rdata: &[Box<[u8]>], owner: Owner<'_>, resp: &mut Response<'_>) -> usize {
    // RRsets that are not address sets keep a stable order when they hold one record.
    write_rotated(rdata, next_rotation(), |r| resp.record(Section::Answer, owner, rt, ttl, r).is_some())
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
