//! Meridian's model: what every part reads and one part writes.
//!
//! Layout:
//! - [`table`]: the service table — [`TableWriter`] (the only writer) applies batches of
//!   [`Update`]s and publishes immutable [`Snapshot`]s that [`Table`] readers load without
//!   locks, with a version watch and a change feed for incremental readers.
//! - [`follow`](mod@follow): the one way a reader follows the feed — a [`Projection`] of the table
//!   that [`follow()`] rebuilds or updates in batches until shutdown.
//! - [`rank`]: the ranking policies (roundrobin, weighted, failover, geo, latency) and
//!   their annotations.
//! - [`geo`]: client location (a CIDR table, then a MaxMind database).
//!
//! It knows nothing of Kubernetes (discovery translates cluster objects into updates),
//! of DNS or of HTTP: `dns` and `lb` read it without linking a Kubernetes client.

pub mod follow;
pub mod geo;
pub mod rank;
pub mod table;

pub use follow::{Follower, Projection, follow};
pub use table::{Snapshot, Table, TableWriter, Update};
