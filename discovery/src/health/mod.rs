//! Active health checks of every shard address, from this Meridian instance.
//!
//! [`spawn`] starts one manager task. It follows the table through the model's
//! `follow::Follower` (its set of targets is a `follow::Projection`: rebuilt when the
//! feed says so, else updated for the services a change names), keeps one probe task
//! per (shard, address), and owns all probe state: each result moves a small state
//! machine ([`AddrState`]) with hysteresis, and a shard's [`Probe`](crate::table::Probe) goes
//! back into the table through the writer's channel ([`Update::Probe`](crate::table::Update::Probe)) only when its state changes or
//! its round-trip time moves enough to matter — the table is never republished per probe.
//!
//! What is probed, first match wins:
//! - the Service annotation `meridian.io/health-check`: `off`, `tcp`, `tcp:<port>`,
//!   `http:<path>`, `http:<port><path>`, `https:…` (e.g. `http:/healthz`,
//!   `https:8443/ready`); a malformed value is a [`Problem`](crate::rank::Problem) and the cluster's settings
//!   apply;
//! - `[health.clusters.<name>]`, then `[health]`.
//!
//! The port is the annotation's, else the Service's first TCP port. A hostname-only load
//! balancer's shard carries the addresses its names resolve to (discovery's `lb_names`),
//! so those are probed like published IPs, and an address that goes away with a new
//! answer stops being probed; a shard whose names resolve to nothing yet, and headless
//! shards, are not probed.
//!
//! A shard is Up when any of its addresses is Up, Down when all are Down (a dual-stack
//! shard whose IPv6 path is broken from here still serves IPv4 clients). Its RTT is the
//! lowest RTT among its Up addresses, an address's RTT being the lowest TCP connect time
//! of its last five probes: connect time is one network round trip, free of the
//! backend's processing time, and the minimum leaves out the delays a busy host adds.
//!
//! In a fleet ([`spawn_in_fleet`]), each address's own state after its hysteresis is
//! this instance's ballot (`meridian_fleet::Fleet::observe`), and the table is told the
//! fleet's verdict per address instead (the own state while no live instance has one),
//! republished whenever the fleet's verdict changes; a restarted instance publishes the
//! fleet's verdicts before its own first probes.
//!
//! Layout:
//! - `annotation`: the `meridian.io/health-check` annotation ([`parse_annotation`]).
//! - `spec`: the check a shard gets ([`CheckSpec`], [`spec_for`]).
//! - `state`: an address's hysteresis ([`AddrState`]), a shard's verdict, when to publish.
//! - `probe`: one check ([`probe`]) and the task that repeats it per address.
//! - `tls`: the HTTPS checks' client configuration (certificates are not verified).
//! - `targets`: the probed shards, fed from the table as a projection.
//! - `manager`: the task's loop (table batches, probe results, reloads, shutdown).
//! - `checker`: [`spawn`], [`HealthChecker`] and [`HealthView`].
//! - `metrics`: the `meridian_health_*` metrics.

mod annotation;
mod checker;
mod manager;
mod metrics;
mod probe;
mod spec;
mod state;
mod targets;
mod tls;

use std::sync::Arc;

pub use annotation::{AnnotationCheck, AnnotationError, HEALTH_CHECK_ANNOTATION, parse_annotation};
pub use checker::{HealthChecker, HealthView, TargetStatus, spawn, spawn_in_fleet};
pub use probe::{ProbeError, parse_status_line, probe};
pub use spec::{CheckSpec, spec_for};
pub use state::AddrState;

use crate::table::ObjectKey;

/// (cluster, service) of a shard.
type ShardKey = (Arc<str>, ObjectKey);

#[cfg(test)]
mod tests;
