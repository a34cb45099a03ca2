//! DNS throughput and latency, side by side: Knot DNS and NSD serving the names as a
//! static zone (the ceiling for answers that never change), PowerDNS computing each
//! answer with a LUA record (`ifportup` over the same three addresses: the peer that does
//! what Meridian does), and Meridian answering from its live table (geo ranking on, the
//! `[health]` section set) fed by three simulated clusters in this process.
//!
//! Every server runs at once on its own loopback port, pinned to core 0; the ones not
//! under test are paused (SIGSTOP) so they take nothing from it. dnsperf runs on core 1.
//! Each round measures every contender in turn (ABAB…): flat out, flat out again with
//! per-query latencies (for p99), at half the flat-out rate with per-query latencies, and
//! flat out with the saturating client of `blast.rs` (dnsperf cannot keep these servers
//! busy on one core).

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::blast::{self, Blast};
use crate::dnsclient::{self, Client};
use crate::dnsperf::{self, Load, Run};
use crate::harness::{self, Args, SERVER_CORE, Server};
use crate::simhost::{self, MeridianConf, Seeded, Sims};

const USAGE: &str = "meridian-bench dns [--rounds 3] [--seconds 10] [--services 1000] \
[--only knot,nsd,powerdns-lua,meridian,meridian-rrl,meridian-baseline] [--clients 8] [--threads 2] [--outstanding 500] \
[--no-health] [--no-record] [--baseline PATH-TO-AN-EARLIER-MERIDIAN]";

/// Three clusters: each name has three shards.
const CLUSTERS: usize = 3;
/// One NXDOMAIN name per this many existing names (10%).
const NX_EVERY: usize = 10;
/// Unrecorded load after a contender is resumed: caches and probe state settle.
const WARMUP_SECS: u32 = 2;
/// Before the first round, with active checks: two probe intervals (5 s) and a margin.
const SETTLE_SECS: u64 = 12;

/// A server under test.
struct Contender {
    name: &'static str,
    server: Server,
    port: u16,
    version: String,
}

struct Figures {
    max: Vec<Run>,
    max_p99: Vec<Run>,
    half: Vec<Run>,
    /// Flat out with the saturating generator, and the server's core use meanwhile.
    blast: Vec<(Blast, f64)>,
}

