//! Multi-Cluster Services names (KEP-1645).

use std::time::Duration;

use meridian_model::table::{ObjectKey, Update};
use meridian_testkit::wait::eventually_sync;

use crate::support::*;

fn export(cluster: &str, ns: &str, name: &str) -> Update {
    Update::Export { cluster: cluster.into(), key: ObjectKey::new(ns, name), present: true }
}

fn headless(cluster_name: &str, eps: Vec<meridian_model::table::Endpoint>) -> meridian_model::table::Shard {
    let mut s = shard(cluster_name, &[], eps.iter().filter(|e| e.ready).count() as u32);
    s.headless = true;
    s.endpoints = eps;
    s
}

/// ClusterSetIP A and SRV, dns-version TXT, headless endpoints and hostnames; services
/// without a ServiceExport have no clusterset name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clusterset_names() {
    let updates = vec![
        svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1)),
        svc("eu-west", "shop", "web", shard("eu-west", &["192.0.2.2"], 1)),
        export("us-east", "shop", "web"),
        svc(
            "us-east",
            "shop",
            "db",
            headless("us-east", vec![endpoint("10.0.0.1", Some("db-0"), true), endpoint("10.0.0.2", None, false)]),
        ),
        svc("eu-west", "shop", "db", headless("eu-west", vec![endpoint("10.1.0.1", Some("db-1"), true)])),
        export("us-east", "shop", "db"),
        svc("us-east", "shop", "idle", headless("us-east", vec![endpoint("10.0.0.9", None, false)])),
        export("us-east", "shop", "idle"),
        svc("us-east", "shop", "private", shard("us-east", &["192.0.2.7"], 1)),
    ];
    let env = start(config(), updates).await;
    let out = dig(&env, &["A", "web.shop.svc.clusterset.local"]);
    assert_eq!(answers(&out, "A"), vec!["192.0.2.1", "192.0.2.2"], "{out}");
    assert!(flags(&out).contains(&"aa".to_owned()));
    let out = dig(&env, &["SRV", "_http._tcp.web.shop.svc.clusterset.local"]);
    assert_eq!(answers(&out, "SRV"), vec!["0 100 80 web.shop.svc.clusterset.local."], "{out}");
    let out = kdig(&env, &["TXT", "dns-version.clusterset.local"]);
    assert_eq!(answers(&out, "TXT"), vec!["\"1.0.0\""], "{out}");
    let out = dig(&env, &["A", "db.shop.svc.clusterset.local"]);
    assert_eq!(answers(&out, "A"), vec!["10.0.0.1", "10.1.0.1"], "{out}");
    let out = dig(&env, &["A", "db-1.eu-west.db.shop.svc.clusterset.local"]);
    assert_eq!(answers(&out, "A"), vec!["10.1.0.1"], "{out}");
    let out = dig(&env, &["SRV", "_http._tcp.db.shop.svc.clusterset.local"]);
    assert_eq!(
        answers(&out, "SRV"),
        vec![
            "0 100 80 db-0.us-east.db.shop.svc.clusterset.local.",
            "0 100 80 db-1.eu-west.db.shop.svc.clusterset.local."
        ],
        "{out}"
    );
    assert_eq!(status(&dig(&env, &["A", "idle.shop.svc.clusterset.local"])), "NXDOMAIN");
    assert_eq!(status(&dig(&env, &["A", "private.shop.svc.clusterset.local"])), "NXDOMAIN");
    // The federated name of the unexported service still exists.
    assert_eq!(answers(&dig(&env, &["A", "private.shop.demo.svc.meridian.test"]), "A"), vec!["192.0.2.7"]);
    env.server.shutdown().await;
}

/// `clusterset.export = "all"` exports every federated service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_all() {
    let mut c = config();
    c.dns.clusterset.export = meridian_config::dns::ExportMode::All;
    let env = start(c, vec![svc("us-east", "shop", "private", shard("us-east", &["192.0.2.7"], 1))]).await;
    assert_eq!(answers(&dig(&env, &["A", "private.shop.svc.clusterset.local"]), "A"), vec!["192.0.2.7"]);
    env.server.shutdown().await;
}

/// A headless service with 120 ready endpoints (each with a hostname): its clusterset
/// name answers 8 A records by default and its SRV set at most 100 records, which a
/// BIND resolver accepts (it refuses RRsets over 100).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_headless_services_are_capped() {
    let eps = (0..120).map(|i| {
        let ip = format!("10.2.{}.{}", i / 200, 1 + i % 200);
        endpoint(&ip, Some(&format!("pod-{i}")), true)
    });
    let updates =
        vec![svc("us-east", "shop", "big", headless("us-east", eps.collect())), export("us-east", "shop", "big")];
    let env = start(config(), updates).await;
    let a = dig(&env, &["A", "big.shop.svc.clusterset.local", "+tcp"]);
    assert_eq!(answers(&a, "A").len(), 8, "{a}");
    let srv = dig(&env, &["SRV", "_http._tcp.big.shop.svc.clusterset.local", "+tcp"]);
    assert_eq!(answers(&srv, "SRV").len(), 100, "{srv}");
    env.server.shutdown().await;
}

