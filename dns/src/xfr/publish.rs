//! The publisher: after each change of the index, each zone's records are compared with
//! the snapshot its serial stands for; a zone that changed takes one serial step — at
//! most one per `min_serial_interval`, so a burst of table changes is one step — its
//! journal gains the difference, and its secondaries are sent NOTIFY.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::journal::Delta;
use super::records::{self, Rr, Snapshot};
use super::respond::newer;
use super::{ZoneState, notify};
use crate::shared::Shared;
use crate::zone;

/// How long to wait before the next step may be taken: nothing after `interval` has
/// passed since the last one (or when there was none).
pub(crate) fn wait(last: Option<Instant>, interval: Duration, now: Instant) -> Duration {
    last.map_or(Duration::ZERO, |l| (l + interval).saturating_duration_since(now))
}

/// Takes every zone's first snapshot, before the listeners open: a transfer asked for
/// as soon as the server answers finds its zone.
pub(crate) fn first(shared: &Arc<Shared>) {
    if shared.index.load().identity.policy.transfers_possible() {
        step(shared);
    }
}

/// Runs until `shutdown`: a step after each change, paced by `min_serial_interval`.
pub(crate) async fn run(shared: Arc<Shared>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = shared.xfr.dirty.notified() => {}
        }
        let last = *shared.xfr.last_step.lock().unwrap_or_else(|e| e.into_inner());
        let pause = wait(last, shared.xfr.settings.load().min_interval, Instant::now());
        if !pause.is_zero() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
        step_blocking(&shared).await;
    }
}

/// [`step`] off the runtime's workers: it walks every zone, which takes a while for a
/// large table. NOTIFY tasks it starts go to the runtime it came from.
async fn step_blocking(shared: &Arc<Shared>) {
    let (s, rt) = (shared.clone(), tokio::runtime::Handle::current());
    let _ = tokio::task::spawn_blocking(move || {
        let _guard = rt.enter();
        if s.index.load().identity.policy.transfers_possible() {
            step(&s);
        } else {
            step_serials_only(&s);
        }
    })
    .await;
}

/// Without keys (and with TSIG required) no transfer can be answered: no snapshots are
/// kept, and a change moves every zone's serial a step, as for caches and `meridian
/// status` — the walk of every zone's records is only paid for when it can be used.
fn step_serials_only(shared: &Shared) {
    shared.xfr.zones.lock().unwrap_or_else(|e| e.into_inner()).clear();
    for z in &shared.index.load().zones {
        shared.bump_serial(&z.data.name);
    }
    *shared.xfr.last_step.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
}

/// Compares every zone with its snapshot and takes the steps due.
pub(crate) fn step(shared: &Arc<Shared>) {
    let index = shared.index.load_full();
    let settings = shared.xfr.settings.load_full();
    let mut stepped: Vec<(Arc<str>, u32, Rr)> = Vec::new();
    let mut served = HashSet::new();
    for (zi, entry) in index.zones.iter().enumerate() {
        let apex = entry.data.apex.clone();
        served.insert(apex.clone());
        let recs = Arc::new(records::zone_records(&index, zi));
        let prev = shared.xfr.zones.lock().unwrap_or_else(|e| e.into_inner()).get(&apex).map(|z| z.current.clone());
        let Some(prev) = prev else {
            let snap = Snapshot { serial: entry.serial, soa: records::soa(entry), records: recs };
            let state =
                ZoneState { name: entry.data.name.clone(), current: Arc::new(snap), journal: Default::default() };
            shared.xfr.zones.lock().unwrap_or_else(|e| e.into_inner()).insert(apex, state);
            continue;
        };
        if prev.records == recs && prev.serial == entry.serial {
            continue;
        }
        // A reload whose zone file changed has moved the serial already.
        let serial = if newer(entry.serial, prev.serial) {
            entry.serial
        } else {
            match shared.bump_serial(&entry.data.name) {
                Some(s) => s,
                None => continue,
            }
        };
        let soa = Rr { rdata: zone::with_serial(&entry.soa, serial), ..records::soa(entry) };
        let (deleted, added) = records::diff(&prev.records, &recs);
        let delta = Delta { from: prev.soa.clone(), to: soa.clone(), deleted, added };
        let mut zones = shared.xfr.zones.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(z) = zones.get_mut(&apex) {
            z.journal.push(prev.serial, serial, delta, settings.journal_depth);
            z.current = Arc::new(Snapshot { serial, soa: soa.clone(), records: recs });
        }
        drop(zones);
        tracing::debug!(zone = %entry.data.name, serial, "dns: zone serial step");
        stepped.push((entry.data.name.clone(), serial, soa));
    }
    shared.xfr.zones.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| served.contains(k));
    if stepped.is_empty() {
        return;
    }
    *shared.xfr.last_step.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    let policy = index.identity.policy.clone();
    for (zone, serial, soa) in stepped {
        notify::round(&shared.xfr, &zone, serial, &soa, &settings, |k| policy.key(k).cloned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// However many changes arrive, a step waits out the interval since the last one:
    /// replaying a burst of 1,000 changes over 2.5 s, one per 2.5 ms, with a 1 s
    /// interval, takes at most 3 steps (at 0, 1 and 2 s).
    #[test]
    fn a_burst_of_changes_is_paced_by_the_interval() {
        let t0 = Instant::now();
        let interval = Duration::from_secs(1);
        assert_eq!(wait(None, interval, t0), Duration::ZERO, "the first change is published at once");
        let mut last: Option<Instant> = None;
        let mut steps = Vec::new();
        let mut pending_until: Option<Instant> = None;
        for i in 0..1000u64 {
            let now = t0 + Duration::from_micros(2500 * i);
            if let Some(at) = pending_until
                && at <= now
            {
                steps.push(at);
                last = Some(at);
                pending_until = None;
            }
            if pending_until.is_none() {
                pending_until = Some(now + wait(last, interval, now));
            }
        }
        assert!(steps.len() <= 3, "{} steps", steps.len());
        for w in steps.windows(2) {
            assert!(w[1] - w[0] >= interval, "steps {:?} apart", w[1] - w[0]);
        }
    }
}