pub(crate) fn run(raw: &[String]) -> Result<()> {
    let args = Args::new(raw);
    if args.help(USAGE) {
        return Ok(());
    }
    let rounds: usize = args.num("rounds", 3)?;
    let seconds: u32 = args.num("seconds", 10)?;
    let services: usize = args.num("services", 1000)?;
    let wanted = args.wanted();
    let load_shape = (args.num("clients", 8u32)?, args.num("threads", 2u32)?, args.num("outstanding", 500u32)?);

    let dnsperf = harness::ensure_tool("dnsperf", "dnsperf", &[])?;
    let meridian = harness::meridian_binary()?;
    harness::pin_self(harness::LOAD_CORE);
    let dir = tempfile::Builder::new().prefix("meridian-bench-dns").tempdir()?;
    let dir = dir.path();

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    eprintln!("starting {CLUSTERS} simulated clusters and seeding {services} LoadBalancer services in each");
    let sims = rt.block_on(Sims::start(CLUSTERS, true, dir))?;
    let seeded = sims.seed(services)?;
    let names = query_names(&seeded);
    let queries = write_queries(dir, &names)?;

    let mut contenders = Vec::new();
    if wanted("knot") {
        contenders.push(start_knot(dir, &seeded)?);
    }
    if wanted("nsd") {
        contenders.push(start_nsd(dir, &seeded)?);
    }
    if wanted("powerdns-lua") {
        contenders.push(start_powerdns(dir, &seeded)?);
    }
    let mut meridian_health = String::new();
    if wanted("meridian") {
        let (c, health) = start_meridian(dir, &meridian, "meridian", &sims, &seeded, !args.flag("no-health"), None)?;
        meridian_health = health;
        contenders.push(c);
    }
    if wanted("meridian-rrl") {
        // Response-rate limiting on, at a rate no load reaches: every answer is counted
        // and checked, none is limited — what RRL costs a server at full load.
        let rrl = "[dns.rrl]\nenabled = true\nresponses_per_second = 4000000000\n";
        let (c, _) =
            start_meridian(dir, &meridian, "meridian-rrl", &sims, &seeded, !args.flag("no-health"), Some(rrl))?;
        contenders.push(c);
    }
    // An earlier build of Meridian in the same run: a change's cost, measured against
    // the same peers on the same machine at the same time.
    if let Some(baseline) = args.value("baseline").filter(|_| wanted("meridian-baseline")) {
        let bin = PathBuf::from(baseline);
        let (c, _) = start_meridian(dir, &bin, "meridian-baseline", &sims, &seeded, !args.flag("no-health"), None)?;
        contenders.push(c);
    }
    if contenders.is_empty() {
        bail!("no contender selected\n{USAGE}");
    }
    if wanted("meridian") && !args.flag("no-health") {
        // The first probes of 3,000 addresses run within one second and time each other's
        // connects; the next few replace those RTTs and republish the shards. That is
        // start-up, not serving: let it pass before any round.
        eprintln!("letting Meridian's first health probes settle ({SETTLE_SECS} s)");
        std::thread::sleep(Duration::from_secs(SETTLE_SECS));
    }
    for c in &mut contenders {
        check_answers(c, &seeded)?;
        c.server.pause();
    }

    let (clients, threads, outstanding) = load_shape;
    let load = |port: u16, secs: u32, rate: Option<f64>, per_query: bool| Load {
        port,
        queries: queries.clone(),
        seconds: secs,
        rate,
        per_query,
        clients,
        threads,
        outstanding,
    };
    let mut figures: Vec<Figures> =
        contenders.iter().map(|_| Figures { max: vec![], max_p99: vec![], half: vec![], blast: vec![] }).collect();
    for round in 1..=rounds {
        for (c, f) in contenders.iter_mut().zip(figures.iter_mut()) {
            c.server.resume();
            c.server.check_running()?;
            dnsperf::run(&dnsperf, &load(c.port, WARMUP_SECS, None, false))?;
            let (cpu0, t0) = (c.server.cpu_secs(), std::time::Instant::now());
            let mut max = dnsperf::run(&dnsperf, &load(c.port, seconds, None, false))?;
            max.server_busy = (c.server.cpu_secs() - cpu0) / t0.elapsed().as_secs_f64();
            let max_p99 = dnsperf::run(&dnsperf, &load(c.port, seconds, None, true))?;
            let half = dnsperf::run(&dnsperf, &load(c.port, seconds, Some(max.qps / 2.0), true))?;
            let (cpu0, t0) = (c.server.cpu_secs(), std::time::Instant::now());
            let server = SocketAddr::from(([127, 0, 0, 1], c.port));
            let blasted = blast::run(server, &names, f64::from(seconds), blast::Shape::default())?;
            let busy = (c.server.cpu_secs() - cpu0) / t0.elapsed().as_secs_f64();
            c.server.pause();
            eprintln!(
                "round {round}/{rounds} {:<13} max {:>9.0} qps (mean {:.3} ms, p99 {:.3} ms), at 50%: {:>9.0} qps (mean {:.3} ms, p99 {:.3} ms)",
                c.name,
                max.qps,
                max.mean_ms,
                max_p99.p99_ms.unwrap_or(f64::NAN),
                half.qps,
                half.mean_ms,
                half.p99_ms.unwrap_or(f64::NAN)
            );
            eprintln!(
                "round {round}/{rounds} {:<13} saturating client: {:>9.0} qps, {:.2}% lost, {} bad answers, server core {:.0}% busy",
                c.name,
                blasted.qps,
                100.0 * blasted.lost,
                blasted.bad,
                100.0 * busy
            );
            f.blast.push((blasted, busy));
            f.max.push(max);
            f.max_p99.push(max_p99);
            f.half.push(half);
        }
    }
    for c in &mut contenders {
        c.server.resume();
    }

    let body = report(&contenders, &figures, rounds, seconds, services, load_shape, &meridian_health);
    let command = format!("cargo run --release -p meridian-bench -- dns {}", raw.join(" "));
    if args.flag("no-record") {
        print!("{body}");
    } else {
        harness::record("DNS throughput and latency", command.trim(), &body)?;
    }
    drop(contenders);
    rt.block_on(sims.shutdown());
    Ok(())
}

