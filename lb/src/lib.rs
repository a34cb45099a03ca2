//! The L7 proxy behind the anycast VIP: one address that forwards each request, by Host
//! and path, to the best healthy backend of a federated service in any cluster, and moves
//! traffic away from a failing cluster within a request's lifetime.
//!
//! Layout:
//! - [`Proxy`] (this file): start, reload, readiness, status, shutdown.
//! - `server`: listeners, TLS handshakes, which path serves a connection, connection
//!   limit, graceful drain.
//! - `h1`: the HTTP/1.1 fast path: raw heads, a per-backend pool of raw connections,
//!   responses relayed as framed; hands other connections to hyper.
//! - `exchange`: what both paths share of a request's exchange with the backends: the
//!   retry loop (`attempts` over a `Transport`) and failure attribution.
//! - `forward`: hyper's data path: validation, route, attempts, responses.
//! - `routes`: the host → route index rebuilt from the table and `[lb]` on every change;
//!   `priority_levels` orders clusters into priority levels.
//! - `balance`: Envoy priority spill-over (overprovisioning 1.4), P2C on peak-EWMA,
//!   outlier ejection.
//! - `request`: the validation every request passes on either path (framing, the
//!   routing authority, what is refused).
//! - `retry`: the retry budget. `headers`: hop-by-hop stripping, X-Forwarded-*, Via.
//! - `body`: streaming bodies with idle timeouts. `deadline`: a client connection on
//!   which nothing moves either way for too long fails. `tls`: SNI certificates. `metrics`.
//!
//! It does not answer DNS, probe backends actively (it reads the shared checker's results
//! from the table), buffer bodies, or speak HTTP/2 to backends (upstream is HTTP/1.1 with
//! keep-alive pooling).

mod balance;
mod body;
mod conn_exec;
mod deadline;
mod error;
mod exchange;
mod forward;
mod h1;
mod headers;
mod metrics;
mod pool;
mod request;
mod retry;
mod routes;
mod server;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use meridian_config::Config;
use meridian_config::lb::LbConfig;
use meridian_model::table::{Change, Snapshot};
use meridian_model::{Follower, Projection, Table};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::{Error, Result};

use body::ReqBody;
use metrics::Metrics;
use routes::{Builder, RouteIndex};

pub(crate) type UpstreamClient = Client<HttpConnector, ReqBody>;

/// State shared by the listeners, the data path and the control methods.
pub(crate) struct Shared {
    /// The route index the data path reads; replaced whole on every change.
    routes: ArcSwap<RouteIndex>,
    /// `[lb]` in force (timeouts, retry, outlier settings).
    config: ArcSwap<LbConfig>,
    /// Upstream connection pool; rebuilt only when the connect or idle timeout changes.
    client: ArcSwap<UpstreamClient>,
    /// HTTP server settings for new client connections.
    http: ArcSwap<hyper_util::server::conn::auto::Builder<conn_exec::ConnExec>>,
    conn_limit: Arc<Semaphore>,
    metrics: Metrics,
    /// Rebuilds the index; owns endpoint state that outlives rebuilds. Locked by the
    /// table watcher and by `reload`, never by the data path.
    builder: Mutex<Builder>,
    table: Table,
    tls: Arc<tls::Resolver>,
}

impl Shared {
    /// Rebuilds the route index from the current snapshot (after a reload).
    fn rebuild(&self) {
        self.rebuild_from(&self.table.snapshot());
    }

    fn rebuild_from(&self, snap: &Snapshot) {
        let cfg = self.config.load_full();
        let index = self.builder.lock().build(snap, &cfg);
        let hosts = index.hosts();
        self.routes.store(Arc::new(index));
        // Without configured certificates, the generated one names every route host,
        // the clusters' Ingress hosts included.
        if self.tls.0.load().generated_for_other_than(&hosts) {
            match tls::CertStore::generated(hosts) {
                Ok(store) => self.tls.0.store(Arc::new(store)),
                Err(e) => tracing::warn!(error = %e, "cannot regenerate the self-signed certificate"),
            }
        }
    }
}

fn upstream_client(cfg: &LbConfig) -> UpstreamClient {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(cfg.timeouts.connect.as_std()));
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .pool_idle_timeout(cfg.timeouts.idle.as_std())
        .set_host(false)
        .build(connector)
}

