//! The state the controller's tasks share with each other and with the
//! [`crate::ResourceSync`] handle.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kube::api::{Api, DynamicObject};
use kube::{Client, ResourceExt};
use meridian_discovery::{Discovery, Member};
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::sync::watch;

use super::Settings;
use super::deletion::Deleting;
use crate::gate::Gates;
use crate::kinds::{Kind, KindId, KindSet};
use crate::metrics::Metrics;
use crate::queue::{ObjKey, Queue};
use crate::status::{Book, ObjectStatus};
use crate::template::DeletePolicy;

/// State shared by the controller's tasks and the [`crate::ResourceSync`] handle.
pub(crate) struct Shared {
    pub(crate) host: Client,
    /// The control plane's name in the configuration, for logs and metrics.
    pub(super) host_name: String,
    pub(crate) discovery: Arc<Discovery>,
    pub(crate) settings: RwLock<Arc<Settings>>,
    /// The federated types; the watches start afresh when a reload changes them.
    pub(crate) kinds: watch::Sender<KindSet>,
    /// Types the control plane's watch currently fails for (a custom resource whose
    /// definition is not installed, say), with the error: `meridian status` shows them.
    pub(super) watch_errors: Mutex<BTreeMap<KindId, String>>,
    pub(crate) leader: watch::Receiver<bool>,
    pub(crate) queue: Queue,
    pub(crate) book: Mutex<Book>,
    pub(crate) metrics: Metrics,
    /// Every control-plane object seen by the watches, for full resyncs.
    pub(super) known: Mutex<BTreeSet<ObjKey>>,
    /// Pending deletions, for the deletion timeout and their Events.
    pub(super) deleting: Mutex<HashMap<ObjKey, Deleting>>,
    /// The deletion policy of each control-plane object as the watch first showed it
    /// marked for deletion: the garbage collector may remove `foregroundDeletion` before a
    /// reconcile reads the object, so this is the first evidence, until it is latched in
    /// [`crate::template::DELETION_ANNOTATION`] on the object.
    pub(super) first_seen_deleting: Mutex<HashMap<ObjKey, DeletePolicy>>,
    /// This leader's copy of the left-over copies' records (`leftovers`); `None` until
    /// read from the control plane, and again after the Lease is lost.
    pub(super) leftovers: Mutex<Option<Vec<super::leftovers::Record>>>,
    /// Every member sync has read from the registry, with its client, until it leaves:
    /// a member that leaves the configuration has its copies released with that client
    /// (`release_member`), even when it left before the supervisor's next look.
    seen_members: Mutex<BTreeMap<String, Client>>,
    /// Members skipped after a request timed out, until a probe gets an answer.
    pub(crate) gates: Gates,
}

impl Shared {
    pub(crate) fn new(
        host: Client,
        host_name: String,
        discovery: Arc<Discovery>,
        settings: Settings,
        kinds: KindSet,
        leader: watch::Receiver<bool>,
        metrics: Metrics,
    ) -> Self {
        Self {
            host,
            host_name,
            discovery,
            settings: RwLock::new(Arc::new(settings)),
            kinds: watch::Sender::new(kinds),
            watch_errors: Mutex::new(BTreeMap::new()),
            leader,
            queue: Queue::default(),
            book: Mutex::new(Book::default()),
            metrics,
            known: Mutex::new(BTreeSet::new()),
            deleting: Mutex::new(HashMap::new()),
            first_seen_deleting: Mutex::new(HashMap::new()),
            leftovers: Mutex::new(None),
            seen_members: Mutex::new(BTreeMap::new()),
            gates: Gates::default(),
        }
    }

    pub(super) fn settings(&self) -> Arc<Settings> {
        self.settings.read().clone()
    }

    /// The registry's members now. Every reconcile and deletion reads them here, so a
    /// member written to is remembered for [`Shared::gone_members`].
    pub(super) fn members(&self) -> BTreeMap<String, Member> {
        let members = self.discovery.members();
        let mut seen = self.seen_members.lock();
        for (name, m) in &members {
            seen.insert(name.clone(), m.client.clone());
        }
        members
    }

    /// The members seen before that are not among `members` any more, with their last
    /// client; each is returned once.
    pub(super) fn gone_members(&self, members: &BTreeMap<String, Member>) -> Vec<(String, Client)> {
        let mut seen = self.seen_members.lock();
        let gone: Vec<String> = seen.keys().filter(|n| !members.contains_key(*n)).cloned().collect();
        gone.into_iter().filter_map(|n| seen.remove(&n).map(|c| (n, c))).collect()
    }

    /// Whether objects of this type are federated now.
    pub(super) fn federates(&self, kind: KindId) -> bool {
        self.kinds.borrow().contains(kind)
    }

    /// The federated types for `meridian status`, each with the error its control-plane
    /// watch last failed with, while it fails.
    pub(crate) fn kinds_json(&self) -> Value {
        let errors = self.watch_errors.lock();
        let kinds: Vec<Value> = self
            .kinds
            .borrow()
            .iter()
            .map(|(id, k)| {
                let mut v = serde_json::json!({"apiVersion": k.api_version(), "kind": k.kind});
                if let Some(e) = errors.get(&id) {
                    v["watchError"] = Value::String(e.clone());
                }
                v
            })
            .collect();
        Value::Array(kinds)
    }

    pub(crate) fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    /// Queues every known control-plane object.
    pub(crate) fn enqueue_all(&self) {
        let keys: Vec<ObjKey> = self.known.lock().iter().cloned().collect();
        for k in keys {
            self.queue.add(k);
        }
    }

    pub(super) fn host_api(&self, kind: &Kind, ns: &str) -> Api<DynamicObject> {
        api(&self.host, kind, ns)
    }

    /// The object's last status, or an empty one.
    pub(super) fn previous_status(&self, key: &ObjKey) -> ObjectStatus {
        self.book.lock().objects.get(key).cloned().unwrap_or_default()
    }

    pub(super) fn set_status(&self, key: &ObjKey, status: ObjectStatus) {
        let mut b = self.book.lock();
        b.objects.insert(key.clone(), status);
        self.metrics.objects(b.objects.len());
    }

    /// The object is not being deleted (a deletion seen earlier was of an object since
    /// recreated): forgets what was kept for its deletion.
    pub(super) fn not_deleting(&self, key: &ObjKey) {
        self.deleting.lock().remove(key);
        self.first_seen_deleting.lock().remove(key);
    }

    /// The object is gone from the control plane: forgets everything about it.
    pub(super) fn forget(&self, key: &ObjKey) {
        let mut b = self.book.lock();
        b.objects.remove(key);
        self.metrics.objects(b.objects.len());
        drop(b);
        self.not_deleting(key);
        self.known.lock().remove(key);
    }
}

pub(super) fn api(client: &Client, kind: &Kind, ns: &str) -> Api<DynamicObject> {
    let ar = kind.api_resource();
    if kind.namespaced { Api::namespaced_with(client.clone(), ns, &ar) } else { Api::all_with(client.clone(), &ar) }
}

pub(super) fn to_value(o: &DynamicObject) -> Value {
    serde_json::to_value(o).unwrap_or(Value::Null)
}

pub(super) fn key_of(kind: KindId, o: &DynamicObject) -> ObjKey {
    ObjKey { kind, namespace: o.namespace().unwrap_or_default(), name: o.name_any() }
}
