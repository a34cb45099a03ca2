//! How one observation is written: its address and its value, short enough that 100,000
//! addresses stay a few megabytes per instance. `group` gathers them into chitchat keys.
//!
//! - address: unpadded URL-safe base64 of the address octets and the port (big-endian):
//!   8 bytes for IPv4 (`CgECAwG7` is 10.1.2.3:443), 24 for IPv6;
//! - value: `u` or `d`, the RTT in microseconds in base 36 (empty when unknown), `@`, the
//!   Unix second of the observation in base 36: `u2n9@t85s00` is up, 3,429 µs, on 2026-01-01. About 11
//!   bytes.
//!
//! The first format had a key per address, `o` + the address (`oCgECAwG7`): still read,
//! no longer written (a key per address made chitchat's work per message grow with the
//! address count; see `group`).
//!
//! chitchat adds a version (8 bytes), a status byte and two length prefixes per key in a
//! delta, then zstd-compresses the delta; `tests/integration/cost.rs` measures what an
//! address costs on the wire. Besides, the instance's `region`, `loc` (`lat,lon`), `fv`
//! (this format's version) and `n` (how many observations it publishes, in base 36) keys
//! describe it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::config::Location;

pub(crate) const PREFIX: char = 'o';
pub(crate) const REGION_KEY: &str = "region";
pub(crate) const LOCATION_KEY: &str = "loc";
pub(crate) const FORMAT_KEY: &str = "fv";
/// How many observation keys the instance holds, rewritten after each batch: a reader
/// that has this key, nothing newer, and as many observations has caught up.
pub(crate) const COUNT_KEY: &str = "n";
/// 2: observations in groups (`group`); 1 had a key per address.
pub(crate) const FORMAT: &str = "2";

/// One instance's latest observation of one address. 32-bit fields: every instance
/// holds one of these per address per peer (an RTT saturates at 71 minutes, a time in
/// 2106).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Obs {
    pub(crate) up: bool,
    pub(crate) rtt_us: Option<u32>,
    /// Unix seconds when this observation was published.
    pub(crate) at: u32,
}

/// A first-format key (read, no longer written: tests write one).
#[cfg(test)]
pub(crate) fn key(addr: SocketAddr) -> String {
    let mut out = String::with_capacity(25);
    out.push(PREFIX);
    push_addr(&mut out, addr);
    out
}

/// Appends the base64 of the address octets and the port: what follows the prefix of a
/// key, and names an address inside a group's value (`group`).
pub(crate) fn push_addr(out: &mut String, addr: SocketAddr) {
    let mut raw = Vec::with_capacity(18);
    match addr.ip() {
        IpAddr::V4(v4) => raw.extend_from_slice(&v4.octets()),
        IpAddr::V6(v6) => raw.extend_from_slice(&v6.octets()),
    }
    raw.extend_from_slice(&addr.port().to_be_bytes());
    URL_SAFE_NO_PAD.encode_string(&raw, out);
}

/// The address of an observation key; `None` for any other key.
pub(crate) fn parse_key(key: &str) -> Option<SocketAddr> {
    parse_addr(key.strip_prefix(PREFIX)?)
}

/// The address [`push_addr`] wrote.
pub(crate) fn parse_addr(code: &str) -> Option<SocketAddr> {
    let raw = URL_SAFE_NO_PAD.decode(code).ok()?;
    match raw.as_slice() {
        [a, b, c, d, p0, p1] => {
            Some(SocketAddr::new(Ipv4Addr::new(*a, *b, *c, *d).into(), u16::from_be_bytes([*p0, *p1])))
        }
        [ip @ .., p0, p1] if ip.len() == 16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(ip);
            Some(SocketAddr::new(Ipv6Addr::from(octets).into(), u16::from_be_bytes([*p0, *p1])))
        }
        _ => None,
    }
}

#[cfg(test)]
pub(crate) fn value(obs: &Obs) -> String {
    let mut out = String::with_capacity(16);
    push_value(&mut out, obs);
    out
}

pub(crate) fn push_value(out: &mut String, obs: &Obs) {
    out.push(if obs.up { 'u' } else { 'd' });
    if let Some(rtt) = obs.rtt_us {
        push_base36(out, rtt.into());
    }
    out.push('@');
    push_base36(out, obs.at.into());
}

