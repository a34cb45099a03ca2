//! Cross-cluster discovery: the cluster registry, the per-cluster watchers and the
//! health-aware service table they feed.
//!
//! Layout:
//! - [`table`]: the service table (one writer, lock-free readers, immutable snapshots).
//!   It knows nothing of Kubernetes.
//! - [`shard`]: pure translation of Services, EndpointSlices and Ingresses into shards.
//! - `cluster`: one task per member cluster: watchers and the `/readyz` probe.
//! - [`registry`]: the kube clients of all members ([`Discovery`]), shared with sync.
//! - [`metrics`]: Prometheus metrics.
//!
//! This crate is the only one that reads member clusters' Services, EndpointSlices,
//! Ingresses and Nodes. It does not answer DNS or proxy traffic, and it never writes to
//! a cluster.

mod cluster;
pub mod metrics;
pub mod registry;
pub mod shard;
pub mod table;

pub use metrics::Metrics;
pub use registry::{Discovery, Member, SimulatorLink};
pub use table::{Snapshot, Table, TableWriter, Update};
