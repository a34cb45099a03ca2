//! The part of the configuration the controller reads; swapped whole on reload.

use std::collections::BTreeMap;
use std::time::Duration;

use meridian_config::Config;

use crate::kinds;
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
            labels: c.clusters.iter().map(|cl| (cl.name.clone(), cl.labels.clone())).collect(),
        }
    }

    /// Objects that are not federated: those of excluded namespaces, and the `default`
    /// Namespace object itself, which every cluster has from birth and nobody manages
    /// (objects inside `default` are federated as usual).
    pub(super) fn excluded(&self, key: &ObjKey) -> bool {
        if key.kind == kinds::NAMESPACE && key.name == BUILT_IN_NAMESPACE {
            return true;
        }
        let ns = if key.kind == kinds::NAMESPACE { &key.name } else { &key.namespace };
        self.exclude.iter().any(|e| e == ns)
    }
}
