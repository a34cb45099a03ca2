//! Choosing a backend for one request: priority levels with Envoy's overprovisioned
//! spill-over, power of two choices on peak-EWMA cost inside a level, and outlier
//! ejection (passive health).
//!
//! Endpoint state (outstanding requests, latency, ejection) lives in [`Endpoint`], shared
//! by every route that reaches the same address and kept across table changes; the
//! levels themselves are rebuilt with the route index.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use http::uri::Authority;
use meridian_config::lb::OutlierConfig;
use parking_lot::Mutex;
use rand::Rng;

use crate::metrics::BackendStats;

/// Time origin for the lock-free ejection deadline.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

/// Microseconds since [`EPOCH`]; 0 never occurs after the first call, so it means "none".
fn micros(t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(*EPOCH).as_micros()).unwrap_or(u64::MAX).max(1)
}

/// Latency assumed for a backend never measured (linkerd's default).
const DEFAULT_RTT: Duration = Duration::from_millis(30);
/// Peak-EWMA decay: how fast a latency peak is forgotten (linkerd's default).
const DECAY: Duration = Duration::from_secs(10);

/// One backend address (a load-balancer IP and service port in one cluster).
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    /// `ip:port`, prebuilt so the hot path clones rather than formats it.
    pub(crate) authority: Authority,
    /// Requests sent and not yet finished (the response body still streaming counts).
    outstanding: AtomicU32,
    ewma: Mutex<PeakEwma>,
    outlier: Mutex<Outlier>,
    /// Copy of the ejection deadline ([`micros`]) so selection needs no lock.
    ejected_until: AtomicU64,
    pub(crate) stats: BackendStats,
    /// Idle raw connections for the HTTP/1.1 fast path.
    pub(crate) pool: crate::pool::Pool,
}

impl Endpoint {
    pub(crate) fn new(addr: SocketAddr, stats: BackendStats) -> Option<Self> {
        let authority = Authority::try_from(addr.to_string().as_str()).ok()?;
        Some(Self {
            addr,
            authority,
            outstanding: AtomicU32::new(0),
            ewma: Mutex::new(PeakEwma::new(Instant::now())),
            outlier: Mutex::new(Outlier::default()),
            ejected_until: AtomicU64::new(0),
            stats,
            pool: Default::default(),
        })
    }

    pub(crate) fn is_ejected(&self, now: Instant) -> bool {
        let until = self.ejected_until.load(Ordering::Relaxed);
        until != 0 && micros(now) < until
    }

    /// Time left in the current ejection.
    pub(crate) fn ejected_for(&self, now: Instant) -> Option<Duration> {
        let until = self.ejected_until.load(Ordering::Relaxed);
        let now = micros(now);
        (until > now).then(|| Duration::from_micros(until - now))
    }

    pub(crate) fn outstanding(&self) -> u32 {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// P2C cost: latency estimate × (outstanding + 1).
    pub(crate) fn cost(&self, now: Instant) -> f64 {
        self.ewma.lock().estimate(now) * f64::from(self.outstanding() + 1)
    }

    pub(crate) fn ewma(&self, now: Instant) -> Duration {
        Duration::from_secs_f64(self.ewma.lock().estimate(now) / 1e9)
    }

    /// Marks a request as sent; the guard marks it finished when dropped.
    pub(crate) fn start(self: &Arc<Self>) -> InFlight {
        self.outstanding.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    pub(crate) fn observe_latency(&self, rtt: Duration, now: Instant) {
        self.ewma.lock().observe(rtt, now);
    }

    /// Records a request's outcome. Returns true when the backend crossed a failure
    /// threshold and should be ejected (the caller checks the level's ejection cap).
    pub(crate) fn record(&self, outcome: Outcome, cfg: &OutlierConfig, now: Instant) -> bool {
        self.outlier.lock().record(outcome, cfg, now)
    }

    /// Ejects now; returns the ejection's length.
    pub(crate) fn eject(&self, cfg: &OutlierConfig, now: Instant) -> Duration {
        let d = self.outlier.lock().eject(cfg, now);
        self.ejected_until.store(micros(now + d), Ordering::Relaxed);
        self.stats.ejections.inc();
        d
    }
}

/// A request in flight to one endpoint.
pub(crate) struct InFlight(Arc<Endpoint>);

impl InFlight {
    pub(crate) fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Peak-EWMA latency (Finagle, linkerd): a slower sample counts at once, faster ones are
/// averaged in, and the estimate decays while nothing is measured so a once-slow backend
/// is tried again.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PeakEwma {
    /// Estimate in nanoseconds.
    cost: f64,
    stamp: Instant,
}

impl PeakEwma {
    pub(crate) fn new(now: Instant) -> Self {
        Self { cost: DEFAULT_RTT.as_secs_f64() * 1e9, stamp: now }
    }

    fn weight(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.stamp).as_secs_f64();
        (-elapsed / DECAY.as_secs_f64()).exp()
    }

    pub(crate) fn observe(&mut self, rtt: Duration, now: Instant) {
        let rtt = rtt.as_secs_f64() * 1e9;
        if rtt > self.cost {
            self.cost = rtt;
        } else {
            let w = self.weight(now);
            self.cost = self.cost * w + rtt * (1.0 - w);
        }
        self.stamp = now;
    }

    /// The estimate now, in nanoseconds.
    pub(crate) fn estimate(&self, now: Instant) -> f64 {
        self.cost * self.weight(now)
    }
}

/// How one attempt ended, for outlier detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Any response below 500.
    Success,
    /// A 5xx other than 502/503/504.
    ServerError,
    /// Connect failure, reset, timeout, garbage, or 502/503/504.
    GatewayFailure,
}

