//! Resource types: the built-in table, and [`ResourceDef`], one resource at one version
//! as clients address it (built-in, or served for a CustomResourceDefinition; `registry`
//! keeps the set a cluster serves).

use std::sync::{Arc, LazyLock};

use serde_json::{Value, json};

use crate::error::ApiError;

/// Store id of a resource: the first component of every store key. Built-ins are their
/// index in the built-in table; a custom resource gets the next free id when its CRD is
/// first stored, shared by all of its versions (objects are stored once, at the storage
/// version, and served at every served version).
pub(crate) type ResId = usize;

/// One served resource at one version (a "GVR" plus what discovery says about it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ResourceDef {
    pub(crate) id: ResId,
    pub(crate) group: String,
    pub(crate) version: String,
    pub(crate) plural: String,
    pub(crate) singular: String,
    pub(crate) kind: String,
    pub(crate) namespaced: bool,
    pub(crate) short_names: Vec<String>,
    pub(crate) categories: Vec<String>,
    /// Has a `/status` subresource: main-resource writes keep the old `.status`.
    pub(crate) status: bool,
    /// Has a `/scale` subresource (autoscaling/v1 Scale over `spec.replicas`).
    pub(crate) scale: bool,
    /// Dotted package of the type, for OpenAPI schema names (`io.k8s.api.core.v1`).
    pub(crate) schema_pkg: String,
    /// Set when a CustomResourceDefinition defines the resource.
    pub(crate) custom: Option<Custom>,
}

/// What a CustomResourceDefinition adds to a resource definition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Custom {
    /// The CRD's name, `<plural>.<group>`.
    pub(crate) crd: String,
    /// `<group>/<storage version>`: the apiVersion objects are stored at.
    pub(crate) storage_api_version: String,
    /// The version's `additionalPrinterColumns` (an Age column when it declares none).
    pub(crate) columns: Vec<PrinterColumn>,
    /// The CRD is being deleted: its objects are going, no new ones may be created.
    pub(crate) terminating: bool,
}

/// One `additionalPrinterColumns` entry.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PrinterColumn {
    pub(crate) name: String,
    /// `string`, `integer`, `number`, `boolean` or `date`.
    pub(crate) ty: String,
    pub(crate) format: String,
    pub(crate) description: String,
    pub(crate) priority: i64,
    pub(crate) json_path: String,
}

impl ResourceDef {
    /// `v1` for the core group, `group/version` otherwise.
    pub(crate) fn api_version(&self) -> String {
        if self.group.is_empty() { self.version.clone() } else { format!("{}/{}", self.group, self.version) }
    }

    /// The apiVersion objects of this resource are stored at.
    pub(crate) fn storage_api_version(&self) -> String {
        match &self.custom {
            Some(c) => c.storage_api_version.clone(),
            None => self.api_version(),
        }
    }

    /// `<Kind>List`.
    pub(crate) fn list_kind(&self) -> String {
        format!("{}List", self.kind)
    }

    pub(crate) fn is_custom(&self) -> bool {
        self.custom.is_some()
    }

    /// A CRD's resource whose CRD is being deleted.
    pub(crate) fn terminating(&self) -> bool {
        self.custom.as_ref().is_some_and(|c| c.terminating)
    }

    /// Kind, group and version as used in `Status.details` and OpenAPI extensions.
    pub(crate) fn gvk_json(&self) -> Value {
        json!({"group": self.group, "version": self.version, "kind": self.kind})
    }

    /// `plural.group` (just `plural` in the core group), as error messages name resources.
    pub(crate) fn qualified(&self) -> String {
        if self.group.is_empty() { self.plural.clone() } else { format!("{}.{}", self.plural, self.group) }
    }

    /// `Status.details` naming one object of this resource.
    fn details(&self, name: &str) -> Value {
        json!({"name": name, "group": self.group, "kind": self.plural})
    }

    /// 404 for a missing object.
    pub(crate) fn not_found(&self, name: &str) -> ApiError {
        ApiError::new(404, "NotFound", format!("{} \"{name}\" not found", self.qualified()))
            .with_details(self.details(name))
    }

    /// 409 for a create of a name already taken.
    pub(crate) fn already_exists(&self, name: &str) -> ApiError {
        ApiError::new(409, "AlreadyExists", format!("{} \"{name}\" already exists", self.qualified()))
            .with_details(self.details(name))
    }

    /// 409 for a write based on a stale resourceVersion.
    pub(crate) fn stale(&self, name: &str) -> ApiError {
        ApiError::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                self.qualified()
            ),
        )
        .with_details(self.details(name))
    }

    /// `obj` as served at this version: objects are stored at the storage version and
    /// converted with the `None` strategy, which only rewrites `apiVersion`.
    pub(crate) fn view<'a>(&self, obj: &'a Value) -> std::borrow::Cow<'a, Value> {
        let want = self.api_version();
        if obj.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
            return std::borrow::Cow::Borrowed(obj);
        }
        let mut out = obj.clone();
        if let Some(m) = out.as_object_mut() {
            m.insert("apiVersion".into(), Value::String(want));
        }
        std::borrow::Cow::Owned(out)
    }
}

/// A row of the built-in table.
struct Builtin {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    status: bool,
    scale: bool,
    schema_pkg: &'static str,
}

const ALL: &[&str] = &["all"];
const NONE: &[&str] = &[];

