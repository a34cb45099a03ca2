use serde_json::json;

use super::*;

fn cluster() -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta {
        name: "c1".into(),
        region: Some("r".into()),
        zone: Some("z".into()),
        location: None,
        weight: 1,
        labels: BTreeMap::new(),
        order: 0,
    })
}

fn svc(v: serde_json::Value) -> Service {
    serde_json::from_value(v).expect("service json")
}

fn slice(v: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(v).expect("slice json")
}

const FED: &str = "meridian.io/federate";

#[test]
fn load_balancer_service_with_ipv4_ipv6_and_hostname() {
    let s = svc(json!({
        "metadata": {"name": "web", "namespace": "default", "annotations": {"meridian.io/ttl": "5", "other": "x"}},
        "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80}, {"port": 53, "protocol": "UDP"}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1"}, {"ip": "fd00::1"}, {"hostname": "LB.Example.com."}, {"ip": "not-an-ip"}, {}]}}
    }));
    let sl = slice(json!({
        "addressType": "IPv4",
        "metadata": {"name": "web-1", "labels": {"kubernetes.io/service-name": "web"}},
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
            {"addresses": ["10.0.0.3"]},
            {"addresses": ["bogus"]}
        ],
        "ports": [{"name": "http", "port": 8080}]
    }));
    let shard = service_shard(&cluster(), &s, &[&sl], false, FED).expect("shard");
    assert_eq!(shard.addresses.iter().map(ToString::to_string).collect::<Vec<_>>(), ["127.0.0.1", "fd00::1"]);
    assert_eq!(shard.hostnames, vec![Arc::from("lb.example.com")]);
    assert_eq!(shard.ready_endpoints, 2, "nil ready counts as ready; bogus address is skipped");
    assert_eq!(shard.total_endpoints, 3);
    assert!(shard.endpoints.is_empty(), "a shard that is not headless keeps the counts, not the endpoints");
    assert_eq!(shard.ports.len(), 2);
    assert_eq!(shard.ports[1].protocol, Protocol::Udp);
    assert_eq!(shard.annotations.keys().collect::<Vec<_>>(), ["meridian.io/ttl"]);
    assert!(shard.is_healthy());
}

#[test]
fn services_that_yield_no_shard() {
    let cases = [
        (json!({"metadata": {"name": "a"}, "spec": {"type": "ClusterIP"}}), Skip::NotExposed),
        (json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"}}), Skip::NoAddress),
        (json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"}, "status": {}}), Skip::NoAddress),
        (json!({"metadata": {"name": "a"}}), Skip::NotExposed),
        (
            json!({"metadata": {"name": "a", "annotations": {FED: "false"}}, "spec": {"type": "LoadBalancer"},
                   "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}}),
            Skip::OptedOut,
        ),
    ];
    for (obj, want) in cases {
        assert_eq!(service_shard(&cluster(), &svc(obj.clone()), &[], false, FED), Err(want), "{obj}");
    }
}

#[test]
fn external_ips_and_exported_headless_services_count() {
    let ext = svc(json!({"metadata": {"name": "a"}, "spec": {"type": "ClusterIP", "externalIPs": ["192.0.2.7"]}}));
    let shard = service_shard(&cluster(), &ext, &[], false, FED).expect("external");
    assert_eq!(shard.addresses[0].to_string(), "192.0.2.7");
    let headless = svc(
        json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
    );
    let sl = slice(json!({
        "addressType": "IPv4", "metadata": {"name": "db-1"},
        "endpoints": [{"addresses": ["10.1.0.1"], "hostname": "db-0"}], "ports": [{"name": "pg", "port": 5432}]
    }));
    let shard = service_shard(&cluster(), &headless, &[&sl], true, FED).expect("exported headless");
    assert!(shard.headless && shard.exported);
    assert_eq!(shard.endpoints[0].hostname.as_deref(), Some("db-0"));
    assert!(!shard.has_address());
}

#[test]
fn ingress_rules_become_paths() {
    let ing: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "www", "namespace": "default"},
        "spec": {
            "defaultBackend": {"service": {"name": "fallback", "port": {"number": 80}}},
            "rules": [{"host": "WWW.Meridian.Test", "http": {"paths": [
                {"path": "/api", "pathType": "Prefix", "backend": {"service": {"name": "api", "port": {"name": "http"}}}},
                {"pathType": "ImplementationSpecific", "backend": {"resource": {"kind": "Bucket", "name": "b"}}}
            ]}}]
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "127.1.0.1"}]}}
    }))
    .expect("ingress");
    let shard = ingress_shard(&cluster(), &ing, FED).expect("shard");
    assert_eq!(shard.paths.len(), 2, "resource backends are not services");
    assert_eq!(&*shard.paths[1].host, "www.meridian.test");
    assert_eq!(shard.paths[1].port_name.as_deref(), Some("http"));
    assert_eq!(&*shard.paths[0].service, "fallback");
}

#[test]
fn headless_endpoints_carry_their_own_slices_ports_and_count_a_pod_once() {
    let headless = svc(
        json!({"metadata": {"name": "db"}, "spec": {"clusterIP": "None", "ports": [{"name": "pg", "port": 5432}]}}),
    );
    let a = slice(json!({
        "addressType": "IPv4", "metadata": {"name": "db-a"},
        "endpoints": [{"addresses": ["10.1.0.1"], "hostname": "db-0"}], "ports": [{"name": "pg", "port": 5432}]
    }));
    // A slice being replaced: the same pod again (not ready here), and a pod of its own,
    // on another port number.
    let b = slice(json!({
        "addressType": "IPv4", "metadata": {"name": "db-b"},
        "endpoints": [
            {"addresses": ["10.1.0.1"], "conditions": {"ready": false}},
            {"addresses": ["10.1.0.2"], "hostname": "db-1"}
        ],
        "ports": [{"name": "pg", "port": 6432}]
    }));
    let shard = service_shard(&cluster(), &headless, &[&a, &b], true, FED).expect("headless");
    assert_eq!((shard.ready_endpoints, shard.total_endpoints), (2, 2), "the pod in both slices counts once, ready");
    let by_host: Vec<(Option<&str>, bool, Vec<u16>)> = shard
        .endpoints
        .iter()
        .map(|e| (e.hostname.as_deref(), e.ready, e.ports.iter().map(|p| p.port).collect()))
        .collect();
    assert_eq!(by_host, [(Some("db-0"), true, vec![5432]), (Some("db-1"), true, vec![6432])]);
}
