//! Changes made directly in a member are undone.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::support::{Env, wait_for};

/// The tests' bound for watch-driven drift correction.
const DRIFT: Duration = Duration::from_secs(2);

/// An edit of a managed field in m1 is reverted, and a deleted copy is recreated, within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_side_edit_is_reverted_and_deleted_copy_recreated() -> Result<()> {
    let env = Env::start().await?;
    env.apply("host", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: drift}\ndata: {mode: federated}\n").await?;
    let mode = |o: &Option<Value>| o.as_ref().and_then(|o| o["data"]["mode"].as_str().map(str::to_owned));
    wait_for(
        "m1 copy",
        Duration::from_secs(10),
        || env.get("m1", "configmap", "drift"),
        |o| mode(o).as_deref() == Some("federated"),
    )
    .await?;
    // Let the reconcile of the create settle, so what follows is drift, not the create.
    tokio::time::sleep(Duration::from_millis(300)).await;
    env.kubectl(&[
        "--context",
        "m1",
        "patch",
        "configmap",
        "drift",
        "--type=merge",
        "-p",
        r#"{"data":{"mode":"hand-edited","extra":"kept"}}"#,
    ])
    .await?;
    let o = wait_for(
        "reverted",
        DRIFT,
        || env.get("m1", "configmap", "drift"),
        |o| mode(o).as_deref() == Some("federated"),
    )
    .await?;
    // A field Meridian does not manage is the member's business.
    assert_eq!(o.as_ref().map(|o| o["data"]["extra"].clone()), Some(Value::from("kept")));
    env.kubectl(&["--context", "m1", "delete", "configmap", "drift"]).await?;
    wait_for("recreated", DRIFT, || env.get("m1", "configmap", "drift"), |o| mode(o).as_deref() == Some("federated"))
        .await?;
    env.shutdown().await;
    Ok(())
}

/// The rule for keys: Meridian owns what it sends (server-side apply). A label or data
/// key taken out of the control-plane object goes from the members; one a member's own
/// writer added stays, through edits and resyncs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_removed_upstream_go_and_keys_added_in_a_member_stay() -> Result<()> {
    let env = Env::start().await?;
    let cm = |labels: &str, data: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: keys, labels: {{{labels}}}}}\ndata: {{{data}}}\n")
    };
    env.apply("host", &cm("tier: web, team: shop", "a: '1', b: '2'")).await?;
    let copy = || env.get("m1", "configmap", "keys");
    wait_for("m1 copy", Duration::from_secs(10), copy, |o| o.as_ref().is_some_and(|o| o["data"]["b"] == "2")).await?;
    env.kubectl(&["--context", "m1", "label", "configmap", "keys", "local=yes"]).await?;
    env.kubectl(&["--context", "m1", "patch", "configmap", "keys", "--type=merge", "-p", r#"{"data":{"own":"x"}}"#])
        .await?;
    env.apply("host", &cm("tier: web", "a: '1'")).await?;
    let o = wait_for("team and b gone from m1", Duration::from_secs(10), copy, |o| {
        o.as_ref().is_some_and(|o| o["metadata"]["labels"].get("team").is_none() && o["data"].get("b").is_none())
    })
    .await?
    .unwrap_or_default();
    assert_eq!(o["metadata"]["labels"]["tier"], "web", "{o}");
    assert_eq!(o["metadata"]["labels"]["local"], "yes", "the member's own label stays: {o}");
    assert_eq!(o["data"]["own"], "x", "the member's own key stays: {o}");
    assert_eq!(o["data"]["a"], "1", "{o}");
    env.shutdown().await;
    Ok(())
}

/// Removing Meridian's label from a copy in a member does not detach it: ownership is
/// also recorded by the control-plane object's uid, so the label comes back and later
/// changes still reach the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_copy_whose_label_was_removed_in_a_member_stays_managed() -> Result<()> {
    let env = Env::start().await?;
    let cm = |v: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: owned}}\ndata: {{v: '{v}'}}\n");
    env.apply("host", &cm("1")).await?;
    let copy = || env.get("m1", "configmap", "owned");
    wait_for("m1 copy", Duration::from_secs(10), copy, |o| o.as_ref().is_some_and(|o| o["data"]["v"] == "1")).await?;
    let label = format!("{}-", meridian_sync::template::MANAGED_LABEL);
    env.kubectl(&["--context", "m1", "label", "configmap", "owned", &label]).await?;
    let managed = |o: &Option<Value>| {
        o.as_ref().is_some_and(|o| o["metadata"]["labels"][meridian_sync::template::MANAGED_LABEL] == "meridian")
    };
    wait_for("the label is back", DRIFT, copy, managed).await?;
    env.apply("host", &cm("2")).await?;
    let o = wait_for("the change reaches m1", Duration::from_secs(10), copy, |o| {
        o.as_ref().is_some_and(|o| o["data"]["v"] == "2")
    })
    .await?;
    assert!(managed(&o), "{o:?}");
    let status = env.sync_status("configmap", "owned").await?;
    assert_ne!(status["clusters"]["m1"]["state"], "AlreadyExists", "{status}");
    env.shutdown().await;
    Ok(())
}

