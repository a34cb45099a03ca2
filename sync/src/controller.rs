//! The sync controller: watches, the work queue's workers, and the reconcile of one
//! control-plane object against every member.
//!
//! Triggers: every change of a federated object in the control plane; every change of a
//! Meridian-managed copy in a member (drift: an edit or a delete there is undone); a
//! member's state changing in discovery's table (followed as it is published), or its
//! gate opening; gaining the Lease; and a periodic resync. Reconciles run only while this
//! replica holds the Lease.
//!
//! A reconcile reads the object fresh from the control plane and each member copy fresh
//! from its member, so it never acts on a stale cache; a member copy that already
//! matches is not written, which is what lets watch events of Meridian's own writes
//! settle.
//!
//! Deadlines and isolation: every request has the `[sync] request_timeout` deadline
//! ([`crate::gate`]). A reconcile (and a deletion) talks to its members concurrently, so
//! a healthy member's write never waits for another member's answer; a member that is
//! not Ready, or whose gate is shut after a timeout, is skipped at once (logged, counted,
//! an Event when its state for the object changes) and reconciled again when it is back.
//! A worker thus waits at most one request timeout for a member that has just gone
//! silent, and not at all for one already known to be.
//!
//! Layout, one concern per module:
//! - `settings`: the part of the configuration the controller reads.
//! - `shared`: the state every task shares; `requests`: bounded requests, Events and
//!   skipped members.
//! - `worker`: the workers that take keys off the queue; `resync`: full resyncs.
//! - `watch`: the control-plane watch and the members' drift watches; `supervise`: keeps
//!   a drift watch per member, probes shut gates, follows the clusters' states.
//! - `reconcile`: one object; `member`: its copy in one member; `replicas`: the replica
//!   plan over the members; `write`: what a write to a member did; `host_status`: the
//!   status roll-up and the sync-status annotation on the control-plane object.
//! - `deletion`: an object marked for deletion; `member_deletion`: its copy in one member;
//!   `leftovers`: copies a released deletion left in members it could not reach,
//!   recorded in the control plane and finished when the member answers again;
//!   `release_member`: a member that left the configuration has its copies unmarked.

mod deletion;
mod host_status;
mod leftovers;
mod member;
mod member_deletion;
mod reconcile;
mod release_member;
mod replicas;
mod requests;
mod resync;
mod settings;
mod shared;
mod supervise;
mod watch;
mod worker;
mod write;

use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use settings::Settings;
pub(crate) use shared::Shared;

/// Concurrent reconciles. Each one talks to every member, so a few suffice.
const WORKERS: usize = 4;

/// Spawns the controller's tasks; they stop when `shutdown` is cancelled.
pub(crate) fn spawn(shared: Arc<Shared>, shutdown: CancellationToken) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::new();
    for _ in 0..WORKERS {
        tasks.push(tokio::spawn(worker::worker(shared.clone(), shutdown.clone())));
    }
    tasks.push(tokio::spawn(watch::watch_host(shared.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(supervise::supervise(shared.clone(), shutdown.clone())));
    tasks.push(tokio::spawn(resync::resync(shared, shutdown)));
    tasks
}
