//! Workload status: Deployments, ReplicaSets, StatefulSets and DaemonSets report every
//! replica ready without running pods, so `kubectl rollout status` and Meridian's sync see
//! healthy rollouts.

use serde_json::{Value, json};

use super::objects::node_names;
use crate::core::Core;
use crate::key::Key;
use crate::resources;
use crate::util;

fn write_status(core: &Core, key: &Key, status: impl FnOnce(&Value, usize) -> Value) {
    let mut g = core.store.write();
    let nodes = node_names(&g).len();
    let Some(obj) = g.get(key) else { return };
    let mut desired = status(&obj, nodes);
    // Keep transition times stable when conditions did not change, so the write settles.
    if let (Some(cur), Some(new)) = (
        obj.pointer("/status/conditions").and_then(Value::as_array),
        desired.get_mut("conditions").and_then(Value::as_array_mut),
    ) {
        for c in new.iter_mut() {
            if let Some(old) = cur.iter().find(|o| o.get("type") == c.get("type") && o.get("status") == c.get("status"))
            {
                for f in ["lastTransitionTime", "lastUpdateTime"] {
                    if let (Some(v), Some(m)) = (old.get(f), c.as_object_mut()) {
                        m.insert(f.into(), v.clone());
                    }
                }
            }
        }
    }
    if obj.get("status") != Some(&desired) {
        let mut next = (*obj).clone();
        if let Some(m) = next.as_object_mut() {
            m.insert("status".into(), desired);
        }
        g.put(key.clone(), next);
    }
}

pub(super) fn reconcile_replicas(core: &Core, key: &Key) {
    if key.0 == resources::STATEFULSETS {
        return write_status(core, key, |obj, _| statefulset_status(obj, &key.2));
    }
    let is_deploy = key.0 == resources::DEPLOYMENTS;
    write_status(core, key, |obj, _| {
        let replicas = obj.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
        let generation = obj.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        let now = util::now_rfc3339();
        let mut s = json!({
            "observedGeneration": generation,
            "replicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "fullyLabeledReplicas": replicas,
        });
        if is_deploy {
            s["updatedReplicas"] = json!(replicas);
            if let Some(m) = s.as_object_mut() {
                m.remove("fullyLabeledReplicas");
            }
            s["conditions"] = json!([
                {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable", "message": "Deployment has minimum availability.", "lastUpdateTime": now, "lastTransitionTime": now},
                {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable", "message": "Simulated rollout complete.", "lastUpdateTime": now, "lastTransitionTime": now},
            ]);
        }
        if replicas == 0
            && let Some(m) = s.as_object_mut()
        {
            for f in ["readyReplicas", "availableReplicas"] {
                m.remove(f);
            }
        }
        s
    });
}

/// A StatefulSet rolled out: every replica ready and current, one revision named after
/// the pod template (as a ControllerRevision hash would be).
fn statefulset_status(obj: &Value, name: &str) -> Value {
    let replicas = obj.pointer("/spec/replicas").and_then(Value::as_u64).unwrap_or(1);
    let generation = obj.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
    let template = obj.pointer("/spec/template").map(Value::to_string).unwrap_or_default();
    // FNV-1a: stable across runs, unlike the std hasher.
    let hash =
        template.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let revision = format!("{name}-{:010x}", hash & 0xff_ffff_ffff);
    json!({
        "observedGeneration": generation,
        "replicas": replicas,
        "readyReplicas": replicas,
        "currentReplicas": replicas,
        "updatedReplicas": replicas,
        "availableReplicas": replicas,
        "currentRevision": revision,
        "updateRevision": revision,
        "collisionCount": 0,
    })
}

pub(super) fn reconcile_daemonset(core: &Core, key: &Key) {
    write_status(core, key, |obj, nodes| {
        let generation = obj.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        json!({
            "observedGeneration": generation,
            "desiredNumberScheduled": nodes,
            "currentNumberScheduled": nodes,
            "numberReady": nodes,
            "numberAvailable": nodes,
            "updatedNumberScheduled": nodes,
            "numberMisscheduled": 0,
        })
    });
}

pub(super) fn reconcile_all_daemonsets(core: &Core) {
    let keys: Vec<Key> = core.store.read().range(resources::DAEMONSETS, None, None).map(|(k, _)| k.clone()).collect();
    for k in keys {
        reconcile_daemonset(core, &k);
    }
}
