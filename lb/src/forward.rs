//! The data path: one client request → route → backend attempts → response.
//!
//! Failures never escape as errors: they become a short plain-text response for this one
//! client (404 no route, 503 no healthy backend, 502 bad backend, 504 timeout).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONNECTION, CONTENT_TYPE, HOST, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::time::Instant;

use crate::Shared;
use crate::balance::{self, Endpoint, InFlight, Outcome};
use crate::body::{BodyWatch, ClientBody, ReqBody, RespBody, Streaming};
use crate::headers;
use crate::request::{self, Proto, Target};
use crate::routes::{Route, normalize_host};

/// What the data path knows about the client connection.
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
}

/// Why an attempt got no usable response from the backend. Every variant but `Reused`
/// is a gateway failure for outlier detection; only `Connect` guarantees the backend saw
/// nothing. Client faults are not here: they are [`ClientFault`], never counted
/// against a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// TCP connect refused or timed out: the request never left, any request may retry.
    Connect,
    /// No response headers within the first-byte (or overall) timeout of the request
    /// having been sent whole.
    Timeout,
    /// Reset, garbage or a closed connection after the request was (maybe) sent.
    Upstream,
    /// A reused keep-alive connection closed without a byte of answer: the backend timed
    /// it out as the request arrived. The backend may have read the request, so sending
    /// it again is a retry like any other; it says nothing about the backend's health.
    Reused,
}

impl Failure {
    fn local_parts(self) -> (StatusCode, &'static str) {
        match self {
            Failure::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n"),
            Failure::Connect | Failure::Upstream | Failure::Reused => (StatusCode::BAD_GATEWAY, "bad gateway\n"),
        }
    }

    fn response(self) -> Response<RespBody> {
        let (status, text) = self.local_parts();
        local(status, text)
    }
}

/// A request that failed through its client's doing: answered (or dropped) locally,
/// never retried and never counted against a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientFault {
    /// The client closed its connection inside the body: nobody to answer.
    Gone,
    /// The body's framing was malformed (a bad chunk, a length the data broke).
    BadBody,
    /// The body paused for longer than `timeouts.body_read`.
    SlowBody,
}

impl ClientFault {
    /// The local answer, if anyone is left to read it.
    pub(crate) fn local_parts(self) -> Option<(StatusCode, &'static str)> {
        match self {
            ClientFault::Gone => None,
            ClientFault::BadBody => Some((StatusCode::BAD_REQUEST, "malformed request body\n")),
            ClientFault::SlowBody => Some((StatusCode::REQUEST_TIMEOUT, "request body timeout\n")),
        }
    }
}

pub(crate) fn local(status: StatusCode, text: &'static str) -> Response<RespBody> {
    let mut r = Response::new(RespBody::local(text));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

pub(crate) fn is_idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

/// Backoff before retrying after a bad response: jittered, exponential from 25 ms
/// (Envoy's base). Connect failures retry at once: the next backend is a different one.
fn backoff(retry: u32) -> Duration {
    let cap = 25u64.saturating_mul(1 << retry.min(4));
    Duration::from_millis(rand::rng().random_range(0..=cap))
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
        Answer { response: f.response(), status: None }
    }
}

/// A backend's answer to one attempt, whatever the transport.
pub(crate) trait Reply {
    fn status(&self) -> StatusCode;
}

/// How a request is sent to a backend: hyper's pooled client, or the fast path's raw
/// connections.
pub(crate) trait Transport {
    type Reply: Reply + Send;
    /// One attempt at `ep`; `last_try` when no other will follow. The response head must
    /// come within `wait` of the request having been sent whole (the time a client takes
    /// to upload its body is not the backend's).
    fn send(
        &mut self,
        ep: &Arc<Endpoint>,
        last_try: bool,
        wait: Duration,
    ) -> impl Future<Output = Sent<Self::Reply>> + Send;
}

impl<B> Reply for Response<B> {
    fn status(&self) -> StatusCode {
        Response::status(self)
    }
}

/// What one attempt's transport reports.
pub(crate) enum Sent<R> {
    Reply(R),
    Failed(Failure),
    /// The request cannot be sent (again): its body went to an earlier attempt.
    Unsendable,
    /// The client's body failed while it was being forwarded.
    Client(ClientFault),
}

/// How the attempts for one request ended.
pub(crate) enum Attempted<R> {
    /// A response to pass on: a good one, or the last bad one when retries ran out.
    Reply {
        reply: R,
        in_flight: InFlight,
    },
    Failed(Failure),
    NoBackend,
    Client(ClientFault),
}

impl<R> Attempted<R> {
    /// Status and text of the local answer when no backend response is passed on (`None`
    /// for a reply, or when the client is gone).
    pub(crate) fn local_parts(&self) -> Option<(StatusCode, &'static str)> {
        match self {
            Attempted::Reply { .. } => None,
            Attempted::Client(f) => f.local_parts(),
            Attempted::Failed(f) => Some(f.local_parts()),
            Attempted::NoBackend => Some((StatusCode::SERVICE_UNAVAILABLE, "no healthy backend\n")),
        }
    }
}

/// One request as the retry loop sees it.
pub(crate) struct Attempts<'a> {
    pub(crate) cfg: &'a meridian_config::lb::LbConfig,
    pub(crate) route: &'a Route,
    pub(crate) deadline: Instant,
    pub(crate) idempotent: bool,
    /// Nothing but the head: the request can be sent again after any failure.
    pub(crate) bodyless: bool,
}

