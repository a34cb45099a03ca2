//! [`DnsServer`]: the listeners (UDP workers, RFC 7766 TCP connections in `tcp`) around
//! `answer`, the task that keeps the index in step with the table, and reloads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use meridian_config::Config;
use meridian_model::follow::{Follower, Projection};
use meridian_model::geo::DbStatus;
use meridian_model::rank::Problem;
use meridian_model::table::Table;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::builder::Builder;
use crate::error::Result;
use crate::index::Index;
use crate::metrics::Metrics;
use crate::record::Node;
use crate::settings::Settings;
use crate::shared::{IndexFeed, Shared};
use crate::tcp_limits::Slots;
use crate::{name, tcp, udp, zone_set};

pub use crate::sockets::Sockets;

/// How long shutdown waits for workers before leaving them to the runtime.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Most UDP workers per socket: one per core of the process's affinity mask, up to this.
const MAX_UDP_WORKERS: usize = 8;

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

/// The authoritative DNS server.
pub struct DnsServer {
    shared: Arc<Shared>,
    /// Read on reloads, which rebuild every name.
    table: Table,
    addrs: Vec<SocketAddr>,
    /// Cancelled to stop every listener and the table follower: by [`DnsServer::shutdown`],
    /// by the caller's token it is a child of, or when the server is dropped.
    shutdown: CancellationToken,
    _stop_on_drop: DropGuard,
    tasks: Vec<JoinHandle<()>>,
    /// The tasks and threads, handed to the first [`DnsServer::stopped`] once serving.
    stopping: std::sync::Mutex<Option<Stopping>>,
    /// The UDP fast path's threads (sockets with `SO_REUSEPORT`); stopped when dropped.
    #[cfg(target_os = "linux")]
    udp_threads: crate::udp_batch::Workers,
}

/// What shutdown waits for.
struct Stopping {
    tasks: Vec<JoinHandle<()>>,
    #[cfg(target_os = "linux")]
    udp_threads: crate::udp_batch::Workers,
}

