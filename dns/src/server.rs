//! The listeners: UDP workers and RFC 7766 TCP connections (`tcp`) around [`answer`], and the task
//! that keeps the index in step with the table.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, ArcSwapOption};
use meridian_config::Config;
use meridian_model::geo::DbStatus;
use meridian_model::rank::Problem;
use meridian_model::table::Table;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

use crate::answer::{Client, Transport, answer};
use crate::error::{Error, Result};
use crate::index::{Builder, Index, Settings, Source};
use crate::metrics::{LocalStats, Metrics};
use crate::rrl::{self, Rrl};
use crate::{name, tcp};

/// How long shutdown waits for workers before leaving them to the runtime.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Port 0: how many ephemeral UDP ports to try before giving up on a matching TCP port.
const EPHEMERAL_ATTEMPTS: usize = 16;

/// One name being served, for `meridian status` and the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServedName {
    /// Fully qualified, lower case, with the trailing dot.
    pub name: String,
    pub zone: String,
    /// `zone-file`, `service`, `ingress`, `clusterset`, `ingress-host` or `custom`.
    pub kind: &'static str,
    /// `namespace/name` of the object behind the name, if any.
    pub object: Option<String>,
    /// Short summary of the answer, e.g. `2 A, 1 AAAA` or `CNAME x.example.`.
    pub answer: String,
}

/// State shared by every worker.
pub(crate) struct Shared {
    pub(crate) index: ArcSwap<Index>,
    /// The index's only writer (table updates and reloads).
    builder: Mutex<Builder>,
    table: Table,
    pub(crate) metrics: Metrics,
    pub(crate) tcp_timeouts: tcp::Timeouts,
    /// UDP response-rate limiting, when enabled; replaced on reload.
    pub(crate) rrl: ArcSwapOption<Rrl>,
    rrl_counters: Arc<rrl::Counters>,
}

impl Shared {
    fn set_rrl(&self, config: &Config) {
        let current = self.rrl.load();
        let same = match (&*current, config.dns.rrl.enabled) {
            (None, false) => true,
            (Some(r), true) => r.settings() == &config.dns.rrl,
            _ => false,
        };
        if !same {
            self.rrl.store(Rrl::new(&config.dns.rrl, self.rrl_counters.clone()).map(Arc::new));
        }
    }
}

impl Shared {
    fn publish(&self, builder: &Builder) {
        self.index.store(Arc::new(builder.index()));
        self.metrics.set_ranking(builder.problem_count(), builder.geo_status().is_loaded());
    }
}

/// The authoritative DNS server.
pub struct DnsServer {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The UDP fast path's threads (sockets with `SO_REUSEPORT`); stopped when dropped.
    #[cfg(target_os = "linux")]
    udp_threads: crate::udp_batch::Workers,
}

/// Sockets for [`DnsServer::run`]: each UDP socket with the TCP listener on the same address.
pub struct Sockets {
    pub udp: Vec<UdpSocket>,
    pub tcp: Vec<TcpListener>,
}

impl Sockets {
    /// Binds UDP and TCP on every address. Port 0 gets one ephemeral port for both.
    ///
    /// TCP is bound first: UDP sockets get `SO_REUSEPORT` (for the fast path's socket per
    /// core), which would let a second server join the first one's port; the TCP listener,
    /// bound without it, makes that second server fail instead.
    pub async fn bind(addrs: &[SocketAddr]) -> Result<Sockets> {
        let mut s = Sockets { udp: Vec::new(), tcp: Vec::new() };
        for &addr in addrs {
            let mut attempt = 0;
            let (udp, tcp) = loop {
                let tcp = TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, proto: "tcp", source })?;
                let bound = tcp.local_addr().map_err(|source| Error::Bind { addr, proto: "tcp", source })?;
                match bind_udp(bound) {
                    Ok(udp) => break (udp, tcp),
                    // The ephemeral port the kernel gave TCP may be taken for UDP: try another.
                    Err(e) if addr.port() == 0 && attempt < EPHEMERAL_ATTEMPTS => {
                        tracing::debug!(error = %e, %bound, "dns: ephemeral port taken for udp, retrying");
                        attempt += 1;
                    }
                    Err(source) => return Err(Error::Bind { addr: bound, proto: "udp", source }),
                }
            };
            s.udp.push(udp);
            s.tcp.push(tcp);
        }
        Ok(s)
    }
}

/// A UDP socket for [`Sockets`]: with `SO_REUSEPORT` where the fast path can use it,
/// else a plain one (served by the tokio loop).
fn bind_udp(addr: SocketAddr) -> std::io::Result<UdpSocket> {
    #[cfg(target_os = "linux")]
    match crate::udp_batch::bind_reuseport(addr) {
        Ok(s) => {
            s.set_nonblocking(true)?;
            return UdpSocket::from_std(s);
        }
        // A plain bind reports the same failure if it is not about the option.
        Err(e) => tracing::debug!(error = %e, %addr, "dns: no SO_REUSEPORT socket; tokio udp loop"),
    }
    let s = std::net::UdpSocket::bind(addr)?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s)
}

