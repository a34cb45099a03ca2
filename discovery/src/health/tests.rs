use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use meridian_config::health::{CheckKind, CheckSettings, HealthConfig, HealthOverride};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::probe::{next_wait, rephase};
use super::state::rtt_moved;
use super::tls::tls_config;
use super::*;
use crate::table::{ClusterMeta, ObjectKey, Port, Probe, ProbeState, Protocol, Shard};

/// Annotation values as data: the check they ask for, or an error.
#[test]
fn annotation_values() {
    type Case<'a> = (&'a str, Option<(CheckKind, Option<u16>, Option<&'a str>)>);
    let cases: &[Case<'_>] = &[
        ("off", Some((CheckKind::Off, None, None))),
        ("tcp", Some((CheckKind::Tcp, None, None))),
        ("tcp:9000", Some((CheckKind::Tcp, Some(9000), None))),
        ("http:/healthz", Some((CheckKind::Http, None, Some("/healthz")))),
        ("HTTP:8080/ready?full=1", Some((CheckKind::Http, Some(8080), Some("/ready?full=1")))),
        ("https", Some((CheckKind::Https, None, None))),
        ("https:8443", Some((CheckKind::Https, Some(8443), None))),
        ("grpc", None),
        ("tcp:/x", None),
        ("http:0/x", None),
        ("http:99999", None),
        ("off:80", None),
        ("http:/a b", None),
        ("", None),
    ];
    for (v, want) in cases {
        let got = parse_annotation(v).ok().map(|a| (a.kind, a.port, a.path));
        let want = want.map(|(k, p, path)| (k, p, path.map(str::to_owned)));
        assert_eq!(got, want, "{v:?}");
    }
}

fn shard(annotations: &[(&str, &str)]) -> Shard {
    Shard {
        cluster: Arc::new(ClusterMeta {
            name: "eu-west".into(),
            region: None,
            zone: None,
            location: None,
            weight: 1,
            labels: BTreeMap::new(),
            order: 0,
        }),
        addresses: vec!["127.0.0.1".parse().expect("ip")],
        hostnames: vec![],
        ports: vec![
            Port { name: Some("dns".into()), port: 53, protocol: Protocol::Udp },
            Port { name: Some("http".into()), port: 8080, protocol: Protocol::Tcp },
        ],
        headless: false,
        ready_endpoints: 1,
        total_endpoints: 1,
        endpoints: vec![],
        annotations: annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        exported: false,
        created: None,
        stale: false,
        probe: Probe::default(),
    }
}

/// Annotation over cluster override over defaults; first TCP port; a malformed
/// annotation is a problem and the cluster's check applies.
#[test]
fn spec_precedence() {
    let mut health = HealthConfig::default();
    let key = ObjectKey::new("default", "web");
    let mut problems = Vec::new();
    let s = spec_for(&health, &key, &shard(&[]), &mut problems).expect("probed");
    assert_eq!((s.kind, s.port), (CheckKind::Tcp, 8080));
    health.clusters.insert(
        "eu-west".into(),
        HealthOverride { kind: Some(CheckKind::Http), path: Some("/ping".into()), ..Default::default() },
    );
    let s = spec_for(&health, &key, &shard(&[]), &mut problems).expect("probed");
    assert_eq!((s.kind, s.path.as_str()), (CheckKind::Http, "/ping"));
    let s = spec_for(&health, &key, &shard(&[(HEALTH_CHECK_ANNOTATION, "tcp:9000")]), &mut problems).expect("probed");
    assert_eq!((s.kind, s.port), (CheckKind::Tcp, 9000));
    assert!(spec_for(&health, &key, &shard(&[(HEALTH_CHECK_ANNOTATION, "off")]), &mut problems).is_none());
    assert!(problems.is_empty());
    let s = spec_for(&health, &key, &shard(&[(HEALTH_CHECK_ANNOTATION, "icmp")]), &mut problems).expect("probed");
    assert_eq!(s.kind, CheckKind::Http, "the cluster's check applies");
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].object, "default/web");
    let mut headless = shard(&[]);
    headless.headless = true;
    assert!(spec_for(&health, &key, &headless, &mut problems).is_none());
}

