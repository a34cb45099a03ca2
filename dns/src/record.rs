//! What the index holds for one name: its alias, its address candidates, its other
//! RRsets (RDATA already encoded), and where it came from.

use std::sync::Arc;

use meridian_model::table::ObjectKey;

use crate::candidates::Candidates;
use crate::name::Key;

/// Everything known about one name.
#[derive(Debug, Default, Clone)]
pub(crate) struct Node {
    /// An alias: the name has no other data (RFC 1034 §3.6.2).
    pub(crate) cname: Option<Cname>,
    /// A/AAAA of candidate shards, ordered per query.
    pub(crate) addrs: Option<Arc<Candidates>>,
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
