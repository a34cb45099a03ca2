//! What the API server does between a request and the store: validation, defaulting,
//! metadata bookkeeping (uid, generation, managedFields), optimistic concurrency, status
//! subresources, patches, and deletion with finalizers.
//!
//! Every operation reads and writes under one store write lock, so checks and the write
//! are atomic (no lost updates between a resourceVersion check and the commit).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::patch::{self, PatchType};
use crate::resources::{self, ResId, ResourceDef};
use crate::store::{Inner, Key, Store};
use crate::util;

/// Annotation recording the DeleteOptions of a delete that only marked the object
/// (it had finalizers), so a controller can read e.g. `orphanDependents` later.
pub const DELETE_OPTIONS_ANNOTATION: &str = "sim.meridian.io/delete-options";

/// Finalizers the API server adds for propagation policies. Without a garbage collector the
/// simulator drops them itself once no other finalizer is left.
const SYSTEM_FINALIZERS: [&str; 2] = ["orphan", "foregroundDeletion"];

/// Namespaces the real server refuses to delete.
const PROTECTED_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

/// Which part of the object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    Main,
    Status,
}

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOpts {
    pub(crate) field_manager: Option<String>,
    pub(crate) dry_run: bool,
    /// Rust-API writes (seeding, controllers): `.status` is taken from the body on every
    /// resource instead of being reserved to the status subresource.
    pub(crate) privileged: bool,
}

/// Outcome of a DELETE.
#[derive(Debug)]
pub(crate) enum Deleted {
    /// Removed; carries the last state.
    Gone(Arc<Value>),
    /// Finalizers remain: only marked with `deletionTimestamp`.
    Marked(Arc<Value>),
}

fn key_for(res: ResId, ns: Option<&str>, name: &str) -> Key {
    let ns = if resources::def(res).namespaced { ns.unwrap_or("") } else { "" };
    (res, ns.to_string(), name.to_string())
}

fn details(def: &ResourceDef, name: &str) -> Value {
    json!({"name": name, "group": def.group, "kind": def.plural})
}

fn not_found(def: &ResourceDef, name: &str) -> ApiError {
    let what = if def.group.is_empty() { def.plural.to_string() } else { format!("{}.{}", def.plural, def.group) };
    ApiError::new(404, "NotFound", format!("{what} \"{name}\" not found")).with_details(details(def, name))
}

fn qualified(def: &ResourceDef) -> String {
    if def.group.is_empty() { def.plural.to_string() } else { format!("{}.{}", def.plural, def.group) }
}

/// DNS-1123 subdomain, the rule for most object names.
fn valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || *c == b'.')
        && b.first().is_some_and(u8::is_ascii_alphanumeric)
        && b.last().is_some_and(u8::is_ascii_alphanumeric)
}

/// Checks `apiVersion`/`kind` of a body against the addressed resource, filling them if absent.
fn check_type(def: &ResourceDef, obj: &mut Value) -> Result<(), ApiError> {
    let av = def.api_version();
    let map = obj.as_object_mut().ok_or_else(|| ApiError::bad_request("the request body must be a JSON object"))?;
    match map.get("apiVersion").and_then(Value::as_str) {
        Some(v) if v != av => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({av})"
            )));
        }
        _ => {
            map.insert("apiVersion".into(), Value::String(av));
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        Some(k) if k != def.kind => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                def.kind
            )));
        }
        _ => {
            map.insert("kind".into(), Value::String(def.kind.into()));
        }
    }
    Ok(())
}

fn namespace_usable(g: &Inner, ns: &str) -> Result<(), ApiError> {
    match g.get(&(resources::NAMESPACES, String::new(), ns.to_string())) {
        None => Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
            .with_details(json!({"name": ns, "kind": "namespaces"}))),
        Some(n) if util::meta_str(n, "deletionTimestamp").is_some() => Err(ApiError::new(
            403,
            "Forbidden",
            format!("unable to create new content in namespace {ns} because it is being terminated"),
        )),
        Some(_) => Ok(()),
    }
}

/// POST: creates an object.
pub(crate) fn create(
    store: &Store,
    res: ResId,
    ns: Option<&str>,
    obj: Value,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
    create_op(store, res, ns, obj, opts, "Update")
}

