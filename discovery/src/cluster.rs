//! One member cluster's watchers: Services, EndpointSlices, Ingresses, Nodes and
//! ServiceExports, translated into table updates, plus the `/readyz` probe that decides
//! whether the cluster is Ready or Offline.
//!
//! Each cluster runs as one task that owns its local view of the objects. Watches
//! reconnect with backoff and resume from their resourceVersion; on `410 Gone` the
//! watcher relists, and objects missing from the new list are removed (see
//! [`Watched::finish_init`]).

use std::collections::hash_map::Entry;
use std::collections::{BTreeSet, HashMap};
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

use crate::metrics::Metrics;
use crate::shard::{self, SERVICE_NAME_LABEL, ServiceInfo, SliceInfo};
use crate::table::{ClusterMeta, ClusterState, Kind, ObjectKey, Update};

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
    /// A watcher failed; it retries by itself after a backoff.
    Error(&'static str, watcher::Error),
    /// A watch delivered nothing for this long; it has been restarted.
    Silent(&'static str, Duration),
}

/// Objects of one kind, with the bookkeeping for relists.
struct Watched<K> {
    objects: HashMap<ObjectKey, K>,
    /// Keys seen since the current relist started; `None` outside a relist.
    relisting: Option<BTreeSet<ObjectKey>>,
    /// The first full list has completed.
    synced: bool,
}

impl<K> Default for Watched<K> {
    fn default() -> Self {
        Self { objects: HashMap::new(), relisting: None, synced: false }
    }
}

impl<K> Watched<K> {
    fn apply(&mut self, key: ObjectKey, obj: K) {
        if let Some(seen) = &mut self.relisting {
            seen.insert(key.clone());
        }
        self.objects.insert(key, obj);
    }

    /// Ends a relist: returns the objects that were not listed again (deleted meanwhile).
    fn finish_init(&mut self) -> Vec<(ObjectKey, K)> {
        self.synced = true;
        let Some(seen) = self.relisting.take() else {
            return Vec::new();
        };
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

/// EndpointSlices by service, so refreshing one service reads its own slices.
///
/// Profile lesson (scale bench, 100 clusters × 1,000 services): finding a service's
/// slices by scanning every slice of the cluster made each go-live O(n²) — 10⁶ label
/// lookups per cluster, a quarter of Meridian's start-up CPU (`slice_service` + memcmp).
#[derive(Default)]
struct SliceIndex {
    by_service: HashMap<ObjectKey, BTreeSet<ObjectKey>>,
}

impl SliceIndex {
    fn link(&mut self, service: Option<&ObjectKey>, slice: &ObjectKey) {
        if let Some(svc) = service {
            self.by_service.entry(svc.clone()).or_default().insert(slice.clone());
        }
    }

    fn unlink(&mut self, service: Option<&ObjectKey>, slice: &ObjectKey) {
        let Some(svc) = service else { return };
        if let Entry::Occupied(mut e) = self.by_service.entry(svc.clone()) {
            e.get_mut().remove(slice);
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
    /// Shard keys currently published, to know what a removal must clear.
    published: BTreeSet<ObjectKey>,
    /// Services and slices have both been listed once: shards may be published.
    live: bool,
    tx: UnboundedSender<Update>,
}

impl ClusterView {
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

    /// Stores a slice; returns the services whose shard it may change (before and after a
    /// relabel).
    fn put_slice(&mut self, k: ObjectKey, slice: &EndpointSlice) -> Vec<ObjectKey> {
        let before = self.slices.objects.get(&k).and_then(|s| s.service.clone());
        let after = slice_service(slice);
        self.slice_index.unlink(before.as_ref(), &k);
        self.slice_index.link(after.as_ref(), &k);
        self.slices.apply(k, SliceEntry { service: after.clone(), info: SliceInfo::new(slice) });
        let mut touched: Vec<ObjectKey> = before.into_iter().chain(after).collect();
        touched.dedup();
        touched
    }

    /// Forgets a slice; returns its service.
    fn drop_slice(&mut self, k: &ObjectKey) -> Option<ObjectKey> {
        let old = self.slices.objects.remove(k)?;
        self.slice_index.unlink(old.service.as_ref(), k);
        old.service
    }

    fn exported(&self, key: &ObjectKey) -> bool {
        self.exports.objects.contains_key(key)
    }

    /// Recomputes and publishes the shard of one service.
    fn refresh_service(&mut self, key: &ObjectKey) {
        if !self.live {
            return;
        }
        let shard = self.services.objects.get(key).and_then(|svc| {
            let slices = self.slices_of(key);
            match shard::shard_of(&self.meta, svc, &slices, self.exported(key)) {
                Ok(s) => Some(s),
                Err(why) => {
                    debug!(cluster = %self.meta.name, service = %key, ?why, "service not federated");
                    None
                }
            }
        });
        if shard.is_some() {
            self.published.insert(key.clone());
        } else if !self.published.remove(key) {
            return;
        }
        self.send(Update::Service { cluster: self.name(), key: key.clone(), shard });
    }

    fn refresh_ingress(&self, key: &ObjectKey) {
        let shard = self
            .ingresses
            .objects
            .get(key)
            .and_then(|ing| shard::ingress_shard(&self.meta, ing, &self.settings.federate_annotation).ok());
        self.send(Update::Ingress { cluster: self.name(), key: key.clone(), shard });
    }

    /// Publishes every shard once services and slices are both listed, and clears what an
    /// earlier task of this cluster left in the table that no longer exists.
    fn maybe_go_live(&mut self) {
        if self.live || !(self.services.synced && self.slices.synced) {
            return;
        }
        self.live = true;
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
        use watcher::Event as E;
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
                match e {
                    E::Init => self.services.relisting = Some(BTreeSet::new()),
                    E::InitApply(o) | E::Apply(o) => {
                        let k = key_of(&o);
                        self.services.apply(k.clone(), ServiceInfo::new(&o, &self.settings.federate_annotation));
                        self.refresh_service(&k);
                    }
                    E::Delete(o) => {
                        let k = key_of(&o);
                        self.services.objects.remove(&k);
                        self.refresh_service(&k);
                    }
                    E::InitDone => {
                        for (k, _) in self.services.finish_init() {
                            self.refresh_service(&k);
                        }
                        self.maybe_go_live();
                    }
                }
            }
            Ev::Slice(e) => {
                metrics.watch_event(&cluster, "EndpointSlice");
                match e {
                    E::Init => self.slices.relisting = Some(BTreeSet::new()),
                    E::InitApply(o) | E::Apply(o) => {
                        // A slice may move between services only by relabelling: refresh both.
                        for svc in self.put_slice(key_of(&o), &o) {
                            self.refresh_service(&svc);
                        }
                    }
                    E::Delete(o) => {
                        let k = key_of(&o);
                        let svc = self.drop_slice(&k).or_else(|| slice_service(&o));
                        if let Some(svc) = svc {
                            self.refresh_service(&svc);
                        }
                    }
                    E::InitDone => {
                        let gone = self.slices.finish_init();
                        let mut touched = BTreeSet::new();
                        for (k, s) in gone {
                            self.slice_index.unlink(s.service.as_ref(), &k);
                            touched.extend(s.service);
                        }
                        for svc in touched {
                            self.refresh_service(&svc);
                        }
                        self.maybe_go_live();
                    }
                }
            }
            Ev::Ingress(e) => {
                metrics.watch_event(&cluster, "Ingress");
                match e {
                    E::Init => self.ingresses.relisting = Some(BTreeSet::new()),
                    E::InitApply(o) | E::Apply(o) => {
                        let k = key_of(&o);
                        self.ingresses.apply(k.clone(), o);
                        self.refresh_ingress(&k);
                    }
                    E::Delete(o) => {
                        let k = key_of(&o);
                        self.ingresses.objects.remove(&k);
                        self.refresh_ingress(&k);
                    }
                    E::InitDone => {
                        for (k, _) in self.ingresses.finish_init() {
                            self.refresh_ingress(&k);
                        }
                        let keys = self.ingresses.objects.keys().cloned().collect();
                        self.send(Update::Resync { cluster: self.name(), kind: Kind::Ingresses, keys });
                    }
                }
            }
            Ev::Node(e) => {
                metrics.watch_event(&cluster, "Node");
                match e {
                    E::Init => self.nodes.relisting = Some(BTreeSet::new()),
                    E::InitApply(o) | E::Apply(o) => self.nodes.apply(key_of(&o), o),
                    E::Delete(o) => {
                        self.nodes.objects.remove(&key_of(&o));
                    }
                    E::InitDone => {
                        self.nodes.finish_init();
                    }
                }
                self.refresh_meta();
            }
            Ev::Export(e) => {
                metrics.watch_event(&cluster, "ServiceExport");
                let mut touched = Vec::new();
                match e {
                    E::Init => self.exports.relisting = Some(BTreeSet::new()),
                    E::InitApply(o) | E::Apply(o) => {
                        let k = key_of(&o);
                        self.exports.apply(k.clone(), ());
                        touched.push((k, true));
                    }
                    E::Delete(o) => {
                        let k = key_of(&o);
                        self.exports.objects.remove(&k);
                        touched.push((k, false));
                    }
                    E::InitDone => {
                        touched.extend(self.exports.finish_init().into_iter().map(|(k, _)| (k, false)));
                        let keys = self.exports.objects.keys().cloned().collect();
                        self.send(Update::Resync { cluster: self.name(), kind: Kind::Exports, keys });
                    }
                }
                for (k, present) in touched {
                    self.send(Update::Export { cluster: self.name(), key: k.clone(), present });
                    self.refresh_service(&k);
                }
            }
        }
    }
}

/// Runs one cluster until the task is aborted.
pub(crate) async fn run(
    client: Client,
    meta: Arc<ClusterMeta>,
    settings: Settings,
    tx: UnboundedSender<Update>,
    metrics: Metrics,
    events: Arc<AtomicU64>,
) {
    let name = meta.name.clone();
    let _ = tx.send(Update::Cluster(meta.clone()));
    // Bumped by the probe each time the cluster turns Ready after being Offline.
    let (back, mut came_back) = tokio::sync::watch::channel(0u64);
    let probe = probe_loop(client.clone(), name.clone(), settings.clone(), tx.clone(), metrics.clone(), back);
    let silence = settings.watch_silence;
    let mut view = ClusterView {
        meta: meta.clone(),
        configured: meta,
        settings,
        services: Watched::default(),
        slices: Watched::default(),
        slice_index: SliceIndex::default(),
        ingresses: Watched::default(),
        nodes: Watched::default(),
        exports: Watched::default(),
        published: BTreeSet::new(),
        live: false,
        tx,
    };
    let watch = async {
        loop {
            let mut merged = futures::stream::select_all(watches(&client, silence));
            // Until the cluster comes back from Offline: then every watch may sit on a
            // connection that went silent during the outage, so all restart with a relist
            // (objects gone meanwhile are removed when it completes).
            loop {
                tokio::select! {
                    ev = merged.next() => {
                        let Some(ev) = ev else { return };
                        events.fetch_add(1, Ordering::Relaxed);
                        view.handle(ev, &metrics);
                    }
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
    };
    // One task for both, so aborting the cluster stops its probe too.
    tokio::join!(probe, watch);
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
    vec![
        watchdog("Service", silence, services),
        watchdog("EndpointSlice", silence, slices),
        watchdog("Ingress", silence, ingresses),
        watchdog("Node", silence, nodes),
        // Quiet for good where the CRD is missing: restarted only when the cluster is back.
        export_stream(client.clone()),
    ]
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
    let mut failures = 0u32;
    let mut state = ClusterState::Pending;
    let mut tick = tokio::time::interval(settings.probe_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let req = http::Request::get("/readyz").body(Vec::new());
        let result = match req {
            Ok(req) => tokio::time::timeout(settings.probe_timeout, client.request_text(req)).await,
            Err(e) => {
                warn!(cluster = %name, error = %e, "cannot build probe request");
                continue;
            }
        };
        let failure = match result {
            Ok(Ok(_)) => None,
            Ok(Err(e)) => Some(short_error(&e)),
            Err(_) => Some(format!("/readyz did not answer within {:?}", settings.probe_timeout)),
        };
        let next = match failure {
            None => {
                failures = 0;
                ClusterState::Ready
            }
            Some(reason) => {
                failures += 1;
                if failures < settings.offline_after && !matches!(state, ClusterState::Pending) {
                    continue;
                }
                match &state {
                    ClusterState::Offline { since, .. } => ClusterState::Offline { reason, since: *since },
                    _ => ClusterState::Offline { reason, since: SystemTime::now() },
                }
            }
        };
        if std::mem::discriminant(&next) != std::mem::discriminant(&state) {
            match &next {
                ClusterState::Ready => info!(cluster = %name, "cluster is Ready"),
                ClusterState::Offline { reason, .. } => {
                    warn!(cluster = %name, %reason, "cluster is Offline; keeping its last-known shards as stale")
                }
                ClusterState::Pending => {}
            }
            metrics.cluster_state(&name, &next);
            let _ = tx.send(Update::State { cluster: name.clone(), state: next.clone() });
            if matches!(state, ClusterState::Offline { .. }) && matches!(next, ClusterState::Ready) {
                back.send_modify(|n| *n += 1);
            }
        }
        state = next;
    }
}

/// One line naming the cause, without the request (and so without credentials). Kube's
/// own message is often only "client error (Connect)": the cause chain says why.
fn short_error(e: &kube::Error) -> String {
    if let kube::Error::Api(s) = e {
        return format!("API error {}: {}", s.code, s.message);
    }
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let text = c.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cause = c.source();
    }
    parts.join(": ").lines().next().unwrap_or("unknown error").to_owned()
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
}
