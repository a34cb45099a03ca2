//! What the API server does between a request and the store for writes: type checks,
//! metadata bookkeeping (uid, generation, managedFields), optimistic concurrency, status
//! and finalize subresources, patches, and storage at the storage version. Per-type rules
//! live in `admission` (and `crd` for CustomResourceDefinitions), DELETE in `deletion`,
//! `/scale` in `scale`.
//!
//! Every operation reads and writes under one store write lock, so checks and the write
//! are atomic (no lost updates between a resourceVersion check and the commit).

use std::sync::Arc;

use serde_json::{Map, Value, json};

use crate::admission;
use crate::crd;
use crate::deletion;
use crate::error::ApiError;
use crate::key::{Key, key_for};
use crate::managed::{self, Ownership, Writer};
use crate::patch::{self, PatchType};
use crate::resources::{self, ResourceDef};
use crate::store::{Inner, Store};
use crate::util;
use crate::validation;

/// Which part of the object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Sub {
    Main,
    Status,
    /// A Namespace's `/finalize`: like the main resource, but `spec.finalizers` may change.
    Finalize,
    /// `/scale`: the caller changes only `spec.replicas`.
    Scale,
}

impl Sub {
    /// The `managedFields` subresource name.
    fn name(self) -> &'static str {
        match self {
            Sub::Main => "",
            Sub::Status => "status",
            Sub::Finalize => "finalize",
            Sub::Scale => "scale",
        }
    }
}

/// Per-request write options.
#[derive(Debug, Clone, Default)]
pub(crate) struct WriteOpts {
    pub(crate) field_manager: Option<String>,
    pub(crate) dry_run: bool,
    /// Rust-API writes (seeding, controllers): `.status` is taken from the body on every
    /// resource instead of being reserved to the status subresource.
    pub(crate) privileged: bool,
    /// Server-side apply's `force`: take over fields other managers own.
    pub(crate) force: bool,
}

/// One update on its way to the store.
pub(crate) struct Change<'a> {
    pub(crate) sub: Sub,
    pub(crate) opts: &'a WriteOpts,
    /// What the write does to managedFields.
    pub(crate) ownership: Ownership<'a>,
}

impl<'a> Change<'a> {
    /// A plain update (PUT, non-apply PATCH, subresource write) by the request's manager.
    pub(crate) fn update(sub: Sub, opts: &'a WriteOpts) -> Self {
        let writer = Writer { manager: opts.field_manager.as_deref(), operation: "Update", subresource: sub.name() };
        Self { sub, opts, ownership: Ownership::Update(writer) }
    }
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
    for (field, want) in [("apiVersion", av.as_str()), ("kind", def.kind.as_str())] {
        match map.get(field).and_then(Value::as_str) {
            Some(v) if v != want => {
                let what = if field == "kind" { "kind" } else { "API version" };
                return Err(ApiError::bad_request(format!(
                    "the {what} in the data ({v}) does not match the expected {what} ({want})"
                )));
            }
            _ => {
                map.insert(field.into(), Value::String(want.into()));
            }
        }
    }
    Ok(())
}

/// The object as stored: at the resource's storage version.
fn to_storage(def: &ResourceDef, obj: &mut Value) {
    if let Some(m) = obj.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(def.storage_api_version()));
    }
}

/// The resource as the registry serves it now, under the write lock: a CRD may have been
/// deleted or started terminating since the request was routed.
fn current(g: &Inner, def: &ResourceDef) -> Result<Arc<ResourceDef>, ApiError> {
    g.registry()
        .by_plural(&def.group, &def.version, &def.plural)
        .filter(|d| d.id == def.id)
        .ok_or_else(|| ApiError::new(404, "NotFound", "the server could not find the requested resource"))
}

fn namespace_usable(g: &Inner, ns: &str) -> Result<(), ApiError> {
    match g.get(&(resources::NAMESPACES, String::new(), ns.to_string())) {
        None => Err(ApiError::new(404, "NotFound", format!("namespaces \"{ns}\" not found"))
            .with_details(json!({"name": ns, "kind": "namespaces"}))),
        Some(n) if util::meta_str(&n, "deletionTimestamp").is_some() => Err(ApiError::new(
            403,
            "Forbidden",
            format!("unable to create new content in namespace {ns} because it is being terminated"),
        )),
        Some(_) => Ok(()),
    }
}

