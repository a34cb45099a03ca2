use super::*;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("addr")
}

fn view(rule: Quorum) -> View {
    let me =
        Me { id: "b".into(), region: "eu".into(), location: None, gossip_addr: addr("127.0.0.1:1"), generation: 1 };
    View::new(me, rule, Duration::from_secs(5))
}

fn cid(id: &str, generation: u64) -> ChitchatId {
    ChitchatId::new(id, generation, addr("127.0.0.1:2"))
}

/// A peer that counts (heartbeat advanced just now) observing `a` as `up`.
fn peer(region: &str, a: SocketAddr, up: bool, now: Instant) -> Peer {
    let mut p = Peer { region: Some(region.into()), advanced: Some(now), heartbeat: 2, ..Peer::default() };
    p.obs.insert(a, Obs { up, rtt_us: Some(100), at: 1 });
    p
}

const BACKEND: &str = "10.0.0.1:443";

/// Alone, the verdict is this instance's own observation, at once.
#[test]
fn lone_instance_decides_alone() {
    for rule in [Quorum::Any, Quorum::Majority, Quorum::Fraction(0.18), Quorum::RegionsMajority] {
        let mut v = view(rule);
        let a = addr(BACKEND);
        assert_eq!(v.health(a), Health::Unknown);
        assert_eq!(v.observe(a, false, None, 10), vec![(a, Health::Down)], "{rule}");
        assert_eq!(v.observe(a, true, None, 11), vec![(a, Health::Up)], "{rule}");
        assert!(v.disagreements().is_empty());
    }
}

