//! ReplicaSets under Deployments: `kubectl rollout history` and `kubectl rollout undo`.

use anyhow::{Context as _, Result};
use k8s_openapi::api::apps::v1::ReplicaSet;
use kube::Api;
use kube::api::ListParams;
use meridian_testkit::wait::eventually;

use crate::support::{Env, WAIT};

/// The Deployment's ReplicaSets: name, image, replicas and revision, by revision.
async fn sets(api: &Api<ReplicaSet>) -> Result<Vec<(String, String, i32, String)>> {
    let mut out: Vec<(String, String, i32, String)> = api
        .list(&ListParams::default().labels("app=web"))
        .await?
        .items
        .into_iter()
        .map(|rs| {
            let rev =
                rs.metadata.annotations.as_ref().and_then(|a| a.get("deployment.kubernetes.io/revision")).cloned();
            let image =
                rs.spec.as_ref().and_then(|s| s.template.as_ref()?.spec.as_ref()?.containers.first()?.image.clone());
            (
                rs.metadata.name.unwrap_or_default(),
                image.unwrap_or_default(),
                rs.spec.and_then(|s| s.replicas).unwrap_or(-1),
                rev.unwrap_or_default(),
            )
        })
        .collect();
    out.sort_by_key(|s| s.3.parse::<u32>().unwrap_or(0));
    Ok(out)
}

/// The deployment controller: each template gets a ReplicaSet `<name>-<pod-template-hash>`
/// controlled by the Deployment with the next `deployment.kubernetes.io/revision`; the
/// current one has the replicas, older ones none. `rollout undo` writes an old template
/// back, and its ReplicaSet becomes current again under a new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_history_and_undo_follow_the_deployment_s_replica_sets() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let api: Api<ReplicaSet> = Api::namespaced(env.client("east").await?, "default");
    env.kubectl(&["create", "deployment", "web", "--image=nginx:1.26", "--replicas=2"]).await?;
    let first =
        eventually(WAIT, "the first ReplicaSet", || async { sets(&api).await.ok().filter(|s| s.len() == 1) }).await?;
    let (name, image, replicas, rev) = first[0].clone();
    assert!(name.starts_with("web-") && name.len() > 4, "{name}");
    assert_eq!((image.as_str(), replicas, rev.as_str()), ("nginx:1.26", 2, "1"));
    let rs = api.get(&name).await?;
    let owner = rs.metadata.owner_references.as_ref().and_then(|o| o.first()).context("no owner")?;
    assert_eq!((owner.kind.as_str(), owner.name.as_str(), owner.controller), ("Deployment", "web", Some(true)));
    let hash = rs.metadata.labels.as_ref().and_then(|l| l.get("pod-template-hash")).context("no hash label")?;
    assert!(name.ends_with(hash.as_str()), "{name} {hash}");

    env.kubectl(&["set", "image", "deploy/web", "nginx=nginx:1.27"]).await?;
    let two = eventually(WAIT, "a second revision", || async {
        sets(&api).await.ok().filter(|s| s.len() == 2 && s[0].2 == 0 && s[1].2 == 2)
    })
    .await?;
    assert_eq!((two[1].1.as_str(), two[1].3.as_str()), ("nginx:1.27", "2"));
    let history = env.kubectl(&["rollout", "history", "deploy/web"]).await?;
    let revisions: Vec<&str> =
        history.lines().filter_map(|l| l.split_whitespace().next()).filter(|w| w.parse::<u32>().is_ok()).collect();
    assert_eq!(revisions, ["1", "2"], "{history}");

    let undone = env.kubectl(&["rollout", "undo", "deploy/web"]).await?;
    assert!(undone.contains("rolled back"), "{undone}");
    let after = eventually(WAIT, "revision 1 back as revision 3", || async {
        sets(&api).await.ok().filter(|s| s.len() == 2 && s[1].0 == name && s[1].3 == "3" && s[1].2 == 2)
    })
    .await?;
    assert_eq!(after[0].2, 0, "{after:?}");
    let image =
        env.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]).await?;
    assert_eq!(image, "nginx:1.26");
    let shown = env.kubectl(&["rollout", "history", "deploy/web", "--revision=3"]).await?;
    assert!(shown.contains("nginx:1.26"), "{shown}");
    env.kubectl(&["rollout", "status", "deploy/web", "--timeout=10s"]).await?;

    // The garbage collector takes the ReplicaSets with their Deployment.
    env.kubectl(&["delete", "deploy", "web"]).await?;
    eventually(WAIT, "ReplicaSets collected", || async { sets(&api).await.ok().filter(Vec::is_empty) }).await?;
    Ok(())
}

/// `spec.revisionHistoryLimit` old ReplicaSets are kept; older ones are deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_replica_sets_beyond_the_history_limit_are_deleted() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let api: Api<ReplicaSet> = Api::namespaced(env.client("east").await?, "default");
    env.kubectl(&["create", "deployment", "web", "--image=nginx:1.0"]).await?;
    env.kubectl(&["patch", "deploy", "web", "-p", r#"{"spec":{"revisionHistoryLimit":1}}"#]).await?;
    for v in ["1.1", "1.2", "1.3"] {
        let image = format!("nginx:{v}");
        env.kubectl(&["set", "image", "deploy/web", &format!("nginx={image}")]).await?;
        eventually(WAIT, "the new ReplicaSet", || async {
            sets(&api).await.ok().filter(|s| s.last().is_some_and(|l| l.1 == image && l.2 == 1))
        })
        .await?;
    }
    let kept = eventually(WAIT, "one old ReplicaSet kept", || async {
        sets(&api).await.ok().filter(|s| s.len() == 2 && s[1].1 == "nginx:1.3")
    })
    .await?;
    assert_eq!((kept[0].1.as_str(), kept[0].2), ("nginx:1.2", 0), "{kept:?}");
    assert_eq!(kept[1].3, "4");
    Ok(())
}
