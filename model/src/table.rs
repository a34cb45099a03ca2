//! The health-aware service table: every federated service, ingress and Gateway API
//! HTTPRoute, with its shard in each member cluster.
//!
//! One writer ([`TableWriter`], not `Clone`) applies batches of [`Update`]s and publishes
//! an immutable [`Snapshot`] through an `ArcSwap`. Readers ([`Table`], cheap to clone)
//! load the current snapshot without locks and never wait for the writer, which may be
//! busy with I/O-driven work. Maps are persistent (`imbl`), so publishing a snapshot
//! after a small change costs O(log n), not a copy of 100,000 shards.
//!
//! This module knows nothing of Kubernetes or DNS: watchers translate objects into
//! [`Shard`]s, answerers translate shards into records.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use imbl::OrdMap;
use tokio::sync::{broadcast, watch};

pub use meridian_config::{Location, StalePolicy};

/// `namespace/name` of a Service or Ingress.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub namespace: Arc<str>,
    pub name: Arc<str>,
}

impl ObjectKey {
    pub fn new(namespace: &str, name: &str) -> Self {
        Self { namespace: namespace.into(), name: name.into() }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What Meridian knows about a member cluster that does not change with its objects.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterMeta {
    pub name: Arc<str>,
    /// From the config, else from the nodes' `topology.kubernetes.io/region` label.
    pub region: Option<Arc<str>>,
    pub zone: Option<Arc<str>>,
    pub location: Option<Location>,
    pub weight: u32,
    pub labels: BTreeMap<String, String>,
    /// Position in the config's cluster list: the default failover order.
    pub order: usize,
}

impl ClusterMeta {
    /// A cluster known only by name and position (weight 1, no topology, no labels);
    /// struct update syntax fills in the rest.
    pub fn new(name: &str, order: usize) -> Self {
        Self { name: name.into(), region: None, zone: None, location: None, weight: 1, labels: BTreeMap::new(), order }
    }
}

/// Reachability of a cluster's API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterState {
    /// Not yet probed or listed since start-up (or since being added by a reload).
    Pending,
    /// API reachable and watches running.
    Ready,
    /// API unreachable; `since` is when it was first seen failing. Its shards are stale.
    Offline { reason: String, since: SystemTime },
}

impl ClusterState {
    pub fn name(&self) -> &'static str {
        match self {
            ClusterState::Pending => "Pending",
            ClusterState::Ready => "Ready",
            ClusterState::Offline { .. } => "Offline",
        }
    }
}

/// A cluster as the table sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterEntry {
    pub meta: Arc<ClusterMeta>,
    pub state: ClusterState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

impl Protocol {
    /// Lower-case name as used in SRV owner names (`_tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Sctp => "sctp",
        }
    }
}

/// A Service port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub name: Option<Arc<str>>,
    pub port: u16,
    pub protocol: Protocol,
}

/// One endpoint (pod) behind a service, kept for headless services and MCS names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addresses: Vec<IpAddr>,
    pub hostname: Option<Arc<str>>,
    pub ready: bool,
    /// The endpoint's own port numbers by port name (they may differ from the Service's).
    pub ports: Vec<Port>,
}

/// Result of this instance's active health check of a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProbeState {
    /// Not probed (checks off, or not yet run).
    #[default]
    Unknown,
    Up,
    Down,
}

/// Active health of a shard, as measured from this Meridian instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Probe {
    pub state: ProbeState,
    /// Moving average of the probe round-trip time.
    pub rtt: Option<Duration>,
}

/// A service's presence in one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct Shard {
    pub cluster: Arc<ClusterMeta>,
    /// Load-balancer IPs (IPv4 and IPv6), or external IPs; for a load balancer that
    /// publishes only hostnames, the addresses discovery resolved them to (empty until
    /// the first answer).
    pub addresses: Vec<IpAddr>,
    /// Load-balancer hostnames (e.g. AWS ELB names) from the status; they are resolved
    /// into `addresses` only when the status has no IP.
    pub hostnames: Vec<Arc<str>>,
    pub ports: Vec<Port>,
    /// `clusterIP: None`.
    pub headless: bool,
    pub ready_endpoints: u32,
    pub total_endpoints: u32,
    /// Endpoints, ready or not; empty unless the service is headless (only a headless
    /// shard answers with them, so any other keeps just `ready_endpoints` and
    /// `total_endpoints`).
    pub endpoints: Vec<Endpoint>,
    /// The Service's `meridian.io/*` annotations (policy, weight, TTL, health check).
    pub annotations: BTreeMap<String, String>,
    /// A ServiceExport with the same name exists in the cluster.
    pub exported: bool,
    /// Service creation time in its cluster (MCS: the oldest export wins conflicts).
    pub created: Option<SystemTime>,
    /// The cluster is Offline: this is the last-known state.
    pub stale: bool,
    pub probe: Probe,
}

