//! The simulated clusters in a process of their own (`meridian-bench simhost`), driven
//! over its stdin and stdout, one JSON line per request and per reply.
//!
//! For benches that start several Meridian instances: hosted in the bench process, the
//! simulator shares the bench's runtime and descriptor limit with its listeners, and a
//! starved runtime leaves probe connections in CLOSE-WAIT until the limit is reached and
//! `/readyz` misses its deadline. Here it has its own runtime, a raised `RLIMIT_NOFILE`
//! and a higher scheduling priority, as API servers on their own machines would.

use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::simhost::{self, Sims};

/// What the child is asked to raise its descriptor limit to (the kernel's usual
/// `fs.nr_open`); it settles for its hard limit where it may not.
const NOFILE: u64 = 1 << 20;
/// The child's niceness: below the instances', so the API servers they list answer.
const NICENESS: &str = "-5";
/// How long a request to the child may take: seeding 100,000 services took 12–16 s.
const SEED_DEADLINE: Duration = Duration::from_secs(300);
const REPLY_DEADLINE: Duration = Duration::from_secs(30);

/// Seeding `first..first + count` in cluster `cluster`, with or without listeners.
#[derive(Clone, Copy)]
pub(crate) struct Range {
    pub(crate) cluster: usize,
    pub(crate) first: usize,
    pub(crate) count: usize,
    pub(crate) listening: bool,
}

/// The simulator process and the kubeconfig naming its clusters.
pub(crate) struct SimProc {
    child: Child,
    io: Mutex<(ChildStdin, BufReader<ChildStdout>)>,
    kubeconfig: PathBuf,
    clusters: Mutex<usize>,
}

impl SimProc {
    /// Starts the process with `n` clusters (with HTTP backends behind their load-balancer
    /// addresses), writing the kubeconfig into `dir`.
    pub(crate) fn start(n: usize, dir: &Path) -> Result<SimProc> {
        let exe = std::env::current_exe().context("the bench's own path")?;
        let mut child = Command::new("nice")
            .args(["-n", NICENESS])
            .arg(&exe)
            .arg("simhost")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {} simhost", exe.display()))?;
        let (stdin, stdout) = (child.stdin.take(), child.stdout.take());
        let (Some(stdin), Some(stdout)) = (stdin, stdout) else { bail!("the simulator process has no pipes") };
        let p = SimProc {
            child,
            io: Mutex::new((stdin, BufReader::new(stdout))),
            kubeconfig: dir.join("kubeconfig"),
            clusters: Mutex::new(0),
        };
        p.add(n)?;
        Ok(p)
    }

