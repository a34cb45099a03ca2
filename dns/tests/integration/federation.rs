//! Federation v1 names (global / region / zone), failover CNAMEs, fail-open, TTLs,
//! rotation, Ingress names and hosts, custom names.

use std::time::Duration;

use meridian_model::table::{IngressPath, IngressShard, ObjectKey, Update};
use meridian_testkit::wait::eventually_sync;

use crate::support::*;

const GLOBAL: &str = "web.shop.demo.svc.meridian.test";
const US_REGION: &str = "web.shop.demo.svc.us-east1.meridian.test";
const US_ZONE: &str = "web.shop.demo.svc.us-east1-b.us-east1.meridian.test";
const AP_REGION: &str = "web.shop.demo.svc.asia-south1.meridian.test";
const AP_ZONE: &str = "web.shop.demo.svc.asia-south1-a.asia-south1.meridian.test";

fn web() -> Vec<Update> {
    vec![
        svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1", "2001:db8::1"], 2)),
        svc("eu-west", "shop", "web", shard("eu-west", &["192.0.2.2"], 1)),
    ]
}

/// Each level answers with the healthy shards at that level, or CNAMEs one level up (with
/// the target's records chased), as a table of cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn levels_answer_their_healthy_shards_or_cname_up() {
    let env = start(config(), web()).await;
    let g = format!("{GLOBAL}.");
    let r = format!("{AP_REGION}.");
    let cases: &[(&str, &[&str], &[&str])] = &[
        (GLOBAL, &[], &["192.0.2.1", "192.0.2.2"]),
        (US_REGION, &[], &["192.0.2.1"]),
        (US_ZONE, &[], &["192.0.2.1"]),
        (AP_REGION, &[&g], &["192.0.2.1", "192.0.2.2"]),
        (AP_ZONE, &[&r, &g], &["192.0.2.1", "192.0.2.2"]),
    ];
    for (name, cnames, addrs) in cases {
        let out = dig(&env, &["A", name]);
        assert_eq!(status(&out), "NOERROR", "{name}: {out}");
        let mut want_c: Vec<String> = cnames.iter().map(|s| s.to_string()).collect();
        want_c.sort();
        assert_eq!(answers(&out, "CNAME"), want_c, "{name}: {out}");
        assert_eq!(answers(&out, "A"), addrs.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{name}: {out}");
        assert!(flags(&out).contains(&"aa".to_owned()), "{name}: {out}");
    }
    env.server.shutdown().await;
}

