//! Micro-benchmarks of the service table: applying a batch of updates (what the writer
//! does per burst of watch events) and the read path of every answer (load the snapshot,
//! find the service, pick its usable shards).

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use meridian_discovery::table::{ClusterMeta, ObjectKey, Port, Protocol, Shard, Table, TableWriter, Update};

const SERVICES: usize = 10_000;
const CLUSTERS: usize = 10;

fn meta(i: usize) -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta { region: Some(format!("r{}", i % 3).into()), ..ClusterMeta::new(&format!("c{i}"), i) })
}

fn shard(cluster: &Arc<ClusterMeta>, n: u32, ready: u32) -> Shard {
    Shard {
        ports: vec![Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp }],
        ready_endpoints: ready,
        total_endpoints: 2,
        ..Shard::new(cluster.clone(), vec![IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | n))])
    }
}

/// A table of SERVICES × CLUSTERS shards.
fn filled() -> (Table, TableWriter, Vec<Arc<ClusterMeta>>, Vec<ObjectKey>) {
    let metas: Vec<_> = (0..CLUSTERS).map(meta).collect();
    let keys: Vec<_> = (0..SERVICES).map(|i| ObjectKey::new("bench", &format!("svc-{i}"))).collect();
    let (table, mut writer) = Table::new();
    writer.apply(metas.iter().map(|m| Update::Cluster(m.clone())));
    let mut batch = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        for m in &metas {
            batch.push(Update::Service { cluster: m.name.clone(), key: k.clone(), shard: Some(shard(m, i as u32, 1)) });
        }
    }
    writer.apply(batch);
    (table, writer, metas, keys)
}

fn batch(metas: &[Arc<ClusterMeta>], keys: &[ObjectKey], n: usize, seed: usize) -> Vec<Update> {
    (0..n)
        .map(|j| {
            let i = (seed * 7919 + j * 104_729) % keys.len();
            let m = &metas[j % metas.len()];
            Update::Service {
                cluster: m.name.clone(),
                key: keys[i].clone(),
                shard: Some(shard(m, i as u32, (j % 2) as u32)),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let (table, mut writer, metas, keys) = filled();
    let mut seed = 0;
    for n in [1usize, 100, 1000] {
        c.bench_function(&format!("table/apply batch of {n} into {SERVICES}x{CLUSTERS}"), |b| {
            b.iter_batched(
                || {
                    seed += 1;
                    batch(&metas, &keys, n, seed)
                },
                |u| writer.apply(u),
                BatchSize::SmallInput,
            )
        });
    }
    let mut i = 0usize;
    c.bench_function("table/load snapshot + lookup + usable shards", |b| {
        b.iter(|| {
            i = (i + 7919) % SERVICES;
            let snap = table.load();
            let n = snap.services.get(&keys[i]).map_or(0, |svc| snap.usable_shards(&svc.shards, true).len());
            black_box(n)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
