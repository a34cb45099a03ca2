//! A silent partition between the binary and a member cluster's API, as dig sees it: the
//! cluster (`meridian sim`, a separate process) sits behind a fault proxy; the path goes
//! silent until the cluster is Offline, then heals with the connections of before left
//! dead. A Service created after the heal must resolve, and one deleted must stop
//! resolving, within 10 s. Also: `meridian sim` keeps its state across a SIGTERM.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use meridian_testkit::wait::eventually_blocking;
use meridian_testkit::{FaultProxy, Mode};
use meridian_tests::{Meridian, SimProcess, binary, eventually, free_addr, kubectl_ok};

/// The `server:` URL of the one cluster in a kubeconfig.
fn server_of(kubeconfig: &Path) -> Result<String> {
    let text = std::fs::read_to_string(kubeconfig)?;
    let line = text.lines().find_map(|l| l.trim().strip_prefix("server:")).context("no server in the kubeconfig")?;
    Ok(line.trim().trim_matches('"').to_owned())
}

fn addresses(m: &Meridian, name: &str) -> Result<Vec<String>> {
    let r = m.dig(&[name, "A"])?;
    Ok(if r.status() == "NOERROR" { r.answers("A") } else { Vec::new() })
}

#[test]
fn after_a_silent_partition_heals_dns_follows_the_cluster_within_ten_seconds() -> Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let sim = SimProcess::start("far")?;
    let direct = server_of(&sim.kubeconfig)?;
    let upstream = direct.trim_start_matches("http://").parse().context("the simulator's address")?;
    let proxy = runtime.block_on(FaultProxy::start(upstream))?;
    let dir = tempfile::tempdir()?;
    let proxied = dir.path().join("kubeconfig");
    std::fs::write(&proxied, std::fs::read_to_string(&sim.kubeconfig)?.replace(&direct, &proxy.url()))?;
    let (admin, dns) = (free_addr(), free_addr());
    let config = format!(
        "{}[discovery]\nprobe_interval = \"200ms\"\nprobe_timeout = \"500ms\"\noffline_after = 2\n\
         [[clusters]]\nname = \"far\"\nkubeconfig = \"{}\"\ncontext = \"far\"\nregion = \"r-far\"\n",
        meridian_tests::config_head("pt", admin, dns),
        proxied.display()
    );
    let file = dir.path().join("meridian.toml");
    std::fs::write(&file, config)?;
    let m = Meridian::serve(&file)?.with_ports_live(admin, dns)?;
    let svc = |name: &str| {
        format!(
            "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"default\"}},\
             \"spec\":{{\"type\":\"LoadBalancer\",\"selector\":{{\"app\":\"{name}\"}},\"ports\":[{{\"port\":80}}]}}}}"
        )
    };
    let apply = |name: &str| -> Result<()> {
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, svc(name))?;
        kubectl_ok(&sim.kubeconfig, "far", &["apply", "-f", &file.to_string_lossy()]).map(|_| ())
    };
    let web = "web.default.pt.svc.pt.test";
    let new = "new.default.pt.svc.pt.test";
    apply("web")?;
    eventually(Duration::from_secs(20), "web resolves", || Ok((!addresses(&m, web)?.is_empty()).then_some(())))?;

    proxy.set(Mode::Stall);
    let offline = |m: &Meridian| -> Result<bool> {
        let v = m.json("/api/v1/clusters")?;
        Ok(v.as_array().into_iter().flatten().any(|c| c["name"] == "far" && c["state"] != "Ready"))
    };
    eventually(Duration::from_secs(10), "far offline", || Ok(offline(&m)?.then_some(())))?;
    proxy.forget_open();
    proxy.set(Mode::Pass);
    eventually(Duration::from_secs(10), "far ready", || Ok((!offline(&m)?).then_some(())))?;

    let healed = Instant::now();
    apply("new")?;
    kubectl_ok(&sim.kubeconfig, "far", &["delete", "service", "web"])?;
    eventually(Duration::from_secs(10), "the change after the heal in DNS", || {
        Ok((!addresses(&m, new)?.is_empty() && m.dig(&[web, "A"])?.status() == "NXDOMAIN").then_some(()))
    })?;
    assert!(healed.elapsed() <= Duration::from_secs(10), "took {:?}", healed.elapsed());
    drop(runtime);
    Ok(())
}

/// `meridian sim` stopped by SIGTERM (as a service manager stops it) saves its clusters'
/// state, and the next start in the same state directory serves it again.
#[test]
fn meridian_sim_saves_its_state_on_sigterm() -> Result<()> {
    let mut sim = SimProcess::start("keep")?;
    kubectl_ok(&sim.kubeconfig, "keep", &["create", "configmap", "kept", "--from-literal=a=1"])?;
    let st = Command::new("kill").arg("-TERM").arg(sim.child.id().to_string()).status()?;
    assert!(st.success(), "kill -TERM");
    let exited =
        eventually_blocking(Duration::from_secs(10), "meridian sim exited", || sim.child.try_wait().transpose());
    exited.expect("meridian sim did not exit on SIGTERM")?;
    let dir = sim.dir.path().to_path_buf();
    let state = dir.join("keep.json");
    assert!(state.exists(), "no state saved in {}", dir.display());
    let again = Command::new(binary())
        .args(["sim", "--clusters", "keep", "--state-dir"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let mut again = SimProcess { child: again, kubeconfig: sim.kubeconfig.clone(), dir: tempfile::tempdir()? };
    let got = eventually(Duration::from_secs(10), "the restored ConfigMap", || {
        Ok(kubectl_ok(&again.kubeconfig, "keep", &["get", "configmap", "kept", "-o", "jsonpath={.data.a}"]).ok())
    })?;
    assert_eq!(got.trim(), "1");
    let _ = again.child.kill();
    drop(sim);
    Ok(())
}
