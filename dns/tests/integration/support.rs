//! Starting a server over an in-memory table, and running dig/kdig against it.

use std::net::{IpAddr, SocketAddr};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use meridian_config::Config;
use meridian_dns::DnsServer;
use meridian_model::table::{ClusterMeta, Endpoint, ObjectKey, Port, Protocol, Shard, Table, TableWriter, Update};
use prometheus_client::registry::Registry;

pub(crate) struct Env {
    pub(crate) server: DnsServer,
    pub(crate) writer: TableWriter,
    pub(crate) addr: SocketAddr,
}

/// The demo's three clusters.
pub(crate) fn clusters() -> Vec<Arc<ClusterMeta>> {
    [
        ("us-east", "us-east1", "us-east1-b"),
        ("eu-west", "europe-west1", "europe-west1-b"),
        ("ap-south", "asia-south1", "asia-south1-a"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (n, r, z))| {
        Arc::new(ClusterMeta { region: Some((*r).into()), zone: Some((*z).into()), ..ClusterMeta::new(n, i) })
    })
    .collect()
}

pub(crate) fn cluster(name: &str) -> Arc<ClusterMeta> {
    clusters().into_iter().find(|c| &*c.name == name).expect("known cluster")
}

/// A LoadBalancer shard with `ready` ready endpoints.
pub(crate) fn shard(cluster_name: &str, addrs: &[&str], ready: u32) -> Shard {
    let addresses = addrs.iter().map(|a| a.parse::<IpAddr>().expect("ip")).collect();
    Shard {
        ports: vec![Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp }],
        ready_endpoints: ready,
        total_endpoints: ready.max(1),
        ..Shard::new(cluster(cluster_name), addresses)
    }
}

pub(crate) fn endpoint(ip: &str, hostname: Option<&str>, ready: bool) -> Endpoint {
    Endpoint { addresses: vec![ip.parse().expect("ip")], hostname: hostname.map(Into::into), ready, ports: vec![] }
}

pub(crate) fn svc(cluster: &str, ns: &str, name: &str, shard: Shard) -> Update {
    Update::Service { cluster: cluster.into(), key: ObjectKey::new(ns, name), shard: Some(shard) }
}

/// The demo config on [`listen_addr`].
pub(crate) fn config() -> Config {
    let mut c = Config::demo();
    c.dns.listen = vec![listen_addr()];
    c
}

/// An ephemeral port on a random loopback address other than 127.0.0.1.
///
/// Not 127.0.0.1: dig sets `SO_REUSEPORT` on its sockets and lets the kernel pick the
/// port, and the kernel may then hand it the server's own ephemeral port (both run as
/// root, and the fast path's sockets have `SO_REUSEPORT` too). dig then connects
/// 127.0.0.1:P to 127.0.0.1:P and its query comes back to itself, as a "response" with
/// no QR flag and no answer — about one query in 28,000. With the server on another
/// address the query can only reach the server.
pub(crate) fn listen_addr() -> SocketAddr {
    SocketAddr::from((meridian_testkit::addr::loopback_ip(53), 0))
}

pub(crate) async fn start(config: Config, updates: Vec<Update>) -> Env {
    let (table, mut writer) = Table::new();
    let mut all: Vec<Update> = clusters().into_iter().map(Update::Cluster).collect();
    all.extend(updates);
    writer.apply(all);
    let mut registry = Registry::default();
    let server = DnsServer::start(&config, table, &mut registry, Default::default()).await.expect("server starts");
    let addr = server.local_addrs()[0];
    Env { server, writer, addr }
}

fn tool(bin: &str, package: &str, addr: SocketAddr, args: &[&str]) -> String {
    let server = format!("@{}", addr.ip());
    let port = addr.port().to_string();
    let mut cmd = Command::new(bin);
    let timing: &[&str] = if bin == "kdig" { &["+timeout=2", "+retry=0"] } else { &["+time=2", "+tries=1"] };
    cmd.args([server.as_str(), "-p", port.as_str(), "+norec"]).args(timing).args(args);
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) => panic!("cannot run {bin} ({e}): install it with `apt-get install -y {package}`"),
    };
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs dig against the server.
pub(crate) fn dig(env: &Env, args: &[&str]) -> String {
    tool("dig", "dnsutils", env.addr, args)
}

