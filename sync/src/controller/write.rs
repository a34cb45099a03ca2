//! What a write to a member's copy did, and how it is reported: the metric's `action`
//! label, the Event's reason and its message.

use serde_json::Value;

use super::Shared;
use crate::events::Severity;
use crate::template::DeletePolicy;

/// A write to one member's copy, by what it did to the copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MemberWrite {
    /// The member had no copy; one was created.
    Created,
    /// The member's copy differed from the template; the template was applied over it.
    Updated,
    /// The copy was deleted: a cascading delete, or the cluster left the placement.
    Deleted,
    /// Meridian's marks were removed and the copy keeps running (an orphaning delete).
    Orphaned,
}

impl MemberWrite {
    /// What a deletion with `policy` does to a member's copy.
    pub(super) fn of_deletion(policy: DeletePolicy) -> Self {
        match policy {
            DeletePolicy::Cascade => MemberWrite::Deleted,
            DeletePolicy::Orphan => MemberWrite::Orphaned,
        }
    }

    /// The `action` label of `meridian_sync_member_writes_total`, also used in logs.
    pub(super) fn action(self) -> &'static str {
        match self {
            MemberWrite::Created => "create",
            MemberWrite::Updated => "update",
            MemberWrite::Deleted => "delete",
            MemberWrite::Orphaned => "orphan",
        }
    }

    /// The reason of the Normal Event recorded when the write succeeded.
    fn reason(self) -> &'static str {
        match self {
            MemberWrite::Created => "CreateInCluster",
            MemberWrite::Updated => "UpdateInCluster",
            MemberWrite::Deleted => "DeleteInCluster",
            MemberWrite::Orphaned => "OrphanInCluster",
        }
    }

    /// The reason of the Warning Event recorded when the member rejected the write.
    pub(super) fn failed_reason(self) -> &'static str {
        match self {
            MemberWrite::Created => "FailedCreateInCluster",
            MemberWrite::Updated => "FailedUpdateInCluster",
            MemberWrite::Deleted => "FailedDeleteInCluster",
            MemberWrite::Orphaned => "FailedOrphanInCluster",
        }
    }

    /// How the Event's message says what was done, before "cluster <name>".
    fn verb(self) -> &'static str {
        match self {
            MemberWrite::Created => "created in",
            MemberWrite::Updated => "updated in",
            MemberWrite::Deleted => "deleted from",
            MemberWrite::Orphaned => "orphaned in",
        }
    }
}

impl Shared {
    /// Counts a write that succeeded in `cluster` and records its Event on the
    /// control-plane object `obj`; `detail` ends the message (" with 3 replicas").
    pub(super) async fn wrote(&self, obj: &Value, cluster: &str, write: MemberWrite, detail: &str) {
        self.metrics.write(cluster, write.action());
        let message = format!("{} cluster {cluster}{detail}", write.verb());
        self.event(obj, Severity::Normal, write.reason(), &message).await;
    }
}
