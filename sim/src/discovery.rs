//! `/version`, legacy (non-aggregated) discovery and the OpenAPI v3 documents kubectl needs.
//!
//! kubectl prefers aggregated discovery but accepts the plain `APIVersions`/`APIGroupList`
//! answers. For `apply` it checks, per kind, whether the PATCH operation in the OpenAPI v3
//! document declares the `fieldValidation` query parameter; if so it leaves validation to the
//! server and sends no schema-based client check. The documents therefore carry paths with
//! that parameter and schemas that are only `x-kubernetes-preserve-unknown-fields`
//! (which also makes kubectl's client-side apply treat lists as atomic).

use serde_json::{Map, Value, json};

use crate::resources::{self, RESOURCES, ResourceDef};

/// Version reported on `/version` (the kubectl dispatcher picks its kubectl from it) and by
/// nodes. 1.31 because kubectl 1.32+ sends protobuf request bodies from its typed commands
/// (`kubectl create configmap`, `scale`, …), which the simulator does not decode; kubectl
/// 1.31 sends JSON everywhere. The API surface served is that of 1.33.
pub(crate) const GIT_VERSION: &str = "v1.31.0";

pub(crate) fn version() -> Value {
    json!({
        "major": "1", "minor": "31", "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000", "gitTreeState": "clean",
        "buildDate": "2024-08-13T00:00:00Z", "goVersion": "go1.22.5", "compiler": "gc",
        "platform": "linux/amd64",
    })
}

pub(crate) fn api_versions(addr: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr}],
    })
}

fn group_json(group: &str) -> Value {
    let versions: Vec<Value> = resources::group_versions()
        .into_iter()
        .filter(|(g, _)| *g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

pub(crate) fn api_group_list() -> Value {
    let mut groups: Vec<&str> = Vec::new();
    for (g, _) in resources::group_versions() {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups.iter().map(|g| group_json(g)).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`; `None` for unknown groups.
pub(crate) fn api_group(group: &str) -> Option<Value> {
    if !RESOURCES.iter().any(|r| r.group == group) || group.is_empty() {
        return None;
    }
    let mut g = group_json(group);
    if let Some(m) = g.as_object_mut() {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(g)
}

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// `/api/v1` or `/apis/<group>/<version>`; `None` for unknown group-versions.
pub(crate) fn resource_list(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut list = Vec::new();
    for r in defs {
        let mut e = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": VERBS,
            "storageVersionHash": format!("sim{}", r.plural.len()),
        });
        if let Some(m) = e.as_object_mut() {
            if !r.short_names.is_empty() {
                m.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                m.insert("categories".into(), json!(r.categories));
            }
        }
        list.push(e);
        if r.status {
            list.push(json!({
                "name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": r.kind, "verbs": ["get", "patch", "update"],
            }));
        }
        if r.scale {
            // kubectl's scale client finds the Scale kind through these fields.
            list.push(json!({
                "name": format!("{}/scale", r.plural), "singularName": "", "namespaced": r.namespaced,
                "group": "autoscaling", "version": "v1", "kind": "Scale", "verbs": ["get", "patch", "update"],
            }));
        }
    }
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// `/openapi/v3`: one entry per group-version.
pub(crate) fn openapi_index() -> Value {
    let mut paths = Map::new();
    for (g, v) in resources::group_versions() {
        let p = gv_path(g, v);
        paths.insert(
            p.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash=SIM{}", GIT_VERSION.replace('.', ""))}),
        );
    }
    json!({"paths": paths})
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<g>/<v>`; `None` for unknown group-versions.
pub(crate) fn openapi_doc(group: &str, version: &str) -> Option<Value> {
    let defs: Vec<&ResourceDef> = RESOURCES.iter().filter(|r| r.group == group && r.version == version).collect();
    if defs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let base = format!("/{}", gv_path(group, version));
    for r in defs {
        let schema_name = format!("{}.{}", r.schema_pkg, r.kind);
        let gvk = json!([r.gvk_json()]);
        let ok = json!({"200": {"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema_name}")}}}}});
        let op = |verb: &str, params: Vec<Value>| {
            json!({
                "operationId": format!("{verb}{}", r.kind),
                "parameters": params,
                "responses": ok,
                "x-kubernetes-action": verb,
                "x-kubernetes-group-version-kind": r.gvk_json(),
            })
        };
        let item_path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{base}/{}/{{name}}", r.plural)
        };
        let write_params = || vec![param("dryRun"), param("fieldManager"), param("fieldValidation")];
        let mut patch_params = write_params();
        patch_params.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}));
        paths.insert(
            item_path,
            json!({
                "get": op("get", vec![]),
                "put": op("put", write_params()),
                "patch": op("patch", patch_params),
                "delete": op("delete", vec![param("dryRun"), param("propagationPolicy")]),
            }),
        );
        let coll_path = if r.namespaced {
            format!("{base}/namespaces/{{namespace}}/{}", r.plural)
        } else {
            format!("{base}/{}", r.plural)
        };
        paths.insert(coll_path, json!({"get": op("list", vec![]), "post": op("post", write_params())}));
        schemas.insert(
            schema_name,
            json!({
                "type": "object",
                "description": format!("{} (schema elided by the Meridian simulator)", r.kind),
                "x-kubernetes-group-version-kind": gvk,
                "x-kubernetes-preserve-unknown-fields": true,
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}
