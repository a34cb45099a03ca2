//! The Gateway API through discovery: a Gateway of the simulator's class `sim` and an
//! HTTPRoute attached to it become a route in the table, with the Gateway's address;
//! the route follows its Gateway; a cluster without the Gateway API CRDs keeps serving
//! its Services.

use std::net::IpAddr;

use meridian_discovery::table::{ClusterState, IngressShard, Snapshot};
use serde_json::json;

use super::{cluster, fixture, lb_service, wait};

const GW_API: &str = "gateway.networking.k8s.io/v1";

fn gateway(listener_host: &str) -> serde_json::Value {
    json!({
        "apiVersion": GW_API, "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {"gatewayClassName": "sim", "listeners": [
            {"name": "http", "protocol": "HTTP", "port": 80, "hostname": listener_host}]},
    })
}

fn route() -> serde_json::Value {
    json!({
        "apiVersion": GW_API, "kind": "HTTPRoute",
        "metadata": {"name": "front", "namespace": "default"},
        "spec": {
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["www.shop.test", "elsewhere.test"],
            "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
                       "backendRefs": [{"name": "web", "port": 8080}]}],
        },
    })
}

fn route_shard(s: &Snapshot, c: &str) -> Option<IngressShard> {
    s.route("default", "front")?.shard(c).map(|sh| (**sh).clone())
}

/// The Gateway's address as the simulator's controller assigned it.
fn gateway_address(f: &super::Fixture) -> Option<IpAddr> {
    let gw = cluster(f, "a").get_json(GW_API, "Gateway", Some("default"), "gw")?;
    gw.pointer("/status/addresses/0/value")?.as_str()?.parse().ok()
}

/// An accepted HTTPRoute under a wildcard listener is in the table with its host, path,
/// backend Service and the Gateway's address; an Ingress of the same name is not
/// touched; the route goes when its Gateway goes.
#[tokio::test]
async fn an_httproute_on_a_sim_gateway_appears_with_the_gateway_address() {
    let f = fixture(10_000).await;
    let a = cluster(&f, "a");
    a.apply_json(lb_service("web")).expect("service");
    a.apply_json(gateway("*.shop.test")).expect("gateway");
    a.apply_json(route()).expect("route");
    let addr = gateway_address(&f).expect("the simulator gives the Gateway an address");
    wait(&f, "route in a", |s| route_shard(s, "a").is_some_and(|sh| sh.addresses == [addr])).await;
    let snap = f.discovery.table().snapshot();
    let shard = route_shard(&snap, "a").expect("shard");
    let paths: Vec<(&str, &str, &str, &str, u16)> =
        shard.paths.iter().map(|p| (&*p.host, &*p.path, &*p.path_type, &*p.service, p.port)).collect();
    assert_eq!(paths, [("www.shop.test", "/api", "Prefix", "web", 8080)], "elsewhere.test is not the listener's");
    assert!(snap.ingress("default", "front").is_none(), "routes are not Ingresses");

    // A listener change re-translates the route: now every route hostname is admitted.
    a.apply_json(json!({
        "apiVersion": GW_API, "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {"gatewayClassName": "sim", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80}]},
    }))
    .expect("listener without hostname");
    wait(&f, "both hosts", |s| route_shard(s, "a").is_some_and(|sh| sh.paths.len() == 2)).await;

    a.delete_json(GW_API, "Gateway", Some("default"), "gw").expect("delete gateway");
    wait(&f, "route gone with its Gateway", |s| s.route("default", "front").is_none()).await;
}

/// A cluster whose Gateway API CRDs are deleted (404 for every kind) stays Ready, keeps
/// serving its Services, and drops the routes it had.
#[tokio::test]
async fn a_cluster_without_the_gateway_api_still_serves_its_services() {
    let f = fixture(10_000).await;
    let b = cluster(&f, "b");
    b.apply_json(lb_service("web")).expect("service");
    b.apply_json(json!({
        "apiVersion": GW_API, "kind": "Gateway",
        "metadata": {"name": "gw", "namespace": "default"},
        "spec": {"gatewayClassName": "sim", "listeners": [{"name": "http", "protocol": "HTTP", "port": 80, "hostname": "*.shop.test"}]},
    }))
    .expect("gateway");
    b.apply_json(route()).expect("route");
    wait(&f, "route in b", |s| route_shard(s, "b").is_some()).await;
    for plural in ["httproutes", "gateways", "gatewayclasses"] {
        let name = format!("{plural}.gateway.networking.k8s.io");
        b.delete_json("apiextensions.k8s.io/v1", "CustomResourceDefinition", None, &name).expect("delete CRD");
    }
    wait(&f, "route dropped", |s| s.route("default", "front").is_none()).await;
    b.apply_json(lb_service("api")).expect("service after the CRDs went");
    wait(&f, "api served from b", |s| s.service("default", "api").is_some_and(|svc| svc.shard("b").is_some())).await;
    let snap = f.discovery.table().snapshot();
    assert!(matches!(snap.clusters.get("b").map(|c| &c.state), Some(ClusterState::Ready)), "b stays Ready");
    assert!(snap.service("default", "web").is_some_and(|svc| svc.shard("b").is_some()), "web still served");
}