/// The attempts of one request, whatever the transport: pick a backend (priority level,
/// then P2C, never one already tried), send with the first-byte timeout, feed latency and
/// outcome to the balancer, and retry what may be retried.
///
/// A connect failure may always retry (the transport says `Unsendable` if it can no
/// longer send); other failures and gateway statuses retry only bodyless requests (and
/// statuses only idempotent ones).
pub(crate) async fn attempts<T: Transport>(a: &Attempts<'_>, transport: &mut T) -> Attempted<T::Reply> {
    let (cfg, route, upstream) = (a.cfg, a.route, &a.route.upstream);
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut retries = Vec::new();
    let total = 1 + cfg.retry.max_retries;
    // A retryable bad response kept in case no other backend can be tried.
    let mut last: Option<(T::Reply, InFlight)> = None;
    let mut failure = None;
    for attempt in 0..total {
        let now = Instant::now();
        if now >= a.deadline {
            failure = Some(Failure::Timeout);
            break;
        }
        let picked = {
            let mut rng = rand::rng();
            balance::pick(&upstream.levels, &tried, cfg.overprovisioning_factor, now.into_std(), &mut rng)
        };
        let Some((level, member)) = picked else { break };
        let ep = member.endpoint.clone();
        tried.push(ep.addr);
        let last_try = attempt + 1 == total;
        let in_flight = ep.start();
        let t0 = Instant::now();
        let wait = cfg.timeouts.first_byte.as_std().min(a.deadline.saturating_duration_since(t0));
        let result = match transport.send(&ep, last_try, wait).await {
            Sent::Reply(r) => Ok(r),
            Sent::Failed(f) => Err(f),
            Sent::Unsendable => break,
            Sent::Client(f) => return Attempted::Client(f),
        };
        let took = t0.elapsed();
        let can_retry = !last_try && a.bodyless;
        match result {
            Ok(reply) => {
                let status = reply.status();
                ep.observe_latency(took, Instant::now().into_std());
                ep.stats.record(Some(status), took.as_secs_f64());
                let outcome = Outcome::of_status(status);
                record(cfg, route, level, &ep, outcome);
                if outcome == Outcome::GatewayFailure
                    && can_retry
                    && a.idempotent
                    && let Some(r) = upstream.budget.try_retry(&cfg.retry)
                {
                    retries.push(r);
                    route.stats.retries.inc();
                    last = Some((reply, in_flight));
                    let pause = backoff(attempt).min(a.deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                    continue;
                }
                return Attempted::Reply { reply, in_flight };
            }
            Err(Failure::Reused) => {
                // Not the backend's fault: it may be picked again (on a new connection).
                tried.pop();
                failure = Some(Failure::Upstream);
                if can_retry && a.idempotent {
                    route.stats.retries.inc();
                    continue;
                }
                break;
            }
            Err(f) => {
                ep.stats.record(None, took.as_secs_f64());
                record(cfg, route, level, &ep, Outcome::GatewayFailure);
                failure = Some(f);
                drop(in_flight);
                // The budget guards healthy backends against retry storms when they are
                // slow. A connection that failed or broke before any response means the
                // backend is gone, not slow: the retry goes to another backend and adds
                // no load to the one that failed, so it does not spend the budget.
                // Otherwise a cluster dying under load fails the burst of requests in
                // flight on its connections beyond the budget's few concurrent retries.
                let allowed = !last_try
                    && match f {
                        Failure::Connect => true,
                        Failure::Upstream | Failure::Reused => a.bodyless && a.idempotent,
                        Failure::Timeout => {
                            can_retry
                                && a.idempotent
                                && upstream.budget.try_retry(&cfg.retry).map(|r| retries.push(r)).is_some()
                        }
                    };
                if allowed {
                    route.stats.retries.inc();
                    continue;
                }
                break;
            }
        }
    }
    if let Some((reply, in_flight)) = last {
        return Attempted::Reply { reply, in_flight };
    }
    match failure {
        Some(f) => Attempted::Failed(f),
        None if tried.is_empty() => Attempted::NoBackend,
        None => Attempted::Failed(Failure::Upstream),
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

/// hyper's pooled client; the request's parts are cloned for every attempt but the last.
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

    async fn send(&mut self, ep: &Arc<Endpoint>, last_try: bool, wait: Duration) -> Sent<Response<Incoming>> {
        let req_body = match self.body.take() {
            Some(b) => ReqBody::Stream(b),
            None if self.bodyless => ReqBody::Empty,
            None => return Sent::Unsendable,
        };
        let parts = &mut self.parts;
        let hdrs = if self.bodyless && !last_try { parts.headers.clone() } else { std::mem::take(&mut parts.headers) };
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

/// Feeds an outcome to outlier detection and ejects when a threshold is crossed and the
/// level's ejection cap allows it.
pub(crate) fn record(
    cfg: &meridian_config::lb::LbConfig,
    route: &Route,
    level: usize,
    ep: &Endpoint,
    outcome: Outcome,
) {
    let now = std::time::Instant::now();
    if ep.record(outcome, &cfg.outlier, now)
        && !ep.is_ejected(now)
        && route.upstream.levels.get(level).is_some_and(|l| l.may_eject(cfg.outlier.max_ejection_percent, now))
    {
        let d = ep.eject(&cfg.outlier, now);
        tracing::warn!(backend = %ep.addr, upstream = %route.upstream.name, seconds = d.as_secs(), "backend ejected");
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
