//! `[dns]`: the authoritative DNS server.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Config, Duration};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsConfig {
    /// Run the DNS server at all.
    pub enabled: bool,
    /// UDP and TCP listen addresses (IPv4 and IPv6).
    pub listen: Vec<SocketAddr>,
    /// TTL of federated answers, in seconds; a Service may override it by annotation.
    pub ttl: u32,
    /// TTL of negative answers (the SOA minimum, RFC 2308), in seconds.
    pub negative_ttl: u32,
    /// What a name answers when no shard is healthy anywhere.
    pub when_none_healthy: WhenNoneHealthy,
    /// Zones served besides `dns_zone`, and the master files of their own records.
    pub zones: Vec<ZoneConfig>,
    /// Multi-Cluster Services names (`<svc>.<ns>.svc.clusterset.local`).
    pub clusterset: ClusterSetConfig,
    /// Extra names inside a served zone that answer for a federated service.
    pub names: Vec<NameMapping>,
    /// RFC 7766: how long an idle TCP connection is kept.
    pub tcp_idle_timeout: Duration,
    /// Most TCP connections served at once. A new one over the limit takes the slot of
    /// the connection idle longest (RFC 7766 §6.2.3); it is refused only when all are busy.
    pub tcp_max_connections: usize,
    /// Most TCP connections of one client address; over it, that client's own idle
    /// connections make room.
    pub tcp_max_per_client: usize,
    /// How long writing an answer may take: a client that does not read its answers
    /// loses its connection after this.
    pub tcp_write_timeout: Duration,
    /// Nice value asked for the UDP threads (Linux, -20..=0; needs `CAP_SYS_NICE`, else
    /// they stay at 0 and the log says so). Below the rest of the process, so health
    /// checks, watchers and the proxy sharing a core do not delay queries. 0 disables.
    pub udp_nice: i8,
    /// Name servers put in the synthesised NS and SOA (MNAME) of a zone whose master file
    /// has none. Empty means `ns1.<zone>`.
    pub nameservers: Vec<String>,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 1053))],
            ttl: 30,
            negative_ttl: 30,
            when_none_healthy: WhenNoneHealthy::AllKnown,
            zones: Vec::new(),
            clusterset: ClusterSetConfig::default(),
            names: Vec::new(),
            tcp_idle_timeout: Duration::from_secs(10),
            tcp_max_connections: 1024,
            tcp_max_per_client: 128,
            tcp_write_timeout: Duration::from_secs(5),
            udp_nice: -10,
            nameservers: Vec::new(),
        }
    }
}

/// Answer when every shard of a name is unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhenNoneHealthy {
    /// Every known shard (fail open, as Route 53 does): a wrong health signal must not
    /// take a whole service off the air.
    AllKnown,
    /// No records (the Federation v1 behaviour).
    Empty,
}

/// One served zone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    /// Zone apex, e.g. `example.com`.
    pub name: String,
    /// RFC 1035 master file with the zone's own records (relative to the config file).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSetConfig {
    pub enabled: bool,
    pub domain: String,
    /// Which services get clusterset names.
    pub export: ExportMode,
}

impl Default for ClusterSetConfig {
    fn default() -> Self {
        Self { enabled: true, domain: "clusterset.local".to_owned(), export: ExportMode::ServiceExport }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportMode {
    /// Only services with a ServiceExport (multicluster.x-k8s.io) of the same name.
    ServiceExport,
    /// Every federated service.
    All,
}

/// `name` answers like the federated service `service` (`namespace/name`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameMapping {
    pub name: String,
    pub service: String,
}

impl DnsConfig {
    pub(crate) fn validate(&self, config: &Config) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.enabled && self.listen.is_empty() {
            out.push(("dns.listen".into(), "at least one listen address is needed while dns.enabled = true".into()));
        }
        if self.ttl > 604_800 {
            out.push(("dns.ttl".into(), format!("ttl {} is above one week", self.ttl)));
        }
        for (i, z) in self.zones.iter().enumerate() {
            if let Err(m) = crate::check_domain(&z.name) {
                out.push((format!("dns.zones[{i}].name"), m));
            }
            if let Some(f) = &z.file
                && !config.resolve(f).is_file()
            {
                out.push((
                    format!("dns.zones[{i}].file"),
                    format!("zone file {} does not exist", config.resolve(f).display()),
                ));
            }
        }
        if self.clusterset.enabled
            && let Err(m) = crate::check_domain(&self.clusterset.domain)
        {
            out.push(("dns.clusterset.domain".into(), m));
        }
        for (i, n) in self.names.iter().enumerate() {
            if let Err(m) = crate::check_domain(&n.name) {
                out.push((format!("dns.names[{i}].name"), m));
            }
            match n.service.split_once('/') {
                Some((ns, name)) if crate::is_dns_label(ns) && crate::is_dns_label(name) => {}
                _ => out.push((
                    format!("dns.names[{i}].service"),
                    format!("service {:?} must be written namespace/name", n.service),
                )),
            }
        }
        for (i, ns) in self.nameservers.iter().enumerate() {
            if let Err(m) = crate::check_domain(ns) {
                out.push((format!("dns.nameservers[{i}]"), m));
            }
        }
        if self.negative_ttl > 86_400 {
            out.push((
                "dns.negative_ttl".into(),
                format!("negative_ttl {} is above one day (RFC 2308 suggests 1 to 3 hours)", self.negative_ttl),
            ));
        }
        if !(-20..=0).contains(&self.udp_nice) {
            out.push(("dns.udp_nice".into(), format!("udp_nice {} is outside -20..=0", self.udp_nice)));
        }
        if self.tcp_max_per_client == 0 {
            out.push(("dns.tcp_max_per_client".into(), "tcp_max_per_client must be at least 1".into()));
        }
        if self.tcp_write_timeout.is_zero() {
            out.push(("dns.tcp_write_timeout".into(), "tcp_write_timeout must be above zero".into()));
        }
        if self.tcp_max_connections == 0 {
            out.push(("dns.tcp_max_connections".into(), "tcp_max_connections must be at least 1".into()));
        }
        out
    }
}
