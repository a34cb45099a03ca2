//! The admin HTTP endpoint: `/healthz`, `/readyz`, Prometheus `/metrics`, and the JSON API
//! (`/api/v1/clusters`, `/api/v1/services`, `/api/v1/ingresses`, and one document per
//! running module: `/api/v1/dns`, `/api/v1/lb`, `/api/v1/sync`; `/api/v1/fleet` in a
//! fleet) that `meridian status` reads, `/api/v1/explain` (`explain`), and the status
//! page at `/` with its `/api/v1/changes` (`web`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use meridian_discovery::Discovery;
use meridian_discovery::table::{ClusterState, IngressShard, ProbeState, Shard};
use meridian_fleet::Fleet;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;

/// A module's status document, rendered on request.
pub(crate) type Section = Box<dyn Fn() -> serde_json::Value + Send + Sync>;

/// What the admin endpoint reads from.
pub(crate) struct AdminState {
    pub(crate) discovery: Arc<Discovery>,
    pub(crate) registry: Registry,
    /// `/api/v1/<name>` documents of the modules that run (dns, lb, sync).
    pub(crate) sections: Vec<(&'static str, Section)>,
    /// The proxy's readiness, when it runs: an anycast VIP must be withdrawn while the
    /// proxy has nowhere to send traffic.
    pub(crate) proxy_ready: Option<Box<dyn Fn() -> bool + Send + Sync>>,
    /// This instance's fleet, with `[fleet]`.
    pub(crate) fleet: Option<Fleet>,
    /// The DNS server and the proxy, for `/api/v1/explain`.
    pub(crate) dns: Option<Arc<meridian_dns::server::DnsServer>>,
    pub(crate) proxy: Option<Arc<meridian_lb::Proxy>>,
}

/// Binds the admin listener; the error names the address.
pub(crate) async fn bind(addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr} (admin.listen): {e}"))
}

/// Serves until `shutdown` resolves.
pub(crate) async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let app = Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/clusters", get(clusters))
        .route("/api/v1/services", get(services))
        .route("/api/v1/ingresses", get(ingresses))
        .route("/api/v1/fleet", get(fleet))
        .route("/api/v1/explain", get(crate::explain::handler))
        .route("/api/v1/{section}", get(section))
        .merge(crate::web::router(state.discovery.table()))
        .with_state(state);
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await?;
    Ok(())
}

