//! DELETE as kube-apiserver's generic registry store and namespace storage do it: uid and
//! resourceVersion preconditions, the garbage collector's `orphan` and `foregroundDeletion`
//! finalizers from the propagation policy, marking (`deletionTimestamp`,
//! `deletionGracePeriodSeconds: 0`, generation bump) while finalizers remain, and the final
//! removal once an update empties the finalizers.
//!
//! What happens next is the controllers' part: the garbage collector
//! (`controllers::gc`) and the namespace controller (`controllers::namespaces`).

use std::sync::Arc;

use serde_json::{Value, json};

use crate::crd;
use crate::error::ApiError;
use crate::key::{Key, key_for};
use crate::resources::{self, ResourceDef};
use crate::store::{Inner, Store};
use crate::util::{self, FOREGROUND_FINALIZER, ORPHAN_FINALIZER};

/// Namespaces the real server refuses to delete.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// The namespace controller's own entry in a Namespace's `spec.finalizers`.
pub(crate) const NAMESPACE_FINALIZER: &str = "kubernetes";

/// `DeleteOptions.propagationPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Propagation {
    Orphan,
    Background,
    Foreground,
}

/// The DeleteOptions the store acts on.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOptions {
    orphan_dependents: Option<bool>,
    propagation: Option<Propagation>,
    uid: Option<String>,
    resource_version: Option<String>,
    pub(crate) dry_run: bool,
}

impl DeleteOptions {
    /// Reads DeleteOptions (body merged with query parameters), validated like the real
    /// server's `ValidateDeleteOptions`.
    pub(crate) fn parse(v: &Value, dry_run: bool) -> Result<Self, ApiError> {
        let propagation = match v.get("propagationPolicy").and_then(Value::as_str) {
            None => None,
            Some("Orphan") => Some(Propagation::Orphan),
            Some("Background") => Some(Propagation::Background),
            Some("Foreground") => Some(Propagation::Foreground),
            Some(other) => {
                return Err(ApiError::invalid(
                    "DeleteOptions",
                    "",
                    format!(
                        "propagationPolicy: Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""
                    ),
                ));
            }
        };
        let orphan_dependents = v.get("orphanDependents").and_then(Value::as_bool);
        if orphan_dependents.is_some() && propagation.is_some() {
            return Err(ApiError::invalid(
                "DeleteOptions",
                "",
                "propagationPolicy: Invalid value: orphanDependents and deletionPropagation cannot be both set",
            ));
        }
        let pre = |f: &str| v.pointer(&format!("/preconditions/{f}")).and_then(Value::as_str).map(String::from);
        Ok(Self { orphan_dependents, propagation, uid: pre("uid"), resource_version: pre("resourceVersion"), dry_run })
    }

    /// A controller's delete with an explicit policy (the garbage collector's, the
    /// namespace controller's background deletes).
    pub(crate) fn with_policy(p: Propagation) -> Self {
        Self { propagation: Some(p), ..Self::default() }
    }

    /// kube-apiserver answers 202 instead of 200 only for an object kept after a delete
    /// with `orphanDependents: false` (endpoints/handlers/delete.go).
    pub(crate) fn kept_status(&self) -> u16 {
        if self.orphan_dependents == Some(false) { 202 } else { 200 }
    }

    /// `shouldOrphanDependents` of the generic store (every simulated type defaults to
    /// background deletion).
    fn orphans(&self, fins: &[String]) -> bool {
        if let Some(o) = self.orphan_dependents {
            return o;
        }
        match self.propagation {
            Some(p) => p == Propagation::Orphan,
            None => first_gc_finalizer(fins) == Some(ORPHAN_FINALIZER),
        }
    }

    /// `shouldDeleteDependents` of the generic store.
    fn foreground(&self, fins: &[String]) -> bool {
        if self.orphan_dependents.is_some() {
            return false;
        }
        match self.propagation {
            Some(p) => p == Propagation::Foreground,
            None => first_gc_finalizer(fins) == Some(FOREGROUND_FINALIZER),
        }
    }

    /// The namespace storage's own rules (`shouldHaveOrphanFinalizer` and
    /// `shouldHaveDeleteDependentsFinalizer`): `orphanDependents: false` means foreground.
    fn namespace_gc(&self, fins: &[String]) -> (bool, bool) {
        let has = |f: &str| fins.iter().any(|x| x == f);
        match (self.orphan_dependents, self.propagation) {
            (Some(o), _) => (o, !o),
            (None, Some(p)) => (p == Propagation::Orphan, p == Propagation::Foreground),
            (None, None) => (has(ORPHAN_FINALIZER), has(FOREGROUND_FINALIZER)),
        }
    }
}

