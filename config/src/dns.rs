//! `[dns]`: the authoritative DNS server.

use std::net::{IpAddr, SocketAddr};
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
    /// Response-rate limiting of UDP answers (`[dns.rrl]`).
    pub rrl: RrlConfig,
    /// Nice value asked for the UDP threads (Linux, -20..=0; needs `CAP_SYS_NICE`, else
    /// they stay at 0 and the log says so). Below the rest of the process, so health
    /// checks, watchers and the proxy sharing a core do not delay queries. 0 disables.
    pub udp_nice: i8,
    /// Name servers put in the synthesised NS and SOA (MNAME) of a zone whose master file
    /// has none (a zone's own `nameservers` come first). Each is a name, or a table with
    /// the addresses that a name inside the zone needs (its A/AAAA records, which
    /// resolvers ask for once the parent's glue expires). Empty means `ns1.<zone>` at the
    /// specific (not wildcard) `listen` addresses.
    pub nameservers: Vec<NameServer>,
    /// This server's identifier, answered to a query that asks for it with an empty NSID
    /// option (RFC 5001), e.g. the host name: it tells an operator which instance of an
    /// anycast fleet answered. None (the default, as Knot) answers no NSID.
    pub nsid: Option<String>,
    /// File holding the 16-byte server cookie secret as 32 hex digits (RFC 7873, RFC 9018),
    /// shared by a fleet of instances so that a cookie one issued verifies at the others.
    /// None: a random secret per process.
    pub cookie_secret_file: Option<PathBuf>,
    /// Zone transfers to secondaries (`[dns.transfer]`).
    pub transfer: crate::transfer::TransferConfig,
}

/// Longest NSID answered: an identifier, not a payload (Knot and BIND keep it short too).
pub const MAX_NSID: usize = 128;

/// Reads a server cookie secret: 32 hex digits (surrounding whitespace allowed). The
/// error never quotes the file's content, which is a secret.
pub fn parse_cookie_secret(text: &str) -> Result<[u8; 16], &'static str> {
    let hex = text.trim().as_bytes();
    if hex.len() != 32 {
        return Err("the cookie secret must be 32 hex digits (16 bytes)");
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        let digit = |c: u8| (c as char).to_digit(16).ok_or("the cookie secret has a character that is not a hex digit");
        *o = ((digit(pair[0])? << 4) | digit(pair[1])?) as u8;
    }
    Ok(out)
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
            rrl: RrlConfig::default(),
            udp_nice: -10,
            nameservers: Vec::new(),
            nsid: None,
            cookie_secret_file: None,
            transfer: crate::transfer::TransferConfig::default(),
        }
    }
}

/// Response-rate limiting (as BIND, Knot and NSD do it): UDP responses per second per
/// client network and response class; over it, every `slip`-th is sent truncated (the
/// client retries over TCP) and the rest are dropped. Off by default, like BIND and
/// Knot: turn it on for a server on the internet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RrlConfig {
    pub enabled: bool,
    /// Responses per second to one network for one class.
    pub responses_per_second: u32,
    /// Every `slip`-th limited response is sent truncated; 0 drops them all.
    pub slip: u32,
    /// Client networks are counted as prefixes of this length.
    pub ipv4_prefix: u8,
    pub ipv6_prefix: u8,
    /// Networks never limited (monitoring, the operator's resolvers), as CIDRs.
    pub exempt: Vec<String>,
}

