//! CustomResourceDefinitions as kube-apiserver's apiextensions server serves them, driven
//! with kubectl and kube-rs: discovery, REST paths, the status subresource, deletion of a
//! CRD's objects, validation, name conflicts, versions, and the Multi-Cluster Services
//! CRDs every simulated cluster has.

use std::time::Duration;

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{
    ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::discovery::{Discovery, Scope};
use kube::runtime::watcher;
use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use meridian_testkit::wait::eventually_sync;
use serde_json::{Value, json};

use crate::support::{Env, WAIT, api_request};

/// `widgets.example.com`: namespaced, short name `wd`, a status subresource, and printer
/// columns for `.spec.size` and the Ready condition.
const WIDGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  scope: Namespaced
  names:
    plural: widgets
    singular: widget
    kind: Widget
    shortNames: [wd]
    categories: [gadgets]
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
    additionalPrinterColumns:
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Ready, type: string, jsonPath: '.status.conditions[?(@.type=="Ready")].status'}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
"#;

/// `gizmos.example.com`: cluster-scoped, no subresources, no printer columns.
fn gizmo_crd() -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn widget(name: &str, ns: &str, size: u32) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": name, "namespace": ns, "labels": {"tier": "gold"}}, "spec": {"size": size}})
}

/// Starts one cluster and applies the Widget CRD with kubectl.
async fn with_widgets() -> Result<Env> {
    let env = Env::start(&["east"]).await?;
    let crd = env.manifest("crd.yaml", WIDGET_CRD)?;
    let out = env.kubectl(&["apply", "-f", &crd]).await?;
    assert!(out.contains("customresourcedefinition.apiextensions.k8s.io/widgets.example.com created"), "{out}");
    Ok(env)
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == ty)
}

