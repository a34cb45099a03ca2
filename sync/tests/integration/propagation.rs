//! Creating and updating objects in the control plane reaches the members.

use std::time::Duration;

use anyhow::Result;
use serde_json::Value;

use crate::support::{Env, wait_for};

const WAIT: Duration = Duration::from_secs(10);

fn replicas(v: &Option<Value>) -> Option<i64> {
    v.as_ref().and_then(|d| d.pointer("/spec/replicas")).and_then(Value::as_i64)
}

/// Replica preferences 1:2 over m1/m2 split 9 replicas 3/6; m3 has no entry and gets 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_with_replica_preferences_is_split_per_cluster() -> Result<()> {
    let env = Env::start().await?;
    env.apply(
        "host",
        r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    federation.kubernetes.io/replica-set-preferences: '{"rebalance": true, "clusters": {"m1": {"weight": 1}, "m2": {"weight": 2}}}'
spec:
  replicas: 9
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.27}]}
"#,
    )
    .await?;
    for (cluster, want) in [("m1", 3), ("m2", 6), ("m3", 0)] {
        let d =
            wait_for(cluster, WAIT, || env.get(cluster, "deployment", "web"), |d| replicas(d) == Some(want)).await?;
        let labels = d.as_ref().and_then(|d| d.pointer("/metadata/labels/meridian.io~1managed-by")).cloned();
        assert_eq!(labels, Some(Value::from("meridian")), "{cluster} copy is marked managed");
    }
    let status = wait_for(
        "status annotation",
        WAIT,
        || env.sync_status("deployment", "web"),
        |s| {
            ["m1", "m2", "m3"].iter().all(|c| s["clusters"][c]["state"] == "Synced") && s["aggregated"]["replicas"] == 9
        },
    )
    .await?;
    assert_eq!(status["clusters"]["m2"]["replicas"], 6);
    // kubectl describe shows the propagation Events.
    let described = env.kubectl(&["--context", "host", "describe", "deployment", "web"]).await?;
    assert!(described.contains("CreateInCluster"), "{described}");
    // `meridian status` data comes from the same book.
    let s = env.sync()?.status();
    let objects = s["objects"].as_array().cloned().unwrap_or_default();
    assert!(objects.iter().any(|o| o["name"] == "web" && o["clusters"]["m1"]["state"] == "Synced"), "{s}");
    env.shutdown().await;
    Ok(())
}

/// Without preferences 9 replicas split 3/3/3 and 50 split 17/17/16.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deployment_without_preferences_is_split_evenly() -> Result<()> {
    let env = Env::start().await?;
    let yaml = |n: u32| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: even}}\nspec:\n  replicas: {n}\n  selector: {{matchLabels: {{app: even}}}}\n  template:\n    metadata: {{labels: {{app: even}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
        )
    };
    env.apply("host", &yaml(9)).await?;
    for c in ["m1", "m2", "m3"] {
        wait_for(c, WAIT, || env.get(c, "deployment", "even"), |d| replicas(d) == Some(3)).await?;
    }
    env.apply("host", &yaml(50)).await?;
    let mut got = Vec::new();
    for c in ["m1", "m2", "m3"] {
        let d =
            wait_for(c, WAIT, || env.get(c, "deployment", "even"), |d| replicas(d).is_some_and(|r| r >= 16)).await?;
        got.push(replicas(&d).unwrap_or(0));
    }
    wait_for("sum 50", WAIT, || env.sync_status("deployment", "even"), |s| s["aggregated"]["replicas"] == 50).await?;
    got.sort_unstable();
    assert_eq!(got, [16, 17, 17]);
    env.shutdown().await;
    Ok(())
}

/// Without rebalancing, the replicas a member already runs count toward its share
/// (Federation v1's preallocation): 4 running in m1, then 9 over all three leaves m1 at
/// 4 and splits the other 5, instead of giving m1 a full share on top of its 4.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn running_replicas_count_toward_their_share_without_rebalancing() -> Result<()> {
    let env = Env::start().await?;
    let yaml = |n: u32, placement: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: steady\n  annotations:\n    federation.kubernetes.io/replica-set-preferences: '{{\"rebalance\": false, \"clusters\": {{\"*\": {{\"weight\": 1}}}}}}'\n{placement}spec:\n  replicas: {n}\n  selector: {{matchLabels: {{app: steady}}}}\n  template:\n    metadata: {{labels: {{app: steady}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
        )
    };
    env.apply("host", &yaml(4, "    meridian.io/clusters: m1\n")).await?;
    let ready = |v: &Option<Value>| v.as_ref().and_then(|d| d.pointer("/status/readyReplicas")).and_then(Value::as_i64);
    wait_for("4 ready in m1", WAIT, || env.get("m1", "deployment", "steady"), |d| ready(d) == Some(4)).await?;
    env.apply("host", &yaml(9, "")).await?;
    let mut got = Vec::new();
    for c in ["m2", "m3"] {
        let d = wait_for(c, WAIT, || env.get(c, "deployment", "steady"), |d| replicas(d).is_some()).await?;
        got.push(replicas(&d).unwrap_or(0));
    }
    got.sort_unstable();
    assert_eq!(got, [2, 3], "m2 and m3 split the 5 m1 does not run");
    assert_eq!(replicas(&env.get("m1", "deployment", "steady").await?), Some(4), "m1 keeps what it runs");
    env.shutdown().await;
    Ok(())
}

