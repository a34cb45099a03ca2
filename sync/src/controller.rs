//! The sync controller: watches, the work queue's workers, and the reconcile of one
//! control-plane object against every member.
//!
//! Triggers: every change of a federated object in the control plane; every change of a
//! Meridian-managed copy in a member (drift: an edit or a delete there is undone); a
//! member becoming Ready; gaining the Lease; and a periodic resync. Reconciles run only
//! while this replica holds the Lease.
//!
//! A reconcile reads the object fresh from the control plane and each member copy fresh
//! from its member, so it never acts on a stale cache; a member copy that already
//! matches is not written, which is what lets watch events of Meridian's own writes
//! settle.
//!
//! Deadlines and isolation: every request has the `[sync] request_timeout` deadline
//! ([`crate::gate`]). A reconcile (and a deletion) talks to its members concurrently, so
//! a healthy member's write never waits for another member's answer; a member that is
//! not Ready, or whose gate is shut after a timeout, is skipped at once (logged, counted,
//! an Event when its state for the object changes) and reconciled again when it is back.
//! A worker thus waits at most one request timeout for a member that has just gone
//! silent, and not at all for one already known to be.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use futures::stream::select_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use meridian_config::{ClusterConfig, Config};
use meridian_discovery::Discovery;
use meridian_discovery::table::ClusterState;
use parking_lot::{Mutex, RwLock};
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::events::{self, Severity};
use crate::gate::{Gates, RequestError, short};
use crate::kinds::{self, KINDS, Kind, Workload};
use crate::metrics::Metrics;
use crate::planner;
use crate::queue::{ObjKey, Queue};
use crate::rollup::{self, StatusWrite};
use crate::status::{Book, ClusterStatus, Leftover, ObjectStatus, State};
use crate::template::{self, DeletePolicy, FIELD_MANAGER, FINALIZER, STATUS_ANNOTATION};

/// Concurrent reconciles. Each one talks to every member, so a few suffice.
const WORKERS: usize = 4;
/// First retry after a failed reconcile; doubles up to `[sync] retry_max`.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// How often the member registry and cluster states are compared with the running
/// member watchers.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);
/// How long an object deleted with its namespace waits for the namespace's watch event
/// before it decides without it (the namespace controller deletes the contents right
/// after marking the namespace, so that event is normally already in).
const NAMESPACE_WATCH_GRACE: Duration = Duration::from_millis(300);

/// How often a pending deletion is re-checked while members block it.
const DELETION_RECHECK: Duration = Duration::from_millis(500);

/// The part of the configuration the controller reads; swapped whole on reload.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    exclude: Vec<String>,
    adopt: bool,
    pub(crate) resync: Duration,
    deletion_timeout: Duration,
    retry_max: Duration,
    /// Deadline of every request to a member or the control plane.
    request_timeout: Duration,
    /// Member labels from the configuration, for placement selectors.
    labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl Settings {
    pub(crate) fn from_config(c: &Config) -> Self {
        Self {
            exclude: c.sync.exclude_namespaces.clone(),
            adopt: c.sync.adopt,
            resync: c.sync.resync_interval.as_std(),
            deletion_timeout: c.sync.deletion_timeout.as_std(),
            retry_max: c.sync.retry_max.as_std(),
            request_timeout: c.sync.request_timeout.as_std(),
            labels: c.clusters.iter().map(|cl| (cl.name.clone(), cl.labels.clone())).collect(),
        }
    }

    /// Objects that are not federated: those of excluded namespaces, and the `default`
    /// Namespace object itself, which every cluster has from birth and nobody manages
    /// (objects inside `default` are federated as usual).
    fn excluded(&self, key: &ObjKey) -> bool {
        if key.kind == kinds::NAMESPACE && key.name == BUILT_IN_NAMESPACE {
            return true;
        }
        let ns = if key.kind == kinds::NAMESPACE { &key.name } else { &key.namespace };
        self.exclude.iter().any(|e| e == ns)
    }
}

/// The namespace every Kubernetes cluster is created with.
const BUILT_IN_NAMESPACE: &str = "default";

/// State shared by the controller's tasks and the [`crate::Sync`] handle.
pub(crate) struct Shared {
    pub(crate) host: Client,
    /// The control plane's name in the configuration, for logs and metrics.
    host_name: String,
    pub(crate) discovery: Arc<Discovery>,
    pub(crate) settings: RwLock<Arc<Settings>>,
    pub(crate) leader: watch::Receiver<bool>,
    pub(crate) queue: Queue,
    pub(crate) book: Mutex<Book>,
    pub(crate) metrics: Metrics,
    /// Every control-plane object seen by the watches, for full resyncs.
    known: Mutex<BTreeSet<ObjKey>>,
    /// Pending deletions, for the deletion timeout and their Events.
    deleting: Mutex<HashMap<ObjKey, Deleting>>,
    /// The deletion policy of each control-plane object as the watch first showed it
    /// marked for deletion: the garbage collector may remove `foregroundDeletion` before a
    /// reconcile reads the object, so this is the first evidence, until it is latched in
    /// [`template::DELETION_ANNOTATION`] on the object.
    first_seen_deleting: Mutex<HashMap<ObjKey, DeletePolicy>>,
    /// Members skipped after a request timed out, until a probe gets an answer.
    pub(crate) gates: Gates,
}

/// A deletion waiting for members.
struct Deleting {
    /// When it was first seen (local clock): the deletion timeout counts from here.
    since: Instant,
    /// Members already reported (by an Event) as holding it up, so rechecks every
    /// [`DELETION_RECHECK`] do not repeat the Event.
    announced: BTreeSet<String>,
}

/// Why a member was left out of an object's reconcile or deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    /// Discovery has the cluster Offline or Pending.
    NotReady,
    /// A request timed out and no probe has been answered since.
    NotAnswering,
}

impl Shared {
    pub(crate) fn new(
        host: Client,
        host_name: String,
        discovery: Arc<Discovery>,
        settings: Settings,
        leader: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        Self {
            host,
            host_name,
            discovery,
            settings: RwLock::new(Arc::new(settings)),
            leader,
            queue: Queue::default(),
            book: Mutex::new(Book::default()),
            metrics,
            known: Mutex::new(BTreeSet::new()),
            deleting: Mutex::new(HashMap::new()),
            first_seen_deleting: Mutex::new(HashMap::new()),
            gates: Gates::default(),
        }
    }

