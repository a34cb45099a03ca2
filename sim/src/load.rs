//! The load clients put on one cluster's API server, counted as kube-apiserver's metrics
//! count it: connections open and accepted, watches open (`apiserver_longrunning_requests`)
//! and started, and resource requests (`apiserver_request_total`), of them lists.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What [`crate::SimCluster::load`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Load {
    /// TCP connections open now.
    pub connections_open: u64,
    /// TCP connections accepted since the cluster started.
    pub connections: u64,
    /// Watch streams open now.
    pub watches_open: u64,
    /// Watch streams started.
    pub watches: u64,
    /// Resource requests (every verb, watches included).
    pub requests: u64,
    /// Of them, lists.
    pub lists: u64,
}

/// The live counters.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections_open: AtomicU64,
    connections: AtomicU64,
    watches_open: AtomicU64,
    watches: AtomicU64,
    requests: AtomicU64,
    lists: AtomicU64,
}

/// Something that stays open: a connection or a watch.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Connection,
    Watch,
}

/// Counts one open connection or watch until dropped.
pub(crate) struct Open {
    counters: Arc<Counters>,
    kind: Kind,
}

impl Counters {
    /// Counts one opened; it stays open until the returned guard is dropped.
    pub(crate) fn open(self: &Arc<Self>, kind: Kind) -> Open {
        let (open, total) = self.of(kind);
        open.fetch_add(1, Ordering::Relaxed);
        total.fetch_add(1, Ordering::Relaxed);
        Open { counters: self.clone(), kind }
    }

    /// Counts one resource request.
    pub(crate) fn request(&self, list: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if list {
            self.lists.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn snapshot(&self) -> Load {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Load {
            connections_open: get(&self.connections_open),
            connections: get(&self.connections),
            watches_open: get(&self.watches_open),
            watches: get(&self.watches),
            requests: get(&self.requests),
            lists: get(&self.lists),
        }
    }

    fn of(&self, kind: Kind) -> (&AtomicU64, &AtomicU64) {
        match kind {
            Kind::Connection => (&self.connections_open, &self.connections),
            Kind::Watch => (&self.watches_open, &self.watches),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.counters.of(self.kind).0.fetch_sub(1, Ordering::Relaxed);
    }
}