    pub(crate) fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub(crate) fn clusters(&self) -> usize {
        *self.clusters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `n` clusters after the existing ones and rewrites the kubeconfig.
    pub(crate) fn add(&self, n: usize) -> Result<()> {
        let reply = self.call(&json!({"op": "add", "n": n}))?;
        let total = reply.as_u64().context("the simulator did not say how many clusters it has")?;
        *self.clusters.lock().unwrap_or_else(|e| e.into_inner()) = total as usize;
        Ok(())
    }

    /// Seeds every range (in parallel in the child); their addresses, range by range.
    pub(crate) fn seed(&self, ranges: &[Range]) -> Result<Vec<Vec<Ipv4Addr>>> {
        let ranges: Vec<Value> = ranges.iter().map(|r| json!([r.cluster, r.first, r.count, r.listening])).collect();
        let reply = self.call(&json!({"op": "seed", "ranges": ranges}))?;
        serde_json::from_value(reply).context("the simulator's seeded addresses")
    }

    /// Brings the listener behind one service's load-balancer address down or up.
    pub(crate) fn set_backend(&self, cluster: usize, service: &str, up: bool) -> Result<()> {
        self.call(&json!({"op": "backend", "cluster": cluster, "service": service, "up": up})).map(drop)
    }

    fn call(&self, req: &Value) -> Result<Value> {
        let mut io = self.io.lock().unwrap_or_else(|e| e.into_inner());
        let (stdin, stdout) = &mut *io;
        writeln!(stdin, "{req}").and_then(|()| stdin.flush()).context("the simulator process is gone")?;
        let deadline = if req["op"] == "seed" { SEED_DEADLINE } else { REPLY_DEADLINE };
        wait_readable(stdout, deadline).with_context(|| format!("the simulator did not answer {req}"))?;
        let mut line = String::new();
        if stdout.read_line(&mut line).context("reading the simulator's reply")? == 0 {
            bail!("the simulator process exited (asked {req})");
        }
        let mut reply: Value =
            serde_json::from_str(&line).with_context(|| format!("the simulator replied {line:?}"))?;
        match reply.get("error").and_then(Value::as_str) {
            Some(e) => bail!("the simulator: {e}"),
            None => Ok(reply["ok"].take()),
        }
    }
}

/// Waits until the reply has begun to arrive (one request is in flight at a time, so
/// nothing of an earlier reply is buffered), or fails after `deadline`.
fn wait_readable(stdout: &BufReader<ChildStdout>, deadline: Duration) -> Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    if !stdout.buffer().is_empty() {
        return Ok(());
    }
    let timeout = PollTimeout::try_from(deadline).unwrap_or(PollTimeout::MAX);
    let mut fds = [PollFd::new(stdout.get_ref().as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, timeout).context("waiting for the simulator")? {
        0 => bail!("no reply within {deadline:?}"),
        _ => Ok(()),
    }
}

impl Drop for SimProc {
    /// Closes the child's stdin (its signal to shut down), waits a little, then kills it.
    fn drop(&mut self) {
        let (stdin, _) = &mut *self.io.lock().unwrap_or_else(|e| e.into_inner());
        let _ = writeln!(stdin, "{}", json!({"op": "shutdown"}));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The child: `meridian-bench simhost DIR`. Serves requests from stdin until it closes or
/// asks for a shutdown.
pub(crate) fn serve(raw: &[String]) -> Result<()> {
    let dir = PathBuf::from(raw.first().context("usage: meridian-bench simhost DIR")?);
    raise_nofile();
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let mut sims = rt.block_on(Sims::start(0, true, &dir))?;
    let mut out = std::io::stdout().lock();
    for line in std::io::stdin().lock().lines() {
        let req: Value = serde_json::from_str(&line?).context("a request to the simulator")?;
        if req["op"] == "shutdown" {
            break;
        }
        let reply = match handle(&rt, &mut sims, &req) {
            Ok(v) => json!({ "ok": v }),
            Err(e) => json!({ "error": format!("{e:#}") }),
        };
        writeln!(out, "{reply}")?;
        out.flush()?;
    }
    rt.block_on(sims.shutdown());
    Ok(())
}

fn handle(rt: &tokio::runtime::Runtime, sims: &mut Sims, req: &Value) -> Result<Value> {
    let cluster = |sims: &Sims| {
        let i = req["cluster"].as_u64().context("no cluster")? as usize;
        sims.clusters.get(i).cloned().with_context(|| format!("no cluster {i}"))
    };
    match req["op"].as_str() {
        Some("add") => {
            rt.block_on(sims.add(req["n"].as_u64().context("no n")? as usize))?;
            Ok(json!(sims.clusters.len()))
        }
        Some("seed") => {
            let ranges: Vec<(usize, usize, usize, bool)> = serde_json::from_value(req["ranges"].clone())?;
            Ok(json!(seed_parallel(sims, &ranges)?))
        }
        Some("backend") => {
            let svc = req["service"].as_str().context("no service")?;
            cluster(sims)?.set_backend(simhost::NAMESPACE, svc, req["up"].as_bool().unwrap_or(true))?;
            Ok(Value::Null)
        }
        other => bail!("unknown request {other:?}"),
    }
}

/// Seeds each range on a thread of its own.
fn seed_parallel(sims: &Sims, ranges: &[(usize, usize, usize, bool)]) -> Result<Vec<Vec<Ipv4Addr>>> {
    std::thread::scope(|s| {
        let jobs: Vec<_> = ranges
            .iter()
            .map(|&(c, first, count, listening)| {
                let cluster = sims.clusters.get(c).with_context(|| format!("no cluster {c}"));
                s.spawn(move || simhost::seed_range(cluster?, first, count, listening))
            })
            .collect();
        jobs.into_iter().map(|h| h.join().map_err(|_| anyhow::anyhow!("a seeding thread panicked"))?).collect()
    })
}

/// Raises the soft and hard descriptor limits as far as this process may.
fn raise_nofile() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    if setrlimit(Resource::RLIMIT_NOFILE, NOFILE.max(hard), NOFILE.max(hard)).is_err() {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.max(soft), hard);
    }
    if let Ok((soft, _)) = getrlimit(Resource::RLIMIT_NOFILE) {
        eprintln!("simulator process: RLIMIT_NOFILE {soft}");
    }
}
