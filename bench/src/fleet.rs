//! A fleet of Meridian instances (`[fleet]`, quorum `majority`) on loopback, against
//! simulated clusters hosted in a process of their own (`simproc`; issue 17's bench).
//!
//! Measured, with 3 clusters × `--services` LoadBalancer services behind real listeners
//! (1 s TCP probes, threshold 2): the time from a backend's listener closing until every
//! instance's answer for its global name has dropped it (and until all return it once it
//! listens again); gossip bytes per instance at steady state and while backends flap.
//! Then the same gossip figures with `--addresses` addresses in all: the rest are
//! services in more clusters with nothing listening (each probe is refused, so each is a
//! Down ballot per instance, as much gossip state as an Up one), probed every
//! `--bulk-interval`; with the time the instances take to hold everyone's observations,
//! the deaths again at that size, their memory and the kernel's receive-buffer drops.
//!
//! `nodes`: the instances, their configuration and counters; `load`: deaths, flapping
//! and counter windows.

mod load;
mod nodes;
mod report;

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use self::load::{Death, Flapper, Rates, Victim};
use self::nodes::{Addrs, Layout, Node};
use crate::dnsclient::Client;
use crate::harness::{self, Args};
use crate::simhost;
use crate::simproc::{Range, SimProc};
use anyhow::{Context, Result, bail};

const USAGE: &str = "meridian-bench fleet [--instances 5] [--services 1000] [--deaths 5] [--seconds 10] \
                     [--flap 100] [--flap-rate 10] [--rest-interval 10] [--addresses 100000] [--bulk-interval 60] \
                     [--socket-buffer BYTES] [--no-record]";

/// Clusters probed every second, where the deaths and the flapping happen; as many
/// clusters again hold the rest of the services, probed every `--rest-interval`.
const FAST_CLUSTERS: usize = 3;
/// Services per cluster of the large variant's refused addresses: a LoadBalancer Service
/// takes a nodePort, and the simulator's range (30000–32767, Kubernetes' default) holds
/// 2,768 of them.
const BULK_PER_CLUSTER: usize = 2_500;
/// Instances started together on two cores take this long at most to list the clusters
/// and hear every peer's observations.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(600);
/// Before a window of churn is measured, the flapping runs this long, so the window sees
/// toggles in every stage (probed, published, gossiped, decided).
const CHURN_WARMUP: Duration = Duration::from_secs(4);
/// After convergence, before the steady-state window: the last observations of the
/// start still travel for a round or two.
const SETTLE: Duration = Duration::from_secs(5);

/// The command line.
struct Opts {
    instances: usize,
    services: usize,
    deaths: usize,
    window: Duration,
    flap: usize,
    flap_rate: f64,
    rest_interval: Duration,
    addresses: usize,
    bulk_interval: Duration,
    /// `[fleet] socket_buffer_bytes`; the fleet's default when absent.
    socket_buffer: Option<usize>,
}

impl Opts {
    fn parse(args: &Args) -> Result<Opts> {
        let o = Opts {
            instances: args.num("instances", 5)?,
            services: args.num("services", 1000)?,
            deaths: args.num("deaths", 5)?,
            window: Duration::from_secs(args.num("seconds", 10)?),
            flap: args.num("flap", 100)?,
            flap_rate: args.num("flap-rate", 10.0)?,
            rest_interval: Duration::from_secs(args.num("rest-interval", 10)?),
            addresses: args.num("addresses", 100_000)?,
            bulk_interval: Duration::from_secs(args.num("bulk-interval", 60)?),
            socket_buffer: args.value("socket-buffer").map(str::parse).transpose().context("--socket-buffer")?,
        };
        if o.instances < 2 {
            bail!("--instances {}: a fleet needs at least two", o.instances);
        }
        if o.deaths + o.flap > o.services {
            bail!("--deaths {} + --flap {} must not exceed --services {}", o.deaths, o.flap, o.services);
        }
        Ok(o)
    }

    /// Addresses with listeners: `--services` in each of three clusters.
    fn fast_addresses(&self) -> usize {
        FAST_CLUSTERS * self.services
    }

    /// Services per fast cluster: the victims and the flapping pool.
    fn live(&self) -> usize {
        self.deaths + self.flap
    }

