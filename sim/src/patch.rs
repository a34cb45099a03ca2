//! Patch flavours: JSON merge patch, an approximation of strategic merge patch, JSON patch,
//! and server-side apply as a field-ownership-aware merge.
//!
//! Strategic merge patch without Go struct tags: lists of objects merge by a merge key chosen
//! from the list's field name (`containers`/`env`/`volumes` by `name`, `ports` by
//! `containerPort` or `port`, `volumeMounts` by `mountPath`, `conditions` by `type`,
//! `ownerReferences` by `uid`); every other list is replaced. The directives `$patch`
//! (`delete`, `replace`), `$deleteFromPrimitiveList/…`, `$setElementOrder/…` and
//! `$retainKeys` are honoured or stripped so they never reach stored objects.

use serde_json::{Map, Value, json};

use crate::error::ApiError;

/// How a PATCH body is to be interpreted, from its Content-Type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PatchType {
    Merge,
    Strategic,
    Json,
    Apply,
}

impl PatchType {
    pub(crate) fn from_content_type(ct: &str) -> Option<Self> {
        let base = ct.split(';').next().unwrap_or("").trim();
        match base {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            "application/json-patch+json" => Some(Self::Json),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Some(Self::Apply),
            _ => None,
        }
    }
}

/// RFC 7386 JSON merge patch.
pub(crate) fn merge(target: &mut Value, patch: &Value) {
    json_patch::merge(target, patch);
}

/// RFC 6902 JSON patch; failures are 422 like the real server's.
pub(crate) fn json_patch(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    let p: json_patch::Patch =
        serde_json::from_value(patch.clone()).map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    json_patch::patch(target, &p).map_err(|e| {
        ApiError::new(422, "Invalid", format!("the server rejected our request due to an error in our request: {e}"))
    })
}

/// Strategic merge patch (see the module comment for what is approximated).
pub(crate) fn strategic(target: &mut Value, patch: &Value) {
    strategic_at(target, patch, "");
}

fn strategic_at(target: &mut Value, patch: &Value, field: &str) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if p.get("$patch").and_then(Value::as_str) == Some("replace") {
        let mut rest = p.clone();
        rest.remove("$patch");
        *target = Value::Object(strip_directives(rest));
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return };
    // Primitive-list deletions first, as they refer to lists the same patch may not mention.
    for (k, v) in p {
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/")
            && let (Some(Value::Array(cur)), Value::Array(del)) = (t.get_mut(list), v)
        {
            cur.retain(|x| !del.contains(x));
        }
    }
    for (k, v) in p {
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(o) if o.get("$patch").and_then(Value::as_str) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(_) => strategic_at(t.entry(k.clone()).or_insert(Value::Null), v, k),
            Value::Array(items) => {
                let merged = merge_list(t.get(k), items, k);
                t.insert(k.clone(), merged);
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    let _ = field;
}

fn merge_key(field: &str, items: &[Value]) -> Option<&'static str> {
    let has = |key: &str| items.iter().all(|i| i.get(key).is_some() || i.get("$patch").is_some());
    match field {
        "containers" | "initContainers" | "ephemeralContainers" | "env" | "volumes" | "imagePullSecrets" => {
            Some("name")
        }
        "ports" if has("containerPort") => Some("containerPort"),
        "ports" if has("port") => Some("port"),
        "volumeMounts" => Some("mountPath"),
        "conditions" => Some("type"),
        "ownerReferences" => Some("uid"),
        _ => None,
    }
}

fn merge_list(current: Option<&Value>, items: &[Value], field: &str) -> Value {
    if items.iter().any(|i| i.get("$patch").and_then(Value::as_str) == Some("replace")) {
        return Value::Array(items.iter().filter(|i| i.get("$patch").is_none()).map(strip_value).collect());
    }
    let key = match (merge_key(field, items), current) {
        (Some(k), Some(Value::Array(_))) if items.iter().all(Value::is_object) => k,
        _ => return Value::Array(items.iter().filter(|i| i.get("$patch").is_none()).map(strip_value).collect()),
    };
    let mut out: Vec<Value> = match current {
        Some(Value::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    for item in items {
        let id = item.get(key);
        let pos = out.iter().position(|o| o.get(key) == id);
        let delete = item.get("$patch").and_then(Value::as_str) == Some("delete");
        match (pos, delete) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let Some(slot) = out.get_mut(i) {
                    strategic_at(slot, item, field);
                }
            }
            (None, false) => out.push(strip_value(item)),
        }
    }
    Value::Array(out)
}

fn strip_value(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(strip_directives(m.clone())),
        Value::Array(a) => Value::Array(a.iter().map(strip_value).collect()),
        other => other.clone(),
    }
}

fn strip_directives(m: Map<String, Value>) -> Map<String, Value> {
    m.into_iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k, strip_value(&v))).collect()
}

/// Server-side apply, approximated: the applied configuration is deep-merged into the live
/// object (maps merge, lists and scalars are replaced), and fields this manager applied last
/// time but no longer mentions are removed unless another manager also set them.
/// Conflicts between managers are not detected, so `force` has no effect.
pub(crate) fn apply(live: &mut Value, applied: &Value, previous_fields: Option<&Value>, others_fields: &[&Value]) {
    if let Some(prev) = previous_fields {
        let now = fields_of(applied);
        for path in leaf_paths(prev) {
            let still_applied = has_path(&now, &path);
            let owned_by_other = others_fields.iter().any(|f| has_path(f, &path));
            if !still_applied && !owned_by_other {
                remove_path(live, &path);
            }
        }
    }
    deep_merge(live, applied);
}

