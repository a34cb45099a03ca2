//! Active health checks of every shard address, from this Meridian instance.
//!
//! [`spawn`] starts one manager task. It follows the table (every change lists the
//! services to look at), keeps one probe task per (shard, address), and owns all
//! probe state: each result moves a small state machine ([`AddrState`]) with hysteresis,
//! and a shard's [`Probe`] goes back into the table through the writer's channel
//! ([`Update::Probe`]) only when its state changes or its round-trip time moves enough to
//! matter — the table is never republished per probe.
//!
//! What is probed, first match wins:
//! - the Service annotation `meridian.io/health-check`: `off`, `tcp`, `tcp:<port>`,
//!   `http:<path>`, `http:<port><path>`, `https:…` (e.g. `http:/healthz`,
//!   `https:8443/ready`); a malformed value is a [`Problem`] and the cluster's settings
//!   apply;
//! - `[health.clusters.<name>]`, then `[health]`.
//!
//! The port is the annotation's, else the Service's first TCP port. Shards without an IP
//! address (hostname-only load balancers) and headless shards are not probed.
//!
//! A shard is Up when any of its addresses is Up, Down when all are Down (a dual-stack
//! shard whose IPv6 path is broken from here still serves IPv4 clients). Its RTT is the
//! lowest RTT among its Up addresses, an address's RTT being the lowest TCP connect time
//! of its last five probes: connect time is one network round trip, free of the
//! backend's processing time, and the minimum leaves out the delays a busy host adds.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use meridian_config::Config;
use meridian_config::health::{CheckKind, CheckSettings, HealthConfig, StatusRange};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::rank::Problem;
use crate::table::{Change, ObjectKey, Probe, ProbeState, Protocol, Shard, Snapshot, Table, Update};

pub const HEALTH_CHECK_ANNOTATION: &str = "meridian.io/health-check";

/// An address's RTT is the lowest connect time of its last this many probes. Queueing
/// and a busy CPU only ever add to a connect time, so the minimum follows the path and
/// not the load: with an average, a DNS server saturating its core made every probe's
/// RTT "move", and the table republished ~170 shards a second, adding load where there
/// was none to spare. A slower path shows once all of the window's samples are slower.
const RTT_WINDOW: usize = 5;
/// An RTT-only change is published when the RTT moved by more than this share…
const RTT_CHANGE: f64 = 0.10;
/// …and by more than this much: below it the order of answers would follow jitter
/// (on loopback the RTT moved by 10% at nearly every probe, which republished every
/// shard at every probe and rebuilt its DNS names for nothing)…
const RTT_FLOOR: Duration = Duration::from_micros(500);
/// …and not more often than this per shard, whatever the jitter of the samples.
const RTT_MIN_PUBLISH: Duration = Duration::from_secs(2);
/// Most bytes read looking for the HTTP status line.
const STATUS_LINE_MAX: usize = 1024;
/// Results waiting for the manager; probe tasks wait when it is full.
const RESULT_QUEUE: usize = 4096;

/// What one address is checked with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSpec {
    pub kind: CheckKind,
    pub port: u16,
    pub path: String,
    pub expected_status: StatusRange,
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

/// The `meridian.io/health-check` annotation, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationCheck {
    pub kind: CheckKind,
    pub port: Option<u16>,
    pub path: Option<String>,
}