/// Create, recording the field manager under `operation` (`Apply` for server-side apply).
fn create_op(
    store: &Store,
    res: ResId,
    ns: Option<&str>,
    mut obj: Value,
    opts: &WriteOpts,
    operation: &str,
) -> Result<Arc<Value>, ApiError> {
    let def = resources::def(res);
    check_type(def, &mut obj)?;
    let meta = util::meta_mut(&mut obj).ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    if def.namespaced {
        let body_ns = meta.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty()).map(String::from);
        let ns = match (ns, body_ns) {
            (Some(p), Some(b)) if p != b => {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
            (Some(p), _) => p.to_string(),
            (None, Some(b)) => b,
            (None, None) => "default".to_string(),
        };
        meta.insert("namespace".into(), Value::String(ns));
    } else {
        meta.remove("namespace");
    }
    let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    if name.is_empty() {
        let prefix = meta.get("generateName").and_then(Value::as_str).unwrap_or("");
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                def.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        name = format!("{prefix}{}", util::name_suffix());
        meta.insert("name".into(), Value::String(name.clone()));
    }
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            def.kind,
            &name,
            format!(
                "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ));
    }
    let ns_s = meta.get("namespace").and_then(Value::as_str).map(String::from);
    for f in ["uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"]
    {
        meta.remove(f);
    }
    meta.insert("uid".into(), Value::String(util::uid()));
    meta.insert("creationTimestamp".into(), Value::String(util::now_rfc3339()));
    meta.insert("generation".into(), json!(1));
    if def.status
        && !opts.privileged
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    defaults_on_create(res, &mut obj);
    let applied_fields = patch::fields_of(&obj);
    set_managed(&mut obj, opts.field_manager.as_deref(), operation, &def.api_version(), applied_fields);

    let key = key_for(res, ns_s.as_deref(), &name);
    let mut g = store.write();
    if let Some(ns) = ns_s.as_deref() {
        namespace_usable(&g, ns)?;
    }
    if g.get(&key).is_some() {
        return Err(ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", qualified(def)))
            .with_details(details(def, &name)));
    }
    if res == resources::SERVICES {
        let name = name.clone();
        g.alloc.default_service(&mut obj, None, &name)?;
    }
    if opts.dry_run {
        return Ok(Arc::new(obj));
    }
    Ok(g.put(key, obj))
}

fn defaults_on_create(res: ResId, obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    match res {
        resources::NAMESPACES => {
            m.insert("spec".into(), json!({"finalizers": ["kubernetes"]}));
            m.insert("status".into(), json!({"phase": "Active"}));
        }
        resources::DEPLOYMENTS | resources::REPLICASETS => {
            if let Some(spec) = m.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(json!(1));
            }
        }
        _ => {}
    }
}

