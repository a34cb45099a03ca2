//! Proxy throughput and latency, side by side: Meridian's L7 proxy (`meridian serve` with
//! `[lb] enabled = true` and a config route to a federated Service), nginx and HAProxy,
//! each configured as a reverse proxy to the same nginx backend with an HTTP/1.1
//! keep-alive pool upstream. Three client modes: HTTP/1.1 keep-alive (wrk), HTTP/1.1 over
//! TLS (wrk) and HTTP/2 over TLS (h2load). The backend alone ("direct") is measured the
//! same way, so "added p99" is the p99 through a proxy minus the p99 without one.
//!
//! The proxies run pinned to core 0, one at a time (the others paused with SIGSTOP); the
//! backend nginx, the load generator and this process (which hosts the simulated cluster
//! Meridian discovers the Service from) share core 1. Each round measures every contender
//! in every mode (ABAB…); tables show medians.
//!
//! [`failover_row`] is the proxy row of the `failover` benchmark: two backends in two
//! clusters, wrk through Meridian while the preferred backend is killed and restarted.

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::harness::{self, Args, LOAD_CORE, SERVER_CORE, Server};
use crate::simhost::{self, MeridianConf, Sims};

const USAGE: &str = "meridian-bench proxy [--rounds 3] [--seconds 10] [--connections 32] [--streams 10] \
[--only direct,nginx,haproxy,meridian,meridian-baseline] [--modes h1,h1-tls,h2-tls] [--no-record] \
[--baseline PATH-TO-AN-EARLIER-MERIDIAN]";

/// The `Host` every client sends (Meridian routes by it; the peers ignore it).
const HOST: &str = "bench.test";
/// The backends' loopback addresses (one per simulated cluster).
const BACKEND_IPS: [Ipv4Addr; 2] = [Ipv4Addr::new(127, 77, 0, 1), Ipv4Addr::new(127, 77, 0, 2)];
/// The backend's response body (small and static, as in the issue).
const BODY: &str = "hello from the meridian bench backend\n";
/// Unrecorded load after a contender is resumed (fills the upstream pools, warms caches);
/// also the check that every request gets a 2xx.
const WARMUP_SECS: u32 = 2;
/// h2load's request count for the warm-up, and the least for a measured run.
const H2_MIN_REQUESTS: u64 = 20_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    H1,
    H1Tls,
    H2Tls,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::H1, Mode::H1Tls, Mode::H2Tls];

    fn name(self) -> &'static str {
        match self {
            Mode::H1 => "h1",
            Mode::H1Tls => "h1-tls",
            Mode::H2Tls => "h2-tls",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Mode::H1 => "HTTP/1.1 keep-alive, plain (wrk)",
            Mode::H1Tls => "HTTP/1.1 keep-alive over TLS (wrk)",
            Mode::H2Tls => "HTTP/2 over TLS (h2load)",
        }
    }
}

/// Client load settings.
#[derive(Clone, Copy)]
struct Shape {
    connections: u32,
    streams: u32,
}

/// One measurement.
#[derive(Debug, Clone, Copy, Default)]
struct Run {
    rps: f64,
    p99_ms: f64,
    /// Requests that got no 2xx/3xx (wrk: non-2xx/3xx + socket errors; h2load: not 2xx).
    errors: u64,
    requests: u64,
    /// Server CPU seconds per wall second during the run.
    busy: f64,
}

/// A server under test; `direct` is the backend itself (never paused).
struct Contender {
    name: &'static str,
    server: Option<Server>,
    plain: u16,
    tls: u16,
    version: String,
}

struct Tools {
    wrk: PathBuf,
    h2load: PathBuf,
}

