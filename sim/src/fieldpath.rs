//! Field paths and sets as structured-merge-diff has them: the leaves of an object (list-map
//! elements by their keys, set members by value, atomic lists whole), their `FieldsV1`
//! encoding in `managedFields` (`f:`, `k:`, `v:`, `.`), and reading or removing the value a
//! path names.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use crate::schema::{self, ListType};

/// One step of a path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Seg {
    Field(String),
    /// A list-map element, by its keys as canonical JSON (`{"port":80,"protocol":"TCP"}`).
    Key(String),
    /// A set member, as canonical JSON.
    Value(String),
}

pub(crate) type Path = Vec<Seg>;

/// Fields never tracked: identity and server-set metadata.
const SKIPPED_META: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
];

/// A set of paths (leaves, and list elements themselves).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FieldSet(BTreeSet<Path>);

impl FieldSet {
    /// Every field an object sets.
    pub(crate) fn of(obj: &Value) -> Self {
        let mut out = BTreeSet::new();
        if let Some(m) = obj.as_object() {
            for (k, v) in m.iter().filter(|(k, _)| *k != "apiVersion" && *k != "kind") {
                let mut path = vec![Seg::Field(k.clone())];
                let mut names = vec![k.clone()];
                if k == "metadata"
                    && let Some(meta) = v.as_object()
                {
                    for (mk, mv) in meta.iter().filter(|(mk, _)| !SKIPPED_META.contains(&mk.as_str())) {
                        path.push(Seg::Field(mk.clone()));
                        names.push(mk.clone());
                        walk(mv, &mut path, &mut names, &mut out);
                        path.pop();
                        names.pop();
                    }
                } else {
                    walk(v, &mut path, &mut names, &mut out);
                }
            }
        }
        Self(out)
    }

    pub(crate) fn contains(&self, p: &Path) -> bool {
        self.0.contains(p)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Path> {
        self.0.iter()
    }

    pub(crate) fn insert(&mut self, p: Path) {
        self.0.insert(p);
    }

    pub(crate) fn remove(&mut self, p: &Path) {
        self.0.remove(p);
    }

    /// Decodes `fieldsV1`; unknown entries (`i:` indices) are skipped.
    pub(crate) fn from_v1(v: &Value) -> Self {
        let mut out = BTreeSet::new();
        parse_v1(v, &mut Vec::new(), &mut out);
        Self(out)
    }

    /// Encodes as `fieldsV1`: a node that is a member and has children carries `"."`.
    pub(crate) fn to_v1(&self) -> Value {
        let mut root = Map::new();
        for p in &self.0 {
            node_mut(&mut root, p);
        }
        for p in &self.0 {
            if let Some(n) = node_mut(&mut root, p)
                && !n.is_empty()
            {
                n.insert(".".into(), json!({}));
            }
        }
        Value::Object(root)
    }
}

/// The `fieldsV1` node of a path, created (as empty objects) when missing.
fn node_mut<'a>(root: &'a mut Map<String, Value>, p: &Path) -> Option<&'a mut Map<String, Value>> {
    let mut node = root;
    for seg in p {
        let key = match seg {
            Seg::Field(f) => format!("f:{f}"),
            Seg::Key(k) => format!("k:{k}"),
            Seg::Value(v) => format!("v:{v}"),
        };
        node = node.entry(key).or_insert_with(|| json!({})).as_object_mut()?;
    }
    Some(node)
}

fn parse_v1(v: &Value, path: &mut Path, out: &mut BTreeSet<Path>) {
    let Some(m) = v.as_object() else { return };
    if m.is_empty() && !path.is_empty() {
        out.insert(path.clone());
    }
    for (k, child) in m {
        let seg = if k == "." {
            out.insert(path.clone());
            continue;
        } else if let Some(f) = k.strip_prefix("f:") {
            Seg::Field(f.to_string())
        } else if let Some(j) = k.strip_prefix("k:") {
            Seg::Key(canonical(j))
        } else if let Some(j) = k.strip_prefix("v:") {
            Seg::Value(canonical(j))
        } else {
            continue;
        };
        path.push(seg);
        parse_v1(child, path, out);
        path.pop();
    }
}

fn canonical(json_text: &str) -> String {
    serde_json::from_str::<Value>(json_text).map_or_else(|_| json_text.to_string(), |v| v.to_string())
}

fn walk(v: &Value, path: &mut Path, names: &mut Vec<String>, out: &mut BTreeSet<Path>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                path.push(Seg::Field(k.clone()));
                names.push(k.clone());
                walk(child, path, names, out);
                path.pop();
                names.pop();
            }
        }
        Value::Array(items) => match schema::list_type(names) {
            ListType::Map { map_keys, .. } => {
                for item in items {
                    let Some(key) = element_key(item, map_keys) else { continue };
                    path.push(Seg::Key(key));
                    out.insert(path.clone());
                    if let Some(fields) = item.as_object() {
                        for (k, child) in fields {
                            path.push(Seg::Field(k.clone()));
                            names.push(k.clone());
                            walk(child, path, names, out);
                            path.pop();
                            names.pop();
                        }
                    }
                    path.pop();
                }
            }
            ListType::Set => {
                for item in items {
                    let mut p = path.clone();
                    p.push(Seg::Value(item.to_string()));
                    out.insert(p);
                }
            }
            ListType::Atomic => {
                out.insert(path.clone());
            }
        },
        _ => {
            out.insert(path.clone());
        }
    }
}

