//! Waiting for a condition: look at it every [`POLL`] until it holds or a deadline passes.
//!
//! Tests observe systems that converge (a watch delivers, a probe turns a backend down, a
//! leader steps down), so they poll rather than sleep a fixed time: a fixed sleep is
//! either too short on a loaded machine or wastes time on an idle one.
//!
//! Every function takes the deadline (`within`), what is awaited (`what`, named in the
//! [`TimedOut`] error) and the check, which returns an [`Outcome`]: `Option<T>` (`Some`
//! when the condition holds) or `Result<T, E>` (`Err` saying what was seen instead, kept
//! as the last observation). The check runs at once, then after each [`POLL`], and a
//! last time when the deadline comes.
//!
//! - [`eventually`]: an async check, in async tests.
//! - [`eventually_sync`]: a plain closure, in async tests.
//! - [`eventually_timed`]: like [`eventually`], and says how long it took, for tests
//!   that bound a reaction time.
//! - [`eventually_blocking`]: a plain closure, in non-async tests (the thread sleeps).

use std::fmt;
use std::future::Future;
use std::time::Duration;

/// The pause between two looks at a condition. Short beside the deadlines tests wait
/// (a second or more) and beside the reaction times they bound; long enough that a check
/// that spawns a process (kubectl, dig) does not keep a shared machine's cores busy.
pub const POLL: Duration = Duration::from_millis(50);

/// What one look at a condition returns.
///
/// - `Option<T>`: `Some(v)` when it holds, `None` when not yet.
/// - `Result<T, E>`: `Ok(v)` when it holds; `Err(seen)` when not yet, `seen` saying what
///   was there instead (a value, or the error the look itself failed with). The last one
///   goes into [`TimedOut`]'s message.
///
/// To stop at once on a failure that waiting will not mend (the process under test
/// exited), return `Some(Err(e))`: the wait ends with `Ok(Err(e))`.
pub trait Outcome {
    /// What the wait returns once the condition holds.
    type Value;
    /// `Ok` when the condition holds; `Err` with what was seen (if said) when not.
    fn into_result(self) -> Result<Self::Value, Option<String>>;
}

impl<T> Outcome for Option<T> {
    type Value = T;

    fn into_result(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T, E: fmt::Display> Outcome for Result<T, E> {
    type Value = T;

    fn into_result(self) -> Result<T, Option<String>> {
        self.map_err(|seen| Some(seen.to_string()))
    }
}

/// A condition did not hold within its deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What was awaited, as the caller named it.
    what: String,
    /// The deadline the caller gave.
    within: Duration,
    /// How long the wait actually took (the deadline plus the last look and any delay
    /// of the scheduler).
    elapsed: Duration,
    /// What the last look saw, when the check said.
    last: Option<String>,
}

impl TimedOut {
    /// What was awaited.
    pub fn what(&self) -> &str {
        &self.what
    }

    /// The deadline that passed.
    pub fn within(&self) -> Duration {
        self.within
    }

    /// How long the wait took before giving up.
    pub fn elapsed(&self) -> Duration {
        self.elapsed
    }

    /// What the last look saw, when the check said.
    pub fn last(&self) -> Option<&str> {
        self.last.as_deref()
    }
}

impl fmt::Display for TimedOut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: not true within {:?}", self.what, self.within)?;
        match &self.last {
            Some(last) => write!(f, " (last seen: {last})"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for TimedOut {}

/// One wait's deadline: the single place that decides between another look and giving up.
struct Deadline<'a> {
    what: &'a str,
    within: Duration,
}

impl Deadline<'_> {
    /// After a look that found the condition false, `elapsed` into the wait: how long to
    /// pause before the next look (never past the deadline, so that the last look is
    /// taken when it comes), or the timeout.
    fn after_miss(&self, elapsed: Duration, last: Option<String>) -> Result<Duration, TimedOut> {
        match self.within.checked_sub(elapsed) {
            Some(left) if !left.is_zero() => Ok(POLL.min(left)),
            _ => Err(TimedOut { what: self.what.to_owned(), within: self.within, elapsed, last }),
        }
    }
}

/// Awaits `check` until its outcome holds, for up to `within`; returns the value and how
/// long it took from the call.
pub async fn eventually_timed<F, Fut>(
    within: Duration,
    what: &str,
    mut check: F,
) -> Result<(<Fut::Output as Outcome>::Value, Duration), TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    let deadline = Deadline { what, within };
    let start = tokio::time::Instant::now();
    loop {
        let last = match check().await.into_result() {
            Ok(v) => return Ok((v, start.elapsed())),
            Err(last) => last,
        };
        tokio::time::sleep(deadline.after_miss(start.elapsed(), last)?).await;
    }
}

/// Awaits `check` until its outcome holds, for up to `within`; returns the value.
pub async fn eventually<F, Fut>(
    within: Duration,
    what: &str,
    check: F,
) -> Result<<Fut::Output as Outcome>::Value, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future,
    Fut::Output: Outcome,
{
    eventually_timed(within, what, check).await.map(|(v, _)| v)
}

