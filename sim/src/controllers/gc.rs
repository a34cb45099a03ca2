//! The garbage collector of kube-controller-manager, over `metadata.ownerReferences`:
//! - an object whose owners are all gone (or were never there: no object of that kind,
//!   name and uid) is deleted, in the background unless its own finalizers say otherwise;
//!   references to missing owners are dropped from an object that still has a live one;
//! - an owner being deleted with `foregroundDeletion` has every dependent deleted and
//!   keeps that finalizer until no dependent with `blockOwnerDeletion: true` is left;
//! - an owner being deleted with `orphan` has its references taken off its dependents,
//!   then loses the finalizer.
//!
//! Owners of kinds the simulator does not serve are never treated as missing (the real
//! collector cannot resolve them either and keeps retrying). Cycles of foreground
//! deletions are not unblocked.

use serde_json::Value;

use crate::deletion::{self, DeleteOptions, Propagation};
use crate::key::{self, Key};
use crate::store::Inner;
use crate::util::{self, FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// How a dependent's owner reference resolves.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    /// Exists with that uid.
    Solid,
    /// Absent: no such object, or one with another uid.
    Dangling,
    /// Exists and is deleting its dependents in the foreground.
    Waiting,
}

/// Does the collector's part for the object at `key`.
pub(crate) fn collect(g: &mut Inner, key: &Key) {
    let Some(obj) = g.get(key) else { return };
    if util::meta_str(&obj, "deletionTimestamp").is_some() {
        let fins = util::finalizers(&obj);
        if fins.iter().any(|f| f == ORPHAN_FINALIZER) {
            orphan_dependents(g, key, &obj);
        } else if fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
            delete_dependents(g, key, &obj);
        }
        // Otherwise "being deleted" is a one-way trip: nothing to decide.
        return;
    }
    attempt_to_delete(g, key, &obj);
}

fn resolve(g: &Inner, ns: &str, r: &Value) -> Option<Owner> {
    let owner_key = key::owner_key(g.registry(), ns, r)?;
    let uid = r.get("uid").and_then(Value::as_str);
    let Some(owner) = g.get(&owner_key).filter(|o| util::meta_str(o, "uid") == uid) else {
        return Some(Owner::Dangling);
    };
    let waiting = util::meta_str(&owner, "deletionTimestamp").is_some()
        && util::finalizers(&owner).iter().any(|f| f == FOREGROUND_FINALIZER);
    Some(if waiting { Owner::Waiting } else { Owner::Solid })
}

/// `attemptToDeleteItem` for an object not being deleted.
fn attempt_to_delete(g: &mut Inner, key: &Key, obj: &Value) {
    let refs = util::owner_refs(obj);
    if refs.is_empty() {
        return;
    }
    // Unresolvable kinds count as solid: they are never collected.
    let states: Vec<Owner> = refs.iter().map(|r| resolve(g, &key.1, r).unwrap_or(Owner::Solid)).collect();
    if states.contains(&Owner::Solid) {
        let stale: Vec<String> = refs
            .iter()
            .zip(&states)
            .filter(|(_, s)| **s != Owner::Solid)
            .filter_map(|(r, _)| r.get("uid")?.as_str().map(String::from))
            .collect();
        drop_references(g, key, obj, &stale);
        return;
    }
    let has_dependents = util::meta_str(obj, "uid").is_some_and(|u| !g.dependents_of(u).is_empty());
    let fins = util::finalizers(obj);
    let policy = if states.contains(&Owner::Waiting) && has_dependents {
        Propagation::Foreground
    } else if fins.iter().any(|f| f == ORPHAN_FINALIZER) {
        Propagation::Orphan
    } else if fins.iter().any(|f| f == FOREGROUND_FINALIZER) {
        Propagation::Foreground
    } else {
        Propagation::Background
    };
    // Gone already or refused: nothing more for the collector to do.
    let _ = deletion::delete_locked(g, key, &DeleteOptions::with_policy(policy));
}

/// Takes the references to `uids` off the object at `key`.
fn drop_references(g: &mut Inner, key: &Key, obj: &Value, uids: &[String]) {
    if uids.is_empty() {
        return;
    }
    let mut next = obj.clone();
    if let Some(refs) = next.pointer_mut("/metadata/ownerReferences").and_then(Value::as_array_mut) {
        refs.retain(|r| !r.get("uid").and_then(Value::as_str).is_some_and(|u| uids.iter().any(|x| x == u)));
        if refs.is_empty()
            && let Some(meta) = util::meta_mut(&mut next)
        {
            meta.remove("ownerReferences");
        }
    }
    g.put(key.clone(), next);
}

