//! What every comparison shares: installing peers from Debian, starting servers pinned to
//! a core, pausing the ones not under test, medians, the machine's description and
//! appending a run's table to `bench/RESULTS.md`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use meridian_testkit::wait::eventually_blocking;

/// The core the server under test runs on.
pub(crate) const SERVER_CORE: u32 = 0;
/// The core of the load generator (and of this process, which hosts the simulator).
pub(crate) const LOAD_CORE: u32 = 1;

/// Where each run's table is appended.
pub(crate) fn results_file() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("RESULTS.md")
}

/// The workspace root (for `target/release/meridian` and the git commit).
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// Finds `bin` on the PATH or in the sbin directories (Debian puts daemons there).
pub(crate) fn which(bin: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

/// Installs `package` with apt-get when `bin` is missing, then stops any service the
/// package started (the harness runs every server itself, on its own port).
pub(crate) fn ensure_tool(bin: &str, package: &str, services: &[&str]) -> Result<PathBuf> {
    if let Some(p) = which(bin) {
        return Ok(p);
    }
    eprintln!("{bin} is missing: apt-get install -y {package}");
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
    };
    if !install().is_ok_and(|s| s.success()) {
        // A fresh container has no package lists yet.
        let _ = Command::new("apt-get").arg("update").stdout(Stdio::null()).status();
        let status = install().with_context(|| format!("cannot run apt-get to install {package}"))?;
        if !status.success() {
            bail!("apt-get install {package} failed ({status})");
        }
    }
    for s in services {
        let _ = Command::new("service").args([s, "stop"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
    which(bin).with_context(|| format!("{package} is installed but {bin} is still missing"))
}

/// First line of a command's output (stdout, else stderr), for version strings.
pub(crate) fn version_of(cmd: &str, args: &[&str]) -> String {
    version_line(cmd, args, "")
}

/// The first line of a command's output (stdout and stderr) that contains `needle`.
pub(crate) fn version_line(cmd: &str, args: &[&str], needle: &str) -> String {
    let Ok(out) = Command::new(cmd).args(args).output() else { return format!("{cmd}: not found") };
    let mut text = out.stdout;
    text.extend_from_slice(&out.stderr);
    String::from_utf8_lossy(&text)
        .lines()
        .find(|l| !l.trim().is_empty() && l.contains(needle))
        .unwrap_or("?")
        .trim()
        .to_owned()
}

/// Pins this process (every thread it has and will have) to `core`.
pub(crate) fn pin_self(core: u32) {
    let pid = std::process::id().to_string();
    let _ = Command::new("taskset").args(["-a", "-p", "-c", &core.to_string(), &pid]).stdout(Stdio::null()).status();
}

/// A server started by the harness: pinned to a core, its output in a log file, killed
/// when dropped.
pub(crate) struct Server {
    pub(crate) name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// `meridian serve` on `core` with `conf` written to `dir/meridian.toml` and `dir` as
    /// its state directory.
    pub(crate) fn meridian(bin: &Path, core: u32, conf: &str, dir: &Path) -> Result<Server> {
        Server::meridian_on("meridian", bin, &core.to_string(), conf, dir)
    }

    /// Starts `program args…` under `taskset -c core`.
    pub(crate) fn start(name: &str, core: u32, program: &Path, args: &[String], dir: &Path) -> Result<Server> {
        Server::start_on(name, &core.to_string(), program, args, dir)
    }

    /// `meridian serve` as [`Server::meridian`], on the `cores` `taskset -c` takes
    /// (`"0,1"`), named `name` in errors and its log file.
    pub(crate) fn meridian_on(name: &str, bin: &Path, cores: &str, conf: &str, dir: &Path) -> Result<Server> {
        let path = dir.join("meridian.toml");
        std::fs::write(&path, conf)?;
        let args = ["serve", "--config", &path.display().to_string(), "--state-dir", &dir.display().to_string()]
            .map(str::to_owned);
        Server::start_on(name, cores, bin, &args, dir)
    }

    /// Starts `program args…` under `taskset -c cores`.
    pub(crate) fn start_on(name: &str, cores: &str, program: &Path, args: &[String], dir: &Path) -> Result<Server> {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let child = Command::new("taskset")
            .arg("-c")
            .arg(cores)
            .arg(program)
            .args(args)
            .current_dir(dir)
            // Its own process group, so pausing and stopping reach the children that
            // some servers (NSD) fork to do the work.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        Ok(Server { name: name.to_owned(), child, log })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Fails with the end of the server's log when it has exited.
    pub(crate) fn check_running(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("{} exited ({status}); end of its log:\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGSTOP to the process group: a paused server takes no CPU from the one under test.
    pub(crate) fn pause(&self) {
        signal_group(self.pid(), "STOP");
    }

    pub(crate) fn resume(&self) {
        signal_group(self.pid(), "CONT");
    }

    /// CPU time (user + system) used so far by every process of the server's group.
    pub(crate) fn cpu_secs(&self) -> f64 {
        let pgid = self.pid().to_string();
        let Ok(dir) = std::fs::read_dir("/proc") else { return 0.0 };
        let mut ticks = 0u64;
        for e in dir.flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            // Fields after the command name: state ppid pgrp … utime (12th) stime (13th).
            let Some((_, rest)) = stat.rsplit_once(") ") else { continue };
            let f: Vec<&str> = rest.split(' ').collect();
            if f.get(2) == Some(&pgid.as_str()) {
                ticks += f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
                ticks += f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        // USER_HZ is 100 on every Linux this runs on.
        ticks as f64 / 100.0
    }

    /// Peak resident set size (VmHWM) in KiB.
    pub(crate) fn peak_rss_kib(&self) -> Option<u64> {
        status_field(self.pid(), "VmHWM:")
    }

    pub(crate) fn rss_kib(&self) -> Option<u64> {
        status_field(self.pid(), "VmRSS:")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        signal_group(self.pid(), "CONT");
        signal_group(self.pid(), "TERM");
        let exited = eventually_blocking(Duration::from_secs(3), "the server exited", || {
            matches!(self.child.try_wait(), Ok(Some(_))).then_some(())
        });
        // The leader is gone (make sure its children are too), or is killed now.
        signal_group(self.pid(), "KILL");
        if exited.is_err() {
            let _ = self.child.wait();
        }
    }
}

/// Signals the process group led by `pid` (every server is started as a group leader).
fn signal_group(pid: u32, sig: &str) {
    let _ = Command::new("kill").arg(format!("-{sig}")).arg("--").arg(format!("-{pid}")).stderr(Stdio::null()).status();
}

/// This process's resident set size (VmRSS) in KiB.
pub(crate) fn own_rss_kib() -> Option<u64> {
    status_field(std::process::id(), "VmRSS:")
}

fn status_field(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = text.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A free port on 127.0.0.1 (for UDP and TCP both, as the DNS servers need).
pub(crate) fn free_port() -> Result<u16> {
    Ok(meridian_testkit::addr::free_port())
}

/// Waits until `ready` holds, checking `server` is alive in between.
pub(crate) fn wait_until(
    server: &mut Server,
    timeout: Duration,
    what: &str,
    mut ready: impl FnMut() -> bool,
) -> Result<Duration> {
    let start = Instant::now();
    // A server that exited ends the wait at once, with its error.
    let looked =
        eventually_blocking(
            timeout,
            what,
            || {
                if ready() { Some(Ok(())) } else { server.check_running().err().map(Err) }
            },
        );
    match looked {
        Ok(r) => r.map(|()| start.elapsed()),
        Err(_) => bail!("{} not ready after {timeout:?}: {what}; end of its log:\n{}", server.name, server.log_tail()),
    }
}

/// `GET path` over HTTP/1.1 on a fresh connection; the body, or `None` on any error.
pub(crate) fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    use std::io::Read;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(body.to_owned())
}

/// The value of an unlabelled Prometheus metric in `/metrics` text.
pub(crate) fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The `p` quantile (0..1) of sorted values.
pub(crate) fn quantile<T: Copy>(sorted: &[T], p: f64) -> Option<T> {
    let i = ((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len().saturating_sub(1));
    sorted.get(i).copied()
}

/// What a Meridian binary was built from: the workspace's commit for the workspace's
/// own `target/release/meridian`, else only its path (a `--baseline` build from
/// elsewhere, whose commit this run cannot know).
pub(crate) fn build_of(bin: &Path) -> String {
    let own = meridian_binary().ok().and_then(|p| p.canonicalize().ok());
    match (own, bin.canonicalize().ok()) {
        (Some(a), Some(b)) if a == b => machine_commit(),
        _ => format!("the build at {}", bin.display()),
    }
}

/// The workspace's git commit, marked when the tree has uncommitted changes.
pub(crate) fn machine_commit() -> String {
    let root = workspace_root().display().to_string();
    let commit = version_of("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    let dirty = Command::new("git")
        .args(["-C", &root, "status", "--porcelain", "--untracked-files=no"])
        .output()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    if dirty { format!("{commit} + uncommitted changes") } else { commit }
}

/// The machine and software a run was measured on.
pub(crate) fn machine() -> String {
    let cpu = version_of("sh", &["-c", "lscpu | sed -n 's/^Model name:[[:space:]]*//p'"]);
    // Every core of the machine, not this process's affinity (it pins itself).
    let cores = version_of("nproc", &["--all"]);
    let kernel = version_of("uname", &["-r"]);
    let dnsperf = version_line("dnsperf", &["-h"], "Version");
    format!("CPU: {cpu} ({cores} cores), kernel {kernel}; meridian {}; dnsperf {dnsperf}", machine_commit())
}

/// Prints a run's report and appends it to `bench/RESULTS.md` under a dated heading.
pub(crate) fn record(title: &str, command: &str, body: &str) -> Result<()> {
    let date = chrono::Local::now().format("%Y-%m-%d %H:%M %z");
    let mut text = String::new();
    let _ = writeln!(text, "\n## {title} — {date}\n");
    let _ = writeln!(text, "`{command}`  ");
    let _ = writeln!(text, "{}\n", machine());
    text.push_str(body);
    if !body.ends_with('\n') {
        text.push('\n');
    }
    print!("{text}");
    let path = results_file();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    f.write_all(text.as_bytes()).with_context(|| format!("cannot append to {}", path.display()))?;
    eprintln!("appended to {}", path.display());
    Ok(())
}

/// Simple `--name value` / `--flag` options.
pub(crate) struct Args(Vec<String>);

impl Args {
    pub(crate) fn new(args: &[String]) -> Self {
        Self(args.to_vec())
    }

    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        self.0.iter().position(|a| *a == flag).and_then(|i| self.0.get(i + 1)).map(String::as_str)
    }

    pub(crate) fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.value(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| anyhow::anyhow!("--{name} {v}: not a number")),
        }
    }

    pub(crate) fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|a| *a == format!("--{name}"))
    }

    pub(crate) fn list(&self, name: &str) -> Option<Vec<String>> {
        self.value(name).map(|v| v.split(',').map(str::to_owned).collect())
    }

    /// `--help`: prints `usage` and says so, for the caller to return.
    pub(crate) fn help(&self, usage: &str) -> bool {
        let asked = self.flag("help");
        if asked {
            println!("{usage}");
        }
        asked
    }

    /// Whether a contender is selected by `--only a,b` (all are without it).
    pub(crate) fn wanted(&self) -> impl Fn(&str) -> bool + use<> {
        let only = self.list("only");
        move |n: &str| only.as_ref().is_none_or(|o| o.iter().any(|x| x == n))
    }
}

/// `target/release/meridian`, checked to exist (the benches never build it themselves,
/// so the figures are of the binary the user built); `MERIDIAN_BENCH_BINARY` names
/// another, such as a wrapper that runs it under a heap profiler.
pub(crate) fn meridian_binary() -> Result<PathBuf> {
    let p = std::env::var_os("MERIDIAN_BENCH_BINARY")
        .map_or_else(|| workspace_root().join("target/release/meridian"), PathBuf::from);
    if !p.is_file() {
        bail!("{} is missing: run `cargo build --release` first", p.display());
    }
    Ok(p)
}