pub(crate) fn run(raw: &[String]) -> Result<()> {
    let args = Args::new(raw);
    if args.help(USAGE) {
        return Ok(());
    }
    let rounds: usize = args.num("rounds", 3)?;
    let seconds: u32 = args.num("seconds", 10)?;
    let shape = Shape { connections: args.num("connections", 32)?, streams: args.num("streams", 10)? };
    let wanted = args.wanted();
    let modes: Vec<Mode> = match args.list("modes") {
        None => Mode::ALL.to_vec(),
        Some(l) => Mode::ALL.into_iter().filter(|m| l.iter().any(|x| x == m.name())).collect(),
    };

    let tools = tools()?;
    let nginx = harness::ensure_tool("nginx", "nginx", &["nginx"])?;
    let meridian = harness::meridian_binary()?;
    harness::pin_self(LOAD_CORE);
    let tmp = tempfile::Builder::new().prefix("meridian-bench-proxy").tempdir()?;
    let dir = tmp.path();
    let cert = self_signed(dir)?;

    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let (backend_plain, backend_tls) = (harness::free_port()?, harness::free_port()?);
    let mut backend = start_backend(&nginx, dir, "backend", BACKEND_IPS[0], backend_plain, Some(backend_tls), &cert)?;
    wait_http(&mut backend, SocketAddr::from((BACKEND_IPS[0], backend_plain)))?;
    let upstream = SocketAddr::from((BACKEND_IPS[0], backend_plain));

    let mut contenders = Vec::new();
    if wanted("direct") {
        contenders.push(Contender {
            name: "direct",
            server: None,
            plain: backend_plain,
            tls: backend_tls,
            version: format!("the backend alone: {}", harness::version_of(&nginx.display().to_string(), &["-v"])),
        });
    }
    if wanted("nginx") {
        contenders.push(start_nginx_proxy(&nginx, dir, &cert, upstream)?);
    }
    if wanted("haproxy") {
        contenders.push(start_haproxy(dir, &cert, upstream)?);
    }
    let mut sims = None;
    // An earlier build of Meridian beside this one (`--baseline`): a change's cost,
    // measured against the same peers on the same machine at the same time.
    let baseline = args.value("baseline").filter(|_| wanted("meridian-baseline")).map(PathBuf::from);
    if wanted("meridian") || baseline.is_some() {
        let s = rt.block_on(Sims::start(1, false, dir))?;
        seed_web(&s, backend_plain)?;
        if wanted("meridian") {
            contenders.push(start_meridian(&meridian, "meridian", dir, &s, &cert, None)?);
        }
        if let Some(bin) = &baseline {
            contenders.push(start_meridian(bin, "meridian-baseline", dir, &s, &cert, None)?);
        }
        sims = Some(s);
    }
    if contenders.iter().all(|c| c.server.is_none()) && contenders.len() < 2 {
        bail!("no proxy selected\n{USAGE}");
    }
    for c in &mut contenders {
        if let Some(s) = c.server.as_mut() {
            wait_http(s, SocketAddr::from(([127, 0, 0, 1], c.plain)))?;
            s.pause();
        }
    }

    // figures[contender][mode] = one Run per round
    let mut figures: Vec<Vec<Vec<Run>>> =
        contenders.iter().map(|_| modes.iter().map(|_| Vec::new()).collect()).collect();
    for round in 1..=rounds {
        for (c, f) in contenders.iter_mut().zip(figures.iter_mut()) {
            if let Some(s) = c.server.as_mut() {
                s.resume();
                s.check_running()?;
            }
            for (m, runs) in modes.iter().zip(f.iter_mut()) {
                let port = if *m == Mode::H1 { c.plain } else { c.tls };
                let warm = load(&tools, dir, *m, port, WARMUP_SECS, shape, None)?;
                if warm.errors > 0 || warm.requests == 0 {
                    bail!(
                        "{} ({}): {} of {} warm-up requests failed; is it proxying?",
                        c.name,
                        m.name(),
                        warm.errors,
                        warm.requests
                    );
                }
                let cpu0 = c.server.as_ref().map_or(backend.cpu_secs(), Server::cpu_secs);
                let t0 = Instant::now();
                // A run that fails (no response at all, a hung client) is reported as
                // such and the round goes on: one bad run should not lose the others.
                let mut r = match load(&tools, dir, *m, port, seconds, shape, Some(warm.rps)) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("round {round}/{rounds} {} {}: run failed: {e:#}", c.name, m.name());
                        Run { rps: f64::NAN, p99_ms: f64::NAN, ..Run::default() }
                    }
                };
                let cpu1 = c.server.as_ref().map_or(backend.cpu_secs(), Server::cpu_secs);
                r.busy = (cpu1 - cpu0) / t0.elapsed().as_secs_f64();
                eprintln!(
                    "round {round}/{rounds} {:<8} {:<6} {:>9.0} req/s  p99 {:.3} ms  errors {}  server core busy {:.0}%",
                    c.name,
                    m.name(),
                    r.rps,
                    r.p99_ms,
                    r.errors,
                    100.0 * r.busy
                );
                runs.push(r);
            }
            if let Some(s) = c.server.as_ref() {
                s.pause();
            }
        }
    }
    for c in &contenders {
        if let Some(s) = c.server.as_ref() {
            s.resume();
        }
    }
    backend.check_running()?;

    let body = report(&contenders, &modes, &figures, rounds, seconds, shape, &tools);
    if args.flag("no-record") {
        print!("{body}");
    } else {
        let command = format!("cargo run --release -p meridian-bench -- proxy {}", raw.join(" "));
        harness::record("Proxy throughput and latency", command.trim(), &body)?;
    }
    drop(contenders);
    drop(backend);
    if let Some(s) = sims {
        rt.block_on(s.shutdown());
    }
    Ok(())
}

