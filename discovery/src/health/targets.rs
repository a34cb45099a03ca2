//! The set of health targets: one probe task per (shard, address), kept in line with the
//! table as a [`Projection`], and the probe results that go back into it.
//!
//! In a fleet, each address's own state (after its hysteresis) goes to the fleet, and
//! what the table is told per address is the fleet's verdict (this instance's own
//! state while no live instance has observed it); a verdict that changes republishes
//! the shards holding the address. Without a fleet, the own state is the verdict.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meridian_config::health::HealthConfig;
use meridian_fleet::{Fleet, Health};
use meridian_model::follow::Projection;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::ShardKey;
use super::checker::{AddrView, ShardView, Shared, lock};
use super::metrics::Metrics;
use super::probe::{Launcher, ProbeResult};
use super::spec::{CheckSpec, spec_for};
use super::state::{AddrState, combine, rtt_moved, state_name};
use crate::rank::Problem;
use crate::table::{Change, ObjectKey, Probe, ProbeState, Shard, Snapshot, Update};

/// A probe task; aborted when dropped (the address left, or its check changed).
struct AddrSlot {
    addr: SocketAddr,
    generation: u64,
    health: AddrState,
    task: JoinHandle<()>,
}

impl Drop for AddrSlot {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// One probed shard.
struct ShardProbe {
    spec: Arc<CheckSpec>,
    addrs: Vec<AddrSlot>,
    /// What the table was last told, and when.
    published: Probe,
    published_at: Option<Instant>,
}

impl AddrSlot {
    /// What the table is told of this address: the fleet's verdict, else its own state.
    fn verdict(&self, fleet: Option<&Fleet>) -> (ProbeState, Option<f64>) {
        let state = match fleet.map(|f| f.health(self.addr)) {
            Some(Health::Up) => ProbeState::Up,
            Some(Health::Down) => ProbeState::Down,
            Some(Health::Unknown) | None => self.health.state,
        };
        (state, self.health.rtt)
    }
}

impl ShardProbe {
    /// The shard's probe from its addresses' verdicts.
    fn probe(&self, fleet: Option<&Fleet>) -> Probe {
        combine(self.addrs.iter().map(|a| a.verdict(fleet)))
    }

    /// Tells the table about `probe` when its state changed or its RTT moved enough.
    fn publish(&mut self, sk: &ShardKey, probe: Probe, metrics: &Metrics, updates: &mpsc::UnboundedSender<Update>) {
        let now = Instant::now();
        let state_changed = probe.state != self.published.state;
        let since = self.published_at.map(|t| now.duration_since(t));
        if !state_changed && !rtt_moved(probe.rtt, self.published.rtt, since) {
            return;
        }
        if state_changed {
            metrics.shard_state(self.published.state, -1);
            metrics.shard_state(probe.state, 1);
            if probe.state != ProbeState::Unknown {
                metrics.transition(probe.state);
            }
            let error = self.addrs.iter().find_map(|a| a.health.last_error.clone());
            info!(cluster = %sk.0, service = %sk.1, state = state_name(probe.state), error = error.as_deref().unwrap_or(""), "health: shard changed");
        }
        self.published = probe;
        self.published_at = Some(now);
        let _ = updates.send(Update::Probe { cluster: sk.0.clone(), key: sk.1.clone(), probe });
    }
}

/// Every probed shard, built from the table's snapshots.
pub(super) struct Targets {
    health: HealthConfig,
    updates: mpsc::UnboundedSender<Update>,
    metrics: Metrics,
    shared: Arc<Shared>,
    shards: HashMap<ShardKey, ShardProbe>,
    /// The clusters each service has probes in, so one service's sync does not scan all.
    by_service: HashMap<ObjectKey, Vec<Arc<str>>>,
    launcher: Launcher,
    /// Where this instance's observations go and its verdicts come from, in a fleet.
    fleet: Option<Fleet>,
    /// The shards probing each address: the fleet's verdicts name addresses, and an
    /// address is withdrawn from the fleet only when no shard probes it any more.
    /// Kept only in a fleet.
    by_addr: HashMap<SocketAddr, Vec<ShardKey>>,
    /// Addresses dropped by [`Targets::clear`]: withdrawn from the fleet after the
    /// rebuild that follows unless it probes them again (no withdraw-and-republish flap).
    cleared: Vec<SocketAddr>,
}

impl Projection for Targets {
    fn rebuild(&mut self, snap: &Snapshot) {
        let gone: Vec<ShardKey> = self.shards.keys().filter(|k| !snap.services.contains_key(&k.1)).cloned().collect();
        for k in gone {
            self.remove(&k, false);
        }
        lock(&self.shared.problems).retain(|k, _| snap.services.contains_key(&k.1));
        for key in snap.services.keys() {
            self.sync_key(snap, key);
        }
        for addr in std::mem::take(&mut self.cleared) {
            if !self.by_addr.contains_key(&addr)
                && let Some(f) = &self.fleet
            {
                f.forget(addr);
            }
        }
        self.count();
    }

