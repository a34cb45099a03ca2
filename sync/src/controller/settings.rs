//! The part of the configuration the controller reads; swapped whole on reload.

use std::collections::BTreeMap;
use std::time::Duration;

use meridian_config::Config;

use crate::kinds::{self, Builtin};
use crate::queue::ObjKey;

/// The namespace every Kubernetes cluster is created with.
pub(super) const BUILT_IN_NAMESPACE: &str = "default";

/// The controller's settings, read once per reconcile so that a reload mid-way does not
/// mix old and new values.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Namespaces whose objects are not federated.
    exclude: Vec<String>,
    /// Whether a member object of the same name that Meridian did not create is taken over.
    pub(super) adopt: bool,
    pub(crate) resync: Duration,
    /// How long a deletion waits for members that block it before releasing the finalizer.
    pub(super) deletion_timeout: Duration,
    /// Longest backoff of a failed reconcile and of a shut gate's probes.
    pub(super) retry_max: Duration,
    /// Deadline of every request to a member or the control plane.
    pub(super) request_timeout: Duration,
    /// The control-plane namespace of sync's own state (the Lease's): the records of
    /// left-over copies.
    pub(super) state_namespace: String,
    /// Member labels from the configuration, for placement selectors.
    pub(super) labels: BTreeMap<String, BTreeMap<String, String>>,
}

impl Settings {
    pub(crate) fn from_config(c: &Config) -> Self {
        Self {
            exclude: c.sync.exclude_namespaces.clone(),
            adopt: c.sync.adopt,
            resync: c.sync.resync_interval.as_std(),
            deletion_timeout: c.sync.deletion_timeout.as_std(),
            retry_max: c.sync.retry_max.as_std(),
            request_timeout: c.sync.request_timeout.as_std(),
            state_namespace: c.sync.lease_namespace.clone(),
            labels: c.clusters.iter().map(|cl| (cl.name.clone(), cl.labels.clone())).collect(),
        }
    }

    /// Objects that are not federated: those of excluded namespaces, the `default`
    /// Namespace object itself, which every cluster has from birth and nobody manages
    /// (objects inside `default` are federated as usual), and the objects each cluster's
    /// own control plane makes ([`cluster_owned`]).
    pub(super) fn excluded(&self, key: &ObjKey) -> bool {
        if key.kind == kinds::NAMESPACE && key.name == BUILT_IN_NAMESPACE || cluster_owned(key) {
            return true;
        }
        let ns = if key.kind == kinds::NAMESPACE { &key.name } else { &key.namespace };
        self.exclude.iter().any(|e| e == ns)
    }
}

/// Objects of the synced kinds that every cluster's own control plane creates and keeps
/// for itself: the `kube-root-ca.crt` ConfigMap of each namespace (published by
/// kube-controller-manager with that cluster's CA) and the `default/kubernetes` Service
/// (kube-apiserver's own). A member has its own; a copy would replace its CA bundle or
/// its API Service with the control plane's. Of the types a configuration may add: the
/// `default` ServiceAccount of each namespace (made by each cluster's service-account
/// controller) and the RBAC objects named `system:…` (each API server bootstraps its own).
fn cluster_owned(key: &ObjKey) -> bool {
    let kind = kinds::get(key.kind);
    match (kind.builtin, kind.group, kind.kind) {
        (Some(Builtin::ConfigMap), ..) => key.name == "kube-root-ca.crt",
        (Some(Builtin::Service), ..) => key.namespace == BUILT_IN_NAMESPACE && key.name == "kubernetes",
        (None, "", "ServiceAccount") => key.name == "default",
        (None, "rbac.authorization.k8s.io", "Role" | "RoleBinding" | "ClusterRole" | "ClusterRoleBinding") => {
            key.name.starts_with("system:")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What each cluster makes for itself is never federated; look-alikes elsewhere are.
    #[test]
    fn objects_a_cluster_makes_for_itself_are_not_federated() {
        let settings = Settings::from_config(&meridian_config::Config::demo());
        let key = |kind: &str, ns: &str, name: &str| ObjKey {
            kind: kinds::by_name(kind).unwrap_or(kinds::NAMESPACE),
            namespace: ns.into(),
            name: name.into(),
        };
        let cases = [
            (key("ConfigMap", "shop", "kube-root-ca.crt"), true),
            (key("ConfigMap", "default", "kube-root-ca.crt"), true),
            (key("Service", "default", "kubernetes"), true),
            (key("Namespace", "", "default"), true),
            (key("Service", "shop", "kubernetes"), false),
            (key("ConfigMap", "shop", "settings"), false),
            (key("Secret", "shop", "kube-root-ca.crt"), false),
        ];
        for (k, want) in cases {
            assert_eq!(settings.excluded(&k), want, "{k:?}");
        }
    }
}
