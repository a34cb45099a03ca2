//! Federation v1's deletion rules: orphan by default, cascade on request, and an
//! unreachable member never blocks a deletion past the timeout.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::Value;

use crate::support::{Env, eventually, wait_for};

const WAIT: Duration = Duration::from_secs(10);

async fn create_everywhere(env: &Env, name: &str) -> Result<()> {
    env.apply("host", &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n"))
        .await?;
    for c in ["m1", "m2", "m3"] {
        wait_for(c, WAIT, || env.get(c, "configmap", name), |o| o.is_some()).await?;
    }
    Ok(())
}

fn managed(o: &Option<Value>) -> bool {
    o.as_ref().and_then(|o| o.pointer("/metadata/labels/meridian.io~1managed-by")).is_some()
}

/// A plain `kubectl delete` in the control plane leaves the members' copies, unmarked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_deletion_orphans_member_copies() -> Result<()> {
    let env = Env::start().await?;
    create_everywhere(&env, "keep").await?;
    env.kubectl(&["--context", "host", "delete", "configmap", "keep"]).await?;
    wait_for("gone from host", WAIT, || env.get("host", "configmap", "keep"), Option::is_none).await?;
    for c in ["m1", "m2", "m3"] {
        let o = wait_for(c, WAIT, || env.get(c, "configmap", "keep"), |o| o.is_some() && !managed(o)).await?;
        let ann = o.as_ref().and_then(|o| o.pointer("/metadata/annotations/meridian.io~1origin-uid")).cloned();
        assert_eq!(ann, None, "{c}: origin mark removed");
    }
    env.shutdown().await;
    Ok(())
}

/// DeleteOptions with `orphanDependents: false` (Federation v1's cascading delete, sent
/// raw as a Federation-era client would) delete the members' copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orphan_dependents_false_cascades_to_members() -> Result<()> {
    let env = Env::start().await?;
    create_everywhere(&env, "cascade").await?;
    let opts = env.dir.path().join("delete-options.json");
    std::fs::write(&opts, r#"{"kind":"DeleteOptions","apiVersion":"v1","orphanDependents":false}"#)?;
    let opts = opts.to_string_lossy().into_owned();
    env.kubectl(&[
        "--context",
        "host",
        "delete",
        "--raw",
        "/api/v1/namespaces/default/configmaps/cascade",
        "-f",
        &opts,
    ])
    .await?;
    for c in ["m1", "m2", "m3"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "cascade"), Option::is_none).await?;
    }
    wait_for("gone from host", WAIT, || env.get("host", "configmap", "cascade"), Option::is_none).await?;
    env.shutdown().await;
    Ok(())
}

/// `kubectl delete --cascade=foreground` deletes the members' copies too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreground_delete_cascades_to_members() -> Result<()> {
    let env = Env::start().await?;
    create_everywhere(&env, "fg").await?;
    env.kubectl(&["--context", "host", "delete", "configmap", "fg", "--cascade=foreground"]).await?;
    for c in ["m1", "m2", "m3"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "fg"), Option::is_none).await?;
    }
    assert!(env.get("host", "configmap", "fg").await?.is_none());
    env.shutdown().await;
    Ok(())
}

/// With m3 Offline a cascading delete finishes after the 3 s deletion timeout, deletes
/// the reachable copies and reports m3's as left over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_member_does_not_block_deletion_past_the_timeout() -> Result<()> {
    let env = Env::start().await?;
    create_everywhere(&env, "stuck").await?;
    let m3 = env.sim.cluster("m3").ok_or_else(|| anyhow::anyhow!("no m3"))?;
    m3.stop().await;
    let table = env.discovery.table();
    eventually("m3 Offline", WAIT, || async {
        table.snapshot().clusters.get("m3").is_some_and(|c| c.state.name() == "Offline")
    })
    .await?;
    let status = wait_for(
        "m3 not ready",
        WAIT,
        || env.sync_status("configmap", "stuck"),
        |s| s["clusters"]["m3"]["state"] == "ClusterNotReady",
    )
    .await?;
    assert_eq!(status["clusters"]["m1"]["state"], "Synced");
    let start = Instant::now();
    env.kubectl(&["--context", "host", "delete", "configmap", "stuck", "--cascade=foreground", "--wait=false"]).await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "stuck"), Option::is_none).await?;
    }
    // Still held by the finalizer while the timeout runs...
    assert!(env.get("host", "configmap", "stuck").await?.is_some(), "released before the timeout");
    // ...and released after it.
    wait_for("released", WAIT, || env.get("host", "configmap", "stuck"), Option::is_none).await?;
    assert!(start.elapsed() >= Duration::from_secs(3) - Duration::from_millis(200), "{:?}", start.elapsed());
    let s = env.sync()?.status();
    let left = s["leftovers"].as_array().cloned().unwrap_or_default();
    assert!(
        left.iter().any(|l| l["cluster"] == "m3" && l["object"].as_str().is_some_and(|o| o.contains("stuck"))),
        "{s}"
    );
    // The copy in m3 is indeed still there when it comes back.
    m3.start().await?;
    env.wait_ready(&["m3"]).await?;
    assert!(env.get("m3", "configmap", "stuck").await?.is_some());
    env.shutdown().await;
    Ok(())
}
