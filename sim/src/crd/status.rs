//! A CRD's status as the apiextensions controllers keep it: the naming controller's
//! `acceptedNames` and `NamesAccepted`, the establishing controller's `Established`, and
//! `storedVersions`. The simulator settles them on every write of the CRD instead of
//! shortly after, so a CRD is served as soon as its create returns.

use serde_json::{Map, Value, json};

use super::spec::{CrdSpec, Names};
use crate::util;

/// Whether the `type` condition is `True`.
fn condition_true(crd: &Value, ty: &str) -> bool {
    conditions(crd).iter().any(|c| c.get("type").and_then(Value::as_str) == Some(ty) && c["status"] == "True")
}

fn conditions(crd: &Value) -> Vec<Value> {
    crd.pointer("/status/conditions").and_then(Value::as_array).cloned().unwrap_or_default()
}

pub(crate) fn is_established(crd: &Value) -> bool {
    condition_true(crd, "Established")
}

/// `status.storedVersions`: every version objects may have been stored at.
pub(crate) fn stored_versions(crd: &Value) -> Vec<String> {
    let items = crd.pointer("/status/storedVersions").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    items.iter().filter_map(|v| v.as_str().map(String::from)).collect()
}

/// Sets condition `ty` on `crd`, keeping its `lastTransitionTime` when the status does
/// not change (so a write that changes nothing settles).
pub(crate) fn set_condition(crd: &mut Value, ty: &str, status: bool, reason: &str, message: &str) {
    let status = if status { "True" } else { "False" };
    let mut list = conditions(crd);
    let since = list
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(ty) && c["status"] == status)
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(|| json!(util::now_rfc3339()));
    let cond = json!({"type": ty, "status": status, "lastTransitionTime": since, "reason": reason, "message": message});
    match list.iter_mut().find(|c| c.get("type").and_then(Value::as_str) == Some(ty)) {
        Some(c) => *c = cond,
        None => list.push(cond),
    }
    let Some(m) = crd.as_object_mut() else { return };
    let status = m.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    if let Some(s) = status.as_object_mut() {
        s.insert("conditions".into(), Value::Array(list));
    }
}

