//! Fields that a member's API server allocates, or its controllers own, never travel
//! from the control plane: each member keeps its own.

use std::time::Duration;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::support::{Env, wait_for};

const WAIT: Duration = Duration::from_secs(10);

/// As if the control plane's API server had allocated them: the simulator does not
/// allocate a healthCheckNodePort itself, and picks nodePorts and cluster IPs in order
/// from the bottom of its ranges, where a member's own allocations would coincide.
const LOCAL_LB: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: edge}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  healthCheckNodePort: 32700
  clusterIP: 10.100.200.1
  selector: {app: edge}
  ports: [{port: 80, nodePort: 32701}]
"#;

const HEADLESS: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: peers}\nspec:\n  clusterIP: None\n  selector: {app: peers}\n  ports: [{port: 7000}]\n";

const REVISED: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: revised
  annotations: {deployment.kubernetes.io/revision: "7"}
spec:
  replicas: 3
  selector: {matchLabels: {app: revised}}
  template:
    metadata: {labels: {app: revised}}
    spec: {containers: [{name: c, image: busybox}]}
"#;

fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer)
}

/// Meridian's own `managedFields` entry in a member copy: the fields it applied.
fn applied_by_meridian(copy: &Value) -> Value {
    let entries = at(copy, "/metadata/managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
    entries.into_iter().find(|e| e["manager"] == "meridian").map(|e| e["fieldsV1"].clone()).unwrap_or_default()
}

/// A Local-traffic load balancer's healthCheckNodePort, nodePorts and cluster IP, which
/// the control plane allocated, reach no member (they allocate their own), a headless
/// Service stays headless, and a Deployment's rollout revision stays the members' own.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fields_members_allocate_or_own_are_never_copied() -> Result<()> {
    let env = Env::start().await?;
    env.apply("host", LOCAL_LB).await?;
    env.apply("host", HEADLESS).await?;
    env.apply("host", REVISED).await?;
    let host = env.get("host", "service", "edge").await?.context("edge in the control plane")?;
    assert_eq!(at(&host, "/spec/healthCheckNodePort"), Some(&Value::from(32700)), "the control plane has one");
    for c in ["m1", "m2", "m3"] {
        let copy = wait_for(c, WAIT, || env.get(c, "service", "edge"), Option::is_some).await?.context("copy")?;
        assert_eq!(at(&copy, "/spec/externalTrafficPolicy"), Some(&Value::from("Local")), "{c}: the user's choice");
        assert_ne!(at(&copy, "/spec/healthCheckNodePort"), Some(&Value::from(32700)), "{c}: {copy}");
        assert_ne!(at(&copy, "/spec/ports/0/nodePort"), Some(&Value::from(32701)), "{c}: {copy}");
        assert_ne!(at(&copy, "/spec/clusterIP"), Some(&Value::from("10.100.200.1")), "{c}: {copy}");
        let applied = applied_by_meridian(&copy);
        for f in ["f:healthCheckNodePort", "f:clusterIP", "f:clusterIPs"] {
            assert!(applied["f:spec"].get(f).is_none(), "{c}: Meridian applied {f}: {applied}");
        }
        assert!(applied.get("f:status").is_none(), "{c}: {applied}");
        let peers = wait_for(c, WAIT, || env.get(c, "service", "peers"), Option::is_some).await?.context("peers")?;
        assert_eq!(at(&peers, "/spec/clusterIP"), Some(&Value::from("None")), "{c}: headless stays headless");
        let dep = wait_for(c, WAIT, || env.get(c, "deployment", "revised"), Option::is_some).await?.context("dep")?;
        let revision = at(&dep, "/metadata/annotations/deployment.kubernetes.io~1revision");
        assert_ne!(revision, Some(&Value::from("7")), "{c}: the control plane's revision was copied");
    }
    env.shutdown().await;
    Ok(())
}
