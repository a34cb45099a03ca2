//! The CRD finalizer controller of the apiextensions server: a CRD being deleted has every
//! object of its resource deleted (each through the normal delete, so the objects' own
//! finalizers hold them), and loses the `customresourcecleanup.apiextensions.k8s.io`
//! finalizer once none is left, which removes it.

use crate::crd;
use crate::deletion::{self, DeleteOptions, Propagation};
use crate::key::Key;
use crate::resources;
use crate::store::Inner;
use crate::util;

/// Does the controller's part for the CRD `name`.
pub(crate) fn finalize(g: &mut Inner, name: &str) {
    let key: Key = (resources::CRDS, String::new(), name.to_string());
    let Some(crd_obj) = g.get(&key) else { return };
    let fins = util::finalizers(&crd_obj);
    if util::meta_str(&crd_obj, "deletionTimestamp").is_none() || !fins.iter().any(|f| f == crd::CLEANUP_FINALIZER) {
        return;
    }
    let objects = g.registry().crd_id(name).map(|id| g.keys_of(id)).unwrap_or_default();
    let background = DeleteOptions::with_policy(Propagation::Background);
    for k in &objects {
        if g.get(k).is_some_and(|o| util::meta_str(&o, "deletionTimestamp").is_none()) {
            // Objects removed meanwhile are fine to skip.
            let _ = deletion::delete_locked(g, k, &background);
        }
    }
    let left = objects.iter().filter(|k| g.contains(k)).count();
    let mut next = (*crd_obj).clone();
    if left > 0 {
        // Finalizers hold some objects; each removal brings the CRD back here.
        let message = format!("could not confirm zero CustomResources remaining: {left} left");
        crd::set_condition(&mut next, "Terminating", true, "InstanceDeletionCheck", &message);
        if next != *crd_obj {
            g.put(key, next);
        }
        return;
    }
    crd::set_condition(&mut next, "Terminating", false, "InstanceDeletionCompleted", "removed all instances");
    let rest: Vec<String> = fins.into_iter().filter(|f| f != crd::CLEANUP_FINALIZER).collect();
    if let Some(meta) = util::meta_mut(&mut next) {
        meta.insert("finalizers".into(), rest.into());
    }
    deletion::write_update(g, &key, &crd_obj, next);
}
