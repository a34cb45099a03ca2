use super::*;

fn meta(name: &str, order: usize) -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta { region: Some(format!("{name}-r").into()), ..ClusterMeta::new(name, order) })
}

fn shard(cluster: &Arc<ClusterMeta>, ip: &str, ready: u32) -> Shard {
    Shard {
        ports: vec![Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp }],
        ready_endpoints: ready,
        total_endpoints: 2,
        ..Shard::new(cluster.clone(), vec![ip.parse().expect("ip")])
    }
}

fn setup() -> (Table, TableWriter, Arc<ClusterMeta>, Arc<ClusterMeta>) {
    let (t, mut w) = Table::new();
    let (a, b) = (meta("a", 0), meta("b", 1));
    w.apply([Update::Cluster(a.clone()), Update::Cluster(b.clone())]);
    (t, w, a, b)
}

fn svc_update(c: &Arc<ClusterMeta>, s: Option<Shard>) -> Update {
    Update::Service { cluster: c.name.clone(), key: ObjectKey::new("default", "web"), shard: s }
}

#[test]
fn shards_are_kept_in_cluster_order_and_removed_with_the_last_one() {
    let (t, mut w, a, b) = setup();
    w.apply([svc_update(&b, Some(shard(&b, "127.0.0.2", 1))), svc_update(&a, Some(shard(&a, "127.0.0.1", 1)))]);
    let snap = t.snapshot();
    let svc = snap.service("default", "web").expect("service");
    let order: Vec<_> = svc.shards.iter().map(|s| &*s.cluster.name).collect();
    assert_eq!(order, ["a", "b"]);
    w.apply([svc_update(&a, None)]);
    w.apply([svc_update(&b, None)]);
    assert!(t.snapshot().service("default", "web").is_none());
}

#[test]
fn unchanged_updates_publish_nothing() {
    let (t, mut w, a, _) = setup();
    let v1 = w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1)))]);
    assert!(v1.is_some());
    assert_eq!(w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1)))]), None);
    assert_eq!(t.snapshot().version, v1.expect("v"));
}

#[test]
fn old_snapshots_stay_intact_after_writes() {
    let (t, mut w, a, _) = setup();
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1)))]);
    let before = t.snapshot();
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.9", 0)))]);
    let old = before.service("default", "web").expect("svc");
    assert_eq!(old.shards[0].addresses[0].to_string(), "127.0.0.1");
    let new = t.snapshot();
    assert_eq!(new.service("default", "web").expect("svc").shards[0].addresses[0].to_string(), "127.0.0.9");
}

#[test]
fn offline_cluster_marks_shards_stale_and_keeps_them() {
    let (t, mut w, a, b) = setup();
    w.apply([
        Update::State { cluster: a.name.clone(), state: ClusterState::Ready },
        svc_update(&a, Some(shard(&a, "127.0.0.1", 1))),
        svc_update(&b, Some(shard(&b, "127.0.0.2", 1))),
    ]);
    w.apply([Update::State {
        cluster: a.name.clone(),
        state: ClusterState::Offline { reason: "down".into(), since: SystemTime::now() },
    }]);
    let snap = t.snapshot();
    let svc = snap.service("default", "web").expect("svc");
    assert!(svc.shard("a").expect("a").stale);
    assert!(!svc.shard("b").expect("b").stale);
    // An update from the offline cluster's last-known state stays stale.
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.3", 1)))]);
    assert!(t.snapshot().service("default", "web").expect("svc").shard("a").expect("a").stale);
    w.apply([Update::State { cluster: a.name.clone(), state: ClusterState::Ready }]);
    assert!(!t.snapshot().service("default", "web").expect("svc").shard("a").expect("a").stale);
}

#[test]
fn usable_shards_apply_health_stale_policy_and_fail_open() {
    let (t, mut w, a, b) = setup();
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1))), svc_update(&b, Some(shard(&b, "127.0.0.2", 0)))]);
    let names = |snap: &Snapshot, open: bool| -> Vec<String> {
        let svc = snap.service("default", "web").expect("svc");
        snap.usable_shards(&svc.shards, open).iter().map(|s| s.cluster.name.to_string()).collect()
    };
    assert_eq!(names(&t.snapshot(), true), ["a"]);
    // Nothing healthy: fail open gives every shard, fail closed gives none.
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 0)))]);
    assert_eq!(names(&t.snapshot(), true), ["a", "b"]);
    assert!(names(&t.snapshot(), false).is_empty());
    // Stale policy: fallback serves a healthy stale shard only when no fresh one is healthy.
    w.apply([
        svc_update(&a, Some(shard(&a, "127.0.0.1", 1))),
        svc_update(&b, Some(shard(&b, "127.0.0.2", 1))),
        Update::StalePolicy(StalePolicy::Fallback, Duration::from_secs(60)),
        Update::State {
            cluster: a.name.clone(),
            state: ClusterState::Offline { reason: "x".into(), since: SystemTime::now() },
        },
    ]);
    assert_eq!(names(&t.snapshot(), true), ["b"]);
    w.apply([svc_update(&b, Some(shard(&b, "127.0.0.2", 0)))]);
    assert_eq!(names(&t.snapshot(), true), ["a"]);
    w.apply([Update::StalePolicy(StalePolicy::Drop, Duration::from_secs(60))]);
    assert_eq!(names(&t.snapshot(), true), ["b"], "drop: only fresh shards, fail-open over them");
}

