//! Service clusterIP, nodePort and healthCheckNodePort allocation, done synchronously on
//! write as kube-apiserver's Service registry does. The store holds the allocator beside
//! the objects, so an allocation and the write that records it happen under one lock.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// 10.96.0.0/12, kubeadm's default service CIDR.
const SERVICE_NET: u32 = u32::from_be_bytes([10, 96, 0, 0]);
const SERVICE_NET_SIZE: u32 = 1 << 20;
/// 30000–32767, the default nodePort range.
const NODE_PORT_MIN: u16 = 30000;
const NODE_PORT_MAX: u16 = 32767;

/// ClusterIP and nodePort allocations of one cluster.
#[derive(Debug, Default)]
pub(crate) struct ServiceAlloc {
    ips: HashSet<u32>,
    next_ip: u32,
    ports: HashSet<u16>,
    next_port: u16,
}

fn in_service_net(ip: u32) -> bool {
    ip.wrapping_sub(SERVICE_NET) < SERVICE_NET_SIZE
}

/// Which of a Service's ports get a nodePort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NodePorts {
    /// None (ClusterIP, headless).
    None,
    /// Those the client names, and no others.
    Named,
    /// Every port: the client's, the old version's, or a fresh one.
    Allocate,
}

/// A 422 for the Service being written.
fn invalid(name: &str, msg: String) -> ApiError {
    ApiError::invalid("Service", name, msg)
}

/// A port number field (`nodePort`, `healthCheckNodePort`); 0 and absent mean unset.
fn port_of(v: Option<&Value>) -> Option<u16> {
    v.and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()).filter(|n| *n != 0)
}