impl Default for RrlConfig {
    fn default() -> Self {
        Self { enabled: false, responses_per_second: 20, slip: 2, ipv4_prefix: 24, ipv6_prefix: 56, exempt: Vec::new() }
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
    /// This zone's name servers, when its file has no NS (else `dns.nameservers`).
    #[serde(default)]
    pub nameservers: Vec<NameServer>,
}

/// A name server of a zone: `"ns1.example.com"`, or `{ name = "ns1.example.com",
/// addresses = ["192.0.2.53", "2001:db8::53"] }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "NameServerSpec")]
pub struct NameServer {
    /// Fully qualified, without the trailing dot.
    pub name: String,
    /// Its A and AAAA records, published when the name is inside the zone.
    pub addresses: Vec<IpAddr>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NameServerSpec {
    Name(String),
    Full {
        name: String,
        #[serde(default)]
        addresses: Vec<IpAddr>,
    },
}

impl From<NameServerSpec> for NameServer {
    fn from(s: NameServerSpec) -> Self {
        let (name, addresses) = match s {
            NameServerSpec::Name(name) => (name, Vec::new()),
            NameServerSpec::Full { name, addresses } => (name, addresses),
        };
        NameServer { name: name.trim_end_matches('.').to_ascii_lowercase(), addresses }
    }
}

impl NameServer {
    /// The name is `apex` or below it.
    pub fn is_inside(&self, apex: &str) -> bool {
        let apex = apex.trim_end_matches('.').to_ascii_lowercase();
        self.name == apex || self.name.ends_with(&format!(".{apex}"))
    }
}

impl DnsConfig {
    /// The name servers of the zone `apex`: its own, else `dns.nameservers`, else
    /// `ns1.<apex>` at the specific listen addresses.
    pub fn nameservers_of(&self, apex: &str) -> Vec<NameServer> {
        let apex = apex.trim_end_matches('.').to_ascii_lowercase();
        let own = self.zones.iter().find(|z| z.name.trim_end_matches('.').eq_ignore_ascii_case(&apex));
        match own.map(|z| &z.nameservers).filter(|n| !n.is_empty()) {
            Some(n) => n.clone(),
            None if !self.nameservers.is_empty() => self.nameservers.clone(),
            None => {
                let mut addresses: Vec<IpAddr> =
                    self.listen.iter().map(SocketAddr::ip).filter(|ip| !ip.is_unspecified()).collect();
                addresses.dedup();
                vec![NameServer { name: format!("ns1.{apex}"), addresses }]
            }
        }
    }

    /// Every served zone apex with where its settings live, for validation: the main
    /// zone, `dns.zones`, and the clusterset domain.
    fn served_zones<'a>(&'a self, config: &'a Config) -> Vec<(String, Option<&'a ZoneConfig>)> {
        let trim = |s: &str| s.trim_end_matches('.').to_ascii_lowercase();
        let mut out: Vec<(String, Option<&ZoneConfig>)> = Vec::new();
        let mut add = |apex: String| {
            if !out.iter().any(|(a, _)| *a == apex) {
                let zone = self.zones.iter().find(|z| trim(&z.name) == apex);
                out.push((apex, zone));
            }
        };
        add(trim(&config.dns_zone));
        self.zones.iter().for_each(|z| add(trim(&z.name)));
        if self.clusterset.enabled {
            add(trim(&self.clusterset.domain));
        }
        out
    }

