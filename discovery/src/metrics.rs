//! Discovery's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::table::{ClusterState, Snapshot};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    cluster: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RestartLabels {
    cluster: String,
    kind: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    cluster: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// Handles to discovery's metrics; cheap to clone.
#[derive(Clone, Default)]
pub struct Metrics {
    events: Family<KindLabels, Counter>,
    errors: Family<KindLabels, Counter>,
    restarts: Family<RestartLabels, Counter>,
    ready: Family<ClusterLabels, Gauge>,
    services: Gauge,
    shards: Gauge,
    ingresses: Gauge,
    version: Gauge,
    lb_name_lookups: Family<ResultLabels, Counter>,
    lb_names: Gauge,
}

impl Metrics {
    pub fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("meridian_watch_events", "Watch events received, by cluster and kind", m.events.clone());
        registry.register(
            "meridian_watch_errors",
            "Failed watch requests (retried with backoff), by cluster and kind",
            m.errors.clone(),
        );
        registry.register(
            "meridian_watch_restarts",
            "Watches restarted with a relist: one gone silent, or all when the cluster came back",
            m.restarts.clone(),
        );
        registry.register(
            "meridian_cluster_ready",
            "1 when the cluster's API is Ready, 0 when Offline or Pending",
            m.ready.clone(),
        );
        registry.register("meridian_table_services", "Federated services in the table", m.services.clone());
        registry.register("meridian_table_shards", "Service shards in the table, over all clusters", m.shards.clone());
        registry.register("meridian_table_ingresses", "Federated ingresses in the table", m.ingresses.clone());
        registry.register("meridian_table_version", "Version of the published table snapshot", m.version.clone());
        registry.register(
            "meridian_lb_name_lookups",
            "Lookups of hostname-only load balancers' names, by result (ok, nxdomain, nodata, failed)",
            m.lb_name_lookups.clone(),
        );
        registry.register(
            "meridian_lb_names",
            "Load-balancer hostnames being resolved (each once, however many Services use it)",
            m.lb_names.clone(),
        );
        m
    }

    pub(crate) fn watch_event(&self, cluster: &str, kind: &str) {
        self.events.get_or_create(&KindLabels { cluster: cluster.to_owned(), kind: kind.to_owned() }).inc();
    }

    /// A cluster's watches restarted (`reason`: `silent` for one watch that went quiet,
    /// `ready` for all of them when the cluster came back).
    pub(crate) fn watch_restart(&self, cluster: &str, kind: &str, reason: &'static str) {
        let labels = RestartLabels { cluster: cluster.to_owned(), kind: kind.to_owned(), reason: reason.to_owned() };
        self.restarts.get_or_create(&labels).inc();
    }

    pub(crate) fn watch_error(&self, cluster: &str, kind: &str) {
        self.errors.get_or_create(&KindLabels { cluster: cluster.to_owned(), kind: kind.to_owned() }).inc();
    }

    pub(crate) fn cluster_state(&self, cluster: &str, state: &ClusterState) {
        let v = i64::from(matches!(state, ClusterState::Ready));
        self.ready.get_or_create(&ClusterLabels { cluster: cluster.to_owned() }).set(v);
    }

    pub(crate) fn table(&self, snap: &Snapshot) {
        let as_i64 = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.services.set(as_i64(snap.services.len()));
        self.shards.set(as_i64(snap.shard_count()));
        self.ingresses.set(as_i64(snap.ingresses.len()));
        self.version.set(i64::try_from(snap.version).unwrap_or(i64::MAX));
    }

    /// One lookup of a load balancer's hostname (A and AAAA) ended with `result`.
    pub(crate) fn lb_name_lookup(&self, result: &'static str) {
        self.lb_name_lookups.get_or_create(&ResultLabels { result }).inc();
    }

    /// How many load-balancer hostnames are being resolved.
    pub(crate) fn lb_names(&self, n: usize) {
        self.lb_names.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Lookups of load-balancer hostnames that ended with `result` so far (tests, status).
    pub fn lb_name_lookups(&self, result: &'static str) -> u64 {
        self.lb_name_lookups.get_or_create(&ResultLabels { result }).get()
    }

    pub(crate) fn forget_cluster(&self, cluster: &str) {
        self.ready.remove(&ClusterLabels { cluster: cluster.to_owned() });
    }
}
