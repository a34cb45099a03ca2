use std::collections::BTreeMap;

use meridian_config::Location;

use super::*;

fn meta(name: &str, region: &str, order: usize, weight: u32, loc: Option<(f64, f64)>) -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta {
        name: name.into(),
        region: Some(region.into()),
        zone: None,
        location: loc.map(|(lat, lon)| Location { lat, lon }),
        weight,
        labels: BTreeMap::new(),
        order,
    })
}

/// The demo's three clusters: Ashburn, St. Ghislain, Mumbai.
fn clusters() -> Vec<Arc<ClusterMeta>> {
    vec![
        meta("us-east", "us-east1", 0, 1, Some((39.04, -77.49))),
        meta("eu-west", "europe-west1", 1, 1, Some((50.45, 3.82))),
        meta("ap-south", "asia-south1", 2, 1, Some((19.08, 72.88))),
    ]
}

fn build(anns: &[&[(&str, &str)]], config: &RankingConfig) -> (Ranking, Vec<Problem>) {
    let cl = clusters();
    let mut maps: Vec<BTreeMap<String, String>> =
        anns.iter().map(|a| a.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()).collect();
    maps.resize(cl.len(), BTreeMap::new());
    let inputs: Vec<ShardInput<'_>> =
        cl.iter().zip(maps.iter()).map(|(c, a)| ShardInput { cluster: c, annotations: a, rtt: None }).collect();
    let mut problems = Vec::new();
    let r = Ranking::build(&ObjectKey::new("default", "web"), &inputs, config, &mut problems);
    (r, problems)
}

/// Annotation values as data: what policy, failover order and max_answers result, and how
/// many problems are reported. Malformed values never change the default.
#[test]
fn annotations_choose_the_policy_and_malformed_ones_are_reported() {
    type Case<'a> = (&'a [(&'a str, &'a str)], PolicyName, usize, usize);
    // The configured default (8) unless an annotation says otherwise.
    const D: usize = meridian_config::ranking::DEFAULT_MAX_ANSWERS;
    let cases: &[Case<'_>] = &[
        (&[], PolicyName::RoundRobin, D, 0),
        (&[(POLICY_ANNOTATION, "geo")], PolicyName::Geo, D, 0),
        (&[(POLICY_ANNOTATION, " Weighted ")], PolicyName::Weighted, D, 0),
        (&[(POLICY_ANNOTATION, "nearest")], PolicyName::RoundRobin, D, 1),
        (&[(POLICY_ANNOTATION, "")], PolicyName::RoundRobin, D, 1),
        (&[(MAX_ANSWERS_ANNOTATION, "1")], PolicyName::RoundRobin, 1, 0),
        (&[(MAX_ANSWERS_ANNOTATION, "-1")], PolicyName::RoundRobin, D, 1),
        (&[(WEIGHT_ANNOTATION, "heavy")], PolicyName::RoundRobin, D, 1),
        (&[(WEIGHT_ANNOTATION, "2000000")], PolicyName::RoundRobin, D, 1),
        (&[(FAILOVER_ANNOTATION, " , ")], PolicyName::RoundRobin, D, 1),
        (&[(POLICY_ANNOTATION, "latency"), (MAX_ANSWERS_ANNOTATION, "x")], PolicyName::Latency, D, 1),
    ];
    for (anns, policy, max, problems) in cases {
        let (r, p) = build(&[anns], &RankingConfig::default());
        assert_eq!(r.policy, *policy, "{anns:?}");
        assert_eq!(r.max_answers, *max, "{anns:?}");
        assert_eq!(p.len(), *problems, "{anns:?}: {p:?}");
        assert_eq!(r.candidates.len(), 3, "a bad annotation never drops a shard");
        for pr in &p {
            assert_eq!(pr.object, "default/web");
            assert_eq!(pr.cluster, "us-east");
        }
    }
}

/// The configuration's per-service entry wins over annotations; geo as the default falls
/// back to roundrobin.
#[test]
fn config_wins_and_geo_never_falls_back_to_itself() {
    let mut config = RankingConfig { default_policy: PolicyName::Geo, ..Default::default() };
    let (r, _) = build(&[&[(POLICY_ANNOTATION, "weighted")]], &config);
    assert_eq!((r.policy, r.fallback), (PolicyName::Weighted, PolicyName::RoundRobin));
    config.services.insert(
        "default/web".into(),
        meridian_config::ranking::ServiceRanking {
            policy: Some(PolicyName::Latency),
            max_answers: Some(2),
            ..Default::default()
        },
    );
    let (r, _) = build(&[&[(POLICY_ANNOTATION, "weighted"), (MAX_ANSWERS_ANNOTATION, "1")]], &config);
    assert_eq!((r.policy, r.max_answers), (PolicyName::Latency, 2));
}

