//! Defaulting of workloads and pods, as kube-apiserver's `SetDefaults_*` functions do on
//! every decode (create, update, and the result of a patch): Deployment strategy and
//! limits, StatefulSet and DaemonSet update strategies, and the pod spec and container
//! fields every pod template gets. Secret and Service defaults live in `admission` and
//! `service_alloc`.

use serde_json::{Map, Value, json};

use crate::resources::{self, ResId};

/// Defaults the workload or pod `obj` of resource `res`; other resources are untouched.
pub(crate) fn apply(res: ResId, obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else { return };
    match res {
        resources::DEPLOYMENTS => deployment(spec),
        resources::REPLICASETS => {
            spec.entry("replicas").or_insert(json!(1));
        }
        resources::STATEFULSETS => statefulset(spec),
        resources::DAEMONSETS => daemonset(spec),
        resources::PODS => {
            pod_spec(spec);
            // SetDefaults_Pod, and the ServiceAccount admission plugin.
            spec.entry("enableServiceLinks").or_insert(json!(true));
            let sa = spec.get("serviceAccountName").and_then(Value::as_str).unwrap_or("default").to_string();
            spec.insert("serviceAccountName".into(), json!(sa));
            spec.entry("serviceAccount").or_insert(json!(sa));
            return;
        }
        _ => return,
    }
    if let Some(template) = spec.get_mut("template").and_then(|t| t.get_mut("spec")).and_then(Value::as_object_mut) {
        pod_spec(template);
    }
}

/// SetDefaults_Deployment: one replica, a 25%/25% rolling update, ten old ReplicaSets
/// kept, ten minutes to make progress.
fn deployment(spec: &mut Map<String, Value>) {
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    spec.entry("progressDeadlineSeconds").or_insert(json!(600));
    rolling_update(spec, "strategy", &[("maxUnavailable", json!("25%")), ("maxSurge", json!("25%"))]);
}

/// `spec[field]` of type RollingUpdate (the default type) with its `rollingUpdate`
/// defaults; another type is left as it is.
fn rolling_update(spec: &mut Map<String, Value>, field: &str, defaults: &[(&str, Value)]) {
    let Some(strategy) = object_entry(spec, field) else { return };
    if *strategy.entry("type").or_insert(json!("RollingUpdate")) != "RollingUpdate" {
        return;
    }
    if let Some(rolling) = object_entry(strategy, "rollingUpdate") {
        for (k, v) in defaults {
            rolling.entry(*k).or_insert_with(|| v.clone());
        }
    }
}

/// SetDefaults_StatefulSet.
fn statefulset(spec: &mut Map<String, Value>) {
    spec.entry("replicas").or_insert(json!(1));
    spec.entry("podManagementPolicy").or_insert(json!("OrderedReady"));
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    rolling_update(spec, "updateStrategy", &[("partition", json!(0))]);
    if let Some(retention) = object_entry(spec, "persistentVolumeClaimRetentionPolicy") {
        retention.entry("whenDeleted").or_insert(json!("Retain"));
        retention.entry("whenScaled").or_insert(json!("Retain"));
    }
}

/// SetDefaults_DaemonSet: a rolling update of one node at a time, no surge.
fn daemonset(spec: &mut Map<String, Value>) {
    spec.entry("revisionHistoryLimit").or_insert(json!(10));
    rolling_update(spec, "updateStrategy", &[("maxUnavailable", json!(1)), ("maxSurge", json!(0))]);
}

/// SetDefaults_PodSpec and SetDefaults_Container (and ContainerPort) for every container.
fn pod_spec(spec: &mut Map<String, Value>) {
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("schedulerName").or_insert(json!("default-scheduler"));
    spec.entry("terminationGracePeriodSeconds").or_insert(json!(30));
    spec.entry("securityContext").or_insert(json!({}));
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else { continue };
        for c in containers.iter_mut().filter_map(Value::as_object_mut) {
            container(c);
        }
    }
}

fn container(c: &mut Map<String, Value>) {
    let policy = pull_policy(c.get("image").and_then(Value::as_str).unwrap_or(""));
    c.entry("imagePullPolicy").or_insert(json!(policy));
    c.entry("terminationMessagePath").or_insert(json!("/dev/termination-log"));
    c.entry("terminationMessagePolicy").or_insert(json!("File"));
    // A struct without omitempty in the Go types: always served, `{}` when unset.
    c.entry("resources").or_insert(json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert(json!("TCP"));
        }
    }
}

/// `Always` for an image tagged `latest` or not tagged (and without a digest), else
/// `IfNotPresent`. The tag is what follows `:` in the last path component, so a
/// registry's port (`localhost:5000/web`) is not one.
fn pull_policy(image: &str) -> &'static str {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.split_once(':') {
        Some((_, "latest")) => "Always",
        Some(_) => "IfNotPresent",
        None if digest => "IfNotPresent",
        None => "Always",
    }
}

/// `m[key]` as an object (created when absent or null); `None` when it holds something
/// else, which is left for validation to refuse.
fn object_entry<'a>(m: &'a mut Map<String, Value>, key: &str) -> Option<&'a mut Map<String, Value>> {
    let v = m.entry(key).or_insert_with(|| json!({}));
    if v.is_null() {
        *v = json!({});
    }
    v.as_object_mut()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_pull_policy_follows_the_tag() {
        let cases = [
            ("nginx", "Always"),
            ("nginx:latest", "Always"),
            ("nginx:1.27", "IfNotPresent"),
            ("localhost:5000/web", "Always"),
            ("localhost:5000/web:v2", "IfNotPresent"),
            ("nginx@sha256:abcd", "IfNotPresent"),
            ("nginx:latest@sha256:abcd", "Always"),
        ];
        for (image, want) in cases {
            assert_eq!(pull_policy(image), want, "{image}");
        }
    }

    #[test]
    fn deployments_get_strategy_limits_and_pod_defaults_without_overriding_given_values() {
        let mut d = json!({"spec": {"strategy": {"rollingUpdate": {"maxSurge": 2}},
            "template": {"spec": {"containers": [{"name": "a", "image": "x:1", "ports": [{"containerPort": 80}]}],
                "restartPolicy": "OnFailure"}}}});
        apply(resources::DEPLOYMENTS, &mut d);
        let s = &d["spec"];
        assert_eq!(
            s["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "25%"}})
        );
        assert_eq!((s["replicas"].clone(), s["revisionHistoryLimit"].clone()), (json!(1), json!(10)));
        let pod = &s["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "OnFailure");
        assert_eq!(pod["dnsPolicy"], "ClusterFirst");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][0]["ports"][0]["protocol"], "TCP");
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply(resources::DEPLOYMENTS, &mut recreate);
        assert_eq!(recreate["spec"]["strategy"], json!({"type": "Recreate"}));
    }
}
