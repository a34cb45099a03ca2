//! `[dns.transfer]`: zone transfers to secondaries (AXFR, IXFR, NOTIFY) and the TSIG
//! keys and address lists that guard them.
//!
//! A transfer request is let through when it is signed with a known key (unless
//! `require_tsig = false`) and matches one `allow` rule; with no rules, any known key
//! from any address (unsigned ones, when allowed, from loopback only). The key files themselves are read by the DNS server (at start and
//! on reloads), whose errors name the file and the problem; here only their presence
//! is checked.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Config, Duration};

/// Most serial steps a journal may keep: each holds the records that changed, so a deep
/// journal of a busy zone is memory the process keeps for ever.
pub const MAX_JOURNAL_DEPTH: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransferConfig {
    /// TSIG key files in BIND's format (`tsig-keygen` writes them), relative to the
    /// config file.
    pub keys: Vec<PathBuf>,
    /// Transfers must be signed with one of `keys` (RFC 8945). On by default: a zone's
    /// full content (every address of every cluster) is not for anyone who asks.
    pub require_tsig: bool,
    /// Who may transfer: each rule names a key, networks, or both; a request matching
    /// any rule is allowed. Empty: every known key, from anywhere (and, with
    /// `require_tsig = false`, unsigned requests from loopback only).
    pub allow: Vec<AllowRule>,
    /// Secondaries told of every serial change by NOTIFY (RFC 1996).
    pub secondaries: Vec<SecondaryConfig>,
    /// Serial steps kept per zone for IXFR (RFC 1995); an older serial gets a full zone.
    pub journal_depth: usize,
    /// Least time between two serials of a zone: a burst of table changes is one serial
    /// step, so a flapping shard cannot turn into a storm of NOTIFY and IXFR.
    pub min_serial_interval: Duration,
    /// Name of a catalog zone (RFC 9432, version 2) listing every served zone, for
    /// secondaries that provision member zones from it. None: no catalog.
    pub catalog: Option<String>,
    /// How many times a NOTIFY is sent before giving up on a secondary.
    pub notify_attempts: u32,
    /// How long each NOTIFY waits for its answer (doubled after each attempt).
    pub notify_timeout: Duration,
}

impl Default for TransferConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            require_tsig: true,
            allow: Vec::new(),
            secondaries: Vec::new(),
            journal_depth: 100,
            min_serial_interval: Duration::from_secs(1),
            catalog: None,
            notify_attempts: 5,
            notify_timeout: Duration::from_millis(500),
        }
    }
}

/// One `allow` rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// The key the request must be signed with (its name in the key file).
    #[serde(default)]
    pub key: Option<String>,
    /// CIDRs (or single addresses) the request must come from; empty: anywhere.
    #[serde(default)]
    pub networks: Vec<String>,
}

/// A secondary to NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryConfig {
    /// Where it listens for NOTIFY (UDP), e.g. `127.0.0.53:5300`.
    pub address: SocketAddr,
    /// The key to sign NOTIFY with; None sends it unsigned.
    #[serde(default)]
    pub key: Option<String>,
}

impl TransferConfig {
    pub(crate) fn validate(&self, config: &Config, out: &mut Vec<(String, String)>) {
        for (i, f) in self.keys.iter().enumerate() {
            let path = config.resolve(f);
            if !path.is_file() {
                out.push((format!("dns.transfer.keys[{i}]"), format!("key file {} does not exist", path.display())));
            }
        }
        for (i, rule) in self.allow.iter().enumerate() {
            if rule.key.is_none() && rule.networks.is_empty() {
                out.push((format!("dns.transfer.allow[{i}]"), "a rule needs a key, networks, or both".into()));
            }
            for (j, net) in rule.networks.iter().enumerate() {
                if net.parse::<ipnet::IpNet>().is_err() && net.parse::<IpAddr>().is_err() {
                    out.push((format!("dns.transfer.allow[{i}].networks[{j}]"), format!("{net:?} is not a CIDR")));
                }
            }
        }
        if self.journal_depth == 0 || self.journal_depth > MAX_JOURNAL_DEPTH {
            out.push((
                "dns.transfer.journal_depth".into(),
                format!("journal_depth must be 1 to {MAX_JOURNAL_DEPTH}, not {}", self.journal_depth),
            ));
        }
        if self.min_serial_interval.as_std() > std::time::Duration::from_secs(3600) {
            out.push(("dns.transfer.min_serial_interval".into(), "min_serial_interval is above one hour".into()));
        }
        if self.notify_attempts == 0 || self.notify_attempts > 20 {
            out.push(("dns.transfer.notify_attempts".into(), "notify_attempts must be 1 to 20".into()));
        }
        if self.notify_timeout.is_zero() {
            out.push(("dns.transfer.notify_timeout".into(), "notify_timeout must be above zero".into()));
        }
        self.check_catalog(config, out);
    }

    /// The catalog's name is a domain name that no other served zone has.
    fn check_catalog(&self, config: &Config, out: &mut Vec<(String, String)>) {
        let Some(catalog) = &self.catalog else { return };
        if let Err(e) = crate::check_domain(catalog) {
            out.push(("dns.transfer.catalog".into(), e.to_string()));
            return;
        }
        let norm = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
        let served = std::iter::once(config.dns_zone.as_str()).chain(config.dns.zones.iter().map(|z| z.name.as_str()));
        let clusterset = config.dns.clusterset.enabled.then_some(config.dns.clusterset.domain.as_str());
        if served.chain(clusterset).any(|z| norm(z) == norm(catalog)) {
            out.push(("dns.transfer.catalog".into(), format!("{catalog} is already a served zone")));
        }
    }
}
