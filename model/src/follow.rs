//! One way to follow the table: a reader keeps its own [`Projection`] of the snapshots
//! (the DNS index, the proxy's routes, the health checker's targets) and [`follow`]
//! feeds it, batching what was published meanwhile and rebuilding when the reader fell
//! behind or a change touched everything.
//!
//! The order that keeps a projection correct is: subscribe ([`Follower::new`]), then
//! build from the snapshot, then apply what arrives. A change already in that first
//! snapshot is applied again, which a projection must tolerate: `apply` re-reads the
//! changed objects from the newest snapshot, so applying twice is applying once.

use std::sync::Arc;

use tokio::sync::broadcast::{self, error::RecvError, error::TryRecvError};
use tokio_util::sync::CancellationToken;

use crate::table::{Change, Snapshot, Table};

/// A reader's own view of the table.
pub trait Projection {
    /// Builds the whole view from `snap` and makes it visible to its readers.
    fn rebuild(&mut self, snap: &Snapshot);
    /// Updates the view for the objects `change` names, reading them from `snap` (the
    /// newest snapshot), and makes it visible.
    fn apply(&mut self, snap: &Snapshot, change: &Change);
}

/// What a follower has to do next.
pub enum Batch {
    /// Fell behind the feed, or something cluster-wide changed: build from scratch.
    Rebuild(Arc<Snapshot>),
    /// These objects changed (several published changes merged).
    Apply(Arc<Snapshot>, Change),
}

impl Batch {
    /// Hands the batch to `projection`.
    pub fn feed(&self, projection: &mut impl Projection) {
        match self {
            Batch::Rebuild(snap) => projection.rebuild(snap),
            Batch::Apply(snap, change) => projection.apply(snap, change),
        }
    }
}

/// A subscription to the table's change feed.
pub struct Follower {
    table: Table,
    changes: broadcast::Receiver<Arc<Change>>,
    /// Who follows (`dns`, `proxy`…), for the log.
    reader: &'static str,
}

impl Follower {
    /// Subscribes now: everything published from here on will be seen. `reader` names
    /// the follower in the log.
    pub fn new(table: &Table, reader: &'static str) -> Follower {
        Follower { changes: table.changes(), table: table.clone(), reader }
    }

    /// Waits for the next published change and merges every one queued behind it.
    /// `None` once the table's writer is gone. Cancel-safe, for `select!` loops.
    pub async fn next(&mut self) -> Option<Batch> {
        let mut batch = Vec::new();
        let mut missed = 0;
        match self.changes.recv().await {
            Ok(c) => batch.push(c),
            Err(RecvError::Lagged(n)) => missed += n,
            Err(RecvError::Closed) => return None,
        }
        loop {
            match self.changes.try_recv() {
                Ok(c) => batch.push(c),
                Err(TryRecvError::Lagged(n)) => missed += n,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        let snap = self.table.snapshot();
        if missed > 0 {
            tracing::warn!(
                reader = self.reader,
                missed,
                "fell behind the table's change feed; rebuilding from the snapshot"
            );
        }
        if missed > 0 || batch.iter().any(|c| c.everything) {
            return Some(Batch::Rebuild(snap));
        }
        Some(Batch::Apply(snap, Change::merged(batch.iter().map(|c| &**c))))
    }

    /// Feeds `projection` until `shutdown` is cancelled or the writer is gone.
    pub async fn run(mut self, projection: &mut impl Projection, shutdown: &CancellationToken) {
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => return,
                b = self.next() => b,
            };
            match batch {
                Some(b) => b.feed(projection),
                None => return,
            }
        }
    }
}

impl Follower {
    /// Feeds `projection` until `shutdown`, like [`Follower::run`], from a task that
    /// hands each batch to a thread of the projection's own (`<reader>-follower`) and
    /// waits for it to be applied. A batch can take seconds (a million shards listing,
    /// every shard of a cluster restamped stale); on an async worker, that held up the
    /// tasks queued behind it — the clusters' `/readyz` probes, which then timed out,
    /// turned their clusters Offline and made more work. One thread, not the blocking
    /// pool, so the projection's memory stays with one allocator heap. The thread ends
    /// with the task (shutdown, or the runtime dropped), after the batch in hand.
    pub fn spawn<P: Projection + Send + 'static>(
        mut self,
        projection: P,
        shutdown: CancellationToken,
    ) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let (batches, rx) = std::sync::mpsc::channel::<(Batch, tokio::sync::oneshot::Sender<()>)>();
        let runtime = tokio::runtime::Handle::current();
        std::thread::Builder::new().name(format!("{}-follower", self.reader)).spawn(move || {
            // The projection may use the runtime (spawn a task, read the clock).
            let _entered = runtime.enter();
            let mut projection = projection;
            while let Ok((batch, applied)) = rx.recv() {
                batch.feed(&mut projection);
                let _ = applied.send(());
            }
        })?;
        Ok(tokio::spawn(async move {
            loop {
                let batch = tokio::select! {
                    () = shutdown.cancelled() => return,
                    b = self.next() => b,
                };
                let Some(batch) = batch else { return };
                let (applied, done) = tokio::sync::oneshot::channel();
                if batches.send((batch, applied)).is_err() || done.await.is_err() {
                    tracing::error!(
                        reader = self.reader,
                        "the thread applying the table's changes died; this view stops following"
                    );
                    return;
                }
            }
        }))
    }
}

