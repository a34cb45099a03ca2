//! Of several replicas only the Lease holder syncs.

use std::time::{Duration, Instant};

use anyhow::Result;
use meridian_testkit::wait::eventually_sync;

use crate::support::{Env, wait_for};

/// Two replicas never both lead, the follower never reconciles, and when the leader
/// stops the follower takes over and syncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_never_both_sync() -> Result<()> {
    let mut env = Env::start().await?;
    let second = env.start_sync().await?;
    env.apply("host", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\ndata: {k: v}\n").await?;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(3) {
        let (a, b) = (env.sync()?.status(), second.status());
        assert!(!(a["leader"] == true && b["leader"] == true), "both lead: {a} {b}");
        assert_eq!(b["leader"], false, "the second replica took the Lease from a live leader");
        assert_eq!(b["objects"].as_array().map(Vec::len), Some(0), "the follower reconciled: {b}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for("one synced", Duration::from_secs(5), || env.get("m1", "configmap", "one"), Option::is_some).await?;
    let lease =
        env.kubectl(&["--context", "host", "-n", "kube-system", "get", "lease", "meridian-sync", "-o", "json"]).await?;
    let first_id = env.sync()?.status()["identity"].clone();
    assert!(first_id.as_str().is_some_and(|id| lease.contains(id)), "{lease}");

    // The leader goes away (releasing the Lease); the follower takes over.
    if let Some(first) = env.sync.take() {
        first.shutdown().await;
    }
    eventually_sync(Duration::from_secs(5), "second leads", || (second.status()["leader"] == true).then_some(()))
        .await?;
    env.apply("host", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: two}\ndata: {k: v}\n").await?;
    wait_for("two synced", Duration::from_secs(5), || env.get("m2", "configmap", "two"), Option::is_some).await?;
    env.sync = Some(second);
    env.shutdown().await;
    Ok(())
}
