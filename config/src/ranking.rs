//! `[ranking]`: how answers order (and pick) the healthy shards of a name: the default
//! policy, per-service policies, the GeoIP database and the network → location table.
//!
//! ```toml
//! [ranking]
//! default_policy = "roundrobin"   # roundrobin | weighted | failover | geo | latency
//! max_answers = 8                  # address records per answer, best first (1..100)
//! geoip_db = ["$MERIDIAN_GEOIP_DB", "/var/lib/GeoIP/GeoLite2-City.mmdb"]
//!
//! [[ranking.networks]]             # checked before the GeoIP database
//! cidr = "10.20.0.0/16"
//! region = "europe-west1"
//! location = { lat = 50.45, lon = 3.82 }
//!
//! [ranking.services."shop/api"]    # wins over the Service's annotations
//! policy = "failover"
//! failover = ["europe-west1", "us-east"]
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Config, Location};

/// A ranking policy by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PolicyName {
    /// Every healthy shard, rotated between answers.
    #[default]
    RoundRobin,
    /// Shards in a random order drawn in proportion to their weights.
    Weighted,
    /// An ordered list of clusters or regions: only the first group with a healthy shard.
    Failover,
    /// Nearest shard (great-circle distance to the client's location) first.
    Geo,
    /// Lowest probe round-trip time from this instance first.
    Latency,
}

impl PolicyName {
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyName::RoundRobin => "roundrobin",
            PolicyName::Weighted => "weighted",
            PolicyName::Failover => "failover",
            PolicyName::Geo => "geo",
            PolicyName::Latency => "latency",
        }
    }
}

impl fmt::Display for PolicyName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a policy name (in a Service annotation) is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown policy {0:?} (use roundrobin, weighted, failover, geo or latency)")]
    UnknownPolicy(String),
}

impl FromStr for PolicyName {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "roundrobin" | "round-robin" | "round_robin" => Ok(PolicyName::RoundRobin),
            "weighted" => Ok(PolicyName::Weighted),
            "failover" => Ok(PolicyName::Failover),
            "geo" => Ok(PolicyName::Geo),
            "latency" => Ok(PolicyName::Latency),
            _ => Err(ParseError::UnknownPolicy(s.to_owned())),
        }
    }
}

/// The `[ranking]` section.
/// Address records per answer unless configured.
pub const DEFAULT_MAX_ANSWERS: usize = 8;
/// The most address records any answer carries, whatever the configuration or a
/// Service's annotation asks: BIND refuses larger RRsets ("too many records").
pub const MAX_ANSWERS_CEILING: usize = 100;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RankingConfig {
    /// Policy of services that name none, and the fallback of `geo` when the client cannot
    /// be located (`geo` itself falls back to `roundrobin`).
    pub default_policy: PolicyName,
    /// Most address records per answer, best first by the ranking. 8 by default (as Route
    /// 53's multivalue answers); 0 means as many as allowed. Never more than
    /// [`MAX_ANSWERS_CEILING`]: BIND refuses an RRset of more than 100 records.
    pub max_answers: usize,
    /// Default failover order: cluster names or regions. Empty: the order of `clusters`.
    pub failover: Vec<String>,
    /// Candidate paths of a MaxMind DB (GeoIP2/GeoLite2 City or Country); the first that
    /// exists is used. `$NAME` is read from the environment (skipped when unset), a
    /// leading `~/` is the home directory, relative paths are relative to this file.
    pub geoip_db: Vec<String>,
    /// Refuse the configuration when `geoip_db` names paths and none exists. When false,
    /// geo answers locate clients by `networks` only and otherwise fall back.
    pub geoip_required: bool,
    /// Networks whose location is known better than the GeoIP database knows it (private
    /// ranges, offices); the most specific match wins, and wins over the database.
    pub networks: Vec<NetworkLocation>,
    /// Per-service settings by `namespace/name`; they win over the Service's annotations.
    pub services: BTreeMap<String, ServiceRanking>,
}

impl Default for RankingConfig {
    fn default() -> Self {
        Self {
            default_policy: PolicyName::RoundRobin,
            max_answers: DEFAULT_MAX_ANSWERS,
            failover: Vec::new(),
            geoip_db: Vec::new(),
            geoip_required: true,
            networks: Vec::new(),
            services: BTreeMap::new(),
        }
    }
}

/// A network and where its clients are. With neither `location` nor `region`, clients in
/// it are deliberately not located (e.g. loopback), so `geo` falls back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkLocation {
    /// `10.0.0.0/8`, `fd00::/8`; a bare address is a single host.
    pub cidr: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Clusters of this region come first for these clients, nearest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// One service's ranking settings.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceRanking {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyName>,
    /// Failover order (cluster names or regions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failover: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_answers: Option<usize>,
}

impl RankingConfig {
    /// The candidate GeoIP paths after expansion, in order (unset variables dropped).
    pub fn geoip_candidates(&self, config: &Config) -> Vec<PathBuf> {
        self.geoip_db
            .iter()
            .filter_map(|p| {
                let expanded = if let Some(var) = p.strip_prefix('$') {
                    std::env::var_os(var).filter(|v| !v.is_empty()).map(PathBuf::from)?
                } else if let Some(rest) = p.strip_prefix("~/") {
                    PathBuf::from(std::env::var_os("HOME")?).join(rest)
                } else {
                    PathBuf::from(p)
                };
                Some(config.resolve(&expanded))
            })
            .collect()
    }

