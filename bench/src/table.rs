//! Table read-under-write: do readers (the DNS answer path, the proxy) keep their pace
//! while the single writer publishes changes?
//!
//! One reader thread looks up random services and picks their usable shards, as an
//! answer would; one writer thread replaces random shards as fast as it can (each
//! replacement is its own published snapshot, the worst case: the real writer batches).
//! The same is measured against `RwLock<HashMap>`, where a writer holds the lock while
//! it updates, to show what the snapshot design avoids.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use meridian_discovery::table::{ClusterMeta, ObjectKey, Port, Protocol, Shard, Table, Update};

const SERVICES: usize = 10_000;
const CLUSTERS: usize = 10;
const RUN: Duration = Duration::from_secs(3);
const ROUNDS: usize = 3;

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

/// Figures of one run.
struct Figures {
    reads_per_s: f64,
    writes_per_s: f64,
    /// Read latencies in nanoseconds at p50, p99, p99.9 and the maximum (sampled).
    latency: [u64; 4],
}

/// Runs `read` on this thread for RUN while `write` loops on another (if given).
/// Every 8th read is timed on its own, so the tail shows reads that had to wait.
fn measure(read: &(dyn Fn(&mut u64) -> usize + Sync), write: Option<&(dyn Fn(&mut u64) -> usize + Sync)>) -> Figures {
    let stop = AtomicBool::new(false);
    let writes = AtomicU64::new(0);
    let mut reads = 0u64;
    let mut sink = 0usize;
    let mut samples: Vec<u64> = Vec::with_capacity(1 << 20);
    std::thread::scope(|s| {
        if let Some(w) = write {
            s.spawn(|| {
                let mut st = 0x9e37_79b9_7f4a_7c15u64;
                while !stop.load(Ordering::Relaxed) {
                    let n = w(&mut st);
                    writes.fetch_add(n as u64, Ordering::Relaxed);
                }
            });
        }
        let start = Instant::now();
        let mut st = 0x2545_f491_4f6c_dd1du64;
        while start.elapsed() < RUN {
            for i in 0..1024 {
                if i % 8 == 0 {
                    let t = Instant::now();
                    sink = sink.wrapping_add(read(&mut st));
                    samples.push(t.elapsed().as_nanos() as u64);
                } else {
                    sink = sink.wrapping_add(read(&mut st));
                }
            }
            reads += 1024;
        }
        stop.store(true, Ordering::Relaxed);
    });
    std::hint::black_box(sink);
    samples.sort_unstable();
    let pct = |p: f64| {
        samples.get(((samples.len() as f64 * p) as usize).min(samples.len().saturating_sub(1))).copied().unwrap_or(0)
    };
    let secs = RUN.as_secs_f64();
    Figures {
        reads_per_s: reads as f64 / secs,
        writes_per_s: writes.load(Ordering::Relaxed) as f64 / secs,
        latency: [pct(0.5), pct(0.99), pct(0.999), samples.last().copied().unwrap_or(0)],
    }
}

