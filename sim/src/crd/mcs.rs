//! The Multi-Cluster Services API CRDs (KEP-1645, `multicluster.x-k8s.io/v1alpha1`) that
//! every simulated cluster has installed, as a cluster running an MCS implementation
//! would. Their schemas are abridged: the simulator neither validates nor prunes.

use serde_json::{Value, json};

/// The `conditions` list schema both kinds use in their status.
fn conditions_schema() -> Value {
    json!({
        "type": "array",
        "x-kubernetes-list-type": "map",
        "x-kubernetes-list-map-keys": ["type"],
        "items": {"type": "object", "required": ["lastTransitionTime", "message", "reason", "status", "type"],
            "properties": {
                "lastTransitionTime": {"type": "string", "format": "date-time"},
                "message": {"type": "string"},
                "observedGeneration": {"type": "integer", "format": "int64"},
                "reason": {"type": "string"},
                "status": {"type": "string", "enum": ["True", "False", "Unknown"]},
                "type": {"type": "string"},
            }},
    })
}

fn crd(plural: &str, kind: &str, short: &str, columns: Value, properties: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.multicluster.x-k8s.io")},
        "spec": {
            "group": "multicluster.x-k8s.io",
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind, "shortNames": [short]},
            "versions": [{
                "name": "v1alpha1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": properties}},
            }],
        },
    })
}

/// `serviceexports.multicluster.x-k8s.io` and `serviceimports.multicluster.x-k8s.io`.
pub(crate) fn mcs_crds() -> [Value; 2] {
    let age = json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"});
    let meta = json!({"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}});
    let mut export_props = meta.clone();
    export_props["status"] = json!({"type": "object", "properties": {"conditions": conditions_schema()}});
    let mut import_props = meta;
    import_props["spec"] = json!({"type": "object", "required": ["ports", "type"], "properties": {
        "ips": {"type": "array", "maxItems": 1, "items": {"type": "string"}},
        "ports": {"type": "array", "x-kubernetes-list-type": "atomic", "items": {"type": "object", "required": ["port"],
            "properties": {"appProtocol": {"type": "string"}, "name": {"type": "string"},
                "port": {"type": "integer", "format": "int32"}, "protocol": {"type": "string"}}}},
        "sessionAffinity": {"type": "string"},
        "sessionAffinityConfig": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
        "type": {"type": "string", "enum": ["ClusterSetIP", "Headless"]},
    }});
    import_props["status"] = json!({"type": "object", "properties": {"clusters": {"type": "array",
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["cluster"],
        "items": {"type": "object", "required": ["cluster"], "properties": {"cluster": {"type": "string"}}}}}});
    let import_columns = json!([
        {"name": "Type", "type": "string", "description": "The type of this ServiceImport", "jsonPath": ".spec.type"},
        {"name": "IP", "type": "string", "description": "The VIP for this ServiceImport", "jsonPath": ".spec.ips"},
        age,
    ]);
    [
        crd("serviceexports", "ServiceExport", "svcex", json!([age]), export_props),
        crd("serviceimports", "ServiceImport", "svcim", import_columns, import_props),
    ]
}
