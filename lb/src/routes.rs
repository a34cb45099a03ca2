//! The host → route index, rebuilt from the table and the config whenever either changes,
//! so a request's routing is one hash lookup and a short prefix scan.
//!
//! Routes come from `[[lb.routes]]` (which win) and from the rules of Ingresses and
//! Gateway API HTTPRoutes seen in the clusters (Ingresses before HTTPRoutes): a path sends
//! its host and path to the named Service's shards in the clusters where that object
//! exists. An HTTPRoute rule sends to one Service (its first backendRef with a non-zero
//! weight, chosen in discovery): a route has one upstream, so weights are not split. Each route's backends are the Service's
//! load-balancer addresses with the service port, grouped into priority levels by
//! [`priority_levels`].

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use meridian_config::lb::LbConfig;
use meridian_model::table::{HttpKind, IngressPath, ObjectKey, Shard, Snapshot};
use serde_json::json;

use crate::balance::{Endpoint, Level, Member, priority_loads};
use crate::metrics::{Metrics, RouteStats};
use crate::retry::RetryBudget;

/// Where a route's traffic goes: one Service port across clusters.
pub(crate) struct Upstream {
    /// `namespace/name:port`, for status and logs.
    pub(crate) name: Arc<str>,
    pub(crate) levels: Vec<Level>,
    pub(crate) budget: Arc<RetryBudget>,
}

impl Upstream {
    /// Some backend can take a request now.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.levels.iter().any(|l| l.health(now).0 > 0)
    }
}

/// One host + path rule.
pub(crate) struct Route {
    pub(crate) host: Arc<str>,
    pub(crate) path: Box<str>,
    /// `pathType: Exact`; otherwise a prefix matched by path segments.
    pub(crate) exact: bool,
    /// `config`, `ingress <ns>/<name>` or `httproute <ns>/<name>`.
    pub(crate) source: Arc<str>,
    pub(crate) upstream: Arc<Upstream>,
    pub(crate) stats: RouteStats,
}

impl Route {
    fn matches(&self, path: &str) -> bool {
        if self.exact {
            return path == &*self.path;
        }
        let p = self.path.trim_end_matches('/');
        match path.strip_prefix(p) {
            Some(rest) => rest.is_empty() || rest.starts_with('/'),
            None => false,
        }
    }
}

/// Every route, by host.
#[derive(Default)]
pub(crate) struct RouteIndex {
    /// Exact host → its routes, longest path first.
    exact: HashMap<Box<str>, Vec<Arc<Route>>>,
    /// `*.example.com` routes by suffix (`.example.com`), longest suffix first.
    wildcard: Vec<(Box<str>, Vec<Arc<Route>>)>,
    pub(crate) routes: Vec<Arc<Route>>,
    /// The Services some route sends traffic to.
    services: HashSet<ObjectKey>,
}

/// Host without port or trailing dot, borrowed when already lower-case.
pub(crate) fn normalize_host(host: &str) -> std::borrow::Cow<'_, str> {
    let h = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    let h = h.strip_suffix('.').unwrap_or(h);
    if h.bytes().any(|b| b.is_ascii_uppercase()) { h.to_ascii_lowercase().into() } else { h.into() }
}

impl RouteIndex {
    /// Every host with a route, wildcards as `*.suffix`, sorted.
    pub(crate) fn hosts(&self) -> Vec<String> {
        let exact = self.exact.keys().map(|h| h.to_string());
        let mut hosts: Vec<String> = exact.chain(self.wildcard.iter().map(|(s, _)| format!("*{s}"))).collect();
        hosts.sort();
        hosts
    }

    /// The route for a (normalised) host and a path.
    pub(crate) fn lookup(&self, host: &str, path: &str) -> Option<&Arc<Route>> {
        if let Some(routes) = self.exact.get(host) {
            return routes.iter().find(|r| r.matches(path));
        }
        for (suffix, routes) in &self.wildcard {
            // `*.example.com` matches exactly one more label.
            if let Some(label) = host.strip_suffix(&**suffix)
                && !label.is_empty()
                && !label.contains('.')
            {
                return routes.iter().find(|r| r.matches(path));
            }
        }
        None
    }

