//! The running server, shared by `serve` and `demo`: simulator (when the config has
//! simulated clusters), discovery, DNS and the admin endpoint; reloads on file change and
//! SIGHUP; clean shutdown on Ctrl-C or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use meridian_config::watch::FileWatcher;
use meridian_config::{ClusterConfig, Config, LogFormat};
use meridian_discovery::health::{self, HealthChecker};
use meridian_discovery::registry;
use meridian_discovery::{Discovery, Metrics, SimulatorLink};
use meridian_dns::DnsServer;
use meridian_fleet::Fleet;
use meridian_lb::Proxy;
use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use meridian_sync::ResourceSync as SyncModule;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::admin::{self, AdminState, Section};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReloadLabels {
    result: String,
}

/// Everything a running Meridian holds.
pub(crate) struct Server {
    pub(crate) config: Config,
    /// The file the configuration came from; `None` for the embedded demo.
    path: Option<PathBuf>,
    pub(crate) sim: Option<Arc<Simulator>>,
    sim_link: SimulatorLink,
    pub(crate) discovery: Arc<Discovery>,
    health: Option<HealthChecker>,
    /// This instance's membership of its fleet, with `[fleet]`; stopped by `shutdown`.
    fleet: Option<Fleet>,
    dns: Option<Arc<DnsServer>>,
    proxy: Option<Arc<Proxy>>,
    sync: Option<Arc<SyncModule>>,
    /// Held while simulated clusters use the state directory.
    _state_lock: Option<StateLock>,
    /// Cancelled once at shutdown; every part that takes a token gets a child of it.
    shutdown: CancellationToken,
    /// The admin endpoint's, cancelled first.
    admin_stop: CancellationToken,
    admin_task: Option<tokio::task::JoinHandle<()>>,
    reloads: Family<ReloadLabels, Counter>,
}

