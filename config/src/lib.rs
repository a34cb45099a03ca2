//! Meridian's configuration: the TOML schema, loading, validation and change notification.
//!
//! Layout:
//! - `lib.rs`: the top-level [`Config`], the member-cluster entries ([`ClusterConfig`])
//!   and the name checks every section uses ([`is_dns_label`], [`check_domain`]).
//! - [`dns`], [`lb`], [`sync`], [`admin`], [`health`], [`ranking`], [`fleet`]: one
//!   section of the file each.
//! - [`error`]: validation errors that name the field path and the line/column in the file.
//! - [`duration`]: human-readable durations (`"5s"`, `"250ms"`).
//! - [`watch`]: notifies the server when the file (or a file it names) changes, for reloads.
//!
//! This crate only reads and checks the file. It does not contact clusters (the
//! `discovery` crate checks kubeconfigs and contexts when it builds its clients) and it
//! never holds running state: a reload builds a new [`Config`] and the caller swaps it in.

pub mod admin;
mod collect;
pub mod dns;
pub mod duration;
pub mod error;
pub mod fleet;
pub mod health;
pub mod lb;
pub mod ranking;
pub mod sync;
pub mod transfer;
pub mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use duration::Duration;
pub use error::{ConfigError, ConfigErrors, Result};

/// The configuration `meridian demo` runs with when no file is given.
pub const DEMO_CONFIG: &str = include_str!("demo.toml");

/// The whole configuration file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Federation name: the `<federation>` label in `<svc>.<ns>.<federation>.svc.<dns_zone>`.
    pub name: String,
    /// DNS suffix under which federated names are published.
    pub dns_zone: String,
    /// Member clusters, in the order an admin listed them (also the default failover order).
    #[serde(default)]
    pub clusters: Vec<ClusterConfig>,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    #[serde(default)]
    pub dns: dns::DnsConfig,
    #[serde(default)]
    pub lb: lb::LbConfig,
    #[serde(default)]
    pub sync: sync::SyncConfig,
    #[serde(default)]
    pub admin: admin::AdminConfig,
    #[serde(default)]
    pub health: health::HealthConfig,
    #[serde(default)]
    pub ranking: ranking::RankingConfig,
    #[serde(default)]
    pub log: LogConfig,
    /// This instance's place in a fleet of Meridian instances; `None` decides health
    /// alone, as a single instance does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<fleet::FleetConfig>,
    /// Directory of the file this came from; relative paths inside it resolve against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

/// One member cluster.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterConfig {
    /// Unique name; a DNS label, because it appears in MCS names (`<host>.<cluster>.<svc>…`).
    pub name: String,
    /// Path of a kubeconfig file that reaches this cluster (relative to the config file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// Context inside `kubeconfig`; its current context when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Run this cluster inside Meridian's own simulator instead of reaching a real API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub simulated: bool,
    /// The cluster Meridian runs in, reached as a pod reaches its API server: the
    /// service account's token and CA under `/var/run/secrets/kubernetes.io/serviceaccount`
    /// and `KUBERNETES_SERVICE_HOST`/`KUBERNETES_SERVICE_PORT`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_cluster: bool,
    /// Region (`topology.kubernetes.io/region`); taken from the cluster's nodes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Zone (`topology.kubernetes.io/zone`); taken from the cluster's nodes when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// Where the cluster is, for distance-based ranking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// Relative share of traffic for weighted policies. Zero keeps the cluster out of
    /// weighted answers while it still serves every other policy.
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Free labels, matched by sync placement selectors.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn default_weight() -> u32 {
    1
}

/// A point on Earth, in degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
}

/// How discovery watches clusters and what it does with clusters it cannot reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiscoveryConfig {
    /// How often each cluster's `/readyz` is probed.
    pub probe_interval: Duration,
    /// Timeout of one probe.
    pub probe_timeout: Duration,
    /// Consecutive failed probes before a cluster is Offline. One lost probe is noise.
    pub offline_after: u32,
    /// What answers do with the last-known shards of an Offline cluster.
    pub stale_policy: StalePolicy,
    /// After this long Offline, a cluster's shards are no longer served under any policy
    /// (they stay visible in the table and `meridian status`).
    pub stale_max_age: Duration,
    /// Annotation that opts a Service (or Ingress) out when set to `"false"`.
    pub federate_annotation: String,
    /// A watch that delivers nothing (no event, no bookmark) for this long is taken for a
    /// silent connection and restarted with a relist. API servers send a bookmark about
    /// once a minute, so the default allows two and a half of them to go missing.
    pub watch_silence: Duration,
    /// Name servers (`ip:port`) that resolve the hostnames of hostname-only load balancers
    /// (cloud load balancers that publish a name, as AWS ELB does); empty uses the
    /// system's (`/etc/resolv.conf`). A reload that changes them applies at once.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lb_name_servers: Vec<std::net::SocketAddr>,
    /// Which Gateways' HTTPRoutes are served (Gateway API): an entry is a GatewayClass
    /// name (`sim`) or a controller name (`example.net/gateway-controller`), matched
    /// against each Gateway's class and that class's `spec.controllerName`; empty serves
    /// every class. A cluster's task applies a change when it restarts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateway_classes: Vec<String>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(2),
            offline_after: 2,
            stale_policy: StalePolicy::Serve,
            stale_max_age: Duration::from_secs(3600),
            federate_annotation: "meridian.io/federate".to_owned(),
            watch_silence: Duration::from_secs(150),
            lb_name_servers: Vec::new(),
            gateway_classes: Vec::new(),
        }
    }
}

