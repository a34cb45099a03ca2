//! Service and Ingress controllers: load-balancer addresses, EndpointSlices, Endpoints and
//! the HTTP backends behind the load-balancer addresses.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde_json::{Map, Value, json};

use super::objects::{node_names, put_new};
use crate::core::Core;
use crate::key::Key;
use crate::pools::{Ipv4Pool, Pools};
use crate::resources;
use crate::store::Inner;
use crate::util;

/// Annotations users (and the Rust API) set on Services to steer the simulation.
pub(crate) const ANN_ENDPOINTS: &str = "sim.meridian.io/endpoints";
pub(crate) const ANN_READY: &str = "sim.meridian.io/ready";
pub(crate) const ANN_READY_ENDPOINTS: &str = "sim.meridian.io/ready-endpoints";
pub(crate) const ANN_HOSTNAMES: &str = "sim.meridian.io/hostnames";
pub(crate) const ANN_BACKEND: &str = "sim.meridian.io/backend";
pub(crate) const ANN_LB_HOSTNAME: &str = "sim.meridian.io/lb-hostname";
pub(crate) const ANN_IPV6: &str = "sim.meridian.io/ipv6";

/// `endpointslice.kubernetes.io/managed-by` value of slices this controller owns; slices
/// with another value are never touched.
pub(crate) const MANAGER: &str = "sim.meridian.io";
/// Label on Endpoints objects this controller owns.
const ENDPOINTS_OWNED_LABEL: &str = "sim.meridian.io/managed-by";
/// Endpoints per Service when the annotation is absent.
const DEFAULT_ENDPOINTS: u32 = 2;
/// Upper bound on simulated endpoints per Service, so a typo cannot allocate millions.
const MAX_ENDPOINTS: u32 = 1000;

/// The Service's TCP port numbers (the ones a backend serves).
pub(crate) fn tcp_ports(spec: &Value) -> Vec<u16> {
    spec.get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == "TCP")
        .filter_map(|p| p.get("port").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()))
        .collect()
}

/// The keys and owner names one Service's controller works with.
struct Names<'a> {
    ns: &'a str,
    name: &'a str,
    svc: Key,
    slice: Key,
    endpoints: Key,
    /// The Service's key in the load-balancer pool.
    lb_owner: String,
}

impl<'a> Names<'a> {
    fn new(ns: &'a str, name: &'a str) -> Self {
        Self {
            ns,
            name,
            svc: (resources::SERVICES, ns.to_string(), name.to_string()),
            slice: (resources::ENDPOINTSLICES, ns.to_string(), format!("{name}-sim")),
            endpoints: (resources::ENDPOINTS, ns.to_string(), name.to_string()),
            lb_owner: format!("services/{ns}/{name}"),
        }
    }

    fn pod(&self, i: u32) -> String {
        pod_owner(self.ns, self.name, i)
    }
}

/// Brings a Service's load-balancer status, EndpointSlice, Endpoints and backends in line
/// with the Service (or removes them when it is gone).
pub(super) fn reconcile(core: &Core, ns: &str, name: &str) {
    let names = Names::new(ns, name);
    let backends = {
        let mut pools = core.pools.lock();
        let mut g = core.store.write();
        match g.get(&names.svc) {
            Some(svc) => sync(core, &mut pools, &mut g, &names, &svc),
            None => {
                forget(&mut pools, &mut g, &names);
                BTreeSet::new()
            }
        }
    };
    core.backends.reconcile(ns, name, backends);
}

/// The Service is gone: its address and pod IPs go back to the pools, its slice and
/// Endpoints (if ours) are removed.
fn forget(pools: &mut Pools, g: &mut Inner, names: &Names<'_>) {
    pools.lb.release(&names.lb_owner);
    for i in 0..slice_len(g, &names.slice) {
        pools.pods.release(&names.pod(i));
    }
    remove_owned(g, names);
}

/// Removes the Service's EndpointSlice and Endpoints when this controller made them.
fn remove_owned(g: &mut Inner, names: &Names<'_>) {
    if g.get(&names.slice).is_some_and(|s| slice_is_ours(&s)) {
        g.remove(&names.slice);
    }
    if g.get(&names.endpoints).is_some_and(|e| endpoints_is_ours(&e)) {
        g.remove(&names.endpoints);
    }
}

