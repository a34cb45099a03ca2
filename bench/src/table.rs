//! Table read-under-write: do readers (the DNS answer path, the proxy) keep their pace
//! while the single writer publishes changes?
//!
//! One reader thread looks up random services and picks their usable shards, as an
//! answer would; one writer thread replaces random shards as fast as it can (each
//! replacement is its own published snapshot, the worst case: the real writer batches).
//! The same is measured against `RwLock<HashMap>`, where a writer holds the lock while
//! it updates, to show what the snapshot design avoids.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use meridian_discovery::table::{ClusterMeta, ObjectKey, Port, Probe, Protocol, Shard, Table, Update};

const SERVICES: usize = 10_000;
const CLUSTERS: usize = 10;
const RUN: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;

fn meta(i: usize) -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta {
        name: format!("c{i}").into(),
        region: Some(format!("r{}", i % 3).into()),
        zone: None,
        location: None,
        weight: 1,
        labels: BTreeMap::new(),
        order: i,
    })
}

fn shard(cluster: &Arc<ClusterMeta>, n: u32, ready: u32) -> Shard {
    Shard {
        cluster: cluster.clone(),
        addresses: vec![IpAddr::V4(Ipv4Addr::from(0x7f00_0000 | n))],
        hostnames: vec![],
        ports: vec![Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp }],
        headless: false,
        ready_endpoints: ready,
        total_endpoints: 2,
        endpoints: vec![],
        annotations: BTreeMap::new(),
        exported: false,
        created: None,
        stale: false,
        probe: Probe::default(),
    }
}

fn keys() -> Vec<ObjectKey> {
    (0..SERVICES).map(|i| ObjectKey::new("bench", &format!("svc-{i}"))).collect()
}

/// A tiny xorshift, so the benchmark needs no RNG state shared between threads.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `read` on this thread for RUN while `write` loops on another (if given); returns
/// (reads/s, writes/s).
fn measure(read: &(dyn Fn(&mut u64) -> usize + Sync), write: Option<&(dyn Fn(&mut u64) + Sync)>) -> (f64, f64) {
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let mut reads = 0u64;
    let mut sink = 0usize;
    std::thread::scope(|s| {
        if let Some(w) = write {
            s.spawn(|| {
                let mut st = 0x9e37_79b9_7f4a_7c15u64;
                while !stop.load(Ordering::Relaxed) {
                    w(&mut st);
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let start = Instant::now();
        let mut st = 0x2545_f491_4f6c_dd1du64;
        while start.elapsed() < RUN {
            for _ in 0..1000 {
                sink = sink.wrapping_add(read(&mut st));
            }
            reads += 1000;
        }
        stop.store(true, Ordering::Relaxed);
    });
    std::hint::black_box(sink);
    let secs = RUN.as_secs_f64();
    (reads as f64 / secs, writes.load(Ordering::Relaxed) as f64 / secs)
}

pub(crate) fn run(_args: &[String]) -> anyhow::Result<()> {
    let metas: Vec<_> = (0..CLUSTERS).map(meta).collect();
    let keys = keys();

    // Snapshot table.
    let (table, writer) = Table::new();
    let writer = std::sync::Mutex::new(writer);
    {
        let mut w = writer.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        w.apply(metas.iter().map(|m| Update::Cluster(m.clone())));
        let mut batch = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            for m in &metas {
                batch.push(Update::Service {
                    cluster: m.name.clone(),
                    key: k.clone(),
                    shard: Some(shard(m, i as u32, 1)),
                });
            }
        }
        w.apply(batch);
    }
    let table_read = |st: &mut u64| {
        let snap = table.load();
        let k = &keys[(next(st) % SERVICES as u64) as usize];
        snap.services.get(k).map_or(0, |svc| snap.usable_shards(&svc.shards, true).len())
    };
    let table_write = |st: &mut u64| {
        let r = next(st);
        let k = &keys[(r % SERVICES as u64) as usize];
        let m = &metas[((r >> 32) % CLUSTERS as u64) as usize];
        let ready = (r >> 40) as u32 & 1;
        if let Ok(mut w) = writer.lock() {
            w.apply([Update::Service {
                cluster: m.name.clone(),
                key: k.clone(),
                shard: Some(shard(m, r as u32, ready)),
            }]);
        }
    };

    // Lock-based contrast: the writer builds the new shard list under the write lock.
    let locked: RwLock<HashMap<ObjectKey, Vec<Arc<Shard>>>> = RwLock::new(
        keys.iter()
            .enumerate()
            .map(|(i, k)| (k.clone(), metas.iter().map(|m| Arc::new(shard(m, i as u32, 1))).collect()))
            .collect(),
    );
    let lock_read = |st: &mut u64| {
        let k = &keys[(next(st) % SERVICES as u64) as usize];
        let Ok(map) = locked.read() else { return 0 };
        map.get(k).map_or(0, |v| v.iter().filter(|s| s.is_healthy()).count())
    };
    let lock_write = |st: &mut u64| {
        let r = next(st);
        let k = &keys[(r % SERVICES as u64) as usize];
        let c = ((r >> 32) % CLUSTERS as u64) as usize;
        if let Ok(mut map) = locked.write()
            && let Some(v) = map.get_mut(k)
        {
            v[c] = Arc::new(shard(&metas[c], r as u32, (r >> 40) as u32 & 1));
        }
    };

    println!(
        "table read-under-write: {SERVICES} services x {CLUSTERS} clusters, {RUN:?} per run, median of {ROUNDS} rounds"
    );
    let mut rows: Vec<(&str, Vec<f64>, Vec<f64>)> = vec![
        ("snapshot table, idle", vec![], vec![]),
        ("snapshot table, writer publishing", vec![], vec![]),
        ("RwLock<HashMap>, idle", vec![], vec![]),
        ("RwLock<HashMap>, writer updating", vec![], vec![]),
    ];
    for _ in 0..ROUNDS {
        let runs = [
            measure(&table_read, None),
            measure(&table_read, Some(&table_write)),
            measure(&lock_read, None),
            measure(&lock_read, Some(&lock_write)),
        ];
        for (row, (r, w)) in rows.iter_mut().zip(runs) {
            row.1.push(r);
            row.2.push(w);
        }
    }
    println!("{:<36} {:>14} {:>14}", "case", "reads/s", "writes/s");
    let med: Vec<(f64, f64)> = rows.iter().map(|(_, r, w)| (median(r.clone()), median(w.clone()))).collect();
    for ((name, _, _), (r, w)) in rows.iter().zip(&med) {
        println!("{name:<36} {r:>14.0} {w:>14.0}");
    }
    println!(
        "snapshot reads under writes / idle: {:.2}   RwLock reads under writes / idle: {:.2}",
        med[1].0 / med[0].0,
        med[3].0 / med[2].0
    );
    Ok(())
}
