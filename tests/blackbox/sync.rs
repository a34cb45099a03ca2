//! Resource sync through the binary: objects created with kubectl in the demo's control
//! plane (`host`) appear in the member clusters.

use std::time::Duration;

use anyhow::Result;
use meridian_tests::{Meridian, eventually, kubectl_ok};

#[test]
fn a_deployment_created_in_the_control_plane_is_split_across_members() -> Result<()> {
    let m = Meridian::demo()?;
    let kc = m.kubeconfig();
    let manifest = m.state_dir.path().join("deploy.yaml");
    std::fs::write(
        &manifest,
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: shopfront
  namespace: shop
  annotations:
    federation.kubernetes.io/replica-set-preferences: '{"rebalance": true, "clusters": {"us-east": {"weight": 1}, "eu-west": {"weight": 2}}}'
spec:
  replicas: 9
  selector: {matchLabels: {app: shopfront}}
  template:
    metadata: {labels: {app: shopfront}}
    spec: {containers: [{name: web, image: nginx}]}
"#,
    )?;
    kubectl_ok(&kc, "host", &["create", "namespace", "shop"])?;
    kubectl_ok(&kc, "host", &["apply", "-f", &manifest.to_string_lossy()])?;
    // ap-south has no entry and there is no "*": it gets no replicas.
    for (ctx, want) in [("us-east", "3"), ("eu-west", "6"), ("ap-south", "0")] {
        eventually(Duration::from_secs(10), &format!("replicas in {ctx}"), || {
            let out =
                kubectl_ok(&kc, ctx, &["-n", "shop", "get", "deploy", "shopfront", "-o", "jsonpath={.spec.replicas}"]);
            Ok(out.ok().filter(|r| r == want).map(|_| ()))
        })?;
    }
    // The control-plane object's Events say what happened.
    let describe = kubectl_ok(&kc, "host", &["-n", "shop", "describe", "deploy", "shopfront"])?;
    assert!(describe.contains("CreateInCluster"), "{describe}");
    Ok(())
}