/// Parses `off`, `tcp[:port]`, `http[:[port][/path]]`, `https[:[port][/path]]`.
pub fn parse_annotation(value: &str) -> Result<AnnotationCheck, String> {
    let v = value.trim();
    let (kind, rest) = v.split_once(':').unwrap_or((v, ""));
    let kind: CheckKind = kind.trim().to_ascii_lowercase().parse()?;
    let split = rest.find('/').unwrap_or(rest.len());
    let (port, path) = rest.split_at(split);
    let port = match port.trim() {
        "" => None,
        p => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("invalid port {p:?} (1..65535)")),
        },
    };
    let path = (!path.is_empty()).then(|| path.to_owned());
    if let Some(p) = &path
        && p.bytes().any(|b| b.is_ascii_control() || b == b' ')
    {
        return Err(format!("path {p:?} contains spaces or control characters"));
    }
    match kind {
        CheckKind::Off if port.is_some() || path.is_some() => Err("`off` takes no port or path".into()),
        CheckKind::Tcp if path.is_some() => Err("a tcp check takes a port, not a path".into()),
        _ => Ok(AnnotationCheck { kind, port, path }),
    }
}

/// The check for a shard, or `None` when it is not probed. Malformed annotations are
/// appended to `problems` (the cluster's settings then apply).
pub fn spec_for(
    health: &HealthConfig,
    key: &ObjectKey,
    shard: &Shard,
    problems: &mut Vec<Problem>,
) -> Option<CheckSpec> {
    let base: CheckSettings = health.for_cluster(&shard.cluster.name);
    let ann = shard.annotations.get(HEALTH_CHECK_ANNOTATION).and_then(|v| match parse_annotation(v) {
        Ok(a) => Some(a),
        Err(reason) => {
            problems.push(Problem {
                object: key.to_string(),
                cluster: shard.cluster.name.to_string(),
                annotation: HEALTH_CHECK_ANNOTATION.to_owned(),
                value: v.clone(),
                reason: format!("{reason}; the cluster's {} check applies", base.kind.as_str()),
            });
            None
        }
    });
    let kind = ann.as_ref().map_or(base.kind, |a| a.kind);
    if kind == CheckKind::Off || shard.headless || shard.addresses.is_empty() {
        return None;
    }
    let first_tcp = shard.ports.iter().find(|p| p.protocol == Protocol::Tcp).map(|p| p.port);
    let port = ann.as_ref().and_then(|a| a.port).or(first_tcp)?;
    let path = ann.and_then(|a| a.path).unwrap_or(base.path);
    Some(CheckSpec {
        kind,
        port,
        path,
        expected_status: base.expected_status,
        host: base.host,
        interval: base.interval.as_std(),
        timeout: base.timeout.as_std(),
        healthy_threshold: base.healthy_threshold.max(1),
        unhealthy_threshold: base.unhealthy_threshold.max(1),
    })
}

/// Health of one probed address: the hysteresis state machine.
#[derive(Debug, Clone, Default)]
pub struct AddrState {
    /// Unknown until the first result: a pass makes it Up at once (a new shard should
    /// not wait `healthy_threshold` intervals), `unhealthy_threshold` failures Down.
    /// Up → Down after `unhealthy_threshold` consecutive failures; Down → Up after
    /// `healthy_threshold` consecutive passes.
    pub state: ProbeState,
    pub passes: u32,
    pub failures: u32,
    /// Lowest connect time of the last [`RTT_WINDOW`] passes, seconds.
    pub rtt: Option<f64>,
    pub last_error: Option<String>,
    /// The last passes' connect times (ring), and how many were recorded.
    samples: [f64; RTT_WINDOW],
    recorded: usize,
}

impl AddrState {
    /// Feeds one result; returns whether `state` changed.
    pub fn record(&mut self, result: &Result<Duration, String>, healthy: u32, unhealthy: u32) -> bool {
        let before = self.state;
        match result {
            Ok(rtt) => {
                if let Some(slot) = self.samples.get_mut(self.recorded % RTT_WINDOW) {
                    *slot = rtt.as_secs_f64();
                }
                self.recorded = self.recorded.wrapping_add(1);
                let filled = self.samples.get(..self.recorded.min(RTT_WINDOW)).unwrap_or_default();
                self.rtt = filled.iter().copied().min_by(f64::total_cmp);
                self.passes = self.passes.saturating_add(1);
                self.failures = 0;
                self.last_error = None;
                let needed = if self.state == ProbeState::Unknown { 1 } else { healthy };
                if self.passes >= needed {
                    self.state = ProbeState::Up;
                }
            }
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                self.passes = 0;
                self.last_error = Some(e.clone());
                if self.failures >= unhealthy {
                    self.state = ProbeState::Down;
                }
            }
        }
        self.state != before
    }
}