fn tools() -> Result<Tools> {
    Ok(Tools {
        wrk: harness::ensure_tool("wrk", "wrk", &[])?,
        h2load: harness::ensure_tool("h2load", "nghttp2-client", &[])?,
    })
}

fn report(
    contenders: &[Contender],
    modes: &[Mode],
    figures: &[Vec<Vec<Run>>],
    rounds: usize,
    seconds: u32,
    shape: Shape,
    tools: &Tools,
) -> String {
    let med = |runs: &[Run], f: fn(&Run) -> f64| harness::median(runs.iter().map(f).collect());
    let idx = |name: &str| contenders.iter().position(|c| c.name == name);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Meridian's proxy, nginx and HAProxy as reverse proxies to one nginx backend (`worker_processes 1`, small \
         static body, HTTP/1.1 keep-alive pool upstream for all three), `Host: {HOST}`. Proxies on core {SERVER_CORE}, \
         one at a time (the others SIGSTOPped); backend, load generator and the simulated cluster on core {LOAD_CORE}. \
         h1: `wrk -t1 -c{c} --latency`; h2: `h2load -t1 -c{c} -m{m} -n <warm-up rate × seconds>` (p99 from its per-request log). TLS: one \
         self-signed ECDSA P-256 certificate for all, TLS 1.3. {rounds} rounds × {seconds} s per run, contenders in \
         turn (ABAB…), medians. \"direct\" is wrk/h2load against the backend itself; \"added p99\" = p99 through the \
         proxy − p99 direct. \"server core busy\": the proxy's CPU time over the run's wall time.\n",
        c = shape.connections,
        m = shape.streams,
    );
    let _ = writeln!(
        t,
        "| mode | server | req/s | p99 ms | added p99 ms | errors | server core busy | req per server CPU-s | Meridian / peer (req/s) | req/s per round |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut targets = Vec::new();
    for (mi, m) in modes.iter().enumerate() {
        let direct_p99 = idx("direct").map(|i| med(&figures[i][mi], |r| r.p99_ms));
        let meridian_rps = idx("meridian").map(|i| med(&figures[i][mi], |r| r.rps));
        let added = |ci: usize| direct_p99.map(|d| med(&figures[ci][mi], |r| r.p99_ms) - d);
        for (ci, c) in contenders.iter().enumerate() {
            let runs = &figures[ci][mi];
            let rps = med(runs, |r| r.rps);
            let ratio = match meridian_rps {
                Some(mr) if c.name != "meridian" && c.name != "direct" => format!("{:.2}×", mr / rps),
                _ => "—".into(),
            };
            let added_s = match (c.name, added(ci)) {
                ("direct", _) | (_, None) => "—".to_owned(),
                (_, Some(a)) => format!("{a:.3}"),
            };
            let per_round: Vec<String> = runs.iter().map(|r| format!("{:.0}", r.rps)).collect();
            let _ = writeln!(
                t,
                "| {} | {} | {:.0} | {:.3} | {added_s} | {} | {:.0}% | {:.0} | {ratio} | {} |",
                m.name(),
                c.name,
                rps,
                med(runs, |r| r.p99_ms),
                runs.iter().map(|r| r.errors).sum::<u64>(),
                100.0 * med(runs, |r| r.busy),
                med(runs, |r| r.rps / r.busy.max(1e-9)),
                per_round.join(", ")
            );
        }
        if let (Some(mi_rps), Some(me)) = (meridian_rps, idx("meridian")) {
            for peer in ["nginx", "haproxy"] {
                let Some(pi) = idx(peer) else { continue };
                let ratio = mi_rps / med(&figures[pi][mi], |r| r.rps);
                let verdict =
                    if ratio >= 1.0 { "met".to_owned() } else { format!("missed by {:.0}%", 100.0 * (1.0 - ratio)) };
                targets.push(format!("- {}: Meridian ≥ 1.0× {peer} req/s: {ratio:.2}× — {verdict}", m.name()));
                if let (Some(am), Some(ap)) = (added(me), added(pi)) {
                    let verdict = if am <= ap { "met" } else { "missed" };
                    targets.push(format!(
                        "- {}: Meridian added p99 ≤ {peer}'s: {am:.3} ms vs {ap:.3} ms — {verdict}",
                        m.name()
                    ));
                }
            }
        }
    }
    let _ = writeln!(t);
    for m in modes {
        let _ = writeln!(t, "- {}: {}", m.name(), m.describe());
    }
    for c in contenders {
        let _ = writeln!(t, "- {}: {}", c.name, c.version);
    }
    let _ = writeln!(
        t,
        "- load: {}; {}",
        harness::version_line(&tools.wrk.display().to_string(), &["-v"], "wrk"),
        harness::version_of(&tools.h2load.display().to_string(), &["--version"])
    );
    if !targets.is_empty() {
        let _ = writeln!(t, "\nTargets:");
        for l in targets {
            let _ = writeln!(t, "{l}");
        }
    }
    t
}