/// An override for m2 changes m2's copy only; an edit of the template reaches all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn override_changes_only_its_cluster_and_configmap_edits_propagate() -> Result<()> {
    let env = Env::start().await?;
    let cm = |colour: &str| {
        format!(
            r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  annotations:
    meridian.io/overrides: '{{"m2": [{{"op": "replace", "path": "/data/colour", "value": "red"}}, {{"op": "add", "path": "/data/site", "value": "m2"}}]}}'
data:
  colour: {colour}
  size: large
"#
        )
    };
    env.apply("host", &cm("blue")).await?;
    let data = |v: &Option<Value>, k: &str| v.as_ref().and_then(|o| o["data"][k].as_str().map(str::to_owned));
    for (c, colour) in [("m1", "blue"), ("m2", "red"), ("m3", "blue")] {
        let o =
            wait_for(c, WAIT, || env.get(c, "configmap", "settings"), |o| data(o, "colour").as_deref() == Some(colour))
                .await?;
        assert_eq!(data(&o, "size").as_deref(), Some("large"));
        assert_eq!(data(&o, "site").is_some(), c == "m2", "{c}");
        let ann = o.as_ref().and_then(|o| o.pointer("/metadata/annotations")).cloned().unwrap_or_default();
        assert!(ann.get("meridian.io/overrides").is_none(), "steering annotations stay in the control plane");
    }
    env.apply("host", &cm("green")).await?;
    for (c, colour) in [("m1", "green"), ("m2", "red"), ("m3", "green")] {
        wait_for(c, WAIT, || env.get(c, "configmap", "settings"), |o| data(o, "colour").as_deref() == Some(colour))
            .await?;
    }
    env.shutdown().await;
    Ok(())
}

/// A pre-existing object Meridian did not create is never overwritten: AlreadyExists.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unmanaged_preexisting_object_is_left_alone() -> Result<()> {
    let env = Env::start().await?;
    env.apply("m1", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\ndata: {owner: team-a}\n").await?;
    env.apply("host", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\ndata: {owner: federation}\n").await?;
    wait_for("m2 copy", WAIT, || env.get("m2", "configmap", "mine"), |o| o.is_some()).await?;
    let s = wait_for(
        "AlreadyExists",
        WAIT,
        || env.sync_status("configmap", "mine"),
        |s| s["clusters"]["m1"]["state"] == "AlreadyExists" && s["clusters"]["m2"]["state"] == "Synced",
    )
    .await?;
    assert!(s["clusters"]["m1"]["message"].as_str().is_some_and(|m| m.contains("not managed")));
    let m1 = env.get("m1", "configmap", "mine").await?;
    assert_eq!(m1.as_ref().map(|o| o["data"]["owner"].clone()), Some(Value::from("team-a")));
    // Even a cascading delete leaves it.
    env.kubectl(&["--context", "host", "delete", "configmap", "mine", "--cascade=foreground", "--wait=false"]).await?;
    wait_for("m2 deleted", WAIT, || env.get("m2", "configmap", "mine"), Option::is_none).await?;
    let m1 = env.get("m1", "configmap", "mine").await?;
    assert_eq!(m1.as_ref().map(|o| o["data"]["owner"].clone()), Some(Value::from("team-a")));
    env.shutdown().await;
    Ok(())
}

/// Placement by names and by selector; leaving the placement removes the copy.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placement_narrows_clusters_and_removal_deletes_the_copy() -> Result<()> {
    let env = Env::start().await?;
    env.apply(
        "host",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n  annotations: {meridian.io/cluster-selector: 'tier=primary'}\nstringData: {token: s3cret-value}\n",
    )
    .await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "secret", "token"), |o| o.is_some()).await?;
    }
    env.kubectl(&["--context", "host", "annotate", "--overwrite", "secret", "token", "meridian.io/cluster-selector-"])
        .await?;
    env.kubectl(&["--context", "host", "annotate", "--overwrite", "secret", "token", "meridian.io/clusters=m3"])
        .await?;
    wait_for("m3 copy", WAIT, || env.get("m3", "secret", "token"), |o| o.is_some()).await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "secret", "token"), Option::is_none).await?;
    }
    // Secret contents never show up in Events.
    let events = env.kubectl(&["--context", "host", "get", "events", "-o", "json"]).await?;
    assert!(!events.contains("s3cret-value") && events.contains("DeleteInCluster"));
    env.shutdown().await;
    Ok(())
}

