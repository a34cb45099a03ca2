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
//! - [`health`]: active health checks (TCP, HTTP, HTTPS) of every shard address from this
//!   instance; results go into the table as each shard's `probe`.
//! - [`geo`] and [`rank`]: client location (network table, MaxMind DB) and the ranking
//!   policies (roundrobin, weighted, failover, geo, latency). Pure: shared by the DNS
//!   answers and the proxy, and free of Kubernetes.
//!
//! This crate is the only one that reads member clusters' Services, EndpointSlices,
//! Ingresses and Nodes. It does not answer DNS or proxy traffic, and it never writes to
//! a cluster (health probes dial load-balancer addresses, never cluster APIs).

mod cluster;
pub mod geo;
pub mod health;
pub mod metrics;
pub mod rank;
pub mod registry;
pub mod shard;
pub mod table;

pub use health::HealthChecker;
pub use metrics::Metrics;
pub use registry::{Discovery, Member, SimulatorLink};
pub use table::{Snapshot, Table, TableWriter, Update};