/// Hysteresis: the first pass is Up at once; Down takes `unhealthy` failures in a row,
/// back Up takes `healthy` passes in a row; the RTT is a moving average.
#[test]
fn hysteresis() {
    let mut a = AddrState::default();
    let ok = |ms| Ok::<_, String>(Duration::from_millis(ms));
    let fail = || Err("refused".to_owned());
    assert!(a.record(&ok(10), 2, 3));
    assert_eq!(a.state, ProbeState::Up);
    assert!(!a.record(&fail(), 2, 3));
    assert!(!a.record(&fail(), 2, 3));
    assert!(!a.record(&ok(10), 2, 3), "a pass resets the failure count");
    assert!(!a.record(&fail(), 2, 3));
    assert!(!a.record(&fail(), 2, 3));
    assert!(a.record(&fail(), 2, 3));
    assert_eq!(a.state, ProbeState::Down);
    assert_eq!(a.last_error.as_deref(), Some("refused"));
    assert!(!a.record(&ok(20), 2, 3));
    assert!(a.record(&ok(20), 2, 3));
    assert_eq!(a.state, ProbeState::Up);
}

/// The RTT is the lowest of the last five connect times: slow samples (a busy core) do
/// not move it, a faster one shows at once, a slower path once the window is all slow.
#[test]
fn rtt_is_the_windowed_minimum() {
    let mut a = AddrState::default();
    let ms = |v: u64| Ok::<_, String>(Duration::from_millis(v));
    let rtt_ms = |a: &AddrState| a.rtt.map(|s| (s * 1000.0).round() as u64);
    assert_eq!(rtt_ms(&a), None);
    a.record(&ms(10), 2, 3);
    for slow in [30, 12, 50] {
        a.record(&ms(slow), 2, 3);
        assert_eq!(rtt_ms(&a), Some(10), "after {slow} ms");
    }
    a.record(&Err::<Duration, _>("refused"), 2, 3);
    assert_eq!(rtt_ms(&a), Some(10), "a failure leaves the window alone");
    a.record(&ms(4), 2, 3);
    assert_eq!(rtt_ms(&a), Some(4), "faster shows at once");
    for i in 0..4 {
        a.record(&ms(20), 2, 3);
        assert_eq!(rtt_ms(&a), Some(4), "the 4 ms sample is still in the window ({i})");
    }
    a.record(&ms(20), 2, 3);
    assert_eq!(rtt_ms(&a), Some(20), "a slower path, once every sample is slower");
}

/// RTT changes are published when they matter: 10% and 0.5 ms, at most every 2 s; an
/// RTT appearing or vanishing always.
#[test]
fn rtt_publication_needs_a_real_move() {
    let ms = |v: f64| Some(Duration::from_secs_f64(v / 1000.0));
    let long = Some(Duration::from_secs(10));
    assert!(!rtt_moved(ms(0.15), ms(0.10), long), "50% of 0.1 ms is loopback jitter");
    assert!(!rtt_moved(ms(20.4), ms(20.0), long), "2% of 20 ms is not a move");
    assert!(rtt_moved(ms(25.0), ms(20.0), long));
    assert!(!rtt_moved(ms(25.0), ms(20.0), Some(Duration::from_secs(1))), "too soon after the last");
    assert!(rtt_moved(ms(25.0), ms(20.0), None));
    assert!(rtt_moved(ms(1.0), None, Some(Duration::ZERO)));
    assert!(rtt_moved(None, ms(1.0), Some(Duration::ZERO)));
    assert!(!rtt_moved(None, None, long));
}

/// After its first probe an address takes a random phase of the interval (2,000 draws
/// cover all ten tenths of it); later waits are the interval less at most the jitter; a
/// probe woken long after its time takes a new phase.
#[test]
fn probes_spread_over_the_interval_after_the_first() {
    let (interval, jitter) = (Duration::from_secs(5), Duration::from_millis(500));
    let mut tenths = [0u32; 10];
    for _ in 0..2000 {
        let w = next_wait(true, interval, jitter);
        assert!(w < interval, "{w:?}");
        tenths[(w.as_secs_f64() / 0.5) as usize] += 1;
    }
    assert!(tenths.iter().all(|&n| n > 100), "not spread: {tenths:?}");
    for _ in 0..200 {
        let w = next_wait(false, interval, jitter);
        assert!(w > interval - jitter - Duration::from_millis(1) && w <= interval, "{w:?}");
    }
    assert_eq!(rephase(Duration::from_millis(2400), interval), None, "a little late: no new phase");
    let delays: Vec<Duration> = (0..50).filter_map(|_| rephase(Duration::from_secs(20), interval)).collect();
    assert_eq!(delays.len(), 50, "woken long after its time: a new phase");
    assert!(delays.iter().all(|d| *d < interval) && delays.iter().any(|d| *d > interval / 2), "{delays:?}");
}