/// What happens to shards of a cluster that Meridian can no longer reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StalePolicy {
    /// Keep serving them with their last-known health: a control-plane outage is not a
    /// data-plane outage, and dropping them would move traffic for no reason.
    Serve,
    /// Serve them only when no reachable cluster has a healthy shard.
    Fallback,
    /// Stop serving them at once.
    Drop,
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
    /// `tracing` filter directive, e.g. `info` or `meridian_dns=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".to_owned() }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigErrors::single(ConfigError::io(path, &e)))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        Self::parse(&text, path, &base)
    }

    /// Parses and validates `text`; `origin` names the file in errors, `base_dir` anchors
    /// relative paths.
    pub fn parse(text: &str, origin: &Path, base_dir: &Path) -> Result<Self> {
        let located = error::Locator::new(origin, text);
        let mut config: Config = collect::parse_all(text, &located).map_err(ConfigErrors)?;
        config.base_dir = base_dir.to_path_buf();
        let problems = config.validate();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(problems.into_iter().map(|(path, msg)| located.at_path(&path, msg)).collect()))
        }
    }

    /// The embedded demo configuration.
    pub fn demo() -> Self {
        match Self::parse(DEMO_CONFIG, Path::new("<embedded demo>"), Path::new(".")) {
            Ok(c) => c,
            // The embedded file is tested; reaching this is a build defect, not bad input.
            Err(e) => unreachable!("embedded demo config is invalid: {e}"),
        }
    }

    /// Resolves a path from the file against the file's directory.
    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }

    /// Looks a member cluster up by name.
    pub fn cluster(&self, name: &str) -> Option<&ClusterConfig> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Every semantic problem, as (field path, message). Syntax and type errors were
    /// already reported by the parser.
    pub fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.check_names(&mut out);
        self.check_clusters(&mut out);
        out.extend(self.discovery.validate());
        out.extend(self.dns.validate(self));
        out.extend(self.lb.validate(self));
        out.extend(self.sync.validate(self));
        out.extend(self.admin.validate());
        out.extend(self.health.validate(self));
        out.extend(self.ranking.validate(self));
        out.extend(self.fleet.iter().flat_map(fleet::FleetConfig::problems));
        out
    }

    /// The federation name and the DNS suffix.
    fn check_names(&self, out: &mut Vec<(String, String)>) {
        if !is_dns_label(&self.name) {
            out.push((
                "name".into(),
                format!("federation name {:?} must be a DNS label (a-z, 0-9, '-', at most 63)", self.name),
            ));
        }
        if let Err(e) = check_domain(&self.dns_zone) {
            out.push(("dns_zone".into(), e.to_string()));
        }
    }

    /// Every member entry, and that no two share a name.
    fn check_clusters(&self, out: &mut Vec<(String, String)>) {
        let mut seen = BTreeMap::new();
        for (i, c) in self.clusters.iter().enumerate() {
            let earlier = seen.insert(c.name.clone(), i);
            c.validate(&format!("clusters[{i}]"), earlier, out);
        }
    }
}

impl ClusterConfig {
    /// Problems of the entry at `at` (`clusters[3]`); `earlier` is the index of an entry
    /// before it with the same name.
    fn validate(&self, at: &str, earlier: Option<usize>, out: &mut Vec<(String, String)>) {
        let p = |f: &str| format!("{at}.{f}");
        if !is_dns_label(&self.name) {
            out.push((
                p("name"),
                format!("cluster name {:?} must be a DNS label (a-z, 0-9, '-', at most 63)", self.name),
            ));
        }
        if let Some(first) = earlier {
            out.push((p("name"), format!("cluster name {:?} is already used by clusters[{first}]", self.name)));
        }
        self.check_reach(at, out);
        self.check_topology(at, out);
        if self.weight > 1_000_000 {
            out.push((p("weight"), format!("weight {} is above the maximum 1000000", self.weight)));
        }
        for k in self.labels.keys() {
            if k.is_empty() || k.len() > 253 {
                out.push((p("labels"), format!("label key {k:?} must be 1 to 253 characters")));
            }
        }
    }

