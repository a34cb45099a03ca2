//! Failover time, DNS part: a shard's backend dies (the simulator stops its HTTP server;
//! its endpoints stay ready, so only Meridian's active health checks can notice) and we
//! time until the federated name stops returning its address, then how long it takes to
//! come back once the backend is up again. Health checks: TCP, 1 s interval, unhealthy
//! threshold 2 (target ≤ 3 s).
//!
//! The proxy part (requests failed through Meridian's proxy under load while a backend
//! dies) is `proxy::failover_row`: two nginx backends in two clusters, wrk through the
//! proxy while the preferred one is killed and restarted (`--no-proxy` skips it).

use std::fmt::Write as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::dnsclient::Client;
use crate::harness::{self, Args, SERVER_CORE, Server};
use crate::proxy::{self, FailoverLoad};
use crate::simhost::{self, MeridianConf, Sims};

const USAGE: &str = "meridian-bench failover [--trials 5] [--proxy-seconds 9] [--no-proxy] [--no-record]";

const CLUSTERS: usize = 3;
/// The `[health]` section under test.
const HEALTH: &str =
    "kind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\nhealthy_threshold = 2";
/// Longer than this, the trial counts as "never": something is not running.
const TRIAL_TIMEOUT: Duration = Duration::from_secs(15);

pub(crate) fn run(raw: &[String]) -> Result<()> {
    let args = Args::new(raw);
    if args.help(USAGE) {
        return Ok(());
    }
    let trials: usize = args.num("trials", 5)?;
    let meridian = harness::meridian_binary()?;
    harness::pin_self(harness::LOAD_CORE);
    let dir = tempfile::Builder::new().prefix("meridian-bench-failover").tempdir()?;
    let dir = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let sims = rt.block_on(Sims::start(CLUSTERS, true, dir))?;
    let seeded = sims.seed(1)?;
    let Some(svc) = seeded.first() else { bail!("nothing seeded") };

    let dns_port = harness::free_port()?;
    let admin_port = harness::free_port()?;
    let conf = simhost::meridian_config(&MeridianConf {
        kubeconfig: &sims.kubeconfig,
        clusters: CLUSTERS,
        dns_port,
        admin_port,
        health: Some(HEALTH),
        geo: false,
    });
    let mut server = Server::meridian(&meridian, SERVER_CORE, &conf, dir)?;
    let name = simhost::global_name(&svc.name);
    let mut client = Client::new(SocketAddr::from(([127, 0, 0, 1], dns_port)), Duration::from_millis(200))?;
    let victim: Ipv4Addr = svc.addrs[0];
    let has_victim = |c: &mut Client| c.query_a(&name).map(|a| a.addrs.contains(&victim));
    harness::wait_until(&mut server, Duration::from_secs(30), "all shards answered", || {
        client.query_a(&name).is_some_and(|a| a.addrs.len() == CLUSTERS)
    })?;
    // Let the first probes settle before killing anything.
    std::thread::sleep(Duration::from_secs(3));

    let cluster = &sims.clusters[0];
    let mut down: Vec<Option<Duration>> = Vec::new();
    let mut up: Vec<Option<Duration>> = Vec::new();
    for trial in 1..=trials {
        let t0 = Instant::now();
        cluster.set_backend(simhost::NAMESPACE, &svc.name, false)?;
        let gone = poll(|| has_victim(&mut client) == Some(false), t0);
        let t1 = Instant::now();
        cluster.set_backend(simhost::NAMESPACE, &svc.name, true)?;
        let back = poll(|| has_victim(&mut client) == Some(true), t1);
        eprintln!(
            "trial {trial}/{trials}: removed after {gone:.2?}, back after {back:.2?} (None: not within {TRIAL_TIMEOUT:?})"
        );
        down.push(gone);
        up.push(back);
        server.check_running()?;
        if gone.is_none() {
            // Not removed at all: the next trials would say the same.
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }

    let metrics = harness::http_get(SocketAddr::from(([127, 0, 0, 1], admin_port)), "/metrics").unwrap_or_default();
    let health_series = metrics.lines().filter(|l| l.starts_with("meridian_health")).count();
    let secs = |v: &[Option<Duration>]| -> Option<f64> {
        if v.iter().any(Option::is_none) {
            return None;
        }
        Some(harness::median(v.iter().flatten().map(Duration::as_secs_f64).collect()))
    };
    let fmt = |v: &[Option<Duration>]| -> String {
        v.iter()
            .map(|d| d.map_or("never".to_owned(), |d| format!("{:.2}", d.as_secs_f64())))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{CLUSTERS} simulated clusters, one service; the backend of its shard in c0 stops (connections refused, \
         endpoints still ready). `[health]` {}; DNS polled over UDP on the global name.\n",
        HEALTH.replace('\n', ", ")
    );
    let _ = writeln!(t, "| measure | median | trials (s) | target | verdict |");
    let _ = writeln!(t, "|---|---:|---|---:|---|");
    match secs(&down) {
        Some(d) => {
            let verdict = if d <= 3.0 { "met".to_owned() } else { format!("missed by {:.2} s", d - 3.0) };
            let _ = writeln!(
                t,
                "| backend dies → DNS stops returning it | {d:.2} s | {} | ≤ 3 s | {verdict} |",
                fmt(&down)
            );
        }
        None => {
            let _ = writeln!(
                t,
                "| backend dies → DNS stops returning it | never (> {TRIAL_TIMEOUT:?}) | {} | ≤ 3 s | pending: {} |",
                fmt(&down),
                if health_series == 0 {
                    "the binary runs no active health checks yet (no meridian_health_* metrics)"
                } else {
                    "health checks run but the answer did not change"
                }
            );
        }
    }
    // Only meaningful when the address was removed first.
    if secs(&down).is_some() {
        let back = secs(&up).map_or("never".to_owned(), |s| format!("{s:.2} s"));
        let _ = writeln!(t, "| backend back → DNS returns it again | {back} | {} | | |", fmt(&up));
    }
    drop(server);
    if args.flag("no-proxy") {
        let _ = writeln!(t, "| requests failed through the proxy | not measured (`--no-proxy`) | | 0 | |");
    } else {
        let load = FailoverLoad { trials, seconds: args.num("proxy-seconds", 9)?, health: HEALTH };
        t.push_str(&proxy::failover_row(&rt, dir, &load)?);
    }
    if args.flag("no-record") {
        print!("{t}");
    } else {
        let command = format!("cargo run --release -p meridian-bench -- failover {}", raw.join(" "));
        harness::record("Failover (DNS and proxy)", command.trim(), &t)?;
    }
    rt.block_on(sims.shutdown());
    Ok(())
}

/// Polls `done` (each call is one DNS query) until it holds; the time since `t0`.
fn poll(mut done: impl FnMut() -> bool, t0: Instant) -> Option<Duration> {
    while t0.elapsed() < TRIAL_TIMEOUT {
        if done() {
            return Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}
