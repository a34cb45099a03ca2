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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use futures::stream::select_all;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use meridian_config::{ClusterConfig, Config};
use meridian_discovery::Discovery;
use meridian_discovery::table::ClusterState;
use parking_lot::{Mutex, RwLock};
use serde_json::{Map, Value, json};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::events::{self, Severity};
use crate::kinds::{self, KINDS, Kind, Workload};
use crate::metrics::Metrics;
use crate::planner;
use crate::queue::{ObjKey, Queue};
use crate::status::{Book, ClusterStatus, Leftover, ObjectStatus, State};
use crate::template::{self, DeletePolicy, FIELD_MANAGER, FINALIZER, STATUS_ANNOTATION};

/// Concurrent reconciles. Each one talks to every member, so a few suffice.
const WORKERS: usize = 4;
/// First retry after a failed reconcile; doubles up to `[sync] retry_max`.
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// How often the member registry and cluster states are compared with the running
/// member watchers.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);
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
    pub(crate) discovery: Arc<Discovery>,
    pub(crate) settings: RwLock<Arc<Settings>>,
    pub(crate) leader: watch::Receiver<bool>,
    pub(crate) queue: Queue,
    pub(crate) book: Mutex<Book>,
    pub(crate) metrics: Metrics,
    /// Every control-plane object seen by the watches, for full resyncs.
    known: Mutex<BTreeSet<ObjKey>>,
    /// When each pending deletion was first seen (local clock), for the deletion timeout.
    deleting_since: Mutex<HashMap<ObjKey, Instant>>,
}