/// Two peers up outvote this instance's down under majority; the disagreement shows,
/// and the verdict lists every sighting in id order.
#[test]
fn majority_overrules_one_site() {
    let now = Instant::now();
    let a = addr(BACKEND);
    let mut v = view(Quorum::Majority);
    v.observe(a, false, None, 10);
    v.peers.insert(cid("a", 1), peer("us", a, true, now));
    v.peers.insert(cid("c", 1), peer("ap", a, true, now));
    let flipped = v.recount(now);
    assert!(flipped.contains(&a));
    assert_eq!(v.reverdict(flipped), vec![(a, Health::Up)]);
    assert_eq!(v.disagreements(), vec![a]);
    let verdict = v.verdict(a);
    let ids: Vec<&str> = verdict.seen_by.iter().map(|s| s.instance.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c"]);
    assert_eq!((verdict.up, verdict.down, verdict.healthy), (2, 1, true));
}

/// A peer whose heartbeat stopped advancing stops counting after `stale_after`; its
/// sighting is still shown, as not counted.
#[test]
fn stale_peer_stops_counting() {
    let start = Instant::now();
    let a = addr(BACKEND);
    let mut v = view(Quorum::Majority);
    v.observe(a, false, None, 10);
    v.peers.insert(cid("a", 1), peer("us", a, true, start));
    let touched = v.recount(start);
    v.reverdict(touched);
    assert_eq!(v.health(a), Health::Down, "1 up of 2 is a tie: down");
    v.peers.insert(cid("c", 1), peer("ap", a, true, start));
    let touched = v.recount(start);
    assert_eq!(v.reverdict(touched), vec![(a, Health::Up)]);
    let later = start + Duration::from_secs(6);
    let touched = v.recount(later);
    assert_eq!(v.reverdict(touched), vec![(a, Health::Down)], "both peers stale: own observation");
    let verdict = v.verdict(a);
    assert_eq!(verdict.seen_by.iter().filter(|s| !s.counted).count(), 2);
    assert!(v.instances(SystemTime::now()).iter().filter(|i| !i.this_instance).all(|i| !i.alive));
}

/// A restarted peer (a newer generation) replaces its old self, whose ballots no longer
/// count even while the old state lingers in gossip.
#[test]
fn newer_generation_replaces_older() {
    let now = Instant::now();
    let a = addr(BACKEND);
    let mut v = view(Quorum::Any);
    v.observe(a, false, None, 10);
    v.peers.insert(cid("a", 1), peer("us", a, true, now));
    let t = v.recount(now);
    v.reverdict(t);
    assert_eq!(v.health(a), Health::Up);
    let fresh = Peer { region: Some("us".into()), advanced: Some(now), heartbeat: 2, ..Peer::default() };
    v.peers.insert(cid("a", 2), fresh);
    let t = v.recount(now);
    assert_eq!(v.reverdict(t), vec![(a, Health::Down)]);
    let instances = v.instances(SystemTime::now());
    assert_eq!(instances.len(), 2, "one line per instance id");
    assert_eq!(instances[0].generation, 2);
}

/// A peer not yet heard advancing, or without a region, does not count.
#[test]
fn unproven_peers_do_not_count() {
    let now = Instant::now();
    let a = addr(BACKEND);
    let mut v = view(Quorum::Any);
    v.observe(a, false, None, 10);
    let mut never_advanced = peer("us", a, true, now);
    never_advanced.advanced = None;
    v.peers.insert(cid("a", 1), never_advanced);
    let mut no_region = peer("us", a, true, now);
    no_region.region = None;
    v.peers.insert(cid("c", 1), no_region);
    let t = v.recount(now);
    assert!(v.reverdict(t).is_empty());
    assert_eq!(v.health(a), Health::Down);
}

/// Republishing: state changes always, RTT moves only when large and not too often,
/// and an unchanged probe result costs nothing.
#[test]
fn observations_publish_only_changes() {
    let a = addr(BACKEND);
    let mut v = view(Quorum::Majority);
    let ms = Duration::from_millis;
    v.observe(a, true, Some(ms(10)), 100);
    assert!(v.unpublished.remove(&a));
    v.observe(a, true, Some(ms(10)), 101);
    assert!(v.unpublished.is_empty(), "same result");
    v.observe(a, true, Some(ms(20)), 105);
    assert!(v.unpublished.is_empty(), "RTT doubled, but within 10 s of the last publication");
    v.observe(a, true, Some(Duration::from_micros(10_400)), 200);
    assert!(v.unpublished.is_empty(), "RTT moved by 400 µs: below the floor");
    v.observe(a, true, Some(ms(20)), 200);
    assert!(v.unpublished.remove(&a), "RTT doubled, 100 s later");
    v.observe(a, false, Some(ms(20)), 201);
    assert!(v.unpublished.remove(&a), "state changed");
    assert_eq!(v.own.get(&a).map(|o| (o.up, o.rtt_us, o.at)), Some((false, Some(20_000), 201)));
}

/// Forgetting an address withdraws this instance's ballot.
#[test]
fn forget_withdraws_the_ballot() {
    let a = addr(BACKEND);
    let mut v = view(Quorum::Majority);
    v.observe(a, true, None, 1);
    v.unpublished.clear();
    assert_eq!(v.forget(a), vec![(a, Health::Unknown)]);
    assert!(v.unpublished.contains(&a), "the key is deleted at the next publish");
    assert!(v.forget(a).is_empty());
    assert!(v.all_verdicts().is_empty());
}

/// When gossip stops, peers' ballots go and this instance decides alone.
#[test]
fn going_alone_keeps_own_observations() {
    let now = Instant::now();
    let a = addr(BACKEND);
    let other = addr("10.0.0.2:443");
    let mut v = view(Quorum::Majority);
    v.observe(a, false, None, 1);
    let mut p = peer("us", a, true, now);
    p.obs.insert(other, Obs { up: true, rtt_us: None, at: 1 });
    v.peers.insert(cid("a", 1), p);
    v.peers.insert(cid("c", 1), peer("ap", a, true, now));
    let t = v.recount(now);
    v.reverdict(t);
    assert_eq!((v.health(a), v.health(other)), (Health::Up, Health::Up));
    assert_eq!(v.go_alone(), vec![(a, Health::Down), (other, Health::Unknown)]);
}

/// Caught up means: every counted peer's announced count arrived, with nothing newer
/// after it, and as many observations.
#[test]
fn caught_up_follows_the_announced_counts() {
    let now = Instant::now();
    let a = addr(BACKEND);
    let mut v = view(Quorum::Majority);
    assert!(v.caught_up(), "alone, nothing to wait for");
    let mut p = peer("us", a, true, now);
    p.max_version = 7;
    v.peers.insert(cid("a", 1), p);
    v.recount(now);
    assert!(!v.caught_up(), "no count announced yet");
    let set = |v: &mut View, announced| {
        if let Some(p) = v.peers.get_mut(&cid("a", 1)) {
            p.announced = announced;
        }
    };
    set(&mut v, Some((6, 1)));
    assert!(!v.caught_up(), "keys newer than the count: a later batch is arriving");
    set(&mut v, Some((7, 2)));
    assert!(!v.caught_up(), "one of two observations here");
    set(&mut v, Some((7, 1)));
    assert!(v.caught_up());
    assert!(v.instances(SystemTime::now()).iter().all(|i| i.synced));
}