/// The shard's probe from its addresses' states.
fn combine(addrs: &[AddrSlot]) -> Probe {
    let up = || addrs.iter().filter(|a| a.health.state == ProbeState::Up);
    let state = if up().next().is_some() {
        ProbeState::Up
    } else if !addrs.is_empty() && addrs.iter().all(|a| a.health.state == ProbeState::Down) {
        ProbeState::Down
    } else {
        ProbeState::Unknown
    };
    let rtt = up().filter_map(|a| a.health.rtt).min_by(f64::total_cmp).map(Duration::from_secs_f64);
    Probe { state, rtt }
}

/// One probed address as shown by [`HealthChecker::targets`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TargetStatus {
    pub cluster: String,
    pub service: String,
    pub address: String,
    pub kind: &'static str,
    pub state: &'static str,
    pub rtt_ms: Option<f64>,
    pub last_error: Option<String>,
}

fn state_name(s: ProbeState) -> &'static str {
    match s {
        ProbeState::Unknown => "unknown",
        ProbeState::Up => "up",
        ProbeState::Down => "down",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

#[derive(Clone, Default)]
struct Metrics {
    probes: Family<ResultLabels, Counter>,
    transitions: Family<StateLabels, Counter>,
    shards: Family<StateLabels, Gauge>,
    targets: Gauge,
    in_flight: Gauge,
    problems: Gauge,
}

impl Metrics {
    fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("meridian_health_probes", "Health probes run, by result (pass, fail)", m.probes.clone());
        registry.register(
            "meridian_health_transitions",
            "Shard health changes, by new state (up, down)",
            m.transitions.clone(),
        );
        registry.register("meridian_health_shards", "Probed shards, by state (up, down, unknown)", m.shards.clone());
        registry.register("meridian_health_targets", "Addresses being probed", m.targets.clone());
        registry.register("meridian_health_in_flight", "Probes in flight", m.in_flight.clone());
        registry.register(
            "meridian_health_annotation_problems",
            "Malformed meridian.io/health-check annotations (the default check applies)",
            m.problems.clone(),
        );
        m
    }

    fn shard_state(&self, s: ProbeState, delta: i64) {
        self.shards.get_or_create(&StateLabels { state: state_name(s).into() }).inc_by(delta);
    }
}

/// (cluster, service) of a shard.
type ShardKey = (Arc<str>, ObjectKey);

/// Shared with the handle, for `meridian status`.
#[derive(Default)]
struct Shared {
    problems: Mutex<BTreeMap<ShardKey, Vec<Problem>>>,
    targets: Mutex<BTreeMap<(ShardKey, SocketAddr), TargetStatus>>,
}

enum Control {
    Reload(Box<HealthConfig>),
}