fn report(
    contenders: &[Contender],
    figures: &[Figures],
    rounds: usize,
    seconds: u32,
    services: usize,
    (clients, threads, outstanding): (u32, u32, u32),
    meridian_health: &str,
) -> String {
    let med = |runs: &[Run], f: fn(&Run) -> f64| harness::median(runs.iter().map(f).collect());
    let p99 = |r: &Run| r.p99_ms.unwrap_or(f64::NAN);
    let meridian = contenders.iter().position(|c| c.name == "meridian").map(|i| med(&figures[i].max, |r| r.qps));
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{services} federated names × {CLUSTERS} shards (A) + 10% NXDOMAIN names; server on core {SERVER_CORE}, \
         dnsperf on core {} (`-c {clients} -T {threads} -q {outstanding}`); {rounds} rounds × {seconds} s per run, \
         contenders in turn (ABAB…), medians. p99 from per-query latencies (`dnsperf -v`, a separate run at max). \
         \"server core busy\" is the server's CPU time over the run's wall time: well under 100% means dnsperf, \
         not the server, set the pace, and queries per server CPU-second is the fairer comparison.\n",
        harness::LOAD_CORE
    );
    let _ = writeln!(
        t,
        "| server | QPS (max) | mean ms | p99 ms | QPS at 50% | mean ms | p99 ms | lost | server core busy | queries per server CPU-s | Meridian / peer (QPS) | QPS per round |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|");
    for (c, f) in contenders.iter().zip(figures) {
        let qps = med(&f.max, |r| r.qps);
        let ratio = match meridian {
            Some(m) if c.name != "meridian" => format!("{:.2}×", m / qps),
            _ => "—".into(),
        };
        let per_round: Vec<String> = f.max.iter().map(|r| format!("{:.0}", r.qps)).collect();
        let _ = writeln!(
            t,
            "| {} | {:.0} | {:.3} | {:.3} | {:.0} | {:.3} | {:.3} | {:.2}% | {:.0}% | {:.0} | {ratio} | {} |",
            c.name,
            qps,
            med(&f.max, |r| r.mean_ms),
            med(&f.max_p99, p99),
            med(&f.half, |r| r.qps),
            med(&f.half, |r| r.mean_ms),
            med(&f.half, p99),
            100.0 * med(&f.max, |r| r.lost),
            100.0 * med(&f.max, |r| r.server_busy),
            med(&f.max, |r| r.qps / r.server_busy.max(1e-9)),
            per_round.join(", ")
        );
    }
    let _ = writeln!(t);
    let sat = |f: &Figures, g: fn(&(Blast, f64)) -> f64| harness::median(f.blast.iter().map(g).collect());
    let sat_qps = |f: &Figures| sat(f, |b| b.0.qps);
    let meridian_sat = contenders.iter().position(|c| c.name == "meridian").map(|i| sat_qps(&figures[i]));
    let _ = writeln!(
        t,
        "Flat out with a saturating client (`bench/src/blast.rs`: {} sockets × {} queries outstanding, \
         `sendmmsg`/`recvmmsg`, same names, same core as dnsperf), where the server, not the client, is \
         the bottleneck:\n",
        blast::Shape::default().sockets,
        blast::Shape::default().window
    );
    let _ = writeln!(
        t,
        "| server | QPS (saturating client) | lost | bad answers | server core busy | Meridian / peer | QPS per round |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---|");
    for (c, f) in contenders.iter().zip(figures) {
        let qps = sat_qps(f);
        let ratio = match meridian_sat {
            Some(m) if c.name != "meridian" => format!("{:.2}×", m / qps),
            _ => "—".into(),
        };
        let per_round: Vec<String> = f.blast.iter().map(|b| format!("{:.0}", b.0.qps)).collect();
        let _ = writeln!(
            t,
            "| {} | {qps:.0} | {:.2}% | {:.0} | {:.0}% | {ratio} | {} |",
            c.name,
            100.0 * sat(f, |b| b.0.lost),
            sat(f, |b| b.0.bad as f64),
            100.0 * sat(f, |b| b.1),
            per_round.join(", ")
        );
    }
    let _ = writeln!(t);
    for c in contenders {
        let _ = writeln!(t, "- {}: {}", c.name, c.version);
    }
    if !meridian_health.is_empty() {
        let _ = writeln!(t, "- meridian health checks: {meridian_health}");
    }
    if let (Some(m), Some(m_sat)) = (meridian, meridian_sat) {
        let _ = writeln!(t, "\nTargets:");
        for (c, f) in contenders.iter().zip(figures) {
            let goal = match c.name {
                "knot" => 1.0,
                "powerdns-lua" => 5.0,
                _ => continue,
            };
            for (client, ratio) in [("dnsperf", m / med(&f.max, |r| r.qps)), ("saturating client", m_sat / sat_qps(f))]
            {
                let verdict = if ratio >= goal {
                    "met".to_owned()
                } else {
                    format!("missed by {:.0}%", 100.0 * (1.0 - ratio / goal))
                };
                let _ = writeln!(t, "- Meridian ≥ {goal:.1}× {} QPS ({client}): {ratio:.2}× — {verdict}", c.name);
            }
        }
        if let Some(i) = contenders.iter().position(|c| c.name == "meridian") {
            let p = med(&figures[i].half, p99);
            let verdict = if p < 1.0 { "met" } else { "missed" };
            let _ = writeln!(t, "- Meridian p99 < 1 ms at 50% load: {p:.3} ms — {verdict}");
        }
    }
    t
}

