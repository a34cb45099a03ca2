//! Shared set-up: a simulator with a control plane `host` and members `m1`..`m3`, a
//! discovery registry over the members, sync started against them, and kubectl. Any of
//! the clusters can be put behind a fault proxy ([`Options::proxied`]): sync and
//! discovery then reach it through the proxy, kubectl still directly.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use meridian_config::Config;
use meridian_discovery::table::{ClusterState, Snapshot};
use meridian_discovery::{Discovery, Metrics, SimulatorLink, registry};
use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use meridian_sync::ResourceSync;
use meridian_testkit::FaultProxy;
use meridian_testkit::wait::{eventually, eventually_sync};
use prometheus_client::registry::Registry;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// Member labels: placement selectors in the tests match these.
pub(crate) const MEMBERS: &str = r#"
[[clusters]]
name = "m1"
simulated = true
labels = { continent = "europe", tier = "primary" }

[[clusters]]
name = "m2"
simulated = true
labels = { continent = "america", tier = "primary" }

[[clusters]]
name = "m3"
simulated = true
labels = { continent = "asia", tier = "secondary" }
"#;

/// What a test may change in the set-up; [`Options::default`] is what most tests use.
pub(crate) struct Options {
    /// Clusters (`host` or members) that sync and discovery reach through a
    /// [`FaultProxy`] each; kubectl reaches every cluster directly.
    pub(crate) proxied: &'static [&'static str],
    /// Discovery's failed `/readyz` probes (one per 200 ms) before a cluster is Offline.
    pub(crate) offline_after: u32,
    pub(crate) deletion_timeout: &'static str,
    pub(crate) request_timeout: &'static str,
    /// More lines of the `[sync]` section (`extra_kinds = [...]`).
    pub(crate) sync_lines: &'static str,
}

impl Default for Options {
    fn default() -> Self {
        // The request timeout is generous for loopback, so that a busy test machine does
        // not make the tests without faults meet it.
        Self { proxied: &[], offline_after: 1, deletion_timeout: "3s", request_timeout: "2s", sync_lines: "" }
    }
}

/// A test configuration: fast probes, short Lease, resync and deletion timeout.
pub(crate) fn config_text(members: &str) -> String {
    config_text_with(members, &Options::default())
}

pub(crate) fn config_text_with(members: &str, o: &Options) -> String {
    format!(
        r#"# test federation
name = "t"
dns_zone = "t.test"
{members}
[discovery]
probe_interval = "200ms"
probe_timeout = "500ms"
offline_after = {offline_after}

[sync]
enabled = true
resync_interval = "3s"
deletion_timeout = "{deletion_timeout}"
lease_duration = "2s"
retry_max = "1s"
request_timeout = "{request_timeout}"
{sync_lines}

[sync.host]
name = "host"
simulated = true
"#,
        offline_after = o.offline_after,
        deletion_timeout = o.deletion_timeout,
        request_timeout = o.request_timeout,
        sync_lines = o.sync_lines,
    )
}

pub(crate) struct Env {
    pub(crate) sim: Simulator,
    pub(crate) dir: tempfile::TempDir,
    /// Reaches every cluster directly: kubectl's.
    pub(crate) kubeconfig: PathBuf,
    /// What sync and discovery use: proxied clusters point at their proxy.
    pub(crate) sync_kubeconfig: PathBuf,
    pub(crate) config: Config,
    pub(crate) discovery: Arc<Discovery>,
    pub(crate) sync: Option<ResourceSync>,
    /// The first sync replica's metrics.
    pub(crate) metrics: Registry,
    /// The fault proxy in front of each proxied cluster, by cluster name.
    pub(crate) proxies: BTreeMap<String, FaultProxy>,
}

impl Env {
    /// Starts everything and waits until the members are Ready and sync leads.
    pub(crate) async fn start() -> Result<Env> {
        Self::start_with(Options::default()).await
    }

