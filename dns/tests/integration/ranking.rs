//! Health checks and ranking through the whole stack: simulated clusters whose load
//! balancers have real HTTP backends on loopback, discovery watching them, the health
//! checker probing every shard address, and the DNS server answering dig and kdig.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meridian_config::Config;
use meridian_discovery::geo::Geo;
use meridian_discovery::health::{self, HealthChecker};
use meridian_discovery::table::{ProbeState, Snapshot};
use meridian_discovery::{Discovery, Metrics, SimulatorLink};
use meridian_dns::DnsServer;
use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use meridian_testkit::wait::{eventually_sync, eventually_timed};
use prometheus_client::registry::Registry;
use serde_json::{Value, json};

use crate::support::{dig_at, geolite2, kdig_at, listen_addr, section};

/// Probe cadence of these tests: a shard is Down after 2 failed probes 1 s apart.
const INTERVAL: Duration = Duration::from_secs(1);
const THRESHOLD: u32 = 2;

const CLUSTERS: [(&str, &str, &str, f64, f64); 3] = [
    ("us-east", "us-east1", "us-east1-b", 39.04, -77.49),
    ("eu-west", "europe-west1", "europe-west1-b", 50.45, 3.82),
    ("ap-south", "asia-south1", "asia-south1-a", 19.08, 72.88),
];

struct Stack {
    sim: Simulator,
    discovery: Arc<Discovery>,
    health: Option<HealthChecker>,
    dns: Option<DnsServer>,
    addr: SocketAddr,
    config: Config,
    _dir: tempfile::TempDir,
}

impl Stack {
    async fn stop(mut self) {
        if let Some(h) = self.health.take() {
            h.shutdown().await;
        }
        if let Some(d) = self.dns.take() {
            d.shutdown().await;
        }
        self.discovery.shutdown();
        self.sim.shutdown().await;
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.discovery.table().snapshot()
    }

    /// The load-balancer address of `svc` in `cluster`.
    fn address(&self, svc: &str, cluster: &str) -> String {
        let snap = self.snapshot();
        let shard = snap.service("default", svc).and_then(|s| s.shard(cluster)).expect("shard");
        shard.addresses.first().expect("address").to_string()
    }

    /// Every cluster's address of `svc`, by cluster.
    fn addresses(&self, svc: &str) -> BTreeMap<String, String> {
        CLUSTERS.iter().map(|c| (c.0.to_owned(), self.address(svc, c.0))).collect()
    }

    fn apply(&self, cluster: &str, obj: Value) {
        self.sim.cluster(cluster).expect("cluster").apply_json(obj).expect("apply");
    }

    fn set_backend(&self, cluster: &str, svc: &str, up: bool) {
        self.sim.cluster(cluster).expect("cluster").set_backend("default", svc, up).expect("set backend");
    }

    /// Waits until every cluster's shard of `svc` is ready and probed Up.
    async fn wait_probed(&self, svc: &str) {
        let ok = self
            .discovery
            .table()
            .wait_for(Duration::from_secs(20), |s| {
                s.service("default", svc).is_some_and(|v| {
                    v.shards.len() == CLUSTERS.len()
                        && v.shards.iter().all(|sh| sh.is_healthy() && sh.probe.state == ProbeState::Up)
                })
            })
            .await;
        assert!(ok, "{svc} not probed Up everywhere: {:#?}", self.snapshot().service("default", svc));
    }
}

fn config(dir: &std::path::Path) -> Config {
    let mut text = String::from(
        r#"
name = "t"
dns_zone = "t.test"
[discovery]
probe_interval = "200ms"
probe_timeout = "1s"
[dns]
listen = ["{listen}"]
[health]
interval = "1s"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 2
jitter = "100ms"
[ranking]
default_policy = "roundrobin"
"#,
    )
    .replace("{listen}", &listen_addr().to_string());
    text.push_str(&format!("geoip_db = [{:?}]\n", geolite2().display().to_string()));
    // Source addresses for tests without ECS: 127.0.0.2 is in Paris, 127.0.0.3 in the
    // asia-south1 region, the rest of loopback nowhere.
    text.push_str(
        r#"
[[ranking.networks]]
cidr = "127.0.0.2"
location = { lat = 48.85, lon = 2.35 }
[[ranking.networks]]
cidr = "127.0.0.3"
region = "asia-south1"
[[ranking.networks]]
cidr = "127.0.0.0/8"
"#,
    );
    for (name, region, zone, lat, lon) in CLUSTERS {
        text.push_str(&format!(
            "[[clusters]]\nname = {name:?}\nsimulated = true\nregion = {region:?}\nzone = {zone:?}\nlocation = {{ lat = {lat}, lon = {lon} }}\n"
        ));
    }
    Config::parse(&text, std::path::Path::new("ranking-test.toml"), dir).expect("test config")
}

