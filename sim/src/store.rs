//! One cluster's objects, its resourceVersion counter, its bounded event history, and the
//! registry of the resources it serves (which follows the stored CRDs).
//!
//! Like etcd behind a real API server there is one monotonic counter per cluster, shared by
//! all resources. Every write happens under a single write lock and, while still holding it,
//! appends to the history ring and broadcasts the event; a watch that reads history and
//! subscribes under the read lock therefore sees every later event exactly once.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use serde_json::Value;
use tokio::sync::{broadcast, mpsc};

use crate::error::ApiError;
use crate::key::{self, Key};
use crate::registry::Registry;
use crate::resources::{self, ResId};
use crate::stored::Stored;
use crate::util;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug)]
pub(crate) struct Event {
    pub(crate) rv: u64,
    pub(crate) kind: EventType,
    pub(crate) res: ResId,
    pub(crate) ns: String,
    pub(crate) name: String,
    /// New state, or for `Deleted` the last state stamped with the deletion's resourceVersion.
    pub(crate) object: Stored,
    /// State before the change, so a selector-filtered watch can turn a change that moves an
    /// object out of (into) its selector into DELETED (ADDED), as the real server does.
    pub(crate) old: Option<Stored>,
}

/// Events to replay plus the receiver for later ones.
pub(crate) type Resume = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

/// Resources a built-in controller reconciles on every change.
const CONTROLLED: [ResId; 9] = [
    resources::NAMESPACES,
    resources::CRDS,
    resources::SERVICES,
    resources::INGRESSES,
    resources::DEPLOYMENTS,
    resources::REPLICASETS,
    resources::STATEFULSETS,
    resources::DAEMONSETS,
    resources::NODES,
];

/// Whether the garbage collector must look at this object: it has owners, or it is being
/// deleted with the `orphan` or `foregroundDeletion` finalizer.
fn gc_interest(obj: &Value) -> bool {
    if !util::owner_refs(obj).is_empty() {
        return true;
    }
    util::meta_str(obj, "deletionTimestamp").is_some()
        && util::finalizers(obj).iter().any(|f| f == util::ORPHAN_FINALIZER || f == util::FOREGROUND_FINALIZER)
}

/// Broadcast capacity. A watcher that falls further behind catches up from history.
const BROADCAST_CAPACITY: usize = 4096;

pub(crate) struct Store {
    inner: RwLock<Inner>,
}

pub(crate) struct Inner {
    objects: BTreeMap<Key, Stored>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    history_cap: usize,
    /// Highest resourceVersion whose event is no longer retained; watching from an older
    /// version answers 410 Gone.
    compacted: u64,
    events: broadcast::Sender<Arc<Event>>,
    /// Keys of written objects that built-in controllers (the garbage collector and the
    /// namespace controller among them) must look at; see [`Inner::follow_ups`].
    changes: Option<mpsc::UnboundedSender<Key>>,
    /// Owner uid → keys of the objects whose `ownerReferences` name it, for the garbage
    /// collector (kube-controller-manager keeps the same graph in memory).
    dependents: HashMap<String, BTreeSet<Key>>,
    /// ClusterIP and nodePort allocations, kept beside the objects so they change atomically.
    pub(crate) alloc: crate::service_alloc::ServiceAlloc,
    /// The resources served, which follow the stored CRDs.
    registry: Registry,
}

impl Store {
    pub(crate) fn new(history_cap: usize, changes: Option<mpsc::UnboundedSender<Key>>) -> Self {
        let (events, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            inner: RwLock::new(Inner {
                objects: BTreeMap::new(),
                rv: 0,
                history: VecDeque::new(),
                history_cap,
                compacted: 0,
                events,
                changes,
                dependents: HashMap::new(),
                alloc: crate::service_alloc::ServiceAlloc::default(),
                registry: Registry::default(),
            }),
        }
    }

    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read()
    }

    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write()
    }

    pub(crate) fn get(&self, key: &Key) -> Option<Arc<Value>> {
        self.inner.read().get(key)
    }

    /// Drops all retained events and bumps the counter, like the API server's compactor
    /// (which writes its own key before compacting): every resourceVersion a client holds
    /// becomes too old to watch from.
    pub(crate) fn compact(&self) {
        let mut g = self.inner.write();
        g.rv += 1;
        g.compacted = g.rv;
        g.history.clear();
    }
}

