//! Response-rate limiting (RRL) for UDP, as BIND, Knot and NSD do it: an answer can be
//! many times the size of its query, so a forged source address turns an open
//! authoritative server into an amplifier. Responses are counted per client network
//! (`/24` IPv4, `/56` IPv6 by default) and response class; over the rate, most are
//! dropped and every `slip`-th is sent truncated (TC=1, no records), so a real client
//! behind the prefix retries over TCP, which cannot be forged.
//!
//! Classes, as the reference servers define them: a positive answer counts against its
//! name and type; NXDOMAIN and NODATA against the zone (a random-subdomain flood shares
//! one bucket); errors against their RCODE.
//!
//! The table is a fixed array of atomic buckets indexed by a hash of (network, class):
//! no lock and no allocation on the answer path. Each bucket packs the second it counts
//! and the responses in it; two keys that share a bucket share a limit, which can only
//! make the limit stricter.

use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use ipnet::IpNet;
use meridian_config::dns::RrlConfig;

use crate::answer::Outcome;
use crate::wire::{self, rcode};

/// Buckets in the table: 512 KiB of counters, enough that distinct busy clients rarely
/// share one.
const BUCKETS: usize = 1 << 16;

/// What to do with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    Send,
    /// Send it truncated: header and question, TC=1.
    Slip,
    Drop,
}

pub(crate) struct Rrl {
    buckets: Box<[AtomicU64]>,
    rate: u32,
    slip: u32,
    v4_prefix: u8,
    v6_prefix: u8,
    exempt: Vec<IpNet>,
    epoch: Instant,
    hasher: foldhash::fast::FixedState,
    counters: Arc<Counters>,
    settings: RrlConfig,
}

/// Responses dropped and slipped, kept across reloads (which build a new table).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) dropped: AtomicU64,
    pub(crate) slipped: AtomicU64,
}

/// Whether to send the response in `out` under the limiter in force (none: always); a
/// slipped response is truncated in place.
pub(crate) fn allows(rrl: &Option<Arc<Rrl>>, client: IpAddr, outcome: &Outcome, out: &mut Vec<u8>) -> bool {
    match rrl {
        None => true,
        // A valid server cookie proves the source address (RFC 7873 §5.2.4).
        Some(_) if outcome.valid_cookie => true,
        Some(r) => r.limit(client, outcome.rcode, outcome.zone.as_deref(), out),
    }
}

impl Rrl {
    pub(crate) fn settings(&self) -> &RrlConfig {
        &self.settings
    }

    /// The limiter `cfg` asks for, or `None` when RRL is off.
    pub(crate) fn new(cfg: &RrlConfig, counters: Arc<Counters>) -> Option<Rrl> {
        if !cfg.enabled {
            return None;
        }
        Some(Rrl {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            rate: cfg.responses_per_second.max(1),
            slip: cfg.slip,
            v4_prefix: cfg.ipv4_prefix.min(32),
            v6_prefix: cfg.ipv6_prefix.min(128),
            exempt: cfg
                .exempt
                .iter()
                .filter_map(|n| n.parse::<IpNet>().ok().or_else(|| n.parse::<IpAddr>().ok().map(IpNet::from)))
                .collect(),
            epoch: Instant::now(),
            hasher: foldhash::fast::FixedState::with_seed(rand::random()),
            counters,
            settings: cfg.clone(),
        })
    }

