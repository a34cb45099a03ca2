//! A CustomResourceDefinition's spec read from its JSON, and its defaults. Reading is
//! lenient: a field that is missing or of the wrong type reads as empty, and validation
//! reports it.

use serde_json::{Map, Value, json};

use crate::resources::PrinterColumn;

/// `spec.names`, or `status.acceptedNames`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Names {
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) kind: String,
    pub(crate) list_kind: String,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
}

/// One entry of `spec.versions`.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Version {
    pub(crate) name: String,
    pub(crate) served: bool,
    pub(crate) storage: bool,
    /// `subresources.status` is declared.
    pub(crate) status: bool,
    pub(crate) columns: Vec<PrinterColumn>,
    /// `schema.openAPIV3Schema` is present (required in apiextensions.k8s.io/v1).
    pub(crate) has_schema: bool,
}

/// What the simulator reads of a CRD's spec.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct CrdSpec {
    pub(crate) group: String,
    /// `Namespaced` or `Cluster`.
    pub(crate) scope: String,
    pub(crate) names: Names,
    pub(crate) versions: Vec<Version>,
}

fn text(v: Option<&Value>, field: &str) -> String {
    v.and_then(|v| v.get(field)).and_then(Value::as_str).unwrap_or("").to_string()
}

fn texts(v: Option<&Value>, field: &str) -> Vec<String> {
    let items = v.and_then(|v| v.get(field)).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    items.iter().map(|s| s.as_str().unwrap_or("").to_string()).collect()
}

fn flag(v: &Value, field: &str) -> bool {
    v.get(field).and_then(Value::as_bool).unwrap_or(false)
}

impl Names {
    pub(crate) fn read(v: Option<&Value>) -> Self {
        Self {
            plural: text(v, "plural"),
            singular: text(v, "singular"),
            kind: text(v, "kind"),
            list_kind: text(v, "listKind"),
            short_names: texts(v, "shortNames"),
            categories: texts(v, "categories"),
        }
    }

    /// As `status.acceptedNames` writes them (empty lists left out, as Go's `omitempty`).
    pub(crate) fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("plural".into(), json!(self.plural));
        m.insert("singular".into(), json!(self.singular));
        m.insert("kind".into(), json!(self.kind));
        m.insert("listKind".into(), json!(self.list_kind));
        if !self.short_names.is_empty() {
            m.insert("shortNames".into(), json!(self.short_names));
        }
        if !self.categories.is_empty() {
            m.insert("categories".into(), json!(self.categories));
        }
        Value::Object(m)
    }
}

impl Version {
    fn read(v: &Value) -> Self {
        let columns =
            v.get("additionalPrinterColumns").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        Self {
            name: text(Some(v), "name"),
            served: flag(v, "served"),
            storage: flag(v, "storage"),
            status: v.pointer("/subresources/status").is_some_and(Value::is_object),
            columns: columns.iter().map(column).collect(),
            has_schema: v.pointer("/schema/openAPIV3Schema").is_some_and(Value::is_object),
        }
    }
}

fn column(c: &Value) -> PrinterColumn {
    PrinterColumn {
        name: text(Some(c), "name"),
        ty: text(Some(c), "type"),
        format: text(Some(c), "format"),
        description: text(Some(c), "description"),
        priority: c.get("priority").and_then(Value::as_i64).unwrap_or(0),
        json_path: text(Some(c), "jsonPath"),
    }
}

impl CrdSpec {
    pub(crate) fn read(crd: &Value) -> Self {
        let spec = crd.get("spec");
        let versions = spec.and_then(|s| s.get("versions")).and_then(Value::as_array).map(Vec::as_slice);
        Self {
            group: text(spec, "group"),
            scope: text(spec, "scope"),
            names: Names::read(spec.and_then(|s| s.get("names"))),
            versions: versions.unwrap_or_default().iter().map(Version::read).collect(),
        }
    }

    /// The version marked `storage` (validation makes it exactly one).
    pub(crate) fn storage_version(&self) -> Option<&Version> {
        self.versions.iter().find(|v| v.storage)
    }
}

/// `SetDefaults_CustomResourceDefinition`: the singular name is the lower-cased kind, the
/// list kind `<Kind>List`, and conversion strategy `None`.
pub(crate) fn set_defaults(crd: &mut Value) {
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else { return };
    spec.entry("conversion").or_insert_with(|| json!({"strategy": "None"}));
    let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) else { return };
    let kind = names.get("kind").and_then(Value::as_str).unwrap_or("").to_string();
    if kind.is_empty() {
        return;
    }
    let empty = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
    if empty(names.get("singular")) {
        names.insert("singular".into(), json!(kind.to_lowercase()));
    }
    if empty(names.get("listKind")) {
        names.insert("listKind".into(), json!(format!("{kind}List")));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_singular_list_kind_and_conversion_only_when_missing() {
        let mut crd = json!({"spec": {"names": {"kind": "Widget", "plural": "widgets"}}});
        set_defaults(&mut crd);
        assert_eq!(crd["spec"]["names"]["singular"], "widget");
        assert_eq!(crd["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(crd["spec"]["conversion"], json!({"strategy": "None"}));
        let mut kept = json!({"spec": {"names": {"kind": "Widget", "singular": "wdg", "listKind": "Widgets"}}});
        set_defaults(&mut kept);
        assert_eq!(kept["spec"]["names"]["singular"], "wdg");
        assert_eq!(kept["spec"]["names"]["listKind"], "Widgets");
    }

    #[test]
    fn reading_is_lenient_about_types() {
        let crd = json!({"spec": {"group": 7, "names": {"shortNames": ["a", 1]}, "versions": [{"name": "v1", "storage": "yes",
            "subresources": {"status": {}}, "additionalPrinterColumns": [{"name": "X", "jsonPath": ".spec.x", "priority": 1}]}]}});
        let spec = CrdSpec::read(&crd);
        assert_eq!(spec.group, "");
        assert_eq!(spec.names.short_names, vec!["a".to_string(), String::new()]);
        let v = &spec.versions[0];
        assert!(v.status && !v.storage && !v.has_schema);
        assert_eq!((v.columns[0].json_path.as_str(), v.columns[0].priority), (".spec.x", 1));
    }
}
