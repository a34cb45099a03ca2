//! `ValidateCustomResourceDefinition` and its update rules, for what the simulator reads
//! of a CRD: the name `<plural>.<group>`, the group, scope and names, exactly one storage
//! version, a schema per version, the approval annotation of protected groups, and the
//! fields that may not change once the CRD is established.

use serde_json::Value;

use super::spec::{CrdSpec, Names};
use crate::error::{ApiError, FieldCause};
use crate::util;

const DNS1035_ERROR: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_ERROR: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
/// The annotation a CRD in a `*.k8s.io` or `*.kubernetes.io` group must carry (KEP 1111).
const APPROVAL_ANNOTATION: &str = "api-approved.kubernetes.io";

/// `[a-z]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
fn is_dns1035_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.first().is_some_and(u8::is_ascii_lowercase)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Lower-case RFC 1123 subdomain: dot-separated labels, at most 253 characters.
fn is_dns1123_subdomain(s: &str) -> bool {
    s.len() <= 253
        && s.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
                && b.first().is_some_and(u8::is_ascii_alphanumeric)
                && b.last().is_some_and(u8::is_ascii_alphanumeric)
        })
}

fn is_protected_group(group: &str) -> bool {
    ["k8s.io", "kubernetes.io"].iter().any(|d| group == *d || group.ends_with(&format!(".{d}")))
}

/// 422 with every problem of `crd` (an update when `old` is given), or `Ok`.
pub(crate) fn validate(crd: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    let spec = CrdSpec::read(crd);
    let name = util::meta_str(crd, "name").unwrap_or("");
    let mut causes = Vec::new();
    check_group(crd, &spec.group, &mut causes);
    check_scope(&spec.scope, &mut causes);
    check_names(&spec.names, &mut causes);
    let want = format!("{}.{}", spec.names.plural, spec.group);
    if name != want {
        causes.push(FieldCause::invalid("metadata.name", name, "must be spec.names.plural+\".\"+spec.group"));
    }
    check_versions(&spec, &mut causes);
    if let Some(old) = old {
        check_update(&spec, old, &mut causes);
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid_fields("apiextensions.k8s.io", "CustomResourceDefinition", name, &causes))
}

fn check_group(crd: &Value, group: &str, causes: &mut Vec<FieldCause>) {
    if group.is_empty() {
        causes.push(FieldCause::required("spec.group", ""));
    } else if !is_dns1123_subdomain(group) {
        causes.push(FieldCause::invalid("spec.group", group, DNS1123_SUBDOMAIN_ERROR));
    } else if !group.contains('.') {
        causes.push(FieldCause::invalid("spec.group", group, "should be a domain with at least one dot"));
    } else if is_protected_group(group) && util::annotation(crd, APPROVAL_ANNOTATION).is_none() {
        causes.push(FieldCause::required(
            format!("metadata.annotations[{APPROVAL_ANNOTATION}]"),
            "protected groups must have approval annotation \"api-approved.kubernetes.io\", see https://github.com/kubernetes/enhancements/pull/1111",
        ));
    }
}

