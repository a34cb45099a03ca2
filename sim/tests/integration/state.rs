//! State files: restore, load-balancer addresses after a restore, starting fresh.

use std::net::{IpAddr, SocketAddr};

use anyhow::{Context as _, Result};
use meridian_sim::{ClusterSpec, SimCluster, SimOptions, Simulator};

use crate::support::{http_get, lb_service};

fn lb_ip(c: &SimCluster) -> Result<IpAddr> {
    let svc = c.get_json("v1", "Service", Some("default"), "web").context("service not restored")?;
    let ip = svc.pointer("/status/loadBalancer/ingress/0/ip").and_then(|v| v.as_str()).context("no LB ip")?;
    Ok(ip.parse()?)
}

/// Binds `addr` as soon as the backend that served it has let go (aborted tasks close
/// their listeners a moment after shutdown returns).
async fn bind_when_free(addr: SocketAddr) -> Result<std::net::TcpListener> {
    for _ in 0..100 {
        if let Ok(l) = std::net::TcpListener::bind(addr) {
            return Ok(l);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    anyhow::bail!("{addr} stays taken")
}

async fn start(opts: &SimOptions) -> Result<(Simulator, std::sync::Arc<SimCluster>)> {
    let sim = Simulator::new(opts.clone());
    // A pool of its own: nothing else in this test binary serves these addresses.
    let spec = ClusterSpec { lb_cidr: Some("127.181.0.0/16".into()), ..ClusterSpec::new("keep") };
    let c = sim.add_cluster(spec).await?;
    Ok((sim, c))
}

/// A restored load-balancer address is reused only if it can still be bound: when another
/// process serves it, the Service gets a new address that this cluster's backend serves.
/// `discard_state` makes the next start empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_lb_addresses_are_reused_only_when_free() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let opts = SimOptions { history: 100, backends: true, state_dir: Some(dir.path().to_path_buf()) };
    let (sim, c) = start(&opts).await?;
    c.apply_json(lb_service("web", "default", 8080))?;
    let first = lb_ip(&c)?;
    sim.shutdown().await;

    let squatter = bind_when_free(SocketAddr::new(first, 8080)).await?;
    let (sim, c) = start(&opts).await?;
    let second = lb_ip(&c)?;
    assert_ne!(second, first, "reused an address another process serves");
    let resp = http_get(SocketAddr::new(second, 8080), "/").await?;
    assert!(resp.contains("keep default/web"), "{resp}");
    sim.shutdown().await;
    drop(squatter);
    drop(bind_when_free(SocketAddr::new(second, 8080)).await?);

    let (sim, c) = start(&opts).await?;
    assert_eq!(lb_ip(&c)?, second, "a free restored address is kept");
    sim.shutdown().await;

    assert_eq!(meridian_sim::saved_state(dir.path(), ["keep"]).len(), 1);
    assert_eq!(meridian_sim::discard_state(dir.path(), ["keep", "never"])?.len(), 1);
    let (sim, c) = start(&opts).await?;
    assert!(c.get_json("v1", "Service", Some("default"), "web").is_none());
    sim.shutdown().await;
    Ok(())
}
