use meridian_fleet::Quorum;

use crate::support::{Net, PATIENCE, eventually};

/// Three instances, each seeded with only one other, all come to list all three as
/// alive, with the regions they declared.
#[tokio::test]
async fn three_instances_converge_on_membership() -> anyhow::Result<()> {
    let net = Net::new([1, 1])?;
    let a = net.start("a", "eu", 1, &[], Quorum::Majority).await?;
    let b = net.start("b", "us", 2, &[a.addr()], Quorum::Majority).await?;
    let c = net.start("c", "ap", 3, &[b.addr()], Quorum::Majority).await?;
    let nodes = [&a, &b, &c];
    eventually("membership", PATIENCE, || {
        for n in nodes {
            let alive = n.alive();
            if alive != ["a", "b", "c"] {
                return Err(format!("{} sees {alive:?}", n.fleet.id()));
            }
        }
        Ok(())
    })
    .await?;
    for n in nodes {
        let regions: Vec<(String, String)> = n.fleet.instances().into_iter().map(|i| (i.id, i.region)).collect();
        assert_eq!(regions, [("a".into(), "eu".into()), ("b".into(), "us".into()), ("c".into(), "ap".into())]);
        let mine: Vec<bool> = n.fleet.instances().iter().map(|i| i.this_instance).collect();
        assert_eq!(mine.iter().filter(|m| **m).count(), 1);
        assert_eq!(
            n.fleet.transport_stats().rejected_total(),
            0,
            "{} dropped datagrams of its own fleet",
            n.fleet.id()
        );
    }
    let status = serde_json::to_value(a.fleet.status())?;
    assert_eq!(status["instances"].as_array().map(Vec::len), Some(3));
    assert!(status["instances"][1]["last_seen"].as_u64().is_some(), "{status}");
    Ok(())
}
