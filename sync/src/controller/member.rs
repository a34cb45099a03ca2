//! One object's copy in one member: read it, then create, update, leave or remove it.

use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::{info, warn};

use super::requests::{Skip, failed_state};
use super::shared::{api, to_value};
use super::write::MemberWrite;
use super::{Settings, Shared};
use crate::events::Severity;
use crate::gate::RequestError;
use crate::kinds::{self, Builtin, Kind, Workload};
use crate::queue::ObjKey;
use crate::status::{ClusterStatus, State};
use crate::template::{self, FIELD_MANAGER};

/// One member as a reconcile sees it.
pub(super) struct Target {
    pub(super) name: String,
    pub(super) client: Client,
    /// The object's placement selects this cluster.
    pub(super) placed: bool,
    /// Discovery has the cluster Ready.
    pub(super) ready: bool,
}

/// What was found in one member before acting.
pub(super) enum Live {
    Absent,
    Present(Value),
    /// Not read: skipped (`ClusterNotReady`, `NotAnswering`) or the read failed
    /// (`ApplyFailed`, `NotAnswering` after a timeout).
    Unreachable {
        state: State,
        reason: String,
    },
}

/// What one reconcile wants in every member, computed once.
pub(super) struct Desired<'a> {
    pub(super) settings: &'a Settings,
    pub(super) key: &'a ObjKey,
    pub(super) kind: &'a Kind,
    /// The control-plane object.
    pub(super) obj: &'a Value,
    /// Its template: server-set fields and steering annotations removed.
    pub(super) stripped: Value,
    pub(super) uid: String,
    pub(super) steering: &'a template::Steering,
}

/// What happened in one member.
pub(super) struct MemberOutcome {
    /// `None`: the object has no business in this cluster (not placed, nothing there).
    pub(super) status: Option<ClusterStatus>,
    pub(super) retry: bool,
    /// The member had a copy before this reconcile (for event reasons).
    pub(super) existed: bool,
    /// The member's managed copy as last seen (read, or as the apply returned it), for
    /// the status roll-up.
    pub(super) copy: Option<Value>,
}

impl MemberOutcome {
    fn state(state: State, message: Option<String>, replicas: Option<i64>, existed: bool) -> Self {
        Self {
            status: Some(ClusterStatus { state, message, replicas, planned_replicas: None, status: None }),
            retry: state == State::ApplyFailed,
            existed,
            copy: None,
        }
    }

    /// Nothing to report for this cluster.
    fn none(retry: bool, existed: bool) -> Self {
        Self { status: None, retry, existed, copy: None }
    }

    /// Records the plan's replicas when an override gave the copy a different number.
    fn planned(mut self, planned: Option<i64>) -> Self {
        if let Some(s) = &mut self.status
            && s.replicas != planned
        {
            s.planned_replicas = planned;
        }
        self
    }

    fn with_copy(mut self, copy: Value) -> Self {
        self.copy = Some(copy);
        self
    }
}

/// The replicas of one member's copy, for its report.
struct Replicas {
    /// What the copy is given, overrides included (Deployments and ReplicaSets).
    given: Option<i64>,
    /// What the plan said; `None` without a plan.
    planned: Option<i64>,
}

impl Replicas {
    fn report(&self, state: State, message: Option<String>, existed: bool) -> MemberOutcome {
        MemberOutcome::state(state, message, self.given, existed).planned(self.planned)
    }
}

/// Reads `key`'s copy in one member, unless the member is skipped (not Ready, or its
/// gate shut); skips of placed members are logged and counted.
pub(super) async fn read_member(sh: &Shared, key: &ObjKey, kind: &Kind, t: &Target) -> Live {
    if !t.ready {
        if t.placed {
            sh.skipped(&t.name, key, Skip::NotReady, false);
        }
        return Live::Unreachable { state: State::ClusterNotReady, reason: "cluster is not Ready".into() };
    }
    match sh.member(&t.name, "get", key, api(&t.client, kind, &key.namespace).get_opt(&key.name)).await {
        Ok(Some(o)) => Live::Present(to_value(&o)),
        Ok(None) => Live::Absent,
        Err(e) => {
            if t.placed && matches!(e, RequestError::Skipped(_)) {
                sh.skipped(&t.name, key, Skip::NotAnswering, false);
            }
            Live::Unreachable { state: failed_state(&e), reason: e.to_string() }
        }
    }
}

/// Brings one member's copy in line with the template (`replicas` from the plan).
pub(super) async fn sync_member(
    sh: &Shared,
    d: &Desired<'_>,
    t: &Target,
    live: Live,
    replicas: Option<i64>,
) -> MemberOutcome {
    let existing = match live {
        Live::Unreachable { .. } if !t.placed => return MemberOutcome::none(false, false),
        Live::Unreachable { state, reason } => {
            return MemberOutcome::state(state, Some(template::redact(&reason, d.obj)), replicas, false);
        }
        Live::Absent => None,
        Live::Present(v) => Some(v),
    };
    if t.placed {
        place(sh, d, t, existing, replicas).await
    } else {
        remove_unplaced(sh, d, t, existing.as_ref()).await
    }
}

