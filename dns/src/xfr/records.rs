//! A served zone's records for a transfer, read from the published index the way
//! `dump` walks it: the zone file's records, the NS set with its glue, and every
//! generated name with its health-filtered candidates — all of them, unranked (ranking
//! is per query and stays on Meridian's own answers).

use std::sync::Arc;

use crate::index::{Index, ZoneEntry};
use crate::name::{Key, NameBuf};
use crate::record::Node;
use crate::wire::rtype;

/// One resource record (class IN), owner and RDATA in uncompressed wire format.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Rr {
    pub(crate) owner: Key,
    pub(crate) rtype: u16,
    pub(crate) rdata: Box<[u8]>,
    pub(crate) ttl: u32,
}

/// A zone's content at one serial: its SOA and every other record, sorted and unique.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) serial: u32,
    pub(crate) soa: Rr,
    pub(crate) records: Arc<Vec<Rr>>,
}

/// The SOA of `zone` as published.
pub(crate) fn soa(zone: &ZoneEntry) -> Rr {
    Rr { owner: zone.data.apex.clone(), rtype: rtype::SOA, rdata: zone.soa.to_vec().into(), ttl: zone.data.soa_ttl }
}

/// Every record of the zone at position `zi` of `index` but its SOA, sorted.
pub(crate) fn zone_records(index: &Index, zi: usize) -> Vec<Rr> {
    let Some(zone) = index.zones.get(zi) else { return Vec::new() };
    let mut out = Vec::new();
    for (k, n) in &zone.data.nodes {
        push_node(&mut out, index, zone, k, n);
    }
    let dynamic = index.extras.iter().map(|(k, n)| (&k[..], &**n));
    for (k, n) in dynamic.chain(index.table.names.iter().map(|(k, n)| (&k[..], &**n))) {
        // A zone file's own record at the name wins, as in the answers.
        if zone.data.nodes.contains_key(k) {
            continue;
        }
        if NameBuf::from_wire(k).and_then(|nb| index.zone_of(&nb)) == Some(zi) {
            push_node(&mut out, index, zone, k, n);
        }
    }
    out.sort();
    out.dedup_by(|a, b| a.owner == b.owner && a.rtype == b.rtype && a.rdata == b.rdata);
    // RFC 2181 §5.2: one TTL per RRset; the first record's stands for the set.
    let mut i = 1;
    while i < out.len() {
        let (prev, cur) = out.split_at_mut(i);
        if let (Some(p), Some(c)) = (prev.last(), cur.first_mut())
            && p.owner == c.owner
            && p.rtype == c.rtype
        {
            c.ttl = p.ttl;
        }
        i += 1;
    }
    out
}

fn push_node(out: &mut Vec<Rr>, index: &Index, zone: &ZoneEntry, key: &[u8], node: &Node) {
    let rr = |rtype: u16, ttl: u32, rdata: &[u8]| Rr { owner: key.into(), rtype, rdata: rdata.into(), ttl };
    if let Some(c) = &node.cname {
        out.push(rr(rtype::CNAME, c.ttl, &c.target));
        return;
    }
    if let Some(c) = index.addrs(key, node) {
        c.each_record(|rt, r| {
            out.push(rr(rt, c.c.ttl, r));
            true
        });
    }
    for set in &node.rrsets {
        if set.rtype == rtype::SOA && key == &zone.data.apex[..] {
            continue;
        }
        out.extend(set.rdata.iter().map(|r| rr(set.rtype, set.ttl, r)));
    }
}

/// The records of `old` missing from `new` (deleted) and those of `new` missing from
/// `old` (added); both inputs sorted.
pub(crate) fn diff(old: &[Rr], new: &[Rr]) -> (Vec<Rr>, Vec<Rr>) {
    let (mut deleted, mut added) = (Vec::new(), Vec::new());
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a == b => {
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a < b => {
                deleted.push(a.clone());
                i += 1;
            }
            (Some(_), Some(b)) | (None, Some(b)) => {
                added.push(b.clone());
                j += 1;
            }
            (Some(a), None) => {
                deleted.push(a.clone());
                i += 1;
            }
            (None, None) => break,
        }
    }
    (deleted, added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rr(owner: &str, rdata: u8, ttl: u32) -> Rr {
        Rr { owner: crate::name::key(owner).expect("name"), rtype: rtype::A, rdata: Box::new([10, 0, 0, rdata]), ttl }
    }

    /// The difference of two sorted sets lists exactly what went and what came; a TTL
    /// change is a deletion and an addition.
    #[test]
    fn diff_lists_deletions_and_additions() {
        let old = vec![rr("a.x", 1, 30), rr("a.x", 2, 30), rr("b.x", 1, 30)];
        let new = vec![rr("a.x", 2, 30), rr("b.x", 1, 60), rr("c.x", 9, 30)];
        let (d, a) = diff(&old, &new);
        assert_eq!(d, vec![rr("a.x", 1, 30), rr("b.x", 1, 30)]);
        assert_eq!(a, vec![rr("b.x", 1, 60), rr("c.x", 9, 30)]);
        assert_eq!(diff(&new, &new), (vec![], vec![]));
    }
}
