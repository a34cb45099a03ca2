//! `[lb]`: the L7 proxy behind the anycast VIP.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::{Config, Duration};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LbConfig {
    /// Run the proxy at all.
    pub enabled: bool,
    /// This instance's region: the proxy prefers backends there.
    pub region: Option<String>,
    /// Plain-HTTP listen addresses (HTTP/1.1 and h2c).
    pub listen: Vec<SocketAddr>,
    /// HTTPS listen addresses (ALPN h2 and http/1.1). With no `certificates`, a
    /// self-signed certificate is generated in memory at start, so a demo works out of the
    /// box; clients then need `-k`.
    pub listen_tls: Vec<SocketAddr>,
    /// Certificates, chosen by SNI; reloaded when the files change.
    pub certificates: Vec<CertificateConfig>,
    /// Host routes besides those the clusters' Ingresses define; they win over an
    /// Ingress for the same host and path.
    pub routes: Vec<RouteConfig>,
    /// Envoy's overprovisioning factor: a priority level keeps all traffic until fewer
    /// than 1/factor of its backends are healthy.
    pub overprovisioning_factor: f64,
    pub timeouts: LbTimeouts,
    pub retry: RetryConfig,
    pub outlier: OutlierConfig,
    pub limits: LbLimits,
}

impl Default for LbConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            region: None,
            listen: vec![SocketAddr::from(([127, 0, 0, 1], 8480))],
            listen_tls: vec![SocketAddr::from(([127, 0, 0, 1], 8443))],
            certificates: Vec::new(),
            routes: Vec::new(),
            overprovisioning_factor: 1.4,
            timeouts: LbTimeouts::default(),
            retry: RetryConfig::default(),
            outlier: OutlierConfig::default(),
            limits: LbLimits::default(),
        }
    }
}

/// One certificate and its key, PEM files (relative to the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// SNI names it serves (`*.example.com` matches one label). Empty: the default
    /// certificate, served when no name matches; otherwise the first one is the default.
    #[serde(default)]
    pub names: Vec<String>,
}

/// A host (and path prefix) routed to a federated service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Host name as clients send it in `Host`/`:authority`, without port.
    pub host: String,
    /// Path prefix; `/` matches everything.
    #[serde(default = "default_path")]
    pub path: String,
    /// `namespace/name` of the federated Service.
    pub service: String,
    /// Service port; the Service's first TCP port when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

fn default_path() -> String {
    "/".to_owned()
}

impl RouteConfig {
    /// The `(namespace, name)` of `service`, if it has that shape.
    pub fn service_key(&self) -> Option<(&str, &str)> {
        let (ns, name) = self.service.split_once('/')?;
        (!ns.is_empty() && !name.is_empty() && !name.contains('/')).then_some((ns, name))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LbTimeouts {
    /// TCP connect to a backend.
    pub connect: Duration,
    /// From sending a request to a backend until its response headers.
    pub first_byte: Duration,
    /// Longest pause inside a response body, and for pooled upstream connections.
    pub idle: Duration,
    /// A request's whole budget for response headers, retries included.
    pub overall: Duration,
    /// A client must send a complete request head within this (slowloris defence).
    pub header_read: Duration,
    /// Longest pause while reading a client's request body (slow-upload defence). The
    /// first-byte and overall timers start only once the body has been sent whole.
    pub body_read: Duration,
    /// Shutdown waits this long for in-flight requests.
    pub drain: Duration,
}

impl Default for LbTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(2),
            first_byte: Duration::from_secs(15),
            idle: Duration::from_secs(60),
            overall: Duration::from_secs(30),
            header_read: Duration::from_secs(10),
            body_read: Duration::from_secs(30),
            drain: Duration::from_secs(10),
        }
    }
}

/// Retries go to a different backend; Envoy's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries per request (attempts = 1 + this).
    pub max_retries: u32,
    /// Retries in flight may be at most this share of active requests…
    pub budget_percent: u32,
    /// …but this many are always allowed, so a quiet service can still retry.
    pub min_concurrent: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self { max_retries: 2, budget_percent: 20, min_concurrent: 3 }
    }
}

