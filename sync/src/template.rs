//! Pure object handling: the annotations Meridian reads and writes, turning a
//! control-plane object into the copy applied to one member (strip, replicas, overrides,
//! marks), and the deletion decision. No I/O here, so all of it is unit-tested.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::kinds::{Builtin, Kind, Workload};
use crate::planner::ReplicaPreferences;
use crate::selector::Selector;

/// Placement by cluster names: a JSON list (`["m1","m2"]`) or a comma-separated list.
pub const CLUSTERS_ANNOTATION: &str = "meridian.io/clusters";
/// Placement by a label selector over the clusters' configured labels.
pub const SELECTOR_ANNOTATION: &str = "meridian.io/cluster-selector";
/// Per-cluster JSON-patch operations: `{"m1": [{"op": "replace", "path": …, "value": …}]}`.
pub const OVERRIDES_ANNOTATION: &str = "meridian.io/overrides";
/// Federation v1's replica preferences (see [`crate::planner`]).
pub const PREFERENCES_ANNOTATION: &str = "federation.kubernetes.io/replica-set-preferences";
/// `"true"`: deleting the control-plane object deletes the members' copies.
pub const CASCADE_ANNOTATION: &str = "meridian.io/cascading-delete";
/// `"true"`: members' `spec.replicas` belong to an autoscaler there; Meridian leaves it.
pub const RETAIN_REPLICAS_ANNOTATION: &str = "meridian.io/retain-replicas";
/// Per-cluster propagation state, written by Meridian on the control-plane object.
pub const STATUS_ANNOTATION: &str = "meridian.io/sync-status";
/// Label on every member copy Meridian manages (value [`MANAGED_VALUE`]).
pub const MANAGED_LABEL: &str = "meridian.io/managed-by";
pub const MANAGED_VALUE: &str = "meridian";
/// Annotation on member copies: uid of the control-plane object they come from.
pub const ORIGIN_ANNOTATION: &str = "meridian.io/origin-uid";
/// Annotation on member copies: hash of what Meridian last applied, so a template change
/// that only removes fields is still noticed.
pub const HASH_ANNOTATION: &str = "meridian.io/template-hash";
/// Finalizer on control-plane objects: no deletion is missed while Meridian is down.
pub const FINALIZER: &str = "meridian.io/sync";
/// Annotation on a control-plane object being deleted: the decision (`cascade` or
/// `orphan`) Meridian took when it first saw the deletion. The garbage collector removes
/// `foregroundDeletion`/`orphan` soon after (Meridian's finalizer keeps the object), so
/// the decision is latched here, where a restart or relist still finds it.
pub const DELETION_ANNOTATION: &str = "meridian.io/deletion";
/// Field manager of every write Meridian makes to a member.
pub const FIELD_MANAGER: &str = "meridian";

/// Control-plane annotations that steer Meridian and never reach members.
const CONTROL_ANNOTATIONS: &[&str] = &[
    CLUSTERS_ANNOTATION,
    SELECTOR_ANNOTATION,
    OVERRIDES_ANNOTATION,
    PREFERENCES_ANNOTATION,
    CASCADE_ANNOTATION,
    STATUS_ANNOTATION,
    DELETION_ANNOTATION,
    // Client-side apply's record of the control-plane object; in a member it would make
    // a later `kubectl apply` there compute a wrong diff.
    "kubectl.kubernetes.io/last-applied-configuration",
];

/// Annotations a cluster's own API server or controllers write about their copy of an
/// object: each member keeps its own. Copied, they would fight the member's controller.
const CLUSTER_ANNOTATIONS: &[&str] = &[
    // The deployment controller's rollout revision.
    "deployment.kubernetes.io/revision",
    // The template generation that the API server's DaemonSet strategy keeps (set at
    // create, bumped when the pod template changes).
    "deprecated.daemonset.template.generation",
];

/// Server-owned metadata that must not be applied. `ownerReferences` name control-plane
/// objects by uid: in a member they would dangle, and its garbage collector would delete
/// the copy. `finalizers` are the control plane's (Meridian's own among them).
const SERVER_METADATA: &[&str] = &[
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "generation",
    "selfLink",
    "ownerReferences",
    "finalizers",
];

/// A malformed steering annotation on a control-plane object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("annotation {annotation}: {reason}")]
pub struct AnnotationError {
    pub annotation: &'static str,
    pub reason: String,
}

