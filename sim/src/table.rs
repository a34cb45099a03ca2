//! `meta.k8s.io/v1 Table` answers for kubectl's human-readable output.
//!
//! Rows carry the object's metadata as a `PartialObjectMetadata` (the real server's default
//! `includeObject=Metadata`): kubectl reads the namespace for `-A` and labels for
//! `--show-labels` from it.

use serde_json::{Value, json};

use crate::resources::{self, ResId};
use crate::util;

/// (name, type, priority). Priority 1 columns appear only with `-o wide`.
type Col = (&'static str, &'static str, u8);

fn columns(res: ResId) -> &'static [Col] {
    match resources::def(res).plural {
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
        ],
        "replicasets" => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Age", "string", 0),
        ],
        "statefulsets" => &[("Name", "string", 0), ("Ready", "string", 0), ("Age", "string", 0)],
        "daemonsets" => &[
            ("Name", "string", 0),
            ("Desired", "integer", 0),
            ("Current", "integer", 0),
            ("Ready", "integer", 0),
            ("Up-to-date", "integer", 0),
            ("Available", "integer", 0),
            ("Age", "string", 0),
        ],
        "nodes" => &[
            ("Name", "string", 0),
            ("Status", "string", 0),
            ("Roles", "string", 0),
            ("Age", "string", 0),
            ("Version", "string", 0),
            ("Region", "string", 1),
            ("Zone", "string", 1),
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
        _ => &[("Name", "string", 0), ("Age", "string", 0)],
    }
}

pub(crate) fn column_definitions(res: ResId) -> Value {
    let cols: Vec<Value> = columns(res)
        .iter()
        .map(|(name, ty, prio)| {
            let format = if *name == "Name" { "name" } else { "" };
            json!({"name": name, "type": ty, "format": format, "description": "", "priority": prio})
        })
        .collect();
    Value::Array(cols)
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

fn cells(res: ResId, o: &Value) -> Vec<Value> {
    let name = json!(s(o, "/metadata/name"));
    let age = json!(util::age(o.pointer("/metadata/creationTimestamp").and_then(Value::as_str)));
    let arr = |p: &str| o.pointer(p).and_then(Value::as_array).cloned().unwrap_or_default();
    match resources::def(res).plural {
        "services" => {
            let ty = s(o, "/spec/type");
            let ext: Vec<String> = arr("/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| i.get("ip").or_else(|| i.get("hostname")).and_then(Value::as_str).map(String::from))
                .collect();
            let ext = match (ext.is_empty(), ty) {
                (false, _) => ext.join(","),
                (true, "LoadBalancer") => "<pending>".into(),
                (true, "ExternalName") => s(o, "/spec/externalName").into(),
                _ => "<none>".into(),
            };
            let ports: Vec<String> = arr("/spec/ports")
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
            vec![
                name,
                json!(ty),
                json!(or_none(s(o, "/spec/clusterIP").into())),
                json!(ext),
                json!(or_none(ports.join(","))),
                age,
                json!(or_none(sel.join(","))),
            ]
        }
        "deployments" => vec![
            name,
            json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas"))),
            json!(n(o, "/status/updatedReplicas")),
            json!(n(o, "/status/availableReplicas")),
            age,
        ],
        "statefulsets" => {
            vec![name, json!(format!("{}/{}", n(o, "/status/readyReplicas"), n(o, "/spec/replicas"))), age]
        }
        "replicasets" => vec![
            name,
            json!(n(o, "/spec/replicas")),
            json!(n(o, "/status/replicas")),
            json!(n(o, "/status/readyReplicas")),
            age,
        ],
        "daemonsets" => vec![
            name,
            json!(n(o, "/status/desiredNumberScheduled")),
            json!(n(o, "/status/currentNumberScheduled")),
            json!(n(o, "/status/numberReady")),
            json!(n(o, "/status/updatedNumberScheduled")),
            json!(n(o, "/status/numberAvailable")),
            age,
        ],
        "nodes" => {
            let ready = arr("/status/conditions").iter().any(|c| c["type"] == "Ready" && c["status"] == "True");
            vec![
                name,
                json!(if ready { "Ready" } else { "NotReady" }),
                json!("<none>"),
                age,
                json!(s(o, "/status/nodeInfo/kubeletVersion")),
                json!(s(o, "/metadata/labels/topology.kubernetes.io~1region")),
                json!(s(o, "/metadata/labels/topology.kubernetes.io~1zone")),
            ]
        }
        "namespaces" => vec![name, json!(s(o, "/status/phase")), age],
        "endpointslices" => {
            let ports: Vec<String> =
                arr("/ports").iter().map(|p| p.get("port").map(Value::to_string).unwrap_or_default()).collect();
            let addrs: Vec<String> = arr("/endpoints")
                .iter()
                .flat_map(|e| e.get("addresses").and_then(Value::as_array).cloned().unwrap_or_default())
                .filter_map(|a| a.as_str().map(String::from))
                .collect();
            vec![
                name,
                json!(s(o, "/addressType")),
                json!(or_none(ports.join(","))),
                json!(or_none(abbreviate(&addrs))),
                age,
            ]
        }
        "endpoints" => {
            let mut addrs = Vec::new();
            for sub in arr("/subsets") {
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
            vec![name, json!(or_none(abbreviate(&addrs))), age]
        }
        "ingresses" => {
            let hosts: Vec<String> = arr("/spec/rules")
                .iter()
                .filter_map(|r| r.get("host").and_then(Value::as_str).map(String::from))
                .collect();
            let addrs: Vec<String> = arr("/status/loadBalancer/ingress")
                .iter()
                .filter_map(|i| i.get("ip").or_else(|| i.get("hostname")).and_then(Value::as_str).map(String::from))
                .collect();
            let ports = if arr("/spec/tls").is_empty() { "80" } else { "80, 443" };
            vec![
                name,
                json!(or_none(s(o, "/spec/ingressClassName").into())),
                json!(if hosts.is_empty() { "*".into() } else { hosts.join(",") }),
                json!(addrs.join(",")),
                json!(ports),
                age,
            ]
        }
        "configmaps" => vec![
            name,
            json!(
                o.get("data").and_then(Value::as_object).map_or(0, |m| m.len())
                    + o.get("binaryData").and_then(Value::as_object).map_or(0, |m| m.len())
            ),
            age,
        ],
        "secrets" => vec![
            name,
            json!(s(o, "/type")),
            json!(o.get("data").and_then(Value::as_object).map_or(0, |m| m.len())),
            age,
        ],
        _ => vec![name, age],
    }
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

/// One row; `full_object` answers `includeObject=Object` with the whole object.
pub(crate) fn row(res: ResId, o: &Value, full_object: bool) -> Value {
    let object = if full_object { o.clone() } else { partial(o) };
    json!({"cells": cells(res, o), "object": object})
}

/// A Table of `objs`; `with_columns` false leaves out the column definitions (watch events
/// after the first, as the real server does).
pub(crate) fn table<'a>(
    res: ResId,
    objs: impl IntoIterator<Item = &'a Value>,
    list_meta: Value,
    with_columns: bool,
    full_object: bool,
) -> Value {
    let rows: Vec<Value> = objs.into_iter().map(|o| row(res, o, full_object)).collect();
    let cols = if with_columns { column_definitions(res) } else { Value::Null };
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta, "columnDefinitions": cols, "rows": rows})
}
