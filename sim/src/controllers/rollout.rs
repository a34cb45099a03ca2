//! The deployment controller's ReplicaSets: each pod template a Deployment has had gets a
//! ReplicaSet `<deployment>-<pod-template-hash>` that the Deployment controls, numbered by
//! the `deployment.kubernetes.io/revision` annotation. The one matching the current
//! template (a new one, or an old one brought back by `kubectl rollout undo`) gets the
//! replicas and the highest revision; the others are scaled to zero, and those beyond
//! `spec.revisionHistoryLimit` are deleted. A paused Deployment starts no new ReplicaSet.
//!
//! The rollout itself is immediate (no surge, no waiting for pods), like the rest of the
//! simulated workload status.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::objects::put_new;
use crate::deletion::{self, DeleteOptions, Propagation};
use crate::key::Key;
use crate::resources;
use crate::store::Inner;
use crate::util;

const REVISION: &str = "deployment.kubernetes.io/revision";
const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
const DESIRED: &str = "deployment.kubernetes.io/desired-replicas";
const MAX: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells a Deployment's ReplicaSets (and their pods) apart.
const HASH_LABEL: &str = "pod-template-hash";
/// Deployment annotations a ReplicaSet never copies (the controller's own, and kubectl's).
const NOT_COPIED: [&str; 6] = [
    "kubectl.kubernetes.io/last-applied-configuration",
    REVISION,
    REVISION_HISTORY,
    DESIRED,
    MAX,
    "deprecated.deployment.rollback.to",
];
/// The alphabet of `rand.SafeEncodeString`, which spells pod-template hashes.
const HASH_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

type Owned = Vec<(Key, Arc<Value>)>;

/// Brings the ReplicaSets of the Deployment at `key` in line with it.
pub(super) fn reconcile(g: &mut Inner, key: &Key) {
    let Some(d) = g.get(key) else { return };
    let Some(uid) = util::meta_str(&d, "uid").map(String::from) else { return };
    if util::meta_str(&d, "deletionTimestamp").is_some() {
        return;
    }
    let owned = owned_sets(g, &uid);
    let want = normalized(d.pointer("/spec/template"));
    let max_rev = owned.iter().map(|(_, rs)| revision(rs)).max().unwrap_or(0);
    let replicas = d.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
    let current = owned.iter().find(|(_, rs)| normalized(rs.pointer("/spec/template")) == want).cloned();
    let paused = d.pointer("/spec/paused") == Some(&Value::Bool(true));
    let (new_key, rev) = match current {
        Some((k, rs)) => (k.clone(), update_current(g, &d, &k, &rs, max_rev, replicas)),
        None if paused => return,
        None => match create(g, &d, key, &want, max_rev + 1, replicas) {
            Some(k) => (k, max_rev + 1),
            None => return,
        },
    };
    let old: Owned = owned.into_iter().filter(|(k, _)| *k != new_key).collect();
    for (k, rs) in &old {
        write_if_changed(g, k, rs, |next| set_in(next, &["spec", "replicas"], json!(0)));
    }
    prune(g, &d, old);
    write_if_changed(g, key, &d, |next| set_in(next, &["metadata", "annotations", REVISION], json!(rev.to_string())));
}

/// The ReplicaSets whose controller is the Deployment with `uid`.
fn owned_sets(g: &Inner, uid: &str) -> Owned {
    g.dependents_of(uid)
        .into_iter()
        .filter(|k| k.0 == resources::REPLICASETS)
        .filter_map(|k| g.get(&k).map(|rs| (k, rs)))
        .filter(|(_, rs)| {
            util::owner_refs(rs)
                .iter()
                .any(|r| r["controller"] == true && r.get("uid").and_then(Value::as_str) == Some(uid))
        })
        .collect()
}

