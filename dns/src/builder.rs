//! The index's single writer: it owns the bookkeeping behind the published [`Index`] and
//! recomputes only the names of the services, ingresses and HTTPRoutes a table
//! [`Change`] lists.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use meridian_config::Config;
use meridian_model::geo::DbStatus;
use meridian_model::rank;
use meridian_model::table::{Change, FederatedService, HttpKind, ObjectKey, Shard, Snapshot, StalePolicy};

use crate::cookie::Secret;
use crate::error::{Error, Result};
use crate::geoip::GeoSource;
use crate::index::{Identity, Index, ZoneEntry, zone_position};
use crate::name::{Key, NameBuf, NameMap, NameSet};
use crate::problems::{Kind, Problems};
use crate::record::{Named, Node};
use crate::scheme;
use crate::serial::Serials;
use crate::settings::Settings;
use crate::table_names::{self, MapKey, TableNames};
use crate::xfr::acl::Policy;
use crate::{zone, zone_set};
use meridian_config::dns::parse_cookie_secret;

/// The single writer of the index.
pub(crate) struct Builder {
    settings: Arc<Settings>,
    zones: Vec<ZoneEntry>,
    serials: Serials,
    apexes: HashSet<Key>,
    table: TableNames,
    /// Names each service / ingress published, to withdraw them when it changes.
    by_service: HashMap<ObjectKey, Vec<MapKey>>,
    by_ingress: HashMap<ObjectKey, Vec<MapKey>>,
    /// The same for HTTPRoutes (an HTTPRoute and an Ingress may share a key).
    by_route: HashMap<ObjectKey, Vec<MapKey>>,
    /// Each service as its names were last computed, to tell which shards changed.
    seen: HashMap<ObjectKey, Arc<FederatedService>>,
    extras: Arc<NameMap<Arc<Node>>>,
    extra_ents: Arc<NameSet>,
    geo: GeoSource,
    problems: Problems,
    identity: Arc<Identity>,
    /// This process's own cookie secret, used while no `dns.cookie_secret_file` is set
    /// (kept across reloads, so issued cookies stay valid).
    own_secret: Secret,
}

/// Buffers reused from one object to the next while names are recomputed.
#[derive(Default)]
struct Scratch {
    out: Vec<Named>,
    problems: Vec<rank::Problem>,
}

impl Scratch {
    fn clear(&mut self) {
        self.out.clear();
        self.problems.clear();
    }
}

impl Builder {
    /// A builder for `config`; fails when a zone (file) cannot be loaded.
    pub(crate) fn new(config: &Config) -> Result<Self> {
        let mut b = Builder {
            settings: Arc::new(Settings::from_config(config)),
            zones: Vec::new(),
            serials: Serials::default(),
            apexes: HashSet::new(),
            table: TableNames::default(),
            by_service: HashMap::new(),
            by_ingress: HashMap::new(),
            by_route: HashMap::new(),
            seen: HashMap::new(),
            extras: Arc::default(),
            extra_ents: Arc::default(),
            geo: GeoSource::open(config),
            problems: Problems::default(),
            identity: Arc::new(Identity { nsid: None, secret: Secret::random(), policy: Arc::default() }),
            own_secret: Secret::random(),
        };
        let mut errors = b.load_zones();
        errors.extend(b.set_identity(config).err());
        if errors.is_empty() { Ok(b) } else { Err(Error::many(errors)) }
    }

    /// Applies a new configuration. Zones whose file fails keep their previous content
    /// (or, when new, serve only the synthesised SOA and NS); the errors are returned.
    pub(crate) fn set_config(&mut self, config: &Config, snap: &Snapshot) -> Result<()> {
        self.settings = Arc::new(Settings::from_config(config));
        self.geo.update(config);
        let mut errors = self.load_zones();
        errors.extend(self.set_identity(config).err());
        // Zones (and so the apexes that bound empty non-terminals) may have changed: start
        // from nothing rather than adjust names counted against the old apexes.
        self.clear();
        self.rebuild(snap);
        if errors.is_empty() { Ok(()) } else { Err(Error::many(errors)) }
    }

