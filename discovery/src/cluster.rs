//! One member cluster's watchers: Services, EndpointSlices, Ingresses, Nodes,
//! ServiceExports and the Gateway API's kinds (`gateways`), translated into table
//! updates, plus the `/readyz` probe that decides whether the cluster is Ready or
//! Offline.
//!
//! Each cluster runs as one task that owns its local view of the objects. Watches
//! reconnect with backoff and resume from their resourceVersion; on `410 Gone` the
//! watcher relists, and objects missing from the new list are removed when it completes
//! (see [`ListState`]).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures::{Stream, StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use tokio::sync::mpsc::UnboundedSender;
use tracing::{debug, info, warn};

use crate::causes;
use crate::lag::Lag;
use crate::lb_names::{self, NameUsers, Resolved, User, Via};
use crate::metrics::Metrics;
use crate::shard::{self, SERVICE_NAME_LABEL, ServiceInfo, SliceInfo};
use crate::table::{ClusterMeta, ClusterState, Kind, ObjectKey, Update};

mod gateways;

use gateways::{GatewayView, GwKind};

/// Topology labels on nodes, used when the config gives no region or zone.
const REGION_LABEL: &str = "topology.kubernetes.io/region";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// Settings a cluster task needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) probe_interval: Duration,
    pub(crate) probe_timeout: Duration,
    pub(crate) offline_after: u32,
    pub(crate) federate_annotation: String,
    /// A watch silent this long is restarted.
    pub(crate) watch_silence: Duration,
    /// `discovery.gateway_classes`: the classes (or controllers) whose Gateways count.
    pub(crate) gateway_classes: Vec<String>,
    /// How late Meridian's runtime runs: a probe timing out meanwhile is not counted.
    pub(crate) lag: Lag,
}

