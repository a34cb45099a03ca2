//! Kubernetes Events on control-plane objects, so `kubectl describe` shows what sync did.
//!
//! Messages name clusters, objects and API errors only; a Secret's data never appears
//! (callers pass API messages through [`crate::template::redact`]).

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::Value;
use tracing::debug;

use crate::template::meta_str;

/// Normal or Warning, as `kubectl describe` shows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Normal,
    Warning,
}

/// Reporting component of every Event.
const COMPONENT: &str = "meridian-sync";

/// Writes one Event about `obj` (a control-plane object). Failure to record is logged and
/// otherwise ignored: an Event is a report, not part of the work.
pub(crate) async fn record(host: &Client, obj: &Value, severity: Severity, reason: &str, message: &str) {
    let name = meta_str(obj, "name").unwrap_or_default();
    // Events of cluster-scoped objects (Namespaces) live in `default`, as stock
    // controllers put them.
    let namespace = meta_str(obj, "namespace").filter(|n| !n.is_empty()).unwrap_or("default");
    let now = Timestamp::now();
    let suffix: u64 = rand::random();
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{suffix:016x}")),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: obj.get("apiVersion").and_then(Value::as_str).map(str::to_owned),
            kind: obj.get("kind").and_then(Value::as_str).map(str::to_owned),
            name: Some(name.to_owned()),
            namespace: meta_str(obj, "namespace").map(str::to_owned),
            uid: meta_str(obj, "uid").map(str::to_owned),
            resource_version: meta_str(obj, "resourceVersion").map(str::to_owned),
            ..ObjectReference::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some(match severity {
            Severity::Normal => "Normal".to_owned(),
            Severity::Warning => "Warning".to_owned(),
        }),
        count: Some(1),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some(reason.to_owned()),
        reporting_component: Some(COMPONENT.to_owned()),
        reporting_instance: Some(COMPONENT.to_owned()),
        source: Some(EventSource { component: Some(COMPONENT.to_owned()), host: None }),
        ..Event::default()
    };
    let api: Api<Event> = Api::namespaced(host.clone(), namespace);
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        debug!(object = name, reason, error = %e, "cannot record event");
    }
}