fn revision(rs: &Value) -> u64 {
    util::annotation(rs, REVISION).and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// A pod template as the controller compares them: without the hash label, and without
/// what a round trip through Go types adds or drops (nulls, empty maps and lists), so the
/// template `kubectl rollout undo` writes back matches the ReplicaSet it came from.
fn normalized(template: Option<&Value>) -> Value {
    let mut t = template.cloned().unwrap_or_else(|| json!({}));
    if let Some(labels) = t.pointer_mut("/metadata/labels").and_then(Value::as_object_mut) {
        labels.remove(HASH_LABEL);
    }
    prune_empty(&mut t);
    t
}

fn prune_empty(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(prune_empty);
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => a.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Object(m) => m.is_empty(),
        Value::Array(a) => a.is_empty(),
        _ => false,
    }
}

/// `ComputeHash`'s shape: a 32-bit FNV-1a of the template (and the collision count),
/// its decimal digits spelled in the safe alphabet.
fn template_hash(template: &Value, collisions: u32) -> String {
    let mut text = template.to_string();
    if collisions > 0 {
        text.push_str(&collisions.to_string());
    }
    let h = text.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    h.to_string().bytes().map(|b| char::from(HASH_ALPHABET[usize::from(b) % HASH_ALPHABET.len()])).collect()
}

/// The Deployment's annotations a ReplicaSet carries, plus the controller's own.
fn annotations(d: &Value, rev: u64, history: Option<String>, replicas: u64) -> Map<String, Value> {
    let mut out: Map<String, Value> = d
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter().filter(|(k, _)| !NOT_COPIED.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
        })
        .unwrap_or_default();
    out.insert(REVISION.into(), json!(rev.to_string()));
    if let Some(h) = history {
        out.insert(REVISION_HISTORY.into(), json!(h));
    }
    out.insert(DESIRED.into(), json!(replicas.to_string()));
    out.insert(MAX.into(), json!((replicas + max_surge(d, replicas)).to_string()));
    out
}

/// `spec.strategy.rollingUpdate.maxSurge` resolved against `replicas` (percentages round
/// up); none for Recreate.
fn max_surge(d: &Value, replicas: u64) -> u64 {
    match d.pointer("/spec/strategy/rollingUpdate/maxSurge") {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        Some(Value::String(s)) => {
            s.strip_suffix('%').and_then(|p| p.parse::<u64>().ok()).map_or(0, |p| (replicas * p).div_ceil(100))
        }
        _ => 0,
    }
}

/// A new ReplicaSet for the Deployment's current template; its key, or `None` when the
/// namespace is going away.
fn create(g: &mut Inner, d: &Value, key: &Key, want: &Value, rev: u64, replicas: u64) -> Option<Key> {
    if g.namespace_terminating(&key.1) {
        return None;
    }
    let (hash, rs_key) = (0..100).find_map(|c| {
        let hash = template_hash(want, c);
        let k: Key = (resources::REPLICASETS, key.1.clone(), format!("{}-{hash}", key.2));
        (!g.contains(&k)).then_some((hash, k))
    })?;
    let mut template = d.pointer("/spec/template").cloned().unwrap_or_else(|| json!({}));
    set_in(&mut template, &["metadata", "labels", HASH_LABEL], json!(hash));
    let mut selector = d.pointer("/spec/selector").cloned().unwrap_or_else(|| json!({}));
    set_in(&mut selector, &["matchLabels", HASH_LABEL], json!(hash));
    let mut spec = json!({"replicas": replicas, "selector": selector, "template": template.clone()});
    if let Some(m) = d.pointer("/spec/minReadySeconds") {
        spec["minReadySeconds"] = m.clone();
    }
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": rs_key.2,
            "labels": template.pointer("/metadata/labels").cloned().unwrap_or_else(|| json!({})),
            "annotations": annotations(d, rev, None, replicas),
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": key.2,
                "uid": util::meta_str(d, "uid").unwrap_or(""), "controller": true, "blockOwnerDeletion": true}],
        },
        "spec": spec,
    });
    put_new(g, rs_key.clone(), rs);
    Some(rs_key)
}

