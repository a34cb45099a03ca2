//! `[sync]`: resource propagation from the control-plane cluster to the members.

use serde::{Deserialize, Serialize};

use crate::{ClusterConfig, Config, Duration};

mod kinds;

pub use kinds::{DEFAULT_KINDS, ExtraKind};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyncConfig {
    /// Run the sync module at all.
    pub enabled: bool,
    /// The control-plane cluster whose objects are propagated. It is not a member: it
    /// holds the templates, not a shard of any service.
    pub host: Option<ClusterConfig>,
    /// Control-plane namespaces whose objects (and the Namespace objects themselves) are
    /// never federated: the system namespaces hold the cluster's own machinery.
    pub exclude_namespaces: Vec<String>,
    /// Take over member objects of the same name that Meridian did not create. Off by
    /// default: overwriting someone else's object is the one mistake sync cannot undo.
    pub adopt: bool,
    /// Every object is reconciled at least this often even without watch events, as a
    /// safety net for missed events and for clusters that come back.
    pub resync_interval: Duration,
    /// How long a cascading delete waits for an Offline or removed member before the
    /// control-plane object is released and the member's copy reported as left over.
    pub deletion_timeout: Duration,
    /// Namespace of the leader-election Lease `meridian-sync` in the control plane.
    pub lease_namespace: String,
    /// How long a leader's Lease stays valid without renewal; a follower takes over
    /// after this much silence.
    pub lease_duration: Duration,
    /// This replica's identity in the Lease; host name and a random suffix when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Upper bound of the retry backoff after a failed apply or delete in a member, and
    /// of the interval between probes of a member that stopped answering.
    pub retry_max: Duration,
    /// Deadline of every request sync sends to a member or to the control plane (reads,
    /// applies, deletes, status writes, Events, the Lease). A member whose request gets no
    /// answer in time is skipped by every reconcile until a probe gets an answer, so one
    /// silent member never holds up the others.
    pub request_timeout: Duration,
    /// Types federated beyond [`DEFAULT_KINDS`] (ServiceAccounts, Roles, HPAs, custom
    /// resources), with the same placement, override and deletion rules.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_kinds: Vec<ExtraKind>,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            host: None,
            exclude_namespaces: vec!["kube-system".into(), "kube-public".into(), "kube-node-lease".into()],
            adopt: false,
            resync_interval: Duration::from_secs(30),
            deletion_timeout: Duration::from_secs(300),
            lease_namespace: "kube-system".into(),
            lease_duration: Duration::from_secs(15),
            identity: None,
            retry_max: Duration::from_secs(60),
            // A healthy API server answers a get or a server-side apply in milliseconds, a
            // distant or busy one in well under a second; 10 s is ten times a slow answer,
            // and still short against the 5 min deletion timeout and the 30 s resync.
            request_timeout: Duration::from_secs(10),
            extra_kinds: Vec::new(),
        }
    }
}

impl SyncConfig {
    /// True when objects of `namespace` (or the Namespace object of that name) are not
    /// federated.
    pub fn is_excluded(&self, namespace: &str) -> bool {
        self.exclude_namespaces.iter().any(|n| n == namespace)
    }

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
            if [h.simulated, h.kubeconfig.is_some(), h.in_cluster].iter().filter(|set| **set).count() != 1 {
                out.push((
                    "sync.host.kubeconfig".into(),
                    "the control plane needs `kubeconfig`, `in_cluster = true` or `simulated = true` (one of them)"
                        .into(),
                ));
            }
        }
        for (i, ns) in self.exclude_namespaces.iter().enumerate() {
            if !crate::is_dns_label(ns) {
                out.push((format!("sync.exclude_namespaces[{i}]"), format!("{ns:?} is not a namespace name")));
            }
        }
        if !crate::is_dns_label(&self.lease_namespace) {
            out.push(("sync.lease_namespace".into(), format!("{:?} is not a namespace name", self.lease_namespace)));
        }
        if self.lease_duration.as_std() < std::time::Duration::from_secs(1) {
            out.push(("sync.lease_duration".into(), "lease_duration must be at least 1s".into()));
        }
        if self.resync_interval.as_std() < std::time::Duration::from_millis(100) {
            out.push(("sync.resync_interval".into(), "resync_interval must be at least 100ms".into()));
        }
        if self.deletion_timeout.is_zero() {
            out.push(("sync.deletion_timeout".into(), "deletion_timeout must be above zero".into()));
        }
        if self.retry_max.as_std() < std::time::Duration::from_millis(100) {
            out.push(("sync.retry_max".into(), "retry_max must be at least 100ms".into()));
        }
        if self.request_timeout.as_std() < std::time::Duration::from_millis(100) {
            out.push(("sync.request_timeout".into(), "request_timeout must be at least 100ms".into()));
        }
        if let Some(id) = &self.identity
            && (id.is_empty() || id.len() > 128)
        {
            out.push(("sync.identity".into(), "identity must be 1 to 128 characters".into()));
        }
        out.extend(kinds::validate(&self.extra_kinds));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Field paths of the problems in a config whose `[sync]` section has `extra` lines.
    fn with_sync(extra: &str) -> Vec<String> {
        let text = format!(
            "name = \"f\"\ndns_zone = \"example.com\"\n[[clusters]]\nname = \"m1\"\nsimulated = true\n[sync]\nenabled = true\n{extra}\n[sync.host]\nname = \"host\"\nsimulated = true\n"
        );
        match Config::parse(&text, std::path::Path::new("t.toml"), std::path::Path::new(".")) {
            Ok(_) => Vec::new(),
            Err(e) => e.0.into_iter().map(|e| e.path).collect(),
        }
    }

    #[test]
    fn defaults_exclude_system_namespaces_and_validate() {
        let c = SyncConfig::default();
        assert!(c.is_excluded("kube-system") && c.is_excluded("kube-node-lease") && !c.is_excluded("default"));
        assert_eq!(c.request_timeout, Duration::from_secs(10));
        assert!(with_sync("").is_empty());
    }

    #[test]
    fn bad_sync_fields_are_reported_with_their_path() {
        let cases = [
            ("exclude_namespaces = [\"Bad_NS\"]", "sync.exclude_namespaces[0]"),
            ("lease_duration = \"100ms\"", "sync.lease_duration"),
            ("deletion_timeout = \"0s\"", "sync.deletion_timeout"),
            ("lease_namespace = \"\"", "sync.lease_namespace"),
            ("identity = \"\"", "sync.identity"),
            ("request_timeout = \"50ms\"", "sync.request_timeout"),
            ("request_timeout = \"0s\"", "sync.request_timeout"),
            ("extra_kinds = [{version = \"v1\", kind = \"Endpoints\"}]", "sync.extra_kinds[0].kind"),
            ("extra_kinds = [{version = \"v1\", kind = \"Role\", scope = \"x\"}]", "sync.extra_kinds"),
        ];
        for (line, path) in cases {
            let errs = with_sync(line);
            assert!(errs.iter().any(|e| e == path), "{line}: {errs:?}");
        }
    }
}