/// A watch event from any of the cluster's watchers. Variants differ in size, but each
/// event is handled at once, never stored, so boxing would only add allocations.
#[allow(clippy::large_enum_variant)]
enum Ev {
    Service(watcher::Event<Service>),
    Slice(watcher::Event<EndpointSlice>),
    Ingress(watcher::Event<Ingress>),
    Node(watcher::Event<Node>),
    Export(watcher::Event<DynamicObject>),
    GatewayApi(GwKind, watcher::Event<DynamicObject>),
    /// The cluster answered 404 (or 403) for a Gateway API kind: it does not serve it.
    NotServed(GwKind, u16),
    /// A watcher failed; it retries by itself after a backoff.
    Error(&'static str, watcher::Error),
    /// A watch delivered nothing for this long; it has been restarted.
    Silent(&'static str, Duration),
}

/// Where one kind's watch is in kube-runtime's list-then-watch cycle. A watcher starts
/// every (re)connection that cannot resume with a list (`Init`, `InitApply`…,
/// `InitDone`), and only at `InitDone` does a consumer know which objects are gone.
#[derive(Debug, PartialEq)]
enum ListState {
    /// Entered at start; left at the first `Init`. Nothing of this kind is known yet.
    Unlisted,
    /// Entered at the first `Init`; left at its `InitDone`. Holds the keys listed so far.
    Listing(BTreeSet<ObjectKey>),
    /// Entered when a list completes; left at the next `Init` (after `410 Gone`, a
    /// restart by the watchdog, or a cluster back from Offline). Events are changes.
    Watching,
    /// Entered at an `Init` after a completed list; left at its `InitDone`. Holds the
    /// keys listed again so far: the objects it does not list were deleted meanwhile.
    Relisting(BTreeSet<ObjectKey>),
}

impl ListState {
    /// True once a list has completed: the objects are the cluster's (or were, until
    /// the relist under way completes).
    fn listed(&self) -> bool {
        matches!(self, ListState::Watching | ListState::Relisting(_))
    }

    /// `Init`: a list begins.
    fn begin(&mut self) {
        *self = if self.listed() { ListState::Relisting(BTreeSet::new()) } else { ListState::Listing(BTreeSet::new()) };
    }

    /// An object arrived; during a list it counts as listed.
    fn saw(&mut self, key: &ObjectKey) {
        if let ListState::Listing(seen) | ListState::Relisting(seen) = self {
            seen.insert(key.clone());
        }
    }

    /// `InitDone`: returns the keys the list saw (`None` when no list was under way) and
    /// whether it was the first list to complete.
    fn finish(&mut self) -> (Option<BTreeSet<ObjectKey>>, bool) {
        let first = !self.listed();
        let seen = match std::mem::replace(self, ListState::Watching) {
            ListState::Listing(seen) | ListState::Relisting(seen) => Some(seen),
            ListState::Unlisted | ListState::Watching => None,
        };
        (seen, first)
    }
}

/// What one watch event did to the objects of a kind.
enum Step<K, V> {
    /// A list began; nothing changed yet.
    Began,
    /// An object was added or changed; `old` is what was stored for it before.
    Applied { key: ObjectKey, old: Option<V> },
    /// An object was deleted; `old` is what was stored for it, `obj` the last state the
    /// server sent.
    Deleted { key: ObjectKey, old: Option<V>, obj: K },
    /// A list completed: the objects it did not list, now removed, and whether it was
    /// this kind's first.
    Listed { gone: Vec<(ObjectKey, V)>, first: bool },
}

/// Objects of one kind (as `V`, what the task keeps of each), and the list state.
struct Watched<V> {
    objects: HashMap<ObjectKey, V>,
    list: ListState,
}

impl<V> Default for Watched<V> {
    fn default() -> Self {
        Self { objects: HashMap::new(), list: ListState::Unlisted }
    }
}

impl<V> Watched<V> {
    /// Applies one event, storing `keep(object)` for each object added or changed.
    fn follow<K: ResourceExt>(&mut self, ev: watcher::Event<K>, keep: impl FnOnce(K) -> V) -> Step<K, V> {
        match ev {
            watcher::Event::Init => {
                self.list.begin();
                Step::Began
            }
            watcher::Event::InitApply(obj) | watcher::Event::Apply(obj) => {
                let key = key_of(&obj);
                self.list.saw(&key);
                let old = self.objects.insert(key.clone(), keep(obj));
                Step::Applied { key, old }
            }
            watcher::Event::Delete(obj) => {
                let key = key_of(&obj);
                let old = self.objects.remove(&key);
                Step::Deleted { key, old, obj }
            }
            watcher::Event::InitDone => {
                let (seen, first) = self.list.finish();
                Step::Listed { gone: seen.map(|seen| self.remove_unseen(&seen)).unwrap_or_default(), first }
            }
        }
    }

    /// Removes and returns the objects whose keys are not in `seen`.
    fn remove_unseen(&mut self, seen: &BTreeSet<ObjectKey>) -> Vec<(ObjectKey, V)> {
        let gone: Vec<ObjectKey> = self.objects.keys().filter(|k| !seen.contains(*k)).cloned().collect();
        gone.into_iter().filter_map(|k| self.objects.remove(&k).map(|o| (k, o))).collect()
    }
}

fn key_of<K: ResourceExt>(obj: &K) -> ObjectKey {
    ObjectKey::new(obj.namespace().as_deref().unwrap_or(""), &obj.name_any())
}

/// The service an EndpointSlice belongs to.
fn slice_service(slice: &EndpointSlice) -> Option<ObjectKey> {
    let name = slice.labels().get(SERVICE_NAME_LABEL)?;
    Some(ObjectKey::new(slice.namespace().as_deref().unwrap_or(""), name))
}

/// What the task keeps of an EndpointSlice: its service and translated endpoints.
struct SliceEntry {
    service: Option<ObjectKey>,
    info: SliceInfo,
}

impl SliceEntry {
    fn new(slice: &EndpointSlice) -> Self {
        Self { service: slice_service(slice), info: SliceInfo::new(slice) }
    }
}

/// EndpointSlices by service, so refreshing one service reads its own slices. Finding a
/// service's slices by scanning every slice of the cluster made each go-live quadratic
/// in the cluster's size, and large clusters spent much of their start-up there.
/// A service has one slice or a few, so each list is a vector: a one-key B-tree set
/// allocates a whole node (eleven keys) per service.
#[derive(Default)]
struct SliceIndex {
    by_service: HashMap<ObjectKey, Vec<ObjectKey>>,
}

impl SliceIndex {
    fn link(&mut self, service: Option<&ObjectKey>, slice: &ObjectKey) {
        if let Some(svc) = service {
            let slices = self.by_service.entry(svc.clone()).or_default();
            if !slices.contains(slice) {
                // A first push would allocate room for four keys; most services have one slice.
                slices.reserve_exact(1);
                slices.push(slice.clone());
            }
        }
    }

    fn unlink(&mut self, service: Option<&ObjectKey>, slice: &ObjectKey) {
        let Some(svc) = service else { return };
        if let Entry::Occupied(mut e) = self.by_service.entry(svc.clone()) {
            e.get_mut().retain(|k| k != slice);
            if e.get().is_empty() {
                e.remove();
            }
        }
    }

    fn slices_of(&self, service: &ObjectKey) -> impl Iterator<Item = &ObjectKey> {
        self.by_service.get(service).into_iter().flatten()
    }
}

/// Watch backoff: quick first retries (a restarted API server is usually back within a
/// second), capped low enough that a cluster returning from an outage is resynced soon.
struct WatchBackoff {
    next: Duration,
}

impl WatchBackoff {
    const FIRST: Duration = Duration::from_millis(200);
    const MAX: Duration = Duration::from_secs(5);

    fn new() -> Self {
        Self { next: Self::FIRST }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let now = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        // Jitter so that many clusters failing together do not retry in lockstep.
        let jitter = rand::random_range(0.8..1.2);
        Some(now.mul_f64(jitter))
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

fn watch_stream<K>(api: Api<K>, wrap: fn(watcher::Event<K>) -> Ev, what: &'static str) -> BoxStream<'static, Ev>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    // The simulator and real servers both support bookmarks; they keep resume points fresh.
    let cfg = watcher::Config::default().timeout(290);
    watcher(api, cfg)
        .backoff(WatchBackoff::new())
        .map(move |r| match r {
            Ok(ev) => wrap(ev),
            Err(e) => Ev::Error(what, e),
        })
        .boxed()
}

fn export_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("multicluster.x-k8s.io", "v1alpha1", "ServiceExport"),
        "serviceexports",
    )
}

/// Everything the task knows about its cluster.
struct ClusterView {
    meta: Arc<ClusterMeta>,
    /// Region and zone from the config; node labels fill in what is missing.
    configured: Arc<ClusterMeta>,
    settings: Settings,
    /// Only what shards need of each object (see [`ServiceInfo`]).
    services: Watched<ServiceInfo>,
    slices: Watched<SliceEntry>,
    slice_index: SliceIndex,
    ingresses: Watched<Ingress>,
    nodes: Watched<Node>,
    exports: Watched<()>,
    /// GatewayClasses, Gateways and HTTPRoutes.
    gw: GatewayView,
    /// Shard keys currently published, to know what a removal must clear.
    published: BTreeSet<ObjectKey>,
    /// The hostnames of hostname-only load balancers, and what they resolve to.
    lb_names: NameUsers,
    tx: UnboundedSender<Update>,
}

impl ClusterView {
    fn new(meta: Arc<ClusterMeta>, settings: Settings, lb_names: NameUsers, tx: UnboundedSender<Update>) -> Self {
        Self {
            meta: meta.clone(),
            configured: meta,
            settings,
            services: Watched::default(),
            slices: Watched::default(),
            slice_index: SliceIndex::default(),
            ingresses: Watched::default(),
            nodes: Watched::default(),
            exports: Watched::default(),
            gw: GatewayView::default(),
            published: BTreeSet::new(),
            lb_names,
            tx,
        }
    }

    fn name(&self) -> Arc<str> {
        self.meta.name.clone()
    }

    fn send(&self, u: Update) {
        // The writer only stops at shutdown; losing updates then is harmless.
        let _ = self.tx.send(u);
    }

    fn slices_of(&self, key: &ObjectKey) -> Vec<&SliceInfo> {
        self.slice_index.slices_of(key).filter_map(|k| self.slices.objects.get(k)).map(|s| &s.info).collect()
    }

    fn exported(&self, key: &ObjectKey) -> bool {
        self.exports.objects.contains_key(key)
    }

    /// Shards are published once Services and EndpointSlices have both been listed: a
    /// Service seen before its slices would look like a shard without ready endpoints.
    fn live(&self) -> bool {
        self.services.list.listed() && self.slices.list.listed()
    }

    /// Recomputes and publishes the shard of one service.
    fn refresh_service(&mut self, key: &ObjectKey) {
        if !self.live() {
            return;
        }
        let mut shard = self.services.objects.get(key).and_then(|svc| {
            let slices = self.slices_of(key);
            match shard::shard_of(&self.meta, svc, &slices, self.exported(key)) {
                Ok(s) => Some(s),
                Err(why) => {
                    debug!(cluster = %self.meta.name, service = %key, ?why, "service not federated");
                    None
                }
            }
        });
        let names = shard.as_ref().filter(|s| s.addresses.is_empty()).map(|s| s.hostnames.clone());
        let resolved = self.lb_addresses(&(Via::Service, key.clone()), names.as_deref());
        if let Some(s) = shard.as_mut() {
            s.addresses.extend(resolved);
        }
        if shard.is_some() {
            self.published.insert(key.clone());
        } else if !self.published.remove(key) {
            return;
        }
        self.send(Update::Service { cluster: self.name(), key: key.clone(), shard });
    }

    /// The addresses a load balancer's `hostnames` resolve to now, when it publishes names
    /// and no IP (`None`: it uses no names: gone, given an IP, or publishing none); the
    /// names it uses are recorded either way, so a change of theirs refreshes it.
    fn lb_addresses(&mut self, user: &User, hostnames: Option<&[Arc<str>]>) -> Vec<IpAddr> {
        let (names, invalid) = lb_names::wanted(hostnames.unwrap_or_default());
        for e in invalid {
            debug!(cluster = %self.meta.name, object = %user.1, error = %e, "load-balancer hostname not resolved");
        }
        self.lb_names.set(user, names)
    }

    /// A name's addresses changed: refresh the Services and Ingresses it reaches.
    fn on_resolved(&mut self, r: Resolved) {
        for (via, key) in self.lb_names.resolved(r) {
            match via {
                Via::Service => self.refresh_service(&key),
                Via::Ingress => self.refresh_ingress(&key),
                Via::Route => self.refresh_route(&key),
            }
        }
    }

    fn refresh_ingress(&mut self, key: &ObjectKey) {
        let mut shard = self
            .ingresses
            .objects
            .get(key)
            .and_then(|ing| shard::ingress_shard(&self.meta, ing, &self.settings.federate_annotation).ok());
        let names = shard.as_ref().filter(|s| s.addresses.is_empty()).map(|s| s.hostnames.clone());
        let resolved = self.lb_addresses(&(Via::Ingress, key.clone()), names.as_deref());
        if let Some(s) = shard.as_mut() {
            s.addresses.extend(resolved);
        }
        self.send(Update::Ingress { cluster: self.name(), key: key.clone(), shard });
    }

    /// Publishes every shard (the cluster just became live), and clears what an earlier
    /// task of this cluster left in the table that no longer exists.
    fn go_live(&mut self) {
        let keys: Vec<ObjectKey> = self.services.objects.keys().cloned().collect();
        for k in &keys {
            self.refresh_service(k);
        }
        self.send(Update::Resync {
            cluster: self.name(),
            kind: Kind::Services,
            keys: self.published.iter().cloned().collect(),
        });
    }

    /// A list of Services or EndpointSlices completed, which removed the objects of the
    /// services `touched`. Before the cluster is live nothing of it is published, so the
    /// first list only decides whether it goes live now.
    fn after_list(&mut self, touched: impl IntoIterator<Item = ObjectKey>, first: bool) {
        if first {
            if self.live() {
                self.go_live();
            }
            return;
        }
        for svc in touched {
            self.refresh_service(&svc);
        }
    }

    /// Region and zone: the config's, else the first node's (by name) topology labels.
    fn refresh_meta(&mut self) {
        let mut nodes: Vec<&Node> = self.nodes.objects.values().collect();
        nodes.sort_by_key(|n| n.name_any());
        let label = |l: &str| -> Option<Arc<str>> {
            nodes.iter().find_map(|n| n.labels().get(l)).map(|v| Arc::from(v.as_str()))
        };
        let mut meta = (*self.configured).clone();
        if meta.region.is_none() {
            meta.region = label(REGION_LABEL);
        }
        if meta.zone.is_none() {
            meta.zone = label(ZONE_LABEL);
        }
        if meta != *self.meta {
            self.meta = Arc::new(meta);
            self.send(Update::Cluster(self.meta.clone()));
        }
    }

    fn handle(&mut self, ev: Ev, metrics: &Metrics) {
        let cluster = self.meta.name.clone();
        match ev {
            Ev::Error(what, e) => {
                metrics.watch_error(&cluster, what);
                debug!(%cluster, kind = what, error = %e, "watch failed; retrying");
            }
            Ev::Silent(what, after) => {
                metrics.watch_restart(&cluster, what, "silent");
                info!(%cluster, kind = what, ?after, "watch silent (no event or bookmark): restarted with a relist");
            }
            Ev::Service(e) => {
                metrics.watch_event(&cluster, "Service");
                self.on_service(e);
            }
            Ev::Slice(e) => {
                metrics.watch_event(&cluster, "EndpointSlice");
                self.on_slice(e);
            }
            Ev::Ingress(e) => {
                metrics.watch_event(&cluster, "Ingress");
                self.on_ingress(e);
            }
            Ev::Node(e) => {
                metrics.watch_event(&cluster, "Node");
                self.nodes.follow(e, |node| node);
                self.refresh_meta();
            }
            Ev::Export(e) => {
                metrics.watch_event(&cluster, "ServiceExport");
                self.on_export(e);
            }
            Ev::GatewayApi(kind, e) => {
                metrics.watch_event(&cluster, kind.what());
                self.on_gateway_api(kind, e);
            }
            Ev::NotServed(kind, code) => self.on_gateway_api_absent(kind, code),
        }
    }

    fn on_service(&mut self, ev: watcher::Event<Service>) {
        let federate = &self.settings.federate_annotation;
        match self.services.follow(ev, |svc| ServiceInfo::new(&svc, federate)) {
            Step::Began => {}
            Step::Applied { key, .. } | Step::Deleted { key, .. } => self.refresh_service(&key),
            Step::Listed { gone, first } => self.after_list(gone.into_iter().map(|(k, _)| k), first),
        }
    }

    fn on_slice(&mut self, ev: watcher::Event<EndpointSlice>) {
        match self.slices.follow(ev, |slice| SliceEntry::new(&slice)) {
            Step::Began => {}
            Step::Applied { key, old } => {
                // A slice moves between services only by relabelling: refresh both.
                let before = old.and_then(|s| s.service);
                let after = self.slices.objects.get(&key).and_then(|s| s.service.clone());
                self.slice_index.unlink(before.as_ref(), &key);
                self.slice_index.link(after.as_ref(), &key);
                let mut touched: Vec<ObjectKey> = before.into_iter().chain(after).collect();
                touched.dedup();
                for svc in touched {
                    self.refresh_service(&svc);
                }
            }
            Step::Deleted { key, old, obj } => {
                if let Some(old) = &old {
                    self.slice_index.unlink(old.service.as_ref(), &key);
                }
                // A slice the task never stored still names its service.
                if let Some(svc) = old.and_then(|s| s.service).or_else(|| slice_service(&obj)) {
                    self.refresh_service(&svc);
                }
            }
            Step::Listed { gone, first } => {
                let mut touched = BTreeSet::new();
                for (k, s) in gone {
                    self.slice_index.unlink(s.service.as_ref(), &k);
                    touched.extend(s.service);
                }
                self.after_list(touched, first);
            }
        }
    }

    fn on_ingress(&mut self, ev: watcher::Event<Ingress>) {
        match self.ingresses.follow(ev, |ing| ing) {
            Step::Began => {}
            Step::Applied { key, .. } | Step::Deleted { key, .. } => self.refresh_ingress(&key),
            Step::Listed { gone, .. } => {
                for (k, _) in gone {
                    self.refresh_ingress(&k);
                }
                let keys = self.ingresses.objects.keys().cloned().collect();
                self.send(Update::Resync { cluster: self.name(), kind: Kind::Ingresses, keys });
            }
        }
    }

    /// A Service's shard says whether it is exported, so each change refreshes it too.
    fn on_export(&mut self, ev: watcher::Event<DynamicObject>) {
        let touched: Vec<(ObjectKey, bool)> = match self.exports.follow(ev, |_| ()) {
            Step::Began => Vec::new(),
            Step::Applied { key, .. } => vec![(key, true)],
            Step::Deleted { key, .. } => vec![(key, false)],
            Step::Listed { gone, .. } => {
                let keys = self.exports.objects.keys().cloned().collect();
                self.send(Update::Resync { cluster: self.name(), kind: Kind::Exports, keys });
                gone.into_iter().map(|(k, ())| (k, false)).collect()
            }
        };
        for (k, present) in touched {
            self.send(Update::Export { cluster: self.name(), key: k.clone(), present });
            self.refresh_service(&k);
        }
    }
}

/// Runs one cluster until the task is aborted.
pub(crate) async fn run(
    client: Client,
    meta: Arc<ClusterMeta>,
    settings: Settings,
    lb_names: NameUsers,
    tx: UnboundedSender<Update>,
    metrics: Metrics,
    events: Arc<AtomicU64>,
) {
    let name = meta.name.clone();
    let _ = tx.send(Update::Cluster(meta.clone()));
    // Bumped by the probe each time the cluster turns Ready after being Offline.
    let (back, came_back) = tokio::sync::watch::channel(0u64);
    let probe = probe_loop(client.clone(), name, settings.clone(), tx.clone(), metrics.clone(), back);
    // A task of its own: in the watches' task it waited while they handled a burst of
    // events (a large list), timed out, and turned a busy but healthy cluster Offline.
    // Dropped with this task, so aborting the cluster stops its probe too.
    let _probe = AbortOnDrop(tokio::spawn(probe).abort_handle());
    let view = ClusterView::new(meta, settings, lb_names, tx);
    watch_loop(client, view, came_back, metrics, events).await;
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Feeds the view from the cluster's watches. When the cluster comes back from Offline
/// every watch may sit on a connection that went silent during the outage, so all
/// restart with a relist (objects gone meanwhile are removed when it completes).
async fn watch_loop(
    client: Client,
    mut view: ClusterView,
    mut came_back: tokio::sync::watch::Receiver<u64>,
    metrics: Metrics,
    events: Arc<AtomicU64>,
) {
    let name = view.name();
    loop {
        let mut merged = futures::stream::select_all(watches(&client, view.settings.watch_silence));
        loop {
            tokio::select! {
                ev = merged.next() => {
                    let Some(ev) = ev else { return };
                    events.fetch_add(1, Ordering::Relaxed);
                    view.handle(ev, &metrics);
                }
                resolved = view.lb_names.next() => view.on_resolved(resolved),
                changed = came_back.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
            }
        }
        metrics.watch_restart(&name, "all", "ready");
        info!(cluster = %name, "cluster is back: restarting its watches with a relist");
    }
}

/// The cluster's watches, merged: each restarts itself when silent for `silence`.
fn watches(client: &Client, silence: Duration) -> Vec<BoxStream<'static, Ev>> {
    let c = client.clone();
    let services = move || watch_stream(Api::<Service>::all(c.clone()), Ev::Service, "Service");
    let c = client.clone();
    let slices = move || watch_stream(Api::<EndpointSlice>::all(c.clone()), Ev::Slice, "EndpointSlice");
    let c = client.clone();
    let ingresses = move || watch_stream(Api::<Ingress>::all(c.clone()), Ev::Ingress, "Ingress");
    let c = client.clone();
    let nodes = move || watch_stream(Api::<Node>::all(c.clone()), Ev::Node, "Node");
    let mut all = vec![
        watchdog("Service", silence, services),
        watchdog("EndpointSlice", silence, slices),
        watchdog("Ingress", silence, ingresses),
        watchdog("Node", silence, nodes),
        // Quiet for good where the CRD is missing: restarted only when the cluster is back.
        export_stream(client.clone()),
    ];
    // Asked again every few minutes where the Gateway API is not served.
    all.extend(gateways::streams(client, silence));
    all
}

/// A watch that is replaced by a fresh one (which lists again) when nothing — no event,
/// no bookmark, no error — arrives for `silence`: the connection under it went silent.
fn watchdog<F>(what: &'static str, silence: Duration, make: F) -> BoxStream<'static, Ev>
where
    F: Fn() -> BoxStream<'static, Ev> + Send + 'static,
{
    let first = make();
    futures::stream::unfold((first, make), move |(mut inner, make)| async move {
        match tokio::time::timeout(silence, inner.next()).await {
            Ok(Some(ev)) => Some((ev, (inner, make))),
            Ok(None) => None,
            Err(_) => {
                drop(inner);
                let fresh = make();
                Some((Ev::Silent(what, silence), (fresh, make)))
            }
        }
    })
    .boxed()
}

/// ServiceExports are a CRD that many clusters do not have. While the API answers 404 for
/// them, look again once a minute instead of logging a failed watch every few seconds.
fn export_stream(client: Client) -> BoxStream<'static, Ev> {
    let ar = export_resource();
    let api: Api<DynamicObject> = Api::all_with(client, &ar);
    let cfg = watcher::Config::default().timeout(290);
    let stream = watcher(api, cfg).backoff(ExportBackoff::default()).filter_map(|r| async move {
        match r {
            Ok(ev) => Some(Ev::Export(ev)),
            Err(e) => {
                debug!(error = %e, "ServiceExport watch failed (CRD missing?)");
                None
            }
        }
    });
    boxed(stream)
}

fn boxed(s: impl Stream<Item = Ev> + Send + 'static) -> BoxStream<'static, Ev> {
    s.boxed()
}

#[derive(Default)]
struct ExportBackoff {
    failures: u32,
}

impl Iterator for ExportBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.failures += 1;
        Some(if self.failures < 3 { Duration::from_secs(1) } else { Duration::from_secs(60) })
    }
}

impl Backoff for ExportBackoff {
    fn reset(&mut self) {
        self.failures = 0;
    }
}

/// Probes `/readyz` and reports Ready/Offline transitions; bumps `back` when the cluster
/// turns Ready after being Offline.
async fn probe_loop(
    client: Client,
    name: Arc<str>,
    settings: Settings,
    tx: UnboundedSender<Update>,
    metrics: Metrics,
    back: tokio::sync::watch::Sender<u64>,
) {
    let mut readiness = Readiness { state: ClusterState::Pending, failures: 0 };
    let mut tick = tokio::time::interval(settings.probe_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(found) = readyz(&client, &name, settings.probe_timeout, &settings.lag).await else { continue };
        let Some(next) = readiness.next(found, settings.offline_after) else { continue };
        let previous = std::mem::replace(&mut readiness.state, next);
        let next = &readiness.state;
        if std::mem::discriminant(next) == std::mem::discriminant(&previous) {
            continue;
        }
        match next {
            ClusterState::Ready => info!(cluster = %name, "cluster is Ready"),
            ClusterState::Offline { reason, .. } => {
                warn!(cluster = %name, %reason, "cluster is Offline; keeping its last-known shards as stale")
            }
            ClusterState::Pending => {}
        }
        metrics.cluster_state(&name, next);
        let _ = tx.send(Update::State { cluster: name.clone(), state: next.clone() });
        if matches!(previous, ClusterState::Offline { .. }) && matches!(next, ClusterState::Ready) {
            back.send_modify(|n| *n += 1);
        }
    }
}

/// What one `/readyz` probe found.
enum Readyz {
    Answered,
    /// No answer, or an error; the reason is one line, fit for the Offline state.
    Failed(String),
}

/// One `/readyz` probe; `None` when no request could be built (logged), and when it
/// timed out while Meridian's own runtime ran late (see `lag`): that says nothing about
/// the cluster. Errors (refused, reset, TLS, HTTP) always count, and a cluster that
/// stops answering is found once Meridian keeps time again.
async fn readyz(client: &Client, name: &str, timeout: Duration, lag: &Lag) -> Option<Readyz> {
    let req = match http::Request::get("/readyz").body(Vec::new()) {
        Ok(req) => req,
        Err(e) => {
            warn!(cluster = %name, error = %e, "cannot build probe request");
            return None;
        }
    };
    let start = tokio::time::Instant::now();
    Some(match tokio::time::timeout(timeout, client.request_text(req)).await {
        Ok(Ok(_)) => Readyz::Answered,
        Ok(Err(e)) => Readyz::Failed(short_error(&e)),
        Err(_) => {
            lag.woke(start + timeout, tokio::time::Instant::now());
            if lag.late_since(start) {
                debug!(cluster = %name, "/readyz timed out while Meridian itself ran late; not counted");
                return None;
            }
            Readyz::Failed(format!("/readyz did not answer within {timeout:?}"))
        }
    })
}

/// A cluster's state as its probes found it.
struct Readiness {
    state: ClusterState,
    /// Failed probes in a row.
    failures: u32,
}

impl Readiness {
    /// The state after one probe, or `None` while the failures in a row are fewer than
    /// `offline_after` (one lost probe is noise); a cluster still Pending turns Offline
    /// at its first failure, so start-up does not wait on an unreachable one.
    fn next(&mut self, found: Readyz, offline_after: u32) -> Option<ClusterState> {
        let reason = match found {
            Readyz::Answered => {
                self.failures = 0;
                return Some(ClusterState::Ready);
            }
            Readyz::Failed(reason) => reason,
        };
        self.failures = self.failures.saturating_add(1);
        if self.failures < offline_after && !matches!(self.state, ClusterState::Pending) {
            return None;
        }
        let since = match &self.state {
            ClusterState::Offline { since, .. } => *since,
            _ => SystemTime::now(),
        };
        Some(ClusterState::Offline { reason, since })
    }
}

/// One line naming the cause, without the request (and so without credentials). Kube's
/// own message is often only "client error (Connect)": the cause chain says why.
fn short_error(e: &kube::Error) -> String {
    if let kube::Error::Api(s) = e {
        return format!("API error {}: {}", s.code, s.message);
    }
    causes::first_line(&causes::chain(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slice_index_follows_relabels_and_removals() {
        let (web, api) = (ObjectKey::new("default", "web"), ObjectKey::new("default", "api"));
        let (s1, s2) = (ObjectKey::new("default", "web-1"), ObjectKey::new("default", "web-2"));
        let mut idx = SliceIndex::default();
        idx.link(Some(&web), &s1);
        idx.link(Some(&web), &s2);
        idx.link(None, &s2);
        assert_eq!(idx.slices_of(&web).collect::<Vec<_>>(), [&s1, &s2]);
        // Relabel s2 to api.
        idx.unlink(Some(&web), &s2);
        idx.link(Some(&api), &s2);
        assert_eq!(idx.slices_of(&web).collect::<Vec<_>>(), [&s1]);
        assert_eq!(idx.slices_of(&api).collect::<Vec<_>>(), [&s2]);
        idx.unlink(Some(&web), &s1);
        assert_eq!(idx.slices_of(&web).count(), 0);
        assert!(!idx.by_service.contains_key(&web), "empty entries are dropped");
    }

    fn node(name: &str) -> Node {
        let mut n = Node::default();
        n.metadata.name = Some(name.into());
        n
    }

    /// Only the first completed list is the first; a relist keeps the objects (the kind
    /// stays listed) and, when it completes, removes those it did not list again.
    #[test]
    fn a_relist_removes_what_it_did_not_list_again() {
        use watcher::Event as E;
        let mut w: Watched<Node> = Watched::default();
        assert!(matches!(w.follow(E::Init, |n| n), Step::Began));
        assert!(!w.list.listed());
        w.follow(E::InitApply(node("a")), |n| n);
        w.follow(E::InitApply(node("b")), |n| n);
        let Step::Listed { gone, first } = w.follow(E::InitDone, |n| n) else { panic!("no list completed") };
        assert!(first && gone.is_empty());
        assert_eq!(w.list, ListState::Watching);
        w.follow(E::Init, |n| n);
        assert!(w.list.listed(), "a relist keeps serving what was listed");
        w.follow(E::InitApply(node("b")), |n| n);
        let Step::Listed { gone, first } = w.follow(E::InitDone, |n| n) else { panic!("no relist completed") };
        assert!(!first);
        assert_eq!(gone.into_iter().map(|(k, _)| k).collect::<Vec<_>>(), [ObjectKey::new("", "a")]);
        assert_eq!(w.objects.keys().collect::<Vec<_>>(), [&ObjectKey::new("", "b")]);
    }

    /// A deletion reports what was stored, even in the middle of a relist.
    #[test]
    fn a_delete_returns_what_was_stored() {
        use watcher::Event as E;
        let mut w: Watched<String> = Watched::default();
        w.follow(E::Apply(node("a")), |n| n.name_any());
        w.follow(E::<Node>::Init, |n| n.name_any());
        let Step::Deleted { key, old, .. } = w.follow(E::Delete(node("a")), |n| n.name_any()) else {
            panic!("not a deletion")
        };
        assert_eq!((key, old.as_deref()), (ObjectKey::new("", "a"), Some("a")));
        assert!(w.objects.is_empty());
    }
}
