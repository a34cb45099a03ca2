use super::*;

/// Ballots written compactly: `"a@eu:u"` is instance a in region eu saying up.
fn ballots(spec: &[&'static str]) -> Vec<Ballot<'static>> {
    spec.iter()
        .map(|s| {
            let (who, vote) = s.rsplit_once(':').expect("instance@region:u|d");
            let (instance, region) = who.split_once('@').expect("instance@region");
            Ballot { instance, region, up: vote == "u" }
        })
        .collect()
}

fn q(s: &str) -> Quorum {
    s.parse().expect("quorum")
}

/// One table for every rule: the ballots, then the verdict of each rule.
#[test]
fn verdict_table() {
    use Health::{Down, Unknown, Up};
    // (ballots, any, majority, fraction:0.18, regions-majority)
    let cases: &[(&[&str], Health, Health, Health, Health)] = &[
        (&[], Unknown, Unknown, Unknown, Unknown),
        // A lone instance: every rule gives its own observation.
        (&["a@eu:u"], Up, Up, Up, Up),
        (&["a@eu:d"], Down, Down, Down, Down),
        // Two up, one down.
        (&["a@eu:u", "b@us:u", "c@ap:d"], Up, Up, Up, Up),
        // One up, two down: only any and fraction keep it (1/3 > 0.18).
        (&["a@eu:u", "b@us:d", "c@ap:d"], Up, Down, Up, Down),
        // A tie is down for the majority rules.
        (&["a@eu:u", "b@us:d"], Up, Down, Up, Down),
        // All down.
        (&["a@eu:d", "b@us:d", "c@ap:d"], Down, Down, Down, Down),
        // Ten checkers, one up: 10% is not more than 18%.
        (
            &["a@r:u", "b@r:d", "c@r:d", "d@r:d", "e@r:d", "f@r:d", "g@r:d", "h@r:d", "i@r:d", "j@r:d"],
            Up,
            Down,
            Down,
            Down,
        ),
        // Ten checkers, two up: 20% is.
        (
            &["a@r:u", "b@r:u", "c@r:d", "d@r:d", "e@r:d", "f@r:d", "g@r:d", "h@r:d", "i@r:d", "j@r:d"],
            Up,
            Down,
            Up,
            Down,
        ),
        // A big region says down, two small ones up: majority of instances says down,
        // a majority of regions says up.
        (&["a@eu:d", "b@eu:d", "c@eu:d", "d@us:u", "e@ap:u"], Up, Down, Up, Up),
        // The reverse: the big region up, two small ones down.
        (&["a@eu:u", "b@eu:u", "c@eu:u", "d@us:d", "e@ap:d"], Up, Up, Up, Down),
        // Two regions, split inside one: eu up (2 of 3), us down (0 of 2) → tie of regions.
        (&["a@eu:u", "b@eu:u", "c@eu:d", "d@us:d", "e@us:d"], Up, Down, Up, Down),
        // Three regions, each split 1–1 inside: no region has a majority → down.
        (&["a@eu:u", "b@eu:d", "c@us:u", "d@us:d", "e@ap:u", "f@ap:d"], Up, Down, Up, Down),
    ];
    for (i, (spec, any, majority, fraction, regions)) in cases.iter().enumerate() {
        let b = ballots(spec);
        assert_eq!(decide(Quorum::Any, &b), *any, "case {i} any: {spec:?}");
        assert_eq!(decide(Quorum::Majority, &b), *majority, "case {i} majority: {spec:?}");
        assert_eq!(decide(q("fraction:0.18"), &b), *fraction, "case {i} fraction: {spec:?}");
        assert_eq!(decide(Quorum::RegionsMajority, &b), *regions, "case {i} regions: {spec:?}");
    }
}

/// The verdict does not depend on the order ballots arrive in.
#[test]
fn order_does_not_matter() {
    let spec = ["a@eu:d", "b@eu:d", "c@eu:d", "d@us:u", "e@ap:u", "f@us:u", "g@ap:d"];
    let base = ballots(&spec);
    for rule in [Quorum::Any, Quorum::Majority, q("fraction:0.5"), Quorum::RegionsMajority] {
        let want = decide(rule, &base);
        for shift in 0..base.len() {
            let mut b = base.clone();
            b.rotate_left(shift);
            b.reverse();
            assert_eq!(decide(rule, &b), want, "{rule} shift {shift}");
        }
    }
}

/// Fractions: strictly more than F, at the edges.
#[test]
fn fraction_edges() {
    let half = ballots(&["a@r:u", "b@r:d"]);
    assert_eq!(decide(q("fraction:0.5"), &half), Health::Down, "exactly half is not more than half");
    assert_eq!(decide(q("fraction:0.49"), &half), Health::Up);
    assert_eq!(decide(q("fraction:0"), &ballots(&["a@r:d", "b@r:u"])), Health::Up, "fraction:0 is any");
    assert_eq!(decide(q("fraction:0"), &ballots(&["a@r:d"])), Health::Down);
    assert_eq!(decide(q("fraction:0.99"), &ballots(&["a@r:u"])), Health::Up, "a lone instance decides");
}

/// The spellings the configuration accepts, and the ones it names as wrong.
#[test]
fn parses_and_prints_rules() {
    for s in ["any", "majority", "fraction:0.18", "regions-majority", "fraction:0"] {
        assert_eq!(q(s).to_string(), s);
    }
    assert_eq!(q(" majority "), Quorum::Majority);
    assert!(matches!("most".parse::<Quorum>(), Err(QuorumParseError::Unknown(_))));
    for bad in ["fraction:1", "fraction:1.5", "fraction:-0.1", "fraction:", "fraction:x", "fraction:NaN"] {
        assert!(matches!(bad.parse::<Quorum>(), Err(QuorumParseError::Fraction(_))), "{bad}");
    }
}