async fn stack() -> Stack {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config(dir.path());
    let sim = Simulator::new(SimOptions::default());
    for (name, region, zone, _, _) in CLUSTERS {
        sim.add_cluster(ClusterSpec::new(name).with_topology(region, zone)).await.expect("cluster");
    }
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let discovery = Discovery::new(Metrics::default(), SimulatorLink { kubeconfig: Some(kubeconfig) });
    let errors = discovery.apply(&config).await;
    assert!(errors.is_empty(), "{errors:?}");
    let mut registry = Registry::default();
    let health = health::spawn(&config, discovery.table(), discovery.updates(), &mut registry, &Default::default());
    let dns =
        DnsServer::start(&config, discovery.table(), &mut registry, Default::default()).await.expect("dns starts");
    let addr = dns.local_addrs()[0];
    Stack { sim, discovery, health: Some(health), dns: Some(dns), addr, config, _dir: dir }
}

fn service(name: &str, annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": 8080}]}
    })
}

/// Creates `name` in every cluster with the same annotations and waits until it is probed.
async fn everywhere(s: &Stack, name: &str, annotations: Value) {
    for c in CLUSTERS {
        s.apply(c.0, service(name, annotations.clone()));
    }
    s.wait_probed(name).await;
}

fn qname(svc: &str) -> String {
    format!("{svc}.default.t.svc.t.test")
}

/// A records in answer order.
fn a_records(out: &str) -> Vec<String> {
    section(out, "ANSWER").into_iter().filter(|r| r.2 == "A").map(|r| r.3).collect()
}

/// `(source prefix, scope)` of the CLIENT-SUBNET option dig or kdig printed.
fn client_subnet(out: &str) -> Option<(u8, u8)> {
    let line = out.lines().find(|l| l.contains("CLIENT-SUBNET: "))?;
    let v = line.split("CLIENT-SUBNET: ").nth(1)?.trim();
    let mut parts = v.rsplitn(3, '/');
    let scope = parts.next()?.trim().parse().ok()?;
    let source = parts.next()?.trim().parse().ok()?;
    Some((source, scope))
}

/// ECS from Europe, India and the US puts eu-west, ap-south and us-east first, and the
/// echoed scope is the GeoLite2 network's prefix (capped by the source prefix) — with
/// dig and with kdig. A location-independent service echoes scope 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn geo_answers_follow_client_subnet_with_its_scope() {
    let s = stack().await;
    everywhere(&s, "web", json!({"meridian.io/policy": "geo"})).await;
    everywhere(&s, "plain", json!({})).await;
    let addrs = s.addresses("web");
    let geo = Geo::from_config(&s.config);
    // Subnets checked with `mmdblookup`: FR (Paris), IN (Bangalore), US (New Jersey).
    let cases = [("195.154.0.0/24", "eu-west"), ("117.192.0.0/24", "ap-south"), ("24.0.0.0/24", "us-east")];
    for (subnet, cluster) in cases {
        let (net, prefix) = subnet.split_once('/').expect("cidr");
        let prefix: u8 = prefix.parse().expect("prefix");
        let want_scope = geo.locate(net.parse().expect("ip"), prefix).scope;
        assert!(want_scope > 0 && want_scope <= prefix, "{subnet}: database scope {want_scope}");
        let arg = format!("+subnet={subnet}");
        for out in [dig_at(s.addr, &[&qname("web"), "A", &arg]), kdig_at(s.addr, &[&qname("web"), "A", &arg])] {
            let recs = a_records(&out);
            assert_eq!(recs.len(), 3, "{out}");
            assert_eq!(recs.first(), addrs.get(cluster), "{subnet} → {cluster} first:\n{out}");
            assert_eq!(client_subnet(&out), Some((prefix, want_scope)), "{subnet} scope:\n{out}");
        }
    }
    // IPv6 subnets are located too.
    let out = dig_at(s.addr, &[&qname("web"), "A", "+subnet=2405:200::/32"]);
    assert_eq!(a_records(&out).first(), addrs.get("ap-south"), "{out}");
    // Answers that do not depend on location echo scope 0.
    let out = dig_at(s.addr, &[&qname("plain"), "A", "+subnet=195.154.0.0/24"]);
    assert_eq!(client_subnet(&out), Some((24, 0)), "{out}");
    assert_eq!(a_records(&out).len(), 3);
    // Source prefix 0: the resolver asks for an untailored answer (RFC 7871 §7.1.2).
    let out = dig_at(s.addr, &[&qname("web"), "A", "+subnet=0.0.0.0/0"]);
    assert_eq!(client_subnet(&out), Some((0, 0)), "{out}");
    s.stop().await;
}

