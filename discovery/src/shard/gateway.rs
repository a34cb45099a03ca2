//! Translation of the Gateway API (`gateway.networking.k8s.io/v1`) into the shard shape
//! Ingresses use: an HTTPRoute attached to a usable Gateway becomes an [`IngressShard`]
//! whose hosts are the route's hostnames as the Gateway's listeners admit them, whose
//! paths send to Services, and whose addresses are the Gateway's `status.addresses`.
//! Pure functions over small structs read from the objects' JSON (the Gateway API has no
//! types in `k8s-openapi`, and a generated crate would be heavy for the few fields read).
//!
//! What is read, and what is left out (each left-out part is noted, never guessed at):
//! - A Gateway is usable when its GatewayClass passes `discovery.gateway_classes` (class
//!   name or the class's `controllerName`; empty admits every class). Only its HTTP and
//!   HTTPS listeners count.
//! - A route uses a parent Gateway that exists, is usable, and has accepted it
//!   (`status.parents[].conditions` `Accepted=True` for that parentRef): acceptance is
//!   the controller's verdict on `allowedRoutes`, so it is not judged again here.
//! - Path matches `PathPrefix` and `Exact`; `RegularExpression`, and matches with header,
//!   query or method conditions, are skipped (the proxy routes by host and path alone).
//! - `backendRefs` to Services of the route's own namespace with a port. The proxy sends
//!   one host and path to one Service, so of several weighted refs the first with a
//!   non-zero weight takes all traffic.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::Skip;
use crate::table::{ClusterMeta, IngressPath, IngressShard, ObjectKey};

/// The Gateway API's group.
pub const GROUP: &str = "gateway.networking.k8s.io";

/// What a Gateway's filter needs of a GatewayClass.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClassInfo {
    /// `spec.controllerName`.
    pub controller: String,
}

impl ClassInfo {
    /// Reads a GatewayClass's `spec` and `status` (a DynamicObject's `data`).
    pub fn new(data: &Value) -> Self {
        let controller = data.pointer("/spec/controllerName").and_then(Value::as_str).unwrap_or_default();
        Self { controller: controller.to_owned() }
    }
}

/// One listener: its name, its hostname (`None` admits every route hostname) and whether
/// it speaks HTTP (HTTP or HTTPS; TLS, TCP and UDP listeners carry no HTTPRoutes).
#[derive(Debug, Clone, PartialEq)]
struct Listener {
    name: String,
    hostname: Option<String>,
    http: bool,
}

