//! What bounds DNS-over-TCP connections (RFC 7766): the read and write deadlines, which
//! a reload may change, and the slots shared by every TCP listener of one server.
//!
//! A server that refuses new connections when full can be locked out by clients that
//! merely hold connections open. RFC 7766 §6.2.3 lets it close idle ones instead, so a
//! new connection over the limit (overall, or for its client address) takes the slot of
//! the connection that has waited longest for its next query; it is refused only when
//! every connection is busy.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio::sync::futures::Notified;

/// The timeouts a connection reads on every turn (a reload may change them).
#[derive(Debug, Default)]
pub(crate) struct Timeouts {
    idle_ms: AtomicU64,
    write_ms: AtomicU64,
}

impl Timeouts {
    pub(crate) fn set(&self, dns: &meridian_config::dns::DnsConfig) {
        self.idle_ms.store(dns.tcp_idle_timeout.as_std().as_millis() as u64, Ordering::Relaxed);
        self.write_ms.store(dns.tcp_write_timeout.as_std().as_millis() as u64, Ordering::Relaxed);
    }

    pub(crate) fn idle(&self) -> Duration {
        Duration::from_millis(self.idle_ms.load(Ordering::Relaxed))
    }

    pub(crate) fn write(&self) -> Duration {
        Duration::from_millis(self.write_ms.load(Ordering::Relaxed))
    }
}

/// One connection's slot: whether it is waiting for a query (and since when), and how
/// to tell it to close.
#[derive(Debug, Default)]
struct Slot {
    /// Milliseconds since `Slots::epoch` when it began waiting for its next query, plus
    /// one; 0 while it is reading or answering one.
    idle_since: AtomicU64,
    close: Notify,
}

/// The connections of every TCP listener of one server.
#[derive(Debug)]
pub(crate) struct Slots {
    max: usize,
    per_client: usize,
    epoch: Instant,
    held: Mutex<Held>,
    /// Connections closed to make room, and connections refused.
    pub(crate) evicted: AtomicU64,
    pub(crate) refused: AtomicU64,
}

#[derive(Debug, Default)]
struct Held {
    next: u64,
    /// Open connections not yet told to close.
    open: HashMap<u64, (IpAddr, Arc<Slot>)>,
}

impl Slots {
    pub(crate) fn new(max: usize, per_client: usize) -> Self {
        let held = Mutex::new(Held::default());
        Slots {
            max: max.max(1),
            per_client: per_client.max(1),
            epoch: Instant::now(),
            held,
            evicted: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// A slot for a new connection from `peer`, closing the longest-idle connection (of
    /// that client when it is over its share, else of anyone) when the limit is reached.
    /// `None` when every connection in the way is busy.
    pub(crate) fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Admitted> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let mine = held.open.values().filter(|(ip, _)| *ip == peer).count();
        let full = if mine >= self.per_client {
            Some(Some(peer))
        } else if held.open.len() >= self.max {
            Some(None)
        } else {
            None
        };
        if let Some(of) = full {
            let Some(victim) = longest_idle(&held.open, of) else {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return None;
            };
            if let Some((_, slot)) = held.open.remove(&victim) {
                slot.close.notify_one();
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
        let id = held.next;
        held.next += 1;
        let slot = Arc::new(Slot::default());
        held.open.insert(id, (peer, slot.clone()));
        Some(Admitted { slots: self.clone(), id, slot })
    }
}

/// The idle connection (of `of`, when given) that has waited longest.
fn longest_idle(open: &HashMap<u64, (IpAddr, Arc<Slot>)>, of: Option<IpAddr>) -> Option<u64> {
    open.iter()
        .filter(|(_, (ip, _))| of.is_none_or(|p| p == *ip))
        .map(|(id, (_, slot))| (*id, slot.idle_since.load(Ordering::Relaxed)))
        .filter(|(_, since)| *since > 0)
        .min_by_key(|(_, since)| *since)
        .map(|(id, _)| id)
}

/// A connection's hold on its slot; released when the connection ends.
pub(crate) struct Admitted {
    slots: Arc<Slots>,
    id: u64,
    slot: Arc<Slot>,
}

impl Admitted {
    /// The connection waits for its next query: it may be closed to make room.
    pub(crate) fn waiting(&self) {
        self.slot.idle_since.store(self.slots.now(), Ordering::Relaxed);
    }

    /// The connection reads or answers a query.
    pub(crate) fn busy(&self) {
        self.slot.idle_since.store(0, Ordering::Relaxed);
    }

    /// Resolves when a new connection has taken this one's slot.
    pub(crate) fn displaced(&self) -> Notified<'_> {
        self.slot.close.notified()
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut held = self.slots.held.lock().unwrap_or_else(|e| e.into_inner());
        held.open.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    /// Full: the longest-idle connection makes room; a busy one never does.
    #[test]
    fn the_longest_idle_connection_makes_room() {
        let slots = Arc::new(Slots::new(2, 10));
        let first = slots.admit(A).expect("room");
        let second = slots.admit(A).expect("room");
        first.waiting();
        std::thread::sleep(Duration::from_millis(5));
        second.waiting();
        let third = slots.admit(B).expect("the longest idle goes");
        assert_eq!(slots.evicted.load(Ordering::Relaxed), 1);
        assert!(!slots.held.lock().expect("lock").open.contains_key(&first.id), "the first (longest idle) was chosen");
        second.busy();
        third.busy();
        assert!(slots.admit(B).is_none(), "every connection busy: refused");
        assert_eq!(slots.refused.load(Ordering::Relaxed), 1);
    }

    /// A client over its share loses its own idle connections, not other clients'.
    #[test]
    fn a_client_over_its_share_displaces_only_itself() {
        let slots = Arc::new(Slots::new(10, 2));
        let other = slots.admit(B).expect("room");
        other.waiting();
        let a1 = slots.admit(A).expect("room");
        let a2 = slots.admit(A).expect("room");
        a1.waiting();
        a2.waiting();
        let _a3 = slots.admit(A).expect("its own idle one goes");
        let open = &slots.held.lock().expect("lock").open;
        assert!(open.contains_key(&other.id), "another client's connection stays");
        assert_eq!(open.values().filter(|(ip, _)| *ip == A).count(), 2);
    }
}