/// One load run against `127.0.0.1:port` in `mode`; `rate` (req/s of an earlier run)
/// sizes h2load's request count.
fn load(tools: &Tools, dir: &Path, mode: Mode, port: u16, secs: u32, shape: Shape, rate: Option<f64>) -> Result<Run> {
    match mode {
        Mode::H1 | Mode::H1Tls => {
            let scheme = if mode == Mode::H1 { "http" } else { "https" };
            wrk(&tools.wrk, &format!("{scheme}://127.0.0.1:{port}/"), secs, shape.connections)
        }
        Mode::H2Tls => h2load(&tools.h2load, dir, port, secs, shape, rate),
    }
}

fn wrk(bin: &Path, url: &str, secs: u32, connections: u32) -> Result<Run> {
    let out = Command::new(bin)
        .args(["-t1", &format!("-c{connections}"), &format!("-d{secs}s"), "--latency", "-H", &format!("Host: {HOST}")])
        .arg(url)
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    parse_wrk(&text)
        .with_context(|| format!("cannot read wrk's output: {text}{}", String::from_utf8_lossy(&out.stderr)))
}

/// Requests/s, p99, errors and request count from wrk's `--latency` output.
fn parse_wrk(text: &str) -> Option<Run> {
    let mut run = Run::default();
    for line in text.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().ok()?;
        } else if let Some(v) = line.strip_prefix("99%") {
            run.p99_ms = wrk_duration_ms(v.trim())?;
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += v.trim().parse::<u64>().ok()?;
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // "connect 0, read 0, write 0, timeout 0"
            run.errors += v.split(',').filter_map(|p| p.split_whitespace().nth(1)?.parse::<u64>().ok()).sum::<u64>();
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            run.requests = n.trim().parse().ok()?;
        }
    }
    (run.rps > 0.0).then_some(run)
}

/// `812.00us`, `1.23ms`, `2.00s` → milliseconds.
fn wrk_duration_ms(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else {
        return None;
    };
    Some(num.trim().parse::<f64>().ok()? * scale)
}