impl Shard {
    /// A shard with these addresses and nothing else: no ports or endpoints (so not
    /// healthy), not stale, not probed; struct update syntax fills in the rest.
    pub fn new(cluster: Arc<ClusterMeta>, addresses: Vec<IpAddr>) -> Self {
        Self {
            cluster,
            addresses,
            hostnames: Vec::new(),
            ports: Vec::new(),
            headless: false,
            ready_endpoints: 0,
            total_endpoints: 0,
            endpoints: Vec::new(),
            annotations: BTreeMap::new(),
            exported: false,
            created: None,
            stale: false,
            probe: Probe::default(),
        }
    }

    /// Healthy: ready endpoints, and the active check (if any) has not failed.
    pub fn is_healthy(&self) -> bool {
        self.ready_endpoints > 0 && self.probe.state != ProbeState::Down
    }

    /// True when the shard can be dialled: it has some address.
    pub fn has_address(&self) -> bool {
        !self.addresses.is_empty() || !self.hostnames.is_empty()
    }
}

/// A federated object: its shards across clusters, in config cluster order.
#[derive(Debug, Clone, PartialEq)]
pub struct Federated<T> {
    pub key: ObjectKey,
    pub shards: Vec<Arc<T>>,
}

/// A federated Service.
pub type FederatedService = Federated<Shard>;
/// A federated Ingress.
pub type FederatedIngress = Federated<IngressShard>;
/// A federated Gateway API HTTPRoute: the same shape as an Ingress (hosts, paths to
/// Services, the addresses of its parent Gateways), kept in a map of its own because an
/// HTTPRoute and an Ingress may share a namespace and name.
pub type FederatedRoute = Federated<IngressShard>;

/// Which kind of object an HTTP routing entry ([`Snapshot::http_sources`]) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HttpKind {
    /// A `networking.k8s.io/v1` Ingress.
    Ingress,
    /// A `gateway.networking.k8s.io/v1` HTTPRoute attached to a Gateway.
    HttpRoute,
}

impl HttpKind {
    /// The Kubernetes kind, for status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            HttpKind::Ingress => "Ingress",
            HttpKind::HttpRoute => "HTTPRoute",
        }
    }
}

/// Something that lives in one cluster.
pub trait InCluster: PartialEq {
    fn cluster(&self) -> &Arc<ClusterMeta>;
}

impl InCluster for Shard {
    fn cluster(&self) -> &Arc<ClusterMeta> {
        &self.cluster
    }
}

impl InCluster for IngressShard {
    fn cluster(&self) -> &Arc<ClusterMeta> {
        &self.cluster
    }
}

impl<T: InCluster> Federated<T> {
    /// The shard in `cluster`, if any.
    pub fn shard(&self, cluster: &str) -> Option<&Arc<T>> {
        self.shards.iter().find(|s| &*s.cluster().name == cluster)
    }
}

/// One Ingress rule path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressPath {
    /// Empty for a rule without a host.
    pub host: Arc<str>,
    pub path: Arc<str>,
    /// `Prefix`, `Exact` or `ImplementationSpecific`.
    pub path_type: Arc<str>,
    pub service: Arc<str>,
    /// Port number, or 0 when the rule names the port (see `port_name`).
    pub port: u16,
    pub port_name: Option<Arc<str>>,
}

/// An Ingress's presence in one cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct IngressShard {
    pub cluster: Arc<ClusterMeta>,
    pub addresses: Vec<IpAddr>,
    pub hostnames: Vec<Arc<str>>,
    pub paths: Vec<IngressPath>,
    pub annotations: BTreeMap<String, String>,
    pub stale: bool,
}

