//! Shared set-up: a simulator with a kubeconfig in a temp dir, and a kubectl runner.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use meridian_sim::{ClusterSpec, SimCluster, SimOptions, Simulator};
use serde_json::Value;

/// Tests in this binary run concurrently in one process; each simulator gets its own
/// load-balancer range so backends never collide.
static NEXT_POOL: AtomicU8 = AtomicU8::new(0);

pub(crate) struct Env {
    pub(crate) sim: Simulator,
    pub(crate) kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Env {
    pub(crate) async fn start(names: &[&str]) -> Result<Self> {
        Self::start_with(names, SimOptions { history: 1000, backends: true, state_dir: None }).await
    }

    pub(crate) async fn start_with(names: &[&str], opts: SimOptions) -> Result<Self> {
        let sim = Simulator::new(opts);
        for name in names {
            let pool = 200 + NEXT_POOL.fetch_add(1, Ordering::Relaxed) % 50;
            let spec = ClusterSpec {
                lb_cidr: Some(format!("127.{pool}.0.0/16")),
                ..ClusterSpec::new(*name).with_topology("eu-west", "eu-west-1a")
            };
            sim.add_cluster(spec).await?;
        }
        let dir = tempfile::tempdir()?;
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig)?;
        Ok(Self { sim, kubeconfig, _dir: dir })
    }

    pub(crate) fn cluster(&self, name: &str) -> Result<Arc<SimCluster>> {
        self.sim.cluster(name).context("cluster missing")
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new("kubectl");
        // A discovery cache of its own: kubectl keeps one per server address for hours, and
        // an earlier run on the same port may have served other resources (CRDs).
        let cache = self.kubeconfig.with_file_name("kube-cache");
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", cache)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .kill_on_drop(true);
        cmd
    }

    /// A kube-rs client for one cluster, from the kubeconfig.
    pub(crate) async fn client(&self, context: &str) -> Result<kube::Client> {
        let kc = kube::config::Kubeconfig::read_from(&self.kubeconfig)?;
        let opts = kube::config::KubeConfigOptions { context: Some(context.into()), ..Default::default() };
        let cfg = kube::Config::from_custom_kubeconfig(kc, &opts).await?;
        Ok(kube::Client::try_from(cfg)?)
    }

    /// Runs kubectl to completion; fails the test clearly when kubectl is not installed.
    pub(crate) async fn kubectl_output(&self, args: &[&str]) -> Result<std::process::Output> {
        let out = tokio::time::timeout(Duration::from_secs(30), self.command(args).output())
            .await
            .with_context(|| format!("kubectl {args:?} timed out"))?;
        match out {
            Ok(o) => Ok(o),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("kubectl is not on PATH: these integration tests need the real kubectl binary")
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Runs kubectl and returns stdout, failing on a non-zero exit.
    pub(crate) async fn kubectl(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl_output(args).await?;
        if !out.status.success() {
            bail!(
                "kubectl {args:?} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Runs kubectl expecting failure; returns stderr.
    pub(crate) async fn kubectl_err(&self, args: &[&str]) -> Result<String> {
        let out = self.kubectl_output(args).await?;
        if out.status.success() {
            bail!("kubectl {args:?} unexpectedly succeeded: {}", String::from_utf8_lossy(&out.stdout));
        }
        Ok(String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// Spawns a long-running kubectl (e.g. `get -w`) with piped stdout.
    pub(crate) fn spawn_kubectl(&self, args: &[&str]) -> Result<tokio::process::Child> {
        let mut cmd = self.command(args);
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        match cmd.spawn() {
            Ok(c) => Ok(c),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("kubectl is not on PATH: these integration tests need the real kubectl binary")
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes a manifest into the temp dir and returns its path.
    pub(crate) fn manifest(&self, name: &str, yaml: &str) -> Result<String> {
        let path = self.kubeconfig.with_file_name(name);
        std::fs::write(&path, yaml)?;
        Ok(path.to_string_lossy().into_owned())
    }
}

/// How long a test waits for the simulator to converge (a controller's status, a
/// garbage collection, a watch event): it acts within milliseconds, five seconds covers
/// a loaded machine.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

pub(crate) fn lb_service(name: &str, ns: &str, port: u16) -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": port, "targetPort": 8080}]},
    })
}

/// One HTTP/1.1 request to a cluster's API, for what clients hide (the status code):
/// returns the status code and the JSON body.
pub(crate) async fn api_request(
    cluster: &SimCluster,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<(u16, Value)> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let addr = cluster.url().trim_start_matches("http://").to_string();
    let mut s = tokio::net::TcpStream::connect(&addr).await?;
    let payload = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(payload.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut buf)).await??;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text.split_once("\r\n\r\n").context("no end of the response head")?;
    let code = head.split_whitespace().nth(1).context("no status code")?.parse()?;
    Ok((code, serde_json::from_str(body).with_context(|| format!("not JSON: {body}"))?))
}

/// GET over a fresh connection; the whole response as text.
pub(crate) async fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut s = tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(addr)).await??;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    let mut buf = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut buf)).await??;
    Ok(buf)
}
