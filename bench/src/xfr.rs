//! Zone transfers under churn: Meridian as the TSIG-authenticated primary of real Knot,
//! NSD and BIND secondaries, while endpoint changes are applied through the simulator at
//! a steady rate (the `scale` bench's churn).
//!
//! Measured: serial steps per second (the coalescing: at most one per
//! `min_serial_interval`; counted as the distinct SOA serials sampled during the churn); the size of one step's IXFR (kdig, signed, from the previous
//! serial, sampled during the churn); and the time from a change, on a service the
//! churn leaves alone, until all three secondaries answer it (each polled over UDP until
//! its answer for the service's zone-level name flips).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use meridian_sim::SimCluster;
use meridian_tests::secondary::{Kind, Secondary, TsigKeyFile};

use crate::dnsclient::Client;
use crate::harness::{self, Args, SERVER_CORE, Server};
use crate::scale::{SAMPLED_SERVICES, churn};
use crate::simhost::{self, MeridianConf, Sims, ZONE};

const USAGE: &str = "meridian-bench xfr [--clusters 10] [--services 100] [--rate 1000] [--seconds 20] [--no-record]";

/// A timed change not answered by every secondary after this long counts as lost.
const FLIP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn run(raw: &[String]) -> Result<()> {
    let args = Args::new(raw);
    if args.help(USAGE) {
        return Ok(());
    }
    let clusters: usize = args.num("clusters", 10)?;
    let services: usize = args.num("services", 100)?;
    let rate: u64 = args.num("rate", 1000)?;
    let seconds: u64 = args.num("seconds", 20)?;
    anyhow::ensure!(services > SAMPLED_SERVICES, "--services must exceed {SAMPLED_SERVICES}");
    let meridian = harness::meridian_binary()?;
    let dir = tempfile::Builder::new().prefix("meridian-bench-xfr").tempdir()?;
    let dir = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let sims = rt.block_on(Sims::start(clusters, false, dir))?;
    sims.seed(services)?;

    let key = TsigKeyFile::generate("bench-xfr")?;
    let key_path = dir.join("xfr.key");
    std::fs::write(&key_path, &key.text)?;
    let dns = SocketAddr::from(([127, 0, 0, 1], harness::free_port()?));
    let admin = SocketAddr::from(([127, 0, 0, 1], harness::free_port()?));
    let addrs = [meridian_tests::free_addr(), meridian_tests::free_addr(), meridian_tests::free_addr()];
    let mut conf = simhost::meridian_config(&MeridianConf {
        kubeconfig: &sims.kubeconfig,
        clusters,
        dns_port: dns.port(),
        admin_port: admin.port(),
        health: None,
        geo: false,
    });
    let secondaries: Vec<String> =
        addrs.iter().map(|a| format!("{{ address = \"{a}\", key = \"{}\" }}", key.name)).collect();
    let _ = writeln!(
        conf,
        "\n[dns.transfer]\nkeys = [\"{}\"]\nsecondaries = [{}]\nmin_serial_interval = \"1s\"\n",
        key_path.display(),
        secondaries.join(", ")
    );
    let mut server = Server::meridian(&meridian, SERVER_CORE, &conf, dir)?;
    let want = (clusters * services) as f64;
    harness::wait_until(&mut server, Duration::from_secs(120), "complete table", || {
        harness::http_get(admin, "/metrics").and_then(|m| harness::metric(&m, "meridian_table_shards")).unwrap_or(0.0)
            >= want
    })?;
    let kinds = [Kind::Knot, Kind::Nsd, Kind::Bind];
    let secs: Vec<Secondary> = kinds
        .iter()
        .zip(addrs)
        .map(|(k, a)| Secondary::start(*k, a, dns, &[ZONE], &key, None))
        .collect::<Result<_>>()?;
    let serial_at = |addr: SocketAddr| soa_serial(addr);
    let primary_serial = serial_at(dns).context("the primary's SOA")?;
    harness::wait_until(&mut server, Duration::from_secs(60), "every secondary has the zone", || {
        addrs.iter().all(|a| serial_at(*a).is_some_and(|s| s >= primary_serial))
    })?;
    eprintln!("secondaries loaded serial {primary_serial}; churning at {rate}/s for {seconds} s");

    let stop = Arc::new(AtomicBool::new(false));
    let (applied, errors) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let churner = {
        let (stop, applied, errors) = (stop.clone(), applied.clone(), errors.clone());
        let cs: Vec<Arc<SimCluster>> = sims.clusters.clone();
        std::thread::spawn(move || churn(&cs, services, rate, &stop, &applied, &errors))
    };
    let start = Instant::now();
    // The serials seen during the churn: samples come several times a second and steps
    // at most once a second, so each step is seen (a time-based serial can jump by more
    // than one, so the serials' difference would overcount).
    let mut serials = std::collections::BTreeSet::new();
    let mut clients: Vec<Client> =
        addrs.iter().map(|a| Client::new(*a, Duration::from_millis(200))).collect::<std::io::Result<_>>()?;
    let (mut delays, mut lost, mut sizes) = (Vec::new(), 0usize, Vec::new());
    let mut k = 0usize;
    while start.elapsed() < Duration::from_secs(seconds) {
        let (ci, si) = (k % clusters, (k / clusters) % SAMPLED_SERVICES);
        let down = (k / (clusters * SAMPLED_SERVICES)).is_multiple_of(2);
        k += 1;
        let svc = simhost::service_name(si);
        let name = simhost::zone_name(&svc, &simhost::region(ci), &simhost::zone(ci));
        let t0 = Instant::now();
        sims.clusters[ci].set_ready(simhost::NAMESPACE, &svc, if down { 0 } else { 2 })?;
        match all_flipped(&mut clients, &name, down, t0) {
            Some(d) => delays.push(d),
            None => lost += 1,
        }
        if let Some(s) = serial_at(dns) {
            serials.insert(s);
        }
        if k.is_multiple_of(4)
            && let Some(size) = ixfr_size(dns, &key)
        {
            sizes.push(size);
        }
    }
    let elapsed = start.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = churner.join();
    server.check_running()?;
    let steps = u32::try_from(serials.len().saturating_sub(1)).unwrap_or(u32::MAX);
    let churned = applied.load(std::sync::atomic::Ordering::Relaxed) as f64 / elapsed.as_secs_f64();
    let t = report(clusters, services, rate, churned, steps, elapsed, &mut delays, lost, &mut sizes);
    if args.flag("no-record") {
        print!("{t}");
    } else {
        let command = format!("cargo run --release -p meridian-bench -- xfr {}", raw.join(" "));
        harness::record("Zone transfers under churn", command.trim(), &t)?;
    }
    drop(secs);
    drop(server);
    rt.block_on(sims.shutdown());
    Ok(())
}

