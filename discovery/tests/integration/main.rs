//! Discovery against simulated clusters in the same process: the simulator's API is real
//! HTTP on loopback, so watches, reconnects and relists are the real thing.

mod client;
mod gateway;
mod lb_names;

use std::sync::Arc;
use std::time::Duration;

use meridian_config::Config;
use meridian_discovery::table::{ClusterState, Snapshot};
use meridian_discovery::{Discovery, Metrics, SimulatorLink};
use meridian_sim::{ClusterSpec, SimCluster, SimOptions, Simulator};
use serde_json::json;

struct Fixture {
    sim: Simulator,
    discovery: Arc<Discovery>,
    _dir: tempfile::TempDir,
}

/// Simulated clusters `a` (config gives region) and `b` (region from its nodes).
async fn fixture(history: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimOptions { history, backends: false, state_dir: None });
    sim.add_cluster(ClusterSpec::new("a").with_topology("ra", "ra-1")).await.expect("cluster a");
    sim.add_cluster(ClusterSpec::new("b").with_topology("node-region", "node-zone")).await.expect("cluster b");
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let config = Config::parse(
        r#"
name = "t"
dns_zone = "t.test"
[discovery]
probe_interval = "100ms"
probe_timeout = "500ms"
offline_after = 2
[[clusters]]
name = "a"
simulated = true
region = "ra"
[[clusters]]
name = "b"
simulated = true
"#,
        std::path::Path::new("test.toml"),
        dir.path(),
    )
    .expect("config");
    let discovery = Discovery::new(Metrics::default(), SimulatorLink { kubeconfig: Some(kubeconfig) });
    let errors = discovery.apply(&config).await;
    assert!(errors.is_empty(), "{errors:?}");
    Fixture { sim, discovery, _dir: dir }
}

fn lb_service(name: &str) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": 8080}]}
    })
}

/// Discovery started for the config `toml` (read as `test.toml` in `dir`), reaching
/// simulated clusters through `kubeconfig`; the errors of its start.
async fn start(
    toml: &str,
    dir: &std::path::Path,
    kubeconfig: Option<std::path::PathBuf>,
) -> (Arc<Discovery>, Vec<meridian_discovery::registry::Error>) {
    let config = Config::parse(toml, std::path::Path::new("test.toml"), dir).expect("config");
    let discovery = Discovery::new(Metrics::default(), SimulatorLink { kubeconfig });
    let errors = discovery.apply(&config).await;
    (discovery, errors)
}

fn cluster(f: &Fixture, name: &str) -> Arc<SimCluster> {
    f.sim.cluster(name).expect("cluster")
}

async fn wait(f: &Fixture, what: &str, pred: impl Fn(&Snapshot) -> bool) {
    let ok = f.discovery.table().wait_for(Duration::from_secs(10), &pred).await;
    assert!(ok, "{what}: not reached; table: {:#?}", f.discovery.table().snapshot().services);
}

fn healthy(s: &Snapshot, svc: &str, cluster: &str) -> Option<bool> {
    s.service("default", svc)?.shard(cluster).map(|sh| sh.is_healthy())
}

#[tokio::test]
async fn services_appear_change_health_and_disappear() {
    let f = fixture(10_000).await;
    cluster(&f, "a").apply_json(lb_service("web")).expect("create");
    wait(&f, "web healthy in a", |s| healthy(s, "web", "a") == Some(true)).await;
    let snap = f.discovery.table().snapshot();
    let shard = snap.service("default", "web").and_then(|s| s.shard("a")).cloned().expect("shard");
    assert!(shard.addresses.iter().all(|ip| ip.to_string().starts_with("127.")), "{:?}", shard.addresses);
    assert_eq!(shard.ports[0].port, 8080);

    cluster(&f, "a").set_ready("default", "web", 0).expect("not ready");
    wait(&f, "web unhealthy in a", |s| healthy(s, "web", "a") == Some(false)).await;
    cluster(&f, "a").delete_json("v1", "Service", Some("default"), "web").expect("delete");
    wait(&f, "web gone", |s| s.service("default", "web").is_none()).await;
}