impl FederatedIngress {
    /// Every host named by any shard's rules, sorted and without duplicates.
    pub fn hosts(&self) -> Vec<Arc<str>> {
        let mut hosts: Vec<Arc<str>> =
            self.shards.iter().flat_map(|s| s.paths.iter().map(|p| p.host.clone())).filter(|h| !h.is_empty()).collect();
        hosts.sort();
        hosts.dedup();
        hosts
    }
}

/// An immutable view of the whole table.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Increases with every published change.
    pub version: u64,
    pub clusters: OrdMap<Arc<str>, ClusterEntry>,
    pub services: OrdMap<ObjectKey, Arc<FederatedService>>,
    pub ingresses: OrdMap<ObjectKey, Arc<FederatedIngress>>,
    /// HTTPRoutes attached to a usable Gateway, translated like Ingresses.
    pub routes: OrdMap<ObjectKey, Arc<FederatedRoute>>,
    /// `namespace/name` of every ServiceExport, with the clusters it exists in.
    pub exports: OrdMap<ObjectKey, Vec<Arc<str>>>,
    /// When the table was published (for staleness ages).
    pub published: Option<SystemTime>,
    pub stale_policy: Option<(StalePolicy, Duration)>,
    /// Total shards over all services, kept by the writer (see [`Snapshot::shard_count`]).
    pub shards: usize,
}

impl Snapshot {
    pub fn service(&self, namespace: &str, name: &str) -> Option<&Arc<FederatedService>> {
        self.services.get(&ObjectKey::new(namespace, name))
    }

    pub fn ingress(&self, namespace: &str, name: &str) -> Option<&Arc<FederatedIngress>> {
        self.ingresses.get(&ObjectKey::new(namespace, name))
    }

    pub fn route(&self, namespace: &str, name: &str) -> Option<&Arc<FederatedRoute>> {
        self.routes.get(&ObjectKey::new(namespace, name))
    }

    /// Every object that routes HTTP hosts and paths: Ingresses in key order, then
    /// HTTPRoutes in key order. DNS and the proxy read hosts through this one accessor,
    /// so both kinds publish the same names and routes, and an Ingress wins a host and
    /// path that an HTTPRoute also claims.
    pub fn http_sources(&self) -> impl Iterator<Item = (HttpKind, &Arc<FederatedIngress>)> {
        let ingresses = self.ingresses.values().map(|i| (HttpKind::Ingress, i));
        ingresses.chain(self.routes.values().map(|r| (HttpKind::HttpRoute, r)))
    }

    /// Total shards over all services. O(1): the writer counts as it goes, because the
    /// metrics read this after every publish and a sum over 100,000 shards per publish
    /// made each small batch cost O(table).
    pub fn shard_count(&self) -> usize {
        self.shards
    }

    /// Whether answers may use a stale shard at all, given the configured policy and
    /// how long its cluster has been Offline. `Fallback` is decided by the caller, who
    /// knows whether a fresh healthy shard exists.
    pub fn stale_servable(&self, cluster: &str) -> bool {
        let Some((policy, max_age)) = self.stale_policy else {
            return true;
        };
        if policy == StalePolicy::Drop {
            return false;
        }
        match self.clusters.get(cluster).map(|c| &c.state) {
            Some(ClusterState::Offline { since, .. }) => since.elapsed().map_or(true, |age| age <= max_age),
            _ => true,
        }
    }

    /// The shards of `svc` that answers should use, applying health, the stale policy and
    /// fail-open: healthy fresh shards, then (by policy) healthy stale ones; when none is
    /// healthy and `fail_open`, every servable shard.
    pub fn usable_shards<'a>(&self, shards: &'a [Arc<Shard>], fail_open: bool) -> Vec<&'a Arc<Shard>> {
        let policy = self.stale_policy.map_or(StalePolicy::Serve, |p| p.0);
        let servable = |s: &&Arc<Shard>| !s.stale || self.stale_servable(&s.cluster.name);
        let healthy_fresh: Vec<_> = shards.iter().filter(|s| !s.stale && s.is_healthy()).collect();
        let healthy_stale = || shards.iter().filter(|s| s.stale && s.is_healthy()).filter(servable);
        let healthy: Vec<_> = match policy {
            StalePolicy::Drop => healthy_fresh,
            StalePolicy::Serve => shards.iter().filter(|s| s.is_healthy()).filter(servable).collect(),
            StalePolicy::Fallback if healthy_fresh.is_empty() => healthy_stale().collect(),
            StalePolicy::Fallback => healthy_fresh,
        };
        if !healthy.is_empty() || !fail_open {
            return healthy;
        }
        shards.iter().filter(servable).filter(|s| s.has_address()).collect()
    }
}

