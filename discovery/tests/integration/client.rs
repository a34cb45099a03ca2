//! The cluster client's own HTTP stack (`client.rs`): a secure cluster's token and CA are
//! used, and lists far larger than a connection's capped read buffer arrive whole.

use std::time::Duration;

use meridian_sim::{ClusterSpec, SimOptions, Simulator};
use serde_json::json;

/// Services in the list: at about 1 KiB each, the list is some 1.2 MiB in three pages,
/// each far over the 64 KiB a connection's read buffer may grow to.
const SERVICES: usize = 1_200;

#[tokio::test]
async fn a_secure_clusters_large_list_arrives_whole_through_the_capped_buffer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimOptions { history: 10_000, backends: false, state_dir: None });
    let c = sim.add_cluster(ClusterSpec::new("s").secure()).await.expect("cluster");
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
