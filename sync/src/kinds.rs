//! The federated resource types: the seed's list (Events are written, not synced), and
//! the extra types a configuration names (`[[sync.extra_kinds]]`).
//!
//! A type is named by a [`KindId`], an index into one process-wide table that only
//! grows: the default types take the first ids, in the order of [`DEFAULTS`], and an
//! extra type gets the next free id the first time some configuration names it (the same
//! type named again gets the same id). Types are never removed from the table, so an id
//! stays valid whatever the configuration does later; each [`ResourceSync`] federates
//! its own [`KindSet`] of them. The table holds one small entry per distinct type ever
//! configured in the process, which a reload cannot grow without bound in practice.
//!
//! [`ResourceSync`]: crate::ResourceSync

use std::sync::LazyLock;

use kube::api::{ApiResource, GroupVersionKind};
use meridian_config::sync::ExtraKind;
use parking_lot::RwLock;

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

/// The default types whose handling differs from the generic one. Code asks this, never
/// a kind's name: an extra type may share a name with a default one (Knative's
/// `serving.knative.dev` Service is not a Service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Builtin {
    Namespace,
    ConfigMap,
    Secret,
    Service,
    Deployment,
    ReplicaSet,
    DaemonSet,
    Ingress,
}

/// One federated type.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Kind {
    pub(crate) group: &'static str,
    pub(crate) version: &'static str,
    pub(crate) kind: &'static str,
    pub(crate) plural: &'static str,
    pub(crate) namespaced: bool,
    pub(crate) workload: Workload,
    /// Which default type this is; `None` for a configured one.
    pub(crate) builtin: Option<Builtin>,
}

impl Kind {
    pub(crate) fn api_resource(&self) -> ApiResource {
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(self.group, self.version, self.kind), self.plural)
    }

    /// `group/version`, or `version` for the core group, as in `apiVersion`.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.to_owned() } else { format!("{}/{}", self.group, self.version) }
    }

    pub(crate) fn is(&self, b: Builtin) -> bool {
        self.builtin == Some(b)
    }
}

const fn builtin(
    group: &'static str,
    kind: &'static str,
    plural: &'static str,
    b: Builtin,
    workload: Workload,
) -> Kind {
    let namespaced = !matches!(b, Builtin::Namespace);
    Kind { group, version: "v1", kind, plural, namespaced, workload, builtin: Some(b) }
}

/// What [`get`] falls back to, which no id ever needs (ids are made from the table).
static NAMESPACE_KIND: Kind = builtin("", "Namespace", "namespaces", Builtin::Namespace, Workload::None);

/// The default types, Namespaces first: a member needs the namespace before anything
/// inside it. Their ids are their positions here.
pub(crate) static DEFAULTS: &[Kind] = &[
    builtin("", "Namespace", "namespaces", Builtin::Namespace, Workload::None),
    builtin("", "ConfigMap", "configmaps", Builtin::ConfigMap, Workload::None),
    builtin("", "Secret", "secrets", Builtin::Secret, Workload::None),
    builtin("", "Service", "services", Builtin::Service, Workload::None),
    builtin("apps", "Deployment", "deployments", Builtin::Deployment, Workload::Replicated),
    builtin("apps", "ReplicaSet", "replicasets", Builtin::ReplicaSet, Workload::Replicated),
    builtin("apps", "DaemonSet", "daemonsets", Builtin::DaemonSet, Workload::Daemon),
    builtin("networking.k8s.io", "Ingress", "ingresses", Builtin::Ingress, Workload::None),
];

/// Every type any configuration of this process named: the defaults, then extras in
/// the order they were first configured.
static TABLE: LazyLock<RwLock<Vec<&'static Kind>>> = LazyLock::new(|| RwLock::new(DEFAULTS.iter().collect()));

/// A federated type, named by its position in the process's table of types. Ids are
/// made only here, so every id names a type; they order as the table does, Namespaces
/// first, which is the order a full resync queues objects in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct KindId(usize);

/// The id of Namespace.
pub(crate) const NAMESPACE: KindId = KindId(0);
/// The id of ConfigMap.
pub(crate) const CONFIG_MAP: KindId = KindId(1);

/// The type an id names.
pub(crate) fn get(id: KindId) -> &'static Kind {
    TABLE.read().get(id.0).copied().unwrap_or(&NAMESPACE_KIND)
}