impl Shared {
    pub(crate) fn new(
        host: Client,
        discovery: Arc<Discovery>,
        settings: Settings,
        leader: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        Self {
            host,
            discovery,
            settings: RwLock::new(Arc::new(settings)),
            leader,
            queue: Queue::default(),
            book: Mutex::new(Book::default()),
            metrics,
            known: Mutex::new(BTreeSet::new()),
            deleting_since: Mutex::new(HashMap::new()),
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
        self.deleting_since.lock().remove(key);
        self.known.lock().remove(key);
    }
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

/// A kube error as one line for status, events and logs.
fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string().lines().next().unwrap_or_default().to_owned(),
    }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
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
        let next = reconcile(&sh, &key).await;
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

/// Watches every federated type in the control plane.
async fn watch_host(sh: Arc<Shared>, shutdown: CancellationToken) {
    let streams = KINDS.iter().enumerate().map(|(i, k)| {
        let api: Api<DynamicObject> = Api::all_with(sh.host.clone(), &k.api_resource());
        watcher(api, watcher::Config::default()).default_backoff().map(move |ev| (i, ev)).boxed()
    });
    let mut all = select_all(streams);
    loop {
        let item = tokio::select! {
            () = shutdown.cancelled() => return,
            item = all.next() => item,
        };
        let Some((kind, ev)) = item else { return };
        match ev {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                let key = key_of(kind, &o);
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
}

/// Keeps one drift watcher per member, restarting it when the member's connection
/// changes, and resyncs everything when a member's state changes (a cluster that comes
/// back gets what it missed).
async fn supervise(sh: Arc<Shared>, shutdown: CancellationToken) {
    let mut running: HashMap<String, (ClusterConfig, JoinHandle<()>)> = HashMap::new();
    let mut states: BTreeMap<String, &'static str> = BTreeMap::new();
    loop {
        let members = sh.discovery.members();
        running.retain(|name, (cfg, task)| {
            let keep = members.get(name).is_some_and(|m| &m.config == cfg);
            if !keep {
                task.abort();
            }
            keep
        });
        for (name, m) in &members {
            if !running.contains_key(name) {
                let task = tokio::spawn(watch_member(sh.clone(), name.clone(), m.client.clone()));
                running.insert(name.clone(), (m.config.clone(), task));
            }
        }
        let snap = sh.discovery.table().snapshot();
        let now: BTreeMap<String, &'static str> =
            snap.clusters.iter().map(|(n, c)| (n.to_string(), c.state.name())).collect();
        if now != states {
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
    for (_, (_, task)) in running {
        task.abort();
    }
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
    Unreachable(String),
}

/// Brings one control-plane object's members in line with it.
async fn reconcile(sh: &Shared, key: &ObjKey) -> Next {
    let settings = sh.settings();
    if settings.excluded(key) {
        return Next::Done;
    }
    let kind = kinds::get(key.kind);
    let host_api = sh.host_api(kind, &key.namespace);
    let obj = match host_api.get_opt(&key.name).await {
        Ok(Some(o)) => to_value(&o),
        Ok(None) => {
            sh.forget(key);
            return Next::Done;
        }
        Err(e) => {
            warn!(object = %key, error = %short(&e), "cannot read the control-plane object");
            return Next::Retry;
        }
    };
    if template::meta_str(&obj, "deletionTimestamp").is_some() {
        return delete(sh, &settings, key, kind, &obj).await;
    }
    sh.deleting_since.lock().remove(key);
    let obj = if template::finalizers(&obj).iter().any(|f| f == FINALIZER) {
        obj
    } else {
        let mut fins = template::finalizers(&obj);
        fins.push(FINALIZER.to_owned());
        match patch_finalizers(&host_api, &key.name, &obj, fins).await {
            Ok(o) => o,
            Err(e) => {
                debug!(object = %key, error = %short(&e), "cannot add the finalizer; retrying");
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
                events::record(&sh.host, &obj, Severity::Warning, "InvalidAnnotation", &message).await;
            }
            let status = ObjectStatus { error: Some(message), ..previous };
            write_status_annotation(&host_api, key, &obj, &status).await;
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

    // Read every reachable member's copy, concurrently.
    let lives = futures::future::join_all(targets.iter().map(|t| async {
        if !t.ready {
            return Live::Unreachable("cluster is not Ready".into());
        }
        match api(&t.client, kind, &key.namespace).get_opt(&key.name).await {
            Ok(Some(o)) => Live::Present(to_value(&o)),
            Ok(None) => Live::Absent,
            Err(e) => Live::Unreachable(short(&e)),
        }
    }))
    .await;

    // Plan replicas over the placed, Ready clusters where Meridian may write.
    let writable = |live: &Live| match live {
        Live::Absent => true,
        Live::Present(v) => template::is_managed(v) || settings.adopt,
        Live::Unreachable(_) => false,
    };
    let plan: Option<BTreeMap<String, i64>> = (kind.workload == Workload::Replicated && !steering.retain_replicas)
        .then(|| {
            let names: Vec<&str> = targets
                .iter()
                .zip(&lives)
                .filter(|(t, l)| t.placed && writable(l))
                .map(|(t, _)| t.name.as_str())
                .collect();
            let current: BTreeMap<String, i64> = targets
                .iter()
                .zip(&lives)
                .filter_map(|(t, l)| match l {
                    Live::Present(v) if template::is_managed(v) => {
                        v.pointer("/spec/replicas").and_then(Value::as_i64).map(|r| (t.name.clone(), r))
                    }
                    _ => None,
                })
                .collect();
            let total = obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
            planner::plan(&steering.preferences, total, &names, &current, &format!("{}/{}", key.namespace, key.name))
        });

    let stripped = template::strip(kind, &obj);
    let uid = template::meta_str(&obj, "uid").unwrap_or_default().to_owned();
    let results = futures::future::join_all(targets.iter().zip(lives).map(|(t, live)| {
        let plan = &plan;
        let steering = &steering;
        let stripped = &stripped;
        let uid = &uid;
        let settings = &settings;
        let obj = &obj;
        async move {
            let replicas = plan.as_ref().map(|p| p.get(&t.name).copied().unwrap_or(0));
            let outcome = sync_member(
                sh,
                settings,
                key,
                kind,
                obj,
                t,
                live,
                stripped,
                replicas,
                steering.overrides.get(&t.name),
                uid,
            )
            .await;
            (t.name.clone(), outcome)
        }
    }))
    .await;

    let mut status = ObjectStatus { written_status: previous.written_status.clone(), ..ObjectStatus::default() };
    let mut retry = false;
    let mut member_status = Vec::new();
    for (cluster, outcome) in results {
        retry |= outcome.retry;
        if let Some(s) = outcome.status {
            let before = previous.clusters.get(&cluster);
            let changed = before.is_none_or(|b| b.state != s.state || b.message != s.message);
            if changed && s.state != State::Synced {
                let severity = if s.state == State::ClusterNotReady { Severity::Normal } else { Severity::Warning };
                let msg =
                    format!("cluster {cluster}: {}", s.message.as_deref().unwrap_or(s.state.reason(outcome.existed)));
                events::record(&sh.host, &obj, severity, s.state.reason(outcome.existed), &msg).await;
            }
            status.clusters.insert(cluster, s);
        }
        if let Some(v) = outcome.member_status {
            member_status.push(v);
        }
    }
    if kind.workload != Workload::None {
        let agg = aggregate(kind.workload, &member_status);
        if status.written_status.as_ref() != Some(&agg) {
            match host_api.patch_status(&key.name, &PatchParams::default(), &Patch::Merge(json!({"status": agg}))).await
            {
                Ok(_) => status.written_status = Some(agg.clone()),
                Err(e) => debug!(object = %key, error = %short(&e), "cannot write the aggregated status"),
            }
        }
        status.aggregated = Some(agg);
    }
    write_status_annotation(&host_api, key, &obj, &status).await;
    sh.set_status(key, status);
    if retry { Next::Retry } else { Next::Done }
}

/// What happened in one member.
struct MemberOutcome {
    /// `None`: the object has no business in this cluster (not placed, nothing there).
    status: Option<ClusterStatus>,
    retry: bool,
    /// The member had a copy before this reconcile (for event reasons).
    existed: bool,
    /// `.status` of the member's managed copy, for aggregation.
    member_status: Option<Value>,
}

impl MemberOutcome {
    fn state(state: State, message: Option<String>, replicas: Option<i64>, existed: bool) -> Self {
        Self {
            status: Some(ClusterStatus { state, message, replicas }),
            retry: state == State::ApplyFailed,
            existed,
            member_status: None,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn sync_member(
    sh: &Shared,
    settings: &Settings,
    key: &ObjKey,
    kind: &Kind,
    obj: &Value,
    t: &Target,
    live: Live,
    stripped: &Value,
    replicas: Option<i64>,
    overrides: Option<&json_patch::Patch>,
    uid: &str,
) -> MemberOutcome {
    let member_api = api(&t.client, kind, &key.namespace);
    let existing = match live {
        Live::Unreachable(reason) => {
            if !t.placed {
                return MemberOutcome { status: None, retry: false, existed: false, member_status: None };
            }
            let state = if t.ready { State::ApplyFailed } else { State::ClusterNotReady };
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
            match member_api.delete(&key.name, &DeleteParams::default()).await {
                Ok(_) => {
                    sh.metrics.write(&t.name, "delete");
                    let msg = format!("deleted from cluster {} (no longer placed there)", t.name);
                    events::record(&sh.host, obj, Severity::Normal, "DeleteInCluster", &msg).await;
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => {
                    let msg = template::redact(&short(&e), obj);
                    events::record(
                        &sh.host,
                        obj,
                        Severity::Warning,
                        "FailedDeleteInCluster",
                        &format!("cluster {}: {msg}", t.name),
                    )
                    .await;
                    return MemberOutcome { status: None, retry: true, existed: true, member_status: None };
                }
            }
        }
        return MemberOutcome { status: None, retry: false, existed: managed, member_status: None };
    }
    let existed = existing.is_some();
    if existing.is_some() && !managed && !settings.adopt {
        let msg = format!("an object of this name exists in cluster {} and is not managed by Meridian", t.name);
        return MemberOutcome::state(State::AlreadyExists, Some(msg), None, true);
    }
    let desired = match template::member_copy(kind, stripped, replicas, overrides, uid) {
        Ok(d) => d,
        Err(e) => return MemberOutcome::state(State::InvalidOverride, Some(e.to_string()), replicas, existed),
    };
    if let Some(live) = &existing
        && template::is_subset(&desired, live)
    {
        let mut out = MemberOutcome::state(State::Synced, None, replicas, true);
        out.member_status = live.get("status").cloned();
        return out;
    }
    if existing.is_none()
        && kind.namespaced
        && let Err(msg) = ensure_namespace(sh, t, &key.namespace).await
    {
        return MemberOutcome::state(State::ApplyFailed, Some(msg), replicas, false);
    }
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match member_api.patch(&key.name, &params, &Patch::Apply(&desired)).await {
        Ok(applied) => {
            let (action, reason) = if existed { ("update", "UpdateInCluster") } else { ("create", "CreateInCluster") };
            sh.metrics.write(&t.name, action);
            let verb = if existed { "updated in" } else { "created in" };
            let detail = replicas.map(|r| format!(" with {r} replicas")).unwrap_or_default();
            events::record(&sh.host, obj, Severity::Normal, reason, &format!("{verb} cluster {}{detail}", t.name))
                .await;
            info!(object = %key, cluster = %t.name, action, "propagated");
            let mut out = MemberOutcome::state(State::Synced, None, replicas, existed);
            out.member_status = to_value(&applied).get("status").cloned();
            out
        }
        Err(e) => {
            sh.metrics.write(&t.name, "failed");
            let msg = template::redact(&short(&e), obj);
            warn!(object = %key, cluster = %t.name, error = %msg, "member rejected the object");
            MemberOutcome::state(State::ApplyFailed, Some(msg), replicas, existed)
        }
    }
}

/// Creates the namespace in a member when it is missing, as a managed copy of the
/// control plane's Namespace, before a namespaced object is created there.
async fn ensure_namespace(sh: &Shared, t: &Target, ns: &str) -> Result<(), String> {
    let ns_kind = kinds::get(kinds::NAMESPACE);
    let member = api(&t.client, ns_kind, "");
    match member.get_opt(ns).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) => return Err(short(&e)),
    }
    let host_ns = sh.host_api(ns_kind, "").get_opt(ns).await.map_err(|e| short(&e))?;
    let template = match &host_ns {
        Some(o) => to_value(o),
        None => json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    };
    let ns_uid = template::meta_str(&template, "uid").unwrap_or_default().to_owned();
    let copy = template::member_copy(ns_kind, &template::strip(ns_kind, &template), None, None, &ns_uid)
        .map_err(|e| e.to_string())?;
    member
        .patch(ns, &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&copy))
        .await
        .map_err(|e| format!("cannot create namespace {ns}: {}", short(&e)))?;
    sh.metrics.write(&t.name, "create");
    Ok(())
}

/// Status counts summed over the members' copies.
fn aggregate(workload: Workload, statuses: &[Value]) -> Value {
    let fields: &[&str] = match workload {
        Workload::Replicated => {
            &["replicas", "readyReplicas", "availableReplicas", "updatedReplicas", "fullyLabeledReplicas"]
        }
        Workload::Daemon => &[
            "desiredNumberScheduled",
            "currentNumberScheduled",
            "numberReady",
            "numberAvailable",
            "updatedNumberScheduled",
            "numberMisscheduled",
        ],
        Workload::None => &[],
    };
    let mut out = Map::new();
    for f in fields {
        let present: Vec<i64> = statuses.iter().filter_map(|s| s.get(*f).and_then(Value::as_i64)).collect();
        // Deployments have no fullyLabeledReplicas; write only counts some member reports,
        // but always the primary ones so a scale to zero shows as zero.
        if !present.is_empty() || matches!(*f, "replicas" | "readyReplicas" | "desiredNumberScheduled" | "numberReady")
        {
            out.insert((*f).to_owned(), json!(present.iter().sum::<i64>()));
        }
    }
    Value::Object(out)
}

/// Writes the `meridian.io/sync-status` annotation when it changed.
async fn write_status_annotation(host_api: &Api<DynamicObject>, key: &ObjKey, obj: &Value, s: &ObjectStatus) {
    let text = s.annotation().to_string();
    if template::annotation(obj, STATUS_ANNOTATION) == Some(text.as_str()) {
        return;
    }
    let patch = json!({"metadata": {"annotations": {STATUS_ANNOTATION: text}}});
    if let Err(e) = host_api.patch(&key.name, &PatchParams::default(), &Patch::Merge(patch)).await {
        debug!(object = %key, error = %short(&e), "cannot write the status annotation");
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
/// release the finalizer. Members that cannot be reached block the release until the
/// deletion timeout; then their copies are reported as leftovers.
async fn delete(sh: &Shared, settings: &Settings, key: &ObjKey, kind: &Kind, obj: &Value) -> Next {
    let fins = template::finalizers(obj);
    if !fins.iter().any(|f| f == FINALIZER) {
        return Next::Done;
    }
    let since = *sh.deleting_since.lock().entry(key.clone()).or_insert_with(Instant::now);
    let mut policy = template::delete_policy(obj);
    if policy == DeletePolicy::Orphan && kind.namespaced {
        // Objects deleted because their namespace is: the namespace's deletion decides.
        let ns_kind = kinds::get(kinds::NAMESPACE);
        if let Ok(Some(ns)) = sh.host_api(ns_kind, "").get_opt(&key.namespace).await {
            let ns = to_value(&ns);
            if template::meta_str(&ns, "deletionTimestamp").is_some() {
                policy = template::delete_policy(&ns);
            }
        }
    }
    let members = sh.discovery.members();
    let snap = sh.discovery.table().snapshot();
    let mut blocked: Vec<(String, String)> = Vec::new();
    for (name, m) in &members {
        let ready = snap.clusters.get(name.as_str()).is_some_and(|c| c.state == ClusterState::Ready);
        if !ready {
            blocked.push((name.clone(), "cluster is not Ready".into()));
            continue;
        }
        let member_api = api(&m.client, kind, &key.namespace);
        let live = match member_api.get_opt(&key.name).await {
            Ok(Some(o)) => to_value(&o),
            Ok(None) => continue,
            Err(e) => {
                blocked.push((name.clone(), short(&e)));
                continue;
            }
        };
        if !template::is_managed(&live) {
            continue;
        }
        let result = match policy {
            DeletePolicy::Cascade => member_api.delete(&key.name, &DeleteParams::background()).await.map(|_| ()),
            DeletePolicy::Orphan => member_api
                .patch(&key.name, &PatchParams::default(), &Patch::Merge(template::unmark_patch()))
                .await
                .map(|_| ()),
        };
        let (verb, reason, action) = match policy {
            DeletePolicy::Cascade => ("deleted from", "DeleteInCluster", "delete"),
            DeletePolicy::Orphan => ("orphaned in", "OrphanInCluster", "orphan"),
        };
        match result {
            Ok(()) => {
                sh.metrics.write(name, action);
                info!(object = %key, cluster = %name, action, "deletion propagated");
                events::record(&sh.host, obj, Severity::Normal, reason, &format!("{verb} cluster {name}")).await;
            }
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                let msg = template::redact(&short(&e), obj);
                events::record(
                    &sh.host,
                    obj,
                    Severity::Warning,
                    &format!("Failed{reason}"),
                    &format!("cluster {name}: {msg}"),
                )
                .await;
                blocked.push((name.clone(), msg));
            }
        }
    }
    // Clusters removed from the registry that had a copy are left behind at once.
    let previous = sh.book.lock().objects.get(key).cloned().unwrap_or_default();
    let mut leftovers: Vec<(String, String)> = previous
        .clusters
        .iter()
        .filter(|(c, s)| !members.contains_key(*c) && s.state == State::Synced)
        .map(|(c, _)| (c.clone(), "cluster was removed from the configuration".to_owned()))
        .collect();
    if kind.kind == "Namespace" && namespace_has_federated_objects(sh, &key.name).await {
        // Its objects finish first, each by its own rules; the namespace waits for them.
        return Next::CheckAfter(DELETION_RECHECK);
    }
    if !blocked.is_empty() {
        let waited = since.elapsed();
        if waited < settings.deletion_timeout {
            return Next::CheckAfter(DELETION_RECHECK.min(settings.deletion_timeout - waited));
        }
        leftovers.extend(blocked);
    }
    if !leftovers.is_empty() {
        let list: Vec<String> = leftovers.iter().map(|(c, r)| format!("{c} ({r})")).collect();
        let msg =
            format!("released after {:?} with copies possibly left in: {}", settings.deletion_timeout, list.join(", "));
        warn!(object = %key, clusters = %list.join(", "), "deletion timed out; leftovers reported");
        events::record(&sh.host, obj, Severity::Warning, "DeletionTimedOut", &msg).await;
        let mut book = sh.book.lock();
        for (cluster, reason) in leftovers {
            book.leftover(Leftover { object: key.to_string(), cluster, reason, at: SystemTime::now() });
        }
    }
    let rest: Vec<String> = fins.into_iter().filter(|f| f != FINALIZER).collect();
    match patch_finalizers(&sh.host_api(kind, &key.namespace), &key.name, obj, rest).await {
        Ok(_) => {
            sh.forget(key);
            Next::Done
        }
        Err(e) if is_not_found(&e) => Next::Done,
        Err(e) => {
            debug!(object = %key, error = %short(&e), "cannot release the finalizer; retrying");
            Next::Retry
        }
    }
}

async fn namespace_has_federated_objects(sh: &Shared, ns: &str) -> bool {
    for kind in KINDS.iter().filter(|k| k.namespaced) {
        let lp = ListParams::default().limit(50);
        match sh.host_api(kind, ns).list(&lp).await {
            Ok(list) => {
                if list.items.iter().any(|o| o.finalizers().iter().any(|f| f == FINALIZER)) {
                    return true;
                }
            }
            Err(e) if is_not_found(&e) => {}
            Err(_) => return true,
        }
    }
    false
}
