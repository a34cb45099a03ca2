//! The HTTP stack of a member cluster's client. It is kube's own stack (base URI, auth,
//! extra headers, server-error retries, connect/read/write deadlines), with two limits
//! that matter once hundreds of clusters are watched over HTTP/1.1, where every watch
//! holds a connection of its own:
//!
//! - **A cap on each connection's read buffer.** hyper grows a connection's buffer while
//!   reads fill it, up to about 400 KiB, and never shrinks it; a watch whose first list
//!   was large keeps that much for the life of the connection. The cap bounds it, at the
//!   cost of more, smaller reads of a large list.
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
use hyper_timeout::TimeoutConnector;
use hyper_util::client::legacy::Builder;
use hyper_util::client::legacy::connect::{Connection, HttpConnector};
use hyper_util::rt::TokioExecutor;
use kube::client::retry::RetryPolicy;
use kube::client::{Body, ClientBuilder, ConfigExt, DynBody};
use kube::{Client, Config};
use tower::retry::RetryLayer;
use tower::{BoxError, ServiceBuilder, ServiceExt};

/// The largest read buffer a connection to a cluster keeps (hyper's floor is 8 KiB).
const MAX_READ_BUFFER: usize = 64 * 1024;

/// A client for `config`, with the limits above.
pub(crate) fn build(config: Config) -> kube::Result<Client> {
    if config.proxy_url.is_some() {
        return Client::try_from(config);
    }
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    if config.cluster_url.scheme() == Some(&http::uri::Scheme::HTTPS) {
        let tls = config.rustls_https_connector_with_connector(http)?;
        stack(&config, tls)
    } else {
        stack(&config, http)
    }
}

fn stack<C>(config: &Config, connector: C) -> kube::Result<Client>
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
    let http: hyper_util::client::legacy::Client<_, Body> =
        Builder::new(TokioExecutor::new()).http1_max_buf_size(MAX_READ_BUFFER).build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(http)
        .map_response(|res: Response<Incoming>| res.map(|body| Box::new(body.map_err(BoxError::from)) as Box<DynBody>))
        .boxed();
    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}
