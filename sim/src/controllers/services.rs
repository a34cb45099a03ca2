//! Service and Ingress controllers: load-balancer addresses, EndpointSlices, Endpoints and
//! the HTTP backends behind the load-balancer addresses.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use serde_json::{Map, Value, json};

use super::{node_names, put_new};
use crate::cluster::Core;
use crate::resources;
use crate::store::{Inner, Key};
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

pub(super) fn reconcile(core: &Core, ns: &str, name: &str) {
    let key: Key = (resources::SERVICES, ns.to_string(), name.to_string());
    let owner = format!("services/{ns}/{name}");
    let slice_key: Key = (resources::ENDPOINTSLICES, ns.to_string(), format!("{name}-sim"));
    let ep_key: Key = (resources::ENDPOINTS, ns.to_string(), name.to_string());
    let mut backends = BTreeSet::new();
    {
        let mut st = core.ctrl.lock();
        let mut g = core.store.write();
        let Some(svc) = g.get(&key).cloned() else {
            st.lb.release(&owner);
            let prev = slice_len(&g, &slice_key);
            for i in 0..prev {
                st.pods.release(&pod_owner(ns, name, i));
            }
            if g.get(&slice_key).is_some_and(|s| slice_is_ours(s)) {
                g.remove(&slice_key);
            }
            if g.get(&ep_key).is_some_and(|e| endpoints_is_ours(e)) {
                g.remove(&ep_key);
            }
            drop(g);
            drop(st);
            core.backends.reconcile(ns, name, backends);
            return;
        };
        let spec = svc.get("spec").cloned().unwrap_or_else(|| json!({}));
        let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP");
        let is_lb = ty == "LoadBalancer";

        // Load-balancer status.
        let desired_lb = if is_lb {
            let backend_ports: Vec<u16> =
                if util::annotation(&svc, ANN_BACKEND) == Some("down") { Vec::new() } else { tcp_ports(&spec) };
            let alloc = st.lb.get_or_alloc_usable(&owner, |ip| {
                let addrs: Vec<SocketAddr> =
                    backend_ports.iter().map(|p| SocketAddr::new(IpAddr::V4(ip), *p)).collect();
                core.backends.prebind(&addrs)
            });
            match alloc {
                Some((ip, off)) => {
                    let mut ingress = Vec::new();
                    match util::annotation(&svc, ANN_LB_HOSTNAME).filter(|h| !h.is_empty()) {
                        Some(host) => ingress.push(json!({"hostname": host})),
                        None => ingress.push(json!({"ip": ip.to_string(), "ipMode": "VIP"})),
                    }
                    let v6 = util::annotation(&svc, ANN_IPV6) == Some("true")
                        || spec
                            .get("ipFamilies")
                            .and_then(Value::as_array)
                            .is_some_and(|f| f.iter().any(|x| x == "IPv6"));
                    if v6 {
                        ingress.push(json!({"ip": ipv6_for(core.index, off).to_string(), "ipMode": "VIP"}));
                    }
                    let backend_up = core.backends.enabled() && util::annotation(&svc, ANN_BACKEND) != Some("down");
                    if backend_up {
                        backends.extend(tcp_ports(&spec).into_iter().map(|port| SocketAddr::new(IpAddr::V4(ip), port)));
                    }
                    json!({"ingress": ingress})
                }
                None => {
                    tracing::warn!(cluster = %core.name, service = %owner, "load-balancer pool exhausted");
                    json!({})
                }
            }
        } else {
            st.lb.release(&owner);
            json!({})
        };
        let current_lb = svc.pointer("/status/loadBalancer").cloned().unwrap_or_else(|| json!({}));
        if current_lb != desired_lb {
            let mut updated = (*svc).clone();
            if let Some(m) = updated.as_object_mut() {
                m.insert("status".into(), json!({"loadBalancer": desired_lb}));
            }
            g.put(key.clone(), updated);
        }

        // EndpointSlice and Endpoints.
        let has_selector = spec.get("selector").and_then(Value::as_object).is_some_and(|s| !s.is_empty());
        let wants_endpoints = ty != "ExternalName" && (has_selector || is_lb);
        let prev = slice_len(&g, &slice_key);
        let count = if wants_endpoints {
            util::annotation(&svc, ANN_ENDPOINTS)
                .and_then(|s| s.parse::<u32>().ok())
                .unwrap_or(DEFAULT_ENDPOINTS)
                .min(MAX_ENDPOINTS)
        } else {
            0
        };
        for i in count..prev.max(count) {
            st.pods.release(&pod_owner(ns, name, i));
        }
        if wants_endpoints {
            let ready = if util::annotation(&svc, ANN_READY) == Some("false") {
                0
            } else {
                util::annotation(&svc, ANN_READY_ENDPOINTS)
                    .and_then(|s| s.parse::<u32>().ok())
                    .unwrap_or(count)
                    .min(count)
            };
            let hostnames = util::annotation(&svc, ANN_HOSTNAMES) == Some("true");
            let nodes = node_names(&g);
            let ips: Vec<String> = (0..count)
                .map(|i| {
                    st.pods
                        .get_or_alloc(&pod_owner(ns, name, i))
                        .map(|(ip, _)| ip.to_string())
                        .unwrap_or_else(|| "10.255.255.254".into())
                })
                .collect();
            let (slice, endpoints) = build_endpoints(core, &svc, &spec, ns, name, &ips, ready, hostnames, &nodes);
            upsert_owned(&mut g, slice_key, slice, slice_is_ours);
            upsert_owned(&mut g, ep_key, endpoints, endpoints_is_ours);
        } else {
            if g.get(&slice_key).is_some_and(|s| slice_is_ours(s)) {
                g.remove(&slice_key);
            }
            if g.get(&ep_key).is_some_and(|e| endpoints_is_ours(e)) {
                g.remove(&ep_key);
            }
        }
    }
    core.backends.reconcile(ns, name, backends);
}

