//! Sync's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WriteLabels {
    cluster: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    cluster: String,
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SkipLabels {
    cluster: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

/// Handles to sync's metrics; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct Metrics {
    leader: Gauge,
    reconciles: Family<ResultLabels, Counter>,
    writes: Family<WriteLabels, Counter>,
    objects: Gauge,
    timeouts: Family<RequestLabels, Counter>,
    skips: Family<SkipLabels, Counter>,
}

impl Metrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("meridian_sync_leader", "1 while this replica holds the sync Lease", m.leader.clone());
        registry.register(
            "meridian_sync_reconciles",
            "Reconciles of control-plane objects, by result (ok, retry)",
            m.reconciles.clone(),
        );
        registry.register(
            "meridian_sync_member_writes",
            "Writes to member clusters, by cluster and action (create, update, delete, orphan, failed)",
            m.writes.clone(),
        );
        registry.register("meridian_sync_objects", "Federated objects with a known status", m.objects.clone());
        registry.register(
            "meridian_sync_request_timeouts",
            "Requests to a member or the control plane that got no answer within [sync] request_timeout, by cluster and operation",
            m.timeouts.clone(),
        );
        registry.register(
            "meridian_sync_member_skips",
            "Members left out of an object's reconcile or deletion, by cluster and reason (not_ready: discovery has it Offline or Pending; not_answering: a request timed out and no probe has been answered since)",
            m.skips.clone(),
        );
        m
    }

    pub(crate) fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub(crate) fn reconciled(&self, ok: bool) {
        self.reconciles.get_or_create(&ResultLabels { result: if ok { "ok" } else { "retry" }.into() }).inc();
    }

    pub(crate) fn write(&self, cluster: &str, action: &str) {
        self.writes.get_or_create(&WriteLabels { cluster: cluster.to_owned(), action: action.to_owned() }).inc();
    }

    pub(crate) fn timed_out(&self, cluster: &str, op: &str) {
        self.timeouts.get_or_create(&RequestLabels { cluster: cluster.to_owned(), op: op.to_owned() }).inc();
    }

    pub(crate) fn skipped(&self, cluster: &str, reason: &str) {
        self.skips.get_or_create(&SkipLabels { cluster: cluster.to_owned(), reason: reason.to_owned() }).inc();
    }

    pub(crate) fn objects(&self, n: usize) {
        self.objects.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
