//! Probe state: one address's hysteresis and RTT window, a shard's verdict from its
//! addresses, and when a new verdict is worth publishing.

use std::time::Duration;

use crate::table::{Probe, ProbeState};

/// An address's RTT is the lowest connect time of its last this many probes. Queueing
/// and a busy CPU only ever add to a connect time, so the minimum follows the path and
/// not the load: with an average, a DNS server saturating its core made every probe's
/// RTT "move", and republishing those shards added load where there was none to spare.
/// A slower path shows once all of the window's samples are slower.
const RTT_WINDOW: usize = 5;
/// An RTT-only change is published when the RTT moved by more than this share…
const RTT_CHANGE: f64 = 0.10;
/// …and by more than this much: below it the order of answers would follow jitter (on
/// loopback the RTT moves by more than [`RTT_CHANGE`] at nearly every probe, which
/// would republish every shard each time and rebuild its DNS names for nothing)…
const RTT_FLOOR: Duration = Duration::from_micros(500);
/// …and not more often than this per shard, whatever the jitter of the samples.
const RTT_MIN_PUBLISH: Duration = Duration::from_secs(2);

/// Health of one probed address: the hysteresis state machine.
#[derive(Debug, Clone, Default)]
pub struct AddrState {
    /// Unknown until the first result: a pass makes it Up at once (a new shard should
    /// not wait `healthy_threshold` intervals), `unhealthy_threshold` failures Down.
    /// Up → Down after `unhealthy_threshold` consecutive failures; Down → Up after
    /// `healthy_threshold` consecutive passes.
    pub state: ProbeState,
    pub passes: u32,
    pub failures: u32,
    /// Lowest connect time of the last `RTT_WINDOW` passes, seconds.
    pub rtt: Option<f64>,
    pub last_error: Option<String>,
    /// The last passes' connect times (ring), and how many were recorded.
    samples: [f64; RTT_WINDOW],
    recorded: usize,
}

impl AddrState {
    /// Feeds one result, a connect time or the failure (shown by `meridian status` as it
    /// displays); returns whether `state` changed.
    pub fn record(&mut self, result: &Result<Duration, impl std::fmt::Display>, healthy: u32, unhealthy: u32) -> bool {
        let before = self.state;
        match result {
            Ok(rtt) => self.pass(*rtt, healthy),
            Err(e) => self.fail(&e.to_string(), unhealthy),
        }
        self.state != before
    }

    fn pass(&mut self, rtt: Duration, healthy: u32) {
        if let Some(slot) = self.samples.get_mut(self.recorded % RTT_WINDOW) {
            *slot = rtt.as_secs_f64();
        }
        self.recorded = self.recorded.wrapping_add(1);
        let filled = self.samples.get(..self.recorded.min(RTT_WINDOW)).unwrap_or_default();
        self.rtt = filled.iter().copied().min_by(f64::total_cmp);
        self.passes = self.passes.saturating_add(1);
        self.failures = 0;
        self.last_error = None;
        let needed = if self.state == ProbeState::Unknown { 1 } else { healthy };
        if self.passes >= needed {
            self.state = ProbeState::Up;
        }
    }

    fn fail(&mut self, error: &str, unhealthy: u32) {
        self.failures = self.failures.saturating_add(1);
        self.passes = 0;
        self.last_error = Some(error.to_owned());
        if self.failures >= unhealthy {
            self.state = ProbeState::Down;
        }
    }
}

/// A shard's probe from its addresses' (state, RTT in seconds): Up when any is Up, Down
/// when all are Down; its RTT is the lowest among the Up ones.
pub(super) fn combine(addrs: impl Iterator<Item = (ProbeState, Option<f64>)> + Clone) -> Probe {
    let up = addrs.clone().filter(|a| a.0 == ProbeState::Up);
    let mut all = addrs.peekable();
    let state = if up.clone().next().is_some() {
        ProbeState::Up
    } else if all.peek().is_some() && all.all(|a| a.0 == ProbeState::Down) {
        ProbeState::Down
    } else {
        ProbeState::Unknown
    };
    let rtt = up.filter_map(|a| a.1).min_by(f64::total_cmp).map(Duration::from_secs_f64);
    Probe { state, rtt }
}

/// Whether a new RTT is worth publishing over the last published one, `since`
/// the last publication: appearing or vanishing always is; otherwise it must have moved
/// by more than [`RTT_CHANGE`] and [`RTT_FLOOR`], at most every [`RTT_MIN_PUBLISH`].
pub(super) fn rtt_moved(new: Option<Duration>, old: Option<Duration>, since: Option<Duration>) -> bool {
    match (new, old) {
        (Some(new), Some(old)) => {
            let delta = new.abs_diff(old);
            delta.as_secs_f64() > RTT_CHANGE * old.as_secs_f64()
                && delta > RTT_FLOOR
                && since.is_none_or(|s| s >= RTT_MIN_PUBLISH)
        }
        (a, b) => a.is_some() != b.is_some(),
    }
}

/// The name `meridian status` and the metrics use for a state.
pub(super) fn state_name(s: ProbeState) -> &'static str {
    match s {
        ProbeState::Unknown => "unknown",
        ProbeState::Up => "up",
        ProbeState::Down => "down",
    }
}
