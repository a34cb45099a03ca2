//! The Gateway controller a provider ships, for the Gateway API (`crd::gateway`): it
//! owns the GatewayClass [`CLASS`] (controller [`CONTROLLER`]), which it creates with the
//! cluster and accepts. A Gateway of a class it owns gets an address from the cluster's
//! load-balancer pool, as a LoadBalancer Service does (a hostname instead with the
//! `sim.meridian.io/lb-hostname` annotation), and `Accepted`/`Programmed`, with each
//! listener's attached routes counted. An HTTPRoute gets one `status.parents` entry per
//! parent Gateway of such a class; entries of other controllers are kept. Gateways of
//! other classes are left alone, as another controller's would be.

use std::sync::Arc;

use serde_json::{Value, json};

use super::services::ANN_LB_HOSTNAME;
use crate::api::{self, WriteOpts};
use crate::core::Core;
use crate::crd::{gateway, set_condition};
use crate::error::Result;
use crate::key::Key;
use crate::store::Inner;
use crate::util;

/// The controller name this simulator's Gateway controller answers to.
pub(crate) const CONTROLLER: &str = "sim.meridian.io/gateway-controller";
/// The GatewayClass every simulated cluster has.
pub(crate) const CLASS: &str = "sim";

/// Store ids of the three resources, when the CRDs are served.
struct Ids {
    class: crate::resources::ResId,
    gateway: crate::resources::ResId,
    route: crate::resources::ResId,
}

fn ids(g: &Inner) -> Option<Ids> {
    let id = |plural: &str| g.registry().crd_id(&format!("{plural}.{}", gateway::GROUP));
    Some(Ids { class: id("gatewayclasses")?, gateway: id("gateways")?, route: id("httproutes")? })
}

/// Creates the cluster's own GatewayClass.
pub(crate) fn install_class(core: &Core) -> Result<()> {
    let def = core.store.read().registry().by_kind(&format!("{}/v1", gateway::GROUP), "GatewayClass");
    let Some(def) = def else { return Ok(()) };
    let class = json!({
        "apiVersion": format!("{}/v1", gateway::GROUP),
        "kind": "GatewayClass",
        "metadata": {"name": CLASS},
        "spec": {"controllerName": CONTROLLER, "description": "the simulated cluster's load balancer"},
    });
    let opts = WriteOpts { privileged: true, ..WriteOpts::default() };
    api::create(&core.store, &def, None, class, &opts)?;
    Ok(())
}

/// Reconciles `key` when it is a Gateway API object; false when it is not one.
pub(crate) fn reconcile(core: &Core, key: &Key) -> bool {
    let Some(ids) = ids(&core.store.read()) else { return false };
    if key.0 == ids.class {
        let mut g = core.store.write();
        if let Some(class) = g.get(key).filter(|c| owns_class(c)) {
            update(&mut g, key, &class, |c| set_condition(c, "Accepted", true, "Accepted", "handled by the simulator"));
        }
    } else if key.0 == ids.gateway {
        reconcile_gateway(core, &ids, key);
    } else if key.0 == ids.route {
        let parents = reconcile_route(core, &ids, key);
        for p in parents {
            reconcile_gateway(core, &ids, &p);
        }
    } else {
        return false;
    }
    true
}

fn owns_class(class: &Value) -> bool {
    class.pointer("/spec/controllerName").and_then(Value::as_str) == Some(CONTROLLER)
}

/// Whether the Gateway's class is one this controller owns.
fn owns_gateway(g: &Inner, ids: &Ids, gw: &Value) -> bool {
    let class = gw.pointer("/spec/gatewayClassName").and_then(Value::as_str).unwrap_or_default();
    g.get(&(ids.class, String::new(), class.to_owned())).is_some_and(|c| owns_class(&c))
}

fn reconcile_gateway(core: &Core, ids: &Ids, key: &Key) {
    let owner = format!("gateways/{}/{}", key.1, key.2);
    let mut pools = core.pools.lock();
    let mut g = core.store.write();
    let Some(gw) = g.get(key) else {
        pools.lb.release(&owner);
        return;
    };
    if !owns_gateway(&g, ids, &gw) {
        pools.lb.release(&owner);
        return;
    }
    let address = pools.lb.get_or_alloc(&owner).map(|(ip, _)| match util::annotation(&gw, ANN_LB_HOSTNAME) {
        Some(host) if !host.is_empty() => json!({"type": "Hostname", "value": host}),
        _ => json!({"type": "IPAddress", "value": ip.to_string()}),
    });
    let attached = attached_routes(&g, ids, key);
    update(&mut g, key, &gw, |v| {
        let listeners = listener_status(v, &attached);
        if let Some(status) = status_mut(v) {
            status.insert("addresses".into(), Value::Array(address.iter().cloned().collect()));
            status.insert("listeners".into(), listeners);
        }
        set_condition(v, "Accepted", true, "Accepted", "handled by the simulator");
        let (programmed, reason) = if address.is_some() { (true, "Programmed") } else { (false, "AddressNotAssigned") };
        set_condition(v, "Programmed", programmed, reason, "");
    });
}

