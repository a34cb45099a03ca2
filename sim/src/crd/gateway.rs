//! The Gateway API's standard-channel CRDs (`gateway.networking.k8s.io/v1`): GatewayClass,
//! Gateway and HTTPRoute, installed in every simulated cluster as on a cluster whose
//! provider ships a Gateway controller. Their schemas are abridged (the simulator neither
//! validates nor prunes their fields); the printer columns are the real ones.

use serde_json::{Value, json};

/// The API group.
pub(crate) const GROUP: &str = "gateway.networking.k8s.io";

fn crd(plural: &str, kind: &str, namespaced: bool, short: &[&str], columns: Value) -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{plural}.{GROUP}"),
            // `*.k8s.io` groups are protected: their CRDs carry the approval (the
            // Gateway API's own, as its released CRDs do).
            "annotations": {
                "api-approved.kubernetes.io": "https://github.com/kubernetes-sigs/gateway-api/pull/2466",
                "gateway.networking.k8s.io/channel": "standard",
            },
        },
        "spec": {
            "group": GROUP,
            "scope": if namespaced { "Namespaced" } else { "Cluster" },
            "names": {
                "plural": plural,
                "singular": kind.to_ascii_lowercase(),
                "kind": kind,
                "listKind": format!("{kind}List"),
                "shortNames": short,
                "categories": ["gateway-api"],
            },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": {"status": {}},
                "additionalPrinterColumns": columns,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            }],
        },
    })
}

/// `gatewayclasses`, `gateways` and `httproutes` of `gateway.networking.k8s.io`.
pub(crate) fn gateway_crds() -> [Value; 3] {
    let age = json!({"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"});
    let accepted = json!({"name": "Accepted", "type": "string",
        "jsonPath": ".status.conditions[?(@.type==\"Accepted\")].status"});
    let class_columns = json!([
        {"name": "Controller", "type": "string", "jsonPath": ".spec.controllerName"},
        accepted,
        age,
    ]);
    let gateway_columns = json!([
        {"name": "Class", "type": "string", "jsonPath": ".spec.gatewayClassName"},
        {"name": "Address", "type": "string", "jsonPath": ".status.addresses[*].value"},
        {"name": "Programmed", "type": "string",
            "jsonPath": ".status.conditions[?(@.type==\"Programmed\")].status"},
        age,
    ]);
    let route_columns = json!([{"name": "Hostnames", "type": "string", "jsonPath": ".spec.hostnames"}, age]);
    [
        crd("gatewayclasses", "GatewayClass", false, &["gc"], class_columns),
        crd("gateways", "Gateway", true, &["gtw"], gateway_columns),
        crd("httproutes", "HTTPRoute", true, &[], route_columns),
    ]
}
