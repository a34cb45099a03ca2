//! Every request the controller sends goes through here: to a member under the request
//! deadline and its gate, to the control plane under the deadline, and Events. Members
//! left out of a reconcile or deletion are logged and counted here too.

use std::future::Future;
use std::time::Instant;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{Value, json};
use tracing::{debug, info};

use super::Shared;
use super::shared::to_value;
use crate::events::{self, Severity};
use crate::gate::RequestError;
use crate::queue::ObjKey;
use crate::status::State;
use crate::template;

/// Why a member was left out of an object's reconcile or deletion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Skip {
    /// Discovery has the cluster Offline or Pending.
    NotReady,
    /// A request timed out and no probe has been answered since.
    NotAnswering,
}

impl Skip {
    /// The `reason` label of `meridian_sync_member_skips_total`.
    fn label(self) -> &'static str {
        match self {
            Skip::NotReady => "not_ready",
            Skip::NotAnswering => "not_answering",
        }
    }

    /// The reason as the log line gives it.
    fn reason(self) -> &'static str {
        match self {
            Skip::NotReady => "the cluster is not Ready",
            Skip::NotAnswering => "an earlier request got no answer",
        }
    }
}

impl Shared {
    /// Sends one request to member `cluster` under the request deadline, unless its gate
    /// is shut. A timeout shuts the gate, so the next requests skip the member at once.
    pub(super) async fn member<T>(
        &self,
        cluster: &str,
        op: &'static str,
        key: &ObjKey,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, RequestError> {
        if let Err(after) = self.gates.check(cluster) {
            return Err(RequestError::Skipped(after));
        }
        let settings = self.settings();
        let limit = settings.request_timeout;
        match tokio::time::timeout(limit, request).await {
            Ok(r) => r.map_err(RequestError::Api),
            Err(_) => {
                self.metrics.timed_out(cluster, op);
                info!(cluster = %cluster, object = %key, op, timeout = ?limit, "member request timed out");
                if self.gates.shut(cluster, limit, Instant::now(), settings.retry_max) {
                    info!(
                        cluster = %cluster,
                        timeout = ?limit,
                        "cluster stopped answering; every reconcile skips it until a probe gets an answer"
                    );
                }
                Err(RequestError::TimedOut(limit))
            }
        }
    }

    /// Sends one request to the control plane under the request deadline.
    pub(super) async fn host<T>(
        &self,
        op: &'static str,
        key: &ObjKey,
        request: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, RequestError> {
        let limit = self.settings().request_timeout;
        match tokio::time::timeout(limit, request).await {
            Ok(r) => r.map_err(RequestError::Api),
            Err(_) => {
                self.metrics.timed_out(&self.host_name, op);
                info!(cluster = %self.host_name, object = %key, op, timeout = ?limit, "control-plane request timed out");
                Err(RequestError::TimedOut(limit))
            }
        }
    }

    /// Records an Event on a control-plane object, under the request deadline.
    pub(super) async fn event(&self, obj: &Value, severity: Severity, reason: &str, message: &str) {
        let limit = self.settings().request_timeout;
        if tokio::time::timeout(limit, events::record(&self.host, obj, severity, reason, message)).await.is_err() {
            self.metrics.timed_out(&self.host_name, "event");
            info!(cluster = %self.host_name, reason, timeout = ?limit, "control-plane request timed out (Event)");
        }
    }

    /// Logs and counts a member left out of `key`'s reconcile or deletion. `again`: the
    /// same deletion was already reported waiting for this member (it is rechecked every
    /// half second), so the line goes to debug instead of info.
    pub(super) fn skipped(&self, cluster: &str, key: &ObjKey, why: Skip, again: bool) {
        self.metrics.skipped(cluster, why.label());
        let reason = why.reason();
        if again {
            debug!(cluster = %cluster, object = %key, reason, "member skipped");
        } else {
            info!(cluster = %cluster, object = %key, reason, "member skipped");
        }
    }
}

/// The state to report for a member whose request failed.
pub(super) fn failed_state(e: &RequestError) -> State {
    if e.is_unanswered() { State::NotAnswering } else { State::ApplyFailed }
}

/// Sets the finalizer list, conditional on the object not having changed meanwhile.
pub(super) async fn patch_finalizers(
    api: &Api<DynamicObject>,
    name: &str,
    obj: &Value,
    finalizers: Vec<String>,
) -> Result<Value, kube::Error> {
    let rv = template::meta_str(obj, "resourceVersion").unwrap_or_default();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": rv}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|o| to_value(&o))
}