#[test]
fn status_lines() {
    assert_eq!(parse_status_line(b"HTTP/1.1 200 OK"), Some(200));
    assert_eq!(parse_status_line(b"HTTP/1.0 503"), Some(503));
    assert_eq!(parse_status_line(b"HTTP/1.1 20 OK"), None);
    assert_eq!(parse_status_line(b"SSH-2.0-OpenSSH"), None);
    assert_eq!(parse_status_line(b"\xff\xfe"), None);
}

fn spec(kind: CheckKind, port: u16, expected: &str) -> CheckSpec {
    let settings = CheckSettings {
        kind,
        path: "/healthz".into(),
        expected_status: expected.parse().expect("range"),
        host: None,
        interval: meridian_config::Duration::from_secs(1),
        timeout: meridian_config::Duration::from_secs(1),
        healthy_threshold: 1,
        unhealthy_threshold: 1,
    };
    CheckSpec { settings, port }
}

/// Real probes on loopback: TCP connect passes on a listener and fails when refused; an
/// HTTP check reads the status line and compares it with the expected range.
#[tokio::test]
async fn probes_against_real_sockets() {
    let tls = Arc::new(tls_config());
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let resp = if req.starts_with("GET /healthz ") && req.contains("\r\nHost: ") {
                    "HTTP/1.1 204 No Content\r\n\r\n"
                } else {
                    "HTTP/1.1 404 Not Found\r\n\r\n"
                };
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    assert!(probe(&spec(CheckKind::Tcp, addr.port(), "200"), addr, &tls).await.is_ok());
    assert!(probe(&spec(CheckKind::Http, addr.port(), "200-299"), addr, &tls).await.is_ok());
    let err =
        probe(&spec(CheckKind::Http, addr.port(), "200"), addr, &tls).await.expect_err("204 is not 200").to_string();
    assert!(err.contains("204"), "{err}");
    let mut other = spec(CheckKind::Http, addr.port(), "200-299");
    other.settings.path = "/other".into();
    assert!(probe(&other, addr, &tls).await.is_err());
    // A port nobody listens on: refused.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let err = probe(&spec(CheckKind::Tcp, closed.port(), "200"), closed, &tls).await.expect_err("refused").to_string();
    assert!(err.starts_with("connect"), "{err}");
}