/// The query names: every service's global name, and one NXDOMAIN name after every tenth.
fn query_names(seeded: &[Seeded]) -> Vec<String> {
    let mut names = Vec::with_capacity(seeded.len() + seeded.len() / NX_EVERY);
    for (i, s) in seeded.iter().enumerate() {
        names.push(simhost::global_name(&s.name));
        if i % NX_EVERY == NX_EVERY - 1 {
            names.push(simhost::global_name(&format!("missing-{i:04}")));
        }
    }
    names
}

/// The dnsperf query list: [`query_names`], A each.
fn write_queries(dir: &Path, names: &[String]) -> Result<PathBuf> {
    let mut q = String::new();
    for name in names {
        let _ = writeln!(q, "{name} A");
    }
    let path = dir.join("queries.txt");
    std::fs::write(&path, q)?;
    Ok(path)
}

fn zone_header() -> String {
    format!(
        "$ORIGIN {}.\n$TTL 30\n@ IN SOA ns1 hostmaster 1 3600 600 86400 30\n@ IN NS ns1\nns1 IN A 127.0.0.1\n",
        simhost::ZONE
    )
}

/// The owner name of a service inside the zone.
fn owner(svc: &str) -> String {
    format!("{svc}.{}.{}.svc", simhost::NAMESPACE, simhost::FEDERATION)
}

fn write_static_zone(dir: &Path, seeded: &[Seeded]) -> Result<PathBuf> {
    let mut z = zone_header();
    for s in seeded {
        for a in &s.addrs {
            let _ = writeln!(z, "{} IN A {a}", owner(&s.name));
        }
    }
    let path = dir.join("static.zone");
    std::fs::write(&path, z)?;
    Ok(path)
}

fn start_knot(dir: &Path, seeded: &[Seeded]) -> Result<Contender> {
    let knotd = harness::ensure_tool("knotd", "knot", &["knot"])?;
    let zone = write_static_zone(dir, seeded)?;
    let port = harness::free_port()?;
    let d = dir.join("knot");
    std::fs::create_dir_all(&d)?;
    // One worker of each kind: the server gets one core, like every contender.
    let conf = format!(
        "server:\n    listen: 127.0.0.1@{port}\n    rundir: {d}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
         control:\n    listen: {d}/knot.sock\ndatabase:\n    storage: {d}\nlog:\n  - target: stderr\n    any: warning\n\
         zone:\n  - domain: {}\n    file: {}\n    storage: {d}\n    journal-content: none\n",
        simhost::ZONE,
        zone.display(),
        d = d.display()
    );
    let path = d.join("knot.conf");
    std::fs::write(&path, conf)?;
    let server = Server::start("knot", SERVER_CORE, &knotd, &["-c".into(), path.display().to_string()], &d)?;
    Ok(Contender { name: "knot", server, port, version: harness::version_of(&knotd.display().to_string(), &["-V"]) })
}

