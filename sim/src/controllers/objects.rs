//! Helpers the controllers share for the objects they read and write.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::key::Key;
use crate::resources;
use crate::store::Inner;
use crate::util;

/// Names of the cluster's Nodes, for endpoint `nodeName`s and DaemonSet counts.
pub(crate) fn node_names(g: &Inner) -> Vec<String> {
    g.range(resources::NODES, None, None).map(|(k, _)| k.2.clone()).collect()
}

/// Stores a controller-created object with the metadata the API server would add.
pub(crate) fn put_new(g: &mut Inner, key: Key, mut obj: Value) -> Arc<Value> {
    if let Some(m) = util::meta_mut(&mut obj) {
        m.entry("uid").or_insert_with(|| Value::String(util::uid()));
        m.entry("creationTimestamp").or_insert_with(|| Value::String(util::now_rfc3339()));
        if resources::tracks_generation(key.0) {
            m.entry("generation").or_insert(json!(1));
        }
        if !key.1.is_empty() {
            m.insert("namespace".into(), Value::String(key.1.clone()));
        }
    }
    g.put(key, obj)
}
