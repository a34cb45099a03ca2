//! An object as the store keeps it: its JSON text, decoded when read.
//!
//! A decoded `serde_json::Value` takes about ten times the memory of its text: every map
//! is a B-tree whose first node alone is about 600 bytes, so a LoadBalancer Service of
//! 650 bytes of JSON holds 6 KiB, and its EndpointSlice 8 KiB. A benchmark fleet of a
//! million Services kept as trees (with their EndpointSlices, Endpoints and the history
//! of each) would need about 31 GB; as text it needs about 3. Etcd keeps the objects
//! serialized behind kube-apiserver too. Reads pay a decode, which at a few microseconds
//! per object is small beside serving it. Objects nested too deep for the parser stay trees.

use std::sync::Arc;

use serde_json::Value;

/// serde_json refuses to decode text nested deeper than 128 levels; objects that deep are
/// kept as trees.
const MAX_TEXT_DEPTH: usize = 120;

/// One stored state of an object. Cloning shares it.
#[derive(Clone)]
pub(crate) enum Stored {
    Text(Arc<[u8]>),
    Tree(Arc<Value>),
}

impl Stored {
    pub(crate) fn new(obj: &Value) -> Self {
        if depth(obj) > MAX_TEXT_DEPTH {
            return Stored::Tree(Arc::new(obj.clone()));
        }
        match serde_json::to_vec(obj) {
            Ok(text) => Stored::Text(text.into()),
            // Unreachable: a `Value` always serializes (string keys, finite numbers).
            Err(_) => Stored::Tree(Arc::new(obj.clone())),
        }
    }

    /// The object, decoded.
    pub(crate) fn value(&self) -> Value {
        match self {
            // The text is what `new` wrote, within the parser's depth limit, so it parses.
            Stored::Text(text) => serde_json::from_slice(text).unwrap_or(Value::Null),
            Stored::Tree(tree) => (**tree).clone(),
        }
    }
}

/// How many arrays and maps deep `v` nests.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

impl std::fmt::Debug for Stored {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stored::Text(text) => f.write_str(&String::from_utf8_lossy(text)),
            Stored::Tree(tree) => write!(f, "{tree}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_reads_back_as_it_was_stored() {
        let obj = json!({
            "metadata": {"name": "a", "labels": {"x": "1"}, "generation": 3},
            "spec": {"ports": [{"port": 80, "weight": -1.5}], "flag": true, "none": null},
        });
        assert_eq!(Stored::new(&obj).value(), obj);
    }

    #[test]
    fn an_object_deeper_than_the_parsers_limit_reads_back() {
        let mut obj = json!("leaf");
        for _ in 0..200 {
            obj = json!({"f": obj});
        }
        assert_eq!(Stored::new(&obj).value(), obj);
    }
}