/// Draining the only shard of a zone turns the zone name into a CNAME to the region, then
/// global, within a second; restoring it reverts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_fails_over_to_region_then_global_and_back() {
    let mut env = start(config(), web()).await;
    assert_eq!(answers(&dig(&env, &["A", US_ZONE]), "A"), vec!["192.0.2.1"]);
    env.writer.apply([svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1", "2001:db8::1"], 0))]);
    let took = eventually_sync(Duration::from_secs(1), "zone name fails over", || {
        let out = dig(&env, &["A", US_ZONE]);
        (answers(&out, "CNAME") == vec![format!("{GLOBAL}."), format!("{US_REGION}.")]
            && answers(&out, "A") == vec!["192.0.2.2"])
        .then_some(())
    })
    .await;
    assert!(took.is_ok(), "zone name did not fail over within 1s: {}", dig(&env, &["A", US_ZONE]));
    env.writer.apply([svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1", "2001:db8::1"], 3))]);
    let back = eventually_sync(Duration::from_secs(1), "zone name comes back", || {
        let out = dig(&env, &["A", US_ZONE]);
        (answers(&out, "CNAME").is_empty() && answers(&out, "A") == vec!["192.0.2.1"]).then_some(())
    })
    .await;
    assert!(back.is_ok(), "zone name did not come back: {}", dig(&env, &["A", US_ZONE]));
    env.server.shutdown().await;
}

/// IPv6 load-balancer addresses answer AAAA; a name with only IPv4 gives NODATA for AAAA.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aaaa_answers_ipv6_addresses() {
    let env = start(config(), web()).await;
    assert_eq!(answers(&dig(&env, &["AAAA", GLOBAL]), "AAAA"), vec!["2001:db8::1"]);
    let eu = "web.shop.demo.svc.europe-west1.meridian.test";
    let out = kdig(&env, &["AAAA", eu]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(answers(&out, "AAAA").is_empty(), "{out}");
    env.server.shutdown().await;
}

/// No healthy shard anywhere: all known shards (fail-open), or nothing when configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn none_healthy_fails_open_unless_configured_empty() {
    let down = vec![
        svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 0)),
        svc("eu-west", "shop", "web", shard("eu-west", &["192.0.2.2"], 0)),
    ];
    let env = start(config(), down.clone()).await;
    assert_eq!(answers(&dig(&env, &["A", GLOBAL]), "A"), vec!["192.0.2.1", "192.0.2.2"]);
    env.server.shutdown().await;

    let mut c = config();
    c.dns.when_none_healthy = meridian_config::dns::WhenNoneHealthy::Empty;
    let env = start(c, down).await;
    let out = dig(&env, &["A", GLOBAL]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(answers(&out, "A").is_empty(), "{out}");
    env.server.shutdown().await;
}

/// TTLs come from `dns.ttl` (default 30) and the `meridian.io/ttl` annotation overrides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_default_and_annotation_override() {
    let mut s = shard("us-east", &["192.0.2.9"], 1);
    s.annotations.insert(meridian_dns::TTL_ANNOTATION.to_owned(), "7".to_owned());
    let mut updates = web();
    updates.push(svc("us-east", "shop", "cart", s));
    let env = start(config(), updates).await;
    let ttl = |name: &str| section(&dig(&env, &["A", name]), "ANSWER").first().map(|r| r.1);
    assert_eq!(ttl(GLOBAL), Some(30));
    assert_eq!(ttl("cart.shop.demo.svc.meridian.test"), Some(7));
    env.server.shutdown().await;
}

/// Equal-rank records rotate between answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_rotate_between_answers() {
    let env = start(config(), web()).await;
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let out = dig(&env, &["A", GLOBAL]);
        if let Some(r) = section(&out, "ANSWER").first() {
            firsts.insert(r.3.clone());
        }
    }
    assert_eq!(firsts.len(), 2, "first record never changed: {firsts:?}");
    env.server.shutdown().await;
}

/// Ingress names under `ing`, an Ingress host inside the zone, and a configured custom
/// name mapped to a service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingress_names_hosts_and_custom_names() {
    let mut updates = web();
    for (c, ip) in [("us-east", "198.51.100.1"), ("eu-west", "198.51.100.2")] {
        updates.push(Update::Ingress {
            cluster: c.into(),
            key: ObjectKey::new("shop", "front"),
            shard: Some(IngressShard {
                cluster: cluster(c),
                addresses: vec![ip.parse().expect("ip")],
                hostnames: vec![],
                paths: vec![IngressPath {
                    host: "www.meridian.test".into(),
                    path: "/".into(),
                    path_type: "Prefix".into(),
                    service: "web".into(),
                    port: 80,
                    port_name: None,
                }],
                annotations: Default::default(),
                stale: false,
            }),
        });
    }
    let mut c = config();
    c.dns
        .names
        .push(meridian_config::dns::NameMapping { name: "shop.meridian.test".into(), service: "shop/web".into() });
    let env = start(c, updates).await;
    let both = vec!["198.51.100.1", "198.51.100.2"];
    assert_eq!(answers(&dig(&env, &["A", "front.shop.demo.ing.meridian.test"]), "A"), both);
    assert_eq!(answers(&dig(&env, &["A", "front.shop.demo.ing.us-east1.meridian.test"]), "A"), vec!["198.51.100.1"]);
    assert_eq!(answers(&dig(&env, &["A", "www.meridian.test"]), "A"), both);
    assert_eq!(answers(&dig(&env, &["A", "shop.meridian.test"]), "A"), vec!["192.0.2.1", "192.0.2.2"]);
    let names = env.server.names();
    assert!(names.iter().any(|n| n.name == "www.meridian.test." && n.kind == "ingress-host"), "{names:?}");
    assert!(names.iter().any(|n| n.name == format!("{GLOBAL}.") && n.kind == "service"), "{names:?}");
    env.server.shutdown().await;
}