    fn insert(&mut self, host: String, route: Arc<Route>) {
        self.routes.push(route.clone());
        match host.strip_prefix('*') {
            Some(suffix) => match self.wildcard.iter_mut().find(|(s, _)| **s == *suffix) {
                Some((_, v)) => v.push(route),
                None => self.wildcard.push((suffix.into(), vec![route])),
            },
            None => self.exact.entry(host.into_boxed_str()).or_default().push(route),
        }
    }

    /// Longest path first within a host, longest wildcard suffix first.
    fn sort(&mut self) {
        let longest_path_first =
            |v: &mut Vec<Arc<Route>>| v.sort_by(|a, b| b.path.len().cmp(&a.path.len()).then(b.exact.cmp(&a.exact)));
        self.exact.values_mut().for_each(longest_path_first);
        self.wildcard.iter_mut().for_each(|(_, v)| longest_path_first(v));
        self.wildcard.sort_by_key(|w| std::cmp::Reverse(w.0.len()));
    }

    /// Some route sends traffic to the Service `key`.
    pub(crate) fn uses(&self, key: &ObjectKey) -> bool {
        self.services.contains(key)
    }

    /// Some route has a backend that can take a request.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.routes.iter().any(|r| r.upstream.ready(now))
    }

    pub(crate) fn status(&self, factor: f64, now: Instant) -> serde_json::Value {
        let routes: Vec<_> = self.routes.iter().map(|r| route_json(r, factor, now)).collect();
        json!({ "routes": routes })
    }

    /// The route a request for `host` and `path` takes now, its levels with their loads,
    /// and the backend the balancer favours: for `meridian explain --http`. The lookup
    /// and the loads are the ones requests go through.
    pub(crate) fn explain(&self, host: &str, path: &str, factor: f64, now: Instant) -> serde_json::Value {
        let normalized = normalize_host(host);
        let Some(route) = self.lookup(&normalized, path) else {
            return json!({ "host": &*normalized, "path": path, "route": null, "hosts": self.hosts() });
        };
        let favoured = crate::balance::favoured(&route.upstream.levels, factor, now).map(|(level, m)| {
            let name = route.upstream.levels.get(level).map(|l| l.name.to_string());
            json!({ "level": name, "address": m.endpoint.addr.to_string(), "cluster": &*m.cluster })
        });
        json!({ "host": &*normalized, "path": path, "route": route_json(route, factor, now), "favoured": favoured })
    }
}

/// One route with its levels, their loads and every backend's state.
fn route_json(r: &Route, factor: f64, now: Instant) -> serde_json::Value {
    let up = &r.upstream;
    let health: Vec<_> = up.levels.iter().map(|l| l.health(now)).collect();
    let loads = priority_loads(&health, factor);
    let levels: Vec<_> = up
        .levels
        .iter()
        .zip(loads)
        .map(|(l, load)| {
            let backends: Vec<_> = l.members.iter().map(|m| backend_json(m, now)).collect();
            json!({ "name": &*l.name, "load_percent": load, "backends": backends })
        })
        .collect();
    json!({
        "host": &*r.host,
        "path": &*r.path,
        "exact": r.exact,
        "source": &*r.source,
        "upstream": &*up.name,
        "ready": up.ready(now),
        "active_requests": up.budget.active(),
        "levels": levels,
    })
}

fn backend_json(m: &crate::balance::Member, now: Instant) -> serde_json::Value {
    let e = &m.endpoint;
    let state = if !m.healthy {
        "unhealthy"
    } else if e.is_ejected(now) {
        "ejected"
    } else {
        "up"
    };
    json!({
        "address": e.addr.to_string(),
        "cluster": &*m.cluster,
        "state": state,
        "healthy": m.healthy,
        "ejected_for_ms": e.ejected_for(now).map(|d| d.as_millis() as u64),
        "outstanding": e.outstanding(),
        "idle_connections": e.pool.idle(),
        "ewma_ms": e.ewma(now).as_secs_f64() * 1000.0,
    })
}

/// Which service port a route uses.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum PortSel {
    /// The Service's first TCP port.
    First,
    Number(u16),
    Name(Arc<str>),
}

impl PortSel {
    fn resolve(&self, shard: &Shard) -> Option<u16> {
        use meridian_model::table::Protocol;
        match self {
            PortSel::Number(n) => Some(*n),
            PortSel::Name(name) => shard.ports.iter().find(|p| p.name.as_deref() == Some(&**name)).map(|p| p.port),
            PortSel::First => shard.ports.iter().find(|p| p.protocol == Protocol::Tcp).map(|p| p.port),
        }
    }

