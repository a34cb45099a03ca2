//! Propagation and scale: 100 simulated clusters × 1,000 LoadBalancer services (100,000
//! shards) hosted in this process; Meridian runs as its own process and watches them all.
//!
//! Measured: the time from starting `meridian serve` until its `/metrics` report every
//! shard in the table; Meridian's peak RSS (VmHWM); and, while endpoint changes are
//! applied through the simulator at a steady rate, the delay from a change to the first
//! DNS answer that reflects it. A change flips a service between 2 and 0 ready endpoints;
//! its zone-level name answers the shard's A record when healthy and a CNAME (to the
//! region name) when not. A sample of changes, on services the churn leaves alone, is
//! timed by querying that name over UDP until it flips.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use meridian_sim::SimCluster;

use crate::dnsclient::Client;
use crate::harness::{self, Args, LOAD_CORE, SERVER_CORE, Server};
use crate::simhost::{self, MeridianConf, Sims, Transport};

const USAGE: &str = "meridian-bench scale [--clusters 100] [--services 1000] [--rate 1000] [--seconds 30] [--secure [--http1]] [--no-record]";

/// Services per cluster kept out of the churn, for timed changes.
pub(crate) const SAMPLED_SERVICES: usize = 20;
/// A sampled change not seen in DNS after this long counts as lost.
const FLIP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a timed change's name is asked while it has not flipped.
const POLL: Duration = Duration::from_millis(1);

