//! The quorum rules: from the ballots of the live instances that observed one address,
//! the fleet's verdict on it. Pure and order-independent, so every instance holding the
//! same ballots reaches the same verdict.
//!
//! | rule | healthy when | protects against |
//! |---|---|---|
//! | `any` | one live instance says up | a backend dropped by every instance over one site's broken path (favours availability) |
//! | `majority` | more than half say up | one site's view, either way; a tie is down |
//! | `fraction:F` | more than F of them say up (Route 53: 0.18) | a few sites' broken paths, while a backend seen down almost everywhere goes |
//! | `regions-majority` | a majority of regions, each by a majority of its instances | a region with many instances outvoting the rest (Cloudflare's rule) |
//!
//! With one ballot every rule gives that ballot, so a lone instance decides exactly as it
//! does without a fleet.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How ballots become a verdict; spelled in the `[fleet]` section, so it lives with it.
pub use meridian_config::fleet::{Quorum, QuorumParseError};

/// The fleet's verdict on one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Up,
    Down,
    /// No live instance has observed the address: treat it as not probed.
    Unknown,
}

/// One live instance's observation of an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ballot<'a> {
    pub instance: &'a str,
    pub region: &'a str,
    pub up: bool,
}

/// The verdict of `rule` over `ballots` (the live instances that observed the address,
/// stale ones already left out). Counts and a sorted map only: no dependence on order.
pub fn decide(rule: Quorum, ballots: &[Ballot<'_>]) -> Health {
    if ballots.is_empty() {
        return Health::Unknown;
    }
    let up = ballots.iter().filter(|b| b.up).count();
    let healthy = match rule {
        Quorum::Any => up > 0,
        Quorum::Majority => more_than_half(up, ballots.len()),
        // Compared as `up > F·n` rather than `up / n > F`: the same IEEE operations on
        // every instance, one rounding instead of two.
        Quorum::Fraction(f) => up as f64 > f * ballots.len() as f64,
        Quorum::RegionsMajority => regions_majority(ballots),
    };
    if healthy { Health::Up } else { Health::Down }
}

fn more_than_half(yes: usize, of: usize) -> bool {
    yes * 2 > of
}

fn regions_majority(ballots: &[Ballot<'_>]) -> bool {
    let mut regions: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for b in ballots {
        let (up, all) = regions.entry(b.region).or_default();
        *up += usize::from(b.up);
        *all += 1;
    }
    let up_regions = regions.values().filter(|(up, all)| more_than_half(*up, *all)).count();
    more_than_half(up_regions, regions.len())
}

#[cfg(test)]
#[path = "quorum/tests.rs"]
mod tests;