    fn label(&self) -> String {
        match self {
            PortSel::First => String::new(),
            PortSel::Number(n) => format!(":{n}"),
            PortSel::Name(n) => format!(":{n}"),
        }
    }
}

/// A route before its backends are resolved.
struct Spec {
    source: Arc<str>,
    namespace: String,
    service: String,
    port: PortSel,
    /// Clusters whose shards serve it; `None` for every cluster (config routes).
    clusters: Option<BTreeSet<Arc<str>>>,
}

impl Spec {
    /// Routes with equal keys share one upstream (and its retry budget).
    fn upstream_key(&self) -> String {
        let clusters = self.clusters.as_ref().map(|c| c.iter().map(|s| &**s).collect::<Vec<_>>().join(","));
        format!("{}/{}{}@{}", self.namespace, self.service, self.port.label(), clusters.unwrap_or_default())
    }
}

/// (host, path, exact) → what serves it. The first source wins: config, then Ingresses
/// in key order, then HTTPRoutes in key order.
type Specs = BTreeMap<(String, String, bool), Spec>;

fn specs(snap: &Snapshot, cfg: &LbConfig) -> Specs {
    let mut specs = Specs::new();
    for r in &cfg.routes {
        let Some((ns, name)) = r.service_key() else { continue };
        let host = normalize_host(&r.host).into_owned();
        specs.entry((host, r.path.clone(), false)).or_insert_with(|| Spec {
            source: "config".into(),
            namespace: ns.to_owned(),
            service: name.to_owned(),
            port: r.port.map_or(PortSel::First, PortSel::Number),
            clusters: None,
        });
    }
    for (kind, ing) in snap.http_sources() {
        let source: Arc<str> = match kind {
            HttpKind::Ingress => format!("ingress {}", ing.key).into(),
            HttpKind::HttpRoute => format!("httproute {}", ing.key).into(),
        };
        for shard in &ing.shards {
            for p in &shard.paths {
                add_ingress_path(&mut specs, &source, &ing.key, &shard.cluster.name, p);
            }
        }
    }
    specs
}

/// One Ingress (or HTTPRoute) path of one cluster. Another object claiming the same host
/// and path for a different service loses; the same target in another cluster adds that
/// cluster.
fn add_ingress_path(specs: &mut Specs, source: &Arc<str>, key: &ObjectKey, cluster: &Arc<str>, p: &IngressPath) {
    if p.host.is_empty() || p.service.is_empty() {
        return;
    }
    let port = match (&p.port_name, p.port) {
        (Some(n), _) => PortSel::Name(n.clone()),
        (None, 0) => PortSel::First,
        (None, n) => PortSel::Number(n),
    };
    let path = if p.path.is_empty() { "/".to_owned() } else { p.path.to_string() };
    let exact = &*p.path_type == "Exact";
    let spec = specs.entry((normalize_host(&p.host).into_owned(), path, exact)).or_insert_with(|| Spec {
        source: source.clone(),
        namespace: key.namespace.to_string(),
        service: p.service.to_string(),
        port: port.clone(),
        clusters: Some(BTreeSet::new()),
    });
    if spec.namespace == *key.namespace
        && spec.service == *p.service
        && spec.port == port
        && let Some(c) = spec.clusters.as_mut()
    {
        c.insert(cluster.clone());
    }
}

/// Builds route indexes; owns the endpoint state that must survive rebuilds.
pub(crate) struct Builder {
    endpoints: HashMap<SocketAddr, Arc<Endpoint>>,
    budgets: HashMap<Arc<str>, Arc<RetryBudget>>,
    route_stats: HashMap<String, RouteStats>,
    metrics: Metrics,
}

impl Builder {
    pub(crate) fn new(metrics: Metrics) -> Self {
        Self { endpoints: HashMap::new(), budgets: HashMap::new(), route_stats: HashMap::new(), metrics }
    }

