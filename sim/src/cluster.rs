//! One simulated cluster: its store, controllers, backends and API listener.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

use crate::api::{self, Sub, WriteOpts};
use crate::backends::Backends;
use crate::controllers::{self, services};
use crate::core::Core;
use crate::crd;
use crate::deletion::{self, DeleteOptions};
use crate::error::{ApiError, Error, Result};
use crate::key::{Key, key_for};
use crate::patch::PatchType;
use crate::pools::{Ipv4Pool, Pools};
use crate::resources::{self, ResourceDef};
use crate::store::Store;
use crate::util;

/// Nodes created per cluster: two, so endpoints spread over more than one node name.
const NODES_PER_CLUSTER: usize = 2;

/// A simulated Kubernetes cluster serving its API on `127.0.0.1:<port>`.
pub struct SimCluster {
    core: Arc<Core>,
    /// The accept loop; aborting it closes the listener and every connection it owns.
    server: Mutex<Option<JoinHandle<()>>>,
    controller: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster").field("name", &self.core.name).field("port", &self.core.port()).finish()
    }
}

/// Parses `a.b.c.d/p`, requiring it to lie inside 127.0.0.0/8 so backends can bind it
/// without any interface set-up.
pub(crate) fn parse_lb_cidr(cidr: &str) -> Result<(Ipv4Addr, u8)> {
    let bad = |reason: &str| Error::InvalidCidr { cidr: cidr.to_string(), reason: reason.to_string() };
    let (ip, prefix) = cidr.split_once('/').ok_or_else(|| bad("expected address/prefix"))?;
    let ip: Ipv4Addr = ip.trim().parse().map_err(|_| bad("not an IPv4 address"))?;
    let prefix: u8 = prefix.trim().parse().map_err(|_| bad("bad prefix length"))?;
    if !(8..=30).contains(&prefix) {
        return Err(bad("prefix length must be between 8 and 30"));
    }
    if ip.octets()[0] != 127 {
        return Err(bad("must be inside 127.0.0.0/8"));
    }
    let mask = u32::MAX << (32 - prefix);
    Ok((Ipv4Addr::from(u32::from(ip) & mask), prefix))
}

impl SimCluster {
    pub(crate) fn new(
        spec: &crate::ClusterSpec,
        index: usize,
        history: usize,
        backends: bool,
        rt: tokio::runtime::Handle,
    ) -> Result<(Arc<Self>, mpsc::UnboundedReceiver<Key>)> {
        let (lb_base, lb_prefix) = match &spec.lb_cidr {
            Some(c) => parse_lb_cidr(c)?,
            None => {
                let second = u8::try_from(100 + index).map_err(|_| Error::InvalidCidr {
                    cidr: String::new(),
                    reason: format!("no default load-balancer pool for cluster index {index}; set lb_cidr"),
                })?;
                (Ipv4Addr::new(127, second, 0, 0), 16)
            }
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let pools = Pools {
            lb: Ipv4Pool::new(lb_base, lb_prefix),
            pods: Ipv4Pool::new(Ipv4Addr::new(10, 128 + (index % 64) as u8, 0, 0), 16),
        };
        let core = Arc::new(Core::new(
            spec,
            index,
            Store::new(history, Some(tx)),
            pools,
            Backends::new(backends, &spec.name, rt),
        )?);
        install_crds(&core)?;
        Ok((Arc::new(Self { core, server: Mutex::new(None), controller: Mutex::new(None) }), rx))
    }

    /// Seeds namespaces and nodes (when not restored from a state file) and starts the
    /// controller task.
    pub(crate) fn boot(&self, rx: mpsc::UnboundedReceiver<Key>) {
        {
            let mut g = self.core.store.write();
            for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
                let key = (resources::NAMESPACES, String::new(), ns.to_string());
                if !g.contains(&key) {
                    let obj = json!({
                        "apiVersion": "v1", "kind": "Namespace",
                        "metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                        "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"},
                    });
                    controllers::put_new(&mut g, key, obj);
                }
            }
        }
        controllers::create_nodes(&self.core, NODES_PER_CLUSTER);
        *self.controller.lock() = Some(tokio::spawn(controllers::run(self.core.clone(), rx)));
    }

