//! Where a client is: the configured network table first, then a MaxMind DB (GeoIP2 or
//! GeoLite2, City or Country), with the prefix length the answer depends on (the EDNS
//! Client Subnet scope, RFC 7871 §7.2.1).
//!
//! Pure and shared: DNS answers and (later) the proxy locate clients with the same
//! [`Geo`]. No locks on the lookup path: the decoded locations are cached per thread,
//! keyed by the database's record offset (many networks share one record).

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use ipnet::IpNet;
use meridian_config::{Config, Location};

/// Decoded records kept per thread. A GeoLite2 City database has ~100k distinct records;
/// resolvers' clients cluster in far fewer, and a full cache is simply cleared.
const CACHE_ENTRIES: usize = 16_384;
/// Mean Earth radius, km.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// A point on the unit sphere, precomputed from latitude and longitude so that ordering
/// by distance is a dot product (no trigonometry per query).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub lat: f64,
    pub lon: f64,
    v: [f64; 3],
}

impl Point {
    pub fn new(lat: f64, lon: f64) -> Self {
        let (la, lo) = (lat.to_radians(), lon.to_radians());
        Self { lat, lon, v: [la.cos() * lo.cos(), la.cos() * lo.sin(), la.sin()] }
    }

    /// Cosine of the central angle: larger is nearer (1 = same place).
    pub fn closeness(&self, other: &Point) -> f64 {
        self.v[0] * other.v[0] + self.v[1] * other.v[1] + self.v[2] * other.v[2]
    }

    /// Great-circle distance in kilometres.
    pub fn distance_km(&self, other: &Point) -> f64 {
        self.closeness(other).clamp(-1.0, 1.0).acos() * EARTH_RADIUS_KM
    }
}

impl From<Location> for Point {
    fn from(l: Location) -> Self {
        Point::new(l.lat, l.lon)
    }
}

/// What is known about where a client is.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    pub point: Option<Point>,
    /// From the network table: clusters of this region come first.
    pub region: Option<Arc<str>>,
}

/// The result of locating an address.
#[derive(Debug, Clone, PartialEq)]
pub struct Located {
    /// `None`: the client cannot be located (geo answers fall back).
    pub place: Option<Place>,
    /// How many leading bits of the address this result depends on: the ECS scope.
    pub scope: u8,
}

/// Why the GeoIP database is or is not in use, for logs and `meridian status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbStatus {
    /// `ranking.geoip_db` is empty.
    NotConfigured,
    /// None of the candidate paths exists.
    Missing {
        tried: Vec<PathBuf>,
    },
    Loaded {
        path: PathBuf,
        kind: String,
        build_epoch: u64,
    },
    Failed {
        path: PathBuf,
        reason: String,
    },
}

impl DbStatus {
    pub fn is_loaded(&self) -> bool {
        matches!(self, DbStatus::Loaded { .. })
    }
}

impl std::fmt::Display for DbStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DbStatus::NotConfigured => write!(f, "no GeoIP database configured"),
            DbStatus::Missing { tried } => {
                let t: Vec<_> = tried.iter().map(|p| p.display().to_string()).collect();
                write!(f, "GeoIP database not found (tried: {})", t.join(", "))
            }
            DbStatus::Loaded { path, kind, .. } => write!(f, "GeoIP database {} ({kind})", path.display()),
            DbStatus::Failed { path, reason } => write!(f, "GeoIP database {} unusable: {reason}", path.display()),
        }
    }
}

#[derive(Debug)]
struct Network {
    net: IpNet,
    place: Option<Place>,
    /// Another entry lies inside this one: answers from this entry depend on every bit
    /// the client sent, not just this prefix.
    has_nested: bool,
}

/// Client location service: network table + optional MaxMind DB.
#[derive(Debug)]
pub struct Geo {
    /// Most specific first.
    networks: Vec<Network>,
    db: Option<maxminddb::Reader<Vec<u8>>>,
    status: DbStatus,
    /// Distinguishes databases in the per-thread cache across reloads.
    id: u64,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static CACHE: RefCell<HashMap<(u64, usize), Option<Point>>> = RefCell::new(HashMap::new());
}

/// Rough centroids of continents (MaxMind continent codes), for records without
/// coordinates (Country databases, some anycast ranges).
const CONTINENTS: [(&str, f64, f64); 7] = [
    ("AF", 2.0, 21.0),
    ("AN", -80.0, 0.0),
    ("AS", 30.0, 90.0),
    ("EU", 50.0, 10.0),
    ("NA", 40.0, -95.0),
    ("OC", -25.0, 135.0),
    ("SA", -15.0, -60.0),
];

impl Geo {
    /// No database, no networks: nobody is located.
    pub fn empty() -> Self {
        Self { networks: Vec::new(), db: None, status: DbStatus::NotConfigured, id: 0 }
    }