/// Passive health checking, as Envoy's outlier detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutlierConfig {
    /// Consecutive 5xx responses that eject a backend.
    pub consecutive_5xx: u32,
    /// Consecutive gateway failures (connect failure, reset, timeout, 502/503/504).
    pub consecutive_gateway_failures: u32,
    /// First ejection lasts this; the n-th consecutive one n times as long.
    pub base_ejection_time: Duration,
    pub max_ejection_time: Duration,
    /// At most this share of a priority level is ejected at once (one backend always may be).
    pub max_ejection_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_5xx: 5,
            consecutive_gateway_failures: 3,
            base_ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejection_percent: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LbLimits {
    /// Client connections at once over all listeners; more are closed at accept.
    pub max_connections: usize,
    /// Largest HTTP/1 request head (request line and headers); larger gets 431.
    pub max_header_bytes: usize,
    /// Most headers in one request.
    pub max_headers: usize,
}

impl Default for LbLimits {
    fn default() -> Self {
        Self { max_connections: 10_000, max_header_bytes: 16 * 1024, max_headers: 100 }
    }
}

impl LbConfig {
    pub(crate) fn validate(&self, config: &Config) -> Vec<(String, String)> {
        let mut out = Vec::new();
        self.check_region(config, &mut out);
        self.check_listeners(&mut out);
        self.check_certificates(&mut out);
        self.check_routes(&mut out);
        if !(self.overprovisioning_factor.is_finite() && (1.0..=10.0).contains(&self.overprovisioning_factor)) {
            out.push(("lb.overprovisioning_factor".into(), "overprovisioning_factor must be between 1 and 10".into()));
        }
        self.timeouts.validate(&mut out);
        if self.retry.budget_percent > 100 {
            out.push(("lb.retry.budget_percent".into(), "budget_percent must be 0..100".into()));
        }
        self.outlier.validate(&mut out);
        self.limits.validate(&mut out);
        out
    }

    /// A region no cluster is in, when every cluster's region is known.
    fn check_region(&self, config: &Config, out: &mut Vec<(String, String)>) {
        if let Some(r) = &self.region
            && !config.clusters.iter().any(|c| c.region.as_deref() == Some(r.as_str()))
            && !config.clusters.is_empty()
            && config.clusters.iter().all(|c| c.region.is_some())
        {
            out.push(("lb.region".into(), format!("no cluster is in region {r:?}")));
        }
    }

    /// At least one listener while enabled, and no address listed twice (port 0 excepted:
    /// each such listener gets its own port).
    fn check_listeners(&self, out: &mut Vec<(String, String)>) {
        if self.enabled && self.listen.is_empty() && self.listen_tls.is_empty() {
            out.push(("lb.listen".into(), "the proxy needs at least one `listen` or `listen_tls` address".into()));
        }
        let mut seen = std::collections::BTreeMap::new();
        for (field, addrs) in [("listen", &self.listen), ("listen_tls", &self.listen_tls)] {
            for (i, a) in addrs.iter().enumerate() {
                if a.port() != 0
                    && let Some(first) = seen.insert(*a, format!("lb.{field}[{i}]"))
                {
                    out.push((format!("lb.{field}[{i}]"), format!("address {a} is already used by {first}")));
                }
            }
        }
    }

    fn check_certificates(&self, out: &mut Vec<(String, String)>) {
        for (i, c) in self.certificates.iter().enumerate() {
            for (f, p) in [("cert", &c.cert), ("key", &c.key)] {
                if p.as_os_str().is_empty() {
                    out.push((format!("lb.certificates[{i}].{f}"), format!("{f} path is empty")));
                }
            }
            for n in &c.names {
                let bare = n.strip_prefix("*.").unwrap_or(n);
                if let Err(e) = crate::check_domain(bare) {
                    out.push((format!("lb.certificates[{i}].names"), e.to_string()));
                }
            }
        }
    }