    pub(crate) fn build(&mut self, snap: &Snapshot, cfg: &LbConfig) -> RouteIndex {
        let specs = specs(snap, cfg);
        let region = cfg.region.as_deref();
        let mut upstreams: HashMap<String, Arc<Upstream>> = HashMap::new();
        let mut used = BTreeSet::new();
        let mut index = RouteIndex::default();
        for ((host, path, exact), spec) in specs {
            let up_key = spec.upstream_key();
            let upstream = match upstreams.get(&up_key) {
                Some(u) => u.clone(),
                None => {
                    let u = Arc::new(self.upstream(snap, &spec, region, &mut used));
                    upstreams.insert(up_key, u.clone());
                    u
                }
            };
            index.services.insert(ObjectKey::new(&spec.namespace, &spec.service));
            let route_name = format!("{host}{path}");
            let stats =
                self.route_stats.entry(route_name.clone()).or_insert_with(|| self.metrics.route(&route_name)).clone();
            let route =
                Route { host: host.as_str().into(), path: path.into(), exact, source: spec.source, upstream, stats };
            index.insert(host, Arc::new(route));
        }
        index.sort();
        // Forget backends no route uses any more; their state would never be read.
        self.endpoints.retain(|a, _| used.contains(a));
        self.budgets.retain(|n, _| upstreams.values().any(|u| u.name == *n));
        index
    }

    fn upstream(
        &mut self,
        snap: &Snapshot,
        spec: &Spec,
        region: Option<&str>,
        used: &mut BTreeSet<SocketAddr>,
    ) -> Upstream {
        let name: Arc<str> = format!("{}/{}{}", spec.namespace, spec.service, spec.port.label()).into();
        let budget = self.budgets.entry(name.clone()).or_default().clone();
        let shards: Vec<Arc<Shard>> = snap
            .service(&spec.namespace, &spec.service)
            .map(|svc| {
                svc.shards
                    .iter()
                    .filter(|s| spec.clusters.as_ref().is_none_or(|c| c.contains(&s.cluster.name)))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        let usable: Vec<*const Shard> = snap.usable_shards(&shards, false).into_iter().map(Arc::as_ptr).collect();
        let refs: Vec<&Shard> = shards.iter().map(|s| &**s).collect();
        let mut levels = Vec::new();
        for (level_name, members) in priority_levels(region, &refs) {
            let mut level = Level { name: level_name, members: Vec::new() };
            for shard in members {
                let Some(port) = spec.port.resolve(shard) else { continue };
                let healthy = usable.contains(&(shard as *const Shard));
                for ip in &shard.addresses {
                    let addr = SocketAddr::new(*ip, port);
                    let Some(endpoint) = self.endpoint(addr) else { continue };
                    used.insert(addr);
                    level.members.push(Member { endpoint, cluster: shard.cluster.name.clone(), healthy });
                }
            }
            if !level.members.is_empty() {
                levels.push(level);
            }
        }
        Upstream { name, levels, budget }
    }

    fn endpoint(&mut self, addr: SocketAddr) -> Option<Arc<Endpoint>> {
        if let Some(e) = self.endpoints.get(&addr) {
            return Some(e.clone());
        }
        let e = Arc::new(Endpoint::new(addr, self.metrics.backend(&addr.to_string()))?);
        self.endpoints.insert(addr, e.clone());
        Some(e)
    }
}

/// Groups a service's shards into priority levels, best first: this instance's region,
/// then the other regions in the order of their first cluster in the config (the DNS
/// failover order); a cluster without a region is a level of its own. This is the seam
/// for a ranking module (geo distance, measured RTT) to order levels differently.
pub(crate) fn priority_levels<'a>(local_region: Option<&str>, shards: &[&'a Shard]) -> Vec<(Arc<str>, Vec<&'a Shard>)> {
    let mut groups: Vec<(bool, usize, Arc<str>, Vec<&'a Shard>)> = Vec::new();
    for s in shards {
        let name = s.cluster.region.clone().unwrap_or_else(|| s.cluster.name.clone());
        let local = local_region.is_some() && s.cluster.region.as_deref() == local_region;
        match groups.iter_mut().find(|g| g.2 == name) {
            Some(g) => {
                g.1 = g.1.min(s.cluster.order);
                g.3.push(s);
            }
            None => groups.push((!local, s.cluster.order, name, vec![s])),
        }
    }
    groups.sort_by_key(|g| (g.0, g.1));
    groups.into_iter().map(|(_, _, name, shards)| (name, shards)).collect()
}

#[cfg(test)]
mod tests;
