//! What the fleet shows: a verdict with each instance's sighting, the instances, and the
//! whole status for `/api/v1/fleet`. All of it serializes to JSON.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Serialize, Serializer};

use crate::config::Location;
use crate::obs::Obs;
use crate::quorum::{Health, Quorum};
use crate::stats::TransportStats;

/// The fleet's verdict on one address, and the work behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    pub addr: SocketAddr,
    pub health: Health,
    /// `health == Up`. An Unknown address (nobody live observed it) is not healthy by
    /// this flag; treat it as not probed, as the table does `ProbeState::Unknown`.
    pub healthy: bool,
    pub quorum: Quorum,
    /// Counted ballots saying up and down.
    pub up: usize,
    pub down: usize,
    /// Every instance's observation, sorted by instance id; stale ones with
    /// `counted: false`.
    pub seen_by: Vec<Sighting>,
}

impl Verdict {
    pub(crate) fn new(addr: SocketAddr, health: Health, quorum: Quorum, seen_by: Vec<Sighting>) -> Self {
        let up = seen_by.iter().filter(|s| s.counted && s.up).count();
        let down = seen_by.iter().filter(|s| s.counted && !s.up).count();
        Self { addr, health, healthy: health == Health::Up, quorum, up, down, seen_by }
    }

    /// The sighting of instance `id`, if it observed the address.
    pub fn by(&self, id: &str) -> Option<&Sighting> {
        self.seen_by.iter().find(|s| s.instance == id)
    }
}

/// One instance's observation of an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    pub instance: String,
    pub region: String,
    pub up: bool,
    pub rtt_us: Option<u64>,
    /// Unix seconds when the instance published the observation.
    pub observed_at: u64,
    /// Whether the ballot counts: false when its instance is stale.
    pub counted: bool,
}

impl Sighting {
    pub(crate) fn new(instance: &str, region: &str, o: &Obs, counted: bool) -> Self {
        Self {
            instance: instance.to_owned(),
            region: region.to_owned(),
            up: o.up,
            rtt_us: o.rtt_us.map(u64::from),
            observed_at: o.at.into(),
            counted,
        }
    }
}

/// An instance of the fleet, as this one sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InstanceStatus {
    pub id: String,
    pub region: String,
    pub location: Option<Location>,
    pub gossip_addr: SocketAddr,
    /// Start time in Unix milliseconds: a restart is a new generation.
    pub generation: u64,
    /// Its ballots count: heartbeat advanced within `stale_after`, region known.
    pub alive: bool,
    /// Every observation it announced has arrived here.
    pub synced: bool,
    pub this_instance: bool,
    /// When its heartbeat last advanced here (Unix milliseconds in JSON).
    #[serde(serialize_with = "unix_ms")]
    pub last_seen: Option<SystemTime>,
    /// Addresses it publishes observations of.
    pub observations: usize,
}

/// Most disagreeing addresses listed in [`FleetStatus`]; the count is exact.
pub const MAX_LISTED_DISAGREEMENTS: usize = 100;

/// `/api/v1/fleet`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetStatus {
    pub id: String,
    pub region: String,
    pub quorum: Quorum,
    pub stale_after_ms: u64,
    pub gossip_addr: SocketAddr,
    pub instances: Vec<InstanceStatus>,
    /// Addresses whose verdict is Up, and Down.
    pub up: usize,
    pub down: usize,
    /// Addresses this instance observes.
    pub observed_here: usize,
    /// Addresses whose verdict differs from this instance's own observation: the
    /// fleet overruled it (a path problem here, or elsewhere).
    pub disagreements: usize,
    pub disagreeing: Vec<SocketAddr>,
    pub transport: TransportStats,
}

/// Verdicts that changed in one step, for incremental consumers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerdictChange {
    /// The value [`crate::Fleet::subscribe`] reaches with this change.
    pub version: u64,
    /// Address and new health, sorted by address.
    pub changes: Vec<(SocketAddr, Health)>,
}

fn unix_ms<S: Serializer>(t: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
    match t.and_then(|t| t.duration_since(UNIX_EPOCH).ok()) {
        Some(d) => s.serialize_some(&u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        None => s.serialize_none(),
    }
}
