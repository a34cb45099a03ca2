//! Defaulting on create, and which kinds carry `metadata.generation`.

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use crate::support::Env;

fn get_json(v: &str) -> Result<Value> {
    serde_json::from_str(v).context("kubectl -o json output")
}

/// SetDefaults_Deployment, SetDefaults_PodSpec and SetDefaults_Container: what a
/// Deployment created with `kubectl create -f` reads back with, client values kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_and_their_pod_templates_are_defaulted_on_create() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let f = env.manifest(
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - {name: edge, image: nginx, ports: [{containerPort: 80}]}\n      - {name: pinned, image: 'registry.local:5000/app:1.2'}\n      - {name: mine, image: 'app:latest', imagePullPolicy: Never}\n",
    )?;
    env.kubectl(&["create", "-f", &f]).await?;
    let d = get_json(&env.kubectl(&["get", "deploy", "web", "-o", "json"]).await?)?;
    let spec = &d["spec"];
    assert_eq!(spec["replicas"], 1);
    assert_eq!(
        spec["strategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}})
    );
    assert_eq!(
        (spec["revisionHistoryLimit"].clone(), spec["progressDeadlineSeconds"].clone()),
        (json!(10), json!(600))
    );
    let pod = &spec["template"]["spec"];
    for (field, want) in [
        ("restartPolicy", json!("Always")),
        ("dnsPolicy", json!("ClusterFirst")),
        ("schedulerName", json!("default-scheduler")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("securityContext", json!({})),
    ] {
        assert_eq!(pod[field], want, "{field}");
    }
    let policies: Vec<&Value> = (0..3).map(|i| &pod["containers"][i]["imagePullPolicy"]).collect();
    assert_eq!(policies, [&json!("Always"), &json!("IfNotPresent"), &json!("Never")]);
    let edge = &pod["containers"][0];
    assert_eq!(edge["terminationMessagePath"], "/dev/termination-log");
    assert_eq!(edge["terminationMessagePolicy"], "File");
    assert_eq!(edge["ports"][0]["protocol"], "TCP");
    Ok(())
}

/// SetDefaults_Secret, SetDefaults_Service and SetDefaults_ServicePort as kubectl's
/// imperative commands see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_services_are_defaulted_on_create() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    env.kubectl(&["create", "secret", "generic", "creds", "--from-literal=user=admin"]).await?;
    assert_eq!(env.kubectl(&["get", "secret", "creds", "-o", "jsonpath={.type}"]).await?, "Opaque");
    let f = env.manifest(
        "svc.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: api}\nspec:\n  selector: {app: api}\n  ports: [{name: http, port: 8080}]\n",
    )?;
    env.kubectl(&["create", "-f", &f]).await?;
    let svc = get_json(&env.kubectl(&["get", "svc", "api", "-o", "json"]).await?)?;
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["sessionAffinity"], "None");
    assert_eq!(svc["spec"]["ports"][0], json!({"name": "http", "port": 8080, "protocol": "TCP", "targetPort": 8080}));
    Ok(())
}

/// Only kinds whose strategies set `metadata.generation` have one (Deployments do, and
/// their annotations move it, as the Deployment strategy's PrepareForUpdate says);
/// ConfigMaps, Secrets, Services and Namespaces never get one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_kinds_with_a_spec_carry_a_generation() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    env.kubectl(&["create", "configmap", "settings", "--from-literal=a=1"]).await?;
    env.kubectl(&["patch", "cm", "settings", "-p", r#"{"data":{"a":"2"}}"#]).await?;
    env.kubectl(&["create", "secret", "generic", "creds", "--from-literal=a=1"]).await?;
    env.kubectl(&["create", "namespace", "shop"]).await?;
    env.kubectl(&["create", "service", "clusterip", "api", "--tcp=80:8080"]).await?;
    for (kind, name) in [("cm", "settings"), ("secret", "creds"), ("ns", "shop"), ("svc", "api")] {
        let o = get_json(&env.kubectl(&["get", kind, name, "-o", "json"]).await?)?;
        assert!(o["metadata"].get("generation").is_none(), "{kind}/{name} has a generation: {o}");
    }
    env.kubectl(&["create", "deployment", "web", "--image=nginx:1.27"]).await?;
    let generation = || env.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.metadata.generation}"]);
    assert_eq!(generation().await?, "1");
    env.kubectl(&["label", "deploy", "web", "tier=front"]).await?;
    assert_eq!(generation().await?, "1");
    env.kubectl(&["annotate", "deploy", "web", "owner=team-a"]).await?;
    assert_eq!(generation().await?, "2");
    Ok(())
}