pub(crate) fn run(raw: &[String]) -> Result<()> {
    let args = Args::new(raw);
    if args.help(USAGE) {
        return Ok(());
    }
    let clusters: usize = args.num("clusters", 100)?;
    let services: usize = args.num("services", 1000)?;
    let rate: u64 = args.num("rate", 1000)?;
    let seconds: u64 = args.num("seconds", 30)?;
    // HTTPS clusters, which offer HTTP/2 by ALPN as kube-apiserver does: each cluster's
    // watches then share one connection. Plain HTTP is HTTP/1.1, a connection per watch;
    // `--http1` keeps HTTPS to HTTP/1.1, to tell TLS's cost from multiplexing's.
    let transport = match (args.flag("secure"), args.flag("http1")) {
        (false, _) => Transport::Plain,
        (true, false) => Transport::Tls,
        (true, true) => Transport::TlsHttp1,
    };
    let meridian = harness::meridian_binary()?;
    // The simulator is not pinned while the clusters are first listed: serving 100
    // clusters' first lists (100,000 Services and EndpointSlices as JSON) on one core
    // starves its /readyz, and Meridian then (rightly) marks clusters Offline — a limit
    // of the harness, not of Meridian. Once the table is complete, this process (the
    // simulator, the churn and the timing client) moves to the load core, so the changes
    // are timed with Meridian's core its own, as in the other benches.
    let dir = tempfile::Builder::new().prefix("meridian-bench-scale").tempdir()?;
    let dir = dir.path();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    eprintln!("starting {clusters} simulated clusters, {services} LoadBalancer services each");
    let seed_start = Instant::now();
    let sims = rt.block_on(Sims::start_as(clusters, false, transport, dir))?;
    sims.seed(services)?;
    let seeded_in = seed_start.elapsed();
    let sim_rss = harness::own_rss_kib().unwrap_or(0);
    eprintln!("seeded {} services in {seeded_in:.1?}; the simulator holds {} MiB", clusters * services, sim_rss / 1024);

    let dns_port = harness::free_port()?;
    let admin_port = harness::free_port()?;
    let conf = simhost::meridian_config(&MeridianConf {
        kubeconfig: &sims.kubeconfig,
        clusters,
        dns_port,
        admin_port,
        health: None,
        geo: false,
    });
    let want = (clusters * services) as f64;
    // The targets: 100,000 shards, and a million (≤ 2 KiB per shard).
    let (table_target, rss_target) = if want >= 1e6 { (60.0, 2048.0) } else { (20.0, 1024.0) };
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let mut server = Server::meridian(&meridian, SERVER_CORE, &conf, dir)?;
    let mut last_shards = 0.0;
    // Long enough to measure a table that misses its target by far.
    let patience = Duration::from_secs(if want >= 1e6 { 900 } else { 300 });
    let took = harness::wait_until(&mut server, patience, "meridian_table_shards complete", || {
        let shards = harness::http_get(admin, "/metrics")
            .and_then(|m| harness::metric(&m, "meridian_table_shards"))
            .unwrap_or(0.0);
        last_shards = shards;
        shards >= want
    })
    .with_context(|| format!("table stuck at {last_shards} of {want} shards"))?;
    let rss_complete = server.peak_rss_kib().unwrap_or(0);
    eprintln!("complete table ({want} shards) after {took:.2?}; peak RSS {} MiB", rss_complete / 1024);
    harness::pin_self(LOAD_CORE);

    // The churn: every 10 ms, rate/100 flips on services outside the sampled ones.
    let stop = Arc::new(AtomicBool::new(false));
    let applied = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let churn = {
        let (stop, applied, errors) = (stop.clone(), applied.clone(), errors.clone());
        let cs: Vec<Arc<SimCluster>> = sims.clusters.clone();
        std::thread::spawn(move || churn(&cs, services, rate, &stop, &applied, &errors))
    };
    let start = Instant::now();
    let mut delays: Vec<Duration> = Vec::new();
    let mut lost = 0usize;
    let mut client = Client::new(SocketAddr::from(([127, 0, 0, 1], dns_port)), Duration::from_millis(200))?;
    let mut k = 0usize;
    while start.elapsed() < Duration::from_secs(seconds) {
        let ci = k % clusters;
        let si = (k / clusters) % SAMPLED_SERVICES.min(services);
        // Each sampled service alternates: even visits take it down, odd bring it back.
        let down = (k / (clusters * SAMPLED_SERVICES.min(services))).is_multiple_of(2);
        k += 1;
        let svc = simhost::service_name(si);
        let name = simhost::zone_name(&svc, &simhost::region(ci), &simhost::zone(ci));
        let t0 = Instant::now();
        sims.clusters[ci].set_ready(simhost::NAMESPACE, &svc, if down { 0 } else { 2 })?;
        let flipped = loop {
            if let Some(a) = client.query_a(&name) {
                let healthy = !a.cname && !a.addrs.is_empty();
                if healthy != down {
                    break Some(t0.elapsed());
                }
            }
            if t0.elapsed() > FLIP_TIMEOUT {
                break None;
            }
            // Ask about once a millisecond: a tighter loop is a query load of its own
            // on Meridian's core, which delays the change it is timing.
            std::thread::sleep(POLL);
        };
        match flipped {
            Some(d) => delays.push(d),
            None => lost += 1,
        }
        // Spread the samples: about 20 per second.
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Relaxed);
    let _ = churn.join();
    server.check_running()?;
    let peak = server.peak_rss_kib().unwrap_or(0);
    let rss_now = server.rss_kib().unwrap_or(0);
    let churned = applied.load(Ordering::Relaxed) as f64 / elapsed.as_secs_f64();

    delays.sort_unstable();
    // No change seen at all (every one lost) reads as "none seen", not NaN.
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1e3);
    let text = |v: Option<f64>| v.map_or_else(|| "none seen".to_owned(), |v| format!("{v:.1} ms"));
    let (p50, max) = (text(ms(harness::quantile(&delays, 0.5))), text(ms(delays.last().copied())));
    let p99 = ms(harness::quantile(&delays, 0.99));

    let mut t = String::new();
    let _ = writeln!(
        t,
        "{clusters} simulated clusters ({}) × {services} LoadBalancer services = {want} shards; simulator in the bench \
         process (both cores while listed, then core {LOAD_CORE}), Meridian pinned to core {SERVER_CORE}; {seconds} s of churn at {rate} endpoint changes/s \
         (achieved {churned:.0}/s, {} errors), {} timed changes.\n",
        transport.describe(),
        errors.load(Ordering::Relaxed),
        delays.len() + lost
    );
    let _ = writeln!(t, "| measure | value | target | verdict |");
    let _ = writeln!(t, "|---|---:|---:|---|");
    let verdict = |ok: bool, by: String| if ok { "met".to_owned() } else { format!("missed by {by}") };
    let secs = took.as_secs_f64();
    let _ = writeln!(
        t,
        "| start → complete table | {secs:.2} s | < {table_target} s | {} |",
        verdict(secs < table_target, format!("{:.1} s", secs - table_target))
    );
    let _ = writeln!(t, "| RSS at complete table (VmHWM) | {} MiB | | |", rss_complete / 1024);
    let peak_mib = peak as f64 / 1024.0;
    let _ = writeln!(
        t,
        "| peak RSS after churn (VmHWM) | {peak_mib:.0} MiB | < {rss_target} MiB | {} |",
        verdict(peak_mib < rss_target, format!("{:.0} MiB", peak_mib - rss_target))
    );
    let _ = writeln!(t, "| RSS after churn (VmRSS) | {} MiB | | |", rss_now / 1024);
    let _ = writeln!(t, "| change → DNS, p50 | {p50} | | |");
    let p99_verdict = match p99 {
        Some(v) => verdict(v < 100.0, format!("{:.0} ms", v - 100.0)),
        None => "missed: no change seen".to_owned(),
    };
    let _ = writeln!(t, "| change → DNS, p99 | {} | < 100 ms | {p99_verdict} |", text(p99));
    let _ = writeln!(t, "| change → DNS, max | {max} | | |");
    let _ = writeln!(t, "| peak RSS per shard | {:.2} KiB | | |", peak as f64 / want);
    let _ = writeln!(t, "| changes not seen within {FLIP_TIMEOUT:?} | {lost} | 0 | |");
    let _ = writeln!(t, "| simulator's RSS after seeding (all clusters, this process) | {} MiB | | |", sim_rss / 1024);
    let _ = writeln!(t, "| seeding took | {:.1} s | | |", seeded_in.as_secs_f64());
    t.push_str(&load_table(&sims.clusters));
    if args.flag("no-record") {
        print!("{t}");
    } else {
        let command = format!("cargo run --release -p meridian-bench -- scale {}", raw.join(" "));
        harness::record("Propagation and scale", command.trim(), &t)?;
    }
    drop(server);
    rt.block_on(sims.shutdown());
    Ok(())
}

