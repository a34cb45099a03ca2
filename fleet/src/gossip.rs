//! Starting and stopping chitchat for a fleet: its configuration from `[fleet]`, the
//! keys an instance starts with, and deadlines on both ends.

use std::net::SocketAddr;
use std::time::Duration;

use chitchat::{ChitchatConfig, ChitchatHandle, ChitchatId, FailureDetectorConfig, ProtocolVersion, spawn_chitchat};

use crate::config::FleetConfig;
use crate::error::{Error, Result};
use crate::obs;
use crate::transport::AuthTransport;
use crate::view::Me;

/// chitchat refuses peers of another cluster id; the key already separates fleets, so
/// this only names the protocol.
const CLUSTER_ID: &str = "meridian-fleet";
/// How long chitchat keeps a dead instance's state before forgetting it: long enough
/// for `meridian status` to show an instance that went away, short enough not to
/// carry 100,000 of its keys for a day (chitchat's default).
const DEAD_NODE_GRACE: Duration = Duration::from_secs(3600);
/// How long a forgotten address's tombstone is kept; a peer cut off for longer is sent
/// this instance's state afresh.
const TOMBSTONE_GRACE: Duration = Duration::from_secs(3600);
/// Starting chitchat resolves seed host names; a resolver that does not answer must not
/// hold `start` forever.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// Shutdown waits this long for chitchat's task to end (it only has to leave its loop).
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(5);

/// Starts chitchat on `transport`, bound at `listen`.
pub(crate) async fn spawn(
    config: &FleetConfig,
    me: &Me,
    transport: AuthTransport,
    listen: SocketAddr,
) -> Result<ChitchatHandle> {
    let cc = chitchat_config(config, me, listen);
    match tokio::time::timeout(START_DEADLINE, spawn_chitchat(cc, initial_keys(config), &transport)).await {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(Error::Gossip { addr: listen, reason: format!("{e:#}") }),
        Err(_) => Err(Error::Gossip { addr: listen, reason: "seed resolution timed out".into() }),
    }
}

/// Stops chitchat's task. It drops its socket before it reports the end; past the
/// deadline it is aborted, so it never outlives the fleet.
pub(crate) async fn stop(handle: ChitchatHandle) {
    let _ = handle.initiate_shutdown();
    if tokio::time::timeout(SHUTDOWN_DEADLINE, handle.termination_watcher()).await.is_err() {
        tracing::warn!("fleet: gossip did not stop within {SHUTDOWN_DEADLINE:?}; aborting it");
    }
    handle.abort();
}

fn chitchat_config(config: &FleetConfig, me: &Me, listen: SocketAddr) -> ChitchatConfig {
    ChitchatConfig {
        chitchat_id: ChitchatId::new(me.id.clone(), me.generation, me.gossip_addr),
        cluster_id: CLUSTER_ID.to_owned(),
        gossip_interval: config.gossip_interval,
        listen_addr: listen,
        seed_nodes: config.seeds.clone(),
        // chitchat's own liveness only picks whom to gossip with; verdicts use
        // `stale_after` (see `view`).
        failure_detector_config: FailureDetectorConfig {
            initial_interval: config.gossip_interval,
            max_interval: config.stale_after,
            dead_node_grace_period: DEAD_NODE_GRACE,
            ..FailureDetectorConfig::default()
        },
        marked_for_deletion_grace_period: TOMBSTONE_GRACE,
        catchup_callback: None,
        extra_liveness_predicate: None,
        // Every instance runs this crate's chitchat: the compressed digest is understood.
        protocol_version: ProtocolVersion::V1,
    }
}

fn initial_keys(config: &FleetConfig) -> Vec<(String, String)> {
    let mut keys =
        vec![(obs::FORMAT_KEY.to_owned(), obs::FORMAT.to_owned()), (obs::REGION_KEY.to_owned(), config.region.clone())];
    if let Some(loc) = &config.location {
        keys.push((obs::LOCATION_KEY.to_owned(), obs::location_value(loc)));
    }
    keys
}
