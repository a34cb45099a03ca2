//! What an address costs on the wire, measured: the bytes a new instance receives to
//! catch up with a peer's observations, and the bytes one changed observation costs
//! afterwards. Run with `--nocapture` to see the figures.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use meridian_fleet::config::{DEFAULT_GOSSIP_INTERVAL, DEFAULT_STALE_AFTER};
use meridian_fleet::{FleetConfig, Quorum};

use crate::support::{Net, Node, PATIENCE, eventually};

const ADDRESSES: u32 = 20_000;
const CHANGES: u32 = 1_000;
/// Bounds the figures must stay under. Measured (debug build, loopback): 12 bytes per
/// address to catch up and 24 per change in a batch of 1,000 (fleet/README.md); the
/// bounds leave room for rounds that overlap and send a delta twice. A change rewrites
/// its group (8,192 groups, so 2.4 addresses each here): about 10 compressed bytes per
/// entry, so twice the group. A resend of the state would be 240 bytes per change.
const MAX_CATCH_UP_BYTES: u64 = 36;
const MAX_CHANGE_BYTES: u64 = 50;

/// Every seventh address starts down; the changes flip some.
fn initially_up(i: u32) -> bool {
    !i.is_multiple_of(7)
}

fn addr(i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b, c, d)), 443 + (i % 3) as u16)
}

/// Observations of `ADDRESSES` addresses cross to a new instance for a few bytes each,
/// and a change costs tens of bytes, not a resend of the state.
#[tokio::test]
async fn bytes_per_address() -> anyhow::Result<()> {
    let net = Net::new([6, 1])?;
    // The default gossip interval: the figures depend on it (faster rounds overlap and
    // may send the same delta twice while the receiver's digest lags).
    let config = |id, region, host, seeds: &[SocketAddr]| FleetConfig {
        gossip_interval: DEFAULT_GOSSIP_INTERVAL,
        stale_after: DEFAULT_STALE_AFTER,
        ..net.config(id, region, host, seeds, Quorum::Majority)
    };
    let a = Node::start(&config("a", "eu", 1, &[])).await?;
    for i in 0..ADDRESSES {
        let rtt = Duration::from_micros(u64::from(800 + i % 40_000));
        a.fleet.observe(addr(i), initially_up(i), Some(rtt));
    }
    // Let a write them into its chitchat keys before anyone asks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let b = Node::start(&config("b", "us", 2, &[a.addr()])).await?;
    let full = |n: u32| {
        let b = &b;
        move || {
            let seen = b.fleet.instances().into_iter().find(|i| i.id == "a").map_or(0, |i| i.observations);
            if seen >= n as usize { Ok(()) } else { Err(format!("b has {seen} of a's observations")) }
        }
    };
    eventually("catch-up", PATIENCE, full(ADDRESSES)).await?;
    eventually("caught up", PATIENCE, || if b.fleet.caught_up() { Ok(()) } else { Err("not caught up".into()) })
        .await?;
    let received = b.fleet.transport_stats().bytes_received;
    let per_address = received / u64::from(ADDRESSES);
    eprintln!(
        "catch-up: {received} bytes for {ADDRESSES} addresses = {per_address} B/address ({} datagrams from a, {} split)",
        a.fleet.transport_stats().datagrams_sent,
        a.fleet.transport_stats().split_messages,
    );
    assert!(per_address <= MAX_CATCH_UP_BYTES, "{per_address} bytes per address");

    // Let the catch-up's last deltas land, then measure the idle rate: digests and
    // heartbeats only.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_start = (Instant::now(), b.fleet.transport_stats().bytes_received);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle = b.fleet.transport_stats().bytes_received - idle_start.1;
    let idle_rate = idle as f64 / idle_start.0.elapsed().as_secs_f64();
    eprintln!("idle: {idle_rate:.0} B/s between two instances");

    // Flip some: each change goes out once, in a delta.
    let (start, before) = (Instant::now(), b.fleet.transport_stats().bytes_received);
    for i in 0..CHANGES {
        a.fleet.observe(addr(i * 11), !initially_up(i * 11), None);
    }
    eventually("changes arrive", PATIENCE, || {
        let last = (CHANGES - 1) * 11;
        match b.fleet.verdict(addr(last)).by("a") {
            Some(s) if s.up != initially_up(last) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    // Duplicates in flight count too: they are what a change costs.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let total = b.fleet.transport_stats().bytes_received - before;
    let spent = total.saturating_sub((idle_rate * start.elapsed().as_secs_f64()) as u64);
    let per_change = spent / u64::from(CHANGES);
    eprintln!(
        "changes: {total} bytes in {:?}, {spent} above idle, for {CHANGES} changes = {per_change} B/change",
        start.elapsed()
    );
    assert!(per_change <= MAX_CHANGE_BYTES, "{per_change} bytes per change");
    // Changed observations of known addresses leave the count unchanged; b still sees
    // a as caught up (the count key's value moves with every publication).
    eventually("caught up after the changes", PATIENCE, || {
        if b.fleet.caught_up() { Ok(()) } else { Err("b lists a as not synced".into()) }
    })
    .await?;
    Ok(())
}