    /// Exactly one way to reach the cluster: the simulator, a kubeconfig (and context),
    /// or the in-cluster service account.
    fn check_reach(&self, at: &str, out: &mut Vec<(String, String)>) {
        let p = |f: &str| format!("{at}.{f}");
        if self.in_cluster {
            if self.simulated || self.kubeconfig.is_some() || self.context.is_some() {
                out.push((
                    p("in_cluster"),
                    "`in_cluster = true` reaches the cluster Meridian runs in; it takes no `simulated`, `kubeconfig` or `context`".into(),
                ));
            }
            return;
        }
        match (self.simulated, &self.kubeconfig) {
            (true, Some(_)) => out.push((
                p("kubeconfig"),
                "a cluster is either `simulated = true` or reached through `kubeconfig`, not both".into(),
            )),
            (false, None) => out.push((
                p("kubeconfig"),
                format!(
                    "cluster {:?} needs `kubeconfig` (and optionally `context`), `in_cluster = true` or `simulated = true`",
                    self.name
                ),
            )),
            (true, None) if self.context.is_some() => {
                out.push((p("context"), "`context` only applies with `kubeconfig`".into()))
            }
            _ => {}
        }
        if let Some(kc) = &self.kubeconfig
            && kc.as_os_str().is_empty()
        {
            out.push((p("kubeconfig"), "kubeconfig path is empty".into()));
        }
    }

    /// Region and zone appear in federated names; the location must be on Earth.
    fn check_topology(&self, at: &str, out: &mut Vec<(String, String)>) {
        let p = |f: &str| format!("{at}.{f}");
        for (field, v) in [("region", &self.region), ("zone", &self.zone)] {
            if let Some(v) = v
                && !is_dns_label(v)
            {
                out.push((p(field), format!("{field} {v:?} must be a DNS label, since it appears in federated names")));
            }
        }
        if let Some(loc) = self.location {
            if !(-90.0..=90.0).contains(&loc.lat) {
                out.push((p("location.lat"), format!("latitude {} is outside -90..90", loc.lat)));
            }
            if !(-180.0..=180.0).contains(&loc.lon) {
                out.push((p("location.lon"), format!("longitude {} is outside -180..180", loc.lon)));
            }
        }
    }
}

impl DiscoveryConfig {
    fn validate(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.probe_interval.as_std() < std::time::Duration::from_millis(100) {
            out.push(("discovery.probe_interval".into(), "probe_interval must be at least 100ms".into()));
        }
        if self.probe_timeout.is_zero() {
            out.push(("discovery.probe_timeout".into(), "probe_timeout must be above zero".into()));
        }
        if self.watch_silence.as_std() < std::time::Duration::from_secs(1) {
            out.push(("discovery.watch_silence".into(), "watch_silence must be at least 1s".into()));
        }
        if self.offline_after == 0 {
            out.push(("discovery.offline_after".into(), "offline_after must be at least 1".into()));
        }
        for (i, ns) in self.lb_name_servers.iter().enumerate() {
            if ns.ip().is_unspecified() || ns.ip().is_multicast() || ns.port() == 0 {
                out.push((
                    format!("discovery.lb_name_servers[{i}]"),
                    format!("name server {ns} must be a unicast address with a port"),
                ));
            }
        }
        for (i, class) in self.gateway_classes.iter().enumerate() {
            if !is_gateway_class_filter(class) {
                out.push((
                    format!("discovery.gateway_classes[{i}]"),
                    format!(
                        "{class:?} is neither a GatewayClass name (a DNS subdomain) nor a controller name \
                         (domain/path)"
                    ),
                ));
            }
        }
        out
    }
}

/// A GatewayClass name (an RFC 1123 subdomain) or a Gateway API controller name (a
/// subdomain, `/`, then a path of `[A-Za-z0-9/\-._~%!$&'()*+,;=:]`), at most 253 bytes.
fn is_gateway_class_filter(s: &str) -> bool {
    let subdomain = |d: &str| !d.is_empty() && d.len() <= 253 && d.split('.').all(is_dns_label);
    let path_char = |c: char| c.is_ascii_alphanumeric() || "/-._~%!$&'()*+,;=:".contains(c);
    match s.split_once('/') {
        None => subdomain(s),
        Some((domain, path)) => s.len() <= 253 && subdomain(domain) && !path.is_empty() && path.chars().all(path_char),
    }
}

/// True for an RFC 1123 label: lower-case letters, digits and '-', not at either end.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Why a name is not a domain name. Each message quotes the name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    #[error("domain must not be empty")]
    Empty,
    #[error("domain {0:?} is longer than 253 characters")]
    TooLong(String),
    #[error("domain {domain:?} has an invalid label {label:?}")]
    InvalidLabel { domain: String, label: String },
}

/// Checks a domain name such as `example.com` (a trailing dot is allowed).
pub fn check_domain(s: &str) -> std::result::Result<(), DomainError> {
    let trimmed = s.strip_suffix('.').unwrap_or(s);
    if trimmed.is_empty() {
        return Err(DomainError::Empty);
    }
    if trimmed.len() > 253 {
        return Err(DomainError::TooLong(s.to_owned()));
    }
    for label in trimmed.split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(DomainError::InvalidLabel { domain: s.to_owned(), label: label.to_owned() });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