/// The id of a configured extra type, adding it to the table the first time.
fn intern(extra: &ExtraKind) -> KindId {
    let plural = extra.plural.clone().unwrap_or_else(|| {
        ApiResource::from_gvk(&GroupVersionKind::gvk(&extra.group, &extra.version, &extra.kind)).plural
    });
    let same = |k: &Kind| {
        k.builtin.is_none()
            && k.group == extra.group
            && k.version == extra.version
            && k.kind == extra.kind
            && k.plural == plural
            && k.namespaced == extra.namespaced
    };
    let mut table = TABLE.write();
    if let Some(i) = table.iter().position(|k| same(k)) {
        return KindId(i);
    }
    // Leaked once per distinct type per process (see the module comment).
    let kind: &'static Kind = Box::leak(Box::new(Kind {
        group: leak(&extra.group),
        version: leak(&extra.version),
        kind: leak(&extra.kind),
        plural: leak(&plural),
        namespaced: extra.namespaced,
        workload: Workload::None,
        builtin: None,
    }));
    table.push(kind);
    KindId(table.len() - 1)
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// The types one sync federates: the defaults, then the configured extras, in id order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KindSet(Vec<KindId>);

impl KindSet {
    pub(crate) fn from_config(extras: &[ExtraKind]) -> Self {
        let mut ids: Vec<KindId> = (0..DEFAULTS.len()).map(KindId).collect();
        ids.extend(extras.iter().map(intern));
        ids.sort();
        ids.dedup();
        Self(ids)
    }

    /// Every type with its id, Namespaces first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (KindId, &'static Kind)> + '_ {
        self.0.iter().map(|&id| (id, get(id)))
    }

    /// The federated type of this `apiVersion` and kind.
    pub(crate) fn find(&self, api_version: &str, kind: &str) -> Option<(KindId, &'static Kind)> {
        self.iter().find(|(_, k)| k.kind == kind && k.api_version() == api_version)
    }

    pub(crate) fn contains(&self, id: KindId) -> bool {
        self.0.binary_search(&id).is_ok()
    }
}

/// Looks a default type up by its kind name (`Deployment`).
#[cfg(test)]
pub(crate) fn by_name(name: &str) -> Option<KindId> {
    DEFAULTS.iter().position(|k| k.kind.eq_ignore_ascii_case(name)).map(KindId)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extra(group: &str, kind: &str, plural: Option<&str>, namespaced: bool) -> ExtraKind {
        ExtraKind {
            group: group.into(),
            version: "v1".into(),
            kind: kind.into(),
            plural: plural.map(Into::into),
            namespaced,
        }
    }

    /// The config crate's list of default types (which validation refuses as extras) is
    /// this table's.
    #[test]
    fn the_defaults_are_the_config_crates() {
        let ours: Vec<(&str, &str)> = DEFAULTS.iter().map(|k| (k.group, k.kind)).collect();
        assert_eq!(ours, meridian_config::sync::DEFAULT_KINDS);
    }

    #[test]
    fn extras_follow_the_defaults_and_keep_their_ids() {
        let role = extra("rbac.authorization.k8s.io", "Role", None, true);
        let policy = extra("networking.k8s.io", "NetworkPolicy", None, true);
        let set = KindSet::from_config(&[role.clone(), policy.clone()]);
        let kinds: Vec<&str> = set.iter().map(|(_, k)| k.kind).collect();
        assert_eq!(kinds.first(), Some(&"Namespace"));
        assert_eq!(&kinds[DEFAULTS.len()..], ["Role", "NetworkPolicy"]);
        let Some((role_id, role_kind)) = set.iter().nth(DEFAULTS.len()) else { panic!("no Role in {set:?}") };
        assert_eq!((role_kind.plural, role_kind.builtin), ("roles", None));
        assert_eq!(set.iter().nth(DEFAULTS.len() + 1).map(|(_, k)| k.plural), Some("networkpolicies"));
        // Named again (a reload, another sync in the process): the same id.
        let again = KindSet::from_config(&[policy, role]);
        assert!(again.contains(role_id));
        assert_eq!(again, set);
        // A different shape is a different type; the defaults alone lack it.
        let cluster_wide = KindSet::from_config(&[extra("rbac.authorization.k8s.io", "Role", Some("roles"), false)]);
        assert!(!cluster_wide.contains(role_id));
        assert!(!KindSet::from_config(&[]).contains(role_id));
    }

    /// A configured type that shares a default type's name is not treated as it.
    #[test]
    fn a_namesake_of_a_default_type_is_generic() {
        let knative = KindSet::from_config(&[extra("serving.knative.dev", "Service", None, true)]);
        let Some((_, k)) = knative.iter().last() else { panic!("empty set") };
        assert_eq!((k.kind, k.group, k.builtin, k.workload), ("Service", "serving.knative.dev", None, Workload::None));
        assert!(!k.is(Builtin::Service));
    }
}