    /// Sets the NSID, the cookie secret and the TSIG keys; a secret or key file that
    /// cannot be read keeps the one in use.
    fn set_identity(&mut self, config: &Config) -> Result<()> {
        let nsid = config.dns.nsid.as_ref().map(|n| Box::from(n.as_bytes()));
        let (secret, result) = match &config.dns.cookie_secret_file {
            None => (self.own_secret.clone(), Ok(())),
            Some(f) => {
                let file = config.resolve(f);
                let read = std::fs::read_to_string(&file).map_err(|e| e.to_string());
                match read.and_then(|t| parse_cookie_secret(&t).map_err(str::to_owned)) {
                    Ok(key) => (Secret::new(key), Ok(())),
                    Err(reason) => (self.identity.secret.clone(), Err(Error::CookieSecret { file, reason })),
                }
            }
        };
        let (policy, keys_result) = match Policy::from_config(config) {
            Ok(p) => (Arc::new(p), Ok(())),
            Err(e) => (self.identity.policy.clone(), Err(e)),
        };
        self.identity = Arc::new(Identity { nsid, secret, policy });
        match (result, keys_result) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(a), Ok(())) | (Ok(()), Err(a)) => Err(a),
            (Err(a), Err(b)) => Err(Error::many(vec![a, b])),
        }
    }

    fn load_zones(&mut self) -> Vec<Error> {
        let (zones, errors) = zone_set::load(&self.settings, &self.zones, &mut self.serials);
        self.apexes = zones.iter().map(|z| z.data.apex.clone()).collect();
        self.zones = zones;
        errors
    }

    fn clear(&mut self) {
        self.table = TableNames::default();
        self.by_service.clear();
        self.by_ingress.clear();
        self.by_route.clear();
        self.seen.clear();
        self.problems.clear();
    }

    /// Rebuilds every dynamic name from `snap`: every object in it and every object
    /// that published names or problems before. Names that come out the same stay in
    /// place, so a rebuild (a cluster's region appearing, a lagging subscriber) costs
    /// the computation of every name but not a new index: building a large index from
    /// scratch, and dropping the old one, can take long enough for the change feed to
    /// lag again, so that the next rebuild starts at once.
    pub(crate) fn rebuild(&mut self, snap: &Snapshot) {
        let mut services: Vec<ObjectKey> = snap.services.keys().cloned().collect();
        let mut ingresses: Vec<ObjectKey> = snap.ingresses.keys().cloned().collect();
        services.extend(self.by_service.keys().filter(|k| !snap.services.contains_key(*k)).cloned());
        ingresses.extend(self.by_ingress.keys().filter(|k| !snap.ingresses.contains_key(*k)).cloned());
        let mut routes: Vec<ObjectKey> = snap.routes.keys().cloned().collect();
        routes.extend(self.by_route.keys().filter(|k| !snap.routes.contains_key(*k)).cloned());
        for (kind, key) in self.problems.objects() {
            match kind {
                Kind::Service if !snap.services.contains_key(key) => services.push(key.clone()),
                Kind::Ingress if !snap.ingresses.contains_key(key) => ingresses.push(key.clone()),
                Kind::Route if !snap.routes.contains_key(key) => routes.push(key.clone()),
                _ => {}
            }
        }
        for keys in [&mut services, &mut ingresses, &mut routes] {
            keys.sort();
            keys.dedup();
        }
        self.update(snap, &services, &ingresses, &routes, false);
    }

    /// Applies one published change of the table.
    pub(crate) fn apply(&mut self, snap: &Snapshot, change: &Change) {
        if change.everything {
            self.rebuild(snap);
        } else {
            self.update(snap, &change.services, &change.ingresses, &change.routes, true);
        }
    }

    /// Recomputes the names of `services`, `ingresses` and `routes`, then the extras. The
    /// serials move later, paced, in `xfr::publish`. With `partial`, see
    /// [`Builder::update_service`].
    fn update(
        &mut self,
        snap: &Snapshot,
        services: &[ObjectKey],
        ingresses: &[ObjectKey],
        routes: &[ObjectKey],
        partial: bool,
    ) {
        let mut scratch = Scratch::default();
        for key in services {
            self.update_service(snap, key, partial, &mut scratch);
        }
        for key in ingresses {
            self.update_routed(snap, HttpKind::Ingress, key, &mut scratch);
        }
        for key in routes {
            self.update_routed(snap, HttpKind::HttpRoute, key, &mut scratch);
        }
        self.update_extras(snap);
    }

    /// Recomputes the names of one service. With `partial`, a service whose only change
    /// is the content of some shards (same clusters, annotations and places) recomputes
    /// its global name and the names of those shards' regions only.
    ///
    /// A service in many single-zone regions has two names per region and a global one,
    /// and one endpoint flip in one cluster changes three of them. Recomputing all of
    /// them per change, under a steady stream of changes, was most of Meridian's CPU and
    /// delayed answers by seconds.
    fn update_service(&mut self, snap: &Snapshot, key: &ObjectKey, partial: bool, scratch: &mut Scratch) {
        let s = self.settings.clone();
        scratch.clear();
        let svc = snap.services.get(key);
        let only = match (partial, svc, self.seen.get(key)) {
            (true, Some(new), Some(old)) => changed_regions(snap, old, new),
            _ => None,
        };
        if let (Some(svc), Some(only)) = (svc, &only) {
            scheme::service(snap, &s, svc, Some(only), &mut scratch.out, &mut scratch.problems);
            let patched = self.by_service.contains_key(key) && self.table.patch(&mut scratch.out);
            if patched {
                self.problems.set(Kind::Service, key, &mut scratch.problems);
                self.seen.insert(key.clone(), svc.clone());
                return;
            }
            scratch.clear();
        }
        match svc {
            Some(svc) => {
                scheme::service(snap, &s, svc, None, &mut scratch.out, &mut scratch.problems);
                self.seen.insert(key.clone(), svc.clone());
            }
            None => {
                self.seen.remove(key);
            }
        }
        self.problems.set(Kind::Service, key, &mut scratch.problems);
        let old = self.by_service.remove(key).unwrap_or_default();
        let keys = self.table.replace(&self.apexes, &old, &mut scratch.out);
        if !keys.is_empty() {
            self.by_service.insert(key.clone(), keys);
        }
    }

    /// Recomputes the names of one Ingress or HTTPRoute.
    fn update_routed(&mut self, snap: &Snapshot, kind: HttpKind, key: &ObjectKey, scratch: &mut Scratch) {
        scratch.clear();
        let (fed, problem_kind, by_key) = match kind {
            HttpKind::Ingress => (snap.ingresses.get(key), Kind::Ingress, &mut self.by_ingress),
            HttpKind::HttpRoute => (snap.routes.get(key), Kind::Route, &mut self.by_route),
        };
        match (fed, kind) {
            (Some(f), HttpKind::Ingress) => {
                scheme::ingress(snap, &self.settings, f, &mut scratch.out, &mut scratch.problems)
            }
            (Some(f), HttpKind::HttpRoute) => {
                scheme::route(snap, &self.settings, f, &mut scratch.out, &mut scratch.problems)
            }
            (None, _) => {}
        }
        self.problems.set(problem_kind, key, &mut scratch.problems);
        let old = by_key.remove(key).unwrap_or_default();
        let keys = self.table.replace(&self.apexes, &old, &mut scratch.out);
        if !keys.is_empty() {
            by_key.insert(key.clone(), keys);
        }
    }

    /// Recomputes the ingress and HTTPRoute hosts and custom names inside a served zone.
    fn update_extras(&mut self, snap: &Snapshot) {
        let in_zone = |k: &[u8]| NameBuf::from_wire(k).and_then(|n| zone_position(&self.zones, &n)).is_some();
        let extras = scheme::extras(snap, &self.settings, in_zone);
        let mut extra_ents = NameSet::default();
        for k in extras.keys() {
            for p in table_names::ancestors(k, &self.apexes) {
                extra_ents.insert(Key::from(p));
            }
        }
        self.extras = Arc::new(extras);
        self.extra_ents = Arc::new(extra_ents);
    }

    /// Moves the serial of the zone `apex` one step forward (its content changed); the
    /// new serial, `None` when no such zone is served.
    pub(crate) fn bump_serial(&mut self, apex: &str) -> Option<u32> {
        let z = self.zones.iter_mut().find(|z| &*z.data.name == apex)?;
        z.serial = self.serials.advance(&z.data.name, z.serial);
        z.soa = zone::with_serial(&z.soa, z.serial).into();
        Some(z.serial)
    }

    /// Every malformed ranking annotation, sorted.
    pub(crate) fn problems(&self) -> Vec<rank::Problem> {
        self.problems.all()
    }

    pub(crate) fn problem_count(&self) -> usize {
        self.problems.count()
    }

    /// The GeoIP database's state.
    pub(crate) fn geo_status(&self) -> DbStatus {
        self.geo.status()
    }

    /// The index readers will see.
    pub(crate) fn index(&self) -> Index {
        Index {
            zones: self.zones.clone(),
            table: self.table.clone(),
            extras: self.extras.clone(),
            extra_ents: self.extra_ents.clone(),
            geo: self.geo.geo().clone(),
            identity: self.identity.clone(),
        }
    }
}

