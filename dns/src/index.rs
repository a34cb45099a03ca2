//! The answer index: lower-cased query name → precomputed answer data, published as an
//! immutable [`Index`] that the query path reads without locks.
//!
//! One [`Builder`] (behind the server's mutex) owns the bookkeeping and rebuilds only the
//! names of the services and ingresses a table [`Change`] lists; the maps are persistent
//! (`imbl`), so publishing after a small change costs O(log n), not a copy.

use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use meridian_config::Config;
use meridian_config::dns::WhenNoneHealthy;
use meridian_config::ranking::{PolicyName, RankingConfig};
use meridian_model::geo::Geo;
use meridian_model::rank;
use meridian_model::table::{Change, ClusterMeta, FederatedService, ObjectKey, Snapshot};

use crate::error::{Error, Result};
use crate::name::{self, Key, NameBuf, NameHash, NameMap, NameSet};
use crate::scheme;
use crate::zone::{self, ZoneData, ZoneDefaults, ZoneSpec};

/// Key of the persistent name maps. Shared, not boxed: every publish makes the next
/// insert copy its path through the HAMT, and copying a node clones each entry's key —
/// with `Box<[u8]>` that was an allocation and a copy per entry (a third of the index's
/// time under churn, in malloc and in dropping the previous index).
type MapKey = Arc<[u8]>;
/// The discovered names: persistent, so a publish after a small change shares the rest.
type SharedNames<V> = imbl::GenericHashMap<MapKey, V, NameHash, imbl::shared_ptr::DefaultSharedPtr>;

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
    fn same_static(&self, other: &Node) -> bool {
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

/// The A and AAAA records a name may answer with, grouped by the shard they come from so
/// the per-query ranking step can order shards before records are written. Flattened
/// lists make the common case (all equal rank) a rotation.
#[derive(Debug, Default)]
pub(crate) struct Candidates {
    pub(crate) ttl: u32,
    pub(crate) members: Vec<Member>,
    pub(crate) a: Vec<[u8; 4]>,
    pub(crate) aaaa: Vec<[u8; 16]>,
    pub(crate) rank: Rank,
}

/// One shard's share of [`Candidates`].
#[derive(Debug)]
pub(crate) struct Member {
    pub(crate) a: Range<usize>,
    pub(crate) aaaa: Range<usize>,
}

/// How a name orders its members per query, precomputed from the service's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// Every record, rotated between answers (roundrobin).
    #[default]
    Rotate,
    /// The members of `order`, equal among themselves: rotated (failover's first group).
    RotateSubset,
    /// The members of `order` in that order (latency).
    Fixed,
    /// A random order in proportion to weights, per query.
    Weighted,
    /// Nearest to the client first, per query; `fallback` when it cannot be located.
    Geo,
}

/// The ranking of one name.
#[derive(Debug, Default)]
pub(crate) struct Rank {
    pub(crate) mode: Mode,
    /// Member indices an answer may use (fixed order for `Fixed`).
    pub(crate) order: Vec<usize>,
    /// For `Geo` when the client has no location.
    pub(crate) fallback: Mode,
    pub(crate) fallback_order: Vec<usize>,
    /// Most address records per answer (0 = all).
    pub(crate) max_answers: usize,
    /// Per member: location, weight, region.
    pub(crate) candidates: Vec<rank::Candidate>,
}

impl Rank {
    fn from_ranking(r: rank::Ranking) -> Self {
        let (mode, order) = mode_of(&r, r.policy);
        let (fallback, fallback_order) = mode_of(&r, r.fallback);
        Rank { mode, order, fallback, fallback_order, max_answers: r.max_answers, candidates: r.candidates }
    }
}

fn mode_of(r: &rank::Ranking, policy: PolicyName) -> (Mode, Vec<usize>) {
    let all: Vec<usize> = (0..r.candidates.len()).collect();
    match policy {
        PolicyName::RoundRobin => (Mode::Rotate, all),
        PolicyName::Weighted => (Mode::Weighted, all),
        PolicyName::Geo => (Mode::Geo, all),
        PolicyName::Failover => {
            let alt = rank::Ranking { policy, ..r.clone() };
            (Mode::RotateSubset, alt.static_order())
        }
        PolicyName::Latency => {
            let alt = rank::Ranking { policy, ..r.clone() };
            (Mode::Fixed, alt.static_order())
        }
    }
}