/// Adds or refreshes this manager's `managedFields` entry (one per manager and operation).
fn set_managed(obj: &mut Value, manager: Option<&str>, operation: &str, api_version: &str, fields: Value) {
    let Some(manager) = manager else { return };
    let Some(meta) = util::meta_mut(obj) else { return };
    let mut entries: Vec<Value> = meta.get("managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
    entries.retain(|e| !(e["manager"] == manager && e["operation"] == operation));
    entries.push(json!({
        "manager": manager,
        "operation": operation,
        "apiVersion": api_version,
        "time": util::now_rfc3339(),
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }));
    meta.insert("managedFields".into(), Value::Array(entries));
}

/// PUT on the object or its status.
pub(crate) fn replace(
    store: &Store,
    res: ResId,
    ns: Option<&str>,
    name: &str,
    mut obj: Value,
    sub: Sub,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
    let def = resources::def(res);
    check_type(def, &mut obj)?;
    let body_name = util::meta_str(&obj, "name").unwrap_or("");
    if !body_name.is_empty() && body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    if def.namespaced
        && let (Some(b), Some(p)) = (util::meta_str(&obj, "namespace").filter(|s| !s.is_empty()), ns)
        && b != p
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let key = key_for(res, ns, name);
    let mut g = store.write();
    let old = g.get(&key).cloned().ok_or_else(|| not_found(def, name))?;
    let fields = patch::fields_of(&obj);
    commit_update(&mut g, &key, &old, obj, sub, opts, "Update", fields)
}

/// PATCH in any of the four flavours. Returns the new state and whether it was created
/// (server-side apply of a missing object).
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch(
    store: &Store,
    res: ResId,
    ns: Option<&str>,
    name: &str,
    ptype: PatchType,
    body: &Value,
    sub: Sub,
    opts: &WriteOpts,
) -> Result<(Arc<Value>, bool), ApiError> {
    let def = resources::def(res);
    let key = key_for(res, ns, name);
    let mut g = store.write();
    let Some(old) = g.get(&key).cloned() else {
        if ptype != PatchType::Apply || sub != Sub::Main {
            return Err(not_found(def, name));
        }
        drop(g);
        let mut obj = body.clone();
        if let Some(m) = util::meta_mut(&mut obj) {
            m.insert("name".into(), Value::String(name.to_string()));
        }
        let apply_opts =
            WriteOpts { field_manager: opts.field_manager.clone().or_else(|| Some("unknown".into())), ..opts.clone() };
        return Ok((create_op(store, res, ns, obj, &apply_opts, "Apply")?, true));
    };
    let mut new = (*old).clone();
    let mut operation = "Update";
    let fields = patch::fields_of(body);
    match ptype {
        PatchType::Merge => patch::merge(&mut new, body),
        PatchType::Strategic => patch::strategic(&mut new, body),
        PatchType::Json => patch::json_patch(&mut new, body)?,
        PatchType::Apply => {
            operation = "Apply";
            let mut body = body.clone();
            check_type(def, &mut body)?;
            if let Some(m) = util::meta_mut(&mut body) {
                m.remove("resourceVersion");
            }
            let manager = opts.field_manager.clone().unwrap_or_else(|| "unknown".into());
            let entries = old.pointer("/metadata/managedFields").and_then(Value::as_array).cloned().unwrap_or_default();
            let mine = entries
                .iter()
                .find(|e| e["manager"] == manager.as_str() && e["operation"] == "Apply")
                .map(|e| e["fieldsV1"].clone());
            let others: Vec<Value> = entries
                .iter()
                .filter(|e| !(e["manager"] == manager.as_str() && e["operation"] == "Apply"))
                .map(|e| e["fieldsV1"].clone())
                .collect();
            let other_refs: Vec<&Value> = others.iter().collect();
            patch::apply(&mut new, &body, mine.as_ref(), &other_refs);
        }
    }
    // A resourceVersion inside a patch is a precondition (kubectl uses it for optimistic
    // locking); an unchanged one passes through.
    commit_update(&mut g, &key, &old, new, sub, opts, operation, fields).map(|o| (o, false))
}

/// The shared tail of PUT and PATCH: reserved fields, generation, status handling,
/// finalization, and the write itself (skipped when nothing changed).
#[allow(clippy::too_many_arguments)]
fn commit_update(
    g: &mut Inner,
    key: &Key,
    old: &Arc<Value>,
    mut new: Value,
    sub: Sub,
    opts: &WriteOpts,
    operation: &str,
    fields: Value,
) -> Result<Arc<Value>, ApiError> {
    let def = resources::def(key.0);
    if !new.is_object() {
        return Err(ApiError::bad_request("the result of the patch is not a JSON object"));
    }
    check_type(def, &mut new)?;
    if let Some(rv) = util::meta_str(&new, "resourceVersion").filter(|s| !s.is_empty())
        && Some(rv) != util::meta_str(old, "resourceVersion")
    {
        return Err(ApiError::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(def),
                    key.2
                ),
            )
            .with_details(details(def, &key.2)));
    }
    if sub == Sub::Status {
        // Status writes change only `.status`.
        let mut merged = (**old).clone();
        if let (Some(m), Some(n)) = (merged.as_object_mut(), new.as_object()) {
            match n.get("status") {
                Some(s) => m.insert("status".into(), s.clone()),
                None => m.remove("status"),
            };
        }
        new = merged;
    } else if def.status
        && !opts.privileged
        && let Some(m) = new.as_object_mut()
    {
        match old.get("status") {
            Some(s) => m.insert("status".into(), s.clone()),
            None => m.remove("status"),
        };
    }
    // Identity and server-owned metadata come from the stored object.
    let old_meta = old.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    let meta = util::meta_mut(&mut new).ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    for f in [
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "managedFields",
        "resourceVersion",
    ] {
        match old_meta.get(f) {
            Some(v) => meta.insert(f.into(), v.clone()),
            None => meta.remove(f),
        };
    }
    if key.0 == resources::SERVICES {
        g.alloc.default_service(&mut new, Some(old), &key.2)?;
    }
    if util::spec_part(&new) != util::spec_part(old) {
        let gen_ = old_meta.get("generation").and_then(Value::as_i64).unwrap_or(1);
        if let Some(m) = util::meta_mut(&mut new) {
            m.insert("generation".into(), json!(gen_ + 1));
        }
    }
    if new == **old {
        return Ok(old.clone());
    }
    set_managed(&mut new, opts.field_manager.as_deref(), operation, &def.api_version(), fields);
    if opts.dry_run {
        return Ok(Arc::new(new));
    }
    if util::meta_str(&new, "deletionTimestamp").is_some() {
        let fins = util::finalizers(&new);
        if fins.iter().all(|f| SYSTEM_FINALIZERS.contains(&f.as_str())) {
            return Ok(remove_and_finish(g, key).unwrap_or_else(|| Arc::new(new)));
        }
    }
    Ok(g.put(key.clone(), new))
}

