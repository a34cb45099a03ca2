//! Running dnsperf (pinned to the load core) and reading its figures.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::harness::{LOAD_CORE, quantile};

/// How dnsperf loads the server.
#[derive(Debug, Clone)]
pub(crate) struct Load {
    pub(crate) port: u16,
    pub(crate) queries: std::path::PathBuf,
    pub(crate) seconds: u32,
    /// `-Q`: queries per second; `None` is as fast as the server answers.
    pub(crate) rate: Option<f64>,
    /// `-v`: every answer's latency, for percentiles. Costs the client some speed, so
    /// throughput is taken from runs without it.
    pub(crate) per_query: bool,
    /// `-c`, `-T`, `-q`.
    pub(crate) clients: u32,
    pub(crate) threads: u32,
    pub(crate) outstanding: u32,
}

/// One run's figures.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Run {
    pub(crate) qps: f64,
    /// Mean latency in milliseconds (dnsperf's).
    pub(crate) mean_ms: f64,
    /// 99th percentile latency in milliseconds (from per-query latencies, when asked).
    pub(crate) p99_ms: Option<f64>,
    /// Share of queries lost (timed out), 0..1.
    pub(crate) lost: f64,
    /// Share of its core the server used during the run (0..1; filled in by the caller).
    pub(crate) server_busy: f64,
}

pub(crate) fn run(dnsperf: &Path, load: &Load) -> Result<Run> {
    let mut cmd = Command::new("taskset");
    cmd.arg("-c").arg(LOAD_CORE.to_string()).arg(dnsperf);
    cmd.args(["-s", "127.0.0.1", "-p", &load.port.to_string()]);
    cmd.arg("-d").arg(&load.queries);
    cmd.args(["-l", &load.seconds.to_string()]);
    cmd.args(["-c", &load.clients.to_string(), "-T", &load.threads.to_string(), "-q", &load.outstanding.to_string()]);
    if let Some(rate) = load.rate {
        cmd.args(["-Q", &format!("{}", rate.round() as u64)]);
    }
    if load.per_query {
        cmd.arg("-v");
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().context("cannot start dnsperf")?;
    let stdout = child.stdout.take().context("dnsperf stdout")?;
    let mut latencies_us: Vec<u32> = Vec::new();
    let mut summary = String::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.context("reading dnsperf output")?;
        if let Some(rest) = line.strip_prefix("> ") {
            // "> NOERROR name A 0.000123"; timeouts ("> T …") carry no latency.
            if let Some(secs) = rest.rsplit(' ').next().and_then(|s| s.parse::<f64>().ok()) {
                latencies_us.push((secs * 1e6) as u32);
            }
        } else {
            summary.push_str(&line);
            summary.push('\n');
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("dnsperf failed ({status}):\n{summary}");
    }
    let field = |name: &str| -> Option<f64> {
        summary.lines().find_map(|l| l.trim().strip_prefix(name)?.split_whitespace().next()?.parse().ok())
    };
    let qps = field("Queries per second:").with_context(|| format!("no QPS in dnsperf output:\n{summary}"))?;
    let mean = field("Average Latency (s):").unwrap_or(f64::NAN);
    let sent = field("Queries sent:").unwrap_or(0.0);
    let lost = field("Queries lost:").unwrap_or(0.0);
    latencies_us.sort_unstable();
    Ok(Run {
        qps,
        mean_ms: mean * 1e3,
        p99_ms: quantile(&latencies_us, 0.99).map(|us| f64::from(us) / 1e3),
        lost: if sent > 0.0 { lost / sent } else { 0.0 },
        server_busy: 0.0,
    })
}
