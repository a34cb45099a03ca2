//! Cross-cluster discovery: the cluster registry, the per-cluster watchers and the
//! health-aware service table they feed.
//!
//! Layout:
//! - [`table`], [`rank`], [`geo`]: the model, re-exported from `meridian-model` (the
//!   table this crate writes; ranking and client location, which discovery's readers
//!   share).
//! - [`shard`]: pure translation of Services, EndpointSlices and Ingresses into shards.
//! - `cluster`: one task per member cluster: watchers and the `/readyz` probe.
//! - [`registry`]: the kube clients of all members ([`Discovery`]), shared with sync.
//! - [`metrics`]: Prometheus metrics.
//! - [`health`]: active health checks (TCP, HTTP, HTTPS) of every shard address from this
//!   instance; results go into the table as each shard's `probe`.
//!
//! This crate is the only one that reads member clusters' Services, EndpointSlices,
//! Ingresses and Nodes. It does not answer DNS or proxy traffic, and it never writes to
//! a cluster (health probes dial load-balancer addresses, never cluster APIs).

mod causes;
mod cluster;
pub mod health;
pub mod metrics;
pub mod registry;
pub mod shard;

pub use meridian_model::{geo, rank, table};

pub use health::HealthChecker;
pub use metrics::Metrics;
pub use registry::{Discovery, Member, SimulatorLink};
pub use table::{Snapshot, Table, TableWriter, Update};