/// An exported headless service's Federation v1 names answer its ready endpoints across
/// clusters, per region and zone as for load balancers (a region without ready endpoints
/// is a CNAME up), and the global name is capped like the clusterset name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn federation_names_of_headless_services_answer_their_endpoints() {
    let big = (0..120).map(|i| endpoint(&format!("10.3.0.{}", 1 + i), None, true));
    let updates = vec![
        svc("us-east", "shop", "db", headless("us-east", vec![endpoint("10.0.0.1", Some("db-0"), true)])),
        svc(
            "eu-west",
            "shop",
            "db",
            headless("eu-west", vec![endpoint("10.1.0.1", Some("db-1"), true), endpoint("10.1.0.2", None, false)]),
        ),
        export("us-east", "shop", "db"),
        svc("us-east", "shop", "big", headless("us-east", big.collect())),
        export("us-east", "shop", "big"),
    ];
    let env = start(config(), updates).await;
    let global = "db.shop.demo.svc.meridian.test";
    // (name, CNAMEs, A records)
    let cases: &[(&str, &[&str], &[&str])] = &[
        (global, &[], &["10.0.0.1", "10.1.0.1"]),
        ("db.shop.demo.svc.us-east1.meridian.test", &[], &["10.0.0.1"]),
        ("db.shop.demo.svc.us-east1-b.us-east1.meridian.test", &[], &["10.0.0.1"]),
        ("db.shop.demo.svc.europe-west1.meridian.test", &[], &["10.1.0.1"]),
        ("db.shop.demo.svc.asia-south1.meridian.test", &["db.shop.demo.svc.meridian.test."], &["10.0.0.1", "10.1.0.1"]),
        ("db.shop.svc.clusterset.local", &[], &["10.0.0.1", "10.1.0.1"]),
    ];
    for (name, cnames, addrs) in cases {
        let out = dig(&env, &["A", name]);
        assert_eq!(status(&out), "NOERROR", "{name}: {out}");
        assert!(flags(&out).contains(&"aa".to_owned()), "{name}: {out}");
        assert_eq!(answers(&out, "CNAME"), cnames.to_vec(), "{name}: {out}");
        assert_eq!(answers(&out, "A"), addrs.to_vec(), "{name}: {out}");
    }
    for name in ["big.shop.demo.svc.meridian.test", "big.shop.demo.svc.us-east1.meridian.test"] {
        let out = dig(&env, &["A", name, "+tcp"]);
        assert_eq!(answers(&out, "A").len(), 8, "{name}: {out}");
    }
    env.server.shutdown().await;
}

/// When an endpoint of a headless service stops being ready, its own clusterset name goes
/// (NXDOMAIN) and it leaves the clusterset and Federation v1 answers, within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_stops_being_ready_leaves_every_name() {
    let eps = |ready: bool| vec![endpoint("10.0.0.1", Some("db-0"), true), endpoint("10.0.0.2", Some("db-1"), ready)];
    let updates = vec![
        svc("us-east", "shop", "db", headless("us-east", eps(true))),
        svc("eu-west", "shop", "db", headless("eu-west", vec![endpoint("10.1.0.1", Some("db-2"), true)])),
        export("us-east", "shop", "db"),
    ];
    let mut env = start(config(), updates).await;
    let own = "db-1.us-east.db.shop.svc.clusterset.local";
    let shared =
        ["db.shop.svc.clusterset.local", "db.shop.demo.svc.meridian.test", "db.shop.demo.svc.us-east1.meridian.test"];
    assert_eq!(answers(&dig(&env, &["A", own]), "A"), vec!["10.0.0.2"]);
    for name in shared {
        assert!(answers(&dig(&env, &["A", name]), "A").contains(&"10.0.0.2".to_owned()), "{name}");
    }
    env.writer.apply([svc("us-east", "shop", "db", headless("us-east", eps(false)))]);
    let gone = eventually_sync(Duration::from_secs(1), "db-1 leaves every name", || {
        let own_gone = status(&dig(&env, &["A", own])) == "NXDOMAIN";
        let left = shared.iter().all(|n| !answers(&dig(&env, &["A", n]), "A").contains(&"10.0.0.2".to_owned()));
        (own_gone && left).then_some(())
    })
    .await;
    assert!(gone.is_ok(), "{}\n{}", dig(&env, &["A", own]), dig(&env, &["A", shared[1]]));
    env.server.shutdown().await;
}