fn bad(annotation: &'static str, reason: impl Into<String>) -> AnnotationError {
    AnnotationError { annotation, reason: reason.into() }
}

/// Where an object goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Explicit cluster names; `None`: no restriction.
    pub names: Option<BTreeSet<String>>,
    pub selector: Option<Selector>,
}

impl Placement {
    /// Whether a cluster with these labels is selected. Both restrictions apply when both
    /// annotations are present.
    pub fn selects(&self, cluster: &str, labels: &BTreeMap<String, String>) -> bool {
        self.names.as_ref().is_none_or(|n| n.contains(cluster))
            && self.selector.as_ref().is_none_or(|s| s.matches(labels))
    }
}

/// Everything the steering annotations say about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Steering {
    pub placement: Placement,
    /// Per-cluster patches, already checked to use only add, remove and replace.
    pub overrides: BTreeMap<String, json_patch::Patch>,
    /// Replica preferences; the even default when the annotation is absent.
    pub preferences: ReplicaPreferences,
    /// Members' replicas belong to their autoscalers.
    pub retain_replicas: bool,
}

pub fn annotation<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.pointer("/metadata/annotations").and_then(|a| a.get(name)).and_then(Value::as_str)
}

pub fn label<'a>(obj: &'a Value, name: &str) -> Option<&'a str> {
    obj.pointer("/metadata/labels").and_then(|a| a.get(name)).and_then(Value::as_str)
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata").and_then(|m| m.get(field)).and_then(Value::as_str)
}

pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// True when the member copy carries Meridian's mark.
pub fn is_managed(obj: &Value) -> bool {
    label(obj, MANAGED_LABEL) == Some(MANAGED_VALUE)
}

/// True when the member copy is Meridian's copy of the control-plane object with uid
/// `origin_uid`: it carries the mark, or its origin annotation names that object. A
/// label edit in a member does not detach the copy (the next write puts the label
/// back); a copy is released only when both are gone, as an orphaning deletion leaves it.
pub fn owned_by(obj: &Value, origin_uid: &str) -> bool {
    is_managed(obj) || (!origin_uid.is_empty() && annotation(obj, ORIGIN_ANNOTATION) == Some(origin_uid))
}

/// True when the member copy is the copy of the control-plane object with uid
/// `origin_uid` in particular, as a deletion of that object needs: its origin annotation
/// names that object, or it has none and carries the mark. Unlike [`owned_by`], a copy
/// Meridian made of a newer object of the same name is not.
pub fn copy_of(obj: &Value, origin_uid: &str) -> bool {
    match annotation(obj, ORIGIN_ANNOTATION) {
        Some(origin) => !origin_uid.is_empty() && origin == origin_uid,
        None => is_managed(obj),
    }
}

/// Reads the steering annotations. Any malformed one fails the whole object, so a typo
/// never spreads an object to clusters it was meant to avoid.
pub fn steering(obj: &Value) -> Result<Steering, AnnotationError> {
    let mut placement = Placement::default();
    if let Some(text) = annotation(obj, CLUSTERS_ANNOTATION) {
        placement.names = Some(parse_cluster_list(text)?);
    }
    if let Some(text) = annotation(obj, SELECTOR_ANNOTATION) {
        placement.selector = Some(Selector::parse(text).map_err(|e| bad(SELECTOR_ANNOTATION, e.to_string()))?);
    }
    let overrides = match annotation(obj, OVERRIDES_ANNOTATION) {
        Some(text) => parse_overrides(text)?,
        None => BTreeMap::new(),
    };
    let preferences = match annotation(obj, PREFERENCES_ANNOTATION) {
        Some(text) => ReplicaPreferences::parse(text).map_err(|e| bad(PREFERENCES_ANNOTATION, e.to_string()))?,
        None => ReplicaPreferences::even(),
    };
    let retain_replicas = match annotation(obj, RETAIN_REPLICAS_ANNOTATION) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(bad(RETAIN_REPLICAS_ANNOTATION, format!("expected \"true\" or \"false\", got {other:?}")));
        }
    };
    Ok(Steering { placement, overrides, preferences, retain_replicas })
}

