//! `meta.k8s.io/v1 Table` answers for kubectl's human-readable output: the built-in
//! types' columns, and a custom resource's `additionalPrinterColumns`.
//!
//! Rows carry the object's metadata as a `PartialObjectMetadata` (the real server's default
//! `includeObject=Metadata`): kubectl reads the namespace for `-A` and labels for
//! `--show-labels` from it.

use serde_json::{Value, json};

use crate::jsonpath;
use crate::resources::{PrinterColumn, ResourceDef};
use crate::util;

/// (name, type, priority). Priority 1 columns appear only with `-o wide`.
type Col = (&'static str, &'static str, u8);

/// The columns kube-apiserver's printers give each built-in kind. Long because it is
/// data: one arm per kind, each its column list.
fn columns(def: &ResourceDef) -> &'static [Col] {
    match def.plural.as_str() {
        "services" => &[
            ("Name", "string", 0),
            ("Type", "string", 0),
            ("Cluster-IP", "string", 0),
            ("External-IP", "string", 0),
            ("Port(s)", "string", 0),
            ("Age", "string", 0),
            ("Selector", "string", 1),
        ],
        "deployments" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "replicasets" => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "statefulsets" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
        ],
        "daemonsets" => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Node Selector", "string", 0),
            ("Age", "string", 0),
            ("Containers", "string", 1),
            ("Images", "string", 1),
            ("Selector", "string", 1),
        ],
        "pods" => &[
            ("Name", "string", 0),
            ("Ready", "string", 0),
            ("Status", "string", 0),
            ("Restarts", "string", 0),
            ("Age", "string", 0),
            ("IP", "string", 1),
            ("Node", "string", 1),
            ("Nominated Node", "string", 1),
            ("Readiness Gates", "string", 1),
        ],
        "serviceaccounts" => &[("Name", "string", 0), ("Secrets", "string", 0), ("Age", "string", 0)],
        "nodes" => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Internal-IP", "string", 1),
            ("External-IP", "string", 1),
            ("OS-Image", "string", 1),
            ("Kernel-Version", "string", 1),
            ("Container-Runtime", "string", 1),
        ],
        "namespaces" => &[("Name", "string", 0), ("Status", "string", 0), ("Age", "string", 0)],
        "endpointslices" => &[
            ("Name", "string", 0),
            ("AddressType", "string", 0),
            ("Ports", "string", 0),
            ("Endpoints", "string", 0),
            ("Age", "string", 0),
        ],
        "endpoints" => &[("Name", "string", 0), ("Endpoints", "string", 0), ("Age", "string", 0)],
        "ingresses" => &[
            ("Name", "string", 0),
            ("Class", "string", 0),
            ("Hosts", "string", 0),
            ("Address", "string", 0),
            ("Ports", "string", 0),
            ("Age", "string", 0),
        ],
        "configmaps" => &[("Name", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        "secrets" => &[("Name", "string", 0), ("Type", "string", 0), ("Data", "integer", 0), ("Age", "string", 0)],
        "customresourcedefinitions" => &[("Name", "string", 0), ("Created At", "date", 0)],
        _ => &[("Name", "string", 0), ("Age", "string", 0)],
    }
}

fn column_definitions(def: &ResourceDef) -> Value {
    if let Some(custom) = &def.custom {
        return custom_column_definitions(&custom.columns);
    }
    let cols: Vec<Value> = columns(def)
        .iter()
        .map(|(name, ty, prio)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": ty, "format": format, "description": "", "priority": prio})
        })
        .collect();
    Value::Array(cols)
}

/// A Name column, then the printer columns.
fn custom_column_definitions(columns: &[PrinterColumn]) -> Value {
    let name = json!({"name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace.", "priority": 0});
    let rest = columns.iter().map(|c| {
        json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority})
    });
    Value::Array(std::iter::once(name).chain(rest).collect())
}