/// Removes an object and, if that emptied a terminating namespace, the namespace too.
fn remove_and_finish(g: &mut Inner, key: &Key) -> Option<Arc<Value>> {
    let last = g.remove(key)?;
    if !key.1.is_empty() {
        let ns_key = (resources::NAMESPACES, String::new(), key.1.clone());
        let terminating = g.get(&ns_key).is_some_and(|n| util::meta_str(n, "deletionTimestamp").is_some());
        if terminating && g.namespace_is_empty(&key.1) {
            g.remove(&ns_key);
        }
    }
    Some(last)
}

/// Reads the propagation policy out of DeleteOptions (body merged with query parameters).
fn propagation(opts: &Value) -> Result<Option<&'static str>, ApiError> {
    if let Some(p) = opts.get("propagationPolicy").and_then(Value::as_str) {
        return match p {
            "Orphan" => Ok(Some("orphan")),
            "Foreground" => Ok(Some("foregroundDeletion")),
            "Background" => Ok(None),
            other => {
                Err(ApiError::invalid("DeleteOptions", "", format!("propagationPolicy: Unsupported value: {other:?}")))
            }
        };
    }
    Ok(match opts.get("orphanDependents").and_then(Value::as_bool) {
        Some(true) => Some("orphan"),
        _ => None,
    })
}

