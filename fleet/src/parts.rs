//! Joining the two halves of a chitchat datagram too large for one frame (see `wire`).
//!
//! Part `i` of a message carries counter `first + i`, so both halves name the message by
//! (boot id, first counter). Halves are held for [`HOLD`] at most, and at most
//! [`MAX_PENDING`] messages at once; only authenticated parts get here.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::wire::Header;

/// A half whose other half has not come by then was lost with it (UDP).
const HOLD: Duration = Duration::from_secs(2);
/// Large messages are catch-up deltas, one per peer per round: a few at a time.
const MAX_PENDING: usize = 16;

struct Pending {
    boot: u64,
    first: u64,
    from: SocketAddr,
    halves: [Option<Vec<u8>>; 2],
    since: Instant,
}

#[derive(Default)]
pub(crate) struct Reassembly {
    pending: Vec<Pending>,
}

impl Reassembly {
    /// Adds one authenticated part; returns the whole message once both halves are in.
    pub(crate) fn add(&mut self, h: &Header, from: SocketAddr, chunk: &[u8], now: Instant) -> Option<Vec<u8>> {
        if h.count == 1 {
            return Some(chunk.to_vec());
        }
        self.pending.retain(|p| now.duration_since(p.since) < HOLD);
        let index = usize::from(h.index);
        let first = h.counter.checked_sub(u64::from(h.index))?;
        let pos = self.pending.iter().position(|p| p.boot == h.boot && p.first == first && p.from == from);
        let pos = match pos {
            Some(pos) => pos,
            None => self.open(h.boot, first, from, now),
        };
        let p = self.pending.get_mut(pos)?;
        let slot = p.halves.get_mut(index)?;
        *slot = Some(chunk.to_vec());
        if p.halves.iter().any(Option::is_none) {
            return None;
        }
        let done = self.pending.swap_remove(pos);
        Some(done.halves.into_iter().flatten().flatten().collect())
    }

    fn open(&mut self, boot: u64, first: u64, from: SocketAddr, now: Instant) -> usize {
        if self.pending.len() >= MAX_PENDING {
            // The oldest is the likeliest to have lost its other half.
            self.pending.remove(0);
        }
        self.pending.push(Pending { boot, first, from, halves: [None, None], since: now });
        self.pending.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(index: u8, counter: u64) -> Header {
        Header { index, count: 2, boot: 9, counter, sent_ms: 0 }
    }

    /// Halves join in either order; a half alone yields nothing and expires.
    #[test]
    fn halves_join_in_any_order() {
        let from: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        let now = Instant::now();
        let mut r = Reassembly::default();
        assert_eq!(r.add(&header(1, 11), from, b"world", now), None);
        assert_eq!(r.add(&header(0, 10), from, b"hello ", now).as_deref(), Some(&b"hello world"[..]));
        assert_eq!(r.add(&header(0, 20), from, b"lost", now), None);
        assert_eq!(r.add(&header(1, 21), from, b"half", now + HOLD), None, "the first half expired");
        let other: SocketAddr = "127.0.0.1:2".parse().expect("addr");
        assert_eq!(r.add(&header(0, 30), other, b"a", now), None);
        assert_eq!(r.add(&header(1, 31), from, b"b", now), None, "halves from different sources never join");
    }
}
