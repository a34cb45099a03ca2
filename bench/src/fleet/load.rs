//! What the fleet benchmark does to the fleet and how it watches: a backend dies and
//! every instance's answers are polled until none returns it; backends flap while the
//! gossip counters run; the counters over a window.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::nodes::{Counters, Node, node_id};
use crate::dnsclient::{Answer, Client};
use crate::simhost;
use crate::simproc::SimProc;

/// Longer than this, an instance counts as never having dropped (or returned) it.
pub(super) const TRIAL_TIMEOUT: Duration = Duration::from_secs(15);
/// Between two rounds of queries to the instances still waiting: a query costs ~0.1 ms,
/// so this sets the resolution.
const POLL_PAUSE: Duration = Duration::from_millis(2);

/// One backend's death and return, as every instance saw it.
pub(super) struct Death {
    /// Per instance: from the listener's close to its first answer without the address.
    pub(super) dropped: Vec<Option<Duration>>,
    /// Per instance: from the listener's restart to its first answer with it again.
    pub(super) back: Vec<Option<Duration>>,
}

impl Death {
    /// When the last instance dropped it (`None`: one never did).
    pub(super) fn all_dropped(&self) -> Option<Duration> {
        latest(&self.dropped)
    }

    pub(super) fn first_dropped(&self) -> Option<Duration> {
        self.dropped.iter().flatten().min().copied()
    }

    pub(super) fn all_back(&self) -> Option<Duration> {
        latest(&self.back)
    }
}

fn latest(v: &[Option<Duration>]) -> Option<Duration> {
    v.iter().copied().try_fold(Duration::ZERO, |m, d| d.map(|d| m.max(d)))
}

/// The victim: one service's load-balancer address in one cluster.
pub(super) struct Victim<'a> {
    pub(super) sims: &'a SimProc,
    pub(super) cluster: usize,
    pub(super) service: String,
    pub(super) addr: Ipv4Addr,
}

/// Closes the victim's listener, polls every instance's answer for the service's global
/// name until it no longer holds the address, then restarts the listener and polls until
/// every answer holds it again.
pub(super) fn kill_and_revive(clients: &mut [Client], v: &Victim<'_>) -> Result<Death> {
    let name = simhost::global_name(&v.service);
    // Timing a death only means something from answers that held the address.
    let present = until_each(clients, &name, Instant::now(), |a| a.addrs.contains(&v.addr));
    if let Some(i) = present.iter().position(Option::is_none) {
        bail!("{} does not answer {} for {name} before its death", node_id(i), v.addr);
    }
    let t0 = Instant::now();
    v.sims.set_backend(v.cluster, &v.service, false)?;
    let dropped = until_each(clients, &name, t0, |a| a.rcode == 0 && !a.addrs.is_empty() && !a.addrs.contains(&v.addr));
    let t1 = Instant::now();
    v.sims.set_backend(v.cluster, &v.service, true)?;
    let back = until_each(clients, &name, t1, |a| a.addrs.contains(&v.addr));
    Ok(Death { dropped, back })
}

/// Queries each instance that has not yet answered as `done` wants, round after round;
/// per instance, when it first did (since `t0`).
fn until_each(
    clients: &mut [Client],
    name: &str,
    t0: Instant,
    done: impl Fn(&Answer) -> bool,
) -> Vec<Option<Duration>> {
    let mut seen: Vec<Option<Duration>> = vec![None; clients.len()];
    while t0.elapsed() < TRIAL_TIMEOUT && seen.iter().any(Option::is_none) {
        for (c, s) in clients.iter_mut().zip(seen.iter_mut()) {
            if s.is_none() && c.query_a(name).is_some_and(|a| done(&a)) {
                *s = Some(t0.elapsed());
            }
        }
        std::thread::sleep(POLL_PAUSE);
    }
    seen
}

