//! The HTTP stack of a member cluster's client. It is kube's own stack (base URI, auth,
//! extra headers, server-error retries, connect/read/write deadlines), with three changes
//! that matter once hundreds of clusters are watched:
//!
//! - **One connection per HTTPS cluster.** TLS offers HTTP/2 by ALPN, as client-go does,
//!   and every watch and request of the cluster is a stream of one connection (`shared`),
//!   pinged when it has been silent. kube's own connector offers only HTTP/1.1, where
//!   every watch holds a connection (and its buffers) of its own: eight per cluster.
//! - **A cap on each HTTP/1.1 connection's read buffer**, for `http://` servers and TLS
//!   servers that choose HTTP/1.1. hyper grows a connection's buffer while reads fill it,
//!   up to about 400 KiB, and never shrinks it; a watch whose first list was large keeps
//!   that much for the life of the connection. The cap bounds it, at the cost of more,
//!   smaller reads of a large list.
//! - **No trust store for a plain-HTTP API server.** kube builds a TLS configuration for
//!   every client, and without a CA in the kubeconfig that means loading the platform's
//!   roots (about 80 KiB) once per cluster, even when the server is `http://`.
//!
//! A client that needs a proxy is built by kube, which refuses it (Meridian enables no
//! proxy support), so the error is kube's own. kube's tracing layer is left out (Meridian
//! logs its own errors), and so is its note of when an exec plugin's client certificate
//! expires (`Client::valid_until`), which nothing in Meridian reads.

use http::Response;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::rt::{Read, Write};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector, HttpsConnectorBuilder};
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Builder;
use hyper_util::client::legacy::connect::{Connect, Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use kube::{Client, Config};
use rustls::pki_types::ServerName;
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder, ServiceExt};

mod shared;

pub(crate) use shared::Pings;

/// The largest read buffer a connection to a cluster keeps (hyper's floor is 8 KiB).
const MAX_READ_BUFFER: usize = 64 * 1024;

/// A client for `config`, with the limits above; `pings` finds a silent HTTP/2 connection.
pub(crate) fn build(config: Config, pings: Pings) -> kube::Result<Client> {
    if config.proxy_url.is_some() {
        return Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    if config.cluster_url.scheme() == Some(&http::uri::Scheme::HTTPS) {
        let tls = https_connector(&config, http)?;
        let connector = timeouts(&config, tls);
        let shared = shared::Shared::new(connector.clone(), pooled(connector), pings);
        layers(&config, shared)
    } else {
        let pooled = pooled(timeouts(&config, http));
        layers(&config, pooled.map_err(BoxError::from))
    }
}

/// TLS as kube configures it (the kubeconfig's CA, client identity and server name),
/// offering HTTP/2 and HTTP/1.1 by ALPN.
fn https_connector(config: &Config, http: HttpConnector) -> kube::Result<HttpsConnector<HttpConnector>> {
    let builder = HttpsConnectorBuilder::new().with_tls_config(config.rustls_client_config()?).https_or_http();
    let builder = match &config.tls_server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone())
                .map_err(|e| kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e)))?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    Ok(builder.enable_http1().enable_http2().wrap_connector(http))
}

/// `connector` with the configuration's connect, read and write deadlines.
fn timeouts<C>(config: &Config, connector: C) -> TimeoutConnector<C>
where
    C: tower::Service<http::Uri> + Clone + Send + Sync + 'static,
    C::Response: Connection + Read + Write + Send + Unpin + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    let mut connector = TimeoutConnector::new(connector);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    connector
}

/// hyper's pooled client over `connector`, HTTP/1.1 connections' read buffers capped.
fn pooled<C: Connect + Clone + Send + Sync + 'static>(connector: C) -> hyper_util::client::legacy::Client<C, Body> {
    Builder::new(TokioExecutor::new()).http1_max_buf_size(MAX_READ_BUFFER).build(connector)
}

/// kube's layers (base URI, server-error retries, auth, extra headers) over `http`.
fn layers<S>(config: &Config, http: S) -> kube::Result<Client>
where
    S: tower::Service<http::Request<Body>, Response = Response<Incoming>, Error = BoxError>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .service(http)
        .map_response(|res: Response<Incoming>| res.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>))
        .boxed();
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}
