use serde_json::{Value, json};

use super::*;

fn cluster() -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta::new("c1", 0))
}

const FED: &str = "meridian.io/federate";

fn gateway(class: &str, listeners: Value, addresses: Value) -> GatewayInfo {
    GatewayInfo::new(&json!({
        "spec": {"gatewayClassName": class, "listeners": listeners},
        "status": {"addresses": addresses},
    }))
}

fn http_listener(name: &str, hostname: Option<&str>) -> Value {
    let mut l = json!({"name": name, "protocol": "HTTP", "port": 80});
    if let Some(h) = hostname {
        l["hostname"] = json!(h);
    }
    l
}

/// A route in `shop` with these parentRefs, accepted by every parent in `accepted`.
fn route(spec: Value, accepted: &[Value]) -> RouteInfo {
    let parents: Vec<Value> = accepted
        .iter()
        .map(|p| json!({"parentRef": p, "controllerName": "x/y", "conditions": [{"type": "Accepted", "status": "True"}]}))
        .collect();
    RouteInfo::new("shop", &json!({"spec": spec, "status": {"parents": parents}}), None, FED)
}

fn one_gateway(gw: GatewayInfo) -> HashMap<ObjectKey, GatewayInfo> {
    [(ObjectKey::new("shop", "gw"), gw)].into_iter().collect()
}

fn sim_class() -> HashMap<ObjectKey, ClassInfo> {
    [(ObjectKey::new("", "sim"), ClassInfo { controller: "sim.meridian.io/gateway-controller".into() })]
        .into_iter()
        .collect()
}

/// (host, path, type, service, port) of each path.
fn paths(t: &Translation) -> Vec<(String, String, String, String, u16)> {
    let Ok(shard) = &t.shard else { panic!("no shard: {:?}", t.shard) };
    shard
        .paths
        .iter()
        .map(|p| (p.host.to_string(), p.path.to_string(), p.path_type.to_string(), p.service.to_string(), p.port))
        .collect()
}

fn translate(route: &RouteInfo, gateways: &HashMap<ObjectKey, GatewayInfo>, filter: &[String]) -> Translation {
    let classes = sim_class();
    route_shard(&cluster(), route, &Parents { gateways, classes: &classes, filter })
}

/// Gateway API hostname matching: equal names, wildcard listeners over names with at
/// least one more label, wildcard routes under exact listeners, and nested wildcards.
#[test]
fn hostname_intersection_follows_the_gateway_api_rules() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("shop.example", "shop.example", Some("shop.example")),
        ("shop.example", "other.example", None),
        ("*.example", "shop.example", Some("shop.example")),
        ("*.example", "a.b.example", Some("a.b.example")),
        ("*.example", "example", None),
        ("*.example", "shopexample", None),
        ("shop.example", "*.example", Some("shop.example")),
        ("example", "*.example", None),
        ("*.example", "*.shop.example", Some("*.shop.example")),
        ("*.shop.example", "*.example", Some("*.shop.example")),
        ("*.a.example", "*.b.example", None),
    ];
    for (listener, route, want) in cases {
        assert_eq!(intersect(listener, route).as_deref(), *want, "listener {listener}, route {route}");
    }
    assert_eq!(listener_hosts(None, &["a.x".into()]), ["a.x"], "no listener hostname: the route's");
    assert_eq!(listener_hosts(Some("*.x"), &[]), ["*.x"], "no route hostname: the listener's");
    assert!(listener_hosts(None, &[]).is_empty());
    assert_eq!(listener_hosts(Some("*.x"), &["a.x".into(), "b.y".into()]), ["a.x"]);
}

/// An accepted route under a wildcard listener serves its own names there, with the
/// Gateway's addresses; PathPrefix and Exact become Prefix and Exact, a rule without
/// matches is `/`, and unsupported matches are skipped and noted.
#[test]
fn an_accepted_route_gets_listener_hosts_paths_and_gateway_addresses() {
    let gws = one_gateway(gateway(
        "sim",
        json!([http_listener("web", Some("*.shop.example")), {"name": "tcp", "protocol": "TCP", "port": 9000}]),
        json!([{"type": "IPAddress", "value": "127.100.0.5"}, {"value": "fd00::5"}, {"type": "Hostname", "value": "LB.Example."}]),
    ));
    let r = route(
        json!({
            "parentRefs": [{"name": "gw"}],
            "hostnames": ["www.shop.example", "elsewhere.example"],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": "/api"}}, {"path": {"type": "Exact", "value": "/health"}},
                             {"path": {"type": "RegularExpression", "value": "/v[0-9]+"}},
                             {"path": {"value": "/h"}, "headers": [{"name": "x", "value": "y"}]}],
                 "backendRefs": [{"name": "api", "port": 8080}]},
                {"backendRefs": [{"name": "web", "port": 80}]},
            ],
        }),
        &[json!({"name": "gw"})],
    );
    let t = translate(&r, &gws, &[]);
    assert_eq!(
        paths(&t),
        [
            ("www.shop.example".into(), "/api".into(), "Prefix".into(), "api".into(), 8080),
            ("www.shop.example".into(), "/health".into(), "Exact".into(), "api".into(), 8080),
            ("www.shop.example".into(), "/".into(), "Prefix".into(), "web".into(), 80),
        ]
    );
    let Ok(shard) = &t.shard else { panic!("no shard") };
    let ips: Vec<String> = shard.addresses.iter().map(ToString::to_string).collect();
    assert_eq!(ips, ["127.100.0.5", "fd00::5"]);
    assert_eq!(shard.hostnames, [Arc::from("lb.example")]);
    assert_eq!(t.notes.len(), 2, "regex and header matches noted: {:?}", t.notes);
    assert!(t.notes.iter().any(|n| n.contains("RegularExpression")), "{:?}", t.notes);
}

