//! Federation v1's deletion rules, from what a real API server records (the `orphan` and
//! `foregroundDeletion` finalizers): orphan by default, cascade on a foreground delete,
//! Namespaces with their contents, and an unreachable member never blocks a deletion past
//! the timeout.

use std::time::{Duration, Instant};

use anyhow::Result;
use meridian_testkit::wait::eventually_sync;
use serde_json::Value;

use crate::support::{Env, wait_for};

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

/// Sends a raw DELETE with these DeleteOptions, as a Federation-era client would.
async fn raw_delete(env: &Env, path: &str, options: &str) -> Result<()> {
    let file = env.dir.path().join(format!("delete-options-{}.json", path.replace('/', "_")));
    std::fs::write(&file, options)?;
    let file = file.to_string_lossy().into_owned();
    env.kubectl(&["--context", "host", "delete", "--raw", path, "-f", &file]).await?;
    Ok(())
}

/// The calls that leave no `foregroundDeletion` on the object orphan, each leaving every
/// member's copy unmarked: `--cascade=orphan` (an `orphan` finalizer), `--cascade=background`,
/// and a raw `orphanDependents: false` (on a real API server no different from background).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn orphan_background_and_orphan_dependents_false_leave_member_copies() -> Result<()> {
    let env = Env::start().await?;
    for name in ["o-orphan", "o-background", "o-legacy"] {
        create_everywhere(&env, name).await?;
    }
    env.kubectl(&["--context", "host", "delete", "configmap", "o-orphan", "--cascade=orphan"]).await?;
    env.kubectl(&["--context", "host", "delete", "configmap", "o-background", "--cascade=background"]).await?;
    raw_delete(
        &env,
        "/api/v1/namespaces/default/configmaps/o-legacy",
        r#"{"kind":"DeleteOptions","apiVersion":"v1","orphanDependents":false}"#,
    )
    .await?;
    for name in ["o-orphan", "o-background", "o-legacy"] {
        wait_for("gone from host", WAIT, || env.get("host", "configmap", name), Option::is_none).await?;
        for c in ["m1", "m2", "m3"] {
            let what = format!("{name} orphaned in {c}");
            wait_for(&what, WAIT, || env.get(c, "configmap", name), |o| o.is_some() && !managed(o)).await?;
        }
    }
    env.shutdown().await;
    Ok(())
}

/// A foreground delete cascades although the garbage collector removes
/// `foregroundDeletion` at once (nothing depends on a ConfigMap): the decision is latched
/// in `meridian.io/deletion` first. An extra finalizer keeps the object to look at.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreground_decision_is_latched_before_the_gc_removes_its_finalizer() -> Result<()> {
    let env = Env::start().await?;
    create_everywhere(&env, "latched").await?;
    env.kubectl(&[
        "--context",
        "host",
        "patch",
        "configmap",
        "latched",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await?;
    env.kubectl(&["--context", "host", "delete", "configmap", "latched", "--cascade=foreground", "--wait=false"])
        .await?;
    for c in ["m1", "m2", "m3"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "latched"), Option::is_none).await?;
    }
    let host = wait_for(
        "Meridian's finalizer released",
        WAIT,
        || env.get("host", "configmap", "latched"),
        |o| o.as_ref().and_then(|o| o["metadata"]["finalizers"].as_array()).is_some_and(|f| f.len() == 1),
    )
    .await?;
    let meta = host.as_ref().map(|o| o["metadata"].clone()).unwrap_or_default();
    assert_eq!(
        meta["finalizers"],
        serde_json::json!(["example.com/hold"]),
        "the GC removed foregroundDeletion: {meta}"
    );
    assert_eq!(meta["annotations"]["meridian.io/deletion"], "cascade", "{meta}");
    env.shutdown().await;
    Ok(())
}

/// A latched decision on the object is what counts, as after a restart or relist: a
/// plain delete of an object already carrying `meridian.io/deletion: cascade` cascades.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_latched_cascade_is_read_back_from_the_object() -> Result<()> {
    let env = Env::start().await?;
    create_everywhere(&env, "relisted").await?;
    env.kubectl(&["--context", "host", "annotate", "configmap", "relisted", "meridian.io/deletion=cascade"]).await?;
    env.kubectl(&["--context", "host", "delete", "configmap", "relisted"]).await?;
    for c in ["m1", "m2", "m3"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "relisted"), Option::is_none).await?;
    }
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
/// the reachable copies and reports m3's as left over, and so does an orphaning one. The
/// records are kept in the control plane: a replica started afresh after m3 returns
/// deletes m3's cascaded copy and unmarks its orphaned one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn offline_member_does_not_block_deletion_past_the_timeout_and_is_cleaned_up_on_return() -> Result<()> {
    let mut env = Env::start().await?;
    create_everywhere(&env, "stuck").await?;
    create_everywhere(&env, "loose").await?;
    let m3 = env.sim.cluster("m3").ok_or_else(|| anyhow::anyhow!("no m3"))?;
    m3.stop().await;
    let table = env.discovery.table();
    eventually_sync(WAIT, "m3 Offline", || {
        table.snapshot().clusters.get("m3").is_some_and(|c| c.state.name() == "Offline").then_some(())
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
    env.kubectl(&["--context", "host", "delete", "configmap", "loose", "--wait=false"]).await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "stuck"), Option::is_none).await?;
    }
    // Still held by the finalizer while the timeout runs...
    assert!(env.get("host", "configmap", "stuck").await?.is_some(), "released before the timeout");
    // ...and released after it.
    for name in ["stuck", "loose"] {
        wait_for("released", WAIT, || env.get("host", "configmap", name), Option::is_none).await?;
    }
    assert!(start.elapsed() >= Duration::from_secs(3) - Duration::from_millis(200), "{:?}", start.elapsed());
    let s = env.sync()?.status();
    let left = s["leftovers"].as_array().cloned().unwrap_or_default();
    for name in ["stuck", "loose"] {
        let named = |l: &Value| l["cluster"] == "m3" && l["object"].as_str().is_some_and(|o| o.contains(name));
        assert!(left.iter().any(named), "{name}: {s}");
    }
    let records = leftover_records(&env).await?;
    assert!(records.contains("stuck") && records.contains("loose"), "{records}");

    // This replica stops; m3 comes back; a new replica knows only what the records say.
    if let Some(old) = env.sync.take() {
        old.shutdown().await;
    }
    m3.start().await?;
    env.wait_ready(&["m3"]).await?;
    env.sync = Some(env.start_sync().await?);
    wait_for("m3's cascaded copy", WAIT, || env.get("m3", "configmap", "stuck"), Option::is_none).await?;
    let orphaned =
        wait_for("m3's orphan", WAIT, || env.get("m3", "configmap", "loose"), |o| o.is_some() && !managed(o)).await?;
    let origin = orphaned.as_ref().and_then(|o| o.pointer("/metadata/annotations/meridian.io~1origin-uid"));
    assert_eq!(origin, None, "origin mark removed");
    wait_for("records emptied", WAIT, || leftover_records(&env), |r| r == "[]").await?;
    let s = env.sync()?.status();
    assert_eq!(s["leftovers"], serde_json::json!([]), "{s}");
    env.shutdown().await;
    Ok(())
}

