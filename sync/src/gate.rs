//! Request deadlines and the member gates.
//!
//! Every request sync sends, to a member or to the control plane, is bounded by `[sync]
//! request_timeout` ([`RequestError::TimedOut`] when it passes). A member whose request
//! timed out has its gate shut: every reconcile and deletion then skips it at once
//! ([`RequestError::Skipped`]) instead of waiting a whole timeout per object, and a probe
//! asks it again after a backoff (doubling from [`FIRST_PROBE`] up to `[sync]
//! retry_max`). The first answer opens the gate, and everything is reconciled again.
//!
//! Without the gate, deadlines alone would still let one silent member cost every
//! reconcile a timeout; with it, only the requests already in flight when the member went
//! silent wait, each at most one timeout.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// First probe of a member after its gate shut; doubles after each probe that gets no
/// answer. Short, because one lost request is often just one lost request.
pub(crate) const FIRST_PROBE: Duration = Duration::from_millis(250);

/// Why a bounded request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RequestError {
    /// The API answered with an error, or the connection failed.
    #[error("{}", short(.0))]
    Api(#[source] kube::Error),
    /// No answer within the deadline (the member's gate is now shut).
    #[error("no answer within {0:?}; skipped until it answers again")]
    TimedOut(Duration),
    /// Not sent: the member's gate is shut since an earlier request timed out.
    #[error("no answer within {0:?}; skipped until it answers again")]
    Skipped(Duration),
}

impl RequestError {
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, RequestError::Api(kube::Error::Api(s)) if s.code == 404)
    }

    /// A write lost a race (the object exists, or changed since it was read).
    pub(crate) fn is_conflict(&self) -> bool {
        matches!(self, RequestError::Api(kube::Error::Api(s)) if s.code == 409)
    }

    /// True when the member did not answer (this request or an earlier one).
    pub(crate) fn is_unanswered(&self) -> bool {
        matches!(self, RequestError::TimedOut(_) | RequestError::Skipped(_))
    }
}

/// A kube error as one line for status, events and logs.
pub(crate) fn short(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if !s.message.is_empty() => s.message.clone(),
        other => other.to_string().lines().next().unwrap_or_default().to_owned(),
    }
}

/// One member's gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Gate {
    /// Requests are sent. Entered at start (no entry) and when a probe gets an answer;
    /// left when a request times out. `backoff` is the last one used, carried over when
    /// the gate shuts again soon after opening (a member that answers probes but not
    /// sync's requests), so such a member is not retried at the first backoff forever.
    Open { since: Instant, backoff: Duration },
    /// Requests are not sent. Entered when a request times out (after `timeout`); left
    /// when a probe, sent at `probe_at` (none while `probing`), gets an answer.
    Shut { timeout: Duration, probe_at: Instant, backoff: Duration, probing: bool },
}

/// Every member's gate, and how many times each has opened again (drift watchers are
/// restarted then, since their connections may be dead).
#[derive(Debug, Default)]
pub(crate) struct Gates {
    inner: Mutex<HashMap<String, (Gate, u64)>>,
}

impl Gates {
    /// `Err(timeout)` while the member's gate is shut: skip it.
    pub(crate) fn check(&self, cluster: &str) -> Result<(), Duration> {
        match self.inner.lock().get(cluster) {
            Some((Gate::Shut { timeout, .. }, _)) => Err(*timeout),
            _ => Ok(()),
        }
    }

    /// A request to `cluster` got no answer within `timeout`: shuts its gate. True when
    /// this shut it (it was open).
    pub(crate) fn shut(&self, cluster: &str, timeout: Duration, now: Instant, max: Duration) -> bool {
        let mut g = self.inner.lock();
        let entry = g.entry(cluster.to_owned()).or_insert((Gate::Open { since: now, backoff: Duration::ZERO }, 0));
        let backoff = match entry.0 {
            Gate::Shut { .. } => return false,
            // Shut again within the longest backoff of opening: keep backing off.
            Gate::Open { since, backoff } if !backoff.is_zero() && now.duration_since(since) < max => {
                backoff.saturating_mul(2).min(max)
            }
            Gate::Open { .. } => FIRST_PROBE.min(max),
        };
        entry.0 = Gate::Shut { timeout, probe_at: now + backoff, backoff, probing: false };
        true
    }

