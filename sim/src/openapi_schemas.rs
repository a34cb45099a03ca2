//! The built-in kinds' real schemas for the OpenAPI v3 documents, from k8s-openapi's
//! published ones (`schemars`): the fields and descriptions `kubectl explain` shows.
//! Generated once, on first use, as OpenAPI 3 component schemas that refer to each other
//! by `#/components/schemas/<name>`.

use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Event, Namespace, Node, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::events::v1::Event as EventsEvent;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value};

/// Where the schemas come from, part of every document's `hash`: a client that cached a
/// document by URL (kubectl, under `~/.kube/cache`) fetches it again when they change.
pub(crate) const SOURCE: &str = "k8s-openapi 0.29 v1_33 (schemars), with rbac.authorization.k8s.io";

/// Every schema by its OpenAPI name (`io.k8s.api.core.v1.Service`): the served kinds and
/// every type their fields refer to.
pub(crate) fn all() -> &'static Map<String, Value> {
    static SCHEMAS: OnceLock<Map<String, Value>> = OnceLock::new();
    SCHEMAS.get_or_init(generate)
}

fn generate() -> Map<String, Value> {
    let mut g = SchemaSettings::openapi3().into_generator();
    macro_rules! with {
        ($($t:ty),* $(,)?) => { $( let _ = g.subschema_for::<$t>(); )* };
    }
    with!(
        Namespace,
        Service,
        Endpoints,
        ConfigMap,
        Secret,
        Event,
        Node,
        Pod,
        ServiceAccount,
        Deployment,
        ReplicaSet,
        DaemonSet,
        StatefulSet,
        Ingress,
        EndpointSlice,
        Lease,
        EventsEvent,
        CustomResourceDefinition,
        Role,
        RoleBinding,
        ClusterRole,
        ClusterRoleBinding,
    );
    g.take_definitions(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds are there under their OpenAPI names, and a field's type is a reference
    /// to a schema that is there too.
    #[test]
    fn kinds_and_their_field_types_are_there() {
        let s = all();
        let service = s.get("io.k8s.api.core.v1.Service").expect("Service");
        // A described reference is `allOf: [{$ref}]`, as kube-apiserver writes it.
        let spec = service.pointer("/properties/spec").expect("spec");
        let spec_ref = spec.pointer("/allOf/0/$ref").and_then(Value::as_str).unwrap_or_default();
        let name = spec_ref.strip_prefix("#/components/schemas/").expect("an OpenAPI 3 reference");
        let spec = s.get(name).expect("ServiceSpec");
        assert!(spec.pointer("/properties/ports/description").is_some(), "{spec}");
        assert!(s.contains_key("io.k8s.api.apps.v1.Deployment"));
    }
}