/// What route translation needs of a Gateway.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GatewayInfo {
    /// `spec.gatewayClassName`.
    pub class: String,
    listeners: Vec<Listener>,
    /// `status.addresses` of type `IPAddress` (the default).
    addresses: Vec<IpAddr>,
    /// `status.addresses` of type `Hostname`, lower-case, without a trailing dot.
    hostnames: Vec<Arc<str>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawGateway {
    spec: RawGatewaySpec,
    status: RawGatewayStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawGatewaySpec {
    gateway_class_name: String,
    listeners: Vec<RawListener>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawListener {
    name: String,
    hostname: Option<String>,
    protocol: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawGatewayStatus {
    addresses: Vec<RawAddress>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawAddress {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: String,
}

/// A host name as compared and published: lower-case, no trailing dot.
fn host(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

impl GatewayInfo {
    /// Reads a Gateway's `spec` and `status` (a DynamicObject's `data`); a field of the
    /// wrong shape reads as absent.
    pub fn new(data: &Value) -> Self {
        let raw = RawGateway::deserialize(data).unwrap_or_default();
        let listeners = raw
            .spec
            .listeners
            .into_iter()
            .map(|l| Listener {
                name: l.name,
                hostname: l.hostname.filter(|h| !h.is_empty()).map(|h| host(&h)),
                http: matches!(l.protocol.as_str(), "HTTP" | "HTTPS"),
            })
            .collect();
        let (mut addresses, mut hostnames) = (Vec::new(), Vec::new());
        for a in raw.status.addresses {
            match a.kind.as_deref().unwrap_or("IPAddress") {
                "IPAddress" => addresses.extend(a.value.parse::<IpAddr>().ok()),
                "Hostname" if !a.value.is_empty() => hostnames.push(Arc::from(host(&a.value))),
                _ => {}
            }
        }
        addresses.sort();
        addresses.dedup();
        hostnames.sort();
        hostnames.dedup();
        Self { class: raw.spec.gateway_class_name, listeners, addresses, hostnames }
    }
}

/// Whether `discovery.gateway_classes` (`filter`) admits a Gateway: empty admits every
/// class; otherwise an entry names its class or its class's controller.
/// `classes` are keyed as cluster-scoped objects (empty namespace).
pub fn class_allowed(gw: &GatewayInfo, classes: &HashMap<ObjectKey, ClassInfo>, filter: &[String]) -> bool {
    if filter.is_empty() || filter.contains(&gw.class) {
        return true;
    }
    classes.get(&ObjectKey::new("", &gw.class)).is_some_and(|c| filter.contains(&c.controller))
}

/// A route's reference to a parent Gateway.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ParentRef {
    pub gateway: ObjectKey,
    /// `sectionName`: one listener of the Gateway, or every listener.
    pub section: Option<String>,
}

/// One path match of a rule.
#[derive(Debug, Clone, PartialEq)]
enum PathMatch {
    Prefix(String),
    Exact(String),
    /// Not routable by host and path alone; the reason is noted.
    Unsupported(String),
}

/// One backendRef.
#[derive(Debug, Clone, PartialEq)]
struct Backend {
    /// `group/kind` when not a core Service.
    kind: Option<String>,
    name: String,
    /// Set when not the route's namespace.
    namespace: Option<String>,
    port: Option<u16>,
    weight: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct Rule {
    matches: Vec<PathMatch>,
    backends: Vec<Backend>,
}

/// What translation needs of an HTTPRoute.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteInfo {
    opted_out: bool,
    hostnames: Vec<String>,
    /// `spec.parentRefs` that name Gateways.
    pub parents: Vec<ParentRef>,
    /// The parents whose controller reports `Accepted=True` in `status.parents`.
    accepted: Vec<ParentRef>,
    rules: Vec<Rule>,
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRoute {
    spec: RawRouteSpec,
    status: RawRouteStatus,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawRouteSpec {
    parent_refs: Vec<RawParentRef>,
    hostnames: Vec<String>,
    rules: Vec<RawRule>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawParentRef {
    group: Option<String>,
    kind: Option<String>,
    namespace: Option<String>,
    name: String,
    section_name: Option<String>,
}

impl RawParentRef {
    /// The Gateway it names (group and kind default to the Gateway API's Gateway).
    fn gateway(self, route_ns: &str) -> Option<ParentRef> {
        let group_ok = self.group.as_deref().is_none_or(|g| g == GROUP);
        let kind_ok = self.kind.as_deref().is_none_or(|k| k == "Gateway");
        if !group_ok || !kind_ok || self.name.is_empty() {
            return None;
        }
        let ns = self.namespace.filter(|n| !n.is_empty()).unwrap_or_else(|| route_ns.to_owned());
        let section = self.section_name.filter(|s| !s.is_empty());
        Some(ParentRef { gateway: ObjectKey::new(&ns, &self.name), section })
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawRouteStatus {
    parents: Vec<RawParentStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawParentStatus {
    parent_ref: RawParentRef,
    conditions: Vec<RawCondition>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawCondition {
    #[serde(rename = "type")]
    kind: String,
    status: String,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawRule {
    matches: Vec<RawMatch>,
    backend_refs: Vec<RawBackendRef>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct RawMatch {
    path: Option<RawPath>,
    headers: Vec<Value>,
    query_params: Vec<Value>,
    method: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawPath {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RawBackendRef {
    group: Option<String>,
    kind: Option<String>,
    name: String,
    namespace: Option<String>,
    port: Option<i64>,
    weight: Option<i64>,
}

impl RawMatch {
    fn read(self) -> PathMatch {
        if !self.headers.is_empty() || !self.query_params.is_empty() || self.method.is_some() {
            return PathMatch::Unsupported("a header, query or method match".into());
        }
        let path = self.path.unwrap_or_default();
        let value = path.value.filter(|v| !v.is_empty()).unwrap_or_else(|| "/".to_owned());
        match path.kind.as_deref().unwrap_or("PathPrefix") {
            "PathPrefix" => PathMatch::Prefix(value),
            "Exact" => PathMatch::Exact(value),
            other => PathMatch::Unsupported(format!("path match type {other}")),
        }
    }
}

impl RawBackendRef {
    fn read(self, route_ns: &str) -> Backend {
        let group = self.group.unwrap_or_default();
        let kind = self.kind.unwrap_or_else(|| "Service".to_owned());
        let kind = (!(group.is_empty() && kind == "Service")).then(|| format!("{group}/{kind}"));
        Backend {
            kind,
            name: self.name,
            namespace: self.namespace.filter(|n| n != route_ns && !n.is_empty()),
            port: self.port.and_then(|p| u16::try_from(p).ok()).filter(|p| *p != 0),
            weight: self.weight.map_or(1, |w| u32::try_from(w).unwrap_or(0)),
        }
    }
}

impl RouteInfo {
    /// Reads an HTTPRoute in `namespace`: its `spec` and `status` (`data`) and its
    /// annotations; a field of the wrong shape reads as absent.
    pub fn new(
        namespace: &str,
        data: &Value,
        annotations: Option<&BTreeMap<String, String>>,
        federate_annotation: &str,
    ) -> Self {
        let raw = RawRoute::deserialize(data).unwrap_or_default();
        let parents = raw.spec.parent_refs.into_iter().filter_map(|p| p.gateway(namespace)).collect();
        let accepted = raw
            .status
            .parents
            .into_iter()
            .filter(|p| p.conditions.iter().any(|c| c.kind == "Accepted" && c.status == "True"))
            .filter_map(|p| p.parent_ref.gateway(namespace))
            .collect();
        let rules = raw
            .spec
            .rules
            .into_iter()
            .map(|r| {
                let mut matches: Vec<PathMatch> = r.matches.into_iter().map(RawMatch::read).collect();
                if matches.is_empty() {
                    matches.push(PathMatch::Prefix("/".into()));
                }
                Rule { matches, backends: r.backend_refs.into_iter().map(|b| b.read(namespace)).collect() }
            })
            .collect();
        Self {
            opted_out: super::opted_out(annotations, federate_annotation),
            hostnames: raw.spec.hostnames.iter().map(|h| host(h)).filter(|h| !h.is_empty()).collect(),
            parents,
            accepted,
            rules,
            annotations: super::meridian_annotations(annotations),
        }
    }
}

/// Where a route's parents come from: the cluster's Gateways and classes, and the filter.
pub struct Parents<'a> {
    pub gateways: &'a HashMap<ObjectKey, GatewayInfo>,
    /// By `ObjectKey::new("", name)`, as the cluster task keys them.
    pub classes: &'a HashMap<ObjectKey, ClassInfo>,
    /// `discovery.gateway_classes`.
    pub filter: &'a [String],
}

/// A route's shard, or why it has none, and what of it was left out (one line each, to
/// be reported: a path type or backend the proxy cannot serve, a parent not found).
#[derive(Debug)]
pub struct Translation {
    pub shard: Result<IngressShard, Skip>,
    pub notes: Vec<String>,
}

/// The name a route hostname and a listener hostname both match, the more specific of
/// the two (Gateway API: equal names, or a wildcard `*.suffix` and a name with at least
/// one more label before `.suffix`; two wildcards when one's suffix ends the other's).
pub fn intersect(listener: &str, route: &str) -> Option<String> {
    if listener == route {
        return Some(route.to_owned());
    }
    // `*.suffix` covers a name that ends in `.suffix` after at least one more character.
    let covers = |wild: &str, name: &str| {
        wild.strip_prefix('*').is_some_and(|suffix| name.len() > suffix.len() && name.ends_with(suffix))
    };
    match (listener.starts_with("*."), route.starts_with("*.")) {
        (true, false) if covers(listener, route) => Some(route.to_owned()),
        (false, true) if covers(route, listener) => Some(listener.to_owned()),
        (true, true) if covers(listener, &route[1..]) => Some(route.to_owned()),
        (true, true) if covers(route, &listener[1..]) => Some(listener.to_owned()),
        _ => None,
    }
}

/// The hosts a route is served under on one listener: a listener without a hostname
/// admits the route's hostnames as they are; a route without hostnames takes the
/// listener's; otherwise each route hostname the listener's matches (see [`intersect`]).
/// Empty when nothing matches, or neither names a host.
pub fn listener_hosts(listener: Option<&str>, route: &[String]) -> Vec<String> {
    match (listener, route) {
        (None, r) => r.to_vec(),
        (Some(l), []) => vec![l.to_owned()],
        (Some(l), r) => r.iter().filter_map(|h| intersect(l, h)).collect(),
    }
}

/// The hosts and addresses the route's usable, accepting parents give it; `None` when
/// it has no such parent.
fn attach(route: &RouteInfo, parents: &Parents<'_>, notes: &mut Vec<String>) -> Option<(Vec<String>, ParentAddrs)> {
    let (mut hosts, mut addrs, mut any) = (Vec::new(), ParentAddrs::default(), false);
    for p in &route.parents {
        let Some(gw) = parents.gateways.get(&p.gateway) else {
            notes.push(format!("parent Gateway {} not found", p.gateway));
            continue;
        };
        if !class_allowed(gw, parents.classes, parents.filter) {
            continue;
        }
        if !route.accepted.contains(p) {
            notes.push(format!("not accepted by Gateway {} (no Accepted=True in status.parents)", p.gateway));
            continue;
        }
        let listeners: Vec<&Listener> =
            gw.listeners.iter().filter(|l| l.http && p.section.as_ref().is_none_or(|s| *s == l.name)).collect();
        if listeners.is_empty() {
            notes.push(format!("Gateway {} has no HTTP listener {}", p.gateway, p.section.as_deref().unwrap_or("")));
            continue;
        }
        any = true;
        for l in listeners {
            hosts.extend(listener_hosts(l.hostname.as_deref(), &route.hostnames));
        }
        addrs.ips.extend(gw.addresses.iter().copied());
        addrs.names.extend(gw.hostnames.iter().cloned());
    }
    hosts.sort();
    hosts.dedup();
    any.then_some((hosts, addrs))
}

/// Addresses gathered from a route's parents.
#[derive(Default)]
struct ParentAddrs {
    ips: Vec<IpAddr>,
    names: Vec<Arc<str>>,
}

/// The backend a rule sends to, noting the refs it cannot use.
fn backend_of<'a>(rule: &'a Rule, notes: &mut Vec<String>) -> Option<&'a Backend> {
    let mut usable = Vec::new();
    for b in &rule.backends {
        if let Some(kind) = &b.kind {
            notes.push(format!("backendRef {kind} {} skipped: only Services are routed", b.name));
        } else if let Some(ns) = &b.namespace {
            notes.push(format!("backendRef Service {ns}/{} skipped: only the route's namespace", b.name));
        } else if b.port.is_none() {
            notes.push(format!("backendRef Service {} skipped: no port", b.name));
        } else if b.weight > 0 {
            usable.push(b);
        }
    }
    if usable.len() > 1 {
        let first = usable.first().map_or("", |b| b.name.as_str());
        notes.push(format!("weights not honoured: Service {first}, the first with a non-zero weight, takes all"));
    }
    usable.first().copied()
}

/// The paths of every rule under every host.
fn paths_of(route: &RouteInfo, hosts: &[String], notes: &mut Vec<String>) -> Vec<IngressPath> {
    let mut out = Vec::new();
    let no_host = [String::new()];
    let hosts = if hosts.is_empty() { &no_host[..] } else { hosts };
    for rule in &route.rules {
        let Some(backend) = backend_of(rule, notes) else {
            notes.push("a rule without a usable backendRef skipped".into());
            continue;
        };
        for m in &rule.matches {
            let (path, path_type) = match m {
                PathMatch::Prefix(p) => (p, "Prefix"),
                PathMatch::Exact(p) => (p, "Exact"),
                PathMatch::Unsupported(what) => {
                    notes.push(format!("{what} skipped: only PathPrefix and Exact paths are routed"));
                    continue;
                }
            };
            for h in hosts {
                out.push(IngressPath {
                    host: h.as_str().into(),
                    path: path.as_str().into(),
                    path_type: path_type.into(),
                    service: backend.name.as_str().into(),
                    port: backend.port.unwrap_or(0),
                    port_name: None,
                });
            }
        }
    }
    out.dedup();
    out
}

/// Builds the shard of an HTTPRoute in `cluster` from the route and its parents.
pub fn route_shard(cluster: &Arc<ClusterMeta>, route: &RouteInfo, parents: &Parents<'_>) -> Translation {
    let mut notes = Vec::new();
    if route.opted_out {
        return Translation { shard: Err(Skip::OptedOut), notes };
    }
    let Some((hosts, addrs)) = attach(route, parents, &mut notes) else {
        return Translation { shard: Err(Skip::NoParent), notes };
    };
    if hosts.is_empty() {
        notes.push("no hostname (route and listeners name none, or none match): federation name only".into());
    }
    let paths = paths_of(route, &hosts, &mut notes);
    let (mut addresses, mut hostnames) = (addrs.ips, addrs.names);
    addresses.sort();
    addresses.dedup();
    hostnames.sort();
    hostnames.dedup();
    if addresses.is_empty() && hostnames.is_empty() {
        return Translation { shard: Err(Skip::NoAddress), notes };
    }
    notes.sort();
    notes.dedup();
    let shard = IngressShard {
        cluster: cluster.clone(),
        addresses,
        hostnames,
        paths,
        annotations: route.annotations.clone(),
        stale: false,
    };
    Translation { shard: Ok(shard), notes }
}

#[cfg(test)]
#[path = "gateway/tests.rs"]
mod tests;
