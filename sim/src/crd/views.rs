//! The resource definitions a stored CRD serves: one per served version, all sharing the
//! CRD's store id.

use std::sync::Arc;

use serde_json::Value;

use super::spec::{CrdSpec, Version};
use super::status;
use crate::resources::{Custom, PrinterColumn, ResId, ResourceDef};
use crate::util;

/// What one CRD contributes to the registry.
#[derive(Debug)]
pub(crate) struct Views {
    /// The resource at its storage version (served or not): how objects are stored.
    pub(crate) storage: Arc<ResourceDef>,
    /// One per served version, in the CRD's order; none until the CRD is established.
    pub(crate) served: Vec<Arc<ResourceDef>>,
}

/// The Age column a CRD version without `additionalPrinterColumns` shows.
fn age_column() -> PrinterColumn {
    PrinterColumn {
        name: "Age".into(),
        ty: "date".into(),
        format: String::new(),
        description: "CreationTimestamp is a timestamp representing the server time when this object was created."
            .into(),
        priority: 0,
        json_path: ".metadata.creationTimestamp".into(),
    }
}

/// The views of `crd` under store id `id`; `None` when it names no storage version.
pub(crate) fn views(crd: &Value, id: ResId) -> Option<Views> {
    let spec = CrdSpec::read(crd);
    let storage = spec.storage_version()?;
    let storage_api_version = format!("{}/{}", spec.group, storage.name);
    let terminating = util::meta_str(crd, "deletionTimestamp").is_some();
    let crd_name = util::meta_str(crd, "name").unwrap_or("").to_string();
    let view = |v: &Version| {
        let columns = if v.columns.is_empty() { vec![age_column()] } else { v.columns.clone() };
        Arc::new(ResourceDef {
            id,
            group: spec.group.clone(),
            version: v.name.clone(),
            plural: spec.names.plural.clone(),
            singular: spec.names.singular.clone(),
            kind: spec.names.kind.clone(),
            namespaced: spec.scope == "Namespaced",
            short_names: spec.names.short_names.clone(),
            categories: spec.names.categories.clone(),
            status: v.status,
            scale: false,
            schema_pkg: spec.group.split('.').rev().collect::<Vec<_>>().join(".") + "." + &v.name,
            custom: Some(Custom {
                crd: crd_name.clone(),
                storage_api_version: storage_api_version.clone(),
                columns,
                terminating,
            }),
        })
    };
    let served = if status::is_established(crd) {
        spec.versions.iter().filter(|v| v.served).map(view).collect()
    } else {
        Vec::new()
    };
    Some(Views { storage: view(storage), served })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn served_versions_share_the_id_and_store_at_the_storage_version() {
        let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [
                {"name": "v1beta1", "served": true, "storage": false},
                {"name": "v1", "served": true, "storage": true, "subresources": {"status": {}}},
                {"name": "v1alpha1", "served": false, "storage": false}]},
            "status": {"conditions": [{"type": "Established", "status": "True"}]}});
        let v = views(&crd, 40).unwrap_or_else(|| panic!("no views"));
        let got: Vec<(ResId, &str, bool, bool)> =
            v.served.iter().map(|d| (d.id, d.version.as_str(), d.status, d.namespaced)).collect();
        assert_eq!(got, vec![(40, "v1beta1", false, false), (40, "v1", true, false)]);
        assert_eq!(v.storage.storage_api_version(), "example.com/v1");
        assert_eq!(v.served[0].custom.as_ref().map(|c| c.columns[0].name.as_str()), Some("Age"));
        assert_eq!(v.storage.schema_pkg, "com.example.v1");

        let mut pending = crd.clone();
        pending["status"] = json!({});
        assert!(views(&pending, 40).is_some_and(|v| v.served.is_empty()));
    }
}
