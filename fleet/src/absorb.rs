//! The two crossings between chitchat's state and the [`View`]: this instance's
//! unpublished observations go into its own group keys (`publish`, `group`), and every
//! peer's keys and heartbeat come out (`absorb`).
//!
//! chitchat versions each node's keys with one counter and delivers them in version
//! order, so the keys changed since the last scan are those above the version seen then.
//! When the state went back (a reset) or tombstones were collected, the peer is read
//! again whole. chitchat's key-change callbacks are not used: they skip deletions.

use std::collections::{BTreeSet, HashSet};
use std::net::SocketAddr;
use std::time::{Instant, SystemTime};

use chitchat::{Chitchat, ChitchatId, NodeState};

use crate::stats::Stats;
use crate::view::{Changes, Peer, View};
use crate::{group, obs};

/// Writes this instance's changed observations into its chitchat keys: each changed
/// address rewrites its group (`group`), an emptied group is deleted.
pub(crate) fn publish(view: &mut View, chitchat: &mut Chitchat) {
    if view.unpublished.is_empty() {
        return;
    }
    let mut dirty = BTreeSet::new();
    for addr in view.unpublished.drain() {
        let g = group::of(addr);
        let members = view.own_groups.entry(g).or_default();
        if view.own.contains_key(&addr) {
            members.insert(addr);
        } else {
            members.remove(&addr);
        }
        dirty.insert(g);
    }
    let state = chitchat.self_node_state();
    for g in dirty {
        let key = group::key(g);
        match view.own_groups.get(&g).filter(|m| !m.is_empty()) {
            Some(members) => {
                if members.len() > group::MAX_ENTRIES {
                    tracing::warn!(
                        group = g,
                        addresses = members.len(),
                        "fleet: a group is full; some observations go unpublished"
                    );
                }
                let entries = members.iter().filter_map(|a| view.own.get(a).map(|o| (*a, o)));
                state.set(key, group::value(entries));
            }
            None => {
                view.own_groups.remove(&g);
                if state.get(&key).is_some() {
                    state.delete(&key);
                }
            }
        }
    }
    // Last, so its version is above the batch's; numbered, so it is never unchanged
    // (`set` would skip it).
    view.publications += 1;
    state.set(obs::COUNT_KEY, obs::count_value(view.own.len(), view.publications));
}

/// Reads every peer's state and re-decides what it changed.
pub(crate) fn absorb(view: &mut View, chitchat: &Chitchat, stats: &Stats, now: Instant, wall: SystemTime) -> Changes {
    let me = chitchat.self_chitchat_id().clone();
    let mut touched: HashSet<SocketAddr> = HashSet::new();
    let mut present: HashSet<&ChitchatId> = HashSet::new();
    for (cid, state) in chitchat.node_states() {
        if *cid == me || cid.node_id == view.me.id {
            // Another process using this instance's id would be counted as this one:
            // its ballots are ignored (and its generation differs from ours).
            continue;
        }
        present.insert(cid);
        let peer = view.peers.entry(cid.clone()).or_default();
        beat(peer, u64::from(state.heartbeat()), now, wall);
        scan(peer, state, &mut touched, stats);
    }
    let gone: Vec<ChitchatId> = view.peers.keys().filter(|c| !present.contains(c)).cloned().collect();
    for cid in gone {
        if let Some(p) = view.peers.remove(&cid) {
            touched.extend(p.obs.keys().copied());
        }
    }
    touched.extend(view.recount(now));
    view.reverdict(touched)
}

fn beat(peer: &mut Peer, heartbeat: u64, now: Instant, wall: SystemTime) {
    if heartbeat > peer.heartbeat {
        // The first value seen may be an old one that gossip still carries: only an
        // advance proves the peer alive.
        if peer.heartbeat != 0 {
            peer.advanced = Some(now);
            peer.advanced_wall = Some(wall);
        }
        peer.heartbeat = heartbeat;
    }
}

/// Applies the keys of `state` that changed since the last scan.
fn scan(peer: &mut Peer, state: &NodeState, touched: &mut HashSet<SocketAddr>, stats: &Stats) {
    let (max, gc) = (state.max_version(), state.last_gc_version());
    if (max, gc) == (peer.max_version, peer.last_gc) {
        return;
    }
    let whole = gc != peer.last_gc || max < peer.max_version;
    if whole {
        touched.extend(peer.obs.keys().copied());
        peer.obs.clear();
        peer.groups.clear();
    }
    let floor = if whole { 0 } else { peer.max_version };
    for (key, vv) in state.key_values_including_deleted() {
        if vv.version <= floor {
            continue;
        }
        let value = (!vv.is_deleted()).then_some(vv.value.as_str());
        if key == obs::COUNT_KEY {
            peer.announced = value.and_then(obs::parse_count).map(|n| (vv.version, n));
            continue;
        }
        apply(peer, key, value, touched, stats);
    }
    (peer.max_version, peer.last_gc) = (max, gc);
}

/// One changed key of a peer; `value` is `None` for a deleted key.
fn apply(peer: &mut Peer, key: &str, value: Option<&str>, touched: &mut HashSet<SocketAddr>, stats: &Stats) {
    match key {
        obs::REGION_KEY => peer.region = value.filter(|r| !r.is_empty()).map(Into::into),
        obs::LOCATION_KEY => peer.location = value.and_then(obs::parse_location),
        _ => {
            if let Some(g) = group::parse_key(key) {
                apply_group(peer, g, value, touched, stats);
            } else if let Some(addr) = obs::parse_key(key) {
                apply_one(peer, addr, value, touched, stats);
            }
        }
    }
}

/// A peer's group rewritten (or deleted): the addresses it listed before are withdrawn,
/// those it lists now recorded.
fn apply_group(peer: &mut Peer, g: u32, value: Option<&str>, touched: &mut HashSet<SocketAddr>, stats: &Stats) {
    for addr in peer.groups.remove(&g).unwrap_or_default() {
        peer.obs.remove(&addr);
        touched.insert(addr);
    }
    let Some(value) = value else { return };
    let mut members = Vec::new();
    for entry in group::entries(value) {
        match entry {
            Ok((addr, o)) => {
                peer.obs.insert(addr, o);
                touched.insert(addr);
                members.push(addr);
            }
            Err(()) => {
                stats.bad_values.inc();
            }
        }
    }
    if !members.is_empty() {
        peer.groups.insert(g, members);
    }
}

/// A key of the first format: one address.
fn apply_one(peer: &mut Peer, addr: SocketAddr, value: Option<&str>, touched: &mut HashSet<SocketAddr>, stats: &Stats) {
    touched.insert(addr);
    match value.map(obs::parse_value) {
        Some(Some(o)) => {
            peer.obs.insert(addr, o);
        }
        Some(None) => {
            stats.bad_values.inc();
            peer.obs.remove(&addr);
        }
        None => {
            peer.obs.remove(&addr);
        }
    }
}