fn start_nsd(dir: &Path, seeded: &[Seeded]) -> Result<Contender> {
    let nsd = harness::ensure_tool("nsd", "nsd", &["nsd"])?;
    let zone = write_static_zone(dir, seeded)?;
    let port = harness::free_port()?;
    let d = dir.join("nsd");
    std::fs::create_dir_all(&d)?;
    // Response rate limiting off: Debian's NSD limits each /24 to 200 answers per second,
    // and every query of the benchmark comes from 127.0.0.1.
    let conf = format!(
        "server:\n    ip-address: 127.0.0.1@{port}\n    server-count: 1\n    username: \"\"\n    chroot: \"\"\n    zonesdir: \"{d}\"\n\
         \x20   database: \"\"\n    zonelistfile: \"{d}/zone.list\"\n    xfrdfile: \"{d}/xfrd.state\"\n    xfrdir: \"{d}\"\n\
         \x20   pidfile: \"{d}/nsd.pid\"\n    logfile: \"{d}/nsd.log\"\n    rrl-ratelimit: 0\n    rrl-whitelist-ratelimit: 0\n\
         remote-control:\n    control-enable: no\n\
         zone:\n    name: {}\n    zonefile: {}\n",
        simhost::ZONE,
        zone.display(),
        d = d.display()
    );
    let path = d.join("nsd.conf");
    std::fs::write(&path, conf)?;
    let server = Server::start("nsd", SERVER_CORE, &nsd, &["-d".into(), "-c".into(), path.display().to_string()], &d)?;
    Ok(Contender {
        name: "nsd",
        server,
        port,
        version: harness::version_line(&nsd.display().to_string(), &["-v"], "NSD"),
    })
}

/// PowerDNS with the bind backend and one LUA record per name: `ifportup` probes port 80
/// of the three shard addresses (the simulator's HTTP backends) and answers the live ones.
/// `enable-lua-records=shared` keeps one Lua state per thread; without it PowerDNS builds
/// a Lua state per query and answers ~10× slower.
fn start_powerdns(dir: &Path, seeded: &[Seeded]) -> Result<Contender> {
    let pdns = harness::ensure_tool("pdns_server", "pdns-server", &["pdns"])?;
    if !Path::new("/usr/lib/x86_64-linux-gnu/pdns/libbindbackend.so").exists() {
        // The backend is a separate package; its file is the test.
        let _ = std::process::Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "pdns-backend-bind"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status();
    }
    let port = harness::free_port()?;
    let d = dir.join("powerdns");
    std::fs::create_dir_all(&d)?;
    let mut z = zone_header();
    for s in seeded {
        let list: Vec<String> = s.addrs.iter().map(|a| format!("'{a}'")).collect();
        let _ = writeln!(z, "{} IN LUA A \"ifportup(80, {{{}}})\"", owner(&s.name), list.join(","));
    }
    let zone = d.join("lua.zone");
    std::fs::write(&zone, z)?;
    let named = d.join("named.conf");
    std::fs::write(&named, format!("zone \"{}\" {{ type master; file \"{}\"; }};\n", simhost::ZONE, zone.display()))?;
    std::fs::write(d.join("pdns.conf"), "")?;
    let args: Vec<String> = [
        format!("--config-dir={}", d.display()),
        format!("--socket-dir={}", d.display()),
        "--local-address=127.0.0.1".into(),
        format!("--local-port={port}"),
        "--launch=bind".into(),
        format!("--bind-config={}", named.display()),
        "--enable-lua-records=shared".into(),
        "--daemon=no".into(),
        "--guardian=no".into(),
        "--disable-syslog".into(),
        "--write-pid=no".into(),
        "--receiver-threads=1".into(),
        "--distributor-threads=1".into(),
        "--security-poll-suffix=".into(),
    ]
    .into();
    let server = Server::start("powerdns-lua", SERVER_CORE, &pdns, &args, &d)?;
    let version = harness::version_line(&pdns.display().to_string(), &["--version"], "PowerDNS Authoritative");
    let version = version.split_once("PowerDNS").map_or(version.clone(), |(_, v)| format!("PowerDNS{v}"));
    Ok(Contender { name: "powerdns-lua", server, port, version: format!("{version}, bind backend, LUA ifportup") })
}

