//! The running checker as its callers hold it: [`spawn`], [`HealthChecker`] (reload,
//! shutdown) and [`HealthView`] (what `meridian status` shows).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use meridian_config::Config;
use meridian_fleet::{Fleet, Health};
use meridian_model::follow::Follower;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::warn;

use super::ShardKey;
use super::manager::{Control, Manager};
use super::metrics::Metrics;
use super::probe::Launcher;
use super::state::state_name;
use super::targets::Targets;
use crate::rank::Problem;
use crate::table::{ProbeState, Table, Update};

/// Results waiting for the manager; probe tasks wait when it is full.
const RESULT_QUEUE: usize = 4096;
/// How long [`HealthChecker::shutdown`] waits for the manager to stop.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(2);

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
    /// The fleet's verdict on the address (what the table is told), in a fleet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fleet: Option<&'static str>,
}

/// One probed address as the manager last left it, kept unformatted: the manager
/// rewrites these at every probe result and verdict change, and on a large table
/// formatting them there (and sorting by string keys) cost more than the probing.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AddrView {
    pub(super) addr: SocketAddr,
    pub(super) state: ProbeState,
    pub(super) rtt: Option<f64>,
    pub(super) last_error: Option<String>,
}

/// A probed shard's addresses, for [`HealthView::targets`].
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ShardView {
    pub(super) kind: &'static str,
    pub(super) addrs: Vec<AddrView>,
}

/// What the manager shares with the handle, for `meridian status`.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) problems: Mutex<BTreeMap<ShardKey, Vec<Problem>>>,
    pub(super) targets: Mutex<HashMap<ShardKey, ShardView>>,
    /// The fleet whose verdicts [`HealthView::targets`] shows beside each address.
    pub(super) fleet: Option<Fleet>,
}

/// Locks a status map. A panic while it was held leaves at worst a stale entry, which
/// the next sync corrects, so a poisoned lock is used as it is.
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running health checker.
pub struct HealthChecker {
    control: mpsc::UnboundedSender<Control>,
    shared: Arc<Shared>,
    /// Cancels the manager on [`HealthChecker::shutdown`], or when the checker is
    /// dropped: probes never outlive their handle.
    shutdown: DropGuard,
    task: JoinHandle<()>,
}

/// Starts checking every shard of `table`, sending results into `updates` (the table
/// writer's channel, [`crate::Discovery::updates`]), until `shutdown` is cancelled (or
/// the checker is shut down or dropped). Must run inside a Tokio runtime.
pub fn spawn(
    config: &Config,
    table: Table,
    updates: mpsc::UnboundedSender<Update>,
    registry: &mut Registry,
    shutdown: &CancellationToken,
) -> HealthChecker {
    spawn_in_fleet(config, table, updates, registry, shutdown, None)
}

/// [`spawn`], in a fleet when `fleet` is given: every address's own state goes to
/// [`Fleet::observe`] (and [`Fleet::forget`] when no shard holds it any more), and the
/// table is told the fleet's verdicts, republished as they change.
pub fn spawn_in_fleet(
    config: &Config,
    table: Table,
    updates: mpsc::UnboundedSender<Update>,
    registry: &mut Registry,
    shutdown: &CancellationToken,
    fleet: Option<Fleet>,
) -> HealthChecker {
    let metrics = Metrics::register(registry);
    let shared = Arc::new(Shared { fleet: fleet.clone(), ..Shared::default() });
    let (control, control_rx) = mpsc::unbounded_channel();
    let (results_tx, results) = mpsc::channel(RESULT_QUEUE);
    // Subscribed before the manager's first build, so nothing published between the
    // two is missed.
    let follower = Follower::new(&table, "health");
    let launcher = Launcher::new(results_tx, config.health.max_in_flight, metrics.in_flight.clone());
    // Subscribed before the first build too: a verdict that changes meanwhile is not lost.
    let verdicts = fleet.as_ref().map(Fleet::changes);
    let targets = Targets::new(config.health.clone(), updates, metrics, shared.clone(), launcher, fleet);
    let shutdown = shutdown.child_token();
    let task =
        tokio::spawn(Manager::new(table, targets).run(follower, results, control_rx, verdicts, shutdown.clone()));
    HealthChecker { control, shared, shutdown: shutdown.drop_guard(), task }
}

/// A read-only view of the checker's results, cheap to clone (for status pages).
#[derive(Clone)]
pub struct HealthView {
    shared: Arc<Shared>,
}

impl HealthView {
    /// Malformed `meridian.io/health-check` annotations currently in the table.
    pub fn problems(&self) -> Vec<Problem> {
        lock(&self.shared.problems).values().flatten().cloned().collect()
    }

    /// Every probed address with its state, RTT and last error, sorted by cluster,
    /// service and address.
    pub fn targets(&self) -> Vec<TargetStatus> {
        let map = lock(&self.shared.targets);
        let mut shards: Vec<(&ShardKey, &ShardView)> = map.iter().collect();
        shards.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::with_capacity(shards.iter().map(|(_, v)| v.addrs.len()).sum());
        for (sk, view) in shards {
            let mut addrs: Vec<&AddrView> = view.addrs.iter().collect();
            addrs.sort_unstable_by_key(|a| a.addr);
            out.extend(addrs.into_iter().map(|a| TargetStatus {
                cluster: sk.0.to_string(),
                service: sk.1.to_string(),
                address: a.addr.to_string(),
                kind: view.kind,
                state: state_name(a.state),
                rtt_ms: a.rtt.map(|s| s * 1000.0),
                last_error: a.last_error.clone(),
                fleet: self.shared.fleet.as_ref().map(|f| health_name(f.health(a.addr))),
            }));
        }
        out
    }
}

/// The name `meridian status` shows for a fleet verdict.
fn health_name(h: Health) -> &'static str {
    match h {
        Health::Up => "up",
        Health::Down => "down",
        Health::Unknown => "unknown",
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
        self.shutdown.disarm().cancel();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.task).await.is_err() {
            warn!("health: the checker did not stop in time");
        }
    }
}