/// Sets `obj.<path>` to `v`, making objects of whatever lies on the way (so malformed
/// input never panics an index).
fn set_in(obj: &mut Value, path: &[&str], v: Value) {
    let mut cur = obj;
    for seg in path {
        if !cur.is_object() {
            *cur = json!({});
        }
        let Some(m) = cur.as_object_mut() else { return };
        cur = m.entry(*seg).or_insert(Value::Null);
    }
    *cur = v;
}

/// The ReplicaSet matching the current template takes the replicas; brought back from
/// an older revision, it takes the next one and remembers the one it had. Returns its
/// revision.
fn update_current(g: &mut Inner, d: &Value, k: &Key, rs: &Arc<Value>, max_rev: u64, replicas: u64) -> u64 {
    let had = revision(rs);
    let (rev, history) = if had < max_rev {
        let mut h: Vec<String> = util::annotation(rs, REVISION_HISTORY)
            .map(|h| h.split(',').map(String::from).collect())
            .unwrap_or_default();
        h.push(had.to_string());
        (max_rev + 1, Some(h.join(",")))
    } else {
        (had, util::annotation(rs, REVISION_HISTORY).map(String::from))
    };
    write_if_changed(g, k, rs, |next| {
        set_in(next, &["spec", "replicas"], json!(replicas));
        let mut merged = next.pointer("/metadata/annotations").and_then(Value::as_object).cloned().unwrap_or_default();
        merged.extend(annotations(d, rev, history, replicas));
        set_in(next, &["metadata", "annotations"], Value::Object(merged));
    });
    rev
}

/// Deletes the oldest scaled-down ReplicaSets beyond `spec.revisionHistoryLimit`.
fn prune(g: &mut Inner, d: &Value, mut old: Owned) {
    let limit = d.pointer("/spec/revisionHistoryLimit").and_then(Value::as_u64).unwrap_or(10);
    let Some(excess) = old.len().checked_sub(usize::try_from(limit).unwrap_or(usize::MAX)).filter(|n| *n > 0) else {
        return;
    };
    old.sort_by_key(|(_, rs)| revision(rs));
    let background = DeleteOptions::with_policy(Propagation::Background);
    for (k, _) in old.into_iter().take(excess) {
        // Removed meanwhile is fine.
        let _ = deletion::delete_locked(g, &k, &background);
    }
}

/// Applies `change` to a copy of `cur` and stores it if it differs (the controller's
/// writes go straight to the store, like its status updates).
fn write_if_changed(g: &mut Inner, key: &Key, cur: &Arc<Value>, change: impl FnOnce(&mut Value)) {
    let Some(latest) = g.get(key).filter(|l| util::meta_str(l, "uid") == util::meta_str(cur, "uid")) else {
        return;
    };
    let mut next = (*latest).clone();
    change(&mut next);
    if next != *latest {
        g.put(key.clone(), next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_compare_without_the_hash_label_and_empty_values() {
        let a = json!({"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}});
        let b = json!({"metadata": {"creationTimestamp": null, "labels": {"app": "web", "pod-template-hash": "abc"}},
            "spec": {"containers": [{"name": "c", "image": "x", "resources": {}}]}});
        assert_eq!(normalized(Some(&a)), normalized(Some(&b)));
        let hash = template_hash(&normalized(Some(&a)), 0);
        assert!(!hash.is_empty() && hash.bytes().all(|c| HASH_ALPHABET.contains(&c)), "{hash}");
        assert_ne!(hash, template_hash(&normalized(Some(&a)), 1));
    }

    #[test]
    fn max_surge_resolves_percentages_upwards() {
        let d = |s: Value| json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": s}}}});
        assert_eq!(max_surge(&d(json!("25%")), 3), 1);
        assert_eq!(max_surge(&d(json!(2)), 3), 2);
        assert_eq!(max_surge(&json!({"spec": {"strategy": {"type": "Recreate"}}}), 3), 0);
    }
}