/// Weights: the annotation, else the cluster's; failover groups by cluster or region.
#[test]
fn weights_and_failover_groups() {
    let (r, _) = build(
        &[&[(WEIGHT_ANNOTATION, "3"), (FAILOVER_ANNOTATION, "asia-south1, eu-west")], &[], &[(WEIGHT_ANNOTATION, "0")]],
        &RankingConfig::default(),
    );
    let weights: Vec<u32> = r.candidates.iter().map(|c| c.weight).collect();
    assert_eq!(weights, [3, 1, 0]);
    let groups: Vec<usize> = r.candidates.iter().map(|c| c.group).collect();
    assert_eq!(groups, [2, 1, 0], "us-east unlisted: after the list, by config order");
    let r = Ranking { policy: PolicyName::Failover, ..r };
    assert_eq!(r.static_order(), [2], "only the first group");
}

/// Latency orders by RTT, unmeasured shards last.
#[test]
fn latency_orders_by_rtt() {
    let (mut r, _) = build(&[&[(POLICY_ANNOTATION, "latency")]], &RankingConfig::default());
    r.candidates[0].rtt = None;
    r.candidates[1].rtt = Some(Duration::from_millis(80));
    r.candidates[2].rtt = Some(Duration::from_millis(20));
    assert_eq!(r.static_order(), [2, 1, 0]);
}

/// Geo: nearest first from Paris, Bangalore and New Jersey; a region match wins.
#[test]
fn geo_orders_by_distance_and_region() {
    let (r, _) = build(&[], &RankingConfig::default());
    let cases = [((48.83, 2.35), [1, 0, 2]), ((12.98, 77.58), [2, 1, 0]), ((40.55, -74.29), [0, 1, 2])];
    for ((lat, lon), want) in cases {
        let mut idx = vec![0, 1, 2];
        geo_order(&r.candidates, &Place { point: Some(Point::new(lat, lon)), region: None }, &mut idx);
        assert_eq!(idx, want, "from {lat},{lon}");
    }
    let mut idx = vec![0, 1, 2];
    let place = Place { point: Some(Point::new(48.83, 2.35)), region: Some("asia-south1".into()) };
    geo_order(&r.candidates, &place, &mut idx);
    assert_eq!(idx, [2, 1, 0]);
    // More candidates than the inline sort takes: the same order by the other path, and
    // equals (here: the same three places, repeated) keep their order.
    let mut many: Vec<usize> = (0..20).map(|i| i % 3).collect();
    let mut by_position: Vec<usize> = (0..20).collect();
    let repeated: Vec<_> = many.iter().map(|&i| r.candidates[i].clone()).collect();
    geo_order(&repeated, &Place { point: Some(Point::new(48.83, 2.35)), region: None }, &mut by_position);
    let order: Vec<usize> = by_position.iter().map(|&p| many[p]).collect();
    assert_eq!(order, [[1; 7], [0; 7], [2; 7]].concat()[..20], "nearest first: {order:?}");
    let firsts: Vec<usize> = by_position.iter().copied().filter(|&p| many[p] == 1).collect();
    assert!(firsts.windows(2).all(|w| w[0] < w[1]), "stable: {firsts:?}");
    many.truncate(16);
    let mut small: Vec<usize> = (0..16).collect();
    geo_order(&repeated[..16], &Place { point: Some(Point::new(48.83, 2.35)), region: None }, &mut small);
    let firsts: Vec<usize> = small.iter().copied().filter(|&p| many[p] == 1).collect();
    assert_eq!(firsts, [1, 4, 7, 10, 13], "inline path, stable");
    let paris = Point::new(48.8566, 2.3522);
    let london = Point::new(51.5074, -0.1278);
    assert!((paris.distance_km(&london) - 344.0).abs() < 5.0, "{}", paris.distance_km(&london));
}

/// Weighted draws: the first pick follows the weights (50/30/20 within a point over
/// 100,000 draws), zero-weight shards never appear, all-zero means equal.
#[test]
fn weighted_order_follows_weights() {
    let (mut r, _) = build(&[], &RankingConfig::default());
    for (c, w) in r.candidates.iter_mut().zip([5, 3, 2]) {
        c.weight = w;
    }
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut rng = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut first = [0u32; 3];
    let n = 100_000;
    for _ in 0..n {
        let mut idx = vec![0, 1, 2];
        weighted_order(&r.candidates, &mut idx, &mut rng);
        let mut sorted = idx.clone();
        sorted.sort();
        assert_eq!(sorted, [0, 1, 2], "a permutation");
        first[idx[0]] += 1;
    }
    for (got, want) in first.iter().zip([0.5, 0.3, 0.2]) {
        let share = f64::from(*got) / f64::from(n);
        assert!((share - want).abs() < 0.01, "{first:?}");
    }
    r.candidates[1].weight = 0;
    let mut idx = vec![0, 1, 2];
    weighted_order(&r.candidates, &mut idx, &mut rng);
    assert!(!idx.contains(&1), "{idx:?}");
    for c in &mut r.candidates {
        c.weight = 0;
    }
    let mut idx = vec![0, 1, 2];
    weighted_order(&r.candidates, &mut idx, &mut rng);
    assert_eq!(idx.len(), 3);
}