/// One change for the writer.
#[derive(Debug, Clone)]
pub enum Update {
    /// Add or replace a cluster's metadata (config load/reload, node labels).
    Cluster(Arc<ClusterMeta>),
    /// A cluster left the configuration: drop it and all its shards.
    RemoveCluster(Arc<str>),
    State {
        cluster: Arc<str>,
        state: ClusterState,
    },
    /// The shard of `key` in `cluster`; `None` removes it.
    Service {
        cluster: Arc<str>,
        key: ObjectKey,
        shard: Option<Shard>,
    },
    Ingress {
        cluster: Arc<str>,
        key: ObjectKey,
        shard: Option<IngressShard>,
    },
    /// The shard of the HTTPRoute `key` in `cluster`; `None` removes it.
    Route {
        cluster: Arc<str>,
        key: ObjectKey,
        shard: Option<IngressShard>,
    },
    Export {
        cluster: Arc<str>,
        key: ObjectKey,
        present: bool,
    },
    /// Every object of one kind that a cluster has after a full list: anything else of
    /// that kind from this cluster is removed (deleted while nobody was watching).
    Resync {
        cluster: Arc<str>,
        kind: Kind,
        keys: Vec<ObjectKey>,
    },
    Probe {
        cluster: Arc<str>,
        key: ObjectKey,
        probe: Probe,
    },
    StalePolicy(StalePolicy, Duration),
}

/// The kinds of object a cluster contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Services,
    Ingresses,
    /// HTTPRoutes (with a usable parent Gateway).
    Routes,
    Exports,
}

/// What changed in one published batch, for subscribers that update incrementally.
#[derive(Debug, Clone, Default)]
pub struct Change {
    pub version: u64,
    pub services: Vec<ObjectKey>,
    pub ingresses: Vec<ObjectKey>,
    /// HTTPRoutes whose shards changed.
    pub routes: Vec<ObjectKey>,
    /// Cluster metadata, state or the stale policy changed: anything may have changed.
    pub everything: bool,
}

impl Change {
    /// One change naming every object any of `changes` names (sorted, once each), at the
    /// newest version.
    pub fn merged<'a>(changes: impl IntoIterator<Item = &'a Change>) -> Change {
        let mut all = Change::default();
        for c in changes {
            all.version = all.version.max(c.version);
            all.services.extend(c.services.iter().cloned());
            all.ingresses.extend(c.ingresses.iter().cloned());
            all.routes.extend(c.routes.iter().cloned());
            all.everything |= c.everything;
        }
        all.normalize();
        all
    }

    fn normalize(&mut self) {
        self.services.sort();
        self.services.dedup();
        self.ingresses.sort();
        self.ingresses.dedup();
        self.routes.sort();
        self.routes.dedup();
    }

    /// Some Ingress or HTTPRoute changed: host and path routing may have changed.
    pub fn touches_http(&self) -> bool {
        !self.ingresses.is_empty() || !self.routes.is_empty()
    }
}

/// The read side of the table: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Table {
    inner: Arc<Shared>,
}

struct Shared {
    current: ArcSwap<Snapshot>,
    version: watch::Sender<u64>,
    changes: broadcast::Sender<Arc<Change>>,
}

impl Table {
    /// Creates an empty table and its only writer.
    pub fn new() -> (Table, TableWriter) {
        let (version, _) = watch::channel(0);
        let (changes, _) = broadcast::channel(1024);
        let inner = Arc::new(Shared { current: ArcSwap::from_pointee(Snapshot::default()), version, changes });
        (Table { inner: inner.clone() }, TableWriter { inner, working: Snapshot::default() })
    }

