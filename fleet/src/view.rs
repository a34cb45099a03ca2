//! What this instance knows of the fleet: its own observations, every peer's as gossip
//! delivered them, which peers count, and the verdict on each address.
//!
//! A peer counts when it is the newest generation of its instance id (a restarted
//! instance replaces its old self), its heartbeat advanced within `stale_after` as seen
//! from here, and its region is known. Verdicts are kept per address and recomputed only
//! for the addresses an event touches: an observation, a peer's key changes, a peer
//! starting or stopping to count.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chitchat::ChitchatId;

use crate::config::Location;
use crate::obs::Obs;
use crate::quorum::{Ballot, Health, Quorum, decide};
use crate::status::{InstanceStatus, Sighting, Verdict};

/// An RTT-only change is republished when it moved by more than this share…
const RTT_CHANGE: f64 = 0.10;
/// …and by more than this many microseconds (below, answer order would follow jitter)…
const RTT_FLOOR_US: u32 = 500;
/// …and not sooner than this after the last publication of the address: RTTs order
/// answers, they do not decide verdicts, and 100,000 addresses must not turn probe noise
/// into gossip.
const RTT_REPUBLISH_SECS: u32 = 10;

/// This instance, as the fleet sees it.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub(crate) id: Arc<str>,
    pub(crate) region: Arc<str>,
    pub(crate) location: Option<Location>,
    pub(crate) gossip_addr: SocketAddr,
    pub(crate) generation: u64,
}

/// One generation of another instance, from its chitchat state.
#[derive(Debug, Default)]
pub(crate) struct Peer {
    pub(crate) region: Option<Arc<str>>,
    pub(crate) location: Option<Location>,
    pub(crate) heartbeat: u64,
    /// When its heartbeat last advanced, by this instance's clock; `None` until it has
    /// once, so a dead peer that gossip still mentions never counts.
    pub(crate) advanced: Option<Instant>,
    pub(crate) advanced_wall: Option<SystemTime>,
    /// chitchat's version and tombstone-GC version of its state at the last scan.
    pub(crate) max_version: u64,
    pub(crate) last_gc: u64,
    pub(crate) obs: HashMap<SocketAddr, Obs>,
    /// The addresses each of its groups listed (`group`), so a rewritten group withdraws
    /// those it no longer lists.
    pub(crate) groups: HashMap<u32, Vec<SocketAddr>>,
    /// The version of its `n` key and the count it announced.
    pub(crate) announced: Option<(u64, usize)>,
}

impl Peer {
    /// Everything it announced has arrived: its count key is the newest version heard
    /// of, and as many observations are here.
    pub(crate) fn synced(&self) -> bool {
        self.announced.is_some_and(|(version, n)| version == self.max_version && n == self.obs.len())
    }

    fn counts(&self, now: Instant, stale_after: Duration) -> bool {
        self.region.is_some() && self.advanced.is_some_and(|t| now.saturating_duration_since(t) <= stale_after)
    }
}

/// Verdicts that changed: address and new health, sorted by address.
pub(crate) type Changes = Vec<(SocketAddr, Health)>;

pub(crate) struct View {
    pub(crate) me: Me,
    pub(crate) rule: Quorum,
    pub(crate) stale_after: Duration,
    pub(crate) own: HashMap<SocketAddr, Obs>,
    /// Own observations changed since the last write into chitchat (absent from `own`:
    /// forgotten, to delete).
    pub(crate) unpublished: HashSet<SocketAddr>,
    /// Own published addresses by group (`group::of`), sorted: a changed address
    /// rewrites its group from these.
    pub(crate) own_groups: HashMap<u32, BTreeSet<SocketAddr>>,
    /// Batches written into chitchat so far: numbers the count key's value.
    pub(crate) publications: u64,
    pub(crate) peers: BTreeMap<ChitchatId, Peer>,
    /// Instance id → the generation whose ballots count.
    counted: BTreeMap<Arc<str>, ChitchatId>,
    /// Up or Down per address; absent is Unknown.
    verdicts: HashMap<SocketAddr, Health>,
    /// Addresses where the verdict is not this instance's own observation.
    disagree: HashSet<SocketAddr>,
    /// Bumped with every batch of changed verdicts.
    pub(crate) version: u64,
}

