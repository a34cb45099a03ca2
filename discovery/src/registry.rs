//! The cluster registry: one kube client per member cluster, shared by every module
//! (discovery's watchers, the sync module), and the tasks that watch each member.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};
use meridian_config::{ClusterConfig, Config};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::causes::{chain, first_line};
use crate::client::{self, Pings};

use crate::cluster::{self, Settings};
use crate::lag::Lag;
use crate::lb_names::LbNames;
use crate::metrics::Metrics;
use crate::table::{ClusterMeta, ClusterState, Table, Update};
use crate::writer;

/// Why a member cluster cannot be used. Each message names the cluster and the thing;
/// the error that caused it is the `source`, never repeated in the message, so print
/// [`Error::with_causes`] (or walk the sources) to show why.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cluster {cluster}: cannot read kubeconfig {path}")]
    Kubeconfig { cluster: String, path: PathBuf, source: KubeconfigError },
    #[error("cluster {cluster}: context {context:?} not found in {path} (it has: {available})")]
    UnknownContext { cluster: String, context: String, path: PathBuf, available: String },
    #[error("cluster {cluster}: kubeconfig {path} gives no usable client configuration")]
    ClientConfig { cluster: String, path: PathBuf, source: KubeconfigError },
    #[error("cluster {cluster}: cannot build its API client")]
    Client { cluster: String, source: kube::Error },
    #[error("cluster {cluster}: no kubeconfig configured")]
    NoKubeconfig { cluster: String },
    #[error(
        "cluster {cluster}: in_cluster = true, but this is not a pod with a service account (KUBERNETES_SERVICE_HOST/PORT and /var/run/secrets/kubernetes.io/serviceaccount)"
    )]
    InCluster { cluster: String, source: kube::config::InClusterError },
    #[error("cluster {cluster}: simulated, but no simulator kubeconfig was given")]
    NoSimulator { cluster: String },
}