    fn apply(&mut self, snap: &Snapshot, change: &Change) {
        if change.services.is_empty() {
            return;
        }
        for key in &change.services {
            self.sync_key(snap, key);
        }
        self.count();
    }
}

impl Targets {
    pub(super) fn new(
        health: HealthConfig,
        updates: mpsc::UnboundedSender<Update>,
        metrics: Metrics,
        shared: Arc<Shared>,
        launcher: Launcher,
        fleet: Option<Fleet>,
    ) -> Self {
        Self {
            health,
            updates,
            metrics,
            shared,
            shards: HashMap::new(),
            by_service: HashMap::new(),
            launcher,
            fleet,
            by_addr: HashMap::new(),
            cleared: Vec::new(),
        }
    }

    /// Takes a new `[health]` section; the caller rebuilds. A new in-flight bound
    /// restarts every probe, since running ones hold the old bound.
    pub(super) fn reconfigure(&mut self, health: HealthConfig) {
        if health.max_in_flight != self.health.max_in_flight {
            self.launcher.set_max_in_flight(health.max_in_flight);
            self.clear();
        }
        self.health = health;
    }

    /// Aborts every probe task.
    pub(super) fn stop(&mut self) {
        self.shards.clear();
    }

    /// Feeds one probe result to its address and publishes the shard if that matters.
    pub(super) fn on_result(&mut self, r: ProbeResult) {
        let Some(sp) = self.shards.get_mut(&r.shard) else { return };
        let Some(slot) = sp.addrs.iter_mut().find(|a| a.addr == r.addr && a.generation == r.generation) else {
            return; // from a probe task that was replaced
        };
        self.metrics.probe(r.result.is_ok());
        if slot.health.record(&r.result, sp.spec.healthy_threshold, sp.spec.unhealthy_threshold) {
            debug!(addr = %r.addr, state = state_name(slot.health.state), error = ?slot.health.last_error, "health: address changed");
        }
        // The fleet hears every known state (cheap when unchanged, so its RTT stays
        // fresh); an address not yet decided here casts no ballot.
        if let Some(f) = &self.fleet
            && slot.health.state != ProbeState::Unknown
        {
            f.observe(r.addr, slot.health.state == ProbeState::Up, slot.health.rtt.map(Duration::from_secs_f64));
        }
        let probe = sp.probe(self.fleet.as_ref());
        sp.publish(&r.shard, probe, &self.metrics, &self.updates);
        self.refresh_targets(&r.shard);
    }

    /// The fleet's verdicts on these addresses changed: republishes the shards holding
    /// them. `None` (the feed lagged): every shard.
    pub(super) fn on_verdicts(&mut self, changed: Option<&[(SocketAddr, Health)]>) {
        let shards: Vec<ShardKey> = match changed {
            Some(changed) => {
                let mut keys: Vec<ShardKey> =
                    changed.iter().filter_map(|(a, _)| self.by_addr.get(a)).flatten().cloned().collect();
                keys.sort();
                keys.dedup();
                keys
            }
            None => self.shards.keys().cloned().collect(),
        };
        for sk in shards {
            self.republish(&sk);
        }
    }

    /// Publishes a shard's probe from its addresses' verdicts, if that changed it.
    fn republish(&mut self, sk: &ShardKey) {
        let Some(sp) = self.shards.get_mut(sk) else { return };
        let probe = sp.probe(self.fleet.as_ref());
        sp.publish(sk, probe, &self.metrics, &self.updates);
        self.refresh_targets(sk);
    }

