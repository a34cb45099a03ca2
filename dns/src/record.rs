//! What the index holds for one name: its alias, its address candidates, its other
//! RRsets (RDATA already encoded), and where it came from.

use std::sync::Arc;

use meridian_model::table::ObjectKey;

use crate::candidates::{Candidates, Place};
use crate::name::Key;

/// A name and its data, as the scheme computes them; nodes are shared where several
/// names answer alike (the region or zone names of one object, see [`Level`]).
pub(crate) type Named = (Key, Arc<Node>);

/// Everything known about one name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node {
    /// An alias: the name has no other data (RFC 1034 §3.6.2).
    pub(crate) cname: Option<Cname>,
    /// A/AAAA of candidate shards, ordered per query.
    pub(crate) addrs: Option<Arc<Candidates>>,
    /// A region or zone name that answers with the members of its global name in that
    /// region or zone.
    pub(crate) level: Option<Level>,
    /// Other records (zone file, SRV, TXT), RDATA already encoded.
    pub(crate) rrsets: Vec<Rrset>,
    pub(crate) source: Source,
}

impl Node {
    /// True when `self` answers exactly as `other` and can be left in place. Address
    /// nodes are never compared (their ranking is rebuilt each time); CNAME and rrset
    /// nodes — most names of a service spread over many regions — are.
    pub(crate) fn same_static(&self, other: &Node) -> bool {
        self.addrs.is_none()
            && other.addrs.is_none()
            && self.cname == other.cname
            && self.level == other.level
            && self.rrsets == other.rrsets
            && self.source == other.source
    }
}

/// Where a name comes from, for `meridian status`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    #[default]
    ZoneFile,
    Service(ObjectKey),
    Ingress(ObjectKey),
    ClusterSet(ObjectKey),
    IngressHost(ObjectKey),
    Custom(ObjectKey),
    /// The federation name of a Gateway API HTTPRoute (`….route.<zone>`).
    Route(ObjectKey),
    /// An HTTPRoute's hostname inside a served zone.
    RouteHost(ObjectKey),
}

impl Source {
    /// The kind of name, as `meridian status` and `meridian explain` show it, and the
    /// object it comes from.
    pub(crate) fn describe(&self) -> (&'static str, Option<&ObjectKey>) {
        match self {
            Source::ZoneFile => ("zone-file", None),
            Source::Service(k) => ("service", Some(k)),
            Source::Ingress(k) => ("ingress", Some(k)),
            Source::ClusterSet(k) => ("clusterset", Some(k)),
            Source::IngressHost(k) => ("ingress-host", Some(k)),
            Source::Custom(k) => ("custom", Some(k)),
            Source::Route(k) => ("httproute", Some(k)),
            Source::RouteHost(k) => ("httproute-host", Some(k)),
        }
    }
}

/// What a region or zone name of a federated object answers with: the members of the
/// object's global name (`global`, in the same zone) in the region, or zone, that the
/// labels before the zone apex name (`<zone>.<region>.<apex>` or `<region>.<apex>`).
///
/// The names of one object share one such node, so a region or zone name costs the
/// index its key and nothing more; the members are chosen per query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Level {
    pub(crate) global: Arc<[u8]>,
    /// Octets of the zone apex at the end of the names (and of `global`).
    pub(crate) apex_len: usize,
    /// Two labels (zone, region) before the apex, not one (region).
    pub(crate) zone: bool,
}

impl Level {
    /// The place the level name `key` names: its labels between the object's part (that
    /// of `global`) and the zone apex.
    pub(crate) fn place<'k>(&self, key: &'k [u8]) -> Option<Place<'k>> {
        let base = self.global.len().checked_sub(self.apex_len)?;
        let labels = key.get(base..key.len().checked_sub(self.apex_len)?)?;
        Some(Place { labels, zone: self.zone })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cname {
    pub(crate) ttl: u32,
    /// Target as RDATA (case as written).
    pub(crate) target: Box<[u8]>,
    /// Target lower-cased, for the chase.
    pub(crate) key: Key,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rrset {
    pub(crate) rtype: u16,
    pub(crate) ttl: u32,
    pub(crate) rdata: Vec<Box<[u8]>>,
}