/// [`eventually`] for a check that is a plain closure (it runs on the test's task, so it
/// should be quick: reading a snapshot, a counter, a short blocking query).
pub async fn eventually_sync<O: Outcome>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> O,
) -> Result<O::Value, TimedOut> {
    eventually(within, what, || std::future::ready(check())).await
}

/// [`eventually_sync`] for tests without a runtime: the calling thread sleeps between
/// looks.
pub fn eventually_blocking<O: Outcome>(
    within: Duration,
    what: &str,
    mut check: impl FnMut() -> O,
) -> Result<O::Value, TimedOut> {
    let deadline = Deadline { what, within };
    let start = std::time::Instant::now();
    loop {
        let last = match check().into_result() {
            Ok(v) => return Ok(v),
            Err(last) => last,
        };
        std::thread::sleep(deadline.after_miss(start.elapsed(), last)?);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::time::Instant;

    use super::*;

    /// Short, so that the tests of a timeout are quick; several polls long.
    const SHORT: Duration = Duration::from_millis(300);

    /// A condition that becomes true on the third look is awaited, and its value returned.
    #[tokio::test]
    async fn eventually_returns_once_the_condition_holds() {
        let looks = Cell::new(0);
        let got = eventually(Duration::from_secs(5), "third look", || {
            looks.set(looks.get() + 1);
            let n = looks.get();
            async move { (n >= 3).then_some(n) }
        })
        .await;
        assert_eq!(got, Ok(3));
    }

    /// A condition that never holds times out after `within`, naming what was awaited.
    #[tokio::test]
    async fn eventually_times_out_naming_what() {
        let err = eventually(SHORT, "the sky to fall", || async { None::<()> }).await.expect_err("never true");
        assert_eq!(err.to_string(), format!("the sky to fall: not true within {SHORT:?}"));
        assert_eq!(err.what(), "the sky to fall");
        assert!(err.elapsed() >= SHORT, "gave up after {:?}, before {SHORT:?}", err.elapsed());
        assert!(err.elapsed() < SHORT * 3, "gave up only after {:?}", err.elapsed());
    }

    /// A check returning `Err(seen)` retries, and the last thing seen is in the message.
    #[tokio::test]
    async fn the_last_observation_is_in_the_timeout() {
        let looks = Cell::new(0);
        let err = eventually_sync(SHORT, "zero", || {
            looks.set(looks.get() + 1);
            Err::<(), _>(format!("{} replicas", looks.get()))
        })
        .await
        .expect_err("never true");
        assert!(looks.get() > 2, "looked only {} times", looks.get());
        assert_eq!(err.last(), Some(format!("{} replicas", looks.get()).as_str()));
        assert!(err.to_string().ends_with(&format!("(last seen: {} replicas)", looks.get())), "{err}");
    }

    /// `Some(Err(e))` ends the wait at once with that error.
    #[tokio::test]
    async fn some_err_stops_the_wait_at_once() {
        let t0 = Instant::now();
        let got = eventually_sync(Duration::from_secs(5), "exit", || Some(Err::<(), _>("exited"))).await;
        assert_eq!(got, Ok(Err("exited")));
        assert!(t0.elapsed() < Duration::from_secs(1), "took {:?}", t0.elapsed());
    }

    /// `eventually_timed` says how long the condition took to hold.
    #[tokio::test]
    async fn eventually_timed_says_how_long_it_took() {
        let t0 = Instant::now();
        let (v, took) = eventually_timed(Duration::from_secs(5), "200 ms passed", || async {
            (t0.elapsed() >= Duration::from_millis(200)).then_some("late")
        })
        .await
        .expect("becomes true");
        assert_eq!(v, "late");
        assert!(took >= Duration::from_millis(200) && took < Duration::from_secs(2), "took {took:?}");
    }

    /// The blocking variant waits for a condition, and times out naming what.
    #[test]
    fn eventually_blocking_holds_and_times_out() {
        let t0 = Instant::now();
        let got = eventually_blocking(Duration::from_secs(5), "100 ms passed", || {
            (t0.elapsed() >= Duration::from_millis(100)).then_some(())
        });
        assert_eq!(got, Ok(()));
        let err = eventually_blocking(SHORT, "never", || None::<()>).expect_err("never true");
        assert_eq!(err.to_string(), format!("never: not true within {SHORT:?}"));
        assert!(err.elapsed() >= SHORT, "gave up after {:?}", err.elapsed());
    }

    /// A zero deadline still looks once.
    #[test]
    fn a_zero_deadline_looks_once() {
        let looks = Cell::new(0);
        let got = eventually_blocking(Duration::ZERO, "once", || {
            looks.set(looks.get() + 1);
            None::<()>
        });
        assert!(got.is_err());
        assert_eq!(looks.get(), 1);
    }
}
