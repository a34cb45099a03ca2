//! Starting fleets of real instances on loopback for the tests.
//!
//! Each test uses its own 127.x.y.0/24 (`Net`), so tests running in parallel processes
//! never meet; gossip runs every 100 ms and peers go stale after 1 s unless a test says
//! otherwise, so a test takes a few seconds.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meridian_fleet::{Fleet, FleetConfig, Health, Quorum};
use tempfile::NamedTempFile;
use tokio_util::sync::CancellationToken;

pub(crate) const KEY: &str = "meridian-fleet-integration-test-shared-key-0123456789";
pub(crate) const GOSSIP: Duration = Duration::from_millis(100);
pub(crate) const STALE: Duration = Duration::from_secs(1);
/// Longest any convergence may take: generous, since the tests share two cores with
/// whatever else is building.
pub(crate) const PATIENCE: Duration = Duration::from_secs(20);

/// A key file that lives as long as the value.
pub(crate) struct KeyFile(NamedTempFile);

impl KeyFile {
    pub(crate) fn new(secret: &str) -> anyhow::Result<Self> {
        let mut f = NamedTempFile::new()?;
        writeln!(f, "{secret}")?;
        Ok(Self(f))
    }

    pub(crate) fn path(&self) -> &Path {
        self.0.path()
    }
}

/// A test's own loopback network.
pub(crate) struct Net {
    pub(crate) subnet: [u8; 2],
    pub(crate) key: KeyFile,
}

impl Net {
    pub(crate) fn new(subnet: [u8; 2]) -> anyhow::Result<Self> {
        Ok(Self { subnet, key: KeyFile::new(KEY)? })
    }

    pub(crate) fn ip(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.subnet[0], self.subnet[1], host))
    }

    /// The configuration of instance `id` on host `host`.
    pub(crate) fn config(&self, id: &str, region: &str, host: u8, seeds: &[SocketAddr], quorum: Quorum) -> FleetConfig {
        FleetConfig {
            key_file: Some(self.key.path().to_path_buf()),
            seeds: seeds.iter().map(ToString::to_string).collect(),
            quorum,
            stale_after: STALE,
            gossip_interval: GOSSIP,
            ..FleetConfig::new(id, region, SocketAddr::new(self.ip(host), 0))
        }
    }

    pub(crate) async fn start(
        &self,
        id: &str,
        region: &str,
        host: u8,
        seeds: &[SocketAddr],
        quorum: Quorum,
    ) -> anyhow::Result<Node> {
        Node::start(&self.config(id, region, host, seeds, quorum)).await
    }
}

/// A running instance and the token that stops it.
pub(crate) struct Node {
    pub(crate) fleet: Fleet,
    pub(crate) cancel: CancellationToken,
}

impl Node {
    pub(crate) async fn start(config: &FleetConfig) -> anyhow::Result<Node> {
        let cancel = CancellationToken::new();
        let fleet = Fleet::start(config, cancel.clone()).await.with_context(|| format!("starting {}", config.id))?;
        Ok(Node { fleet, cancel })
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.fleet.local_addr()
    }

    /// Stops the instance and waits until its socket is closed.
    pub(crate) async fn stop(&self) -> anyhow::Result<()> {
        self.cancel.cancel();
        tokio::time::timeout(PATIENCE, self.fleet.stopped()).await.context("the fleet did not stop")
    }

    /// Ids of the instances this one counts as alive.
    pub(crate) fn alive(&self) -> Vec<String> {
        self.fleet.instances().into_iter().filter(|i| i.alive).map(|i| i.id).collect()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// Waits until `check` holds, polling every 20 ms; fails after `within`, with what
/// `check` last said.
pub(crate) async fn eventually(
    what: &str,
    within: Duration,
    mut check: impl FnMut() -> Result<(), String>,
) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let last = match check() {
            Ok(()) => return Ok(start.elapsed()),
            Err(why) => why,
        };
        if start.elapsed() > within {
            bail!("{what}: not within {within:?}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `Ok` when every node holds `want` for `addr`, with `counted` counted ballots.
pub(crate) fn all_agree(nodes: &[&Node], addr: SocketAddr, want: Health, counted: usize) -> Result<(), String> {
    for n in nodes {
        let v = n.fleet.verdict(addr);
        if v.health != want || v.up + v.down != counted {
            return Err(format!(
                "{} sees {addr} {:?} from {} ballots: {:?}",
                n.fleet.id(),
                v.health,
                v.up + v.down,
                v.seen_by
            ));
        }
    }
    Ok(())
}

/// A shard address for test case `i`.
pub(crate) fn backend(i: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, (i >> 8) as u8, i as u8)), 443)
}