    fn settings(&self) -> Arc<Settings> {
        self.settings.read().clone()
    }

    pub(crate) fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Queues every known control-plane object.
    pub(crate) fn enqueue_all(&self) {
        let keys: Vec<ObjKey> = self.known.lock().iter().cloned().collect();
        for k in keys {
            self.queue.add(k);
        }
    }

    fn host_api(&self, kind: &Kind, ns: &str) -> Api<DynamicObject> {
        api(&self.host, kind, ns)
    }

    fn set_status(&self, key: &ObjKey, status: ObjectStatus) {
        let mut b = self.book.lock();
        b.objects.insert(key.clone(), status);
        self.metrics.objects(b.objects.len());
    }

    fn forget(&self, key: &ObjKey) {
        let mut b = self.book.lock();
        b.objects.remove(key);
        self.metrics.objects(b.objects.len());
        drop(b);
        self.deleting.lock().remove(key);
        self.first_seen_deleting.lock().remove(key);
        self.known.lock().remove(key);
    }

    /// Sends one request to member `cluster` under the request deadline, unless its gate
    /// is shut. A timeout shuts the gate, so the next requests skip the member at once.
    async fn member<T>(
        &self,
        cluster: &str,
        op: &'static str,
        key: &ObjKey,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, RequestError> {
        if let Err(after) = self.gates.check(cluster) {
            return Err(RequestError::Skipped(after));
        }
        let settings = self.settings();
        let limit = settings.request_timeout;
        match tokio::time::timeout(limit, request).await {
            Ok(r) => r.map_err(RequestError::Api),
            Err(_) => {
                self.metrics.timed_out(cluster, op);
                info!(cluster = %cluster, object = %key, op, timeout = ?limit, "member request timed out");
                if self.gates.shut(cluster, limit, Instant::now(), settings.retry_max) {
                    info!(
                        cluster = %cluster,
                        timeout = ?limit,
                        "cluster stopped answering; every reconcile skips it until a probe gets an answer"
                    );
                }
                Err(RequestError::TimedOut(limit))
            }
        }
    }

    /// Sends one request to the control plane under the request deadline.
    async fn host<T>(
        &self,
        op: &'static str,
        key: &ObjKey,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, RequestError> {
        let limit = self.settings().request_timeout;
        match tokio::time::timeout(limit, request).await {
            Ok(r) => r.map_err(RequestError::Api),
            Err(_) => {
                self.metrics.timed_out(&self.host_name, op);
                info!(cluster = %self.host_name, object = %key, op, timeout = ?limit, "control-plane request timed out");
                Err(RequestError::TimedOut(limit))
            }
        }
    }

    /// Records an Event on a control-plane object, under the request deadline.
    async fn event(&self, obj: &Value, severity: Severity, reason: &str, message: &str) {
        let limit = self.settings().request_timeout;
        if tokio::time::timeout(limit, events::record(&self.host, obj, severity, reason, message)).await.is_err() {
            self.metrics.timed_out(&self.host_name, "event");
            info!(cluster = %self.host_name, reason, timeout = ?limit, "control-plane request timed out (Event)");
        }
    }

    /// Logs and counts a member left out of `key`'s reconcile or deletion. `again`: the
    /// same deletion was already reported waiting for this member (it is rechecked every
    /// [`DELETION_RECHECK`]), so the line goes to debug instead of info.
    fn skipped(&self, cluster: &str, key: &ObjKey, why: Skip, again: bool) {
        let (label, reason) = match why {
            Skip::NotReady => ("not_ready", "the cluster is not Ready"),
            Skip::NotAnswering => ("not_answering", "an earlier request got no answer"),
        };
        self.metrics.skipped(cluster, label);
        if again {
            debug!(cluster = %cluster, object = %key, reason, "member skipped");
        } else {
            info!(cluster = %cluster, object = %key, reason, "member skipped");
        }
    }
}

/// The state to report for a member whose request failed.
fn failed_state(e: &RequestError) -> State {
    if e.is_unanswered() { State::NotAnswering } else { State::ApplyFailed }
}

fn api(client: &Client, kind: &Kind, ns: &str) -> Api<DynamicObject> {
    let ar = kind.api_resource();
    if kind.namespaced { Api::namespaced_with(client.clone(), ns, &ar) } else { Api::all_with(client.clone(), &ar) }
}

fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

fn key_of(kind: usize, o: &DynamicObject) -> ObjKey {
    ObjKey { kind, namespace: o.namespace().unwrap_or_default(), name: o.name_any() }
}

/// What a worker does with a key after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Done,
    /// Failed: back off, then retry.
    Retry,
    /// Waiting on a deadline (a blocked deletion): look again after this long.
    CheckAfter(Duration),
}

/// Spawns the controller's tasks; they stop when `shutdown` is cancelled.
pub(crate) fn spawn(shared: Arc<Shared>, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        tasks.push(tokio::spawn(worker(shared.clone(), shutdown.clone())));
    }
    tasks.push(tokio::spawn(watch_host(shared.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(supervise(shared.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(resync(shared, shutdown)));
    tasks
}

async fn worker(sh: Arc<Shared>, shutdown: CancellationToken) {
    let mut leader = sh.leader.clone();
    loop {
        let key = tokio::select! {
            () = shutdown.cancelled() => return,
            k = sh.queue.next() => k,
        };
        let settings = sh.settings();
        if !sh.is_leader() {
            // Gaining the Lease queues everything again.
            sh.queue.done(&key, false, FIRST_RETRY, settings.retry_max);
            continue;
        }
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = reconcile(&sh, &key) => next,
            // A replica that lost the Lease stops writing at once, not after this
            // reconcile's requests (each up to a request timeout) are done.
            lost = async { leader.wait_for(|leading| !*leading).await.is_ok() } => {
                if !lost {
                    // The elector is gone: sync is shutting down.
                    return;
                }
                info!(object = %key, "lost the Lease; reconcile abandoned");
                sh.queue.done(&key, false, FIRST_RETRY, settings.retry_max);
                continue;
            }
        };
        sh.metrics.reconciled(next != Next::Retry);
        match next {
            Next::Done => sh.queue.done(&key, false, FIRST_RETRY, settings.retry_max),
            Next::Retry => sh.queue.done(&key, true, FIRST_RETRY, settings.retry_max),
            Next::CheckAfter(d) => {
                sh.queue.done(&key, false, FIRST_RETRY, settings.retry_max);
                sh.queue.add_after(key, d);
            }
        }
    }
}

/// Periodic full resync, and a full resync whenever this replica becomes leader.
async fn resync(sh: Arc<Shared>, shutdown: CancellationToken) {
    let mut leader = sh.leader.clone();
    let mut last = Instant::now();
    loop {
        let period = sh.settings().resync;
        tokio::select! {
            () = shutdown.cancelled() => return,
            changed = leader.changed() => {
                if changed.is_err() {
                    return;
                }
                let now_leader = *leader.borrow_and_update();
                sh.metrics.set_leader(now_leader);
                if now_leader {
                    info!("leading: syncing every federated object");
                    sh.enqueue_all();
                    last = Instant::now();
                }
            }
            () = tokio::time::sleep(period.saturating_sub(last.elapsed())) => {
                last = Instant::now();
                if sh.is_leader() {
                    sh.enqueue_all();
                }
            }
        }
    }
}

/// Watches every federated type in the control plane. The watch starts afresh when this
/// replica gains the Lease again after losing it: the loss may have been a silent
/// control plane, and a watch on a dead connection would never report new objects.
async fn watch_host(sh: Arc<Shared>, shutdown: CancellationToken) {
    let mut leader = sh.leader.clone();
    loop {
        let streams = KINDS.iter().enumerate().map(|(i, k)| {
            let api: Api<DynamicObject> = Api::all_with(sh.host.clone(), &k.api_resource());
            watcher(api, watcher::Config::default()).default_backoff().map(move |ev| (i, ev)).boxed()
        });
        let mut all = select_all(streams);
        let mut lost = false;
        loop {
            let item = tokio::select! {
                () = shutdown.cancelled() => return,
                changed = leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let leading = *leader.borrow_and_update();
                    if !leading {
                        lost = true;
                        continue;
                    }
                    if lost {
                        debug!("Lease regained: restarting the control-plane watch");
                        break;
                    }
                    continue;
                }
                item = all.next() => item,
            };
            let Some((kind, ev)) = item else { return };
            host_event(&sh, kind, ev);
        }
    }
}

/// One control-plane watch event: remember the object and queue it.
fn host_event(sh: &Shared, kind: usize, ev: Result<watcher::Event<DynamicObject>, watcher::Error>) {
    match ev {
        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
            let key = key_of(kind, &o);
            if o.metadata.deletion_timestamp.is_some() {
                let policy = template::delete_policy(&to_value(&o));
                sh.first_seen_deleting.lock().entry(key.clone()).or_insert(policy);
            }
            sh.known.lock().insert(key.clone());
            if sh.is_leader() {
                sh.queue.add(key);
            }
        }
        Ok(watcher::Event::Delete(o)) => {
            let key = key_of(kind, &o);
            if sh.is_leader() {
                sh.queue.add(key);
            } else {
                sh.forget(&key);
            }
        }
        Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
        Err(e) => debug!(kind = kinds::get(kind).kind, error = %e, "control-plane watch failed; retrying"),
    }
}

/// Keeps one drift watcher per member, probes members whose gate is shut, and resyncs
/// everything when a member's state changes or its gate opens (a cluster that comes back
/// gets what it missed). A member's watcher is started afresh when its connection
/// settings change, when it comes back from Offline and when its gate opens: the old
/// watch may sit on a connection that died silently, and would never report drift.
async fn supervise(sh: Arc<Shared>, shutdown: CancellationToken) {
    struct Running {
        config: ClusterConfig,
        /// The member's gate openings when this watcher started.
        openings: u64,
        task: JoinHandle<()>,
    }
    let mut running: HashMap<String, Running> = HashMap::new();
    let mut states: BTreeMap<String, &'static str> = BTreeMap::new();
    let mut probes: JoinSet<bool> = JoinSet::new();
    loop {
        let members = sh.discovery.members();
        sh.gates.retain(|name| members.contains_key(name));
        let mut reopened = false;
        while let Some(done) = probes.try_join_next() {
            reopened |= done.unwrap_or(false);
        }
        for name in sh.gates.due(Instant::now()) {
            if let Some(m) = members.get(&name) {
                probes.spawn(probe(sh.clone(), name, m.client.clone()));
            }
        }
        let snap = sh.discovery.table().snapshot();
        let now: BTreeMap<String, &'static str> =
            snap.clusters.iter().map(|(n, c)| (n.to_string(), c.state.name())).collect();
        running.retain(|name, r| {
            let back =
                states.get(name).is_some_and(|s| *s == "Offline") && now.get(name).is_some_and(|s| *s == "Ready");
            let keep = !back
                && r.openings == sh.gates.openings(name)
                && members.get(name).is_some_and(|m| m.config == r.config);
            if !keep {
                r.task.abort();
            }
            keep
        });
        for (name, m) in &members {
            if !running.contains_key(name) {
                let task = tokio::spawn(watch_member(sh.clone(), name.clone(), m.client.clone()));
                running.insert(
                    name.clone(),
                    Running { config: m.config.clone(), openings: sh.gates.openings(name), task },
                );
            }
        }
        if now != states || reopened {
            states = now;
            if sh.is_leader() {
                sh.enqueue_all();
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(SUPERVISE_EVERY) => {}
        }
    }
    for (_, r) in running {
        r.task.abort();
    }
}

/// Asks a member whose gate is shut for the `default` Namespace: a read through its
/// storage, like sync's own requests, and cheap. Any answer, an error status included,
/// opens the gate (errors are then handled per object, with their message); silence or
/// a failed connection keeps it shut. True when the gate opened.
async fn probe(sh: Arc<Shared>, cluster: String, client: Client) -> bool {
    let settings = sh.settings();
    let api = api(&client, kinds::get(kinds::NAMESPACE), "");
    let answered = match tokio::time::timeout(settings.request_timeout, api.get_opt(BUILT_IN_NAMESPACE)).await {
        Ok(Ok(_) | Err(kube::Error::Api(_))) => true,
        Ok(Err(e)) => {
            debug!(cluster = %cluster, error = %short(&e), "probe failed; the cluster stays skipped");
            false
        }
        Err(_) => {
            sh.metrics.timed_out(&cluster, "probe");
            info!(cluster = %cluster, timeout = ?settings.request_timeout, "member request timed out (probe); the cluster stays skipped");
            false
        }
    };
    let opened = sh.gates.probed(&cluster, answered, Instant::now(), settings.retry_max);
    if opened {
        info!(cluster = %cluster, "cluster answers again; reconciling every object");
    }
    opened
}

/// Watches Meridian-managed copies in one member: any change or deletion there queues
/// the control-plane object, whose reconcile undoes the drift.
async fn watch_member(sh: Arc<Shared>, cluster: String, client: Client) {
    let selector = format!("{}={}", template::MANAGED_LABEL, template::MANAGED_VALUE);
    let streams = KINDS.iter().enumerate().map(|(i, k)| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &k.api_resource());
        watcher(api, watcher::Config::default().labels(&selector)).default_backoff().map(move |ev| (i, ev)).boxed()
    });
    let mut all = select_all(streams);
    while let Some((kind, ev)) = all.next().await {
        match ev {
            Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                if sh.is_leader() {
                    sh.queue.add(key_of(kind, &o));
                }
            }
            Ok(_) => {}
            Err(e) => debug!(cluster = %cluster, error = %e, "member watch failed; retrying"),
        }
    }
}

