use meridian_fleet::{Health, Quorum};

use crate::support::{Net, PATIENCE, all_agree, backend, eventually};

/// A restarted instance answers with the fleet's verdicts from gossip before it has
/// observed anything itself (no cold-start flap), and the fleet lists it once, as its
/// new generation.
#[tokio::test]
async fn restarted_instance_uses_fleet_verdicts_before_its_own() -> anyhow::Result<()> {
    let net = Net::new([5, 1])?;
    let a = net.start("a", "eu", 1, &[], Quorum::Majority).await?;
    let b = net.start("b", "us", 2, &[a.addr()], Quorum::Majority).await?;
    let c = net.start("c", "ap", 3, &[a.addr()], Quorum::Majority).await?;
    let (up, down) = (backend(1), backend(2));
    for n in [&a, &b, &c] {
        n.fleet.observe(up, true, None);
        n.fleet.observe(down, false, None);
    }
    eventually("fleet verdicts", PATIENCE, || {
        all_agree(&[&a, &b, &c], up, Health::Up, 3)?;
        all_agree(&[&a, &b, &c], down, Health::Down, 3)
    })
    .await?;
    let old_generation = c.fleet.instances().iter().find(|i| i.this_instance).map(|i| i.generation);
    c.stop().await?;

    let c = net.start("c", "ap", 3, &[a.addr()], Quorum::Majority).await?;
    assert_eq!(c.fleet.health(up), Health::Unknown, "nothing known before gossip");
    eventually("restarted c catches up", PATIENCE, || {
        let n = c.fleet.instances().iter().filter(|i| i.alive).count();
        if n == 3 && c.fleet.caught_up() {
            Ok(())
        } else {
            Err(format!("{n} alive, caught up: {}", c.fleet.caught_up()))
        }
    })
    .await?;
    // Caught up: the verdicts are the fleet's already, from a's and b's ballots.
    all_agree(&[&c], up, Health::Up, 2).map_err(anyhow::Error::msg)?;
    all_agree(&[&c], down, Health::Down, 2).map_err(anyhow::Error::msg)?;
    assert!(c.fleet.verdict(up).by("c").is_none(), "c has observed nothing itself");
    eventually("a lists c once, new generation alive", PATIENCE, || {
        let cs: Vec<_> = a.fleet.instances().into_iter().filter(|i| i.id == "c").collect();
        match cs.as_slice() {
            [one] if one.alive && Some(one.generation) != old_generation => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    Ok(())
}