/// A member the object is not placed in: Meridian's copy there is deleted. Namespaces
/// stay: removing one would take everything inside with it; only a cascading delete of
/// the Namespace removes it from members.
async fn remove_unplaced(sh: &Shared, d: &Desired<'_>, t: &Target, existing: Option<&Value>) -> MemberOutcome {
    let managed = existing.is_some_and(template::is_managed);
    if !managed || d.kind.is(Builtin::Namespace) {
        return MemberOutcome::none(false, managed);
    }
    let member_api = api(&t.client, d.kind, &d.key.namespace);
    let write = MemberWrite::Deleted;
    match sh.member(&t.name, "delete", d.key, member_api.delete(&d.key.name, &DeleteParams::default())).await {
        Ok(_) => sh.wrote(d.obj, &t.name, write, " (no longer placed there)").await,
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            let msg = format!("cluster {}: {}", t.name, template::redact(&e.to_string(), d.obj));
            sh.event(d.obj, Severity::Warning, write.failed_reason(), &msg).await;
            return MemberOutcome::none(true, true);
        }
    }
    MemberOutcome::none(false, true)
}

/// A member the object is placed in: its copy is created or updated, unless it already
/// matches or belongs to someone else.
async fn place(
    sh: &Shared,
    d: &Desired<'_>,
    t: &Target,
    existing: Option<Value>,
    replicas: Option<i64>,
) -> MemberOutcome {
    let existed = existing.is_some();
    let managed = existing.as_ref().is_some_and(|e| template::owned_by(e, &d.uid));
    if existed && !managed && !d.settings.adopt {
        let msg = format!("an object of this name exists in cluster {} and is not managed by Meridian", t.name);
        return MemberOutcome::state(State::AlreadyExists, Some(msg), None, true);
    }
    let overrides = d.steering.overrides.get(&t.name);
    let copy = match template::member_copy(d.kind, &d.stripped, replicas, overrides, &d.uid) {
        Ok(c) => c,
        Err(e) => return MemberOutcome::state(State::InvalidOverride, Some(e.to_string()), replicas, existed),
    };
    let given = if d.kind.workload == Workload::Replicated {
        copy.pointer("/spec/replicas").and_then(Value::as_i64)
    } else {
        None
    };
    let r = Replicas { given, planned: replicas };
    if let Some(live) = existing
        && template::is_subset(&copy, &live)
    {
        return r.report(State::Synced, None, true).with_copy(live);
    }
    if !existed
        && d.kind.namespaced
        && let Err((state, msg)) = ensure_namespace(sh, t, d.key).await
    {
        return r.report(state, Some(msg), false);
    }
    apply(sh, d, t, &copy, existed, &r).await
}

/// Applies the member copy with server-side apply.
async fn apply(sh: &Shared, d: &Desired<'_>, t: &Target, copy: &Value, existed: bool, r: &Replicas) -> MemberOutcome {
    let (key, obj) = (d.key, d.obj);
    let member_api = api(&t.client, d.kind, &key.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    match sh.member(&t.name, "apply", key, member_api.patch(&key.name, &params, &Patch::Apply(copy))).await {
        Ok(applied) => {
            let write = if existed { MemberWrite::Updated } else { MemberWrite::Created };
            let detail = r.given.map(|n| format!(" with {n} replicas")).unwrap_or_default();
            sh.wrote(obj, &t.name, write, &detail).await;
            info!(object = %key, cluster = %t.name, action = write.action(), "propagated");
            r.report(State::Synced, None, existed).with_copy(to_value(&applied))
        }
        // Logged and counted where it timed out (or was skipped).
        Err(e) if e.is_unanswered() => r.report(State::NotAnswering, Some(e.to_string()), existed),
        Err(e) => {
            sh.metrics.write(&t.name, "failed");
            let mut msg = template::redact(&e.to_string(), obj);
            if e.is_not_found() {
                // An apply creates what is missing, and the namespace exists by now: what
                // the member lacks is the type itself.
                msg = format!(
                    "{} {} is not served by this cluster (is its CustomResourceDefinition installed?): {msg}",
                    d.kind.api_version(),
                    d.kind.kind
                );
            }
            warn!(object = %key, cluster = %t.name, error = %msg, "member rejected the object");
            r.report(State::ApplyFailed, Some(msg), existed)
        }
    }
}

/// Creates the namespace in a member when it is missing, as a managed copy of the
/// control plane's Namespace, before a namespaced object (`key`) is created there. On
/// failure, the state and message to report for `key` in this member.
async fn ensure_namespace(sh: &Shared, t: &Target, key: &ObjKey) -> Result<(), (State, String)> {
    let ns = key.namespace.as_str();
    let ns_kind = kinds::get(kinds::NAMESPACE);
    let member = api(&t.client, ns_kind, "");
    match sh.member(&t.name, "get", key, member.get_opt(ns)).await {
        Ok(Some(_)) => return Ok(()),
        Ok(None) => {}
        Err(e) => return Err((failed_state(&e), e.to_string())),
    }
    let host_ns = sh
        .host("get", key, sh.host_api(ns_kind, "").get_opt(ns))
        .await
        .map_err(|e| (State::ApplyFailed, format!("control plane: {e}")))?;
    let template = match &host_ns {
        Some(o) => to_value(o),
        None => json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    };
    let ns_uid = template::meta_str(&template, "uid").unwrap_or_default().to_owned();
    let copy = template::member_copy(ns_kind, &template::strip(ns_kind, &template), None, None, &ns_uid)
        .map_err(|e| (State::ApplyFailed, e.to_string()))?;
    let params = PatchParams::apply(FIELD_MANAGER).force();
    sh.member(&t.name, "apply", key, member.patch(ns, &params, &Patch::Apply(&copy)))
        .await
        .map_err(|e| (failed_state(&e), format!("cannot create namespace {ns}: {e}")))?;
    sh.metrics.write(&t.name, MemberWrite::Created.action());
    Ok(())
}