impl Outcome {
    pub(crate) fn of_status(status: http::StatusCode) -> Self {
        match status.as_u16() {
            502..=504 => Outcome::GatewayFailure,
            500..=599 => Outcome::ServerError,
            _ => Outcome::Success,
        }
    }
}

/// Envoy's consecutive-failure outlier detector for one backend.
#[derive(Debug, Default, Clone)]
pub(crate) struct Outlier {
    consecutive_5xx: u32,
    consecutive_gateway: u32,
    /// Ejections in a row, which multiply the ejection time; forgotten after a success
    /// more than a base ejection time past the last ejection's end.
    ejections: u32,
    last_ejection_end: Option<Instant>,
}

impl Outlier {
    pub(crate) fn record(&mut self, outcome: Outcome, cfg: &OutlierConfig, now: Instant) -> bool {
        match outcome {
            Outcome::Success => {
                self.consecutive_5xx = 0;
                self.consecutive_gateway = 0;
                if let Some(end) = self.last_ejection_end
                    && now >= end + cfg.base_ejection_time.as_std()
                {
                    self.ejections = 0;
                    self.last_ejection_end = None;
                }
                false
            }
            Outcome::ServerError => {
                self.consecutive_5xx += 1;
                self.consecutive_gateway = 0;
                cfg.consecutive_5xx > 0 && self.consecutive_5xx >= cfg.consecutive_5xx
            }
            Outcome::GatewayFailure => {
                self.consecutive_5xx += 1;
                self.consecutive_gateway += 1;
                (cfg.consecutive_5xx > 0 && self.consecutive_5xx >= cfg.consecutive_5xx)
                    || (cfg.consecutive_gateway_failures > 0
                        && self.consecutive_gateway >= cfg.consecutive_gateway_failures)
            }
        }
    }

    /// Starts an ejection: base × consecutive ejections, capped.
    pub(crate) fn eject(&mut self, cfg: &OutlierConfig, now: Instant) -> Duration {
        self.ejections = self.ejections.saturating_add(1);
        self.consecutive_5xx = 0;
        self.consecutive_gateway = 0;
        let d = cfg.base_ejection_time.as_std().saturating_mul(self.ejections).min(cfg.max_ejection_time.as_std());
        self.last_ejection_end = Some(now + d);
        d
    }
}

/// A backend as one route sees it: the endpoint plus the table's health of its shard.
pub(crate) struct Member {
    pub(crate) endpoint: Arc<Endpoint>,
    pub(crate) cluster: Arc<str>,
    /// The shard is healthy in the table (ready endpoints, active probe not down, stale
    /// policy allows it).
    pub(crate) healthy: bool,
}

impl Member {
    fn available(&self, now: Instant) -> bool {
        self.healthy && !self.endpoint.is_ejected(now)
    }
}

/// One priority level: the backends of the clusters ranked together.
pub(crate) struct Level {
    /// Region (or cluster) name, for status.
    pub(crate) name: Arc<str>,
    pub(crate) members: Vec<Member>,
}

impl Level {
    /// (available, total) backends.
    pub(crate) fn health(&self, now: Instant) -> (u32, u32) {
        let total = u32::try_from(self.members.len()).unwrap_or(u32::MAX);
        let up = self.members.iter().filter(|m| m.available(now)).count();
        (u32::try_from(up).unwrap_or(u32::MAX), total)
    }