/// One shard's input to [`Candidates::new`].
#[derive(Clone, Copy)]
pub(crate) struct MemberInput<'a> {
    pub(crate) cluster: &'a Arc<ClusterMeta>,
    pub(crate) addrs: &'a [std::net::IpAddr],
    pub(crate) annotations: &'a std::collections::BTreeMap<String, String>,
    pub(crate) rtt: Option<std::time::Duration>,
}

impl Candidates {
    /// Candidates of `members`, ranked by `key`'s policy; malformed annotations are
    /// appended to `problems`.
    pub(crate) fn new(
        ttl: u32,
        members: &[MemberInput<'_>],
        key: &ObjectKey,
        ranking: &RankingConfig,
        problems: &mut Vec<rank::Problem>,
    ) -> Self {
        let mut c = Candidates { ttl, ..Default::default() };
        for m in members {
            let (a0, q0) = (c.a.len(), c.aaaa.len());
            for ip in m.addrs {
                match ip {
                    std::net::IpAddr::V4(v4) if !c.a.contains(&v4.octets()) => c.a.push(v4.octets()),
                    std::net::IpAddr::V6(v6) if !c.aaaa.contains(&v6.octets()) => c.aaaa.push(v6.octets()),
                    _ => {}
                }
            }
            c.members.push(Member { a: a0..c.a.len(), aaaa: q0..c.aaaa.len() });
        }
        let inputs: Vec<rank::ShardInput<'_>> = members
            .iter()
            .map(|m| rank::ShardInput { cluster: m.cluster, annotations: m.annotations, rtt: m.rtt })
            .collect();
        c.rank = Rank::from_ranking(rank::Ranking::build(key, &inputs, ranking, problems));
        c
    }
}

/// The configuration the index is built from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) federation: String,
    pub(crate) dns_zone: String,
    pub(crate) ttl: u32,
    pub(crate) negative_ttl: u32,
    pub(crate) fail_open: bool,
    /// MCS domain when enabled.
    pub(crate) clusterset: Option<String>,
    pub(crate) export_all: bool,
    /// Custom names → service.
    pub(crate) names: Vec<(Key, ObjectKey)>,
    pub(crate) zones: Vec<ZoneSpec>,
    pub(crate) ranking: RankingConfig,
}

impl Settings {
    pub(crate) fn from_config(config: &Config) -> Self {
        let dns = &config.dns;
        let trim = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
        let mut zones: Vec<ZoneSpec> = Vec::new();
        let file_for = |apex: &str| {
            dns.zones.iter().find(|z| trim(&z.name) == apex).and_then(|z| z.file.as_ref()).map(|f| config.resolve(f))
        };
        let mut add = |apex: String| {
            if !zones.iter().any(|z| z.apex == apex) {
                let file = file_for(&apex);
                let nameservers = dns.nameservers_of(&apex);
                zones.push(ZoneSpec { apex, file, nameservers });
            }
        };
        add(trim(&config.dns_zone));
        for z in &dns.zones {
            add(trim(&z.name));
        }
        let clusterset = dns.clusterset.enabled.then(|| trim(&dns.clusterset.domain));
        if let Some(cs) = &clusterset {
            add(cs.clone());
        }
        let names = dns
            .names
            .iter()
            .filter_map(|n| {
                let (ns, svc) = n.service.split_once('/')?;
                Some((name::key(&n.name)?, ObjectKey::new(ns, svc)))
            })
            .collect();
        Settings {
            federation: config.name.to_ascii_lowercase(),
            dns_zone: trim(&config.dns_zone),
            ttl: dns.ttl,
            negative_ttl: dns.negative_ttl,
            fail_open: dns.when_none_healthy == WhenNoneHealthy::AllKnown,
            clusterset,
            export_all: dns.clusterset.export == meridian_config::dns::ExportMode::All,
            names,
            zones,
            ranking: config.ranking.clone(),
        }
    }
}

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
    names: SharedNames<Arc<Node>>,
    ents: SharedNames<u32>,
    extras: Arc<NameMap<Arc<Node>>>,
    extra_ents: Arc<NameSet>,
    /// Client location for `geo` names.
    pub(crate) geo: Arc<Geo>,
}