    /// The GeoIP database to open: the first candidate that is a file.
    pub fn geoip_path(&self, config: &Config) -> Option<PathBuf> {
        self.geoip_candidates(config).into_iter().find(|p| p.is_file())
    }

    pub(crate) fn validate(&self, config: &Config) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.geoip_required && !self.geoip_db.is_empty() && self.geoip_path(config).is_none() {
            let tried: Vec<String> = self.geoip_candidates(config).iter().map(|p| p.display().to_string()).collect();
            out.push((
                "ranking.geoip_db".into(),
                format!(
                    "no GeoIP database found (tried: {}); set geoip_required = false to run without it",
                    if tried.is_empty() { "nothing, every variable is unset".to_owned() } else { tried.join(", ") }
                ),
            ));
        }
        for (i, n) in self.networks.iter().enumerate() {
            let p = |f: &str| format!("ranking.networks[{i}].{f}");
            if !valid_cidr(&n.cidr) {
                out.push((p("cidr"), format!("{:?} is not a network such as 10.0.0.0/8 or fd00::/8", n.cidr)));
            }
            if let Some(loc) = n.location
                && (!(-90.0..=90.0).contains(&loc.lat) || !(-180.0..=180.0).contains(&loc.lon))
            {
                out.push((p("location"), "latitude must be -90..90 and longitude -180..180".into()));
            }
        }
        let check_failover = |path: String, list: &[String], out: &mut Vec<(String, String)>| {
            for name in list {
                let known = config.clusters.iter().any(|c| &c.name == name || c.region.as_ref() == Some(name));
                // Regions may come from node labels, so an unknown name is only an error
                // when every cluster's region is configured.
                if !known && config.clusters.iter().all(|c| c.region.is_some()) {
                    out.push((path.clone(), format!("{name:?} is neither a cluster nor a region")));
                }
            }
        };
        check_failover("ranking.failover".into(), &self.failover, &mut out);
        if self.max_answers > MAX_ANSWERS_CEILING {
            out.push((
                "ranking.max_answers".into(),
                format!(
                    "max_answers {} is above {MAX_ANSWERS_CEILING} (resolvers refuse larger RRsets)",
                    self.max_answers
                ),
            ));
        }
        for (key, s) in &self.services {
            match key.split_once('/') {
                Some((ns, name)) if crate::is_dns_label(ns) && crate::is_dns_label(name) => {}
                _ => out.push((format!("ranking.services.{key}"), format!("{key:?} must be written namespace/name"))),
            }
            check_failover(format!("ranking.services.{key}.failover"), &s.failover, &mut out);
        }
        out
    }
}

/// `a.b.c.d/n`, `x::/n` or a bare address, with no host bits set beyond the prefix.
fn valid_cidr(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    s.parse::<ipnet::IpNet>().is_ok_and(|n| n.trunc() == n)
}

#[cfg(test)]
mod tests {
    use crate::Config;

    const BASE: &str =
        "name = \"f\"\ndns_zone = \"example.com\"\n[[clusters]]\nname = \"a\"\nsimulated = true\nregion = \"r1\"\n";

    /// `[ranking]` sections as data: accepted, or rejected naming the field.
    #[test]
    fn ranking_sections() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("[ranking]\ndefault_policy = \"geo\"\nmax_answers = 2\nfailover = [\"r1\", \"a\"]", None),
            ("[ranking]\nmax_answers = 100", None),
            ("[ranking]\nmax_answers = 101", Some("ranking.max_answers")),
            ("[ranking]\ndefault_policy = \"nearest\"", Some("default_policy")),
            ("[ranking]\nfailover = [\"mars\"]", Some("ranking.failover")),
            ("[[ranking.networks]]\ncidr = \"10.0.0.0/8\"\nregion = \"r1\"", None),
            ("[[ranking.networks]]\ncidr = \"fd00::1\"", None),
            ("[[ranking.networks]]\ncidr = \"10.0.0.1/8\"", Some("ranking.networks[0].cidr")),
            ("[[ranking.networks]]\ncidr = \"ten\"", Some("ranking.networks[0].cidr")),
            ("[[ranking.networks]]\ncidr = \"10.0.0.0/8\"\nlocation = { lat = 91.0, lon = 0.0 }", Some("location")),
            ("[ranking.services.\"shop/api\"]\npolicy = \"failover\"\nfailover = [\"a\"]", None),
            ("[ranking.services.\"api\"]\npolicy = \"geo\"", Some("ranking.services.api")),
            ("[ranking]\ngeoip_db = [\"/nonexistent/x.mmdb\"]", Some("ranking.geoip_db")),
            ("[ranking]\ngeoip_db = [\"/nonexistent/x.mmdb\"]\ngeoip_required = false", None),
            ("[ranking]\ngeoip_db = [\"$MERIDIAN_SURELY_UNSET_VAR\"]", Some("every variable is unset")),
        ];
        crate::tests::check_sections(BASE, cases);
    }

    /// The demo names its database through the environment and the cache, and starts
    /// without either.
    #[test]
    fn demo_geoip_is_optional() {
        let c = Config::demo();
        assert!(!c.ranking.geoip_required);
        assert_eq!(c.ranking.geoip_db.first().map(String::as_str), Some("$MERIDIAN_GEOIP_DB"));
    }
}
