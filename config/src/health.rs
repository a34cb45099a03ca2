//! `[health]`: active health checks of every shard address, run from this instance.
//!
//! ```toml
//! [health]
//! kind = "tcp"              # tcp | http | https | off
//! interval = "5s"
//! unhealthy_threshold = 3
//!
//! [health.clusters.ap-south]   # per-cluster override: only the fields given change
//! kind = "http"
//! path = "/healthz"
//! ```
//!
//! A Service overrides both with its `meridian.io/health-check` annotation (parsed by the
//! `discovery` crate).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Config, Duration};

/// Shortest probe interval: faster probing of every shard address adds load on every
/// backend for little gain, since DNS TTLs are seconds anyway.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// How a shard address is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// A TCP connect to the address and port.
    #[default]
    Tcp,
    /// `GET <path>` over plain HTTP/1.1; the status must be in `expected_status`.
    Http,
    /// The same over TLS. The certificate is not verified: the check asks "is it serving",
    /// and load-balancer certificates rarely name the address being probed.
    Https,
    /// No active check: health is ready endpoints only.
    Off,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Tcp => "tcp",
            CheckKind::Http => "http",
            CheckKind::Https => "https",
            CheckKind::Off => "off",
        }
    }
}

/// Why a check kind or a status range (in the file or an annotation) is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("unknown health check kind {0:?} (use tcp, http, https or off)")]
    UnknownKind(String),
    #[error("invalid status range {0:?}: write e.g. \"200\" or \"200-399\" (100..599)")]
    StatusRange(String),
}

impl FromStr for CheckKind {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "tcp" => Ok(CheckKind::Tcp),
            "http" => Ok(CheckKind::Http),
            "https" => Ok(CheckKind::Https),
            "off" => Ok(CheckKind::Off),
            other => Err(ParseError::UnknownKind(other.to_owned())),
        }
    }
}

/// An inclusive range of HTTP status codes, written `"200-399"` or `"200"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusRange {
    pub low: u16,
    pub high: u16,
}

impl StatusRange {
    pub fn contains(self, status: u16) -> bool {
        (self.low..=self.high).contains(&status)
    }
}

impl Default for StatusRange {
    /// 2xx and 3xx: a redirect to a login page still means the backend serves.
    fn default() -> Self {
        Self { low: 200, high: 399 }
    }
}

impl FromStr for StatusRange {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = || ParseError::StatusRange(s.to_owned());
        let (lo, hi) = s.trim().split_once('-').unwrap_or((s.trim(), s.trim()));
        let low: u16 = lo.trim().parse().map_err(|_| bad())?;
        let high: u16 = hi.trim().parse().map_err(|_| bad())?;
        if !(100..=599).contains(&low) || !(100..=599).contains(&high) || low > high {
            return Err(bad());
        }
        Ok(Self { low, high })
    }
}

impl fmt::Display for StatusRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.low == self.high { write!(f, "{}", self.low) } else { write!(f, "{}-{}", self.low, self.high) }
    }
}

impl Serialize for StatusRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for StatusRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// The `[health]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub kind: CheckKind,
    /// Request path of HTTP(S) checks.
    pub path: String,
    /// Statuses that pass an HTTP(S) check.
    pub expected_status: StatusRange,
    /// `Host` header (and TLS SNI) of HTTP(S) checks; the probed `address:port` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Time between two probes of one address (at least 1s).
    pub interval: Duration,
    /// A probe that takes longer fails.
    pub timeout: Duration,
    /// Consecutive passes that bring a Down shard back.
    pub healthy_threshold: u32,
    /// Consecutive failures that take a shard Down: one lost probe is noise.
    pub unhealthy_threshold: u32,
    /// Each wait is shortened by a random amount up to this, so probes of many addresses
    /// spread out instead of firing together (never lengthened: detection time stays
    /// within interval × threshold).
    pub jitter: Duration,
    /// Most probes in flight at once over all addresses.
    pub max_in_flight: usize,
    /// Per-cluster overrides, by cluster name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub clusters: BTreeMap<String, HealthOverride>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            kind: CheckKind::Tcp,
            path: "/healthz".to_owned(),
            expected_status: StatusRange::default(),
            host: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 3,
            jitter: Duration::from_millis(500),
            max_in_flight: 256,
            clusters: BTreeMap::new(),
        }
    }
}

/// What a cluster changes from the `[health]` defaults.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<CheckKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<StatusRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
}

/// The check settings that apply to one cluster's shards (before any annotation).
/// Discovery's `CheckSpec` is these, with a Service's annotation applied, plus the port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckSettings {
    pub kind: CheckKind,
    pub path: String,
    pub expected_status: StatusRange,
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
}

