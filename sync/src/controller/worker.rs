//! The workers: each takes a key off the queue, reconciles it while this replica holds
//! the Lease, and hands it back with what to do next.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::info;

use super::{Settings, Shared, reconcile};
use crate::queue::ObjKey;

/// First retry after a failed reconcile; doubles up to `[sync] retry_max`.
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// What a worker does with a key after a reconcile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Next {
    Done,
    /// Failed: back off, then retry.
    Retry,
    /// Waiting on a deadline (a blocked deletion): look again after this long.
    CheckAfter(Duration),
}

/// How one key's turn ended.
enum Turn {
    /// Reconciled: the queue is told what next.
    Reconciled(Next),
    /// Not reconciled (not leading, or the Lease was lost mid-way): gaining the Lease
    /// queues everything again.
    Dropped,
    /// Sync is shutting down.
    Stop,
}

pub(super) async fn worker(sh: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        let key = tokio::select! {
            () = shutdown.cancelled() => return,
            k = sh.queue.next() => k,
        };
        let settings = sh.settings();
        match turn(&sh, &key, &shutdown).await {
            Turn::Reconciled(next) => finish(&sh, &settings, key, next),
            Turn::Dropped => sh.queue.done(&key, false, FIRST_RETRY, settings.retry_max),
            Turn::Stop => return,
        }
    }
}

/// Reconciles `key` unless this replica does not lead, or stops leading meanwhile.
async fn turn(sh: &Shared, key: &ObjKey, shutdown: &CancellationToken) -> Turn {
    if !sh.is_leader() {
        return Turn::Dropped;
    }
    let mut leader = sh.leader.clone();
    tokio::select! {
        () = shutdown.cancelled() => Turn::Stop,
        next = reconcile::reconcile(sh, key) => Turn::Reconciled(next),
        // A replica that lost the Lease stops writing at once, not after this
        // reconcile's requests (each up to a request timeout) are done.
        lost = async { leader.wait_for(|leading| !*leading).await.is_ok() } => {
            if !lost {
                // The elector is gone: sync is shutting down.
                return Turn::Stop;
            }
            info!(object = %key, "lost the Lease; reconcile abandoned");
            Turn::Dropped
        }
    }
}

/// Hands a reconciled key back to the queue: done, retried after a backoff, or looked
/// at again after a delay.
fn finish(sh: &Shared, settings: &Settings, key: ObjKey, next: Next) {
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