/// Runs dig against a server at `addr`.
pub(crate) fn dig_at(addr: SocketAddr, args: &[&str]) -> String {
    tool("dig", "dnsutils", addr, args)
}

/// Runs kdig against a server at `addr`.
pub(crate) fn kdig_at(addr: SocketAddr, args: &[&str]) -> String {
    tool("kdig", "knot-dnsutils", addr, args)
}

/// The GeoLite2 City database `scripts/test` downloads (`$MERIDIAN_GEOIP_DB`, else its
/// cache). Tests that need it fail with how to get it rather than pass untested.
pub(crate) fn geolite2() -> std::path::PathBuf {
    let path = std::env::var_os("MERIDIAN_GEOIP_DB").map(std::path::PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".cache/meridian/GeoLite2-City.mmdb"))
    });
    match path {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "GeoLite2-City.mmdb not found: set MERIDIAN_GEOIP_DB or run scripts/test, which downloads it \
             (pip download maxminddb-geolite2) to ~/.cache/meridian/"
        ),
    }
}

/// Runs kdig against the server.
pub(crate) fn kdig(env: &Env, args: &[&str]) -> String {
    tool("kdig", "knot-dnsutils", env.addr, args)
}

/// The `status:` of a dig/kdig answer.
pub(crate) fn status(out: &str) -> String {
    out.split("status: ").nth(1).and_then(|s| s.split([',', ';']).next()).unwrap_or("<none>").trim().to_owned()
}

/// The header flags (`qr aa`), from dig's `;; flags: qr aa rd;` line.
pub(crate) fn flags(out: &str) -> Vec<String> {
    out.lines()
        .find_map(|l| l.split(";; flags: ").nth(1).or_else(|| l.split(";; Flags: ").nth(1)))
        .map(|f| f.split(';').next().unwrap_or("").split_whitespace().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Records of one section (`ANSWER`, `AUTHORITY`) as (name, ttl, type, data).
pub(crate) fn section(out: &str, name: &str) -> Vec<(String, u32, String, String)> {
    let header = format!(";; {name} SECTION:");
    let kheader = format!(";; {name} SECTION:").to_uppercase();
    let mut lines =
        out.lines().skip_while(|l| !l.starts_with(&header) && !l.to_uppercase().starts_with(&kheader)).skip(1);
    let mut recs = Vec::new();
    for l in lines.by_ref() {
        if l.trim().is_empty() || l.starts_with(";;") {
            break;
        }
        let f: Vec<&str> = l.split_whitespace().collect();
        if f.len() >= 5 {
            recs.push((f[0].to_owned(), f[1].parse().unwrap_or(0), f[3].to_owned(), f[4..].join(" ")));
        }
    }
    recs
}

/// Data of the answer records of `rtype`, sorted.
pub(crate) fn answers(out: &str, rtype: &str) -> Vec<String> {
    let mut v: Vec<String> = section(out, "ANSWER").into_iter().filter(|r| r.2 == rtype).map(|r| r.3).collect();
    v.sort();
    v
}

/// A raw query packet (id 0x1234) with optional EDNS payload size.
pub(crate) fn query(name: &str, qtype: u16, edns: Option<u16>) -> Vec<u8> {
    let mut p = vec![0x12, 0x34, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns.is_some())];
    for label in name.trim_end_matches('.').split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.push(0);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&1u16.to_be_bytes());
    if let Some(size) = edns {
        p.extend_from_slice(&[0, 0, 41]);
        p.extend_from_slice(&size.to_be_bytes());
        p.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    p
}

/// Sends one UDP packet, returns the reply (None after a short wait).
pub(crate) async fn udp(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    sock.send_to(packet, addr).await.expect("send");
    let mut buf = vec![0u8; 65535];
    match tokio::time::timeout(Duration::from_millis(500), sock.recv_from(&mut buf)).await {
        Ok(Ok((n, _))) => Some(buf[..n].to_vec()),
        _ => None,
    }
}

pub(crate) fn rcode_of(reply: &[u8]) -> u8 {
    reply[3] & 0x0F
}
