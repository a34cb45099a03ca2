//! Strategic merge patch (`kubectl patch`'s default) by the types' merge keys.

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use crate::support::Env;

/// ServiceSpec.ports merges by `port` (`patchMergeKey:"port"`): `$patch: delete` removes
/// that element only, and a new port is appended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_ports_merge_and_delete_by_port() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    c.apply_json(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}, {"name": "metrics", "port": 9000}]}}))?;
    let ports = || -> Result<Vec<Value>> {
        let s = c.get_json("v1", "Service", Some("default"), "web").context("service")?;
        Ok(s["spec"]["ports"].as_array().cloned().unwrap_or_default())
    };
    env.kubectl(&["patch", "svc", "web", "-p", r#"{"spec":{"ports":[{"port":443,"$patch":"delete"}]}}"#]).await?;
    let numbers: Vec<Value> = ports()?.iter().map(|p| p["port"].clone()).collect();
    assert_eq!(numbers, [json!(80), json!(9000)]);
    env.kubectl(&[
        "patch",
        "svc",
        "web",
        "-p",
        r#"{"spec":{"ports":[{"port":8443,"name":"alt"},{"port":80,"targetPort":8080}]}}"#,
    ])
    .await?;
    let now = ports()?;
    let names: Vec<&str> = now.iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(names, ["http", "metrics", "alt"]);
    assert_eq!(now[0]["targetPort"], 8080);
    Ok(())
}

/// PodSpec.hostAliases merges by `ip`; `metadata.finalizers` is a set (`patchStrategy:
/// merge`) with `$deleteFromPrimitiveList`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_aliases_merge_by_ip_and_finalizers_as_a_set() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    c.apply_json(json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "finalizers": ["example.com/a"]},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "d"}}, "template": {"metadata": {"labels": {"app": "d"}},
            "spec": {"hostAliases": [{"ip": "10.0.0.1", "hostnames": ["one"]}], "containers": [{"name": "c", "image": "nginx"}]}}},
    }))?;
    let patch = r#"{"metadata":{"finalizers":["example.com/b"]},"spec":{"template":{"spec":{"hostAliases":[{"ip":"10.0.0.2","hostnames":["two"]},{"ip":"10.0.0.1","hostnames":["uno"]}]}}}}"#;
    env.kubectl(&["patch", "deploy", "d", "-p", patch]).await?;
    let d = c.get_json("apps/v1", "Deployment", Some("default"), "d").context("deployment")?;
    assert_eq!(
        d["spec"]["template"]["spec"]["hostAliases"],
        json!([{"ip": "10.0.0.1", "hostnames": ["uno"]}, {"ip": "10.0.0.2", "hostnames": ["two"]}])
    );
    assert_eq!(d["metadata"]["finalizers"], json!(["example.com/a", "example.com/b"]));
    env.kubectl(&[
        "patch",
        "deploy",
        "d",
        "-p",
        r#"{"metadata":{"$deleteFromPrimitiveList/finalizers":["example.com/a"]}}"#,
    ])
    .await?;
    let d = c.get_json("apps/v1", "Deployment", Some("default"), "d").context("deployment")?;
    assert_eq!(d["metadata"]["finalizers"], json!(["example.com/b"]));
    Ok(())
}
