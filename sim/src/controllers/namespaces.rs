//! The namespace controller: a Terminating namespace whose `spec.finalizers` still holds
//! `kubernetes` has its contents deleted (background propagation, once per object); when
//! nothing is left inside, `kubernetes` is removed as `/finalize` would, and the namespace
//! goes once no other spec or metadata finalizer remains.

use crate::deletion::{self, DeleteOptions, NAMESPACE_FINALIZER, Propagation};
use crate::key::Key;
use crate::resources;
use crate::store::Inner;
use crate::util;

/// Does the controller's part for namespace `name`.
pub(crate) fn finalize(g: &mut Inner, name: &str) {
    let key: Key = (resources::NAMESPACES, String::new(), name.to_string());
    let Some(ns) = g.get(&key) else { return };
    let spec_fins = deletion::namespace_spec_finalizers(&ns);
    if util::meta_str(&ns, "deletionTimestamp").is_none() || !spec_fins.iter().any(|f| f == NAMESPACE_FINALIZER) {
        return;
    }
    let background = DeleteOptions::with_policy(Propagation::Background);
    for k in g.keys_in_namespace(name) {
        if g.get(&k).is_some_and(|o| util::meta_str(&o, "deletionTimestamp").is_none()) {
            // Objects removed meanwhile are fine to skip.
            let _ = deletion::delete_locked(g, &k, &background);
        }
    }
    if !g.namespace_is_empty(name) {
        // Objects held by finalizers remain; their removal brings the namespace back here.
        return;
    }
    let mut next = (*ns).clone();
    let rest: Vec<String> = spec_fins.into_iter().filter(|f| f != NAMESPACE_FINALIZER).collect();
    if let Some(spec) = next.get_mut("spec").and_then(serde_json::Value::as_object_mut) {
        spec.insert("finalizers".into(), rest.into());
    }
    deletion::write_update(g, &key, &ns, next);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::store::Store;

    fn ns(fins: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "tmp", "deletionTimestamp": "t", "finalizers": fins},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Terminating"}})
    }

    #[test]
    fn contents_go_first_then_spec_then_metadata_finalizers_decide() {
        let s = Store::new(100, None);
        let mut g = s.write();
        let ns_key: Key = (resources::NAMESPACES, String::new(), "tmp".into());
        g.put(ns_key.clone(), ns(json!(["example.com/hold"])));
        let cm_key: Key = (3, "tmp".into(), "a".into());
        let held: Key = (3, "tmp".into(), "b".into());
        g.put(cm_key.clone(), json!({"metadata": {"name": "a"}}));
        g.put(held.clone(), json!({"metadata": {"name": "b", "finalizers": ["example.com/x"]}}));
        finalize(&mut g, "tmp");
        assert!(!g.contains(&cm_key));
        assert!(g.get(&held).is_some_and(|o| util::meta_str(&o, "deletionTimestamp").is_some()));
        assert!(g.get(&ns_key).is_some_and(|n| deletion::namespace_spec_finalizers(&n) == ["kubernetes"]));
        g.remove(&held);
        finalize(&mut g, "tmp");
        // Spec finalized, but the metadata finalizer keeps it Terminating.
        let n = g.get(&ns_key);
        assert!(n.as_ref().is_some_and(|n| deletion::namespace_spec_finalizers(n).is_empty()));
        assert_eq!(n.map(|n| n["status"]["phase"].clone()), Some(json!("Terminating")));
    }
}
