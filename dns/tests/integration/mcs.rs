//! Multi-Cluster Services names (KEP-1645).

use meridian_model::table::{ObjectKey, Update};

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