/// An element's list-map keys as canonical JSON; `None` when it has none of them.
pub(crate) fn element_key(item: &Value, keys: &[&str]) -> Option<String> {
    let mut m = Map::new();
    for k in keys {
        if let Some(v) = item.get(*k).cloned().or_else(|| schema::default_key_value(k)) {
            m.insert((*k).to_string(), v);
        }
    }
    keys.iter().any(|k| item.get(*k).is_some()).then(|| Value::Object(m).to_string())
}

pub(crate) fn matches_key(item: &Value, key: &str) -> bool {
    let Ok(Value::Object(want)) = serde_json::from_str::<Value>(key) else { return false };
    want.iter().all(|(k, v)| item.get(k).cloned().or_else(|| schema::default_key_value(k)).as_ref() == Some(v))
}

fn matches_value(item: &Value, value: &str) -> bool {
    serde_json::from_str::<Value>(value).is_ok_and(|v| *item == v)
}

/// The value a path names.
pub(crate) fn get<'a>(obj: &'a Value, path: &[Seg]) -> Option<&'a Value> {
    path.iter().try_fold(obj, |cur, seg| match seg {
        Seg::Field(f) => cur.get(f),
        Seg::Key(k) => cur.as_array()?.iter().find(|i| matches_key(i, k)),
        Seg::Value(v) => cur.as_array()?.iter().find(|i| matches_value(i, v)),
    })
}

fn get_mut<'a>(obj: &'a mut Value, path: &[Seg]) -> Option<&'a mut Value> {
    path.iter().try_fold(obj, |cur, seg| match seg {
        Seg::Field(f) => cur.get_mut(f),
        Seg::Key(k) => cur.as_array_mut()?.iter_mut().find(|i| matches_key(i, k)),
        Seg::Value(v) => cur.as_array_mut()?.iter_mut().find(|i| matches_value(i, v)),
    })
}

/// Removes what a path names (a field, a list element, a set member).
pub(crate) fn remove(obj: &mut Value, path: &[Seg]) {
    let Some((last, parent)) = path.split_last() else { return };
    let Some(container) = get_mut(obj, parent) else { return };
    match (last, container) {
        (Seg::Field(f), Value::Object(m)) => {
            m.remove(f);
        }
        (Seg::Key(k), Value::Array(a)) => a.retain(|i| !matches_key(i, k)),
        (Seg::Value(v), Value::Array(a)) => a.retain(|i| !matches_value(i, v)),
        _ => {}
    }
}

/// The path as kube-apiserver prints it in conflicts: `.spec.ports[port=80,protocol="TCP"]`.
pub(crate) fn display(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Field(f) => {
                out.push('.');
                out.push_str(f);
            }
            Seg::Key(k) => {
                let parts: Vec<String> = match serde_json::from_str::<Value>(k) {
                    Ok(Value::Object(m)) => m.iter().map(|(k, v)| format!("{k}={v}")).collect(),
                    _ => vec![k.clone()],
                };
                out.push_str(&format!("[{}]", parts.join(",")));
            }
            Seg::Value(v) => out.push_str(&format!("[={v}]")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(name: &str) -> Seg {
        Seg::Field(name.into())
    }

    #[test]
    fn leaves_use_list_map_keys_set_values_and_skip_identity() {
        let svc = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "labels": {"a": "1"}, "finalizers": ["f"]},
            "spec": {"ports": [{"port": 80, "name": "http"}], "selector": {}}});
        let set = FieldSet::of(&svc);
        let port = vec![f("spec"), f("ports"), Seg::Key(r#"{"port":80,"protocol":"TCP"}"#.into())];
        let mut name = port.clone();
        name.push(f("name"));
        for p in [
            vec![f("metadata"), f("labels"), f("a")],
            vec![f("metadata"), f("finalizers"), Seg::Value("\"f\"".into())],
            port.clone(),
            name.clone(),
            vec![f("spec"), f("selector")],
        ] {
            assert!(set.contains(&p), "{p:?} missing from {set:?}");
        }
        assert!(!set.iter().any(|p| p.first() == Some(&f("metadata")) && p.get(1) == Some(&f("name"))));
        assert_eq!(get(&svc, &name), Some(&json!("http")));
        assert_eq!(display(&name), r#".spec.ports[port=80,protocol="TCP"].name"#);
    }

    #[test]
    fn fields_v1_round_trips_with_dot_for_members_with_children() {
        let obj = json!({"spec": {"ports": [{"port": 80}], "replicas": 2}});
        let set = FieldSet::of(&obj);
        let v1 = set.to_v1();
        assert_eq!(
            v1,
            json!({"f:spec": {"f:ports": {r#"k:{"port":80,"protocol":"TCP"}"#: {".": {}, "f:port": {}}}, "f:replicas": {}}})
        );
        assert_eq!(FieldSet::from_v1(&v1), set);
    }

    #[test]
    fn remove_takes_out_fields_elements_and_members() {
        let mut obj =
            json!({"metadata": {"finalizers": ["a", "b"]}, "spec": {"ports": [{"port": 80}, {"port": 81}], "x": 1}});
        remove(&mut obj, &[f("spec"), f("x")]);
        remove(&mut obj, &[f("spec"), f("ports"), Seg::Key(r#"{"port":81,"protocol":"TCP"}"#.into())]);
        remove(&mut obj, &[f("metadata"), f("finalizers"), Seg::Value("\"a\"".into())]);
        assert_eq!(obj, json!({"metadata": {"finalizers": ["b"]}, "spec": {"ports": [{"port": 80}]}}));
    }
}
