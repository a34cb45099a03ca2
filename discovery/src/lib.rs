//! Cross-cluster discovery: the cluster registry, the per-cluster watchers and the
//! health-aware service table they feed.
//!
//! Layout:
//! - [`table`], [`rank`], [`geo`]: the model, re-exported from `meridian-model` (the
//!   table this crate writes; ranking and client location, which discovery's readers
//!   share).
//! - [`shard`]: pure translation of Services, EndpointSlices and Ingresses into shards,
//!   and (`shard::gateway`) of Gateway API HTTPRoutes on their Gateways into the same
//!   shape as Ingresses.
//! - `cluster`: one task per member cluster: watchers and the `/readyz` probe.
//! - `lb_names`: hostname-only load balancers of Services and Ingresses (AWS ELB
//!   and ALB publish a name, not an IP): one
//!   task resolves their names to A/AAAA (hickory-resolver; the system's resolver or
//!   `discovery.lb_name_servers`) and their shards get those addresses as if published,
//!   so DNS answers them and [`health`] probes them. Names are looked up again at nine
//!   tenths of their TTL (bounded to 5 s – 5 min), each lookup under a deadline and at
//!   most 16 at once; after failures the last good addresses are kept for four TTLs (at
//!   least a minute), NXDOMAIN drops them at once.
//! - [`registry`]: the kube clients of all members ([`Discovery`]), shared with sync.
//! - [`metrics`]: Prometheus metrics.
//! - [`health`]: active health checks (TCP, HTTP, HTTPS) of every shard address from this
//!   instance; results go into the table as each shard's `probe`.
//!
//! This crate is the only one that reads member clusters' Services, EndpointSlices,
//! Ingresses, Nodes and Gateway API objects. It does not answer DNS or proxy traffic, and it never writes to
//! a cluster (health probes dial load-balancer addresses, never cluster APIs). Its only
//! DNS queries are the lookups of load balancers' hostnames.

mod causes;
mod client;
mod cluster;
pub mod health;
mod lag;
mod lb_names;
pub mod metrics;
pub mod registry;
pub mod shard;
mod writer;

pub use meridian_model::{geo, rank, table};

pub use health::HealthChecker;
pub use metrics::Metrics;
pub use registry::{Discovery, Member, SimulatorLink};
pub use table::{Snapshot, Table, TableWriter, Update};