/// h2load with a request count (`-n`), not a duration: `-D` hung for minutes against
/// nginx here (connections left with unread data), so the count is the previous run's
/// rate × `secs` (the warm-up's, at least [`H2_MIN_REQUESTS`]), and a watchdog kills a
/// run that takes 3× longer than planned.
fn h2load(bin: &Path, dir: &Path, port: u16, secs: u32, shape: Shape, rate: Option<f64>) -> Result<Run> {
    let log = dir.join("h2load.log");
    let out_path = dir.join("h2load.out");
    let n = rate.map_or(H2_MIN_REQUESTS, |r| ((r * f64::from(secs)) as u64).max(H2_MIN_REQUESTS));
    let mut child = Command::new(bin)
        .args([
            "-t1",
            &format!("-c{}", shape.connections),
            &format!("-m{}", shape.streams),
            &format!("-n{n}"),
            &format!("--log-file={}", log.display()),
            "-H",
            &format!(":authority: {HOST}"),
        ])
        .arg(format!("https://127.0.0.1:{port}/"))
        .stdout(std::fs::File::create(&out_path)?)
        .stderr(std::process::Stdio::null())
        .spawn()
        .context("cannot run h2load")?;
    let limit = Duration::from_secs(3 * u64::from(secs.max(WARMUP_SECS)) + 10);
    let t0 = Instant::now();
    while child.try_wait()?.is_none() {
        if t0.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            bail!("h2load against port {port} did not finish {n} requests within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    let mut run = parse_h2load(&text).with_context(|| format!("cannot read h2load's output: {text}"))?;
    // Per-request log: start µs, status, µs until the end of the response.
    let per_request = std::fs::read_to_string(&log).unwrap_or_default();
    let mut lat: Vec<u64> =
        per_request.lines().filter_map(|l| l.split('\t').nth(2)?.trim().parse::<u64>().ok()).collect();
    let _ = std::fs::remove_file(&log);
    lat.sort_unstable();
    run.p99_ms = harness::quantile(&lat, 0.99).map_or(f64::NAN, |us| us as f64 / 1000.0);
    Ok(run)
}

/// Requests/s, request count and failures from h2load's summary.
fn parse_h2load(text: &str) -> Option<Run> {
    let mut run = Run::default();
    let mut ok2xx = None;
    let mut done = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("finished in ") {
            let rps = rest.split(',').nth(1)?.trim().strip_suffix("req/s")?.trim();
            run.rps = rps.parse().ok()?;
        } else if let Some(rest) = line.strip_prefix("requests:") {
            // "N total, N started, N done, N succeeded, N failed, N errored, N timeout"
            for part in rest.split(',') {
                let mut w = part.split_whitespace();
                let (Some(n), Some(what)) = (w.next(), w.next()) else { continue };
                if what == "done" {
                    done = n.parse::<u64>().ok();
                }
            }
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            ok2xx = rest.split(',').next()?.split_whitespace().next()?.parse::<u64>().ok();
        }
    }
    let done = done?;
    run.requests = done;
    run.errors = done.saturating_sub(ok2xx?);
    (run.rps > 0.0).then_some(run)
}

/// Certificate and key (PEM) for every TLS listener, generated once per run.
struct Cert {
    cert: PathBuf,
    key: PathBuf,
    /// Certificate then key in one file, as HAProxy's `crt` wants.
    combined: PathBuf,
}

fn self_signed(dir: &Path) -> Result<Cert> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let status = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "7"])
        .args(["-subj", &format!("/CN={HOST}"), "-addext", &format!("subjectAltName=DNS:{HOST},IP:127.0.0.1")])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run openssl to make a self-signed certificate")?;
    if !status.success() {
        bail!("openssl req failed ({status})");
    }
    let combined = dir.join("combined.pem");
    std::fs::write(&combined, [std::fs::read(&cert)?, std::fs::read(&key)?].concat())?;
    Ok(Cert { cert, key, combined })
}

/// Paths nginx would otherwise put under /var/lib/nginx, and the common `http` settings.
fn nginx_common(d: &Path) -> String {
    format!(
        "worker_processes 1;\ndaemon off;\nmaster_process on;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 10000000;\n  keepalive_timeout 75s;\n\
         \x20 client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
         \x20 uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n",
        d = d.display()
    )
}