impl Inner {
    pub(crate) fn rv(&self) -> u64 {
        self.rv
    }

    /// The object under `key`, decoded.
    pub(crate) fn get(&self, key: &Key) -> Option<Arc<Value>> {
        self.objects.get(key).map(|o| Arc::new(o.value()))
    }

    /// Whether an object is stored under `key` (without decoding it).
    pub(crate) fn contains(&self, key: &Key) -> bool {
        self.objects.contains_key(key)
    }

    pub(crate) fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Objects of one resource, optionally one namespace, starting after `after` (name key).
    pub(crate) fn range<'a>(
        &'a self,
        res: ResId,
        ns: Option<&'a str>,
        after: Option<&Key>,
    ) -> impl Iterator<Item = (&'a Key, &'a Stored)> + 'a {
        let start = match after {
            Some(k) => Bound::Excluded(k.clone()),
            None => Bound::Included((res, ns.unwrap_or("").to_string(), String::new())),
        };
        self.objects
            .range((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.0 == res && ns.is_none_or(|n| k.1 == n))
    }

    /// Store ids of the namespaced resources, custom ones included.
    fn namespaced_ids(&self) -> Vec<ResId> {
        self.registry.ids().filter(|id| self.registry.stored(*id).is_some_and(|d| d.namespaced)).collect()
    }

    /// Whether any namespaced object lives in `ns`.
    pub(crate) fn namespace_is_empty(&self, ns: &str) -> bool {
        self.namespaced_ids().into_iter().all(|id| self.range(id, Some(ns), None).next().is_none())
    }

    /// Keys of every namespaced object in `ns`.
    pub(crate) fn keys_in_namespace(&self, ns: &str) -> Vec<Key> {
        self.namespaced_ids()
            .into_iter()
            .flat_map(|id| self.range(id, Some(ns), None).map(|(k, _)| k.clone()).collect::<Vec<_>>())
            .collect()
    }

    /// Keys of every object of resource `res`, in all namespaces.
    pub(crate) fn keys_of(&self, res: ResId) -> Vec<Key> {
        self.range(res, None, None).map(|(k, _)| k.clone()).collect()
    }

    /// Whether the namespace exists and is being deleted.
    pub(crate) fn namespace_terminating(&self, ns: &str) -> bool {
        self.get(&(resources::NAMESPACES, String::new(), ns.to_string()))
            .is_some_and(|n| util::meta_str(&n, "deletionTimestamp").is_some())
    }

    /// Keys of the objects whose `ownerReferences` name `uid`.
    pub(crate) fn dependents_of(&self, uid: &str) -> Vec<Key> {
        self.dependents.get(uid).map(|d| d.iter().cloned().collect()).unwrap_or_default()
    }

    /// Stores `obj` under `key`, stamping a new resourceVersion, and emits ADDED or MODIFIED.
    pub(crate) fn put(&mut self, key: Key, mut obj: Value) -> Arc<Value> {
        self.rv += 1;
        if let Some(m) = util::meta_mut(&mut obj) {
            m.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        let stored = Stored::new(&obj);
        let old = self.objects.insert(key.clone(), stored.clone());
        let old_value = old.as_ref().map(Stored::value);
        self.index_owners(&key, old_value.as_ref(), Some(&obj));
        if key.0 == resources::CRDS {
            self.registry.put_crd(&obj);
        }
        let kind = if old.is_some() { EventType::Modified } else { EventType::Added };
        self.emit(key, kind, (stored, &obj), old.zip(old_value));
        Arc::new(obj)
    }

    /// Keeps `dependents` in step with a change of `key` from `old` to `new`.
    fn index_owners(&mut self, key: &Key, old: Option<&Value>, new: Option<&Value>) {
        let before = old.map(util::owner_uids).unwrap_or_default();
        let after = new.map(util::owner_uids).unwrap_or_default();
        for uid in before.iter().filter(|u| !after.contains(u)) {
            if let Some(set) = self.dependents.get_mut(uid) {
                set.remove(key);
                if set.is_empty() {
                    self.dependents.remove(uid);
                }
            }
        }
        for uid in after.into_iter().filter(|u| !before.contains(u)) {
            self.dependents.entry(uid).or_default().insert(key.clone());
        }
    }

    /// Removes the object and emits DELETED carrying a fresh resourceVersion.
    pub(crate) fn remove(&mut self, key: &Key) -> Option<Arc<Value>> {
        let old_stored = self.objects.remove(key)?;
        let old = old_stored.value();
        self.index_owners(key, Some(&old), None);
        self.rv += 1;
        let mut last = old.clone();
        if let Some(m) = util::meta_mut(&mut last) {
            m.insert("resourceVersion".into(), Value::String(self.rv.to_string()));
        }
        if key.0 == resources::SERVICES {
            self.alloc.release(&old);
        }
        if key.0 == resources::CRDS {
            self.registry.remove_crd(&key.2);
        }
        self.emit(key.clone(), EventType::Deleted, (Stored::new(&last), &last), Some((old_stored, old)));
        Some(Arc::new(last))
    }

    /// Records and broadcasts a change; `object` and `old` come stored and decoded.
    fn emit(&mut self, key: Key, kind: EventType, object: (Stored, &Value), old: Option<(Stored, Value)>) {
        if let Some(tx) = &self.changes {
            for k in self.follow_ups(&key, kind, object.1, old.as_ref().map(|o| &o.1)) {
                let _ = tx.send(k);
            }
        }
        let (object, old) = (object.0, old.map(|o| o.0));
        let (res, ns, name) = key;
        let ev = Arc::new(Event { rv: self.rv, kind, res, ns, name, object, old });
        if self.history_cap > 0 {
            while self.history.len() >= self.history_cap {
                if let Some(dropped) = self.history.pop_front() {
                    self.compacted = dropped.rv;
                }
            }
            self.history.push_back(ev.clone());
        } else {
            self.compacted = self.rv;
        }
        // No receivers is normal: nobody watches.
        let _ = self.events.send(ev);
    }

    /// Keys the controllers must reconcile after this change: the object itself when a
    /// controller owns its kind or the garbage collector must look at it; on removal, its
    /// dependents (their owner is gone), owners deleting in the foreground that it was
    /// holding up, its namespace when that is terminating, and its CRD when that is.
    fn follow_ups(&self, key: &Key, kind: EventType, obj: &Value, old: Option<&Value>) -> Vec<Key> {
        let mut out = Vec::new();
        let gone = kind == EventType::Deleted;
        let gateway_api = || self.registry.stored(key.0).is_some_and(|d| d.group == crate::crd::gateway::GROUP);
        if CONTROLLED.contains(&key.0) || (!gone && gc_interest(obj)) || gateway_api() {
            out.push(key.clone());
        }
        if crate::seeded::is_seeded(key) {
            // One of the objects every namespace gets: its namespace puts it back.
            out.push((resources::NAMESPACES, String::new(), key.1.clone()));
        }
        let refs_changed =
            old.is_some_and(|o| o.pointer("/metadata/ownerReferences") != obj.pointer("/metadata/ownerReferences"));
        if gone || refs_changed {
            let held = old.unwrap_or(obj);
            out.extend(util::owner_refs(held).iter().filter_map(|r| self.foreground_owner(&key.1, r)));
        }
        if gone {
            if let Some(uid) = util::meta_str(obj, "uid") {
                out.extend(self.dependents_of(uid));
            }
            if !key.1.is_empty() && self.namespace_terminating(&key.1) {
                out.push((resources::NAMESPACES, String::new(), key.1.clone()));
            }
            if let Some(c) = self.registry.stored(key.0).and_then(|d| d.custom.as_ref()).filter(|c| c.terminating) {
                out.push((resources::CRDS, String::new(), c.crd.clone()));
            }
        }
        out
    }

    /// The key of the owner `r` names (seen from namespace `ns`) if it exists and is
    /// deleting its dependents in the foreground.
    fn foreground_owner(&self, ns: &str, r: &Value) -> Option<Key> {
        let owner_key = key::owner_key(&self.registry, ns, r)?;
        let owner = self.get(&owner_key)?;
        let waiting = util::meta_str(&owner, "deletionTimestamp").is_some()
            && util::finalizers(&owner).iter().any(|f| f == util::FOREGROUND_FINALIZER);
        waiting.then_some(owner_key)
    }

    /// Events after `rv` from history plus a receiver for everything later, or 410 Gone
    /// when history no longer reaches back to `rv`.
    pub(crate) fn watch_from(&self, rv: u64) -> Result<Resume, ApiError> {
        self.check_not_compacted(rv)?;
        let start = self.history.partition_point(|e| e.rv <= rv);
        let replay = self.history.iter().skip(start).cloned().collect();
        Ok((replay, self.events.subscribe()))
    }

    /// 410 Gone when events after `rv` were already dropped.
    pub(crate) fn check_not_compacted(&self, rv: u64) -> Result<(), ApiError> {
        if rv < self.compacted {
            return Err(ApiError::gone(format!("too old resource version: {rv} ({})", self.compacted + 1)));
        }
        Ok(())
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// Every object, for the state file.
    pub(crate) fn all(&self) -> impl Iterator<Item = Value> + '_ {
        self.objects.values().map(Stored::value)
    }

    /// Restores a counter read from a state file, so clients never see it go backwards.
    pub(crate) fn set_rv_floor(&mut self, rv: u64) {
        if rv > self.rv {
            self.rv = rv;
            self.compacted = rv;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn key(name: &str) -> Key {
        (resources::SERVICES, "default".into(), name.into())
    }

    #[test]
    fn watch_replays_events_after_the_given_version() -> Result<(), ApiError> {
        let store = Store::new(10, None);
        let mut g = store.write();
        g.put(key("a"), json!({"metadata": {"name": "a"}}));
        g.put(key("b"), json!({"metadata": {"name": "b"}}));
        g.remove(&key("a"));
        let (replay, _rx) = g.watch_from(1)?;
        let got: Vec<_> = replay.iter().map(|e| (e.rv, e.kind, e.name.as_str())).collect();
        assert_eq!(got, vec![(2, EventType::Added, "b"), (3, EventType::Deleted, "a")]);
        assert_eq!(replay[1].object.value()["metadata"]["resourceVersion"], "3");
        Ok(())
    }

    #[test]
    fn bounded_history_answers_gone_for_versions_it_dropped() {
        let store = Store::new(3, None);
        let mut g = store.write();
        for i in 0..5 {
            g.put(key(&format!("s{i}")), json!({}));
        }
        // Events 3,4,5 retained; 2 was dropped, so watching from 2 still works (next is 3)
        // but from 1 event 2 is missing.
        assert!(g.watch_from(2).is_ok());
        let err = g.watch_from(1).err().map(|e| (e.code, e.reason));
        assert_eq!(err, Some((410, "Expired")));
    }

    #[test]
    fn compaction_makes_every_held_version_too_old() {
        let store = Store::new(100, None);
        store.write().put(key("a"), json!({}));
        let current = store.read().rv();
        store.compact();
        assert_eq!(store.read().watch_from(current).err().map(|e| e.code), Some(410));
        let now = store.read().rv();
        assert!(store.read().watch_from(now).is_ok());
    }

    #[test]
    fn range_is_limited_to_resource_and_namespace() {
        let store = Store::new(10, None);
        let mut g = store.write();
        g.put((resources::SERVICES, "a".into(), "x".into()), json!({}));
        g.put((resources::SERVICES, "b".into(), "y".into()), json!({}));
        g.put((resources::ENDPOINTS, "a".into(), "x".into()), json!({}));
        assert_eq!(g.range(resources::SERVICES, None, None).count(), 2);
        assert_eq!(g.range(resources::SERVICES, Some("a"), None).count(), 1);
        let first = (resources::SERVICES, "a".to_string(), "x".to_string());
        let rest: Vec<_> = g.range(resources::SERVICES, None, Some(&first)).map(|(k, _)| k.2.clone()).collect();
        assert_eq!(rest, vec!["y".to_string()]);
        assert!(!g.namespace_is_empty("a"));
        assert!(g.namespace_is_empty("c"));
    }
}
