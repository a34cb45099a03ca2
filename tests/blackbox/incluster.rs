//! `in_cluster = true`: the binary reaches the cluster it runs in as a pod does, with the
//! service account's token and CA from `/var/run/secrets/kubernetes.io/serviceaccount`
//! and the API server from `KUBERNETES_SERVICE_HOST`/`PORT`. The binary runs in a mount
//! namespace of its own whose `/run` is a fresh tmpfs holding those files, against a
//! simulated cluster that serves HTTPS with its own CA and requires the token.

use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};
use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use meridian_tests::{binary, eventually, free_addr, http_get, kubectl_ok, require};

/// Runs `meridian serve --config <config>` as if in a pod: the service-account files of
/// `sa_dir` appear at the in-cluster paths, nowhere else on the machine.
fn serve_in_pod(
    config: &std::path::Path,
    sa_dir: &std::path::Path,
    port: u16,
    log: std::fs::File,
) -> Result<std::process::Child> {
    let script = "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io \
                  && ln -s \"$SA\" /run/secrets/kubernetes.io/serviceaccount \
                  && exec \"$BIN\" serve --config \"$CFG\"";
    Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", script])
        .env("SA", sa_dir)
        .env("BIN", binary())
        .env("CFG", config)
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", port.to_string())
        .stdout(log.try_clone()?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .context("run meridian serve under unshare")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_cluster_configuration_discovers_the_cluster_meridian_runs_in() -> Result<()> {
    require("unshare", "util-linux");
    let sim = Simulator::new(SimOptions { backends: false, ..SimOptions::default() });
    let home = sim.add_cluster(ClusterSpec::new("home").secure()).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let svc = dir.path().join("svc.yaml");
    std::fs::write(
        &svc,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  ports:\n  - {name: http, port: 8080}\n",
    )?;
    let kc = kubeconfig.clone();
    let svc_path = svc.to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || kubectl_ok(&kc, "home", &["apply", "-f", &svc_path])).await??;

    let sa = dir.path().join("serviceaccount");
    std::fs::create_dir(&sa)?;
    std::fs::write(sa.join("token"), home.token().unwrap_or_default())?;
    std::fs::write(sa.join("ca.crt"), home.ca_pem().unwrap_or_default())?;
    std::fs::write(sa.join("namespace"), "meridian")?;
    let (admin, dns) = (free_addr(), free_addr());
    let config = dir.path().join("meridian.toml");
    std::fs::write(
        &config,
        format!(
            "{}[[clusters]]\nname = \"home\"\nin_cluster = true\nregion = \"r-home\"\n",
            meridian_tests::config_head("pod", admin, dns)
        ),
    )?;
    let log_path = dir.path().join("meridian.log");
    let mut child = serve_in_pod(&config, &sa, home.port(), std::fs::File::create(&log_path)?)?;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    let found = tokio::task::spawn_blocking(move || {
        eventually(Duration::from_secs(20), "the Service through in-cluster configuration", || {
            // Refused until the server listens.
            let out = meridian_tests::dig(dns, &["+short", "A", "web.default.pod.svc.pod.test"]).unwrap_or_default();
            // Only addresses: dig prints its errors (a refused query) on stdout too.
            let addrs = !out.trim().is_empty() && out.lines().all(|l| l.parse::<std::net::Ipv4Addr>().is_ok());
            Ok(addrs.then_some(out))
        })
    })
    .await?;
    let clusters = http_get(admin, "/api/v1/clusters").unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    let addrs = found.with_context(|| format!("log:\n{}", log()))?;
    assert!(addrs.lines().all(|a| a.starts_with("127.")), "{addrs}");
    assert!(clusters.contains("home") && clusters.contains("Ready"), "{clusters}");
    // Nothing was written outside the test's own directory.
    assert!(!std::path::Path::new("/run/secrets/kubernetes.io").exists());
    sim.shutdown().await;
    Ok(())
}