/// A custom resource's row: its name, then each printer column's value, typed like the
/// API server's table convertor does (`date` as an age, `string` as text, numbers and
/// booleans as themselves, null when the path selects nothing).
fn custom_cells(columns: &[PrinterColumn], o: &Value) -> Vec<Value> {
    let mut row = vec![json!(s(o, "/metadata/name"))];
    row.extend(columns.iter().map(|c| {
        let Some(v) = jsonpath::first(o, &c.json_path) else { return Value::Null };
        match (c.ty.as_str(), v) {
            ("string", Value::String(_)) => v.clone(),
            ("string", other) => json!(other.to_string()),
            ("date", Value::String(t)) => json!(util::age(Some(t.as_str()))),
            ("integer", Value::Number(n)) if n.is_i64() || n.is_u64() => v.clone(),
            ("integer", Value::Number(n)) => n.as_f64().map_or(Value::Null, |f| json!(f as i64)),
            ("number", Value::Number(_)) | ("boolean", Value::Bool(_)) => v.clone(),
            _ => Value::Null,
        }
    }));
    row
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn n(v: &Value, ptr: &str) -> u64 {
    v.pointer(ptr).and_then(Value::as_u64).unwrap_or(0)
}

fn or_none(x: String) -> String {
    if x.is_empty() { "<none>".into() } else { x }
}

/// One row's cells, in the order of [`columns`]: the name, the kind's own cells, Age, then
/// the cells of columns after Age (most shown only with `-o wide`).
fn cells(def: &ResourceDef, o: &Value) -> Vec<Value> {
    if let Some(custom) = &def.custom {
        return custom_cells(&custom.columns, o);
    }
    let name = json!(s(o, "/metadata/name"));
    if def.plural == "customresourcedefinitions" {
        return vec![name, json!(s(o, "/metadata/creationTimestamp"))];
    }
    let age = json!(util::age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str)));
    let (before_age, after_age) = match def.plural.as_str() {
        "services" => service_cells(o),
        "nodes" => node_cells(o),
        "deployments" => (deployment_cells(o), workload_wide(o, true)),
        "statefulsets" => (
            vec![json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas")))],
            workload_wide(o, false),
        ),
        "replicasets" => (replicaset_cells(o), workload_wide(o, true)),
        "daemonsets" => (daemonset_cells(o), workload_wide(o, true)),
        "pods" => pod_cells(o),
        "serviceaccounts" => (vec![json!(arr(o, "/secrets").len())], vec![]),
        "namespaces" => (vec![json!(s(o, "/status/phase"))], vec![]),
        "endpointslices" => (endpointslice_cells(o), vec![]),
        "endpoints" => (endpoints_cells(o), vec![]),
        "ingresses" => (ingress_cells(o), vec![]),
        "configmaps" => (configmap_cells(o), vec![]),
        "secrets" => (secret_cells(o), vec![]),
        _ => (vec![], vec![]),
    };
    let mut row = vec![name];
    row.extend(before_age);
    row.push(age);
    row.extend(after_age);
    row
}

/// A list field, empty when absent.
fn arr(o: &Value, ptr: &str) -> Vec<Value> {
    o.pointer(ptr).and_then(Value::as_array).cloned().unwrap_or_default()
}

/// The `ip` or `hostname` of each `status.loadBalancer.ingress` entry.
fn lb_addresses(o: &Value) -> Vec<String> {
    arr(o, "/status/loadBalancer/ingress")
        .iter()
        .filter_map(|i| i.get("ip").or_else(|| i.get("hostname")).and_then(Value::as_str).map(String::from))
        .collect()
}

/// Type, Cluster-IP, External-IP, Port(s); after Age, Selector (wide).
fn service_cells(o: &Value) -> (Vec<Value>, Vec<Value>) {
    let ty = s(o, "/spec/type");
    let ext = lb_addresses(o);
    let ext = match (ext.is_empty(), ty) {
        (false, _) => ext.join(","),
        (true, "LoadBalancer") => "<pending>".into(),
        (true, "ExternalName") => s(o, "/spec/externalName").into(),
        _ => "<none>".into(),
    };
    let ports: Vec<String> = arr(o, "/spec/ports")
        .iter()
        .map(|p| {
            let port = p.get("port").map(Value::to_string).unwrap_or_default();
            let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("TCP");
            match p.get("nodePort") {
                Some(np) => format!("{port}:{np}/{proto}"),
                None => format!("{port}/{proto}"),
            }
        })
        .collect();
    let sel: Vec<String> = o
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    let cells =
        vec![json!(ty), json!(or_none(s(o, "/spec/clusterIP").into())), json!(ext), json!(or_none(ports.join(",")))];
    (cells, vec![json!(or_none(sel.join(",")))])
}