/// Exclusive use of a state directory for as long as it is held: a second Meridian
/// with simulated clusters in the same directory would overwrite the first one's
/// kubeconfig and saved objects.
pub(crate) struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the directory's lock (creating the directory), or says who holds it.
    pub(crate) fn acquire(dir: &Path) -> Result<StateLock> {
        use std::io::{Read, Seek, Write};
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create the state directory {}", dir.display()))?;
        let path = dir.join("meridian.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        if file.try_lock().is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let pid = holder.trim();
            let who = if pid.is_empty() { String::new() } else { format!(" (pid {pid})") };
            anyhow::bail!(
                "the state directory {} is in use by another Meridian{who}: stop it, or give this one \
                 another directory with --state-dir",
                dir.display()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(StateLock { _file: file })
    }
}

/// Default place for simulated clusters' kubeconfig.
pub(crate) fn default_state_dir(what: &str) -> PathBuf {
    std::env::temp_dir().join(format!("meridian-{what}"))
}

/// Every simulated cluster in a configuration: members, then the control plane.
fn simulated(config: &Config) -> Vec<&ClusterConfig> {
    config.clusters.iter().chain(config.sync.host.iter()).filter(|c| c.simulated).collect()
}

/// The simulator spec of a configured cluster. The sync control plane (`[sync.host]`)
/// runs no workload status controllers, like a federation API server: sync rolls the
/// members' status up into it.
fn spec(config: &Config, c: &ClusterConfig) -> ClusterSpec {
    let spec = ClusterSpec {
        name: c.name.clone(),
        port: 0,
        region: c.region.clone().unwrap_or_default(),
        zone: c.zone.clone().unwrap_or_default(),
        lb_cidr: None,
        workload_controllers: true,
        secure: false,
        http1_only: false,
    };
    let is_host = config.sync.host.as_ref().is_some_and(|h| h.name == c.name);
    if is_host { spec.without_workload_controllers() } else { spec }
}

impl Server {
    /// Starts every part. Errors here are fatal and name what failed (a port in use, an
    /// unwritable state directory); a cluster that cannot be reached is not fatal.
    /// `lock` is the state directory's, when the caller took it already (the demo takes
    /// it before touching the directory).
    pub(crate) async fn start(
        config: Config,
        path: Option<PathBuf>,
        state_dir: PathBuf,
        lock: Option<StateLock>,
    ) -> Result<Self> {
        let mut registry = Registry::default();
        let shutdown = CancellationToken::new();
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register("meridian_config_reloads", "Configuration reloads, by result", reloads.clone());

        let (sim, sim_link, state_lock) = start_simulator(&config, &state_dir, lock).await?;

        // Before discovery lists any shard, so a restarted instance's first answers
        // already follow the fleet's verdicts.
        let fleet = match &config.fleet {
            Some(_) => Some(start_fleet(&config, &mut registry, &shutdown).await?),
            None => None,
        };

        let metrics = Metrics::register(&mut registry);
        let discovery = Discovery::new(metrics, sim_link.clone());
        for e in discovery.apply(&config).await {
            error!("{}", e.with_causes());
        }
        let health = health::spawn_in_fleet(
            &config,
            discovery.table(),
            discovery.updates(),
            &mut registry,
            &shutdown,
            fleet.clone(),
        );

        let dns = if config.dns.enabled {
            let d = DnsServer::start(&config, discovery.table(), &mut registry, shutdown.child_token()).await?;
            info!(addresses = ?d.local_addrs(), "DNS server listening");
            Some(Arc::new(d))
        } else {
            None
        };

        let proxy = if config.lb.enabled {
            let p = Proxy::start(&config, discovery.table(), &mut registry, shutdown.child_token()).await?;
            info!(addresses = ?p.local_addrs(), "proxy listening");
            Some(Arc::new(p))
        } else {
            None
        };

        let sync = start_sync(&config, &sim_link, &discovery, &mut registry, &shutdown).await?;

        let sections = admin_sections(dns.as_ref(), &health, proxy.as_ref(), sync.as_ref());
        let proxy_ready = proxy.clone().map(|p| Box::new(move || p.ready()) as Box<dyn Fn() -> bool + Send + Sync>);
        let state = AdminState {
            discovery: discovery.clone(),
            registry,
            sections,
            proxy_ready,
            fleet: fleet.clone(),
            dns: dns.clone(),
            proxy: proxy.clone(),
        };
        let admin_stop = shutdown.child_token();
        let admin_task = start_admin(&config, state, admin_stop.clone()).await?;

        Ok(Self {
            config,
            path,
            sim,
            sim_link,
            discovery,
            health: Some(health),
            fleet,
            dns,
            proxy,
            sync,
            _state_lock: state_lock,
            shutdown,
            admin_stop,
            admin_task: Some(admin_task),
            reloads,
        })
    }

    /// Files whose change triggers a reload.
    fn watched_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.path.iter().cloned().collect();
        files.extend(DnsServer::watched_files(&self.config));
        files.extend(Proxy::watched_files(&self.config));
        // A rotated credential or a moved API server in a kubeconfig reconnects its clusters.
        files.extend(registry::kubeconfig_files(&self.config));
        files
    }

    /// Loads the file again and applies it; an invalid file changes nothing.
    async fn reload(&mut self) {
        let Some(path) = self.path.clone() else { return };
        let new = match Config::load(&path) {
            Ok(c) => c,
            Err(e) => {
                self.reloads.get_or_create(&ReloadLabels { result: "rejected".into() }).inc();
                error!("configuration reload rejected, the previous configuration keeps serving:\n{e}");
                return;
            }
        };
        self.apply(new).await;
    }

    /// Applies a validated configuration to every running part.
    pub(crate) async fn apply(&mut self, new: Config) {
        if new.admin.listen != self.config.admin.listen {
            warn!("admin.listen changed; it takes effect after a restart");
        }
        if new.fleet != self.config.fleet {
            warn!("[fleet] changed; it takes effect after a restart");
        }
        if new.dns.listen != self.config.dns.listen || new.dns.enabled != self.config.dns.enabled {
            warn!("dns.listen or dns.enabled changed; listeners change after a restart");
        }
        if let Some(sim) = &self.sim {
            let mut added = false;
            for c in simulated(&new) {
                if sim.cluster(&c.name).is_none() {
                    match sim.add_cluster(spec(&new, c)).await {
                        Ok(_) => added = true,
                        Err(e) => error!(cluster = %c.name, "cannot start simulated cluster: {e}"),
                    }
                }
            }
            if added
                && let Some(kc) = &self.sim_link.kubeconfig
                && let Err(e) = sim.write_kubeconfig(kc)
            {
                error!("cannot rewrite {}: {e}", kc.display());
            }
        }
        let errors = self.discovery.apply(&new).await;
        for e in &errors {
            error!("{}", e.with_causes());
        }
        let mut ok = errors.is_empty();
        if let Some(h) = &self.health {
            h.reload(&new);
        }
        if let Some(dns) = &self.dns
            && let Err(e) = dns.reload(&new)
        {
            ok = false;
            error!("DNS reload incomplete, affected zones keep their previous content: {e}");
        }
        if let Some(proxy) = &self.proxy
            && let Err(e) = proxy.reload(&new)
        {
            ok = false;
            error!("proxy reload incomplete, the previous routes and certificates keep serving: {e}");
        }
        if let Some(sync) = &self.sync {
            sync.reload(&new);
        }
        let result = if ok { "applied" } else { "partial" };
        self.reloads.get_or_create(&ReloadLabels { result: result.into() }).inc();
        info!(result, "configuration reloaded");
        self.config = new;
    }

    /// Runs until Ctrl-C or SIGTERM, reloading on SIGHUP and on file changes.
    pub(crate) async fn run(mut self) -> Result<()> {
        let mut hup = signal(SignalKind::hangup()).context("cannot install the SIGHUP handler")?;
        let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
        let mut files = self.watched_files();
        let (mut watcher, mut changes) = watch(&files);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = hup.recv() => info!("SIGHUP: reloading the configuration"),
                Some(()) = changes.recv() => info!("configuration files changed: reloading"),
            }
            self.reload().await;
            // The watcher is replaced only when the set of files changed: replacing it
            // every time lost an edit made while a reload was running.
            let now = self.watched_files();
            if now != files {
                let (w, c) = watch(&now);
                let pending = changes.try_recv().is_ok();
                (watcher, changes, files) = (w, c, now);
                if pending {
                    info!("configuration files changed during the reload: reloading again");
                    self.reload().await;
                }
            }
        }
        drop(watcher);
        self.shutdown().await;
        Ok(())
    }

    pub(crate) async fn shutdown(mut self) {
        info!("shutting down");
        // In order: the admin endpoint, sync (releasing its Lease), the proxy's drain
        // (DNS keeps answering meanwhile), DNS, health checks; then whatever else holds
        // a child of the server's token.
        self.admin_stop.cancel();
        if let Some(task) = self.admin_task.take() {
            let _ = task.await;
        }
        if let Some(sync) = &self.sync {
            sync.shutdown().await;
        }
        if let Some(proxy) = &self.proxy {
            proxy.shutdown().await;
        }
        if let Some(dns) = &self.dns {
            dns.shutdown().await;
        }
        if let Some(h) = self.health.take() {
            h.shutdown().await;
        }
        self.shutdown.cancel();
        if let Some(fleet) = &self.fleet
            && tokio::time::timeout(FLEET_STOP_WAIT, fleet.stopped()).await.is_err()
        {
            warn!("fleet: gossip did not stop in time");
        }
        self.discovery.shutdown();
        if let Some(sim) = &self.sim {
            sim.shutdown().await;
        }
        info!("stopped");
    }
}