/// Updates everything derived from `svc`; returns the backend addresses that must serve.
fn sync(core: &Core, pools: &mut Pools, g: &mut Inner, names: &Names<'_>, svc: &Value) -> BTreeSet<SocketAddr> {
    let spec = svc.get("spec").cloned().unwrap_or_else(|| json!({}));
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let (desired_lb, backends) = if ty == "LoadBalancer" {
        load_balancer(core, &mut pools.lb, &names.lb_owner, svc, &spec)
    } else {
        pools.lb.release(&names.lb_owner);
        (json!({}), BTreeSet::new())
    };
    let current_lb = svc.pointer("/status/loadBalancer").cloned().unwrap_or_else(|| json!({}));
    if current_lb != desired_lb {
        let mut updated = svc.clone();
        if let Some(m) = updated.as_object_mut() {
            m.insert("status".into(), json!({"loadBalancer": desired_lb}));
        }
        g.put(names.svc.clone(), updated);
    }
    sync_endpoints(core, pools, g, names, svc, &spec);
    backends
}

/// `status.loadBalancer` of a LoadBalancer Service and the backend addresses behind it,
/// allocating an address whose ports can be bound here.
fn load_balancer(
    core: &Core,
    lb: &mut Ipv4Pool,
    owner: &str,
    svc: &Value,
    spec: &Value,
) -> (Value, BTreeSet<SocketAddr>) {
    let down = util::annotation(svc, ANN_BACKEND) == Some("down");
    let backend_ports: Vec<u16> = if down { Vec::new() } else { tcp_ports(spec) };
    let alloc = lb.get_or_alloc_usable(owner, |ip| {
        let addrs: Vec<SocketAddr> = backend_ports.iter().map(|p| SocketAddr::new(IpAddr::V4(ip), *p)).collect();
        core.backends.prebind(&addrs)
    });
    let Some((ip, off)) = alloc else {
        tracing::warn!(cluster = %core.name, service = %owner, "load-balancer pool exhausted");
        return (json!({}), BTreeSet::new());
    };
    let mut backends = BTreeSet::new();
    if core.backends.enabled() && !down {
        backends.extend(tcp_ports(spec).into_iter().map(|port| SocketAddr::new(IpAddr::V4(ip), port)));
    }
    (json!({"ingress": lb_ingress(core, svc, spec, ip, off)}), backends)
}

/// The ingress entries for address `ip` (pool offset `off`): the IP or the hostname the
/// annotation names, plus an IPv6 address when the Service asks for one.
fn lb_ingress(core: &Core, svc: &Value, spec: &Value, ip: Ipv4Addr, off: u32) -> Vec<Value> {
    let mut ingress = Vec::new();
    match util::annotation(svc, ANN_LB_HOSTNAME).filter(|h| !h.is_empty()) {
        Some(host) => ingress.push(json!({"hostname": host})),
        None => ingress.push(json!({"ip": ip.to_string(), "ipMode": "VIP"})),
    }
    let v6 = util::annotation(svc, ANN_IPV6) == Some("true")
        || spec.get("ipFamilies").and_then(Value::as_array).is_some_and(|f| f.iter().any(|x| x == "IPv6"));
    if v6 {
        ingress.push(json!({"ip": ipv6_for(core.index, off).to_string(), "ipMode": "VIP"}));
    }
    ingress
}

/// The EndpointSlice and Endpoints of a Service with a selector (or of type
/// LoadBalancer): as many endpoints as the annotation asks, the first `ready` of them ready.
fn sync_endpoints(core: &Core, pools: &mut Pools, g: &mut Inner, names: &Names<'_>, svc: &Value, spec: &Value) {
    let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
    let has_selector = spec.get("selector").and_then(Value::as_object).is_some_and(|s| !s.is_empty());
    let wants_endpoints = ty != "ExternalName" && (has_selector || ty == "LoadBalancer");
    let prev = slice_len(g, &names.slice);
    let count = if wants_endpoints { endpoint_count(svc) } else { 0 };
    for i in count..prev.max(count) {
        pools.pods.release(&names.pod(i));
    }
    if !wants_endpoints {
        remove_owned(g, names);
        return;
    }
    let ips: Vec<String> = (0..count)
        .map(|i| {
            pools
                .pods
                .get_or_alloc(&names.pod(i))
                .map(|(ip, _)| ip.to_string())
                .unwrap_or_else(|| "10.255.255.254".into())
        })
        .collect();
    let pods = Pods {
        ns: names.ns,
        name: names.name,
        ips: &ips,
        ready: ready_count(svc, count),
        hostnames: util::annotation(svc, ANN_HOSTNAMES) == Some("true"),
        nodes: &node_names(g),
        zone: &core.zone,
    };
    let (slice, endpoints) = build_endpoints(svc, spec, &pods);
    upsert_owned(g, names.slice.clone(), slice, slice_is_ours);
    upsert_owned(g, names.endpoints.clone(), endpoints, endpoints_is_ours);
}

