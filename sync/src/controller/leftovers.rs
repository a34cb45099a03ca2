//! Copies that a released deletion had to leave in members it could not reach (Offline,
//! silent, failing, or removed from the configuration), finished once the member
//! answers again: deleted for a cascade, unmarked for an orphaning delete.
//!
//! The records are kept in the control plane, in the ConfigMap [`CONFIGMAP`] of the
//! Lease's namespace, so a restart or another replica taking the Lease over still
//! finishes them; this replica keeps a copy while it leads. Each leader pass (every
//! resync) tries the records whose member is Ready, under the usual deadlines and gates,
//! and drops those that are done. A copy is finished only while it is still the copy of
//! the deleted object (its origin annotation names that uid, or it has none and carries
//! the mark): a copy of a newer object of the same name is not touched.

use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use meridian_discovery::table::ClusterState;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::{debug, info, warn};

use super::Shared;
use super::member_deletion::{Deletion, delete_in_member};
use crate::kinds::{self, Kind};
use crate::queue::ObjKey;
use crate::status::Leftover;
use crate::template::DeletePolicy;

/// The ConfigMap holding the records, in `[sync] lease_namespace`.
pub(crate) const CONFIGMAP: &str = "meridian-sync-leftovers";
const DATA_KEY: &str = "leftovers.json";
/// Records kept at most; the oldest go first (a ConfigMap holds at most 1 MiB).
const MAX_RECORDS: usize = 1000;
/// Conflicting writes (another writer changed the ConfigMap) retried this often.
const WRITE_TRIES: usize = 3;

/// One copy left behind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Record {
    pub(crate) cluster: String,
    pub(crate) api_version: String,
    pub(crate) kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// The deleted control-plane object's uid.
    pub(crate) uid: String,
    /// `cascade` or `orphan`, as the deletion decided.
    pub(crate) policy: String,
    pub(crate) reason: String,
    pub(crate) at_unix: u64,
}

impl Record {
    pub(crate) fn new(key: &ObjKey, uid: &str, policy: DeletePolicy, cluster: String, reason: String) -> Self {
        let kind = kinds::get(key.kind);
        let at_unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        Self {
            cluster,
            api_version: kind.api_version(),
            kind: kind.kind.to_owned(),
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            uid: uid.to_owned(),
            policy: policy.as_str().to_owned(),
            reason,
            at_unix,
        }
    }

    fn same_copy(&self, other: &Record) -> bool {
        (&self.cluster, &self.api_version, &self.kind, &self.namespace, &self.name)
            == (&other.cluster, &other.api_version, &other.kind, &other.namespace, &other.name)
    }

    fn leftover(&self) -> Leftover {
        let object = if self.namespace.is_empty() {
            format!("{} {}", self.kind, self.name)
        } else {
            format!("{} {}/{}", self.kind, self.namespace, self.name)
        };
        let at = UNIX_EPOCH + std::time::Duration::from_secs(self.at_unix);
        Leftover { object, cluster: self.cluster.clone(), reason: self.reason.clone(), at }
    }
}

impl Shared {
    /// Adds records (replacing older ones of the same copy) and stores them.
    pub(super) async fn add_leftovers(&self, new: Vec<Record>) {
        let mut records = match self.leftover_records().await {
            Some(r) => r,
            // Unreadable now: keep what is known in memory and try the write anyway, so
            // the records are not lost while the control plane is slow.
            None => self.leftovers.lock().clone().unwrap_or_default(),
        };
        records.retain(|r| !new.iter().any(|n| n.same_copy(r)));
        records.extend(new);
        let excess = records.len().saturating_sub(MAX_RECORDS);
        records.drain(..excess);
        self.store_leftovers(records).await;
    }

    /// One leader pass over the records: finishes those whose member is Ready.
    pub(super) async fn finish_leftovers(&self) {
        let Some(records) = self.leftover_records().await else { return };
        if records.is_empty() {
            return;
        }
        let members = self.members();
        let snap = self.discovery.table().snapshot();
        let mut kept = Vec::with_capacity(records.len());
        for r in records {
            let ready = snap.clusters.get(r.cluster.as_str()).is_some_and(|c| c.state == ClusterState::Ready);
            let done = match (members.get(&r.cluster), ready) {
                (Some(m), true) => self.finish(&r, &m.client).await,
                _ => false,
            };
            if done {
                info!(cluster = %r.cluster, kind = %r.kind, name = %r.name, policy = %r.policy, "left-over copy finished");
            } else {
                kept.push(r);
            }
        }
        self.store_leftovers(kept).await;
    }

