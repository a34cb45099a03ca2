use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::metrics::BackendStats;

fn endpoint(last: u8) -> Arc<Endpoint> {
    let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 80);
    match Endpoint::new(addr, BackendStats::detached()) {
        Some(e) => Arc::new(e),
        None => unreachable!("a socket address is a valid authority"),
    }
}

fn level(name: &str, first: u8, healthy: &[bool]) -> Level {
    let members = healthy
        .iter()
        .zip(first..)
        .map(|(&healthy, i)| Member { endpoint: endpoint(i), cluster: "c".into(), healthy })
        .collect();
    Level { name: name.into(), members }
}

fn outlier_cfg() -> OutlierConfig {
    OutlierConfig {
        consecutive_5xx: 5,
        consecutive_gateway_failures: 3,
        base_ejection_time: meridian_config::Duration::from_secs(30),
        max_ejection_time: meridian_config::Duration::from_secs(300),
        max_ejection_percent: 10,
    }
}

/// Envoy's priority load with overprovisioning 1.4, case by case.
#[test]
fn priority_spill_math() {
    type Case<'a> = (&'a [(u32, u32)], &'a [f64]);
    #[rustfmt::skip]
    let cases: &[Case<'_>] = &[
        // All healthy: level 0 takes everything.
        (&[(5, 5), (5, 5)], &[100.0, 0.0]),
        // 80% × 1.4 = 112% → still everything (the ~71% threshold).
        (&[(4, 5), (5, 5)], &[100.0, 0.0]),
        // 60% × 1.4 = 84%: 16% spills to level 1.
        (&[(3, 5), (5, 5)], &[84.0, 16.0]),
        // 20% × 1.4 = 28%: 72% spills.
        (&[(1, 5), (5, 5)], &[28.0, 72.0]),
        // Level 0 dead: all to level 1.
        (&[(0, 5), (5, 5)], &[0.0, 100.0]),
        // Spill passes an empty level 1 to level 2.
        (&[(3, 5), (0, 2), (4, 4)], &[84.0, 0.0, 16.0]),
        // Health sums below 100%: normalised (28 + 28 = 56 → 50/50).
        (&[(1, 5), (1, 5)], &[50.0, 50.0]),
        // 50% × 1.4 = 70%, then 25% × 1.4 = 35% of which only the remaining 30% is used.
        (&[(1, 2), (1, 4)], &[70.0, 30.0]),
        // 70 + 14 = 84% total: normalised to 100.
        (&[(1, 2), (1, 10)], &[70.0 / 0.84, 14.0 / 0.84]),
        // Nothing healthy anywhere.
        (&[(0, 3), (0, 3)], &[0.0, 0.0]),
        // An empty level counts as dead.
        (&[(0, 0), (2, 2)], &[0.0, 100.0]),
        (&[], &[]),
    ];
    for (health, want) in cases {
        let got = priority_loads(health, 1.4);
        assert_eq!(got.len(), want.len(), "{health:?}");
        for (g, w) in got.iter().zip(want.iter()) {
            assert!((g - w).abs() < 1e-6, "{health:?}: got {got:?}, want {want:?}");
        }
    }
}

/// Level choice follows the loads: with 3/5 healthy locally, about 16% goes to level 1.
#[test]
fn choose_level_follows_loads() {
    let levels = [level("near", 1, &[true, true, true, false, false]), level("far", 10, &[true])];
    let now = Instant::now();
    let mut counts = [0usize; 2];
    for i in 0..1000 {
        let r = f64::from(i) / 10.0;
        if let Some(l) = choose_level(&levels, 1.4, now, r) {
            counts[l] += 1;
        }
    }
    assert_eq!(counts, [840, 160]);
    let dead = [level("a", 1, &[false]), level("b", 2, &[false])];
    assert_eq!(choose_level(&dead, 1.4, now, 50.0), None, "nothing healthy: no level");
}