impl DnsServer {
    /// Binds every configured listener (UDP and TCP each) and starts serving.
    pub async fn start(config: &Config, table: Table, registry: &mut Registry) -> Result<DnsServer> {
        let sockets = Sockets::bind(&config.dns.listen).await?;
        let metrics = Metrics::register(registry);
        Self::run(config, table, sockets, metrics)
    }

    /// Serves on already bound sockets (tests bind `127.0.0.1:0`).
    pub fn run_with(config: &Config, table: Table, sockets: Sockets, registry: &mut Registry) -> Result<DnsServer> {
        let metrics = Metrics::register(registry);
        Self::run(config, table, sockets, metrics)
    }

    fn run(config: &Config, table: Table, sockets: Sockets, metrics: Metrics) -> Result<DnsServer> {
        // Subscribe before the first build so no change falls between the two.
        let changes = table.changes();
        let mut builder = Builder::new(config)?;
        builder.rebuild(&table.snapshot());
        metrics.set_ranking(builder.problem_count(), builder.geo_status().is_loaded());
        let shared = Arc::new(Shared {
            index: ArcSwap::from_pointee(builder.index()),
            builder: Mutex::new(builder),
            table,
            metrics,
            tcp_timeouts: tcp::Timeouts::default(),
            rrl: ArcSwapOption::empty(),
            rrl_counters: Arc::default(),
        });
        shared.tcp_timeouts.set(&config.dns);
        shared.set_rrl(config);
        shared.metrics.set_rrl_counters(shared.rrl_counters.clone());
        let (shutdown, _) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut addrs = Vec::new();
        // The cores in the process's affinity mask (`taskset`, cgroup quota).
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, 8);
        #[cfg(target_os = "linux")]
        let mut udp_threads = crate::udp_batch::Workers::default();
        for udp in sockets.udp {
            let local = udp.local_addr();
            if let Ok(a) = local {
                addrs.push(a);
            }
            #[cfg(target_os = "linux")]
            if crate::udp_batch::has_reuseport(&udp) {
                let addr = local.unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let bind_err = |source| Error::Bind { addr, proto: "udp", source };
                let std = udp.into_std().map_err(bind_err)?;
                udp_threads.spawn(std, workers, config.dns.udp_nice, &shared).map_err(bind_err)?;
                tracing::debug!(%addr, workers, "dns: udp fast path (recvmmsg/sendmmsg)");
                continue;
            }
            let udp = Arc::new(udp);
            for _ in 0..workers {
                tasks.push(tokio::spawn(udp_worker(udp.clone(), shared.clone(), shutdown.subscribe())));
            }
        }
        let slots = Arc::new(tcp::Slots::new(config.dns.tcp_max_connections, config.dns.tcp_max_per_client));
        shared.metrics.set_tcp_slots(slots.clone());
        for tcp in sockets.tcp {
            tasks.push(tokio::spawn(tcp::acceptor(tcp, slots.clone(), shared.clone(), shutdown.subscribe())));
        }
        tasks.push(tokio::spawn(follow_table(changes, shared.clone(), shutdown.subscribe())));
        tracing::info!(listen = ?addrs, "dns: serving");
        Ok(DnsServer {
            shared,
            addrs,
            shutdown,
            tasks,
            #[cfg(target_os = "linux")]
            udp_threads,
        })
    }

    /// Applies a new configuration (zones, TTLs, names, zone files). A zone whose file has
    /// errors keeps serving its previous content; the error names file, line and reason.
    /// Listen addresses and the TCP connection limit take effect at the next start.
    pub fn reload(&self, config: &Config) -> Result<()> {
        let mut b = self.shared.builder.lock().unwrap_or_else(|e| e.into_inner());
        let result = b.set_config(config, &self.shared.table.snapshot());
        self.shared.publish(&b);
        self.shared.tcp_timeouts.set(&config.dns);
        self.shared.set_rrl(config);
        if let Err(e) = &result {
            tracing::warn!(error = %e, "dns: reload kept the previous content of a zone");
        }
        result
    }

    /// Builds every zone `config` serves from its master file, exactly as [`start`] and
    /// [`reload`] do, without binding or serving anything: what `meridian check` reports.
    /// Returns how many zones were built; an error names the file and line, or the zone,
    /// and the reason.
    ///
    /// [`start`]: DnsServer::start
    /// [`reload`]: DnsServer::reload
    pub fn check_zones(config: &Config) -> Result<usize> {
        crate::index::check_zones(config)
    }

    /// Zone master files to watch for reloads.
    pub fn watched_files(config: &Config) -> Vec<PathBuf> {
        Settings::from_config(config).zones.into_iter().filter_map(|z| z.file).collect()
    }

    /// Every name being served, sorted.
    pub fn names(&self) -> Vec<ServedName> {
        let index = self.shared.index.load();
        let mut out: Vec<ServedName> = index
            .all_names()
            .into_iter()
            .map(|(key, node, zone)| {
                let (kind, object) = match &node.source {
                    Source::ZoneFile => ("zone-file", None),
                    Source::Service(k) => ("service", Some(k.to_string())),
                    Source::Ingress(k) => ("ingress", Some(k.to_string())),
                    Source::ClusterSet(k) => ("clusterset", Some(k.to_string())),
                    Source::IngressHost(k) => ("ingress-host", Some(k.to_string())),
                    Source::Custom(k) => ("custom", Some(k.to_string())),
                };
                let mut parts = Vec::new();
                if let Some(c) = &node.cname {
                    parts.push(format!("CNAME {}", name::text(&c.target)));
                }
                if let Some(a) = &node.addrs {
                    parts.push(format!("{} A, {} AAAA", a.a.len(), a.aaaa.len()));
                }
                for set in &node.rrsets {
                    parts.push(format!("{} {}", set.rdata.len(), hickory_proto::rr::RecordType::from(set.rtype)));
                }
                ServedName { name: name::text(key), zone: zone.to_owned(), kind, object, answer: parts.join(", ") }
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Malformed ranking annotations (`meridian.io/policy`, `weight`, `failover`,
    /// `max-answers`) in the current table, for `meridian status`; each has its default
    /// applied.
    pub fn ranking_problems(&self) -> Vec<Problem> {
        self.shared.builder.lock().unwrap_or_else(|e| e.into_inner()).problems()
    }

    /// Whether a GeoIP database locates clients, and which.
    pub fn geo_status(&self) -> DbStatus {
        self.shared.builder.lock().unwrap_or_else(|e| e.into_inner()).geo_status()
    }

    /// The bound addresses (UDP and TCP share each).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Stops every listener and waits (briefly) for the workers.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        #[cfg(target_os = "linux")]
        self.udp_threads.shutdown(SHUTDOWN_GRACE).await;
        for t in self.tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, t).await.is_err() {
                tracing::warn!("dns: a worker did not stop in time");
            }
        }
    }
}