/// The backend: nginx answering every request with [`BODY`] on `ip:port`; with
/// `tls_port`, also on `127.0.0.1:port` and a TLS + h2 listener on `127.0.0.1:tls_port`,
/// for the direct baselines.
fn start_backend(
    nginx: &Path,
    dir: &Path,
    name: &str,
    ip: Ipv4Addr,
    port: u16,
    tls_port: Option<u16>,
    cert: &Cert,
) -> Result<Server> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    let mut conf = nginx_common(&d);
    let _ = writeln!(conf, "  server {{\n    listen {ip}:{port} reuseport;");
    if let Some(tp) = tls_port {
        let _ = writeln!(
            conf,
            "    listen 127.0.0.1:{port};\n    listen 127.0.0.1:{tp} ssl http2;\n    ssl_certificate {};\n    ssl_certificate_key {};",
            cert.cert.display(),
            cert.key.display()
        );
    }
    let _ = writeln!(
        conf,
        "    location / {{ default_type text/plain; return 200 \"{}\"; }}\n  }}\n}}",
        BODY.escape_default()
    );
    let path = d.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let args = ["-p".into(), format!("{}/", d.display()), "-c".into(), path.display().to_string()];
    Server::start(name, LOAD_CORE, nginx, &args, &d)
}

fn start_nginx_proxy(nginx: &Path, dir: &Path, cert: &Cert, upstream: SocketAddr) -> Result<Contender> {
    let d = dir.join("nginx-proxy");
    std::fs::create_dir_all(&d)?;
    let (plain, tls) = (harness::free_port()?, harness::free_port()?);
    let mut conf = nginx_common(&d);
    let _ = writeln!(
        conf,
        "  upstream backend {{ server {upstream}; keepalive 1024; keepalive_requests 10000000; }}\n\
         \x20 server {{\n    listen 127.0.0.1:{plain};\n    listen 127.0.0.1:{tls} ssl http2;\n\
         \x20   ssl_certificate {};\n    ssl_certificate_key {};\n\
         \x20   location / {{\n      proxy_pass http://backend;\n      proxy_http_version 1.1;\n\
         \x20     proxy_set_header Connection \"\";\n      proxy_set_header Host $host;\n\
         \x20     proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n\
         \x20     proxy_set_header X-Forwarded-Proto $scheme;\n    }}\n  }}\n}}",
        cert.cert.display(),
        cert.key.display()
    );
    let path = d.join("nginx.conf");
    std::fs::write(&path, conf)?;
    let args = ["-p".into(), format!("{}/", d.display()), "-c".into(), path.display().to_string()];
    let server = Server::start("nginx", SERVER_CORE, nginx, &args, &d)?;
    let version = format!(
        "{}, `worker_processes 1`, `proxy_pass` to an upstream with `keepalive 1024`",
        harness::version_of(&nginx.display().to_string(), &["-v"])
    );
    Ok(Contender { name: "nginx", server: Some(server), plain, tls, version })
}

fn start_haproxy(dir: &Path, cert: &Cert, upstream: SocketAddr) -> Result<Contender> {
    let haproxy = harness::ensure_tool("haproxy", "haproxy", &["haproxy"])?;
    let d = dir.join("haproxy");
    std::fs::create_dir_all(&d)?;
    let (plain, tls) = (harness::free_port()?, harness::free_port()?);
    let conf = format!(
        "global\n  nbthread 1\n  maxconn 4096\n\n\
         defaults\n  mode http\n  option http-keep-alive\n  http-reuse always\n  option forwardfor\n\
         \x20 timeout connect 2s\n  timeout client 60s\n  timeout server 60s\n  timeout http-keep-alive 60s\n\n\
         frontend fe\n  bind 127.0.0.1:{plain}\n  bind 127.0.0.1:{tls} ssl crt {} alpn h2,http/1.1\n\
         \x20 http-request set-header X-Forwarded-Proto https if {{ ssl_fc }}\n  default_backend be\n\n\
         backend be\n  server b1 {upstream}\n",
        cert.combined.display()
    );
    let path = d.join("haproxy.cfg");
    std::fs::write(&path, conf)?;
    let server =
        Server::start("haproxy", SERVER_CORE, &haproxy, &["-db".into(), "-f".into(), path.display().to_string()], &d)?;
    let version = format!(
        "{}, `nbthread 1`, http mode, `http-reuse always`",
        harness::version_of(&haproxy.display().to_string(), &["-v"])
    );
    Ok(Contender { name: "haproxy", server: Some(server), plain, tls, version })
}

