//! The fixed set of resource types the simulator serves.
//!
//! A static table rather than a registry: the simulator emulates a stock cluster
//! without CRDs, so the set never changes at run time and lookups stay allocation-free.

/// Index into [`RESOURCES`]; the first component of every store key.
pub(crate) type ResId = usize;

/// One served resource type (a "GVR" plus what discovery says about it).
#[derive(Debug)]
pub(crate) struct ResourceDef {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) singular: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) short_names: &'static [&'static str],
    pub(crate) categories: &'static [&'static str],
    /// Has a `/status` subresource: main-resource writes keep the old `.status`.
    pub(crate) status: bool,
    /// Has a `/scale` subresource (autoscaling/v1 Scale over `spec.replicas`).
    pub(crate) scale: bool,
    /// Dotted Go package of the type, for OpenAPI schema names (`io.k8s.api.core.v1`).
    pub(crate) schema_pkg: &'static str,
}

impl ResourceDef {
    /// `v1` for the core group, `group/version` otherwise.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_string() } else { format!("{}/{}", self.group, self.version) }
    }

    /// Kind, group and version as used in `Status.details` and OpenAPI extensions.
    pub(crate) fn gvk_json(&self) -> serde_json::Value {
        serde_json::json!({"group": self.group, "version": self.version, "kind": self.kind})
    }
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

macro_rules! res {
    ($g:expr, $v:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $cat:expr, $status:expr, $pkg:expr) => {
        res!($g, $v, $plural, $singular, $kind, $ns, $short, $cat, $status, $pkg, false)
    };
    ($g:expr, $v:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $cat:expr, $status:expr, $pkg:expr, $scale:expr) => {
        ResourceDef {
            group: $g,
            version: $v,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            status: $status,
            scale: $scale,
            schema_pkg: $pkg,
        }
    };
}

/// Every resource served, in discovery order. Indices are stable for the process lifetime.
pub(crate) static RESOURCES: &[ResourceDef] = &[
    res!("", "v1", "namespaces", "namespace", "Namespace", false, &["ns"], NONE, true, "io.k8s.api.core.v1"),
    res!("", "v1", "services", "service", "Service", true, &["svc"], ALL, true, "io.k8s.api.core.v1"),
    res!("", "v1", "endpoints", "endpoints", "Endpoints", true, &["ep"], NONE, false, "io.k8s.api.core.v1"),
    res!("", "v1", "configmaps", "configmap", "ConfigMap", true, &["cm"], NONE, false, "io.k8s.api.core.v1"),
    res!("", "v1", "secrets", "secret", "Secret", true, NONE, NONE, false, "io.k8s.api.core.v1"),
    res!("", "v1", "events", "event", "Event", true, &["ev"], NONE, false, "io.k8s.api.core.v1"),
    res!("", "v1", "nodes", "node", "Node", false, &["no"], NONE, true, "io.k8s.api.core.v1"),
    res!("", "v1", "pods", "pod", "Pod", true, &["po"], ALL, true, "io.k8s.api.core.v1"),
    res!(
        "",
        "v1",
        "serviceaccounts",
        "serviceaccount",
        "ServiceAccount",
        true,
        &["sa"],
        NONE,
        false,
        "io.k8s.api.core.v1"
    ),
    res!(
        "apps",
        "v1",
        "deployments",
        "deployment",
        "Deployment",
        true,
        &["deploy"],
        ALL,
        true,
        "io.k8s.api.apps.v1",
        true
    ),
    res!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, &["rs"], ALL, true, "io.k8s.api.apps.v1", true),
    res!("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, &["ds"], ALL, true, "io.k8s.api.apps.v1"),
    res!(
        "networking.k8s.io",
        "v1",
        "ingresses",
        "ingress",
        "Ingress",
        true,
        &["ing"],
        NONE,
        true,
        "io.k8s.api.networking.v1"
    ),
    res!(
        "discovery.k8s.io",
        "v1",
        "endpointslices",
        "endpointslice",
        "EndpointSlice",
        true,
        NONE,
        NONE,
        false,
        "io.k8s.api.discovery.v1"
    ),
    res!(
        "coordination.k8s.io",
        "v1",
        "leases",
        "lease",
        "Lease",
        true,
        NONE,
        NONE,
        false,
        "io.k8s.api.coordination.v1"
    ),
    res!("events.k8s.io", "v1", "events", "event", "Event", true, &["ev"], NONE, false, "io.k8s.api.events.v1"),
    res!(
        "multicluster.x-k8s.io",
        "v1alpha1",
        "serviceexports",
        "serviceexport",
        "ServiceExport",
        true,
        &["svcex"],
        NONE,
        true,
        "io.x-k8s.multicluster.v1alpha1"
    ),
    res!(
        "apps",
        "v1",
        "statefulsets",
        "statefulset",
        "StatefulSet",
        true,
        &["sts"],
        ALL,
        true,
        "io.k8s.api.apps.v1",
        true
    ),
];

/// Well-known indices, checked against the table by a unit test.
pub(crate) const NAMESPACES: ResId = 0;
pub(crate) const SERVICES: ResId = 1;
pub(crate) const ENDPOINTS: ResId = 2;
pub(crate) const NODES: ResId = 6;
pub(crate) const DEPLOYMENTS: ResId = 9;
pub(crate) const REPLICASETS: ResId = 10;
pub(crate) const DAEMONSETS: ResId = 11;
pub(crate) const INGRESSES: ResId = 12;
pub(crate) const ENDPOINTSLICES: ResId = 13;
pub(crate) const SECRETS: ResId = 4;
pub(crate) const STATEFULSETS: ResId = 17;

pub(crate) fn def(id: ResId) -> &'static ResourceDef {
    // Ids only come from this module's lookups, so they are always in range;
    // fall back to the first entry rather than panic.
    RESOURCES.get(id).unwrap_or(&RESOURCES[0])
}

/// Finds a resource by group, version and plural (from a URL).
pub(crate) fn by_plural(group: &str, version: &str, plural: &str) -> Option<ResId> {
    RESOURCES.iter().position(|r| r.group == group && r.version == version && r.plural == plural)
}

/// Finds a resource by `apiVersion` and `kind` (from an object body).
pub(crate) fn by_kind(api_version: &str, kind: &str) -> Option<ResId> {
    let (group, version) = split_api_version(api_version);
    RESOURCES.iter().position(|r| r.group == group && r.version == version && r.kind == kind)
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

/// Distinct (group, version) pairs in table order.
pub(crate) fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_indices_match_the_table() {
        assert_eq!(def(NAMESPACES).plural, "namespaces");
        assert_eq!(def(SERVICES).plural, "services");
        assert_eq!(def(ENDPOINTS).plural, "endpoints");
        assert_eq!(def(NODES).plural, "nodes");
        assert_eq!(def(DEPLOYMENTS).plural, "deployments");
        assert_eq!(def(REPLICASETS).plural, "replicasets");
        assert_eq!(def(DAEMONSETS).plural, "daemonsets");
        assert_eq!(def(INGRESSES).plural, "ingresses");
        assert_eq!(def(ENDPOINTSLICES).plural, "endpointslices");
        assert_eq!(def(SECRETS).plural, "secrets");
        assert_eq!(def(STATEFULSETS).plural, "statefulsets");
    }

    #[test]
    fn lookups_by_kind_and_plural_agree() {
        assert_eq!(by_kind("apps/v1", "Deployment"), by_plural("apps", "v1", "deployments"));
        assert_eq!(by_kind("v1", "Service"), Some(SERVICES));
        assert_eq!(by_kind("v2", "Service"), None);
    }
}
