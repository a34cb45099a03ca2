//! An in-memory Kubernetes API server that simulates many clusters in one process, faithful
//! enough for real `kubectl` and kube-rs clients, so Meridian can be developed, tested and
//! benchmarked without real clusters. Where it differs from kube-apiserver, the simulator
//! is fixed, never its clients.
//!
//! Each [`SimCluster`] serves plain HTTP on its own `127.0.0.1` port, keeps objects as
//! generic JSON with one etcd-like resourceVersion counter, and runs small controllers
//! that do what a cluster and its cloud provider would: Services of type LoadBalancer get
//! a loopback address (127.x.y.z) with real HTTP servers behind it, EndpointSlices and
//! Endpoints appear for Services, workloads report ready replicas, the garbage collector
//! and the namespace controller finish deletions.
//!
//! # Layout
//! - `lib.rs`: [`Simulator`], [`SimOptions`], [`ClusterSpec`], [`run_standalone`], state files.
//! - `cluster`: [`SimCluster`] — listener start/stop, the Rust seeding API, state restore.
//! - `store`: objects, the resourceVersion counter, the bounded event history, the owner
//!   index, and which keys the controllers must look at after a change.
//! - `http`: path routing, query parsing, content negotiation (JSON, Table, metadata).
//! - `api`: writes — type checks, metadata bookkeeping, optimistic concurrency, status and
//!   finalize subresources, patches. `admission`: per-type decoding, defaulting, validation.
//! - `deletion`: DELETE — preconditions, propagation finalizers, marking, namespaces.
//! - `managed`, `fieldpath`: field management (managedFields, server-side apply).
//! - `patch`, `strategic`, `schema`: patch flavours; merge keys and list types.
//! - `scale`: the `/scale` subresource. `watch`: watch streams, bookmarks, 410 Gone.
//! - `discovery`: `/version`, `/api`, `/apis`, OpenAPI v3 documents for `kubectl apply`.
//! - `table`: `meta.k8s.io/v1 Table` rendering for kubectl's human output. `selectors`.
//! - `controllers`: allocation (clusterIP, nodePort, healthCheckNodePort, LB and pod IPs),
//!   Service, Ingress, workload, namespace and garbage-collector controllers. `backends`:
//!   the HTTP servers behind LB addresses. `kubeconfig`.
//!
//! # Implemented as kube-apiserver does it
//! - Deletion: `orphan`/`foregroundDeletion` finalizers from `propagationPolicy` or
//!   `orphanDependents`, marking (`deletionTimestamp`, `deletionGracePeriodSeconds: 0`),
//!   200 with the kept object (202 for `orphanDependents: false`), removal when an update
//!   empties the finalizers, no new finalizers on a deleted object. Namespaces stay
//!   Terminating until their content, `spec.finalizers` and finalizers are gone.
//! - Garbage collection over ownerReferences: background, foreground (waiting for
//!   `blockOwnerDeletion` dependents) and orphan.
//! - Server-side apply: managedFields per manager, 409 conflicts, `force`, removal of
//!   fields a manager stops applying, kubectl's client-side-apply takeover; updates move
//!   the fields they change to their manager (named by `fieldManager` or User-Agent).
//! - `/scale` (autoscaling/v1) on Deployments, ReplicaSets, StatefulSets; Secret
//!   `stringData` and base64 `data`; strategic merge by the types' merge keys; Service
//!   clusterIP, nodePort and healthCheckNodePort allocation.
//!
//! # Approximated
//! - Workload status is synthesised (every replica ready); no pods or ReplicaSets behind
//!   Deployments. Graceful deletion (pods) is immediate.
//! - Defaulting covers what clients here read (replicas, StatefulSet strategy, Secret
//!   type, Service fields); OpenAPI schemas are stubs that preserve unknown fields, so
//!   there is no field validation and list types come from `schema`'s table.
//! - `$setElementOrder` is ignored; foreground deletion cycles are not unblocked; owners of
//!   kinds not served are never missing.
//! - Lists are always served from the latest state (`resourceVersion`/`resourceVersionMatch`
//!   on lists are ignored); a `continue` token resumes after its key in the current state.
//! - Field selectors accept any dotted path, not just the per-type allowed fields.
//!
//! # Left out
//! - Authentication, authorisation, admission webhooks, CRDs, TLS, protobuf, HTTP/2,
//!   aggregated discovery (kubectl falls back to the plain documents).
//!
//! # Simulator-only annotations
//! On Services: `sim.meridian.io/endpoints` (count, default 2), `sim.meridian.io/ready`
//! (`"false"`), `sim.meridian.io/ready-endpoints` (count), `sim.meridian.io/hostnames`
//! (`"true"`), `sim.meridian.io/backend` (`"down"`/`"up"`), `sim.meridian.io/lb-hostname`
//! (hostname-only ingress, like AWS; the backend still listens on the allocated IP),
//! `sim.meridian.io/ipv6` (`"true"`: also an `fd00:<cluster index>::/64` ingress address, never
//! bound). A delete leaves no record of its DeleteOptions beyond what kube-apiserver
//! leaves (the `orphan`/`foregroundDeletion` finalizers).
//!
//! State restored from [`SimOptions::state_dir`] is logged; a restored load-balancer
//! address another process now serves is replaced, never reused.