    fn clear(&mut self) {
        for (_, sp) in self.shards.drain() {
            self.metrics.shard_state(sp.published.state, -1);
        }
        self.by_service.clear();
        self.cleared.extend(self.by_addr.drain().map(|(addr, _)| addr));
        lock(&self.shared.targets).clear();
        self.metrics.targets.set(0);
    }

    /// Updates the gauges of targets and annotation problems.
    fn count(&mut self) {
        let targets: usize = self.shards.values().map(|s| s.addrs.len()).sum();
        self.metrics.targets.set(targets as i64);
        let problems: usize = lock(&self.shared.problems).values().map(Vec::len).sum();
        self.metrics.problems.set(problems as i64);
    }

    /// Brings the probes of one service in line with its shards in `snap`.
    fn sync_key(&mut self, snap: &Snapshot, key: &ObjectKey) {
        let shards: &[Arc<Shard>] = snap.services.get(key).map_or(&[], |s| &s.shards);
        // Shards of this service that are gone from the table. A set, not a scan per
        // cluster: at 1,000 clusters that was a million comparisons per change.
        let present: HashSet<&str> = shards.iter().map(|s| &*s.cluster.name).collect();
        let gone: Vec<ShardKey> = self
            .by_service
            .get(key)
            .into_iter()
            .flatten()
            .filter(|c| !present.contains(&***c))
            .map(|c| (c.clone(), key.clone()))
            .collect();
        for k in gone {
            self.remove(&k, false);
        }
        for sh in shards {
            self.sync_shard(key, sh);
        }
    }

    /// Starts, restarts or stops the probes of one shard as its check requires.
    fn sync_shard(&mut self, key: &ObjectKey, sh: &Shard) {
        let sk: ShardKey = (sh.cluster.name.clone(), key.clone());
        let mut problems = Vec::new();
        let spec = spec_for(&self.health, key, sh, &mut problems);
        self.record_problems(&sk, problems);
        let Some(spec) = spec else {
            // Not (or no longer) probed: the table must not keep an old verdict.
            self.remove(&sk, sh.probe != Probe::default());
            return;
        };
        let wanted: Vec<SocketAddr> = sh.addresses.iter().map(|ip| SocketAddr::new(*ip, spec.port)).collect();
        let unchanged = self.shards.get(&sk).is_some_and(|existing| {
            *existing.spec == spec && existing.addrs.iter().map(|a| a.addr).eq(wanted.iter().copied())
        });
        if !unchanged {
            self.restart(sk, sh.probe, Arc::new(spec), wanted);
        }
    }

    /// Replaces a shard's probe tasks. An address kept with the same check keeps its
    /// history; the shard keeps what the table was last told (`in_table` when new).
    fn restart(&mut self, sk: ShardKey, in_table: Probe, spec: Arc<CheckSpec>, wanted: Vec<SocketAddr>) {
        let old = self.shards.remove(&sk);
        let published = old.as_ref().map_or(in_table, |o| o.published);
        let published_at = old.as_ref().and_then(|o| o.published_at);
        if let Some(o) = &old {
            self.metrics.shard_state(o.published.state, -1);
            self.forget_targets(&sk);
        }
        let kept = |addr: SocketAddr| {
            let same_check = old.as_ref().filter(|o| o.spec == spec);
            same_check.and_then(|o| o.addrs.iter().find(|a| a.addr == addr)).map(|a| a.health.clone())
        };
        self.index(&sk, &wanted);
        if let Some(o) = &old {
            let left: Vec<SocketAddr> = o.addrs.iter().map(|a| a.addr).filter(|a| !wanted.contains(a)).collect();
            self.unindex(&sk, &left);
        }
        let mut addrs = Vec::with_capacity(wanted.len());
        for addr in wanted {
            let health = kept(addr).unwrap_or_default();
            let jitter = self.health.jitter.as_std();
            let (generation, task) = self.launcher.launch(spec.clone(), addr, sk.clone(), jitter);
            addrs.push(AddrSlot { addr, generation, health, task });
        }
        drop(old);
        self.metrics.shard_state(published.state, 1);
        self.shards.insert(sk.clone(), ShardProbe { spec, addrs, published, published_at });
        let clusters = self.by_service.entry(sk.1.clone()).or_default();
        if !clusters.contains(&sk.0) {
            clusters.push(sk.0.clone());
        }
        // A new shard (or one restarted, as after this instance's own restart) tells the
        // table the fleet's verdict at once rather than waiting for its own first probes.
        if self.fleet.is_some() {
            self.republish_known(&sk);
        }
        self.refresh_targets(&sk);
        debug!(cluster = %sk.0, service = %sk.1, "health: probing");
    }