#[tokio::test]
async fn region_and_zone_come_from_nodes_when_the_config_has_none() {
    let f = fixture(10_000).await;
    wait(&f, "b's topology from nodes", |s| {
        s.clusters.get("b").is_some_and(|c| {
            c.meta.region.as_deref() == Some("node-region") && c.meta.zone.as_deref() == Some("node-zone")
        })
    })
    .await;
    let snap = f.discovery.table().snapshot();
    assert_eq!(snap.clusters.get("a").and_then(|c| c.meta.region.clone()).as_deref(), Some("ra"), "config wins");
}

#[tokio::test]
async fn a_stopped_cluster_goes_offline_and_keeps_its_shards_as_stale() {
    let f = fixture(10_000).await;
    cluster(&f, "b").apply_json(lb_service("web")).expect("create");
    wait(&f, "web in b", |s| healthy(s, "web", "b") == Some(true)).await;

    cluster(&f, "b").stop().await;
    wait(&f, "b offline", |s| matches!(s.clusters.get("b").map(|c| &c.state), Some(ClusterState::Offline { .. })))
        .await;
    let snap = f.discovery.table().snapshot();
    let shard = snap.service("default", "web").and_then(|s| s.shard("b")).expect("shard kept while offline");
    assert!(shard.stale, "marked stale");
    assert!(matches!(snap.clusters.get("a").map(|c| &c.state), Some(ClusterState::Ready)), "a unaffected");

    cluster(&f, "b").start().await.expect("restart");
    wait(&f, "b ready and fresh", |s| {
        matches!(s.clusters.get("b").map(|c| &c.state), Some(ClusterState::Ready))
            && s.service("default", "web").and_then(|v| v.shard("b")).is_some_and(|sh| !sh.stale)
    })
    .await;
}

#[tokio::test]
async fn a_watch_that_gets_410_relists_and_catches_up() {
    let f = fixture(50).await;
    let a = cluster(&f, "a");
    a.apply_json(lb_service("old")).expect("create old");
    a.apply_json(lb_service("kept")).expect("create kept");
    wait(&f, "old and kept", |s| healthy(s, "old", "a") == Some(true) && healthy(s, "kept", "a") == Some(true)).await;

    // While watches are down: delete one, add another, and churn past the retained history.
    a.stop().await;
    a.delete_json("v1", "Service", Some("default"), "old").expect("delete old");
    a.apply_json(lb_service("new")).expect("create new");
    for i in 0..60 {
        a.apply_json(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("churn-{i}"), "namespace": "default"}}))
            .expect("churn");
    }
    a.compact_history();
    a.start().await.expect("restart");
    wait(&f, "relisted", |s| {
        s.service("default", "old").is_none()
            && healthy(s, "new", "a") == Some(true)
            && healthy(s, "kept", "a") == Some(true)
    })
    .await;
    // And it keeps watching after the relist.
    a.set_ready("default", "kept", 0).expect("not ready");
    wait(&f, "kept unhealthy", |s| healthy(s, "kept", "a") == Some(false)).await;
}