/// Keeps the index in step with the table: incremental for listed keys, a rebuild when the
/// change says everything or this subscriber lagged.
async fn follow_table(
    mut changes: broadcast::Receiver<Arc<meridian_model::table::Change>>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let first = tokio::select! {
            _ = shutdown.changed() => return,
            r = changes.recv() => r,
        };
        let mut batch = Vec::new();
        let mut lagged = false;
        match first {
            Ok(c) => batch.push(c),
            Err(broadcast::error::RecvError::Lagged(_)) => lagged = true,
            Err(broadcast::error::RecvError::Closed) => return,
        }
        loop {
            match changes.try_recv() {
                Ok(c) => batch.push(c),
                Err(broadcast::error::TryRecvError::Lagged(_)) => lagged = true,
                Err(_) => break,
            }
        }
        let snap = shared.table.snapshot();
        let mut b = shared.builder.lock().unwrap_or_else(|e| e.into_inner());
        if lagged || batch.iter().any(|c| c.everything) {
            b.rebuild(&snap);
        } else {
            let mut all = meridian_model::table::Change::default();
            for c in &batch {
                all.services.extend(c.services.iter().cloned());
                all.ingresses.extend(c.ingresses.iter().cloned());
            }
            all.services.sort();
            all.services.dedup();
            all.ingresses.sort();
            all.ingresses.dedup();
            b.apply(&snap, &all);
        }
        shared.publish(&b);
    }
}

async fn udp_worker(sock: Arc<UdpSocket>, shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut buf = vec![0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    let mut stats = LocalStats::default();
    loop {
        let first = tokio::select! {
            _ = shutdown.changed() => break,
            r = sock.recv_from(&mut buf) => r,
        };
        let mut next = first;
        // Drain what is queued before flushing counters: one merge per burst.
        loop {
            match next {
                Ok((n, peer)) => {
                    let t0 = Instant::now();
                    let client = Client { transport: Transport::Udp, addr: Some(peer) };
                    let outcome = {
                        let index = shared.index.load();
                        answer(&index, buf.get(..n).unwrap_or_default(), &client, &mut out)
                    };
                    stats.record(&outcome, t0.elapsed());
                    if outcome.respond && rrl::allows(&shared.rrl.load(), peer.ip(), &outcome, &mut out) {
                        let _ = sock.send_to(&out, peer).await;
                    }
                }
                // ICMP errors from earlier sends surface here on some systems; not fatal.
                Err(e) => tracing::debug!(error = %e, "dns: udp receive"),
            }
            next = match sock.try_recv_from(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                r => r,
            };
        }
        stats.flush(&shared.metrics);
    }
    stats.flush(&shared.metrics);
}
