//! The manager task: one loop that feeds the targets from the table, hands them probe
//! results and the fleet's verdict changes, applies reloads and stops on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use meridian_config::health::HealthConfig;
use meridian_fleet::{Health, VerdictChange};
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
                    Ok(c) => match verdicts.as_mut().map(|rx| drain(rx, c)) {
                        Some(Some(changed)) => self.targets.on_verdicts(Some(&changed)),
                        _ => self.targets.on_verdicts(None),
                    },
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

/// `first` and every change already queued behind it, as one list: each of this
/// instance's own first probes changes a verdict, so at start-up and after a cluster
/// lists, changes come one address at a time, faster than one by one they could be
/// handled; handled one by one, they overflowed the backlog, and each overflow cost a
/// pass over every shard. `None`: some were lost (the backlog overflowed meanwhile).
fn drain(
    rx: &mut broadcast::Receiver<Arc<VerdictChange>>,
    first: Arc<VerdictChange>,
) -> Option<Vec<(SocketAddr, Health)>> {
    let mut changed = first.changes.clone();
    loop {
        match rx.try_recv() {
            Ok(c) => changed.extend_from_slice(&c.changes),
            Err(broadcast::error::TryRecvError::Lagged(_)) => return None,
            Err(_) => return Some(changed),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn change(version: u64, port: u16) -> Arc<VerdictChange> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        Arc::new(VerdictChange { version, changes: vec![(addr, Health::Down)] })
    }

    #[test]
    fn drain_takes_every_queued_change_in_one_list() {
        let (tx, mut rx) = broadcast::channel(8);
        for v in 1..=4 {
            tx.send(change(v, 1000 + v as u16)).expect("a receiver");
        }
        let first = rx.try_recv().expect("a queued change");
        let all = drain(&mut rx, first).expect("nothing was lost");
        let ports: Vec<u16> = all.iter().map(|(a, _)| a.port()).collect();
        assert_eq!(ports, [1001, 1002, 1003, 1004]);
        assert!(rx.try_recv().is_err(), "the queue is empty afterwards");
    }

    #[test]
    fn drain_reports_an_overflow_as_lost() {
        let (tx, mut rx) = broadcast::channel(2);
        tx.send(change(1, 1001)).expect("a receiver");
        let first = rx.try_recv().expect("a queued change");
        for v in 2..=6 {
            tx.send(change(v, 1000 + v as u16)).expect("a receiver");
        }
        assert_eq!(drain(&mut rx, first), None, "a lagged receiver must fall back to a full pass");
    }
}
