//! Per-object, per-cluster propagation state: what the control-plane annotation
//! `meridian.io/sync-status`, `meridian status` and the admin API show.

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::Serialize;
use serde_json::{Value, json};

use crate::queue::ObjKey;

/// Where one object stands in one member cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum State {
    /// The member's copy matches the template (with this cluster's replicas and overrides).
    Synced,
    /// An object of that name exists in the member and Meridian does not manage it; it is
    /// left alone (unless `[sync] adopt = true`).
    AlreadyExists,
    /// The cluster is placed but not Ready (Offline or Pending); nothing is changed there.
    ClusterNotReady,
    /// The cluster is placed and Ready by discovery's probe, but a request of sync's got
    /// no answer within `[sync] request_timeout`: it is skipped (nothing is changed there)
    /// until a probe gets an answer, and then every object is reconciled again.
    NotAnswering,
    /// The member rejected the write or could not be reached; retried with backoff.
    ApplyFailed,
    /// This cluster's override does not apply to the template.
    InvalidOverride,
    /// A cascading delete of the control plane's Namespace removed it here and the
    /// member's namespace controller is still deleting its contents; the control plane's
    /// Namespace waits (at most the deletion timeout).
    Terminating,
}

impl State {
    /// Event reason when an object enters this state (Synced reports its writes instead).
    pub(crate) fn reason(self, existed: bool) -> &'static str {
        match self {
            State::Synced => "Synced",
            State::AlreadyExists => "AlreadyExists",
            State::ClusterNotReady => "ClusterNotReady",
            State::NotAnswering => "ClusterNotAnswering",
            State::ApplyFailed if existed => "FailedUpdateInCluster",
            State::ApplyFailed => "FailedCreateInCluster",
            State::InvalidOverride => "InvalidOverride",
            State::Terminating => "NamespaceTerminating",
        }
    }
}

/// One cluster's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ClusterStatus {
    pub(crate) state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) message: Option<String>,
    /// Replicas this cluster's copy is given (Deployments and ReplicaSets): the plan's,
    /// or the value an override of `spec.replicas` puts there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) replicas: Option<i64>,
    /// The plan's replicas, only when an override changed them.
    #[serde(rename = "plannedReplicas", skip_serializing_if = "Option::is_none")]
    pub(crate) planned_replicas: Option<i64>,
    /// The copy's own status counts (workloads), which the roll-up sums.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<Value>,
}

/// One control-plane object's entry.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ObjectStatus {
    pub(crate) clusters: BTreeMap<String, ClusterStatus>,
    /// A malformed steering annotation: nothing is propagated until it is fixed.
    pub(crate) error: Option<String>,
    /// The roll-up of the members' status (workloads only; see [`crate::rollup`]).
    pub(crate) aggregated: Option<Value>,
    /// The roll-up last written to the control-plane object's `.status`: written again
    /// only when it changes, so a control plane that also writes `.status` (a stock
    /// cluster's own controllers) does not start a write-for-write loop.
    pub(crate) written_status: Option<Value>,
    /// Something else replaced the written roll-up (reported once by an Event).
    pub(crate) status_overwritten: bool,
}

impl ObjectStatus {
    /// The JSON of the `meridian.io/sync-status` annotation.
    pub(crate) fn annotation(&self) -> Value {
        let mut v = json!({"clusters": self.clusters});
        if let Some(e) = &self.error {
            v["error"] = json!(e);
        }
        if let Some(a) = &self.aggregated {
            let mut a = a.clone();
            // Not the generation: on a real API server an annotation change bumps a
            // Deployment's (apps strategies copy annotations to ReplicaSets), so an
            // annotation naming the generation would change with every write of itself.
            if let Some(m) = a.as_object_mut() {
                m.remove("observedGeneration");
            }
            v["aggregated"] = a;
        }
        v
    }
}

/// A member copy that a deletion had to leave behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leftover {
    pub(crate) object: String,
    pub(crate) cluster: String,
    pub(crate) reason: String,
    pub(crate) at: SystemTime,
}

/// Everything sync knows, for status reports.
#[derive(Debug, Default)]
pub(crate) struct Book {
    pub(crate) objects: BTreeMap<ObjKey, ObjectStatus>,
    pub(crate) leftovers: Vec<Leftover>,
}

impl Book {
    pub(crate) fn to_json(&self) -> Value {
        let objects: Vec<Value> = self
            .objects
            .iter()
            .map(|(k, s)| {
                let mut v = s.annotation();
                let kind = crate::kinds::get(k.kind);
                v["apiVersion"] = json!(kind.api_version());
                v["kind"] = json!(kind.kind);
                v["name"] = json!(k.name);
                if !k.namespace.is_empty() {
                    v["namespace"] = json!(k.namespace);
                }
                v
            })
            .collect();
        let leftovers: Vec<Value> = self
            .leftovers
            .iter()
            .map(|l| {
                let secs = l.at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
                json!({"object": l.object, "cluster": l.cluster, "reason": l.reason, "at_unix": secs})
            })
            .collect();
        json!({"objects": objects, "leftovers": leftovers})
    }
}