/// The routes attached to each listener (by section name; `""` is every listener).
fn attached_routes(g: &Inner, ids: &Ids, gw: &Key) -> Vec<(String, u64)> {
    let mut out: Vec<(String, u64)> = Vec::new();
    for rk in g.keys_of(ids.route) {
        let Some(route) = g.get(&rk) else { continue };
        for p in parent_refs(&route, &rk.1) {
            if p.0 == gw.1 && p.1 == gw.2 {
                match out.iter_mut().find(|(s, _)| *s == p.2) {
                    Some((_, n)) => *n += 1,
                    None => out.push((p.2, 1)),
                }
            }
        }
    }
    out
}

fn listener_status(gw: &Value, attached: &[(String, u64)]) -> Value {
    let listeners = gw.pointer("/spec/listeners").and_then(Value::as_array).cloned().unwrap_or_default();
    let count = |name: &str| attached.iter().filter(|(s, _)| s.is_empty() || s == name).map(|(_, n)| n).sum::<u64>();
    let cond = |ty: &str| true_condition(gw, ty);
    let listeners: Vec<Value> = listeners
        .iter()
        .map(|l| {
            let name = l.get("name").and_then(Value::as_str).unwrap_or_default();
            json!({
                "name": name,
                "supportedKinds": [{"group": gateway::GROUP, "kind": "HTTPRoute"}],
                "attachedRoutes": count(name),
                "conditions": [cond("Accepted"), cond("Programmed"), cond("ResolvedRefs")],
            })
        })
        .collect();
    Value::Array(listeners)
}

/// The Gateways an HTTPRoute names as parents: (namespace, name, sectionName or "").
fn parent_refs(route: &Value, route_ns: &str) -> Vec<(String, String, String)> {
    let refs = route.pointer("/spec/parentRefs").and_then(Value::as_array).cloned().unwrap_or_default();
    refs.iter()
        .filter(|r| r.get("kind").and_then(Value::as_str).unwrap_or("Gateway") == "Gateway")
        .filter_map(|r| {
            let name = r.get("name").and_then(Value::as_str)?.to_owned();
            let ns = r.get("namespace").and_then(Value::as_str).unwrap_or(route_ns).to_owned();
            let section = r.get("sectionName").and_then(Value::as_str).unwrap_or_default().to_owned();
            Some((ns, name, section))
        })
        .collect()
}

/// Sets the route's `status.parents` entries for the Gateways this controller owns;
/// returns every Gateway's key: the attached-route counts of those it joined and of
/// those it left follow it.
fn reconcile_route(core: &Core, ids: &Ids, key: &Key) -> Vec<Key> {
    let mut g = core.store.write();
    let all_gateways: Vec<Key> = g.keys_of(ids.gateway);
    let Some(route) = g.get(key) else { return all_gateways };
    let mut entries = Vec::new();
    for (ns, name, section) in parent_refs(&route, &key.1) {
        let gk: Key = (ids.gateway, ns.clone(), name.clone());
        if !g.get(&gk).is_some_and(|gw| owns_gateway(&g, ids, &gw)) {
            continue;
        }
        let mut parent = json!({"group": gateway::GROUP, "kind": "Gateway", "namespace": ns, "name": name});
        if !section.is_empty() {
            parent["sectionName"] = json!(section);
        }
        let conditions = [true_condition(&route, "Accepted"), true_condition(&route, "ResolvedRefs")];
        entries.push(json!({"parentRef": parent, "controllerName": CONTROLLER, "conditions": conditions}));
    }
    update(&mut g, key, &route, |v| {
        let kept: Vec<Value> = v
            .pointer("/status/parents")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|p| p.get("controllerName").and_then(Value::as_str) != Some(CONTROLLER))
            .cloned()
            .collect();
        if let Some(status) = status_mut(v) {
            status.insert("parents".into(), Value::Array(kept.into_iter().chain(entries.iter().cloned()).collect()));
        }
    });
    all_gateways
}

/// A condition that holds, dated from the object's creation: the simulator settles at
/// once, so the condition has held since then (and a rewrite changes nothing).
fn true_condition(obj: &Value, ty: &str) -> Value {
    let since = obj.pointer("/metadata/creationTimestamp").cloned().unwrap_or_else(|| json!(util::now_rfc3339()));
    let generation = obj.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    json!({"type": ty, "status": "True", "reason": ty, "message": "", "lastTransitionTime": since,
        "observedGeneration": generation})
}

fn status_mut(v: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    let m = v.as_object_mut()?;
    let status = m.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    status.as_object_mut()
}

/// Applies `change` to a copy of `obj` and stores it when it differs (ignoring
/// transition times, which `set_condition` keeps for unchanged conditions).
fn update(g: &mut Inner, key: &Key, obj: &Arc<Value>, change: impl FnOnce(&mut Value)) {
    let mut updated = (**obj).clone();
    change(&mut updated);
    if updated != **obj {
        g.put(key.clone(), updated);
    }
}
