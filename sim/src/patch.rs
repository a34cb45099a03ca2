//! Patch flavours by Content-Type, and the two that need no knowledge of the types: RFC 7386
//! JSON merge patch and RFC 6902 JSON patch. Strategic merge patch is `strategic`,
//! server-side apply `managed`.

use serde_json::Value;

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

/// Strategic merge patch (see `strategic`).
pub(crate) fn strategic(target: &mut Value, patch: &Value) -> Result<(), ApiError> {
    crate::strategic::apply(target, patch)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merge_patch_sets_and_deletes_keys() {
        let mut o = json!({"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]});
        merge(&mut o, &json!({"a": null, "b": {"c": 5}, "l": [3]}));
        assert_eq!(o, json!({"b": {"c": 5, "d": 3}, "l": [3]}));
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
    fn patch_types_come_from_content_type() {
        assert_eq!(PatchType::from_content_type("application/apply-patch+yaml; charset=utf-8"), Some(PatchType::Apply));
        assert_eq!(PatchType::from_content_type("application/json"), None);
    }
}
