//! A control-plane object marked for deletion: cascade or orphan in every member, then
//! release the finalizer.
//!
//! The decision (cascade or orphan) is taken once and latched on the object
//! ([`template::DELETION_ANNOTATION`]) before any member is touched. Members are handled
//! concurrently; one that is not Ready, does not answer or fails blocks the release until
//! the deletion timeout (reported once by an Event), after which its copy is reported as
//! left over. A silent member costs a pass one request timeout (the request that finds it
//! silent), and nothing once its gate is shut, so it delays the release past the deletion
//! timeout by at most that.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use meridian_discovery::Member;
use meridian_discovery::table::ClusterState;
use serde_json::Value;
use tracing::{debug, warn};

use super::leftovers::Record;
use super::member_deletion::{Blocked, Deletion, delete_in_member};
use super::requests::{Skip, patch_finalizers};
use super::shared::to_value;
use super::worker::Next;
use super::{Settings, Shared};
use crate::events::Severity;
use crate::kinds::{self, Builtin, Kind};
use crate::queue::ObjKey;
use crate::status::State;
use crate::template::{self, DeletePolicy, FINALIZER};

/// How long an object deleted with its namespace waits for the namespace's watch event
/// before it decides without it (the namespace controller deletes the contents right
/// after marking the namespace, so that event is normally already in).
const NAMESPACE_WATCH_GRACE: Duration = Duration::from_millis(300);

/// How often a pending deletion is re-checked while members block it.
const DELETION_RECHECK: Duration = Duration::from_millis(500);

/// A deletion waiting for members.
pub(super) struct Deleting {
    /// When it was first seen (local clock): the deletion timeout counts from here.
    since: Instant,
    /// Members already reported (by an Event) as holding it up, so rechecks every
    /// [`DELETION_RECHECK`] do not repeat the Event.
    announced: BTreeSet<String>,
}

/// Handles one pass over an object marked for deletion (see the module comment).
pub(super) async fn delete(sh: &Shared, settings: &Settings, key: &ObjKey, kind: &Kind, obj: &Value) -> Next {
    if !template::finalizers(obj).iter().any(|f| f == FINALIZER) {
        return Next::Done;
    }
    let since = started(sh, key);
    let host_api = sh.host_api(kind, &key.namespace);
    let (policy, obj) = match template::latched_policy(obj) {
        Some(policy) => (policy, Cow::Borrowed(obj)),
        None => match decide_and_latch(sh, key, kind, obj, since).await {
            Ok((policy, latched)) => (policy, Cow::Owned(latched)),
            Err(next) => return next,
        },
    };
    let deletion = Deletion { key, kind, obj: &obj, policy };
    let members = sh.members();
    let blocked = delete_in_members(sh, &deletion, &members).await;
    announce_waiting(sh, settings, &deletion, &blocked).await;
    let mut leftovers = removed_members(sh, key, &members);
    if kind.is(Builtin::Namespace) && namespace_has_federated_objects(sh, key).await {
        // Its objects finish first, each by its own rules; the namespace waits for them.
        return Next::CheckAfter(DELETION_RECHECK);
    }
    if !blocked.is_empty() {
        let waited = since.elapsed();
        if waited < settings.deletion_timeout {
            return Next::CheckAfter(DELETION_RECHECK.min(settings.deletion_timeout - waited));
        }
        leftovers.extend(blocked.into_iter().map(|(c, b)| (c, b.reason)));
    }
    if !leftovers.is_empty() {
        report_leftovers(sh, settings, &deletion, leftovers).await;
    }
    release(sh, key, &host_api, &obj).await
}

/// When the deletion of `key` was first seen, remembering it now if this is the first.
fn started(sh: &Shared, key: &ObjKey) -> Instant {
    sh.deleting
        .lock()
        .entry(key.clone())
        .or_insert_with(|| Deleting { since: Instant::now(), announced: BTreeSet::new() })
        .since
}

