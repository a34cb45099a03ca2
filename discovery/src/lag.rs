//! How late Meridian's own runtime runs its tasks. A `/readyz` probe that times out while
//! the runtime itself ran late cannot tell a slow cluster from a busy Meridian: at a
//! million shards, 100 clusters listing at once kept Meridian's core busy for a minute,
//! and probes whose replies waited in the run queue turned healthy clusters Offline —
//! each then relisted all its objects when it came back, which made more work.
//!
//! One task sleeps [`TICK`] at a time and notes when it woke more than [`LATE`] after it
//! asked to; a probe also notes its own late wake-up. The task holds only a weak
//! reference, so it ends when the last [`Lag`] is dropped.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::time::Instant;

/// How often the watcher of the runtime wakes.
const TICK: Duration = Duration::from_millis(100);
/// A wake-up this much later than asked means the runtime is running late.
pub(crate) const LATE: Duration = Duration::from_millis(250);

/// A handle on the runtime's lateness, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Lag(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    epoch: Instant,
    /// One more than the milliseconds since `epoch` of the last late wake-up seen; 0
    /// before any.
    last_late: AtomicU64,
}

impl Lag {
    /// A handle, and the task that watches the current runtime.
    pub(crate) fn spawn() -> Lag {
        let lag = Lag(Arc::new(Inner { epoch: Instant::now(), last_late: AtomicU64::new(0) }));
        tokio::spawn(watch(Arc::downgrade(&lag.0)));
        lag
    }

    /// Notes a wake-up at `woke` that was asked for `asked`, when it came late.
    pub(crate) fn woke(&self, asked: Instant, woke: Instant) {
        if woke.saturating_duration_since(asked) > LATE {
            self.0.note(woke);
        }
    }

    /// Whether the runtime was seen running late at or after `since`.
    pub(crate) fn late_since(&self, since: Instant) -> bool {
        self.0.last_late.load(Ordering::Relaxed) > self.0.millis(since)
    }
}

impl Inner {
    fn millis(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX - 1)
    }

    fn note(&self, at: Instant) {
        self.last_late.fetch_max(self.millis(at) + 1, Ordering::Relaxed);
    }
}

/// Least time between two warnings that the runtime runs late.
const WARN_EVERY: Duration = Duration::from_secs(10);

async fn watch(inner: Weak<Inner>) {
    let mut warned: Option<Instant> = None;
    loop {
        let asked = Instant::now() + TICK;
        tokio::time::sleep_until(asked).await;
        let Some(inner) = inner.upgrade() else { return };
        let now = Instant::now();
        let late = now.saturating_duration_since(asked);
        Lag(inner).woke(asked, now);
        if late > LATE && warned.is_none_or(|w| now.saturating_duration_since(w) >= WARN_EVERY) {
            warned = Some(now);
            tracing::warn!(
                late_ms = late.as_millis(),
                "Meridian's own tasks are running late (short of CPU); clusters' probes that time out meanwhile are not counted"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A runtime whose only thread is blocked is seen late. (That an idle one is not
    /// seen late is left to the next test: on a loaded machine a thread can lose its
    /// core for a while, which the watcher rightly reports.)
    #[tokio::test(flavor = "current_thread")]
    async fn a_blocked_runtime_is_seen_late() {
        let lag = Lag::spawn();
        tokio::time::sleep(Duration::from_millis(150)).await;
        let before = Instant::now();
        // Holds the runtime's one thread, as a long synchronous batch would.
        std::thread::sleep(Duration::from_millis(800));
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(lag.late_since(before), "a runtime blocked for 800 ms was not seen late");
    }

    #[test]
    fn a_late_wake_up_is_noted_and_a_punctual_one_is_not() {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let lag = Lag::spawn();
            let t = Instant::now();
            lag.woke(t, t + Duration::from_millis(100));
            assert!(!lag.late_since(t));
            lag.woke(t, t + Duration::from_millis(900));
            assert!(lag.late_since(t));
            assert!(!lag.late_since(t + Duration::from_secs(5)));
        });
    }
}
