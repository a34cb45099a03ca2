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

/// The Namespace type, also what [`get`] falls back to (which no id ever needs).
const NAMESPACE_KIND: Kind = kind("", "Namespace", "namespaces", false, Workload::None);

/// Namespaces first: a member needs the namespace before anything inside it.
pub(crate) static KINDS: &[Kind] = &[
    NAMESPACE_KIND,
    kind("", "ConfigMap", "configmaps", true, Workload::None),
    kind("", "Secret", "secrets", true, Workload::None),
    kind("", "Service", "services", true, Workload::None),
    kind("apps", "Deployment", "deployments", true, Workload::Replicated),
    kind("apps", "ReplicaSet", "replicasets", true, Workload::Replicated),
    kind("apps", "DaemonSet", "daemonsets", true, Workload::Daemon),
    kind("networking.k8s.io", "Ingress", "ingresses", true, Workload::None),
];

/// A federated type, named by its position in [`KINDS`]. Ids are made only here, from
/// that list, so every id names a type; their order is the list's, Namespaces first,
/// which is the order a full resync queues objects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct KindId(usize);

/// The id of Namespace.
pub(crate) const NAMESPACE: KindId = KindId(0);

/// The type an id names.
pub(crate) fn get(id: KindId) -> &'static Kind {
    KINDS.get(id.0).unwrap_or(&NAMESPACE_KIND)
}

/// Every federated type with its id, in the order of [`KINDS`].
pub(crate) fn all() -> impl Iterator<Item = (KindId, &'static Kind)> {
    KINDS.iter().enumerate().map(|(i, k)| (KindId(i), k))
}

/// Looks a type up by its kind name (`Deployment`).
#[cfg(test)]
pub(crate) fn by_name(name: &str) -> Option<KindId> {
    KINDS.iter().position(|k| k.kind.eq_ignore_ascii_case(name)).map(KindId)
}