/// Polls every secondary until its answer for `name` shows the change (`down`: a CNAME
/// to the region name, no addresses); the time until the last one did.
fn all_flipped(clients: &mut [Client], name: &str, down: bool, t0: Instant) -> Option<Duration> {
    let mut done = vec![false; clients.len()];
    while t0.elapsed() < FLIP_TIMEOUT {
        for (c, d) in clients.iter_mut().zip(done.iter_mut()).filter(|(_, d)| !**d) {
            if let Some(a) = c.query_a(name) {
                let healthy = !a.cname && !a.addrs.is_empty();
                *d = healthy != down;
            }
        }
        if done.iter().all(|d| *d) {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// The zone's SOA serial at `server` (dig).
fn soa_serial(server: SocketAddr) -> Option<u32> {
    let out = Command::new("dig")
        .args([&format!("@{}", server.ip()), "-p", &server.port().to_string(), "+short", "+time=1", "+tries=1"])
        .args([ZONE, "SOA"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).split_whitespace().nth(2)?.parse().ok()
}

/// Bytes and records of the IXFR of the latest serial step (from the serial before it).
fn ixfr_size(primary: SocketAddr, key: &TsigKeyFile) -> Option<(u64, u64)> {
    let serial = soa_serial(primary)?;
    let out = Command::new("kdig")
        .args([&format!("@{}", primary.ip()), "-p", &primary.port().to_string(), "-y", &key.dig_arg()])
        .arg(format!("IXFR={}", serial.wrapping_sub(1)))
        .arg(ZONE)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // ";; Received 1234 B (1 messages, 56 records)"
    let line = text.lines().find(|l| l.contains("Received") && l.contains("records"))?;
    let bytes = line.split_whitespace().nth(2)?.parse().ok()?;
    let records = line.split('(').nth(1)?.split(", ").nth(1)?.split_whitespace().next()?.parse().ok()?;
    Some((bytes, records))
}

#[allow(clippy::too_many_arguments)]
fn report(
    clusters: usize,
    services: usize,
    rate: u64,
    churned: f64,
    steps: u32,
    elapsed: Duration,
    delays: &mut [Duration],
    lost: usize,
    sizes: &mut [(u64, u64)],
) -> String {
    delays.sort_unstable();
    sizes.sort_unstable();
    let ms = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let q = |p| ms(harness::quantile(delays, p));
    let size = |p| harness::quantile(sizes, p).map_or("–".to_owned(), |(b, r)| format!("{b} B ({r} records)"));
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{clusters} simulated clusters × {services} LoadBalancer services; Meridian pinned to core {SERVER_CORE}, \
         the simulator and Knot, NSD and BIND (TSIG secondaries, NOTIFY + IXFR) unpinned; {:.0} s of churn at \
         {rate} endpoint changes/s (achieved {churned:.0}/s); {} timed changes.\n",
        elapsed.as_secs_f64(),
        delays.len() + lost
    );
    let _ = writeln!(t, "| measure | value | target |\n|---|---:|---:|");
    let _ = writeln!(
        t,
        "| serial steps per second | {:.2} | ≤ 1 (min_serial_interval) |",
        f64::from(steps) / elapsed.as_secs_f64()
    );
    let _ = writeln!(t, "| IXFR of one step, p50 | {} | |", size(0.5));
    let _ = writeln!(t, "| IXFR of one step, max | {} | |", size(1.0));
    let _ = writeln!(t, "| change → all three secondaries answer it, p50 | {:.0} ms | |", q(0.5));
    let _ = writeln!(t, "| change → all three secondaries answer it, p99 | {:.0} ms | |", q(0.99));
    let _ = writeln!(t, "| change → all three, max | {:.0} ms | |", ms(delays.last().copied()));
    let _ = writeln!(t, "| changes not answered by all within {FLIP_TIMEOUT:?} | {lost} | 0 |");
    t
}