    /// Clusters holding the rest of the `--services` (0 or 3).
    fn rest_clusters(&self) -> usize {
        if self.services > self.live() { FAST_CLUSTERS } else { 0 }
    }

    /// `[health.clusters]` overrides: the rest clusters probed every `--rest-interval`,
    /// and (from `bulk` on, up to `clusters`) the large variant's refused addresses, which
    /// are state, not under test: one refused probe makes their Down ballot, rather than
    /// a second one a whole interval later.
    fn overrides(&self, bulk: usize, clusters: usize) -> Vec<(usize, String)> {
        let rest = format!("interval = \"{}s\"\ntimeout = \"1s\"", self.rest_interval.as_secs().max(1));
        let refused = format!(
            "interval = \"{}s\"\ntimeout = \"1s\"\nunhealthy_threshold = 1",
            self.bulk_interval.as_secs().max(1)
        );
        let rest_clusters = FAST_CLUSTERS..FAST_CLUSTERS + self.rest_clusters();
        rest_clusters.map(|i| (i, rest.clone())).chain((bulk..clusters).map(|i| (i, refused.clone()))).collect()
    }
}

/// What the run with listeners only measured.
struct Small {
    converged: Duration,
    deaths: Vec<Death>,
    steady: Rates,
    churn: Churn,
    rss_mib: Vec<f64>,
}

/// A window of flapping backends.
struct Churn {
    rates: Rates,
    toggles_per_s: f64,
    errors: u64,
}

/// What the large variant measured.
struct Large {
    clusters: usize,
    converged: Duration,
    /// Per instance, gossip bytes sent and received from its start until convergence.
    catchup_sent: Vec<f64>,
    catchup_received: Vec<f64>,
    steady: Rates,
    churn: Churn,
    deaths: Vec<Death>,
    rss_mib: Vec<f64>,
    hwm_mib: Vec<f64>,
    /// UDP datagrams the kernel dropped for full receive buffers (`RcvbufErrors`, the
    /// whole machine) from the instances' start until convergence.
    rcvbuf_errors: u64,
    /// Per instance, its gossip socket's receive buffer as the kernel reports it.
    receive_buffer: Vec<f64>,
}

pub(crate) fn run(raw: &[String]) -> Result<()> {
    let args = Args::new(raw);
    if args.help(USAGE) {
        return Ok(());
    }
    let opts = Opts::parse(&args)?;
    let bin = harness::meridian_binary()?;
    let load_before = loadavg();
    let tmp = tempfile::Builder::new().prefix("meridian-bench-fleet").tempdir()?;
    let dir = tmp.path();
    let key = dir.join("fleet.key");
    nodes::write_key(&key)?;
    let sims = Arc::new(SimProc::start(FAST_CLUSTERS + opts.rest_clusters(), dir)?);
    let live = seed_small(&opts, &sims)?;
    let small = small_run(&opts, &bin, &sims, &live, &key, dir)?;
    // A large variant that fails is reported with the rest, not instead of it.
    let (large, failed) = if opts.addresses > opts.fast_addresses() {
        match large_run(&opts, &bin, &sims, &live, &key, dir) {
            Ok(l) => (Some(l), None),
            Err(e) => {
                eprintln!("the large variant failed: {e:#}");
                (None, format!("{e:#}").lines().next().map(str::to_owned))
            }
        }
    } else {
        (None, None)
    };
    let load = format!("{load_before} → {}", loadavg());
    let t = report::write(&opts, &small, large.as_ref(), failed.as_deref(), &load);
    if args.flag("no-record") {
        print!("{t}");
    } else {
        let command = format!("cargo run --release -p meridian-bench -- fleet {}", raw.join(" "));
        harness::record("Fleet (failover across instances, gossip)", command.trim(), &t)?;
    }
    Ok(())
}

