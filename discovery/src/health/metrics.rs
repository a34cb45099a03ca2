//! The health checker's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::state_name;
use crate::table::ProbeState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: String,
}

/// Handles to the checker's metrics; cheap to clone.
#[derive(Clone, Default)]
pub(super) struct Metrics {
    probes: Family<ResultLabels, Counter>,
    transitions: Family<StateLabels, Counter>,
    shards: Family<StateLabels, Gauge>,
    pub(super) targets: Gauge,
    pub(super) in_flight: Gauge,
    pub(super) problems: Gauge,
}

impl Metrics {
    pub(super) fn register(registry: &mut Registry) -> Self {
        let m = Self::default();
        registry.register("meridian_health_probes", "Health probes run, by result (pass, fail)", m.probes.clone());
        registry.register(
            "meridian_health_transitions",
            "Shard health changes, by new state (up, down)",
            m.transitions.clone(),
        );
        registry.register("meridian_health_shards", "Probed shards, by state (up, down, unknown)", m.shards.clone());
        registry.register("meridian_health_targets", "Addresses being probed", m.targets.clone());
        registry.register("meridian_health_in_flight", "Probes in flight", m.in_flight.clone());
        registry.register(
            "meridian_health_annotation_problems",
            "Malformed meridian.io/health-check annotations (the default check applies)",
            m.problems.clone(),
        );
        m
    }

    /// Counts one probe result.
    pub(super) fn probe(&self, passed: bool) {
        let result = if passed { "pass" } else { "fail" };
        self.probes.get_or_create(&ResultLabels { result: result.into() }).inc();
    }

    /// Moves `delta` shards into (or out of) state `s`.
    pub(super) fn shard_state(&self, s: ProbeState, delta: i64) {
        self.shards.get_or_create(&StateLabels { state: state_name(s).into() }).inc_by(delta);
    }

    /// Counts a shard turning Up or Down.
    pub(super) fn transition(&self, to: ProbeState) {
        self.transitions.get_or_create(&StateLabels { state: state_name(to).into() }).inc();
    }
}