fn orphan_dependents(g: &mut Inner, key: &Key, owner: &Value) {
    let uid = util::meta_str(owner, "uid").unwrap_or("").to_string();
    for dep_key in g.dependents_of(&uid) {
        if let Some(dep) = g.get(&dep_key) {
            drop_references(g, &dep_key, &dep, std::slice::from_ref(&uid));
        }
    }
    remove_finalizer(g, key, owner, ORPHAN_FINALIZER);
}

/// `processDeletingDependentsItem`: deletes the dependents, and drops the finalizer once
/// none of them blocks the owner.
fn delete_dependents(g: &mut Inner, key: &Key, owner: &Value) {
    let uid = util::meta_str(owner, "uid").unwrap_or("").to_string();
    for dep_key in g.dependents_of(&uid) {
        if let Some(dep) = g.get(&dep_key)
            && util::meta_str(&dep, "deletionTimestamp").is_none()
        {
            attempt_to_delete(g, &dep_key, &dep);
        }
    }
    let blocked = g.dependents_of(&uid).iter().filter_map(|k| g.get(k)).any(|d| {
        util::owner_refs(&d).iter().any(|r| {
            r.get("uid").and_then(Value::as_str) == Some(uid.as_str())
                && r.get("blockOwnerDeletion").and_then(Value::as_bool) == Some(true)
        })
    });
    if !blocked {
        remove_finalizer(g, key, owner, FOREGROUND_FINALIZER);
    }
}

fn remove_finalizer(g: &mut Inner, key: &Key, obj: &Value, finalizer: &str) {
    let mut next = obj.clone();
    let rest: Vec<String> = util::finalizers(obj).into_iter().filter(|f| f != finalizer).collect();
    if let Some(meta) = util::meta_mut(&mut next) {
        if rest.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), rest.into());
        }
    }
    deletion::write_update(g, key, obj, next);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::resources;
    use crate::store::Store;

    fn rs(name: &str, uid: &str) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": {"name": name, "namespace": "d", "uid": uid}})
    }

    fn cm(name: &str, owners: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "d", "uid": format!("cm-{name}"), "ownerReferences": owners}})
    }

    fn owner(name: &str, uid: &str, block: bool) -> Value {
        json!({"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": uid, "blockOwnerDeletion": block})
    }

    fn key(res: usize, name: &str) -> Key {
        (res, "d".into(), name.into())
    }

    #[test]
    fn dependents_with_only_missing_owners_go_and_live_owners_keep_theirs() {
        let s = Store::new(100, None);
        let mut g = s.write();
        g.put(key(resources::REPLICASETS, "live"), rs("live", "u-live"));
        g.put(key(3, "orphan"), cm("orphan", json!([owner("gone", "u-gone", false)])));
        g.put(key(3, "mixed"), cm("mixed", json!([owner("gone", "u-gone", false), owner("live", "u-live", false)])));
        // Same name, another uid: a different object, so the owner is missing.
        g.put(key(3, "renamed"), cm("renamed", json!([owner("live", "u-old", false)])));
        for n in ["orphan", "mixed", "renamed"] {
            collect(&mut g, &key(3, n));
        }
        assert!(!g.contains(&key(3, "orphan")));
        assert!(!g.contains(&key(3, "renamed")));
        let mixed = g.get(&key(3, "mixed")).map(|m| util::owner_uids(&m));
        assert_eq!(mixed, Some(vec!["u-live".to_string()]));
    }

    #[test]
    fn foreground_owner_waits_for_blocking_dependents_and_orphan_strips_references() {
        let s = Store::new(100, None);
        let mut g = s.write();
        let mut fg = rs("fg", "u-fg");
        fg["metadata"]["deletionTimestamp"] = json!("t");
        fg["metadata"]["finalizers"] = json!([FOREGROUND_FINALIZER]);
        g.put(key(resources::REPLICASETS, "fg"), fg);
        let mut held = cm("held", json!([owner("fg", "u-fg", true)]));
        held["metadata"]["finalizers"] = json!(["example.com/hold"]);
        g.put(key(3, "held"), held);
        collect(&mut g, &key(resources::REPLICASETS, "fg"));
        // The dependent is marked but its finalizer keeps it, so the owner waits.
        assert!(g.get(&key(3, "held")).is_some_and(|h| util::meta_str(&h, "deletionTimestamp").is_some()));
        assert!(g.contains(&key(resources::REPLICASETS, "fg")));

        let mut or = rs("or", "u-or");
        or["metadata"]["deletionTimestamp"] = json!("t");
        or["metadata"]["finalizers"] = json!([ORPHAN_FINALIZER]);
        g.put(key(resources::REPLICASETS, "or"), or);
        g.put(key(3, "kept"), cm("kept", json!([owner("or", "u-or", true)])));
        collect(&mut g, &key(resources::REPLICASETS, "or"));
        assert!(!g.contains(&key(resources::REPLICASETS, "or")));
        assert!(g.get(&key(3, "kept")).is_some_and(|k| util::owner_refs(&k).is_empty()));
    }
}
