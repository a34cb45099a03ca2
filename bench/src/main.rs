//! Meridian's benchmarks. Each prints a table of figures; none is a pass/fail test.
//! See `bench/README.md` for what each measures and the latest figures.
//!
//! - `table`: read throughput of the service table while a writer publishes changes.
//! - `dns`: DNS QPS and latency of Meridian, Knot, NSD and PowerDNS-LUA (dnsperf).
//! - `scale`: 100 clusters × 1,000 services: time to a complete table, peak RSS, and
//!   change → DNS propagation delay under 1,000 endpoint changes per second.
//! - `failover`: time from a backend dying until DNS stops returning it, and requests failed
//!   through the proxy while a backend dies.
//! - `proxy`: HTTP proxy requests/s and added p99 of Meridian, nginx and HAProxy (wrk, h2load).
//! - `fleet`: five instances judging health together: a backend's death → every
//!   instance's answers drop it; gossip bytes/s at steady state and under churn, with 3,000
//!   and 100,000 addresses.
//!
//! - `xfr`: Knot, NSD and BIND as TSIG secondaries under 1,000 endpoint changes/s: serial
//!   steps, IXFR size per step, change → all three answer it.
//!
//! The comparisons (`dns`, `scale`, `failover`, `proxy`, `fleet`, `xfr`) append their table to `bench/RESULTS.md`.

mod blast;
mod dns;
mod dnsclient;
mod dnsperf;
mod failover;
mod fleet;
mod harness;
mod proxy;
mod scale;
mod simhost;
mod simproc;
mod table;
mod xfr;

const USAGE: &str = "usage: meridian-bench <benchmark> [options]   (--help after a benchmark for its options)

benchmarks:
  table      table reads while a writer publishes changes
  dns        DNS throughput/latency: Meridian vs Knot, NSD, PowerDNS-LUA (dnsperf)
  scale      100 clusters x 1,000 services: time to complete table, RSS, propagation delay
  failover   backend dies: time until DNS stops returning it (active health checks)
  proxy      HTTP proxy throughput/latency: Meridian vs nginx, HAProxy (wrk, h2load)
  fleet      5 instances: backend dies -> all drop it; gossip bytes/s (3,000 and 100,000 addresses)
  xfr        Knot, NSD and BIND secondaries under 1,000 changes/s: IXFR size, change -> all answer it";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    match args.first().map(String::as_str) {
        Some("table") => table::run(rest),
        Some("dns") => dns::run(rest),
        Some("scale") => scale::run(rest),
        Some("failover") => failover::run(rest),
        Some("proxy") => proxy::run(rest),
        Some("fleet") => fleet::run(rest),
        Some("xfr") => xfr::run(rest),
        // The simulator process some benches start (`simproc`), not for direct use.
        Some("simhost") => simproc::serve(rest),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
