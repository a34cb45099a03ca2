//! Split observations across six instances (three in eu, two in us, one in ap), decided
//! under each rule. Every instance must reach the table's verdict from all the ballots.

use meridian_fleet::{Health, Quorum};

use crate::support::{Net, Node, PATIENCE, all_agree, backend, eventually};

use Health::{Down, Up};

const REGIONS: [(&str, &str); 6] = [("a", "eu"), ("b", "eu"), ("c", "eu"), ("d", "us"), ("e", "us"), ("f", "ap")];

/// Each instance's observation (`u` up, `d` down, `-` none), then the verdict under
/// any, majority, fraction:0.18 and regions-majority.
const CASES: &[(&str, [Health; 4])] = &[
    ("uuuuuu", [Up, Up, Up, Up]),
    // One of six up: 17% is not more than 18%; only ap says up.
    ("dddddu", [Up, Down, Down, Down]),
    // Two of six, both in eu: 33%; eu up, us and ap down.
    ("uudddd", [Up, Down, Up, Down]),
    // Half, in us and ap: a tie of instances, two regions of three.
    ("ddduuu", [Up, Down, Up, Up]),
    // Four of six, but us splits 1–1 and ap is down: one region of three.
    ("uuuudd", [Up, Up, Up, Down]),
    ("dddddd", [Down, Down, Down, Down]),
    // Two up, one down, the rest silent: only the observers vote.
    ("u--u-d", [Up, Up, Up, Up]),
    // A single observer decides.
    ("-d----", [Down, Down, Down, Down]),
    ("----u-", [Up, Up, Up, Up]),
];

async fn fleet(subnet: [u8; 2], quorum: Quorum) -> anyhow::Result<Vec<Node>> {
    let net = Net::new(subnet)?;
    let mut nodes: Vec<Node> = Vec::new();
    for (i, (id, region)) in REGIONS.iter().enumerate() {
        let seeds: Vec<_> = nodes.first().map(Node::addr).into_iter().collect();
        nodes.push(net.start(id, region, i as u8 + 1, &seeds, quorum).await?);
    }
    // The key file may go with `net`: started instances hold the key.
    Ok(nodes)
}

async fn check_rule(subnet: [u8; 2], quorum: Quorum, column: usize) -> anyhow::Result<()> {
    let nodes = fleet(subnet, quorum).await?;
    for (case, (pattern, _)) in CASES.iter().enumerate() {
        for (node, vote) in nodes.iter().zip(pattern.chars()) {
            match vote {
                'u' => node.fleet.observe(backend(case as u16), true, None),
                'd' => node.fleet.observe(backend(case as u16), false, None),
                _ => {}
            }
        }
    }
    let refs: Vec<&Node> = nodes.iter().collect();
    for (case, (pattern, want)) in CASES.iter().enumerate() {
        let observers = pattern.chars().filter(|c| *c != '-').count();
        let what = format!("{quorum} case {case} {pattern}");
        eventually(&what, PATIENCE, || all_agree(&refs, backend(case as u16), want[column], observers)).await?;
    }
    Ok(())
}

/// `any`: healthy when one instance says up.
#[tokio::test]
async fn split_observations_under_any() -> anyhow::Result<()> {
    check_rule([2, 1], Quorum::Any, 0).await
}

/// `majority`: more than half; a tie is down.
#[tokio::test]
async fn split_observations_under_majority() -> anyhow::Result<()> {
    check_rule([2, 2], Quorum::Majority, 1).await
}

/// `fraction:0.18`: more than 18% (Route 53's rule).
#[tokio::test]
async fn split_observations_under_fraction() -> anyhow::Result<()> {
    check_rule([2, 3], Quorum::Fraction(0.18), 2).await
}

/// `regions-majority`: a majority of regions, each by its own majority.
#[tokio::test]
async fn split_observations_under_regions_majority() -> anyhow::Result<()> {
    check_rule([2, 4], Quorum::RegionsMajority, 3).await
}

/// Subscribers hear of a change made on another instance, with the address and its new
/// health, and the change version matches the watch.
#[tokio::test]
async fn subscribers_hear_remote_changes() -> anyhow::Result<()> {
    let net = Net::new([2, 5])?;
    let a = net.start("a", "eu", 1, &[], Quorum::Any).await?;
    let b = net.start("b", "us", 2, &[a.addr()], Quorum::Any).await?;
    eventually("membership", PATIENCE, || if b.alive().len() == 2 { Ok(()) } else { Err(format!("{:?}", b.alive())) })
        .await?;
    let mut watch = b.fleet.subscribe();
    let mut changes = b.fleet.changes();
    a.fleet.observe(backend(1), true, None);
    let change = tokio::time::timeout(PATIENCE, changes.recv()).await??;
    assert_eq!(change.changes, vec![(backend(1), Health::Up)]);
    tokio::time::timeout(PATIENCE, watch.changed()).await??;
    assert_eq!(*watch.borrow(), change.version);
    assert_eq!(b.fleet.verdicts(), vec![(backend(1), Health::Up)]);
    Ok(())
}
