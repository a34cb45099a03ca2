//! Deletion as kube-apiserver and kube-controller-manager do it: propagation finalizers,
//! marking, 200/202, ownerReferences garbage collection, namespace termination.

use anyhow::{Context as _, Result};
use meridian_sim::SimCluster;
use meridian_testkit::wait::eventually_sync;
use serde_json::{Value, json};

use crate::support::{Env, WAIT, api_request, lb_service};

fn held_cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "finalizers": ["example.com/hold"]}})
}

fn owner_rs(name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name}, "spec": {"replicas": 1}})
}

/// A ConfigMap owned by `owner` (a stored object), blocking its foreground deletion or not.
fn dependent(name: &str, owner: &Value, block: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "ownerReferences": [{
        "apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"], "blockOwnerDeletion": block,
    }]}})
}

fn get(c: &SimCluster, av: &str, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
    c.get_json(av, kind, ns.or(Some("default")), name)
}

fn gone(c: &SimCluster, av: &str, kind: &str, name: &str) -> Option<()> {
    get(c, av, kind, None, name).is_none().then_some(())
}

/// The store's Delete: Orphan/orphanDependents and Foreground add the `orphan` and
/// `foregroundDeletion` finalizers, a kept object is marked (deletionTimestamp,
/// deletionGracePeriodSeconds 0, generation+1 where there is one) and returned with 200, or 202 only for
/// `orphanDependents: false` (endpoints/handlers/delete.go); no finalizer left: a Status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_answers_marked_objects_with_their_gc_finalizers_and_200_or_202() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let cases = [
        ("orphan", json!({"propagationPolicy": "Orphan"}), 200, json!(["example.com/hold", "orphan"])),
        ("legacy", json!({"orphanDependents": true}), 200, json!(["example.com/hold", "orphan"])),
        ("fg", json!({"propagationPolicy": "Foreground"}), 200, json!(["example.com/hold", "foregroundDeletion"])),
        ("cascade", json!({"orphanDependents": false}), 202, json!(["example.com/hold"])),
    ];
    for (name, opts, code, fins) in cases {
        c.apply_json(held_cm(name))?;
        let path = format!("/api/v1/namespaces/default/configmaps/{name}");
        let (got, body) = api_request(&c, "DELETE", &path, Some(&opts)).await?;
        assert_eq!(got, code, "{name}: {body}");
        assert_eq!(body["kind"], "ConfigMap", "{name}: {body}");
        assert_eq!(body["metadata"]["finalizers"], fins, "{name}");
        assert!(body["metadata"]["deletionTimestamp"].is_string(), "{name}: {body}");
        assert_eq!(body["metadata"]["deletionGracePeriodSeconds"], 0, "{name}");
        // ConfigMaps carry no generation, so marking adds none.
        assert!(body["metadata"].get("generation").is_none(), "{name}: {body}");
        // As on kube-apiserver, the finalizers are the only trace of the options: nothing
        // else on the object records them.
        let annotations = body["metadata"]["annotations"].as_object().cloned().unwrap_or_default();
        assert!(annotations.keys().all(|k| !k.starts_with("sim.")), "{name}: {annotations:?}");
    }
    // Both policies at once is invalid (ValidateDeleteOptions).
    c.apply_json(held_cm("both"))?;
    let both = json!({"orphanDependents": true, "propagationPolicy": "Orphan"});
    let (code, _) = api_request(&c, "DELETE", "/api/v1/namespaces/default/configmaps/both", Some(&both)).await?;
    assert_eq!(code, 422);
    c.apply_json(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "free"}}))?;
    let (code, body) = api_request(&c, "DELETE", "/api/v1/namespaces/default/configmaps/free", None).await?;
    assert_eq!((code, body["kind"].as_str(), body["status"].as_str()), (200, Some("Status"), Some("Success")));
    assert!(get(&c, "v1", "ConfigMap", None, "free").is_none());
    Ok(())
}

/// Background deletion (kubectl's default): once the owner is gone the garbage collector
/// deletes dependents whose owners are all gone — a Service's EndpointSlice too — and
/// drops the dangling reference from a dependent that still has a live owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_deletion_collects_dependents_once_the_owner_is_gone() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let owner = c.apply_json(owner_rs("owner"))?;
    let other = c.apply_json(owner_rs("other"))?;
    c.apply_json(dependent("only", &owner, false))?;
    let mut shared = dependent("shared", &owner, false);
    if let Some(refs) = shared["metadata"]["ownerReferences"].as_array_mut() {
        refs.push(dependent("x", &other, false)["metadata"]["ownerReferences"][0].clone());
    }
    c.apply_json(shared)?;
    c.apply_json(lb_service("web", "default", 80))?;
    eventually_sync(WAIT, "slice", || get(&c, "discovery.k8s.io/v1", "EndpointSlice", None, "web-sim")).await?;

    env.kubectl(&["delete", "rs", "owner"]).await?;
    eventually_sync(WAIT, "dependent collected", || gone(&c, "v1", "ConfigMap", "only")).await?;
    let shared = eventually_sync(WAIT, "dangling reference dropped", || {
        get(&c, "v1", "ConfigMap", None, "shared")
            .filter(|s| s["metadata"]["ownerReferences"].as_array().map(Vec::len) == Some(1))
    })
    .await?;
    assert_eq!(shared["metadata"]["ownerReferences"][0]["name"], "other");

    env.kubectl(&["delete", "svc", "web"]).await?;
    eventually_sync(WAIT, "slice collected", || gone(&c, "discovery.k8s.io/v1", "EndpointSlice", "web-sim")).await?;

    // An owner that never existed (unknown uid) is a missing owner too.
    let mut ghost = dependent("ghost", &other, false);
    ghost["metadata"]["ownerReferences"][0]["uid"] = json!("00000000-0000-4000-8000-000000000000");
    c.apply_json(ghost)?;
    eventually_sync(WAIT, "ghost collected", || gone(&c, "v1", "ConfigMap", "ghost")).await?;
    assert!(get(&c, "apps/v1", "ReplicaSet", None, "other").is_some());
    Ok(())
}