mod admission;
mod api;
mod backends;
mod cluster;
mod controllers;
mod deletion;
mod discovery;
mod error;
mod fieldpath;
mod http;
mod kubeconfig;
mod managed;
mod patch;
mod resources;
mod scale;
mod schema;
mod selectors;
mod store;
mod strategic;
mod table;
mod util;
mod watch;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

pub use cluster::SimCluster;
pub use error::{ApiError, Error, Result};

/// Simulator-wide options.
#[derive(Debug, Clone)]
pub struct SimOptions {
    /// Watch events retained per cluster; watching from an older resourceVersion is 410 Gone.
    pub history: usize,
    /// Run HTTP backends behind load-balancer addresses (off for large scale benchmarks).
    pub backends: bool,
    /// Where cluster state is saved on shutdown and restored on `add_cluster`.
    pub state_dir: Option<PathBuf>,
}

impl Default for SimOptions {
    fn default() -> Self {
        // 10,000 events: several minutes of churn for a busy test cluster, like etcd's
        // five-minute compaction window.
        Self { history: 10_000, backends: true, state_dir: None }
    }
}

/// One cluster to simulate.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    /// Cluster and kubeconfig context name.
    pub name: String,
    /// API port on 127.0.0.1; 0 picks a free one.
    pub port: u16,
    /// `topology.kubernetes.io/region` of the nodes.
    pub region: String,
    /// `topology.kubernetes.io/zone` of the nodes.
    pub zone: String,
    /// Load-balancer pool, an IPv4 CIDR inside 127.0.0.0/8 such as `"127.100.0.0/16"`.
    /// Default for the i-th cluster added: 127.(100+i).0.0/16.
    pub lb_cidr: Option<String>,
    /// Whether the Deployment/ReplicaSet/StatefulSet/DaemonSet status controllers run
    /// (default true). A federation control plane runs none: its workload status is what
    /// Meridian rolls up from the members, so nothing else may write it.
    pub workload_controllers: bool,
}

impl ClusterSpec {
    /// A spec with an ephemeral port, region `<name>-region` and zone `<name>-region-a`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let region = format!("{name}-region");
        Self { zone: format!("{region}-a"), region, name, port: 0, lb_cidr: None, workload_controllers: true }
    }

    /// Sets region and zone.
    pub fn with_topology(mut self, region: impl Into<String>, zone: impl Into<String>) -> Self {
        self.region = region.into();
        self.zone = zone.into();
        self
    }

    /// Runs no workload status controllers, as a federation control plane.
    pub fn without_workload_controllers(mut self) -> Self {
        self.workload_controllers = false;
        self
    }
}

