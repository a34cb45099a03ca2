//! Observations travel in groups of addresses (one chitchat key per group): a forgotten
//! address must leave its peers' views while the addresses sharing its group stay, and a
//! group emptied by forgetting must leave nothing behind.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use meridian_fleet::{Health, Quorum};

use crate::support::{Net, Node, PATIENCE, eventually};

/// Enough that most groups hold several addresses (8,192 groups).
const ADDRESSES: u32 = 30_000;

fn addr(i: u32) -> SocketAddr {
    let [_, b, c, d] = i.to_be_bytes();
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, b, c, d)), 443)
}

fn held(b: &Node) -> usize {
    b.fleet.instances().into_iter().find(|i| i.id == "a").map_or(0, |i| i.observations)
}

/// `Ok` once `b` holds exactly `n` of a's observations.
fn holds(b: &Node, n: usize) -> impl FnMut() -> Result<(), String> + '_ {
    move || if held(b) == n { Ok(()) } else { Err(format!("b holds {} of a's observations, not {n}", held(b))) }
}

/// Forgetting every third address withdraws exactly those from the peer; then forgetting
/// the rest empties every group and the peer holds none of them.
#[tokio::test]
async fn forgotten_addresses_leave_their_group_mates() -> anyhow::Result<()> {
    let net = Net::new([7, 1])?;
    let a = net.start("a", "eu", 1, &[], Quorum::Majority).await?;
    let b = net.start("b", "eu", 2, &[a.addr()], Quorum::Majority).await?;
    for i in 0..ADDRESSES {
        a.fleet.observe(addr(i), true, None);
    }
    eventually("catch-up", PATIENCE, holds(&b, ADDRESSES as usize)).await?;

    for i in (0..ADDRESSES).step_by(3) {
        a.fleet.forget(addr(i));
    }
    let kept = ADDRESSES as usize - ADDRESSES.div_ceil(3) as usize;
    eventually("forgotten withdrawn", PATIENCE, holds(&b, kept)).await?;
    for i in 0..30 {
        let want = if i % 3 == 0 { Health::Unknown } else { Health::Up };
        assert_eq!(b.fleet.health(addr(i)), want, "address {i}");
    }

    for i in 0..ADDRESSES {
        a.fleet.forget(addr(i));
    }
    eventually("all withdrawn", PATIENCE, holds(&b, 0)).await?;
    assert!(b.fleet.verdicts().is_empty(), "b still has verdicts: {:?}", b.fleet.verdicts().first());
    Ok(())
}
