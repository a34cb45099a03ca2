//! Translation of one cluster's Kubernetes objects into table shards. Pure functions:
//! no I/O, so every odd object shape is a unit test away. Gateway API HTTPRoutes are in
//! [`gateway`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use k8s_openapi::api::core::v1::LoadBalancerIngress;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;

use crate::table::{ClusterMeta, Endpoint, IngressPath, IngressShard, Port, Probe, Protocol, Shard};

/// Annotations with this prefix are copied into shards (policy, weight, TTL, checks).
pub const ANNOTATION_PREFIX: &str = "meridian.io/";

/// Label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Why an object yields no shard; logged at debug level, shown nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The object carries `<federate_annotation>: "false"`.
    OptedOut,
    /// Not a LoadBalancer, no externalIPs, and not exported for MCS.
    NotExposed,
    /// Exposed, but the load balancer has no address yet.
    NoAddress,
    /// An HTTPRoute with no parent Gateway that exists, passes `discovery.gateway_classes`
    /// and has accepted it.
    NoParent,
}

/// Load-balancer IPs and hostnames from a status `ingress` list. Entries that are neither
/// a valid IP nor a hostname are ignored (and counted by the caller as malformed).
fn lb_addresses(entries: Option<&Vec<LoadBalancerIngress>>) -> (Vec<IpAddr>, Vec<Arc<str>>, usize) {
    let (mut ips, mut names, mut bad) = (Vec::new(), Vec::new(), 0);
    for e in entries.into_iter().flatten() {
        match (&e.ip, &e.hostname) {
            (Some(ip), _) if !ip.is_empty() => match ip.parse::<IpAddr>() {
                Ok(ip) => ips.push(ip),
                Err(_) => bad += 1,
            },
            (_, Some(h)) if !h.is_empty() => names.push(Arc::from(h.trim_end_matches('.').to_ascii_lowercase())),
            _ => bad += 1,
        }
    }
    ips.sort();
    ips.dedup();
    names.sort();
    names.dedup();
    (ips, names, bad)
}

fn meridian_annotations(annotations: Option<&BTreeMap<String, String>>) -> BTreeMap<String, String> {
    annotations
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(ANNOTATION_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn opted_out(annotations: Option<&BTreeMap<String, String>>, federate_annotation: &str) -> bool {
    annotations.and_then(|a| a.get(federate_annotation)).is_some_and(|v| v.eq_ignore_ascii_case("false"))
}

fn protocol(p: Option<&str>) -> Protocol {
    match p {
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        _ => Protocol::Tcp,
    }
}

fn port_number(n: i32) -> Option<u16> {
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// What a shard needs from a Service, and nothing else. Cluster tasks keep this per
/// Service instead of the object: a full `k8s_openapi` Service is large in memory (every
/// optional field inline), and with many Services per cluster the stored objects were
/// most of Meridian's resident memory. Lists are boxed slices, which are a third smaller
/// than vectors and never carry spare capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInfo {
    opted_out: bool,
    is_lb: bool,
    headless: bool,
    /// The load balancer's IPs and the external IPs, sorted and without repeats.
    addresses: Box<[IpAddr]>,
    /// Whether the Service lists external IPs: such a Service is exposed even when it is
    /// not a LoadBalancer.
    has_external: bool,
    lb_hostnames: Box<[Arc<str>]>,
    ports: Box<[Port]>,
    /// The `meridian.io/*` annotations.
    annotations: BTreeMap<String, String>,
    created: Option<SystemTime>,
}

impl ServiceInfo {
    /// The parts of `svc` that [`shard_of`] reads; `federate_annotation` is decided here.
    pub fn new(svc: &Service, federate_annotation: &str) -> Self {
        let annotations = svc.metadata.annotations.as_ref();
        let spec = svc.spec.as_ref();
        let is_lb = spec.and_then(|s| s.type_.as_deref()) == Some("LoadBalancer");
        let external: Vec<IpAddr> =
            spec.and_then(|s| s.external_ips.as_ref()).into_iter().flatten().filter_map(|ip| ip.parse().ok()).collect();
        let status_lb = svc.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
        let (mut addresses, lb_hostnames, _bad) = if is_lb { lb_addresses(status_lb) } else { (vec![], vec![], 0) };
        let has_external = !external.is_empty();
        addresses.extend(external);
        addresses.sort();
        addresses.dedup();
        let ports = spec
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|p| {
                Some(Port {
                    name: p.name.as_deref().filter(|n| !n.is_empty()).map(Arc::from),
                    port: port_number(p.port)?,
                    protocol: protocol(p.protocol.as_deref()),
                })
            })
            .collect();
        ServiceInfo {
            opted_out: opted_out(annotations, federate_annotation),
            is_lb,
            headless: spec.and_then(|s| s.cluster_ip.as_deref()) == Some("None"),
            addresses: addresses.into(),
            has_external,
            lb_hostnames: lb_hostnames.into(),
            ports,
            annotations: meridian_annotations(annotations),
            created: svc.metadata.creation_timestamp.as_ref().map(|t| SystemTime::from(t.0)),
        }
    }
}

/// What a shard needs from an EndpointSlice: its ports once, and each endpoint's
/// addresses, hostname and readiness. The ports are joined to the endpoints only for a
/// headless shard, the one kind that answers with its endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct SliceInfo {
    ports: Box<[Port]>,
    endpoints: Box<[SliceEndpoint]>,
}