/// Owns the simulated clusters.
#[derive(Debug)]
pub struct Simulator {
    opts: SimOptions,
    clusters: RwLock<Vec<Arc<SimCluster>>>,
}

impl Simulator {
    pub fn new(opts: SimOptions) -> Self {
        Self { opts, clusters: RwLock::new(Vec::new()) }
    }

    /// Adds a cluster, restores its state file if any, binds its port and starts serving.
    pub async fn add_cluster(&self, spec: ClusterSpec) -> Result<Arc<SimCluster>> {
        let index = {
            let list = self.clusters.read();
            if list.iter().any(|c| c.name() == spec.name) {
                return Err(Error::DuplicateCluster(spec.name));
            }
            list.len()
        };
        let (cluster, rx) =
            SimCluster::new(&spec, index, self.opts.history, self.opts.backends, tokio::runtime::Handle::current())?;
        if let Some(dir) = &self.opts.state_dir {
            cluster.load_state(dir)?;
        }
        cluster.start().await?;
        cluster.boot(rx);
        cluster.resync();
        let duplicate = {
            let mut list = self.clusters.write();
            let dup = list.iter().any(|c| c.name() == spec.name);
            if !dup {
                list.push(cluster.clone());
            }
            dup
        };
        if duplicate {
            // Another add_cluster with the same name won the race.
            cluster.shutdown().await;
            return Err(Error::DuplicateCluster(spec.name));
        }
        Ok(cluster)
    }

    pub fn cluster(&self, name: &str) -> Option<Arc<SimCluster>> {
        self.clusters.read().iter().find(|c| c.name() == name).cloned()
    }

    /// Clusters in the order they were added.
    pub fn clusters(&self) -> Vec<Arc<SimCluster>> {
        self.clusters.read().clone()
    }

    /// Writes a kubeconfig with one context per cluster (named after it); the first cluster
    /// is the current context.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<()> {
        kubeconfig::write(path, &self.clusters())
    }

    /// Stops every cluster (API, controllers, backends) and saves state if configured.
    pub async fn shutdown(&self) {
        for c in self.clusters() {
            c.shutdown().await;
            if let Some(dir) = &self.opts.state_dir
                && let Err(e) = c.save_state(dir)
            {
                tracing::warn!(cluster = c.name(), error = %e, "saving simulator state");
            }
        }
    }
}

/// The state files that [`SimOptions::state_dir`] holds for these clusters, for a caller
/// that wants to say it is restoring them.
pub fn saved_state<'a>(dir: &Path, clusters: impl IntoIterator<Item = &'a str>) -> Vec<PathBuf> {
    clusters.into_iter().map(|c| cluster::state_path(dir, c)).filter(|p| p.is_file()).collect()
}

/// Removes the saved state of these clusters from `dir`, so they start empty; returns the
/// files removed.
pub fn discard_state<'a>(dir: &Path, clusters: impl IntoIterator<Item = &'a str>) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    for path in saved_state(dir, clusters) {
        std::fs::remove_file(&path).map_err(|source| Error::Io { path: path.clone(), source })?;
        removed.push(path);
    }
    Ok(removed)
}

/// Runs clusters until `shutdown` resolves (`meridian sim`): starts them, writes the
/// kubeconfig, logs where each cluster listens, then shuts down cleanly.
pub async fn run_standalone(
    specs: Vec<ClusterSpec>,
    opts: SimOptions,
    kubeconfig_path: &Path,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let sim = Simulator::new(opts);
    for spec in specs {
        let c = match sim.add_cluster(spec).await {
            Ok(c) => c,
            Err(e) => {
                sim.shutdown().await;
                return Err(e);
            }
        };
        tracing::info!(cluster = c.name(), url = %c.url(), region = c.region(), zone = c.zone(), "simulated cluster serving");
    }
    if let Err(e) = sim.write_kubeconfig(kubeconfig_path) {
        sim.shutdown().await;
        return Err(e);
    }
    tracing::info!(path = %kubeconfig_path.display(), "kubeconfig written");
    shutdown.await;
    sim.shutdown().await;
    Ok(())
}