/// Defaults every Service of type `ty` gets besides its addresses.
fn default_policies(spec: &mut Map<String, Value>, ty: &str) {
    spec.entry("sessionAffinity").or_insert(json!("None"));
    spec.entry("internalTrafficPolicy").or_insert(json!("Cluster"));
    if ty == "NodePort" || ty == "LoadBalancer" {
        spec.entry("externalTrafficPolicy").or_insert(json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        spec.entry("allocateLoadBalancerNodePorts").or_insert(json!(true));
    }
}

impl ServiceAlloc {
    fn alloc_ip(&mut self) -> Option<Ipv4Addr> {
        for _ in 0..SERVICE_NET_SIZE {
            // Offsets 0 (network), 1 (the `kubernetes` service) and the last are never handed out.
            let off = 2 + self.next_ip % (SERVICE_NET_SIZE - 3);
            self.next_ip = self.next_ip.wrapping_add(1);
            let ip = SERVICE_NET + off;
            if self.ips.insert(ip) {
                return Some(Ipv4Addr::from(ip));
            }
        }
        None
    }

    fn alloc_port(&mut self) -> Option<u16> {
        let span = NODE_PORT_MAX - NODE_PORT_MIN + 1;
        for _ in 0..span {
            let p = NODE_PORT_MIN + self.next_port % span;
            self.next_port = self.next_port.wrapping_add(1);
            if self.ports.insert(p) {
                return Some(p);
            }
        }
        None
    }

    /// Marks a stored Service's addresses as used (state-file restore).
    pub(crate) fn reserve(&mut self, svc: &Value) {
        let (ip, ports) = held(svc);
        if let Some(ip) = ip {
            self.ips.insert(ip);
        }
        self.ports.extend(ports);
    }

    /// Returns a deleted Service's clusterIP and nodePorts to the pools.
    pub(crate) fn release(&mut self, svc: &Value) {
        let (ip, ports) = held(svc);
        if let Some(ip) = ip {
            self.ips.remove(&ip);
        }
        for p in ports {
            self.ports.remove(&p);
        }
    }

    /// API-server defaulting of a Service being created (`old` = None) or updated:
    /// type, protocols, targetPorts, clusterIP(s), ipFamilies, nodePorts. Values the
    /// client leaves out on update are carried over, so addresses stay stable.
    pub(crate) fn default_service(&mut self, svc: &mut Value, old: Option<&Value>, name: &str) -> Result<(), ApiError> {
        let Some(obj) = svc.as_object_mut() else { return Ok(()) };
        let spec = obj.entry("spec").or_insert_with(|| json!({}));
        let Some(spec) = spec.as_object_mut() else {
            return Err(invalid(name, "spec: Invalid value: must be an object".into()));
        };
        let old_spec = old.and_then(|o| o.get("spec"));
        let ty = spec.get("type").and_then(Value::as_str).unwrap_or("ClusterIP").to_string();
        spec.insert("type".into(), json!(ty));
        if ty == "ExternalName" {
            return Ok(());
        }
        default_policies(spec, &ty);
        let ip = self.cluster_ip(spec, old_spec, name)?;
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
        spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        // A LoadBalancer with `allocateLoadBalancerNodePorts: false` gets no nodePorts but
        // the ones its client names (cloud and bare-metal balancers that route to pods).
        let node_ports = match ty.as_str() {
            "NodePort" => NodePorts::Allocate,
            "LoadBalancer" if spec.get("allocateLoadBalancerNodePorts") == Some(&json!(false)) => NodePorts::Named,
            "LoadBalancer" => NodePorts::Allocate,
            _ => NodePorts::None,
        };
        self.ports(spec, old_spec, node_ports, name)?;
        self.health_check_node_port(spec, old_spec, &ty, name)?;
        if let Some(old) = old {
            self.release_dropped(old, svc);
        }
        Ok(())
    }

    /// The clusterIP: the old one on update (a different one is refused), the client's
    /// (reserved if inside the service net), `None` for headless, or a fresh one.
    fn cluster_ip(
        &mut self,
        spec: &Map<String, Value>,
        old_spec: Option<&Value>,
        name: &str,
    ) -> Result<String, ApiError> {
        let old_ip = old_spec.and_then(|s| s.get("clusterIP")).and_then(Value::as_str).map(String::from);
        let want = spec.get("clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        match (want, old_ip) {
            (Some(w), Some(o)) if w != o => Err(invalid(
                name,
                format!("spec.clusterIPs[0]: Invalid value: []string{{{w:?}}}: may not change once set"),
            )),
            (_, Some(o)) => Ok(o),
            (Some(w), None) if w == "None" => Ok(w),
            (Some(w), None) => {
                let parsed: Ipv4Addr = w.parse().map_err(|_| {
                    invalid(name, format!("spec.clusterIPs[0]: Invalid value: {w:?}: must be a valid IP address"))
                })?;
                let n = u32::from(parsed);
                if in_service_net(n) && !self.ips.insert(n) {
                    return Err(invalid(
                        name,
                        format!(
                            "spec.clusterIPs: Invalid value: []string{{{w:?}}}: failed to allocate IP {w}: provided IP is already allocated"
                        ),
                    ));
                }
                Ok(w)
            }
            (None, None) => self
                .alloc_ip()
                .map(|ip| ip.to_string())
                .ok_or_else(|| invalid(name, "spec.clusterIPs: Internal error: range is full".into())),
        }
    }

    /// Protocols, targetPorts and (for NodePort and LoadBalancer) nodePorts of every port.
    fn ports(
        &mut self,
        spec: &mut Map<String, Value>,
        old_spec: Option<&Value>,
        node_ports: NodePorts,
        name: &str,
    ) -> Result<(), ApiError> {
        let old_ports: Vec<Value> =
            old_spec.and_then(|s| s.get("ports")).and_then(Value::as_array).cloned().unwrap_or_default();
        let mut taken_here: Vec<u16> = Vec::new();
        let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) else { return Ok(()) };
        for pm in ports.iter_mut().filter_map(Value::as_object_mut) {
            let (port, proto) = port_defaults(pm, name)?;
            if node_ports == NodePorts::None {
                pm.remove("nodePort");
                continue;
            }
            let previous = old_ports
                .iter()
                .find(|o| {
                    o.get("port") == Some(&port) && o.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == proto
                })
                .and_then(|o| o.get("nodePort"))
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok());
            // Without allocation, a port keeps only a nodePort it is given or already had.
            if node_ports == NodePorts::Named && port_of(pm.get("nodePort")).is_none() && previous.is_none() {
                pm.remove("nodePort");
                continue;
            }
            let np = self.node_port(port_of(pm.get("nodePort")), previous, &taken_here, name)?;
            taken_here.push(np);
            pm.insert("nodePort".into(), json!(np));
        }
        Ok(())
    }

    /// One port's nodePort: kept from the old version, the client's (refused if another
    /// Service holds it), or a fresh one. `taken_here` are this Service's own, already placed.
    fn node_port(
        &mut self,
        given: Option<u16>,
        previous: Option<u16>,
        taken_here: &[u16],
        name: &str,
    ) -> Result<u16, ApiError> {
        match (given, previous) {
            (Some(g), Some(p)) if g == p => Ok(g),
            (None, Some(p)) => Ok(p),
            (Some(g), _) => {
                if !self.ports.insert(g) && !taken_here.contains(&g) {
                    return Err(invalid(
                        name,
                        format!("spec.ports[].nodePort: Invalid value: {g}: provided port is already allocated"),
                    ));
                }
                Ok(g)
            }
            (None, None) => self
                .alloc_port()
                .ok_or_else(|| invalid(name, "spec.ports[].nodePort: Internal error: range is full".into())),
        }
    }

    /// `spec.healthCheckNodePort`: allocated (or the client's reserved) for a LoadBalancer
    /// with `externalTrafficPolicy: Local`, kept across updates; dropped when no longer
    /// needed if the client left it unchanged, refused when set otherwise (ValidateService).
    fn health_check_node_port(
        &mut self,
        spec: &mut Map<String, Value>,
        old_spec: Option<&Value>,
        ty: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        let needs = |ty: &str, policy: Option<&str>| ty == "LoadBalancer" && policy == Some("Local");
        let given = port_of(spec.get("healthCheckNodePort"));
        let previous = old_spec
            .filter(|o| {
                needs(
                    o.get("type").and_then(Value::as_str).unwrap_or(""),
                    o.get("externalTrafficPolicy").and_then(Value::as_str),
                )
            })
            .and_then(|o| port_of(o.get("healthCheckNodePort")));
        if !needs(ty, spec.get("externalTrafficPolicy").and_then(Value::as_str)) {
            if let Some(g) = given.filter(|g| Some(*g) != previous) {
                return Err(invalid(
                    name,
                    format!(
                        "spec.healthCheckNodePort: Invalid value: {g}: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"
                    ),
                ));
            }
            spec.remove("healthCheckNodePort");
            return Ok(());
        }
        let port = match (given, previous) {
            (None, Some(p)) => p,
            (Some(g), Some(p)) if g == p => g,
            (Some(g), _) => {
                if !self.ports.insert(g) {
                    return Err(invalid(
                        name,
                        format!("spec.healthCheckNodePort: Invalid value: {g}: provided port is already allocated"),
                    ));
                }
                g
            }
            (None, None) => self
                .alloc_port()
                .ok_or_else(|| invalid(name, "spec.healthCheckNodePort: Internal error: range is full".into()))?,
        };
        spec.insert("healthCheckNodePort".into(), json!(port));
        Ok(())
    }

    /// Releases what the old version held and the new one no longer does.
    fn release_dropped(&mut self, old: &Value, new: &Value) {
        let (old_ip, old_ports) = held(old);
        let (new_ip, new_ports) = held(new);
        if let Some(ip) = old_ip.filter(|ip| Some(*ip) != new_ip) {
            self.ips.remove(&ip);
        }
        for p in old_ports.into_iter().filter(|p| !new_ports.contains(p)) {
            self.ports.remove(&p);
        }
    }
}

