//! The answer index: lower-cased query name → precomputed answer data, published as an
//! immutable [`Index`] that the query path reads without locks. The `Builder` (module
//! `builder`) is its only writer.

use std::sync::Arc;

use meridian_model::geo::Geo;

use crate::candidates::Addrs;
use crate::cookie::Secret;
use crate::name::{self, NameBuf, NameMap, NameSet};
use crate::record::{Node, Rrset};
use crate::table_names::TableNames;
use crate::wire::rtype;
use crate::xfr::acl::Policy;
use crate::zone::ZoneData;

/// A served zone as published: its static data and current SOA.
#[derive(Debug, Clone)]
pub(crate) struct ZoneEntry {
    pub(crate) data: Arc<ZoneData>,
    pub(crate) soa: Arc<[u8]>,
    pub(crate) serial: u32,
}

/// What a name lookup found.
pub(crate) enum Lookup<'a> {
    Node(&'a Node),
    /// An empty non-terminal: NODATA.
    Empty,
    Missing,
}

/// The published, immutable index.
#[derive(Debug, Clone)]
pub(crate) struct Index {
    /// Served zones, most labels first (longest match wins).
    pub(crate) zones: Vec<ZoneEntry>,
    /// The names of the table's services and ingresses.
    pub(crate) table: TableNames,
    /// Ingress hosts and custom names, rebuilt whole on every change.
    pub(crate) extras: Arc<NameMap<Arc<Node>>>,
    pub(crate) extra_ents: Arc<NameSet>,
    /// Client location for `geo` names.
    pub(crate) geo: Arc<Geo>,
    /// What the server says of itself in EDNS options.
    pub(crate) identity: Arc<Identity>,
}

/// The server's NSID (RFC 5001), cookie secret (RFC 7873) and TSIG keys with the
/// transfer policy (RFC 8945), set by the configuration.
#[derive(Debug)]
pub(crate) struct Identity {
    pub(crate) nsid: Option<Box<[u8]>>,
    pub(crate) secret: Secret,
    pub(crate) policy: Arc<Policy>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            zones: Vec::new(),
            table: TableNames::default(),
            extras: Arc::default(),
            extra_ents: Arc::default(),
            geo: Arc::new(Geo::empty()),
            identity: Arc::new(Identity { nsid: None, secret: Secret::random(), policy: Arc::default() }),
        }
    }
}

impl Index {
    /// The zone a name falls in, by longest apex match.
    pub(crate) fn zone_of(&self, name: &NameBuf) -> Option<usize> {
        zone_position(&self.zones, name)
    }

    pub(crate) fn lookup<'a>(&'a self, zone: &'a ZoneEntry, key: &[u8]) -> Lookup<'a> {
        if let Some(n) = self.node(zone, key) {
            return Lookup::Node(n);
        }
        if self.is_ent(zone, key) {
            return Lookup::Empty;
        }
        self.wildcard(zone, key).map_or(Lookup::Missing, Lookup::Node)
    }

    /// The address candidates `node`, found at `key`, answers with: its own, or for a
    /// level name its global name's in the place that `key` names.
    pub(crate) fn addrs<'a>(&'a self, key: &'a [u8], node: &'a Node) -> Option<Addrs<'a>> {
        if let Some(c) = &node.addrs {
            return Some(Addrs { c, place: None });
        }
        let level = node.level.as_ref()?;
        let c = self.table.names.get(&level.global[..])?.addrs.as_deref()?;
        Some(Addrs { c, place: Some(level.place(key)?) })
    }

    /// The data at exactly `key`.
    fn node<'a>(&'a self, zone: &'a ZoneEntry, key: &[u8]) -> Option<&'a Node> {
        zone.data
            .nodes
            .get(key)
            .or_else(|| self.extras.get(key).map(|n| &**n))
            .or_else(|| self.table.names.get(key).map(|n| &**n))
    }

    fn is_ent(&self, zone: &ZoneEntry, key: &[u8]) -> bool {
        zone.data.ents.contains(key) || self.extra_ents.contains(key) || self.table.ents.contains_key(key)
    }

    /// RFC 4592 §3.3.1: a name that does not exist is answered by the wildcard `*` at its
    /// closest encloser (the nearest ancestor that exists), if that has one.
    fn wildcard<'a>(&'a self, zone: &'a ZoneEntry, key: &[u8]) -> Option<&'a Node> {
        let mut at = name::parent(key)?;
        loop {
            if self.node(zone, at).is_some() || self.is_ent(zone, at) || at == &zone.data.apex[..] {
                let mut star = Vec::with_capacity(at.len() + 2);
                star.extend_from_slice(&[1, b'*']);
                star.extend_from_slice(at);
                return self.node(zone, &star);
            }
            at = name::parent(at)?;
        }
    }

    /// The zone cut (delegation point) at or above `key`, nearest the apex: queries there
    /// get a referral instead of an answer.
    pub(crate) fn cut_of<'a>(&self, zone: &'a ZoneEntry, key: &[u8]) -> Option<&'a [u8]> {
        if zone.data.cuts.is_empty() {
            return None;
        }
        let mut found = None;
        let mut at = Some(key);
        while let Some(k) = at.filter(|k| k.len() > zone.data.apex.len()) {
            if let Some(cut) = zone.data.cuts.get(k) {
                found = Some(&cut[..]);
            }
            at = name::parent(k);
        }
        found
    }

    /// The DNAME (RFC 6672) that redirects `key`: at a proper ancestor of it, the one
    /// nearest the apex (a DNAME occludes everything below it, DNAMEs included). Its owner
    /// and RRset.
    pub(crate) fn dname_of<'a>(&self, zone: &'a ZoneEntry, key: &[u8]) -> Option<(&'a [u8], &'a Rrset)> {
        if zone.data.dnames.is_empty() {
            return None;
        }
        let mut found = None;
        let mut at = name::parent(key);
        while let Some(k) = at.filter(|k| k.len() >= zone.data.apex.len()) {
            if zone.data.dnames.contains(k)
                && let Some((owner, node)) = zone.data.nodes.get_key_value(k)
                && let Some(set) = node.rrsets.iter().find(|r| r.rtype == rtype::DNAME)
            {
                found = Some((&owner[..], set));
            }
            at = name::parent(k);
        }
        found
    }

    /// Every name with data, with where it comes from.
    pub(crate) fn all_names(&self) -> Vec<(&[u8], &Node, &str)> {
        let mut out = Vec::new();
        for z in &self.zones {
            for (k, n) in &z.data.nodes {
                out.push((&k[..], n, &*z.data.name));
            }
        }
        let extras = self.extras.iter().map(|(k, n)| (&k[..], n));
        for (k, n) in extras.chain(self.table.names.iter().map(|(k, n)| (&k[..], n))) {
            let zone = NameBuf::from_wire(k)
                .and_then(|nb| self.zone_of(&nb))
                .and_then(|i| self.zones.get(i))
                .map_or("", |z| &*z.data.name);
            out.push((k, &**n, zone));
        }
        out
    }
}

/// The position in `zones` (most labels first) of the zone `name` falls in.
pub(crate) fn zone_position(zones: &[ZoneEntry], name: &NameBuf) -> Option<usize> {
    zones
        .iter()
        .position(|z| z.data.labels <= name.labels() && name.suffix(name.labels() - z.data.labels) == &z.data.apex[..])
}
