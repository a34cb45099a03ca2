//! Field selectors per kind, selector-filtered watches, and `remainingItemCount`.

use anyhow::{Context as _, Result};
use futures::TryStreamExt as _;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Api;
use kube::api::{PostParams, WatchEvent, WatchParams};
use serde_json::json;

use crate::support::{Env, api_request, lb_service};

/// Field label conversion: every kind takes metadata.name and metadata.namespace, some
/// add their own fields (Service spec.type, Secret type, Node spec.unschedulable), and
/// anything else is 400 in the words of the kind's conversion function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_selectors_take_only_the_fields_a_kind_supports() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    c.apply_json(lb_service("web", "default", 80))?;
    let lbs = env.kubectl(&["get", "svc", "--field-selector", "spec.type=LoadBalancer", "-o", "name"]).await?;
    assert_eq!(lbs.trim(), "service/web");
    let nodes = env.kubectl(&["get", "nodes", "--field-selector", "spec.unschedulable=false", "-o", "name"]).await?;
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
    env.kubectl(&["create", "secret", "generic", "creds", "--from-literal=a=b"]).await?;
    let opaque = env.kubectl(&["get", "secrets", "--field-selector", "type=Opaque", "-o", "name"]).await?;
    assert_eq!(opaque.trim(), "secret/creds");

    let cases = [
        ("cm", "data.a=1", r#""data.a" is not a known field selector: only "metadata.name", "metadata.namespace""#),
        ("deploy", "spec.replicas=1", r#""spec.replicas" is not a known field selector"#),
        ("svc", "spec.ports=80", "field label not supported: spec.ports"),
        ("pods", "spec.containers=x", "field label not supported: spec.containers"),
    ];
    for (kind, sel, want) in cases {
        let err = env.kubectl_err(&["get", kind, "--field-selector", sel]).await?;
        assert!(err.contains("(BadRequest)") && err.contains(want), "{kind} {sel}: {err}");
    }
    let (code, body) =
        api_request(&c, "GET", "/api/v1/namespaces/default/configmaps?fieldSelector=data.a%3D1", None).await?;
    assert_eq!((code, body["reason"].as_str()), (400, Some("BadRequest")), "{body}");
    Ok(())
}

/// The watch cache's cacheWatcher: an object modified out of a watch's label selector is
/// sent as DELETED carrying its last state that matched, at the new resourceVersion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_leaving_a_watch_selector_is_deleted_with_its_last_matching_state() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let api: Api<ConfigMap> = Api::namespaced(env.client("east").await?, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "flag", "labels": {"app": "web"}}, "data": {"v": "1"}}))?;
    let created = api.create(&PostParams::default(), &cm).await?;
    let from = created.metadata.resource_version.clone().context("resourceVersion")?;
    let stream = api.watch(&WatchParams::default().labels("app=web").timeout(10), &from).await?;
    futures::pin_mut!(stream);
    let patch = json!({"metadata": {"labels": {"app": "db"}}, "data": {"v": "2"}});
    let moved = api.patch("flag", &kube::api::PatchParams::default(), &kube::api::Patch::Merge(&patch)).await?;
    let ev = tokio::time::timeout(std::time::Duration::from_secs(10), stream.try_next()).await??;
    let Some(WatchEvent::Deleted(last)) = ev else { anyhow::bail!("expected DELETED, got {ev:?}") };
    let labels = last.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("app").map(String::as_str), Some("web"), "{last:?}");
    assert_eq!(last.data.as_ref().and_then(|d| d.get("v")).map(String::as_str), Some("1"), "{last:?}");
    assert_eq!(last.metadata.resource_version, moved.metadata.resource_version);
    Ok(())
}

/// etcd's ranged list count: a list cut by `limit` says how many objects follow, when no
/// selector filters it (with one the count is unknown and left out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_lists_tell_how_many_items_remain() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    for i in 0..5 {
        env.kubectl(&["create", "configmap", &format!("cm{i}"), "-n", "kube-public", "--from-literal=a=b"]).await?;
    }
    let path = "/api/v1/namespaces/kube-public/configmaps";
    let (_, all) = api_request(&c, "GET", path, None).await?;
    let total = all["items"].as_array().map(Vec::len).context("items")?;
    let (code, page) = api_request(&c, "GET", &format!("{path}?limit=2"), None).await?;
    assert_eq!(code, 200);
    assert_eq!(page["metadata"]["remainingItemCount"], json!(total - 2), "{page}");
    let (_, filtered) = api_request(&c, "GET", &format!("{path}?limit=2&labelSelector=x%21%3Dy"), None).await?;
    assert!(filtered["metadata"]["continue"].is_string() && filtered["metadata"].get("remainingItemCount").is_none());
    let (_, last) = api_request(&c, "GET", &format!("{path}?limit={total}"), None).await?;
    assert!(last["metadata"].get("remainingItemCount").is_none(), "{last}");
    Ok(())
}