/// A port's protocol (default TCP) and targetPort (default: the port); the port must be
/// 1–65535. Returns the port value and the protocol.
fn port_defaults(pm: &mut Map<String, Value>, name: &str) -> Result<(Value, String), ApiError> {
    let proto = pm.get("protocol").and_then(Value::as_str).unwrap_or("TCP").to_string();
    pm.insert("protocol".into(), json!(proto));
    let port = pm.get("port").cloned().unwrap_or(Value::Null);
    if port.as_u64().is_none_or(|n| n == 0 || n > 65535) {
        return Err(invalid(
            name,
            format!("spec.ports[].port: Invalid value: {port}: must be between 1 and 65535, inclusive"),
        ));
    }
    pm.entry("targetPort").or_insert(port.clone());
    Ok((port, proto))
}

/// (clusterIP inside the service net, nodePorts and healthCheckNodePort) of a Service.
fn held(svc: &Value) -> (Option<u32>, Vec<u16>) {
    let ip = svc
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Ipv4Addr>().ok())
        .map(u32::from)
        .filter(|n| in_service_net(*n));
    let mut ports: Vec<u16> = svc
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|p| p.get("nodePort")?.as_u64()).filter_map(|n| u16::try_from(n).ok()).collect())
        .unwrap_or_default();
    ports.extend(svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64).and_then(|n| u16::try_from(n).ok()));
    (ip, ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_get_stable_cluster_ips_and_node_ports() -> Result<(), ApiError> {
        let mut a = ServiceAlloc::default();
        let mut svc = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        a.default_service(&mut svc, None, "web")?;
        let ip = svc["spec"]["clusterIP"].as_str().map(String::from);
        assert!(ip.as_deref().is_some_and(|s| s.starts_with("10.9")));
        let np = svc["spec"]["ports"][0]["nodePort"].as_u64();
        assert!(np.is_some_and(|p| (30000..=32767).contains(&p)));
        assert_eq!(svc["spec"]["ports"][0]["targetPort"], 80);
        // An update that omits them keeps them.
        let mut upd = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
        a.default_service(&mut upd, Some(&svc), "web")?;
        assert_eq!(upd["spec"]["clusterIP"].as_str().map(String::from), ip);
        assert_eq!(upd["spec"]["ports"][0]["nodePort"].as_u64(), np);
        // Switching to ClusterIP releases the nodePort.
        let mut cip = json!({"spec": {"ports": [{"port": 80}]}});
        a.default_service(&mut cip, Some(&upd), "web")?;
        assert!(cip["spec"]["ports"][0].get("nodePort").is_none());
        assert!(a.ports.is_empty());
        Ok(())
    }

    /// `allocateLoadBalancerNodePorts: false`: no nodePort unless named or already held,
    /// so the nodePort range does not bound how many LoadBalancers a cluster has.
    #[test]
    fn load_balancers_without_node_port_allocation() -> Result<(), ApiError> {
        let mut a = ServiceAlloc::default();
        let lb = |ports: Value| json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "ports": ports}});
        for i in 0..3000 {
            let mut svc = lb(json!([{"port": 80}]));
            a.default_service(&mut svc, None, &format!("s{i}"))?;
            assert!(svc["spec"]["ports"][0].get("nodePort").is_none());
        }
        assert!(a.ports.is_empty());
        let mut named = lb(json!([{"port": 80, "nodePort": 30080}, {"port": 81}]));
        a.default_service(&mut named, None, "named")?;
        assert_eq!(named["spec"]["ports"][0]["nodePort"], 30080);
        assert!(named["spec"]["ports"][1].get("nodePort").is_none());
        // An update that omits the named one keeps it, as an allocated one would be kept.
        let mut upd = lb(json!([{"port": 80}, {"port": 81}]));
        a.default_service(&mut upd, Some(&named), "named")?;
        assert_eq!(upd["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(a.ports.len(), 1);
        Ok(())
    }

    #[test]
    fn headless_and_taken_cluster_ips() {
        let mut a = ServiceAlloc::default();
        let mut headless = json!({"spec": {"clusterIP": "None", "ports": [{"port": 80}]}});
        assert!(a.default_service(&mut headless, None, "h").is_ok());
        assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
        let mut x = json!({"spec": {"clusterIP": "10.96.0.50"}});
        assert!(a.default_service(&mut x, None, "x").is_ok());
        let mut y = json!({"spec": {"clusterIP": "10.96.0.50"}});
        assert_eq!(a.default_service(&mut y, None, "y").err().map(|e| e.code), Some(422));
    }
}