/// The running health checker.
pub struct HealthChecker {
    control: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Starts checking every shard of `table`, sending results into `updates` (the table
/// writer's channel, [`crate::Discovery::updates`]). Must run inside a Tokio runtime.
pub fn spawn(
    config: &Config,
    table: Table,
    updates: mpsc::UnboundedSender<Update>,
    registry: &mut Registry,
) -> HealthChecker {
    let metrics = Metrics::register(registry);
    let shared = Arc::new(Shared::default());
    let (control, control_rx) = mpsc::unbounded_channel();
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (results_tx, results) = mpsc::channel(RESULT_QUEUE);
    let changes = table.changes();
    let manager = Manager {
        health: config.health.clone(),
        table,
        updates,
        metrics,
        shared: shared.clone(),
        shards: HashMap::new(),
        by_service: HashMap::new(),
        results_tx,
        semaphore: Arc::new(Semaphore::new(config.health.max_in_flight.max(1))),
        tls: Arc::new(tls_config()),
        generation: 0,
    };
    let task = tokio::spawn(manager.run(changes, results, control_rx, shutdown_rx));
    HealthChecker { control, shared, shutdown, task }
}

/// A read-only view of the checker's results, cheap to clone (for status pages).
#[derive(Clone)]
pub struct HealthView {
    shared: Arc<Shared>,
}

impl HealthView {
    /// Malformed `meridian.io/health-check` annotations currently in the table.
    pub fn problems(&self) -> Vec<Problem> {
        let p = self.shared.problems.lock().unwrap_or_else(|e| e.into_inner());
        p.values().flatten().cloned().collect()
    }

    /// Every probed address with its state, RTT and last error, sorted.
    pub fn targets(&self) -> Vec<TargetStatus> {
        let t = self.shared.targets.lock().unwrap_or_else(|e| e.into_inner());
        t.values().cloned().collect()
    }
}

impl HealthChecker {
    /// Applies a new `[health]` section: probes whose check changed restart.
    pub fn reload(&self, config: &Config) {
        let _ = self.control.send(Control::Reload(Box::new(config.health.clone())));
    }

    /// A view of the results that outlives borrows of the checker.
    pub fn view(&self) -> HealthView {
        HealthView { shared: self.shared.clone() }
    }

    /// Malformed `meridian.io/health-check` annotations currently in the table.
    pub fn problems(&self) -> Vec<Problem> {
        self.view().problems()
    }

    /// Every probed address with its state, RTT and last error, sorted.
    pub fn targets(&self) -> Vec<TargetStatus> {
        self.view().targets()
    }

    /// Stops every probe.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        if tokio::time::timeout(Duration::from_secs(2), self.task).await.is_err() {
            warn!("health: the checker did not stop in time");
        }
    }
}

/// A probe task; aborted when dropped (the address left, or its check changed).
struct AddrSlot {
    addr: SocketAddr,
    generation: u64,
    health: AddrState,
    task: JoinHandle<()>,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct ShardProbe {
    spec: Arc<CheckSpec>,
    addrs: Vec<AddrSlot>,
    /// What the table was last told.
    published: Probe,
    published_at: Option<Instant>,
}

struct ProbeResult {
    shard: ShardKey,
    addr: SocketAddr,
    generation: u64,
    result: Result<Duration, String>,
}

struct Manager {
    health: HealthConfig,
    table: Table,
    updates: mpsc::UnboundedSender<Update>,
    metrics: Metrics,
    shared: Arc<Shared>,
    shards: HashMap<ShardKey, ShardProbe>,
    /// The clusters each service has probes in, so one service's sync does not scan all.
    by_service: HashMap<ObjectKey, Vec<Arc<str>>>,
    results_tx: mpsc::Sender<ProbeResult>,
    semaphore: Arc<Semaphore>,
    tls: Arc<rustls::ClientConfig>,
    generation: u64,
}

impl Manager {
    async fn run(
        mut self,
        mut changes: broadcast::Receiver<Arc<Change>>,
        mut results: mpsc::Receiver<ProbeResult>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        self.sync_all();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                c = changes.recv() => match c {
                    Ok(c) if c.everything => self.sync_all(),
                    Ok(c) => self.sync_keys(&c.services),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.sync_all(),
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                Some(r) = results.recv() => self.on_result(r),
                Some(Control::Reload(h)) = control.recv() => {
                    if h.max_in_flight != self.health.max_in_flight {
                        self.semaphore = Arc::new(Semaphore::new(h.max_in_flight.max(1)));
                        // Running probes hold the old semaphore: restart them all.
                        self.clear_all();
                    }
                    self.health = *h;
                    self.sync_all();
                    info!("health: configuration reloaded");
                }
            }
        }
        self.shards.clear();
    }