/// Ready, Up-to-date, Available.
fn deployment_cells(o: &Value) -> Vec<Value> {
    vec![
        json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas"))),
        json!(n(o, "/status/updatedReplicas")),
        json!(n(o, "/status/availableReplicas")),
    ]
}

/// Desired, Current, Ready.
fn replicaset_cells(o: &Value) -> Vec<Value> {
    vec![json!(n(o, "/spec/replicas")), json!(n(o, "/status/replicas")), json!(n(o, "/status/readyReplicas"))]
}

/// Data: the number of keys in `data` and `binaryData`.
fn configmap_cells(o: &Value) -> Vec<Value> {
    let len = |f: &str| o.get(f).and_then(Value::as_object).map_or(0, |m| m.len());
    vec![json!(len("data") + len("binaryData"))]
}

/// Type, Data.
fn secret_cells(o: &Value) -> Vec<Value> {
    vec![json!(s(o, "/type")), json!(o.get("data").and_then(Value::as_object).map_or(0, |m| m.len()))]
}

/// Desired, Current, Ready, Up-to-date, Available, Node Selector.
fn daemonset_cells(o: &Value) -> Vec<Value> {
    let mut cells: Vec<Value> = [
        "/status/desiredNumberScheduled",
        "/status/currentNumberScheduled",
        "/status/numberReady",
        "/status/updatedNumberScheduled",
        "/status/numberAvailable",
    ]
    .iter()
    .map(|p| json!(n(o, p)))
    .collect();
    cells.push(json!(or_none(pairs(o.pointer("/spec/template/spec/nodeSelector")))));
    cells
}

/// `k=v,k2=v2` of a string map.
fn pairs(map: Option<&Value>) -> String {
    let pairs: Vec<String> = map
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect())
        .unwrap_or_default();
    pairs.join(",")
}

/// A label selector as `metav1.FormatLabelSelector` prints it (`<none>` when empty).
fn selector_text(sel: Option<&Value>) -> String {
    let mut parts = vec![pairs(sel.and_then(|s| s.get("matchLabels")))];
    for e in sel.map(|s| arr(s, "/matchExpressions")).unwrap_or_default() {
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match e.get("operator").and_then(Value::as_str).unwrap_or("") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_string(),
            "DoesNotExist" => format!("!{key}"),
            other => format!("{key} {other}"),
        });
    }
    parts.retain(|p| !p.is_empty());
    or_none(parts.join(","))
}

/// The wide cells of a workload: its template's container names and images, and (with
/// `selector`) its selector.
fn workload_wide(o: &Value, selector: bool) -> Vec<Value> {
    let containers = arr(o, "/spec/template/spec/containers");
    let field = |f: &str| containers.iter().filter_map(|c| c.get(f)?.as_str()).collect::<Vec<_>>().join(",");
    let mut cells = vec![json!(field("name")), json!(field("image"))];
    if selector {
        cells.push(json!(selector_text(o.pointer("/spec/selector"))));
    }
    cells
}

/// Ready, Status, Restarts; after Age, IP, Node, Nominated Node, Readiness Gates (wide).
fn pod_cells(o: &Value) -> (Vec<Value>, Vec<Value>) {
    let statuses = arr(o, "/status/containerStatuses");
    let ready = statuses.iter().filter(|c| c["ready"] == true).count();
    let restarts: u64 = statuses.iter().filter_map(|c| c.get("restartCount")?.as_u64()).sum();
    let phase = s(o, "/status/reason");
    let phase = if phase.is_empty() { s(o, "/status/phase") } else { phase };
    let total = arr(o, "/spec/containers").len();
    let cells = vec![json!(format!("{ready}/{total}")), json!(phase), json!(restarts.to_string())];
    let wide = vec![
        json!(or_none(s(o, "/status/podIP").into())),
        json!(or_none(s(o, "/spec/nodeName").into())),
        json!(or_none(s(o, "/status/nominatedNodeName").into())),
        json!("<none>"),
    ];
    (cells, wide)
}

