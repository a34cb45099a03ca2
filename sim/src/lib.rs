//! An in-memory Kubernetes API server that simulates many clusters in one process, faithful
//! enough for real `kubectl` and kube-rs clients, so Meridian can be developed, tested and
//! benchmarked without real clusters. Where it differs from kube-apiserver, the simulator
//! is fixed, never its clients.
//!
//! Each [`SimCluster`] serves plain HTTP (HTTPS with its own CA and a bearer token when
//! [`ClusterSpec::secure`]) on its own `127.0.0.1` port, keeps objects as
//! generic JSON with one etcd-like resourceVersion counter, and runs small controllers
//! that do what a cluster and its cloud provider would: Services of type LoadBalancer get
//! a loopback address (127.x.y.z) with real HTTP servers behind it, EndpointSlices and
//! Endpoints appear for Services, workloads report ready replicas, the garbage collector
//! and the namespace controller finish deletions. CustomResourceDefinitions add resources
//! at run time; every cluster has the Multi-Cluster Services CRDs (ServiceExport,
//! ServiceImport) and the Gateway API's (GatewayClass, Gateway, HTTPRoute) installed, with
//! a Gateway controller that owns the `sim` GatewayClass: its Gateways get load-balancer
//! addresses as LoadBalancer Services do, and their HTTPRoutes are accepted.
//!
//! # Layout
//! - `lib.rs`: [`Simulator`], [`SimOptions`], [`ClusterSpec`], [`run_standalone`], state files.
//! - `cluster`: [`SimCluster`] — listener start/stop, the Rust seeding API, state restore.
//! - `core`: `Core`, what one cluster's handlers, watches and controllers share.
//! - `store`: objects, the resourceVersion counter, the bounded event history, the owner
//!   index, and which keys the controllers must look at after a change. `stored`: an
//!   object as the store keeps it (its JSON text). `key`: store keys.
//!   `service_alloc`: Service clusterIP and nodePort allocation, kept beside the objects.
//! - `resources`: resource definitions (`ResourceDef`: one resource at one version) and
//!   the built-in table. `registry`: what a cluster serves — the built-ins and every
//!   established CRD's versions, kept in the store beside the CRD objects.
//! - `crd`: CustomResourceDefinitions — defaulting, validation, the status the naming and
//!   establishing controllers keep, the resources a CRD serves, the MCS CRDs.
//! - `http`: path routing, query parsing, content negotiation (JSON, Table, metadata).
//! - `api`: writes — type checks, metadata bookkeeping, optimistic concurrency, status and
//!   finalize subresources, patches. `admission`: per-type decoding and preparation;
//!   `defaults`: workload and pod defaulting; `validation`: update validation.
//! - `deletion`: DELETE — preconditions, propagation finalizers, marking, namespaces.
//! - `managed`, `fieldpath`: field management (managedFields, server-side apply).
//! - `patch`, `strategic`, `schema`: patch flavours; merge keys and list types.
//! - `scale`: the `/scale` subresource. `watch`: watch streams, bookmarks, 410 Gone.
//! - `discovery`: `/version`, `/api`, `/apis`, OpenAPI v3 documents for `kubectl apply`
//!   and `kubectl explain` (`openapi_schemas`: the built-in kinds' schemas).
//! - `table`: `meta.k8s.io/v1 Table` rendering for kubectl's human output (custom
//!   resources by their printer columns, evaluated by `jsonpath`). `selectors`, and
//!   `field_labels`: the fields each kind's field selectors may name.
//! - `audit`: the (verb, group, resource) accesses clients made, as RBAC names them.
//!   `load`: the load they put on the API (connections, watches, requests).
//! - `secure`: a secure cluster's CA, serving certificate and bearer token.
//! - `reviews`: the self-review resources behind `kubectl auth can-i` and `auth whoami`.
//! - `controllers`: Service, Ingress, Gateway API, workload, Deployment rollout, namespace
//!   (termination and the objects each namespace holds, named in `seeded`), CRD finalizer
//!   and garbage-collector controllers. `pools`: the load-balancer and pod IP pools they draw from. `backends`:
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
//! - Defaulting on every write: Deployment strategy (RollingUpdate 25%/25%), history and
//!   progress limits; StatefulSet and DaemonSet update strategies; pod spec and container
//!   fields of templates and Pods (`imagePullPolicy` from the tag, termination message,
//!   restart and DNS policy, scheduler, grace period); Secret `type`; Service type,
//!   session affinity, port protocol and targetPort; the Namespace name label.
//! - Update validation: a PUT naming another uid fails its precondition (409), a patch
//!   changing it is 422; immutable ConfigMaps and Secrets, a Secret's type, the selectors
//!   of Deployments, ReplicaSets and DaemonSets, a StatefulSet's fixed spec fields.
//! - `metadata.generation` only on the kinds whose strategies keep one (workloads,
//!   Ingresses, EndpointSlices, CRDs, custom resources); Deployment annotations and
//!   EndpointSlice labels move it too.
//! - Field selectors take only each kind's fields (kube-apiserver's field label
//!   conversions), else 400 in the same words. A watch sends an object leaving its
//!   selector as DELETED with its last matching state. Lists cut by `limit` without a
//!   selector carry `remainingItemCount`.
//! - Every active namespace gets the `default` ServiceAccount and `kube-root-ca.crt`, put
//!   back when deleted; `default` holds the `kubernetes` Service (10.96.0.1, https 443)
//!   whose Endpoints and EndpointSlice lead to the API itself.
//! - Deployments own a ReplicaSet per pod template (`<name>-<pod-template-hash>`, the
//!   `deployment.kubernetes.io/revision` annotation, `revisionHistoryLimit`, `paused`), so
//!   `kubectl rollout history` and `rollout undo` work.
//! - Tables carry the columns of kube-apiserver's printers for the built-in kinds but Events
//!   and Leases, the `-o wide` ones included (a workload's containers, images, selector;
//!   a node's addresses and runtime; a pod's IP and node).
//! - CustomResourceDefinitions (`apiextensions.k8s.io/v1`, cluster-scoped): validation
//!   (name `<plural>.<group>`, group, scope, names, one storage version, a schema per
//!   version, approval annotation of protected groups, immutable scope and kind, stored
//!   versions kept) answered 422 Invalid with one cause per field; defaulting (singular,
//!   listKind, conversion `None`); `status.acceptedNames`, NamesAccepted (names another
//!   CRD of the group holds are refused, the last conflict reported), Established,
//!   `storedVersions`. An established CRD's served versions appear in `/apis`,
//!   `/apis/<group>` (preferred version by version priority), `/apis/<group>/<version>`
//!   (scope, short names, categories, verbs, `<plural>/status`) and the OpenAPI index.
//! - Custom objects go through the same writes, store, watches, lists, selectors,
//!   pagination, field management, finalizers and garbage collection as built-in ones.
//!   They are stored once, at the storage version, and served at every served version
//!   with `apiVersion` rewritten (conversion `None`). With a status subresource, create
//!   drops `.status`, main-resource writes keep it, `/status` changes nothing else, and
//!   only non-status changes move `metadata.generation`; without one, `.status` is data and
//!   moves the generation. Strategic merge patches are refused (415). Tables use the
//!   version's `additionalPrinterColumns` (Age when none).
//! - Deleting a CRD marks it (`deletionTimestamp`, `customresourcecleanup.apiextensions.k8s.io`,
//!   Terminating); creates of its objects are refused (405) while the finalizer controller
//!   deletes every object (their own finalizers hold them); then the CRD and its resource
//!   go, and watches of the resource end.
//!
//! # Approximated
//! - Workload status is synthesised (every replica ready) and rollouts are immediate; no
//!   pods behind ReplicaSets. Pod-template hashes have the real shape, not the real
//!   values. Graceful deletion (pods) is immediate.
//! - Defaulting covers the fields above, not every `SetDefaults_` function (probes,
//!   volumes, resource requests are stored as sent). The OpenAPI documents carry the
//!   built-in kinds' real schemas (k8s-openapi's, so `kubectl explain` shows every field)
//!   but not the `x-kubernetes-patch-*` extensions; the server checks no field against
//!   them, and list types come from `schema`'s table.
//! - `$setElementOrder` is ignored; foreground deletion cycles are not unblocked; owners of
//!   kinds not served are never missing.
//! - Lists are always served from the latest state (`resourceVersion`/`resourceVersionMatch`
//!   on lists are ignored); a `continue` token resumes after its key in the current state.
//! - A CRD's status is settled on every write of it, where kube-apiserver's controllers
//!   do it moments later: a CRD is served as soon as its create returns.
//! - Custom objects are not validated, pruned or defaulted against the CRD's OpenAPI schema
//!   (schemas are stored, never applied); their list merge types come from `schema`'s
//!   table like the built-ins', and their OpenAPI schemas are stubs that preserve unknown
//!   fields. Printer
//!   columns take a JSONPath subset (fields, indices, `[*]`, `==`/`!=` filters).
//! - An update that stops serving a version leaves open watches of it running.
//! - The MCS CRDs are installed at every start, so a deleted one is back after a restart.
//!
//! # Left out
//! - Authentication beyond a secure cluster's one bearer token (no client certificates,
//!   no users or service accounts of its own), authorisation (the self-review resources
//!   answer "allowed" for kubeadm's `kubernetes-admin`), admission webhooks, TLS on the
//!   default clusters (only [`ClusterSpec::secure`] ones serve it; they offer HTTP/2 by ALPN,
//!   as kube-apiserver does), protobuf, HTTP/2 in the clear,
//!   aggregated discovery (kubectl falls back to the plain documents).
//! - For custom resources: conversion webhooks, the `/scale` subresource, `selectableFields`,
//!   CEL validation rules, version deprecation warnings.
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
mod audit;
mod backends;
mod cluster;
mod controllers;
mod core;
mod crd;
mod defaults;
mod deletion;
mod discovery;
mod error;
mod field_labels;
mod fieldpath;
mod http;
mod jsonpath;
mod key;
mod kubeconfig;
mod load;
mod managed;
mod openapi_schemas;
mod patch;
mod pools;
mod registry;
mod resources;
mod reviews;
mod scale;
mod schema;
mod secure;
mod seeded;
mod selectors;
mod service_alloc;
mod store;
mod stored;
mod strategic;
mod table;
mod util;
mod validation;
mod watch;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