/// DELETE: removes the object, or marks it when finalizers remain (see the crate docs for
/// the recorded `sim.meridian.io/delete-options` annotation).
pub(crate) fn delete(
    store: &Store,
    res: ResId,
    ns: Option<&str>,
    name: &str,
    options: &Value,
    dry_run: bool,
) -> Result<Deleted, ApiError> {
    let def = resources::def(res);
    let key = key_for(res, ns, name);
    if res == resources::NAMESPACES && PROTECTED_NAMESPACES.contains(&name) {
        return Err(ApiError::new(
            403,
            "Forbidden",
            format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"),
        ));
    }
    let system = propagation(options)?;
    let mut g = store.write();
    let old = g.get(&key).cloned().ok_or_else(|| not_found(def, name))?;
    if let Some(pre) = options.get("preconditions") {
        if let Some(uid) = pre.get("uid").and_then(Value::as_str) {
            let have = util::meta_str(&old, "uid").unwrap_or("");
            if uid != have {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
                ));
            }
        }
        if let Some(rv) = pre.get("resourceVersion").and_then(Value::as_str) {
            let have = util::meta_str(&old, "resourceVersion").unwrap_or("");
            if rv != have {
                return Err(ApiError::new(
                    409,
                    "Conflict",
                    format!(
                        "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"
                    ),
                ));
            }
        }
    }
    if dry_run {
        return Ok(Deleted::Gone(old));
    }
    if util::meta_str(&old, "deletionTimestamp").is_some() {
        return Ok(Deleted::Marked(old));
    }
    let mut fins = util::finalizers(&old);
    let user_finalizers = fins.iter().any(|f| !SYSTEM_FINALIZERS.contains(&f.as_str()));
    if res == resources::NAMESPACES {
        return Ok(delete_namespace(&mut g, &key, &old, user_finalizers));
    }
    if !user_finalizers {
        // Only system finalizers (or none): without a garbage collector they would be
        // removed at once, so the object goes now.
        return Ok(Deleted::Gone(remove_and_finish(&mut g, &key).unwrap_or(old)));
    }
    if let Some(f) = system
        && !fins.iter().any(|x| x == f)
    {
        fins.push(f.to_string());
    }
    let mut new = (*old).clone();
    let grace = options.get("gracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0);
    let mut recorded = options.clone();
    if let Some(m) = recorded.as_object_mut() {
        m.entry("kind").or_insert(json!("DeleteOptions"));
        m.entry("apiVersion").or_insert(json!("v1"));
    }
    if let Some(meta) = util::meta_mut(&mut new) {
        meta.insert("deletionTimestamp".into(), Value::String(util::now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        meta.insert("finalizers".into(), json!(fins));
        let ann = meta.entry("annotations").or_insert_with(|| Value::Object(Map::new()));
        if let Some(a) = ann.as_object_mut() {
            a.insert(DELETE_OPTIONS_ANNOTATION.into(), Value::String(recorded.to_string()));
        } else {
            *ann = json!({DELETE_OPTIONS_ANNOTATION: recorded.to_string()});
        }
    }
    Ok(Deleted::Marked(g.put(key, new)))
}

/// Namespace deletion: deletes every object inside (objects with finalizers are only
/// marked); the namespace stays Terminating until it is empty.
fn delete_namespace(g: &mut Inner, key: &Key, old: &Arc<Value>, user_finalizers: bool) -> Deleted {
    let ns = key.2.clone();
    let mut marked = (**old).clone();
    if let Some(meta) = util::meta_mut(&mut marked) {
        meta.insert("deletionTimestamp".into(), Value::String(util::now_rfc3339()));
        meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    }
    if let Some(m) = marked.as_object_mut() {
        m.insert("status".into(), json!({"phase": "Terminating"}));
    }
    let marked = g.put(key.clone(), marked);
    for k in g.keys_in_namespace(&ns) {
        let Some(obj) = g.get(&k).cloned() else { continue };
        if util::finalizers(&obj).is_empty() {
            g.remove(&k);
        } else if util::meta_str(&obj, "deletionTimestamp").is_none() {
            let mut o = (*obj).clone();
            if let Some(meta) = util::meta_mut(&mut o) {
                meta.insert("deletionTimestamp".into(), Value::String(util::now_rfc3339()));
                meta.insert("deletionGracePeriodSeconds".into(), json!(0));
            }
            g.put(k, o);
        }
    }
    if !user_finalizers && g.namespace_is_empty(&ns) {
        return Deleted::Gone(g.remove(key).unwrap_or(marked));
    }
    Deleted::Marked(marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> Store {
        let s = Store::new(100, None);
        {
            let mut g = s.write();
            {
                let ns = "default";
                g.put(
                    (resources::NAMESPACES, String::new(), ns.into()),
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                );
            }
        }
        s
    }

    fn cm(name: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "1"}})
    }

    const CM: ResId = 3;

    #[test]
    fn create_assigns_metadata_and_rejects_duplicates_and_missing_names() -> Result<(), ApiError> {
        let s = store();
        let o = create(&s, CM, Some("default"), cm("a"), &WriteOpts::default())?;
        assert_eq!(o["metadata"]["generation"], 1);
        assert!(util::meta_str(&o, "uid").is_some());
        assert_eq!(create(&s, CM, Some("default"), cm("a"), &WriteOpts::default()).err().map(|e| e.code), Some(409));
        assert_eq!(create(&s, CM, Some("nope"), cm("b"), &WriteOpts::default()).err().map(|e| e.code), Some(404));
        let unnamed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        assert_eq!(create(&s, CM, Some("default"), unnamed, &WriteOpts::default()).err().map(|e| e.code), Some(422));
        let generated = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}});
        let o = create(&s, CM, Some("default"), generated, &WriteOpts::default())?;
        assert_eq!(util::meta_str(&o, "name").map(str::len), Some(7));
        Ok(())
    }

    #[test]
    fn update_with_stale_resource_version_conflicts_and_generation_tracks_spec() -> Result<(), ApiError> {
        let s = store();
        let o = create(&s, CM, Some("default"), cm("a"), &WriteOpts::default())?;
        let mut upd = (*o).clone();
        upd["data"]["a"] = json!("2");
        let o2 = replace(&s, CM, Some("default"), "a", upd.clone(), Sub::Main, &WriteOpts::default())?;
        assert_eq!(o2["metadata"]["generation"], 2);
        assert_eq!(
            replace(&s, CM, Some("default"), "a", upd, Sub::Main, &WriteOpts::default()).err().map(|e| e.code),
            Some(409)
        );
        // A label-only change keeps the generation.
        let (o3, _) = patch(
            &s,
            CM,
            Some("default"),
            "a",
            PatchType::Merge,
            &json!({"metadata": {"labels": {"x": "y"}}}),
            Sub::Main,
            &WriteOpts::default(),
        )?;
        assert_eq!(o3["metadata"]["generation"], 2);
        Ok(())
    }

    #[test]
    fn delete_with_finalizer_marks_and_records_options_until_finalizers_clear() -> Result<(), ApiError> {
        let s = store();
        let mut o = cm("a");
        o["metadata"]["finalizers"] = json!(["example.com/keep"]);
        create(&s, CM, Some("default"), o, &WriteOpts::default())?;
        let opts = json!({"propagationPolicy": "Orphan"});
        let Deleted::Marked(m) = delete(&s, CM, Some("default"), "a", &opts, false)? else {
            panic!("expected the object to be only marked");
        };
        assert!(util::meta_str(&m, "deletionTimestamp").is_some());
        assert_eq!(util::finalizers(&m), vec!["example.com/keep".to_string(), "orphan".to_string()]);
        let recorded: Value =
            serde_json::from_str(util::annotation(&m, DELETE_OPTIONS_ANNOTATION).unwrap_or("{}")).unwrap_or_default();
        assert_eq!(recorded["propagationPolicy"], "Orphan");
        // Removing the user finalizer leaves only `orphan`, which the simulator drops itself.
        patch(
            &s,
            CM,
            Some("default"),
            "a",
            PatchType::Json,
            &json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
            Sub::Main,
            &WriteOpts::default(),
        )?;
        assert!(s.get(&(CM, "default".into(), "a".into())).is_none());
        Ok(())
    }

    #[test]
    fn delete_without_finalizers_removes_and_namespace_delete_cascades() -> Result<(), ApiError> {
        let s = store();
        create(
            &s,
            0,
            None,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "tmp"}}),
            &WriteOpts::default(),
        )?;
        create(&s, CM, Some("tmp"), cm("a"), &WriteOpts::default())?;
        assert!(matches!(delete(&s, 0, None, "tmp", &json!({}), false)?, Deleted::Gone(_)));
        assert!(s.get(&(CM, "tmp".into(), "a".into())).is_none());
        assert_eq!(delete(&s, 0, None, "default", &json!({}), false).err().map(|e| e.code), Some(403));
        Ok(())
    }

    #[test]
    fn status_writes_touch_only_status_and_main_writes_keep_it() -> Result<(), ApiError> {
        let s = store();
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        let o = create(&s, resources::DEPLOYMENTS, Some("default"), d, &WriteOpts::default())?;
        assert!(o.get("status").is_none());
        let (o, _) = patch(
            &s,
            resources::DEPLOYMENTS,
            Some("default"),
            "d",
            PatchType::Merge,
            &json!({"spec": {"replicas": 5}, "status": {"replicas": 5}}),
            Sub::Status,
            &WriteOpts::default(),
        )?;
        assert_eq!(o["spec"]["replicas"], 1);
        assert_eq!(o["status"]["replicas"], 5);
        let (o, _) = patch(
            &s,
            resources::DEPLOYMENTS,
            Some("default"),
            "d",
            PatchType::Merge,
            &json!({"spec": {"replicas": 3}, "status": null}),
            Sub::Main,
            &WriteOpts::default(),
        )?;
        assert_eq!(o["spec"]["replicas"], 3);
        assert_eq!(o["status"]["replicas"], 5);
        Ok(())
    }
}