/// The records of left-over copies, as sync keeps them in the control plane.
async fn leftover_records(env: &Env) -> Result<String> {
    let args = ["--context", "host", "-n", "kube-system", "get", "configmap", "meridian-sync-leftovers"];
    let out = env.kubectl(&[&args[..], &["-o", "jsonpath={.data.leftovers\\.json}"]].concat()).await?;
    Ok(out)
}

/// An object in a namespace of a cluster; `None` when it (or the namespace) is gone.
async fn get_in(env: &Env, context: &str, ns: &str, kind: &str, name: &str) -> Result<Option<Value>> {
    let out =
        env.kubectl(&["--context", context, "-n", ns, "get", kind, name, "-o", "json", "--ignore-not-found"]).await?;
    if out.trim().is_empty() { Ok(None) } else { Ok(Some(serde_json::from_str(&out)?)) }
}

async fn namespace_everywhere(env: &Env, ns: &str) -> Result<()> {
    env.apply("host", &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n")).await?;
    env.apply(
        "host",
        &format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: inside, namespace: {ns}}}\ndata: {{k: v}}\n"),
    )
    .await?;
    for c in ["m1", "m2", "m3"] {
        wait_for(c, WAIT, || get_in(env, c, ns, "configmap", "inside"), |o| o.is_some()).await?;
    }
    Ok(())
}

/// `kubectl delete ns --cascade=foreground`, a raw `propagationPolicy: Foreground` and a raw
/// `orphanDependents: false` (namespace storage turns it into `foregroundDeletion`) delete
/// every member's namespace and its contents; the control plane's Namespace is held until
/// they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn foreground_namespace_delete_cascades_to_member_namespaces_and_contents() -> Result<()> {
    let env = Env::start().await?;
    for ns in ["ns-kubectl", "ns-raw", "ns-legacy"] {
        namespace_everywhere(&env, ns).await?;
    }
    env.kubectl(&["--context", "host", "delete", "namespace", "ns-kubectl", "--cascade=foreground", "--wait=false"])
        .await?;
    raw_delete(
        &env,
        "/api/v1/namespaces/ns-raw",
        r#"{"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Foreground"}"#,
    )
    .await?;
    raw_delete(
        &env,
        "/api/v1/namespaces/ns-legacy",
        r#"{"kind":"DeleteOptions","apiVersion":"v1","orphanDependents":false}"#,
    )
    .await?;
    for ns in ["ns-kubectl", "ns-raw", "ns-legacy"] {
        for c in ["m1", "m2", "m3"] {
            let what = format!("{ns} gone from {c}");
            wait_for(&what, WAIT, || env.get(c, "namespace", ns), Option::is_none).await?;
            assert!(get_in(&env, c, ns, "configmap", "inside").await?.is_none(), "{what}: contents left");
        }
        wait_for("gone from host", WAIT, || env.get("host", "namespace", ns), Option::is_none).await?;
    }
    env.shutdown().await;
    Ok(())
}

/// A plain namespace delete orphans: each member keeps its namespace and contents, unmarked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_namespace_delete_leaves_member_namespaces_unmarked() -> Result<()> {
    let env = Env::start().await?;
    namespace_everywhere(&env, "ns-keep").await?;
    env.kubectl(&["--context", "host", "delete", "namespace", "ns-keep", "--wait=false"]).await?;
    wait_for("gone from host", WAIT, || env.get("host", "namespace", "ns-keep"), Option::is_none).await?;
    for c in ["m1", "m2", "m3"] {
        let ns = env.get(c, "namespace", "ns-keep").await?;
        assert!(ns.is_some() && !managed(&ns), "{c}: {ns:?}");
        let cm = get_in(&env, c, "ns-keep", "configmap", "inside").await?;
        assert!(cm.is_some() && !managed(&cm), "{c}: {cm:?}");
    }
    env.shutdown().await;
    Ok(())
}