#[derive(Debug, Clone, PartialEq)]
struct SliceEndpoint {
    addresses: Box<[IpAddr]>,
    hostname: Option<Arc<str>>,
    ready: bool,
}

impl SliceEndpoint {
    fn endpoint(&self, ports: &[Port]) -> Endpoint {
        Endpoint {
            addresses: self.addresses.to_vec(),
            hostname: self.hostname.clone(),
            ready: self.ready,
            ports: ports.to_vec(),
        }
    }
}

impl SliceInfo {
    pub fn new(slice: &EndpointSlice) -> Self {
        let ports = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                Some(Port {
                    name: p.name.as_deref().filter(|n| !n.is_empty()).map(Arc::from),
                    port: port_number(p.port?)?,
                    protocol: protocol(p.protocol.as_deref()),
                })
            })
            .collect();
        let endpoints = slice
            .endpoints
            .iter()
            .filter_map(|ep| {
                let addresses: Box<[IpAddr]> = ep.addresses.iter().filter_map(|a| a.parse().ok()).collect();
                // EndpointSlice semantics: an unknown `ready` condition is to be read as ready.
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                let hostname = ep.hostname.as_deref().filter(|h| !h.is_empty()).map(Arc::from);
                (!addresses.is_empty()).then_some(SliceEndpoint { addresses, hostname, ready })
            })
            .collect();
        SliceInfo { ports, endpoints }
    }
}

/// Builds the shard of `svc` in `cluster` from the Service and its EndpointSlices.
pub fn service_shard(
    cluster: &Arc<ClusterMeta>,
    svc: &Service,
    slices: &[&EndpointSlice],
    exported: bool,
    federate_annotation: &str,
) -> Result<Shard, Skip> {
    let info = ServiceInfo::new(svc, federate_annotation);
    let slices: Vec<SliceInfo> = slices.iter().map(|s| SliceInfo::new(s)).collect();
    let slices: Vec<&SliceInfo> = slices.iter().collect();
    shard_of(cluster, &info, &slices, exported)
}

