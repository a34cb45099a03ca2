//! The cluster client's own HTTP stack (`client.rs`): a secure cluster's token and CA are
//! used, lists far larger than a connection's capped read buffer arrive whole over
//! HTTP/1.1 and HTTP/2, and an HTTP/2 connection is shared by a cluster's watches and
//! replaced when it goes silent.

use std::time::Duration;

use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use serde_json::json;

/// Services in the list: at about 1 KiB each, the list is some 1.2 MiB in three pages,
/// each far over the 64 KiB a connection's read buffer may grow to.
const SERVICES: usize = 1_200;

#[tokio::test]
async fn a_secure_clusters_large_list_arrives_whole_through_the_capped_buffer() {
    large_list_arrives_whole(ClusterSpec::new("s").secure().http1_only()).await;
}

#[tokio::test]
async fn a_secure_clusters_large_list_arrives_whole_over_http2() {
    large_list_arrives_whole(ClusterSpec::new("s").secure()).await;
}

async fn large_list_arrives_whole(spec: ClusterSpec) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimOptions { history: 10_000, backends: false, state_dir: None });
    let c = sim.add_cluster(spec).await.expect("cluster");
    assert!(c.url().starts_with("https://"), "a secure cluster serves HTTPS: {}", c.url());
    let padding = "x".repeat(700);
    for i in 0..SERVICES {
        let name = format!("svc-{i:04}");
        c.apply_json(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": "default", "annotations": {"example.com/padding": padding}},
            "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": 80}]}
        }))
        .expect("service");
    }
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let toml = "name = \"t\"\ndns_zone = \"t.test\"\n[[clusters]]\nname = \"s\"\nsimulated = true\n";
    let (discovery, errors) = super::start(toml, dir.path(), Some(kubeconfig)).await;
    assert!(errors.is_empty(), "{errors:?}");
    let all = |s: &meridian_discovery::table::Snapshot| {
        s.services.values().filter(|f| f.shard("s").is_some()).count() == SERVICES
    };
    let ok = discovery.table().wait_for(Duration::from_secs(30), &all).await;
    let got = discovery.table().snapshot().services.len();
    assert!(ok, "{got} of {SERVICES} services reached the table");
}

/// Secure clusters offer HTTP/2, as kube-apiserver does: every watch (eight per cluster)
/// and every probe is a stream of one connection, where HTTP/1.1 would hold one
/// connection per watch. The proxy in front of the cluster counts the connections.
#[tokio::test]
async fn a_secure_clusters_watches_and_probes_share_one_http2_connection() {
    let (f, proxy) = watching(ClusterSpec::new("b").secure(), "").await;
    // Ten more probes (every 100 ms), and a change that arrives through a watch.
    tokio::time::sleep(Duration::from_secs(1)).await;
    arrives(&f, "new").await;
    assert_eq!(proxy.accepted(), 1, "connections the cluster's client opened");
}

/// A secure API server that offers only HTTP/1.1 (behind an HTTP/1.1-only TLS proxy) is
/// watched over HTTP/1.1: a connection per watch, and changes still arrive.
#[tokio::test]
async fn a_secure_cluster_that_offers_only_http1_is_watched_over_http1() {
    let (f, proxy) = watching(ClusterSpec::new("b").secure().http1_only(), "").await;
    arrives(&f, "new").await;
    assert!(proxy.accepted() >= 8, "a connection per watch: {}", proxy.accepted());
}

/// The connection goes silent for good (a partition healed, but the far end forgot it).
/// Its HTTP/2 pings go unanswered, so it is closed about when the probes find the
/// cluster Offline (three intervals of 0.1 s and a 0.5 s timeout), and the probes and
/// the watches move to one new connection: a change arrives long before any watch would
/// be found silent (`watch_silence` is 150 s). Without the pings every request would
/// keep going to the dead connection, and the cluster would stay Offline.
#[tokio::test]
async fn a_silent_http2_connection_is_closed_by_its_pings_and_replaced_by_one() {
    let (f, proxy) = watching(ClusterSpec::new("b").secure(), "offline_after = 3").await;
    assert_eq!(proxy.accepted(), 1);
    proxy.forget_open();
    let t0 = std::time::Instant::now();
    arrives(&f, "new").await;
    assert!(t0.elapsed() < Duration::from_secs(10), "took {:?}", t0.elapsed());
    assert_eq!(proxy.accepted(), 2, "one new connection for every watch and probe");
    let ready = |s: &meridian_discovery::table::Snapshot| {
        matches!(s.clusters.get("b").map(|c| &c.state), Some(meridian_discovery::table::ClusterState::Ready))
    };
    assert!(f.discovery.table().wait_for(Duration::from_secs(5), ready).await, "b is Ready again");
}

/// Cluster `b` (as `spec` says) behind a counting proxy, with its Service `web` watched.
async fn watching(spec: ClusterSpec, extra: &str) -> (super::Fixture, meridian_testkit::FaultProxy) {
    let (f, proxy) = super::proxied(spec, extra).await;
    super::cluster(&f, "b").apply_json(super::lb_service("web")).expect("create");
    super::wait(&f, "web in b", |s| super::healthy(s, "web", "b") == Some(true)).await;
    (f, proxy)
}

/// Creates Service `name` in `b` and waits for it through the watches.
async fn arrives(f: &super::Fixture, name: &str) {
    super::cluster(f, "b").apply_json(super::lb_service(name)).expect("create");
    super::wait(f, &format!("{name} in b"), |s| super::healthy(s, name, "b") == Some(true)).await;
}