    /// The cluster's name (also its kubeconfig context name).
    pub fn name(&self) -> &str {
        &self.core.name
    }

    /// Base URL of the API, e.g. `http://127.0.0.1:34567` (`https://` when secure).
    pub fn url(&self) -> String {
        let scheme = if self.core.security.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.core.port())
    }

    /// The load clients put on the API so far: connections, watches, requests.
    pub fn load(&self) -> crate::load::Load {
        self.core.load.snapshot()
    }

    /// Every (verb, group, resource) clients asked of this cluster since it started, as
    /// an RBAC authorizer checks them.
    pub fn accesses(&self) -> Vec<crate::audit::Access> {
        self.core.audit.seen()
    }

    /// A secure cluster's CA certificate (PEM), as a pod finds it in `ca.crt`.
    pub fn ca_pem(&self) -> Option<&str> {
        self.core.security.as_ref().map(crate::secure::Security::ca_pem)
    }

    /// A secure cluster's bearer token, as a pod finds it in `token`.
    pub fn token(&self) -> Option<&str> {
        self.core.security.as_ref().map(crate::secure::Security::token)
    }

    /// The API port (fixed after the first start, so `stop`/`start` keep URLs valid).
    pub fn port(&self) -> u16 {
        self.core.port()
    }

    /// Region and zone the Nodes are labelled with.
    pub fn region(&self) -> &str {
        &self.core.region
    }

    pub fn zone(&self) -> &str {
        &self.core.zone
    }

    /// Current resourceVersion (the cluster-wide counter).
    pub fn resource_version(&self) -> u64 {
        self.core.store.read().rv()
    }

    /// Number of load-balancer backends currently listening.
    pub fn backend_count(&self) -> usize {
        self.core.backends.count()
    }

    /// Serves the API again on the same port with the same data. No-op when running.
    pub async fn start(&self) -> Result<()> {
        if self.server.lock().as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, self.core.port()));
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Bind { addr, source })?;
        let bound = listener.local_addr().map_err(|source| Error::Bind { addr, source })?;
        self.core.set_port(bound.port());
        let core = self.core.clone();
        *self.server.lock() = Some(tokio::spawn(serve(listener, core)));
        Ok(())
    }

    /// Makes the API unreachable: closes the listener and drops open connections and
    /// watches. Data, controllers and backends stay.
    pub async fn stop(&self) {
        let handle = self.server.lock().take();
        if let Some(h) = handle {
            h.abort();
            let _ = h.await;
        }
        self.core.kill_watches.send_modify(|n| *n += 1);
    }

    /// Stops the API, the controllers and all backends.
    pub(crate) async fn shutdown(&self) {
        self.stop().await;
        let ctrl = self.controller.lock().take();
        if let Some(h) = ctrl {
            h.abort();
            let _ = h.await;
        }
        self.core.backends.stop_all();
    }

    /// Forgets all retained watch history, so every resourceVersion clients hold answers
    /// 410 Gone (forces relists).
    pub fn compact_history(&self) {
        self.core.store.compact();
    }

    /// Ends every open watch stream; clients reconnect with the resourceVersion they hold.
    pub fn drop_watches(&self) {
        self.core.kill_watches.send_modify(|n| *n += 1);
    }

    /// The served resource an object's `apiVersion` and `kind` name.
    fn resolve(&self, api_version: &str, kind: &str) -> Result<Arc<ResourceDef>> {
        self.core.store.read().registry().by_kind(api_version, kind).ok_or_else(|| {
            Error::Api(ApiError::new(404, "NotFound", format!("the server does not serve {api_version} {kind}")))
        })
    }

    /// Creates namespace `ns` if it does not exist, as a seeding write into it expects.
    fn ensure_namespace(&self, ns: &str, opts: &WriteOpts) -> Result<()> {
        let ns_key = (resources::NAMESPACES, String::new(), ns.to_string());
        if self.core.store.get(&ns_key).is_some() {
            return Ok(());
        }
        let nsobj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        match api::create(&self.core.store, &resources::BUILTINS[resources::NAMESPACES], None, nsobj, opts) {
            Ok(_) => Ok(()),
            Err(e) if e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates or replaces an object (by apiVersion/kind/metadata) and runs the controllers
    /// for it before returning, so derived state (LB address, EndpointSlice) is visible.
    /// `.status` in the object is kept, unlike API writes. For seeding demo and test data.
    pub fn apply_json(&self, obj: Value) -> Result<Value> {
        let av = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let def = self.resolve(av, kind)?;
        let name = util::meta_str(&obj, "name").unwrap_or("").to_string();
        let ns = def
            .namespaced
            .then(|| util::meta_str(&obj, "namespace").filter(|n| !n.is_empty()).unwrap_or("default").to_string());
        // No managedFields for seeded objects: they would double the memory of large
        // benchmark fleets and nothing reads them.
        let opts = WriteOpts { privileged: true, ..WriteOpts::default() };
        if let Some(ns) = &ns {
            self.ensure_namespace(ns, &opts)?;
        }
        let key = key_for(&def, ns.as_deref(), &name);
        let stored = if !name.is_empty() && self.core.store.get(&key).is_some() {
            let mut obj = obj;
            if let Some(m) = util::meta_mut(&mut obj) {
                // Seeding replaces whatever is there, even an object created anew since.
                m.remove("resourceVersion");
                m.remove("uid");
            }
            api::replace(&self.core.store, &def, ns.as_deref(), &name, obj, Sub::Main, &opts)?
        } else {
            api::create(&self.core.store, &def, ns.as_deref(), obj, &opts)?
        };
        let key = key_for(&def, ns.as_deref(), util::meta_str(&stored, "name").unwrap_or(""));
        controllers::reconcile(&self.core, &key);
        let now = self.core.store.get(&key).unwrap_or(stored);
        Ok(def.view(&now).into_owned())
    }

    /// The stored object, if any, at the version `api_version` names.
    pub fn get_json(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Option<Value> {
        let def = self.resolve(api_version, kind).ok()?;
        let obj = self.core.store.get(&key_for(&def, Some(ns.unwrap_or("default")), name))?;
        Some(def.view(&obj).into_owned())
    }

    /// Deletes like `kubectl delete` with default options (finalizers are honoured) and runs
    /// the controllers before returning.
    pub fn delete_json(&self, api_version: &str, kind: &str, ns: Option<&str>, name: &str) -> Result<()> {
        let def = self.resolve(api_version, kind)?;
        let ns = Some(ns.unwrap_or("default"));
        deletion::delete(&self.core.store, &def, ns, name, &DeleteOptions::parse(&json!({}), false)?)?;
        controllers::reconcile(&self.core, &key_for(&def, ns, name));
        Ok(())
    }

    fn annotate_service(&self, ns: &str, svc: &str, key: &str, value: &str) -> Result<()> {
        let patch = json!({"metadata": {"annotations": {key: value}}});
        let opts = WriteOpts { field_manager: Some("meridian-sim".into()), ..WriteOpts::default() };
        let services = &resources::BUILTINS[resources::SERVICES];
        api::patch(&self.core.store, services, Some(ns), svc, PatchType::Merge, &patch, Sub::Main, &opts)?;
        controllers::reconcile(&self.core, &(resources::SERVICES, ns.to_string(), svc.to_string()));
        Ok(())
    }

    /// Marks the first `ready` endpoints of the Service ready, the rest not ready
    /// (sets the `sim.meridian.io/ready-endpoints` annotation, visible to kubectl).
    pub fn set_ready(&self, ns: &str, svc: &str, ready: u32) -> Result<()> {
        let key = (resources::SERVICES, ns.to_string(), svc.to_string());
        let has_ready_false =
            self.core.store.get(&key).is_some_and(|s| util::annotation(&s, services::ANN_READY) == Some("false"));
        if has_ready_false {
            let patch = json!({"metadata": {"annotations": {services::ANN_READY: null}}});
            api::patch(
                &self.core.store,
                &resources::BUILTINS[resources::SERVICES],
                Some(ns),
                svc,
                PatchType::Merge,
                &patch,
                Sub::Main,
                &WriteOpts::default(),
            )?;
        }
        self.annotate_service(ns, svc, services::ANN_READY_ENDPOINTS, &ready.to_string())
    }

    /// Starts (`up`) or stops the Service's HTTP backends (sets `sim.meridian.io/backend`).
    pub fn set_backend(&self, ns: &str, svc: &str, up: bool) -> Result<()> {
        self.annotate_service(ns, svc, services::ANN_BACKEND, if up { "up" } else { "down" })
    }

    /// Writes every object and the resourceVersion counter to `<dir>/<cluster>.json`.
    pub(crate) fn save_state(&self, dir: &Path) -> Result<()> {
        let state = {
            let g = self.core.store.read();
            json!({"resourceVersion": g.rv(), "objects": g.all().collect::<Vec<_>>()})
        };
        let path = state_path(dir, &self.core.name);
        std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        let bytes = serde_json::to_vec(&state).map_err(|source| Error::State { path: path.clone(), source })?;
        std::fs::write(&path, bytes).map_err(|source| Error::Io { path, source })
    }

    /// Restores a state file written by `save_state`, re-claiming load-balancer addresses
    /// that can still be bound here. Missing file: no-op.
    pub(crate) fn load_state(&self, dir: &Path) -> Result<()> {
        let path = state_path(dir, &self.core.name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(Error::Io { path, source }),
        };
        let state: Value =
            serde_json::from_slice(&bytes).map_err(|source| Error::State { path: path.clone(), source })?;
        let mut st = self.core.pools.lock();
        let mut g = self.core.store.write();
        let mut restored = 0usize;
        let objects = state.get("objects").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        // CRDs first: the registry must serve their resources before their objects come.
        let (crds, rest): (Vec<&Value>, Vec<&Value>) = objects.iter().partition(|o| is_crd(o));
        for obj in crds.into_iter().chain(rest) {
            let (Some(av), Some(kind), Some(name)) = (
                obj.get("apiVersion").and_then(Value::as_str),
                obj.get("kind").and_then(Value::as_str),
                util::meta_str(obj, "name"),
            ) else {
                continue;
            };
            let Some(def) = g.registry().by_kind(av, kind) else { continue };
            let key = key_for(&def, Some(util::meta_str(obj, "namespace").unwrap_or("default")), name);
            if def.id == resources::SERVICES {
                g.alloc.reserve(obj);
                self.reclaim_lb_address(&mut st.lb, &format!("services/{}/{name}", key.1), obj);
            }
            g.put(key, obj.clone());
            restored += 1;
        }
        if let Some(rv) = state.get("resourceVersion").and_then(Value::as_u64) {
            g.set_rv_floor(rv);
        }
        tracing::info!(cluster = %self.core.name, path = %path.display(), objects = restored, "restored simulated cluster state from the previous run");
        Ok(())
    }

    /// Claims a restored Service's load-balancer address again, but only if its ports can
    /// be bound here: another process (a second simulator, a test) may serve it now, and
    /// its backends must never be mistaken for this cluster's. Otherwise the Service gets a
    /// new address when the controllers resync.
    fn reclaim_lb_address(&self, lb: &mut Ipv4Pool, owner: &str, svc: &Value) {
        let Some(ip) = svc.pointer("/status/loadBalancer/ingress/0/ip").and_then(Value::as_str) else { return };
        let Ok(ip) = ip.parse::<Ipv4Addr>() else { return };
        let ports = match (util::annotation(svc, services::ANN_BACKEND), svc.get("spec")) {
            (Some("down"), _) | (_, None) => Vec::new(),
            (_, Some(spec)) => services::tcp_ports(spec),
        };
        let addrs: Vec<SocketAddr> = ports.into_iter().map(|p| SocketAddr::from((ip, p))).collect();
        if !lb.claim(owner, ip) {
            tracing::warn!(cluster = %self.core.name, service = owner, %ip, "restored load-balancer address is already allocated; a new one will be assigned");
        } else if !self.core.backends.prebind(&addrs) {
            lb.set_aside(owner);
            tracing::warn!(cluster = %self.core.name, service = owner, %ip, "restored load-balancer address is in use by another process; a new one will be assigned");
        }
    }

    /// Re-runs every controller over existing objects (after a state restore), the
    /// garbage collector and namespace controller included.
    pub(crate) fn resync(&self) {
        let keys: Vec<Key> = {
            let g = self.core.store.read();
            g.registry().ids().flat_map(|r| g.keys_of(r)).collect()
        };
        for k in keys {
            controllers::reconcile(&self.core, &k);
        }
    }
}

fn is_crd(obj: &Value) -> bool {
    obj.get("apiVersion").and_then(Value::as_str) == Some("apiextensions.k8s.io/v1")
        && obj.get("kind").and_then(Value::as_str) == Some("CustomResourceDefinition")
}

/// The CRDs every simulated cluster has (MCS and the Gateway API) and the Gateway
/// controller's GatewayClass.
fn install_crds(core: &Core) -> Result<()> {
    let opts = WriteOpts { privileged: true, ..WriteOpts::default() };
    for crd in crd::mcs_crds().into_iter().chain(crd::gateway_crds()) {
        api::create(&core.store, &resources::BUILTINS[resources::CRDS], None, crd, &opts)?;
    }
    crate::controllers::gateways::install_class(core)
}

/// Where a cluster's state is saved in a state directory.
pub(crate) fn state_path(dir: &Path, cluster: &str) -> PathBuf {
    dir.join(format!("{cluster}.json"))
}

/// Accepts API connections until aborted. Connections live in the task's JoinSet, so
/// aborting the task drops them all (which also ends their watch streams).
async fn serve(listener: tokio::net::TcpListener, core: Arc<Core>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        // Typically EMFILE; back off instead of spinning.
                        tracing::warn!(cluster = %core.name, error = %e, "accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let core = core.clone();
                conns.spawn(serve_connection(stream, core));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// Serves one API connection: HTTP/1.1 in the clear; over TLS, HTTP/2 when the client
/// chose it by ALPN, as kube-apiserver does, else HTTP/1.1.
async fn serve_connection(stream: tokio::net::TcpStream, core: Arc<Core>) {
    let _open = core.load.open(crate::load::Kind::Connection);
    let acceptor = core.security.as_ref().map(|s| s.acceptor.clone());
    let svc = service_fn(move |req| crate::http::handle(core.clone(), req));
    let Some(acceptor) = acceptor else {
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
        return;
    };
    // A client that fails the handshake (an unknown CA) is just dropped.
    let Ok(tls) = acceptor.accept(stream).await else { return };
    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
        let mut http = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new());
        // Room for every watch and request a client multiplexes (kube-apiserver sets a limit
        // with `--http2-max-streams-per-connection`).
        http.max_concurrent_streams(1000);
        let _ = http.serve_connection(TokioIo::new(tls), svc).await;
    } else {
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lb_cidrs_must_be_loopback() {
        assert_eq!(parse_lb_cidr("127.5.1.9/16").ok(), Some((Ipv4Addr::new(127, 5, 0, 0), 16)));
        assert!(parse_lb_cidr("10.0.0.0/16").is_err());
        assert!(parse_lb_cidr("127.0.0.1").is_err());
        assert!(parse_lb_cidr("127.0.0.0/4").is_err());
    }
}