fn check_scope(scope: &str, causes: &mut Vec<FieldCause>) {
    match scope {
        "" => causes.push(FieldCause::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => causes.push(FieldCause::not_supported("spec.scope", other, &["Cluster", "Namespaced"])),
    }
}

/// The names: plural, kind and listKind required; each a DNS-1035 label (kinds once
/// lower-cased), and the list kind not the kind itself.
fn check_names(names: &Names, causes: &mut Vec<FieldCause>) {
    let mut label = |field: &str, value: &str, checked: &str| {
        if !is_dns1035_label(checked) {
            causes.push(FieldCause::invalid(format!("spec.names.{field}"), value, DNS1035_ERROR));
        }
    };
    let required =
        [("plural", &names.plural, false), ("kind", &names.kind, true), ("listKind", &names.list_kind, true)];
    let mut missing = Vec::new();
    for (field, value, lower) in required {
        if value.is_empty() {
            missing.push(FieldCause::required(format!("spec.names.{field}"), ""));
        } else {
            label(field, value, &if lower { value.to_lowercase() } else { value.clone() });
        }
    }
    if !names.singular.is_empty() {
        label("singular", &names.singular, &names.singular);
    }
    for (i, s) in names.short_names.iter().enumerate() {
        label(&format!("shortNames[{i}]"), s, s);
    }
    for (i, c) in names.categories.iter().enumerate() {
        label(&format!("categories[{i}]"), c, c);
    }
    causes.extend(missing);
    if !names.kind.is_empty() && names.kind == names.list_kind {
        causes.push(FieldCause::invalid(
            "spec.names.listKind",
            &names.list_kind,
            "kind and listKind may not be the same",
        ));
    }
}

fn check_versions(spec: &CrdSpec, causes: &mut Vec<FieldCause>) {
    if spec.versions.is_empty() {
        causes.push(FieldCause::required("spec.versions", ""));
        return;
    }
    if spec.versions.iter().filter(|v| v.storage).count() != 1 {
        causes.push(FieldCause::invalid(
            "spec.versions",
            &spec.versions.iter().map(|v| v.name.as_str()).collect::<Vec<_>>().join(","),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, v) in spec.versions.iter().enumerate() {
        if !is_dns1035_label(&v.name) {
            causes.push(FieldCause::invalid(format!("spec.versions[{i}].name"), &v.name, DNS1035_ERROR));
        }
        if !seen.insert(v.name.as_str()) {
            causes.push(FieldCause::duplicate(format!("spec.versions[{i}].name"), &v.name));
        }
        if !v.has_schema {
            causes.push(FieldCause::required(
                format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
}

/// Once established, scope and kind are fixed; a version objects may be stored at
/// (`status.storedVersions`) may not leave `spec.versions`.
fn check_update(spec: &CrdSpec, old: &Value, causes: &mut Vec<FieldCause>) {
    let before = CrdSpec::read(old);
    if super::status::is_established(old) {
        if spec.scope != before.scope {
            causes.push(FieldCause::invalid("spec.scope", &spec.scope, "field is immutable"));
        }
        if spec.names.kind != before.names.kind {
            causes.push(FieldCause::invalid("spec.names.kind", &spec.names.kind, "field is immutable"));
        }
    }
    for (i, stored) in super::status::stored_versions(old).iter().enumerate() {
        if !spec.versions.iter().any(|v| &v.name == stored) {
            causes.push(FieldCause::invalid(
                format!("status.storedVersions[{i}]"),
                stored,
                "must appear in spec.versions",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn crd(name: &str, group: &str, plural: &str, scope: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"group": group, "scope": scope,
            "names": {"plural": plural, "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]}})
    }

    fn problems(crd: &Value, old: Option<&Value>) -> Vec<String> {
        match validate(crd, old) {
            Ok(()) => Vec::new(),
            Err(e) => e.details.and_then(|d| d.get("causes").cloned()).and_then(|c| c.as_array().cloned()).map_or_else(
                Vec::new,
                |c| {
                    c.iter()
                        .map(|c| {
                            format!("{}: {}", c["field"].as_str().unwrap_or(""), c["message"].as_str().unwrap_or(""))
                        })
                        .collect()
                },
            ),
        }
    }

    // ValidateCustomResourceDefinition: one case per rule, each naming the field it fails.
    #[test]
    fn each_rule_names_its_field() {
        let ok = crd("widgets.example.com", "example.com", "widgets", "Namespaced");
        assert_eq!(problems(&ok, None), Vec::<String>::new());
        let mut two_storage = ok.clone();
        two_storage["spec"]["versions"] = json!([
            {"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {}}},
            {"name": "v1", "served": true, "storage": true}]);
        let mut protected = crd("widgets.x.k8s.io", "x.k8s.io", "widgets", "Namespaced");
        let cases: Vec<(Value, &str)> = vec![
            (
                crd("widget.example.com", "example.com", "widgets", "Namespaced"),
                "metadata.name: Invalid value: \"widget.example.com\": must be spec.names.plural+\".\"+spec.group",
            ),
            (
                crd("widgets.example", "example", "widgets", "Namespaced"),
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot",
            ),
            (
                crd("widgets.example.com", "example.com", "widgets", "Global"),
                "spec.scope: Unsupported value: \"Global\": supported values: \"Cluster\", \"Namespaced\"",
            ),
            (
                crd("Widgets.example.com", "example.com", "Widgets", "Cluster"),
                "spec.names.plural: Invalid value: \"Widgets\"",
            ),
            (
                two_storage.clone(),
                "spec.versions: Invalid value: \"v1,v1\": must have exactly one version marked as storage version",
            ),
            (two_storage.clone(), "spec.versions[1].name: Duplicate value: \"v1\""),
            (two_storage, "spec.versions[1].schema.openAPIV3Schema: Required value: schemas are required"),
            (protected.clone(), "metadata.annotations[api-approved.kubernetes.io]: Required value"),
        ];
        for (c, want) in cases {
            let got = problems(&c, None);
            assert!(got.iter().any(|p| p.starts_with(want)), "want {want:?} in {got:?}");
        }
        protected["metadata"]["annotations"] =
            json!({APPROVAL_ANNOTATION: "https://github.com/kubernetes/enhancements/pull/1111"});
        assert_eq!(problems(&protected, None), Vec::<String>::new());
    }

    // ValidateCustomResourceDefinitionUpdate and ValidateCustomResourceDefinitionStoredVersions.
    #[test]
    fn established_scope_and_stored_versions_are_kept() {
        let mut old = crd("widgets.example.com", "example.com", "widgets", "Namespaced");
        old["status"] = json!({"conditions": [{"type": "Established", "status": "True"}], "storedVersions": ["v1"]});
        let mut new = crd("widgets.example.com", "example.com", "widgets", "Cluster");
        new["spec"]["versions"][0]["name"] = json!("v2");
        let got = problems(&new, Some(&old));
        assert!(got.iter().any(|p| p == "spec.scope: Invalid value: \"Cluster\": field is immutable"), "{got:?}");
        assert!(
            got.iter().any(|p| p == "status.storedVersions[0]: Invalid value: \"v1\": must appear in spec.versions"),
            "{got:?}"
        );
    }
}
