//! Observations travel in groups: each chitchat key holds the observations of the
//! addresses that hash to it, so an instance has at most [`GROUPS`] observation keys
//! however many addresses it probes.
//!
//! Why: chitchat's work per message grows with the keys a node has, not with what the
//! message carries. Answering a digest counts every key of every node newer than the
//! digest and sorts the stale ones by version; ending a round it copies every live
//! node's state for its watchers. With a key per address, 100,000 addresses × 5 instances
//! cost tens of milliseconds per message, and on two cores five instances spent all of
//! them there while their sockets overflowed (`bench/RESULTS.md`, fleet). Grouped, a
//! message costs a few thousand keys' worth at most.
//!
//! The price: a change republishes its group, about `addresses / GROUPS` observations
//! (12 at 100,000 addresses, one below 8,192), rather than just itself. Still changes,
//! not full state.
//!
//! - key: `g` + the group number in base 36 (`g0` … `g6bz`);
//! - value: entries `address=value` (see `obs`) joined by `,`, in address order:
//!   `CgECAwG7=u2n9@t85s00,CgECAwW7=d@t85s00`.
//!
//! Only the writer hashes: a reader takes each entry's address from the entry and
//! remembers which addresses each of a peer's groups held, so that a rewritten group
//! withdraws the addresses it no longer lists.

use std::net::{IpAddr, SocketAddr};

use crate::obs::{self, Obs};

pub(crate) const PREFIX: char = 'g';
/// How many groups an instance spreads its observations over: fewer would make a change
/// cost more (a group per change), more would bring back chitchat's per-key cost.
pub(crate) const GROUPS: u32 = 8192;
/// Entries written per group at most, so a group's value (≤ 40 bytes an entry) stays far
/// below one datagram: chitchat never sends a key that does not fit one, and its node
/// would stall. 8,192 × 1,000 is 8 million addresses; past that some go unpublished.
pub(crate) const MAX_ENTRIES: usize = 1000;

/// The group `addr` is published in: FNV-1a over its octets and port.
pub(crate) fn of(addr: SocketAddr) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    let mut eat = |b: u8| h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    match addr.ip() {
        IpAddr::V4(v4) => v4.octets().into_iter().for_each(&mut eat),
        IpAddr::V6(v6) => v6.octets().into_iter().for_each(&mut eat),
    }
    addr.port().to_be_bytes().into_iter().for_each(&mut eat);
    h % GROUPS
}

pub(crate) fn key(group: u32) -> String {
    let mut out = String::with_capacity(4);
    out.push(PREFIX);
    obs::push_base36(&mut out, group.into());
    out
}

/// The group number of a group key; `None` for any other key.
pub(crate) fn parse_key(key: &str) -> Option<u32> {
    obs::parse_base36(key.strip_prefix(PREFIX)?)
}

/// A group's value from its entries, in the order given (callers give address order);
/// at most [`MAX_ENTRIES`].
pub(crate) fn value<'a>(entries: impl IntoIterator<Item = (SocketAddr, &'a Obs)>) -> String {
    let mut out = String::new();
    for (addr, o) in entries.into_iter().take(MAX_ENTRIES) {
        if !out.is_empty() {
            out.push(',');
        }
        obs::push_addr(&mut out, addr);
        out.push('=');
        obs::push_value(&mut out, o);
    }
    out
}

/// The entries of a group's value; each entry that does not parse is an `Err` (and
/// skipped by the caller), so one bad entry does not hide the others.
pub(crate) fn entries(value: &str) -> impl Iterator<Item = Result<(SocketAddr, Obs), ()>> + '_ {
    value.split(',').filter(|e| !e.is_empty()).map(|entry| {
        let (addr, v) = entry.split_once('=').ok_or(())?;
        Ok((obs::parse_addr(addr).ok_or(())?, obs::parse_value(v).ok_or(())?))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn o(up: bool, at: u32) -> Obs {
        Obs { up, rtt_us: up.then_some(1234), at }
    }

    /// Entries round-trip for both families, in order; keys round-trip.
    #[test]
    fn groups_round_trip() {
        let a: SocketAddr = "10.1.2.3:443".parse().expect("addr");
        let b: SocketAddr = "[2001:db8::1]:8443".parse().expect("addr");
        let (oa, ob) = (o(true, 1_767_225_600), o(false, 7));
        let v = value([(a, &oa), (b, &ob)]);
        assert!(v.starts_with("CgECAwG7=u"), "{v}");
        let back: Vec<_> = entries(&v).collect();
        assert_eq!(back, vec![Ok((a, oa)), Ok((b, ob))]);
        for g in [0, 35, 36, GROUPS - 1] {
            assert_eq!(parse_key(&key(g)), Some(g));
        }
        for junk in ["g", "gZ", "n", "oCgECAwG7", "g-1"] {
            assert_eq!(parse_key(junk), None, "{junk}");
        }
    }

    /// A bad entry is reported alone; the good ones around it still parse.
    #[test]
    fn a_bad_entry_spoils_only_itself() {
        let a: SocketAddr = "10.0.0.1:80".parse().expect("addr");
        let good = value([(a, &o(true, 5))]);
        let v = format!("junk,{good},CgECAwG7=x@1,,CgECAwG7");
        let parsed: Vec<_> = entries(&v).collect();
        assert_eq!(parsed.iter().filter(|e| e.is_ok()).count(), 1, "{parsed:?}");
        assert_eq!(parsed.iter().filter(|e| e.is_err()).count(), 3, "{parsed:?}");
        assert_eq!(entries("").count(), 0);
    }

    /// 100,000 addresses spread over nearly every group, none holding more than a few
    /// times the mean, so no change costs much more than another; a group's value then
    /// stays far below a datagram.
    #[test]
    fn addresses_spread_over_the_groups() {
        let mut sizes = vec![0usize; GROUPS as usize];
        for i in 0..100_000u32 {
            let [_, b, c, d] = i.to_be_bytes();
            let addr = SocketAddr::from(([10, b, c, d], 443));
            sizes[of(addr) as usize] += 1;
        }
        let used = sizes.iter().filter(|n| **n > 0).count();
        let max = sizes.iter().copied().max().unwrap_or(0);
        assert!(used > GROUPS as usize * 99 / 100, "{used} groups used");
        assert!(max < 40, "a group of {max} (mean 12)");
        let distinct: HashSet<u32> = (0..20u16).map(|p| of(SocketAddr::from(([10, 0, 0, 1], p)))).collect();
        assert!(distinct.len() > 15, "ports spread too: {distinct:?}");
    }

    /// The cap keeps the largest group's value under a datagram, IPv6 and all.
    #[test]
    fn a_full_group_fits_a_datagram() {
        let worst = Obs { up: true, rtt_us: Some(u32::MAX), at: u32::MAX };
        let addrs: Vec<SocketAddr> = (0..MAX_ENTRIES as u32 + 50)
            .map(|i| SocketAddr::new(IpAddr::V6(std::net::Ipv6Addr::from(u128::MAX - u128::from(i))), 65535))
            .collect();
        let v = value(addrs.iter().map(|a| (*a, &worst)));
        assert_eq!(entries(&v).count(), MAX_ENTRIES);
        assert!(v.len() < 48 * 1024, "{} bytes", v.len());
    }
}