/// Without ECS the query's source address is located (here through the network table):
/// from 127.0.0.2 (Paris) eu-west is first, from 127.0.0.3 (region asia-south1) ap-south;
/// from 127.0.0.1, which has no location, geo falls back to the default roundrobin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_subnet_the_source_address_is_used() {
    let s = stack().await;
    everywhere(&s, "web", json!({"meridian.io/policy": "geo"})).await;
    let addrs = s.addresses("web");
    for (src, cluster) in [("127.0.0.2", "eu-west"), ("127.0.0.3", "ap-south")] {
        for _ in 0..3 {
            let out = dig_at(s.addr, &["-b", src, &qname("web"), "A"]);
            assert_eq!(a_records(&out).first(), addrs.get(cluster), "from {src}:\n{out}");
            assert_eq!(client_subnet(&out), None, "no ECS sent, none echoed");
        }
    }
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let out = dig_at(s.addr, &["-b", "127.0.0.1", &qname("web"), "A"]);
        assert_eq!(a_records(&out).len(), 3, "{out}");
        firsts.extend(a_records(&out).into_iter().next());
    }
    assert!(firsts.len() > 1, "unlocated clients get rotated answers: {firsts:?}");
    s.stop().await;
}

/// Stopping one shard's backend (its HTTP server, not its endpoints) takes it out of
/// answers within interval × threshold + 1 s; restarting brings it back as fast.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_backend_leaves_answers_and_comes_back() {
    let s = stack().await;
    everywhere(&s, "web", json!({})).await;
    let eu = s.address("web", "eu-west");
    let bound = INTERVAL * THRESHOLD + Duration::from_secs(1);
    let answers = || a_records(&dig_at(s.addr, &[&qname("web"), "A"]));
    assert!(answers().contains(&eu));

    s.set_backend("eu-west", "web", false);
    let left = eventually_timed(bound + Duration::from_secs(5), "eu-west left the answers", || async {
        (!answers().contains(&eu)).then_some(())
    });
    let (_, took) = left.await.expect("eu-west never left the answers");
    assert!(took <= bound, "eu-west left after {took:?}, more than {bound:?}");
    assert_eq!(answers().len(), 2, "the others stay");
    let snap = s.snapshot();
    let shard = snap.service("default", "web").and_then(|v| v.shard("eu-west")).expect("shard");
    assert_eq!(shard.probe.state, ProbeState::Down);
    assert_eq!(shard.ready_endpoints, 2, "its endpoints are still ready: only the probe failed");
    let targets = s.health.as_ref().expect("checker").targets();
    let t = targets.iter().find(|t| t.cluster == "eu-west" && t.service == "default/web").expect("target");
    assert_eq!(t.state, "down");
    assert!(t.last_error.as_deref().is_some_and(|e| e.contains("connect")), "{t:?}");

    s.set_backend("eu-west", "web", true);
    let back = eventually_timed(bound + Duration::from_secs(5), "eu-west back in the answers", || async {
        answers().contains(&eu).then_some(())
    });
    let (_, took) = back.await.expect("eu-west never came back");
    assert!(took <= bound, "eu-west came back after {took:?}, more than {bound:?}");
    s.stop().await;
}