fn first_gc_finalizer(fins: &[String]) -> Option<&'static str> {
    fins.iter().find_map(|f| match f.as_str() {
        ORPHAN_FINALIZER => Some(ORPHAN_FINALIZER),
        FOREGROUND_FINALIZER => Some(FOREGROUND_FINALIZER),
        _ => None,
    })
}

/// `fins` without the garbage collector's finalizers, then with those the options ask for.
fn with_gc_finalizers(fins: &[String], orphan: bool, foreground: bool) -> Vec<String> {
    let mut out: Vec<String> =
        fins.iter().filter(|f| *f != ORPHAN_FINALIZER && *f != FOREGROUND_FINALIZER).cloned().collect();
    if orphan {
        out.push(ORPHAN_FINALIZER.into());
    }
    if foreground {
        out.push(FOREGROUND_FINALIZER.into());
    }
    out
}

/// Outcome of a DELETE.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// Removed; carries the last state.
    Gone(Arc<Value>),
    /// Finalizers remain: only marked with `deletionTimestamp`.
    Marked(Arc<Value>),
}

/// DELETE of one object.
pub(crate) fn delete(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    opts: &DeleteOptions,
) -> Result<Deleted, ApiError> {
    if def.id == resources::NAMESPACES && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    let key = key_for(def, ns, name);
    delete_locked(&mut store.write(), &key, opts)
}

/// DELETE under a held store lock (also the controllers' entry point).
pub(crate) fn delete_locked(g: &mut Inner, key: &Key, opts: &DeleteOptions) -> Result<Deleted, ApiError> {
    let Some(old) = g.get(key) else {
        return Err(match g.registry().stored(key.0) {
            Some(def) => def.not_found(&key.2),
            None => ApiError::new(404, "NotFound", "the server could not find the requested resource"),
        });
    };
    check_preconditions(&old, opts)?;
    Ok(match key.0 {
        resources::NAMESPACES => delete_namespace(g, key, &old, opts),
        resources::CRDS => delete_crd(g, key, &old, opts),
        _ => delete_object(g, key, &old, opts),
    })
}

fn check_preconditions(old: &Value, opts: &DeleteOptions) -> Result<(), ApiError> {
    let failed = |what: &str, want: &str, have: &str| {
        ApiError::new(
            409,
            "Conflict",
            format!("Precondition failed: {what} in precondition: {want}, {what} in object meta: {have}"),
        )
    };
    let have_uid = util::meta_str(old, "uid").unwrap_or("");
    if let Some(uid) = opts.uid.as_deref().filter(|u| *u != have_uid) {
        return Err(failed("UID", uid, have_uid));
    }
    let have_rv = util::meta_str(old, "resourceVersion").unwrap_or("");
    if let Some(rv) = opts.resource_version.as_deref().filter(|r| *r != have_rv) {
        return Err(failed("ResourceVersion", rv, have_rv));
    }
    Ok(())
}