    fn clear_all(&mut self) {
        for (_, sp) in self.shards.drain() {
            self.metrics.shard_state(sp.published.state, -1);
        }
        self.by_service.clear();
        self.shared.targets.lock().unwrap_or_else(|e| e.into_inner()).clear();
        self.metrics.targets.set(0);
    }

    fn sync_all(&mut self) {
        let snap = self.table.snapshot();
        let keys: Vec<ObjectKey> = snap.services.keys().cloned().collect();
        // Shards that left the table.
        let gone: Vec<ShardKey> = self.shards.keys().filter(|k| !snap.services.contains_key(&k.1)).cloned().collect();
        for k in gone {
            self.remove(&k, false);
        }
        self.shared.problems.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| snap.services.contains_key(&k.1));
        for key in keys {
            self.sync_key(&snap, &key);
        }
        self.after_sync();
    }

    fn sync_keys(&mut self, keys: &[ObjectKey]) {
        if keys.is_empty() {
            return;
        }
        let snap = self.table.snapshot();
        for key in keys {
            self.sync_key(&snap, key);
        }
        self.after_sync();
    }

    fn after_sync(&mut self) {
        let targets: usize = self.shards.values().map(|s| s.addrs.len()).sum();
        self.metrics.targets.set(targets as i64);
        let problems: usize =
            self.shared.problems.lock().unwrap_or_else(|e| e.into_inner()).values().map(Vec::len).sum();
        self.metrics.problems.set(problems as i64);
    }

    /// Brings the probes of one service in line with its shards in `snap`.
    fn sync_key(&mut self, snap: &Snapshot, key: &ObjectKey) {
        let shards: &[Arc<Shard>] = snap.services.get(key).map_or(&[], |s| &s.shards);
        // Shards of this service that are gone from the table.
        let gone: Vec<ShardKey> = self
            .by_service
            .get(key)
            .into_iter()
            .flatten()
            .filter(|c| !shards.iter().any(|s| s.cluster.name == **c))
            .map(|c| (c.clone(), key.clone()))
            .collect();
        for k in gone {
            self.remove(&k, false);
        }
        for sh in shards {
            let sk: ShardKey = (sh.cluster.name.clone(), key.clone());
            let mut problems = Vec::new();
            let spec = spec_for(&self.health, key, sh, &mut problems);
            self.record_problems(&sk, problems);
            let Some(spec) = spec else {
                // Not (or no longer) probed: the table must not keep an old verdict.
                self.remove(&sk, sh.probe != Probe::default());
                continue;
            };
            let wanted: Vec<SocketAddr> = sh.addresses.iter().map(|ip| SocketAddr::new(*ip, spec.port)).collect();
            if let Some(existing) = self.shards.get(&sk)
                && *existing.spec == spec
                && existing.addrs.iter().map(|a| a.addr).eq(wanted.iter().copied())
            {
                continue;
            }
            let spec = Arc::new(spec);
            let old = self.shards.remove(&sk);
            let published = old.as_ref().map_or(sh.probe, |o| o.published);
            let published_at = old.as_ref().and_then(|o| o.published_at);
            if let Some(o) = &old {
                self.metrics.shard_state(o.published.state, -1);
                let mut t = self.shared.targets.lock().unwrap_or_else(|e| e.into_inner());
                for a in &o.addrs {
                    t.remove(&(sk.clone(), a.addr));
                }
            }
            let mut addrs = Vec::with_capacity(wanted.len());
            for addr in wanted {
                // An address kept with the same check keeps its history.
                let health = old
                    .as_ref()
                    .filter(|o| o.spec == spec)
                    .and_then(|o| o.addrs.iter().find(|a| a.addr == addr))
                    .map(|a| a.health.clone())
                    .unwrap_or_default();
                self.generation += 1;
                let task = tokio::spawn(probe_loop(
                    spec.clone(),
                    addr,
                    sk.clone(),
                    self.generation,
                    self.results_tx.clone(),
                    self.semaphore.clone(),
                    self.health.jitter.as_std(),
                    self.tls.clone(),
                    self.metrics.in_flight.clone(),
                ));
                addrs.push(AddrSlot { addr, generation: self.generation, health, task });
            }
            drop(old);
            self.metrics.shard_state(published.state, 1);
            self.shards.insert(sk.clone(), ShardProbe { spec, addrs, published, published_at });
            let clusters = self.by_service.entry(key.clone()).or_default();
            if !clusters.contains(&sk.0) {
                clusters.push(sk.0.clone());
            }
            self.refresh_targets(&sk);
            debug!(cluster = %sk.0, service = %sk.1, "health: probing");
        }
    }

    fn record_problems(&self, sk: &ShardKey, problems: Vec<Problem>) {
        let mut map = self.shared.problems.lock().unwrap_or_else(|e| e.into_inner());
        if problems.is_empty() {
            map.remove(sk);
            return;
        }
        if map.get(sk) != Some(&problems) {
            for p in &problems {
                warn!(service = %p.object, cluster = %p.cluster, annotation = %p.annotation, value = %p.value, "health: {}", p.reason);
            }
            map.insert(sk.clone(), problems);
        }
    }

    /// Stops probing a shard; `reset` tells the table its probe is Unknown again.
    fn remove(&mut self, sk: &ShardKey, reset: bool) {
        if let Some(sp) = self.shards.remove(sk) {
            self.metrics.shard_state(sp.published.state, -1);
            let mut t = self.shared.targets.lock().unwrap_or_else(|e| e.into_inner());
            for a in &sp.addrs {
                t.remove(&(sk.clone(), a.addr));
            }
        }
        if let Some(clusters) = self.by_service.get_mut(&sk.1) {
            clusters.retain(|c| *c != sk.0);
            if clusters.is_empty() {
                self.by_service.remove(&sk.1);
            }
        }
        if reset {
            let _ =
                self.updates.send(Update::Probe { cluster: sk.0.clone(), key: sk.1.clone(), probe: Probe::default() });
        }
    }

    fn on_result(&mut self, r: ProbeResult) {
        let Some(sp) = self.shards.get_mut(&r.shard) else { return };
        let Some(slot) = sp.addrs.iter_mut().find(|a| a.addr == r.addr && a.generation == r.generation) else {
            return; // from a probe task that was replaced
        };
        let label = if r.result.is_ok() { "pass" } else { "fail" };
        self.metrics.probes.get_or_create(&ResultLabels { result: label.into() }).inc();
        if slot.health.record(&r.result, sp.spec.healthy_threshold, sp.spec.unhealthy_threshold) {
            debug!(addr = %r.addr, state = state_name(slot.health.state), error = ?slot.health.last_error, "health: address changed");
        }
        let probe = combine(&sp.addrs);
        let now = Instant::now();
        let state_changed = probe.state != sp.published.state;
        let since = sp.published_at.map(|t| now.duration_since(t));
        let rtt_moved = rtt_moved(probe.rtt, sp.published.rtt, since);
        if state_changed || rtt_moved {
            if state_changed {
                self.metrics.shard_state(sp.published.state, -1);
                self.metrics.shard_state(probe.state, 1);
                if probe.state != ProbeState::Unknown {
                    self.metrics
                        .transitions
                        .get_or_create(&StateLabels { state: state_name(probe.state).into() })
                        .inc();
                }
                let error = sp.addrs.iter().find_map(|a| a.health.last_error.clone());
                info!(cluster = %r.shard.0, service = %r.shard.1, state = state_name(probe.state), error = error.as_deref().unwrap_or(""), "health: shard changed");
            }
            sp.published = probe;
            sp.published_at = Some(now);
            let _ = self.updates.send(Update::Probe { cluster: r.shard.0.clone(), key: r.shard.1.clone(), probe });
        }
        self.refresh_targets(&r.shard);
    }

    /// Copies one shard's address states into the shared status map.
    fn refresh_targets(&self, sk: &ShardKey) {
        let Some(sp) = self.shards.get(sk) else { return };
        let mut t = self.shared.targets.lock().unwrap_or_else(|e| e.into_inner());
        for a in &sp.addrs {
            t.insert(
                (sk.clone(), a.addr),
                TargetStatus {
                    cluster: sk.0.to_string(),
                    service: sk.1.to_string(),
                    address: a.addr.to_string(),
                    kind: sp.spec.kind.as_str(),
                    state: state_name(a.health.state),
                    rtt_ms: a.health.rtt.map(|s| s * 1000.0),
                    last_error: a.health.last_error.clone(),
                },
            );
        }
    }
}

