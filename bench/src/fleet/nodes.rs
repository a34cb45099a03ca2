//! The instances of the fleet benchmark: their addresses on loopback, their
//! configuration, and what their admin endpoints report (gossip counters, fleet status).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::Value;

use crate::harness::{self, Server};
use crate::simhost;

/// Probes of the clusters whose backends die and flap, as issue 17 sets them.
const FAST_HEALTH: &str =
    "kind = \"tcp\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\nhealthy_threshold = 2";
/// The gossip settings: `[fleet]`'s defaults, written out so the table can name them.
pub(super) const GOSSIP_INTERVAL: &str = "500ms";
pub(super) const STALE_AFTER: &str = "5s";
/// Every instance shares this key (the length `[fleet]` asks for, at least 32 bytes).
const KEY: &str = "meridian-bench-fleet-shared-key-0123456789abcdefghij";

/// One instance's three listening addresses, all on one loopback IP.
#[derive(Clone, Copy)]
pub(super) struct Addrs {
    pub(super) dns: SocketAddr,
    pub(super) admin: SocketAddr,
    pub(super) gossip: SocketAddr,
}

impl Addrs {
    /// A random loopback IP (away from the simulator's pools) with a DNS port free for TCP
    /// and UDP, an admin port and a gossip port. The sockets are held together while the
    /// ports are chosen, so the three differ.
    pub(super) fn pick() -> Result<Addrs> {
        let dns = meridian_testkit::addr::free_addr();
        let (_tcp, _udp) = (TcpListener::bind(dns)?, UdpSocket::bind(dns)?);
        let ip: IpAddr = dns.ip();
        let admin_l = TcpListener::bind((ip, 0))?;
        let gossip_s = UdpSocket::bind((ip, 0))?;
        Ok(Addrs { dns, admin: admin_l.local_addr()?, gossip: gossip_s.local_addr()? })
    }
}

/// What every instance's configuration shares.
pub(super) struct Layout<'a> {
    pub(super) kubeconfig: &'a Path,
    pub(super) clusters: usize,
    /// `[health.clusters.<name>]` bodies by cluster index; the others take [`FAST_HEALTH`].
    pub(super) overrides: &'a [(usize, String)],
    pub(super) key_file: &'a Path,
    pub(super) addrs: &'a [Addrs],
    /// `[fleet] socket_buffer_bytes`, when `--socket-buffer` sets it.
    pub(super) socket_buffer: Option<usize>,
}

/// Writes the shared key where `key_file` says.
pub(super) fn write_key(path: &Path) -> Result<()> {
    std::fs::write(path, format!("{KEY}\n")).with_context(|| format!("cannot write {}", path.display()))
}

/// Instance `me`'s `meridian serve` configuration: every cluster, its own listeners, and
/// `[fleet]` with every other instance as a seed, quorum `majority`.
pub(super) fn config(l: &Layout<'_>, me: usize) -> String {
    let a = &l.addrs[me];
    let mut t = format!("name = \"{}\"\ndns_zone = \"{}\"\n\n", simhost::FEDERATION, simhost::ZONE);
    t.push_str(&simhost::clusters_toml(l.kubeconfig, l.clusters));
    // A fleet must list its name servers; the bench never asks for them.
    let _ = writeln!(
        t,
        "[dns]\nlisten = [\"{}\"]\nnameservers = [\"ns.fleet-bench.example\"]\n\n[admin]\nlisten = \"{}\"\n",
        a.dns, a.admin
    );
    let _ = writeln!(t, "[health]\n{FAST_HEALTH}\n");
    for (i, body) in l.overrides {
        let _ = writeln!(t, "[health.clusters.{}]\n{body}\n", simhost::cluster_name(*i));
    }
    let seeds: Vec<String> =
        l.addrs.iter().enumerate().filter(|(i, _)| *i != me).map(|(_, o)| format!("\"{}\"", o.gossip)).collect();
    let _ = writeln!(
        t,
        "[fleet]\nid = \"{id}\"\nregion = \"fr{me}\"\nlisten = \"{}\"\nseeds = [{}]\nkey_file = \"{}\"\n\
         quorum = \"majority\"\ngossip_interval = \"{GOSSIP_INTERVAL}\"\nstale_after = \"{STALE_AFTER}\"\n",
        a.gossip,
        seeds.join(", "),
        l.key_file.display(),
        id = node_id(me),
    );
    if let Some(bytes) = l.socket_buffer {
        let _ = writeln!(t, "socket_buffer_bytes = {bytes}\n");
    }
    let _ = writeln!(t, "[log]\nlevel = \"warn\"");
    t
}

