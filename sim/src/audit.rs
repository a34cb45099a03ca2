//! What clients asked of a cluster, as RBAC names it: one entry per (verb, API group,
//! resource or `resource/subresource`) seen, as kube-apiserver's authorizer would have
//! checked it. A test compares the set with the ClusterRoles Meridian ships, so the
//! roles grant exactly what the code calls.

use std::collections::BTreeSet;

use http::Method;
use parking_lot::Mutex;

use crate::api::Sub;

/// One request as an authorisation attribute: `verb`, `group` (empty for the core
/// group), `resource` (with `/status`, `/scale` or `/finalize` for a subresource), and
/// the client that asked: its User-Agent up to the first `/` (`kubectl`, `kube-rs`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Access {
    pub client: String,
    pub verb: String,
    pub group: String,
    pub resource: String,
}

/// The accesses seen since the cluster started.
#[derive(Debug, Default)]
pub(crate) struct Audit(Mutex<BTreeSet<Access>>);

impl Audit {
    /// Records a resource request: `named` when the path names one object, `watch` when
    /// it asks for a watch (the `?watch=true` parameter or the `/watch/` prefix).
    pub(crate) fn record(&self, client: &str, method: &Method, target: (&str, &str, Sub), named: bool, watch: bool) {
        let (group, plural, sub) = target;
        let verb = match (method.as_str(), named, watch) {
            ("GET", _, true) => "watch",
            ("GET", true, false) => "get",
            ("GET", false, false) => "list",
            ("POST", ..) => "create",
            ("PUT", ..) => "update",
            ("PATCH", ..) => "patch",
            ("DELETE", true, _) => "delete",
            ("DELETE", false, _) => "deletecollection",
            _ => return,
        };
        let resource = match sub {
            Sub::Main => plural.to_owned(),
            Sub::Status => format!("{plural}/status"),
            Sub::Finalize => format!("{plural}/finalize"),
            Sub::Scale => format!("{plural}/scale"),
        };
        let client = client.split('/').next().unwrap_or_default().to_owned();
        self.0.lock().insert(Access { client, verb: verb.to_owned(), group: group.to_owned(), resource });
    }

    pub(crate) fn seen(&self) -> Vec<Access> {
        self.0.lock().iter().cloned().collect()
    }
}