/// Updates per write call in the batched cases: what the real writer does with a burst.
const BATCH: usize = 1000;

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
    // Both readers do the same work: find the service, count its healthy shards.
    let table_read = |st: &mut u64| {
        let snap = table.load();
        let k = &keys[(next(st) % SERVICES as u64) as usize];
        snap.services.get(k).map_or(0, |svc| svc.shards.iter().filter(|s| s.is_healthy()).count())
    };
    let random_update = |st: &mut u64| {
        let r = next(st);
        let k = &keys[(r % SERVICES as u64) as usize];
        let m = &metas[((r >> 32) % CLUSTERS as u64) as usize];
        Update::Service {
            cluster: m.name.clone(),
            key: k.clone(),
            shard: Some(shard(m, r as u32, (r >> 40) as u32 & 1)),
        }
    };
    let table_write_one = |st: &mut u64| {
        let u = random_update(st);
        writer.lock().map(|mut w| w.apply([u])).map_or(0, |_| 1)
    };
    // 10,000 updates/s (10x the scale benchmark's churn), in bursts of 100 every 10 ms.
    let table_write_paced = |st: &mut u64| {
        let batch: Vec<Update> = (0..100).map(|_| random_update(st)).collect();
        let n = writer.lock().map(|mut w| w.apply(batch)).map_or(0, |_| 100);
        std::thread::sleep(Duration::from_millis(10));
        n
    };
    let table_write_batch = |st: &mut u64| {
        let batch: Vec<Update> = (0..BATCH).map(|_| random_update(st)).collect();
        writer.lock().map(|mut w| w.apply(batch)).map_or(0, |_| BATCH)
    };

    // Lock-based contrast: the writer updates the map under the write lock.
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
    let lock_apply = |map: &mut HashMap<ObjectKey, Vec<Arc<Shard>>>, st: &mut u64| {
        let r = next(st);
        let k = &keys[(r % SERVICES as u64) as usize];
        let c = ((r >> 32) % CLUSTERS as u64) as usize;
        if let Some(v) = map.get_mut(k) {
            v[c] = Arc::new(shard(&metas[c], r as u32, (r >> 40) as u32 & 1));
        }
    };
    let lock_write_one = |st: &mut u64| locked.write().map(|mut map| lock_apply(&mut map, st)).map_or(0, |_| 1);
    let lock_write_paced = |st: &mut u64| {
        let n = locked
            .write()
            .map(|mut map| {
                for _ in 0..100 {
                    lock_apply(&mut map, st);
                }
            })
            .map_or(0, |_| 100);
        std::thread::sleep(Duration::from_millis(10));
        n
    };
    let lock_write_batch = |st: &mut u64| {
        locked
            .write()
            .map(|mut map| {
                for _ in 0..BATCH {
                    lock_apply(&mut map, st);
                }
            })
            .map_or(0, |_| BATCH)
    };

    println!(
        "table read-under-write: {SERVICES} services x {CLUSTERS} clusters, one reader thread and one writer thread, {RUN:?} per run, median of {ROUNDS} rounds"
    );
    type Case<'a> = (&'a str, &'a (dyn Fn(&mut u64) -> usize + Sync), Option<&'a (dyn Fn(&mut u64) -> usize + Sync)>);
    let cases: [Case<'_>; 8] = [
        ("snapshot table, idle", &table_read, None),
        ("snapshot table, 10k updates/s paced", &table_read, Some(&table_write_paced)),
        ("snapshot table, 1 update/publish", &table_read, Some(&table_write_one)),
        ("snapshot table, 1000 updates/publish", &table_read, Some(&table_write_batch)),
        ("RwLock<HashMap>, idle", &lock_read, None),
        ("RwLock<HashMap>, 10k updates/s paced", &lock_read, Some(&lock_write_paced)),
        ("RwLock<HashMap>, 1 update/lock", &lock_read, Some(&lock_write_one)),
        ("RwLock<HashMap>, 1000 updates/lock", &lock_read, Some(&lock_write_batch)),
    ];
    let mut results: Vec<Vec<Figures>> = cases.iter().map(|_| Vec::new()).collect();
    for _ in 0..ROUNDS {
        for (i, (_, r, w)) in cases.iter().enumerate() {
            results[i].push(measure(*r, *w));
        }
    }
    println!(
        "{:<38} {:>11} {:>11} {:>8} {:>8} {:>9} {:>10}",
        "case", "reads/s", "updates/s", "p50 ns", "p99 ns", "p99.9 ns", "max ns"
    );
    let mut med_reads = Vec::new();
    for ((name, _, _), runs) in cases.iter().zip(&results) {
        let m = |f: &dyn Fn(&Figures) -> f64| median(runs.iter().map(f).collect());
        let reads = m(&|x| x.reads_per_s);
        med_reads.push(reads);
        println!(
            "{name:<38} {reads:>11.0} {:>11.0} {:>8.0} {:>8.0} {:>9.0} {:>10.0}",
            m(&|x| x.writes_per_s),
            m(&|x| x.latency[0] as f64),
            m(&|x| x.latency[1] as f64),
            m(&|x| x.latency[2] as f64),
            m(&|x| x.latency[3] as f64),
        );
    }
    println!(
        "reads under writes / idle: snapshot {:.2} (paced) {:.2} (1/publish) {:.2} (batched); RwLock {:.2} (paced) {:.2} (1/lock) {:.2} (batched)",
        med_reads[1] / med_reads[0],
        med_reads[2] / med_reads[0],
        med_reads[3] / med_reads[0],
        med_reads[5] / med_reads[4],
        med_reads[6] / med_reads[4],
        med_reads[7] / med_reads[4],
    );
    Ok(())
}