    /// Members whose probe is due; they are marked as being probed.
    pub(crate) fn due(&self, now: Instant) -> Vec<String> {
        let mut g = self.inner.lock();
        let mut out = Vec::new();
        for (name, (gate, _)) in g.iter_mut() {
            if let Gate::Shut { probe_at, probing, .. } = gate
                && !*probing
                && *probe_at <= now
            {
                *probing = true;
                out.push(name.clone());
            }
        }
        out
    }

    /// A probe's outcome: an answer opens the gate; silence doubles the backoff (up to
    /// `max`) before the next probe. True when the gate opened.
    pub(crate) fn probed(&self, cluster: &str, answered: bool, now: Instant, max: Duration) -> bool {
        let mut g = self.inner.lock();
        let Some((gate, opened)) = g.get_mut(cluster) else { return false };
        let Gate::Shut { timeout, backoff, .. } = *gate else { return false };
        if answered {
            *gate = Gate::Open { since: now, backoff };
            *opened += 1;
            true
        } else {
            let backoff = backoff.saturating_mul(2).min(max);
            *gate = Gate::Shut { timeout, probe_at: now + backoff, backoff, probing: false };
            false
        }
    }

    /// How many times the member's gate has opened again.
    pub(crate) fn openings(&self, cluster: &str) -> u64 {
        self.inner.lock().get(cluster).map_or(0, |(_, n)| *n)
    }

    /// Members whose gate is shut, for status.
    pub(crate) fn shut_members(&self) -> Vec<String> {
        let g = self.inner.lock();
        let mut out: Vec<String> =
            g.iter().filter(|(_, (gate, _))| matches!(gate, Gate::Shut { .. })).map(|(n, _)| n.clone()).collect();
        out.sort();
        out
    }

    /// Forgets members that left the configuration.
    pub(crate) fn retain(&self, keep: impl Fn(&str) -> bool) {
        self.inner.lock().retain(|name, _| keep(name));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(2);

    /// A timeout shuts the gate; probes back off 250 ms, 500 ms, 1 s, 2 s, 2 s; an
    /// answer opens it and counts an opening.
    #[test]
    fn a_timeout_shuts_the_gate_until_a_probe_is_answered() {
        let g = Gates::default();
        let t0 = Instant::now();
        assert_eq!(g.check("m"), Ok(()));
        assert!(g.shut("m", T, t0, MAX));
        assert!(!g.shut("m", T, t0, MAX), "already shut");
        assert_eq!(g.check("m"), Err(T));
        assert_eq!(g.check("other"), Ok(()));
        assert_eq!(g.shut_members(), ["m"]);

        let mut now = t0;
        for want in [250, 500, 1000, 2000, 2000] {
            assert!(g.due(now + Duration::from_millis(want) - Duration::from_millis(1)).is_empty(), "early at {want}");
            now += Duration::from_millis(want);
            assert_eq!(g.due(now), ["m"], "due after {want} ms");
            assert!(g.due(now).is_empty(), "probed twice at once");
            assert!(!g.probed("m", false, now, MAX));
        }
        assert_eq!(g.openings("m"), 0);
        assert_eq!(g.due(now + MAX), ["m"]);
        assert!(g.probed("m", true, now + MAX, MAX));
        assert_eq!(g.check("m"), Ok(()));
        assert_eq!(g.openings("m"), 1);
        assert!(g.shut_members().is_empty());
    }

    /// A member that shuts again right after opening is probed with the doubled backoff;
    /// one that stayed open for a while starts from the first backoff again.
    #[test]
    fn a_flapping_member_keeps_its_backoff() {
        let g = Gates::default();
        let t0 = Instant::now();
        g.shut("m", T, t0, MAX);
        let at = t0 + FIRST_PROBE;
        assert_eq!(g.due(at), ["m"]);
        assert!(g.probed("m", true, at, MAX));
        g.shut("m", T, at + Duration::from_millis(10), MAX);
        assert!(g.due(at + Duration::from_millis(10) + FIRST_PROBE).is_empty(), "backoff was reset");
        assert_eq!(g.due(at + Duration::from_millis(10) + 2 * FIRST_PROBE), ["m"]);
        let later = at + Duration::from_secs(60);
        assert!(g.probed("m", true, later, MAX));
        g.shut("m", T, later + MAX, MAX);
        assert_eq!(g.due(later + MAX + FIRST_PROBE), ["m"], "a long-open member starts over");
    }
}
