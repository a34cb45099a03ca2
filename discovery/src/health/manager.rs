//! The manager task: one loop that feeds the targets from the table, hands them probe
//! results and the fleet's verdict changes, applies reloads and stops on shutdown.

use std::sync::Arc;

use meridian_config::health::HealthConfig;
use meridian_fleet::VerdictChange;
use meridian_model::follow::{Follower, Projection};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::probe::ProbeResult;
use super::targets::Targets;
use crate::table::Table;

/// What the handle asks of the manager.
pub(super) enum Control {
    Reload(Box<HealthConfig>),
}

pub(super) struct Manager {
    /// Read again on a reload, which rebuilds the targets from the newest snapshot.
    table: Table,
    targets: Targets,
}

impl Manager {
    pub(super) fn new(table: Table, targets: Targets) -> Self {
        Self { table, targets }
    }

    /// Runs until `shutdown` or until the table's writer is gone. `follower` must have
    /// subscribed before this builds the targets from the current snapshot.
    pub(super) async fn run(
        mut self,
        mut follower: Follower,
        mut results: mpsc::Receiver<ProbeResult>,
        mut control: mpsc::UnboundedReceiver<Control>,
        mut verdicts: Option<broadcast::Receiver<Arc<VerdictChange>>>,
        shutdown: CancellationToken,
    ) {
        self.targets.rebuild(&self.table.snapshot());
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                batch = follower.next() => match batch {
                    Some(batch) => batch.feed(&mut self.targets),
                    None => break,
                },
                Some(r) = results.recv() => self.targets.on_result(r),
                Some(Control::Reload(health)) = control.recv() => self.reload(*health),
                change = next_verdicts(&mut verdicts) => match change {
                    Ok(c) => self.targets.on_verdicts(Some(&c.changes)),
                    Err(broadcast::error::RecvError::Lagged(_)) => self.targets.on_verdicts(None),
                    // The fleet is gone (shutting down): its last verdicts stay.
                    Err(broadcast::error::RecvError::Closed) => verdicts = None,
                },
            }
        }
        self.targets.stop();
    }

    fn reload(&mut self, health: HealthConfig) {
        self.targets.reconfigure(health);
        self.targets.rebuild(&self.table.snapshot());
        info!("health: configuration reloaded");
    }
}

/// The next batch of verdict changes; never resolves without a fleet.
async fn next_verdicts(
    rx: &mut Option<broadcast::Receiver<Arc<VerdictChange>>>,
) -> Result<Arc<VerdictChange>, broadcast::error::RecvError> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