/// Endpoints the Service asks for (annotation, default 2, at most [`MAX_ENDPOINTS`]).
fn endpoint_count(svc: &Value) -> u32 {
    util::annotation(svc, ANN_ENDPOINTS)
        .and_then(|s| s.parse::<u32>().ok())
        .unwrap_or(DEFAULT_ENDPOINTS)
        .min(MAX_ENDPOINTS)
}

/// How many of `count` endpoints are ready: none with `ready: "false"`, else the
/// `ready-endpoints` annotation, else all.
fn ready_count(svc: &Value, count: u32) -> u32 {
    if util::annotation(svc, ANN_READY) == Some("false") {
        return 0;
    }
    util::annotation(svc, ANN_READY_ENDPOINTS).and_then(|s| s.parse::<u32>().ok()).unwrap_or(count).min(count)
}

pub(super) fn reconcile_ingress(core: &Core, ns: &str, name: &str) {
    let key: Key = (resources::INGRESSES, ns.to_string(), name.to_string());
    let owner = format!("ingresses/{ns}/{name}");
    let mut st = core.pools.lock();
    let mut g = core.store.write();
    let Some(ing) = g.get(&key) else {
        st.lb.release(&owner);
        return;
    };
    let desired = match st.lb.get_or_alloc(&owner) {
        Some((ip, _)) => match util::annotation(&ing, ANN_LB_HOSTNAME).filter(|h| !h.is_empty()) {
            Some(host) => json!({"ingress": [{"hostname": host}]}),
            None => json!({"ingress": [{"ip": ip.to_string()}]}),
        },
        None => json!({}),
    };
    if ing.pointer("/status/loadBalancer") != Some(&desired) {
        let mut updated = (*ing).clone();
        if let Some(m) = updated.as_object_mut() {
            m.insert("status".into(), json!({"loadBalancer": desired}));
        }
        g.put(key, updated);
    }
}

/// fd00:<cluster index>::/64 — documentation-only addresses, never bound.
fn ipv6_for(index: usize, off: u32) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, (index & 0xffff) as u16, 0, 0, 0, 0, (off >> 16) as u16, (off & 0xffff) as u16)
}

fn pod_owner(ns: &str, name: &str, i: u32) -> String {
    format!("{ns}/{name}#{i}")
}

fn slice_len(g: &Inner, key: &Key) -> u32 {
    g.get(key)
        .filter(|s| slice_is_ours(s))
        .and_then(|s| s.get("endpoints")?.as_array().map(|a| a.len() as u32))
        .unwrap_or(0)
}

fn slice_is_ours(s: &Value) -> bool {
    s.pointer("/metadata/labels/endpointslice.kubernetes.io~1managed-by").and_then(Value::as_str) == Some(MANAGER)
}

fn endpoints_is_ours(e: &Value) -> bool {
    e.pointer("/metadata/labels/sim.meridian.io~1managed-by").and_then(Value::as_str) == Some(MANAGER)
}

/// The simulated pods behind one Service.
struct Pods<'a> {
    ns: &'a str,
    name: &'a str,
    ips: &'a [String],
    /// The first `ready` pods are ready.
    ready: u32,
    /// Endpoints carry hostnames (`<svc>-<i>`), as a StatefulSet's pods would.
    hostnames: bool,
    /// Nodes the pods are spread over, round-robin.
    nodes: &'a [String],
    zone: &'a str,
}