/// The policy of a deletion not yet latched. `Err`: decide later (the namespace's watch
/// event is not in yet).
async fn decide(sh: &Shared, key: &ObjKey, kind: &Kind, obj: &Value, since: Instant) -> Result<DeletePolicy, Next> {
    let policy = first_policy(sh, key, obj);
    if policy == DeletePolicy::Cascade || !kind.namespaced {
        return Ok(policy);
    }
    // Objects deleted because their namespace is: the namespace's deletion decides.
    Ok(namespace_policy(sh, key, since).await?.unwrap_or(policy))
}

/// The policy of the deletion of `key`'s namespace, when that is being deleted.
async fn namespace_policy(sh: &Shared, key: &ObjKey, since: Instant) -> Result<Option<DeletePolicy>, Next> {
    let ns_kind = kinds::get(kinds::NAMESPACE);
    let ns_key = ObjKey { kind: kinds::NAMESPACE, namespace: String::new(), name: key.namespace.clone() };
    let Ok(Some(ns)) = sh.host("get", key, sh.host_api(ns_kind, "").get_opt(&key.namespace)).await else {
        return Ok(None);
    };
    let ns = to_value(&ns);
    if template::meta_str(&ns, "deletionTimestamp").is_none() {
        return Ok(None);
    }
    let latched = template::latched_policy(&ns);
    let known = latched.is_some() || sh.first_seen_deleting.lock().contains_key(&ns_key);
    if !known && since.elapsed() < NAMESPACE_WATCH_GRACE {
        // The namespace's own watch event (with its finalizers as the delete left them)
        // is on its way; decide once it is in.
        return Err(Next::CheckAfter(NAMESPACE_WATCH_GRACE));
    }
    Ok(Some(latched.unwrap_or_else(|| first_policy(sh, &ns_key, &ns))))
}

/// The policy of a deletion not yet latched: what the watch first showed, else what the
/// object shows now.
fn first_policy(sh: &Shared, key: &ObjKey, obj: &Value) -> DeletePolicy {
    sh.first_seen_deleting.lock().get(key).copied().unwrap_or_else(|| template::delete_policy(obj))
}

/// Decides a deletion not yet latched and latches the decision on the object (the GC's
/// finalizers do not stay); the policy, and the object as the control plane now has it.
async fn decide_and_latch(
    sh: &Shared,
    key: &ObjKey,
    kind: &Kind,
    obj: &Value,
    since: Instant,
) -> Result<(DeletePolicy, Value), Next> {
    let policy = decide(sh, key, kind, obj, since).await?;
    let latched = latch(sh, key, &sh.host_api(kind, &key.namespace), policy).await?;
    Ok((policy, latched))
}

/// Writes the decision into [`template::DELETION_ANNOTATION`].
async fn latch(sh: &Shared, key: &ObjKey, host_api: &Api<DynamicObject>, policy: DeletePolicy) -> Result<Value, Next> {
    let patch = Patch::Merge(template::latch_patch(policy));
    match sh.host("finalizer", key, host_api.patch(&key.name, &PatchParams::default(), &patch)).await {
        Ok(o) => Ok(to_value(&o)),
        Err(e) if e.is_not_found() => Err(Next::Done),
        Err(e) => {
            debug!(object = %key, error = %e, "cannot latch the deletion decision; retrying");
            Err(Next::Retry)
        }
    }
}

/// Cascades or orphans in every member concurrently; the members that hold the deletion
/// up, and why. Readiness is read once from the table's current snapshot.
async fn delete_in_members(
    sh: &Shared,
    d: &Deletion<'_>,
    members: &BTreeMap<String, Member>,
) -> Vec<(String, Blocked)> {
    let snap = sh.discovery.table().snapshot();
    let announced = sh.deleting.lock().get(d.key).map(|w| w.announced.clone()).unwrap_or_default();
    let outcomes = futures::future::join_all(members.iter().map(|(name, m)| async {
        let ready = snap.clusters.get(name.as_str()).is_some_and(|c| c.state == ClusterState::Ready);
        let again = announced.contains(name);
        let outcome = if ready {
            delete_in_member(sh, d, name, &m.client, again).await
        } else {
            sh.skipped(name, d.key, Skip::NotReady, again);
            Err(Blocked { state: State::ClusterNotReady, reason: "cluster is not Ready".into() })
        };
        outcome.err().map(|b| (name.clone(), b))
    }))
    .await;
    outcomes.into_iter().flatten().collect()
}

