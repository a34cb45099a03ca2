//! The `/scale` subresource of Deployments, ReplicaSets and StatefulSets: an
//! `autoscaling/v1` Scale view of `spec.replicas`, `status.replicas` and the label
//! selector, which `kubectl scale` and autoscalers read and write.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::api::{self, Change, Sub, WriteOpts};
use crate::error::ApiError;
use crate::key::key_for;
use crate::patch::{self, PatchType};
use crate::resources::ResourceDef;
use crate::store::Store;
use crate::util;

const SCALE_API_VERSION: &str = "autoscaling/v1";

/// GET: the object's Scale.
pub(crate) fn get(store: &Store, def: &ResourceDef, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
    let key = key_for(def, ns, name);
    let obj = store.get(&key).ok_or_else(|| def.not_found(name))?;
    Ok(scale_of(&obj))
}

/// PUT: sets `spec.replicas` from the Scale; its `metadata.resourceVersion`, when given, is
/// a precondition on the object.
pub(crate) fn replace(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    scale: &Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    write(store, def, ns, name, opts, |_| Ok(scale.clone()))
}

/// PATCH: the patch is applied to the current Scale, then written like a PUT.
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    ptype: PatchType,
    body: &Value,
    opts: &WriteOpts,
) -> Result<Value, ApiError> {
    write(store, def, ns, name, opts, |current| {
        let mut scale = current.clone();
        match ptype {
            PatchType::Strategic => patch::strategic(&mut scale, body)?,
            PatchType::Json => patch::json_patch(&mut scale, body)?,
            // A Scale is maps only: an applied configuration merges like a merge patch.
            PatchType::Merge | PatchType::Apply => patch::merge(&mut scale, body),
        }
        Ok(scale)
    })
}

fn write(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    opts: &WriteOpts,
    scale: impl FnOnce(&Value) -> Result<Value, ApiError>,
) -> Result<Value, ApiError> {
    let key = key_for(def, ns, name);
    let mut g = store.write();
    let old = g.get(&key).ok_or_else(|| def.not_found(name))?;
    let scale = scale(&scale_of(&old))?;
    let new = with_replicas(&old, &scale, name)?;
    let stored: Arc<Value> = api::commit_update(&mut g, def, &key, &old, new, Change::update(Sub::Scale, opts))?;
    Ok(scale_of(&stored))
}

/// The object with `spec.replicas` (and the precondition resourceVersion) of `scale`.
fn with_replicas(old: &Value, scale: &Value, name: &str) -> Result<Value, ApiError> {
    if !scale.is_object() {
        return Err(ApiError::bad_request("the request body must be a JSON object"));
    }
    for (field, want) in [("apiVersion", SCALE_API_VERSION), ("kind", "Scale")] {
        if let Some(v) = scale.get(field).and_then(Value::as_str).filter(|v| *v != want) {
            return Err(ApiError::bad_request(format!("{field} {v:?} does not match the expected {want:?}")));
        }
    }
    // ScaleSpec.replicas is `omitempty`: absent means 0.
    let replicas = match scale.pointer("/spec/replicas") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_i64().ok_or_else(|| {
            ApiError::bad_request(format!(
                "Scale in version \"v1\" cannot be handled as a Scale: spec.replicas: {v} is not an integer"
            ))
        })?,
    };
    if replicas < 0 {
        return Err(ApiError::invalid(
            "Scale.autoscaling",
            name,
            format!("spec.replicas: Invalid value: {replicas}: must be greater than or equal to 0"),
        ));
    }
    let mut new = old.clone();
    if let Some(m) = new.as_object_mut() {
        let spec = m.entry("spec").or_insert_with(|| json!({}));
        if let Some(s) = spec.as_object_mut() {
            s.insert("replicas".into(), json!(replicas));
        }
    }
    if let (Some(rv), Some(meta)) =
        (util::meta_str(scale, "resourceVersion").filter(|r| !r.is_empty()), util::meta_mut(&mut new))
    {
        meta.insert("resourceVersion".into(), json!(rv));
    }
    Ok(new)
}

/// `scaleFromDeployment` and its ReplicaSet and StatefulSet twins.
fn scale_of(obj: &Value) -> Value {
    let mut meta = serde_json::Map::new();
    for f in ["name", "namespace", "uid", "resourceVersion", "creationTimestamp"] {
        if let Some(v) = obj.pointer(&format!("/metadata/{f}")) {
            meta.insert(f.into(), v.clone());
        }
    }
    let mut spec = json!({});
    if let Some(r) = obj.pointer("/spec/replicas").and_then(Value::as_i64).filter(|r| *r != 0) {
        spec["replicas"] = json!(r);
    }
    let mut status = json!({"replicas": obj.pointer("/status/replicas").and_then(Value::as_i64).unwrap_or(0)});
    let selector = selector_string(obj.pointer("/spec/selector"));
    if !selector.is_empty() {
        status["selector"] = json!(selector);
    }
    json!({"kind": "Scale", "apiVersion": SCALE_API_VERSION, "metadata": meta, "spec": spec, "status": status})
}

/// A `metav1.LabelSelector` in the string form of `LabelSelectorAsSelector(..).String()`:
/// requirements sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`.
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else { return String::new() };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(labels) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in labels {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for e in sel.get("matchExpressions").and_then(Value::as_array).into_iter().flatten() {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let mut values: Vec<&str> =
            e.get("values").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        values.sort_unstable();
        let text = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key.to_string(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter().map(|(_, t)| t).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_render_like_label_selector_as_selector() {
        let sel = json!({"matchLabels": {"tier": "web", "app": "x"}, "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "dev"]},
            {"key": "zz", "operator": "DoesNotExist"},
        ]});
        assert_eq!(selector_string(Some(&sel)), "app=x,env in (dev,prod),tier=web,!zz");
    }

    #[test]
    fn scale_reflects_the_object_and_refuses_negative_replicas() {
        let d = json!({"metadata": {"name": "d", "namespace": "n", "uid": "u", "resourceVersion": "7"},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}}}, "status": {"replicas": 2}});
        let s = scale_of(&d);
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=d"}));
        assert_eq!(s["metadata"]["resourceVersion"], "7");
        let bad = json!({"spec": {"replicas": -1}});
        assert_eq!(with_replicas(&d, &bad, "d").err().map(|e| e.code), Some(422));
        let zero = with_replicas(&d, &json!({"spec": {}}), "d").ok();
        assert_eq!(zero.map(|z| z["spec"]["replicas"].clone()), Some(json!(0)));
    }
}