/// The regions of the shards that changed from `old` to `new`, when the rest of the
/// service's names stay as they are. A shard may have changed in place, been added or
/// been removed (shards are matched by cluster, both lists sorted by cluster order and
/// name). `None` when all names must be recomputed: when no shard changed (what changed
/// is elsewhere, e.g. the exports), when the TTL (set by annotations, for every name) or
/// the set of named ports (the SRV names) changed, when a changed shard moved cluster
/// metadata or is headless, when an added or removed shard's cluster is not the one the
/// snapshot lists, and when the `fallback` stale policy may let one cluster's change
/// decide whether another region serves stale shards.
///
/// Clusters list their services one after another: recomputing every region's names
/// whenever a service gained a shard made listing N clusters cost O(N²) names per
/// service, and kept Meridian's core busy for minutes at a million shards.
fn changed_regions(snap: &Snapshot, old: &FederatedService, new: &FederatedService) -> Option<HashSet<Arc<str>>> {
    let fallback = matches!(snap.stale_policy, Some((StalePolicy::Fallback, _)));
    if fallback && old.shards.iter().chain(&new.shards).any(|s| s.stale) {
        return None;
    }
    let ttl = |f: &FederatedService| scheme::ttl_override(f.shards.iter().map(|sh| &sh.annotations));
    let mut any = false;
    let mut resized = false;
    let mut regions = HashSet::new();
    for step in by_cluster(&old.shards, &new.shards) {
        let changed = match step {
            Step::Both(a, b) if Arc::ptr_eq(a, b) => continue,
            Step::Both(a, b) => {
                let same_meta = Arc::ptr_eq(&a.cluster, &b.cluster) || a.cluster == b.cluster;
                // A headless shard's endpoints each have a clusterset name of their own:
                // an endpoint that stops being ready must take its name away, which a
                // patch of the names still published cannot do.
                if !same_meta || a.headless || b.headless || a.ports != b.ports {
                    return None;
                }
                b
            }
            Step::One(s) => {
                let listed = snap
                    .clusters
                    .get(&s.cluster.name)
                    .is_some_and(|c| Arc::ptr_eq(&c.meta, &s.cluster) || c.meta == s.cluster);
                if !listed || s.headless {
                    return None;
                }
                resized = true;
                s
            }
        };
        any = true;
        if let Some(r) = &changed.cluster.region {
            regions.insert(r.clone());
        }
    }
    if !any || ttl(old) != ttl(new) || (resized && named_ports(old) != named_ports(new)) {
        return None;
    }
    Some(regions)
}

