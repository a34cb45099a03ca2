//! Built-in controllers: what a cluster's control plane and cloud provider would do after a
//! write. They run asynchronously (a queue of changed keys drained by one task per cluster),
//! write through the store so their changes bump resourceVersion and reach watches, and are
//! idempotent: an unchanged result is not written, so their own writes settle at once.
//!
//! - Services: loopback load-balancer address in `status.loadBalancer`, an EndpointSlice
//!   `<svc>-sim` and an Endpoints object, and the HTTP backends.
//! - Ingresses: a load-balancer address from the same pool.
//! - Deployments, ReplicaSets, StatefulSets, DaemonSets: status as if every replica were
//!   ready (unless the cluster's spec turns them off, as for a federation control plane).
//! - Namespaces (`namespaces`): the namespace controller's termination; (`seed`) the
//!   `default` ServiceAccount and `kube-root-ca.crt` in each, the `kubernetes` Service.
//! - Deployments (`rollout`): a ReplicaSet per pod template, revisions, history limit.
//! - CustomResourceDefinitions (`crds`): a deleted CRD's objects are deleted first.
//! - Every object with owners or a GC finalizer (`gc`): the garbage collector.

pub(crate) mod crds;
pub(crate) mod gateways;
pub(crate) mod gc;
pub(crate) mod namespaces;
mod objects;
mod rollout;
pub(crate) mod seed;
pub(crate) mod services;
mod workloads;

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::json;
use tokio::sync::mpsc;

pub(crate) use objects::put_new;

use crate::core::Core;
use crate::key::Key;
use crate::resources;
use crate::util;

/// Drains the queue of changed keys until the sender is dropped. Keys that arrive in a
/// burst are de-duplicated, so a Service written three times is reconciled once.
pub(crate) async fn run(core: Arc<Core>, mut rx: mpsc::UnboundedReceiver<Key>) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(k) = rx.try_recv() {
            batch.push(k);
        }
        let mut seen = HashSet::new();
        for key in batch {
            if seen.insert(key.clone()) {
                reconcile(&core, &key);
            }
        }
        // Let API requests in between large batches.
        tokio::task::yield_now().await;
    }
}

/// Brings everything derived from `key` up to date.
pub(crate) fn reconcile(core: &Core, key: &Key) {
    match key.0 {
        resources::SERVICES => services::reconcile(core, &key.1, &key.2),
        resources::INGRESSES => services::reconcile_ingress(core, &key.1, &key.2),
        resources::DEPLOYMENTS if core.workload_controllers => {
            rollout::reconcile(&mut core.store.write(), key);
            workloads::reconcile_replicas(core, key);
        }
        resources::REPLICASETS | resources::STATEFULSETS if core.workload_controllers => {
            workloads::reconcile_replicas(core, key);
        }
        resources::DAEMONSETS if core.workload_controllers => workloads::reconcile_daemonset(core, key),
        resources::NODES if core.workload_controllers => workloads::reconcile_all_daemonsets(core),
        resources::NAMESPACES => {
            namespaces::finalize(&mut core.store.write(), &key.2);
            seed::reconcile(core, &key.2);
        }
        resources::CRDS => crds::finalize(&mut core.store.write(), &key.2),
        _ => {
            gateways::reconcile(core, key);
        }
    }
    gc::collect(&mut core.store.write(), key);
}

/// Creates the cluster's Nodes (their labels carry the region and zone Meridian reads).
pub(crate) fn create_nodes(core: &Core, count: usize) {
    let mut g = core.store.write();
    for i in 0..count {
        let name = format!("{}-node-{i}", core.name);
        let key = (resources::NODES, String::new(), name.clone());
        if g.contains(&key) {
            continue;
        }
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": {
                    "kubernetes.io/hostname": name,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                    "topology.kubernetes.io/region": core.region,
                    "topology.kubernetes.io/zone": core.zone,
                    "node.kubernetes.io/instance-type": "sim",
                },
            },
            "spec": {"podCIDR": format!("10.{}.{i}.0/24", 128 + core.index % 64)},
            "status": {
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": util::now_rfc3339(), "lastTransitionTime": util::now_rfc3339(),
                }],
                "addresses": [
                    {"type": "InternalIP", "address": format!("172.18.{}.{}", core.index % 256, i + 2)},
                    {"type": "Hostname", "address": name},
                ],
                "nodeInfo": {"kubeletVersion": crate::discovery::GIT_VERSION, "osImage": "Meridian simulator", "architecture": "amd64", "operatingSystem": "linux", "containerRuntimeVersion": "sim://1.0"},
                "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
                "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            },
        });
        put_new(&mut g, key, node);
    }
}
