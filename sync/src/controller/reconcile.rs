//! The reconcile of one control-plane object: read it, hand it to [`super::deletion`]
//! when it is being deleted, else make sure it carries the finalizer, bring every member
//! in line with it, and write back what happened (Events, status, sync-status).

use kube::api::{Api, DynamicObject};
use meridian_discovery::table::ClusterState;
use serde_json::Value;
use tracing::{debug, warn};

use super::deletion;
use super::host_status::{RollUp, roll_up_status, write_status_annotation};
use super::member::{Desired, MemberOutcome, Target, read_member, sync_member};
use super::replicas::plan_replicas;
use super::requests::patch_finalizers;
use super::shared::to_value;
use super::worker::Next;
use super::{Settings, Shared};
use crate::events::Severity;
use crate::kinds::{self, Workload};
use crate::queue::ObjKey;
use crate::rollup;
use crate::status::{ClusterStatus, ObjectStatus, State};
use crate::template::{self, FINALIZER, Steering};

/// Brings one control-plane object's members in line with it.
pub(super) async fn reconcile(sh: &Shared, key: &ObjKey) -> Next {
    let settings = sh.settings();
    if settings.excluded(key) {
        return Next::Done;
    }
    let kind = kinds::get(key.kind);
    let host_api = sh.host_api(kind, &key.namespace);
    let obj = match read_object(sh, key, &host_api).await {
        Ok(obj) => obj,
        Err(next) => return next,
    };
    if !sh.federates(key.kind) {
        // Its type was taken out of the configuration: let go of it.
        if !template::finalizers(&obj).iter().any(|f| f == FINALIZER) {
            sh.forget(key);
            return Next::Done;
        }
        return deletion::release(sh, key, &host_api, &obj).await;
    }
    if template::meta_str(&obj, "deletionTimestamp").is_some() {
        return deletion::delete(sh, &settings, key, kind, &obj).await;
    }
    sh.not_deleting(key);
    let obj = match ensure_finalizer(sh, key, &host_api, obj).await {
        Ok(obj) => obj,
        Err(next) => return next,
    };
    let previous = sh.previous_status(key);
    let steering = match template::steering(&obj) {
        Ok(s) => s,
        Err(e) => return invalid_steering(sh, &host_api, key, &obj, previous, &e.to_string()).await,
    };
    let targets = targets(sh, &settings, &steering);
    let desired = Desired {
        settings: &settings,
        key,
        kind,
        obj: &obj,
        stripped: template::strip(kind, &obj),
        uid: template::meta_str(&obj, "uid").unwrap_or_default().to_owned(),
        steering: &steering,
    };
    let outcomes = sync_members(sh, &desired, &targets).await;
    let mut report = collect(sh, &desired, &previous, &targets, outcomes).await;
    if rollup::applies(kind) {
        let rolled = RollUp { key, obj: &obj, retain_replicas: steering.retain_replicas, copies: &report.copies };
        roll_up_status(sh, &host_api, &rolled, &previous, &mut report.status).await;
    }
    write_status_annotation(sh, &host_api, key, &obj, &report.status).await;
    sh.set_status(key, report.status);
    if report.retry { Next::Retry } else { Next::Done }
}

/// Reads the object from the control plane. `Err`: what the worker does instead (done
/// when it is gone, which forgets it; retry when it cannot be read).
async fn read_object(sh: &Shared, key: &ObjKey, host_api: &Api<DynamicObject>) -> Result<Value, Next> {
    match sh.host("get", key, host_api.get_opt(&key.name)).await {
        Ok(Some(o)) => Ok(to_value(&o)),
        Ok(None) => {
            sh.forget(key);
            Err(Next::Done)
        }
        Err(e) => {
            warn!(object = %key, error = %e, "cannot read the control-plane object");
            Err(Next::Retry)
        }
    }
}

/// Adds Meridian's finalizer when the object lacks it, so no deletion is missed; the
/// object as the control plane now has it.
async fn ensure_finalizer(sh: &Shared, key: &ObjKey, host_api: &Api<DynamicObject>, obj: Value) -> Result<Value, Next> {
    let mut fins = template::finalizers(&obj);
    if fins.iter().any(|f| f == FINALIZER) {
        return Ok(obj);
    }
    fins.push(FINALIZER.to_owned());
    sh.host("finalizer", key, patch_finalizers(host_api, &key.name, &obj, fins)).await.map_err(|e| {
        debug!(object = %key, error = %e, "cannot add the finalizer; retrying");
        Next::Retry
    })
}

