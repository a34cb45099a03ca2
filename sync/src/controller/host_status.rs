//! What a reconcile writes back on the control-plane object: its `.status` rolled up
//! from the members' ([`crate::rollup`]) and the `meridian.io/sync-status` annotation.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::{debug, info};

use super::Shared;
use crate::events::Severity;
use crate::kinds;
use crate::queue::ObjKey;
use crate::rollup::{self, StatusWrite};
use crate::status::ObjectStatus;
use crate::template::{self, STATUS_ANNOTATION};

/// What a status roll-up needs from a reconcile.
pub(super) struct RollUp<'a> {
    pub(super) key: &'a ObjKey,
    /// The control-plane object, as read at the start of the reconcile.
    pub(super) obj: &'a Value,
    pub(super) retain_replicas: bool,
    /// The members' managed copies, as last seen.
    pub(super) copies: &'a [Value],
}

/// Rolls the members' status up into `status.aggregated`, for the annotation, and into
/// the control-plane object's `.status` through the status subresource, unless it shows
/// the roll-up already, or something else replaced the roll-up last written (reported
/// once: a workload controller in the control plane would answer every write with one of
/// its own).
pub(super) async fn roll_up_status(
    sh: &Shared,
    host_api: &Api<DynamicObject>,
    r: &RollUp<'_>,
    previous: &ObjectStatus,
    status: &mut ObjectStatus,
) {
    let rolled = roll_up(r, previous, status);
    let (key, obj) = (r.key, r.obj);
    match rollup::decide(&rolled, obj.get("status"), status.written_status.as_ref()) {
        StatusWrite::Shown => shown(status, &rolled),
        StatusWrite::Write => {
            let patch = Patch::Merge(json!({"status": rolled}));
            match sh.host("status", key, host_api.patch_status(&key.name, &PatchParams::default(), &patch)).await {
                Ok(_) => shown(status, &rolled),
                Err(e) => debug!(object = %key, error = %e, "cannot write the rolled-up status"),
            }
        }
        StatusWrite::Overwritten if !status.status_overwritten => {
            status.status_overwritten = true;
            info!(object = %key, "the control plane's status of this object was replaced by another writer; not writing it again");
            let msg = format!(
                "another writer replaced the status Meridian rolled up from the member clusters (does a workload \
                 controller run in the control plane?); the roll-up stays in the {STATUS_ANNOTATION} annotation"
            );
            sh.event(obj, Severity::Warning, "StatusOverwritten", &msg).await;
        }
        StatusWrite::Overwritten => {}
    }
    status.aggregated = Some(rolled);
}

/// The roll-up of the members' copies, against the replicas wanted and placed.
fn roll_up(r: &RollUp<'_>, previous: &ObjectStatus, status: &ObjectStatus) -> Value {
    let spec_replicas = |v: &Value| v.pointer("/spec/replicas").and_then(Value::as_i64);
    let (desired, placed) = if r.retain_replicas {
        // The members' autoscalers decide: the federation wants what they ask for.
        let wanted = r.copies.iter().filter_map(spec_replicas).sum();
        (wanted, wanted)
    } else {
        (spec_replicas(r.obj).unwrap_or(1), status.clusters.values().filter_map(|c| c.replicas).sum())
    };
    let members: Vec<Value> = r.copies.iter().filter_map(|c| c.get("status").cloned()).collect();
    let now = serde_json::to_value(Time(Timestamp::now())).ok().and_then(|v| v.as_str().map(str::to_owned));
    rollup::roll_up(&rollup::Input {
        kind: kinds::get(r.key.kind),
        obj: r.obj,
        members: &members,
        desired,
        placed,
        previous: previous.aggregated.as_ref().or(r.obj.get("status")),
        now: now.as_deref().unwrap_or_default(),
    })
}

/// The control-plane object's `.status` shows `rolled`.
fn shown(status: &mut ObjectStatus, rolled: &Value) {
    status.written_status = Some(rolled.clone());
    status.status_overwritten = false;
}

/// Writes the `meridian.io/sync-status` annotation when it changed.
pub(super) async fn write_status_annotation(
    sh: &Shared,
    host_api: &Api<DynamicObject>,
    key: &ObjKey,
    obj: &Value,
    s: &ObjectStatus,
) {
    let text = s.annotation().to_string();
    if template::annotation(obj, STATUS_ANNOTATION) == Some(text.as_str()) {
        return;
    }
    let patch = Patch::Merge(json!({"metadata": {"annotations": {STATUS_ANNOTATION: text}}}));
    if let Err(e) = sh.host("status", key, host_api.patch(&key.name, &PatchParams::default(), &patch)).await {
        debug!(object = %key, error = %e, "cannot write the status annotation");
    }
}
