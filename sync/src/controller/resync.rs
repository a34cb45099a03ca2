//! Full resyncs: every known object is queued again periodically (`[sync]
//! resync_interval`) and whenever this replica becomes leader; each also finishes the
//! left-over copies whose member answers again (`leftovers`).

use std::sync::Arc;
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::Shared;

pub(super) async fn resync(sh: Arc<Shared>, shutdown: CancellationToken) {
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
                    sh.finish_leftovers().await;
                    last = Instant::now();
                } else {
                    // Another replica may change the records while this one follows.
                    *sh.leftovers.lock() = None;
                }
            }
            () = tokio::time::sleep(period.saturating_sub(last.elapsed())) => {
                last = Instant::now();
                if sh.is_leader() {
                    sh.enqueue_all();
                    sh.finish_leftovers().await;
                }
            }
        }
    }
}
