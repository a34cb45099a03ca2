//! The ClusterRoles in `deploy/` grant exactly what Meridian asks of a cluster. The
//! binary runs discovery and sync over simulated clusters (a control plane `cp`, members
//! `m1` and `m2`) through a representative workload: propagation of every default type,
//! status roll-up, drift repair, a cascading delete and a Namespace cascade, a Lease
//! released at shutdown. Every (verb, group, resource) each cluster was asked for must
//! be granted by the role that cluster's credentials would have, and every rule the
//! roles grant must have been used (or be listed below with the reason it was not).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use meridian_sim::{Access, ClusterSpec, SimOptions, Simulator};
use meridian_tests::{Meridian, eventually, free_addr, kubectl_ok};
use serde_json::Value;

/// One granted (verb, group, resource).
type Grant = (String, String, String);

/// The rules of every ClusterRole in a manifest file, expanded to single grants.
fn grants(manifest: &Path) -> Result<BTreeSet<Grant>> {
    let text = std::fs::read_to_string(manifest).with_context(|| manifest.display().to_string())?;
    let mut out = BTreeSet::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc).with_context(|| manifest.display().to_string())?;
        if v["kind"] != "ClusterRole" {
            continue;
        }
        for rule in v["rules"].as_array().into_iter().flatten() {
            let list = |k: &str| -> Vec<String> {
                rule[k].as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect()
            };
            for g in list("apiGroups") {
                for r in list("resources") {
                    for verb in list("verbs") {
                        out.insert((verb, g.clone(), r.clone()));
                    }
                }
            }
        }
    }
    anyhow::ensure!(!out.is_empty(), "{}: no ClusterRole rules", manifest.display());
    Ok(out)
}

/// What Meridian (not the test's kubectl) asked for.
fn asked(accesses: &[Access]) -> BTreeSet<Grant> {
    let ours = accesses.iter().filter(|a| a.client != "kubectl");
    ours.map(|a| (a.verb.clone(), a.group.clone(), a.resource.clone())).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deploy_roles_grant_exactly_what_meridian_asks_for() -> Result<()> {
    let sim = Simulator::new(SimOptions { backends: false, ..SimOptions::default() });
    sim.add_cluster(ClusterSpec::new("cp").without_workload_controllers()).await?;
    for m in ["m1", "m2"] {
        sim.add_cluster(ClusterSpec::new(m)).await?;
    }
    let dir = tempfile::tempdir()?;
    let kc = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kc)?;
    let (admin, dns) = (free_addr(), free_addr());
    let config = dir.path().join("meridian.toml");
    let members: String = ["m1", "m2"]
        .iter()
        .map(|m| {
            format!(
                "[[clusters]]\nname = \"{m}\"\nkubeconfig = \"kubeconfig\"\ncontext = \"{m}\"\nregion = \"r-{m}\"\n"
            )
        })
        .collect();
    std::fs::write(
        &config,
        format!(
            "{}{members}[sync]\nenabled = true\nresync_interval = \"2s\"\ndeletion_timeout = \"5s\"\n\
             [sync.host]\nname = \"cp\"\nkubeconfig = \"kubeconfig\"\ncontext = \"cp\"\n",
            meridian_tests::config_head("rb", admin, dns)
        ),
    )?;
    let run = {
        let (kc, config, dir) = (kc.clone(), config.clone(), dir.path().to_path_buf());
        tokio::task::spawn_blocking(move || workload(&kc, &config, &dir, admin, dns))
    };
    run.await??;
    let cp = asked(&sim.cluster("cp").context("cp")?.accesses());
    let mut member = BTreeSet::new();
    for m in ["m1", "m2"] {
        member.extend(asked(&sim.cluster(m).context(m)?.accesses()));
    }
    sim.shutdown().await;
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    compare("control plane", &cp, &grants(&deploy.join("rbac.yaml"))?, NOT_EXERCISED)?;
    compare("members", &member, &grants(&deploy.join("member/member-role.yaml"))?, &[])?;
    Ok(())
}

/// Grants the workload cannot reach, each with where it is exercised instead.
const NOT_EXERCISED: &[(&str, &str, &str, &str)] = &[
    ("create", "", "configmaps", "the left-over records, written after a deletion timeout (sync's deletion tests)"),
    ("update", "", "configmaps", "the left-over records, written after a deletion timeout (sync's deletion tests)"),
];

