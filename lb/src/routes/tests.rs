use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use meridian_model::table::{ClusterMeta, IngressShard, ObjectKey, Port, Probe, Protocol, Table, Update};
use prometheus_client::registry::Registry;

use super::*;

fn meta(name: &str, region: Option<&str>, order: usize) -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta {
        name: name.into(),
        region: region.map(Into::into),
        zone: None,
        location: None,
        weight: 1,
        labels: BTreeMap::new(),
        order,
    })
}

fn shard(cluster: &Arc<ClusterMeta>, last: u8) -> Shard {
    Shard {
        cluster: cluster.clone(),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))],
        hostnames: Vec::new(),
        ports: vec![Port { name: Some("http".into()), port: 8080, protocol: Protocol::Tcp }],
        headless: false,
        ready_endpoints: 1,
        total_endpoints: 1,
        endpoints: Vec::new(),
        annotations: BTreeMap::new(),
        exported: false,
        created: None,
        stale: false,
        probe: Probe::default(),
    }
}

/// Levels: the local region first whatever its config order, then regions by their first
/// cluster's order; clusters of one region share a level.
#[test]
fn priority_levels_put_local_region_first() {
    let (a, b, c, d) =
        (meta("a", Some("r1"), 0), meta("b", Some("r2"), 1), meta("c", Some("r3"), 2), meta("d", Some("r2"), 3));
    let shards = [shard(&a, 1), shard(&b, 2), shard(&c, 3), shard(&d, 4)];
    let refs: Vec<&Shard> = shards.iter().collect();
    let names = |levels: Vec<(Arc<str>, Vec<&Shard>)>| -> Vec<(String, Vec<String>)> {
        levels
            .into_iter()
            .map(|(n, s)| (n.to_string(), s.iter().map(|s| s.cluster.name.to_string()).collect()))
            .collect()
    };
    let got = names(priority_levels(Some("r3"), &refs));
    assert_eq!(
        got,
        [
            ("r3".into(), vec!["c".into()]),
            ("r1".into(), vec!["a".into()]),
            ("r2".into(), vec!["b".to_owned(), "d".into()])
        ]
    );
    let got = names(priority_levels(None, &refs));
    assert_eq!(got[0].0, "r1", "no local region: config order");
    let lone = meta("lone", None, 5);
    let s = shard(&lone, 9);
    assert_eq!(names(priority_levels(Some("r1"), &[&s]))[0].0, "lone", "no region: the cluster is its level");
}

#[test]
fn host_normalisation() {
    for (input, want) in [
        ("a.test", "a.test"),
        ("A.Test:8480", "a.test"),
        ("a.test.", "a.test"),
        ("[::1]:80", "::1"),
        ("127.0.0.1:99", "127.0.0.1"),
    ] {
        assert_eq!(normalize_host(input), want, "{input}");
    }
}

/// Routing matches host exactly or by one-label wildcard, then the longest path
/// prefix by whole segments; `Exact` paths match only themselves.
#[test]
fn route_matching() {
    let (table, mut writer) = Table::new();
    let a = meta("a", Some("r1"), 0);
    writer.apply([
        Update::Cluster(a.clone()),
        Update::Service { cluster: "a".into(), key: ObjectKey::new("ns", "web"), shard: Some(shard(&a, 1)) },
    ]);
    let toml = r#"
        name = "t"
        dns_zone = "meridian.test"
        [lb]
        [[lb.routes]]
        host = "www.test"
        service = "ns/root"
        [[lb.routes]]
        host = "www.test"
        path = "/api"
        service = "ns/api"
        [[lb.routes]]
        host = "www.test"
        path = "/api/v2/"
        service = "ns/v2"
        [[lb.routes]]
        host = "*.wild.test"
        service = "ns/wild"
        [[lb.routes]]
        host = "only.test"
        path = "/x"
        service = "ns/web"
    "#;
    let cfg = match meridian_config::Config::parse(toml, std::path::Path::new("t"), std::path::Path::new("/")) {
        Ok(c) => c,
        Err(e) => unreachable!("{e}"),
    };
    let mut builder = Builder::new(Metrics::new(&mut Registry::default()));
    let index = builder.build(&table.snapshot(), &cfg.lb);
    let cases = [
        ("www.test", "/", Some("ns/root")),
        ("www.test", "/index.html", Some("ns/root")),
        ("www.test", "/api", Some("ns/api")),
        ("www.test", "/api/users", Some("ns/api")),
        ("www.test", "/apix", Some("ns/root")),
        ("www.test", "/api/v2/things", Some("ns/v2")),
        ("www.test", "/api/v2", Some("ns/v2")),
        ("a.wild.test", "/", Some("ns/wild")),
        ("a.b.wild.test", "/", None),
        ("wild.test", "/", None),
        ("only.test", "/y", None),
        ("only.test", "/x/1", Some("ns/web")),
        ("nope.test", "/", None),
    ];
    for (host, path, want) in cases {
        let got = index.lookup(host, path).map(|r| r.upstream.name.to_string());
        assert_eq!(got.as_deref(), want, "{host}{path}");
    }
    let web = index.lookup("only.test", "/x").map(|r| r.upstream.clone());
    let levels = web.as_ref().map(|u| u.levels.len());
    assert_eq!(levels, Some(1));
    assert!(web.is_some_and(|u| u.ready(std::time::Instant::now())));
    assert!(
        index.lookup("www.test", "/").is_some_and(|r| !r.upstream.ready(std::time::Instant::now())),
        "ns/root has no shards"
    );
}

