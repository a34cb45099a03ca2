use std::time::{Duration, Instant};

use meridian_fleet::{Health, Quorum};

use crate::support::{GOSSIP, Net, PATIENCE, all_agree, backend, eventually};

/// A stopped instance keeps counting until `stale_after` has passed since its last
/// heartbeat, then drops out of the alive set, and its observations stop counting:
/// here the verdict falls from 2-of-3 up to a 1–1 tie, down.
#[tokio::test]
async fn stopped_instance_stops_counting_after_stale_after() -> anyhow::Result<()> {
    let net = Net::new([3, 1])?;
    let stale = Duration::from_secs(3);
    let config = |id, region, host, seeds: &[_]| {
        let mut c = net.config(id, region, host, seeds, Quorum::Majority);
        c.stale_after = stale;
        c
    };
    let a = crate::support::Node::start(&config("a", "eu", 1, &[])).await?;
    let b = crate::support::Node::start(&config("b", "us", 2, &[a.addr()])).await?;
    let c = crate::support::Node::start(&config("c", "ap", 3, &[a.addr()])).await?;
    let x = backend(1);
    a.fleet.observe(x, false, None);
    b.fleet.observe(x, true, None);
    c.fleet.observe(x, true, None);
    eventually("2 of 3 up", PATIENCE, || all_agree(&[&a, &b, &c], x, Health::Up, 3)).await?;

    c.stop().await?;
    let stopped = Instant::now();
    assert_eq!(a.alive(), ["a", "b", "c"], "c still counts just after it stopped");
    assert_eq!(a.fleet.health(x), Health::Up);
    let took = eventually("c drops out", PATIENCE, || {
        for n in [&a, &b] {
            if n.alive() != ["a", "b"] {
                return Err(format!("{} sees {:?}", n.fleet.id(), n.alive()));
            }
        }
        Ok(())
    })
    .await?;
    let since_stop = stopped.elapsed();
    assert!(
        since_stop + 2 * GOSSIP >= stale,
        "c dropped out {since_stop:?} after it stopped, before stale_after {stale:?} (polled {took:?})"
    );
    all_agree(&[&a, &b], x, Health::Down, 2).map_err(anyhow::Error::msg)?;
    let sighting = a.fleet.verdict(x).by("c").cloned();
    assert_eq!(sighting.map(|s| (s.up, s.counted)), Some((true, false)), "c's last word is shown, not counted");
    assert_eq!(c.fleet.verdict(x).seen_by.len(), 1, "the stopped instance decides alone");
    Ok(())
}