/// A pool of backends flapping: one toggled (down, or up again) every `1 / rate`
/// seconds, in turn, until dropped. With `n` backends each stays down, then up, for
/// `n / rate` seconds: longer than the 2 s its death takes to be seen, so every toggle
/// becomes a verdict change.
pub(super) struct Flapper {
    stop: Arc<AtomicBool>,
    toggles: Arc<AtomicU64>,
    errors: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Flapper {
    pub(super) fn start(sims: Arc<SimProc>, pool: Vec<(usize, String)>, rate: f64) -> Flapper {
        let stop = Arc::new(AtomicBool::new(false));
        let toggles = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let (s, t, e) = (stop.clone(), toggles.clone(), errors.clone());
        let thread = std::thread::spawn(move || flap(&sims, &pool, rate, &s, &t, &e));
        Flapper { stop, toggles, errors, thread: Some(thread) }
    }

    pub(super) fn toggles(&self) -> u64 {
        self.toggles.load(Ordering::Relaxed)
    }

    pub(super) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

impl Drop for Flapper {
    /// Stops toggling and brings every backend of the pool up again.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn flap(
    sims: &SimProc,
    pool: &[(usize, String)],
    rate: f64,
    stop: &AtomicBool,
    toggles: &AtomicU64,
    errors: &AtomicU64,
) {
    let tick = Duration::from_secs_f64(1.0 / rate.max(0.01));
    let mut up = vec![true; pool.len()];
    let mut next = Instant::now();
    let mut k = 0usize;
    while !stop.load(Ordering::Relaxed) && !pool.is_empty() {
        let i = k % pool.len();
        k += 1;
        up[i] = !up[i];
        let (cluster, svc) = &pool[i];
        match sims.set_backend(*cluster, svc, up[i]) {
            Ok(()) => toggles.fetch_add(1, Ordering::Relaxed),
            Err(_) => errors.fetch_add(1, Ordering::Relaxed),
        };
        next += tick;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    for ((cluster, svc), _) in pool.iter().zip(&up).filter(|(_, u)| !**u) {
        let _ = sims.set_backend(*cluster, svc, true);
    }
}

/// Per instance, what its counters did over a window, per second.
#[derive(Clone, Debug, Default)]
pub(super) struct Rates {
    pub(super) sent: Vec<f64>,
    pub(super) received: Vec<f64>,
    pub(super) datagrams: Vec<f64>,
    pub(super) verdict_changes: Vec<f64>,
    /// Share of one core.
    pub(super) cpu: Vec<f64>,
}

/// Every instance's counters now.
pub(super) fn counters(nodes: &[Node]) -> Result<Vec<Counters>> {
    nodes.iter().map(|n| n.counters().with_context(|| format!("{}: no /metrics", n.id))).collect()
}

/// Reads every instance's counters, waits `window`, reads them again.
pub(super) fn measure(nodes: &[Node], window: Duration) -> Result<Rates> {
    let before = counters(nodes)?;
    let t0 = Instant::now();
    std::thread::sleep(window);
    Ok(rates(&before, &counters(nodes)?, t0.elapsed()))
}

fn rates(before: &[Counters], after: &[Counters], over: Duration) -> Rates {
    let secs = over.as_secs_f64().max(1e-3);
    let per = |f: fn(&Counters) -> f64| before.iter().zip(after).map(|(b, a)| (f(a) - f(b)) / secs).collect();
    Rates {
        sent: per(|c| c.sent),
        received: per(|c| c.received),
        datagrams: per(|c| c.datagrams),
        verdict_changes: per(|c| c.verdict_changes),
        cpu: per(|c| c.cpu_secs),
    }
}

/// The kernel's count of UDP datagrams dropped for a full receive buffer, machine-wide
/// (`RcvbufErrors` in `/proc/net/snmp`); 0 where there is no such file.
pub(super) fn rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (udp.next(), udp.next()) else { return 0 };
    let Some(i) = names.split_whitespace().position(|n| n == "RcvbufErrors") else { return 0 };
    values.split_whitespace().nth(i).and_then(|v| v.parse().ok()).unwrap_or(0)
}
