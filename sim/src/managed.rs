//! Field management as kube-apiserver's field manager does it: `metadata.managedFields`
//! holds one entry per manager, operation and subresource with the fields it owns.
//! - An update (create, PUT, PATCH, subresource write) gives its manager the fields it
//!   changed and takes them from everyone else; removed fields leave every set.
//! - Server-side apply merges the configuration (list-maps by their keys, sets by value,
//!   atomic lists whole), answers 409 when it would change a field another manager owns
//!   (unless `force`, which takes the field over), and removes fields the applier owned
//!   last time and no longer applies, unless someone else owns them too.
//! - managedFields sent by a client replace the stored ones (kubectl's client-side to
//!   server-side apply migration relies on it); an empty list keeps them.
//! - Manager `kubectl` may take over, without `force`, the fields of its client-side
//!   apply's `last-applied-configuration` that still hold (the `lastAppliedManager`).

use serde_json::{Value, json};

use crate::error::ApiError;
use crate::fieldpath::{self, FieldSet, Path, Seg};
use crate::schema::{self, ListType};
use crate::util;

/// kubectl's client-side apply annotation.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Who writes, and how: the key of one `managedFields` entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Writer<'a> {
    /// `None` (the Rust seeding API) records nothing.
    pub(crate) manager: Option<&'a str>,
    /// `Update` or `Apply`.
    pub(crate) operation: &'a str,
    /// `""` for the main resource, `status`, `scale` or `finalize`.
    pub(crate) subresource: &'a str,
}

/// One `managedFields` entry.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    manager: String,
    operation: String,
    subresource: String,
    api_version: String,
    time: String,
    fields: FieldSet,
}

impl Entry {
    fn new(manager: &str, operation: &str, subresource: &str, api_version: &str) -> Self {
        Self {
            manager: manager.into(),
            operation: operation.into(),
            subresource: subresource.into(),
            api_version: api_version.into(),
            time: util::now_rfc3339(),
            fields: FieldSet::default(),
        }
    }

    fn from_json(v: &Value) -> Self {
        let s = |f: &str| v.get(f).and_then(Value::as_str).unwrap_or("").to_string();
        Self {
            manager: s("manager"),
            operation: s("operation"),
            subresource: s("subresource"),
            api_version: s("apiVersion"),
            time: s("time"),
            fields: v.get("fieldsV1").map(FieldSet::from_v1).unwrap_or_default(),
        }
    }

    fn to_json(&self) -> Value {
        let mut e = json!({
            "manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
            "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": self.fields.to_v1(),
        });
        if !self.subresource.is_empty() {
            e["subresource"] = json!(self.subresource);
        }
        e
    }

    fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }

    /// How kube-apiserver names a manager in conflicts (`printManager`).
    fn who(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            s.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {} at {}", self.api_version, self.time));
        }
        s
    }
}

fn entries_of(list: Option<&Value>) -> Vec<Entry> {
    list.and_then(Value::as_array).map(|a| a.iter().map(Entry::from_json).collect()).unwrap_or_default()
}

fn store(obj: &mut Value, entries: Vec<Entry>) {
    let kept: Vec<Value> = entries.iter().filter(|e| !e.fields.is_empty()).map(Entry::to_json).collect();
    let Some(meta) = util::meta_mut(obj) else { return };
    if kept.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert("managedFields".into(), Value::Array(kept));
    }
}

/// What a write does to managedFields.
pub(crate) enum Ownership<'a> {
    /// A create, update or patch: the writer takes the fields it changed.
    Update(Writer<'a>),
    /// A server-side apply, worked out by [`apply`].
    Apply(Vec<Entry>),
}