/// Ready once every member cluster has been probed at least once (Ready or Offline): before
/// that, answers could be missing shards that simply have not been listed yet.
async fn readyz(State(s): State<Arc<AdminState>>) -> Response {
    let snap = s.discovery.table().snapshot();
    let pending: Vec<_> =
        snap.clusters.values().filter(|c| c.state == ClusterState::Pending).map(|c| c.meta.name.to_string()).collect();
    if !pending.is_empty() {
        let msg = format!("not ready: clusters not yet probed: {}\n", pending.join(", "));
        return (StatusCode::SERVICE_UNAVAILABLE, msg).into_response();
    }
    if let Some(ready) = &s.proxy_ready
        && !ready()
    {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: the proxy has no route with a healthy backend\n")
            .into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

async fn metrics(State(s): State<Arc<AdminState>>) -> Response {
    let mut out = String::new();
    match prometheus_client::encoding::text::encode(&mut out, &s.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], out)
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode metrics: {e}\n")).into_response(),
    }
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[derive(Serialize)]
struct ClusterJson {
    name: String,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    offline_since: Option<String>,
    region: Option<String>,
    zone: Option<String>,
    location: Option<[f64; 2]>,
    weight: u32,
    labels: std::collections::BTreeMap<String, String>,
    watch_events: u64,
    service_shards: usize,
}

async fn clusters(State(s): State<Arc<AdminState>>) -> Json<Vec<ClusterJson>> {
    let snap = s.discovery.table().snapshot();
    let mut out: Vec<ClusterJson> = snap
        .clusters
        .values()
        .map(|c| {
            let (reason, since) = match &c.state {
                ClusterState::Offline { reason, since } => (Some(reason.clone()), Some(rfc3339(*since))),
                _ => (None, None),
            };
            let name = c.meta.name.to_string();
            ClusterJson {
                service_shards: snap.services.values().filter(|v| v.shard(&name).is_some()).count(),
                watch_events: s.discovery.events(&name),
                name,
                state: c.state.name(),
                reason,
                offline_since: since,
                region: c.meta.region.as_deref().map(str::to_owned),
                zone: c.meta.zone.as_deref().map(str::to_owned),
                location: c.meta.location.map(|l| [l.lat, l.lon]),
                weight: c.meta.weight,
                labels: c.meta.labels.clone(),
            }
        })
        .collect();
    out.sort_by_key(|c| snap.clusters.get(c.name.as_str()).map_or(usize::MAX, |e| e.meta.order));
    Json(out)
}

#[derive(Serialize)]
struct ShardJson {
    cluster: String,
    region: Option<String>,
    zone: Option<String>,
    addresses: Vec<String>,
    ports: Vec<String>,
    ready_endpoints: u32,
    total_endpoints: u32,
    healthy: bool,
    stale: bool,
    probe: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    rtt_ms: Option<f64>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<String, String>,
}

fn addresses(ips: &[std::net::IpAddr], names: &[Arc<str>]) -> Vec<String> {
    ips.iter().map(ToString::to_string).chain(names.iter().map(|n| n.to_string())).collect()
}

impl From<&Shard> for ShardJson {
    fn from(s: &Shard) -> Self {
        ShardJson {
            cluster: s.cluster.name.to_string(),
            region: s.cluster.region.as_deref().map(str::to_owned),
            zone: s.cluster.zone.as_deref().map(str::to_owned),
            addresses: addresses(&s.addresses, &s.hostnames),
            ports: s
                .ports
                .iter()
                .map(|p| match &p.name {
                    Some(n) => format!("{n}:{}/{}", p.port, p.protocol.as_str()),
                    None => format!("{}/{}", p.port, p.protocol.as_str()),
                })
                .collect(),
            ready_endpoints: s.ready_endpoints,
            total_endpoints: s.total_endpoints,
            healthy: s.is_healthy(),
            stale: s.stale,
            probe: match s.probe.state {
                ProbeState::Unknown => "none",
                ProbeState::Up => "up",
                ProbeState::Down => "down",
            },
            rtt_ms: s.probe.rtt.map(|d| d.as_secs_f64() * 1000.0),
            annotations: s.annotations.clone(),
        }
    }
}

#[derive(Serialize)]
struct ServiceJson {
    namespace: String,
    name: String,
    shards: Vec<ShardJson>,
}

async fn services(State(s): State<Arc<AdminState>>) -> Json<Vec<ServiceJson>> {
    let snap = s.discovery.table().snapshot();
    Json(
        snap.services
            .values()
            .map(|svc| ServiceJson {
                namespace: svc.key.namespace.to_string(),
                name: svc.key.name.to_string(),
                shards: svc.shards.iter().map(|s| ShardJson::from(&**s)).collect(),
            })
            .collect(),
    )
}

#[derive(Serialize)]
struct IngressShardJson {
    cluster: String,
    addresses: Vec<String>,
    rules: Vec<String>,
    stale: bool,
}

impl From<&IngressShard> for IngressShardJson {
    fn from(s: &IngressShard) -> Self {
        IngressShardJson {
            cluster: s.cluster.name.to_string(),
            addresses: addresses(&s.addresses, &s.hostnames),
            rules: s
                .paths
                .iter()
                .map(|p| {
                    let host = if p.host.is_empty() { "*" } else { &p.host };
                    format!(
                        "{host}{} -> {}:{}",
                        p.path,
                        p.service,
                        p.port_name.as_deref().map_or(p.port.to_string(), str::to_owned)
                    )
                })
                .collect(),
            stale: s.stale,
        }
    }
}

#[derive(Serialize)]
struct IngressJson {
    /// `Ingress` or `HTTPRoute` (Gateway API): both route hosts, and may share a name.
    kind: &'static str,
    namespace: String,
    name: String,
    hosts: Vec<String>,
    shards: Vec<IngressShardJson>,
}

async fn ingresses(State(s): State<Arc<AdminState>>) -> Json<Vec<IngressJson>> {
    let snap = s.discovery.table().snapshot();
    Json(
        snap.http_sources()
            .map(|(kind, ing)| IngressJson {
                kind: kind.as_str(),
                namespace: ing.key.namespace.to_string(),
                name: ing.key.name.to_string(),
                hosts: ing.hosts().iter().map(|h| h.to_string()).collect(),
                shards: ing.shards.iter().map(|s| IngressShardJson::from(&**s)).collect(),
            })
            .collect(),
    )
}

async fn section(State(s): State<Arc<AdminState>>, Path(name): Path<String>) -> Response {
    match s.sections.iter().find(|(n, _)| *n == name) {
        Some((_, f)) => Json(f()).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no module {name:?} is running\n")).into_response(),
    }
}

#[derive(serde::Deserialize)]
struct FleetQuery {
    /// `IP:PORT` of a shard address: adds its verdict and every instance's sighting.
    addr: Option<String>,
}

pub(crate) fn json_error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// `fleet.status()`, the verdicts behind its disagreements, and with `?addr=` that
/// address's verdict.
async fn fleet(State(s): State<Arc<AdminState>>, Query(q): Query<FleetQuery>) -> Response {
    let Some(fleet) = &s.fleet else {
        return json_error(StatusCode::NOT_FOUND, "this instance is in no fleet (no [fleet] section)".into());
    };
    let addr = match q.addr.as_deref().map(str::parse::<SocketAddr>) {
        None => None,
        Some(Ok(a)) => Some(a),
        Some(Err(e)) => return json_error(StatusCode::BAD_REQUEST, format!("addr must be IP:PORT: {e}")),
    };
    let status = fleet.status();
    let disagreeing: Vec<_> = status.disagreeing.iter().map(|a| fleet.verdict(*a)).collect();
    let mut doc = match serde_json::to_value(&status) {
        Ok(v) => v,
        Err(e) => return json_error(StatusCode::INTERNAL_SERVER_ERROR, format!("cannot encode the status: {e}")),
    };
    doc["disagreeing_verdicts"] = serde_json::to_value(disagreeing).unwrap_or_default();
    if let Some(addr) = addr {
        doc["verdict"] = serde_json::to_value(fleet.verdict(addr)).unwrap_or_default();
    }
    Json(doc).into_response()
}