/// Subscribes, builds `projection` from the current snapshot, then keeps it up to date
/// until `shutdown`.
pub async fn follow(
    table: &Table,
    reader: &'static str,
    projection: &mut impl Projection,
    shutdown: &CancellationToken,
) {
    let follower = Follower::new(table, reader);
    projection.rebuild(&table.snapshot());
    follower.run(projection, shutdown).await;
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::Duration;

    use super::*;
    use crate::table::{ClusterMeta, ObjectKey, Shard, Update};

    /// Records what it was fed, and the services it saw in the snapshot it was fed.
    #[derive(Default)]
    struct Log {
        fed: Vec<String>,
        services: usize,
    }

    impl Projection for Log {
        fn rebuild(&mut self, snap: &Snapshot) {
            self.fed.push("rebuild".into());
            self.services = snap.services.len();
        }
        fn apply(&mut self, snap: &Snapshot, change: &Change) {
            let names: Vec<_> = change.services.iter().map(ToString::to_string).collect();
            self.fed.push(format!("apply {}", names.join(",")));
            self.services = snap.services.len();
        }
    }

    fn service(cluster: &Arc<ClusterMeta>, name: &str) -> Update {
        let shard = Shard::new(cluster.clone(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
        Update::Service { cluster: cluster.name.clone(), key: ObjectKey::new("ns", name), shard: Some(shard) }
    }

    #[tokio::test]
    async fn changes_queued_together_are_applied_as_one_merged_batch() {
        let (table, mut writer) = Table::new();
        let c = Arc::new(ClusterMeta::new("c1", 0));
        writer.apply([Update::Cluster(c.clone())]);
        let mut follower = Follower::new(&table, "test");
        writer.apply([service(&c, "b")]);
        writer.apply([service(&c, "a"), service(&c, "b")]);
        let mut log = Log::default();
        let batch = tokio::time::timeout(Duration::from_secs(5), follower.next()).await.ok().flatten();
        let Some(batch) = batch else { panic!("no batch") };
        batch.feed(&mut log);
        assert_eq!(log.fed, ["apply ns/a,ns/b"]);
        assert_eq!(log.services, 2, "fed the newest snapshot");
    }

    #[tokio::test]
    async fn a_cluster_wide_change_or_a_lag_rebuilds() {
        let (table, mut writer) = Table::new();
        let c = Arc::new(ClusterMeta::new("c1", 0));
        let mut follower = Follower::new(&table, "test");
        writer.apply([Update::Cluster(c.clone())]);
        let mut log = Log::default();
        if let Some(b) = follower.next().await {
            b.feed(&mut log);
        }
        assert_eq!(log.fed, ["rebuild"], "cluster metadata touches everything");
        // More changes than the feed holds: the follower lagged.
        for i in 0..1100 {
            writer.apply([service(&c, &format!("s{i}"))]);
        }
        if let Some(b) = follower.next().await {
            b.feed(&mut log);
        }
        assert_eq!(log.fed, ["rebuild", "rebuild"]);
        assert_eq!(log.services, 1100);
    }

    /// Tells a channel what it was fed, from whichever thread feeds it.
    struct Told(std::sync::mpsc::Sender<(String, std::thread::ThreadId)>);

    impl Projection for Told {
        fn rebuild(&mut self, _: &Snapshot) {
            let _ = self.0.send(("rebuild".into(), std::thread::current().id()));
        }
        fn apply(&mut self, _: &Snapshot, change: &Change) {
            let names: Vec<_> = change.services.iter().map(ToString::to_string).collect();
            let _ = self.0.send((format!("apply {}", names.join(",")), std::thread::current().id()));
        }
    }

    /// A spawned follower applies its batches on its own thread, and its runtime can be
    /// dropped without cancelling it first (a test that never shuts it down).
    #[test]
    fn a_spawned_follower_applies_off_the_async_workers_and_ends_with_its_runtime() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let (tx, rx) = std::sync::mpsc::channel();
        let (table, mut writer) = Table::new();
        let c = Arc::new(ClusterMeta::new("c1", 0));
        writer.apply([Update::Cluster(c.clone())]);
        let shutdown = CancellationToken::new();
        runtime.block_on(async {
            let _task = Follower::new(&table, "test").spawn(Told(tx), shutdown.clone()).expect("thread");
            tokio::task::yield_now().await;
            writer.apply([service(&c, "a")]);
            let got = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(5))).await;
            let Ok(Ok((fed, thread))) = got else { panic!("nothing was fed") };
            assert_eq!(fed, "apply ns/a");
            assert_ne!(thread, std::thread::current().id(), "applied on the runtime's own thread");
        });
        drop(runtime);
        assert!(!shutdown.is_cancelled());
    }

    #[tokio::test]
    async fn follow_builds_first_then_stops_on_shutdown() {
        let (table, mut writer) = Table::new();
        let c = Arc::new(ClusterMeta::new("c1", 0));
        writer.apply([Update::Cluster(c.clone()), service(&c, "a")]);
        let shutdown = CancellationToken::new();
        let (t, s) = (table.clone(), shutdown.clone());
        let task = tokio::spawn(async move {
            let mut log = Log::default();
            follow(&t, "test", &mut log, &s).await;
            log
        });
        let waited = table.wait_for(Duration::from_secs(5), |_| true).await;
        assert!(waited);
        tokio::time::sleep(Duration::from_millis(50)).await;
        writer.apply([service(&c, "b")]);
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        let log = tokio::time::timeout(Duration::from_secs(5), task).await;
        let Ok(Ok(log)) = log else { panic!("follow did not stop on shutdown") };
        assert_eq!(log.fed, ["rebuild", "apply ns/b"]);
        assert_eq!(log.services, 2);
    }
}