/// P2C prefers the cheaper of two: an endpoint with outstanding requests or a higher
/// latency loses; tried endpoints are skipped; other levels serve when one runs out.
#[test]
fn p2c_picks_the_cheaper_and_skips_tried() {
    let levels = [level("only", 1, &[true, true])];
    let now = Instant::now();
    let busy = levels[0].members[0].endpoint.clone();
    let _load: Vec<_> = (0..5).map(|_| busy.start()).collect();
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..50 {
        let (_, m) = pick(&levels, &[], 1.4, now, &mut rng).map_or((0, None), |(l, m)| (l, Some(m)));
        assert_eq!(m.map(|m| m.endpoint.addr.ip()), Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))));
    }
    let slow = level("slow", 1, &[true, true]);
    slow.members[0].endpoint.observe_latency(Duration::from_millis(500), now);
    let levels = [slow];
    let picked = pick(&levels, &[], 1.4, now, &mut rng).map(|(_, m)| m.endpoint.addr.ip());
    assert_eq!(picked, Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))), "the slow one loses");

    let levels = [level("near", 1, &[true]), level("far", 10, &[true])];
    let tried = [levels[0].members[0].endpoint.addr];
    let (l, m) = match pick(&levels, &tried, 1.4, now, &mut rng) {
        Some(x) => x,
        None => unreachable!("far is available"),
    };
    assert_eq!((l, m.endpoint.addr.ip()), (1, IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10))), "retry goes elsewhere");
    let all = [levels[0].members[0].endpoint.addr, levels[1].members[0].endpoint.addr];
    assert!(pick(&levels, &all, 1.4, now, &mut rng).is_none());
}

/// Peak-EWMA: a peak counts at once, then decays back towards faster samples.
#[test]
fn peak_ewma_takes_peaks_and_decays() {
    let t0 = Instant::now();
    let mut e = PeakEwma::new(t0);
    e.observe(Duration::from_millis(200), t0);
    assert!((e.estimate(t0) - 200e6).abs() < 1.0);
    e.observe(Duration::from_millis(10), t0 + Duration::from_secs(10));
    let later = e.estimate(t0 + Duration::from_secs(10));
    assert!(later < 200e6 * 0.5 && later > 10e6, "decayed towards 10 ms: {later}");
}

/// Consecutive failures eject; ejection time grows with repeated ejections and is capped;
/// a success resets the count; the level cap keeps most of a level in service.
#[test]
fn outlier_ejection_timing() {
    let cfg = outlier_cfg();
    let t0 = Instant::now();
    let mut o = Outlier::default();
    assert!(!o.record(Outcome::GatewayFailure, &cfg, t0));
    assert!(!o.record(Outcome::GatewayFailure, &cfg, t0));
    assert!(!o.record(Outcome::Success, &cfg, t0), "a success resets the streak");
    assert!(!o.record(Outcome::GatewayFailure, &cfg, t0));
    assert!(!o.record(Outcome::GatewayFailure, &cfg, t0));
    assert!(o.record(Outcome::GatewayFailure, &cfg, t0), "3 gateway failures in a row eject");
    assert_eq!(o.eject(&cfg, t0), Duration::from_secs(30));
    for _ in 0..4 {
        assert!(!o.record(Outcome::ServerError, &cfg, t0));
    }
    assert!(o.record(Outcome::ServerError, &cfg, t0), "5 plain 5xx in a row eject");
    assert_eq!(o.eject(&cfg, t0), Duration::from_secs(60), "second ejection lasts twice as long");
    for _ in 0..20 {
        o.eject(&cfg, t0);
    }
    assert_eq!(o.eject(&cfg, t0), Duration::from_secs(300), "capped at max_ejection_time");
    // Healthy long after the last ejection: the multiplier is forgotten.
    o.record(Outcome::Success, &cfg, t0 + Duration::from_secs(1000));
    assert_eq!(o.eject(&cfg, t0), Duration::from_secs(30));

    let e = endpoint(1);
    let now = Instant::now();
    e.eject(&cfg, now);
    assert!(e.is_ejected(now) && e.is_ejected(now + Duration::from_secs(29)));
    assert!(!e.is_ejected(now + Duration::from_secs(31)), "back after the ejection time");

    // 10% of 20 = 2 may be ejected at once; at least one of a small level.
    let big = level("l", 1, &[true; 20]);
    assert!(big.may_eject(10, now));
    big.members[0].endpoint.eject(&cfg, now);
    assert!(big.may_eject(10, now));
    big.members[1].endpoint.eject(&cfg, now);
    assert!(!big.may_eject(10, now), "cap reached");
    let small = level("s", 30, &[true, true]);
    assert!(small.may_eject(10, now), "one backend may always be ejected");
    small.members[0].endpoint.eject(&cfg, now);
    assert!(!small.may_eject(10, now));
}
