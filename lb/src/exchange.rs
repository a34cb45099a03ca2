//! One request's exchange with the backends, whatever path serves it (the fast path's
//! raw connections or hyper's): the retry loop over a [`Transport`], and what a failure
//! says about whose it is ([`Failure`] for the backend's, [`ClientFault`] for the
//! client's) and whether it may be retried.
//!
//! A leaf of the data path: `h1` and `forward` both use it, it uses neither.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Response, StatusCode};
use rand::Rng;
use tokio::time::Instant;

use crate::balance::{self, Endpoint, InFlight, Outcome};
use crate::routes::Route;

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
    pub(crate) fn local_parts(self) -> (StatusCode, &'static str) {
        match self {
            Failure::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream timeout\n"),
            Failure::Connect | Failure::Upstream | Failure::Reused => (StatusCode::BAD_GATEWAY, "bad gateway\n"),
        }
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

pub(crate) fn is_idempotent(m: &Method) -> bool {
    matches!(*m, Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE)
}

/// Backoff before retrying after a bad response: jittered, exponential from 25 ms
/// (Envoy's base). Connect failures retry at once: the next backend is a different one.
fn backoff(retry: u32) -> Duration {
    let cap = 25u64.saturating_mul(1 << retry.min(4));
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

/// A backend's answer to one attempt, whatever the transport.
pub(crate) trait Reply {
    fn status(&self) -> StatusCode;
}

/// How a request is sent to a backend: hyper's pooled client, or the fast path's raw
/// connections.
pub(crate) trait Transport {
    type Reply: Reply + Send;
    /// One attempt at `ep`. The response head must come within `wait` of the request
    /// having been sent whole (the time a client takes to upload its body is not the
    /// backend's).
    fn send(&mut self, ep: &Arc<Endpoint>, wait: Duration) -> impl Future<Output = Sent<Self::Reply>> + Send;
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
/// `1 + max_retries` bounds how often the request reaches a backend. A connect failure
/// delivered nothing, so it does not use up a try: the next backend is picked (the
/// transport says `Unsendable` if it can no longer send), each backend once, within the
/// request's deadline. Other failures and gateway statuses retry only bodyless requests
/// (and statuses only idempotent ones).
pub(crate) async fn attempts<T: Transport>(a: &Attempts<'_>, transport: &mut T) -> Attempted<T::Reply> {
    let (cfg, route, upstream) = (a.cfg, a.route, &a.route.upstream);
    let mut tried: Vec<SocketAddr> = Vec::new();
    let mut retries = Vec::new();
    let total = 1 + cfg.retry.max_retries;
    // A retryable bad response kept in case no other backend can be tried.
    let mut last: Option<(T::Reply, InFlight)> = None;
    let mut failure = None;
    let mut delivered: u32 = 0;
    while delivered < total {
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
        let last_try = delivered + 1 == total;
        let in_flight = ep.start();
        let t0 = Instant::now();
        let wait = cfg.timeouts.first_byte.as_std().min(a.deadline.saturating_duration_since(t0));
        let result = match transport.send(&ep, wait).await {
            Sent::Reply(r) => Ok(r),
            Sent::Failed(f) => Err(f),
            Sent::Unsendable => break,
            Sent::Client(f) => return Attempted::Client(f),
        };
        if !matches!(result, Err(Failure::Connect)) {
            delivered += 1;
        }
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
                    let pause = backoff(delivered).min(a.deadline.saturating_duration_since(Instant::now()));
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
                let allowed = match f {
                    Failure::Connect => true,
                    Failure::Upstream | Failure::Reused => can_retry && a.idempotent,
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