macro_rules! res {
    ($g:expr, $v:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $cat:expr, $status:expr, $pkg:expr) => {
        res!($g, $v, $plural, $singular, $kind, $ns, $short, $cat, $status, $pkg, false)
    };
    ($g:expr, $v:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr, $short:expr, $cat:expr, $status:expr, $pkg:expr, $scale:expr) => {
        Builtin {
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

/// Every built-in resource, in discovery order. Indices are their store ids.
static TABLE: &[Builtin] = &[
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
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "customresourcedefinition",
        "CustomResourceDefinition",
        false,
        &["crd", "crds"],
        &["api-extensions"],
        true,
        "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1"
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
    // RBAC objects are stored and served (manifests apply, `kubectl get` lists them);
    // nothing enforces them (see lib.rs, "Left out").
    res!("rbac.authorization.k8s.io", "v1", "roles", "role", "Role", true, NONE, NONE, false, RBAC),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        "rolebinding",
        "RoleBinding",
        true,
        NONE,
        NONE,
        false,
        RBAC
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterroles",
        "clusterrole",
        "ClusterRole",
        false,
        NONE,
        NONE,
        false,
        RBAC
    ),
    res!(
        "rbac.authorization.k8s.io",
        "v1",
        "clusterrolebindings",
        "clusterrolebinding",
        "ClusterRoleBinding",
        false,
        NONE,
        NONE,
        false,
        RBAC
    ),
];

const RBAC: &str = "io.k8s.api.rbac.v1";

/// Well-known ids, checked against the table by a unit test.
pub(crate) const NAMESPACES: ResId = 0;
pub(crate) const SERVICES: ResId = 1;
pub(crate) const ENDPOINTS: ResId = 2;
pub(crate) const CONFIGMAPS: ResId = 3;
pub(crate) const SECRETS: ResId = 4;
pub(crate) const EVENTS: ResId = 5;
pub(crate) const NODES: ResId = 6;
pub(crate) const PODS: ResId = 7;
pub(crate) const SERVICEACCOUNTS: ResId = 8;
pub(crate) const DEPLOYMENTS: ResId = 9;
pub(crate) const REPLICASETS: ResId = 10;
pub(crate) const DAEMONSETS: ResId = 11;
pub(crate) const INGRESSES: ResId = 12;
pub(crate) const ENDPOINTSLICES: ResId = 13;
pub(crate) const EVENTS_V1: ResId = 15;
pub(crate) const CRDS: ResId = 16;
pub(crate) const STATEFULSETS: ResId = 17;

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|x| x.to_string()).collect()
}

/// The built-in resources, indexed by their ids.
pub(crate) static BUILTINS: LazyLock<Vec<Arc<ResourceDef>>> = LazyLock::new(|| {
    TABLE
        .iter()
        .enumerate()
        .map(|(id, b)| {
            Arc::new(ResourceDef {
                id,
                group: b.group.into(),
                version: b.version.into(),
                plural: b.plural.into(),
                singular: b.singular.into(),
                kind: b.kind.into(),
                namespaced: b.namespaced,
                short_names: strings(b.short_names),
                categories: strings(b.categories),
                status: b.status,
                scale: b.scale,
                schema_pkg: b.schema_pkg.into(),
                custom: None,
            })
        })
        .collect()
});

/// Whether objects of resource `id` carry `metadata.generation`: the kinds whose
/// strategies set it on create (workloads, Ingresses, EndpointSlices, CRDs) and every
/// custom resource. ConfigMaps, Secrets, Services, Namespaces and the rest have none.
pub(crate) fn tracks_generation(id: ResId) -> bool {
    id >= TABLE.len()
        || matches!(id, DEPLOYMENTS | REPLICASETS | STATEFULSETS | DAEMONSETS | INGRESSES | ENDPOINTSLICES | CRDS)
}

/// `apps/v1` → (`apps`, `v1`); `v1` → (``, `v1`).
pub(crate) fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_ids_match_the_table() {
        let plural = |id: ResId| BUILTINS.get(id).map(|d| d.plural.as_str());
        let cases = [
            (NAMESPACES, "namespaces"),
            (SERVICES, "services"),
            (ENDPOINTS, "endpoints"),
            (CONFIGMAPS, "configmaps"),
            (SECRETS, "secrets"),
            (EVENTS, "events"),
            (NODES, "nodes"),
            (PODS, "pods"),
            (SERVICEACCOUNTS, "serviceaccounts"),
            (DEPLOYMENTS, "deployments"),
            (REPLICASETS, "replicasets"),
            (DAEMONSETS, "daemonsets"),
            (INGRESSES, "ingresses"),
            (ENDPOINTSLICES, "endpointslices"),
            (EVENTS_V1, "events"),
            (CRDS, "customresourcedefinitions"),
            (STATEFULSETS, "statefulsets"),
        ];
        for (id, want) in cases {
            assert_eq!(plural(id), Some(want), "id {id}");
        }
        assert!(BUILTINS.iter().enumerate().all(|(i, d)| d.id == i));
    }

    #[test]
    fn views_rewrite_only_the_api_version() {
        let mut def = (*BUILTINS[CRDS]).clone();
        def.group = "example.com".into();
        def.version = "v2".into();
        let obj = json!({"apiVersion": "example.com/v1", "kind": "Widget", "spec": {"a": 1}});
        assert_eq!(
            def.view(&obj).into_owned(),
            json!({"apiVersion": "example.com/v2", "kind": "Widget", "spec": {"a": 1}})
        );
        let same = json!({"apiVersion": "example.com/v2"});
        assert!(matches!(def.view(&same), std::borrow::Cow::Borrowed(_)));
    }
}