    fn check_routes(&self, out: &mut Vec<(String, String)>) {
        for (i, r) in self.routes.iter().enumerate() {
            let p = |f: &str| format!("lb.routes[{i}].{f}");
            let bare = r.host.strip_prefix("*.").unwrap_or(&r.host);
            if let Err(e) = crate::check_domain(bare) {
                out.push((p("host"), e.to_string()));
            }
            if !r.path.starts_with('/') {
                out.push((p("path"), format!("path {:?} must start with '/'", r.path)));
            }
            if r.service_key().is_none() {
                out.push((p("service"), format!("service {:?} must be `namespace/name`", r.service)));
            }
            if r.port == Some(0) {
                out.push((p("port"), "port must be 1..65535".into()));
            }
        }
    }
}

impl LbTimeouts {
    /// The timeouts of a request must be above zero; `drain` may be zero (shutdown then
    /// waits for nothing).
    fn validate(&self, out: &mut Vec<(String, String)>) {
        for (f, d) in [
            ("connect", self.connect),
            ("first_byte", self.first_byte),
            ("idle", self.idle),
            ("overall", self.overall),
            ("header_read", self.header_read),
            ("body_read", self.body_read),
        ] {
            if d.is_zero() {
                out.push((format!("lb.timeouts.{f}"), format!("{f} timeout must be above zero")));
            }
        }
    }
}

impl OutlierConfig {
    fn validate(&self, out: &mut Vec<(String, String)>) {
        if self.max_ejection_percent > 100 {
            out.push(("lb.outlier.max_ejection_percent".into(), "max_ejection_percent must be 0..100".into()));
        }
        if self.max_ejection_time < self.base_ejection_time {
            out.push((
                "lb.outlier.max_ejection_time".into(),
                "max_ejection_time must be at least base_ejection_time".into(),
            ));
        }
    }
}

impl LbLimits {
    fn validate(&self, out: &mut Vec<(String, String)>) {
        if self.max_connections == 0 {
            out.push(("lb.limits.max_connections".into(), "max_connections must be at least 1".into()));
        }
        if !(8192..=1 << 20).contains(&self.max_header_bytes) {
            out.push(("lb.limits.max_header_bytes".into(), "max_header_bytes must be 8192..1048576".into()));
        }
        if self.max_headers == 0 {
            out.push(("lb.limits.max_headers".into(), "max_headers must be at least 1".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::Config;

    fn parse(lb: &str) -> Result<Config, Vec<String>> {
        let text = format!("name = \"t\"\ndns_zone = \"meridian.test\"\n[lb]\n{lb}");
        Config::parse(&text, Path::new("t.toml"), Path::new("/etc/meridian"))
            .map_err(|e| e.0.into_iter().map(|e| e.path).collect())
    }

    /// Defaults are valid and match Envoy's; every bad value names its field.
    #[test]
    fn defaults_and_field_paths_of_errors() {
        let c = parse("").unwrap_or_else(|e| unreachable!("{e:?}"));
        assert_eq!(c.lb.overprovisioning_factor, 1.4);
        assert_eq!(c.lb.retry.budget_percent, 20);
        assert_eq!(c.lb.outlier.max_ejection_percent, 10);
        let cases = [
            ("[[lb.routes]]\nhost = \"a..b\"\nservice = \"ns/web\"", "lb.routes[0].host"),
            ("[[lb.routes]]\nhost = \"a.b\"\nservice = \"web\"", "lb.routes[0].service"),
            ("[[lb.routes]]\nhost = \"a.b\"\npath = \"x\"\nservice = \"ns/web\"", "lb.routes[0].path"),
            ("overprovisioning_factor = 0.5", "lb.overprovisioning_factor"),
            ("[lb.timeouts]\nconnect = \"0s\"", "lb.timeouts.connect"),
            ("[lb.outlier]\nmax_ejection_percent = 101", "lb.outlier.max_ejection_percent"),
            ("[lb.limits]\nmax_header_bytes = 100", "lb.limits.max_header_bytes"),
            ("listen = [\"127.0.0.1:80\"]\nlisten_tls = [\"127.0.0.1:80\"]", "lb.listen_tls[0]"),
            ("[[lb.certificates]]\ncert = \"\"\nkey = \"k.pem\"", "lb.certificates[0].cert"),
        ];
        for (lb, path) in cases {
            assert_eq!(parse(lb).err(), Some(vec![path.to_owned()]), "{lb}");
        }
    }
}