/// kube-apiserver: a created CRD gets NamesAccepted and Established (naming and
/// establishing controllers), its versions join discovery with scope, short names,
/// categories and verbs, and its objects are served at their REST paths, rendered with
/// the version's additionalPrinterColumns; generation moves on spec changes only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_applies_a_crd_and_serves_its_objects() -> Result<()> {
    let env = with_widgets().await?;
    let crd: Value = serde_json::from_str(&env.kubectl(&["get", "crd", "widgets.example.com", "-o", "json"]).await?)?;
    for ty in ["NamesAccepted", "Established"] {
        assert_eq!(condition(&crd, ty).map(|c| c["status"].clone()), Some(json!("True")), "{ty}: {crd}");
    }
    assert_eq!(crd["status"]["acceptedNames"]["kind"], "Widget");
    assert_eq!(crd["status"]["acceptedNames"]["shortNames"], json!(["wd"]));
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));

    let resources = env.kubectl(&["api-resources", "--api-group=example.com", "-o", "wide"]).await?;
    let row = resources.lines().find(|l| l.starts_with("widgets")).context("no widgets row")?;
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cols[..5], ["widgets", "wd", "example.com/v1", "true", "Widget"], "{resources}");
    assert!(row.contains("create,delete,deletecollection,get,list,patch,update,watch") && row.contains("gadgets"));

    let none = env.kubectl_output(&["get", "widgets"]).await?;
    assert!(String::from_utf8_lossy(&none.stderr).contains("No resources found in default namespace"));

    let f = env.manifest("w.yaml", &serde_yaml::to_string(&widget("big", "default", 3))?)?;
    assert!(env.kubectl(&["apply", "-f", &f]).await?.contains("widget.example.com/big created"));
    let table = env.kubectl(&["get", "wd"]).await?;
    let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "SIZE", "READY", "AGE"], "{table}");
    let big: Vec<&str> = table.lines().nth(1).unwrap_or("").split_whitespace().collect();
    // No Ready condition yet: the cell is null, which kubectl leaves blank.
    assert_eq!((&big[..2], big.len()), (&["big", "3"][..], 3), "{table}");

    let yaml = env.kubectl(&["get", "widgets", "big", "-o", "yaml"]).await?;
    assert!(yaml.contains("apiVersion: example.com/v1") && yaml.contains("kind: Widget"), "{yaml}");
    assert!(yaml.contains("size: 3") && yaml.contains("generation: 1"), "{yaml}");

    env.kubectl(&["patch", "wd", "big", "--type=merge", "-p", r#"{"spec":{"size":5}}"#]).await?;
    env.kubectl(&["label", "wd", "big", "extra=yes"]).await?;
    let got = env.kubectl(&["get", "wd", "big", "-o", "jsonpath={.spec.size} {.metadata.generation}"]).await?;
    assert_eq!(got, "5 2");
    let gold = env.kubectl(&["get", "gadgets", "-l", "tier=gold,extra=yes", "-o", "name"]).await?;
    assert_eq!(gold.trim(), "widget.example.com/big");

    // Custom resources have no merge keys: strategic merge patch is refused with 415.
    let err = env.kubectl_err(&["patch", "wd", "big", "-p", r#"{"spec":{"size":6}}"#]).await?;
    assert!(err.contains("the body of the request was in an unknown format"), "{err}");
    Ok(())
}

/// customResourceStrategy / customResourceStatusStrategy: with the status subresource, a
/// create drops `.status`, a main-resource write keeps the old `.status`, `/status` writes
/// change only `.status`, and only spec changes move the generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_subresource_keeps_spec_and_status_writes_apart() -> Result<()> {
    let env = with_widgets().await?;
    let c = env.cluster("east")?;
    let mut body = widget("w", "default", 1);
    body["status"] = json!({"conditions": [{"type": "Ready", "status": "True"}]});
    let path = "/apis/example.com/v1/namespaces/default/widgets";
    let (code, created) = api_request(&c, "POST", path, Some(&body)).await?;
    assert_eq!(code, 201, "{created}");
    assert!(created.get("status").is_none(), "{created}");

    let main = r#"{"spec":{"size":2},"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    env.kubectl(&["patch", "wd", "w", "--type=merge", "-p", main]).await?;
    let w = c.get_json("example.com/v1", "Widget", Some("default"), "w").context("widget")?;
    assert_eq!((w["spec"]["size"].clone(), w.get("status").cloned()), (json!(2), None), "{w}");
    assert_eq!(w["metadata"]["generation"], 2);

    let status = r#"{"spec":{"size":9},"status":{"conditions":[{"type":"Ready","status":"True"}]}}"#;
    env.kubectl(&["patch", "wd", "w", "--subresource=status", "--type=merge", "-p", status]).await?;
    let w = c.get_json("example.com/v1", "Widget", Some("default"), "w").context("widget")?;
    assert_eq!(w["spec"]["size"], 2, "{w}");
    assert_eq!(condition(&w, "Ready").map(|r| r["status"].clone()), Some(json!("True")));
    assert_eq!(w["metadata"]["generation"], 2);
    let table = env.kubectl(&["get", "wd", "w", "--no-headers"]).await?;
    assert_eq!(table.split_whitespace().take(3).collect::<Vec<_>>(), ["w", "2", "True"], "{table}");

    let (_, list) = api_request(&c, "GET", "/apis/example.com/v1", None).await?;
    let names: Vec<&str> =
        list["resources"].as_array().context("resources")?.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["widgets", "widgets/status"]);
    Ok(())
}

/// customResourceStrategy without a status subresource: `.status` is ordinary data, so
/// it is stored on create, and changing it moves the generation; there is no `/status`
/// path. A cluster-scoped resource has no namespace in its paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_status_subresource_status_is_data() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    c.apply_json(gizmo_crd())?;
    let g =
        json!({"apiVersion": "example.com/v1", "kind": "Gizmo", "metadata": {"name": "g"}, "status": {"ok": false}});
    let (code, created) = api_request(&c, "POST", "/apis/example.com/v1/gizmos", Some(&g)).await?;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["status"], json!({"ok": false}));
    assert!(created["metadata"].get("namespace").is_none());
    env.kubectl(&["patch", "gizmo", "g", "--type=merge", "-p", r#"{"status":{"ok":true}}"#]).await?;
    let got = c.get_json("example.com/v1", "Gizmo", None, "g").context("gizmo")?;
    assert_eq!((got["status"]["ok"].clone(), got["metadata"]["generation"].clone()), (json!(true), json!(2)));
    let (code, _) = api_request(&c, "GET", "/apis/example.com/v1/gizmos/g/status", None).await?;
    assert_eq!(code, 404);
    let row = env.kubectl(&["api-resources", "--api-group=example.com", "--no-headers"]).await?;
    assert_eq!(row.split_whitespace().collect::<Vec<_>>(), ["gizmos", "example.com/v1", "false", "Gizmo"]);
    let table = env.kubectl(&["get", "gizmos"]).await?;
    assert_eq!(table.lines().next().map(|h| h.split_whitespace().collect::<Vec<_>>()), Some(vec!["NAME", "AGE"]));
    Ok(())
}

/// The CRD's Delete and finalizer controller: the CRD is marked (deletionTimestamp,
/// `customresourcecleanup.apiextensions.k8s.io`, Terminating) and refuses creates (405)
/// while every object of it is deleted; objects held by their own finalizers keep it
/// until they go, then the CRD goes and its resource leaves discovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_crd_deletes_its_objects_first() -> Result<()> {
    let env = with_widgets().await?;
    let c = env.cluster("east")?;
    c.apply_json(widget("free", "default", 1))?;
    let mut held = widget("held", "kube-public", 1);
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    c.apply_json(held)?;
    env.kubectl(&["delete", "crd", "widgets.example.com", "--wait=false"]).await?;
    let crd = |c: &meridian_sim::SimCluster| {
        c.get_json("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "widgets.example.com")
    };
    let marked = eventually_sync(WAIT, "the free widget gone", || {
        c.get_json("example.com/v1", "Widget", Some("default"), "free").is_none().then(|| crd(&c)).flatten()
    })
    .await?;
    assert!(marked["metadata"]["deletionTimestamp"].is_string(), "{marked}");
    assert_eq!(marked["metadata"]["finalizers"], json!(["customresourcecleanup.apiextensions.k8s.io"]));
    let terminating = condition(&marked, "Terminating").context("no Terminating condition")?;
    assert_eq!(
        (terminating["status"].as_str(), terminating["reason"].as_str()),
        (Some("True"), Some("InstanceDeletionCheck"))
    );
    let h = c.get_json("example.com/v1", "Widget", Some("kube-public"), "held").context("held widget gone early")?;
    assert!(h["metadata"]["deletionTimestamp"].is_string());

    let f = env.manifest("late.yaml", &serde_yaml::to_string(&widget("late", "default", 1))?)?;
    let err = env.kubectl_err(&["create", "-f", &f]).await?;
    assert!(err.contains("create not allowed while custom resource definition is terminating"), "{err}");

    env.kubectl(&[
        "patch",
        "wd",
        "held",
        "-n",
        "kube-public",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])
    .await?;
    eventually_sync(WAIT, "the CRD gone", || crd(&c).is_none().then_some(())).await?;
    // `api-resources` rereads discovery (and refreshes kubectl's cache of it).
    let resources = env.kubectl(&["api-resources", "--no-headers"]).await?;
    assert!(!resources.contains("example.com"), "{resources}");
    let err = env.kubectl_err(&["get", "widgets"]).await?;
    assert!(err.contains("the server doesn't have a resource type \"widgets\""), "{err}");
    assert_eq!(api_request(&c, "GET", "/apis/example.com", None).await?.0, 404);
    Ok(())
}

/// kube-apiserver ends the watches of a deleted CRD's resource after its objects'
/// DELETED events, so clients relist (and find it gone) rather than wait on a resource
/// that is no longer served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_of_a_deleted_crds_resource_end() -> Result<()> {
    let env = with_widgets().await?;
    let c = env.cluster("east")?;
    c.apply_json(widget("w", "default", 1))?;
    let api: Api<DynamicObject> = Api::namespaced_with(env.client("east").await?, "default", &widget_resource());
    let mut stream = api.watch(&WatchParams::default(), "0").await?.boxed();
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await?.context("no first event")??;
    assert!(matches!(first, WatchEvent::Added(_)), "{first:?}");
    c.delete_json("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "widgets.example.com")?;
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut seen = Vec::new();
        while let Some(ev) = stream.next().await {
            seen.push(match ev? {
                WatchEvent::Deleted(o) => format!("DELETED {}", o.metadata.name.unwrap_or_default()),
                other => format!("{other:?}"),
            });
        }
        anyhow::Ok(seen)
    })
    .await
    .context("the watch did not end")??;
    assert_eq!(rest, ["DELETED w"]);
    Ok(())
}