/// The generic store's Delete for resources without graceful deletion: with no finalizer
/// left after applying the propagation policy the object goes now, otherwise it is marked.
fn delete_object(g: &mut Inner, key: &Key, old: &Arc<Value>, opts: &DeleteOptions) -> Deleted {
    let fins = util::finalizers(old);
    let fins = with_gc_finalizers(&fins, opts.orphans(&fins), opts.foreground(&fins));
    if fins.is_empty() {
        if opts.dry_run {
            return Deleted::Gone(old.clone());
        }
        return Deleted::Gone(g.remove(key).unwrap_or_else(|| old.clone()));
    }
    let mut new = (**old).clone();
    let first = util::meta_str(old, "deletionTimestamp").is_none();
    if let Some(meta) = util::meta_mut(&mut new) {
        // markAsDeleting: the generation moves once, when the deletion starts.
        if first && let Some(gen_) = meta.get("generation").and_then(Value::as_i64).filter(|g| *g > 0) {
            meta.insert("generation".into(), json!(gen_ + 1));
        }
        meta.entry("deletionTimestamp").or_insert_with(|| json!(util::now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        meta.insert("finalizers".into(), json!(fins));
    }
    store_marked(g, key, old, new, opts)
}

/// Namespace storage's Delete: the first delete only starts termination (Terminating,
/// with the namespace's own GC finalizer rules); later ones wait for `spec.finalizers`
/// to empty, then delete like any object.
fn delete_namespace(g: &mut Inner, key: &Key, old: &Arc<Value>, opts: &DeleteOptions) -> Deleted {
    if util::meta_str(old, "deletionTimestamp").is_some() {
        if !namespace_spec_finalizers(old).is_empty() {
            return Deleted::Marked(old.clone());
        }
        return delete_object(g, key, old, opts);
    }
    let mut new = (**old).clone();
    let fins = util::finalizers(old);
    let (orphan, foreground) = opts.namespace_gc(&fins);
    let fins = with_gc_finalizers(&fins, orphan, foreground);
    if let Some(meta) = util::meta_mut(&mut new) {
        meta.insert("deletionTimestamp".into(), json!(util::now_rfc3339()));
        if fins.is_empty() {
            meta.remove("finalizers");
        } else {
            meta.insert("finalizers".into(), json!(fins));
        }
    }
    if let Some(m) = new.as_object_mut() {
        let status = m.entry("status").or_insert_with(|| json!({}));
        if let Some(s) = status.as_object_mut() {
            s.insert("phase".into(), json!("Terminating"));
        }
    }
    store_marked(g, key, old, new, opts)
}

/// The CRD storage's Delete: the first delete only marks the CRD (deletionTimestamp, the
/// cleanup finalizer, a Terminating condition) and leaves its objects to the finalizer
/// controller; later ones delete like any object.
fn delete_crd(g: &mut Inner, key: &Key, old: &Arc<Value>, opts: &DeleteOptions) -> Deleted {
    if util::meta_str(old, "deletionTimestamp").is_some() {
        return delete_object(g, key, old, opts);
    }
    let mut new = (**old).clone();
    let mut fins = util::finalizers(old);
    if !fins.iter().any(|f| f == crd::CLEANUP_FINALIZER) {
        fins.push(crd::CLEANUP_FINALIZER.into());
    }
    if let Some(meta) = util::meta_mut(&mut new) {
        meta.insert("deletionTimestamp".into(), json!(util::now_rfc3339()));
        meta.insert("finalizers".into(), json!(fins));
    }
    crd::set_condition(
        &mut new,
        "Terminating",
        true,
        "InstanceDeletionPending",
        "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
    );
    store_marked(g, key, old, new, opts)
}

fn store_marked(g: &mut Inner, key: &Key, old: &Arc<Value>, new: Value, opts: &DeleteOptions) -> Deleted {
    if new == **old {
        return Deleted::Marked(old.clone());
    }
    if opts.dry_run {
        return Deleted::Marked(Arc::new(new));
    }
    Deleted::Marked(g.put(key.clone(), new))
}

/// A Namespace's `spec.finalizers`.
pub(crate) fn namespace_spec_finalizers(ns: &Value) -> Vec<String> {
    ns.pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// `ShouldDeleteDuringUpdate` (and the namespace storage's variant): an update that leaves
/// an object being deleted without finalizers deletes it.
fn finalized(key: &Key, old: &Value, new: &Value) -> bool {
    let grace_done = old.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).is_none_or(|g| g == 0);
    util::meta_str(old, "deletionTimestamp").is_some()
        && grace_done
        && util::finalizers(new).is_empty()
        && (key.0 != resources::NAMESPACES || namespace_spec_finalizers(new).is_empty())
}

/// Stores an update of `old`, or removes the object when the update finalized it. Returns
/// what the client is answered: the updated object either way.
pub(crate) fn write_update(g: &mut Inner, key: &Key, old: &Value, new: Value) -> Arc<Value> {
    if finalized(key, old, &new) {
        g.remove(key);
        return Arc::new(new);
    }
    g.put(key.clone(), new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::BUILTINS;

    fn store_with(objs: &[(Key, Value)]) -> Store {
        let s = Store::new(100, None);
        {
            let mut g = s.write();
            for (k, o) in objs {
                g.put(k.clone(), o.clone());
            }
        }
        s
    }

    fn cm_key(name: &str) -> Key {
        (3, "default".into(), name.into())
    }

    fn cm(name: &str, fins: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default", "uid": "u1", "generation": 1, "finalizers": fins}})
    }

    fn opts(v: Value) -> Result<DeleteOptions, ApiError> {
        DeleteOptions::parse(&v, false)
    }

    // generic registry store: deletionFinalizersForGarbageCollection + markAsDeleting.
    #[test]
    fn propagation_policies_add_their_gc_finalizer_and_mark() -> Result<(), ApiError> {
        let cases = [
            (json!({"propagationPolicy": "Orphan"}), vec!["orphan"]),
            (json!({"orphanDependents": true}), vec!["orphan"]),
            (json!({"propagationPolicy": "Foreground"}), vec!["foregroundDeletion"]),
        ];
        for (o, want) in cases {
            let s = store_with(&[(cm_key("a"), cm("a", json!([])))]);
            let Deleted::Marked(m) = delete(&s, &BUILTINS[3], Some("default"), "a", &opts(o.clone())?)? else {
                panic!("{o}: expected the object to be kept");
            };
            assert_eq!(util::finalizers(&m), want, "{o}");
            assert!(util::meta_str(&m, "deletionTimestamp").is_some(), "{o}");
            assert_eq!(m["metadata"]["deletionGracePeriodSeconds"], 0, "{o}");
            assert_eq!(m["metadata"]["generation"], 2, "{o}");
        }
        Ok(())
    }

    #[test]
    fn background_without_finalizers_removes_and_finalizers_mark_without_a_trace_of_the_options() -> Result<(), ApiError>
    {
        let s = store_with(&[(cm_key("a"), cm("a", json!([]))), (cm_key("b"), cm("b", json!(["x.io/hold"])))]);
        assert!(matches!(delete(&s, &BUILTINS[3], Some("default"), "a", &opts(json!({}))?)?, Deleted::Gone(_)));
        let o = opts(json!({"orphanDependents": false}))?;
        assert_eq!(o.kept_status(), 202);
        let Deleted::Marked(m) = delete(&s, &BUILTINS[3], Some("default"), "b", &o)? else { panic!("b must be kept") };
        assert_eq!(util::finalizers(&m), vec!["x.io/hold".to_string()]);
        // Like kube-apiserver, nothing on the object says how it was deleted.
        assert!(m["metadata"].get("annotations").is_none(), "{m}");
        // A second delete changes nothing (no new write).
        let rv = util::meta_str(&m, "resourceVersion").map(String::from);
        let Deleted::Marked(again) = delete(&s, &BUILTINS[3], Some("default"), "b", &opts(json!({}))?)? else {
            panic!()
        };
        assert_eq!(util::meta_str(&again, "resourceVersion").map(String::from), rv);
        Ok(())
    }

    #[test]
    fn invalid_options_and_failed_preconditions_are_refused() -> Result<(), ApiError> {
        let both = DeleteOptions::parse(&json!({"orphanDependents": true, "propagationPolicy": "Orphan"}), false);
        assert_eq!(both.err().map(|e| e.code), Some(422));
        let s = store_with(&[(cm_key("a"), cm("a", json!([])))]);
        let o = opts(json!({"preconditions": {"uid": "other"}}))?;
        assert_eq!(delete(&s, &BUILTINS[3], Some("default"), "a", &o).err().map(|e| e.code), Some(409));
        Ok(())
    }

    // namespace storage: the first delete only starts termination.
    #[test]
    fn namespace_delete_marks_terminating_until_spec_finalizers_clear() -> Result<(), ApiError> {
        let key: Key = (resources::NAMESPACES, String::new(), "tmp".into());
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let s = store_with(&[(key.clone(), ns)]);
        let Deleted::Marked(m) = delete(&s, &BUILTINS[0], None, "tmp", &opts(json!({}))?)? else { panic!() };
        assert_eq!(m["status"]["phase"], "Terminating");
        assert!(m["metadata"].get("deletionGracePeriodSeconds").is_none());
        let Deleted::Marked(_) = delete(&s, &BUILTINS[0], None, "tmp", &opts(json!({}))?)? else { panic!() };
        assert_eq!(delete(&s, &BUILTINS[0], None, "default", &opts(json!({}))?).err().map(|e| e.code), Some(403));
        // Emptying spec.finalizers (what /finalize does) removes it.
        let mut done = (*m).clone();
        done["spec"]["finalizers"] = json!([]);
        let mut g = s.write();
        write_update(&mut g, &key, &m, done);
        assert!(!g.contains(&key));
        Ok(())
    }
}
