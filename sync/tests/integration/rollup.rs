//! The control-plane object's status says what the members run, not what the template
//! asks for.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::watcher;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::support::{Env, wait_for};

const WAIT: Duration = Duration::from_secs(10);

fn deployment(name: &str, replicas: u32, annotations: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\n  annotations:\n{annotations}\nspec:\n  replicas: {replicas}\n  selector: {{matchLabels: {{app: {name}}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec: {{containers: [{{name: c, image: busybox}}]}}\n"
    )
}

/// Every `.status` the control plane's Deployment goes through, from a watch started
/// before the Deployment exists. Dropping it ends the watch, which would otherwise hold
/// a connection to the simulator open through its shutdown.
struct StatusWatch {
    rx: mpsc::UnboundedReceiver<Value>,
    task: JoinHandle<()>,
}

impl Drop for StatusWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StatusWatch {
    async fn start(env: &Env, name: &str) -> Result<StatusWatch> {
        let client = env.client("host").await?;
        let ar = ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("apps", "v1", "Deployment"), "deployments");
        let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &ar);
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let task = tokio::spawn(async move {
            let mut ready = Some(ready_tx);
            let mut events = watcher(api, config).boxed();
            while let Some(ev) = events.next().await {
                match ev {
                    Ok(watcher::Event::InitDone) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
                        let status = serde_json::to_value(&o).ok().and_then(|v| v.get("status").cloned());
                        if tx.send(status.unwrap_or_default()).is_err() {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        });
        let watch = StatusWatch { rx, task };
        tokio::time::timeout(WAIT, ready_rx).await.context("the watch never started")??;
        Ok(watch)
    }

    /// Waits for a status that `check` accepts among those the watch reports.
    async fn saw(&mut self, check: impl Fn(&Value) -> bool) -> Result<Value> {
        let mut seen = Vec::new();
        let found = tokio::time::timeout(WAIT, async {
            while let Some(s) = self.rx.recv().await {
                if check(&s) {
                    return Some(s);
                }
                seen.push(s);
            }
            None
        })
        .await;
        found.ok().flatten().with_context(|| format!("no such status among {seen:?}"))
    }
}

fn available(status: &Value) -> Option<&str> {
    let conditions = status["conditions"].as_array()?;
    conditions.iter().find(|c| c["type"] == "Available").and_then(|c| c["status"].as_str())
}

/// 10 replicas with at most 2 per cluster over three members run 6: the control plane's
/// status (written through the status subresource) and the sync-status annotation say
/// 6 of 10 and not Available, with each member's own counts beside its entry, instead
/// of 10/10 ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_replicas_placed_six_roll_up_to_six_ready_of_ten() -> Result<()> {
    let env = Env::start().await?;
    let mut statuses = StatusWatch::start(&env, "capped").await?;
    let prefs = r#"    federation.kubernetes.io/replica-set-preferences: '{"rebalance": true, "clusters": {"*": {"weight": 1, "maxReplicas": 2}}}'"#;
    env.apply("host", &deployment("capped", 10, prefs)).await?;
    let s = wait_for(
        "the roll-up in the annotation",
        WAIT,
        || env.sync_status("deployment", "capped"),
        |s| ["m1", "m2", "m3"].iter().all(|c| s["clusters"][c]["status"]["readyReplicas"] == 2),
    )
    .await?;
    for c in ["m1", "m2", "m3"] {
        assert_eq!(s["clusters"][c]["replicas"], 2, "{c}: {s}");
        assert_eq!(s["clusters"][c]["status"]["availableReplicas"], 2, "{c}: {s}");
    }
    let rolled = &s["aggregated"];
    for (field, want) in [("replicas", 6), ("readyReplicas", 6), ("availableReplicas", 6), ("updatedReplicas", 6)] {
        assert_eq!(rolled[field], want, "{field}: {rolled}");
    }
    assert_eq!(rolled["unavailableReplicas"], 4, "{rolled}");
    // The annotation leaves the generation out: writing it bumps a Deployment's.
    assert_eq!(rolled.get("observedGeneration"), None, "{rolled}");
    assert_eq!(available(rolled), Some("False"), "{rolled}");
    assert!(rolled["conditions"][0]["message"].as_str().is_some_and(|m| m.contains("6 of 10")), "{rolled}");
    // The control plane's own status carried the roll-up (a status-subresource write:
    // the simulator ignores `.status` in writes of the object itself).
    statuses.saw(|st| st["readyReplicas"] == 6 && available(st) == Some("False")).await?;
    drop(statuses);
    // The control plane runs no workload controllers: its object's own `.status` is the
    // roll-up, and nothing overwrites it.
    let host = wait_for(
        "the roll-up in the control plane's status",
        WAIT,
        || async { env.get("host", "deployment", "capped").await?.context("the control-plane object") },
        |h| h["status"]["readyReplicas"] == 6,
    )
    .await?;
    let st = &host["status"];
    for (field, want) in [("replicas", 6), ("readyReplicas", 6), ("availableReplicas", 6), ("unavailableReplicas", 4)] {
        assert_eq!(st[field], want, "{field}: {st}");
    }
    assert_eq!(available(st), Some("False"), "{st}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = env.get("host", "deployment", "capped").await?.context("the control-plane object")?;
    assert_eq!(later["status"]["readyReplicas"], 6, "overwritten: {}", later["status"]);
    // The status names the generation it describes, and the writes have settled: the
    // annotation no longer moves the generation it reports.
    assert_eq!(later["status"]["observedGeneration"], later["metadata"]["generation"], "{later}");
    let described = env.kubectl(&["--context", "host", "describe", "deployment", "capped"]).await?;
    assert!(!described.contains("StatusOverwritten"), "{described}");
    env.shutdown().await;
    Ok(())
}

/// An override of `spec.replicas` shows in the member's entry (what it is given, and the
/// plan's number) and in the roll-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_override_of_replicas_is_recorded_in_the_sync_status() -> Result<()> {
    let env = Env::start().await?;
    let ov = r#"    meridian.io/overrides: '{"m3": [{"op": "replace", "path": "/spec/replicas", "value": 4}]}'"#;
    env.apply("host", &deployment("pinned", 6, ov)).await?;
    let s = wait_for(
        "m3 runs its override",
        WAIT,
        || env.sync_status("deployment", "pinned"),
        |s| s["aggregated"]["readyReplicas"] == 8,
    )
    .await?;
    assert_eq!((&s["clusters"]["m3"]["replicas"], &s["clusters"]["m3"]["plannedReplicas"]), (&4.into(), &2.into()));
    assert_eq!(s["clusters"]["m1"]["replicas"], 2);
    assert!(s["clusters"]["m1"].get("plannedReplicas").is_none(), "{s}");
    assert_eq!(available(&s["aggregated"]), Some("True"), "{s}");
    let m3 = env.get("m3", "deployment", "pinned").await?;
    assert_eq!(m3.and_then(|d| d.pointer("/spec/replicas").cloned()), Some(4.into()));
    env.shutdown().await;
    Ok(())
}