/// The (name, protocol) pairs of a service's named ports: one SRV name each.
fn named_ports(svc: &FederatedService) -> BTreeSet<(&str, &str)> {
    let ports = svc.shards.iter().flat_map(|sh| &sh.ports);
    ports.filter_map(|p| Some((&**p.name.as_ref()?, p.protocol.as_str()))).collect()
}

/// One step of walking two shard lists side by side by cluster.
enum Step<'a> {
    /// The cluster has a shard in both lists.
    Both(&'a Arc<Shard>, &'a Arc<Shard>),
    /// The cluster has a shard in one list only (added or removed).
    One(&'a Arc<Shard>),
}

/// Walks `old` and `new`, both sorted by (cluster order, cluster name), pairing the
/// shards of the same cluster.
fn by_cluster<'a>(old: &'a [Arc<Shard>], new: &'a [Arc<Shard>]) -> impl Iterator<Item = Step<'a>> {
    fn place(s: &Shard) -> (usize, &str) {
        (s.cluster.order, &s.cluster.name)
    }
    let (mut i, mut j) = (0, 0);
    std::iter::from_fn(move || {
        let (a, b) = (old.get(i), new.get(j));
        let order = match (a, b) {
            (None, None) => return None,
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (Some(a), Some(b)) => place(a).cmp(&place(b)),
        };
        match (order, a, b) {
            (std::cmp::Ordering::Equal, Some(a), Some(b)) => {
                (i, j) = (i + 1, j + 1);
                Some(Step::Both(a, b))
            }
            (std::cmp::Ordering::Less, Some(a), _) => {
                i += 1;
                Some(Step::One(a))
            }
            (_, _, b) => {
                j += 1;
                b.map(Step::One)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use meridian_model::table::{ClusterEntry, ClusterMeta, ClusterState, Port, Probe, Protocol, Update};

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
        let (a, b, c) = (meta("a", "ra"), meta("b", "rb"), meta("c", "rc"));
        let mut snap = Snapshot::default();
        for m in [&a, &b, &c] {
            snap.clusters.insert(m.name.clone(), ClusterEntry { meta: m.clone(), state: ClusterState::Ready });
        }
        let (sa, sb, sc) = (shard(&a, 2), shard(&b, 2), shard(&c, 2));
        let old = svc(vec![sa.clone(), sb.clone()]);
        let only = |regions: &[&str]| Some(regions.iter().map(|r| Arc::from(*r)).collect::<HashSet<Arc<str>>>());
        // Nothing changed: recompute everything (the change is elsewhere).
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone(), sb.clone()])), None);
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone(), shard(&b, 0)])), only(&["rb"]));
        // A shard added or removed: its region only.
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone(), sb.clone(), sc.clone()])), only(&["rc"]));
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sb.clone()])), only(&["ra"]));
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sb.clone(), sc.clone()])), only(&["ra", "rc"]));
        // ... unless its cluster is not the one listed, it brings a TTL or a named port,
        // or it is headless.
        let stranger = shard(&meta("c", "elsewhere"), 2);
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone(), sb.clone(), stranger])), None);
        let with = |s: &Arc<Shard>, f: &dyn Fn(&mut Shard)| {
            let mut s = (**s).clone();
            f(&mut s);
            Arc::new(s)
        };
        let ttl = |s: &mut Shard| drop(s.annotations.insert("meridian.io/ttl".into(), "5".into()));
        let port = |s: &mut Shard| s.ports.push(Port { name: Some("dns".into()), port: 53, protocol: Protocol::Udp });
        let headless = |s: &mut Shard| s.headless = true;
        for f in [&ttl as &dyn Fn(&mut Shard), &port, &headless] {
            assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone(), sb.clone(), with(&sc, f)])), None);
        }
        // In place: an annotation that leaves the TTL alone patches; a new TTL does not.
        let weight = |s: &mut Shard| drop(s.annotations.insert("meridian.io/weight".into(), "5".into()));
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone(), with(&sb, &weight)])), only(&["rb"]));
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa.clone(), with(&sb, &ttl)])), None);
        // A headless shard's endpoints changed: its per-endpoint names may have to go.
        let old = svc(vec![sa.clone(), with(&sb, &headless)]);
        let fewer = |s: &mut Shard| {
            s.headless = true;
            s.ready_endpoints = 1;
        };
        assert_eq!(changed_regions(&snap, &old, &svc(vec![sa, with(&sb, &fewer)])), None);
    }

    /// Clusters listing a service one after another, then leaving it, then one cluster's
    /// endpoints flipping: each change applied on its own ends with the same zone as a
    /// rebuild from the last snapshot.
    #[test]
    fn changes_applied_one_by_one_end_as_a_rebuild_does() {
        let mut config = Config::demo();
        config.dns.clusterset.export = meridian_config::dns::ExportMode::All;
        let (table, mut writer) = meridian_model::table::Table::new();
        let metas: Vec<_> = (0..4)
            .map(|i| {
                let m = meta(&format!("c{i}"), &format!("r{}", i % 3));
                Arc::new(ClusterMeta { zone: Some(format!("z{i}").into()), order: i, ..(*m).clone() })
            })
            .collect();
        let mut follower = Builder::new(&config).expect("builds");
        let mut changes = table.changes();
        writer.apply(metas.iter().cloned().map(Update::Cluster));
        follower.rebuild(&table.snapshot());
        let key = ObjectKey::new("default", "web");
        let set = |m: &Arc<ClusterMeta>, ready: Option<u32>| {
            let shard = ready.map(|r| {
                let mut s = (*shard(m, r)).clone();
                s.ports = vec![Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp }];
                s
            });
            Update::Service { cluster: m.name.clone(), key: key.clone(), shard }
        };
        let mut steps: Vec<Update> = metas.iter().map(|m| set(m, Some(2))).collect();
        steps.extend([set(&metas[1], Some(0)), set(&metas[0], None), set(&metas[2], None), set(&metas[1], Some(2))]);
        steps.extend(metas.iter().map(|m| set(m, None)));
        steps.push(set(&metas[3], Some(1)));
        for (i, step) in steps.into_iter().enumerate() {
            writer.apply([step]);
            while let Ok(change) = changes.try_recv() {
                follower.apply(&table.snapshot(), &change);
            }
            let mut fresh = Builder::new(&config).expect("builds");
            fresh.rebuild(&table.snapshot());
            let zone = |b: &Builder| {
                let index = b.index();
                let text =
                    ["meridian.test", "clusterset.local"].map(|z| crate::dump::zone(&index, z).unwrap_or_default());
                // The serials move in their own time; the names are what must agree.
                text.join("").lines().filter(|l| !l.contains(" SOA ")).collect::<Vec<_>>().join("\n")
            };
            assert_eq!(zone(&follower), zone(&fresh), "after step {i}");
        }
    }
}
