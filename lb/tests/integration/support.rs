//! Test support: a table with clusters and services, real HTTP backends (small hyper
//! servers or nginx processes) on distinct loopback addresses, the proxy, and real
//! clients (curl, h2load) run as processes.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use meridian_config::Config;
use meridian_lb::Proxy;
use meridian_model::table::{ClusterMeta, ObjectKey, Port, Protocol, Shard, Table, TableWriter, Update};
use meridian_testkit::addr::shared_port;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// Fails with the Debian package to install when a tool is missing (never skips).
pub(crate) fn require(tool: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(found, "`{tool}` is missing: install the Debian package `{package}` (apt-get install -y {package})");
}

/// A random loopback address in 127.210.0.0/16, unlikely to clash with parallel tests.
pub(crate) fn loopback() -> IpAddr {
    meridian_testkit::addr::loopback_ip(210).into()
}

pub(crate) fn cluster(name: &str, region: &str, order: usize) -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta { region: Some(region.into()), ..ClusterMeta::new(name, order) })
}

pub(crate) fn shard(cluster: &Arc<ClusterMeta>, addrs: &[IpAddr], port: u16, healthy: bool) -> Shard {
    Shard {
        ports: vec![Port { name: Some("http".into()), port, protocol: Protocol::Tcp }],
        ready_endpoints: u32::from(healthy),
        total_endpoints: 1,
        ..Shard::new(cluster.clone(), addrs.to_vec())
    }
}

/// A table and its writer, with helpers to publish services.
pub(crate) struct World {
    pub(crate) table: Table,
    pub(crate) writer: TableWriter,
}

impl World {
    pub(crate) fn new(clusters: &[Arc<ClusterMeta>]) -> Self {
        let (table, mut writer) = Table::new();
        writer.apply(clusters.iter().cloned().map(Update::Cluster));
        Self { table, writer }
    }

    /// Publishes (or replaces) the shard of `ns/name` in `cluster`.
    pub(crate) fn service(
        &mut self,
        ns: &str,
        name: &str,
        cluster: &Arc<ClusterMeta>,
        addrs: &[IpAddr],
        port: u16,
        healthy: bool,
    ) {
        self.writer.apply([Update::Service {
            cluster: cluster.name.clone(),
            key: ObjectKey::new(ns, name),
            shard: Some(shard(cluster, addrs, port, healthy)),
        }]);
    }
}

/// An Ingress in `cluster` routing `host` (every path) to its Service `web` on `port`,
/// published as `shop/web`.
pub(crate) fn publish_ingress(world: &mut World, cluster: &Arc<ClusterMeta>, host: &str, port: u16) {
    use meridian_model::table::{IngressPath, IngressShard};
    let path = IngressPath {
        host: host.into(),
        path: "/".into(),
        path_type: "Prefix".into(),
        service: "web".into(),
        port,
        port_name: None,
    };
    let shard = IngressShard {
        cluster: cluster.clone(),
        addresses: Vec::new(),
        hostnames: Vec::new(),
        paths: vec![path],
        annotations: Default::default(),
        stale: false,
    };
    world.writer.apply([Update::Ingress {
        cluster: cluster.name.clone(),
        key: ObjectKey::new("shop", "web"),
        shard: Some(shard),
    }]);
}

/// `[lb]` test configuration: listeners on port 0, plus `extra` TOML lines for `[lb]`.
pub(crate) fn config(clusters: &[Arc<ClusterMeta>], lb: &str) -> Config {
    let mut text = String::from("name = \"test\"\ndns_zone = \"meridian.test\"\n");
    for c in clusters {
        text.push_str(&format!(
            "[[clusters]]\nname = \"{}\"\nsimulated = true\nregion = \"{}\"\n",
            c.name,
            c.region.as_deref().unwrap_or("r")
        ));
    }
    text.push_str("[lb]\nenabled = true\nlisten = [\"127.0.0.1:0\"]\nlisten_tls = [\"127.0.0.1:0\"]\n");
    text.push_str(lb);
    match Config::parse(&text, Path::new("<test>"), Path::new("/")) {
        Ok(c) => c,
        Err(e) => panic!("test config is invalid: {e}\n{text}"),
    }
}

pub(crate) struct Running {
    pub(crate) proxy: Proxy,
    pub(crate) http: SocketAddr,
    pub(crate) https: SocketAddr,
    pub(crate) registry: prometheus_client::registry::Registry,
}

pub(crate) async fn start(config: &Config, table: &Table) -> Result<Running> {
    let mut registry = prometheus_client::registry::Registry::default();
    let proxy = Proxy::start(config, table.clone(), &mut registry, tokio_util::sync::CancellationToken::new()).await?;
    let addrs = proxy.local_addrs();
    let (Some(http), Some(https)) = (addrs.first().copied(), addrs.get(1).copied()) else {
        bail!("expected one plain and one TLS listener, got {addrs:?}");
    };
    Ok(Running { proxy, http, https, registry })
}