pub(super) fn reconcile_ingress(core: &Core, ns: &str, name: &str) {
    let key: Key = (resources::INGRESSES, ns.to_string(), name.to_string());
    let owner = format!("ingresses/{ns}/{name}");
    let mut st = core.ctrl.lock();
    let mut g = core.store.write();
    let Some(ing) = g.get(&key).cloned() else {
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

#[allow(clippy::too_many_arguments)]
fn build_endpoints(
    core: &Core,
    svc: &Value,
    spec: &Value,
    ns: &str,
    name: &str,
    ips: &[String],
    ready: u32,
    hostnames: bool,
    nodes: &[String],
) -> (Value, Value) {
    let owner_ref = json!([{
        "apiVersion": "v1", "kind": "Service", "name": name,
        "uid": util::meta_str(svc, "uid").unwrap_or(""),
        "controller": true, "blockOwnerDeletion": true,
    }]);
    let svc_ports: Vec<Value> = spec.get("ports").and_then(Value::as_array).cloned().unwrap_or_default();
    let ports: Vec<Value> = svc_ports
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
        .collect();
    let mut eps = Vec::new();
    let (mut ready_addrs, mut not_ready_addrs) = (Vec::new(), Vec::new());
    for (i, ip) in ips.iter().enumerate() {
        let is_ready = (i as u32) < ready;
        let node = nodes.get(i % nodes.len().max(1)).cloned().unwrap_or_default();
        let pod = format!("{name}-sim-{i}");
        let target = json!({"kind": "Pod", "namespace": ns, "name": pod});
        let mut ep = json!({
            "addresses": [ip],
            "conditions": {"ready": is_ready, "serving": is_ready, "terminating": false},
            "nodeName": node,
            "zone": core.zone,
            "targetRef": target,
        });
        let mut addr = json!({"ip": ip, "nodeName": node, "targetRef": target});
        if hostnames {
            ep["hostname"] = json!(format!("{name}-{i}"));
            addr["hostname"] = json!(format!("{name}-{i}"));
        }
        eps.push(ep);
        if is_ready { ready_addrs.push(addr) } else { not_ready_addrs.push(addr) }
    }
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": format!("{name}-sim"),
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": name, "endpointslice.kubernetes.io/managed-by": MANAGER},
            "ownerReferences": owner_ref,
        },
        "addressType": "IPv4",
        "endpoints": eps,
        "ports": ports,
    });
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
    if !ready_addrs.is_empty() {
        subset.insert("addresses".into(), json!(ready_addrs));
    }
    if !not_ready_addrs.is_empty() {
        subset.insert("notReadyAddresses".into(), json!(not_ready_addrs));
    }
    subset.insert("ports".into(), json!(core_ports));
    let subsets = if ips.is_empty() { json!([]) } else { json!([subset]) };
    let endpoints = json!({
        "apiVersion": "v1",
        "kind": "Endpoints",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": {ENDPOINTS_OWNED_LABEL: MANAGER, "endpointslice.kubernetes.io/skip-mirror": "true"},
        },
        "subsets": subsets,
    });
    (slice, endpoints)
}

/// Creates `desired`, or rewrites an existing object we own with its content; objects
/// someone else owns are left alone.
fn upsert_owned(g: &mut Inner, key: Key, desired: Value, ours: fn(&Value) -> bool) {
    match g.get(&key).cloned() {
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
