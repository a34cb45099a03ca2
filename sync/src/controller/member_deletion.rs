//! A deletion's work in one Ready member: cascade (delete the copy) or orphan (remove
//! Meridian's marks from it).

use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use serde_json::Value;
use tracing::info;

use super::Shared;
use super::requests::{Skip, failed_state};
use super::shared::{api, to_value};
use super::write::MemberWrite;
use crate::events::Severity;
use crate::gate::RequestError;
use crate::kinds::{Builtin, Kind};
use crate::queue::ObjKey;
use crate::status::State;
use crate::template::{self, DeletePolicy};

/// The deletion of one control-plane object, as each member sees it.
pub(super) struct Deletion<'a> {
    pub(super) key: &'a ObjKey,
    pub(super) kind: &'a Kind,
    pub(super) obj: &'a Value,
    pub(super) policy: DeletePolicy,
}

/// Why a member holds a deletion up.
pub(super) struct Blocked {
    /// `ClusterNotReady`, `NotAnswering`, `ApplyFailed` or `Terminating`.
    pub(super) state: State,
    pub(super) reason: String,
}

impl Blocked {
    /// A request failed; the reason carries the member's message, redacted.
    fn failed(e: &RequestError, obj: &Value) -> Self {
        Blocked { state: failed_state(e), reason: template::redact(&e.to_string(), obj) }
    }

    /// A member's namespace is still being emptied by its namespace controller.
    fn terminating() -> Self {
        Blocked { state: State::Terminating, reason: "namespace is still terminating".into() }
    }
}

/// Cascades or orphans the copy in one Ready member. `Ok` when nothing is left to do
/// there. `again`: this member was already reported holding the deletion up.
pub(super) async fn delete_in_member(
    sh: &Shared,
    d: &Deletion<'_>,
    cluster: &str,
    client: &Client,
    again: bool,
) -> Result<(), Blocked> {
    let member_api = api(client, d.kind, &d.key.namespace);
    let Some(live) = read_copy(sh, d, cluster, &member_api, again).await? else { return Ok(()) };
    let uid = template::meta_str(d.obj, "uid").unwrap_or_default();
    if !template::copy_of(&live, uid) {
        return Ok(());
    }
    let namespace = d.kind.is(Builtin::Namespace);
    if d.policy == DeletePolicy::Cascade && template::meta_str(&live, "deletionTimestamp").is_some() {
        // Already being deleted there. A Namespace is done only once its contents are
        // (the member's namespace controller empties it): the control plane's waits.
        return if namespace { Err(Blocked::terminating()) } else { Ok(()) };
    }
    let write = MemberWrite::of_deletion(d.policy);
    match send(sh, d, cluster, &member_api).await {
        Ok(()) => {
            sh.wrote(d.obj, cluster, write, "").await;
            info!(object = %d.key, cluster = %cluster, action = write.action(), "deletion propagated");
            if d.policy == DeletePolicy::Cascade && namespace {
                // Wait for the member's namespace controller to empty and remove it.
                return Err(Blocked::terminating());
            }
            Ok(())
        }
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => {
            let b = Blocked::failed(&e, d.obj);
            if b.state == State::ApplyFailed {
                let msg = format!("cluster {cluster}: {}", b.reason);
                sh.event(d.obj, Severity::Warning, write.failed_reason(), &msg).await;
            }
            Err(b)
        }
    }
}

/// Reads the member's copy; `None` when it has none.
async fn read_copy(
    sh: &Shared,
    d: &Deletion<'_>,
    cluster: &str,
    member_api: &Api<DynamicObject>,
    again: bool,
) -> Result<Option<Value>, Blocked> {
    match sh.member(cluster, "get", d.key, member_api.get_opt(&d.key.name)).await {
        Ok(o) => Ok(o.as_ref().map(to_value)),
        Err(e) => {
            if matches!(e, RequestError::Skipped(_)) {
                sh.skipped(cluster, d.key, Skip::NotAnswering, again);
            }
            Err(Blocked::failed(&e, d.obj))
        }
    }
}

/// Deletes the copy (cascade) or removes Meridian's marks from it (orphan).
async fn send(
    sh: &Shared,
    d: &Deletion<'_>,
    cluster: &str,
    member_api: &Api<DynamicObject>,
) -> Result<(), RequestError> {
    let name = &d.key.name;
    match d.policy {
        DeletePolicy::Cascade => {
            sh.member(cluster, "delete", d.key, member_api.delete(name, &DeleteParams::background())).await.map(|_| ())
        }
        DeletePolicy::Orphan => {
            let patch = Patch::Merge(template::unmark_patch());
            sh.member(cluster, "orphan", d.key, member_api.patch(name, &PatchParams::default(), &patch))
                .await
                .map(|_| ())
        }
    }
}