impl DnsServer {
    /// Binds every configured listener (UDP and TCP each) and serves until `shutdown` is
    /// cancelled.
    pub async fn start(
        config: &Config,
        table: Table,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> Result<DnsServer> {
        let sockets = Sockets::bind(&config.dns.listen).await?;
        Self::serve(config, table, sockets, registry, shutdown)
    }

    /// Serves on already bound sockets (tests bind `127.0.0.1:0`).
    pub fn run_with(config: &Config, table: Table, sockets: Sockets, registry: &mut Registry) -> Result<DnsServer> {
        Self::serve(config, table, sockets, registry, CancellationToken::new())
    }

    /// Serves on already bound sockets until `shutdown` is cancelled (or
    /// [`DnsServer::shutdown`] is called, or the server dropped, neither of which cancels
    /// `shutdown` itself).
    pub fn serve(
        config: &Config,
        table: Table,
        sockets: Sockets,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> Result<DnsServer> {
        // Subscribe before the first build so no change falls between the two.
        let follower = Follower::new(&table, "dns");
        let metrics = Metrics::register(registry);
        let shared = Arc::new(Shared::new(Builder::new(config)?, metrics, config));
        let mut feed = IndexFeed(shared.clone());
        feed.rebuild(&table.snapshot());
        crate::xfr::publish::first(&shared);
        let shutdown = shutdown.child_token();
        let mut server = DnsServer {
            shared,
            table,
            addrs: Vec::new(),
            _stop_on_drop: shutdown.clone().drop_guard(),
            shutdown,
            tasks: Vec::new(),
            stopping: std::sync::Mutex::new(None),
            #[cfg(target_os = "linux")]
            udp_threads: crate::udp_batch::Workers::default(),
        };
        server.serve_udp(config, sockets.udp)?;
        server.serve_tcp(config, sockets.tcp);
        let token = server.shutdown.clone();
        server.tasks.push(follower.spawn(feed, token).map_err(crate::error::Error::Thread)?);
        server.tasks.push(tokio::spawn(crate::xfr::publish::run(server.shared.clone(), server.shutdown.clone())));
        tracing::info!(listen = ?server.addrs, "dns: serving");
        let stopping = Stopping {
            tasks: std::mem::take(&mut server.tasks),
            #[cfg(target_os = "linux")]
            udp_threads: std::mem::take(&mut server.udp_threads),
        };
        server.stopping = std::sync::Mutex::new(Some(stopping));
        Ok(server)
    }

    /// Starts the workers of every UDP socket: the fast path's threads where the socket
    /// has `SO_REUSEPORT`, else tokio tasks.
    fn serve_udp(&mut self, config: &Config, sockets: Vec<UdpSocket>) -> Result<()> {
        // The cores in the process's affinity mask (`taskset`, cgroup quota).
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).clamp(1, MAX_UDP_WORKERS);
        for udp in sockets {
            let local = udp.local_addr();
            if let Ok(a) = local {
                self.addrs.push(a);
            }
            #[cfg(target_os = "linux")]
            if crate::udp_batch::has_reuseport(&udp) {
                let addr = local.unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
                let bind_err = |source| crate::Error::Bind { addr, proto: "udp", source };
                let std = udp.into_std().map_err(bind_err)?;
                self.udp_threads.spawn(std, workers, config.dns.udp_nice, &self.shared).map_err(bind_err)?;
                tracing::debug!(%addr, workers, "dns: udp fast path (recvmmsg/sendmmsg)");
                continue;
            }
            let udp = Arc::new(udp);
            for _ in 0..workers {
                self.tasks.push(tokio::spawn(udp::worker(udp.clone(), self.shared.clone(), self.shutdown.clone())));
            }
        }
        #[cfg(target_os = "linux")]
        self.tasks.push(self.udp_threads.stop_on(self.shutdown.clone()));
        Ok(())
    }

    /// Starts an acceptor per TCP listener, all sharing one set of connection slots.
    fn serve_tcp(&mut self, config: &Config, listeners: Vec<TcpListener>) {
        let slots = Arc::new(Slots::new(config.dns.tcp_max_connections, config.dns.tcp_max_per_client));
        self.shared.metrics.set_tcp_slots(slots.clone());
        for tcp in listeners {
            let acceptor = tcp::acceptor(tcp, slots.clone(), self.shared.clone(), self.shutdown.clone());
            self.tasks.push(tokio::spawn(acceptor));
        }
    }

    /// Applies a new configuration (zones, TTLs, names, zone files). A zone whose file has
    /// errors keeps serving its previous content; the error names file, line and reason.
    /// Listen addresses and the TCP connection limit take effect at the next start.
    pub fn reload(&self, config: &Config) -> Result<()> {
        let result = self.shared.build(|b| b.set_config(config, &self.table.snapshot()));
        self.shared.set_limits(config);
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
        zone_set::check_zones(config)
    }

    /// Zone master files to watch for reloads.
    pub fn watched_files(config: &Config) -> Vec<PathBuf> {
        Settings::from_config(config).zones.into_iter().filter_map(|z| z.file).collect()
    }

    /// Every name being served, sorted.
    pub fn names(&self) -> Vec<ServedName> {
        let index = self.shared.index.load();
        let mut out: Vec<ServedName> =
            index.all_names().into_iter().map(|(key, node, zone)| served_name(&index, key, node, zone)).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The zone `apex` as it is served now, in RFC 1035 master-file format (SOA first,
    /// then every name with all its records, every candidate address included): for
    /// `named-checkzone`, `meridian status` and debugging. `None` when no such zone is served.
    pub fn zone_dump(&self, apex: &str) -> Option<String> {
        crate::dump::zone(&self.shared.index.load(), apex)
    }

    /// Each zone's transfer state — serial, journal depth, last NOTIFY round, each
    /// client's last transfer — for `meridian status` and the admin API. Key names
    /// only, never secrets.
    pub fn transfer_status(&self) -> Vec<crate::ZoneTransferStatus> {
        self.shared.xfr.status()
    }

    /// The answer `q` would get now and why: run through the serving path with a
    /// recorder, against the published index and the table it was built from.
    pub fn explain(
        &self,
        q: &crate::explain::ExplainQuery,
    ) -> Result<crate::explain::Explanation, crate::explain::ExplainError> {
        crate::explain::explain(&self.shared.index.load(), &self.table.snapshot(), q)
    }

    /// The apexes of the zones served, without the trailing dot.
    pub fn zones(&self) -> Vec<String> {
        self.shared.index.load().zones.iter().map(|z| z.data.name.to_string()).collect()
    }

    /// Malformed ranking annotations (`meridian.io/policy`, `weight`, `failover`,
    /// `max-answers`) in the current table, for `meridian status`; each has its default
    /// applied.
    pub fn ranking_problems(&self) -> Vec<Problem> {
        self.shared.inspect(Builder::problems)
    }

    /// Whether a GeoIP database locates clients, and which.
    pub fn geo_status(&self) -> DbStatus {
        self.shared.inspect(Builder::geo_status)
    }

    /// The bound addresses (UDP and TCP share each).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// A token that stops the server when cancelled, as [`DnsServer::shutdown`] does
    /// without waiting for the workers.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops every listener and waits (briefly) for the workers.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.stopped().await;
    }

    /// Waits (briefly) for the workers once the shutdown token was cancelled; returns at
    /// once when another call already waited.
    pub async fn stopped(&self) {
        let stopping = self.stopping.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(stopping) = stopping else { return };
        self.shutdown.cancelled().await;
        #[cfg(target_os = "linux")]
        stopping.udp_threads.shutdown(SHUTDOWN_GRACE).await;
        for t in stopping.tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, t).await.is_err() {
                tracing::warn!("dns: a worker did not stop in time");
            }
        }
    }
}

/// How `meridian status` shows one name of the index.
fn served_name(index: &Index, key: &[u8], node: &Node, zone: &str) -> ServedName {
    let (kind, object) = node.source.describe();
    let object = object.map(ToString::to_string);
    let mut parts = Vec::new();
    if let Some(c) = &node.cname {
        parts.push(format!("CNAME {}", name::text(&c.target)));
    }
    if let Some(c) = index.addrs(key, node) {
        let (a, aaaa) = c.records();
        parts.push(format!("{} A, {} AAAA", a.len(), aaaa.len()));
    }
    for set in &node.rrsets {
        parts.push(format!("{} {}", set.rdata.len(), hickory_proto::rr::RecordType::from(set.rtype)));
    }
    ServedName { name: name::text(key), zone: zone.to_owned(), kind, object, answer: parts.join(", ") }
}