    /// Finishes one record's copy; true when nothing is left to do.
    async fn finish(&self, r: &Record, client: &kube::Client) -> bool {
        let Some((id, kind)) = self.kinds.borrow().find(&r.api_version, &r.kind) else {
            // Not federated any more: its copies are not Meridian's to finish.
            return true;
        };
        let policy =
            if r.policy == DeletePolicy::Cascade.as_str() { DeletePolicy::Cascade } else { DeletePolicy::Orphan };
        let key = ObjKey { kind: id, namespace: r.namespace.clone(), name: r.name.clone() };
        let obj = gone_object(kind, r);
        let deletion = Deletion { key: &key, kind, obj: &obj, policy };
        delete_in_member(self, &deletion, &r.cluster, client, true).await.is_ok()
    }

    /// The records: this replica's copy, else read from the control plane (`None` when
    /// that fails).
    async fn leftover_records(&self) -> Option<Vec<Record>> {
        if let Some(r) = self.leftovers.lock().clone() {
            return Some(r);
        }
        let api = self.leftovers_api();
        let key = configmap_key();
        let cm = match self.host("leftovers", &key, api.get_opt(CONFIGMAP)).await {
            Ok(cm) => cm,
            Err(e) => {
                debug!(error = %e, "cannot read the left-over copies' records");
                return None;
            }
        };
        let text = cm.as_ref().and_then(|c| c.data.as_ref()?.get(DATA_KEY).cloned()).unwrap_or_default();
        let records: Vec<Record> = if text.is_empty() {
            Vec::new()
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| {
                warn!(configmap = CONFIGMAP, error = %e, "unreadable records of left-over copies; starting afresh");
                Vec::new()
            })
        };
        self.remember_leftovers(&records);
        Some(records)
    }

    /// Writes the records to the ConfigMap (creating it), retrying a conflicting write.
    async fn store_leftovers(&self, records: Vec<Record>) {
        self.remember_leftovers(&records);
        let api = self.leftovers_api();
        let key = configmap_key();
        let text = serde_json::to_string(&records).unwrap_or_else(|_| "[]".into());
        for _ in 0..WRITE_TRIES {
            let existing = match self.host("leftovers", &key, api.get_opt(CONFIGMAP)).await {
                Ok(e) => e,
                Err(e) => {
                    warn!(error = %e, "cannot store the left-over copies' records; kept in memory");
                    return;
                }
            };
            let unchanged = existing.as_ref().and_then(|c| c.data.as_ref()?.get(DATA_KEY)) == Some(&text)
                || (existing.is_none() && records.is_empty());
            if unchanged {
                return;
            }
            let mut cm = existing.clone().unwrap_or_else(new_configmap);
            cm.data = Some([(DATA_KEY.to_owned(), text.clone())].into());
            let pp = PostParams::default();
            let sent = match existing {
                Some(_) => self.host("leftovers", &key, api.replace(CONFIGMAP, &pp, &cm)).await,
                None => self.host("leftovers", &key, api.create(&pp, &cm)).await,
            };
            match sent {
                Ok(_) => return,
                Err(e) if e.is_conflict() => continue,
                Err(e) => {
                    warn!(error = %e, "cannot store the left-over copies' records; kept in memory");
                    return;
                }
            }
        }
    }

    /// Keeps this replica's copy of the records and shows them in the status.
    fn remember_leftovers(&self, records: &[Record]) {
        *self.leftovers.lock() = Some(records.to_vec());
        self.book.lock().leftovers = records.iter().map(Record::leftover).collect();
    }

    fn leftovers_api(&self) -> Api<ConfigMap> {
        Api::namespaced(self.host.clone(), &self.settings().state_namespace)
    }
}

/// The key logs and metrics name the ConfigMap's requests by.
fn configmap_key() -> ObjKey {
    ObjKey { kind: kinds::CONFIG_MAP, namespace: String::new(), name: CONFIGMAP.to_owned() }
}

fn new_configmap() -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta { name: Some(CONFIGMAP.to_owned()), ..ObjectMeta::default() },
        ..ConfigMap::default()
    }
}

/// The deleted object as far as its copies and Events need it: type, name and uid.
fn gone_object(kind: &Kind, r: &Record) -> Value {
    let mut meta = json!({"name": r.name, "uid": r.uid});
    if !r.namespace.is_empty() {
        meta["namespace"] = json!(r.namespace);
    }
    json!({"apiVersion": kind.api_version(), "kind": kind.kind, "metadata": meta})
}