/// One member as a reconcile sees it.
struct Target {
    name: String,
    client: Client,
    placed: bool,
    ready: bool,
}

/// What was found in one member before acting.
enum Live {
    Absent,
    Present(Value),
    /// Not read: skipped (`ClusterNotReady`, `NotAnswering`) or the read failed
    /// (`ApplyFailed`, `NotAnswering` after a timeout).
    Unreachable {
        state: State,
        reason: String,
    },
}

/// Brings one control-plane object's members in line with it.
async fn reconcile(sh: &Shared, key: &ObjKey) -> Next {
    let settings = sh.settings();
    if settings.excluded(key) {
        return Next::Done;
    }
    let kind = kinds::get(key.kind);
    let host_api = sh.host_api(kind, &key.namespace);
    let obj = match sh.host("get", key, host_api.get_opt(&key.name)).await {
        Ok(Some(o)) => to_value(&o),
        Ok(None) => {
            sh.forget(key);
            return Next::Done;
        }
        Err(e) => {
            warn!(object = %key, error = %e, "cannot read the control-plane object");
            return Next::Retry;
        }
    };
    if template::meta_str(&obj, "deletionTimestamp").is_some() {
        return delete(sh, &settings, key, kind, &obj).await;
    }
    sh.deleting.lock().remove(key);
    // Not being deleted (a deletion seen earlier was of an object since recreated).
    sh.first_seen_deleting.lock().remove(key);
    let obj = if template::finalizers(&obj).iter().any(|f| f == FINALIZER) {
        obj
    } else {
        let mut fins = template::finalizers(&obj);
        fins.push(FINALIZER.to_owned());
        match sh.host("finalizer", key, patch_finalizers(&host_api, &key.name, &obj, fins)).await {
            Ok(o) => o,
            Err(e) => {
                debug!(object = %key, error = %e, "cannot add the finalizer; retrying");
                return Next::Retry;
            }
        }
    };
    let previous = sh.book.lock().objects.get(key).cloned().unwrap_or_default();
    let steering = match template::steering(&obj) {
        Ok(s) => s,
        Err(e) => {
            let message = e.to_string();
            if previous.error.as_deref() != Some(&message) {
                warn!(object = %key, error = %message, "malformed annotation; object not propagated");
                sh.event(&obj, Severity::Warning, "InvalidAnnotation", &message).await;
            }
            let status = ObjectStatus { error: Some(message), ..previous };
            write_status_annotation(sh, &host_api, key, &obj, &status).await;
            sh.set_status(key, status);
            // Fixing the annotation is a change that queues the object again.
            return Next::Done;
        }
    };

    let members = sh.discovery.members();
    let snap = sh.discovery.table().snapshot();
    let targets: Vec<Target> = members
        .iter()
        .map(|(name, m)| {
            let labels = settings.labels.get(name).unwrap_or(&m.meta.labels);
            Target {
                name: name.clone(),
                client: m.client.clone(),
                placed: steering.placement.selects(name, labels),
                ready: snap.clusters.get(name.as_str()).is_some_and(|c| c.state == ClusterState::Ready),
            }
        })
        .collect();

    let desired = Desired {
        settings: &settings,
        key,
        kind,
        obj: &obj,
        stripped: template::strip(kind, &obj),
        uid: template::meta_str(&obj, "uid").unwrap_or_default().to_owned(),
        steering: &steering,
    };
    let results = if kind.workload == Workload::Replicated && !steering.retain_replicas {
        // The replica plan needs every member's copy (or its absence) before any write: a
        // member that has just gone silent delays this object's writes by at most one
        // request timeout (one already known to be silent, not at all).
        let lives = futures::future::join_all(targets.iter().map(|t| read_member(sh, key, kind, t))).await;
        let plan = plan_replicas(&settings, key, &obj, &steering.preferences, &targets, &lives);
        futures::future::join_all(
            targets
                .iter()
                .zip(lives)
                .map(|(t, live)| sync_member(sh, &desired, t, live, Some(plan.for_cluster(&t.name)))),
        )
        .await
    } else {
        // Each member is read and written on its own: no member's write waits for
        // another member's answer.
        futures::future::join_all(targets.iter().map(|t| async {
            let live = read_member(sh, key, kind, t).await;
            sync_member(sh, &desired, t, live, None).await
        }))
        .await
    };

    let mut status = ObjectStatus {
        written_status: previous.written_status.clone(),
        status_overwritten: previous.status_overwritten,
        ..ObjectStatus::default()
    };
    let mut retry = false;
    let mut copies = Vec::new();
    for (t, outcome) in targets.iter().zip(results) {
        let cluster = t.name.clone();
        retry |= outcome.retry;
        if let Some(mut s) = outcome.status {
            let before = previous.clusters.get(&cluster);
            let changed = before.is_none_or(|b| b.state != s.state || b.message != s.message);
            if changed && s.state != State::Synced {
                let severity = if s.state == State::ClusterNotReady { Severity::Normal } else { Severity::Warning };
                let msg =
                    format!("cluster {cluster}: {}", s.message.as_deref().unwrap_or(s.state.reason(outcome.existed)));
                sh.event(&obj, severity, s.state.reason(outcome.existed), &msg).await;
            }
            if rollup::applies(kind) {
                let counts = outcome.copy.as_ref().and_then(|c| c.get("status"));
                s.status = counts.map(|st| rollup::member_counts(kind, st));
            }
            status.clusters.insert(cluster, s);
        }
        copies.extend(outcome.copy);
    }
    if rollup::applies(kind) {
        let rolled = RollUp { key, obj: &obj, retain_replicas: steering.retain_replicas, copies: &copies };
        roll_up_status(sh, &host_api, &rolled, &previous, &mut status).await;
    }
    write_status_annotation(sh, &host_api, key, &obj, &status).await;
    sh.set_status(key, status);
    if retry { Next::Retry } else { Next::Done }
}

