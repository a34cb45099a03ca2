//! What every namespace holds from birth, and the `kubernetes` Service in `default`.

use anyhow::{Context as _, Result};
use meridian_testkit::wait::eventually;
use serde_json::Value;

use crate::support::{Env, WAIT};

/// SetDefaults_Namespace labels each namespace with its name (a label no update removes);
/// kube-controller-manager's serviceaccount controller and root-ca-cert-publisher add the
/// `default` ServiceAccount and the `kube-root-ca.crt` ConfigMap, and put them back when
/// they are deleted. The namespace still goes away when deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_namespaces_get_their_name_label_a_service_account_and_the_root_ca() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    env.kubectl(&["create", "namespace", "shop"]).await?;
    let by_label = env.kubectl(&["get", "ns", "-l", "kubernetes.io/metadata.name=shop", "-o", "name"]).await?;
    assert_eq!(by_label.trim(), "namespace/shop");
    env.kubectl(&["label", "ns", "shop", "kubernetes.io/metadata.name-"]).await?;
    let label = env
        .kubectl(&["get", "ns", "shop", "-o", "jsonpath={.metadata.labels.kubernetes\\.io/metadata\\.name}"])
        .await?;
    assert_eq!(label, "shop");

    let sa_uid = || async {
        env.kubectl(&["get", "sa", "default", "-n", "shop", "-o", "jsonpath={.metadata.uid}"])
            .await
            .ok()
            .filter(|u| !u.is_empty())
    };
    let first = eventually(WAIT, "default ServiceAccount", sa_uid).await?;
    let ca = env.kubectl(&["get", "cm", "kube-root-ca.crt", "-n", "shop", "-o", "jsonpath={.data.ca\\.crt}"]).await?;
    assert!(
        ca.starts_with("-----BEGIN CERTIFICATE-----") && ca.trim_end().ends_with("-----END CERTIFICATE-----"),
        "{ca}"
    );

    env.kubectl(&["delete", "sa", "default", "-n", "shop"]).await?;
    let again =
        eventually(WAIT, "a new default ServiceAccount", || async { sa_uid().await.filter(|u| *u != first) }).await?;
    assert_ne!(again, first);
    env.kubectl(&["patch", "cm", "kube-root-ca.crt", "-n", "shop", "-p", r#"{"data":{"ca.crt":"tampered"}}"#]).await?;
    eventually(WAIT, "the CA bundle restored", || async {
        let now = env
            .kubectl(&["get", "cm", "kube-root-ca.crt", "-n", "shop", "-o", "jsonpath={.data.ca\\.crt}"])
            .await
            .ok()?;
        (now == ca).then_some(())
    })
    .await?;

    env.kubectl(&["delete", "ns", "shop", "--wait=false"]).await?;
    eventually(WAIT, "namespace shop gone", || async {
        let out = env.kubectl_output(&["get", "ns", "shop"]).await.ok()?;
        String::from_utf8_lossy(&out.stderr).contains("NotFound").then_some(())
    })
    .await?;
    Ok(())
}

/// kube-apiserver's own Service: `kubernetes` in `default`, ClusterIP 10.96.0.1 (the first
/// address of the service range), `https` on 443, with Endpoints and an EndpointSlice that
/// lead to the API server itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_holds_the_kubernetes_service_leading_to_the_api() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let svc: Value = serde_json::from_str(&env.kubectl(&["get", "svc", "kubernetes", "-o", "json"]).await?)?;
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    let port = &svc["spec"]["ports"][0];
    assert_eq!(
        (port["name"].as_str(), port["port"].as_u64(), port["protocol"].as_str()),
        (Some("https"), Some(443), Some("TCP"))
    );
    assert_eq!(port["targetPort"].as_u64(), Some(u64::from(c.port())));

    let ep = env
        .kubectl(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        ])
        .await?;
    assert_eq!(ep, format!("127.0.0.1:{}", c.port()));
    let slices =
        env.kubectl(&["get", "endpointslices", "-l", "kubernetes.io/service-name=kubernetes", "-o", "name"]).await?;
    assert_eq!(slices.trim(), "endpointslice.discovery.k8s.io/kubernetes");
    // The address really is the API: kubectl can use it.
    let version = env.kubectl(&["--server", &format!("http://{ep}"), "version", "-o", "json"]).await?;
    let v: Value = serde_json::from_str(&version)?;
    assert!(v["serverVersion"]["gitVersion"].as_str().context("serverVersion")?.starts_with("v1."), "{v}");
    Ok(())
}