#[test]
fn probe_results_survive_object_updates() {
    let (t, mut w, a, _) = setup();
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1)))]);
    w.apply([Update::Probe {
        cluster: a.name.clone(),
        key: ObjectKey::new("default", "web"),
        probe: Probe { state: ProbeState::Down, rtt: None },
    }]);
    assert!(!t.snapshot().service("default", "web").expect("svc").shards[0].is_healthy());
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 2)))]);
    assert!(!t.snapshot().service("default", "web").expect("svc").shards[0].is_healthy());
}

#[test]
fn resync_removes_objects_deleted_while_the_watch_was_down() {
    let (t, mut w, a, b) = setup();
    let other = ObjectKey::new("shop", "api");
    w.apply([
        svc_update(&a, Some(shard(&a, "127.0.0.1", 1))),
        svc_update(&b, Some(shard(&b, "127.0.0.2", 1))),
        Update::Service { cluster: a.name.clone(), key: other.clone(), shard: Some(shard(&a, "127.0.0.5", 1)) },
    ]);
    w.apply([Update::Resync { cluster: a.name.clone(), kind: Kind::Services, keys: vec![other.clone()] }]);
    let snap = t.snapshot();
    assert!(snap.service("default", "web").expect("svc").shard("a").is_none());
    assert!(snap.service("default", "web").expect("svc").shard("b").is_some());
    assert!(snap.services.contains_key(&other));
}

#[test]
fn cluster_metadata_changes_restamp_its_shards() {
    let (t, mut w, a, _) = setup();
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1)))]);
    let mut m = (*a).clone();
    m.weight = 7;
    w.apply([Update::Cluster(Arc::new(m))]);
    assert_eq!(t.snapshot().service("default", "web").expect("svc").shards[0].cluster.weight, 7);
    w.apply([Update::RemoveCluster(a.name.clone())]);
    assert!(t.snapshot().service("default", "web").is_none());
}

#[tokio::test]
async fn subscribers_see_each_published_change() {
    let (t, mut w, a, _) = setup();
    let mut changes = t.changes();
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1)))]);
    let c = changes.recv().await.expect("change");
    assert_eq!(c.services, vec![ObjectKey::new("default", "web")]);
    assert!(t.wait_for(Duration::from_secs(1), |s| s.services.len() == 1).await);
}

#[test]
fn shard_count_follows_adds_replaces_and_removals() {
    let (t, mut w, a, b) = setup();
    let other = |c: &Arc<ClusterMeta>| Update::Service {
        cluster: c.name.clone(),
        key: ObjectKey::new("default", "api"),
        shard: Some(shard(c, "127.0.0.9", 1)),
    };
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1))), svc_update(&b, Some(shard(&b, "127.0.0.2", 1)))]);
    w.apply([other(&a)]);
    assert_eq!(t.snapshot().shard_count(), 3);
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.3", 0)))]);
    assert_eq!(t.snapshot().shard_count(), 3);
    w.apply([svc_update(&b, None)]);
    assert_eq!(t.snapshot().shard_count(), 2);
    w.apply([Update::RemoveCluster(a.name.clone())]);
    let snap = t.snapshot();
    assert_eq!(snap.shard_count(), 0);
    assert_eq!(snap.shard_count(), snap.services.values().map(|s| s.shards.len()).sum::<usize>());
}

