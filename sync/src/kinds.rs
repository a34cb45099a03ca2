//! The federated resource types: exactly the seed's list (Events are written, not synced).

use kube::api::{ApiResource, GroupVersionKind};

/// How a type's replicas and status are handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    /// Not a workload: no replicas to plan, no status to aggregate.
    None,
    /// `spec.replicas` comes from the planner; status counts are summed.
    Replicated,
    /// One pod per node: status counts are summed, nothing is planned.
    Daemon,
}

/// One federated type.
#[derive(Debug)]
pub(crate) struct Kind {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) workload: Workload,
}

impl Kind {
    pub(crate) fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(self.group, self.version, self.kind), self.plural)
    }
}

const fn kind(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    namespaced: bool,
    workload: Workload,
) -> Kind {
    Kind { group, version: "v1", kind, plural, namespaced, workload }
}

/// Namespaces first: a member needs the namespace before anything inside it.
pub(crate) static KINDS: &[Kind] = &[
    kind("", "Namespace", "namespaces", false, Workload::None),
    kind("", "ConfigMap", "configmaps", true, Workload::None),
    kind("", "Secret", "secrets", true, Workload::None),
    kind("", "Service", "services", true, Workload::None),
    kind("apps", "Deployment", "deployments", true, Workload::Replicated),
    kind("apps", "ReplicaSet", "replicasets", true, Workload::Replicated),
    kind("apps", "DaemonSet", "daemonsets", true, Workload::Daemon),
    kind("networking.k8s.io", "Ingress", "ingresses", true, Workload::None),
];

/// Index of Namespace in [`KINDS`].
pub(crate) const NAMESPACE: usize = 0;

/// Looks a type up by index; indices only come from [`KINDS`] itself.
pub(crate) fn get(index: usize) -> &'static Kind {
    KINDS.get(index).unwrap_or(&KINDS[NAMESPACE])
}

/// Looks a type up by its kind name (`Deployment`).
#[cfg(test)]
pub(crate) fn by_name(name: &str) -> Option<usize> {
    KINDS.iter().position(|k| k.kind.eq_ignore_ascii_case(name))
}
