//! Types named in `[[sync.extra_kinds]]` are federated like the default ones: a core
//! type (ServiceAccount) and a custom resource, with placement, overrides, deletion, a
//! member without the type's definition, and a reload that takes a type out.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use meridian_config::Config;
use meridian_testkit::wait::eventually_sync;
use serde_json::Value;

use crate::support::{Env, MEMBERS, Options, config_text_with, wait_for};

const WAIT: Duration = Duration::from_secs(10);

const EXTRA_KINDS: &str = r#"extra_kinds = [
  { version = "v1", kind = "ServiceAccount" },
  { group = "example.com", version = "v1", kind = "Widget" },
  { group = "example.com", version = "v1", kind = "Gadget" },
]"#;

/// `widgets.example.com`; `gadgets.example.com` is configured but installed nowhere.
const WIDGET_CRD: &str = r#"apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
"#;

async fn start() -> Result<Env> {
    let env = Env::start_with(Options { sync_lines: EXTRA_KINDS, ..Options::default() }).await?;
    // m3 lacks the Widget type: a copy there cannot be made.
    for c in ["host", "m1", "m2"] {
        env.apply(c, WIDGET_CRD).await?;
    }
    Ok(env)
}

fn managed(o: &Option<Value>) -> bool {
    o.as_ref().and_then(|o| o.pointer("/metadata/labels/meridian.io~1managed-by")).is_some()
}

fn size(o: &Option<Value>) -> Option<i64> {
    o.as_ref()?.pointer("/spec/size")?.as_i64()
}

/// A ServiceAccount goes where its placement says; the `default` ServiceAccount each
/// cluster makes for itself is left alone; a custom resource gets its override, a member
/// without its definition says why it has no copy, and a foreground delete cascades.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn extra_kinds_are_placed_overridden_and_deleted_like_the_defaults() -> Result<()> {
    let env = start().await?;
    env.apply(
        "host",
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\n  annotations: {meridian.io/clusters: \"m1,m2\"}\n",
    )
    .await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "serviceaccount", "builder"), managed).await?;
    }
    env.apply(
        "host",
        r#"apiVersion: example.com/v1
kind: Widget
metadata:
  name: w1
  annotations:
    meridian.io/overrides: '{"m2": [{"op": "replace", "path": "/spec/size", "value": 5}]}'
spec: {size: 1}
"#,
    )
    .await?;
    wait_for("m1 widget", WAIT, || env.get("m1", "widget", "w1"), |o| managed(o) && size(o) == Some(1)).await?;
    wait_for("m2 widget", WAIT, || env.get("m2", "widget", "w1"), |o| managed(o) && size(o) == Some(5)).await?;
    let status = wait_for(
        "m3 failure",
        WAIT,
        || env.sync_status("widget", "w1"),
        |s| s["clusters"]["m3"]["state"] != Value::Null,
    )
    .await?;
    let m3 = &status["clusters"]["m3"];
    assert_eq!(m3["state"], "ApplyFailed", "{status}");
    assert!(m3["message"].as_str().is_some_and(|m| m.contains("example.com/v1 Widget is not served")), "{status}");
    // Placement held: m3 got no ServiceAccount; nobody got the host's `default` one.
    assert_eq!(env.get("m3", "serviceaccount", "builder").await?, None);
    for c in ["m1", "m2", "m3"] {
        let default = env.get(c, "serviceaccount", "default").await?;
        assert!(default.is_some() && !managed(&default), "{c}: {default:?}");
    }
    let listed = env.sync()?.status();
    let kinds = listed["objects"].as_array().map(|o| o.iter().map(|v| (v["apiVersion"].clone(), v["kind"].clone())));
    assert!(kinds.is_some_and(|mut k| k.any(|(a, k)| a == "example.com/v1" && k == "Widget")), "{listed}");

    env.kubectl(&["--context", "host", "delete", "widget", "w1", "--cascade=foreground"]).await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "widget", "w1"), Option::is_none).await?;
    }
    env.kubectl(&["--context", "host", "delete", "serviceaccount", "builder"]).await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "serviceaccount", "builder"), |o| o.is_some() && !managed(o)).await?;
    }
    env.shutdown().await;
    Ok(())
}

/// A configured type the control plane does not serve is named in the status with its
/// watch error; a reload that takes a type out lets go of its objects: Meridian's
/// finalizer comes off, so deleting one completes at once, and the members keep their
/// copies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unserved_type_is_reported_and_a_type_taken_out_is_released() -> Result<()> {
    let env = start().await?;
    let sync = env.sync()?;
    let gadget = eventually_sync(WAIT, "Gadget's watch error", || {
        let s = sync.status();
        let kinds = s["kinds"].as_array()?.clone();
        kinds.into_iter().find(|k| k["kind"] == "Gadget" && k["watchError"].is_string())
    })
    .await?;
    assert_eq!(gadget["apiVersion"], "example.com/v1");
    env.apply("host", "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2}\nspec: {size: 2}\n").await?;
    wait_for("m1 widget", WAIT, || env.get("m1", "widget", "w2"), managed).await?;
    let has_finalizer = |o: &Option<Value>| {
        o.as_ref()
            .and_then(|o| o.pointer("/metadata/finalizers")?.as_array().cloned())
            .is_some_and(|f| f.iter().any(|f| f == "meridian.io/sync"))
    };
    assert!(has_finalizer(&env.get("host", "widget", "w2").await?));

    let text = config_text_with(MEMBERS, &Options::default());
    sync.reload(&Config::parse(&text, Path::new("test.toml"), env.dir.path())?);
    wait_for("finalizer released", WAIT, || env.get("host", "widget", "w2"), |o| o.is_some() && !has_finalizer(o))
        .await?;
    let listed = sync.status();
    let kinds: Vec<Value> = listed["kinds"].as_array().cloned().unwrap_or_default();
    assert!(kinds.iter().all(|k| k["kind"] != "Widget" && k["kind"] != "Gadget"), "{listed}");
    env.kubectl(&["--context", "host", "delete", "widget", "w2", "--cascade=foreground", "--timeout=5s"]).await?;
    assert_eq!(env.get("host", "widget", "w2").await?, None);
    // Not federated any more: the copy stays as it was.
    let copy = env.get("m1", "widget", "w2").await?;
    assert_eq!(size(&copy), Some(2), "{copy:?}");
    env.shutdown().await;
    Ok(())
}