/// Every request granted, and every grant requested (or listed as not exercised).
fn compare(
    who: &str,
    asked: &BTreeSet<Grant>,
    granted: &BTreeSet<Grant>,
    elsewhere: &[(&str, &str, &str, &str)],
) -> Result<()> {
    let missing: Vec<&Grant> = asked.difference(granted).collect();
    let listed =
        |g: &Grant| elsewhere.iter().any(|(v, gr, r, _)| (*v, *gr, *r) == (g.0.as_str(), g.1.as_str(), g.2.as_str()));
    let unused: Vec<&Grant> = granted.difference(asked).filter(|g| !listed(g)).collect();
    anyhow::ensure!(missing.is_empty(), "{who}: requests the role does not grant: {missing:?}");
    anyhow::ensure!(unused.is_empty(), "{who}: grants no request used: {unused:?}");
    Ok(())
}

/// Runs the binary through the workload; returns once it has exited.
fn workload(
    kc: &Path,
    config: &Path,
    dir: &Path,
    admin: std::net::SocketAddr,
    dns: std::net::SocketAddr,
) -> Result<()> {
    let mut m = Meridian::serve(config)?.with_ports(admin, dns)?;
    let manifest = dir.join("objects.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: shop}\ndata: {k: v}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: shop}\nstringData: {p: q}\n---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\n\
         spec: {type: LoadBalancer, selector: {app: web}, ports: [{port: 80}]}\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: shop}\n\
         spec: {replicas: 4, selector: {matchLabels: {app: web}}, template: {metadata: {labels: {app: web}}, \
         spec: {containers: [{name: web, image: nginx}]}}}\n---\n\
         apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: batch, namespace: shop}\n\
         spec: {replicas: 2, selector: {matchLabels: {app: batch}}, template: {metadata: {labels: {app: batch}}, \
         spec: {containers: [{name: b, image: busybox}]}}}\n---\n\
         apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: agent, namespace: shop}\n\
         spec: {selector: {matchLabels: {app: agent}}, template: {metadata: {labels: {app: agent}}, \
         spec: {containers: [{name: a, image: busybox}]}}}\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web, namespace: shop}\n\
         spec: {rules: [{host: web.example, http: {paths: [{path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}]}}]}\n",
    )?;
    kubectl_ok(kc, "cp", &["apply", "-f", &manifest.to_string_lossy()])?;
    let ready = |ctx: &str, jsonpath: &str| -> Result<Option<String>> {
        let out = kubectl_ok(kc, ctx, &["-n", "shop", "get", "deploy", "web", "-o", &format!("jsonpath={jsonpath}")])
            .unwrap_or_default();
        Ok((!out.is_empty() && out != "0").then_some(out))
    };
    for c in ["m1", "m2"] {
        eventually(Duration::from_secs(15), "copies in the members", || ready(c, "{.spec.replicas}"))?;
    }
    eventually(Duration::from_secs(15), "status rolled up", || ready("cp", "{.status.readyReplicas}"))?;
    eventually(Duration::from_secs(15), "DaemonSet status rolled up", || {
        let out = kubectl_ok(kc, "cp", &["-n", "shop", "get", "ds", "agent", "-o", "jsonpath={.status.numberReady}"])?;
        Ok((!out.is_empty() && out != "0").then_some(()))
    })?;
    eventually(Duration::from_secs(15), "ReplicaSet status rolled up", || {
        let out =
            kubectl_ok(kc, "cp", &["-n", "shop", "get", "rs", "batch", "-o", "jsonpath={.status.readyReplicas}"])?;
        Ok((!out.is_empty() && out != "0").then_some(()))
    })?;
    // Drift: a member edit is undone.
    kubectl_ok(
        kc,
        "m1",
        &["-n", "shop", "patch", "configmap", "settings", "--type=merge", "-p", "{\"data\":{\"k\":\"x\"}}"],
    )?;
    eventually(Duration::from_secs(15), "drift undone", || {
        let v = kubectl_ok(kc, "m1", &["-n", "shop", "get", "cm", "settings", "-o", "jsonpath={.data.k}"])?;
        Ok((v == "v").then_some(()))
    })?;
    // A cascading delete of every type, then of the Namespace.
    for (kind, name) in [
        ("deploy", "web"),
        ("replicaset", "batch"),
        ("daemonset", "agent"),
        ("configmap", "settings"),
        ("secret", "creds"),
        ("service", "web"),
        ("ingress", "web"),
    ] {
        kubectl_ok(kc, "cp", &["-n", "shop", "delete", kind, name, "--cascade=foreground", "--timeout=20s"])?;
    }
    kubectl_ok(kc, "cp", &["delete", "namespace", "shop", "--cascade=foreground", "--timeout=30s"])?;
    m.signal("TERM")?;
    m.wait_exit(Duration::from_secs(15))?;
    Ok(())
}
