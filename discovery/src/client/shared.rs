//! One connection per HTTPS API server, as client-go keeps it: every watch and request of
//! a cluster is a stream of one HTTP/2 connection, which the server offers by ALPN. The
//! connection is dialled once, by whichever request first finds none (the others wait
//! for that dial rather than racing their own), and dialled again when it has closed.
//!
//! A connection that goes silent is found by HTTP/2 pings: after `interval` without a
//! frame from the server it is pinged, and without an answer within `timeout` it is
//! closed (`registry` ties both to the cluster's probes), which fails every stream on it;
//! their next requests dial afresh. A server that picks HTTP/1.1 is served by hyper's
//! pooled HTTP/1.1 client instead, from then on.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http2::{Builder, SendRequest};
use hyper_rustls::HttpsConnector;
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Client as PooledClient;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::Body;
use tokio::sync::Mutex;
use tower::{BoxError, Service, ServiceExt};

/// When a connection is pinged, and how long its answer may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pings {
    pub(crate) interval: Duration,
    pub(crate) timeout: Duration,
}

/// What the last dial found the server to speak.
enum Conn {
    None,
    H2(SendRequest<Body>),
    H1,
}

/// The service under kube's layers for an HTTPS cluster.
#[derive(Clone)]
pub(crate) struct Shared {
    connector: Dialer,
    h1: PooledClient<Dialer, Body>,
    conn: Arc<Mutex<Conn>>,
    h2: Builder<TokioExecutor>,
}

/// What dials an API server: TCP, then TLS offering `h2` and `http/1.1`, with deadlines.
pub(crate) type Dialer = TimeoutConnector<HttpsConnector<HttpConnector>>;

impl Shared {
    /// Dials with `connector` (which must offer `h2` by ALPN); `h1` serves servers that
    /// choose HTTP/1.1.
    pub(crate) fn new(connector: Dialer, h1: PooledClient<Dialer, Body>, pings: Pings) -> Self {
        let mut h2 = Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .keep_alive_interval(pings.interval)
            .keep_alive_timeout(pings.timeout)
            .keep_alive_while_idle(true);
        Self { connector, h1, conn: Arc::new(Mutex::new(Conn::None)), h2 }
    }

    async fn send(self, req: Request<Body>) -> Result<Response<Incoming>, BoxError> {
        let origin = origin(req.uri())?;
        let Some(mut sender) = self.sender(&origin).await? else {
            return Ok(self.h1.request(req).await?);
        };
        sender.ready().await?;
        match sender.try_send_request(req).await {
            Ok(res) => Ok(res),
            // The connection closed before the request went out: once more, on a new one.
            Err(mut e) => match e.take_message() {
                Some(req) => match self.sender(&origin).await? {
                    Some(mut fresh) => {
                        fresh.ready().await?;
                        Ok(fresh.send_request(req).await?)
                    }
                    None => Ok(self.h1.request(req).await?),
                },
                None => Err(e.into_error().into()),
            },
        }
    }

    /// The open HTTP/2 connection's sender, dialling `origin` when there is none; `None`
    /// when the server speaks HTTP/1.1.
    async fn sender(&self, origin: &Uri) -> Result<Option<SendRequest<Body>>, BoxError> {
        let mut conn = self.conn.lock().await;
        match &*conn {
            Conn::H2(s) if !s.is_closed() => return Ok(Some(s.clone())),
            Conn::H1 => return Ok(None),
            Conn::H2(_) | Conn::None => {}
        }
        let io = self.connector.clone().oneshot(origin.clone()).await?;
        if !io.connected().is_negotiated_h2() {
            *conn = Conn::H1;
            return Ok(None);
        }
        let (sender, connection) = self.h2.handshake(io).await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "API server connection closed");
            }
        });
        *conn = Conn::H2(sender.clone());
        Ok(Some(sender))
    }
}

/// The scheme and authority of an absolute request URI (kube's base-URI layer makes them so).
fn origin(uri: &Uri) -> Result<Uri, BoxError> {
    let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
        return Err(format!("request URI {uri} is not absolute").into());
    };
    Ok(Uri::builder().scheme(scheme.clone()).authority(authority.clone()).path_and_query("/").build()?)
}

impl Service<Request<Body>> for Shared {
    type Response = Response<Incoming>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        Box::pin(self.clone().send(req))
    }
}