/// Says once per deletion which members hold it up (failures have their own Events).
async fn announce_waiting(sh: &Shared, settings: &Settings, d: &Deletion<'_>, blocked: &[(String, Blocked)]) {
    let fresh: Vec<(String, String)> = {
        let mut deleting = sh.deleting.lock();
        match deleting.get_mut(d.key) {
            Some(entry) => blocked
                .iter()
                .filter(|(_, b)| b.state != State::ApplyFailed)
                .filter(|(c, _)| entry.announced.insert(c.clone()))
                .map(|(c, b)| (c.clone(), b.reason.clone()))
                .collect(),
            None => Vec::new(),
        }
    };
    for (cluster, reason) in fresh {
        let msg = format!(
            "cluster {cluster}: {reason}; the deletion waits for it for at most {:?}",
            settings.deletion_timeout
        );
        sh.event(d.obj, Severity::Normal, "DeletionWaiting", &msg).await;
    }
}

/// Clusters removed from the registry that had a copy: left behind at once.
fn removed_members(sh: &Shared, key: &ObjKey, members: &BTreeMap<String, Member>) -> Vec<(String, String)> {
    let previous = sh.previous_status(key);
    previous
        .clusters
        .iter()
        .filter(|(c, s)| !members.contains_key(*c) && s.state == State::Synced)
        .map(|(c, _)| (c.clone(), "cluster was removed from the configuration".to_owned()))
        .collect()
}

/// Reports the copies a released deletion leaves behind: a Warning Event, a log line,
/// and the records (`meridian status` lists them) by which they are finished once their
/// members answer again.
async fn report_leftovers(sh: &Shared, settings: &Settings, d: &Deletion<'_>, leftovers: Vec<(String, String)>) {
    let (key, obj) = (d.key, d.obj);
    let list: Vec<String> = leftovers.iter().map(|(c, r)| format!("{c} ({r})")).collect();
    let msg =
        format!("released after {:?} with copies possibly left in: {}", settings.deletion_timeout, list.join(", "));
    warn!(object = %key, clusters = %list.join(", "), "deletion timed out; leftovers reported");
    sh.event(obj, Severity::Warning, "DeletionTimedOut", &msg).await;
    let uid = template::meta_str(obj, "uid").unwrap_or_default();
    let records = leftovers.into_iter().map(|(cluster, reason)| Record::new(key, uid, d.policy, cluster, reason));
    sh.add_leftovers(records.collect()).await;
}

/// Removes Meridian's finalizer, letting the control plane delete the object, and
/// forgets it.
pub(super) async fn release(sh: &Shared, key: &ObjKey, host_api: &Api<DynamicObject>, obj: &Value) -> Next {
    let rest: Vec<String> = template::finalizers(obj).into_iter().filter(|f| f != FINALIZER).collect();
    match sh.host("finalizer", key, patch_finalizers(host_api, &key.name, obj, rest)).await {
        Ok(_) => {
            sh.forget(key);
            Next::Done
        }
        Err(e) if e.is_not_found() => Next::Done,
        Err(e) => {
            debug!(object = %key, error = %e, "cannot release the finalizer; retrying");
            Next::Retry
        }
    }
}

/// Whether the namespace `key` names still holds federated objects that carry Meridian's
/// finalizer (or cannot be listed).
async fn namespace_has_federated_objects(sh: &Shared, key: &ObjKey) -> bool {
    let kinds = sh.kinds.borrow().clone();
    for (_, kind) in kinds.iter().filter(|(_, k)| k.namespaced) {
        let lp = ListParams::default().limit(50);
        match sh.host("list", key, sh.host_api(kind, &key.name).list(&lp)).await {
            Ok(list) => {
                if list.items.iter().any(|o| o.finalizers().iter().any(|f| f == FINALIZER)) {
                    return true;
                }
            }
            Err(e) if e.is_not_found() => {}
            Err(_) => return true,
        }
    }
    false
}
