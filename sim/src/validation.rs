//! Update validation, as kube-apiserver's `rest.BeforeUpdate` and the types'
//! `ValidateUpdate` do it: the uid precondition of a PUT, immutable metadata, objects
//! being deleted taking no new finalizers, immutable ConfigMaps and Secrets, a Secret's
//! type, and the selectors of the apps/v1 workloads.

use serde_json::{Map, Value};

use crate::error::{ApiError, FieldCause};
use crate::resources::{self, ResourceDef};
use crate::util;

/// The uid precondition a PUT carries in its body (`DefaultUpdatedObjectInfo`): a uid
/// other than the stored object's fails the storage precondition, which the registry
/// answers 409 Conflict.
pub(crate) fn uid_precondition(def: &ResourceDef, name: &str, body: &Value, old: &Value) -> Result<(), ApiError> {
    let (Some(want), Some(have)) = (util::meta_str(body, "uid").filter(|u| !u.is_empty()), util::meta_str(old, "uid"))
    else {
        return Ok(());
    };
    if want == have {
        return Ok(());
    }
    let ns = util::meta_str(old, "namespace").map(|n| format!("{n}/")).unwrap_or_default();
    let storage_key = if def.group.is_empty() || !def.is_custom() {
        format!("/registry/{}/{ns}{name}", def.plural)
    } else {
        format!("/registry/{}/{}/{ns}{name}", def.group, def.plural)
    };
    Err(ApiError::new(
        409,
        "Conflict",
        format!(
            "Operation cannot be fulfilled on {} \"{name}\": StorageError: invalid object, Code: 4, Key: {storage_key}, ResourceVersion: 0, AdditionalErrorMsg: Precondition failed: UID in precondition: {want}, UID in object meta: {have}",
            def.qualified()
        ),
    )
    .with_details(serde_json::json!({"name": name, "group": def.group, "kind": def.plural})))
}

/// Every update check on the new state `new` of `old`, named `name`; 422 Invalid with
/// one cause per field.
pub(crate) fn validate_update(def: &ResourceDef, name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    let mut causes = metadata(old, new);
    match def.id {
        resources::CONFIGMAPS => causes.extend(immutable_data(old, new, &["data", "binaryData"])),
        resources::SECRETS => {
            causes.extend(immutable_data(old, new, &["data"]));
            if old.get("type") != new.get("type") {
                causes.push(FieldCause::immutable("type", &go_string(new.get("type"))));
            }
        }
        resources::DEPLOYMENTS | resources::REPLICASETS | resources::DAEMONSETS
            if old.pointer("/spec/selector") != new.pointer("/spec/selector") =>
        {
            causes.push(FieldCause::immutable("spec.selector", &go_selector(new.pointer("/spec/selector"))));
        }
        resources::STATEFULSETS => causes.extend(statefulset_spec(old, new)),
        _ => {}
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_fields(&def.group, &def.kind, name, &causes))
}

/// `ValidateObjectMetaUpdate` on the body as sent, before the server-owned metadata is
/// put back: a write that changes the uid (a patch; a PUT fails its precondition first)
/// is refused, not silently corrected. An empty uid means "keep it".
pub(crate) fn uid_unchanged(def: &ResourceDef, name: &str, old: &Value, new: &Value) -> Result<(), ApiError> {
    match util::meta_str(new, "uid").filter(|u| !u.is_empty()) {
        Some(uid) if Some(uid) != util::meta_str(old, "uid") => Err(ApiError::invalid_fields(
            &def.group,
            &def.kind,
            name,
            &[FieldCause::immutable("metadata.uid", &format!("{uid:?}"))],
        )),
        _ => Ok(()),
    }
}

/// `ValidateObjectMetaUpdate`: an object being deleted takes no new finalizers.
fn metadata(old: &Value, new: &Value) -> Vec<FieldCause> {
    let mut causes = Vec::new();
    if util::meta_str(old, "deletionTimestamp").is_some() {
        let before = util::finalizers(old);
        let added: Vec<String> = util::finalizers(new).into_iter().filter(|f| !before.contains(f)).collect();
        if !added.is_empty() {
            causes.push(FieldCause::forbidden(
                "metadata.finalizers",
                &format!(
                    "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
                ),
            ));
        }
    }
    causes
}

/// `immutable: true` freezes the data fields and itself (ValidateConfigMapUpdate,
/// ValidateSecretUpdate). An absent map and an empty one are the same data.
fn immutable_data(old: &Value, new: &Value, fields: &[&str]) -> Vec<FieldCause> {
    const WHY: &str = "field is immutable when `immutable` is set";
    if old.get("immutable") != Some(&Value::Bool(true)) {
        return Vec::new();
    }
    let mut causes = Vec::new();
    if new.get("immutable") != Some(&Value::Bool(true)) {
        causes.push(FieldCause::forbidden("immutable", WHY));
    }
    let map = |o: &Value, f: &str| o.get(f).and_then(Value::as_object).cloned().unwrap_or_default();
    for f in fields {
        if map(old, f) != map(new, f) {
            causes.push(FieldCause::forbidden(*f, WHY));
        }
    }
    causes
}

