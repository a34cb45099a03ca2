//! A cluster task's side of the resolver: which of its Services and Ingresses are
//! reached through which hostnames, and what those resolve to now.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use super::task::{Command, Resolved};
use crate::table::ObjectKey;

/// What kind of object publishes a load-balancer status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Via {
    Service,
    Ingress,
    /// A Gateway API HTTPRoute, through its parent Gateways' addresses.
    Route,
}

/// An object reached through hostnames: its kind and key (a Service and an Ingress may
/// share a name).
pub(crate) type User = (Via, ObjectKey);

/// One cluster task's names. Dropping it (the task stops) is enough for the resolver to
/// forget the names only it wanted.
pub(crate) struct NameUsers {
    id: u64,
    commands: UnboundedSender<Command>,
    results: UnboundedReceiver<Resolved>,
    /// Services and Ingresses by hostname.
    users: HashMap<Arc<str>, BTreeSet<User>>,
    /// Hostnames by object: what `users` holds for it, to undo on a change.
    names_of: HashMap<User, Vec<Arc<str>>>,
    /// The latest addresses of each wanted name that has any.
    addrs: HashMap<Arc<str>, Arc<[IpAddr]>>,
}

impl NameUsers {
    pub(super) fn new(id: u64, commands: UnboundedSender<Command>, results: UnboundedReceiver<Resolved>) -> Self {
        Self { id, commands, results, users: HashMap::new(), names_of: HashMap::new(), addrs: HashMap::new() }
    }

    /// Records that `key` is reached through `names` (checked ones; empty for none),
    /// telling the resolver about each name that gains its first user or loses its last,
    /// and returns the addresses they resolve to now (sorted, once each).
    pub(crate) fn set(&mut self, key: &User, names: Vec<Arc<str>>) -> Vec<IpAddr> {
        let old = if names.is_empty() {
            self.names_of.remove(key).unwrap_or_default()
        } else {
            self.names_of.insert(key.clone(), names.clone()).unwrap_or_default()
        };
        for name in old.iter().filter(|n| !names.contains(n)) {
            self.release(key, name);
        }
        for name in names.iter().filter(|n| !old.contains(n)) {
            let users = self.users.entry(name.clone()).or_default();
            if users.is_empty() {
                let _ = self.commands.send(Command::Want { id: self.id, name: name.clone() });
            }
            users.insert(key.clone());
        }
        let mut out: Vec<IpAddr> =
            names.iter().filter_map(|n| self.addrs.get(n)).flat_map(|a| a.iter().copied()).collect();
        out.sort();
        out.dedup();
        out
    }

    fn release(&mut self, key: &User, name: &Arc<str>) {
        let Some(users) = self.users.get_mut(name) else { return };
        users.remove(key);
        if users.is_empty() {
            self.users.remove(name);
            self.addrs.remove(name);
            let _ = self.commands.send(Command::Unwant { id: self.id, name: name.clone() });
        }
    }

    /// The next change of a name's addresses. Never returns if the resolver has gone (it
    /// stops only with discovery), so a `select!` loop does not spin on a closed channel.
    pub(crate) async fn next(&mut self) -> Resolved {
        match self.results.recv().await {
            Some(r) => r,
            None => std::future::pending().await,
        }
    }

    /// A change already sent, if any (tests drive the struct without a resolver task).
    #[cfg(test)]
    pub(super) fn results_now(&mut self) -> Option<Resolved> {
        self.results.try_recv().ok()
    }

    /// Takes in a change; returns the objects whose shards it changes.
    pub(crate) fn resolved(&mut self, r: Resolved) -> Vec<User> {
        let Some(users) = self.users.get(&r.name) else { return Vec::new() };
        let users = users.iter().cloned().collect();
        if r.addrs.is_empty() {
            self.addrs.remove(&r.name);
        } else {
            self.addrs.insert(r.name, r.addrs);
        }
        users
    }
}
