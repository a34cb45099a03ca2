//! hyper's data path: one client request → validation → route → backend attempts →
//! response.
//!
//! Failures never escape as errors: they become a short plain-text response for this one
//! client (404 no route, 503 no healthy backend, 502 bad backend, 504 timeout).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;

use crate::Shared;
use crate::balance::{Endpoint, InFlight};
use crate::body::{BodyWatch, ClientBody, ReqBody, RespBody, Streaming};
use crate::exchange::{Attempted, Attempts, ConnInfo, Failure, Reply, Sent, Transport, attempts, is_idempotent};
use crate::headers;
use crate::request::{self, Proto, Target};
use crate::routes::{Route, normalize_host};

pub(crate) fn local(status: StatusCode, text: &'static str) -> Response<RespBody> {
    let mut r = Response::new(RespBody::local(text));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

pub(crate) async fn handle(
    shared: Arc<Shared>,
    conn: Arc<ConnInfo>,
    req: Request<Incoming>,
) -> Result<Response<RespBody>, Infallible> {
    let proto = match req.version() {
        Version::HTTP_2 => Proto::Http2,
        Version::HTTP_10 | Version::HTTP_09 => Proto::Http10,
        _ => Proto::Http11,
    };
    let target = Target::of_uri(req.uri());
    let headers = req.headers().iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    let (authority, path) = match request::check(proto, req.method().as_str(), target, headers) {
        Ok(c) => (HeaderValue::from_str(c.authority), target.origin_path().route_path()),
        Err(r) => return Ok(refuse(r, proto)),
    };
    let Ok(authority) = authority else {
        return Ok(refuse(request::Reject { status: StatusCode::BAD_REQUEST, text: "bad Host header\n" }, proto));
    };
    let route = authority.to_str().ok().and_then(|a| shared.routes.load().lookup(&normalize_host(a), path).cloned());
    let Some(route) = route else {
        return Ok(local(StatusCode::NOT_FOUND, "no route for this host\n"));
    };
    let start = Instant::now();
    let resp = proxy(&shared, &conn, &route, req, authority, start).await;
    route.stats.record(resp.status, start.elapsed().as_secs_f64());
    Ok(resp.response)
}

/// A refused request: its answer, and on HTTP/1 the end of the connection, since what
/// follows it on the connection cannot be told apart from its body.
fn refuse(r: request::Reject, proto: Proto) -> Response<RespBody> {
    let mut resp = local(r.status, r.text);
    if proto != Proto::Http2 {
        resp.headers_mut().insert(CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// A response and the status to count (none when the backend gave no response).
struct Answer {
    response: Response<RespBody>,
    status: Option<StatusCode>,
}

impl From<Failure> for Answer {
    fn from(f: Failure) -> Self {
        let (status, text) = f.local_parts();
        Answer { response: local(status, text), status: None }
    }
}

async fn proxy(
    shared: &Shared,
    conn: &ConnInfo,
    route: &Route,
    mut req: Request<Incoming>,
    authority: HeaderValue,
    start: Instant,
) -> Answer {
    let cfg = shared.config.load_full();
    let client = shared.client.load_full();
    let version = req.version();
    let upgrade = version == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // The one Host the request was routed by (RFC 9112 §3.2.2, RFC 9113 §8.3.1).
    parts.headers.insert(HOST, authority);
    headers::rewrite_request(&mut parts.headers, conn.peer.ip(), conn.tls, version, upgrade);
    let pq = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    // Only a request without a body can be sent twice: bodies stream and are not kept.
    let bodyless = body.is_end_stream();
    let (body, watch) = match bodyless {
        true => (None, None),
        false => {
            let (b, w) = ClientBody::new(body, cfg.timeouts.body_read.as_std());
            (Some(Box::new(b)), Some(w))
        }
    };
    let plan = Attempts {
        cfg: &cfg,
        route,
        deadline: start + cfg.timeouts.overall.as_std(),
        idempotent: is_idempotent(&parts.method),
        bodyless,
    };
    let active = route.upstream.budget.request();
    if bodyless && !upgrade {
        // Over the fast path's raw pool: see `h1::bodyless`.
        let mut raw = crate::h1::Bodyless::new(&parts, &pq, cfg.clone());
        let attempted = attempts(&plan, &mut raw).await;
        if let Some((status, text)) = attempted.local_parts() {
            return Answer { response: local(status, text), status: None };
        }
        let Attempted::Reply { reply, in_flight } = attempted else { return Failure::Upstream.into() };
        let status = reply.status();
        return match crate::h1::into_response(reply, in_flight, active, cfg.timeouts.idle.as_std()) {
            Some(response) => Answer { response, status: Some(status) },
            None => Failure::Upstream.into(),
        };
    }
    let mut hyper = HyperTransport { client, parts, pq, body, watch, bodyless, bad_target: false };
    let attempted = attempts(&plan, &mut hyper).await;
    let bad_target = hyper.bad_target;
    if bad_target {
        return Answer { response: local(StatusCode::BAD_REQUEST, "bad request target\n"), status: None };
    }
    if let Some((status, text)) = attempted.local_parts() {
        return Answer { response: local(status, text), status: None };
    }
    let Attempted::Reply { reply: resp, in_flight } = attempted else {
        // A client gone inside its body: nobody reads this.
        return Failure::Upstream.into();
    };
    let status = resp.status();
    if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
        return Answer { response: switch_protocols(resp, on_upgrade, in_flight), status: Some(status) };
    }
    Answer { response: respond(resp, in_flight, active, &cfg), status: Some(status) }
}

/// hyper's pooled client; a bodyless request's headers are cloned for every attempt.
struct HyperTransport {
    client: Arc<crate::UpstreamClient>,
    parts: http::request::Parts,
    pq: PathAndQuery,
    body: Option<Box<ClientBody>>,
    /// How reading the client's body goes (none for a bodyless request).
    watch: Option<Arc<BodyWatch>>,
    bodyless: bool,
    /// The backend authority and path did not make a URI (answered 400).
    bad_target: bool,
}

impl Transport for HyperTransport {
    type Reply = Response<Incoming>;

    async fn send(&mut self, ep: &Arc<Endpoint>, wait: Duration) -> Sent<Response<Incoming>> {
        let req_body = match self.body.take() {
            Some(b) => ReqBody::Stream(b),
            None if self.bodyless => ReqBody::Empty,
            None => return Sent::Unsendable,
        };
        let parts = &mut self.parts;
        // A bodyless request may be sent again, even after what was meant as its last try
        // (a connect failure delivers nothing).
        let hdrs = if self.bodyless { parts.headers.clone() } else { std::mem::take(&mut parts.headers) };
        let uri = Uri::builder().scheme(Scheme::HTTP).authority(ep.authority.clone()).path_and_query(self.pq.clone());
        let Ok(uri) = uri.build() else {
            self.bad_target = true;
            return Sent::Unsendable;
        };
        let mut up = Request::new(req_body);
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = uri;
        *up.headers_mut() = hdrs;
        let sent = self.client.request(up);
        tokio::pin!(sent);
        // The first-byte timer starts once the client's body has been read whole (or the
        // backend answered before that).
        let early = match &self.watch {
            Some(watch) => tokio::select! {
                r = &mut sent => Some(r),
                () = watch.finished() => None,
            },
            None => None,
        };
        let result = match early {
            Some(r) => r,
            None => match tokio::time::timeout(wait, sent).await {
                Ok(r) => r,
                Err(_) => return Sent::Failed(Failure::Timeout),
            },
        };
        match result {
            Ok(r) => Sent::Reply(r),
            Err(_) if let Some(fault) = self.watch.as_ref().and_then(|w| w.fault()) => Sent::Client(fault),
            Err(e) if e.is_connect() => Sent::Failed(Failure::Connect),
            Err(e) => {
                tracing::debug!(backend = %ep.addr, error = %e, "upstream request failed");
                Sent::Failed(Failure::Upstream)
            }
        }
    }
}

fn respond(
    resp: Response<Incoming>,
    in_flight: InFlight,
    active: crate::retry::Active,
    cfg: &meridian_config::lb::LbConfig,
) -> Response<RespBody> {
    let (mut parts, body) = resp.into_parts();
    headers::rewrite_response(&mut parts.headers, parts.version, false);
    let idle = cfg.timeouts.idle.as_std();
    let deadline = Instant::now() + idle;
    let streaming = Streaming {
        body,
        idle,
        timer: Box::pin(tokio::time::sleep_until(deadline)),
        deadline,
        _in_flight: in_flight,
        _active: active,
    };
    Response::from_parts(parts, RespBody::Upstream(Box::new(streaming)))
}

/// A 101 from the backend: answer the client with it, then splice the two upgraded
/// connections together until either side closes.
fn switch_protocols(
    mut resp: Response<Incoming>,
    client_side: Option<hyper::upgrade::OnUpgrade>,
    in_flight: InFlight,
) -> Response<RespBody> {
    let backend_side = hyper::upgrade::on(&mut resp);
    if let Some(client_side) = client_side {
        tokio::spawn(async move {
            let _in_flight = in_flight;
            let (Ok(up), Ok(down)) = tokio::join!(backend_side, client_side) else { return };
            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(up), &mut TokioIo::new(down)).await;
        });
    }
    let (mut parts, _) = resp.into_parts();
    headers::rewrite_response(&mut parts.headers, parts.version, true);
    Response::from_parts(parts, RespBody::empty())
}
