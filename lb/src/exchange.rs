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
    /// The request may have reached the backend: the attempt counts against
    /// `1 + max_retries`. A failed connect sent nothing.
    pub(crate) fn delivered(self) -> bool {
        self != Failure::Connect
    }

    /// Whether the request may be sent again after this failure. A failed connect
    /// always may (nothing was sent); anything else only when the request can be resent
    /// (`resendable`: no body, idempotent, and tries left).
    pub(crate) fn may_retry(self, resendable: bool) -> bool {
        self == Failure::Connect || resendable
    }

    /// Whether a retry after this failure spends the retry budget. The budget guards
    /// healthy backends against retry storms when they are slow; a connection that
    /// failed or broke before any response means the backend is gone, not slow, and the
    /// retry adds no load to it. Otherwise a cluster dying under load would fail the
    /// burst of requests in flight on its connections beyond the budget's few
    /// concurrent retries.
    pub(crate) fn spends_budget(self) -> bool {
        self == Failure::Timeout
    }

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
/// request's deadline. Other failures and gateway statuses retry only bodyless
/// idempotent requests ([`Failure::may_retry`]).
pub(crate) async fn attempts<T: Transport>(a: &Attempts<'_>, transport: &mut T) -> Attempted<T::Reply> {
    let mut run = Run::new(a);
    while run.delivered < run.total {
        let now = Instant::now();
        if now >= a.deadline {
            run.failure = Some(Failure::Timeout);
            break;
        }
        let Some((level, ep)) = run.pick(now) else { break };
        // Sending again is possible only without a body, and safe only when idempotent.
        let resendable = run.delivered + 1 < run.total && a.bodyless && a.idempotent;
        let in_flight = ep.start();
        let t0 = Instant::now();
        let wait = a.cfg.timeouts.first_byte.as_std().min(a.deadline.saturating_duration_since(t0));
        let step = match transport.send(&ep, wait).await {
            Sent::Reply(reply) => run.on_reply(level, &ep, (reply, in_flight), t0.elapsed(), resendable),
            Sent::Failed(f) => run.on_failure(level, &ep, f, t0.elapsed(), resendable),
            Sent::Unsendable => break,
            Sent::Client(f) => return Attempted::Client(f),
        };
        match step {
            Step::Retry { pause } if pause.is_zero() => {}
            Step::Retry { pause } => tokio::time::sleep(pause).await,
            Step::Stop => break,
            Step::Done(reply, in_flight) => return Attempted::Reply { reply, in_flight },
        }
    }
    run.finish()
}

/// What the retry loop does after one attempt.
enum Step<R> {
    /// Try another backend (after `pause`).
    Retry {
        pause: Duration,
    },
    /// No further attempt: answer with what `Run::finish` says.
    Stop,
    Done(R, InFlight),
}

/// The state of one request's attempts.
struct Run<'a, R> {
    a: &'a Attempts<'a>,
    tried: Vec<SocketAddr>,
    /// Retry-budget tokens held until the request ends.
    retries: Vec<crate::retry::Retrying>,
    total: u32,
    delivered: u32,
    /// A retryable bad response kept in case no other backend can be tried.
    last: Option<(R, InFlight)>,
    failure: Option<Failure>,
}

impl<'a, R: Reply> Run<'a, R> {
    fn new(a: &'a Attempts<'a>) -> Self {
        let total = 1 + a.cfg.retry.max_retries;
        Run { a, tried: Vec::new(), retries: Vec::new(), total, delivered: 0, last: None, failure: None }
    }

    /// The next backend: best priority level, P2C within it, none already tried.
    fn pick(&mut self, now: Instant) -> Option<(usize, Arc<Endpoint>)> {
        let levels = &self.a.route.upstream.levels;
        let factor = self.a.cfg.overprovisioning_factor;
        let (level, member) = balance::pick(levels, &self.tried, factor, now.into_std(), &mut rand::rng())?;
        self.tried.push(member.endpoint.addr);
        Some((level, member.endpoint.clone()))
    }

    /// A retry allowed by the budget, whose token is held until the request ends.
    fn spend_budget(&mut self) -> bool {
        let upstream = &self.a.route.upstream;
        upstream.budget.try_retry(&self.a.cfg.retry).map(|r| self.retries.push(r)).is_some()
    }

    fn on_reply(
        &mut self,
        level: usize,
        ep: &Endpoint,
        got: (R, InFlight),
        took: Duration,
        resendable: bool,
    ) -> Step<R> {
        let (cfg, route) = (self.a.cfg, self.a.route);
        self.delivered += 1;
        let status = got.0.status();
        ep.observe_latency(took, Instant::now().into_std());
        ep.stats.record(Some(status), took.as_secs_f64());
        let outcome = Outcome::of_status(status);
        record(cfg, route, level, ep, outcome);
        if outcome == Outcome::GatewayFailure && resendable && self.spend_budget() {
            route.stats.retries.inc();
            self.last = Some(got);
            let pause = backoff(self.delivered).min(self.a.deadline.saturating_duration_since(Instant::now()));
            return Step::Retry { pause };
        }
        Step::Done(got.0, got.1)
    }

    fn on_failure(&mut self, level: usize, ep: &Endpoint, f: Failure, took: Duration, resendable: bool) -> Step<R> {
        let (cfg, route) = (self.a.cfg, self.a.route);
        if f.delivered() {
            self.delivered += 1;
        }
        if f == Failure::Reused {
            // Not the backend's fault: it may be picked again (on a new connection).
            self.tried.pop();
            self.failure = Some(Failure::Upstream);
        } else {
            ep.stats.record(None, took.as_secs_f64());
            record(cfg, route, level, ep, Outcome::GatewayFailure);
            self.failure = Some(f);
        }
        let allowed = f.may_retry(resendable) && (!f.spends_budget() || self.spend_budget());
        if allowed {
            route.stats.retries.inc();
            return Step::Retry { pause: Duration::ZERO };
        }
        Step::Stop
    }

    /// The answer once no further attempt is made.
    fn finish(self) -> Attempted<R> {
        if let Some((reply, in_flight)) = self.last {
            return Attempted::Reply { reply, in_flight };
        }
        match self.failure {
            Some(f) => Attempted::Failed(f),
            None if self.tried.is_empty() => Attempted::NoBackend,
            None => Attempted::Failed(Failure::Upstream),
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