/// Sets `new`'s managedFields after a write from `old` (`None`: a create). `requested` is
/// what the request carried in `metadata.managedFields`.
pub(crate) fn settle(
    old: Option<&Value>,
    requested: Option<&Value>,
    new: &mut Value,
    ownership: Ownership<'_>,
    api_version: &str,
) {
    let w = match ownership {
        Ownership::Apply(entries) => return store(new, entries),
        Ownership::Update(w) => w,
    };
    let stored = entries_of(old.and_then(|o| o.pointer("/metadata/managedFields")));
    let sent = entries_of(requested);
    let mut entries =
        if w.subresource.is_empty() && sent.iter().any(|e| !e.manager.is_empty()) { sent } else { stored };
    take_changed(&mut entries, old, new, w, api_version);
    store(new, entries);
}

/// The update part of [`settle`]: changed fields go to the writer, removed ones to nobody.
fn take_changed(entries: &mut Vec<Entry>, old: Option<&Value>, new: &Value, w: Writer<'_>, api_version: &str) {
    let Some(manager) = w.manager else { return };
    let before = old.map(FieldSet::of).unwrap_or_default();
    let after = FieldSet::of(new);
    let changed: Vec<&Path> = after
        .iter()
        .filter(|p| {
            let was = old.and_then(|o| fieldpath::get(o, p));
            match p.last() {
                Some(Seg::Field(_)) => was != fieldpath::get(new, p),
                _ => was.is_none(),
            }
        })
        .collect();
    let removed: Vec<&Path> = before.iter().filter(|p| !after.contains(p)).collect();
    for e in entries.iter_mut().filter(|e| !e.is(manager, w.operation, w.subresource)) {
        for p in changed.iter().chain(&removed) {
            e.fields.remove(p);
        }
    }
    if changed.is_empty() && removed.is_empty() {
        return;
    }
    if !entries.iter().any(|e| e.is(manager, w.operation, w.subresource)) {
        entries.push(Entry::new(manager, w.operation, w.subresource, api_version));
    }
    let Some(mine) = entries.iter_mut().find(|e| e.is(manager, w.operation, w.subresource)) else { return };
    for p in removed {
        mine.fields.remove(p);
    }
    for p in changed {
        mine.fields.insert(p.clone());
    }
    mine.time = util::now_rfc3339();
    mine.api_version = api_version.into();
}

/// The entries of a create by server-side apply: the applier owns what it applied.
pub(crate) fn applied_create(config: &Value, manager: &str, api_version: &str) -> Vec<Entry> {
    let mut e = Entry::new(manager, "Apply", "", api_version);
    e.fields = FieldSet::of(config);
    vec![e]
}

/// Server-side apply of `config` by `manager` onto `old`: the new object and managedFields.
pub(crate) fn apply(
    old: &Value,
    config: &Value,
    manager: &str,
    force: bool,
    api_version: &str,
) -> Result<(Value, Vec<Entry>), ApiError> {
    let mut entries = entries_of(old.pointer("/metadata/managedFields"));
    let applied = FieldSet::of(config);
    let mut new = old.clone();
    merge(&mut new, config, &mut Vec::new());
    let conflicts = conflicts(&entries, &applied, old, &new, manager);
    if !conflicts.is_empty() && !force {
        // kubectl's own server-side apply takes over what its client-side apply set.
        let allowed = if manager == "kubectl" { from_last_applied(old) } else { None };
        let refused: Vec<(usize, Path)> =
            conflicts.iter().filter(|(_, p)| !allowed.as_ref().is_some_and(|a| a.contains(p))).cloned().collect();
        if !refused.is_empty() {
            return Err(conflict_error(&entries, &refused));
        }
    }
    for (i, p) in &conflicts {
        if let Some(e) = entries.get_mut(*i) {
            e.fields.remove(p);
        }
    }
    let pos = entries.iter().position(|e| e.is(manager, "Apply", ""));
    let previous = pos.and_then(|i| entries.get(i)).map(|e| e.fields.clone()).unwrap_or_default();
    for p in previous.iter().filter(|p| !applied.contains(p)) {
        let shared = entries.iter().any(|e| !e.is(manager, "Apply", "") && e.fields.contains(p));
        if !shared {
            fieldpath::remove(&mut new, p);
        }
    }
    match pos.and_then(|i| entries.get_mut(i)) {
        // Same fields: keep the timestamp, so a no-op apply writes nothing.
        Some(e) if e.fields == applied && e.api_version == api_version => {}
        Some(e) => {
            e.fields = applied;
            e.api_version = api_version.into();
            e.time = util::now_rfc3339();
        }
        None => {
            let mut e = Entry::new(manager, "Apply", "", api_version);
            e.fields = applied;
            entries.push(e);
        }
    }
    Ok((new, entries))
}