    /// The current snapshot. Lock-free; holding it keeps that version alive.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.inner.current.load_full()
    }

    /// A cheaper guard for very short reads on hot paths.
    pub fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.inner.current.load()
    }

    /// Notified with the version of every published snapshot (latest value only).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Every published change, in order. A subscriber that lags gets `Lagged` and should
    /// rebuild from the snapshot.
    pub fn changes(&self) -> broadcast::Receiver<Arc<Change>> {
        self.inner.changes.subscribe()
    }

    /// Waits until `pred` holds for a snapshot (for tests and start-up), or the timeout.
    pub async fn wait_for(&self, timeout: Duration, pred: impl Fn(&Snapshot) -> bool) -> bool {
        let mut rx = self.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if pred(&self.snapshot()) {
                return true;
            }
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => return pred(&self.snapshot()),
            }
        }
    }
}

/// The only writer. Not `Clone`: all updates funnel through one owner (see
/// `meridian_discovery::registry`, which runs it behind a channel).
pub struct TableWriter {
    inner: Arc<Shared>,
    working: Snapshot,
}

impl TableWriter {
    /// Applies a batch and publishes one new snapshot (if anything changed).
    pub fn apply(&mut self, updates: impl IntoIterator<Item = Update>) -> Option<u64> {
        let mut change = Change::default();
        let mut dirty = false;
        for u in updates {
            dirty |= self.apply_one(u, &mut change);
        }
        if !dirty {
            return None;
        }
        self.working.version += 1;
        self.working.published = Some(SystemTime::now());
        change.version = self.working.version;
        change.normalize();
        self.inner.current.store(Arc::new(self.working.clone()));
        let _ = self.inner.changes.send(Arc::new(change));
        self.inner.version.send_replace(self.working.version);
        Some(self.working.version)
    }

    /// The writer's own view (what the next snapshot will be built from).
    pub fn working(&self) -> &Snapshot {
        &self.working
    }

    /// Applies one update to the working snapshot, noting what changed; false when it
    /// changed nothing.
    fn apply_one(&mut self, u: Update, change: &mut Change) -> bool {
        let w = &mut self.working;
        match u {
            Update::Cluster(meta) => set_cluster(w, meta, change),
            Update::RemoveCluster(name) => remove_cluster(w, &name, change),
            Update::State { cluster, state } => set_state(w, &cluster, state, change),
            Update::Service { cluster, key, shard } => {
                let stale = cluster_offline(w, &cluster);
                let shard = shard.map(|mut s| {
                    s.stale = stale;
                    // Keep probe results across object updates: the checker owns them.
                    if let Some(old) = find_shard(w, &cluster, &key) {
                        s.probe = old.probe;
                    }
                    s
                });
                let changed = set_service_shard(w, &cluster, &key, shard);
                if changed {
                    change.services.push(key);
                }
                changed
            }
            Update::Ingress { cluster, key, shard } => {
                let stale = cluster_offline(w, &cluster);
                let shard = shard.map(|mut s| {
                    s.stale = stale;
                    s
                });
                let changed = set_ingress_shard(w, &cluster, &key, shard);
                if changed {
                    change.ingresses.push(key);
                }
                changed
            }
            Update::Route { cluster, key, shard } => {
                let stale = cluster_offline(w, &cluster);
                let shard = shard.map(|mut s| {
                    s.stale = stale;
                    s
                });
                let changed = set_shard(&mut w.routes, &cluster, &key, shard);
                if changed {
                    change.routes.push(key);
                }
                changed
            }
            Update::Export { cluster, key, present } => {
                let changed = set_export(w, &cluster, &key, present);
                if changed {
                    change.services.push(key);
                }
                changed
            }
            Update::Resync { cluster, kind, keys } => resync(w, &cluster, kind, keys, change),
            Update::Probe { cluster, key, probe } => set_probe(w, &cluster, key, probe, change),
            Update::StalePolicy(policy, age) => {
                if w.stale_policy == Some((policy, age)) {
                    return false;
                }
                w.stale_policy = Some((policy, age));
                change.everything = true;
                true
            }
        }
    }
}