/// Starts the instances of `layout`; waits until each holds every instance's
/// observations of all `addresses`. The time that took.
fn start_fleet(bin: &Path, layout: &Layout<'_>, dir: &Path, addresses: usize) -> Result<(Vec<Node>, Duration)> {
    let t0 = Instant::now();
    let mut fleet = Vec::new();
    for i in 0..layout.addrs.len() {
        fleet.push(Node::start(bin, layout, i, &dir.join(nodes::node_id(i)))?);
    }
    let n = fleet.len();
    let mut last = String::new();
    while t0.elapsed() < CONVERGE_TIMEOUT {
        for node in &mut fleet {
            node.server.check_running()?;
        }
        match fleet.iter().map(|f| f.converged(n, addresses)).find_map(Result::err) {
            None => return Ok((fleet, t0.elapsed())),
            Some(why) => last = why,
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let logs: Vec<String> = fleet.iter().map(|f| format!("{}:\n{}", f.id, f.server.log_tail())).collect();
    bail!("the fleet did not converge within {CONVERGE_TIMEOUT:?} ({last}); ends of the logs:\n{}", logs.join("\n"))
}

/// Seeds the fast clusters with the victims and the flapping pool, the rest clusters
/// with the other services; the fast clusters' addresses, by cluster and service.
fn seed_small(opts: &Opts, sims: &SimProc) -> Result<Vec<Vec<Ipv4Addr>>> {
    let (live, rest) = (opts.live(), opts.services - opts.live());
    eprintln!(
        "seeding {FAST_CLUSTERS} clusters × {live} services probed every 1 s, {} × {rest} more",
        opts.rest_clusters()
    );
    let fast = (0..FAST_CLUSTERS).map(|cluster| Range { cluster, first: 0, count: live, listening: true });
    let others =
        (FAST_CLUSTERS..sims.clusters()).map(|cluster| Range { cluster, first: live, count: rest, listening: true });
    let mut addrs = sims.seed(&fast.chain(others).collect::<Vec<_>>())?;
    addrs.truncate(FAST_CLUSTERS);
    Ok(addrs)
}

fn pick_addrs(n: usize) -> Result<Vec<Addrs>> {
    (0..n).map(|_| Addrs::pick()).collect()
}

/// The flapping pool: the services after the victims, spread over the fast clusters.
fn flap_pool(opts: &Opts) -> Vec<(usize, String)> {
    (opts.deaths..opts.deaths + opts.flap).map(|i| (i % FAST_CLUSTERS, simhost::service_name(i))).collect()
}

/// Flaps the pool and measures the counters once the churn has warmed up.
fn churn_window(opts: &Opts, fleet: &[Node], sims: &Arc<SimProc>) -> Result<Churn> {
    let flapper = Flapper::start(sims.clone(), flap_pool(opts), opts.flap_rate);
    std::thread::sleep(CHURN_WARMUP);
    let before = flapper.toggles();
    let t0 = Instant::now();
    let rates = load::measure(fleet, opts.window)?;
    let toggles_per_s = (flapper.toggles() - before) as f64 / t0.elapsed().as_secs_f64();
    let errors = flapper.errors();
    drop(flapper);
    Ok(Churn { rates, toggles_per_s, errors })
}

fn small_run(
    opts: &Opts,
    bin: &Path,
    sims: &Arc<SimProc>,
    live: &[Vec<Ipv4Addr>],
    key: &Path,
    dir: &Path,
) -> Result<Small> {
    let addrs = pick_addrs(opts.instances)?;
    let overrides = opts.overrides(sims.clusters(), sims.clusters());
    let layout = Layout {
        kubeconfig: sims.kubeconfig(),
        clusters: sims.clusters(),
        overrides: &overrides,
        key_file: key,
        addrs: &addrs,
        socket_buffer: opts.socket_buffer,
    };
    eprintln!("starting {} instances", opts.instances);
    let (fleet, converged) = start_fleet(bin, &layout, &dir.join("small"), opts.fast_addresses())?;
    eprintln!("converged after {converged:.1?}; steady state for {:?}", opts.window);
    std::thread::sleep(SETTLE);
    let steady = load::measure(&fleet, opts.window)?;
    let deaths = run_deaths(opts, &fleet, sims, live)?;
    eprintln!("churn: {} backends flapping, {} toggles/s", opts.flap, opts.flap_rate);
    let churn = churn_window(opts, &fleet, sims)?;
    let rss_mib = fleet.iter().map(|f| f.server.rss_kib().unwrap_or(0) as f64 / 1024.0).collect();
    Ok(Small { converged, deaths, steady, churn, rss_mib })
}

/// Kills and revives `--deaths` victims one after the other, timing each on every
/// instance's answers.
fn run_deaths(opts: &Opts, fleet: &[Node], sims: &SimProc, live: &[Vec<Ipv4Addr>]) -> Result<Vec<Death>> {
    let mut clients: Vec<Client> =
        fleet.iter().map(|f| Client::new(f.addrs.dns, Duration::from_millis(200))).collect::<Result<_, _>>()?;
    let mut deaths = Vec::new();
    for k in 0..opts.deaths {
        let ci = k % FAST_CLUSTERS;
        let addr = *live[ci].get(k).context("a seeded service per death")?;
        let victim = Victim { sims, cluster: ci, service: simhost::service_name(k), addr };
        let d = load::kill_and_revive(&mut clients, &victim)?;
        eprintln!(
            "death {}/{}: {} in c{ci}: every instance dropped it after {:.2?}, the first after {:.2?}; back after {:.2?}",
            k + 1,
            opts.deaths,
            victim.addr,
            d.all_dropped(),
            d.first_dropped(),
            d.all_back()
        );
        deaths.push(d);
        std::thread::sleep(Duration::from_secs(2));
    }
    Ok(deaths)
}

/// How many refused addresses each added cluster gets.
fn bulk_counts(bulk: usize) -> Vec<usize> {
    let clusters = bulk.div_ceil(BULK_PER_CLUSTER);
    (0..clusters).map(|i| bulk / clusters + usize::from(i < bulk % clusters)).collect()
}

fn large_run(
    opts: &Opts,
    bin: &Path,
    sims: &Arc<SimProc>,
    live: &[Vec<Ipv4Addr>],
    key: &Path,
    dir: &Path,
) -> Result<Large> {
    let counts = bulk_counts(opts.addresses - opts.fast_addresses());
    eprintln!("adding {} clusters with {} services and nothing listening", counts.len(), counts.iter().sum::<usize>());
    let seed_start = Instant::now();
    let first_bulk = sims.clusters();
    sims.add(counts.len())?;
    let bulk: Vec<Range> = counts
        .iter()
        .enumerate()
        .map(|(i, &count)| Range { cluster: first_bulk + i, first: 0, count, listening: false })
        .collect();
    sims.seed(&bulk)?;
    eprintln!("seeded in {:.1?}; starting {} instances", seed_start.elapsed(), opts.instances);
    let addrs = pick_addrs(opts.instances)?;
    let overrides = opts.overrides(first_bulk, sims.clusters());
    let layout = Layout {
        kubeconfig: sims.kubeconfig(),
        clusters: sims.clusters(),
        overrides: &overrides,
        key_file: key,
        addrs: &addrs,
        socket_buffer: opts.socket_buffer,
    };
    let drops_before = load::rcvbuf_errors();
    let (fleet, converged) = start_fleet(bin, &layout, &dir.join("large"), opts.addresses)?;
    let rcvbuf_errors = load::rcvbuf_errors().saturating_sub(drops_before);
    let at = load::counters(&fleet)?;
    eprintln!("converged after {converged:.1?}; steady state for {:?}", opts.window);
    std::thread::sleep(SETTLE);
    let steady = load::measure(&fleet, opts.window)?;
    let churn = churn_window(opts, &fleet, sims)?;
    let deaths = run_deaths(opts, &fleet, sims, live)?;
    let receive_buffer = fleet
        .iter()
        .map(|f| f.fleet_status().and_then(|s| s["transport"]["receive_buffer_bytes"].as_f64()).unwrap_or(0.0))
        .collect();
    let mib = |k: Option<u64>| k.unwrap_or(0) as f64 / 1024.0;
    Ok(Large {
        clusters: sims.clusters() - first_bulk,
        converged,
        catchup_sent: at.iter().map(|c| c.sent).collect(),
        catchup_received: at.iter().map(|c| c.received).collect(),
        steady,
        churn,
        deaths,
        rss_mib: fleet.iter().map(|f| mib(f.server.rss_kib())).collect(),
        hwm_mib: fleet.iter().map(|f| mib(f.server.peak_rss_kib())).collect(),
        rcvbuf_errors,
        receive_buffer,
    })
}

/// The 1-minute load average, for the report's notes.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
