//! The resolver (hickory's, built from the configuration) and one lookup of a name's A
//! and AAAA records, each under a deadline.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError, NoRecords};
use hickory_resolver::proto::rr::RData;

use super::state::Answer;

/// A query's wait for one server's answer (resolv.conf's `timeout`, if lower, wins).
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The whole lookup of one family, retries and servers included: a silent resolver holds
/// one lookup slot this long at most.
pub(crate) const LOOKUP_DEADLINE: Duration = Duration::from_secs(5);

/// Where names are resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ResolverSettings {
    /// `discovery.lb_name_servers`; empty means the system's (`/etc/resolv.conf`).
    pub(crate) name_servers: Vec<SocketAddr>,
}

/// Why no resolver could be built. Lookups fail until one can.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    #[error("cannot read the system's resolver configuration (/etc/resolv.conf)")]
    SystemConfig(#[source] NetError),
    #[error("cannot build the resolver of load-balancer hostnames")]
    Build(#[source] NetError),
}

/// Builds a resolver that asks only DNS: no hosts file, no cache of its own (the caller
/// is the cache, and refreshes by the TTL), and short timeouts.
pub(crate) fn build(settings: &ResolverSettings) -> Result<TokioResolver, BuildError> {
    let mut builder = if settings.name_servers.is_empty() {
        TokioResolver::builder_tokio().map_err(BuildError::SystemConfig)?
    } else {
        let servers = settings.name_servers.iter().map(|a| name_server(*a)).collect();
        let config = ResolverConfig::from_parts(None, Vec::new(), servers);
        TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
    };
    let opts = builder.options_mut();
    opts.timeout = opts.timeout.min(QUERY_TIMEOUT);
    opts.attempts = opts.attempts.clamp(1, 2);
    opts.cache_size = 0;
    opts.use_hosts_file = ResolveHosts::Never;
    builder.build().map_err(BuildError::Build)
}

/// One configured server, over UDP and (for truncated answers) TCP on its port.
fn name_server(addr: SocketAddr) -> NameServerConfig {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
}

/// Looks `name` (a checked hostname, see `name::check`) up: A and AAAA at once, each
/// under [`LOOKUP_DEADLINE`].
pub(crate) async fn lookup(resolver: &TokioResolver, name: &str) -> (Answer, Answer) {
    // Fully qualified: no search list or `ndots` rule applies to a cluster's name.
    let fqdn = format!("{name}.");
    let (v4, v6) = tokio::join!(
        tokio::time::timeout(LOOKUP_DEADLINE, resolver.ipv4_lookup(fqdn.as_str())),
        tokio::time::timeout(LOOKUP_DEADLINE, resolver.ipv6_lookup(fqdn.as_str())),
    );
    let deadline = || Answer::Failed(format!("no answer within {LOOKUP_DEADLINE:?}"));
    (v4.map_or_else(|_| deadline(), answer), v6.map_or_else(|_| deadline(), answer))
}

/// What one query's result means for the name.
fn answer(result: Result<Lookup, NetError>) -> Answer {
    match result {
        Ok(lookup) => addresses(&lookup),
        Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords { response_code, negative_ttl, .. }))) => {
            let nx = response_code == hickory_resolver::proto::op::ResponseCode::NXDomain;
            Answer::Absent { nx, ttl: negative_ttl.map(|t| Duration::from_secs(u64::from(t))) }
        }
        Err(e) => Answer::Failed(e.to_string()),
    }
}

/// The usable addresses of an answer and its lowest TTL. An address no load balancer can
/// have (unspecified, multicast, broadcast) is left out; an answer with none left is an
/// empty one.
fn addresses(lookup: &Lookup) -> Answer {
    let mut addrs = Vec::new();
    let mut ttl = u32::MAX;
    for r in lookup.answers() {
        ttl = ttl.min(r.ttl);
        let ip = match &r.data {
            RData::A(a) => IpAddr::V4(a.0),
            RData::AAAA(a) => IpAddr::V6(a.0),
            _ => continue,
        };
        let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
        if !ip.is_unspecified() && !ip.is_multicast() && !broadcast {
            addrs.push(ip);
        }
    }
    if addrs.is_empty() {
        return Answer::Absent { nx: false, ttl: None };
    }
    Answer::Addrs(addrs, Duration::from_secs(u64::from(ttl)))
}
