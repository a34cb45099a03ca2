//! Cross-cluster discovery: the cluster registry, the per-cluster watchers and the
//! health-aware service table they feed.
//!
//! Layout:
//! - [`table`]: the service table (one writer, lock-free readers, immutable snapshots).
//!   It knows nothing of Kubernetes.
//!
//! This crate is the only one that reads member clusters' Services, EndpointSlices,
//! Ingresses and Nodes. It does not answer DNS or proxy traffic.

pub mod table;

pub use table::{Snapshot, Table, TableWriter, Update};