/// Waits up to five seconds for `cond` on the checker's targets.
async fn wait_targets(checker: &HealthChecker, what: &str, cond: impl Fn(&[TargetStatus]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !cond(&checker.targets()) {
        assert!(tokio::time::Instant::now() < deadline, "{what}: {:?}", checker.targets());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The checker follows the table: a shard that appears is probed and its verdict sent to
/// the writer, a shard that leaves stops being probed, and shutdown ends the checker.
#[tokio::test]
async fn targets_follow_the_table() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (table, mut writer) = crate::table::Table::new();
    let mut sh = shard(&[]);
    sh.ports = vec![Port { name: None, port, protocol: Protocol::Tcp }];
    writer.apply([crate::Update::Cluster(sh.cluster.clone())]);
    let (updates, mut sent) = tokio::sync::mpsc::unbounded_channel();
    let mut registry = prometheus_client::registry::Registry::default();
    let checker = spawn(&meridian_config::Config::demo(), table, updates, &mut registry, &Default::default());
    let key = ObjectKey::new("default", "web");
    let service = |shard| crate::Update::Service { cluster: "eu-west".into(), key: key.clone(), shard };
    writer.apply([service(Some(sh))]);
    wait_targets(&checker, "the shard's address is probed", |t| {
        t.len() == 1 && t[0].address == format!("127.0.0.1:{port}") && t[0].state == "up"
    })
    .await;
    let up = tokio::time::timeout(Duration::from_secs(5), sent.recv()).await.ok().flatten();
    assert!(
        matches!(up, Some(crate::Update::Probe { probe: Probe { state: ProbeState::Up, .. }, .. })),
        "the writer is told the shard is up: {up:?}"
    );
    writer.apply([service(None)]);
    wait_targets(&checker, "the shard's address is no longer probed", <[TargetStatus]>::is_empty).await;
    tokio::time::timeout(Duration::from_secs(5), checker.shutdown()).await.expect("shutdown in time");
}

/// A fleet of one peer and this instance, gossiping on loopback with quorum `any`.
async fn fleet_pair(
    key: &std::path::Path,
    cancel: &tokio_util::sync::CancellationToken,
) -> (meridian_fleet::Fleet, meridian_fleet::Fleet) {
    use meridian_config::fleet::{FleetConfig, Quorum};
    let config = |id: &str, seeds: Vec<String>| FleetConfig {
        key_file: Some(key.to_path_buf()),
        seeds,
        quorum: Quorum::Any,
        gossip_interval: Duration::from_millis(100),
        stale_after: Duration::from_secs(1),
        ..FleetConfig::new(id, "r", "127.0.0.1:0".parse().expect("addr"))
    };
    let peer = meridian_fleet::Fleet::start(&config("peer", vec![]), cancel.clone()).await.expect("peer starts");
    let here = meridian_fleet::Fleet::start(&config("here", vec![peer.local_addr().to_string()]), cancel.clone())
        .await
        .expect("this instance starts");
    (peer, here)
}

/// The next probe the writer is told of, within five seconds.
async fn next_probe(sent: &mut tokio::sync::mpsc::UnboundedReceiver<crate::Update>) -> Option<ProbeState> {
    loop {
        match tokio::time::timeout(Duration::from_secs(5), sent.recv()).await.ok().flatten()? {
            crate::Update::Probe { probe, .. } => return Some(probe.state),
            _ => continue,
        }
    }
}

/// In a fleet the table is told the fleet's verdict: a peer's "up" is published before
/// this instance's own first probe and holds while its own probes fail (quorum `any`),
/// its own "down" reaches the fleet, and the peer's change to "down" is republished.
#[tokio::test]
async fn in_a_fleet_the_table_gets_the_fleet_verdict() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("fleet.key");
    std::fs::write(&key, "discovery-health-fleet-test-key-0123456789").expect("key");
    let cancel = tokio_util::sync::CancellationToken::new();
    let (peer, here) = fleet_pair(&key, &cancel).await;
    // A port nobody listens on: every probe from here fails.
    let closed = TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    peer.observe(closed, true, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while here.health(closed) != meridian_fleet::Health::Up {
        assert!(tokio::time::Instant::now() < deadline, "the peer's ballot never arrived");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (table, mut writer) = crate::table::Table::new();
    let mut sh = shard(&[]);
    sh.ports = vec![Port { name: None, port: closed.port(), protocol: Protocol::Tcp }];
    writer.apply([crate::Update::Cluster(sh.cluster.clone())]);
    let (updates, mut sent) = tokio::sync::mpsc::unbounded_channel();
    let mut registry = prometheus_client::registry::Registry::default();
    let mut config = meridian_config::Config::demo();
    config.health.interval = meridian_config::Duration::from_secs(1);
    config.health.jitter = meridian_config::Duration::from_millis(0);
    config.health.unhealthy_threshold = 1;
    let checker = spawn_in_fleet(&config, table, updates, &mut registry, &cancel, Some(here.clone()));
    writer.apply([crate::Update::Service {
        cluster: "eu-west".into(),
        key: ObjectKey::new("default", "web"),
        shard: Some(sh),
    }]);
    assert_eq!(next_probe(&mut sent).await, Some(ProbeState::Up), "the fleet's verdict, before any probe");
    wait_targets(&checker, "this instance's own probes fail", |t| {
        t.len() == 1 && t[0].state == "down" && t[0].fleet == Some("up")
    })
    .await;
    assert_eq!(here.verdict(closed).by("here").map(|s| s.up), Some(false), "its own ballot is down");
    peer.observe(closed, false, None);
    assert_eq!(next_probe(&mut sent).await, Some(ProbeState::Down), "the peer's change is republished");
    checker.shutdown().await;
    cancel.cancel();
}