/// A malformed annotation is reported on its object; other objects keep syncing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_annotation_is_reported_and_others_keep_syncing() -> Result<()> {
    let env = Env::start().await?;
    env.apply(
        "host",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: broken\n  annotations: {meridian.io/overrides: '{\"m1\": [{\"op\": \"copy\"'}\ndata: {a: b}\n",
    )
    .await?;
    env.apply("host", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {a: b}\n").await?;
    wait_for("fine in m1", WAIT, || env.get("m1", "configmap", "fine"), |o| o.is_some()).await?;
    let s = wait_for("error", WAIT, || env.sync_status("configmap", "broken"), |s| s["error"].is_string()).await?;
    assert!(s["error"].as_str().is_some_and(|e| e.contains("meridian.io/overrides")), "{s}");
    assert!(env.get("m1", "configmap", "broken").await?.is_none());
    let described = env.kubectl(&["--context", "host", "describe", "configmap", "broken"]).await?;
    assert!(described.contains("InvalidAnnotation"), "{described}");
    env.shutdown().await;
    Ok(())
}

/// A member that rejects an object gets ApplyFailed with the API's message and is
/// retried with backoff until it accepts; the other members are unaffected. Namespaces
/// reach members before the objects inside them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn member_rejection_is_apply_failed_and_retried() -> Result<()> {
    let env = Env::start().await?;
    // In m1, namespace `doomed` is stuck Terminating (a finalizer holds it), so m1's API
    // refuses new objects in it.
    env.apply("m1", "apiVersion: v1\nkind: Namespace\nmetadata: {name: doomed, finalizers: [example.com/hold]}\n")
        .await?;
    env.kubectl(&["--context", "m1", "delete", "namespace", "doomed", "--wait=false"]).await?;
    env.apply("host", "apiVersion: v1\nkind: Namespace\nmetadata: {name: doomed}\n").await?;
    env.apply("host", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app, namespace: doomed}\ndata: {k: v}\n")
        .await?;
    let status = || async {
        let obj = env.kubectl(&["--context", "host", "-n", "doomed", "get", "configmap", "app", "-o", "json"]).await?;
        let obj: Value = serde_json::from_str(&obj)?;
        let text =
            obj.pointer("/metadata/annotations/meridian.io~1sync-status").and_then(Value::as_str).unwrap_or("{}");
        Ok::<Value, anyhow::Error>(serde_json::from_str(text)?)
    };
    let s = wait_for("ApplyFailed in m1", WAIT, status, |s| {
        s["clusters"]["m1"]["state"] == "ApplyFailed" && s["clusters"]["m2"]["state"] == "Synced"
    })
    .await?;
    assert!(s["clusters"]["m1"]["message"].as_str().is_some_and(|m| m.contains("being terminated")), "{s}");
    let ns = env.get("m2", "namespace", "doomed").await?;
    assert_eq!(
        ns.as_ref().and_then(|n| n.pointer("/metadata/labels/meridian.io~1managed-by")).cloned(),
        Some(Value::from("meridian"))
    );
    let described = env.kubectl(&["--context", "host", "-n", "doomed", "describe", "configmap", "app"]).await?;
    assert!(described.contains("FailedCreateInCluster"), "{described}");
    // Once m1 lets the namespace go, a retry creates namespace and object there.
    env.kubectl(&[
        "--context",
        "m1",
        "patch",
        "namespace",
        "doomed",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await?;
    let get_m1 = || {
        env.kubectl(&["--context", "m1", "-n", "doomed", "get", "configmap", "app", "--ignore-not-found", "-o", "name"])
    };
    wait_for("m1 copy after retry", WAIT, get_m1, |out| !out.trim().is_empty()).await?;
    wait_for("Synced in m1", WAIT, status, |s| s["clusters"]["m1"]["state"] == "Synced").await?;
    env.shutdown().await;
    Ok(())
}