/// A CRD being written, checked and settled among the cluster's other CRDs.
fn admit_crd(g: &Inner, obj: &mut Value, old: Option<&Value>) -> Result<(), ApiError> {
    let name = util::meta_str(obj, "name").unwrap_or("").to_string();
    let others: Vec<Value> =
        g.range(resources::CRDS, None, None).filter(|(k, _)| k.2 != name).map(|(_, o)| o.value()).collect();
    crd::admit(obj, old, &others.iter().collect::<Vec<_>>())
}

/// POST: creates an object.
pub(crate) fn create(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    obj: Value,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
    create_op(store, def, ns, obj, opts, None)
}

/// The namespace an object is created in: the URL's, the body's, or `default`.
fn place(def: &ResourceDef, meta: &mut Map<String, Value>, ns: Option<&str>) -> Result<Option<String>, ApiError> {
    if !def.namespaced {
        meta.remove("namespace");
        return Ok(None);
    }
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
    meta.insert("namespace".into(), Value::String(ns.clone()));
    Ok(Some(ns))
}

/// The object's name, generated from `generateName` when absent, and validated.
fn assign_name(def: &ResourceDef, meta: &mut Map<String, Value>) -> Result<String, ApiError> {
    let mut name = meta.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    if name.is_empty() {
        let prefix = meta.get("generateName").and_then(Value::as_str).unwrap_or("");
        if prefix.is_empty() {
            return Err(ApiError::invalid(
                &def.kind,
                "",
                "metadata.name: Required value: name or generateName is required",
            ));
        }
        name = format!("{prefix}{}", util::name_suffix());
        meta.insert("name".into(), Value::String(name.clone()));
    }
    if !valid_name(&name) {
        return Err(ApiError::invalid(
            &def.kind,
            &name,
            format!(
                "metadata.name: Invalid value: {name:?}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            ),
        ));
    }
    Ok(name)
}

/// A new object's metadata: placed, named, with server-set fields fresh. Returns the
/// namespace and name.
fn new_metadata(def: &ResourceDef, obj: &mut Value, ns: Option<&str>) -> Result<(Option<String>, String), ApiError> {
    let meta = util::meta_mut(obj).ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    let ns = place(def, meta, ns)?;
    let name = assign_name(def, meta)?;
    for f in ["uid", "resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "managedFields", "selfLink"]
    {
        meta.remove(f);
    }
    meta.insert("uid".into(), Value::String(util::uid()));
    meta.insert("creationTimestamp".into(), Value::String(util::now_rfc3339()));
    meta.remove("generation");
    if resources::tracks_generation(def.id) {
        meta.insert("generation".into(), json!(1));
    }
    Ok((ns, name))
}

/// Create; `applied` is the configuration when server-side apply creates the object (its
/// manager owns what it applied), `None` for a POST (its manager owns everything).
fn create_op(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    mut obj: Value,
    opts: &WriteOpts,
    applied: Option<&Value>,
) -> Result<Arc<Value>, ApiError> {
    check_type(def, &mut obj)?;
    let (ns, name) = new_metadata(def, &mut obj, ns)?;
    if def.status
        && !opts.privileged
        && let Some(m) = obj.as_object_mut()
    {
        m.remove("status");
    }
    admission::decode(def.id, &mut obj)?;
    admission::prepare_create(def.id, &mut obj);
    let ownership = match (applied, opts.field_manager.as_deref()) {
        (Some(config), Some(manager)) => Ownership::Apply(managed::applied_create(config, manager, &def.api_version())),
        _ => Ownership::Update(Writer { manager: opts.field_manager.as_deref(), operation: "Update", subresource: "" }),
    };
    managed::settle(None, None, &mut obj, ownership, &def.api_version());

    let key = key_for(def, ns.as_deref(), &name);
    let mut g = store.write();
    if current(&g, def)?.terminating() {
        return Err(ApiError::method_not_allowed("create not allowed while custom resource definition is terminating"));
    }
    if let Some(ns) = ns.as_deref() {
        namespace_usable(&g, ns)?;
    }
    if g.contains(&key) {
        return Err(def.already_exists(&name));
    }
    if def.id == resources::SERVICES {
        g.alloc.default_service(&mut obj, None, &name)?;
    }
    if def.id == resources::CRDS {
        admit_crd(&g, &mut obj, None)?;
    }
    to_storage(def, &mut obj);
    if opts.dry_run {
        return Ok(Arc::new(obj));
    }
    Ok(g.put(key, obj))
}

/// PUT on the object or its status (or a Namespace's finalize).
pub(crate) fn replace(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    mut obj: Value,
    sub: Sub,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
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
    let key = key_for(def, ns, name);
    let mut g = store.write();
    let old = g.get(&key).ok_or_else(|| def.not_found(name))?;
    validation::uid_precondition(def, name, &obj, &old)?;
    commit_update(&mut g, def, &key, &old, obj, Change::update(sub, opts))
}

/// PATCH in any of the four flavours. Returns the new state and whether it was created
/// (server-side apply of a missing object).
#[allow(clippy::too_many_arguments)]
pub(crate) fn patch(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    ptype: PatchType,
    body: &Value,
    sub: Sub,
    opts: &WriteOpts,
) -> Result<(Arc<Value>, bool), ApiError> {
    if ptype == PatchType::Strategic && def.is_custom() {
        return Err(strategic_unsupported());
    }
    let key = key_for(def, ns, name);
    let mut g = store.write();
    let Some(old) = g.get(&key) else {
        if ptype != PatchType::Apply || sub != Sub::Main {
            return Err(def.not_found(name));
        }
        drop(g);
        return Ok((apply_create(store, def, ns, name, body, opts)?, true));
    };
    // Patches apply to the object as served at the request's version.
    let mut new = def.view(&old).into_owned();
    let mut change = Change::update(sub, opts);
    match ptype {
        PatchType::Merge => patch::merge(&mut new, body),
        PatchType::Strategic => patch::strategic(&mut new, body)?,
        PatchType::Json => patch::json_patch(&mut new, body)?,
        PatchType::Apply => {
            let mut config = body.clone();
            check_type(def, &mut config)?;
            if let Some(m) = util::meta_mut(&mut config) {
                m.remove("resourceVersion");
            }
            let manager = opts.field_manager.as_deref().unwrap_or("unknown");
            let current = def.view(&old);
            let (applied, entries) = managed::apply(&current, &config, manager, opts.force, &def.api_version())?;
            new = applied;
            change.ownership = Ownership::Apply(entries);
        }
    }
    // A resourceVersion inside a patch is a precondition (kubectl uses it for optimistic
    // locking); an unchanged one passes through.
    commit_update(&mut g, def, &key, &old, new, change).map(|o| (o, false))
}

/// 415: custom resources have no Go types whose merge keys strategic merge would need,
/// so their handler accepts only the other patch types.
fn strategic_unsupported() -> ApiError {
    ApiError::new(
        415,
        "UnsupportedMediaType",
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
    )
}

/// Server-side apply of an object that does not exist yet: a create by the applier.
fn apply_create(
    store: &Store,
    def: &ResourceDef,
    ns: Option<&str>,
    name: &str,
    body: &Value,
    opts: &WriteOpts,
) -> Result<Arc<Value>, ApiError> {
    let mut obj = body.clone();
    if let Some(m) = util::meta_mut(&mut obj) {
        m.insert("name".into(), Value::String(name.to_string()));
    }
    let apply_opts =
        WriteOpts { field_manager: opts.field_manager.clone().or_else(|| Some("unknown".into())), ..opts.clone() };
    create_op(store, def, ns, obj.clone(), &apply_opts, Some(&obj))
}

/// The shared tail of PUT, PATCH and scale writes: reserved fields, per-type rules,
/// generation, managedFields, and the write itself at the storage version (skipped when
/// nothing changed; a write that empties the finalizers of an object being deleted
/// removes it). `def` is the resource as the request addresses it.
pub(crate) fn commit_update(
    g: &mut Inner,
    def: &ResourceDef,
    key: &Key,
    old: &Arc<Value>,
    mut new: Value,
    change: Change<'_>,
) -> Result<Arc<Value>, ApiError> {
    if !new.is_object() {
        return Err(ApiError::bad_request("the result of the patch is not a JSON object"));
    }
    current(g, def)?;
    check_type(def, &mut new)?;
    if let Some(rv) = util::meta_str(&new, "resourceVersion").filter(|s| !s.is_empty())
        && Some(rv) != util::meta_str(old, "resourceVersion")
    {
        return Err(def.stale(&key.2));
    }
    validation::uid_unchanged(def, &key.2, old, &new)?;
    admission::decode(key.0, &mut new)?;
    let requested = new.pointer("/metadata/managedFields").cloned();
    new = keep_reserved(def, old, new, change.sub, change.opts);
    admission::prepare_update(key.0, old, &mut new, change.sub == Sub::Finalize);
    validation::validate_update(def, &key.2, old, &new)?;
    if key.0 == resources::SERVICES {
        g.alloc.default_service(&mut new, Some(old), &key.2)?;
    }
    if key.0 == resources::CRDS {
        admit_crd(g, &mut new, Some(old))?;
    }
    to_storage(def, &mut new);
    bump_generation(def, old, &mut new);
    managed::settle(Some(old), requested.as_ref(), &mut new, change.ownership, &def.api_version());
    if new == **old {
        return Ok(old.clone());
    }
    if change.opts.dry_run {
        return Ok(Arc::new(new));
    }
    Ok(deletion::write_update(g, key, old, new))
}

/// What a write may not change: status outside the status subresource (and everything
/// but status inside it), identity and server-owned metadata.
fn keep_reserved(def: &ResourceDef, old: &Value, mut new: Value, sub: Sub, opts: &WriteOpts) -> Value {
    if sub == Sub::Status {
        let mut merged = old.clone();
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
    let old_meta = old.get("metadata").and_then(Value::as_object).cloned().unwrap_or_default();
    if let Some(meta) = util::meta_mut(&mut new) {
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
    }
    new
}

/// `metadata.generation`, on the kinds that have one, moves with every change outside
/// metadata and status. A custom resource without a status subresource has no such split:
/// a change of its status moves the generation too (the custom resource strategy compares
/// everything but metadata). A Deployment's annotations move it too (they are copied to its
/// ReplicaSets), and so do an EndpointSlice's labels (their strategies say so).
fn bump_generation(def: &ResourceDef, old: &Value, new: &mut Value) {
    if !resources::tracks_generation(def.id) {
        return;
    }
    let meta_field = match def.id {
        resources::DEPLOYMENTS => Some("annotations"),
        resources::ENDPOINTSLICES => Some("labels"),
        _ => None,
    };
    let meta_changed =
        meta_field.is_some_and(|f| old.pointer(&format!("/metadata/{f}")) != new.pointer(&format!("/metadata/{f}")));
    let changed = meta_changed
        || if def.is_custom() && !def.status {
            util::without_metadata(new) != util::without_metadata(old)
        } else {
            util::spec_part(new) != util::spec_part(old)
        };
    if !changed {
        return;
    }
    let gen_ = old.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(1);
    if let Some(m) = util::meta_mut(new) {
        m.insert("generation".into(), json!(gen_ + 1));
    }
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

    /// ConfigMaps.
    fn cm_def() -> &'static ResourceDef {
        &resources::BUILTINS[3]
    }

    #[test]
    fn create_assigns_metadata_and_rejects_duplicates_and_missing_names() -> Result<(), ApiError> {
        let s = store();
        let o = create(&s, cm_def(), Some("default"), cm("a"), &WriteOpts::default())?;
        // ConfigMaps have no spec to track.
        assert!(o["metadata"].get("generation").is_none());
        assert!(util::meta_str(&o, "uid").is_some());
        assert_eq!(
            create(&s, cm_def(), Some("default"), cm("a"), &WriteOpts::default()).err().map(|e| e.code),
            Some(409)
        );
        assert_eq!(create(&s, cm_def(), Some("nope"), cm("b"), &WriteOpts::default()).err().map(|e| e.code), Some(404));
        let unnamed = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
        assert_eq!(
            create(&s, cm_def(), Some("default"), unnamed, &WriteOpts::default()).err().map(|e| e.code),
            Some(422)
        );
        let generated = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"generateName": "x-"}});
        let o = create(&s, cm_def(), Some("default"), generated, &WriteOpts::default())?;
        assert_eq!(util::meta_str(&o, "name").map(str::len), Some(7));
        Ok(())
    }

    #[test]
    fn update_with_stale_resource_version_conflicts_and_generation_tracks_spec() -> Result<(), ApiError> {
        let s = store();
        let o = create(&s, cm_def(), Some("default"), cm("a"), &WriteOpts::default())?;
        let mut upd = (*o).clone();
        upd["data"]["a"] = json!("2");
        let o2 = replace(&s, cm_def(), Some("default"), "a", upd.clone(), Sub::Main, &WriteOpts::default())?;
        assert!(o2["metadata"].get("generation").is_none());
        assert_eq!(
            replace(&s, cm_def(), Some("default"), "a", upd, Sub::Main, &WriteOpts::default()).err().map(|e| e.code),
            Some(409)
        );
        let deploys = &resources::BUILTINS[resources::DEPLOYMENTS];
        let d =
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}});
        create(&s, deploys, Some("default"), d, &WriteOpts::default())?;
        let merge = |body: Value| {
            patch(&s, deploys, Some("default"), "d", PatchType::Merge, &body, Sub::Main, &WriteOpts::default())
                .map(|(o, _)| o["metadata"]["generation"].clone())
        };
        assert_eq!(merge(json!({"spec": {"replicas": 2}}))?, 2);
        // A label change keeps it; an annotation change of a Deployment moves it.
        assert_eq!(merge(json!({"metadata": {"labels": {"x": "y"}}}))?, 2);
        assert_eq!(merge(json!({"metadata": {"annotations": {"x": "y"}}}))?, 3);
        Ok(())
    }

    // ShouldDeleteDuringUpdate: emptying the finalizers of an object being deleted removes it.
    #[test]
    fn an_update_that_empties_finalizers_of_a_deleted_object_removes_it() -> Result<(), ApiError> {
        let s = store();
        let mut o = cm("a");
        o["metadata"]["finalizers"] = json!(["example.com/keep"]);
        create(&s, cm_def(), Some("default"), o, &WriteOpts::default())?;
        let opts = deletion::DeleteOptions::parse(&json!({}), false)?;
        assert!(matches!(deletion::delete(&s, cm_def(), Some("default"), "a", &opts)?, deletion::Deleted::Marked(_)));
        let add = json!({"metadata": {"finalizers": ["example.com/keep", "example.com/late"]}});
        let err = patch(&s, cm_def(), Some("default"), "a", PatchType::Merge, &add, Sub::Main, &WriteOpts::default());
        assert_eq!(err.err().map(|e| e.code), Some(422));
        let (last, _) = patch(
            &s,
            cm_def(),
            Some("default"),
            "a",
            PatchType::Json,
            &json!([{"op": "remove", "path": "/metadata/finalizers/0"}]),
            Sub::Main,
            &WriteOpts::default(),
        )?;
        assert!(util::finalizers(&last).is_empty());
        assert!(s.get(&(cm_def().id, "default".into(), "a".into())).is_none());
        Ok(())
    }

    #[test]
    fn status_writes_touch_only_status_and_main_writes_keep_it() -> Result<(), ApiError> {
        let s = store();
        let d = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}, "spec": {"replicas": 1}, "status": {"replicas": 9}});
        let o = create(&s, &resources::BUILTINS[resources::DEPLOYMENTS], Some("default"), d, &WriteOpts::default())?;
        assert!(o.get("status").is_none());
        let (o, _) = patch(
            &s,
            &resources::BUILTINS[resources::DEPLOYMENTS],
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
            &resources::BUILTINS[resources::DEPLOYMENTS],
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