fn set_cluster(w: &mut Snapshot, meta: Arc<ClusterMeta>, change: &mut Change) -> bool {
    let name = meta.name.clone();
    let Some(entry) = w.clusters.get_mut(&name) else {
        // A new cluster has no objects yet, but readers list clusters.
        w.clusters.insert(name, ClusterEntry { meta, state: ClusterState::Pending });
        change.everything = true;
        return true;
    };
    if entry.meta == meta {
        return false;
    }
    // Region, zone and order decide which names exist and how shards sort: every answer
    // may change. Labels, weight or location only change the answers of this cluster's
    // own objects.
    let names_change =
        (&entry.meta.region, &entry.meta.zone, entry.meta.order) != (&meta.region, &meta.zone, meta.order);
    entry.meta = meta.clone();
    let svcs = restamp(&mut w.services, &name, |s| s.cluster = meta.clone());
    let ings = restamp(&mut w.ingresses, &name, |s| s.cluster = meta.clone());
    let routes = restamp(&mut w.routes, &name, |s| s.cluster = meta.clone());
    if names_change {
        change.everything = true;
    } else {
        change.services.extend(svcs);
        change.ingresses.extend(ings);
        change.routes.extend(routes);
    }
    true
}

fn remove_cluster(w: &mut Snapshot, name: &str, change: &mut Change) -> bool {
    if w.clusters.remove(name).is_none() {
        return false;
    }
    let svc_keys: Vec<_> = w.services.keys().cloned().collect();
    for k in svc_keys {
        set_service_shard(w, name, &k, None);
    }
    let ing_keys: Vec<_> = w.ingresses.keys().cloned().collect();
    for k in ing_keys {
        set_ingress_shard(w, name, &k, None);
    }
    let route_keys: Vec<_> = w.routes.keys().cloned().collect();
    for k in route_keys {
        set_shard(&mut w.routes, name, &k, None);
    }
    let export_keys: Vec<_> = w.exports.keys().cloned().collect();
    for k in export_keys {
        set_export(w, name, &k, false);
    }
    change.everything = true;
    true
}

fn set_state(w: &mut Snapshot, cluster: &str, state: ClusterState, change: &mut Change) -> bool {
    let Some(entry) = w.clusters.get_mut(cluster) else {
        return false;
    };
    let was_offline = matches!(entry.state, ClusterState::Offline { .. });
    let now_offline = matches!(state, ClusterState::Offline { .. });
    if was_offline && now_offline {
        // Keep the first `since` and reason: the outage started then.
        return false;
    }
    if entry.state == state {
        return false;
    }
    entry.state = state;
    // Only this cluster's shards depend on its state (through `stale`), so only their
    // objects are listed: a state change is not a full rebuild for incremental readers
    // (otherwise every cluster going Ready at start-up would rebuild the DNS index).
    if was_offline != now_offline {
        change.services.extend(restamp(&mut w.services, cluster, |s| s.stale = now_offline));
        change.ingresses.extend(restamp(&mut w.ingresses, cluster, |s| s.stale = now_offline));
        change.routes.extend(restamp(&mut w.routes, cluster, |s| s.stale = now_offline));
    }
    true
}

/// Removes what `cluster` no longer has of `kind` after a full list.
fn resync(w: &mut Snapshot, cluster: &str, kind: Kind, keys: Vec<ObjectKey>, change: &mut Change) -> bool {
    let keep: std::collections::BTreeSet<_> = keys.into_iter().collect();
    let gone = |present: &dyn Fn(&ObjectKey) -> bool, all: Vec<ObjectKey>| -> Vec<ObjectKey> {
        all.into_iter().filter(|k| !keep.contains(k) && present(k)).collect()
    };
    let mut any = false;
    match kind {
        Kind::Services => {
            let all = w.services.keys().cloned().collect();
            for k in gone(&|k| w.services.get(k).is_some_and(|v| v.shard(cluster).is_some()), all) {
                any |= set_service_shard(w, cluster, &k, None);
                change.services.push(k);
            }
        }
        Kind::Ingresses => {
            let all = w.ingresses.keys().cloned().collect();
            for k in gone(&|k| w.ingresses.get(k).is_some_and(|v| v.shard(cluster).is_some()), all) {
                any |= set_ingress_shard(w, cluster, &k, None);
                change.ingresses.push(k);
            }
        }
        Kind::Routes => {
            let all = w.routes.keys().cloned().collect();
            for k in gone(&|k| w.routes.get(k).is_some_and(|v| v.shard(cluster).is_some()), all) {
                any |= set_shard(&mut w.routes, cluster, &k, None);
                change.routes.push(k);
            }
        }
        Kind::Exports => {
            let all = w.exports.keys().cloned().collect();
            for k in gone(&|k| w.exports.get(k).is_some_and(|v| v.iter().any(|c| **c == *cluster)), all) {
                any |= set_export(w, cluster, &k, false);
                change.services.push(k);
            }
        }
    }
    any
}

