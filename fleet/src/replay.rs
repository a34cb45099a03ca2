//! Replay protection: each authenticated datagram's (boot id, counter) is accepted once.
//!
//! Per boot id a sliding window, as IPsec's (RFC 4303 §3.4.3): the highest counter seen
//! and a bitmap of the [`WINDOW`] below it. UDP may reorder datagrams, so a counter below
//! the highest is fine if its bit is clear; one older than the window is refused. Only
//! datagrams that passed the MAC get here, so only key holders create entries, and an
//! entry idle for longer than [`MAX_AGE_MS`] can go: every datagram it could still
//! refuse is refused by its timestamp.

use std::collections::HashMap;

use crate::wire::MAX_AGE_MS;

/// Counters below the highest still accepted once each: datagrams to one receiver are
/// at most a few per gossip round, so 128 covers any reordering a network does.
const WINDOW: u64 = 128;
/// Senders remembered. A fleet is tens of instances, each opening a new boot id per
/// start; beyond this the idlest goes.
const MAX_SENDERS: usize = 1024;

#[derive(Debug, Clone, Copy)]
struct Window {
    top: u64,
    /// Bit `i` set: counter `top - i` was accepted.
    seen: u128,
    last_ms: u64,
}

#[derive(Debug, Default)]
pub(crate) struct ReplayGuard {
    senders: HashMap<u64, Window>,
}

impl ReplayGuard {
    /// Records (boot, counter) and says whether it is new.
    pub(crate) fn accept(&mut self, boot: u64, counter: u64, now_ms: u64) -> bool {
        if !self.senders.contains_key(&boot) {
            self.make_room(now_ms);
        }
        let w = self.senders.entry(boot).or_insert(Window { top: 0, seen: 0, last_ms: now_ms });
        let fresh = advance(w, counter);
        if fresh {
            w.last_ms = now_ms;
        }
        fresh
    }

    fn make_room(&mut self, now_ms: u64) {
        if self.senders.len() < MAX_SENDERS {
            return;
        }
        self.senders.retain(|_, w| now_ms.saturating_sub(w.last_ms) <= MAX_AGE_MS);
        if self.senders.len() < MAX_SENDERS {
            return;
        }
        let idlest = self.senders.iter().min_by_key(|(boot, w)| (w.last_ms, **boot)).map(|(b, _)| *b);
        if let Some(b) = idlest {
            self.senders.remove(&b);
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.senders.len()
    }
}

fn advance(w: &mut Window, counter: u64) -> bool {
    if counter > w.top {
        let shift = counter - w.top;
        w.seen = if shift >= 128 { 0 } else { w.seen << shift };
        w.seen |= 1;
        w.top = counter;
        return true;
    }
    let age = w.top - counter;
    if age >= WINDOW {
        return false;
    }
    let bit = 1u128 << age;
    if w.seen & bit != 0 {
        return false;
    }
    w.seen |= bit;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each counter once, in any order inside the window; never twice; never too old.
    #[test]
    fn each_counter_is_accepted_once() {
        let mut g = ReplayGuard::default();
        assert!(g.accept(7, 1, 0));
        assert!(!g.accept(7, 1, 0), "a repeat is refused");
        assert!(g.accept(7, 5, 0));
        assert!(g.accept(7, 3, 0), "reordered but new");
        assert!(!g.accept(7, 3, 0));
        assert!(g.accept(7, 300, 0));
        assert!(!g.accept(7, 5, 0), "older than the window");
        assert!(g.accept(7, 300 - 127, 0), "the window's oldest slot");
        assert!(!g.accept(7, 300 - 128, 0), "one past it");
        assert!(g.accept(8, 1, 0), "another boot id has its own counters");
    }

    /// A full table first forgets senders idle past the replay age, then the idlest.
    #[test]
    fn table_is_bounded() {
        let mut g = ReplayGuard::default();
        for boot in 0..MAX_SENDERS as u64 {
            assert!(g.accept(boot, 1, boot));
        }
        assert!(g.accept(u64::MAX, 1, MAX_SENDERS as u64));
        assert_eq!(g.len(), MAX_SENDERS);
        assert!(g.accept(0, 1, MAX_SENDERS as u64 + 1), "the idlest (boot 0) was forgotten");
    }
}