impl Running {
    pub(crate) fn metrics(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn full(s: String) -> Body {
    Full::new(Bytes::from(s)).map_err(|never| match never {}).boxed()
}

/// A backend named `name` at `addr`: answers `<name> <path>`; `/headers` answers the
/// request headers; `/echo` streams the request body back; `/collect` reads the whole
/// body, then sends it back; `/status/<code>` answers that
/// status; `/slow` waits 300 ms. Dropping it stops it and closes its connections.
pub(crate) struct Backend {
    pub(crate) addr: SocketAddr,
    /// Dropping the set aborts the server and its connections.
    _tasks: JoinSet<()>,
}

impl Backend {
    pub(crate) async fn start(name: &str, addr: SocketAddr) -> Result<Backend> {
        let listener = TcpListener::bind(addr).await.with_context(|| format!("bind backend {addr}"))?;
        let name: Arc<str> = name.into();
        let mut tasks = JoinSet::new();
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let name = name.clone();
                conns.spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let name = name.clone();
                        async move { Ok::<_, Infallible>(answer(&name, req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), svc)
                        .await;
                });
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Backend { addr, _tasks: tasks })
    }
}

async fn answer(name: &str, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_owned();
    if path == "/headers" {
        let mut s = String::new();
        for (k, v) in req.headers() {
            s.push_str(&format!("{k}: {}\n", v.to_str().unwrap_or("?")));
        }
        return Response::new(full(s));
    }
    if path == "/echo" {
        return Response::new(req.into_body().boxed());
    }
    if path == "/collect" {
        // The whole body first, then the answer: a body that fails never gets one.
        return match req.into_body().collect().await {
            Ok(body) => Response::new(Full::new(body.to_bytes()).map_err(|never| match never {}).boxed()),
            Err(_) => Response::new(full(String::from("body failed\n"))),
        };
    }
    if path == "/slow" {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    if let Some(code) = path.strip_prefix("/status/").and_then(|c| c.parse::<u16>().ok()) {
        let mut r = Response::new(full(format!("{name} {path}\n")));
        *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
        return r;
    }
    Response::new(full(format!("{name} {path}\n")))
}

/// Starts backends named `name` on every address (same port), retrying on another port
/// when one is taken.
pub(crate) async fn backends(names: &[&str]) -> Result<(Vec<Backend>, u16)> {
    for _ in 0..10 {
        let p = shared_port();
        let mut out = Vec::new();
        for n in names {
            match Backend::start(n, SocketAddr::new(loopback(), p)).await {
                Ok(b) => out.push(b),
                Err(_) => break,
            }
        }
        if out.len() == names.len() {
            return Ok((out, p));
        }
    }
    bail!("could not bind test backends")
}

/// Output of `curl`: status code and body.
pub(crate) struct CurlOut {
    pub(crate) status: u16,
    pub(crate) body: String,
    /// `1.1` or `2`.
    pub(crate) version: String,
    pub(crate) stderr: String,
}

/// A proxy routing `host` to the backend at `ip:port` in one cluster, with `lb` appended
/// to its `[lb]` section; the world is returned to keep the table alive.
pub(crate) async fn proxy_to(host: &str, ip: IpAddr, port: u16, lb: &str) -> Result<(Running, World)> {
    let c = cluster("c1", "r1", 0);
    let mut world = World::new(std::slice::from_ref(&c));
    world.service("shop", "web", &c, &[ip], port, true);
    let cfg = config(&[c], &format!("[[lb.routes]]\nhost = \"{host}\"\nservice = \"shop/web\"\n{lb}"));
    let p = start(&cfg, &world.table).await?;
    Ok((p, world))
}

/// A proxy routing `host` to one support backend (`/echo`, `/headers`, `<name> <path>`).
pub(crate) async fn proxy_to_backend(host: &str, lb: &str) -> Result<(Running, World, Vec<Backend>)> {
    let (backends, port) = backends(&["c1"]).await?;
    let (p, world) = proxy_to(host, backends[0].addr.ip(), port, lb).await?;
    Ok((p, world, backends))
}

/// POSTs `data` to `/echo` through the proxy at `http` with the extra curl arguments
/// `extra`; returns curl's status and stderr, and the body that came back.
pub(crate) async fn echo_through(
    http: SocketAddr,
    host: &str,
    extra: &[&str],
    data: &[u8],
) -> Result<(CurlOut, Vec<u8>)> {
    let dir = tempfile::tempdir()?;
    let (file, out_file) = (dir.path().join("body"), dir.path().join("out"));
    std::fs::write(&file, data)?;
    let host = format!("Host: {host}");
    let (at_file, out_path, url) =
        (format!("@{}", file.display()), out_file.display().to_string(), format!("http://{http}/echo"));
    let mut args = vec!["-H", host.as_str()];
    args.extend(extra);
    args.extend(["--data-binary", &at_file, "-o", &out_path, &url]);
    let out = curl(&args).await?;
    let echoed = std::fs::read(&out_file).unwrap_or_default();
    Ok((out, echoed))
}

/// Runs curl with `args`; the last line of stdout is `%{http_code} %{http_version}`.
pub(crate) async fn curl(args: &[&str]) -> Result<CurlOut> {
    require("curl", "curl");
    let out = tokio::process::Command::new("curl")
        .args(["-s", "-S", "--max-time", "10", "-w", "\n%{http_code} %{http_version}"])
        .args(args)
        .output()
        .await
        .context("run curl")?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = stdout.rsplit_once('\n').unwrap_or(("", &stdout));
    let (code, version) = tail.split_once(' ').unwrap_or((tail, ""));
    Ok(CurlOut {
        status: code.trim().parse().unwrap_or(0),
        version: version.trim().to_owned(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// `curl -H 'Host: host' http://proxy/path`.
pub(crate) async fn get(proxy: SocketAddr, host: &str, path: &str) -> Result<CurlOut> {
    curl(&["-H", &format!("Host: {host}"), &format!("http://{proxy}{path}")]).await
}

/// `count` GETs over one keep-alive connection: `<body without newlines>|<status>` each.
pub(crate) async fn get_many(proxy: SocketAddr, host: &str, path: &str, count: usize) -> Result<Vec<String>> {
    require("curl", "curl");
    let url = format!("http://{proxy}{path}");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args(["-s", "-S", "--max-time", "30", "-H", &format!("Host: {host}"), "-w", "|%{http_code}\u{1e}"]);
    for _ in 0..count {
        cmd.arg(&url);
    }
    let out = cmd.output().await.context("run curl")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    Ok(text.split('\u{1e}').filter(|s| !s.is_empty()).map(|s| s.replace('\n', "")).collect())
}

/// h2load's summary counts.
#[derive(Debug, Default)]
pub(crate) struct H2load {
    pub(crate) total: u64,
    pub(crate) succeeded: u64,
    pub(crate) failed: u64,
    pub(crate) errored: u64,
    pub(crate) status_5xx: u64,
    pub(crate) status_2xx: u64,
    pub(crate) protocol: String,
    pub(crate) output: String,
}

pub(crate) async fn h2load(args: &[&str]) -> Result<H2load> {
    require("h2load", "nghttp2-client");
    let out = tokio::process::Command::new("h2load").args(args).output().await.context("run h2load")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut r = H2load { output: text.clone(), ..Default::default() };
    let num = |line: &str, word: &str| -> u64 {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        words.windows(2).find(|w| w[1] == word).and_then(|w| w[0].parse().ok()).unwrap_or(0)
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("requests:") {
            r.total = num(rest, "total");
            r.succeeded = num(rest, "succeeded");
            r.failed = num(rest, "failed");
            r.errored = num(rest, "errored");
        } else if let Some(rest) = line.strip_prefix("status codes:") {
            r.status_2xx = num(rest, "2xx");
            r.status_5xx = num(rest, "5xx");
        } else if let Some(p) = line.strip_prefix("Application protocol:") {
            r.protocol = p.trim().to_owned();
        }
    }
    Ok(r)
}

/// An nginx process answering `<name> <uri>` on `addr`: the shared test-support
/// [`meridian_tests::Nginx`], started and restarted off the runtime's thread, because the
/// proxy under test runs on that same runtime and must keep serving meanwhile.
pub(crate) struct Nginx {
    pub(crate) addr: SocketAddr,
    inner: Option<meridian_tests::Nginx>,
}

impl Nginx {
    pub(crate) async fn start(name: &str, addr: SocketAddr) -> Result<Nginx> {
        let name = name.to_owned();
        let inner = tokio::task::spawn_blocking(move || meridian_tests::Nginx::start(&name, addr)).await??;
        Ok(Nginx { addr, inner: Some(inner) })
    }

    /// Kills the process (single-process mode: nothing survives it).
    pub(crate) async fn kill(&mut self) {
        if let Some(n) = self.inner.as_mut() {
            n.kill();
        }
    }

    pub(crate) async fn restart(&mut self) -> Result<()> {
        let mut n = self.inner.take().context("nginx handle lost")?;
        let (n, result) = tokio::task::spawn_blocking(move || {
            let r = n.restart();
            (n, r)
        })
        .await?;
        self.inner = Some(n);
        result
    }
}

/// A self-signed certificate for `names`, written as PEM files into `dir`.
pub(crate) fn write_cert(dir: &Path, stem: &str, names: &[&str]) -> Result<(PathBuf, PathBuf)> {
    let generated = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, generated.cert.pem())?;
    std::fs::write(&key, generated.signing_key.serialize_pem())?;
    Ok((cert, key))
}