/// Reads `key`'s copy in one member, unless the member is skipped (not Ready, or its
/// gate shut); skips of placed members are logged and counted.
async fn read_member(sh: &Shared, key: &ObjKey, kind: &Kind, t: &Target) -> Live {
    if !t.ready {
        if t.placed {
            sh.skipped(&t.name, key, Skip::NotReady, false);
        }
        return Live::Unreachable { state: State::ClusterNotReady, reason: "cluster is not Ready".into() };
    }
    match sh.member(&t.name, "get", key, api(&t.client, kind, &key.namespace).get_opt(&key.name)).await {
        Ok(Some(o)) => Live::Present(to_value(&o)),
        Ok(None) => Live::Absent,
        Err(e) => {
            if t.placed && matches!(e, RequestError::Skipped(_)) {
                sh.skipped(&t.name, key, Skip::NotAnswering, false);
            }
            Live::Unreachable { state: failed_state(&e), reason: e.to_string() }
        }
    }
}

/// Plans a Deployment's or ReplicaSet's replicas over the placed clusters where Meridian
/// may write (read just now: Absent, or managed, or adoptable). A cluster's current
/// replicas, which the planner keeps without `rebalance`, are its copy's ready replicas,
/// as Federation v1 counted them.
fn plan_replicas(
    settings: &Settings,
    key: &ObjKey,
    obj: &Value,
    preferences: &planner::ReplicaPreferences,
    targets: &[Target],
    lives: &[Live],
) -> planner::Plan {
    let writable = |live: &Live| match live {
        Live::Absent => true,
        Live::Present(v) => template::is_managed(v) || settings.adopt,
        Live::Unreachable { .. } => false,
    };
    let names: Vec<&str> =
        targets.iter().zip(lives).filter(|(t, l)| t.placed && writable(l)).map(|(t, _)| t.name.as_str()).collect();
    let current: BTreeMap<String, i64> = targets
        .iter()
        .zip(lives)
        .filter_map(|(t, l)| match l {
            Live::Present(v) if writable(l) => {
                Some((t.name.clone(), v.pointer("/status/readyReplicas").and_then(Value::as_i64).unwrap_or(0)))
            }
            _ => None,
        })
        .collect();
    let request = planner::Request {
        total: obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
        clusters: &names,
        current: &current,
        // Meridian reads no pods, so it has no capacity estimate (see the planner).
        capacity: &BTreeMap::new(),
        key: &format!("{}/{}", key.namespace, key.name),
    };
    planner::plan(preferences, &request)
}

