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
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// How ballots become a verdict.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Quorum {
    Any,
    /// More than half of the ballots say up.
    #[default]
    Majority,
    /// More than this share of the ballots say up; `0 <= F < 1`.
    Fraction(f64),
    /// A majority within each region, then a majority of regions.
    RegionsMajority,
}

/// Why a `quorum` value is not a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuorumParseError {
    #[error("unknown quorum {0:?} (use any, majority, fraction:F or regions-majority)")]
    Unknown(String),
    #[error("quorum {0:?}: the fraction must be a number from 0 up to (not including) 1, as in fraction:0.18")]
    Fraction(String),
}

impl FromStr for Quorum {
    type Err = QuorumParseError;

    fn from_str(s: &str) -> Result<Self, QuorumParseError> {
        match s.trim() {
            "any" => Ok(Quorum::Any),
            "majority" => Ok(Quorum::Majority),
            "regions-majority" => Ok(Quorum::RegionsMajority),
            other => {
                let f = other.strip_prefix("fraction:").ok_or_else(|| QuorumParseError::Unknown(other.to_owned()))?;
                match f.trim().parse::<f64>() {
                    Ok(f) if (0.0..1.0).contains(&f) => Ok(Quorum::Fraction(f)),
                    _ => Err(QuorumParseError::Fraction(other.to_owned())),
                }
            }
        }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Any => f.write_str("any"),
            Quorum::Majority => f.write_str("majority"),
            Quorum::Fraction(x) => write!(f, "fraction:{x}"),
            Quorum::RegionsMajority => f.write_str("regions-majority"),
        }
    }
}

impl Serialize for Quorum {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Quorum {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

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