/// A member-side scale of a Deployment is reverted to the planned replicas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_side_scale_is_reverted() -> Result<()> {
    let env = Env::start().await?;
    env.apply(
        "host",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: api}\nspec:\n  replicas: 6\n  selector: {matchLabels: {app: api}}\n  template:\n    metadata: {labels: {app: api}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    )
    .await?;
    let replicas = |o: &Option<Value>| o.as_ref().and_then(|o| o.pointer("/spec/replicas")).and_then(Value::as_i64);
    wait_for("m2 copy", Duration::from_secs(10), || env.get("m2", "deployment", "api"), |o| replicas(o) == Some(2))
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    // `kubectl scale` needs the scale subresource, which the simulator does not serve.
    env.kubectl(&["--context", "m2", "patch", "deployment", "api", "--type=merge", "-p", r#"{"spec":{"replicas":7}}"#])
        .await?;
    wait_for("reverted", DRIFT, || env.get("m2", "deployment", "api"), |o| replicas(o) == Some(2)).await?;
    env.shutdown().await;
    Ok(())
}

/// Once synced, nothing is written again: not by watch events of Meridian's own writes,
/// not by the periodic resync (3 s in tests).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steady_state_makes_no_writes() -> Result<()> {
    let env = Env::start().await?;
    env.apply(
        "host",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: calm}\nspec:\n  replicas: 3\n  selector: {matchLabels: {app: calm}}\n  template:\n    metadata: {labels: {app: calm}}\n    spec: {containers: [{name: c, image: busybox}]}\n",
    )
    .await?;
    env.apply("host", "apiVersion: v1\nkind: Service\nmetadata: {name: calm}\nspec:\n  type: NodePort\n  selector: {app: calm}\n  ports: [{port: 80}]\n").await?;
    wait_for(
        "synced",
        Duration::from_secs(10),
        || env.sync_status("deployment", "calm"),
        |s| {
            ["m1", "m2", "m3"].iter().all(|c| s["clusters"][c]["state"] == "Synced")
                && s["aggregated"]["readyReplicas"] == 3
        },
    )
    .await?;
    wait_for(
        "service synced",
        Duration::from_secs(10),
        || env.sync_status("service", "calm"),
        |s| ["m1", "m2", "m3"].iter().all(|c| s["clusters"][c]["state"] == "Synced"),
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rv = |o: Option<Value>| o.and_then(|o| o.pointer("/metadata/resourceVersion").cloned());
    let mut before = Vec::new();
    for c in ["host", "m1", "m2", "m3"] {
        before.push((rv(env.get(c, "deployment", "calm").await?), rv(env.get(c, "service", "calm").await?)));
    }
    tokio::time::sleep(Duration::from_millis(3500)).await;
    for (i, c) in ["host", "m1", "m2", "m3"].iter().enumerate() {
        let now = (rv(env.get(c, "deployment", "calm").await?), rv(env.get(c, "service", "calm").await?));
        assert_eq!(before.get(i), Some(&now), "{c} was written in steady state");
    }
    // Members keep their own cluster IP and node port.
    let m1 = env.get("m1", "service", "calm").await?;
    assert!(m1.as_ref().and_then(|s| s.pointer("/spec/ports/0/nodePort")).is_some_and(Value::is_number));
    env.shutdown().await;
    Ok(())
}
