//! `/version`, legacy (non-aggregated) discovery and the OpenAPI v3 documents kubectl needs,
//! over what the cluster's registry serves (built-ins and established CRDs).
//!
//! kubectl prefers aggregated discovery but accepts the plain `APIVersions`/`APIGroupList`
//! answers. For `apply` it checks, per kind, whether the PATCH operation in the OpenAPI v3
//! document declares the `fieldValidation` query parameter; if so it leaves validation to the
//! server and sends no schema-based client check. The documents therefore carry paths with
//! that parameter and schemas that are only `x-kubernetes-preserve-unknown-fields`
//! (which also makes kubectl's client-side apply treat lists as atomic).

use serde_json::{Map, Value, json};

use crate::openapi_schemas;
use crate::registry::Registry;
use crate::resources::ResourceDef;
use crate::reviews::REVIEWS;

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

/// Kubernetes version priority (`version.CompareKubeAwareVersionStrings`): GA before
/// beta before alpha, higher numbers first; anything else after, alphabetically.
fn version_rank(v: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    let parsed = v.strip_prefix('v').and_then(|rest| {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        let (class, minor) = if tail.is_empty() {
            (0, "0")
        } else if let Some(m) = tail.strip_prefix("beta") {
            (1, m)
        } else {
            (2, tail.strip_prefix("alpha")?)
        };
        Some((class, major, if minor.is_empty() { 0 } else { minor.parse().ok()? }))
    });
    match parsed {
        Some((class, major, minor)) => (class, std::cmp::Reverse(major), std::cmp::Reverse(minor), String::new()),
        None => (3, std::cmp::Reverse(0), std::cmp::Reverse(0), v.to_string()),
    }
}

/// Distinct (group, version) pairs served: groups in registry order, each group's
/// versions by priority (the first is the preferred one).
fn group_versions(reg: &Registry) -> Vec<(String, String)> {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for r in reg.served() {
        match groups.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, versions)) if !versions.contains(&r.version) => versions.push(r.version.clone()),
            Some(_) => {}
            None => groups.push((r.group.clone(), vec![r.version.clone()])),
        }
    }
    let mut out = Vec::new();
    for (g, mut versions) in groups {
        versions.sort_by_key(|v| version_rank(v));
        out.extend(versions.into_iter().map(|v| (g.clone(), v)));
    }
    out
}

/// What discovery lists: the registry's group-versions, then those of the review
/// resources (which are served but never stored, and have no OpenAPI document here).
fn discovered_group_versions(reg: &Registry) -> Vec<(String, String)> {
    let mut out = group_versions(reg);
    for r in REVIEWS {
        let gv = (r.group.to_string(), r.version.to_string());
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

fn group_json(reg: &Registry, group: &str) -> Value {
    let versions: Vec<Value> = discovered_group_versions(reg)
        .into_iter()
        .filter(|(g, _)| g == group)
        .map(|(g, v)| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    let preferred = versions.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": versions, "preferredVersion": preferred})
}

pub(crate) fn api_group_list(reg: &Registry) -> Value {
    let mut groups: Vec<String> = Vec::new();
    for (g, _) in discovered_group_versions(reg) {
        if !g.is_empty() && !groups.contains(&g) {
            groups.push(g);
        }
    }
    json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": groups.iter().map(|g| group_json(reg, g)).collect::<Vec<_>>(),
    })
}

/// `/apis/<group>`; `None` for unknown groups.
pub(crate) fn api_group(reg: &Registry, group: &str) -> Option<Value> {
    if group.is_empty() || !discovered_group_versions(reg).iter().any(|(g, _)| g == group) {
        return None;
    }
    let mut g = group_json(reg, group);
    if let Some(m) = g.as_object_mut() {
        m.insert("kind".into(), json!("APIGroup"));
        m.insert("apiVersion".into(), json!("v1"));
    }
    Some(g)
}

const VERBS: [&str; 8] = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

/// The resources served at one group-version.
fn defs_at<'a>(reg: &'a Registry, group: &str, version: &str) -> Vec<&'a ResourceDef> {
    reg.served().filter(|r| r.group == group && r.version == version).map(|r| r.as_ref()).collect()
}

/// One resource's `APIResource` entries: itself, then its subresources.
fn api_resources(r: &ResourceDef) -> Vec<Value> {
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
    let mut list = vec![e];
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
    list
}