fn set_probe(w: &mut Snapshot, cluster: &str, key: ObjectKey, probe: Probe, change: &mut Change) -> bool {
    let Some(old) = find_shard(w, cluster, &key) else {
        return false;
    };
    if old.probe == probe {
        return false;
    }
    let mut n = (*old).clone();
    n.probe = probe;
    set_service_shard(w, cluster, &key, Some(n));
    change.services.push(key);
    true
}

fn cluster_offline(w: &Snapshot, cluster: &str) -> bool {
    w.clusters.get(cluster).is_some_and(|c| matches!(c.state, ClusterState::Offline { .. }))
}

fn find_shard(w: &Snapshot, cluster: &str, key: &ObjectKey) -> Option<Arc<Shard>> {
    w.services.get(key)?.shard(cluster).cloned()
}

fn set_service_shard(w: &mut Snapshot, cluster: &str, key: &ObjectKey, shard: Option<Shard>) -> bool {
    let count = |w: &Snapshot| w.services.get(key).map_or(0, |s| s.shards.len());
    let before = count(w);
    let changed = set_shard(&mut w.services, cluster, key, shard);
    w.shards = w.shards + count(w) - before;
    changed
}

fn set_ingress_shard(w: &mut Snapshot, cluster: &str, key: &ObjectKey, shard: Option<IngressShard>) -> bool {
    set_shard(&mut w.ingresses, cluster, key, shard)
}

/// Replaces (or removes) one cluster's shard of an object; drops the object when its last
/// shard goes. Returns whether anything changed.
fn set_shard<T: InCluster + Clone>(
    map: &mut OrdMap<ObjectKey, Arc<Federated<T>>>,
    cluster: &str,
    key: &ObjectKey,
    shard: Option<T>,
) -> bool {
    let current = map.get(key);
    let pos = current.and_then(|s| s.shards.iter().position(|x| &*x.cluster().name == cluster));
    let mut shards = current.map(|s| s.shards.clone()).unwrap_or_default();
    match (pos, shard) {
        (None, None) => return false,
        (Some(i), Some(new)) if *shards[i] == new => return false,
        (Some(i), Some(new)) => shards[i] = Arc::new(new),
        (Some(i), None) => {
            shards.remove(i);
        }
        (None, Some(new)) => {
            let place = (new.cluster().order, &*new.cluster().name);
            let at = shards.partition_point(|s| (s.cluster().order, &*s.cluster().name) < place);
            shards.insert(at, Arc::new(new));
        }
    }
    if shards.is_empty() {
        map.remove(key);
    } else {
        map.insert(key.clone(), Arc::new(Federated { key: key.clone(), shards }));
    }
    true
}

fn set_export(w: &mut Snapshot, cluster: &str, key: &ObjectKey, present: bool) -> bool {
    let mut clusters = w.exports.get(key).cloned().unwrap_or_default();
    let has = clusters.iter().any(|c| &**c == cluster);
    if has == present {
        return false;
    }
    if present {
        clusters.push(cluster.into());
        clusters.sort();
    } else {
        clusters.retain(|c| &**c != cluster);
    }
    if clusters.is_empty() {
        w.exports.remove(key);
    } else {
        w.exports.insert(key.clone(), clusters);
    }
    true
}

/// Rewrites every shard of `cluster` in `map` with `f`, which edits a copy; returns the
/// keys of the objects it rewrote.
fn restamp<T: InCluster + Clone>(
    map: &mut OrdMap<ObjectKey, Arc<Federated<T>>>,
    cluster: &str,
    f: impl Fn(&mut T),
) -> Vec<ObjectKey> {
    let keys: Vec<_> = map.iter().filter(|(_, v)| v.shard(cluster).is_some()).map(|(k, _)| k.clone()).collect();
    for k in keys.iter().cloned() {
        if let Some(obj) = map.get(&k) {
            let mut obj = (**obj).clone();
            for s in obj.shards.iter_mut().filter(|s| &*s.cluster().name == cluster) {
                let mut n = (**s).clone();
                f(&mut n);
                *s = Arc::new(n);
            }
            map.insert(k, Arc::new(obj));
        }
    }
    keys
}

#[cfg(test)]
#[path = "table/tests.rs"]
mod tests;
