//! What is known of one hostname and when to ask again. Pure (the caller passes `now`),
//! so the timing rules are unit tests.

use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Least time between two lookups of a name: TTLs of 0 or 1 s (some cloud names have
/// them) would otherwise mean a query per name every second.
pub(crate) const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Most time between two lookups: a day-long TTL must not hide a moved load balancer.
pub(crate) const MAX_REFRESH: Duration = Duration::from_secs(300);
/// While lookups fail, addresses are kept this many (bounded) TTLs after they were last
/// confirmed, then dropped as stale…
pub(crate) const KEEP_TTLS: u32 = 4;
/// …and never sooner than this, so that a resolver restart does not drop names whose TTL
/// is a few seconds.
pub(crate) const KEEP_MIN: Duration = Duration::from_secs(60);
/// When to ask again about a name without addresses whose answer gave no negative TTL.
pub(crate) const ABSENT_RECHECK: Duration = Duration::from_secs(30);
/// Longest wait between retries after failed lookups.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(60);
/// Addresses kept per name and family: bounds what one answer can add to a shard.
pub(crate) const MAX_ADDRS: usize = 32;

/// When to look a name up again after an answer with `ttl`: at nine tenths of it, so the
/// new answer arrives while the old one still holds, bounded to
/// [`MIN_REFRESH`]..=[`MAX_REFRESH`].
pub(crate) fn refresh_in(ttl: Duration) -> Duration {
    (ttl - ttl / 10).clamp(MIN_REFRESH, MAX_REFRESH)
}

/// How long addresses last confirmed with `ttl` are kept while lookups fail.
pub(crate) fn keep_for(ttl: Duration) -> Duration {
    (ttl.clamp(MIN_REFRESH, MAX_REFRESH) * KEEP_TTLS).max(KEEP_MIN)
}

/// The wait before the next try after `failures` failed lookups in a row (at least one):
/// doubling from [`MIN_REFRESH`] up to [`RETRY_MAX`].
pub(crate) fn retry_in(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(8);
    MIN_REFRESH.saturating_mul(1 << doublings).min(RETRY_MAX)
}

/// What one query (A or AAAA) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Answer {
    /// Addresses, and the lowest TTL of the answer's records (a CNAME's included).
    Addrs(Vec<IpAddr>, Duration),
    /// The name has no records of the type: NXDOMAIN (`nx`) or NODATA, with the negative
    /// TTL when the server sent its SOA.
    Absent { nx: bool, ttl: Option<Duration> },
    /// No usable answer (deadline, SERVFAIL, REFUSED, network error), and why.
    Failed(String),
}

/// What a lookup of both families came to, as the metric counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Both queries answered, with some address.
    Ok,
    /// The name does not exist.
    NxDomain,
    /// The name exists without A or AAAA records.
    NoData,
    /// A query got no answer: what it had is kept until stale.
    Failed,
}

impl Outcome {
    pub(crate) fn label(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::NxDomain => "nxdomain",
            Outcome::NoData => "nodata",
            Outcome::Failed => "failed",
        }
    }
}

/// One family's last good answer.
#[derive(Debug, Clone, Default)]
struct Family {
    addrs: Vec<IpAddr>,
    /// When `addrs` were last confirmed, and their TTL; `None` while there are none.
    confirmed: Option<(Instant, Duration)>,
}

impl Family {
    /// Applies one answer; returns when that answer says to ask again (`None` after a
    /// failure, whose retry the name decides).
    fn apply(&mut self, answer: &Answer, now: Instant) -> Option<Duration> {
        match answer {
            Answer::Addrs(addrs, ttl) => {
                let mut addrs = addrs.clone();
                addrs.sort();
                addrs.dedup();
                addrs.truncate(MAX_ADDRS);
                self.addrs = addrs;
                self.confirmed = Some((now, *ttl));
                Some(refresh_in(*ttl))
            }
            Answer::Absent { ttl, .. } => {
                *self = Family::default();
                Some(ttl.map_or(ABSENT_RECHECK, refresh_in))
            }
            Answer::Failed(_) => {
                if self.stale_at().is_some_and(|at| at <= now) {
                    *self = Family::default();
                }
                None
            }
        }
    }

    /// When the addresses kept turn stale, if any are kept.
    fn stale_at(&self) -> Option<Instant> {
        self.confirmed.map(|(at, ttl)| at + keep_for(ttl))
    }
}

/// What is known of one hostname: each family's last good answer, and the failures in a
/// row since the last lookup that got both answers.
#[derive(Debug, Clone, Default)]
pub(crate) struct NameState {
    v4: Family,
    v6: Family,
    failures: u32,
}

/// What one lookup did to a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Applied {
    /// The addresses changed (tell the name's users).
    pub(crate) changed: bool,
    /// When to look it up again.
    pub(crate) next: Duration,
    pub(crate) outcome: Outcome,
}

impl NameState {
    /// The name's addresses now, IPv4 first.
    pub(crate) fn addresses(&self) -> Vec<IpAddr> {
        self.v4.addrs.iter().chain(&self.v6.addrs).copied().collect()
    }

    /// Applies the answers of one lookup made at `now`.
    pub(crate) fn apply(&mut self, v4: &Answer, v6: &Answer, now: Instant) -> Applied {
        let before = self.addresses();
        let asks = (self.v4.apply(v4, now), self.v6.apply(v6, now));
        let outcome = match (v4, v6) {
            (Answer::Failed(_), _) | (_, Answer::Failed(_)) => Outcome::Failed,
            (Answer::Absent { nx: true, .. }, Answer::Absent { .. })
            | (Answer::Absent { .. }, Answer::Absent { nx: true, .. }) => Outcome::NxDomain,
            (Answer::Absent { .. }, Answer::Absent { .. }) => Outcome::NoData,
            _ => Outcome::Ok,
        };
        let next = match asks {
            (Some(a), Some(b)) => {
                self.failures = 0;
                a.min(b)
            }
            _ => {
                self.failures = self.failures.saturating_add(1);
                self.retry_after_failure(now)
            }
        };
        Applied { changed: self.addresses() != before, next, outcome }
    }

    /// The retry's wait: backing off, but no later than when kept addresses turn stale,
    /// so that they are dropped on time (and at once, if that lookup fails too).
    fn retry_after_failure(&self, now: Instant) -> Duration {
        let backoff = retry_in(self.failures);
        let stale = [self.v4.stale_at(), self.v6.stale_at()].into_iter().flatten().min();
        match stale {
            Some(at) => backoff.min(at.saturating_duration_since(now)).max(Duration::from_secs(1)),
            None => backoff,
        }
    }
}
