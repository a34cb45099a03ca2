//! Strategic merge patch without Go struct tags: a list's patch strategy and merge key come
//! from `schema` (the built-in types' `patchMergeKey` and `patchStrategy` tags). Keyed
//! lists merge element by element, `metadata.finalizers` is a set, every other list is
//! replaced. The directives `$patch` (`delete`, `replace`),
//! `$deleteFromPrimitiveList/…` and `$retainKeys` are honoured; `$setElementOrder/…` is
//! accepted and ignored (merged lists keep the server's order, new elements last).

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::schema::{self, ListType};

/// Applies a strategic merge patch to `target`.
pub(crate) fn apply(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    merge_map(target, patch, &mut Vec::new())
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

fn merge_map<'p>(target: &mut Value, patch: &'p Value, path: &mut Vec<&'p str>) -> Result<(), ApiError> {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return Ok(());
    };
    if directive(patch) == Some("replace") {
        *target = strip(patch);
        return Ok(());
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(t) = target else { return Ok(()) };
    // Primitive-list deletions first, as they refer to lists the same patch may not mention.
    for (k, v) in p {
        if let Some(list) = k.strip_prefix("$deleteFromPrimitiveList/")
            && let (Some(Value::Array(cur)), Value::Array(del)) = (t.get_mut(list), v)
        {
            cur.retain(|x| !del.contains(x));
        }
    }
    for (k, v) in p.iter().filter(|(k, _)| !k.starts_with('$')) {
        path.push(k);
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(_) if directive(v) == Some("delete") => {
                t.remove(k);
            }
            Value::Object(_) => merge_map(t.entry(k.clone()).or_insert(Value::Null), v, path)?,
            Value::Array(items) => {
                let merged = merge_list(t.get(k), items, path)?;
                t.insert(k.clone(), merged);
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
        path.pop();
    }
    if let Some(Value::Array(keep)) = p.get("$retainKeys") {
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
    Ok(())
}

fn merge_list<'p>(current: Option<&Value>, items: &'p [Value], path: &mut Vec<&'p str>) -> Result<Value, ApiError> {
    let replace = || Value::Array(items.iter().filter(|i| directive(i).is_none()).map(strip).collect());
    if items.iter().any(|i| directive(i) == Some("replace")) {
        return Ok(replace());
    }
    let Some(Value::Array(cur)) = current else { return Ok(replace()) };
    match schema::list_type(path) {
        ListType::Atomic => Ok(replace()),
        ListType::Set => {
            let mut out = cur.clone();
            for i in items {
                if !out.contains(i) {
                    out.push(i.clone());
                }
            }
            Ok(Value::Array(out))
        }
        ListType::Map { merge_key, .. } => merge_keyed(cur.clone(), items, merge_key, path).map(Value::Array),
    }
}

/// Merges list elements by `key`: `$patch: delete` removes the matching element only, a
/// matching element is merged recursively, a new one is appended.
fn merge_keyed<'p>(
    mut out: Vec<Value>,
    items: &'p [Value],
    key: &str,
    path: &mut Vec<&'p str>,
) -> Result<Vec<Value>, ApiError> {
    for item in items {
        let Some(id) = item.get(key) else {
            return Err(ApiError::bad_request(format!("map: {item} does not contain declared merge key: {key}")));
        };
        let pos = out.iter().position(|o| o.get(key) == Some(id));
        match (pos, directive(item) == Some("delete")) {
            (Some(i), true) => {
                out.remove(i);
            }
            (None, true) => {}
            (Some(i), false) => {
                if let Some(slot) = out.get_mut(i) {
                    merge_map(slot, item, path)?;
                }
            }
            (None, false) => out.push(strip(item)),
        }
    }
    Ok(out)
}

/// A patch value without directives, as it is stored.
fn strip(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            Value::Object(m.iter().filter(|(k, _)| !k.starts_with('$')).map(|(k, v)| (k.clone(), strip(v))).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(strip).collect()),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn patched(mut target: Value, patch: Value) -> Value {
        if let Err(e) = apply(&mut target, &patch) {
            panic!("patch failed: {e}");
        }
        target
    }

    #[test]
    fn keyed_merge_deletes_only_the_matching_element_and_strips_directives() {
        let svc = json!({"spec": {"ports": [{"port": 80}, {"port": 443}, {"port": 9000}], "selector": {"app": "web"}}});
        let out = patched(
            svc,
            json!({"spec": {
                "$setElementOrder/ports": [{"port": 80}, {"port": 9000}],
                "ports": [{"port": 443, "$patch": "delete"}, {"port": 9000, "name": "metrics"}],
                "selector": {"$patch": "replace", "app": "api"}
            }}),
        );
        assert_eq!(
            out,
            json!({"spec": {"ports": [{"port": 80}, {"port": 9000, "name": "metrics"}], "selector": {"app": "api"}}})
        );
        let missing_key =
            apply(&mut json!({"spec": {"ports": [{"port": 1}]}}), &json!({"spec": {"ports": [{"name": "x"}]}}));
        assert_eq!(missing_key.err().map(|e| e.code), Some(400));
    }

    #[test]
    fn finalizers_are_a_set_and_other_lists_are_replaced() {
        let o = json!({"metadata": {"finalizers": ["a", "b"], "labels": {"x": "1"}}, "spec": {"rules": [1, 2]}});
        let out = patched(
            o,
            json!({"metadata": {"finalizers": ["b", "c"], "$deleteFromPrimitiveList/finalizers": ["a"], "labels": {"x": null, "y": "2"}}, "spec": {"rules": [3]}}),
        );
        assert_eq!(out, json!({"metadata": {"finalizers": ["b", "c"], "labels": {"y": "2"}}, "spec": {"rules": [3]}}));
    }

    #[test]
    fn retain_keys_clears_fields_the_patch_does_not_keep() {
        let d = json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
        let out = patched(d, json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}));
        assert_eq!(out, json!({"spec": {"strategy": {"type": "Recreate"}}}));
    }
}