#[tokio::test]
async fn an_unreachable_cluster_is_offline_with_a_reason_and_others_still_work() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimOptions { history: 1000, backends: false, state_dir: None });
    let good = sim.add_cluster(ClusterSpec::new("good")).await.expect("good");
    good.apply_json(lb_service("web")).expect("create");
    let kc = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kc).expect("write");
    let dead = dir.path().join("dead.yaml");
    std::fs::write(
        &dead,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: d\n  cluster: {server: \"http://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: d\n  context: {cluster: d, user: u}\ncurrent-context: d\n",
    )
    .expect("dead kubeconfig");
    let (discovery, errors) = start(
        "name = \"t\"\ndns_zone = \"t.test\"\n[discovery]\nprobe_interval = \"100ms\"\n[[clusters]]\nname = \"good\"\nsimulated = true\n[[clusters]]\nname = \"dead\"\nkubeconfig = \"dead.yaml\"\n[[clusters]]\nname = \"nofile\"\nkubeconfig = \"nope.yaml\"\n",
        dir.path(),
        Some(kc),
    )
    .await;
    assert_eq!(errors.len(), 1, "only the missing kubeconfig fails to start: {errors:?}");
    assert!(errors[0].to_string().contains("nope.yaml"), "{}", errors[0]);
    let table = discovery.table();
    let ok = table
        .wait_for(Duration::from_secs(10), |s| {
            let offline = |n: &str| matches!(s.clusters.get(n).map(|c| &c.state), Some(ClusterState::Offline { .. }));
            offline("dead") && offline("nofile") && s.service("default", "web").is_some()
        })
        .await;
    assert!(ok, "{:#?}", table.snapshot().clusters);
    let snap = table.snapshot();
    let Some(ClusterState::Offline { reason, .. }) = snap.clusters.get("dead").map(|c| c.state.clone()) else {
        panic!("dead not offline")
    };
    assert!(reason.contains("connect") || reason.contains("onnection"), "reason says why: {reason}");
}

/// Cluster `b` behind a fault proxy (discovery reaches it only through the proxy), with
/// `extra` TOML appended to `[discovery]`.
async fn proxied_fixture(extra: &str) -> (Fixture, meridian_testkit::FaultProxy) {
    proxied(ClusterSpec::new("b"), extra).await
}

/// Cluster `b`, as `spec` describes it, behind a fault proxy (see [`proxied_fixture`]).
async fn proxied(spec: ClusterSpec, extra: &str) -> (Fixture, meridian_testkit::FaultProxy) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimOptions { history: 10_000, backends: false, state_dir: None });
    let secure = spec.secure;
    let b = sim.add_cluster(spec).await.expect("cluster b");
    let proxy = meridian_testkit::FaultProxy::start(std::net::SocketAddr::from(([127, 0, 0, 1], b.port())))
        .await
        .expect("proxy");
    let direct = dir.path().join("direct");
    sim.write_kubeconfig(&direct).expect("kubeconfig");
    let mut kc = kube::config::Kubeconfig::read_from(&direct).expect("read kubeconfig");
    for c in kc.clusters.iter_mut().filter_map(|c| c.cluster.as_mut()) {
        c.server = Some(if secure { format!("https://{}", proxy.addr()) } else { proxy.url() });
    }
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, serde_json::to_string(&kc).expect("json")).expect("write");
    let text = format!(
        "name = \"t\"\ndns_zone = \"t.test\"\n[discovery]\nprobe_interval = \"100ms\"\nprobe_timeout = \"500ms\"\n{extra}\n\
         [[clusters]]\nname = \"b\"\nsimulated = true\nregion = \"rb\"\n"
    );
    let (discovery, errors) = start(&text, dir.path(), Some(kubeconfig)).await;
    assert!(errors.is_empty(), "{errors:?}");
    (Fixture { sim, discovery, _dir: dir }, proxy)
}

fn state_of(s: &Snapshot, cluster: &str) -> Option<ClusterState> {
    s.clusters.get(cluster).map(|c| c.state.clone())
}

/// A silent partition: the API goes quiet (nothing forwarded, nothing closed) until the
/// cluster is Offline, then heals, but the connections open during it stay dead (their
/// far end forgot them). A Service created and one deleted after the heal reach the
/// table within 10 s, because the watches restart when the cluster is Ready again.
#[tokio::test]
async fn after_a_silent_partition_heals_changes_arrive_within_ten_seconds() {
    let (f, proxy) = proxied_fixture("offline_after = 2").await;
    let b = cluster(&f, "b");
    b.apply_json(lb_service("web")).expect("create");
    wait(&f, "web in b", |s| healthy(s, "web", "b") == Some(true)).await;

    proxy.set(meridian_testkit::Mode::Stall);
    wait(&f, "b offline", |s| matches!(state_of(s, "b"), Some(ClusterState::Offline { .. }))).await;
    proxy.forget_open();
    proxy.set(meridian_testkit::Mode::Pass);
    wait(&f, "b ready again", |s| matches!(state_of(s, "b"), Some(ClusterState::Ready))).await;

    let healed = std::time::Instant::now();
    b.apply_json(lb_service("new")).expect("create new");
    b.delete_json("v1", "Service", Some("default"), "web").expect("delete web");
    wait(&f, "the change after the heal", |s| {
        healthy(s, "new", "b") == Some(true) && s.service("default", "web").is_none()
    })
    .await;
    assert!(healed.elapsed() <= Duration::from_secs(10), "took {:?}", healed.elapsed());
}

