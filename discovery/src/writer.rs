//! The table's single writer, fed by every cluster task (and the health checker) through
//! one channel.

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::oneshot;

use crate::metrics::Metrics;
use crate::table::{TableWriter, Update};

/// The table's single writer: drains whatever updates are queued and publishes them as
/// one snapshot, so a burst of events costs one publish, not one per event.
///
/// Under a sustained flow (start-up, when every cluster lists its services at once, or
/// endpoint churn) it publishes at most once per [`PUBLISH_EVERY`]. Publishing per
/// arriving event made a flood of tiny snapshots; each is a `Change` that every
/// incremental reader (the DNS index, health checks) must process, and a reader that
/// falls further behind than the change feed holds lags and rebuilds everything — which,
/// on a large table, took long enough to lag again. An idle writer still publishes at once.
pub(crate) async fn run(writer: TableWriter, mut rx: UnboundedReceiver<Update>, metrics: Metrics) {
    /// Bounds the work between publishes, so a flood does not delay every answer.
    const MAX_BATCH: usize = 4096;
    let applier = Applier::start(writer, metrics);
    let mut batch = Vec::with_capacity(64);
    let mut last = tokio::time::Instant::now();
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let due = last + PUBLISH_EVERY;
        let mut closed = false;
        while batch.len() < MAX_BATCH {
            let room = MAX_BATCH - batch.len();
            match tokio::time::timeout_at(due, rx.recv_many(&mut batch, room)).await {
                Ok(0) => {
                    closed = true;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        batch = applier.apply(batch).await;
        last = tokio::time::Instant::now();
        if closed {
            break;
        }
    }
}

/// Least time between two published snapshots while updates keep arriving.
const PUBLISH_EVERY: std::time::Duration = std::time::Duration::from_millis(5);

/// A batch to apply, and where to hand its emptied buffer back once applied.
type Job = (Vec<Update>, oneshot::Sender<Vec<Update>>);

/// Applies the writer's batches on a thread of its own (`table-writer`). A batch can take
/// long — a cluster's state change restamps its shard in every object, and at 1,000
/// clusters each object holds 1,000 shards — and on an async worker it delayed every
/// task queued behind it: the runtime ran 15 s late, HTTP/2 keep-alive pings to the
/// clusters timed out, and their connections were dropped. When no thread can be
/// started, the batches are applied in the calling task.
struct Applier {
    writer: Arc<Mutex<TableWriter>>,
    metrics: Metrics,
    thread: Option<std::sync::mpsc::Sender<Job>>,
}

impl Applier {
    fn start(writer: TableWriter, metrics: Metrics) -> Applier {
        let writer = Arc::new(Mutex::new(writer));
        let (jobs, rx) = std::sync::mpsc::channel::<Job>();
        let (w, m) = (writer.clone(), metrics.clone());
        let spawned = std::thread::Builder::new().name("table-writer".into()).spawn(move || {
            while let Ok((mut batch, done)) = rx.recv() {
                apply(&w, &m, &mut batch);
                let _ = done.send(batch);
            }
        });
        let thread = match spawned {
            Ok(_) => Some(jobs),
            Err(e) => {
                tracing::warn!(error = %e, "cannot start the table writer's thread; applying updates on the async workers");
                None
            }
        };
        Applier { writer, metrics, thread }
    }

    /// Applies `batch` and publishes it; returns the emptied buffer.
    async fn apply(&self, mut batch: Vec<Update>) -> Vec<Update> {
        if let Some(jobs) = &self.thread {
            let (done, applied) = oneshot::channel();
            match jobs.send((batch, done)) {
                Ok(()) => match applied.await {
                    Ok(emptied) => return emptied,
                    Err(_) => {
                        tracing::error!("the table writer's thread died applying a batch; that batch is lost");
                        return Vec::new();
                    }
                },
                // The thread is gone: apply here.
                Err(std::sync::mpsc::SendError((b, _))) => batch = b,
            }
        }
        apply(&self.writer, &self.metrics, &mut batch);
        batch
    }
}

fn apply(writer: &Mutex<TableWriter>, metrics: &Metrics, batch: &mut Vec<Update>) {
    let mut writer = writer.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if writer.apply(batch.drain(..)).is_some() {
        metrics.table(writer.working());
    }
}