/// The running proxy.
pub struct Proxy {
    shared: Arc<Shared>,
    addrs: Vec<SocketAddr>,
    shutdown: CancellationToken,
    /// The listeners and the route follower, awaited once by [`Proxy::stopped`].
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Proxy {
    /// Binds every listener of `[lb]` and serves until `shutdown` is cancelled. A port in
    /// use is an error naming the address and the setting.
    pub async fn start(
        config: &Config,
        table: Table,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> Result<Proxy> {
        let lb = &config.lb;
        let store = tls::CertStore::load(config)?;
        let resolver = Arc::new(tls::Resolver(ArcSwap::from_pointee(store)));
        let tls_config = tls::server_config(resolver.clone())?;
        let metrics = Metrics::new(registry);
        let shared = Arc::new(Shared {
            routes: ArcSwap::from_pointee(RouteIndex::default()),
            config: ArcSwap::from_pointee(lb.clone()),
            client: ArcSwap::from_pointee(upstream_client(lb)),
            http: ArcSwap::from_pointee(server::http_builder(lb)),
            conn_limit: Arc::new(Semaphore::new(lb.limits.max_connections)),
            metrics: metrics.clone(),
            builder: Mutex::new(Builder::new(metrics)),
            table,
            tls: resolver,
        });
        // Subscribe before the first build: a snapshot published between the two would
        // otherwise leave the routes stale until the next change (seen in the proxy
        // benchmark: a route without backends for good, with nothing else changing).
        let follower = Follower::new(&shared.table, "proxy");
        shared.rebuild();

        let mut bound = Vec::new();
        for (setting, addrs, tls) in [("listen", &lb.listen, false), ("listen_tls", &lb.listen_tls, true)] {
            for addr in addrs {
                let l = TcpListener::bind(addr).await.map_err(|cause| Error::Bind { addr: *addr, setting, cause })?;
                let local = l.local_addr().map_err(|cause| Error::Bind { addr: *addr, setting, cause })?;
                bound.push((l, local, tls));
            }
        }
        let mut addrs = Vec::new();
        let mut tasks = Vec::new();
        for (l, local, tls) in bound {
            addrs.push(local);
            let acceptor = tls.then(|| tokio_rustls::TlsAcceptor::from(tls_config.clone()));
            tracing::info!(address = %local, tls, "proxy listening");
            tasks.push(tokio::spawn(server::serve(l, acceptor, shared.clone(), shutdown.clone())));
        }
        let (routes, token) = (RouteFollower(shared.clone()), shutdown.clone());
        tasks.push(follower.spawn(routes, token).map_err(Error::Thread)?);
        Ok(Proxy { shared, addrs, shutdown, tasks: Mutex::new(tasks) })
    }

    /// Applies a new configuration: routes, timeouts, limits and certificates. Listen
    /// addresses and `max_connections` take effect at the next start.
    pub fn reload(&self, config: &Config) -> Result<()> {
        let store = tls::CertStore::load(config)?;
        self.shared.tls.0.store(Arc::new(store));
        let new = &config.lb;
        let old = self.shared.config.load_full();
        if old.timeouts.connect != new.timeouts.connect || old.timeouts.idle != new.timeouts.idle {
            self.shared.client.store(Arc::new(upstream_client(new)));
        }
        if old.timeouts.header_read != new.timeouts.header_read || old.limits != new.limits {
            self.shared.http.store(Arc::new(server::http_builder(new)));
        }
        self.shared.config.store(Arc::new(new.clone()));
        self.shared.rebuild();
        Ok(())
    }

    /// Loads the configured certificates and keys as `start` and `reload` would, for
    /// `meridian check`: an error names the file and what is wrong with it.
    pub fn check_certificates(config: &Config) -> Result<()> {
        if config.lb.certificates.is_empty() {
            return Ok(());
        }
        tls::CertStore::load(config).map(|_| ())
    }

    /// The certificate and key files `reload` reads, for the config watcher.
    pub fn watched_files(config: &Config) -> Vec<PathBuf> {
        config.lb.certificates.iter().flat_map(|c| [config.resolve(&c.cert), config.resolve(&c.key)]).collect()
    }

    /// Some route has a backend that can take a request; when false, an anycast speaker
    /// should withdraw the VIP from this site.
    pub fn ready(&self) -> bool {
        self.shared.routes.load().ready(std::time::Instant::now())
    }

    /// Routes and their backends with state, for `meridian status`.
    pub fn status(&self) -> serde_json::Value {
        let cfg = self.shared.config.load();
        let mut v = self.shared.routes.load().status(cfg.overprovisioning_factor, std::time::Instant::now());
        if let Some(o) = v.as_object_mut() {
            o.insert("listen".into(), self.addrs.iter().map(|a| a.to_string()).collect());
            o.insert("region".into(), cfg.region.clone().into());
            o.insert("ready".into(), self.ready().into());
        }
        v
    }

    /// The route a request for `host` and `path` would take now, with its priority
    /// levels, their loads and the backend the balancer favours. The proxy's levels
    /// follow its own region (`lb.region`), so every client is answered the same.
    pub fn explain(&self, host: &str, path: &str) -> serde_json::Value {
        let factor = self.shared.config.load().overprovisioning_factor;
        self.shared.routes.load().explain(host, path, factor, std::time::Instant::now())
    }

    /// The bound addresses (plain listeners first, then TLS), with real ports.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }

    /// Waits until the proxy has stopped after its shutdown token was cancelled: the
    /// listeners closed, in-flight requests finished (up to `timeouts.drain`).
    pub async fn stopped(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for t in tasks {
            let _ = t.await;
        }
    }

    /// Cancels the proxy's shutdown token and waits until it has stopped.
    pub async fn shutdown(&self) {
        self.shutdown.cancel();
        self.stopped().await;
    }
}

/// The route index as a projection of the table. Ejections need no rebuild: selection
/// reads them live.
struct RouteFollower(Arc<Shared>);

impl Projection for RouteFollower {
    fn rebuild(&mut self, snap: &Snapshot) {
        self.0.rebuild_from(snap);
    }

    /// Routes are rebuilt only when a change names an Ingress or HTTPRoute (which may
    /// add or move routes) or a Service some route sends traffic to; other changes leave
    /// the index as it is.
    fn apply(&mut self, snap: &Snapshot, change: &Change) {
        let touches = change.touches_http() || {
            let index = self.0.routes.load();
            change.services.iter().any(|k| index.uses(k))
        };
        if touches {
            self.0.rebuild_from(snap);
        }
    }
}