    /// Builds from `[ranking]`: opens the first existing `geoip_db` candidate. Never
    /// fails: a missing or unreadable database is reported by [`Geo::status`] and only the
    /// network table locates clients.
    pub fn from_config(config: &Config) -> Self {
        let r = &config.ranking;
        let (db, status) = if r.geoip_db.is_empty() {
            (None, DbStatus::NotConfigured)
        } else {
            match r.geoip_path(config) {
                None => (None, DbStatus::Missing { tried: r.geoip_candidates(config) }),
                Some(path) => match maxminddb::Reader::open_readfile(&path) {
                    Ok(reader) => {
                        let kind = reader.metadata().database_type.clone();
                        let build_epoch = reader.metadata().build_epoch;
                        (Some(reader), DbStatus::Loaded { path, kind, build_epoch })
                    }
                    Err(e) => (None, DbStatus::Failed { path, reason: e.to_string() }),
                },
            }
        };
        let entries = r.networks.iter().filter_map(|n| {
            let net = parse_net(&n.cidr)?;
            let place = (n.location.is_some() || n.region.is_some())
                .then(|| Place { point: n.location.map(Point::from), region: n.region.as_deref().map(Arc::from) });
            Some((net, place))
        });
        Self::build(entries.collect(), db, status)
    }

    /// A Geo from a network table alone, or with an already opened database (tests).
    pub fn with_networks(networks: Vec<(IpNet, Option<Place>)>, db: Option<maxminddb::Reader<Vec<u8>>>) -> Self {
        let status = if db.is_some() {
            DbStatus::Loaded { path: PathBuf::new(), kind: String::new(), build_epoch: 0 }
        } else {
            DbStatus::NotConfigured
        };
        Self::build(networks, db, status)
    }

    fn build(entries: Vec<(IpNet, Option<Place>)>, db: Option<maxminddb::Reader<Vec<u8>>>, status: DbStatus) -> Self {
        let mut networks: Vec<Network> = entries
            .iter()
            .map(|(net, place)| Network {
                net: *net,
                place: place.clone(),
                has_nested: entries.iter().any(|(o, _)| o != net && net.contains(o)),
            })
            .collect();
        networks.sort_by_key(|n| std::cmp::Reverse(n.net.prefix_len()));
        Self { networks, db, status, id: NEXT_ID.fetch_add(1, Ordering::Relaxed) }
    }

    pub fn status(&self) -> &DbStatus {
        &self.status
    }

    /// Whether `addr` falls in the `[[ranking.networks]]` table (which is looked at
    /// before the database), for explanations of where a client was placed.
    pub fn in_networks(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        self.networks.iter().any(|n| n.net.contains(&addr))
    }

    /// Locates `addr`, of which the first `source_prefix` bits are meaningful (ECS SOURCE
    /// PREFIX-LENGTH; the full length for a source address). The scope never exceeds it.
    pub fn locate(&self, addr: IpAddr, source_prefix: u8) -> Located {
        let addr = canonical(addr);
        let full = if addr.is_ipv4() { 32 } else { 128 };
        let source_prefix = source_prefix.min(full);
        if let Some(n) = self.networks.iter().find(|n| n.net.contains(&addr)) {
            let scope = if n.has_nested { source_prefix } else { n.net.prefix_len().min(source_prefix) };
            return Located { place: n.place.clone(), scope };
        }
        let Some(db) = &self.db else {
            return Located { place: None, scope: 0 };
        };
        let Ok(found) = db.lookup(addr) else {
            return Located { place: None, scope: 0 };
        };
        let prefix = found.network().map_or(source_prefix, |n| n.prefix());
        // A table entry inside the database's network makes the answer depend on more bits.
        let nested = self.networks.iter().any(|n| {
            n.net.prefix_len() > prefix && IpNet::new(addr, prefix).is_ok_and(|db_net| db_net.trunc().contains(&n.net))
        });
        let scope = if nested { source_prefix } else { prefix.min(source_prefix) };
        let point = match found.offset() {
            None => None,
            Some(offset) => CACHE.with(|c| {
                let key = (self.id, offset);
                if let Some(p) = c.borrow().get(&key) {
                    return *p;
                }
                let p = decode_point(&found);
                let mut c = c.borrow_mut();
                if c.len() >= CACHE_ENTRIES {
                    c.clear();
                }
                c.insert(key, p);
                p
            }),
        };
        Located { place: point.map(|p| Place { point: Some(p), region: None }), scope }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are looked up as IPv4.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    }
}

fn decode_point(found: &maxminddb::LookupResult<'_, Vec<u8>>) -> Option<Point> {
    let lat: Option<f64> = found.decode_path(&maxminddb::path!["location", "latitude"]).ok().flatten();
    let lon: Option<f64> = found.decode_path(&maxminddb::path!["location", "longitude"]).ok().flatten();
    if let (Some(lat), Some(lon)) = (lat, lon)
        && lat.is_finite()
        && lon.is_finite()
    {
        return Some(Point::new(lat, lon));
    }
    let continent: Option<String> = found.decode_path(&maxminddb::path!["continent", "code"]).ok().flatten();
    let continent = continent?;
    CONTINENTS.iter().find(|(c, _, _)| *c == continent).map(|(_, lat, lon)| Point::new(*lat, *lon))
}

/// `10.0.0.0/8`, `fd00::/8` or a bare address (a host route).
pub fn parse_net(s: &str) -> Option<IpNet> {
    if let Ok(ip) = s.trim().parse::<IpAddr>() {
        return Some(IpNet::from(canonical(ip)));
    }
    s.trim().parse::<IpNet>().ok().map(|n| n.trunc())
}

#[cfg(test)]
#[path = "geo/tests.rs"]
mod tests;
