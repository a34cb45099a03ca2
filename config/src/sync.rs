//! `[sync]`: resource propagation from the control-plane cluster to the members.

use serde::{Deserialize, Serialize};

use crate::{ClusterConfig, Config};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Run the sync module at all.
    pub enabled: bool,
    /// The control-plane cluster whose objects are propagated. It is not a member: it
    /// holds the templates, not a shard of any service.
    pub host: Option<ClusterConfig>,
}

impl SyncConfig {
    pub(crate) fn validate(&self, config: &Config) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if self.enabled && self.host.is_none() {
            out.push(("sync.host".into(), "sync.enabled = true needs a [sync.host] control-plane cluster".into()));
        }
        if let Some(h) = &self.host {
            if !crate::is_dns_label(&h.name) {
                out.push(("sync.host.name".into(), format!("cluster name {:?} must be a DNS label", h.name)));
            }
            if config.cluster(&h.name).is_some() {
                out.push((
                    "sync.host.name".into(),
                    format!("{:?} is also a member cluster; the control plane needs its own name", h.name),
                ));
            }
            if h.simulated == h.kubeconfig.is_some() {
                out.push((
                    "sync.host.kubeconfig".into(),
                    "the control plane needs `kubeconfig` or `simulated = true` (one of them)".into(),
                ));
            }
        }
        out
    }
}