/// A malformed steering annotation: nothing is propagated, the object's status says why
/// (with a Warning Event the first time). Fixing the annotation is a change that queues
/// the object again.
async fn invalid_steering(
    sh: &Shared,
    host_api: &Api<DynamicObject>,
    key: &ObjKey,
    obj: &Value,
    previous: ObjectStatus,
    message: &str,
) -> Next {
    if previous.error.as_deref() != Some(message) {
        warn!(object = %key, error = %message, "malformed annotation; object not propagated");
        sh.event(obj, Severity::Warning, "InvalidAnnotation", message).await;
    }
    let status = ObjectStatus { error: Some(message.to_owned()), ..previous };
    write_status_annotation(sh, host_api, key, obj, &status).await;
    sh.set_status(key, status);
    Next::Done
}

/// Every member, whether the object is placed there and whether it is Ready. Readiness
/// is read once from the table's current snapshot: the reconcile wants the state now,
/// and a change later queues the object again.
fn targets(sh: &Shared, settings: &Settings, steering: &Steering) -> Vec<Target> {
    let snap = sh.discovery.table().snapshot();
    sh.members()
        .into_iter()
        .map(|(name, m)| {
            let labels = settings.labels.get(&name).unwrap_or(&m.meta.labels);
            Target {
                placed: steering.placement.selects(&name, labels),
                ready: snap.clusters.get(name.as_str()).is_some_and(|c| c.state == ClusterState::Ready),
                client: m.client,
                name,
            }
        })
        .collect()
}

/// Reads and writes every member concurrently; the outcomes in the order of `targets`.
async fn sync_members(sh: &Shared, d: &Desired<'_>, targets: &[Target]) -> Vec<MemberOutcome> {
    let (key, kind) = (d.key, d.kind);
    if kind.workload == Workload::Replicated && !d.steering.retain_replicas {
        // The replica plan needs every member's copy (or its absence) before any write: a
        // member that has just gone silent delays this object's writes by at most one
        // request timeout (one already known to be silent, not at all).
        let lives = futures::future::join_all(targets.iter().map(|t| read_member(sh, key, kind, t))).await;
        let plan = plan_replicas(d, targets, &lives);
        let writes =
            targets.iter().zip(lives).map(|(t, live)| sync_member(sh, d, t, live, Some(plan.for_cluster(&t.name))));
        futures::future::join_all(writes).await
    } else {
        // Each member is read and written on its own: no member's write waits for
        // another member's answer.
        futures::future::join_all(targets.iter().map(|t| async {
            let live = read_member(sh, key, kind, t).await;
            sync_member(sh, d, t, live, None).await
        }))
        .await
    }
}

/// The members' outcomes gathered for the object.
struct Report {
    status: ObjectStatus,
    /// The members' managed copies, for the status roll-up.
    copies: Vec<Value>,
    /// Some member failed: the object is retried after a backoff.
    retry: bool,
}

/// Gathers the outcomes into the object's status, with an Event for each member whose
/// state for the object changed to anything but Synced.
async fn collect(
    sh: &Shared,
    d: &Desired<'_>,
    previous: &ObjectStatus,
    targets: &[Target],
    outcomes: Vec<MemberOutcome>,
) -> Report {
    let status = ObjectStatus {
        written_status: previous.written_status.clone(),
        status_overwritten: previous.status_overwritten,
        ..ObjectStatus::default()
    };
    let mut report = Report { status, copies: Vec::new(), retry: false };
    for (t, outcome) in targets.iter().zip(outcomes) {
        report.retry |= outcome.retry;
        if let Some(mut s) = outcome.status {
            announce(sh, d.obj, &t.name, &s, previous.clusters.get(&t.name), outcome.existed).await;
            if rollup::applies(d.kind) {
                let counts = outcome.copy.as_ref().and_then(|c| c.get("status"));
                s.status = counts.map(|st| rollup::member_counts(d.kind, st));
            }
            report.status.clusters.insert(t.name.clone(), s);
        }
        report.copies.extend(outcome.copy);
    }
    report
}

/// Records an Event when a member's state for the object changed (state or message) to
/// anything but Synced; Synced reports its writes instead.
async fn announce(
    sh: &Shared,
    obj: &Value,
    cluster: &str,
    s: &ClusterStatus,
    before: Option<&ClusterStatus>,
    existed: bool,
) {
    let changed = before.is_none_or(|b| b.state != s.state || b.message != s.message);
    if !changed || s.state == State::Synced {
        return;
    }
    let severity = if s.state == State::ClusterNotReady { Severity::Normal } else { Severity::Warning };
    let reason = s.state.reason(existed);
    let msg = format!("cluster {cluster}: {}", s.message.as_deref().unwrap_or(reason));
    sh.event(obj, severity, reason, &msg).await;
}