impl View {
    pub(crate) fn new(me: Me, rule: Quorum, stale_after: Duration) -> Self {
        Self {
            me,
            rule,
            stale_after,
            own: HashMap::new(),
            unpublished: HashSet::new(),
            own_groups: HashMap::new(),
            publications: 0,
            peers: BTreeMap::new(),
            counted: BTreeMap::new(),
            verdicts: HashMap::new(),
            disagree: HashSet::new(),
            version: 0,
        }
    }

    /// Records this instance's probe result; publishes (and re-decides) only when the
    /// state changed or the RTT moved enough (see the constants).
    pub(crate) fn observe(&mut self, addr: SocketAddr, up: bool, rtt: Option<Duration>, now_s: u32) -> Changes {
        let rtt_us = rtt.map(|d| u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
        let publish = match self.own.get(&addr) {
            None => true,
            Some(old) if old.up != up => true,
            Some(old) => rtt_moved(old.rtt_us, rtt_us) && now_s.saturating_sub(old.at) >= RTT_REPUBLISH_SECS,
        };
        if !publish {
            return Vec::new();
        }
        self.own.insert(addr, Obs { up, rtt_us, at: now_s });
        self.unpublished.insert(addr);
        self.reverdict([addr])
    }

    /// This instance no longer probes `addr` (its shard left the table).
    pub(crate) fn forget(&mut self, addr: SocketAddr) -> Changes {
        if self.own.remove(&addr).is_none() {
            return Vec::new();
        }
        self.unpublished.insert(addr);
        self.reverdict([addr])
    }

    /// Re-decides which peers count; returns the addresses of those that changed.
    pub(crate) fn recount(&mut self, now: Instant) -> HashSet<SocketAddr> {
        let counted: BTreeMap<Arc<str>, ChitchatId> = self
            .newest()
            .into_iter()
            .filter(|(_, cid)| self.peers.get(*cid).is_some_and(|p| p.counts(now, self.stale_after)))
            .map(|(id, cid)| (id, cid.clone()))
            .collect();
        let mut flipped: Vec<ChitchatId> = Vec::new();
        for (a, b) in [(&self.counted, &counted), (&counted, &self.counted)] {
            flipped.extend(a.iter().filter(|(id, cid)| b.get(*id) != Some(*cid)).map(|(_, cid)| cid.clone()));
        }
        self.counted = counted;
        flipped.iter().filter_map(|cid| self.peers.get(cid)).flat_map(|p| p.obs.keys().copied()).collect()
    }

    /// Every peer's newest generation, by instance id.
    fn newest(&self) -> BTreeMap<Arc<str>, &ChitchatId> {
        let mut newest = BTreeMap::new();
        // `ChitchatId` sorts by id, then generation: the last of each id is the newest.
        for cid in self.peers.keys() {
            newest.insert(cid.node_id.clone(), cid);
        }
        newest
    }

    /// Recomputes the verdict on each address; returns those that changed.
    pub(crate) fn reverdict(&mut self, addrs: impl IntoIterator<Item = SocketAddr>) -> Changes {
        let mut changed = Vec::new();
        for addr in addrs {
            let health = decide(self.rule, &self.ballots(addr));
            let old = self.health(addr);
            if health != old {
                match health {
                    Health::Unknown => self.verdicts.remove(&addr),
                    h => self.verdicts.insert(addr, h),
                };
                changed.push((addr, health));
            }
            let own_differs = self.own.get(&addr).is_some_and(|o| (health == Health::Up) != o.up);
            if own_differs {
                self.disagree.insert(addr);
            } else {
                self.disagree.remove(&addr);
            }
        }
        changed.sort_unstable_by_key(|(a, _)| *a);
        if !changed.is_empty() {
            self.version += 1;
        }
        changed
    }

    /// The counted ballots on `addr`, in instance id order.
    fn ballots(&self, addr: SocketAddr) -> Vec<Ballot<'_>> {
        let mut out: Vec<Ballot<'_>> = self
            .counted
            .iter()
            .filter_map(|(id, cid)| {
                let peer = self.peers.get(cid)?;
                let obs = peer.obs.get(&addr)?;
                Some(Ballot { instance: id, region: peer.region.as_deref()?, up: obs.up })
            })
            .collect();
        if let Some(o) = self.own.get(&addr) {
            out.push(Ballot { instance: &self.me.id, region: &self.me.region, up: o.up });
        }
        out.sort_unstable_by(|a, b| a.instance.cmp(b.instance));
        out
    }