/// What happened in one member.
struct MemberOutcome {
    /// `None`: the object has no business in this cluster (not placed, nothing there).
    status: Option<ClusterStatus>,
    retry: bool,
    /// The member had a copy before this reconcile (for event reasons).
    existed: bool,
    /// The member's managed copy as last seen (read, or as the apply returned it), for
    /// the status roll-up.
    copy: Option<Value>,
}

impl MemberOutcome {
    fn state(state: State, message: Option<String>, replicas: Option<i64>, existed: bool) -> Self {
        Self {
            status: Some(ClusterStatus { state, message, replicas, planned_replicas: None, status: None }),
            retry: state == State::ApplyFailed,
            existed,
            copy: None,
        }
    }

    /// Nothing to report for this cluster.
    fn none(retry: bool, existed: bool) -> Self {
        Self { status: None, retry, existed, copy: None }
    }

    /// Records the plan's replicas when an override gave the copy a different number.
    fn planned(mut self, planned: Option<i64>) -> Self {
        if let Some(s) = &mut self.status
            && s.replicas != planned
        {
            s.planned_replicas = planned;
        }
        self
    }

    fn with_copy(mut self, copy: Value) -> Self {
        self.copy = Some(copy);
        self
    }
}

/// What one reconcile wants in every member, computed once.
struct Desired<'a> {
    settings: &'a Settings,
    key: &'a ObjKey,
    kind: &'a Kind,
    /// The control-plane object.
    obj: &'a Value,
    /// Its template: server-set fields and steering annotations removed.
    stripped: Value,
    uid: String,
    steering: &'a template::Steering,
}