    pub(crate) async fn start_with(options: Options) -> Result<Env> {
        let _ = tracing_init();
        let sim = Simulator::new(SimOptions { backends: false, ..SimOptions::default() });
        for name in ["host", "m1", "m2", "m3"] {
            // A federation control plane runs no workload controllers: sync's rollup is
            // the only writer of the host's workload status.
            let spec = ClusterSpec::new(name);
            let spec = if name == "host" { spec.without_workload_controllers() } else { spec };
            sim.add_cluster(spec).await?;
        }
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)?;
        let mut proxies = BTreeMap::new();
        for name in options.proxied {
            let cluster = sim.cluster(name).with_context(|| format!("no cluster {name}"))?;
            let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, cluster.port()));
            proxies.insert((*name).to_owned(), FaultProxy::start(upstream).await?);
        }
        let sync_kubeconfig = if proxies.is_empty() {
            kubeconfig.clone()
        } else {
            let mut kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
            for c in &mut kc.clusters {
                if let (Some(proxy), Some(cluster)) = (proxies.get(&c.name), c.cluster.as_mut()) {
                    cluster.server = Some(proxy.url());
                }
            }
            let path = dir.path().join("sync-kubeconfig");
            // JSON is YAML: kube reads it as a kubeconfig.
            std::fs::write(&path, serde_json::to_string(&kc)?)?;
            path
        };
        let text = config_text_with(MEMBERS, &options);
        let config = Config::parse(&text, Path::new("test.toml"), dir.path())?;
        let discovery = Discovery::new(Metrics::default(), SimulatorLink { kubeconfig: Some(sync_kubeconfig.clone()) });
        let errors = discovery.apply(&config).await;
        if !errors.is_empty() {
            bail!("discovery: {errors:?}");
        }
        let mut env = Env {
            sim,
            dir,
            kubeconfig,
            sync_kubeconfig,
            config,
            discovery,
            sync: None,
            metrics: Registry::default(),
            proxies,
        };
        let mut metrics = Registry::default();
        env.sync = Some(env.start_sync_into(&mut metrics).await?);
        env.metrics = metrics;
        env.wait_ready(&["m1", "m2", "m3"]).await?;
        let sync = env.sync()?;
        eventually_sync(Duration::from_secs(10), "sync leads", || (sync.status()["leader"] == true).then_some(()))
            .await?;
        Ok(env)
    }

    /// Starts one more sync replica against the same control plane and members.
    pub(crate) async fn start_sync(&self) -> Result<ResourceSync> {
        self.start_sync_into(&mut Registry::default()).await
    }

    async fn start_sync_into(&self, metrics: &mut Registry) -> Result<ResourceSync> {
        let host = registry::connect("host", &self.sync_kubeconfig, Some("host")).await?;
        Ok(ResourceSync::start(&self.config, host, self.discovery.clone(), metrics, Default::default()).await?)
    }

    /// A client of one cluster, reached directly (as kubectl reaches it).
    pub(crate) async fn client(&self, cluster: &str) -> Result<kube::Client> {
        Ok(registry::connect(cluster, &self.kubeconfig, Some(cluster)).await?)
    }

    /// The fault proxy in front of `cluster`.
    pub(crate) fn proxy(&self, cluster: &str) -> Result<&FaultProxy> {
        self.proxies.get(cluster).with_context(|| format!("{cluster} is not behind a fault proxy"))
    }

    /// The sum of a metric's samples whose labels include all of `labels`, from the
    /// first replica's registry in the Prometheus text format.
    pub(crate) fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Result<f64> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.metrics)?;
        let mut sum = 0.0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            let wanted = labels.iter().all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            if metric == name && wanted {
                sum += value.parse::<f64>()?;
            }
        }
        Ok(sum)
    }

    pub(crate) fn sync(&self) -> Result<&ResourceSync> {
        self.sync.as_ref().context("sync is not running")
    }

    pub(crate) async fn wait_ready(&self, clusters: &[&str]) -> Result<()> {
        let table = self.discovery.table();
        let ready = |snap: &Snapshot| {
            clusters.iter().all(|c| snap.clusters.get(*c).is_some_and(|e| e.state == ClusterState::Ready))
        };
        Ok(eventually_sync(Duration::from_secs(10), "members Ready", || ready(&table.snapshot()).then_some(())).await?)
    }

    /// Runs kubectl against the simulator's kubeconfig.
    pub(crate) async fn kubectl(&self, args: &[&str]) -> Result<String> {
        self.kubectl_stdin(args, None).await
    }

    pub(crate) async fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Result<String> {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("kubectl is not installed; these tests need it (Debian package `kubernetes-client`)")
            }
            Err(e) => return Err(e.into()),
        };
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes()).await?;
        }
        let out = child.wait_with_output().await?;
        if !out.status.success() {
            bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `kubectl --context <context> apply -f -` with `yaml`.
    pub(crate) async fn apply(&self, context: &str, yaml: &str) -> Result<String> {
        self.kubectl_stdin(&["--context", context, "apply", "-f", "-"], Some(yaml)).await
    }

    /// An object in a cluster, read with kubectl as JSON; `None` when it does not exist.
    pub(crate) async fn get(&self, context: &str, kind: &str, name: &str) -> Result<Option<Value>> {
        match self.kubectl(&["--context", context, "get", kind, name, "-o", "json", "--ignore-not-found"]).await {
            Ok(out) if out.trim().is_empty() => Ok(None),
            Ok(out) => Ok(Some(serde_json::from_str(&out)?)),
            Err(e) => Err(e),
        }
    }

    /// The object's `meridian.io/sync-status` annotation on the control plane.
    pub(crate) async fn sync_status(&self, kind: &str, name: &str) -> Result<Value> {
        let obj = self.get("host", kind, name).await?.context("object missing from the control plane")?;
        let text = obj
            .pointer("/metadata/annotations/meridian.io~1sync-status")
            .and_then(Value::as_str)
            .unwrap_or("{}")
            .to_owned();
        Ok(serde_json::from_str(&text)?)
    }

    pub(crate) async fn shutdown(mut self) {
        if let Some(s) = self.sync.take() {
            s.shutdown().await;
        }
        self.discovery.shutdown();
        self.sim.shutdown().await;
    }
}

/// Polls an async getter until `check` accepts its value; returns that value. A value
/// refused, or the getter's error, is the last observation a timeout reports.
pub(crate) async fn wait_for<T, F, Fut, C>(what: &str, timeout: Duration, mut get: F, check: C) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
    C: Fn(&T) -> bool,
    T: std::fmt::Debug,
{
    let check = &check;
    let seen = |got: Result<T>| match got {
        Ok(v) if check(&v) => Ok(v),
        Ok(v) => Err(format!("{v:?}")),
        Err(e) => Err(format!("error: {e:#}")),
    };
    Ok(eventually(timeout, what, || {
        let got = get();
        async move { seen(got.await) }
    })
    .await?)
}

fn tracing_init() -> Result<(), Box<dyn std::error::Error + Send + std::marker::Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init()
}