    /// Publishes the shard's probe if the fleet's verdicts make it Up or Down: a shard
    /// nobody has decided on yet keeps what the table holds.
    fn republish_known(&mut self, sk: &ShardKey) {
        let known = self.shards.get(sk).is_some_and(|sp| sp.probe(self.fleet.as_ref()).state != ProbeState::Unknown);
        if known {
            self.republish(sk);
        }
    }

    /// Records that `sk` probes `addrs` (in a fleet).
    fn index(&mut self, sk: &ShardKey, addrs: &[SocketAddr]) {
        if self.fleet.is_none() {
            return;
        }
        for addr in addrs {
            let shards = self.by_addr.entry(*addr).or_default();
            if !shards.contains(sk) {
                shards.push(sk.clone());
            }
        }
    }

    /// `sk` no longer probes `addrs`; those no shard probes leave the fleet.
    fn unindex(&mut self, sk: &ShardKey, addrs: &[SocketAddr]) {
        let Some(fleet) = &self.fleet else { return };
        for addr in addrs {
            let Some(shards) = self.by_addr.get_mut(addr) else { continue };
            shards.retain(|k| k != sk);
            if shards.is_empty() {
                self.by_addr.remove(addr);
                fleet.forget(*addr);
            }
        }
    }

    /// Keeps the shard's annotation problems for `meridian status`, logging new ones.
    fn record_problems(&self, sk: &ShardKey, problems: Vec<Problem>) {
        let mut map = lock(&self.shared.problems);
        if problems.is_empty() {
            map.remove(sk);
            return;
        }
        if map.get(sk) != Some(&problems) {
            for p in &problems {
                warn!(service = %p.object, cluster = %p.cluster, annotation = %p.annotation, value = %p.value, "health: {}", p.reason);
            }
            map.insert(sk.clone(), problems);
        }
    }

    /// Stops probing a shard; `reset` tells the table its probe is Unknown again.
    fn remove(&mut self, sk: &ShardKey, reset: bool) {
        if let Some(sp) = self.shards.remove(sk) {
            self.metrics.shard_state(sp.published.state, -1);
            self.forget_targets(sk);
            let addrs: Vec<SocketAddr> = sp.addrs.iter().map(|a| a.addr).collect();
            self.unindex(sk, &addrs);
        }
        if let Some(clusters) = self.by_service.get_mut(&sk.1) {
            clusters.retain(|c| *c != sk.0);
            if clusters.is_empty() {
                self.by_service.remove(&sk.1);
            }
        }
        if reset {
            let _ =
                self.updates.send(Update::Probe { cluster: sk.0.clone(), key: sk.1.clone(), probe: Probe::default() });
        }
    }

    /// Drops a shard's addresses from the shared status map.
    fn forget_targets(&self, sk: &ShardKey) {
        lock(&self.shared.targets).remove(sk);
    }

    /// Copies one shard's address states into the shared status map, when they changed.
    fn refresh_targets(&self, sk: &ShardKey) {
        let Some(sp) = self.shards.get(sk) else { return };
        let same = |v: &AddrView, a: &AddrSlot| {
            v.addr == a.addr
                && v.state == a.health.state
                && v.rtt == a.health.rtt
                && v.last_error == a.health.last_error
        };
        let mut t = lock(&self.shared.targets);
        if let Some(v) = t.get(sk)
            && v.kind == sp.spec.kind.as_str()
            && v.addrs.len() == sp.addrs.len()
            && v.addrs.iter().zip(&sp.addrs).all(|(v, a)| same(v, a))
        {
            return;
        }
        let addrs = sp
            .addrs
            .iter()
            .map(|a| AddrView {
                addr: a.addr,
                state: a.health.state,
                rtt: a.health.rtt,
                last_error: a.health.last_error.clone(),
            })
            .collect();
        t.insert(sk.clone(), ShardView { kind: sp.spec.kind.as_str(), addrs });
    }
}