/// Brings one member's copy in line with the template (`replicas` from the plan).
async fn sync_member(sh: &Shared, d: &Desired<'_>, t: &Target, live: Live, replicas: Option<i64>) -> MemberOutcome {
    let (settings, key, kind, obj) = (d.settings, d.key, d.kind, d.obj);
    let overrides = d.steering.overrides.get(&t.name);
    let member_api = api(&t.client, kind, &key.namespace);
    let existing = match live {
        Live::Unreachable { state, reason } => {
            if !t.placed {
                return MemberOutcome::none(false, false);
            }
            return MemberOutcome::state(state, Some(template::redact(&reason, obj)), replicas, false);
        }
        Live::Absent => None,
        Live::Present(v) => Some(v),
    };
    let managed = existing.as_ref().is_some_and(template::is_managed);
    if !t.placed {
        // Namespaces stay: removing one would take everything inside with it. Only a
        // cascading delete of the Namespace removes it from members.
        if managed && kind.kind != "Namespace" {
            match sh.member(&t.name, "delete", key, member_api.delete(&key.name, &DeleteParams::default())).await {
                Ok(_) => {
                    sh.metrics.write(&t.name, "delete");
                    let msg = format!("deleted from cluster {} (no longer placed there)", t.name);
                    sh.event(obj, Severity::Normal, "DeleteInCluster", &msg).await;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    let msg = template::redact(&e.to_string(), obj);
                    let msg = format!("cluster {}: {msg}", t.name);
                    sh.event(obj, Severity::Warning, "FailedDeleteInCluster", &msg).await;
                    return MemberOutcome::none(true, true);
                }
            }
        }
        return MemberOutcome::none(false, managed);
    }
    let existed = existing.is_some();
    if existing.is_some() && !managed && !settings.adopt {
        let msg = format!("an object of this name exists in cluster {} and is not managed by Meridian", t.name);
        return MemberOutcome::state(State::AlreadyExists, Some(msg), None, true);
    }
    let desired = match template::member_copy(kind, &d.stripped, replicas, overrides, &d.uid) {
        Ok(d) => d,
        Err(e) => return MemberOutcome::state(State::InvalidOverride, Some(e.to_string()), replicas, existed),
    };
    // What the copy is given, overrides included, and what the plan said.
    let replicas_given = if kind.workload == Workload::Replicated {
        desired.pointer("/spec/replicas").and_then(Value::as_i64)
    } else {
        None
    };
    let report =
        |state, message, existed| MemberOutcome::state(state, message, replicas_given, existed).planned(replicas);
    if let Some(live) = existing
        && template::is_subset(&desired, &live)
    {
        return report(State::Synced, None, true).with_copy(live);
    }
    if !existed
        && kind.namespaced
        && let Err((state, msg)) = ensure_namespace(sh, t, key).await
    {
        return report(state, Some(msg), false);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match sh.member(&t.name, "apply", key, member_api.patch(&key.name, &params, &Patch::Apply(&desired))).await {
        Ok(applied) => {
            let (action, reason) = if existed { ("update", "UpdateInCluster") } else { ("create", "CreateInCluster") };
            sh.metrics.write(&t.name, action);
            let verb = if existed { "updated in" } else { "created in" };
            let detail = replicas_given.map(|r| format!(" with {r} replicas")).unwrap_or_default();
            sh.event(obj, Severity::Normal, reason, &format!("{verb} cluster {}{detail}", t.name)).await;
            info!(object = %key, cluster = %t.name, action, "propagated");
            report(State::Synced, None, existed).with_copy(to_value(&applied))
        }
        Err(e) if e.is_unanswered() => {
            // Logged and counted where it timed out (or was skipped).
            report(State::NotAnswering, Some(e.to_string()), existed)
        }
        Err(e) => {
            sh.metrics.write(&t.name, "failed");
            let msg = template::redact(&e.to_string(), obj);
            warn!(object = %key, cluster = %t.name, error = %msg, "member rejected the object");
            report(State::ApplyFailed, Some(msg), existed)
        }
    }
}

/// Creates the namespace in a member when it is missing, as a managed copy of the
/// control plane's Namespace, before a namespaced object (`key`) is created there. On
/// failure, the state and message to report for `key` in this member.
async fn ensure_namespace(sh: &Shared, t: &Target, key: &ObjKey) -> Result<(), (State, String)> {
    let ns = key.namespace.as_str();
    let ns_kind = kinds::get(kinds::NAMESPACE);
    let member = api(&t.client, ns_kind, "");
    match sh.member(&t.name, "get", key, member.get_opt(ns)).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) => return Err((failed_state(&e), e.to_string())),
    }
    let host_ns = sh
        .host("get", key, sh.host_api(ns_kind, "").get_opt(ns))
        .await
        .map_err(|e| (State::ApplyFailed, format!("control plane: {e}")))?;
    let template = match &host_ns {
        Some(o) => to_value(o),
        None => json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    };
    let ns_uid = template::meta_str(&template, "uid").unwrap_or_default().to_owned();
    let copy = template::member_copy(ns_kind, &template::strip(ns_kind, &template), None, None, &ns_uid)
        .map_err(|e| (State::ApplyFailed, e.to_string()))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    sh.member(&t.name, "apply", key, member.patch(ns, &params, &Patch::Apply(&copy)))
        .await
        .map_err(|e| (failed_state(&e), format!("cannot create namespace {ns}: {e}")))?;
    sh.metrics.write(&t.name, "create");
    Ok(())
}

/// What a status roll-up needs from a reconcile.
struct RollUp<'a> {
    key: &'a ObjKey,
    /// The control-plane object, as read at the start of the reconcile.
    obj: &'a Value,
    retain_replicas: bool,
    /// The members' managed copies, as last seen.
    copies: &'a [Value],
}

/// Rolls the members' status up ([`rollup`]) into `status.aggregated`, for the
/// annotation, and into the control-plane object's `.status` through the status
/// subresource, unless it shows the roll-up already, or something else replaced the
/// roll-up last written (reported once: a workload controller in the control plane
/// would answer every write with one of its own).
async fn roll_up_status(
    sh: &Shared,
    host_api: &Api<DynamicObject>,
    r: &RollUp<'_>,
    previous: &ObjectStatus,
    status: &mut ObjectStatus,
) {
    let (key, obj) = (r.key, r.obj);
    let spec_replicas = |v: &Value| v.pointer("/spec/replicas").and_then(Value::as_i64);
    let (desired, placed) = if r.retain_replicas {
        // The members' autoscalers decide: the federation wants what they ask for.
        let wanted = r.copies.iter().filter_map(spec_replicas).sum();
        (wanted, wanted)
    } else {
        (spec_replicas(obj).unwrap_or(1), status.clusters.values().filter_map(|c| c.replicas).sum())
    };
    let members: Vec<Value> = r.copies.iter().filter_map(|c| c.get("status").cloned()).collect();
    let now = serde_json::to_value(Time(Timestamp::now())).ok().and_then(|v| v.as_str().map(str::to_owned));
    let live = obj.get("status");
    let rolled = rollup::roll_up(&rollup::Input {
        kind: kinds::get(key.kind),
        obj,
        members: &members,
        desired,
        placed,
        previous: previous.aggregated.as_ref().or(live),
        now: now.as_deref().unwrap_or_default(),
    });
    match rollup::decide(&rolled, live, status.written_status.as_ref()) {
        StatusWrite::Shown => {
            status.written_status = Some(rolled.clone());
            status.status_overwritten = false;
        }
        StatusWrite::Write => {
            let patch = Patch::Merge(json!({"status": rolled}));
            match sh.host("status", key, host_api.patch_status(&key.name, &PatchParams::default(), &patch)).await {
                Ok(_) => {
                    status.written_status = Some(rolled.clone());
                    status.status_overwritten = false;
                }
                Err(e) => debug!(object = %key, error = %e, "cannot write the rolled-up status"),
            }
        }
        StatusWrite::Overwritten if !status.status_overwritten => {
            status.status_overwritten = true;
            info!(object = %key, "the control plane's status of this object was replaced by another writer; not writing it again");
            let msg = format!(
                "another writer replaced the status Meridian rolled up from the member clusters (does a workload \
                 controller run in the control plane?); the roll-up stays in the {STATUS_ANNOTATION} annotation"
            );
            sh.event(obj, Severity::Warning, "StatusOverwritten", &msg).await;
        }
        StatusWrite::Overwritten => {}
    }
    status.aggregated = Some(rolled);
}