/// `/api/v1` or `/apis/<group>/<version>`; `None` for unknown group-versions.
pub(crate) fn resource_list(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = defs_at(reg, group, version);
    let reviews: Vec<Value> = REVIEWS
        .iter()
        .filter(|r| r.group == group && r.version == version)
        .map(|r| {
            json!({"name": r.plural, "singularName": r.singular, "namespaced": false, "kind": r.kind, "verbs": ["create"]})
        })
        .collect();
    if defs.is_empty() && reviews.is_empty() {
        return None;
    }
    let list: Vec<Value> = defs.into_iter().flat_map(api_resources).chain(reviews).collect();
    let gv = if group.is_empty() { version.to_string() } else { format!("{group}/{version}") };
    Some(json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": list}))
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

/// The `hash` of a group-version's document: it changes when what is served there does
/// (a CRD update) or the built-in schemas do, so clients that cache documents by URL
/// fetch the new one.
fn doc_hash(reg: &Registry, group: &str, version: &str) -> String {
    let text = format!("{}{:?}", openapi_schemas::SOURCE, defs_at(reg, group, version));
    // FNV-1a: stable across runs, unlike the std hasher.
    let h = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("SIM{}{h:016X}", GIT_VERSION.replace('.', ""))
}

/// `/openapi/v3`: one entry per group-version.
pub(crate) fn openapi_index(reg: &Registry) -> Value {
    let mut paths = Map::new();
    for (g, v) in group_versions(reg) {
        let p = gv_path(&g, &v);
        paths
            .insert(p.clone(), json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", doc_hash(reg, &g, &v))}));
    }
    json!({"paths": paths})
}

fn param(name: &str) -> Value {
    json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}})
}

/// The item and collection paths of one resource, with the operations kubectl looks for.
fn openapi_paths(r: &ResourceDef, base: &str, schema_name: &str, paths: &mut Map<String, Value>) {
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
    let coll_path = if r.namespaced {
        format!("{base}/namespaces/{{namespace}}/{}", r.plural)
    } else {
        format!("{base}/{}", r.plural)
    };
    let write_params = || vec![param("dryRun"), param("fieldManager"), param("fieldValidation")];
    let mut patch_params = write_params();
    patch_params.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": true}}));
    paths.insert(
        format!("{coll_path}/{{name}}"),
        json!({
            "get": op("get", vec![]),
            "put": op("put", write_params()),
            "patch": op("patch", patch_params),
            "delete": op("delete", vec![param("dryRun"), param("propagationPolicy")]),
        }),
    );
    paths.insert(coll_path, json!({"get": op("list", vec![]), "post": op("post", write_params())}));
}

/// `/openapi/v3/api/v1` or `/openapi/v3/apis/<g>/<v>`; `None` for unknown group-versions.
pub(crate) fn openapi_doc(reg: &Registry, group: &str, version: &str) -> Option<Value> {
    let defs = defs_at(reg, group, version);
    if defs.is_empty() {
        return None;
    }
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let base = format!("/{}", gv_path(group, version));
    for r in defs {
        let schema_name = format!("{}.{}", r.schema_pkg, r.kind);
        openapi_paths(r, &base, &schema_name, &mut paths);
        let schema = match openapi_schemas::all().get(&schema_name) {
            Some(real) => {
                with_references(real, &mut schemas);
                let mut real = real.clone();
                if let Some(m) = real.as_object_mut() {
                    m.insert("x-kubernetes-group-version-kind".into(), json!([r.gvk_json()]));
                }
                real
            }
            // Custom resources: their CRD's schema is not translated here.
            None => json!({
                "type": "object",
                "description": format!("{} (schema elided by the Meridian simulator)", r.kind),
                "x-kubernetes-group-version-kind": [r.gvk_json()],
                "x-kubernetes-preserve-unknown-fields": true,
            }),
        };
        schemas.insert(schema_name, schema);
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// Adds every schema `schema` refers to, directly or through others, to `out`.
fn with_references(schema: &Value, out: &mut Map<String, Value>) {
    let mut pending = vec![schema];
    while let Some(v) = pending.pop() {
        match v {
            Value::Object(m) => {
                let target =
                    m.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix("#/components/schemas/"));
                if let Some(name) = target.filter(|n| !out.contains_key(*n))
                    && let Some(found) = openapi_schemas::all().get(name)
                {
                    out.insert(name.to_owned(), found.clone());
                    pending.push(found);
                }
                pending.extend(m.values());
            }
            Value::Array(items) => pending.extend(items),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_by_kubernetes_priority() {
        let mut v = vec!["v1alpha1", "foo", "v2beta1", "v1", "v1beta2", "v1beta1", "v2", "v10alpha1"];
        v.sort_by_key(|v| version_rank(v));
        assert_eq!(v, ["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v10alpha1", "v1alpha1", "foo"]);
    }
}