/// ValidateStatefulSetUpdate: only these spec fields may change.
fn statefulset_spec(old: &Value, new: &Value) -> Option<FieldCause> {
    const MUTABLE: [&str; 6] = [
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let rest = |o: &Value| -> Map<String, Value> {
        o.get("spec")
            .and_then(Value::as_object)
            .map(|s| {
                s.iter().filter(|(k, _)| !MUTABLE.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
            })
            .unwrap_or_default()
    };
    (rest(old) != rest(new)).then(|| {
        FieldCause::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        )
    })
}

/// A string value as Go's `%q` prints it (`""` when absent).
fn go_string(v: Option<&Value>) -> String {
    format!("{:?}", v.and_then(Value::as_str).unwrap_or(""))
}

/// A label selector as `field.Invalid` prints a `*metav1.LabelSelector`: dereferenced,
/// then Go's `%#v` (`null` when there is none).
fn go_selector(sel: Option<&Value>) -> String {
    let Some(sel) = sel.filter(|s| s.is_object()) else { return "null".into() };
    let strings = |v: Option<&Value>| -> Vec<String> {
        v.and_then(Value::as_array)
            .map(|a| a.iter().map(|x| format!("{:?}", x.as_str().unwrap_or(""))).collect())
            .unwrap_or_default()
    };
    let labels = match sel.get("matchLabels").and_then(Value::as_object) {
        // Go prints maps sorted by key, as serde_json's map iterates.
        Some(m) => {
            let pairs: Vec<String> = m.iter().map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or(""))).collect();
            format!("map[string]string{{{}}}", pairs.join(", "))
        }
        None => "map[string]string(nil)".into(),
    };
    let exprs = match sel.get("matchExpressions").and_then(Value::as_array) {
        Some(list) => {
            let items: Vec<String> = list
                .iter()
                .map(|e| {
                    format!(
                        "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:[]string{{{}}}}}",
                        go_string(e.get("key")),
                        go_string(e.get("operator")),
                        strings(e.get("values")).join(", ")
                    )
                })
                .collect();
            format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
        }
        None => "[]v1.LabelSelectorRequirement(nil)".into(),
    };
    format!("v1.LabelSelector{{MatchLabels:{labels}, MatchExpressions:{exprs}}}")
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn def(id: usize) -> &'static ResourceDef {
        &resources::BUILTINS[id]
    }

    #[test]
    fn objects_being_deleted_take_no_new_finalizers() {
        let cm = def(resources::CONFIGMAPS);
        let old = json!({"metadata": {"deletionTimestamp": "t", "finalizers": ["a"]}});
        assert!(validate_update(cm, "x", &old, &json!({"metadata": {"finalizers": []}})).is_ok());
        let err = validate_update(cm, "x", &old, &json!({"metadata": {"finalizers": ["a", "b"]}}));
        assert_eq!(err.err().map(|e| e.code), Some(422));
    }

    #[test]
    fn immutable_config_maps_keep_their_data_and_the_flag() {
        let cm = def(resources::CONFIGMAPS);
        let old = json!({"immutable": true, "data": {"a": "1"}});
        assert!(
            validate_update(
                cm,
                "x",
                &old,
                &json!({"immutable": true, "data": {"a": "1"}, "metadata": {"labels": {"l": "v"}}})
            )
            .is_ok()
        );
        let err = validate_update(cm, "x", &old, &json!({"data": {"a": "2"}})).err().map(|e| e.message);
        assert_eq!(
            err.as_deref(),
            Some(
                "ConfigMap \"x\" is invalid: [immutable: Forbidden: field is immutable when `immutable` is set, data: Forbidden: field is immutable when `immutable` is set]"
            )
        );
        assert!(validate_update(cm, "x", &json!({"data": {"a": "1"}}), &json!({"data": {"a": "2"}})).is_ok());
    }

    #[test]
    fn workload_selectors_are_immutable_and_printed_like_go() {
        let d = def(resources::DEPLOYMENTS);
        let old = json!({"spec": {"selector": {"matchLabels": {"app": "a"}}}});
        let new = json!({"spec": {"selector": {"matchLabels": {"app": "b"}}}});
        let msg = validate_update(d, "web", &old, &new).err().map(|e| e.message).unwrap_or_default();
        assert_eq!(
            msg,
            "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{\"app\":\"b\"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        );
    }

    #[test]
    fn a_put_naming_another_uid_fails_its_precondition() {
        let cm = def(resources::CONFIGMAPS);
        let old = json!({"metadata": {"uid": "u1", "namespace": "default"}});
        assert!(uid_precondition(cm, "x", &json!({"metadata": {}}), &old).is_ok());
        let err = uid_precondition(cm, "x", &json!({"metadata": {"uid": "u2"}}), &old).err();
        assert_eq!(err.as_ref().map(|e| e.code), Some(409));
        assert!(err.is_some_and(|e| {
            e.message.ends_with("Precondition failed: UID in precondition: u2, UID in object meta: u1")
        }));
        let patched = uid_unchanged(cm, "x", &old, &json!({"metadata": {"uid": "u2"}})).err().map(|e| e.message);
        assert_eq!(
            patched.as_deref(),
            Some("ConfigMap \"x\" is invalid: metadata.uid: Invalid value: \"u2\": field is immutable")
        );
        assert!(uid_unchanged(cm, "x", &old, &json!({"metadata": {"uid": ""}})).is_ok());
    }
}