/// Writes the `meridian.io/sync-status` annotation when it changed.
async fn write_status_annotation(
    sh: &Shared,
    host_api: &Api<DynamicObject>,
    key: &ObjKey,
    obj: &Value,
    s: &ObjectStatus,
) {
    let text = s.annotation().to_string();
    if template::annotation(obj, STATUS_ANNOTATION) == Some(text.as_str()) {
        return;
    }
    let patch = Patch::Merge(json!({"metadata": {"annotations": {STATUS_ANNOTATION: text}}}));
    if let Err(e) = sh.host("status", key, host_api.patch(&key.name, &PatchParams::default(), &patch)).await {
        debug!(object = %key, error = %e, "cannot write the status annotation");
    }
}

/// Sets the finalizer list, conditional on the object not having changed meanwhile.
async fn patch_finalizers(
    api: &Api<DynamicObject>,
    name: &str,
    obj: &Value,
    finalizers: Vec<String>,
) -> Result<Value, kube::Error> {
    let rv = template::meta_str(obj, "resourceVersion").unwrap_or_default();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": rv}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|o| to_value(&o))
}

/// A control-plane object marked for deletion: cascade or orphan in every member, then
/// release the finalizer. Members are handled concurrently; one that is not Ready, does
/// not answer or fails blocks the release until the deletion timeout (reported once by
/// an Event), after which its copy is reported as left over. A silent member costs a
/// pass one request timeout (the request that finds it silent), and nothing once its
/// gate is shut, so it delays the release past the deletion timeout by at most that.
async fn delete(sh: &Shared, settings: &Settings, key: &ObjKey, kind: &Kind, obj: &Value) -> Next {
    let fins = template::finalizers(obj);
    if !fins.iter().any(|f| f == FINALIZER) {
        return Next::Done;
    }
    let since = sh
        .deleting
        .lock()
        .entry(key.clone())
        .or_insert_with(|| Deleting { since: Instant::now(), announced: BTreeSet::new() })
        .since;
    let host_api = sh.host_api(kind, &key.namespace);
    let latched = template::latched_policy(obj);
    let mut policy = latched.unwrap_or_else(|| first_policy(sh, key, obj));
    if latched.is_none() && policy == DeletePolicy::Orphan && kind.namespaced {
        // Objects deleted because their namespace is: the namespace's deletion decides.
        let ns_kind = kinds::get(kinds::NAMESPACE);
        let ns_key = ObjKey { kind: kinds::NAMESPACE, namespace: String::new(), name: key.namespace.clone() };
        if let Ok(Some(ns)) = sh.host("get", key, sh.host_api(ns_kind, "").get_opt(&key.namespace)).await {
            let ns = to_value(&ns);
            if template::meta_str(&ns, "deletionTimestamp").is_some() {
                let ns_known =
                    template::latched_policy(&ns).is_some() || sh.first_seen_deleting.lock().contains_key(&ns_key);
                if !ns_known && since.elapsed() < NAMESPACE_WATCH_GRACE {
                    // The namespace's own watch event (with its finalizers as the delete
                    // left them) is on its way; decide once it is in.
                    return Next::CheckAfter(NAMESPACE_WATCH_GRACE);
                }
                policy = template::latched_policy(&ns).unwrap_or_else(|| first_policy(sh, &ns_key, &ns));
            }
        }
    }
    // Latch the decision on the object: the GC's finalizers do not stay.
    let latched_obj;
    let obj = if latched.is_none() {
        let patch = Patch::Merge(template::latch_patch(policy));
        match sh.host("finalizer", key, host_api.patch(&key.name, &PatchParams::default(), &patch)).await {
            Ok(o) => {
                latched_obj = to_value(&o);
                &latched_obj
            }
            Err(e) if e.is_not_found() => return Next::Done,
            Err(e) => {
                debug!(object = %key, error = %e, "cannot latch the deletion decision; retrying");
                return Next::Retry;
            }
        }
    } else {
        obj
    };
    let fins = template::finalizers(obj);
    let members = sh.discovery.members();
    let snap = sh.discovery.table().snapshot();
    let announced = sh.deleting.lock().get(key).map(|d| d.announced.clone()).unwrap_or_default();
    let deletion = Deletion { key, kind, obj, policy };
    let outcomes = futures::future::join_all(members.iter().map(|(name, m)| async {
        let ready = snap.clusters.get(name.as_str()).is_some_and(|c| c.state == ClusterState::Ready);
        let again = announced.contains(name);
        let outcome = if ready {
            delete_in_member(sh, &deletion, name, &m.client, again).await
        } else {
            sh.skipped(name, key, Skip::NotReady, again);
            Err(Blocked { state: State::ClusterNotReady, reason: "cluster is not Ready".into() })
        };
        outcome.err().map(|b| (name.clone(), b))
    }))
    .await;
    let blocked: Vec<(String, Blocked)> = outcomes.into_iter().flatten().collect();
    // Say once per deletion which members hold it up (failures have their own Events).
    let fresh: Vec<(String, String)> = {
        let mut d = sh.deleting.lock();
        match d.get_mut(key) {
            Some(entry) => blocked
                .iter()
                .filter(|(_, b)| b.state != State::ApplyFailed)
                .filter(|(c, _)| entry.announced.insert(c.clone()))
                .map(|(c, b)| (c.clone(), b.reason.clone()))
                .collect(),
            None => Vec::new(),
        }
    };
    for (cluster, reason) in fresh {
        let msg = format!(
            "cluster {cluster}: {reason}; the deletion waits for it for at most {:?}",
            settings.deletion_timeout
        );
        sh.event(obj, Severity::Normal, "DeletionWaiting", &msg).await;
    }
    // Clusters removed from the registry that had a copy are left behind at once.
    let previous = sh.book.lock().objects.get(key).cloned().unwrap_or_default();
    let mut leftovers: Vec<(String, String)> = previous
        .clusters
        .iter()
        .filter(|(c, s)| !members.contains_key(*c) && s.state == State::Synced)
        .map(|(c, _)| (c.clone(), "cluster was removed from the configuration".to_owned()))
        .collect();
    if kind.kind == "Namespace" && namespace_has_federated_objects(sh, key).await {
        // Its objects finish first, each by its own rules; the namespace waits for them.
        return Next::CheckAfter(DELETION_RECHECK);
    }
    if !blocked.is_empty() {
        let waited = since.elapsed();
        if waited < settings.deletion_timeout {
            return Next::CheckAfter(DELETION_RECHECK.min(settings.deletion_timeout - waited));
        }
        leftovers.extend(blocked.into_iter().map(|(c, b)| (c, b.reason)));
    }
    if !leftovers.is_empty() {
        let list: Vec<String> = leftovers.iter().map(|(c, r)| format!("{c} ({r})")).collect();
        let msg =
            format!("released after {:?} with copies possibly left in: {}", settings.deletion_timeout, list.join(", "));
        warn!(object = %key, clusters = %list.join(", "), "deletion timed out; leftovers reported");
        sh.event(obj, Severity::Warning, "DeletionTimedOut", &msg).await;
        let mut book = sh.book.lock();
        for (cluster, reason) in leftovers {
            book.leftover(Leftover { object: key.to_string(), cluster, reason, at: SystemTime::now() });
        }
    }
    let rest: Vec<String> = fins.into_iter().filter(|f| f != FINALIZER).collect();
    match sh.host("finalizer", key, patch_finalizers(&host_api, &key.name, obj, rest)).await {
        Ok(_) => {
            sh.forget(key);
            Next::Done
        }
        Err(e) if e.is_not_found() => Next::Done,
        Err(e) => {
            debug!(object = %key, error = %e, "cannot release the finalizer; retrying");
            Next::Retry
        }
    }
}