    /// Whether one more backend of this level may be ejected now.
    pub(crate) fn may_eject(&self, max_percent: u32, now: Instant) -> bool {
        let ejected = self.members.iter().filter(|m| m.endpoint.is_ejected(now)).count();
        let cap = (self.members.len() * max_percent as usize / 100).max(1);
        ejected < cap
    }
}

/// Envoy's priority load: each level's health is its available share × the
/// overprovisioning factor (capped at 100%); level 0 takes up to its health, the rest
/// spills to the next. When the levels' health sums to less than 100%, the loads are
/// normalised so traffic still all goes somewhere. All zero when nothing is available.
pub(crate) fn priority_loads(health: &[(u32, u32)], factor: f64) -> Vec<f64> {
    loads(health.len(), |i| health.get(i).copied().unwrap_or((0, 0)), factor).collect()
}

fn level_health(healthy: u32, total: u32, factor: f64) -> f64 {
    if total == 0 { 0.0 } else { (f64::from(healthy) * 100.0 / f64::from(total) * factor).min(100.0) }
}

fn loads(n: usize, health: impl Fn(usize) -> (u32, u32), factor: f64) -> impl Iterator<Item = f64> {
    let sum: f64 = (0..n).map(|i| level_health(health(i).0, health(i).1, factor)).sum();
    let total = sum.min(100.0);
    let mut remaining = 100.0_f64;
    (0..n).map(move |i| {
        if total <= 0.0 {
            return 0.0;
        }
        let (h, t) = health(i);
        let load = (level_health(h, t, factor) * 100.0 / total).min(remaining);
        remaining -= load;
        load
    })
}

/// Picks a level for a request, with `r` uniform in [0, 100).
pub(crate) fn choose_level(levels: &[Level], factor: f64, now: Instant, r: f64) -> Option<usize> {
    let health: Vec<(u32, u32)> = levels.iter().map(|l| l.health(now)).collect();
    let mut r = r;
    let mut last = None;
    for (i, load) in loads(health.len(), |i| health.get(i).copied().unwrap_or((0, 0)), factor).enumerate() {
        if load > 0.0 {
            if r < load {
                return Some(i);
            }
            r -= load;
            last = Some(i);
        }
    }
    // Rounding left a sliver: give it to the last level that had load.
    last
}

/// Picks a backend: a level by priority load, then the cheaper of two random available
/// members not yet `tried`. When the chosen level has nobody left (all tried), the other
/// levels are tried in priority order. Returns the level index and the member.
pub(crate) fn pick<'a>(
    levels: &'a [Level],
    tried: &[SocketAddr],
    factor: f64,
    now: Instant,
    rng: &mut impl Rng,
) -> Option<(usize, &'a Member)> {
    let first = choose_level(levels, factor, now, rng.random_range(0.0..100.0))?;
    let order = std::iter::once(first).chain((0..levels.len()).filter(move |&i| i != first));
    for i in order {
        let Some(level) = levels.get(i) else { continue };
        let ok = |m: &&Member| m.available(now) && !tried.contains(&m.endpoint.addr);
        if let Some(m) = p2c(level.members.iter().filter(ok), now, rng) {
            return Some((i, m));
        }
    }
    None
}

/// The backend the balancer favours now: the first level with load (level 0 takes up to
/// its health, the rest spills over), and in it the available member of lowest cost,
/// which wins every power-of-two draw it is in.
pub(crate) fn favoured(levels: &[Level], factor: f64, now: Instant) -> Option<(usize, &Member)> {
    let health: Vec<(u32, u32)> = levels.iter().map(|l| l.health(now)).collect();
    let mut loads = loads(health.len(), |i| health.get(i).copied().unwrap_or((0, 0)), factor);
    let level = loads.position(|load| load > 0.0)?;
    let members = levels.get(level)?.members.iter().filter(|m| m.available(now));
    let best = members.min_by(|a, b| a.endpoint.cost(now).total_cmp(&b.endpoint.cost(now)))?;
    Some((level, best))
}

/// Power of two choices over `candidates` (an iterator that can be re-run).
fn p2c<'a, I>(candidates: I, now: Instant, rng: &mut impl Rng) -> Option<&'a Member>
where
    I: Iterator<Item = &'a Member> + Clone,
{
    let n = candidates.clone().count();
    match n {
        0 => None,
        1 => candidates.clone().next(),
        _ => {
            let a = rng.random_range(0..n);
            let mut b = rng.random_range(0..n - 1);
            if b >= a {
                b += 1;
            }
            let ma = candidates.clone().nth(a)?;
            let mb = candidates.clone().nth(b)?;
            Some(if mb.endpoint.cost(now) < ma.endpoint.cost(now) { mb } else { ma })
        }
    }
}

#[cfg(test)]
mod tests;