    pub(crate) fn health(&self, addr: SocketAddr) -> Health {
        self.verdicts.get(&addr).copied().unwrap_or(Health::Unknown)
    }

    /// The verdict on `addr` with every instance's sighting, counted or not.
    pub(crate) fn verdict(&self, addr: SocketAddr) -> Verdict {
        let mut seen_by: Vec<Sighting> = Vec::new();
        if let Some(o) = self.own.get(&addr) {
            seen_by.push(Sighting::new(&self.me.id, &self.me.region, o, true));
        }
        for (id, cid) in self.newest() {
            let Some(peer) = self.peers.get(cid) else { continue };
            let Some(o) = peer.obs.get(&addr) else { continue };
            let counted = self.counted.get(&id) == Some(cid);
            seen_by.push(Sighting::new(&id, peer.region.as_deref().unwrap_or(""), o, counted));
        }
        seen_by.sort_by(|a, b| a.instance.cmp(&b.instance));
        Verdict::new(addr, self.health(addr), self.rule, seen_by)
    }

    /// This instance and every peer's newest generation, by id.
    pub(crate) fn instances(&self, wall: SystemTime) -> Vec<InstanceStatus> {
        let mut out = vec![InstanceStatus {
            id: self.me.id.to_string(),
            region: self.me.region.to_string(),
            location: self.me.location,
            gossip_addr: self.me.gossip_addr,
            generation: self.me.generation,
            alive: true,
            synced: true,
            this_instance: true,
            last_seen: Some(wall),
            observations: self.own.len(),
        }];
        for (id, cid) in self.newest() {
            let Some(peer) = self.peers.get(cid) else { continue };
            out.push(InstanceStatus {
                id: id.to_string(),
                region: peer.region.as_deref().unwrap_or("").to_owned(),
                location: peer.location,
                gossip_addr: cid.gossip_advertise_addr,
                generation: cid.generation_id,
                alive: self.counted.get(&id) == Some(cid),
                synced: peer.synced(),
                this_instance: false,
                last_seen: peer.advanced_wall,
                observations: peer.obs.len(),
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Every peer that counts has delivered all the observations it announced.
    pub(crate) fn caught_up(&self) -> bool {
        self.counted.values().all(|cid| self.peers.get(cid).is_some_and(Peer::synced))
    }

    /// Counts of Up and Down verdicts.
    pub(crate) fn tally(&self) -> (usize, usize) {
        let up = self.verdicts.values().filter(|h| **h == Health::Up).count();
        (up, self.verdicts.len() - up)
    }

    pub(crate) fn disagreement_count(&self) -> usize {
        self.disagree.len()
    }

    pub(crate) fn disagreements(&self) -> Vec<SocketAddr> {
        let mut v: Vec<SocketAddr> = self.disagree.iter().copied().collect();
        v.sort_unstable();
        v
    }

    pub(crate) fn all_verdicts(&self) -> Vec<(SocketAddr, Health)> {
        let mut v: Vec<(SocketAddr, Health)> = self.verdicts.iter().map(|(a, h)| (*a, *h)).collect();
        v.sort_unstable_by_key(|(a, _)| *a);
        v
    }

    /// Gossip has stopped: no peer counts any more, and this instance decides alone.
    pub(crate) fn go_alone(&mut self) -> Changes {
        let addrs: HashSet<SocketAddr> = self.peers.values().flat_map(|p| p.obs.keys().copied()).collect();
        self.peers.clear();
        self.counted.clear();
        self.reverdict(addrs)
    }
}

fn rtt_moved(old: Option<u32>, new: Option<u32>) -> bool {
    match (old, new) {
        (Some(a), Some(b)) => {
            let diff = a.abs_diff(b);
            diff > RTT_FLOOR_US && f64::from(diff) > f64::from(a) * RTT_CHANGE
        }
        (None, None) => false,
        _ => true,
    }
}

#[cfg(test)]
#[path = "view/tests.rs"]
mod tests;