pub(crate) fn parse_value(v: &str) -> Option<Obs> {
    let up = match v.as_bytes().first()? {
        b'u' => true,
        b'd' => false,
        _ => return None,
    };
    let (rtt, at) = v.get(1..)?.split_once('@')?;
    let rtt_us = if rtt.is_empty() { None } else { Some(parse_base36(rtt)?) };
    Some(Obs { up, rtt_us, at: parse_base36(at)? })
}

/// The count key's value: how many observations are published, and after a `.` the
/// publication's number. The number makes every publication's value new: chitchat skips
/// a `set` to an unchanged value, and a count key left older than the keys a batch
/// changed would leave the instance looking unsynced to its peers for good.
pub(crate) fn count_value(n: usize, publication: u64) -> String {
    let mut out = String::new();
    push_base36(&mut out, u64::try_from(n).unwrap_or(u64::MAX));
    out.push('.');
    push_base36(&mut out, publication);
    out
}

/// The count of a count key's value (an older instance's has no publication number).
pub(crate) fn parse_count(v: &str) -> Option<usize> {
    let (n, publication) = v.split_once('.').unwrap_or((v, "0"));
    parse_base36(publication)?;
    parse_base36(n).and_then(|n| usize::try_from(n).ok())
}

pub(crate) fn location_value(loc: &Location) -> String {
    format!("{},{}", loc.lat, loc.lon)
}

pub(crate) fn parse_location(v: &str) -> Option<Location> {
    let (lat, lon) = v.split_once(',')?;
    let loc = Location { lat: lat.parse().ok()?, lon: lon.parse().ok()? };
    ((-90.0..=90.0).contains(&loc.lat) && (-180.0..=180.0).contains(&loc.lon)).then_some(loc)
}

const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

pub(crate) fn push_base36(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 13]; // any u64
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = DIGITS[(n % 36) as usize];
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.extend(buf[i..].iter().map(|&b| char::from(b)));
}

pub(crate) fn parse_base36(s: &str) -> Option<u32> {
    // 7 digits hold any u32; longer is garbage (and from_str_radix would say so too).
    if s.is_empty() || s.len() > 7 || !s.bytes().all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()) {
        return None;
    }
    u32::from_str_radix(s, 36).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys round-trip for both families and are as short as documented.
    #[test]
    fn keys_round_trip() {
        for a in ["10.1.2.3:443", "[2001:db8::1]:8443", "0.0.0.0:0", "[::]:65535"] {
            let addr: SocketAddr = a.parse().expect("addr");
            assert_eq!(parse_key(&key(addr)), Some(addr), "{a}");
        }
        assert_eq!(key("10.1.2.3:443".parse().expect("addr")), "oCgECAwG7");
        assert_eq!(key("[2001:db8::1]:443".parse().expect("addr")).len(), 25);
        for junk in ["region", "o", "o!!", "oAAAA", "xCgECAwG7", "oCgECAwG7A"] {
            assert_eq!(parse_key(junk), None, "{junk}");
        }
    }

    /// Values round-trip; anything else is refused, never misread.
    #[test]
    fn values_round_trip() {
        let cases = [
            Obs { up: true, rtt_us: Some(3429), at: 1_767_225_600 },
            Obs { up: false, rtt_us: None, at: 0 },
            Obs { up: true, rtt_us: Some(u32::MAX), at: u32::MAX },
        ];
        for o in cases {
            assert_eq!(parse_value(&value(&o)), Some(o), "{}", value(&o));
        }
        assert_eq!(value(&cases[0]), "u2n9@t85s00");
        for junk in ["", "u", "x1@2", "u1", "u@", "uZ@1", "u1@1@1", "d@zzzzzzz", "d@zzzzzzzzzzzzzz", "u-1@1", "é@1"] {
            assert_eq!(parse_value(junk), None, "{junk:?}");
        }
    }

    /// Counts round-trip.
    #[test]
    fn counts_round_trip() {
        for n in [0, 1, 35, 36, 100_000] {
            assert_eq!(parse_count(&count_value(n, 7)), Some(n));
        }
        assert_ne!(count_value(3, 1), count_value(3, 2), "each publication's value is new");
        assert_eq!(parse_count("z"), Some(35));
        assert_eq!(parse_count("-1"), None);
        assert_eq!(parse_count("1.-"), None);
    }

    /// A location survives the trip; an impossible one is dropped.
    #[test]
    fn locations_round_trip() {
        let loc = Location { lat: 50.11, lon: -8.68 };
        assert_eq!(parse_location(&location_value(&loc)), Some(loc));
        assert_eq!(parse_location("91,0"), None);
        assert_eq!(parse_location("1;2"), None);
    }
}
