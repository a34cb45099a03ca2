//! The running checker as its callers hold it: [`spawn`], [`HealthChecker`] (reload,
//! shutdown) and [`HealthView`] (what `meridian status` shows).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use meridian_config::Config;
use meridian_fleet::Fleet;
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
use super::targets::Targets;
use crate::rank::Problem;
use crate::table::{Table, Update};

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

/// What the manager shares with the handle, for `meridian status`.
#[derive(Default)]
pub(super) struct Shared {
    pub(super) problems: Mutex<BTreeMap<ShardKey, Vec<Problem>>>,
    pub(super) targets: Mutex<BTreeMap<(ShardKey, SocketAddr), TargetStatus>>,
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
    let shared = Arc::new(Shared::default());
    let (control, control_rx) = mpsc::unbounded_channel();
    let (results_tx, results) = mpsc::channel(RESULT_QUEUE);
    // Subscribed before the manager's first build, so nothing published between the
    // two is missed.
    let follower = Follower::new(&table);
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

    /// Every probed address with its state, RTT and last error, sorted.
    pub fn targets(&self) -> Vec<TargetStatus> {
        lock(&self.shared.targets).values().cloned().collect()
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