/// Foreground deletion keeps the owner, with `foregroundDeletion`, until no dependent with
/// `blockOwnerDeletion: true` is left; the dependents are deleted first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreground_deletion_waits_for_blocking_dependents() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let owner = c.apply_json(owner_rs("owner"))?;
    let mut blocking = dependent("blocking", &owner, true);
    blocking["metadata"]["finalizers"] = json!(["example.com/hold"]);
    c.apply_json(blocking)?;
    c.apply_json(dependent("loose", &owner, false))?;

    env.kubectl(&["delete", "rs", "owner", "--cascade=foreground", "--wait=false"]).await?;
    eventually_sync(WAIT, "loose dependent deleted", || gone(&c, "v1", "ConfigMap", "loose")).await?;
    let held = eventually_sync(WAIT, "blocking dependent marked", || {
        get(&c, "v1", "ConfigMap", None, "blocking").filter(|b| b["metadata"]["deletionTimestamp"].is_string())
    })
    .await?;
    assert_eq!(held["metadata"]["finalizers"], json!(["example.com/hold"]));
    let o = get(&c, "apps/v1", "ReplicaSet", None, "owner").context("owner released too early")?;
    assert_eq!(o["metadata"]["finalizers"], json!(["foregroundDeletion"]));

    env.kubectl(&[
        "patch",
        "cm",
        "blocking",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await?;
    eventually_sync(WAIT, "owner deleted after its dependents", || gone(&c, "apps/v1", "ReplicaSet", "owner")).await?;
    assert!(get(&c, "v1", "ConfigMap", None, "blocking").is_none());
    Ok(())
}

/// Orphan deletion takes the owner's references off its dependents, then drops the
/// `orphan` finalizer, so the owner goes and the dependents stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_leaves_dependents_without_the_owner_reference() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let owner = c.apply_json(owner_rs("owner"))?;
    c.apply_json(dependent("kept", &owner, true))?;
    env.kubectl(&["delete", "rs", "owner", "--cascade=orphan"]).await?;
    assert!(get(&c, "apps/v1", "ReplicaSet", None, "owner").is_none());
    let kept = get(&c, "v1", "ConfigMap", None, "kept").context("dependent deleted")?;
    assert!(kept["metadata"].get("ownerReferences").is_none(), "{kept}");
    Ok(())
}

/// A Namespace stays Terminating while anything holds it: its content (deleted by the
/// namespace controller, but kept by its own finalizers), the `kubernetes` spec finalizer
/// (removed once the namespace is empty), and its metadata finalizers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_stays_terminating_until_its_finalizers_are_removed() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let ns = |name: &str| c.get_json("v1", "Namespace", None, name);
    c.apply_json(
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp", "finalizers": ["example.com/ns"]}}),
    )?;
    c.apply_json(lb_service("plain", "tmp", 80))?;
    let mut held = held_cm("held");
    held["metadata"]["namespace"] = json!("tmp");
    c.apply_json(held)?;

    env.kubectl(&["delete", "ns", "tmp", "--wait=false"]).await?;
    assert!(env.kubectl(&["get", "ns", "tmp"]).await?.contains("Terminating"));
    eventually_sync(WAIT, "plain content deleted", || {
        c.get_json("v1", "Service", Some("tmp"), "plain").is_none().then_some(())
    })
    .await?;
    let marked = eventually_sync(WAIT, "held content marked", || {
        c.get_json("v1", "ConfigMap", Some("tmp"), "held").filter(|h| h["metadata"]["deletionTimestamp"].is_string())
    })
    .await?;
    assert!(marked["metadata"]["finalizers"] == json!(["example.com/hold"]));
    assert_eq!(ns("tmp").context("namespace gone early")?["spec"]["finalizers"], json!(["kubernetes"]));
    let refused = env.kubectl_err(&["create", "configmap", "late", "-n", "tmp"]).await?;
    assert!(refused.contains("because it is being terminated"), "{refused}");

    env.kubectl(&["patch", "cm", "held", "-n", "tmp", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#])
        .await?;
    let finalized = eventually_sync(WAIT, "spec finalizer removed", || {
        ns("tmp").filter(|n| n["spec"]["finalizers"].as_array().is_some_and(Vec::is_empty))
    })
    .await?;
    assert_eq!(finalized["status"]["phase"], "Terminating");
    env.kubectl(&["patch", "ns", "tmp", "--type=merge", "-p", r#"{"metadata":{"finalizers":null}}"#]).await?;
    eventually_sync(WAIT, "namespace gone", || ns("tmp").is_none().then_some(())).await?;

    // Without finalizers of its own, `kubectl delete ns` waits until it is gone.
    c.apply_json(lb_service("inside", "quick", 80))?;
    env.kubectl(&["delete", "ns", "quick"]).await?;
    assert!(ns("quick").is_none() && c.get_json("v1", "Service", Some("quick"), "inside").is_none());
    Ok(())
}
