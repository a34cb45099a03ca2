//! Store keys: which object a request, an owner reference or an event is about.

use serde_json::Value;

use crate::registry::Registry;
use crate::resources::{ResId, ResourceDef};

/// (resource, namespace or "" for cluster-scoped, name). Ordered so one resource, and one
/// namespace within it, are contiguous ranges.
pub(crate) type Key = (ResId, String, String);

/// The key of `name` in `ns`; the namespace is dropped for cluster-scoped resources.
pub(crate) fn key_for(def: &ResourceDef, ns: Option<&str>, name: &str) -> Key {
    let ns = if def.namespaced { ns.unwrap_or("") } else { "" };
    (def.id, ns.to_string(), name.to_string())
}

/// The store key an owner reference points at, seen from a dependent in namespace `ns`
/// (cluster-scoped owners live outside any namespace). `None` for kinds not served.
pub(crate) fn owner_key(registry: &Registry, ns: &str, r: &Value) -> Option<Key> {
    let api_version = r.get("apiVersion")?.as_str()?;
    let def = registry.by_kind(api_version, r.get("kind")?.as_str()?)?;
    Some(key_for(&def, Some(ns), r.get("name")?.as_str()?))
}
