//! What the table and the DNS index hold per shard: a counting allocator measures the
//! live bytes of the scale bench's shape (clusters × LoadBalancer services, one region
//! and one zone per cluster, every service in every cluster), built in this process
//! without the simulator or the watchers. It prints; it asserts nothing about the size.
//!
//! `cargo bench -p meridian-bench --bench footprint -- [clusters] [services]`

use std::alloc::System;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use cap::Cap;
use meridian_config::Config;
use meridian_model::table::{ClusterMeta, ObjectKey, Port, Protocol, Shard, Table, Update};

/// The system allocator, counting the bytes it has handed out and not had back.
#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

fn live() -> isize {
    ALLOC.allocated() as isize
}

fn cluster(i: usize) -> Arc<ClusterMeta> {
    let (region, zone) = (format!("r{i}"), format!("r{i}-a"));
    Arc::new(ClusterMeta {
        region: Some(region.as_str().into()),
        zone: Some(zone.as_str().into()),
        ..ClusterMeta::new(&format!("c{i}"), i)
    })
}

/// One cluster's shard of service `s`, as discovery builds it for a LoadBalancer
/// Service with two ready endpoints.
fn shard(c: &Arc<ClusterMeta>, ci: usize, s: usize) -> Shard {
    let addr = IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | ((ci as u32) << 16) | s as u32));
    let mut sh = Shard::new(c.clone(), vec![addr]);
    sh.ports = vec![Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp }];
    sh.ready_endpoints = 2;
    sh.total_endpoints = 2;
    sh
}

fn updates(clusters: &[Arc<ClusterMeta>], services: usize) -> Vec<Update> {
    let mut out: Vec<Update> = clusters.iter().cloned().map(Update::Cluster).collect();
    for (ci, c) in clusters.iter().enumerate() {
        for s in 0..services {
            let key = ObjectKey::new("bench", &format!("svc-{s:04}"));
            out.push(Update::Service { cluster: c.name.clone(), key, shard: Some(shard(c, ci, s)) });
        }
    }
    out
}

fn per_shard(bytes: isize, shards: usize) -> String {
    format!("{:.1} MiB, {:.0} B per shard", bytes as f64 / 1048576.0, bytes as f64 / shards as f64)
}

fn main() {
    // `cargo bench` passes `--bench`; the numbers are ours.
    let nums: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let clusters = nums.first().copied().unwrap_or(100);
    let services = nums.get(1).copied().unwrap_or(1000);
    let shards = clusters * services;
    let metas: Vec<Arc<ClusterMeta>> = (0..clusters).map(cluster).collect();

    let before = live();
    let (table, mut writer) = Table::new();
    writer.apply(updates(&metas, services));
    let snap = table.snapshot();
    let table_bytes = live() - before;

    // Without the GeoIP database, which the demo reads whole (tens of MiB, whatever the
    // table's size).
    let mut config = Config::demo();
    config.ranking.geoip_db.clear();
    let before = live();
    let built = match meridian_dns::footprint::build(&config, &snap) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("footprint: the demo configuration did not load: {e}");
            std::process::exit(1);
        }
    };
    let dns_bytes = live() - before;

    println!("{clusters} clusters × {services} services = {shards} shards");
    println!("table:     {}", per_shard(table_bytes, shards));
    println!(
        "DNS index: {} ({} names, {:.1} per shard)",
        per_shard(dns_bytes, shards),
        built.names(),
        built.names() as f64 / shards as f64
    );
    drop(built);
}
