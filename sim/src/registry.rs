//! The resources one cluster serves: the built-ins, and the served versions of every
//! established CustomResourceDefinition. The registry lives in the store and follows the
//! stored CRD objects under the store's write lock, so a CRD is served from the moment
//! its create commits until the moment its removal does.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use crate::crd::{self, Views};
use crate::resources::{BUILTINS, ResId, ResourceDef, split_api_version};
use crate::util;

#[derive(Debug)]
pub(crate) struct Registry {
    /// What each stored CRD contributes, by the store id of its resource.
    custom: BTreeMap<ResId, Views>,
    /// CRD name → store id. An id is never handed out twice.
    ids: HashMap<String, ResId>,
    next_id: ResId,
}

impl Default for Registry {
    fn default() -> Self {
        Self { custom: BTreeMap::new(), ids: HashMap::new(), next_id: BUILTINS.len() }
    }
}

/// A custom resource at a group, version and plural a built-in already has is not served:
/// the built-in wins, as kube-apiserver's handler chain tries built-ins first.
fn shadows_builtin(d: &ResourceDef) -> bool {
    BUILTINS.iter().any(|b| b.group == d.group && b.version == d.version && b.plural == d.plural)
}

impl Registry {
    /// Every served resource at every served version: built-ins in table order, then CRDs
    /// in the order they were first stored.
    pub(crate) fn served(&self) -> impl Iterator<Item = &Arc<ResourceDef>> {
        BUILTINS.iter().chain(self.custom.values().flat_map(|v| v.served.iter()))
    }

    /// Store ids of every resource that may hold objects (built-in or of a stored CRD).
    pub(crate) fn ids(&self) -> impl Iterator<Item = ResId> + '_ {
        (0..BUILTINS.len()).chain(self.custom.keys().copied())
    }

    /// The resource under store id `id` at its storage version.
    pub(crate) fn stored(&self, id: ResId) -> Option<&Arc<ResourceDef>> {
        BUILTINS.get(id).or_else(|| self.custom.get(&id).map(|v| &v.storage))
    }

    /// The served resource a URL names.
    pub(crate) fn by_plural(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceDef>> {
        self.served().find(|r| r.group == group && r.version == version && r.plural == plural).cloned()
    }

    /// The resource an object's `apiVersion` and `kind` name: a served one, else a
    /// custom resource's storage version even when not served (stored objects carry it).
    pub(crate) fn by_kind(&self, api_version: &str, kind: &str) -> Option<Arc<ResourceDef>> {
        let (group, version) = split_api_version(api_version);
        let named = |r: &&Arc<ResourceDef>| r.group == group && r.version == version && r.kind == kind;
        self.served().find(named).or_else(|| self.custom.values().map(|v| &v.storage).find(named)).cloned()
    }

    /// The store id of the resource the CRD `name` defines.
    pub(crate) fn crd_id(&self, name: &str) -> Option<ResId> {
        self.ids.get(name).copied()
    }

    /// Follows a stored (created or updated) CRD.
    pub(crate) fn put_crd(&mut self, crd: &Value) {
        let name = util::meta_str(crd, "name").unwrap_or("").to_string();
        let id = match self.ids.get(&name) {
            Some(id) => *id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.ids.insert(name, id);
                id
            }
        };
        match crd::views(crd, id) {
            Some(mut v) => {
                v.served.retain(|d| !shadows_builtin(d));
                self.custom.insert(id, v);
            }
            None => {
                self.custom.remove(&id);
            }
        }
    }

    /// Follows the removal of the CRD `name`.
    pub(crate) fn remove_crd(&mut self, name: &str) {
        if let Some(id) = self.ids.remove(name) {
            self.custom.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn crd(name: &str, group: &str, plural: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"group": group, "scope": "Namespaced",
            "names": {"plural": plural, "singular": "x", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true}]},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}})
    }

    #[test]
    fn crds_are_served_until_removed_and_never_shadow_built_ins() {
        let mut r = Registry::default();
        r.put_crd(&crd("widgets.example.com", "example.com", "widgets"));
        let w = r.by_plural("example.com", "v1", "widgets").map(|d| d.id);
        assert_eq!(w, Some(BUILTINS.len()));
        assert_eq!(r.by_kind("example.com/v1", "Widget").map(|d| d.id), w);
        // An update keeps the id.
        r.put_crd(&crd("widgets.example.com", "example.com", "widgets"));
        assert_eq!(r.crd_id("widgets.example.com"), w);
        r.remove_crd("widgets.example.com");
        assert!(r.by_plural("example.com", "v1", "widgets").is_none());
        assert!(r.stored(BUILTINS.len()).is_none());

        let mut shadow = crd("deployments.apps", "apps", "deployments");
        shadow["spec"]["versions"][0]["name"] = json!("v1");
        r.put_crd(&shadow);
        assert!(r.by_plural("apps", "v1", "deployments").is_some_and(|d| !d.is_custom()));
        assert_eq!(r.served().filter(|d| d.plural == "deployments").count(), 1);
    }
}
