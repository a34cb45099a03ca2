//! `[[sync.extra_kinds]]`: types federated beyond the default set, named by group,
//! version and kind as in a manifest's `apiVersion` and `kind`.

use serde::{Deserialize, Serialize};

/// The types sync federates without configuration, as (API group, kind). Sync's own
/// table of types matches this list (a test there checks it).
pub const DEFAULT_KINDS: &[(&str, &str)] = &[
    ("", "Namespace"),
    ("", "ConfigMap"),
    ("", "Secret"),
    ("", "Service"),
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "DaemonSet"),
    ("networking.k8s.io", "Ingress"),
];

/// Types no configuration may federate, with the reason: each cluster makes and keeps
/// its own, so a copy would fight that cluster's controllers (or sync's own Lease).
const REFUSED_KINDS: &[(&str, &str, &str)] = &[
    ("", "Event", "Events are written by each cluster about its own objects (sync records its own)"),
    ("events.k8s.io", "Event", "Events are written by each cluster about its own objects (sync records its own)"),
    ("coordination.k8s.io", "Lease", "Leases elect leaders inside one cluster (sync's own Lease among them)"),
    ("", "Endpoints", "each cluster's endpoints controller writes them from its own Pods"),
    ("discovery.k8s.io", "EndpointSlice", "each cluster's EndpointSlice controller writes them from its own Pods"),
    ("", "Node", "Nodes are a cluster's own machines"),
];

/// One extra federated type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraKind {
    /// API group; empty (the default) for the core group (`v1` objects).
    #[serde(default)]
    pub group: String,
    /// API version served by the control plane and the members (`v1`, `v2`, `v1beta1`).
    pub version: String,
    /// Kind, as in a manifest (`ServiceAccount`, `HorizontalPodAutoscaler`).
    pub kind: String,
    /// Resource name in URLs; derived from the kind as Kubernetes does when absent
    /// (`Role` → `roles`, `NetworkPolicy` → `networkpolicies`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plural: Option<String>,
    /// Whether objects live in namespaces (`Role`) or not (`ClusterRole`).
    #[serde(default = "yes")]
    pub namespaced: bool,
}

fn yes() -> bool {
    true
}

impl ExtraKind {
    /// `group/version`, or `version` for the core group, as in `apiVersion`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }
}

/// Problems of `[[sync.extra_kinds]]`, as (field path, message).
pub(crate) fn validate(kinds: &[ExtraKind]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let at = |field: &str| format!("sync.extra_kinds[{i}].{field}");
        if !k.group.is_empty() && !is_group(&k.group) {
            out.push((
                at("group"),
                format!("{:?} is not an API group (a DNS subdomain such as rbac.authorization.k8s.io)", k.group),
            ));
        }
        if !is_version(&k.version) {
            out.push((at("version"), format!("{:?} is not an API version (v1, v2, v1beta1)", k.version)));
        }
        if !is_kind(&k.kind) {
            out.push((at("kind"), format!("{:?} is not a kind (letters and digits, starting with a capital)", k.kind)));
        }
        if let Some(p) = &k.plural
            && !(crate::is_dns_label(p) && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        {
            out.push((at("plural"), format!("{p:?} is not a resource name (lower-case letters and digits)")));
        }
        if let Some(problem) = conflict(kinds, i) {
            out.push((at("kind"), problem));
        }
    }
    out
}

/// Why the `i`th extra kind may not be federated as configured, if it may not.
fn conflict(kinds: &[ExtraKind], i: usize) -> Option<String> {
    let k = kinds.get(i)?;
    let same = |g: &str, kind: &str| g == k.group && kind == k.kind;
    if DEFAULT_KINDS.iter().any(|(g, kind)| same(g, kind)) {
        return Some(format!("{} {} is federated already (one of the default types)", k.api_version(), k.kind));
    }
    if let Some((_, _, why)) = REFUSED_KINDS.iter().find(|(g, kind, _)| same(g, kind)) {
        return Some(format!("{} {} cannot be federated: {why}", k.api_version(), k.kind));
    }
    let first = kinds.iter().position(|o| same(&o.group, &o.kind))?;
    (first < i).then(|| format!("{} (group {:?}) is listed twice, as extra_kinds[{first}] too", k.kind, k.group))
}

/// A DNS subdomain: dot-separated DNS labels.
fn is_group(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(crate::is_dns_label)
}

/// `v` and a number, optionally `alpha`/`beta` and a number (Kubernetes' version form).
fn is_version(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('v') else { return false };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (major, tail) = rest.split_at(digits);
    if major.is_empty() || major.starts_with('0') {
        return false;
    }
    let tail = tail.strip_prefix("alpha").or_else(|| tail.strip_prefix("beta")).map_or(Some(tail), |t| {
        (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) && !t.starts_with('0')).then_some("")
    });
    tail == Some("")
}

fn is_kind(s: &str) -> bool {
    s.len() <= 63
        && s.bytes().next().is_some_and(|b| b.is_ascii_uppercase())
        && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extra(group: &str, version: &str, kind: &str) -> ExtraKind {
        ExtraKind { group: group.into(), version: version.into(), kind: kind.into(), plural: None, namespaced: true }
    }

    #[test]
    fn versions_follow_kubernetes_form() {
        for ok in ["v1", "v2", "v10", "v1beta1", "v2alpha3"] {
            assert!(is_version(ok), "{ok}");
        }
        for bad in ["", "1", "v", "v0", "v01", "v1beta", "v1gamma1", "v1beta0", "V1", "v1 "] {
            assert!(!is_version(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_refused_and_duplicates_are_named() {
        let kinds = [
            extra("", "v1", "ServiceAccount"),
            extra("apps", "v1", "Deployment"),
            extra("coordination.k8s.io", "v1", "Lease"),
            extra("", "v1", "ServiceAccount"),
            // Another group's kind of a default type's name is a different type.
            extra("serving.knative.dev", "v1", "Service"),
        ];
        let problems = validate(&kinds);
        let paths: Vec<&str> = problems.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["sync.extra_kinds[1].kind", "sync.extra_kinds[2].kind", "sync.extra_kinds[3].kind"]);
        assert!(problems[0].1.contains("default types"), "{problems:?}");
        assert!(problems[1].1.contains("Lease"), "{problems:?}");
        assert!(problems[2].1.contains("extra_kinds[0]"), "{problems:?}");
    }

    #[test]
    fn malformed_fields_are_reported_by_path() {
        let mut k = extra("Bad_Group", "1", "role");
        k.plural = Some("Roles".into());
        let paths: Vec<String> = validate(&[k]).into_iter().map(|(p, _)| p).collect();
        for field in ["group", "version", "kind", "plural"] {
            assert!(paths.contains(&format!("sync.extra_kinds[0].{field}")), "{field}: {paths:?}");
        }
    }
}