pub use audit::Access;
pub use cluster::SimCluster;
pub use error::{ApiError, Error, Result};
pub use load::Load;

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
    /// Serve HTTPS with the cluster's own CA and require its bearer token, as a real
    /// API server does (default false: plain HTTP, no authentication).
    pub secure: bool,
    /// A secure cluster offers only HTTP/1.1 by ALPN, as an API server behind an
    /// HTTP/1.1-only TLS proxy does (default false: HTTP/2 or HTTP/1.1, as kube-apiserver).
    pub http1_only: bool,
}

impl ClusterSpec {
    /// A spec with an ephemeral port, region `<name>-region` and zone `<name>-region-a`.
    pub fn new(name: impl Into<String>) -> Self {
        let name = name.into();
        let region = format!("{name}-region");
        Self {
            zone: format!("{region}-a"),
            region,
            name,
            port: 0,
            lb_cidr: None,
            workload_controllers: true,
            secure: false,
            http1_only: false,
        }
    }

    /// Sets region and zone.
    pub fn with_topology(mut self, region: impl Into<String>, zone: impl Into<String>) -> Self {
        self.region = region.into();
        self.zone = zone.into();
        self
    }

    /// Serves HTTPS and requires a bearer token ([`ClusterSpec::secure`]).
    pub fn secure(mut self) -> Self {
        self.secure = true;
        self
    }

    /// Offers only HTTP/1.1 over TLS ([`ClusterSpec::http1_only`]).
    pub fn http1_only(mut self) -> Self {
        self.http1_only = true;
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