/// Weights 50/30/20 (annotation `meridian.io/weight`) with one answer per query: over
/// 10,000 real queries each cluster's share is within 2 percentage points.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_answers_match_the_weights() {
    let s = stack().await;
    for (c, w) in [("us-east", "50"), ("eu-west", "30"), ("ap-south", "20")] {
        let ann = json!({"meridian.io/policy": "weighted", "meridian.io/weight": w, "meridian.io/max-answers": "1"});
        s.apply(c, service("weighted", ann));
    }
    s.wait_probed("weighted").await;
    let by_addr: BTreeMap<String, String> = s.addresses("weighted").into_iter().map(|(c, a)| (a, c)).collect();
    let n = 10_000;
    let dir = tempfile::tempdir().expect("tempdir");
    let batch = dir.path().join("queries");
    std::fs::write(&batch, format!("{} A\n", qname("weighted")).repeat(n)).expect("batch file");
    let out = dig_at(s.addr, &["+noall", "+answer", "-f", &batch.display().to_string()]);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for line in out.lines().filter(|l| !l.trim().is_empty() && !l.starts_with(';')) {
        let addr = line.split_whitespace().last().unwrap_or_default();
        let cluster = by_addr.get(addr).unwrap_or_else(|| panic!("unknown address in {line:?}"));
        *counts.entry(cluster.clone()).or_default() += 1;
        total += 1;
    }
    assert_eq!(total, n, "one record per answer, one answer per query");
    for (c, want) in [("us-east", 0.5), ("eu-west", 0.3), ("ap-south", 0.2)] {
        let share = counts.get(c).copied().unwrap_or(0) as f64 / n as f64;
        assert!((share - want).abs() <= 0.02, "{c}: {share:.3} vs {want} ({counts:?})");
    }
    s.stop().await;
}

/// Failover (`europe-west1, us-east`): only the first group with a healthy shard answers;
/// when eu-west's backend stops, us-east takes over; ap-south is never used meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_moves_to_the_next_group() {
    let s = stack().await;
    everywhere(&s, "fo", json!({"meridian.io/policy": "failover", "meridian.io/failover": "europe-west1, us-east"}))
        .await;
    let addrs = s.addresses("fo");
    let answers = || a_records(&dig_at(s.addr, &[&qname("fo"), "A"]));
    let only = |c: &str| vec![addrs.get(c).cloned().unwrap_or_default()];
    assert_eq!(answers(), only("eu-west"));
    s.set_backend("eu-west", "fo", false);
    let bound = INTERVAL * THRESHOLD + Duration::from_secs(1);
    let alone = eventually_sync(bound + Duration::from_secs(5), "only us-east answers", || {
        (answers() == only("us-east")).then_some(())
    });
    assert!(alone.await.is_ok());
    s.set_backend("us-east", "fo", false);
    let alone = eventually_sync(bound + Duration::from_secs(5), "only ap-south answers", || {
        (answers() == only("ap-south")).then_some(())
    });
    assert!(alone.await.is_ok());
    s.set_backend("eu-west", "fo", true);
    let alone = eventually_sync(bound + Duration::from_secs(5), "only eu-west answers", || {
        (answers() == only("eu-west")).then_some(())
    });
    assert!(alone.await.is_ok());
    s.stop().await;
}

/// A malformed policy annotation is reported and the default applies: the answer keeps
/// every shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_annotations_are_reported_not_fatal() {
    let s = stack().await;
    everywhere(&s, "typo", json!({"meridian.io/policy": "nearest", "meridian.io/health-check": "icmp"})).await;
    let out = dig_at(s.addr, &[&qname("typo"), "A"]);
    assert_eq!(a_records(&out).len(), 3, "{out}");
    let problems = s.dns.as_ref().expect("dns").ranking_problems();
    assert!(
        problems
            .iter()
            .any(|p| p.object == "default/typo" && p.annotation == "meridian.io/policy" && p.value == "nearest"),
        "{problems:?}"
    );
    let hp = s.health.as_ref().expect("checker").problems();
    assert_eq!(hp.len(), 3, "one per cluster: {hp:?}");
    s.stop().await;
}
