//! Listeners: accept loops for plain HTTP and HTTPS, the connection limit, TLS
//! handshakes, HTTP/1.1 and HTTP/2 serving, and the graceful drain at shutdown.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use meridian_config::lb::LbConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::conn_exec::{self, ConnExec};
use crate::deadline::Idle;
use crate::exchange::ConnInfo;
use crate::forward;
use crate::{Shared, h1};

/// The HTTP server settings for client connections.
pub(crate) fn http_builder(cfg: &LbConfig) -> auto::Builder<ConnExec> {
    let mut b = auto::Builder::new(ConnExec);
    b.http1()
        .timer(TokioTimer::new())
        // Slowloris: a request head must arrive whole within this.
        .header_read_timeout(cfg.timeouts.header_read.as_std())
        .max_buf_size(cfg.limits.max_header_bytes.max(8192))
        .max_headers(cfg.limits.max_headers)
        .keep_alive(true);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(cfg.limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256)
        .keep_alive_interval(Some(Duration::from_secs(30)));
    b
}

/// Serves one listener until `shutdown` is cancelled, then waits (up to the drain timeout) for
/// its connections to finish their in-flight requests.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        // Out of file descriptors, mostly: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                };
                let Ok(permit) = shared.conn_limit.clone().try_acquire_owned() else {
                    shared.metrics.rejected_connections.inc();
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let info = Arc::new(ConnInfo { peer, tls: tls.is_some() });
                let conn = connection(stream, info, tls.clone(), shared.clone(), graceful.watcher(), shutdown.clone(), permit);
                tokio::spawn(conn);
            }
        }
    }
    drop(listener);
    let drain = shared.config.load().timeouts.drain.as_std();
    if tokio::time::timeout(drain, graceful.shutdown()).await.is_err() {
        tracing::warn!(seconds = drain.as_secs(), "drain timeout: closing connections with requests in flight");
    }
}

/// One client connection: the TLS handshake if any, then HTTP/1.1 on the fast path
/// (`h1`), or hyper for HTTP/2 and whatever the fast path hands over. The watcher keeps
/// the listener's drain waiting until the connection ends, whichever path serves it.
async fn connection(
    stream: TcpStream,
    info: Arc<ConnInfo>,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    watcher: Watcher,
    shutdown: CancellationToken,
    _permit: OwnedSemaphorePermit,
) {
    shared.metrics.connections.inc();
    let _open = scopeguard(&shared);
    let cfg = shared.config.load();
    // No byte either way for this long ends the connection (a client that stops reading
    // its response included); waiting for a backend's answer must not count.
    let stream = Idle::new(stream, cfg.timeouts.idle.as_std().max(cfg.timeouts.overall.as_std()));
    drop(cfg);
    let Some(acceptor) = tls else {
        serve_http(stream, info, shared, watcher, shutdown).await;
        return;
    };
    let handshake = shared.config.load().timeouts.header_read.as_std();
    let tls_stream = match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    if tls_stream.get_ref().1.alpn_protocol() == Some(b"h2") {
        serve_hyper(tls_stream, info, &shared, watcher).await;
    } else {
        serve_http(tls_stream, info, shared, watcher, shutdown).await;
    }
}

/// HTTP/1.1 on the fast path, then hyper if it hands the connection over.
async fn serve_http<S>(io: S, info: Arc<ConnInfo>, shared: Arc<Shared>, watcher: Watcher, shutdown: CancellationToken)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let h1::End::HandOver(io) = h1::serve(io, &info, &shared, &shutdown).await {
        serve_hyper(io, info, &shared, watcher).await;
    }
}

async fn serve_hyper<S>(io: S, info: Arc<ConnInfo>, shared: &Arc<Shared>, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = shared.http.load_full();
    let svc = {
        let shared = shared.clone();
        service_fn(move |req| forward::handle(shared.clone(), info.clone(), req))
    };
    let conn = watcher.watch(builder.serve_connection_with_upgrades(TokioIo::new(io), svc));
    if let Err(e) = conn_exec::run(conn).await {
        tracing::debug!(error = %e, "client connection ended with an error");
    }
}

/// Decrements the open-connections gauge when the connection task ends.
struct Open(Arc<Shared>);

fn scopeguard(shared: &Arc<Shared>) -> Open {
    Open(shared.clone())
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.connections.dec();
    }
}