/// The field manager's `lastAppliedManager`: the fields of kubectl's
/// `last-applied-configuration` annotation, when the live object still matches it there.
fn from_last_applied(old: &Value) -> Option<FieldSet> {
    let text = util::annotation(old, LAST_APPLIED)?;
    let last: Value = serde_json::from_str(text).ok()?;
    let fields = FieldSet::of(&last);
    // Values only: an empty map there (`annotations: {}`) is a container, not a value.
    let matches = fields
        .iter()
        .filter(|p| matches!(p.last(), Some(Seg::Field(_))))
        .filter(|p| !fieldpath::get(&last, p).is_some_and(Value::is_object))
        .all(|p| fieldpath::get(old, p) == fieldpath::get(&last, p));
    matches.then_some(fields)
}

/// Fields the apply changes that another manager owns: (entry index, path).
fn conflicts(entries: &[Entry], applied: &FieldSet, old: &Value, new: &Value, manager: &str) -> Vec<(usize, Path)> {
    let mut out = Vec::new();
    for p in applied.iter().filter(|p| matches!(p.last(), Some(Seg::Field(_)))) {
        let Some(live) = fieldpath::get(old, p) else { continue };
        if fieldpath::get(new, p) == Some(live) {
            continue;
        }
        for (i, e) in entries.iter().enumerate() {
            if !e.is(manager, "Apply", "") && e.fields.contains(p) {
                out.push((i, p.clone()));
            }
        }
    }
    out
}

/// 409 like the field manager's `NewConflictError`.
fn conflict_error(entries: &[Entry], conflicts: &[(usize, Path)]) -> ApiError {
    let who = |i: usize| entries.get(i).map(Entry::who).unwrap_or_default();
    let causes: Vec<Value> = conflicts
        .iter()
        .map(|(i, p)| {
            json!({"type": "FieldManagerConflict", "message": format!("conflict with {}", who(*i)), "field": fieldpath::display(p)})
        })
        .collect();
    let message = match conflicts {
        [(i, p)] => format!("Apply failed with 1 conflict: conflict with {}: {}", who(*i), fieldpath::display(p)),
        _ => {
            let mut by_manager: std::collections::BTreeMap<String, Vec<String>> = Default::default();
            for (i, p) in conflicts {
                by_manager.entry(who(*i)).or_default().push(fieldpath::display(p));
            }
            let lines: Vec<String> = by_manager
                .iter()
                .flat_map(|(m, paths)| {
                    std::iter::once(format!("conflicts with {m}:")).chain(paths.iter().map(|p| format!("- {p}")))
                })
                .collect();
            format!("Apply failed with {} conflicts: {}", conflicts.len(), lines.join("\n"))
        }
    };
    ApiError::new(409, "Conflict", message).with_details(json!({"causes": causes}))
}