fn http_shard(cluster: &Arc<ClusterMeta>, paths: &[(&str, &str, &str, &str, u16)]) -> IngressShard {
    IngressShard {
        cluster: cluster.clone(),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(127, 9, 0, 1))],
        hostnames: Vec::new(),
        paths: paths
            .iter()
            .map(|(host, path, ty, svc, port)| IngressPath {
                host: (*host).into(),
                path: (*path).into(),
                path_type: (*ty).into(),
                service: (*svc).into(),
                port: *port,
                port_name: None,
            })
            .collect(),
        annotations: BTreeMap::new(),
        stale: false,
    }
}

/// HTTPRoute paths route like Ingress paths (Exact and prefix, the route's namespace,
/// its clusters only); an Ingress of the same name keeps its own routes and wins a host
/// and path both claim.
#[test]
fn httproutes_route_beside_ingresses_and_lose_shared_paths() {
    let (table, mut writer) = Table::new();
    let (a, b) = (meta("a", Some("r1"), 0), meta("b", Some("r2"), 1));
    let key = ObjectKey::new("ns", "front");
    let route = |c: &Arc<ClusterMeta>| {
        http_shard(
            c,
            &[
                ("r.test", "/api", "Prefix", "api", 8080),
                ("r.test", "/exact", "Exact", "web", 8080),
                ("s.test", "/", "Prefix", "api", 8080),
            ],
        )
    };
    writer.apply([
        Update::Cluster(a.clone()),
        Update::Cluster(b.clone()),
        Update::Service { cluster: "a".into(), key: ObjectKey::new("ns", "web"), shard: Some(shard(&a, 1)) },
        Update::Service { cluster: "a".into(), key: ObjectKey::new("ns", "api"), shard: Some(shard(&a, 2)) },
        Update::Service { cluster: "b".into(), key: ObjectKey::new("ns", "api"), shard: Some(shard(&b, 3)) },
        Update::Route { cluster: "a".into(), key: key.clone(), shard: Some(route(&a)) },
        Update::Ingress {
            cluster: "a".into(),
            key: key.clone(),
            shard: Some(http_shard(&a, &[("s.test", "/", "Prefix", "web", 8080)])),
        },
    ]);
    let mut builder = Builder::new(Metrics::new(&mut Registry::default()));
    let index = builder.build(&table.snapshot(), &LbConfig::default());
    let cases = [
        ("r.test", "/api/x", Some(("ns/api:8080", "httproute ns/front"))),
        ("r.test", "/exact", Some(("ns/web:8080", "httproute ns/front"))),
        ("r.test", "/exact/more", None),
        ("s.test", "/", Some(("ns/web:8080", "ingress ns/front"))),
    ];
    for (host, path, want) in cases {
        let got = index.lookup(host, path).map(|r| (r.upstream.name.to_string(), r.source.to_string()));
        assert_eq!(got.as_ref().map(|(u, s)| (u.as_str(), s.as_str())), want, "{host}{path}");
    }
    // The route exists in cluster a only: b's shard of `api` is not a backend.
    let api = index.lookup("r.test", "/api").map(|r| r.upstream.clone()).expect("route");
    let clusters: Vec<String> =
        api.levels.iter().flat_map(|l| l.members.iter().map(|m| m.cluster.to_string())).collect();
    assert_eq!(clusters, ["a"]);
    assert!(index.uses(&ObjectKey::new("ns", "api")));
}
