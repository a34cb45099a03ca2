//! Scale smoke check: N clusters × M LoadBalancer services, backends off.
//! `cargo run -p meridian-sim --release --example scale -- 100 1000`

use std::time::Instant;

use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let clusters = args.next().transpose()?.unwrap_or(100);
    let services = args.next().transpose()?.unwrap_or(1000);
    let history = args.next().transpose()?.unwrap_or(10_000);
    let sim = Simulator::new(SimOptions { history, backends: false, state_dir: None });
    let t = Instant::now();
    for i in 0..clusters {
        sim.add_cluster(ClusterSpec::new(format!("c{i}"))).await?;
    }
    println!("{clusters} clusters up in {:?}", t.elapsed());
    let t = Instant::now();
    for c in sim.clusters() {
        for s in 0..services {
            c.apply_json(json!({
                "apiVersion": "v1", "kind": "Service",
                "metadata": {"name": format!("svc-{s}"), "namespace": "default"},
                "spec": {"type": "LoadBalancer", "selector": {"app": "x"}, "ports": [{"port": 80}]},
            }))?;
        }
    }
    println!("{} services seeded in {:?}", clusters * services, t.elapsed());
    let t = Instant::now();
    let body = reqwest_free_get(&sim.clusters()[0].url()).await?;
    println!("list of {services} services: {} bytes in {:?}", body, t.elapsed());
    sim.shutdown().await;
    Ok(())
}

async fn reqwest_free_get(url: &str) -> anyhow::Result<usize> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(b"GET /api/v1/services HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await?;
    Ok(buf.len())
}