/// `want` if it is free (already ours, empty, or used by no other CRD), else `had`,
/// recording the conflict.
fn take_name(
    want: &str,
    had: &str,
    used: &[&String],
    reason: &'static str,
    conflict: &mut Option<(&'static str, String)>,
) -> String {
    if want == had || want.is_empty() || !used.iter().any(|u| *u == want) {
        return want.to_string();
    }
    *conflict = Some((reason, format!("{want:?} is already in use")));
    had.to_string()
}

/// The names a naming controller accepts for `ours`, given the names accepted for it so
/// far (`before`) and the names the other CRDs of its group hold (`taken`): each requested
/// name no other CRD uses (resource names and kinds are two namespaces), the old accepted
/// value otherwise. Names are checked plural, singular, short names, kind, list kind, and
/// the last conflict found is reported: (reason, message).
fn accept(ours: &Names, before: &Names, taken: &[Names]) -> (Names, Option<(&'static str, String)>) {
    let resource_names: Vec<&String> =
        taken.iter().flat_map(|t| [&t.plural, &t.singular].into_iter().chain(&t.short_names)).collect();
    let kinds: Vec<&String> = taken.iter().flat_map(|t| [&t.kind, &t.list_kind]).collect();
    let mut conflict = None;
    let mut out = Names {
        plural: take_name(&ours.plural, &before.plural, &resource_names, "PluralConflict", &mut conflict),
        singular: take_name(&ours.singular, &before.singular, &resource_names, "SingularConflict", &mut conflict),
        ..before.clone()
    };
    match ours.short_names.iter().find(|s| !before.short_names.contains(s) && resource_names.contains(s)) {
        Some(s) => conflict = Some(("ShortNamesConflict", format!("{s:?} is already in use"))),
        None => out.short_names = ours.short_names.clone(),
    }
    out.kind = take_name(&ours.kind, &before.kind, &kinds, "KindConflict", &mut conflict);
    out.list_kind = take_name(&ours.list_kind, &before.list_kind, &kinds, "ListKindConflict", &mut conflict);
    out.categories = ours.categories.clone();
    (out, conflict)
}

/// Settles the status of `crd` (stored before as `old`, if at all) among `others`, the
/// other CRDs of the cluster. Names another CRD of the same group already accepted are
/// refused (NamesAccepted False); a CRD that never had its names accepted is not
/// Established, so nothing is served for it. Other conditions (Terminating) are kept.
pub(crate) fn settle(crd: &mut Value, old: Option<&Value>, others: &[&Value]) {
    let spec = CrdSpec::read(crd);
    let taken: Vec<Names> = others
        .iter()
        .filter(|o| CrdSpec::read(o).group == spec.group)
        .map(|o| Names::read(o.pointer("/status/acceptedNames")))
        .collect();
    let before = Names::read(old.and_then(|o| o.pointer("/status/acceptedNames")));
    let (accepted, clash) = accept(&spec.names, &before, &taken);
    let established = clash.is_none() || old.is_some_and(is_established);
    let mut versions = old.map(stored_versions).unwrap_or_default();
    if let Some(v) = spec.storage_version().filter(|v| !versions.contains(&v.name)) {
        versions.push(v.name.clone());
    }
    let mut status = Map::new();
    status.insert("acceptedNames".into(), accepted.to_json());
    status.insert("conditions".into(), json!(old.map(conditions).unwrap_or_default()));
    status.insert("storedVersions".into(), json!(versions));
    if let Some(m) = crd.as_object_mut() {
        m.insert("status".into(), Value::Object(status));
    }
    match &clash {
        None => set_condition(crd, "NamesAccepted", true, "NoConflicts", "no conflicts found"),
        Some((reason, message)) => set_condition(crd, "NamesAccepted", false, reason, message),
    }
    if established {
        set_condition(crd, "Established", true, "InitialNamesAccepted", "the initial names have been accepted");
    } else {
        set_condition(crd, "Established", false, "NotAccepted", "not all names are accepted");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd(plural: &str, kind: &str) -> Value {
        json!({"metadata": {"name": format!("{plural}.example.com")}, "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural.trim_end_matches('s'), "kind": kind, "listKind": format!("{kind}List"), "shortNames": ["wd"]},
            "versions": [{"name": "v1", "served": true, "storage": true}]}})
    }

    fn condition(crd: &Value, ty: &str) -> (String, String) {
        let c = conditions(crd).into_iter().find(|c| c["type"] == ty).unwrap_or_default();
        (c["status"].as_str().unwrap_or("").into(), c["reason"].as_str().unwrap_or("").into())
    }

    // The naming controller accepts names no other CRD of the group has; the establishing
    // controller then establishes the CRD.
    #[test]
    fn free_names_are_accepted_and_established() {
        let mut w = crd("widgets", "Widget");
        settle(&mut w, None, &[]);
        assert_eq!(condition(&w, "NamesAccepted"), ("True".into(), "NoConflicts".into()));
        assert_eq!(condition(&w, "Established"), ("True".into(), "InitialNamesAccepted".into()));
        assert_eq!(w["status"]["acceptedNames"]["shortNames"], json!(["wd"]));
        assert_eq!(w["status"]["storedVersions"], json!(["v1"]));
        // Settling again changes nothing (transition times are kept).
        let again = w.clone();
        settle(&mut w, Some(&again), &[]);
        assert_eq!(w, again);
    }

    #[test]
    fn names_taken_in_the_group_are_refused_and_not_established() {
        let mut w = crd("widgets", "Widget");
        settle(&mut w, None, &[]);
        let mut g = crd("gadgets", "Gadget");
        settle(&mut g, None, &[&w]);
        assert_eq!(condition(&g, "NamesAccepted"), ("False".into(), "ShortNamesConflict".into()));
        assert_eq!(condition(&g, "Established"), ("False".into(), "NotAccepted".into()));
        // The free names are accepted one by one; the short name is not.
        let accepted = &g["status"]["acceptedNames"];
        assert_eq!((accepted["plural"].as_str(), accepted["kind"].as_str()), (Some("gadgets"), Some("Gadget")));
        assert!(accepted.get("shortNames").is_none(), "{accepted}");
        // The last conflict found is the one reported.
        let mut twin = crd("widgetz", "Widget");
        settle(&mut twin, None, &[&w]);
        assert_eq!(condition(&twin, "NamesAccepted"), ("False".into(), "ListKindConflict".into()));
        assert_eq!(twin["status"]["acceptedNames"]["kind"], "");
    }
}
