//! A secure cluster serves HTTPS with its own CA and answers only its bearer token, as a
//! real API server does; kubectl uses it through the kubeconfig the simulator writes.

use anyhow::Result;
use meridian_sim::{ClusterSpec, SimOptions, Simulator};

/// kubectl with `args` against `context` of the simulator's kubeconfig.
fn kubectl(kubeconfig: &std::path::Path, context: &str, args: &[&str]) -> std::io::Result<std::process::Output> {
    std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--context", context])
        .args(args)
        .output()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_cluster_needs_its_ca_and_its_token() -> Result<()> {
    let sim = Simulator::new(SimOptions::default());
    let c = sim.add_cluster(ClusterSpec::new("safe").secure()).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    assert!(c.url().starts_with("https://127.0.0.1:"), "{}", c.url());
    let kubectl = |extra: &[&str]| kubectl(&kubeconfig, "safe", extra);
    let ok = kubectl(&["get", "namespaces", "-o", "name"])?;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("namespace/default"));

    let wrong_token = kubectl(&["--token", "not-the-token", "get", "namespaces"])?;
    assert!(!wrong_token.status.success());
    assert!(String::from_utf8_lossy(&wrong_token.stderr).contains("Unauthorized"), "{wrong_token:?}");

    // Another CA does not verify the serving certificate.
    let other = sim.add_cluster(ClusterSpec::new("other").secure()).await?;
    let other_ca = dir.path().join("other-ca.crt");
    std::fs::write(&other_ca, other.ca_pem().unwrap_or_default())?;
    let server = c.url();
    let token = c.token().unwrap_or_default().to_owned();
    let no_trust = std::process::Command::new("kubectl")
        .args(["--server", &server, "--certificate-authority"])
        .arg(&other_ca)
        .args(["--token", &token, "get", "namespaces"])
        .env("KUBECONFIG", "/dev/null")
        .output()?;
    assert!(!no_trust.status.success());
    assert!(String::from_utf8_lossy(&no_trust.stderr).contains("certificate"), "{no_trust:?}");
    sim.shutdown().await;
    Ok(())
}

/// ALPN offers HTTP/2 as kube-apiserver does, unless the cluster is `http1_only`; curl
/// (which asks for `h2` first) reports the version it got, and kubectl lists over either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secure_cluster_offers_http2_by_alpn_unless_http1_only() -> Result<()> {
    let sim = Simulator::new(SimOptions::default());
    let h2 = sim.add_cluster(ClusterSpec::new("h2").secure()).await?;
    let h1 = sim.add_cluster(ClusterSpec::new("h1").secure().http1_only()).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    for (c, want) in [(&h2, "2"), (&h1, "1.1")] {
        let ca = dir.path().join(format!("{}-ca.crt", c.name()));
        std::fs::write(&ca, c.ca_pem().unwrap_or_default())?;
        let out = std::process::Command::new("curl")
            .args(["-sS", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code}", "--cacert"])
            .arg(&ca)
            .args(["-H", &format!("Authorization: Bearer {}", c.token().unwrap_or_default())])
            .arg(format!("{}/api/v1/namespaces", c.url()))
            .output()?;
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{want} 200"), "{}: {out:?}", c.name());
        let listed = kubectl(&kubeconfig, c.name(), &["get", "namespaces", "-o", "name"])?;
        assert!(String::from_utf8_lossy(&listed.stdout).contains("namespace/default"), "{}: {listed:?}", c.name());
    }
    sim.shutdown().await;
    Ok(())
}

/// The load a client puts on a cluster is counted as kube-apiserver's metrics count it:
/// a `kubectl get` is one connection and lists; a watch stays open until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_on_a_cluster_counts_connections_watches_and_lists() -> Result<()> {
    let sim = Simulator::new(SimOptions::default());
    let c = sim.add_cluster(ClusterSpec::new("busy").secure()).await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let before = c.load();
    let kubectl = |args: &[&str]| kubectl(&kubeconfig, "busy", args);
    let got = kubectl(&["get", "services", "-A", "-o", "name"])?;
    assert!(got.status.success(), "{got:?}");
    let after = c.load();
    assert!(after.connections > before.connections, "{before:?} → {after:?}");
    assert!(after.lists > before.lists, "{before:?} → {after:?}");
    // kubectl's watch ends at its request timeout; it exits either way.
    kubectl(&["get", "services", "-A", "--watch", "--request-timeout=2s"])?;
    let watched = c.load();
    assert_eq!(watched.watches, after.watches + 1, "{after:?} → {watched:?}");
    // The watch ended with kubectl (the client went away).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let idle = |l: meridian_sim::Load| l.watches_open == 0 && l.connections_open == 0;
    while !idle(c.load()) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(idle(c.load()), "{:?}", c.load());
    sim.shutdown().await;
    Ok(())
}
