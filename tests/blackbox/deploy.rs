//! `deploy/` is what `kubectl apply -k` takes: a server-side dry run passes against a
//! simulated cluster (which validates and defaults as kube-apiserver does), the real
//! apply creates every object, `deploy/member/` applies on its own, and the
//! configuration the manifests mount passes `meridian check`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Result;
use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use meridian_tests::{binary, kubectl_ok};

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_manifests_apply_with_kustomize_and_their_config_passes_check() -> Result<()> {
    let sim = Simulator::new(SimOptions { backends: false, ..SimOptions::default() });
    sim.add_cluster(ClusterSpec::new("home")).await?;
    sim.add_cluster(ClusterSpec::new("member")).await?;
    let dir = tempfile::tempdir()?;
    let kc = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kc)?;
    let deploy = deploy_dir().to_string_lossy().into_owned();
    let member = deploy_dir().join("member").to_string_lossy().into_owned();
    let kc2 = kc.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        // A server-side dry run of namespaced objects needs their namespace, as on a real
        // API server (the dry run creates nothing, the Namespace included).
        kubectl_ok(&kc2, "home", &["create", "namespace", "meridian"])?;
        let dry = kubectl_ok(&kc2, "home", &["apply", "-k", &deploy, "--dry-run=server"])?;
        assert!(dry.contains("deployment.apps/meridian created (server dry run)"), "{dry}");
        let none = kubectl_ok(&kc2, "home", &["-n", "meridian", "get", "deploy", "-o", "name"])?;
        assert_eq!(none.trim(), "", "a dry run creates nothing");
        kubectl_ok(&kc2, "home", &["apply", "-k", &deploy])?;
        let objects = kubectl_ok(&kc2, "home", &["-n", "meridian", "get", "deploy,svc,sa,cm,secret", "-o", "name"])?;
        for want in
            ["deployment.apps/meridian", "service/meridian", "serviceaccount/meridian", "secret/meridian-kubeconfigs"]
        {
            assert!(objects.contains(want), "{want} missing: {objects}");
        }
        assert!(objects.contains("configmap/meridian-config-"), "generated ConfigMap: {objects}");
        let roles = kubectl_ok(&kc2, "home", &["get", "clusterroles,clusterrolebindings", "-o", "name"])?;
        for want in ["meridian-control-plane", "meridian-member"] {
            assert!(roles.matches(want).count() == 2, "{want} role and binding: {roles}");
        }
        let ports = kubectl_ok(
            &kc2,
            "home",
            &["-n", "meridian", "get", "svc", "meridian", "-o", "jsonpath={.spec.ports[*].protocol}"],
        )?;
        assert_eq!(ports, "UDP TCP TCP TCP");
        kubectl_ok(&kc2, "member", &["apply", "-k", &member])?;
        let sa = kubectl_ok(&kc2, "member", &["-n", "meridian", "get", "sa", "meridian", "-o", "name"])?;
        assert_eq!(sa.trim(), "serviceaccount/meridian");
        Ok(())
    })
    .await??;
    sim.shutdown().await;

    let out = Command::new(binary())
        .args(["check", "--offline", "--config"])
        .arg(deploy_dir().join("meridian.toml"))
        .output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}
