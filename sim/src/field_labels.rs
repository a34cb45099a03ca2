//! Which fields a field selector may name, per resource: kube-apiserver's field label
//! conversion functions. Every resource takes `metadata.name` (and `metadata.namespace`
//! where it applies); a few kinds add their own fields; any other label is 400 with the
//! message the real server's conversion function gives.

use crate::error::ApiError;
use crate::resources::{self, ResourceDef};
use crate::selectors::FieldSource;

/// (label, dotted path it reads, value when absent).
type Label = (&'static str, &'static str, &'static str);

const POD: &[Label] = &[
    ("spec.nodeName", "spec.nodeName", ""),
    // Old v1 clients' name for spec.nodeName.
    ("spec.host", "spec.nodeName", ""),
    ("spec.restartPolicy", "spec.restartPolicy", ""),
    ("spec.schedulerName", "spec.schedulerName", ""),
    ("spec.serviceAccountName", "spec.serviceAccountName", ""),
    ("spec.hostNetwork", "spec.hostNetwork", "false"),
    ("status.phase", "status.phase", ""),
    ("status.podIP", "status.podIP", ""),
    ("status.nominatedNodeName", "status.nominatedNodeName", ""),
];

const EVENT: &[Label] = &[
    ("involvedObject.kind", "involvedObject.kind", ""),
    ("involvedObject.namespace", "involvedObject.namespace", ""),
    ("involvedObject.name", "involvedObject.name", ""),
    ("involvedObject.uid", "involvedObject.uid", ""),
    ("involvedObject.apiVersion", "involvedObject.apiVersion", ""),
    ("involvedObject.resourceVersion", "involvedObject.resourceVersion", ""),
    ("involvedObject.fieldPath", "involvedObject.fieldPath", ""),
    ("reason", "reason", ""),
    ("reportingComponent", "reportingComponent", ""),
    ("source", "source.component", ""),
    ("type", "type", ""),
];

/// events.k8s.io/v1 names the same fields after its own schema.
const EVENT_V1: &[Label] = &[
    ("regarding.kind", "regarding.kind", ""),
    ("regarding.namespace", "regarding.namespace", ""),
    ("regarding.name", "regarding.name", ""),
    ("regarding.uid", "regarding.uid", ""),
    ("regarding.apiVersion", "regarding.apiVersion", ""),
    ("regarding.resourceVersion", "regarding.resourceVersion", ""),
    ("regarding.fieldPath", "regarding.fieldPath", ""),
    ("reason", "reason", ""),
    ("reportingController", "reportingController", ""),
    ("source", "deprecatedSource.component", ""),
    ("type", "type", ""),
];

/// How a resource's conversion function treats labels: the extra fields it takes,
/// whether it takes `metadata.namespace`, and how it words a refusal.
struct Support {
    extra: &'static [Label],
    namespace: bool,
    /// The core group's and custom resources' "field label not supported: X" rather than
    /// the default conversion's "X is not a known field selector".
    core_wording: bool,
}

/// A core-group conversion function (or a custom resource's).
fn core(extra: &'static [Label], namespace: bool) -> Support {
    Support { extra, namespace, core_wording: true }
}

fn support(def: &ResourceDef) -> Support {
    if def.is_custom() {
        return core(&[], def.namespaced);
    }
    match def.id {
        resources::PODS => core(POD, true),
        resources::NODES => core(&[("spec.unschedulable", "spec.unschedulable", "false")], false),
        resources::NAMESPACES => core(&[("status.phase", "status.phase", "")], false),
        resources::SECRETS => core(&[("type", "type", "")], true),
        resources::SERVICES => core(&[("spec.clusterIP", "spec.clusterIP", ""), ("spec.type", "spec.type", "")], true),
        resources::EVENTS => core(EVENT, true),
        resources::EVENTS_V1 => core(EVENT_V1, true),
        resources::REPLICASETS => {
            Support { extra: &[("status.replicas", "status.replicas", "0")], namespace: true, core_wording: false }
        }
        // DefaultMetaV1FieldSelectorConversion, which takes metadata.namespace even for
        // cluster-scoped kinds (it then matches nothing but the empty namespace).
        _ => Support { extra: &[], namespace: true, core_wording: false },
    }
}

/// Where `label` reads from objects of `def`, or 400 when `def` does not support it.
pub(crate) fn source(def: &ResourceDef, label: &str) -> Result<FieldSource, ApiError> {
    let s = support(def);
    if label == "metadata.name" || (label == "metadata.namespace" && s.namespace) {
        return Ok(FieldSource::Path(label.to_string(), ""));
    }
    if def.id == resources::PODS && !def.is_custom() && label == "status.podIPs" {
        return Ok(FieldSource::PodIps);
    }
    if let Some((_, path, default)) = s.extra.iter().find(|(l, _, _)| *l == label) {
        return Ok(FieldSource::Path((*path).to_string(), default));
    }
    Err(ApiError::bad_request(if s.core_wording {
        format!("field label not supported: {label}")
    } else {
        format!("{label:?} is not a known field selector: only \"metadata.name\", \"metadata.namespace\"")
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::selectors::FieldSelector;

    fn resolve(id: usize, sel: &str) -> Result<FieldSelector, ApiError> {
        let def = &resources::BUILTINS[id];
        FieldSelector::parse(sel)?.resolve(|l| source(def, l))
    }

    #[test]
    fn unsupported_labels_are_refused_in_the_resource_s_own_words() {
        let cases = [
            (
                resources::CONFIGMAPS,
                "data.a=1",
                "\"data.a\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\"",
            ),
            (resources::SERVICES, "spec.ports=1", "field label not supported: spec.ports"),
            (resources::NODES, "metadata.namespace=x", "field label not supported: metadata.namespace"),
        ];
        for (id, sel, want) in cases {
            let err = resolve(id, sel).err().map(|e| (e.code, e.message));
            assert_eq!(err, Some((400, want.to_string())), "{sel}");
        }
    }

    #[test]
    fn supported_labels_read_their_fields_with_go_zero_values() -> Result<(), ApiError> {
        let node = json!({"metadata": {"name": "n"}, "spec": {}});
        assert!(resolve(resources::NODES, "spec.unschedulable=false")?.matches(&node));
        let pod = json!({"spec": {"nodeName": "n1"}, "status": {"podIPs": [{"ip": "10.0.0.1"}]}});
        assert!(resolve(resources::PODS, "spec.host=n1,spec.hostNetwork=false")?.matches(&pod));
        assert!(resolve(resources::PODS, "status.podIPs=10.0.0.1")?.matches(&pod));
        let ev = json!({"source": {"component": "kubelet"}, "involvedObject": {"kind": "Pod"}});
        assert!(resolve(resources::EVENTS, "source=kubelet,involvedObject.kind=Pod")?.matches(&ev));
        Ok(())
    }
}