/// Whether a new RTT is worth publishing over the last published one, `since`
/// the last publication: appearing or vanishing always is; otherwise it must have moved
/// by more than [`RTT_CHANGE`] and [`RTT_FLOOR`], at most every [`RTT_MIN_PUBLISH`].
fn rtt_moved(new: Option<Duration>, old: Option<Duration>, since: Option<Duration>) -> bool {
    match (new, old) {
        (Some(new), Some(old)) => {
            let delta = new.abs_diff(old);
            delta.as_secs_f64() > RTT_CHANGE * old.as_secs_f64()
                && delta > RTT_FLOOR
                && since.is_none_or(|s| s >= RTT_MIN_PUBLISH)
        }
        (a, b) => a.is_some() != b.is_some(),
    }
}

/// Probes one address forever: a random first delay spreads the start, then one probe
/// per interval (measured from probe start), each shortened by up to `jitter`.
#[allow(clippy::too_many_arguments)]
async fn probe_loop(
    spec: Arc<CheckSpec>,
    addr: SocketAddr,
    shard: ShardKey,
    generation: u64,
    results: mpsc::Sender<ProbeResult>,
    semaphore: Arc<Semaphore>,
    jitter: Duration,
    tls: Arc<rustls::ClientConfig>,
    in_flight: Gauge,
) {
    let spread = spec.interval.min(Duration::from_secs(1));
    tokio::time::sleep(random_below(spread)).await;
    let mut first = true;
    loop {
        let start = Instant::now();
        let result = {
            let Ok(_permit) = semaphore.acquire().await else { return };
            in_flight.inc();
            let r = match tokio::time::timeout(spec.timeout, probe(&spec, addr, &tls)).await {
                Ok(r) => r,
                Err(_) => Err(format!("timed out after {:?}", spec.timeout)),
            };
            in_flight.dec();
            r
        };
        let msg = ProbeResult { shard: shard.clone(), addr, generation, result };
        if results.send(msg).await.is_err() {
            return;
        }
        let due = start + next_wait(first, spec.interval, jitter);
        tokio::time::sleep_until(due).await;
        if let Some(delay) = rephase(Instant::now().saturating_duration_since(due), spec.interval) {
            tokio::time::sleep(delay).await;
        }
        first = false;
    }
}

