//! The `/scale` subresource (autoscaling/v1 Scale) with kubectl and kube-rs.

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use meridian_testkit::wait::eventually_sync;
use serde_json::{Value, json};

use crate::support::{Env, WAIT};

fn workload(kind: &str, name: &str, replicas: u32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    })
}

async fn client(env: &Env) -> Result<Client> {
    let kc = kube::config::Kubeconfig::read_from(&env.kubeconfig)?;
    let opts = kube::config::KubeConfigOptions { context: Some("east".into()), ..Default::default() };
    Ok(Client::try_from(kube::Config::from_custom_kubeconfig(kc, &opts).await?)?)
}

/// `kubectl scale` (discovery's `deployments/scale` → autoscaling/v1 Scale) sets
/// `spec.replicas` of Deployments, ReplicaSets and StatefulSets; the Scale shows the
/// replicas and the selector string; `--current-replicas` is checked against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_scale_sets_replicas_of_every_scalable_workload() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    for (kind, short) in [("Deployment", "deployment"), ("ReplicaSet", "rs"), ("StatefulSet", "sts")] {
        let name = format!("w-{short}");
        c.apply_json(workload(kind, &name, 1))?;
        let out = env.kubectl(&["scale", short, &name, "--replicas=4"]).await?;
        assert!(out.contains("scaled"), "{kind}: {out}");
        let obj = c.get_json("apps/v1", kind, Some("default"), &name).context("workload")?;
        assert_eq!(obj["spec"]["replicas"], 4, "{kind}");
        assert_eq!(obj["metadata"]["generation"], 2, "{kind}");
        eventually_sync(WAIT, "status follows", || {
            c.get_json("apps/v1", kind, Some("default"), &name).filter(|o| o["status"]["replicas"] == 4)
        })
        .await?;
    }
    env.kubectl(&["rollout", "status", "sts/w-sts", "--timeout=10s"]).await?;
    let raw = env.kubectl(&["get", "--raw", "/apis/apps/v1/namespaces/default/deployments/w-deployment/scale"]).await?;
    let scale: Value = serde_json::from_str(&raw)?;
    assert_eq!((scale["kind"].as_str(), scale["apiVersion"].as_str()), (Some("Scale"), Some("autoscaling/v1")));
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"], json!({"replicas": 4, "selector": "app=w-deployment"}));

    let err = env.kubectl_err(&["scale", "deployment", "w-deployment", "--current-replicas=9", "--replicas=1"]).await?;
    assert!(err.contains("Expected replicas to be 9, was 4"), "{err}");
    let out = env.kubectl(&["scale", "deployment", "w-deployment", "--current-replicas=4", "--replicas=0"]).await?;
    assert!(out.contains("scaled"), "{out}");
    Ok(())
}

/// kube-rs `replace_scale`/`patch_scale`: a Scale with a stale resourceVersion is 409
/// (it is a precondition on the object), negative replicas 422 (ValidateScale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_writes_check_resource_version_and_replicas() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    env.cluster("east")?.apply_json(workload("Deployment", "web", 2))?;
    let api: Api<Deployment> = Api::namespaced(client(&env).await?, "default");
    let stale = api.get_scale("web").await?;
    let patched =
        api.patch_scale("web", &PatchParams::default(), &Patch::Merge(json!({"spec": {"replicas": 3}}))).await?;
    assert_eq!(patched.spec.and_then(|s| s.replicas), Some(3));
    let err = api.replace_scale("web", &PostParams::default(), &stale).await.err().context("stale scale accepted")?;
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err:?}");

    let mut negative = api.get_scale("web").await?;
    negative.spec = Some(k8s_openapi::api::autoscaling::v1::ScaleSpec { replicas: Some(-1) });
    let err = api.replace_scale("web", &PostParams::default(), &negative).await.err().context("-1 accepted")?;
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 422), "{err:?}");
    assert_eq!(api.get("web").await?.spec.and_then(|s| s.replicas), Some(3));
    Ok(())
}
