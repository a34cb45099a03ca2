//! Server cookies (RFC 7873) in the interoperable format of RFC 9018, so that every
//! instance of a fleet sharing one secret (`dns.cookie_secret_file`) verifies the cookies
//! of the others: version 1, three reserved octets, a 32-bit timestamp and SipHash-2-4
//! over the client cookie, those eight octets and the client's address.
//!
//! Cookies are not required (no BADCOOKIE is sent): a server cookie that does not verify
//! is treated as if only the client cookie had been sent (RFC 7873 §5.2.3).

use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

/// Octets of the server cookie made here (RFC 9018 §4).
pub(crate) const SERVER_LEN: usize = 16;
/// Octets of a client cookie (RFC 7873 §4.1).
pub(crate) const CLIENT_LEN: usize = 8;
/// The COOKIE option data of a reply: the client cookie, then ours.
pub(crate) const REPLY_LEN: usize = CLIENT_LEN + SERVER_LEN;
const VERSION: u8 = 1;
/// A cookie older than this no longer verifies (RFC 9018 §4.3: one hour).
const MAX_AGE: u32 = 3600;
/// Nor one from further in the future than this (clock skew across a fleet, §4.3).
const MAX_AHEAD: u32 = 300;

/// The server secret. Its `Debug` does not show it, so it is never logged.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret([u8; 16]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

impl Secret {
    pub(crate) fn new(key: [u8; 16]) -> Self {
        Secret(key)
    }

    /// A secret for this process alone.
    pub(crate) fn random() -> Self {
        Secret(rand::random())
    }

    /// The server cookie for `client` from `ip` at `now` (seconds since the epoch, mod 2³²).
    pub(crate) fn server_cookie(&self, client: &[u8; CLIENT_LEN], ip: Option<IpAddr>, now: u32) -> [u8; SERVER_LEN] {
        let mut out = [0u8; SERVER_LEN];
        out[0] = VERSION;
        out[4..8].copy_from_slice(&now.to_be_bytes());
        let hash = self.hash(client, &[out[0], out[1], out[2], out[3]], now, ip);
        out[8..].copy_from_slice(&hash);
        out
    }

    /// Whether `server` is a cookie this secret made for `client` from `ip`, not older
    /// than an hour nor more than five minutes ahead of `now` (RFC 9018 §4.3).
    pub(crate) fn verify(&self, client: &[u8; CLIENT_LEN], server: &[u8], ip: Option<IpAddr>, now: u32) -> bool {
        let Ok(server) = <&[u8; SERVER_LEN]>::try_from(server) else { return false };
        if server[0] != VERSION {
            return false;
        }
        let stamp = u32::from_be_bytes([server[4], server[5], server[6], server[7]]);
        // Serial-number arithmetic (RFC 1982): the clock wraps in 2106.
        let age = now.wrapping_sub(stamp);
        let fresh = age <= MAX_AGE || stamp.wrapping_sub(now) <= MAX_AHEAD;
        let hash = self.hash(client, &[server[0], server[1], server[2], server[3]], stamp, ip);
        // Compared without an early exit, so timing tells nothing of the expected hash.
        let diff = hash.iter().zip(&server[8..]).fold(0u8, |d, (a, b)| d | (a ^ b));
        fresh && diff == 0
    }

    /// SipHash-2-4(client cookie | version | reserved | timestamp | client IP), keyed
    /// with the secret (RFC 9018 §4.4), as the reference implementation writes it
    /// (little-endian).
    fn hash(&self, client: &[u8; CLIENT_LEN], head: &[u8; 4], stamp: u32, ip: Option<IpAddr>) -> [u8; 8] {
        let mut h = siphasher::sip::SipHasher24::new_with_key(&self.0);
        use std::hash::Hasher;
        h.write(client);
        h.write(head);
        h.write(&stamp.to_be_bytes());
        match ip.map(|ip| ip.to_canonical()) {
            Some(IpAddr::V4(a)) => h.write(&a.octets()),
            Some(IpAddr::V6(a)) => h.write(&a.octets()),
            None => {}
        }
        h.finish().to_le_bytes()
    }
}

/// The clock as a cookie timestamp: seconds since the epoch, mod 2³² (RFC 9018 §4.2).
pub(crate) fn now() -> u32 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
    }

    fn secret() -> Secret {
        Secret::new(hex("e5e973e5a6b2a43f48e7dc849e37bfcf").try_into().expect("16 bytes"))
    }

    /// The construction matches RFC 9018 Appendix A byte for byte, and what it makes
    /// verifies within its lifetime only, for that client only.
    #[test]
    fn cookies_match_rfc9018_vectors() {
        let cases = [
            ("2464c4abcf10c957", "198.51.100.100", 1_559_731_985, "010000005cf79f111f8130c3eee29480"),
            ("2464c4abcf10c957", "198.51.100.100", 1_559_734_385, "010000005cf7a871d4a564a1442aca77"),
            ("fc93fc62807ddb86", "203.0.113.203", 1_559_734_700, "010000005cf7a9acf73a7810aca2381e"),
        ];
        for (client, ip, at, want) in cases {
            let client: [u8; 8] = hex(client).try_into().expect("8 bytes");
            let ip: IpAddr = ip.parse().expect("ip");
            let got = secret().server_cookie(&client, Some(ip), at);
            assert_eq!(got.to_vec(), hex(want), "{ip} at {at}");
            assert!(secret().verify(&client, &got, Some(ip), at + 3599), "valid for an hour");
            assert!(secret().verify(&client, &got, Some(ip), at - 299), "up to five minutes ahead");
            assert!(!secret().verify(&client, &got, Some(ip), at + 3601), "expired");
            assert!(!secret().verify(&client, &got, Some(ip), at - 301), "too far ahead");
            assert!(!secret().verify(&client, &got, Some("192.0.2.1".parse().expect("ip")), at), "other client");
            assert!(!Secret::new([7; 16]).verify(&client, &got, Some(ip), at), "other secret");
            assert!(!secret().verify(&client, &got[..8], Some(ip), at), "other length");
        }
        // An IPv4-mapped IPv6 source (a dual-stack socket) is its IPv4 address.
        let client = [1u8; 8];
        let mapped: IpAddr = "::ffff:198.51.100.100".parse().expect("ip");
        let v4: IpAddr = "198.51.100.100".parse().expect("ip");
        assert_eq!(secret().server_cookie(&client, Some(mapped), 5), secret().server_cookie(&client, Some(v4), 5));
        assert_eq!(format!("{:?}", secret()), "Secret(..)", "never shown");
    }
}
