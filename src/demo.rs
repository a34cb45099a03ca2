//! `meridian demo`: the embedded configuration, its simulated clusters and the demo's
//! objects, and a banner that says how to look around.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use meridian_config::{Config, LogFormat};
use meridian_sim::Simulator;
use serde_json::{Value, json};

use crate::server::{self, Server};

#[derive(clap::Args)]
pub(crate) struct DemoArgs {
    /// Where the simulated clusters' kubeconfig is written, and their objects kept from
    /// one run to the next.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Start from the demo's own objects only: discard what the previous run left in the
    /// state directory.
    #[arg(long)]
    fresh: bool,
    /// Admin endpoint address.
    #[arg(long, default_value = "127.0.0.1:9480")]
    admin: SocketAddr,
    /// DNS listen address (UDP and TCP).
    #[arg(long, default_value = "127.0.0.1:1053")]
    dns: SocketAddr,
    /// Proxy listen address (plain HTTP and h2c).
    #[arg(long, default_value = "127.0.0.1:8480")]
    proxy: SocketAddr,
    /// Proxy HTTPS listen address (a self-signed certificate is generated at start).
    #[arg(long, default_value = "127.0.0.1:8443")]
    proxy_tls: SocketAddr,
}

/// The demo's port of both demo services' backends: unprivileged, so no root is needed.
const WEB_PORT: u16 = 8080;

fn service(name: &str, namespace: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": WEB_PORT, "targetPort": 8080, "protocol": "TCP"}]
        }
    })
}

/// The objects each member cluster starts with.
fn objects(cluster: &str) -> Vec<Value> {
    let mut out = vec![
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        service("web", "default", json!({"meridian.io/policy": "geo"})),
        json!({
            "apiVersion": "networking.k8s.io/v1",
            "kind": "Ingress",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"rules": [{"host": "www.meridian.test", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": WEB_PORT}}}}
            ]}}]}
        }),
        json!({
            "apiVersion": "multicluster.x-k8s.io/v1alpha1",
            "kind": "ServiceExport",
            "metadata": {"name": "web", "namespace": "default"}
        }),
    ];
    if cluster != "ap-south" {
        out.push(service("api", "shop", json!({})));
    }
    out
}

/// Says whether the previous run's objects are restored, or discards them (`--fresh`).
fn prepare_state(config: &Config, state_dir: &Path, fresh: bool) -> Result<()> {
    let names = config.clusters.iter().chain(config.sync.host.iter()).filter(|c| c.simulated).map(|c| c.name.as_str());
    let dir = state_dir.display();
    if fresh {
        let removed = meridian_sim::discard_state(state_dir, names)
            .with_context(|| format!("cannot discard the previous run's state in {dir}"))?;
        tracing::info!(dir = %dir, files = removed.len(), "starting fresh: the previous run's objects were discarded");
    } else if !meridian_sim::saved_state(state_dir, names).is_empty() {
        tracing::warn!("restoring the previous run's objects from {dir}; `meridian demo --fresh` starts from scratch");
    }
    Ok(())
}

/// Fails naming the flag when one of the demo's addresses is taken (another demo,
/// mostly). The DNS port is tried without `SO_REUSEPORT`, so a running server's
/// reuse-port sockets count as taken.
fn check_addresses_free(args: &DemoArgs) -> Result<()> {
    let tcp = [
        ("--admin", "admin.listen", args.admin),
        ("--dns", "dns.listen", args.dns),
        ("--proxy", "lb.listen", args.proxy),
        ("--proxy-tls", "lb.listen_tls", args.proxy_tls),
    ];
    let taken = |flag: &str, setting: &str, addr: SocketAddr, e: std::io::Error| {
        anyhow::anyhow!(
            "{flag} {addr} ({setting}) is not free: {e}; is another `meridian demo` running? Pick another with {flag}"
        )
    };
    for (flag, setting, addr) in tcp {
        std::net::TcpListener::bind(addr).map_err(|e| taken(flag, setting, addr, e))?;
    }
    std::net::UdpSocket::bind(args.dns).map_err(|e| taken("--dns", "dns.listen, UDP", args.dns, e))?;
    Ok(())
}

/// How to run this binary again from the current directory: `meridian` when that is
/// what the shell finds, else its path (after `cargo run`, `target/debug/meridian`).
fn this_binary() -> String {
    let Ok(exe) = std::env::current_exe() else { return "meridian".into() };
    let on_path = std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| d.join("meridian").canonicalize().ok() == exe.canonicalize().ok())
    });
    if on_path {
        return "meridian".into();
    }
    let shown = std::env::current_dir().ok().and_then(|cwd| exe.strip_prefix(cwd).ok().map(Path::to_path_buf));
    shown.unwrap_or(exe).display().to_string()
}

/// Creates the demo's objects in every simulated member cluster.
pub(crate) fn seed(sim: &Simulator, config: &Config) -> Result<()> {
    for c in &config.clusters {
        let cluster = sim.cluster(&c.name).with_context(|| format!("simulated cluster {} is not running", c.name))?;
        for obj in objects(&c.name) {
            cluster.apply_json(obj).with_context(|| format!("cannot create the demo objects in {}", c.name))?;
        }
    }
    Ok(())
}

pub(crate) async fn run(args: DemoArgs, log_override: Option<LogFormat>) -> Result<()> {
    let mut config = Config::demo();
    config.admin.listen = args.admin;
    config.dns.listen = vec![args.dns];
    config.lb.listen = vec![args.proxy];
    config.lb.listen_tls = vec![args.proxy_tls];
    server::start_logging(&config, log_override);
    let state_dir = args.state_dir.clone().unwrap_or_else(|| server::default_state_dir("demo"));
    // Nothing of a running demo's is touched before its ports and its state directory
    // are known to be free.
    check_addresses_free(&args)?;
    let lock = server::StateLock::acquire(&state_dir)?;
    prepare_state(&config, &state_dir, args.fresh)?;
    let server = Server::start(config, None, state_dir.clone(), Some(lock)).await?;
    let sim = server.sim.clone().context("the demo runs simulated clusters")?;
    seed(&sim, &server.config)?;
    let kubeconfig = state_dir.join("kubeconfig");
    let k = kubeconfig.display();
    let dns = args.dns;
    println!();
    println!("Meridian demo is running.");
    for c in sim.clusters() {
        println!("  cluster {:<9} API {}", c.name(), c.url());
    }
    println!("  kubeconfig        {k}");
    println!("  DNS               {dns} (udp+tcp)");
    println!("  proxy             http://{} https://{}", args.proxy, args.proxy_tls);
    println!("  admin             http://{}", args.admin);
    println!();
    println!("Try:");
    println!("  kubectl --kubeconfig {k} --context eu-west get svc -A");
    println!("  {} status --admin {}", this_binary(), args.admin);
    println!("  dig @{} -p {} web.default.demo.svc.meridian.test", dns.ip(), dns.port());
    println!("  dig @{} -p {} web.default.demo.svc.asia-south1-a.asia-south1.meridian.test", dns.ip(), dns.port());
    println!("  curl -H 'Host: www.meridian.test' http://{}/", args.proxy);
    println!("  kubectl --kubeconfig {k} --context us-east annotate svc web sim.meridian.io/ready=false --overwrite");
    println!();
    println!("Ctrl-C stops everything.");
    server.run().await
}
