//! Hostname-only load balancers: cloud load balancers that publish a name instead of an
//! address (AWS ELB does) are resolved to A and AAAA records, and their shards get those
//! addresses as if the load balancer had published them, so DNS answers them and the
//! health checker probes them like any other.
//!
//! One resolver task per [`crate::Discovery`] ([`LbNames`]) resolves every name that some
//! cluster task wants; each cluster task holds a [`NameUsers`] (which of its Services and
//! Ingresses use which names), tells the task which names it needs, and re-publishes a
//! shard when one of its names resolves differently.
//!
//! - Only Services and Ingresses whose load balancer has no IP are resolved: a valid host name (see
//!   `name::check`; cluster input is hostile), queried fully qualified, at most
//!   [`name::MAX_NAMES_PER_SERVICE`] per Service and [`state::MAX_ADDRS`] addresses per
//!   family.
//! - A name is looked up again at nine tenths of its TTL, bounded to 5 s – 5 min.
//! - Every lookup has a deadline ([`lookup::LOOKUP_DEADLINE`]) and at most
//!   [`task::MAX_IN_FLIGHT`] run at once, so a silent resolver delays names by the
//!   deadline at worst and never holds up a cluster task.
//! - After a failed lookup it is retried (5 s, doubling up to a minute); the last good
//!   addresses are kept until four (bounded) TTLs, and at least a minute, have passed
//!   since they were confirmed, then dropped. NXDOMAIN or NODATA drops them at once.
//! - The resolver is the system's (`/etc/resolv.conf`, no hosts file), or the servers of
//!   `discovery.lb_name_servers`.
//!
//! Layout: `name` (which hostnames are looked up), `state` (one name's addresses and
//! timing, pure), `lookup` (the hickory resolver and one lookup), `task` (the resolver
//! task), `users` (a cluster task's side).

mod lookup;
mod name;
mod state;
mod task;
mod users;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};

use meridian_config::DiscoveryConfig;
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;

pub(crate) use name::wanted;
pub(crate) use task::Resolved;
pub(crate) use users::{NameUsers, User, Via};

use crate::metrics::Metrics;
use lookup::ResolverSettings;
use task::{Command, Task};

/// The resolver task, as discovery holds it.
pub(crate) struct LbNames {
    commands: UnboundedSender<Command>,
    next_id: AtomicU64,
    task: JoinHandle<()>,
}

impl LbNames {
    /// Starts the resolver task (inside a Tokio runtime). It uses the system's resolver
    /// until [`LbNames::configure`] says otherwise.
    pub(crate) fn spawn(metrics: Metrics) -> Self {
        let (commands, rx) = unbounded_channel();
        let task = tokio::spawn(Task::new(metrics).run(rx));
        Self { commands, next_id: AtomicU64::new(0), task }
    }

    /// Applies `discovery.lb_name_servers`.
    pub(crate) fn configure(&self, config: &DiscoveryConfig) {
        let settings = ResolverSettings { name_servers: config.lb_name_servers.clone() };
        let _ = self.commands.send(Command::Configure(settings));
    }

    /// A cluster task's handle on the resolver.
    pub(crate) fn subscribe(&self) -> NameUsers {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = unbounded_channel();
        let _ = self.commands.send(Command::Join { id, tx });
        NameUsers::new(id, self.commands.clone(), rx)
    }

    /// Stops the resolver task.
    pub(crate) fn shutdown(&self) {
        self.task.abort();
    }
}
