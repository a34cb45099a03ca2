//! Tiny HTTP/1.1 servers behind load-balancer addresses, so a DNS answer can be dialled.
//!
//! Each (address, port) gets its own listener task; the task owns its connections, so
//! aborting it (Service deleted, annotated `backend: down`) closes the listener — new
//! connections are refused — and drops established connections too.

use std::collections::{BTreeSet, HashMap};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::task::{JoinHandle, JoinSet};

/// A running listener; aborts its task when dropped.
struct Listener(JoinHandle<()>);

impl Drop for Listener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// All backends of one cluster.
pub(crate) struct Backends {
    enabled: bool,
    cluster: Arc<str>,
    rt: Handle,
    running: Mutex<HashMap<(String, String), HashMap<SocketAddr, Listener>>>,
    /// Sockets bound while an address was being allocated (see [`Backends::prebind`]),
    /// waiting for their backend task.
    prebound: Mutex<HashMap<SocketAddr, std::net::TcpListener>>,
}

impl Backends {
    pub(crate) fn new(enabled: bool, cluster: &str, rt: Handle) -> Self {
        Self {
            enabled,
            cluster: cluster.into(),
            rt,
            running: Mutex::new(HashMap::new()),
            prebound: Mutex::new(HashMap::new()),
        }
    }

    /// Whether backends run at all (off for scale benchmarks).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Makes exactly `desired` addresses serve for this Service. A bind failure is logged and
    /// retried on the Service's next reconcile; it does not fail the API write.
    pub(crate) fn reconcile(&self, ns: &str, name: &str, desired: BTreeSet<SocketAddr>) {
        let mut running = self.running.lock();
        let key = (ns.to_string(), name.to_string());
        let current = running.entry(key.clone()).or_default();
        current.retain(|addr, _| desired.contains(addr));
        for addr in desired {
            if current.contains_key(&addr) {
                continue;
            }
            match self.spawn(addr, ns, name) {
                Ok(l) => {
                    current.insert(addr, l);
                }
                Err(e) => tracing::warn!(cluster = %self.cluster, %addr, error = %e, "backend cannot listen"),
            }
        }
        if current.is_empty() {
            running.remove(&key);
        }
    }

    /// Binds every address now, while a new load-balancer address is being chosen, and
    /// keeps the sockets for the backends. Another process on the machine (a second
    /// simulator, a parallel test) may already serve that address: then nothing is kept
    /// and the caller picks another address. Binding here, rather than probing and
    /// binding later, leaves no window for two processes to pick the same address.
    pub(crate) fn prebind(&self, addrs: &[SocketAddr]) -> bool {
        if !self.enabled {
            return true;
        }
        let mut bound = Vec::with_capacity(addrs.len());
        for a in addrs {
            match std::net::TcpListener::bind(a) {
                Ok(l) => bound.push((*a, l)),
                Err(_) => return false,
            }
        }
        self.prebound.lock().extend(bound);
        true
    }

    /// Number of listening backends (for tests and status output).
    pub(crate) fn count(&self) -> usize {
        self.running.lock().values().map(HashMap::len).sum()
    }

    /// Stops every backend.
    pub(crate) fn stop_all(&self) {
        self.running.lock().clear();
    }

    fn spawn(&self, addr: SocketAddr, ns: &str, name: &str) -> std::io::Result<Listener> {
        // Bind synchronously so the address is serving when the reconcile returns.
        let prebound = self.prebound.lock().remove(&addr);
        let std_listener = match prebound {
            Some(l) => l,
            None => std::net::TcpListener::bind(addr)?,
        };
        std_listener.set_nonblocking(true)?;
        let ident: Arc<str> = format!("{} {ns}/{name}", self.cluster).into();
        let task = self.rt.spawn(async move {
            let listener = match tokio::net::TcpListener::from_std(std_listener) {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(%addr, error = %e, "backend listener");
                    return;
                }
            };
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let ident = ident.clone();
                        conns.spawn(async move {
                            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                                let ident = ident.clone();
                                async move { Ok::<_, Infallible>(answer(&ident, &req)) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        Ok(Listener(task))
    }
}

/// `/healthz` → `ok`; anything else → `<cluster> <ns>/<svc> <path>`.
fn answer<B>(ident: &str, req: &Request<B>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let body = if path == "/healthz" { "ok\n".to_string() } else { format!("{ident} {path}\n") };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}