fn parse_cluster_list(text: &str) -> Result<BTreeSet<String>, AnnotationError> {
    let names: Vec<String> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|e| bad(CLUSTERS_ANNOTATION, format!("not a JSON list of names: {e}")))?
    } else {
        text.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()
    };
    if let Some(n) = names.iter().find(|n| !meridian_config::is_dns_label(n)) {
        return Err(bad(CLUSTERS_ANNOTATION, format!("{n:?} is not a cluster name")));
    }
    Ok(names.into_iter().collect())
}

fn parse_overrides(text: &str) -> Result<BTreeMap<String, json_patch::Patch>, AnnotationError> {
    let map: BTreeMap<String, json_patch::Patch> = serde_json::from_str(text).map_err(|e| {
        bad(OVERRIDES_ANNOTATION, format!("expected {{\"<cluster>\": [<JSON-patch operations>]}}: {e}"))
    })?;
    for (cluster, patch) in &map {
        for op in &patch.0 {
            let path = match op {
                json_patch::PatchOperation::Add(o) => &o.path,
                json_patch::PatchOperation::Remove(o) => &o.path,
                json_patch::PatchOperation::Replace(o) => &o.path,
                _ => {
                    return Err(bad(
                        OVERRIDES_ANNOTATION,
                        format!("cluster {cluster:?}: only add, remove and replace are supported"),
                    ));
                }
            };
            let path = path.to_string();
            let fixed = ["/apiVersion", "/kind", "/metadata/name", "/metadata/namespace"];
            if path.is_empty() || fixed.iter().any(|f| path == *f || path.starts_with(&format!("{f}/"))) {
                return Err(bad(
                    OVERRIDES_ANNOTATION,
                    format!("cluster {cluster:?}: path {path:?} cannot be overridden"),
                ));
            }
        }
    }
    Ok(map)
}

/// The control-plane object reduced to what every member gets: no status, no
/// server-owned metadata, no steering annotations, nothing a member's API server
/// allocates or a member's controllers own (README "Fields never copied").
pub(crate) fn strip(kind: &Kind, obj: &Value) -> Value {
    let mut out = obj.clone();
    let Some(m) = out.as_object_mut() else { return out };
    m.remove("status");
    if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
        strip_metadata(meta);
    }
    match kind.builtin {
        // The members' API servers own their namespaces' finalizers.
        Some(Builtin::Namespace) => {
            m.remove("spec");
        }
        Some(Builtin::Service) => {
            if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
                strip_service(spec);
            }
        }
        _ => {}
    }
    out
}

fn strip_metadata(meta: &mut Map<String, Value>) {
    for f in SERVER_METADATA {
        meta.remove(*f);
    }
    if let Some(a) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        for f in CONTROL_ANNOTATIONS.iter().chain(CLUSTER_ANNOTATIONS) {
            a.remove(*f);
        }
        if a.is_empty() {
            meta.remove("annotations");
        }
    }
}

/// Removes what a Service's API server allocates: each member allocates its own. The
/// control plane is an API server too, so a value in the template is usually its
/// allocation, not the user's choice, and the object cannot tell them apart; a value
/// that must be the same in a member is set with an override (applied after this).
/// `clusterIP: None` (headless) is a choice, never an allocation, and stays.
/// `loadBalancerIP` stays too: no API server allocates it, so in a control plane (where
/// no load-balancer controller runs) only the user set it.
fn strip_service(spec: &mut Map<String, Value>) {
    if spec.get("clusterIP").and_then(Value::as_str) != Some("None") {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    }
    // Allocated for `externalTrafficPolicy: Local` load balancers.
    spec.remove("healthCheckNodePort");
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.remove("nodePort");
        }
    }
}

/// Why a member copy could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("override for this cluster does not apply: {0}")]
pub struct OverrideError(pub String);