/// Resource sync, when `[sync]` names a host cluster: its client and the module, stopped
/// by a child of `shutdown`.
async fn start_sync(
    config: &Config,
    sim_link: &SimulatorLink,
    discovery: &Arc<Discovery>,
    registry: &mut Registry,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<SyncModule>>> {
    let Some(host) = config.sync.host.as_ref().filter(|_| config.sync.enabled) else { return Ok(None) };
    let client = registry::cluster_client(config, host, sim_link).await?;
    let sync = SyncModule::start(config, client, discovery.clone(), registry, shutdown.child_token()).await?;
    Ok(Some(Arc::new(sync)))
}

/// Binds the admin endpoint and serves `state` on it until `stop`.
async fn start_admin(
    config: &Config,
    state: AdminState,
    stop: CancellationToken,
) -> Result<tokio::task::JoinHandle<()>> {
    let listener = admin::bind(config.admin.listen).await?;
    info!(address = %config.admin.listen, "admin endpoint listening");
    let state = Arc::new(state);
    Ok(tokio::spawn(async move {
        if let Err(e) = admin::serve(listener, state, stop.cancelled_owned()).await {
            error!("admin endpoint failed: {e}");
        }
    }))
}

/// How long shutdown waits for the fleet's gossip to stop and its socket to close.
const FLEET_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(2);
/// Longest a starting instance with seeds waits to hear the fleet before it probes and
/// answers: with the default 500 ms gossip interval a peer answers within a round or
/// two. A fleet's first instance (no peer up yet) starts after this.
const FLEET_JOIN_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Joins the fleet `[fleet]` describes (its key file relative to the configuration's
/// directory), registers its metrics, and waits, at most [`FLEET_JOIN_WAIT`] or
/// `stale_after`, until a live peer's observations have arrived.
async fn start_fleet(config: &Config, registry: &mut Registry, shutdown: &CancellationToken) -> Result<Fleet> {
    let Some(section) = &config.fleet else { anyhow::bail!("no [fleet] section") };
    let mut section = section.clone();
    section.key_file = section.key_file.as_deref().map(|p| config.resolve(p));
    let fleet = Fleet::start(&section, shutdown.child_token()).await.context("cannot join the fleet ([fleet])")?;
    fleet.register_metrics(registry);
    info!(id = %section.id, region = %section.region, gossip = %fleet.local_addr(), quorum = %section.quorum, "fleet: gossiping");
    if section.seeds.is_empty() {
        return Ok(fleet);
    }
    let deadline = tokio::time::Instant::now() + FLEET_JOIN_WAIT.min(section.stale_after);
    loop {
        let peers = fleet.instances().iter().filter(|i| i.alive && !i.this_instance).count();
        if peers > 0 && fleet.caught_up() {
            info!(peers, "fleet: caught up with the fleet's observations");
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            warn!(peers, "fleet: starting before the fleet's observations arrived (no peer answered yet)");
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(fleet)
}

/// Starts the simulated clusters the configuration names, if any, and writes their
/// kubeconfig into the state directory.
async fn start_simulator(
    config: &Config,
    state_dir: &Path,
    lock: Option<StateLock>,
) -> Result<(Option<Arc<Simulator>>, SimulatorLink, Option<StateLock>)> {
    let mut sim_link = SimulatorLink::default();
    let wanted = simulated(config);
    if wanted.is_empty() {
        return Ok((None, sim_link, lock));
    }
    let lock = match lock {
        Some(l) => l,
        None => StateLock::acquire(state_dir)?,
    };
    let sim = Arc::new(Simulator::new(SimOptions { state_dir: Some(state_dir.to_owned()), ..SimOptions::default() }));
    for c in wanted {
        sim.add_cluster(spec(config, c)).await.with_context(|| format!("cannot start simulated cluster {}", c.name))?;
    }
    let kubeconfig = state_dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).with_context(|| format!("cannot write {}", kubeconfig.display()))?;
    sim_link.kubeconfig = Some(kubeconfig);
    Ok((Some(sim), sim_link, Some(lock)))
}

/// The status sections of the running parts, for the admin endpoint.
fn admin_sections(
    dns: Option<&Arc<DnsServer>>,
    health: &HealthChecker,
    proxy: Option<&Arc<Proxy>>,
    sync: Option<&Arc<SyncModule>>,
) -> Vec<(&'static str, Section)> {
    let mut sections: Vec<(&'static str, Section)> = Vec::new();
    if let Some(d) = dns.cloned() {
        sections.push((
            "dns",
            Box::new(move || {
                serde_json::json!({
                    "names": d.names(),
                    "geoip": d.geo_status().to_string(),
                    "ranking_problems": d.ranking_problems(),
                    "transfers": d.transfer_status(),
                })
            }),
        ));
    }
    let checks = health.view();
    sections.push((
        "health",
        Box::new(move || serde_json::json!({"targets": checks.targets(), "problems": checks.problems()})),
    ));
    if let Some(p) = proxy.cloned() {
        sections.push(("lb", Box::new(move || p.status())));
    }
    if let Some(s) = sync.cloned() {
        sections.push(("sync", Box::new(move || s.status())));
    }
    sections
}

/// Watches `files` for changes; without a watcher (none to watch, or inotify refused) the
/// channel never fires and SIGHUP still reloads.
fn watch(files: &[PathBuf]) -> (Option<FileWatcher>, tokio::sync::mpsc::Receiver<()>) {
    if files.is_empty() {
        return (None, tokio::sync::mpsc::channel(1).1);
    }
    match FileWatcher::new(files) {
        Ok((w, rx)) => (Some(w), rx),
        Err(e) => {
            warn!("cannot watch configuration files ({e}); reload with SIGHUP");
            (None, tokio::sync::mpsc::channel(1).1)
        }
    }
}

fn log_settings(config: &Config, log_override: Option<LogFormat>) -> (LogFormat, String) {
    (log_override.unwrap_or(config.log.format), config.log.level.clone())
}

/// `meridian serve`.
pub(crate) async fn serve(path: PathBuf, state_dir: Option<PathBuf>, log_override: Option<LogFormat>) -> Result<()> {
    let config = load_or_report(&path)?;
    let (format, level) = log_settings(&config, log_override);
    crate::init_logging(format, &level);
    let state_dir = state_dir.unwrap_or_else(|| default_state_dir("serve"));
    let server = Server::start(config, Some(path), state_dir, None).await?;
    server.run().await
}

/// Loads a config, printing each error on its own line.
pub(crate) fn load_or_report(path: &Path) -> Result<Config> {
    Config::load(path).map_err(|errors| {
        for e in &errors.0 {
            eprintln!("{e}");
        }
        anyhow::anyhow!("{} has {} error(s)", path.display(), errors.0.len())
    })
}

pub(crate) fn start_logging(config: &Config, log_override: Option<LogFormat>) {
    let (format, level) = log_settings(config, log_override);
    crate::init_logging(format, &level);
}

/// `meridian sim`: simulated clusters only.
pub(crate) async fn sim_only(names: Vec<String>, state_dir: Option<PathBuf>) -> Result<()> {
    let demo = Config::demo();
    let mut specs: Vec<ClusterSpec> = Vec::new();
    if names.is_empty() {
        specs.extend(simulated(&demo).into_iter().map(|c| spec(&demo, c)));
    } else {
        for n in &names {
            if !meridian_config::is_dns_label(n) {
                anyhow::bail!("cluster name {n:?} must be a DNS label (a-z, 0-9, '-')");
            }
            let known = simulated(&demo).into_iter().find(|c| &c.name == n);
            specs.push(known.map(|c| spec(&demo, c)).unwrap_or(ClusterSpec {
                name: n.clone(),
                port: 0,
                region: String::new(),
                zone: String::new(),
                lb_cidr: None,
                workload_controllers: true,
                secure: false,
                http1_only: false,
            }));
        }
    }
    let state_dir = state_dir.unwrap_or_else(|| default_state_dir("sim"));
    let _lock = StateLock::acquire(&state_dir)?;
    let sim = Simulator::new(SimOptions { state_dir: Some(state_dir.clone()), ..SimOptions::default() });
    for s in specs {
        let name = s.name.clone();
        let c = sim.add_cluster(s).await.with_context(|| format!("cannot start simulated cluster {name}"))?;
        println!("cluster {:<10} {}", c.name(), c.url());
    }
    let kubeconfig = state_dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    println!("kubeconfig: {}", kubeconfig.display());
    println!("try: kubectl --kubeconfig {} get nodes", kubeconfig.display());
    // Ctrl-C or SIGTERM (how a process is stopped) both save the state.
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