/// Meridian with three clusters reached through the simulator's kubeconfig. Returns the
/// contender and a description of its health checks as its metrics show them.
fn start_meridian(
    dir: &Path,
    bin: &Path,
    name: &'static str,
    sims: &Sims,
    seeded: &[Seeded],
    active_checks: bool,
    extra: Option<&str>,
) -> Result<(Contender, String)> {
    let port = harness::free_port()?;
    let admin_port = harness::free_port()?;
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    let health = if active_checks { "kind = \"tcp\"\ninterval = \"5s\"" } else { "kind = \"off\"" };
    let mut conf = simhost::meridian_config(&MeridianConf {
        kubeconfig: &sims.kubeconfig,
        clusters: CLUSTERS,
        dns_port: port,
        admin_port,
        health: Some(health),
        geo: true,
    });
    conf.push_str(extra.unwrap_or_default());
    let mut server = Server::meridian(bin, SERVER_CORE, &conf, &d)?;
    // Ready when the last service answers with every shard.
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut client = Client::new(addr, Duration::from_millis(200))?;
    let expect = seeded.last().map(|s| (simhost::global_name(&s.name), s.addrs.len()));
    let took = harness::wait_until(&mut server, Duration::from_secs(60), "answers for every service", || {
        expect.as_ref().is_some_and(|(name, n)| client.query_a(name).is_some_and(|a| a.addrs.len() == *n))
    })?;
    eprintln!("{name}: complete table after {took:.1?}");
    let admin = SocketAddr::from(([127, 0, 0, 1], admin_port));
    let metrics = harness::http_get(admin, "/metrics").unwrap_or_default();
    let health_lines = metrics.lines().filter(|l| l.starts_with("meridian_health")).count();
    let health_note = if !active_checks {
        "`[health] kind = \"off\"` (`--no-health`: no active checks, for comparison)".to_owned()
    } else if health_lines == 0 {
        "`[health] kind = \"tcp\", interval = \"5s\"` configured, but this build exports no meridian_health_* \
         metric: active checks are not running in the binary yet"
            .to_owned()
    } else {
        format!("`[health] kind = \"tcp\", interval = \"5s\"` ({health_lines} meridian_health_* series)")
    };
    let version = harness::version_of(&bin.display().to_string(), &["--version"]);
    Ok((Contender { name, server, port, version: format!("{version} ({})", harness::build_of(bin)) }, health_note))
}

/// Every contender must answer the same: all shards for a name, NXDOMAIN for a missing one.
fn check_answers(c: &mut Contender, seeded: &[Seeded]) -> Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], c.port));
    let mut client = Client::new(addr, Duration::from_millis(200))?;
    let first = seeded.first().context("no services")?;
    let name = simhost::global_name(&first.name);
    harness::wait_until(&mut c.server, Duration::from_secs(30), &format!("an answer for {name}"), || {
        client.query_a(&name).is_some_and(|a| a.rcode == 0 && !a.addrs.is_empty())
    })?;
    let answer = client.query_a(&name).context("no answer")?;
    let missing = client.query_a(&simhost::global_name("missing-0000")).context("no answer")?;
    if missing.rcode != dnsclient::NXDOMAIN {
        bail!("{} answers rcode {} for a missing name, not NXDOMAIN", c.name, missing.rcode);
    }
    eprintln!("{:<13} ready on 127.0.0.1:{}: {name} → {:?}", c.name, c.port, answer.addrs);
    Ok(())
}
