//! The data path: one client request → route → backend attempts → response.
//!
//! Failures never escape as errors: they become a short plain-text response for this one
//! client (404 no route, 503 no healthy backend, 502 bad backend, 504 timeout).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{CONTENT_TYPE, HOST, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::Rng;
use tokio::time::Instant;

use crate::Shared;
use crate::balance::{self, Endpoint, InFlight, Outcome};
use crate::body::{ReqBody, RespBody, Streaming};
use crate::headers;
use crate::routes::{Route, normalize_host};

/// What the data path knows about the client connection.
pub(crate) struct ConnInfo {
    pub(crate) peer: SocketAddr,
    pub(crate) tls: bool,
}

/// Why an attempt got no usable response. Every variant is a gateway failure for
/// outlier detection; only `Connect` guarantees the backend saw nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// TCP connect refused or timed out: the request never left, any request may retry.
    Connect,
    /// No response headers within the first-byte (or overall) timeout.
    Timeout,
    /// Reset, garbage or a closed connection after the request was (maybe) sent.
    Upstream,
}

impl Failure {
    /// Whether another backend may be tried for a request of this kind.
    fn is_retryable(self, idempotent: bool) -> bool {
        self == Failure::Connect || idempotent
    }

    fn response(self) -> Response<RespBody> {
        match self {
            Failure::Timeout => local(StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n"),
            Failure::Connect | Failure::Upstream => local(StatusCode::BAD_GATEWAY, "bad gateway\n"),
        }
    }
}

pub(crate) fn local(status: StatusCode, text: &'static str) -> Response<RespBody> {
    let mut r = Response::new(RespBody::local(text));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn is_idempotent(m: &Method) -> bool {
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
    let host = req.uri().host().or_else(|| req.headers().get(HOST).and_then(|h| h.to_str().ok()));
    let Some(host) = host else {
        return Ok(local(StatusCode::BAD_REQUEST, "missing Host header\n"));
    };
    let route = shared.routes.load().lookup(&normalize_host(host), req.uri().path()).cloned();
    let Some(route) = route else {
        return Ok(local(StatusCode::NOT_FOUND, "no route for this host\n"));
    };
    let start = Instant::now();
    let resp = proxy(&shared, &conn, &route, req, start).await;
    route.stats.record(resp.status, start.elapsed().as_secs_f64());
    Ok(resp.response)
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

async fn proxy(shared: &Shared, conn: &ConnInfo, route: &Route, mut req: Request<Incoming>, start: Instant) -> Answer {
    let cfg = shared.config.load_full();
    let client = shared.client.load_full();
    let upstream = &route.upstream;
    let deadline = start + cfg.timeouts.overall.as_std();
    let version = req.version();
    let upgrade = version == Version::HTTP_11 && headers::is_upgrade(req.headers());
    let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    if !parts.headers.contains_key(HOST)
        && let Some(v) = parts.uri.authority().and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        parts.headers.insert(HOST, v);
    }
    headers::rewrite_request(&mut parts.headers, conn.peer.ip(), conn.tls, version, upgrade);
    let pq = parts.uri.path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
    // Only a request without a body can be sent twice: bodies stream and are not kept.
    let bodyless = body.is_end_stream();
    let mut body = (!bodyless).then_some(body);
    let idempotent = is_idempotent(&parts.method);

    let active = upstream.budget.request();
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut retries = Vec::new();
    let attempts = 1 + cfg.retry.max_retries;
    // A retryable bad response kept in case no other backend can be tried.
    let mut last: Option<(Response<Incoming>, InFlight)> = None;
    let mut failure = None;
    for attempt in 0..attempts {
        let now = Instant::now();
        if now >= deadline {
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
        let last_try = attempt + 1 == attempts;
        let req_body = match body.take() {
            Some(b) => ReqBody::Stream(b),
            None if bodyless => ReqBody::Empty,
            // The body went to an earlier attempt.
            None => break,
        };
        let hdrs = if bodyless && !last_try { parts.headers.clone() } else { std::mem::take(&mut parts.headers) };
        let Ok(uri) =
            Uri::builder().scheme(Scheme::HTTP).authority(ep.authority.clone()).path_and_query(pq.clone()).build()
        else {
            return Answer { response: local(StatusCode::BAD_REQUEST, "bad request target\n"), status: None };
        };
        let mut up = Request::new(req_body);
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = uri;
        *up.headers_mut() = hdrs;
        let in_flight = ep.start();
        let t0 = Instant::now();
        let wait = cfg.timeouts.first_byte.as_std().min(deadline.saturating_duration_since(t0));
        let result = match tokio::time::timeout(wait, client.request(up)).await {
            Err(_) => Err(Failure::Timeout),
            Ok(Err(e)) if e.is_connect() => Err(Failure::Connect),
            Ok(Err(e)) => {
                tracing::debug!(backend = %ep.addr, error = %e, "upstream request failed");
                Err(Failure::Upstream)
            }
            Ok(Ok(r)) => Ok(r),
        };
        let took = t0.elapsed();
        let can_retry = !last_try && bodyless;
        match result {
            Ok(resp) => {
                let status = resp.status();
                ep.observe_latency(took, Instant::now().into_std());
                ep.stats.record(Some(status), took.as_secs_f64());
                let outcome = Outcome::of_status(status);
                record(&cfg, route, level, &ep, outcome);
                if outcome == Outcome::GatewayFailure
                    && can_retry
                    && idempotent
                    && let Some(r) = upstream.budget.try_retry(&cfg.retry)
                {
                    retries.push(r);
                    route.stats.retries.inc();
                    last = Some((resp, in_flight));
                    let pause = backoff(attempt).min(deadline.saturating_duration_since(Instant::now()));
                    tokio::time::sleep(pause).await;
                    continue;
                }
                if upgrade && status == StatusCode::SWITCHING_PROTOCOLS {
                    return Answer { response: switch_protocols(resp, on_upgrade, in_flight), status: Some(status) };
                }
                return Answer { response: respond(resp, in_flight, active, &cfg), status: Some(status) };
            }
            Err(f) => {
                ep.stats.record(None, took.as_secs_f64());
                record(&cfg, route, level, &ep, Outcome::GatewayFailure);
                failure = Some(f);
                drop(in_flight);
                if can_retry && f.is_retryable(idempotent) {
                    // The budget guards healthy backends against retry storms when they are
                    // slow. A connection that failed or broke before any response means the
                    // backend is gone, not slow: the retry goes to another backend and adds
                    // no load to the one that failed, so it does not spend the budget.
                    // Otherwise a cluster dying under load fails the burst of requests in
                    // flight on its connections beyond the budget's few concurrent retries.
                    let allowed = match f {
                        Failure::Connect | Failure::Upstream => true,
                        Failure::Timeout => match upstream.budget.try_retry(&cfg.retry) {
                            Some(r) => {
                                retries.push(r);
                                true
                            }
                            None => false,
                        },
                    };
                    if allowed {
                        route.stats.retries.inc();
                        continue;
                    }
                }
                break;
            }
        }
    }
    if let Some((resp, in_flight)) = last {
        let status = resp.status();
        return Answer { response: respond(resp, in_flight, active, &cfg), status: Some(status) };
    }
    match failure {
        Some(f) => f.into(),
        None if tried.is_empty() => {
            Answer { response: local(StatusCode::SERVICE_UNAVAILABLE, "no healthy backend\n"), status: None }
        }
        None => Failure::Upstream.into(),
    }
}

/// Feeds an outcome to outlier detection and ejects when a threshold is crossed and the
/// level's ejection cap allows it.
fn record(cfg: &meridian_config::lb::LbConfig, route: &Route, level: usize, ep: &Endpoint, outcome: Outcome) {
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