/// The `[health]` settings of the fast clusters, for the report.
pub(super) fn fast_health() -> String {
    FAST_HEALTH.replace('\n', ", ")
}

pub(super) fn node_id(i: usize) -> String {
    format!("f{i}")
}

/// One running instance.
pub(super) struct Node {
    pub(super) id: String,
    pub(super) addrs: Addrs,
    pub(super) server: Server,
}

impl Node {
    /// Starts instance `me` of `layout` on both cores, its state in `dir`.
    pub(super) fn start(bin: &Path, layout: &Layout<'_>, me: usize, dir: &Path) -> Result<Node> {
        std::fs::create_dir_all(dir)?;
        let id = node_id(me);
        let server = Server::meridian_on(&id, bin, "0,1", &config(layout, me), dir)?;
        Ok(Node { id, addrs: layout.addrs[me], server })
    }

    pub(super) fn counters(&self) -> Option<Counters> {
        let m = harness::http_get(self.addrs.admin, "/metrics")?;
        let get = |name: &str| harness::metric(&m, name).unwrap_or(0.0);
        Some(Counters {
            sent: get("meridian_fleet_sent_bytes_total"),
            received: get("meridian_fleet_received_bytes_total"),
            datagrams: get("meridian_fleet_datagrams_sent_total"),
            verdict_changes: get("meridian_fleet_verdict_changes_total"),
            cpu_secs: self.server.cpu_secs(),
        })
    }

    pub(super) fn fleet_status(&self) -> Option<Value> {
        serde_json::from_str(&harness::http_get(self.addrs.admin, "/api/v1/fleet")?).ok()
    }

    /// This instance sees all `instances` alive, holds `addresses` observations of each
    /// (its own and every peer's, as gossip delivered them), and a verdict on each
    /// address; else what it is still missing.
    ///
    /// Not `synced`: a peer counts as synced only while its count key is its newest, and
    /// an RTT-only republication (no new address, so the count is unchanged and not
    /// rewritten) leaves it older for good: under load, peers stayed unsynced with every
    /// observation here.
    pub(super) fn converged(&self, instances: usize, addresses: usize) -> Result<(), String> {
        let s = self.fleet_status().ok_or("no /api/v1/fleet")?;
        let list = s["instances"].as_array().map(Vec::as_slice).unwrap_or_default();
        let ready = |i: &Value| i["alive"] == true && i["observations"].as_u64() == Some(addresses as u64);
        let judged = s["up"].as_u64().unwrap_or(0) + s["down"].as_u64().unwrap_or(0);
        let done = list.iter().filter(|i| ready(i)).count();
        if list.len() == instances && done == instances && judged == addresses as u64 {
            return Ok(());
        }
        Err(format!("{}: {done} of {instances} instances complete, {judged} of {addresses} verdicts", self.id))
    }
}

/// Cumulative counters of one instance (`/metrics`) and its CPU time.
#[derive(Clone, Copy, Default)]
pub(super) struct Counters {
    pub(super) sent: f64,
    pub(super) received: f64,
    pub(super) datagrams: f64,
    pub(super) verdict_changes: f64,
    pub(super) cpu_secs: f64,
}