/// The object applied to one member: the stripped template with this cluster's replicas
/// and overrides, plus Meridian's marks (managed label, origin uid, template hash).
pub(crate) fn member_copy(
    kind: &Kind,
    stripped: &Value,
    replicas: Option<i64>,
    overrides: Option<&json_patch::Patch>,
    origin_uid: &str,
) -> Result<Value, OverrideError> {
    let mut out = stripped.clone();
    if kind.workload == Workload::Replicated
        && let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut)
    {
        match replicas {
            Some(n) => {
                spec.insert("replicas".into(), json!(n));
            }
            // Left to the member (its autoscaler owns it).
            None => {
                spec.remove("replicas");
            }
        }
    }
    if let Some(p) = overrides {
        json_patch::patch(&mut out, p).map_err(|e| OverrideError(e.to_string()))?;
    }
    let hash = format!("{:016x}", fnv64(out.to_string().as_bytes()));
    let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(OverrideError("the object has no metadata".into()));
    };
    let labels = meta.entry("labels").or_insert_with(|| Value::Object(Map::new()));
    if let Some(l) = labels.as_object_mut() {
        l.insert(MANAGED_LABEL.into(), json!(MANAGED_VALUE));
    }
    let ann = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
    if let Some(a) = ann.as_object_mut() {
        a.insert(ORIGIN_ANNOTATION.into(), json!(origin_uid));
        a.insert(HASH_ANNOTATION.into(), json!(hash));
    }
    Ok(out)
}

/// FNV-1a 64: stable across processes and versions, unlike `DefaultHasher`.
fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// True when every field of `want` has the same value in `have` (lists element by
/// element). A member copy that passes needs no write: the check makes a watch event for
/// Meridian's own write settle instead of looping, and catches edits to managed fields.
pub fn is_subset(want: &Value, have: &Value) -> bool {
    match (want, have) {
        (Value::Object(w), Value::Object(h)) => {
            w.iter().all(|(k, v)| h.get(k).is_some_and(|hv| is_subset(v, hv)) || (v.is_null() && !h.contains_key(k)))
        }
        (Value::Array(w), Value::Array(h)) => w.len() == h.len() && w.iter().zip(h).all(|(a, b)| is_subset(a, b)),
        (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
        _ => want == have,
    }
}

/// How the control-plane object was deleted, which decides what happens to the members'
/// copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletePolicy {
    /// Leave the copies, without Meridian's marks (the seed's default).
    Orphan,
    /// Delete the copies too.
    Cascade,
}

impl DeletePolicy {
    /// The value of [`DELETION_ANNOTATION`].
    pub fn as_str(self) -> &'static str {
        match self {
            DeletePolicy::Orphan => "orphan",
            DeletePolicy::Cascade => "cascade",
        }
    }
}

/// The decision latched in [`DELETION_ANNOTATION`], if any (an unknown value is none).
pub fn latched_policy(obj: &Value) -> Option<DeletePolicy> {
    match annotation(obj, DELETION_ANNOTATION) {
        Some("cascade") => Some(DeletePolicy::Cascade),
        Some("orphan") => Some(DeletePolicy::Orphan),
        _ => None,
    }
}

/// Decides the policy of a control-plane object marked for deletion, from what a stock
/// API server records on it:
/// - a latched decision ([`DELETION_ANNOTATION`]) stands;
/// - an `orphan` finalizer (`propagationPolicy: Orphan`, `orphanDependents: true`,
///   `kubectl delete --cascade=orphan`) orphans;
/// - a `foregroundDeletion` finalizer (`propagationPolicy: Foreground`,
///   `kubectl delete --cascade=foreground`; for a Namespace also `orphanDependents:
///   false`) cascades;
/// - `meridian.io/cascading-delete: "true"` on the object cascades;
/// - anything else orphans: an unspecified delete, a background one and
///   `orphanDependents: false` leave no trace on the object, and orphaning is the seed's
///   default.
pub fn delete_policy(obj: &Value) -> DeletePolicy {
    if let Some(p) = latched_policy(obj) {
        return p;
    }
    let fins = finalizers(obj);
    if fins.iter().any(|f| f == "orphan") {
        return DeletePolicy::Orphan;
    }
    if fins.iter().any(|f| f == "foregroundDeletion") {
        return DeletePolicy::Cascade;
    }
    if annotation(obj, CASCADE_ANNOTATION) == Some("true") {
        return DeletePolicy::Cascade;
    }
    DeletePolicy::Orphan
}

/// The merge patch that latches `policy` in [`DELETION_ANNOTATION`].
pub fn latch_patch(policy: DeletePolicy) -> Value {
    json!({"metadata": {"annotations": {DELETION_ANNOTATION: policy.as_str()}}})
}

/// The merge patch that removes Meridian's marks from an orphaned member copy.
pub fn unmark_patch() -> Value {
    json!({"metadata": {
        "labels": {MANAGED_LABEL: null},
        "annotations": {ORIGIN_ANNOTATION: null, HASH_ANNOTATION: null},
    }})
}