fn deep_merge(target: &mut Value, src: &Value) {
    match (target, src) {
        (Value::Object(t), Value::Object(s)) => {
            for (k, v) in s {
                match t.get_mut(k) {
                    Some(slot) if slot.is_object() && v.is_object() => deep_merge(slot, v),
                    _ => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (t, s) => *t = s.clone(),
    }
}

/// The `fieldsV1` set of an object: `{"f:spec": {"f:replicas": {}}}`. Lists are leaves.
/// Identity fields (`apiVersion`, `kind`, `metadata.name`, `metadata.namespace`) are left out,
/// as the real server does.
pub(crate) fn fields_of(v: &Value) -> Value {
    fn walk(v: &Value, top: bool, in_meta: bool) -> Value {
        let Value::Object(m) = v else { return json!({}) };
        let mut out = Map::new();
        for (k, child) in m {
            if top && (k == "apiVersion" || k == "kind") {
                continue;
            }
            if in_meta
                && matches!(
                    k.as_str(),
                    "name"
                        | "namespace"
                        | "resourceVersion"
                        | "uid"
                        | "creationTimestamp"
                        | "generation"
                        | "managedFields"
                )
            {
                continue;
            }
            out.insert(format!("f:{k}"), walk(child, false, top && k == "metadata"));
        }
        Value::Object(out)
    }
    walk(v, true, false)
}

fn leaf_paths(fields: &Value) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    fn walk(v: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match v.as_object() {
            Some(m) if !m.is_empty() => {
                for (k, child) in m {
                    if let Some(name) = k.strip_prefix("f:") {
                        prefix.push(name.to_string());
                        walk(child, prefix, out);
                        prefix.pop();
                    }
                }
            }
            _ => out.push(prefix.clone()),
        }
    }
    walk(fields, &mut Vec::new(), &mut out);
    out
}

fn has_path(fields: &Value, path: &[String]) -> bool {
    let mut cur = fields;
    for seg in path {
        match cur.get(format!("f:{seg}")) {
            Some(next) => cur = next,
            None => return false,
        }
    }
    true
}

fn remove_path(v: &mut Value, path: &[String]) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut cur = v;
    for seg in parents {
        match cur.get_mut(seg.as_str()) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(last.as_str());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_sets_and_deletes_keys() {
        let mut o = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge(&mut o, &json!({"a": null, "b": {"c": 5}, "l": [3]}));
        assert_eq!(o, json!({"b": {"c": 5, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_patch_merges_lists_by_key_and_strips_directives() {
        let mut svc = json!({"spec": {"ports": [{"name": "http", "port": 80}, {"name": "https", "port": 443}], "selector": {"app": "web"}}});
        let patch = json!({"spec": {
            "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
            "ports": [{"port": 443, "targetPort": 8443}, {"port": 80, "$patch": "delete"}],
            "selector": {"$patch": "replace", "app": "api"}
        }});
        strategic(&mut svc, &patch);
        assert_eq!(
            svc,
            json!({"spec": {"ports": [{"name": "https", "port": 443, "targetPort": 8443}], "selector": {"app": "api"}}})
        );
    }

    #[test]
    fn strategic_patch_replaces_unknown_lists_and_deletes_primitives() {
        let mut o = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}}, "spec": {"rules": [1, 2]}});
        strategic(
            &mut o,
            &json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"x": null, "y": "2"}}, "spec": {"rules": [3]}}),
        );
        assert_eq!(o, json!({"metadata": {"finalizers": ["b"], "labels": {"y": "2"}}, "spec": {"rules": [3]}}));
    }

    #[test]
    fn json_patch_applies_and_reports_failures() {
        let mut o = json!({"spec": {"replicas": 1}});
        assert!(json_patch(&mut o, &json!([{"op": "replace", "path": "/spec/replicas", "value": 3}])).is_ok());
        assert_eq!(o["spec"]["replicas"], 3);
        let err = json_patch(&mut o, &json!([{"op": "test", "path": "/spec/replicas", "value": 9}])).err();
        assert_eq!(err.map(|e| e.code), Some(422));
        assert_eq!(json_patch(&mut o, &json!({"op": "x"})).err().map(|e| e.code), Some(400));
    }

    #[test]
    fn apply_removes_fields_the_manager_dropped_but_keeps_others() {
        let first = json!({"metadata": {"labels": {"a": "1", "b": "2"}}, "spec": {"replicas": 2}});
        let mut live = json!({"metadata": {"name": "x", "labels": {"c": "3"}}, "spec": {"paused": false}});
        apply(&mut live, &first, None, &[]);
        assert_eq!(live["metadata"]["labels"], json!({"a": "1", "b": "2", "c": "3"}));
        let prev = fields_of(&first);
        let second = json!({"metadata": {"labels": {"a": "1"}}});
        let other = json!({"f:spec": {"f:replicas": {}}});
        apply(&mut live, &second, Some(&prev), &[&other]);
        assert_eq!(live["metadata"]["labels"], json!({"a": "1", "c": "3"}));
        assert_eq!(live["spec"], json!({"paused": false, "replicas": 2}));
        assert_eq!(live["metadata"]["name"], "x");
    }

    #[test]
    fn patch_types_come_from_content_type() {
        assert_eq!(PatchType::from_content_type("application/apply-patch+yaml; charset=utf-8"), Some(PatchType::Apply));
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }
}