/// The EndpointSlice and the Endpoints object for the Service's pods.
fn build_endpoints(svc: &Value, spec: &Value, pods: &Pods<'_>) -> (Value, Value) {
    let ports = slice_ports(spec);
    let mut eps = Vec::new();
    let (mut ready_addrs, mut not_ready_addrs) = (Vec::new(), Vec::new());
    for (i, ip) in pods.ips.iter().enumerate() {
        let (ep, addr) = pod_endpoint(pods, i, ip);
        eps.push(ep);
        if (i as u32) < pods.ready { ready_addrs.push(addr) } else { not_ready_addrs.push(addr) }
    }
    let name = pods.name;
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-sim"),
            "namespace": pods.ns,
            "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": MANAGER},
            "ownerReferences": [{
                "apiVersion": "v1", "kind": "Service", "name": name,
                "uid": util::meta_str(svc, "uid").unwrap_or(""),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": ports,
    });
    let subsets = if pods.ips.is_empty() { json!([]) } else { json!([subset(&ports, ready_addrs, not_ready_addrs)]) };
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": name,
            "namespace": pods.ns,
            "labels": {ENDPOINTS_OWNED_LABEL: MANAGER, "endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": subsets,
    });
    (slice, endpoints)
}

/// The slice's ports: the Service's, at their numeric targetPort (else the port).
fn slice_ports(spec: &Value) -> Vec<Value> {
    let svc_ports = spec.get("ports").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    svc_ports
        .iter()
        .map(|p| {
            let port =
                p.get("targetPort").filter(|t| t.is_u64()).or_else(|| p.get("port")).cloned().unwrap_or(Value::Null);
            let mut m = Map::new();
            m.insert("name".into(), p.get("name").cloned().unwrap_or_else(|| json!("")));
            m.insert("port".into(), port);
            m.insert("protocol".into(), p.get("protocol").cloned().unwrap_or_else(|| json!("TCP")));
            if let Some(ap) = p.get("appProtocol") {
                m.insert("appProtocol".into(), ap.clone());
            }
            Value::Object(m)
        })
        .collect()
}

/// Pod `i`'s EndpointSlice endpoint and its Endpoints address.
fn pod_endpoint(pods: &Pods<'_>, i: usize, ip: &str) -> (Value, Value) {
    let is_ready = (i as u32) < pods.ready;
    let node = pods.nodes.get(i % pods.nodes.len().max(1)).cloned().unwrap_or_default();
    let target = json!({"kind": "Pod", "namespace": pods.ns, "name": format!("{}-sim-{i}", pods.name)});
    let mut ep = json!({
        "addresses": [ip],
        "conditions": {"ready": is_ready, "serving": is_ready, "terminating": false},
        "nodeName": node,
        "zone": pods.zone,
        "targetRef": target,
    });
    let mut addr = json!({"ip": ip, "nodeName": node, "targetRef": target});
    if pods.hostnames {
        ep["hostname"] = json!(format!("{}-{i}", pods.name));
        addr["hostname"] = json!(format!("{}-{i}", pods.name));
    }
    (ep, addr)
}

/// The Endpoints subset: ready and not-ready addresses and the ports (unnamed ones
/// without a `name`, as core/v1 EndpointPort omits it).
fn subset(ports: &[Value], ready: Vec<Value>, not_ready: Vec<Value>) -> Value {
    let core_ports: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut p = p.clone();
            if p.get("name") == Some(&json!(""))
                && let Some(m) = p.as_object_mut()
            {
                m.remove("name");
            }
            p
        })
        .collect();
    let mut subset = Map::new();
    if !ready.is_empty() {
        subset.insert("addresses".into(), json!(ready));
    }
    if !not_ready.is_empty() {
        subset.insert("notReadyAddresses".into(), json!(not_ready));
    }
    subset.insert("ports".into(), json!(core_ports));
    Value::Object(subset)
}

/// Creates `desired`, or rewrites an existing object we own with its content; objects
/// someone else owns are left alone.
fn upsert_owned(g: &mut Inner, key: Key, desired: Value, ours: fn(&Value) -> bool) {
    match g.get(&key) {
        // A terminating namespace takes no new content, from controllers either.
        None if g.namespace_terminating(&key.1) => {}
        None => {
            put_new(g, key, desired);
        }
        Some(cur) if !ours(&cur) => {}
        Some(cur) => {
            let mut next = (*cur).clone();
            if let (Some(n), Some(d)) = (next.as_object_mut(), desired.as_object()) {
                for (k, v) in d {
                    if k == "metadata" {
                        continue;
                    }
                    n.insert(k.clone(), v.clone());
                }
            }
            if let (Some(m), Some(dm)) = (util::meta_mut(&mut next), desired.get("metadata")) {
                for f in ["labels", "ownerReferences"] {
                    if let Some(v) = dm.get(f) {
                        m.insert(f.into(), v.clone());
                    }
                }
            }
            if next != *cur {
                g.put(key, next);
            }
        }
    }
}
