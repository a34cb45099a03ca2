//! What a control plane puts into namespaces by itself: every active namespace gets the
//! `default` ServiceAccount (kube-controller-manager's serviceaccount controller) and the
//! `kube-root-ca.crt` ConfigMap (its root-ca-cert-publisher); `default` holds the
//! `kubernetes` Service with its Endpoints and EndpointSlice (kube-apiserver's own
//! endpoint reconciler), pointing at this cluster's API. Each is put back when deleted,
//! and the ConfigMap's data when changed, as those controllers do.

use serde_json::{Value, json};

use super::objects::put_new;
use crate::core::Core;
use crate::key::Key;
use crate::resources;
use crate::seeded::{API_SERVICE, DEFAULT_SERVICE_ACCOUNT, ROOT_CA_CONFIGMAP};
use crate::store::Inner;
use crate::util;

/// The first address of the service CIDR, which the allocator never hands out.
const API_SERVICE_IP: &str = "10.96.0.1";

/// A self-signed CA made for the simulator (which serves plain HTTP, so nothing is ever
/// verified against it); only its shape matters to clients.
const CA_PEM: &str = "-----BEGIN CERTIFICATE-----\n\
MIIBgDCCASegAwIBAgIUd2yX0rqWOv3llpkdoKnxtIqCA1MwCgYIKoZIzj0EAwIw\n\
FTETMBEGA1UEAwwKa3ViZXJuZXRlczAgFw0yNjEyMDExNzA4MjlaGA8yMTI2MTEw\n\
NzE3MDgyOVowFTETMBEGA1UEAwwKa3ViZXJuZXRlczBZMBMGByqGSM49AgEGCCqG\n\
SM49AwEHA0IABMlqkJonXW8/z9FUvm46Q1xzw/C3xvdVQUqlWIpSmvyVP0diM4aF\n\
FmKwcZed3EAdEaxR7R7h1ETjuLrShmxo1VajUzBRMB0GA1UdDgQWBBRRijY0yU7X\n\
MMrxKQrI6C+RZwdt0TAfBgNVHSMEGDAWgBRRijY0yU7XMMrxKQrI6C+RZwdt0TAP\n\
BgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0cAMEQCIFVylCmjkE7N9s3dAUqS\n\
aYx4+lUX7tw8o2xmchjaSY7RAiBytSKuOqFYjlKrePLUmQYYYMKmuF5QEt7CQ7IR\n\
zKp6lw==\n\
-----END CERTIFICATE-----\n";

/// The description the root-ca-cert-publisher gives the ConfigMap.
const CA_DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Puts namespace `ns`'s defaults in place, unless it is gone or terminating.
pub(crate) fn reconcile(core: &Core, ns: &str) {
    let mut g = core.store.write();
    let ns_key: Key = (resources::NAMESPACES, String::new(), ns.to_string());
    if g.get(&ns_key).is_none_or(|n| util::meta_str(&n, "deletionTimestamp").is_some()) {
        return;
    }
    let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": DEFAULT_SERVICE_ACCOUNT}});
    ensure(&mut g, (resources::SERVICEACCOUNTS, ns.into(), DEFAULT_SERVICE_ACCOUNT.into()), sa, None);
    let cm = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": ROOT_CA_CONFIGMAP, "annotations": {"kubernetes.io/description": CA_DESCRIPTION}},
        "data": {"ca.crt": CA_PEM},
    });
    ensure(&mut g, (resources::CONFIGMAPS, ns.into(), ROOT_CA_CONFIGMAP.into()), cm, Some("data"));
    if ns == "default" {
        api_service(&mut g, core.port());
    }
}

/// Creates `obj` under `key` when missing; with `owned`, also puts that field back.
fn ensure(g: &mut Inner, key: Key, obj: Value, owned: Option<&str>) {
    let Some(cur) = g.get(&key) else {
        put_new(g, key, obj);
        return;
    };
    let Some(field) = owned.filter(|f| cur.get(*f) != obj.get(*f)) else { return };
    let mut next = (*cur).clone();
    if let (Some(m), Some(v)) = (next.as_object_mut(), obj.get(field)) {
        m.insert(field.into(), v.clone());
    }
    g.put(key, next);
}

/// The `kubernetes` Service (ClusterIP 10.96.0.1, `https` on 443) and the endpoints that
/// lead to the API on `port`, as kube-apiserver keeps them.
fn api_service(g: &mut Inner, port: u16) {
    let svc_key: Key = (resources::SERVICES, "default".into(), API_SERVICE.into());
    if let Some(cur) = g.get(&svc_key) {
        // Restored from a state file written when the API listened elsewhere.
        let mut next = (*cur).clone();
        if let Some(tp) = next.pointer_mut("/spec/ports/0/targetPort").filter(|tp| **tp != json!(port)) {
            *tp = json!(port);
            g.put(svc_key.clone(), next);
        }
    } else {
        let mut svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": API_SERVICE, "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"type": "ClusterIP", "clusterIP": API_SERVICE_IP,
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
        });
        match g.alloc.default_service(&mut svc, None, API_SERVICE) {
            Ok(()) => {
                put_new(g, svc_key, svc);
            }
            Err(e) => tracing::warn!(error = %e, "the kubernetes Service cannot be created"),
        }
    }
    let ports = json!([{"name": "https", "port": port, "protocol": "TCP"}]);
    let endpoints = json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": API_SERVICE, "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": "127.0.0.1"}], "ports": ports}],
    });
    ensure(g, (resources::ENDPOINTS, "default".into(), API_SERVICE.into()), endpoints, Some("subsets"));
    let slice = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": API_SERVICE, "labels": {"kubernetes.io/service-name": API_SERVICE}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["127.0.0.1"], "conditions": {"ready": true}}],
        "ports": ports,
    });
    ensure(g, (resources::ENDPOINTSLICES, "default".into(), API_SERVICE.into()), slice, Some("ports"));
}