/// Removes every occurrence of a Secret's values (encoded and decoded) from a message,
/// so an API error that echoes a field never puts secret data into an Event or a log.
pub fn redact(message: &str, obj: &Value) -> String {
    if obj.get("kind").and_then(Value::as_str) != Some("Secret") {
        return message.to_owned();
    }
    let mut values: Vec<String> = Vec::new();
    for field in ["data", "stringData"] {
        if let Some(m) = obj.get(field).and_then(Value::as_object) {
            values.extend(m.values().filter_map(Value::as_str).map(str::to_owned));
        }
    }
    if let Some(m) = obj.get("data").and_then(Value::as_object) {
        values.extend(m.values().filter_map(Value::as_str).filter_map(decode_base64));
    }
    values.retain(|v| !v.is_empty());
    // Longest first, so a value containing a shorter one is removed whole.
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    let mut out = message.to_owned();
    for v in values {
        out = out.replace(&v, "[redacted]");
    }
    out
}

/// Minimal standard base64 decoding, lossy to UTF-8; `None` for invalid input.
fn decode_base64(s: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(((bits >> n) & 0xff) as u8);
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{self, DEFAULTS};

    fn kind(name: &str) -> &'static Kind {
        kinds::get(kinds::by_name(name).unwrap_or(kinds::NAMESPACE))
    }

    fn with_annotations(pairs: &[(&str, &str)]) -> Value {
        let ann: Map<String, Value> = pairs.iter().map(|(k, v)| ((*k).to_owned(), json!(v))).collect();
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "default", "annotations": ann}})
    }

    #[test]
    fn steering_annotation_errors_name_the_annotation() {
        let cases: &[(&str, &str)] = &[
            (CLUSTERS_ANNOTATION, "[\"m1\""),
            (CLUSTERS_ANNOTATION, "M1,Bad_Name"),
            (SELECTOR_ANNOTATION, "tier in (a"),
            (OVERRIDES_ANNOTATION, "{not json"),
            (OVERRIDES_ANNOTATION, r#"{"m1": {"op": "add"}}"#),
            (OVERRIDES_ANNOTATION, r#"{"m1": [{"op": "move", "from": "/a", "path": "/b"}]}"#),
            (OVERRIDES_ANNOTATION, r#"{"m1": [{"op": "replace", "path": "/metadata/name", "value": "y"}]}"#),
            (PREFERENCES_ANNOTATION, r#"{"clusters": {"m1": {"weight": -2}}}"#),
            (RETAIN_REPLICAS_ANNOTATION, "yes"),
        ];
        for (ann, text) in cases {
            match steering(&with_annotations(&[(ann, text)])) {
                Err(e) => assert_eq!(e.annotation, *ann, "{text}"),
                Ok(s) => panic!("{ann}={text} was accepted: {s:?}"),
            }
        }
    }

    #[test]
    fn placement_by_names_selector_or_both() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
        };
        let eu = labels(&[("continent", "europe")]);
        let us = labels(&[("continent", "america")]);
        let p = |pairs: &[(&str, &str)]| steering(&with_annotations(pairs)).map(|s| s.placement);
        let all = p(&[]).unwrap_or_default();
        assert!(all.selects("m1", &eu) && all.selects("m2", &us));
        for text in ["[\"m1\", \"m3\"]", "m1, m3"] {
            let names = p(&[(CLUSTERS_ANNOTATION, text)]).unwrap_or_default();
            assert!(names.selects("m1", &eu) && !names.selects("m2", &eu) && names.selects("m3", &us), "{text}");
        }
        let sel = p(&[(SELECTOR_ANNOTATION, "continent=europe")]).unwrap_or_default();
        assert!(sel.selects("m1", &eu) && !sel.selects("m2", &us));
        let both = p(&[(CLUSTERS_ANNOTATION, "m1,m2"), (SELECTOR_ANNOTATION, "continent=europe")]).unwrap_or_default();
        assert!(both.selects("m1", &eu) && !both.selects("m2", &us) && !both.selects("m3", &eu));
    }

    /// Metadata as the control plane's API server returns it, with steering annotations.
    fn served_metadata() -> Value {
        json!({"name": "x", "namespace": "default", "uid": "u", "resourceVersion": "5", "selfLink": "/x",
            "creationTimestamp": "t", "generation": 2, "managedFields": [{"manager": "kubectl"}],
            "finalizers": [FINALIZER, "foregroundDeletion"], "deletionTimestamp": "t", "deletionGracePeriodSeconds": 0,
            "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": "cp-uid"}],
            "labels": {"app": "x"},
            "annotations": {CLUSTERS_ANNOTATION: "m1", STATUS_ANNOTATION: "{}", "keep": "me",
                "kubectl.kubernetes.io/last-applied-configuration": "{}",
                "deployment.kubernetes.io/revision": "3", "deprecated.daemonset.template.generation": "2"}})
    }

    /// What is left of [`served_metadata`] for a member.
    fn member_metadata() -> Value {
        json!({"name": "x", "namespace": "default", "labels": {"app": "x"}, "annotations": {"keep": "me"}})
    }

    #[test]
    fn strip_removes_server_owned_and_member_allocated_fields() {
        // (kind, the control-plane object's spec and status, the member's spec)
        let cases = [
            (
                "Service",
                json!({"spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "healthCheckNodePort": 32100,
                    "clusterIP": "10.96.0.7", "clusterIPs": ["10.96.0.7"], "loadBalancerIP": "203.0.113.9",
                    "ports": [{"port": 80, "nodePort": 30080}, {"port": 443, "nodePort": 30443}]},
                    "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.9"}]}}}),
                json!({"type": "LoadBalancer", "externalTrafficPolicy": "Local", "loadBalancerIP": "203.0.113.9",
                    "ports": [{"port": 80}, {"port": 443}]}),
            ),
            (
                "Service",
                json!({"spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 53}]}}),
                json!({"clusterIP": "None", "clusterIPs": ["None"], "ports": [{"port": 53}]}),
            ),
            (
                "Deployment",
                json!({"spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 3}}),
                json!({"replicas": 3}),
            ),
            ("DaemonSet", json!({"spec": {"x": 1}, "status": {"numberReady": 2}}), json!({"x": 1})),
            ("Ingress", json!({"spec": {"x": 1}, "status": {"loadBalancer": {}}}), json!({"x": 1})),
        ];
        for (k, parts, want_spec) in cases {
            let mut obj = parts.clone();
            obj["kind"] = json!(k);
            obj["metadata"] = served_metadata();
            let want = json!({"kind": k, "metadata": member_metadata(), "spec": want_spec});
            assert_eq!(strip(kind(k), &obj), want, "{k}: {parts}");
        }
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n", "annotations": {STATUS_ANNOTATION: "{}"}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        assert_eq!(
            strip(kind("Namespace"), &ns),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}})
        );
    }

    #[test]
    fn an_override_can_pin_a_field_that_strip_removed() -> Result<(), OverrideError> {
        let svc = json!({"kind": "Service", "metadata": {"name": "s"}, "spec": {"type": "NodePort",
            "ports": [{"port": 80, "nodePort": 30080}]}});
        let pin: json_patch::Patch =
            serde_json::from_value(json!([{"op": "add", "path": "/spec/ports/0/nodePort", "value": 30080}]))
                .map_err(|e| OverrideError(e.to_string()))?;
        let copy = member_copy(kind("Service"), &strip(kind("Service"), &svc), None, Some(&pin), "uid-1")?;
        assert_eq!(copy.pointer("/spec/ports/0/nodePort"), Some(&json!(30080)));
        Ok(())
    }

    #[test]
    fn member_copy_sets_replicas_applies_overrides_and_marks() -> Result<(), OverrideError> {
        let dep = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d", "namespace": "default"},
            "spec": {"replicas": 9, "template": {"spec": {"containers": [{"name": "c", "image": "v1"}]}}}});
        let ov: json_patch::Patch = serde_json::from_value(json!([
            {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "v2"},
            {"op": "add", "path": "/metadata/labels", "value": {"site": "m1"}},
        ]))
        .map_err(|e| OverrideError(e.to_string()))?;
        let out = member_copy(kind("Deployment"), &dep, Some(3), Some(&ov), "uid-1")?;
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(out["spec"]["template"]["spec"]["containers"][0]["image"], "v2");
        assert_eq!(label(&out, "site"), Some("m1"));
        assert!(is_managed(&out));
        assert_eq!(annotation(&out, ORIGIN_ANNOTATION), Some("uid-1"));
        let plain = member_copy(kind("Deployment"), &dep, Some(3), None, "uid-1")?;
        assert_ne!(annotation(&out, HASH_ANNOTATION), annotation(&plain, HASH_ANNOTATION));
        let autoscaled = member_copy(kind("Deployment"), &dep, None, None, "uid-1")?;
        assert!(autoscaled["spec"].get("replicas").is_none());
        // An override whose path does not exist in this template fails for its cluster only.
        let broken: json_patch::Patch = serde_json::from_value(json!([{"op": "remove", "path": "/spec/nothing"}]))
            .map_err(|e| OverrideError(e.to_string()))?;
        assert!(member_copy(kind("Deployment"), &dep, Some(3), Some(&broken), "uid-1").is_err());
        Ok(())
    }

    #[test]
    fn subset_ignores_fields_the_member_added_but_not_changed_values() {
        let want = json!({"spec": {"ports": [{"port": 80}], "replicas": 3}});
        let have = json!({"spec": {"ports": [{"port": 80, "nodePort": 30001}], "replicas": 3, "extra": 1}});
        assert!(is_subset(&want, &have));
        assert!(!is_subset(&want, &json!({"spec": {"ports": [{"port": 81}], "replicas": 3}})));
        assert!(!is_subset(&want, &json!({"spec": {"ports": [{"port": 80}], "replicas": 4}})));
        assert!(!is_subset(&want, &json!({"spec": {"ports": [], "replicas": 3}})));
    }

    // What a stock API server leaves on the object decides; a latched decision stands.
    #[test]
    fn delete_policy_reads_only_what_a_real_api_server_records() {
        let with = |fins: Value, ann: Value| json!({"metadata": {"finalizers": fins, "annotations": ann}});
        let cases = [
            // Unspecified, Background, orphanDependents: false: no trace, the default.
            (with(json!([FINALIZER]), json!({})), DeletePolicy::Orphan),
            (with(json!([FINALIZER, "orphan"]), json!({})), DeletePolicy::Orphan),
            (with(json!([FINALIZER, "foregroundDeletion"]), json!({})), DeletePolicy::Cascade),
            (with(json!([FINALIZER]), json!({CASCADE_ANNOTATION: "true"})), DeletePolicy::Cascade),
            (with(json!([FINALIZER, "orphan"]), json!({CASCADE_ANNOTATION: "true"})), DeletePolicy::Orphan),
            // The GC removed foregroundDeletion after the decision was latched.
            (with(json!([FINALIZER]), json!({DELETION_ANNOTATION: "cascade"})), DeletePolicy::Cascade),
            (
                with(json!([FINALIZER, "foregroundDeletion"]), json!({DELETION_ANNOTATION: "orphan"})),
                DeletePolicy::Orphan,
            ),
            (with(json!([FINALIZER]), json!({DELETION_ANNOTATION: "bogus"})), DeletePolicy::Orphan),
        ];
        for (obj, want) in cases {
            assert_eq!(delete_policy(&obj), want, "{obj}");
        }
        let latched = with(json!([]), latch_patch(DeletePolicy::Cascade)["metadata"]["annotations"].clone());
        assert_eq!(latched_policy(&latched), Some(DeletePolicy::Cascade));
    }

    #[test]
    fn redact_removes_secret_values_in_both_encodings() {
        let secret = json!({"kind": "Secret", "data": {"p": "aHVudGVyMg=="}, "stringData": {"q": "swordfish"}});
        let msg = "Invalid value: \"aHVudGVyMg==\" (hunter2) and swordfish";
        let out = redact(msg, &secret);
        assert!(!out.contains("hunter2") && !out.contains("aHVudGVyMg") && !out.contains("swordfish"), "{out}");
        let cm = json!({"kind": "ConfigMap", "data": {"p": "visible"}});
        assert_eq!(redact("visible", &cm), "visible");
    }

    #[test]
    fn every_kind_has_a_plural_and_namespace_comes_first() {
        assert_eq!(DEFAULTS.first().map(|k| k.kind), Some("Namespace"));
        assert!(DEFAULTS.iter().all(|k| !k.plural.is_empty() && k.namespaced == (k.kind != "Namespace")));
    }
}