/// A probe woken more than half an interval late (the process was stopped or starved)
/// waits a random part of the interval more, so that the addresses that fell behind
/// together do not all probe together from then on.
fn rephase(late: Duration, interval: Duration) -> Option<Duration> {
    (late > interval / 2).then(|| random_below(interval))
}

/// Time from one probe's start to the next. The first probes of shards found together
/// (at start, or a cluster's first list) all run within a second, so their state is
/// known quickly; after that first probe each address moves to a random phase of the
/// interval, once. Without it, 3,000 addresses at 5 s were probed in one burst every
/// 5 s: a 3,000-connects-a-second spike on the DNS server's core, and p99 with it.
fn next_wait(first: bool, interval: Duration, jitter: Duration) -> Duration {
    if first { random_below(interval) } else { interval.saturating_sub(random_below(jitter.min(interval))) }
}

fn random_below(d: Duration) -> Duration {
    let nanos = d.as_nanos() as u64;
    if nanos == 0 { Duration::ZERO } else { Duration::from_nanos(rand::random::<u64>() % nanos) }
}

/// One probe; `Ok` carries the TCP connect time.
pub async fn probe(spec: &CheckSpec, addr: SocketAddr, tls: &Arc<rustls::ClientConfig>) -> Result<Duration, String> {
    let t0 = Instant::now();
    let stream = TcpStream::connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    let rtt = t0.elapsed();
    let host = spec.host.clone().unwrap_or_else(|| addr.to_string());
    match spec.kind {
        CheckKind::Tcp | CheckKind::Off => Ok(rtt),
        CheckKind::Http => http_get(stream, &host, spec).await.map(|()| rtt),
        CheckKind::Https => {
            let name = match spec.host.as_deref().map(|h| h.rsplit_once(':').map_or(h, |(n, _)| n)) {
                Some(h) if h.parse::<IpAddr>().is_err() => rustls::pki_types::ServerName::try_from(h.to_owned())
                    .map_err(|e| format!("host {h:?} is not a TLS server name: {e}"))?,
                _ => rustls::pki_types::ServerName::IpAddress(addr.ip().into()),
            };
            let stream = tokio_rustls::TlsConnector::from(tls.clone())
                .connect(name, stream)
                .await
                .map_err(|e| format!("tls: {e}"))?;
            http_get(stream, &host, spec).await.map(|()| rtt)
        }
    }
}