    /// Counts the response in `out` (to `client`, with `rc` in zone `zone`) and decides;
    /// a slipped response is truncated in place.
    pub(crate) fn limit(&self, client: IpAddr, rc: u16, zone: Option<&str>, out: &mut Vec<u8>) -> bool {
        match self.verdict(client, rc, zone, out) {
            Verdict::Send => true,
            Verdict::Slip => {
                self.counters.slipped.fetch_add(1, Ordering::Relaxed);
                wire::truncate_to_question(out);
                true
            }
            Verdict::Drop => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    fn verdict(&self, client: IpAddr, rc: u16, zone: Option<&str>, out: &[u8]) -> Verdict {
        if self.exempt.iter().any(|n| n.contains(&client)) {
            return Verdict::Send;
        }
        let mut h = self.hasher.build_hasher();
        let client = client.to_canonical();
        let prefix = if client.is_ipv4() { self.v4_prefix } else { self.v6_prefix };
        match IpNet::new(client, prefix).map(|n| n.trunc().addr()) {
            Ok(IpAddr::V4(a)) => h.write(&a.octets()),
            Ok(IpAddr::V6(a)) => h.write(&a.octets()),
            Err(_) => {}
        }
        let empty = rc == rcode::NOERROR && wire::answer_count(out) == 0;
        match rc {
            rcode::NOERROR if !empty => {
                h.write_u8(0);
                h.write(wire::question(out).unwrap_or_default());
            }
            rcode::NOERROR | rcode::NXDOMAIN => {
                h.write_u8(1);
                h.write(zone.unwrap_or_default().as_bytes());
            }
            other => {
                h.write_u8(2);
                h.write_u16(other);
            }
        }
        let slot = (h.finish() as usize) % BUCKETS;
        let Some(bucket) = self.buckets.get(slot) else { return Verdict::Send };
        let count = self.count(bucket);
        if count <= self.rate {
            return Verdict::Send;
        }
        let over = count - self.rate;
        if self.slip > 0 && over.is_multiple_of(self.slip) { Verdict::Slip } else { Verdict::Drop }
    }

    /// Adds one response to the bucket's current second; returns the count so far.
    fn count(&self, bucket: &AtomicU64) -> u32 {
        let now = self.epoch.elapsed().as_secs() as u32;
        let mut cur = bucket.load(Ordering::Relaxed);
        loop {
            let (second, n) = ((cur >> 32) as u32, cur as u32);
            let n = if second == now { n.saturating_add(1) } else { 1 };
            let next = (u64::from(now) << 32) | u64::from(n);
            match bucket.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return n,
                Err(seen) => cur = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rrl(rate: u32, slip: u32) -> Rrl {
        let cfg = RrlConfig { enabled: true, responses_per_second: rate, slip, ..RrlConfig::default() };
        Rrl::new(&cfg, Arc::default()).expect("enabled")
    }

    /// A response with a question `www.example.` A and `answers` records.
    fn response(answers: u16) -> Vec<u8> {
        let mut out = vec![0, 1, 0x84, 0, 0, 1, 0, answers as u8, 0, 0, 0, 0];
        out.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        out
    }

    /// Over the rate, every `slip`-th response slips and the rest are dropped; another
    /// network, or an exempt one, is not affected.
    #[test]
    fn over_the_rate_responses_slip_or_drop() {
        let r = rrl(5, 2);
        let client: IpAddr = "192.0.2.10".parse().expect("ip");
        let verdicts: Vec<Verdict> = (0..11).map(|_| r.verdict(client, 0, Some("example"), &response(1))).collect();
        assert!(verdicts[..5].iter().all(|v| *v == Verdict::Send), "{verdicts:?}");
        assert_eq!(
            &verdicts[5..],
            [Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip, Verdict::Drop, Verdict::Slip]
        );
        let neighbour: IpAddr = "192.0.2.99".parse().expect("ip");
        assert_eq!(r.verdict(neighbour, 0, Some("example"), &response(1)), Verdict::Drop, "same /24, same bucket");
        let other: IpAddr = "198.51.100.1".parse().expect("ip");
        assert_eq!(r.verdict(other, 0, Some("example"), &response(1)), Verdict::Send);
    }

    #[test]
    fn exempt_networks_are_never_limited() {
        let cfg = RrlConfig {
            enabled: true,
            responses_per_second: 1,
            exempt: vec!["192.0.2.0/24".into()],
            ..RrlConfig::default()
        };
        let r = Rrl::new(&cfg, Arc::default()).expect("enabled");
        let client: IpAddr = "192.0.2.10".parse().expect("ip");
        assert!((0..10).all(|_| r.verdict(client, 0, None, &response(1)) == Verdict::Send));
    }

    /// NXDOMAIN for different names counts against the zone: a random-subdomain flood
    /// is limited as one class.
    #[test]
    fn negative_answers_share_their_zones_bucket() {
        let r = rrl(3, 0);
        let client: IpAddr = "2001:db8::1".parse().expect("ip");
        let mut verdicts = Vec::new();
        for i in 0..6u8 {
            let mut out = response(0);
            out[13] = b'a' + i;
            verdicts.push(r.verdict(client, rcode::NXDOMAIN, Some("example"), &out));
        }
        assert_eq!(verdicts.iter().filter(|v| **v == Verdict::Send).count(), 3, "{verdicts:?}");
    }

    /// An EDNS query's slipped answer keeps its OPT record.
    #[test]
    fn a_slipped_response_keeps_its_opt() {
        let mut out = response(1);
        out[11] = 1;
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
        let opt = [0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0];
        out.extend_from_slice(&opt);
        wire::truncate_to_question(&mut out);
        assert_eq!(&out[12 + 17..], opt, "the OPT follows the question");
        assert_eq!(&out[6..12], [0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn a_slipped_response_keeps_only_its_question() {
        let r = rrl(1, 1);
        let client: IpAddr = "192.0.2.1".parse().expect("ip");
        let mut out = response(1);
        out.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
        assert!(r.limit(client, 0, None, &mut out.clone()));
        assert!(r.limit(client, 0, None, &mut out));
        assert_eq!(out.len(), 12 + 17, "header and question");
        assert_eq!(out[2] & 0x02, 0x02, "TC set");
        assert_eq!(&out[6..12], [0; 6], "no records");
    }
}