/// Builds the shard of a Service in `cluster` from what the cluster task keeps of it and
/// of its EndpointSlices.
pub fn shard_of(
    cluster: &Arc<ClusterMeta>,
    svc: &ServiceInfo,
    slices: &[&SliceInfo],
    exported: bool,
) -> Result<Shard, Skip> {
    if svc.opted_out {
        return Err(Skip::OptedOut);
    }
    if !svc.is_lb && !svc.has_external && !exported {
        return Err(Skip::NotExposed);
    }
    let addresses = svc.addresses.to_vec();
    let hostnames = svc.lb_hostnames.to_vec();
    if addresses.is_empty() && hostnames.is_empty() && !exported {
        return Err(Skip::NoAddress);
    }
    let mut members: Vec<(&SliceEndpoint, &[Port])> =
        slices.iter().flat_map(|s| s.endpoints.iter().map(|e| (e, &*s.ports))).collect();
    // The same pod can appear in two slices while one is being replaced: count it once.
    members.sort_by(|(a, _), (b, _)| a.addresses.cmp(&b.addresses).then(b.ready.cmp(&a.ready)));
    members.dedup_by(|(a, _), (b, _)| a.addresses == b.addresses);
    let ready = members.iter().filter(|(e, _)| e.ready).count();
    let total = members.len();
    // Only a headless shard answers with its endpoints; any other keeps their counts, so
    // the table holds no copy that nothing reads, and an endpoint change that leaves the
    // counts alone changes nothing downstream.
    let endpoints =
        if svc.headless { members.iter().map(|(e, ports)| e.endpoint(ports)).collect() } else { Vec::new() };
    Ok(Shard {
        cluster: cluster.clone(),
        addresses,
        hostnames,
        ports: svc.ports.to_vec(),
        headless: svc.headless,
        ready_endpoints: u32::try_from(ready).unwrap_or(u32::MAX),
        total_endpoints: u32::try_from(total).unwrap_or(u32::MAX),
        endpoints,
        annotations: svc.annotations.clone(),
        exported,
        created: svc.created,
        stale: false,
        probe: Probe::default(),
    })
}

/// Builds the shard of an Ingress in `cluster`.
pub fn ingress_shard(
    cluster: &Arc<ClusterMeta>,
    ing: &Ingress,
    federate_annotation: &str,
) -> Result<IngressShard, Skip> {
    let annotations = ing.metadata.annotations.as_ref();
    if opted_out(annotations, federate_annotation) {
        return Err(Skip::OptedOut);
    }
    let status_lb = ing.status.as_ref().and_then(|s| s.load_balancer.as_ref()).and_then(|l| l.ingress.as_ref());
    // networking/v1 has its own IngressLoadBalancerIngress type; map it to the same shape.
    let entries: Vec<LoadBalancerIngress> = status_lb
        .into_iter()
        .flatten()
        .map(|e| LoadBalancerIngress { ip: e.ip.clone(), hostname: e.hostname.clone(), ..Default::default() })
        .collect();
    let (addresses, hostnames, _) = lb_addresses(Some(&entries));
    let mut paths = Vec::new();
    let spec = ing.spec.as_ref();
    if let Some(backend) = spec.and_then(|s| s.default_backend.as_ref()).and_then(|b| b.service.as_ref()) {
        let port = backend.port.as_ref();
        paths.push(IngressPath {
            host: "".into(),
            path: "/".into(),
            path_type: "Prefix".into(),
            service: backend.name.as_str().into(),
            port: port.and_then(|p| p.number).and_then(port_number).unwrap_or(0),
            port_name: port.and_then(|p| p.name.as_deref()).map(Arc::from),
        });
    }
    for rule in spec.and_then(|s| s.rules.as_ref()).into_iter().flatten() {
        let host: Arc<str> = rule.host.as_deref().unwrap_or("").trim_end_matches('.').to_ascii_lowercase().into();
        for p in rule.http.iter().flat_map(|h| h.paths.iter()) {
            let Some(backend) = p.backend.service.as_ref() else {
                continue;
            };
            let port = backend.port.as_ref();
            paths.push(IngressPath {
                host: host.clone(),
                path: p.path.as_deref().filter(|s| !s.is_empty()).unwrap_or("/").into(),
                path_type: p.path_type.as_str().into(),
                service: backend.name.as_str().into(),
                port: port.and_then(|p| p.number).and_then(port_number).unwrap_or(0),
                port_name: port.and_then(|p| p.name.as_deref()).map(Arc::from),
            });
        }
    }
    if addresses.is_empty() && hostnames.is_empty() {
        return Err(Skip::NoAddress);
    }
    Ok(IngressShard {
        cluster: cluster.clone(),
        addresses,
        hostnames,
        paths,
        annotations: meridian_annotations(annotations),
        stale: false,
    })
}

#[path = "shard/gateway.rs"]
pub mod gateway;

#[cfg(test)]
#[path = "shard/tests.rs"]
mod tests;