impl Error {
    /// The message and then every cause, as one text: what a log line should show.
    pub fn with_causes(&self) -> String {
        chain(self)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A member cluster as the registry holds it.
#[derive(Clone)]
pub struct Member {
    pub meta: Arc<ClusterMeta>,
    pub client: Client,
    /// The configuration entry, to tell a reload that changes how to reach the cluster.
    pub config: ClusterConfig,
    /// What the kubeconfig file held when the client was built (a digest of its content):
    /// a reload after the file changed (a rotated token or certificate, a moved API
    /// server) reconnects even though the configuration names the same file.
    pub kubeconfig: Option<u64>,
    /// Watch events received from this cluster.
    pub events: Arc<AtomicU64>,
}

/// Where simulated clusters are reached: the kubeconfig the in-process simulator wrote.
#[derive(Debug, Clone, Default)]
pub struct SimulatorLink {
    pub kubeconfig: Option<PathBuf>,
}

/// Reads a kubeconfig and builds a client for one context, with errors that say which
/// file and which context. A silent HTTP/2 connection is pinged as client-go pings it.
pub async fn connect(cluster: &str, path: &Path, context: Option<&str>) -> Result<Client> {
    connect_pinged(cluster, path, context, CLIENT_GO_PINGS).await
}

/// client-go's HTTP/2 health check: a ping after 30 s without a frame, 15 s to answer.
const CLIENT_GO_PINGS: Pings = Pings { interval: Duration::from_secs(30), timeout: Duration::from_secs(15) };

/// The pings of a watched cluster's connection: one after a probe interval without a
/// frame (the probes keep a live connection busier than that), and as long to answer as
/// the probes take to find the cluster Offline (`offline_after` intervals and a timeout),
/// so a server that is only slow, busy serving large lists, keeps its connection and
/// its watches. A connection that went silent is so dropped about when the cluster turns
/// Offline, and the next probe dials a new one.
fn probe_pings(config: &Config) -> Pings {
    let d = &config.discovery;
    let interval = d.probe_interval.as_std();
    Pings { interval, timeout: interval * d.offline_after.max(1) + d.probe_timeout.as_std() }
}

async fn connect_pinged(cluster: &str, path: &Path, context: Option<&str>, pings: Pings) -> Result<Client> {
    let kc = Kubeconfig::read_from(path).map_err(|source| Error::Kubeconfig {
        cluster: cluster.to_owned(),
        path: path.to_path_buf(),
        source,
    })?;
    if let Some(ctx) = context
        && !kc.contexts.iter().any(|c| c.name == ctx)
    {
        let available: Vec<_> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(Error::UnknownContext {
            cluster: cluster.to_owned(),
            context: ctx.to_owned(),
            path: path.to_path_buf(),
            available: if available.is_empty() { "no contexts".to_owned() } else { available.join(", ") },
        });
    }
    let opts = KubeConfigOptions { context: context.map(str::to_owned), ..Default::default() };
    let mut cfg = kube::Config::from_custom_kubeconfig(kc, &opts).await.map_err(|source| Error::ClientConfig {
        cluster: cluster.to_owned(),
        path: path.to_path_buf(),
        source,
    })?;
    // Deadlines for every request to the cluster. Reads keep kube's default, above the
    // watches' server-side timeout: a watch that goes silent is found by the watchdog
    // (`discovery.watch_silence`) and by the `/readyz` probe, and requests that must
    // answer promptly carry their own timeout.
    cfg.connect_timeout = Some(CONNECT_TIMEOUT);
    cfg.write_timeout = Some(WRITE_TIMEOUT);
    client::build(cfg, pings).map_err(|source| Error::Client { cluster: cluster.to_owned(), source })
}

/// A cluster API that does not accept a connection within this is unreachable.
const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// A request body (a server-side apply) that cannot be written within this is stuck.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A client for a configured cluster: through its kubeconfig and context, the
/// simulator's kubeconfig, or (`in_cluster`) the pod's service account.
pub async fn cluster_client(config: &Config, c: &ClusterConfig, sim: &SimulatorLink) -> Result<Client> {
    if c.in_cluster {
        return in_cluster(&c.name, probe_pings(config));
    }
    let (path, context) = endpoint(config, c, sim)?;
    connect_pinged(&c.name, &path, context.as_deref(), probe_pings(config)).await
}

/// A client from the in-cluster environment, as kube-rs reads it: the API server from
/// `KUBERNETES_SERVICE_HOST`/`PORT`, the token (re-read as it rotates) and CA from the
/// service account's mounted files.
fn in_cluster(cluster: &str, pings: Pings) -> Result<Client> {
    let mut cfg =
        kube::Config::incluster().map_err(|source| Error::InCluster { cluster: cluster.to_owned(), source })?;
    cfg.connect_timeout = Some(CONNECT_TIMEOUT);
    cfg.write_timeout = Some(WRITE_TIMEOUT);
    client::build(cfg, pings).map_err(|source| Error::Client { cluster: cluster.to_owned(), source })
}

/// The kubeconfig path and context that reach a configured cluster.
pub fn endpoint(config: &Config, c: &ClusterConfig, sim: &SimulatorLink) -> Result<(PathBuf, Option<String>)> {
    if c.simulated {
        let path = sim.kubeconfig.clone().ok_or_else(|| Error::NoSimulator { cluster: c.name.clone() })?;
        return Ok((path, Some(c.name.clone())));
    }
    match &c.kubeconfig {
        Some(p) => Ok((config.resolve(p), c.context.clone())),
        None => Err(Error::NoKubeconfig { cluster: c.name.clone() }),
    }
}

/// A digest of a kubeconfig file's content (never logged: it may hold credentials), to
/// tell whether it changed; `None` when it cannot be read.
fn kubeconfig_digest(path: &std::path::Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let bytes = std::fs::read(path).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

/// The digest of the kubeconfig file that reaches `c`, when it is an operator's file (a
/// simulated cluster's is Meridian's own, rewritten whenever a simulated cluster is
/// added, which must not reconnect the others).
fn file_digest(config: &Config, c: &ClusterConfig, sim: &SimulatorLink) -> Option<u64> {
    let (path, _) = endpoint(config, c, sim).ok().filter(|_| !c.simulated)?;
    kubeconfig_digest(&path)
}

/// The kubeconfig files of the configured clusters that are not simulated, to watch for
/// changes.
pub fn kubeconfig_files(config: &Config) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = config
        .clusters
        .iter()
        .filter(|c| !c.simulated)
        .filter_map(|c| c.kubeconfig.as_ref().map(|p| config.resolve(p)))
        .collect();
    files.sort();
    files.dedup();
    files
}

/// Builds the table metadata of a configured cluster.
pub fn meta_of(c: &ClusterConfig, order: usize) -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta {
        name: c.name.as_str().into(),
        region: c.region.as_deref().map(Arc::from),
        zone: c.zone.as_deref().map(Arc::from),
        location: c.location,
        weight: c.weight,
        labels: c.labels.clone(),
        order,
    })
}

/// The running discovery module: registry, per-cluster tasks and the table writer.
pub struct Discovery {
    table: Table,
    tx: UnboundedSender<Update>,
    members: DashMap<String, (Member, JoinHandle<()>)>,
    metrics: Metrics,
    sim: SimulatorLink,
    /// Resolves hostname-only load balancers for every cluster task.
    lb_names: LbNames,
    /// How late the runtime runs, for the clusters' probes.
    lag: Lag,
}

impl Discovery {
    /// Creates the table and starts its writer. Clusters are added by [`Discovery::apply`].
    pub fn new(metrics: Metrics, sim: SimulatorLink) -> Arc<Self> {
        let (table, writer) = Table::new();
        let (tx, rx) = unbounded_channel();
        tokio::spawn(writer::run(writer, rx, metrics.clone()));
        let lb_names = LbNames::spawn(metrics.clone());
        Arc::new(Self { table, tx, members: DashMap::new(), metrics, sim, lb_names, lag: Lag::spawn() })
    }