/// Watches whose connections die silently while the cluster stays Ready (its probe never
/// fails often enough to turn Offline) are restarted by the watchdog after
/// `watch_silence`, so a change still arrives.
#[tokio::test]
async fn a_silent_watch_is_restarted_by_its_watchdog() {
    let (f, proxy) = proxied_fixture("offline_after = 1000\nwatch_silence = \"2s\"").await;
    let b = cluster(&f, "b");
    b.apply_json(lb_service("web")).expect("create");
    wait(&f, "web in b", |s| healthy(s, "web", "b") == Some(true)).await;
    proxy.forget_open();
    let t0 = std::time::Instant::now();
    b.apply_json(lb_service("new")).expect("create new");
    wait(&f, "new arrives through a restarted watch", |s| healthy(s, "new", "b") == Some(true)).await;
    assert!(matches!(state_of(&f.discovery.table().snapshot(), "b"), Some(ClusterState::Ready)), "b stayed Ready");
    assert!(t0.elapsed() >= Duration::from_millis(1500), "arrived in {:?}, before any restart could", t0.elapsed());
}

/// A kubeconfig for one cluster named `m` whose API is at `server`.
fn kubeconfig_at(server: &str) -> String {
    json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "m", "cluster": {"server": server}}],
        "users": [{"name": "m", "user": {}}],
        "contexts": [{"name": "m", "context": {"cluster": "m", "user": "m"}}],
        "current-context": "m",
    })
    .to_string()
}

/// A reload after the kubeconfig file changed (the API server moved, a credential was
/// rotated) reconnects the cluster, though the configuration names the same file; a
/// reload with the file unchanged does not.
#[tokio::test]
async fn a_changed_kubeconfig_file_reconnects_its_cluster_on_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimOptions { history: 1000, backends: false, state_dir: None });
    let first = sim.add_cluster(ClusterSpec::new("first")).await.expect("first");
    let second = sim.add_cluster(ClusterSpec::new("second")).await.expect("second");
    first.apply_json(lb_service("old-home")).expect("svc");
    second.apply_json(lb_service("new-home")).expect("svc");
    let file = dir.path().join("m.yaml");
    std::fs::write(&file, kubeconfig_at(&first.url())).expect("kubeconfig");
    let text = "name = \"t\"\ndns_zone = \"t.test\"\n[discovery]\nprobe_interval = \"100ms\"\n\
                [[clusters]]\nname = \"m\"\nkubeconfig = \"m.yaml\"\n";
    let config = Config::parse(text, std::path::Path::new("test.toml"), dir.path()).expect("config");
    let discovery = Discovery::new(Metrics::default(), SimulatorLink::default());
    assert!(discovery.apply(&config).await.is_empty());
    let f = Fixture { sim, discovery, _dir: dir };
    wait(&f, "m is the first cluster", |s| healthy(s, "old-home", "m").is_some()).await;
    assert!(f.discovery.apply(&config).await.is_empty(), "an unchanged reload");
    assert!(f.discovery.table().snapshot().service("default", "old-home").is_some(), "still connected");

    std::fs::write(&file, kubeconfig_at(&second.url())).expect("kubeconfig moved");
    assert!(f.discovery.apply(&config).await.is_empty());
    wait(&f, "m is now the second cluster", |s| {
        healthy(s, "new-home", "m").is_some() && s.service("default", "old-home").is_none()
    })
    .await;
}