fn http_shard(c: &str, ip: &str, hosts: &[&str]) -> IngressShard {
    let path = |host: &&str| IngressPath {
        host: (*host).into(),
        path: "/".into(),
        path_type: "Prefix".into(),
        service: "web".into(),
        port: 80,
        port_name: None,
    };
    IngressShard {
        cluster: cluster(c),
        addresses: vec![ip.parse().expect("ip")],
        hostnames: vec![],
        paths: hosts.iter().map(path).collect(),
        annotations: Default::default(),
        stale: false,
    }
}

/// An HTTPRoute's names: `route` federation names and its hosts inside the zone, with its
/// Gateways' addresses; an Ingress of the same namespace/name keeps its own names, and a
/// host both route answers both's addresses. Removing the route withdraws only its names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn httproute_names_and_hosts_beside_an_ingress_of_the_same_name() {
    let key = ObjectKey::new("shop", "front");
    let mut updates = web();
    for (c, ip) in [("us-east", "198.51.100.11"), ("eu-west", "198.51.100.12")] {
        let shard = Some(http_shard(c, ip, &["gw.meridian.test", "both.meridian.test"]));
        updates.push(Update::Route { cluster: c.into(), key: key.clone(), shard });
    }
    let ing = Some(http_shard("us-east", "198.51.100.1", &["both.meridian.test"]));
    updates.push(Update::Ingress { cluster: "us-east".into(), key: key.clone(), shard: ing });
    let mut env = start(config(), updates).await;
    let routes = ["198.51.100.11", "198.51.100.12"];
    assert_eq!(answers(&dig(&env, &["A", "front.shop.demo.route.meridian.test"]), "A"), routes);
    assert_eq!(answers(&dig(&env, &["A", "front.shop.demo.route.europe-west1.meridian.test"]), "A"), ["198.51.100.12"]);
    assert_eq!(answers(&dig(&env, &["A", "gw.meridian.test"]), "A"), routes);
    assert_eq!(answers(&dig(&env, &["A", "front.shop.demo.ing.meridian.test"]), "A"), ["198.51.100.1"]);
    let both = ["198.51.100.1", "198.51.100.11", "198.51.100.12"];
    assert_eq!(answers(&dig(&env, &["A", "both.meridian.test"]), "A"), both);
    let names = env.server.names();
    let kind_of = |n: &str| names.iter().find(|x| x.name == n).map(|x| x.kind);
    assert_eq!(kind_of("gw.meridian.test."), Some("httproute-host"), "{names:?}");
    assert_eq!(kind_of("both.meridian.test."), Some("ingress-host"), "the Ingress comes first");
    assert_eq!(kind_of("front.shop.demo.route.meridian.test."), Some("httproute"));
    let removals = ["us-east", "eu-west"].map(|c| Update::Route { cluster: c.into(), key: key.clone(), shard: None });
    env.writer.apply(removals);
    let gone = |name: &str| status(&dig(&env, &["A", name])) == "NXDOMAIN";
    eventually_sync(Duration::from_secs(2), "route names withdrawn", || gone("gw.meridian.test").then_some(()))
        .await
        .expect("withdrawn");
    assert!(gone("front.shop.demo.route.meridian.test"));
    assert_eq!(answers(&dig(&env, &["A", "both.meridian.test"]), "A"), ["198.51.100.1"]);
    assert_eq!(answers(&dig(&env, &["A", "front.shop.demo.ing.meridian.test"]), "A"), ["198.51.100.1"]);
    env.server.shutdown().await;
}
