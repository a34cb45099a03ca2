//! The replica plan of a Deployment or ReplicaSet over the members, from what a
//! reconcile just read in each of them.

use std::collections::BTreeMap;

use serde_json::Value;

use super::member::{Desired, Live, Target};
use crate::planner;
use crate::template;

/// Plans the object's replicas over the placed clusters where Meridian may write (read
/// just now: Absent, or managed, or adoptable). A cluster's current replicas, which the
/// planner keeps without `rebalance`, are its copy's ready replicas, as Federation v1
/// counted them.
pub(super) fn plan_replicas(d: &Desired<'_>, targets: &[Target], lives: &[Live]) -> planner::Plan {
    let writable = |live: &Live| match live {
        Live::Absent => true,
        Live::Present(v) => template::owned_by(v, &d.uid) || d.settings.adopt,
        Live::Unreachable { .. } => false,
    };
    let names: Vec<&str> =
        targets.iter().zip(lives).filter(|(t, l)| t.placed && writable(l)).map(|(t, _)| t.name.as_str()).collect();
    let current: BTreeMap<String, i64> = targets
        .iter()
        .zip(lives)
        .filter_map(|(t, l)| match l {
            Live::Present(v) if writable(l) => {
                Some((t.name.clone(), v.pointer("/status/readyReplicas").and_then(Value::as_i64).unwrap_or(0)))
            }
            _ => None,
        })
        .collect();
    let request = planner::Request {
        total: d.obj.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
        clusters: &names,
        current: &current,
        // Meridian reads no pods, so it has no capacity estimate (see the planner).
        capacity: &BTreeMap::new(),
        key: &format!("{}/{}", d.key.namespace, d.key.name),
    };
    planner::plan(&d.steering.preferences, &request)
}