    /// In-zone name servers without an address: the zone could not be resolved once the
    /// parent's glue expires (BIND then answers SERVFAIL). Zones with a master file are
    /// checked when the file is loaded, since its own NS records come first.
    fn unaddressed_nameservers(&self, config: &Config) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (apex, zone) in self.served_zones(config) {
            if zone.is_some_and(|z| z.file.is_some()) {
                continue;
            }
            let field = match zone {
                Some(z) if !z.nameservers.is_empty() => {
                    let i = self.zones.iter().position(|c| std::ptr::eq(c, z)).unwrap_or(0);
                    format!("dns.zones[{i}].nameservers")
                }
                _ => "dns.nameservers".to_owned(),
            };
            for ns in self.nameservers_of(&apex) {
                if ns.is_inside(&apex) && ns.addresses.is_empty() {
                    let why = if self.nameservers.is_empty() && zone.is_none_or(|z| z.nameservers.is_empty()) {
                        "dns.listen has only wildcard addresses; list the name servers with their addresses"
                    } else {
                        "give it `addresses`"
                    };
                    out.push((
                        field.clone(),
                        format!("name server {} is inside zone {apex} but has no address: {why}", ns.name),
                    ));
                }
            }
        }
        out
    }
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
        self.check_listen_and_ttl(&mut out);
        self.check_zones(config, &mut out);
        self.check_other_names(&mut out);
        out.extend(self.unaddressed_nameservers(config));
        self.check_limits(&mut out);
        self.check_nsid_and_cookies(config, &mut out);
        self.check_fleet_nameservers(config, &mut out);
        self.transfer.validate(config, &mut out);
        out
    }

    /// In a fleet every instance must publish the same NS set (the parent's delegation
    /// names them all), so the default, `ns1.<zone>` at this instance's own listen
    /// addresses, which differs from instance to instance, is refused.
    fn check_fleet_nameservers(&self, config: &Config, out: &mut Vec<(String, String)>) {
        if config.fleet.is_none() || !self.enabled || !self.nameservers.is_empty() {
            return;
        }
        let defaulted: Vec<String> = self
            .served_zones(config)
            .into_iter()
            .filter(|(_, zone)| zone.is_none_or(|z| z.file.is_none() && z.nameservers.is_empty()))
            .map(|(apex, _)| apex)
            .collect();
        if !defaulted.is_empty() {
            out.push((
                "dns.nameservers".into(),
                format!(
                    "with [fleet], list every instance's name server with its addresses, the same on each \
                     instance: the default (ns1.<zone> at this instance's listen addresses) names only this \
                     one (zones without a master file or their own nameservers: {})",
                    defaulted.join(", ")
                ),
            ));
        }
    }

    /// The NSID's length and the cookie secret file's content (never quoted).
    fn check_nsid_and_cookies(&self, config: &Config, out: &mut Vec<(String, String)>) {
        if let Some(nsid) = &self.nsid
            && (nsid.is_empty() || nsid.len() > MAX_NSID)
        {
            out.push(("dns.nsid".into(), format!("nsid must be 1 to {MAX_NSID} bytes, not {}", nsid.len())));
        }
        if let Some(f) = &self.cookie_secret_file {
            let path = config.resolve(f);
            let problem = match std::fs::read_to_string(&path) {
                Ok(text) => parse_cookie_secret(&text).err().map(str::to_owned),
                Err(e) => Some(format!("cannot read {}: {e}", path.display())),
            };
            out.extend(problem.map(|p| ("dns.cookie_secret_file".to_owned(), p)));
        }
    }

    fn check_listen_and_ttl(&self, out: &mut Vec<(String, String)>) {
        if self.enabled && self.listen.is_empty() {
            out.push(("dns.listen".into(), "at least one listen address is needed while dns.enabled = true".into()));
        }
        if self.ttl > 604_800 {
            out.push(("dns.ttl".into(), format!("ttl {} is above one week", self.ttl)));
        }
    }

    /// Each `[[dns.zones]]` apex, and its master file.
    fn check_zones(&self, config: &Config, out: &mut Vec<(String, String)>) {
        for (i, z) in self.zones.iter().enumerate() {
            if let Err(e) = crate::check_domain(&z.name) {
                out.push((format!("dns.zones[{i}].name"), e.to_string()));
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
    }

    /// The other domain names of the section: the clusterset domain, extra names (and the
    /// services they stand for) and name servers.
    fn check_other_names(&self, out: &mut Vec<(String, String)>) {
        let domain = |path: String, name: &str| crate::check_domain(name).err().map(|e| (path, e.to_string()));
        if self.clusterset.enabled {
            out.extend(domain("dns.clusterset.domain".into(), &self.clusterset.domain));
        }
        for (i, n) in self.names.iter().enumerate() {
            out.extend(domain(format!("dns.names[{i}].name"), &n.name));
            match n.service.split_once('/') {
                Some((ns, name)) if crate::is_dns_label(ns) && crate::is_dns_label(name) => {}
                _ => out.push((
                    format!("dns.names[{i}].service"),
                    format!("service {:?} must be written namespace/name", n.service),
                )),
            }
        }
        for (i, ns) in self.nameservers.iter().enumerate() {
            out.extend(domain(format!("dns.nameservers[{i}]"), &ns.name));
        }
        for (z, zone) in self.zones.iter().enumerate() {
            for (i, ns) in zone.nameservers.iter().enumerate() {
                out.extend(domain(format!("dns.zones[{z}].nameservers[{i}]"), &ns.name));
            }
        }
    }

    /// Numeric settings: negative TTL, the UDP threads' nice value, TCP limits and RRL.
    fn check_limits(&self, out: &mut Vec<(String, String)>) {
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
        self.rrl.validate(out);
        if self.tcp_write_timeout.is_zero() {
            out.push(("dns.tcp_write_timeout".into(), "tcp_write_timeout must be above zero".into()));
        }
        if self.tcp_max_connections == 0 {
            out.push(("dns.tcp_max_connections".into(), "tcp_max_connections must be at least 1".into()));
        }
    }
}

impl RrlConfig {
    fn validate(&self, out: &mut Vec<(String, String)>) {
        if self.responses_per_second == 0 {
            out.push(("dns.rrl.responses_per_second".into(), "responses_per_second must be at least 1".into()));
        }
        for (i, net) in self.exempt.iter().enumerate() {
            if net.parse::<ipnet::IpNet>().is_err() && net.parse::<IpAddr>().is_err() {
                out.push((format!("dns.rrl.exempt[{i}]"), format!("{net:?} is not a CIDR")));
            }
        }
        if self.ipv4_prefix > 32 || self.ipv6_prefix > 128 {
            out.push(("dns.rrl".into(), "ipv4_prefix must be 0..32 and ipv6_prefix 0..128".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "name = \"fed\"\ndns_zone = \"example.com\"\n[dns]\n";

    /// In-zone name servers need addresses; out-of-zone ones do not; the default
    /// `ns1.<zone>` takes the specific listen addresses, and wildcard-only listeners
    /// leave it unaddressed.
    #[test]
    fn in_zone_name_servers_need_addresses() {
        let cases: &[(&str, Option<&str>)] = &[
            ("listen = [\"127.0.0.1:53\"]", None),
            (
                "listen = [\"0.0.0.0:53\"]",
                Some("dns.nameservers: name server ns1.example.com is inside zone example.com"),
            ),
            ("listen = [\"0.0.0.0:53\"]\nnameservers = [\"ns.provider.example\"]", None),
            ("nameservers = [\"ns2.example.com\"]", Some("name server ns2.example.com is inside zone example.com")),
            ("nameservers = [{ name = \"ns2.example.com\", addresses = [\"192.0.2.1\", \"2001:db8::1\"] }]", None),
            ("nameservers = [{ name = \"ns2.example.com\", addresses = [\"not-an-ip\"] }]", Some("dns.nameservers")),
            (
                "listen = [\"0.0.0.0:53\"]\nnameservers = [\"ns.provider.example\"]\n\
                 [[dns.zones]]\nname = \"other.test\"\nnameservers = [\"ns.other.test\"]",
                Some("dns.zones[0].nameservers: name server ns.other.test is inside zone other.test"),
            ),
        ];
        crate::tests::check_sections(BASE, cases);
    }

    /// In a fleet the NS set must be given: the default names only this instance, at its
    /// own addresses, so two instances would answer different NS sets. Zones with their
    /// own name servers or a master file need nothing more; `[dns]` off needs nothing.
    #[test]
    fn a_fleet_needs_its_name_servers_listed() {
        let fleet = "[fleet]\nid = \"a\"\nregion = \"r1\"\nlisten = \"127.0.0.1:7946\"\nkey_file = \"fleet.key\"";
        let cases: Vec<(String, Option<&str>)> = vec![
            (
                format!("listen = [\"127.0.0.1:53\"]\n{fleet}"),
                Some("dns.nameservers: with [fleet], list every instance"),
            ),
            (
                format!("listen = [\"127.0.0.1:53\"]\nclusterset = {{ enabled = false }}\n{fleet}"),
                Some("(zones without a master file or their own nameservers: example.com)"),
            ),
            (
                format!(
                    "listen = [\"127.0.0.1:53\"]\nnameservers = [{{ name = \"ns1.example.com\", addresses = \
                     [\"192.0.2.1\"] }}, {{ name = \"ns2.example.com\", addresses = [\"192.0.2.2\"] }}]\n{fleet}"
                ),
                None,
            ),
            (format!("enabled = false\n{fleet}"), None),
            ("listen = [\"127.0.0.1:53\"]".into(), None),
        ];
        let cases: Vec<(&str, Option<&str>)> = cases.iter().map(|(s, e)| (s.as_str(), *e)).collect();
        crate::tests::check_sections(BASE, &cases);
    }

    /// `nsid` is 1 to 128 bytes; the cookie secret file must exist and hold exactly 32
    /// hex digits, and an error about it never shows what the file holds.
    #[test]
    fn nsid_and_cookie_secret_are_checked() {
        let dir = std::env::temp_dir().join(format!("meridian-config-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write");
            p.display().to_string()
        };
        let good = write("good", "00112233445566778899aabbccddeeff\n");
        let short = write("short", "0011223344556677");
        let bad = write("bad", "zz112233445566778899aabbccddeeff");
        let long = "x".repeat(129);
        let cases: Vec<(String, Option<&str>)> = vec![
            ("nsid = \"ns1.fra\"".into(), None),
            (format!("nsid = \"{}\"", "x".repeat(128)), None),
            (format!("nsid = \"{long}\""), Some("dns.nsid: nsid must be 1 to 128 bytes, not 129")),
            ("nsid = \"\"".into(), Some("dns.nsid")),
            (format!("cookie_secret_file = {good:?}"), None),
            (format!("cookie_secret_file = {short:?}"), Some("dns.cookie_secret_file: the cookie secret must be 32")),
            (format!("cookie_secret_file = {bad:?}"), Some("not a hex digit")),
            ("cookie_secret_file = \"/nonexistent/secret\"".into(), Some("dns.cookie_secret_file: cannot read")),
        ];
        let cases: Vec<(&str, Option<&str>)> = cases.iter().map(|(s, e)| (s.as_str(), *e)).collect();
        crate::tests::check_sections(BASE, &cases);
        let text = format!("{BASE}cookie_secret_file = {bad:?}\n");
        let err = Config::parse(&text, std::path::Path::new("t.toml"), std::path::Path::new(".")).expect_err("bad");
        assert!(!err.to_string().contains("zz1122"), "the secret is never shown: {err}");
        assert_eq!(parse_cookie_secret(" 00112233445566778899AABBCCDDEEFF\n").map(|k| k[15]), Ok(0xff));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn nameservers_of_a_zone_fall_back_in_order() {
        let text = format!(
            "{BASE}listen = [\"127.0.0.1:53\", \"[::1]:53\", \"0.0.0.0:54\"]\n\
             [[dns.zones]]\nname = \"other.test\"\nnameservers = [{{ name = \"NS.Other.Test.\", addresses = [\"192.0.2.9\"] }}]\n"
        );
        let c = Config::parse(&text, std::path::Path::new("t.toml"), std::path::Path::new(".")).expect("valid");
        let main = c.dns.nameservers_of("example.com");
        assert_eq!(main.len(), 1);
        assert_eq!(main[0].name, "ns1.example.com");
        assert_eq!(main[0].addresses, ["127.0.0.1".parse::<IpAddr>().expect("ip"), "::1".parse().expect("ip")]);
        let other = c.dns.nameservers_of("other.test.");
        assert_eq!(
            (other[0].name.as_str(), other[0].addresses.len()),
            ("ns.other.test", 1),
            "lower-cased, dot trimmed"
        );
        assert!(other[0].is_inside("other.test") && !other[0].is_inside("her.test"));
    }
}