/// The federated Service `default/web` in cluster `i`: ClusterIP with an external IP
/// (the backend's address) and the backend's port; two ready endpoints from the sim.
fn web_service(ip: Ipv4Addr, port: u16) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": simhost::NAMESPACE},
        "spec": {
            "type": "ClusterIP",
            "selector": {"app": "web"},
            "externalIPs": [ip.to_string()],
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        },
    })
}

/// Applies `default/web` to every simulated cluster, cluster i → `BACKEND_IPS[i]`.
fn seed_web(sims: &Sims, port: u16) -> Result<()> {
    for (c, ip) in sims.clusters.iter().zip(BACKEND_IPS) {
        c.apply_json(web_service(ip, port)).with_context(|| format!("seeding default/web in {}", c.name()))?;
    }
    Ok(())
}

/// `meridian serve` with the proxy on and a config route `bench.test` → `default/web`.
fn start_meridian(
    bin: &Path,
    name: &'static str,
    dir: &Path,
    sims: &Sims,
    cert: &Cert,
    health: Option<&str>,
) -> Result<Contender> {
    let d = dir.join(name);
    std::fs::create_dir_all(&d)?;
    let (plain, tls) = (harness::free_port()?, harness::free_port()?);
    let mut conf = simhost::meridian_config(&MeridianConf {
        kubeconfig: &sims.kubeconfig,
        clusters: sims.clusters.len(),
        dns_port: harness::free_port()?,
        admin_port: harness::free_port()?,
        health,
        geo: false,
    });
    let _ = writeln!(
        conf,
        "\n[lb]\nenabled = true\nlisten = [\"127.0.0.1:{plain}\"]\nlisten_tls = [\"127.0.0.1:{tls}\"]\n\n\
         [[lb.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n\n\
         [[lb.routes]]\nhost = \"{HOST}\"\npath = \"/\"\nservice = \"{}/web\"",
        cert.cert.display(),
        cert.key.display(),
        simhost::NAMESPACE
    );
    let server = Server::meridian(bin, SERVER_CORE, &conf, &d)?;
    let version = format!(
        "{} ({}), one tokio worker (it sizes itself from its affinity), config route to a federated Service",
        harness::version_of(&bin.display().to_string(), &["--version"]),
        harness::build_of(bin)
    );
    Ok(Contender { name, server: Some(server), plain, tls, version })
}

/// `GET /` with `Host: bench.test` on a fresh connection: the status code.
fn get_status(addr: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    buf.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// Waits until `addr` answers 200 (for Meridian: until the route has a backend).
fn wait_http(server: &mut Server, addr: SocketAddr) -> Result<()> {
    harness::wait_until(server, Duration::from_secs(30), &format!("200 from {addr}"), || {
        get_status(addr) == Some(200)
    })?;
    eprintln!("{:<8} ready on {addr}", server.name);
    Ok(())
}

/// Settings of the failover benchmark's proxy row.
pub(crate) struct FailoverLoad<'a> {
    pub(crate) trials: usize,
    /// Seconds of wrk load per trial; the backend dies at 1/3 and returns at 2/3.
    pub(crate) seconds: u32,
    /// `[health]` body for Meridian.
    pub(crate) health: &'a str,
}