/// ValidateCustomResourceDefinition: the name must be `<plural>.<group>`, the group a
/// domain with a dot, every version a schema; failures are 422 Invalid Status objects
/// naming each field, and nothing is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crds_with_bad_names_are_refused_with_422() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let bad = WIDGET_CRD.replace("name: widgets.example.com", "name: widget.example.com");
    let f = env.manifest("bad.yaml", &bad)?;
    let err = env.kubectl_err(&["apply", "-f", &f]).await?;
    assert!(err.contains("is invalid"), "{err}");
    assert!(
        err.contains(r#"metadata.name: Invalid value: "widget.example.com": must be spec.names.plural+"."+spec.group"#),
        "{err}"
    );

    let mut crd = gizmo_crd();
    crd["metadata"]["name"] = json!("gizmo.example.com");
    let (code, status) =
        api_request(&c, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(&crd)).await?;
    assert_eq!(code, 422, "{status}");
    assert_eq!(
        (status["kind"].as_str(), status["status"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Failure"), Some("Invalid"))
    );
    assert_eq!(status["details"]["group"], "apiextensions.k8s.io");
    assert_eq!(status["details"]["kind"], "CustomResourceDefinition");
    assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");

    let mut no_dot = gizmo_crd();
    no_dot["metadata"]["name"] = json!("gizmos.example");
    no_dot["spec"]["group"] = json!("example");
    no_dot["spec"]["versions"][0].as_object_mut().context("version")?.remove("schema");
    let (code, status) =
        api_request(&c, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", Some(&no_dot)).await?;
    assert_eq!(code, 422);
    let message = status["message"].as_str().unwrap_or("");
    assert!(
        message.contains(r#"spec.group: Invalid value: "example": should be a domain with at least one dot"#),
        "{message}"
    );
    assert!(
        message.contains("spec.versions[0].schema.openAPIV3Schema: Required value: schemas are required"),
        "{message}"
    );

    let listed = env.kubectl(&["get", "crd", "-o", "name"]).await?;
    assert!(!listed.contains("example"), "{listed}");
    Ok(())
}

/// The naming controller: a CRD whose singular name, kind and list kind another CRD of
/// the group has accepted gets NamesAccepted False (the last conflict checked,
/// ListKindConflict), only its free names accepted, and is never Established, so
/// nothing is served for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_already_accepted_in_the_group_are_refused() -> Result<()> {
    let env = with_widgets().await?;
    let c = env.cluster("east")?;
    let twin = WIDGET_CRD.replace("widgets", "widgetz").replace("shortNames: [wd]", "shortNames: [wz]");
    let f = env.manifest("twin.yaml", &twin)?;
    env.kubectl(&["apply", "-f", &f]).await?;
    let crd = c
        .get_json("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "widgetz.example.com")
        .context("twin")?;
    let accepted = condition(&crd, "NamesAccepted").context("no NamesAccepted")?;
    assert_eq!(
        (accepted["status"].as_str(), accepted["reason"].as_str()),
        (Some("False"), Some("ListKindConflict")),
        "{crd}"
    );
    assert_eq!(accepted["message"], r#""WidgetList" is already in use"#);
    let names = &crd["status"]["acceptedNames"];
    assert_eq!((names["plural"].as_str(), names["kind"].as_str()), (Some("widgetz"), Some("")), "{names}");
    assert_eq!(condition(&crd, "Established").map(|e| e["status"].clone()), Some(json!("False")));
    assert_eq!(api_request(&c, "GET", "/apis/example.com/v1/namespaces/default/widgetz", None).await?.0, 404);
    let (_, list) = api_request(&c, "GET", "/apis/example.com/v1", None).await?;
    assert!(!list.to_string().contains("widgetz"), "{list}");
    Ok(())
}

/// Conversion strategy None: objects are stored once and served at every served version
/// with only `apiVersion` rewritten; the group's preferred version is the highest-priority
/// one (v1 before v1beta1), not the order in the CRD.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_served_version_serves_the_same_objects() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let mut crd = gizmo_crd();
    let v1 = crd["spec"]["versions"][0].clone();
    let mut beta = v1.clone();
    beta["name"] = json!("v1beta1");
    beta["storage"] = json!(false);
    crd["spec"]["versions"] = json!([beta, v1]);
    c.apply_json(crd)?;
    let g = json!({"apiVersion": "example.com/v1beta1", "kind": "Gizmo", "metadata": {"name": "g"}, "spec": {"a": 1}});
    let (code, created) = api_request(&c, "POST", "/apis/example.com/v1beta1/gizmos", Some(&g)).await?;
    assert_eq!((code, created["apiVersion"].as_str()), (201, Some("example.com/v1beta1")), "{created}");
    let (_, at_v1) = api_request(&c, "GET", "/apis/example.com/v1/gizmos/g", None).await?;
    assert_eq!((at_v1["apiVersion"].as_str(), at_v1["spec"]["a"].as_i64()), (Some("example.com/v1"), Some(1)));
    let (_, list) = api_request(&c, "GET", "/apis/example.com/v1beta1/gizmos", None).await?;
    assert_eq!(list["items"][0]["apiVersion"], "example.com/v1beta1");
    let (_, group) = api_request(&c, "GET", "/apis/example.com", None).await?;
    assert_eq!(group["preferredVersion"]["version"], "v1", "{group}");
    assert_eq!(group["versions"].as_array().map(Vec::len), Some(2));
    let crd =
        c.get_json("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, "gizmos.example.com").context("crd")?;
    assert_eq!(crd["status"]["storedVersions"], json!(["v1"]));
    Ok(())
}

fn widget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk("example.com", "v1", "Widget"), "widgets")
}

/// kube-rs against custom resources as against kube-apiserver: a typed CRD create,
/// discovery (scope, status subresource), label-selected and paginated lists, a watcher
/// that sees objects and status changes, and `patch_status` leaving the generation alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_rs_discovers_lists_and_watches_custom_objects() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let client = env.client("east").await?;
    let crd: CustomResourceDefinition = serde_yaml::from_str(WIDGET_CRD)?;
    Api::<CustomResourceDefinition>::all(client.clone()).create(&PostParams::default(), &crd).await?;

    let discovery = Discovery::new(client.clone()).filter(&["example.com"]).run().await?;
    let (ar, caps) =
        discovery.resolve_gvk(&GroupVersionKind::gvk("example.com", "v1", "Widget")).context("not discovered")?;
    assert_eq!((ar.plural.as_str(), caps.scope.clone()), ("widgets", Scope::Namespaced));
    assert!(caps.subresources.iter().any(|(s, _)| s.plural == "status"), "{:?}", caps.subresources);

    let api: Api<DynamicObject> = Api::namespaced_with(client, "default", &widget_resource());
    for (i, tier) in ["gold", "gold", "tin"].iter().enumerate() {
        let mut w = widget(&format!("w{i}"), "default", i as u32);
        w["metadata"]["labels"]["tier"] = json!(tier);
        api.create(&PostParams::default(), &serde_json::from_value(w)?).await?;
    }
    let gold = api.list(&ListParams::default().labels("tier=gold")).await?;
    assert_eq!(gold.items.iter().filter_map(|o| o.metadata.name.clone()).collect::<Vec<_>>(), ["w0", "w1"]);
    let first = api.list(&ListParams::default().limit(2)).await?;
    let token = first.metadata.continue_.clone().context("no continue token")?;
    let rest = api.list(&ListParams::default().limit(2).continue_token(&token)).await?;
    assert_eq!((first.items.len(), rest.items.len()), (2, 1));

    let stream = watcher(api.clone(), watcher::Config::default().labels("tier=tin"));
    let mut stream = Box::pin(stream);
    let patched =
        api.patch_status("w2", &PatchParams::default(), &Patch::Merge(json!({"status": {"phase": "Shiny"}}))).await?;
    assert_eq!(patched.metadata.generation, Some(1));
    let seen = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while let Some(ev) = stream.next().await {
            if let watcher::Event::Apply(o) | watcher::Event::InitApply(o) = ev?
                && o.data.pointer("/status/phase") == Some(&json!("Shiny"))
            {
                return anyhow::Ok(o);
            }
        }
        anyhow::bail!("watch ended")
    })
    .await
    .context("the watcher never saw the status change")??;
    assert_eq!(seen.metadata.name.as_deref(), Some("w2"));
    Ok(())
}