    pub fn table(&self) -> Table {
        self.table.clone()
    }

    /// A sender into the table writer, for other producers of shard state (health checks).
    pub fn updates(&self) -> UnboundedSender<Update> {
        self.tx.clone()
    }

    /// The member clusters, by name, for modules that need their clients (sync).
    pub fn members(&self) -> BTreeMap<String, Member> {
        self.members.iter().map(|e| (e.key().clone(), e.value().0.clone())).collect()
    }

    pub fn member(&self, name: &str) -> Option<Member> {
        self.members.get(name).map(|e| e.value().0.clone())
    }

    /// Brings the running clusters in line with `config`: starts new ones, stops removed
    /// ones, restarts those whose connection changed, and updates metadata. Returns the
    /// clusters that could not be started; the others run regardless, because one broken
    /// entry must not take the rest down.
    pub async fn apply(&self, config: &Config) -> Vec<Error> {
        let _ =
            self.tx.send(Update::StalePolicy(config.discovery.stale_policy, config.discovery.stale_max_age.as_std()));
        // Before any cluster starts, so its first names go to the configured resolver.
        self.lb_names.configure(&config.discovery);
        let settings = Settings {
            probe_interval: config.discovery.probe_interval.as_std(),
            probe_timeout: config.discovery.probe_timeout.as_std(),
            offline_after: config.discovery.offline_after,
            federate_annotation: config.discovery.federate_annotation.clone(),
            watch_silence: config.discovery.watch_silence.as_std(),
            gateway_classes: config.discovery.gateway_classes.clone(),
            lag: self.lag.clone(),
        };
        let wanted: BTreeMap<&str, (usize, &ClusterConfig)> =
            config.clusters.iter().enumerate().map(|(i, c)| (c.name.as_str(), (i, c))).collect();
        let running: Vec<String> = self.members.iter().map(|e| e.key().clone()).collect();
        for name in running {
            if !wanted.contains_key(name.as_str()) {
                self.stop(&name);
                info!(cluster = %name, "cluster removed from the configuration");
            }
        }
        let mut errors = Vec::new();
        for (name, (order, c)) in wanted {
            let meta = meta_of(c, order);
            if let Some(existing) = self.members.get(name) {
                let (m, _) = existing.value();
                let same_file = file_digest(config, c, &self.sim);
                let same_conn = m.config.kubeconfig == c.kubeconfig
                    && m.config.context == c.context
                    && m.config.simulated == c.simulated
                    && m.kubeconfig == same_file;
                if same_conn && m.meta == meta {
                    continue;
                }
            }
            // Any change restarts the cluster's task: a fresh list is cheap, and a resync on
            // first list clears whatever the previous task left behind.
            self.stop_task(name);
            if let Err(e) = self.start(config, c, meta.clone(), settings.clone()).await {
                self.show_unstarted(meta, &e);
                errors.push(e);
            }
        }
        errors
    }

    /// Keeps a cluster that could not be started visible as Offline rather than absent.
    fn show_unstarted(&self, meta: Arc<ClusterMeta>, e: &Error) {
        let reason = e.with_causes();
        warn!(error = %reason, "cannot start cluster");
        let cluster = meta.name.clone();
        let _ = self.tx.send(Update::Cluster(meta));
        let state = ClusterState::Offline { reason: first_line(&reason), since: std::time::SystemTime::now() };
        let _ = self.tx.send(Update::State { cluster, state });
    }

    async fn start(
        &self,
        config: &Config,
        c: &ClusterConfig,
        meta: Arc<ClusterMeta>,
        settings: Settings,
    ) -> Result<()> {
        let digest = file_digest(config, c, &self.sim);
        let client = cluster_client(config, c, &self.sim).await?;
        let events = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(cluster::run(
            client.clone(),
            meta.clone(),
            settings,
            self.lb_names.subscribe(),
            self.tx.clone(),
            self.metrics.clone(),
            events.clone(),
        ));
        let member = Member { meta, client, config: c.clone(), kubeconfig: digest, events };
        self.members.insert(c.name.clone(), (member, task));
        Ok(())
    }

    fn stop_task(&self, name: &str) {
        if let Some((_, (_, task))) = self.members.remove(name) {
            task.abort();
        }
    }

    fn stop(&self, name: &str) {
        self.stop_task(name);
        self.metrics.forget_cluster(name);
        let _ = self.tx.send(Update::RemoveCluster(name.into()));
    }

    /// Watch events received from a cluster since it was (re)started.
    pub fn events(&self, cluster: &str) -> u64 {
        self.members.get(cluster).map_or(0, |e| e.value().0.events.load(Ordering::Relaxed))
    }

    /// Stops every cluster task and the resolver of load-balancer hostnames.
    pub fn shutdown(&self) {
        for e in self.members.iter() {
            e.value().1.abort();
        }
        self.lb_names.shutdown();
    }
}
