//! Server-side apply's field ownership: conflicts, `--force-conflicts`, removal of fields a
//! manager stops applying.

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use crate::support::Env;

fn owned(d: &Value, manager: &str, op: &str) -> Option<Value> {
    d["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager && e["operation"] == op)
        .map(|e| e["fieldsV1"].clone())
}

/// A second manager changing a field another manager owns gets 409 naming owner and field
/// (fieldmanager's NewConflictError); `--force-conflicts` transfers ownership; a field its
/// owner stops applying is removed, one still co-owned stays; `kubectl scale` (manager from
/// the User-Agent, subresource scale) owns `.spec.replicas` afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_manager_conflicts_force_takes_over_and_dropped_fields_go() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let deploy = |labels: &str, replicas: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels: {{{labels}}}\nspec:\n{replicas}  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec: {{containers: [{{name: web, image: nginx}}]}}\n"
        )
    };
    env.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &env.manifest("d1.yaml", &deploy("a: '1', b: '2'", "  replicas: 2\n"))?,
    ])
    .await?;
    let ops = env.manifest(
        "ops.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, labels: {a: '1'}}\nspec: {replicas: 3}\n",
    )?;
    let err = env.kubectl_err(&["apply", "--server-side", "--field-manager=ops", "-f", &ops]).await?;
    assert!(err.contains(r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.replicas"#), "{err}");

    let kc = kube::config::Kubeconfig::read_from(&env.kubeconfig)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default()).await?;
    let api: Api<Deployment> = Api::namespaced(kube::Client::try_from(cfg)?, "default");
    let patch =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 4}});
    let err = api.patch("web", &PatchParams::apply("rs"), &Patch::Apply(&patch)).await.err().context("no conflict")?;
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409 && s.reason == "Conflict"), "{err:?}");

    env.kubectl(&["apply", "--server-side", "--field-manager=ops", "--force-conflicts", "-f", &ops]).await?;
    let d = c.get_json("apps/v1", "Deployment", Some("default"), "web").context("deployment")?;
    assert_eq!(d["spec"]["replicas"], 3);
    assert_eq!(
        owned(&d, "ops", "Apply"),
        Some(json!({"f:metadata": {"f:labels": {"f:a": {}}}, "f:spec": {"f:replicas": {}}}))
    );
    assert!(owned(&d, "kubectl", "Apply").is_some_and(|f| f["f:spec"].get("f:replicas").is_none()));

    // kubectl stops applying both labels and replicas: b goes, a (ops co-owns) and replicas stay.
    env.kubectl(&["apply", "--server-side", "-f", &env.manifest("d2.yaml", &deploy("", ""))?]).await?;
    let d = c.get_json("apps/v1", "Deployment", Some("default"), "web").context("deployment")?;
    assert_eq!(d["metadata"]["labels"], json!({"a": "1"}));
    assert_eq!(d["spec"]["replicas"], 3);

    env.kubectl(&["scale", "deployment", "web", "--replicas=5"]).await?;
    let err = env.kubectl_err(&["apply", "--server-side", "--field-manager=ops", "-f", &ops]).await?;
    assert!(err.contains(r#"conflict with "kubectl" with subresource "scale" using apps/v1"#), "{err}");
    Ok(())
}