/// A cluster with the Multi-Cluster Services API installed: both CRDs exist and are
/// established, ServiceExports are written through the Rust API (as the demo does) and
/// read through kube-rs the way Meridian's discovery reads them, and ServiceImports show
/// their printer columns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcs_crds_are_installed_and_serve_service_exports() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let crds = env.kubectl(&["get", "crd", "-o", "name"]).await?;
    assert_eq!(
        crds.lines().collect::<Vec<_>>(),
        [
            "customresourcedefinition.apiextensions.k8s.io/gatewayclasses.gateway.networking.k8s.io",
            "customresourcedefinition.apiextensions.k8s.io/gateways.gateway.networking.k8s.io",
            "customresourcedefinition.apiextensions.k8s.io/httproutes.gateway.networking.k8s.io",
            "customresourcedefinition.apiextensions.k8s.io/serviceexports.multicluster.x-k8s.io",
            "customresourcedefinition.apiextensions.k8s.io/serviceimports.multicluster.x-k8s.io"
        ],
        "the MCS and Gateway API CRDs"
    );
    let resources = env.kubectl(&["api-resources", "--api-group=multicluster.x-k8s.io", "--no-headers"]).await?;
    assert!(resources.lines().any(|l| l.starts_with("serviceexports") && l.contains("svcex")), "{resources}");
    assert!(resources.lines().any(|l| l.starts_with("serviceimports") && l.contains("svcim")), "{resources}");

    c.apply_json(json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceExport",
        "metadata": {"name": "web", "namespace": "shop"}}))?;
    let listed = env.kubectl(&["get", "svcex", "-A", "--no-headers"]).await?;
    assert_eq!(listed.split_whitespace().take(2).collect::<Vec<_>>(), ["shop", "web"], "{listed}");
    let ar = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("multicluster.x-k8s.io", "v1alpha1", "ServiceExport"),
        "serviceexports",
    );
    let exports: Api<DynamicObject> = Api::all_with(env.client("east").await?, &ar);
    let names: Vec<Option<String>> =
        exports.list(&ListParams::default()).await?.items.into_iter().map(|o| o.metadata.name).collect();
    assert_eq!(names, [Some("web".to_string())]);

    c.apply_json(json!({"apiVersion": "multicluster.x-k8s.io/v1alpha1", "kind": "ServiceImport",
        "metadata": {"name": "web", "namespace": "shop"}, "spec": {"type": "ClusterSetIP", "ips": ["10.42.0.1"], "ports": [{"port": 80}]}}))?;
    let table = env.kubectl(&["get", "svcim", "-n", "shop"]).await?;
    let header: Vec<&str> = table.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "TYPE", "IP", "AGE"], "{table}");
    assert!(
        table.lines().nth(1).is_some_and(|r| r.contains("ClusterSetIP") && r.contains(r#"["10.42.0.1"]"#)),
        "{table}"
    );
    Ok(())
}

/// The namespace controller deletes custom objects too (they are namespaced content);
/// a state file restores CRDs before their objects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_objects_go_with_their_namespace_and_survive_a_restart() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let opts = SimOptions { history: 100, backends: false, state_dir: Some(dir.path().to_path_buf()) };
    let start = || async {
        let sim = Simulator::new(opts.clone());
        let c = sim.add_cluster(ClusterSpec::new("keep-crd")).await?;
        anyhow::Ok((sim, c))
    };
    let (sim, c) = start().await?;
    c.apply_json(serde_yaml::from_str(WIDGET_CRD)?)?;
    c.apply_json(widget("kept", "default", 7))?;
    c.apply_json(widget("doomed", "tmp", 1))?;
    c.delete_json("v1", "Namespace", None, "tmp")?;
    eventually_sync(WAIT, "namespace tmp gone", || c.get_json("v1", "Namespace", None, "tmp").is_none().then_some(()))
        .await?;
    assert!(c.get_json("example.com/v1", "Widget", Some("tmp"), "doomed").is_none());
    sim.shutdown().await;

    let (sim, c) = start().await?;
    let kept = c.get_json("example.com/v1", "Widget", Some("default"), "kept").context("widget not restored")?;
    assert_eq!(kept["spec"]["size"], 7);
    sim.shutdown().await;
    Ok(())
}