impl HealthConfig {
    /// The settings for shards of `cluster`: the defaults with its override applied.
    pub fn for_cluster(&self, cluster: &str) -> CheckSettings {
        let o = self.clusters.get(cluster).cloned().unwrap_or_default();
        CheckSettings {
            kind: o.kind.unwrap_or(self.kind),
            path: o.path.unwrap_or_else(|| self.path.clone()),
            expected_status: o.expected_status.unwrap_or(self.expected_status),
            host: o.host.or_else(|| self.host.clone()),
            interval: o.interval.unwrap_or(self.interval),
            timeout: o.timeout.unwrap_or(self.timeout),
            healthy_threshold: o.healthy_threshold.unwrap_or(self.healthy_threshold),
            unhealthy_threshold: o.unhealthy_threshold.unwrap_or(self.unhealthy_threshold),
        }
    }

    pub(crate) fn validate(&self, config: &Config) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut check = |prefix: &str, s: &CheckSettings| {
            let p = |f: &str| format!("{prefix}.{f}");
            if s.interval < MIN_INTERVAL {
                out.push((p("interval"), format!("interval must be at least {MIN_INTERVAL}")));
            }
            if s.timeout.is_zero() {
                out.push((p("timeout"), "timeout must be above zero".into()));
            }
            if s.timeout > s.interval {
                out.push((p("timeout"), format!("timeout {} is longer than the interval {}", s.timeout, s.interval)));
            }
            if s.healthy_threshold == 0 || s.healthy_threshold > 100 {
                out.push((p("healthy_threshold"), "healthy_threshold must be 1..100".into()));
            }
            if s.unhealthy_threshold == 0 || s.unhealthy_threshold > 100 {
                out.push((p("unhealthy_threshold"), "unhealthy_threshold must be 1..100".into()));
            }
            if !s.path.starts_with('/') || s.path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
                out.push((p("path"), format!("path {:?} must start with '/' and contain no spaces", s.path)));
            }
            if let Some(h) = &s.host
                && (h.is_empty() || h.bytes().any(|b| b.is_ascii_control() || b == b' '))
            {
                out.push((p("host"), format!("host {h:?} must be a non-empty header value without spaces")));
            }
        };
        check("health", &self.for_cluster(""));
        for name in self.clusters.keys() {
            check(&format!("health.clusters.{name}"), &self.for_cluster(name));
        }
        if self.jitter >= self.interval {
            out.push(("health.jitter".into(), "jitter must be shorter than the interval".into()));
        }
        if self.max_in_flight == 0 {
            out.push(("health.max_in_flight".into(), "max_in_flight must be at least 1".into()));
        }
        for name in self.clusters.keys() {
            if config.cluster(name).is_none() {
                out.push((format!("health.clusters.{name}"), format!("no cluster is named {name:?}")));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    const BASE: &str = "name = \"f\"\ndns_zone = \"example.com\"\n[[clusters]]\nname = \"a\"\nsimulated = true\n";

    /// `[health]` sections as data: accepted, or rejected naming the field.
    #[test]
    fn health_sections() {
        let cases: &[(&str, Option<&str>)] = &[
            ("", None),
            ("[health]\nkind = \"http\"\npath = \"/ready\"\nexpected_status = \"200-299\"", None),
            ("[health]\nkind = \"off\"", None),
            ("[health.clusters.a]\nkind = \"https\"\ninterval = \"2s\"", None),
            ("[health]\ninterval = \"500ms\"\njitter = \"100ms\"\ntimeout = \"100ms\"", Some("health.interval")),
            ("[health]\ntimeout = \"10s\"", Some("health.timeout")),
            ("[health]\nunhealthy_threshold = 0", Some("health.unhealthy_threshold")),
            ("[health]\nexpected_status = \"600\"", Some("expected_status")),
            ("[health]\nexpected_status = \"300-200\"", Some("expected_status")),
            ("[health]\npath = \"healthz\"", Some("health.path")),
            ("[health]\njitter = \"5s\"", Some("health.jitter")),
            ("[health]\nmax_in_flight = 0", Some("health.max_in_flight")),
            ("[health.clusters.nope]\nkind = \"tcp\"", Some("health.clusters.nope")),
            ("[health]\nkind = \"icmp\"", Some("kind")),
        ];
        crate::tests::check_sections(BASE, cases);
        let c = Config::parse(&format!("{BASE}[health.clusters.a]\nkind = \"http\"\n"), Path::new("t"), Path::new("."))
            .expect("valid");
        assert_eq!(c.health.for_cluster("a").kind, super::CheckKind::Http);
        assert_eq!(c.health.for_cluster("b").kind, super::CheckKind::Tcp);
        assert_eq!(c.health.for_cluster("a").interval, crate::Duration::from_secs(5), "defaults kept");
    }
}