/// The policy of a deletion not yet latched: what the watch first showed, else what the
/// object shows now.
fn first_policy(sh: &Shared, key: &ObjKey, obj: &Value) -> DeletePolicy {
    sh.first_seen_deleting.lock().get(key).copied().unwrap_or_else(|| template::delete_policy(obj))
}

/// Why a member holds a deletion up.
struct Blocked {
    /// `ClusterNotReady`, `NotAnswering` or `ApplyFailed`.
    state: State,
    reason: String,
}

/// The deletion of one control-plane object, as each member sees it.
struct Deletion<'a> {
    key: &'a ObjKey,
    kind: &'a Kind,
    obj: &'a Value,
    policy: DeletePolicy,
}

/// Cascades or orphans the copy in one Ready member. `Ok` when nothing is left to do
/// there. `again`: this member was already reported holding the deletion up.
async fn delete_in_member(
    sh: &Shared,
    d: &Deletion<'_>,
    cluster: &str,
    client: &Client,
    again: bool,
) -> Result<(), Blocked> {
    let (key, kind, obj, policy) = (d.key, d.kind, d.obj, d.policy);
    let blocked = |e: &RequestError| Blocked { state: failed_state(e), reason: template::redact(&e.to_string(), obj) };
    let member_api = api(client, kind, &key.namespace);
    let live = match sh.member(cluster, "get", key, member_api.get_opt(&key.name)).await {
        Ok(Some(o)) => to_value(&o),
        Ok(None) => return Ok(()),
        Err(e) => {
            if matches!(e, RequestError::Skipped(_)) {
                sh.skipped(cluster, key, Skip::NotAnswering, again);
            }
            return Err(blocked(&e));
        }
    };
    if !template::is_managed(&live) {
        return Ok(());
    }
    if policy == DeletePolicy::Cascade && template::meta_str(&live, "deletionTimestamp").is_some() {
        // Already being deleted there. A Namespace is done only once its contents are
        // (the member's namespace controller empties it): the control plane's waits.
        if kind.kind == "Namespace" {
            return Err(Blocked { state: State::Terminating, reason: "namespace is still terminating".into() });
        }
        return Ok(());
    }
    let result = match policy {
        DeletePolicy::Cascade => sh
            .member(cluster, "delete", key, member_api.delete(&key.name, &DeleteParams::background()))
            .await
            .map(|_| ()),
        DeletePolicy::Orphan => {
            let patch = Patch::Merge(template::unmark_patch());
            sh.member(cluster, "orphan", key, member_api.patch(&key.name, &PatchParams::default(), &patch))
                .await
                .map(|_| ())
        }
    };
    let (verb, reason, action) = match policy {
        DeletePolicy::Cascade => ("deleted from", "DeleteInCluster", "delete"),
        DeletePolicy::Orphan => ("orphaned in", "OrphanInCluster", "orphan"),
    };
    match result {
        Ok(()) => {
            sh.metrics.write(cluster, action);
            info!(object = %key, cluster = %cluster, action, "deletion propagated");
            sh.event(obj, Severity::Normal, reason, &format!("{verb} cluster {cluster}")).await;
            if policy == DeletePolicy::Cascade && kind.kind == "Namespace" {
                // Wait for the member's namespace controller to empty and remove it.
                return Err(Blocked { state: State::Terminating, reason: "namespace is still terminating".into() });
            }
            Ok(())
        }
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => {
            let b = blocked(&e);
            if b.state == State::ApplyFailed {
                let msg = format!("cluster {cluster}: {}", b.reason);
                sh.event(obj, Severity::Warning, &format!("Failed{reason}"), &msg).await;
            }
            Err(b)
        }
    }
}

async fn namespace_has_federated_objects(sh: &Shared, key: &ObjKey) -> bool {
    for kind in KINDS.iter().filter(|k| k.namespaced) {
        let lp = ListParams::default().limit(50);
        match sh.host("list", key, sh.host_api(kind, &key.name).list(&lp)).await {
            Ok(list) => {
                if list.items.iter().any(|o| o.finalizers().iter().any(|f| f == FINALIZER)) {
                    return true;
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(_) => return true,
        }
    }
    false
}
