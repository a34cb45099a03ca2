//! `[fleet]`: this instance's place in a fleet of Meridian instances.
//!
//! ```toml
//! [fleet]
//! id = "ns1-fra"                         # unique in the fleet
//! region = "eu-central"                  # for quorum = "regions-majority"
//! location = { lat = 50.11, lon = 8.68 }
//! listen = "0.0.0.0:7946"                # gossip, UDP
//! advertise = "192.0.2.10:7946"          # what peers dial; default: listen
//! seeds = ["192.0.2.11:7946", "ns3.example.net:7946"]
//! key_file = "/etc/meridian/fleet.key"   # or key = "$MERIDIAN_FLEET_KEY"
//! key_id = 1
//! quorum = "majority"                    # any | majority | fraction:0.18 | regions-majority
//! stale_after = "5s"
//! gossip_interval = "500ms"
//! socket_buffer_bytes = 212992           # SO_RCVBUF/SO_SNDBUF of the gossip socket
//! ```
//!
//! The shared key itself never appears in the file: `key_file` names a file holding it,
//! `key` names an environment variable (`"$NAME"`). `Debug` and `Serialize` print only
//! those references, and redact anything else written in `key`.
//!
//! The `meridian-fleet` crate runs the fleet from this section; the quorum rules
//! themselves ([`Quorum`]) are spelled here, since the file names them, and applied
//! there.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub use crate::Location;

/// Default time after which a peer whose heartbeat has not advanced stops counting.
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(5);
/// Default gossip round: with chitchat's fan-out of three, a change reaches a fleet of
/// ten in about two rounds, so one second end to end.
pub const DEFAULT_GOSSIP_INTERVAL: Duration = Duration::from_millis(500);
/// A peer's heartbeat advances once per gossip round at best; less than this many rounds
/// would call a peer stale over one lost datagram.
pub const MIN_ROUNDS_BEFORE_STALE: u32 = 3;
/// Faster rounds only spend CPU and bandwidth; slower ones make verdicts lag the probes
/// by more than a DNS TTL.
pub const GOSSIP_INTERVAL_RANGE: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(60));
/// Longest `id` or `region`: they travel in every digest and label every metric.
pub const MAX_NAME_LEN: usize = 63;
/// Default `SO_RCVBUF` and `SO_SNDBUF` of the gossip socket: Linux's usual default
/// (which the kernel doubles, to 416 KiB), set explicitly so every instance has the same
/// whatever its distribution's. chitchat's catch-up deltas fill whole 64 KiB datagrams
/// and the kernel charges one about 70 KiB, so this holds about six. Larger is not
/// better by default: five instances on two cores with 4 MiB queued replies computed
/// from stale digests, which resent state and sent 390 KB/s per instance where 208 KiB
/// sent 34 KB/s, and deaths were no longer seen within 15 s (`bench/RESULTS.md`, fleet).
/// Raise it where drops (`RcvbufErrors`) show and CPU is not short. The kernel caps it
/// at `net.core.rmem_max`/`wmem_max`.
pub const DEFAULT_SOCKET_BUFFER_BYTES: usize = 212_992;
/// `socket_buffer_bytes` bounds: below one datagram nothing large could arrive; above
/// this is a typo (the kernel would cap it anyway).
pub const SOCKET_BUFFER_RANGE: (usize, usize) = (64 << 10, 256 << 20);

/// How the instances' ballots on an address become the fleet's verdict (applied by
/// `meridian_fleet::decide`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Quorum {
    /// One counted ballot saying up is enough.
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

/// The `[fleet]` section.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// This instance's name in the fleet; peers list it in their verdicts.
    pub id: String,
    /// Groups instances for `regions-majority`.
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// UDP address the gossip socket binds. Port 0 picks a free port (tests).
    pub listen: SocketAddr,
    /// Address peers reach this instance at, when `listen` is a wildcard or NATed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<SocketAddr>,
    /// Peers to contact first (`ip:port` or `host:port`, resolved again every minute).
    #[serde(default)]
    pub seeds: Vec<String>,
    /// `"$NAME"`: the shared key is in that environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none", serialize_with = "redacted_key")]
    pub key: Option<String>,
    /// A file holding the shared key (surrounding whitespace is ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<PathBuf>,
    /// Sent with every datagram: a receiver drops datagrams of another key id before
    /// checking anything else, so a rotation shows up as `unknown_key`, not `bad_mac`.
    #[serde(default = "default_key_id")]
    pub key_id: u8,
    #[serde(default)]
    pub quorum: Quorum,
    /// A peer whose heartbeat has not advanced for this long is left out of verdicts.
    #[serde(default = "default_stale_after", with = "std_duration")]
    pub stale_after: Duration,
    #[serde(default = "default_gossip_interval", with = "std_duration")]
    pub gossip_interval: Duration,
    /// `SO_RCVBUF` and `SO_SNDBUF` asked for on the gossip socket, in bytes; the kernel
    /// may grant less (`net.core.rmem_max`), which the fleet logs and reports.
    #[serde(default = "default_socket_buffer_bytes")]
    pub socket_buffer_bytes: usize,
}