impl Default for Index {
    fn default() -> Self {
        Index {
            zones: Vec::new(),
            names: SharedNames::default(),
            ents: SharedNames::default(),
            extras: Arc::default(),
            extra_ents: Arc::default(),
            geo: Arc::new(Geo::empty()),
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

    /// The data at exactly `key`.
    fn node<'a>(&'a self, zone: &'a ZoneEntry, key: &[u8]) -> Option<&'a Node> {
        zone.data
            .nodes
            .get(key)
            .or_else(|| self.extras.get(key).map(|n| &**n))
            .or_else(|| self.names.get(key).map(|n| &**n))
    }

    fn is_ent(&self, zone: &ZoneEntry, key: &[u8]) -> bool {
        zone.data.ents.contains(key) || self.extra_ents.contains(key) || self.ents.contains_key(key)
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
                && let Some(set) = node.rrsets.iter().find(|r| r.rtype == crate::wire::rtype::DNAME)
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
        for (k, n) in extras.chain(self.names.iter().map(|(k, n)| (&k[..], n))) {
            let zone = NameBuf::from_wire(k)
                .and_then(|nb| self.zone_of(&nb))
                .and_then(|i| self.zones.get(i))
                .map_or("", |z| &*z.data.name);
            out.push((k, &**n, zone));
        }
        out
    }
}

fn zone_position(zones: &[ZoneEntry], name: &NameBuf) -> Option<usize> {
    zones
        .iter()
        .position(|z| z.data.labels <= name.labels() && name.suffix(name.labels() - z.data.labels) == &z.data.apex[..])
}

/// Per-zone serial bookkeeping across reloads.
#[derive(Debug, Clone, Copy)]
struct SerialState {
    serial: u32,
    content_hash: u64,
}

/// The single writer of the index.
pub(crate) struct Builder {
    pub(crate) settings: Arc<Settings>,
    zones: Vec<ZoneEntry>,
    serials: HashMap<String, SerialState>,
    apexes: HashSet<Key>,
    names: SharedNames<Arc<Node>>,
    ents: SharedNames<u32>,
    /// Names each service / ingress published, to withdraw them when it changes.
    by_service: HashMap<ObjectKey, Vec<MapKey>>,
    by_ingress: HashMap<ObjectKey, Vec<MapKey>>,
    /// Each service as its names were last computed, to tell which shards changed.
    seen: HashMap<ObjectKey, Arc<FederatedService>>,
    extras: Arc<NameMap<Arc<Node>>>,
    extra_ents: Arc<NameSet>,
    geo: Arc<Geo>,
    /// What `geo` was built from, to reopen the database only when that changes.
    geo_inputs: GeoInputs,
    /// Malformed ranking annotations, by object (`service` or `ingress`).
    problems: HashMap<(&'static str, ObjectKey), Vec<rank::Problem>>,
}

/// The configuration a [`Geo`] depends on.
#[derive(Debug, Clone, PartialEq)]
struct GeoInputs {
    path: Option<std::path::PathBuf>,
    networks: Vec<meridian_config::ranking::NetworkLocation>,
    candidates: Vec<std::path::PathBuf>,
}

impl GeoInputs {
    fn of(config: &Config) -> Self {
        GeoInputs {
            path: config.ranking.geoip_path(config),
            networks: config.ranking.networks.clone(),
            candidates: config.ranking.geoip_candidates(config),
        }
    }
}

/// Opens the client-location data and says in the log what geo answers will do.
fn load_geo(config: &Config) -> Arc<Geo> {
    let geo = Geo::from_config(config);
    match geo.status() {
        meridian_model::geo::DbStatus::Loaded { .. } => tracing::info!("dns: {}", geo.status()),
        meridian_model::geo::DbStatus::NotConfigured => {
            tracing::debug!("dns: no GeoIP database configured; geo answers use ranking.networks only")
        }
        status => tracing::warn!(
            "dns: {status}; geo answers locate clients by ranking.networks only and otherwise fall back to {}",
            config.ranking.default_policy
        ),
    }
    Arc::new(geo)
}

impl Builder {
    /// A builder for `config`; fails when a zone (file) cannot be loaded.
    pub(crate) fn new(config: &Config) -> Result<Self> {
        let mut b = Builder {
            settings: Arc::new(Settings::from_config(config)),
            zones: Vec::new(),
            serials: HashMap::new(),
            apexes: HashSet::new(),
            names: SharedNames::default(),
            ents: SharedNames::default(),
            by_service: HashMap::new(),
            by_ingress: HashMap::new(),
            seen: HashMap::new(),
            extras: Arc::default(),
            extra_ents: Arc::default(),
            geo: load_geo(config),
            geo_inputs: GeoInputs::of(config),
            problems: HashMap::new(),
        };
        let errors = b.load_zones();
        if errors.is_empty() { Ok(b) } else { Err(many(errors)) }
    }

    /// Applies a new configuration. Zones whose file fails keep their previous content
    /// (or, when new, serve only the synthesised SOA and NS); the errors are returned.
    pub(crate) fn set_config(&mut self, config: &Config, snap: &Snapshot) -> Result<()> {
        self.settings = Arc::new(Settings::from_config(config));
        let inputs = GeoInputs::of(config);
        if inputs != self.geo_inputs {
            self.geo = load_geo(config);
            self.geo_inputs = inputs;
        }
        let errors = self.load_zones();
        // Zones (and so the apexes that bound empty non-terminals) may have changed: start
        // from nothing rather than adjust names counted against the old apexes.
        self.clear();
        self.rebuild(snap);
        if errors.is_empty() { Ok(()) } else { Err(many(errors)) }
    }

    fn load_zones(&mut self) -> Vec<Error> {
        let s = self.settings.clone();
        let mut errors = Vec::new();
        let mut zones = Vec::new();
        for spec in &s.zones {
            let data = match build_zone(&s, spec) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(e);
                    let previous = self.zones.iter().find(|z| &*z.data.name == spec.apex.as_str());
                    if let Some(prev) = previous {
                        zones.push(prev.clone());
                        continue;
                    }
                    let bare = ZoneSpec { file: None, ..spec.clone() };
                    match build_zone(&s, &bare) {
                        Ok(d) => d,
                        Err(e) => {
                            errors.push(e);
                            continue;
                        }
                    }
                }
            };
            let serial = match self.serials.get(&spec.apex) {
                None => data.file_serial.unwrap_or(0).max(unix_now()),
                Some(st) if st.content_hash == data.content_hash => st.serial,
                Some(st) => data.file_serial.unwrap_or(0).max(st.serial.wrapping_add(1)),
            };
            self.serials.insert(spec.apex.clone(), SerialState { serial, content_hash: data.content_hash });
            let soa = zone::with_serial(&data.soa, serial).into();
            zones.push(ZoneEntry { data: Arc::new(data), soa, serial });
        }
        zones.sort_by_key(|z| std::cmp::Reverse(z.data.labels));
        self.apexes = zones.iter().map(|z| z.data.apex.clone()).collect();
        self.zones = zones;
        errors
    }

    fn clear(&mut self) {
        self.names = SharedNames::default();
        self.ents = SharedNames::default();
        self.by_service.clear();
        self.by_ingress.clear();
        self.seen.clear();
        self.problems.clear();
    }

    /// Rebuilds every dynamic name from `snap`: every object in it and every object
    /// that published names or problems before. Names that come out the same stay in
    /// place, so a rebuild (a cluster's region appearing, a lagging subscriber) costs
    /// the computation of every name but not a new index: building all 200,000 names
    /// of the scale bench from scratch, and dropping the old ones, took long enough for
    /// the change feed to lag again, and the next rebuild started at once.
    pub(crate) fn rebuild(&mut self, snap: &Snapshot) {
        let mut services: Vec<ObjectKey> = snap.services.keys().cloned().collect();
        let mut ingresses: Vec<ObjectKey> = snap.ingresses.keys().cloned().collect();
        services.extend(self.by_service.keys().filter(|k| !snap.services.contains_key(*k)).cloned());
        ingresses.extend(self.by_ingress.keys().filter(|k| !snap.ingresses.contains_key(*k)).cloned());
        for (kind, key) in self.problems.keys() {
            match *kind {
                "service" if !snap.services.contains_key(key) => services.push(key.clone()),
                "ingress" if !snap.ingresses.contains_key(key) => ingresses.push(key.clone()),
                _ => {}
            }
        }
        services.sort();
        services.dedup();
        ingresses.sort();
        ingresses.dedup();
        self.update(snap, &services, &ingresses, false);
    }

    /// Applies one published change of the table.
    pub(crate) fn apply(&mut self, snap: &Snapshot, change: &Change) {
        if change.everything {
            self.rebuild(snap);
        } else {
            self.update(snap, &change.services, &change.ingresses, true);
        }
    }

    /// Recomputes the names of `services` and `ingresses`. With `partial`, a service
    /// whose only change is the content of some shards (same clusters, annotations and
    /// places) recomputes its global name and the names of those shards' regions only.
    ///
    /// Profile lesson (scale bench): a service in 100 single-zone regions has 201 names,
    /// and one endpoint flip in one cluster changes three of them. Recomputing all 201
    /// per change — 1,000 changes/s — was most of Meridian's CPU and delayed answers by
    /// seconds.
    fn update(&mut self, snap: &Snapshot, services: &[ObjectKey], ingresses: &[ObjectKey], partial: bool) {
        let s = self.settings.clone();
        let mut out = Vec::new();
        let mut problems = Vec::new();
        for key in services {
            out.clear();
            problems.clear();
            let svc = snap.services.get(key);
            let only = match (partial, svc, self.seen.get(key)) {
                (true, Some(new), Some(old)) => changed_regions(snap, old, new),
                _ => None,
            };
            if let (Some(svc), Some(only)) = (svc, &only) {
                scheme::service(snap, &s, svc, Some(only), &mut out, &mut problems);
                if self.patch_names(key, &mut out) {
                    self.set_problems("service", key, &mut problems);
                    self.seen.insert(key.clone(), svc.clone());
                    continue;
                }
                out.clear();
                problems.clear();
            }
            match svc {
                Some(svc) => {
                    scheme::service(snap, &s, svc, None, &mut out, &mut problems);
                    self.seen.insert(key.clone(), svc.clone());
                }
                None => {
                    self.seen.remove(key);
                }
            }
            self.set_problems("service", key, &mut problems);
            let old = self.by_service.remove(key).unwrap_or_default();
            let keys = self.replace_names(&old, &mut out);
            if !keys.is_empty() {
                self.by_service.insert(key.clone(), keys);
            }
        }
        for key in ingresses {
            out.clear();
            problems.clear();
            if let Some(ing) = snap.ingresses.get(key) {
                scheme::ingress(snap, &s, ing, &mut out, &mut problems);
            }
            self.set_problems("ingress", key, &mut problems);
            let old = self.by_ingress.remove(key).unwrap_or_default();
            let keys = self.replace_names(&old, &mut out);
            if !keys.is_empty() {
                self.by_ingress.insert(key.clone(), keys);
            }
        }
        let in_zone = |k: &[u8]| NameBuf::from_wire(k).and_then(|n| zone_position(&self.zones, &n)).is_some();
        let extras = scheme::extras(snap, &s, in_zone);
        let mut extra_ents = NameSet::default();
        for k in extras.keys() {
            for p in self.ancestors(k) {
                extra_ents.insert(Key::from(p));
            }
        }
        self.extras = Arc::new(extras);
        self.extra_ents = Arc::new(extra_ents);
        for z in &mut self.zones {
            z.serial = z.serial.wrapping_add(1);
            z.soa = zone::with_serial(&z.soa, z.serial).into();
            if let Some(st) = self.serials.get_mut(&*z.data.name) {
                st.serial = z.serial;
            }
        }
    }

    /// Records an object's ranking problems, logging those that are new.
    fn set_problems(&mut self, kind: &'static str, key: &ObjectKey, problems: &mut Vec<rank::Problem>) {
        problems.sort();
        problems.dedup();
        let k = (kind, key.clone());
        if problems.is_empty() {
            self.problems.remove(&k);
            return;
        }
        if self.problems.get(&k) != Some(problems) {
            for p in problems.iter() {
                tracing::warn!(object = %p.object, cluster = %p.cluster, annotation = %p.annotation, value = %p.value, "dns: {}", p.reason);
            }
            self.problems.insert(k, problems.clone());
        }
    }

    /// Every malformed ranking annotation, sorted.
    pub(crate) fn problems(&self) -> Vec<rank::Problem> {
        let mut v: Vec<rank::Problem> = self.problems.values().flatten().cloned().collect();
        v.sort();
        v
    }

    pub(crate) fn problem_count(&self) -> usize {
        self.problems.values().map(Vec::len).sum()
    }

    /// The GeoIP database's state.
    pub(crate) fn geo_status(&self) -> meridian_model::geo::DbStatus {
        self.geo.status().clone()
    }

    /// Proper ancestors of `key` below its zone apex.
    fn ancestors<'k>(&self, key: &'k [u8]) -> Vec<&'k [u8]> {
        let mut out = Vec::new();
        let mut cur = name::parent(key);
        while let Some(p) = cur {
            if p.len() <= 1 || self.apexes.contains(p) {
                break;
            }
            out.push(p);
            cur = name::parent(p);
        }
        out
    }

    /// Updates names that `key` already publishes with `out`; false (and nothing done)
    /// when `out` has a name it does not publish.
    fn patch_names(&mut self, key: &ObjectKey, out: &mut Vec<(Key, Node)>) -> bool {
        let Some(published) = self.by_service.get(key) else { return false };
        let mut keys = Vec::with_capacity(out.len());
        for (k, _) in out.iter() {
            match published.iter().find(|p| ***p == **k) {
                Some(p) => keys.push(p.clone()),
                None => return false,
            }
        }
        for (k, (_, node)) in keys.into_iter().zip(out.drain(..)) {
            if !self.names.get(&k).is_some_and(|n| node.same_static(n)) {
                self.names.insert(k, Arc::new(node));
            }
        }
        true
    }

    /// Replaces the names one object published (`old`) with `out`, touching only what
    /// differs; returns the new names.
    ///
    /// Profile lesson (scale bench, 100 clusters, 1,000 endpoint changes/s): a service
    /// spread over 100 single-zone regions has 201 names, and one shard's change used to
    /// withdraw and re-publish all of them — ~2,400 persistent-map operations (names plus
    /// the empty-non-terminal counts of their ancestors) per change, which kept the core
    /// busy and let changes queue for seconds. The name set rarely changes and most names
    /// are CNAMEs that stay the same, so a change now costs a few map operations.
    fn replace_names(&mut self, old: &[MapKey], out: &mut Vec<(Key, Node)>) -> Vec<MapKey> {
        // Names come out in a stable order, so the common case is the same list (and `old`
        // never repeats a name).
        let same_set = old.len() == out.len() && old.iter().zip(out.iter()).all(|(a, (b, _))| **a == **b);
        if !same_set {
            // A name listed twice: the last one wins, as if published in turn.
            let mut seen = HashSet::new();
            let mut keep: Vec<bool> = out.iter().rev().map(|(k, _)| seen.insert(k.clone())).collect();
            keep.reverse();
            let mut it = keep.into_iter();
            out.retain(|_| it.next().unwrap_or(true));
        }
        let old_set: HashSet<&[u8]> = if same_set { HashSet::new() } else { old.iter().map(|k| &k[..]).collect() };
        let new_set: HashSet<&[u8]> = if same_set { HashSet::new() } else { out.iter().map(|(k, _)| &k[..]).collect() };
        let gone: Vec<MapKey> = old.iter().filter(|k| !same_set && !new_set.contains(&k[..])).cloned().collect();
        let added: Vec<bool> = out.iter().map(|(k, _)| !same_set && !old_set.contains(&k[..])).collect();
        drop((old_set, new_set));
        self.withdraw(&gone);
        let mut keys = Vec::with_capacity(out.len());
        for (i, ((key, node), added)) in out.drain(..).zip(added).enumerate() {
            if added {
                for p in self.ancestors(&key) {
                    *self.ents.entry(MapKey::from(p)).or_insert(0) += 1;
                }
            }
            let key = match old.get(i) {
                Some(k) if same_set => k.clone(),
                _ => MapKey::from(key),
            };
            let unchanged = !added && self.names.get(&key).is_some_and(|n| node.same_static(n));
            if !unchanged {
                self.names.insert(key.clone(), Arc::new(node));
            }
            keys.push(key);
        }
        keys
    }

    fn withdraw(&mut self, keys: &[MapKey]) {
        for key in keys {
            self.names.remove(key);
            for p in self.ancestors(key) {
                let p = MapKey::from(p);
                let gone = match self.ents.get_mut(&p) {
                    Some(n) => {
                        *n = n.saturating_sub(1);
                        *n == 0
                    }
                    None => false,
                };
                if gone {
                    self.ents.remove(&p);
                }
            }
        }
    }

    /// The index readers will see.
    pub(crate) fn index(&self) -> Index {
        Index {
            zones: self.zones.clone(),
            names: self.names.clone(),
            ents: self.ents.clone(),
            extras: self.extras.clone(),
            extra_ents: self.extra_ents.clone(),
            geo: self.geo.clone(),
        }
    }
}