async fn http_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    host: &str,
    spec: &CheckSpec,
) -> Result<(), String> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: meridian-health/1\r\nAccept: */*\r\nConnection: close\r\n\r\n",
        spec.path
    );
    stream.write_all(req.as_bytes()).await.map_err(|e| format!("send: {e}"))?;
    let mut buf = Vec::with_capacity(256);
    let mut chunk = [0u8; 256];
    let line = loop {
        if let Some(end) = buf.windows(2).position(|w| w == b"\r\n") {
            break buf.get(..end).unwrap_or_default().to_vec();
        }
        if buf.len() >= STATUS_LINE_MAX {
            return Err("no HTTP status line in the first 1024 bytes".into());
        }
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before the status line".into());
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    };
    let status = parse_status_line(&line).ok_or_else(|| "malformed HTTP status line".to_owned())?;
    if spec.expected_status.contains(status) {
        Ok(())
    } else {
        Err(format!("HTTP status {status}, expected {}", spec.expected_status))
    }
}

/// `HTTP/1.1 200 OK` → 200.
pub fn parse_status_line(line: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    if !parts.next()?.starts_with("HTTP/") {
        return None;
    }
    let code = parts.next()?;
    if code.len() != 3 {
        return None;
    }
    code.parse().ok()
}

/// TLS for HTTPS checks: any certificate is accepted (see [`CheckKind::Https`]); the
/// handshake signatures are still verified, so the peer holds the key it presents.
fn tls_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(AcceptAnyCert { provider: provider.clone() });
    let builder = rustls::ClientConfig::builder_with_provider(provider);
    let builder = match builder.with_safe_default_protocol_versions() {
        Ok(b) => b,
        // The ring provider supports the default versions; this is unreachable in practice
        // and falls back to rustls's own defaults rather than failing start-up.
        Err(_) => rustls::ClientConfig::builder_with_protocol_versions(rustls::DEFAULT_VERSIONS),
    };
    builder.dangerous().with_custom_certificate_verifier(verifier).with_no_client_auth()
}

#[derive(Debug)]
struct AcceptAnyCert {
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
#[path = "health/tests.rs"]
mod tests;
