//! What kube-apiserver does to a body before storing it, per type: decoding rules (Secret
//! `stringData` folded into base64 `data`), defaulting (workloads and pods in `defaults`),
//! and the strategies' create and update preparation (Namespace phase, name label and
//! `spec.finalizers`). Update validations are in `validation`.

use base64::Engine as _;
use serde_json::{Map, Value, json};

use crate::crd;
use crate::defaults;
use crate::deletion::NAMESPACE_FINALIZER;
use crate::error::ApiError;
use crate::resources::{self, ResId};
use crate::util;

/// The label every Namespace carries with its own name (SetDefaults_Namespace), so
/// selectors can pick namespaces by name.
pub(crate) const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// Conversion and defaulting of a body on every write (create, update, patch result).
pub(crate) fn decode(res: ResId, obj: &mut Value) -> Result<(), ApiError> {
    match res {
        resources::SECRETS => {
            // SetDefaults_Secret.
            if let Some(m) = obj.as_object_mut() {
                m.entry("type").or_insert_with(|| json!("Opaque"));
            }
            fold_string_data(obj)
        }
        resources::CRDS => {
            crd::set_defaults(obj);
            Ok(())
        }
        _ => {
            defaults::apply(res, obj);
            Ok(())
        }
    }
}

/// Sets [`NAMESPACE_NAME_LABEL`] to the namespace's name, whatever the client sent.
fn name_label(obj: &mut Value) {
    let Some(name) = util::meta_str(obj, "name").filter(|n| !n.is_empty()).map(String::from) else { return };
    let Some(meta) = util::meta_mut(obj) else { return };
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    if let Some(l) = labels.as_object_mut() {
        l.insert(NAMESPACE_NAME_LABEL.into(), json!(name));
    }
}

/// The v1 → internal Secret conversion: `stringData` entries overwrite `data` entries
/// (base64-encoded) and are never stored; `data` values are `[]byte`, so a value that is
/// not valid base64 fails decoding (400).
fn fold_string_data(obj: &mut Value) -> Result<(), ApiError> {
    let bad = |detail: String| {
        ApiError::bad_request(format!("Secret in version \"v1\" cannot be handled as a Secret: {detail}"))
    };
    let Some(m) = obj.as_object_mut() else { return Ok(()) };
    let string_data = m.remove("stringData");
    let data = m.entry("data").or_insert_with(|| Value::Object(Map::new()));
    if data.is_null() {
        *data = Value::Object(Map::new());
    }
    let Some(data) = data.as_object_mut() else {
        return Err(bad("data: expected an object".into()));
    };
    for (k, v) in data.iter() {
        let Some(s) = v.as_str() else {
            return Err(bad(format!("data[{k:?}]: expected a base64 string")));
        };
        base64::engine::general_purpose::STANDARD.decode(s).map_err(|e| bad(base64_error(&e)))?;
    }
    match string_data {
        None | Some(Value::Null) => {}
        Some(Value::Object(sd)) => {
            for (k, v) in sd {
                let Some(s) = v.as_str() else {
                    return Err(bad(format!("stringData[{k:?}]: expected a string")));
                };
                data.insert(k, json!(base64::engine::general_purpose::STANDARD.encode(s)));
            }
        }
        Some(_) => return Err(bad("stringData: expected an object".into())),
    }
    if data.is_empty() {
        m.remove("data");
    }
    Ok(())
}

/// Go's `encoding/base64` wording, which kubectl users see.
fn base64_error(e: &base64::DecodeError) -> String {
    match e {
        base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => {
            format!("illegal base64 data at input byte {at}")
        }
        other => format!("illegal base64 data: {other}"),
    }
}

/// Namespace strategy `PrepareForCreate`: phase Active, the name label, and the
/// `kubernetes` finalizer added to `spec.finalizers` whatever else the client put there.
pub(crate) fn prepare_create(res: ResId, obj: &mut Value) {
    if res != resources::NAMESPACES {
        return;
    }
    name_label(obj);
    let Some(m) = obj.as_object_mut() else { return };
    let spec = m.entry("spec").or_insert_with(|| json!({}));
    if !spec.is_object() {
        *spec = json!({});
    }
    let fins = spec.as_object_mut().map(|s| s.entry("finalizers").or_insert_with(|| json!([])));
    if let Some(fins) = fins {
        if !fins.is_array() {
            *fins = json!([]);
        }
        if let Some(list) = fins.as_array_mut()
            && !list.iter().any(|f| f == NAMESPACE_FINALIZER)
        {
            list.push(json!(NAMESPACE_FINALIZER));
        }
    }
    m.insert("status".into(), json!({"phase": "Active"}));
}

/// Namespace strategy `PrepareForUpdate`: the name label stays, and `spec.finalizers`
/// change only through `/finalize` (`finalize` true), never through the main resource.
pub(crate) fn prepare_update(res: ResId, old: &Value, new: &mut Value, finalize: bool) {
    if res != resources::NAMESPACES {
        return;
    }
    name_label(new);
    if finalize {
        return;
    }
    if let Some(m) = new.as_object_mut() {
        match old.get("spec") {
            Some(s) => m.insert("spec".into(), s.clone()),
            None => m.remove("spec"),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // core/v1 conversion: stringData overwrites data, base64-encoded, and is not stored.
    #[test]
    fn string_data_folds_into_data_and_bad_base64_is_refused() -> Result<(), ApiError> {
        let mut s = json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"b": "hello", "c": "wörld"}});
        decode(resources::SECRETS, &mut s)?;
        assert_eq!(s, json!({"type": "Opaque", "data": {"a": "eA==", "b": "aGVsbG8=", "c": "d8O2cmxk"}}));
        let mut bad = json!({"data": {"a": "not base64!"}});
        let err = decode(resources::SECRETS, &mut bad).err();
        assert_eq!(err.as_ref().map(|e| e.code), Some(400));
        assert!(err.is_some_and(|e| e.message.contains("illegal base64 data at input byte 3")));
        Ok(())
    }

    #[test]
    fn namespaces_always_get_the_kubernetes_finalizer_and_keep_spec_on_update() {
        let mut ns = json!({"metadata": {"name": "x"}, "spec": {"finalizers": ["example.com/a"]}});
        prepare_create(resources::NAMESPACES, &mut ns);
        assert_eq!(ns["spec"]["finalizers"], json!(["example.com/a", "kubernetes"]));
        assert_eq!(ns["metadata"]["labels"][NAMESPACE_NAME_LABEL], "x");
        assert_eq!(ns["status"]["phase"], "Active");
        let mut upd = json!({"metadata": {"name": "x"}, "spec": {"finalizers": []}});
        prepare_update(resources::NAMESPACES, &ns, &mut upd, false);
        assert_eq!(upd["spec"], ns["spec"]);
    }
}