/// The regions of the shards that changed from `old` to `new`, when that is all that
/// changed: the same clusters in the same order, and every changed shard kept its
/// cluster's metadata, its annotations (which set the TTL of every name), ports and
/// export. `None` when all names must be recomputed — also when no shard changed (what
/// changed is elsewhere, e.g. the exports) and when the `fallback` stale policy may let
/// one cluster's change decide whether another region serves stale shards.
fn changed_regions(snap: &Snapshot, old: &FederatedService, new: &FederatedService) -> Option<HashSet<Arc<str>>> {
    if old.shards.len() != new.shards.len() {
        return None;
    }
    let fallback = matches!(snap.stale_policy, Some((meridian_model::table::StalePolicy::Fallback, _)));
    if fallback && old.shards.iter().chain(&new.shards).any(|s| s.stale) {
        return None;
    }
    let mut any = false;
    let mut regions = HashSet::new();
    for (a, b) in old.shards.iter().zip(&new.shards) {
        if Arc::ptr_eq(a, b) {
            continue;
        }
        if !Arc::ptr_eq(&a.cluster, &b.cluster) && a.cluster != b.cluster {
            return None;
        }
        if a.annotations != b.annotations || a.headless != b.headless || a.ports != b.ports || a.exported != b.exported
        {
            return None;
        }
        any = true;
        if let Some(r) = &b.cluster.region {
            regions.insert(r.clone());
        }
    }
    any.then_some(regions)
}

