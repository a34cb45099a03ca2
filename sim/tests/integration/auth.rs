//! `kubectl auth can-i` and `kubectl auth whoami` against the self-review resources.

use anyhow::Result;

use crate::support::{Env, api_request};

/// SelfSubjectAccessReview and SelfSubjectRulesReview (authorization.k8s.io/v1) answer
/// "allowed" as RBAC does for a cluster admin; SelfSubjectReview (authentication.k8s.io/v1)
/// names kubeadm's admin user. Discovery lists them as create-only resources.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_can_i_and_whoami_answer_for_the_cluster_admin() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    assert_eq!(env.kubectl(&["auth", "can-i", "create", "deployments"]).await?.trim(), "yes");
    assert_eq!(env.kubectl(&["auth", "can-i", "delete", "secrets", "-n", "kube-system"]).await?.trim(), "yes");
    assert_eq!(env.kubectl(&["auth", "can-i", "get", "/healthz"]).await?.trim(), "yes");
    let rules = env.kubectl(&["auth", "can-i", "--list"]).await?;
    assert!(rules.lines().any(|l| l.starts_with("*.*") && l.contains("[*]")), "{rules}");
    let me = env.kubectl(&["auth", "whoami"]).await?;
    assert!(me.contains("kubernetes-admin") && me.contains("system:authenticated"), "{me}");

    let listed = env.kubectl(&["api-resources", "--api-group=authorization.k8s.io", "-o", "name"]).await?;
    assert!(listed.lines().any(|l| l == "selfsubjectaccessreviews.authorization.k8s.io"), "{listed}");
    // Neither attributes: ValidateSelfSubjectAccessReview refuses it.
    let empty =
        serde_json::json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview", "spec": {}});
    let (code, body) =
        api_request(&c, "POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", Some(&empty)).await?;
    assert_eq!((code, body["reason"].as_str()), (422, Some("Invalid")), "{body}");
    Ok(())
}