/// Requests failed through Meridian's proxy while the preferred backend dies: two
/// clusters, `default/web` on one nginx backend in each; wrk (h1 keep-alive, 32
/// connections, GET) through the proxy; at a third of the run the backend of the first
/// cluster (the first priority level, which takes all traffic) is killed, at two thirds
/// started again. Returns the Markdown table row(s) and a note.
pub(crate) fn failover_row(rt: &tokio::runtime::Runtime, dir: &Path, f: &FailoverLoad<'_>) -> Result<String> {
    let tools = tools()?;
    let nginx = harness::ensure_tool("nginx", "nginx", &["nginx"])?;
    let meridian = harness::meridian_binary()?;
    let dir = dir.join("proxy-failover");
    std::fs::create_dir_all(&dir)?;
    let cert = self_signed(&dir)?;
    let port = harness::free_port()?;
    let mut backends = Vec::new();
    for (i, ip) in BACKEND_IPS.iter().enumerate() {
        let mut b = start_backend(&nginx, &dir, &format!("backend{i}"), *ip, port, None, &cert)?;
        wait_http(&mut b, SocketAddr::from((*ip, port)))?;
        backends.push(b);
    }
    let sims = rt.block_on(Sims::start(BACKEND_IPS.len(), false, &dir))?;
    seed_web(&sims, port)?;
    let mut c = start_meridian(&meridian, "meridian", &dir, &sims, &cert, Some(f.health))?;
    let addr = SocketAddr::from(([127, 0, 0, 1], c.plain));
    if let Some(s) = c.server.as_mut() {
        wait_http(s, addr)?;
    }
    // Let the first probes settle.
    std::thread::sleep(Duration::from_secs(3));
    let url = format!("http://{addr}/");
    let mut results: Vec<Run> = Vec::new();
    for trial in 1..=f.trials {
        let wrk_bin = tools.wrk.clone();
        let (url, secs) = (url.clone(), f.seconds);
        let load = std::thread::spawn(move || wrk(&wrk_bin, &url, secs, 32));
        std::thread::sleep(Duration::from_secs_f64(f64::from(f.seconds) / 3.0));
        // Dropping the server stops it (SIGTERM to its group, SIGKILL after 3 s).
        drop(backends.remove(0));
        std::thread::sleep(Duration::from_secs_f64(f64::from(f.seconds) / 3.0));
        let mut b = start_backend(&nginx, &dir, "backend0", BACKEND_IPS[0], port, None, &cert)?;
        wait_http(&mut b, SocketAddr::from((BACKEND_IPS[0], port)))?;
        backends.insert(0, b);
        let run = load.join().map_err(|_| anyhow::anyhow!("wrk thread panicked"))??;
        eprintln!(
            "proxy failover trial {trial}/{}: {} requests, {} failed, {:.0} req/s",
            f.trials, run.requests, run.errors, run.rps
        );
        results.push(run);
        if let Some(s) = c.server.as_mut() {
            s.check_running()?;
        }
        // Let health checks see it back before the next trial.
        std::thread::sleep(Duration::from_secs(3));
    }
    drop(c);
    drop(backends);
    rt.block_on(sims.shutdown());
    let failed: Vec<u64> = results.iter().map(|r| r.errors).collect();
    let total: u64 = failed.iter().sum();
    let med = harness::median(failed.iter().map(|&x| x as f64).collect());
    let requests: u64 = results.iter().map(|r| r.requests).sum();
    let verdict = if total == 0 { "met".to_owned() } else { format!("missed: {total} of {requests} failed") };
    let per: Vec<String> = failed.iter().map(u64::to_string).collect();
    Ok(format!(
        "| requests failed through the proxy (GET, wrk h1, 32 conns, {} s per trial; backend killed at {:.0} s, back at {:.0} s) | {med:.0} | {} (of {} requests) | 0 | {verdict} |\n",
        f.seconds,
        f64::from(f.seconds) / 3.0,
        2.0 * f64::from(f.seconds) / 3.0,
        per.join(", "),
        requests
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_wrk() {
        let text = "Running 10s test @ http://127.0.0.1:1/\n  1 threads and 32 connections\n  Latency Distribution\n     50%  281.00us\n     75%  300.00us\n     90%  350.00us\n     99%    1.02ms\n  987654 requests in 10.00s, 1.00GB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 5\nRequests/sec:  98765.43\nTransfer/sec:     10.00MB\n";
        let r = parse_wrk(text).expect("parsed");
        assert!((r.rps - 98765.43).abs() < 1e-6);
        assert!((r.p99_ms - 1.02).abs() < 1e-9);
        assert_eq!((r.errors, r.requests), (8, 987_654));
        assert_eq!(wrk_duration_ms("812.00us"), Some(0.812));
    }

    #[test]
    fn parses_h2load() {
        let text = "finished in 10.00s, 120000.50 req/s, 10.00MB/s\nrequests: 1200005 total, 1200325 started, 1200005 done, 1200000 succeeded, 5 failed, 5 errored, 0 timeout\nstatus codes: 1200000 2xx, 0 3xx, 0 4xx, 0 5xx\n";
        let r = parse_h2load(text).expect("parsed");
        assert!((r.rps - 120_000.5).abs() < 1e-6);
        assert_eq!((r.requests, r.errors), (1_200_005, 5));
    }
}