/// Builds one served zone from its spec: its file, the synthesised records and, for the
/// clusterset domain, the records MCS defines. The server and `check_zones` both use it.
fn build_zone(s: &Settings, spec: &ZoneSpec) -> Result<ZoneData> {
    let defaults = ZoneDefaults { ttl: s.ttl, negative_ttl: s.negative_ttl };
    let extra = if s.clusterset.as_deref() == Some(spec.apex.as_str()) {
        scheme::clusterset_static(&spec.apex, s.ttl)
    } else {
        Vec::new()
    };
    zone::build(spec, &defaults, extra)
}

/// Builds every zone `config` serves as the server would, without serving them; the
/// errors are those a start or a reload would report. Returns how many zones were built.
pub(crate) fn check_zones(config: &Config) -> Result<usize> {
    let s = Settings::from_config(config);
    let errors: Vec<Error> = s.zones.iter().filter_map(|spec| build_zone(&s, spec).err()).collect();
    if errors.is_empty() { Ok(s.zones.len()) } else { Err(many(errors)) }
}

fn many(mut errors: Vec<Error>) -> Error {
    if errors.len() == 1 { errors.remove(0) } else { Error::Many(errors) }
}

fn unix_now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(1, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use meridian_model::table::{Probe, Shard};

    use super::*;

    fn meta(name: &str, region: &str) -> Arc<ClusterMeta> {
        Arc::new(ClusterMeta {
            name: name.into(),
            region: Some(region.into()),
            zone: None,
            location: None,
            weight: 1,
            labels: BTreeMap::new(),
            order: 0,
        })
    }

    fn shard(c: &Arc<ClusterMeta>, ready: u32) -> Arc<Shard> {
        Arc::new(Shard {
            cluster: c.clone(),
            addresses: vec!["127.0.0.1".parse().expect("ip")],
            hostnames: vec![],
            ports: vec![],
            headless: false,
            ready_endpoints: ready,
            total_endpoints: 2,
            endpoints: vec![],
            annotations: BTreeMap::new(),
            exported: false,
            created: None,
            stale: false,
            probe: Probe::default(),
        })
    }

    fn svc(shards: Vec<Arc<Shard>>) -> FederatedService {
        FederatedService { key: ObjectKey::new("default", "web"), shards }
    }

    #[test]
    fn changed_regions_names_the_regions_of_changed_shards_only() {
        let snap = Snapshot::default();
        let (a, b) = (meta("a", "ra"), meta("b", "rb"));
        let (sa, sb) = (shard(&a, 2), shard(&b, 2));
        let old = svc(vec![sa.clone(), sb.clone()]);
        // Nothing changed: recompute everything (the change is elsewhere).
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone(), sb.clone()])), None);
        let new = svc(vec![sa.clone(), shard(&b, 0)]);
        let want: HashSet<Arc<str>> = [Arc::from("rb")].into_iter().collect();
        assert_eq!(changed_regions(&snap, &old, &new), Some(want));
        // A shard added or an annotation changed: everything.
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone()])), None);
        let mut annotated = (*sb).clone();
        annotated.annotations.insert("meridian.io/ttl".into(), "5".into());
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa, Arc::new(annotated)])), None);
    }
}