/// A route without hostnames takes the listener's; `sectionName` picks one listener.
#[test]
fn a_route_without_hostnames_takes_its_listeners_and_section_name_picks_one() {
    let gws = one_gateway(gateway(
        "sim",
        json!([http_listener("a", Some("a.example")), http_listener("b", Some("b.example"))]),
        json!([{"value": "10.0.0.1"}]),
    ));
    let spec = |section: Value| json!({"parentRefs": [{"name": "gw", "sectionName": section}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]});
    let all = route(
        json!({"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]}),
        &[json!({"name": "gw"})],
    );
    let hosts = |t: &Translation| paths(t).into_iter().map(|p| p.0).collect::<Vec<_>>();
    assert_eq!(hosts(&translate(&all, &gws, &[])), ["a.example", "b.example"]);
    let b = route(spec(json!("b")), &[json!({"name": "gw", "sectionName": "b"})]);
    assert_eq!(hosts(&translate(&b, &gws, &[])), ["b.example"]);
    // Accepted for listener a only: a parentRef for b is another parent, not accepted.
    let b_not = route(spec(json!("b")), &[json!({"name": "gw", "sectionName": "a"})]);
    assert!(matches!(translate(&b_not, &gws, &[]).shard, Err(Skip::NoParent)));
}

/// Unaccepted parents, missing Gateways and filtered classes give no shard; the first two
/// are noted, a filtered class is deliberate and is not.
#[test]
fn unaccepted_missing_and_filtered_parents_give_no_shard() {
    let gws = one_gateway(gateway("sim", json!([http_listener("web", None)]), json!([{"value": "10.0.0.1"}])));
    let spec = json!({"parentRefs": [{"name": "gw"}], "hostnames": ["a.example"], "rules": [{"backendRefs": [{"name": "web", "port": 80}]}]});
    let unaccepted = route(spec.clone(), &[]);
    let t = translate(&unaccepted, &gws, &[]);
    assert!(matches!(t.shard, Err(Skip::NoParent)) && t.notes[0].contains("not accepted"), "{t:?}");
    let missing = route(json!({"parentRefs": [{"name": "nope"}]}), &[json!({"name": "nope"})]);
    let t = translate(&missing, &gws, &[]);
    assert!(matches!(t.shard, Err(Skip::NoParent)) && t.notes[0].contains("not found"), "{t:?}");
    let accepted = route(spec, &[json!({"name": "gw"})]);
    for (filter, served) in [
        (vec![], true),
        (vec!["sim".to_owned()], true),
        (vec!["sim.meridian.io/gateway-controller".to_owned()], true),
        (vec!["other".to_owned(), "example.net/controller".to_owned()], false),
    ] {
        let t = translate(&accepted, &gws, &filter);
        assert_eq!(t.shard.is_ok(), served, "filter {filter:?}: {t:?}");
        if !served {
            assert!(t.notes.is_empty(), "{:?}", t.notes);
        }
    }
    // A Gateway without an address yet: no shard either.
    let bare = one_gateway(gateway("sim", json!([http_listener("web", None)]), json!([])));
    assert!(matches!(translate(&accepted, &bare, &[]).shard, Err(Skip::NoAddress)));
}

/// backendRefs: only Services of the route's namespace with a port; of several weighted
/// ones the first with a non-zero weight takes all (noted); a rule with none is skipped.
#[test]
fn backend_refs_take_services_and_the_first_nonzero_weight() {
    let gws = one_gateway(gateway("sim", json!([http_listener("web", None)]), json!([{"value": "10.0.0.1"}])));
    let r = route(
        json!({
            "parentRefs": [{"name": "gw"}], "hostnames": ["a.example"],
            "rules": [
                {"matches": [{"path": {"value": "/w"}}], "backendRefs": [
                    {"name": "canary", "port": 80, "weight": 0},
                    {"group": "example.net", "kind": "Bucket", "name": "b"},
                    {"name": "far", "namespace": "other", "port": 80},
                    {"name": "noport"},
                    {"name": "stable", "port": 81, "weight": 90},
                    {"name": "next", "port": 82, "weight": 10},
                ]},
                {"matches": [{"path": {"value": "/none"}}], "backendRefs": [{"kind": "Service", "name": "z", "weight": 0, "port": 1}]},
            ],
        }),
        &[json!({"name": "gw"})],
    );
    let t = translate(&r, &gws, &[]);
    assert_eq!(paths(&t), [("a.example".into(), "/w".into(), "Prefix".into(), "stable".into(), 81)]);
    for what in ["Bucket", "other/far", "no port", "weights not honoured", "without a usable backendRef"] {
        assert!(t.notes.iter().any(|n| n.contains(what)), "{what}: {:?}", t.notes);
    }
}

/// The federate annotation opts a route out, as it does an Ingress.
#[test]
fn an_opted_out_route_has_no_shard() {
    let ann: BTreeMap<String, String> = [(FED.to_owned(), "false".to_owned())].into_iter().collect();
    let r = RouteInfo::new("shop", &json!({"spec": {"parentRefs": [{"name": "gw"}]}}), Some(&ann), FED);
    let gws = one_gateway(gateway("sim", json!([http_listener("web", None)]), json!([{"value": "10.0.0.1"}])));
    assert!(matches!(translate(&r, &gws, &[]).shard, Err(Skip::OptedOut)));
    assert_eq!(r.parents, [ParentRef { gateway: ObjectKey::new("shop", "gw"), section: None }]);
}