fn default_key_id() -> u8 {
    1
}

fn default_stale_after() -> Duration {
    DEFAULT_STALE_AFTER
}

fn default_gossip_interval() -> Duration {
    DEFAULT_GOSSIP_INTERVAL
}

fn default_socket_buffer_bytes() -> usize {
    DEFAULT_SOCKET_BUFFER_BYTES
}

/// What `Debug` and `Serialize` show for `key`: an environment reference as written,
/// anything else (an inline secret, which validation rejects) as `<redacted>`.
fn key_for_display(key: &str) -> &str {
    if is_env_reference(key) { key } else { "<redacted>" }
}

fn redacted_key<S: Serializer>(key: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match key {
        Some(k) => s.serialize_some(key_for_display(k)),
        None => s.serialize_none(),
    }
}

impl fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetConfig")
            .field("id", &self.id)
            .field("region", &self.region)
            .field("location", &self.location)
            .field("listen", &self.listen)
            .field("advertise", &self.advertise)
            .field("seeds", &self.seeds)
            .field("key", &self.key.as_deref().map(key_for_display))
            .field("key_file", &self.key_file)
            .field("key_id", &self.key_id)
            .field("quorum", &self.quorum)
            .field("stale_after", &self.stale_after)
            .field("gossip_interval", &self.gossip_interval)
            .field("socket_buffer_bytes", &self.socket_buffer_bytes)
            .finish()
    }
}

/// One problem in `[fleet]`; [`FleetConfigError::field`] names the setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FleetConfigError {
    #[error("id {0:?} must be 1 to 63 characters of letters, digits, '-', '_' and '.'")]
    BadId(String),
    #[error("region {0:?} must be 1 to 63 characters of letters, digits, '-', '_' and '.'")]
    BadRegion(String),
    #[error("latitude {0} is outside -90..90")]
    Latitude(f64),
    #[error("longitude {0} is outside -180..180")]
    Longitude(f64),
    #[error("advertise address {0} cannot be dialled by peers; set fleet.advertise to a reachable address")]
    Unreachable(SocketAddr),
    #[error("seed {value:?} (seeds[{index}]) is not host:port")]
    BadSeed { index: usize, value: String },
    #[error("no shared key: set key_file, or key = \"$ENV_VAR\"")]
    NoKey,
    #[error("both key and key_file are set; keep one")]
    BothKeys,
    #[error(
        "key must name an environment variable as \"$NAME\" (an inline key does not belong in the file; use key_file)"
    )]
    InlineKey,
    #[error("stale_after {stale_after:?} must be at least {MIN_ROUNDS_BEFORE_STALE} gossip intervals ({min:?})")]
    StaleTooShort { stale_after: Duration, min: Duration },
    #[error("gossip_interval {0:?} must be between 10ms and 60s")]
    GossipInterval(Duration),
    #[error("socket_buffer_bytes {0} must be between 65536 (64 KiB) and 268435456 (256 MiB)")]
    SocketBuffer(usize),
}

impl FleetConfigError {
    /// The field path, as the config crate reports it (`fleet.seeds[2]`).
    pub fn field(&self) -> String {
        let name = match self {
            FleetConfigError::BadId(_) => "id",
            FleetConfigError::BadRegion(_) => "region",
            FleetConfigError::Latitude(_) => "location.lat",
            FleetConfigError::Longitude(_) => "location.lon",
            FleetConfigError::Unreachable(_) => "advertise",
            FleetConfigError::BadSeed { index, .. } => return format!("fleet.seeds[{index}]"),
            FleetConfigError::NoKey | FleetConfigError::InlineKey => "key",
            FleetConfigError::BothKeys => "key_file",
            FleetConfigError::StaleTooShort { .. } => "stale_after",
            FleetConfigError::GossipInterval(_) => "gossip_interval",
            FleetConfigError::SocketBuffer(_) => "socket_buffer_bytes",
        };
        format!("fleet.{name}")
    }
}