#[test]
fn state_changes_list_the_cluster_objects_instead_of_everything() {
    let (t, mut w, a, b) = setup();
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1))), svc_update(&b, Some(shard(&b, "127.0.0.2", 1)))]);
    let mut rx = t.changes();
    // Pending → Ready: no shard changes, nothing to rebuild.
    w.apply([Update::State { cluster: a.name.clone(), state: ClusterState::Ready }]);
    let c = rx.try_recv().expect("change");
    assert!(!c.everything && c.services.is_empty());
    // Ready → Offline: a's shards turn stale; their services are listed.
    let offline = ClusterState::Offline { reason: "down".into(), since: SystemTime::now() };
    w.apply([Update::State { cluster: a.name.clone(), state: offline }]);
    let c = rx.try_recv().expect("change");
    assert!(!c.everything);
    assert_eq!(c.services, [ObjectKey::new("default", "web")]);
    let snap = t.snapshot();
    let svc = snap.service("default", "web").expect("service");
    assert!(svc.shard("a").expect("a").stale && !svc.shard("b").expect("b").stale);
}

#[test]
fn cluster_meta_changes_rebuild_everything_only_when_places_change() {
    let (t, mut w, a, _) = setup();
    w.apply([svc_update(&a, Some(shard(&a, "127.0.0.1", 1)))]);
    let mut rx = t.changes();
    let heavier = Arc::new(ClusterMeta { weight: 5, ..(*a).clone() });
    w.apply([Update::Cluster(heavier.clone())]);
    let c = rx.try_recv().expect("change");
    assert!(!c.everything);
    assert_eq!(c.services, [ObjectKey::new("default", "web")]);
    let moved = Arc::new(ClusterMeta { region: Some("elsewhere".into()), ..(*heavier).clone() });
    w.apply([Update::Cluster(moved)]);
    assert!(rx.try_recv().expect("change").everything);
}

fn http_shard(c: &Arc<ClusterMeta>, host: &str, ip: &str) -> IngressShard {
    IngressShard {
        cluster: c.clone(),
        addresses: vec![ip.parse().expect("ip")],
        hostnames: Vec::new(),
        paths: vec![IngressPath {
            host: host.into(),
            path: "/".into(),
            path_type: "Prefix".into(),
            service: "web".into(),
            port: 80,
            port_name: None,
        }],
        annotations: BTreeMap::new(),
        stale: false,
    }
}

/// An HTTPRoute and an Ingress with the same namespace/name are two objects: each has its
/// own shard, its own change list and its own resync, and `http_sources` yields both,
/// Ingresses first.
#[test]
fn a_route_and_an_ingress_of_one_name_do_not_collide() {
    let (t, mut w, a, _) = setup();
    let key = ObjectKey::new("default", "web");
    let mut rx = t.changes();
    w.apply([
        Update::Ingress {
            cluster: a.name.clone(),
            key: key.clone(),
            shard: Some(http_shard(&a, "i.test", "10.0.0.1")),
        },
        Update::Route { cluster: a.name.clone(), key: key.clone(), shard: Some(http_shard(&a, "r.test", "10.0.0.2")) },
    ]);
    let c = rx.try_recv().expect("change");
    assert_eq!((c.ingresses.as_slice(), c.routes.as_slice()), ([key.clone()].as_slice(), [key.clone()].as_slice()));
    assert!(c.touches_http());
    let snap = t.snapshot();
    let kinds: Vec<(HttpKind, Vec<Arc<str>>)> = snap.http_sources().map(|(k, v)| (k, v.hosts())).collect();
    assert_eq!(kinds, [(HttpKind::Ingress, vec!["i.test".into()]), (HttpKind::HttpRoute, vec!["r.test".into()])]);
    // A resync of routes that no longer lists the route removes it and leaves the Ingress.
    w.apply([Update::Resync { cluster: a.name.clone(), kind: Kind::Routes, keys: Vec::new() }]);
    let c = rx.try_recv().expect("change");
    assert!(c.ingresses.is_empty() && c.routes == [key.clone()]);
    let snap = t.snapshot();
    assert!(snap.route("default", "web").is_none() && snap.ingress("default", "web").is_some());
}

/// A cluster going Offline marks its route shards stale and names the routes.
#[test]
fn an_offline_cluster_marks_its_routes_stale() {
    let (t, mut w, a, _) = setup();
    let key = ObjectKey::new("shop", "front");
    w.apply([Update::Route {
        cluster: a.name.clone(),
        key: key.clone(),
        shard: Some(http_shard(&a, "r.test", "10.0.0.2")),
    }]);
    let mut rx = t.changes();
    let offline = ClusterState::Offline { reason: "down".into(), since: SystemTime::now() };
    w.apply([Update::State { cluster: a.name.clone(), state: offline }]);
    assert_eq!(rx.try_recv().expect("change").routes, [key]);
    assert!(t.snapshot().route("shop", "front").and_then(|r| r.shard("a")).expect("shard").stale);
}