/// The load Meridian put on each simulated API server since it started (median and
/// largest over the clusters): what it holds open, and what it asked.
fn load_table(clusters: &[Arc<SimCluster>]) -> String {
    type Field = fn(&meridian_sim::Load) -> u64;
    let loads: Vec<meridian_sim::Load> = clusters.iter().map(|c| c.load()).collect();
    let stat = |f: Field| {
        let mut v: Vec<u64> = loads.iter().map(f).collect();
        v.sort_unstable();
        (v.get(v.len() / 2).copied().unwrap_or(0), v.last().copied().unwrap_or(0))
    };
    let rows: [(&str, Field); 6] = [
        ("connections open", |l| l.connections_open),
        ("connections accepted", |l| l.connections),
        ("watches open", |l| l.watches_open),
        ("watches started", |l| l.watches),
        ("lists", |l| l.lists),
        ("resource requests (all verbs)", |l| l.requests),
    ];
    let mut t =
        String::from("\nWatch load on each simulated API server, from Meridian's start to the end of the churn:\n\n");
    t.push_str("| per API server | median | max |\n|---|---:|---:|\n");
    for (name, f) in rows {
        let (median, max) = stat(f);
        let _ = writeln!(t, "| {name} | {median} | {max} |");
    }
    t
}

/// Applies `rate` ready-endpoint flips per second (in bursts every 10 ms) to services
/// outside the sampled ones, until `stop`.
pub(crate) fn churn(
    clusters: &[Arc<SimCluster>],
    services: usize,
    rate: u64,
    stop: &AtomicBool,
    applied: &AtomicU64,
    errors: &AtomicU64,
) {
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let pool = services.saturating_sub(SAMPLED_SERVICES).max(1);
    let mut ready = vec![true; clusters.len() * pool];
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next_tick = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..per_tick {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let i = (state % ready.len() as u64) as usize;
            let (ci, si) = (i / pool, SAMPLED_SERVICES + i % pool);
            ready[i] = !ready[i];
            let n = if ready[i] { 2 } else { 0 };
            match clusters[ci].set_ready(simhost::NAMESPACE, &simhost::service_name(si), n) {
                Ok(()) => applied.fetch_add(1, Ordering::Relaxed),
                Err(_) => errors.fetch_add(1, Ordering::Relaxed),
            };
        }
        next_tick += tick;
        let now = Instant::now();
        if next_tick > now {
            std::thread::sleep(next_tick - now);
        } else if now - next_tick > Duration::from_secs(1) {
            // Far behind (the simulator cannot keep up): do not burst to catch up.
            next_tick = now;
        }
    }
}