impl FleetConfig {
    /// A configuration with the defaults for everything but the required fields and the
    /// key reference; struct update syntax fills in the rest.
    pub fn new(id: &str, region: &str, listen: SocketAddr) -> Self {
        Self {
            id: id.to_owned(),
            region: region.to_owned(),
            location: None,
            listen,
            advertise: None,
            seeds: Vec::new(),
            key: None,
            key_file: None,
            key_id: default_key_id(),
            quorum: Quorum::default(),
            stale_after: DEFAULT_STALE_AFTER,
            gossip_interval: DEFAULT_GOSSIP_INTERVAL,
            socket_buffer_bytes: DEFAULT_SOCKET_BUFFER_BYTES,
        }
    }

    /// Every problem at once, so a file is fixed in one pass.
    pub fn validate(&self) -> Result<(), Vec<FleetConfigError>> {
        let mut out = Vec::new();
        if !valid_name(&self.id) {
            out.push(FleetConfigError::BadId(self.id.clone()));
        }
        if !valid_name(&self.region) {
            out.push(FleetConfigError::BadRegion(self.region.clone()));
        }
        self.validate_location(&mut out);
        self.validate_addresses(&mut out);
        self.validate_key(&mut out);
        self.validate_timing(&mut out);
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    /// Every problem as (field path, message), the way [`crate::Config::validate`]
    /// reports them so `meridian check` shows their file and line.
    pub(crate) fn problems(&self) -> Vec<(String, String)> {
        self.validate().err().unwrap_or_default().into_iter().map(|e| (e.field(), e.to_string())).collect()
    }

    /// The address peers gossip to: `advertise`, else `listen`.
    pub fn advertised(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.listen)
    }

    fn validate_location(&self, out: &mut Vec<FleetConfigError>) {
        let Some(loc) = self.location else { return };
        if !(-90.0..=90.0).contains(&loc.lat) {
            out.push(FleetConfigError::Latitude(loc.lat));
        }
        if !(-180.0..=180.0).contains(&loc.lon) {
            out.push(FleetConfigError::Longitude(loc.lon));
        }
    }

    fn validate_addresses(&self, out: &mut Vec<FleetConfigError>) {
        let adv = self.advertised();
        // Port 0 is allowed: `Fleet::start` advertises the port it was given.
        if adv.ip().is_unspecified() || adv.ip().is_multicast() {
            out.push(FleetConfigError::Unreachable(adv));
        }
        for (index, seed) in self.seeds.iter().enumerate() {
            if !valid_seed(seed) {
                out.push(FleetConfigError::BadSeed { index, value: seed.clone() });
            }
        }
    }

    fn validate_key(&self, out: &mut Vec<FleetConfigError>) {
        match (&self.key, &self.key_file) {
            (None, None) => out.push(FleetConfigError::NoKey),
            (Some(_), Some(_)) => out.push(FleetConfigError::BothKeys),
            (Some(k), None) if !is_env_reference(k) => out.push(FleetConfigError::InlineKey),
            _ => {}
        }
    }

    fn validate_timing(&self, out: &mut Vec<FleetConfigError>) {
        let (lo, hi) = GOSSIP_INTERVAL_RANGE;
        if self.gossip_interval < lo || self.gossip_interval > hi {
            out.push(FleetConfigError::GossipInterval(self.gossip_interval));
        }
        let min = self.gossip_interval * MIN_ROUNDS_BEFORE_STALE;
        if self.stale_after < min {
            out.push(FleetConfigError::StaleTooShort { stale_after: self.stale_after, min });
        }
        let (lo, hi) = SOCKET_BUFFER_RANGE;
        if !(lo..=hi).contains(&self.socket_buffer_bytes) {
            out.push(FleetConfigError::SocketBuffer(self.socket_buffer_bytes));
        }
    }
}

/// `$NAME` with a POSIX-style variable name.
pub fn is_env_reference(key: &str) -> bool {
    let Some(name) = key.strip_prefix('$') else { return false };
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `ip:port`, `[v6]:port` or `host:port` with a port above zero.
fn valid_seed(s: &str) -> bool {
    if s.parse::<SocketAddr>().is_ok() {
        return true;
    }
    let Some((host, port)) = s.rsplit_once(':') else { return false };
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    port_ok && host_ok
}

/// `stale_after` and `gossip_interval` are `std::time::Duration`s (the fleet computes
/// with them), written in the file as every other duration is ([`crate::Duration`]).
mod std_duration {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        crate::Duration::from(*d).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        crate::Duration::deserialize(d).map(crate::Duration::as_std)
    }
}

#[cfg(test)]
mod tests;