/// Status, Roles; after Age, Version, and (wide) Internal-IP, External-IP, OS-Image,
/// Kernel-Version, Container-Runtime.
fn node_cells(o: &Value) -> (Vec<Value>, Vec<Value>) {
    let ready = arr(o, "/status/conditions").iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
    let roles: Vec<String> = o
        .pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.keys().filter_map(|k| k.strip_prefix("node-role.kubernetes.io/")).map(String::from).collect())
        .unwrap_or_default();
    let cells = vec![json!(if ready { "Ready" } else { "NotReady" }), json!(or_none(roles.join(",")))];
    let address = |ty: &str| {
        arr(o, "/status/addresses")
            .iter()
            .find(|a| a["type"] == ty)
            .and_then(|a| a.get("address")?.as_str().map(String::from))
            .unwrap_or_default()
    };
    let after_age = vec![
        json!(s(o, "/status/nodeInfo/kubeletVersion")),
        json!(or_none(address("InternalIP"))),
        json!(or_none(address("ExternalIP"))),
        json!(or_none(s(o, "/status/nodeInfo/osImage").into())),
        json!(or_none(s(o, "/status/nodeInfo/kernelVersion").into())),
        json!(or_none(s(o, "/status/nodeInfo/containerRuntimeVersion").into())),
    ];
    (cells, after_age)
}

/// AddressType, Ports, Endpoints.
fn endpointslice_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> =
        arr(o, "/ports").iter().map(|p| p.get("port").map(Value::to_string).unwrap_or_default()).collect();
    let addrs: Vec<String> = arr(o, "/endpoints")
        .iter()
        .flat_map(|e| e.get("addresses").and_then(Value::as_array).cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    vec![json!(s(o, "/addressType")), json!(or_none(ports.join(","))), json!(or_none(abbreviate(&addrs)))]
}

/// Endpoints: every ready `ip:port`.
fn endpoints_cells(o: &Value) -> Vec<Value> {
    let mut addrs = Vec::new();
    for sub in arr(o, "/subsets") {
        let ports: Vec<String> = sub
            .get("ports")
            .and_then(Value::as_array)
            .map(|a| a.iter().map(|p| p.get("port").map(Value::to_string).unwrap_or_default()).collect())
            .unwrap_or_default();
        for a in sub.get("addresses").and_then(Value::as_array).cloned().unwrap_or_default() {
            let ip = a.get("ip").and_then(Value::as_str).unwrap_or("");
            for p in &ports {
                addrs.push(format!("{ip}:{p}"));
            }
        }
    }
    vec![json!(or_none(abbreviate(&addrs)))]
}

/// Class, Hosts, Address, Ports.
fn ingress_cells(o: &Value) -> Vec<Value> {
    let hosts: Vec<String> =
        arr(o, "/spec/rules").iter().filter_map(|r| r.get("host").and_then(Value::as_str).map(String::from)).collect();
    let ports = if arr(o, "/spec/tls").is_empty() { "80" } else { "80, 443" };
    vec![
        json!(or_none(s(o, "/spec/ingressClassName").into())),
        json!(if hosts.is_empty() { "*".into() } else { hosts.join(",") }),
        json!(lb_addresses(o).join(",")),
        json!(ports),
    ]
}

fn abbreviate(items: &[String]) -> String {
    if items.len() > 3 { format!("{} + {} more...", items[..3].join(","), items.len() - 3) } else { items.join(",") }
}

/// The object's metadata as `meta.k8s.io/v1 PartialObjectMetadata`.
pub(crate) fn partial(o: &Value) -> Value {
    let mut meta = o.get("metadata").cloned().unwrap_or_else(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        m.remove("managedFields");
    }
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta})
}

/// One row; `full_object` answers `includeObject=Object` with the whole object (as served
/// at `def`'s version).
fn row(def: &ResourceDef, o: &Value, full_object: bool) -> Value {
    let object = if full_object { def.view(o).into_owned() } else { partial(o) };
    json!({"cells": cells(def, o), "object": object})
}

/// A Table of `objs`; `with_columns` false leaves out the column definitions (watch events
/// after the first, as the real server does).
pub(crate) fn table<'a>(
    def: &ResourceDef,
    objs: impl IntoIterator<Item = &'a Value>,
    list_meta: Value,
    with_columns: bool,
    full_object: bool,
) -> Value {
    let rows: Vec<Value> = objs.into_iter().map(|o| row(def, o, full_object)).collect();
    let cols = if with_columns { column_definitions(def) } else { Value::Null };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": cols, "rows": rows})
}