/// The apply merge: maps merge, list-maps merge by key, sets take the union, atomic lists
/// and scalars are replaced; an explicit null removes the field.
fn merge(live: &mut Value, config: &Value, names: &mut Vec<String>) {
    match (live, config) {
        (Value::Object(l), Value::Object(c)) => {
            for (k, v) in c {
                names.push(k.clone());
                match (l.get_mut(k), v) {
                    (_, Value::Null) => {
                        l.remove(k);
                    }
                    (Some(slot), _) => merge(slot, v, names),
                    (None, _) => {
                        l.insert(k.clone(), v.clone());
                    }
                }
                names.pop();
            }
        }
        (Value::Array(l), Value::Array(c)) => match schema::list_type(names) {
            ListType::Map { map_keys, .. } => {
                for item in c {
                    let key = fieldpath::element_key(item, map_keys);
                    let slot = key.as_deref().and_then(|k| l.iter_mut().find(|i| fieldpath::matches_key(i, k)));
                    match slot {
                        Some(slot) => merge(slot, item, names),
                        None => l.push(item.clone()),
                    }
                }
            }
            ListType::Set => {
                for item in c {
                    if !l.contains(item) {
                        l.push(item.clone());
                    }
                }
            }
            ListType::Atomic => *l = c.clone(),
        },
        (l, c) => *l = c.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owned_by(obj: &Value, manager: &str, op: &str) -> Option<Value> {
        obj["metadata"]["managedFields"]
            .as_array()?
            .iter()
            .find(|e| e["manager"] == manager && e["operation"] == op)
            .map(|e| e["fieldsV1"].clone())
    }

    fn applied(old: &Value, config: Value, manager: &str, force: bool) -> Result<Value, ApiError> {
        let (mut new, entries) = apply(old, &config, manager, force, "apps/v1")?;
        settle(Some(old), None, &mut new, Ownership::Apply(entries), "apps/v1");
        Ok(new)
    }

    #[test]
    fn a_second_manager_conflicts_unless_forced_and_then_owns_the_field() -> Result<(), ApiError> {
        let first = applied(&json!({}), json!({"spec": {"replicas": 2, "paused": false}}), "a", false)?;
        // Same value: no conflict, shared ownership.
        let shared = applied(&first, json!({"spec": {"paused": false}}), "b", false)?;
        let err = applied(&shared, json!({"spec": {"replicas": 3}}), "b", false).err();
        assert_eq!(err.as_ref().map(|e| e.code), Some(409));
        assert!(err.is_some_and(|e| e.message == "Apply failed with 1 conflict: conflict with \"a\": .spec.replicas"));
        let forced = applied(&shared, json!({"spec": {"replicas": 3, "paused": false}}), "b", true)?;
        assert_eq!(forced["spec"]["replicas"], 3);
        assert_eq!(owned_by(&forced, "a", "Apply"), Some(json!({"f:spec": {"f:paused": {}}})));
        // `a` stops applying `paused`: `b` still owns it, so it stays; `replicas` is b's.
        let dropped = applied(&forced, json!({"spec": {}}), "a", false)?;
        assert_eq!(dropped["spec"], json!({"replicas": 3, "paused": false}));
        let alone = applied(&dropped, json!({"spec": {"replicas": 3}}), "b", false)?;
        assert_eq!(alone["spec"], json!({"replicas": 3}));
        Ok(())
    }

    #[test]
    fn updates_take_the_fields_they_change() -> Result<(), ApiError> {
        let first = applied(&json!({}), json!({"spec": {"replicas": 2, "paused": false}}), "a", false)?;
        let mut edited = first.clone();
        edited["spec"]["replicas"] = json!(5);
        let w = Writer { manager: Some("kubectl-edit"), operation: "Update", subresource: "" };
        settle(Some(&first), None, &mut edited, Ownership::Update(w), "apps/v1");
        assert_eq!(owned_by(&edited, "kubectl-edit", "Update"), Some(json!({"f:spec": {"f:replicas": {}}})));
        let err = applied(&edited, json!({"spec": {"replicas": 2, "paused": false}}), "a", false).err();
        assert!(err.is_some_and(|e| {
            e.message.starts_with("Apply failed with 1 conflict: conflict with \"kubectl-edit\" using apps/v1 at ")
        }));
        Ok(())
    }

    #[test]
    fn list_maps_merge_by_their_keys() -> Result<(), ApiError> {
        let svc = json!({"spec": {"ports": [{"port": 53, "protocol": "UDP"}]}});
        let out = applied(&svc, json!({"spec": {"ports": [{"port": 53, "name": "dns-tcp"}]}}), "a", false)?;
        assert_eq!(out["spec"]["ports"], json!([{"port": 53, "protocol": "UDP"}, {"port": 53, "name": "dns-tcp"}]));
        Ok(())
    }
}
