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
//! ```
//!
//! The shared key itself never appears in the file: `key_file` names a file holding it,
//! `key` names an environment variable (`"$NAME"`). `Debug` and `Serialize` print only
//! those references, and redact anything else written in `key`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use crate::duration;
use crate::quorum::Quorum;

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

/// Where this instance is, for `meridian status` and geo-aware consumers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
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
    #[serde(default = "default_stale_after", with = "duration")]
    pub stale_after: Duration,
    #[serde(default = "default_gossip_interval", with = "duration")]
    pub gossip_interval: Duration,
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
            .finish()
    }
}

/// One problem in `[fleet]`; [`ConfigError::field`] names the setting.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
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
}

impl ConfigError {
    /// The field path, as the config crate reports it (`fleet.seeds[2]`).
    pub fn field(&self) -> String {
        let name = match self {
            ConfigError::BadId(_) => "id",
            ConfigError::BadRegion(_) => "region",
            ConfigError::Latitude(_) => "location.lat",
            ConfigError::Longitude(_) => "location.lon",
            ConfigError::Unreachable(_) => "advertise",
            ConfigError::BadSeed { index, .. } => return format!("fleet.seeds[{index}]"),
            ConfigError::NoKey | ConfigError::InlineKey => "key",
            ConfigError::BothKeys => "key_file",
            ConfigError::StaleTooShort { .. } => "stale_after",
            ConfigError::GossipInterval(_) => "gossip_interval",
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
        }
    }

    /// Every problem at once, so a file is fixed in one pass.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut out = Vec::new();
        if !valid_name(&self.id) {
            out.push(ConfigError::BadId(self.id.clone()));
        }
        if !valid_name(&self.region) {
            out.push(ConfigError::BadRegion(self.region.clone()));
        }
        self.validate_location(&mut out);
        self.validate_addresses(&mut out);
        self.validate_key(&mut out);
        self.validate_timing(&mut out);
        if out.is_empty() { Ok(()) } else { Err(out) }
    }

    /// The address peers gossip to: `advertise`, else `listen`.
    pub fn advertised(&self) -> SocketAddr {
        self.advertise.unwrap_or(self.listen)
    }

    fn validate_location(&self, out: &mut Vec<ConfigError>) {
        let Some(loc) = self.location else { return };
        if !(-90.0..=90.0).contains(&loc.lat) {
            out.push(ConfigError::Latitude(loc.lat));
        }
        if !(-180.0..=180.0).contains(&loc.lon) {
            out.push(ConfigError::Longitude(loc.lon));
        }
    }

    fn validate_addresses(&self, out: &mut Vec<ConfigError>) {
        let adv = self.advertised();
        // Port 0 is allowed: `Fleet::start` advertises the port it was given.
        if adv.ip().is_unspecified() || adv.ip().is_multicast() {
            out.push(ConfigError::Unreachable(adv));
        }
        for (index, seed) in self.seeds.iter().enumerate() {
            if !valid_seed(seed) {
                out.push(ConfigError::BadSeed { index, value: seed.clone() });
            }
        }
    }

    fn validate_key(&self, out: &mut Vec<ConfigError>) {
        match (&self.key, &self.key_file) {
            (None, None) => out.push(ConfigError::NoKey),
            (Some(_), Some(_)) => out.push(ConfigError::BothKeys),
            (Some(k), None) if !is_env_reference(k) => out.push(ConfigError::InlineKey),
            _ => {}
        }
    }

    fn validate_timing(&self, out: &mut Vec<ConfigError>) {
        let (lo, hi) = GOSSIP_INTERVAL_RANGE;
        if self.gossip_interval < lo || self.gossip_interval > hi {
            out.push(ConfigError::GossipInterval(self.gossip_interval));
        }
        let min = self.gossip_interval * MIN_ROUNDS_BEFORE_STALE;
        if self.stale_after < min {
            out.push(ConfigError::StaleTooShort { stale_after: self.stale_after, min });
        }
    }
}

/// `$NAME` with a POSIX-style variable name.
pub(crate) fn is_env_reference(key: &str) -> bool {
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

#[cfg(test)]
#[path = "config/tests.rs"]
mod tests;
