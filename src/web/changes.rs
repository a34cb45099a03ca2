//! The status page's "recent changes": a bounded ring of what changed in the table, in
//! the order it was seen, each entry numbered so a page asks only for what is new.

use std::collections::VecDeque;
use std::sync::{Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;

/// What a change is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Subject {
    /// A member cluster: its state (Pending, Ready, Offline) or its presence.
    Cluster,
    /// A Service's shard in one cluster: appeared, left, health or endpoint counts.
    Shard,
    /// An Ingress's shard in one cluster: appeared or left.
    Ingress,
    /// The first view of the table, summarised rather than listed object by object.
    Table,
}

/// One change, before the ring numbers and dates it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Event {
    pub(crate) subject: Subject,
    /// The cluster it happened in (empty for [`Subject::Table`]).
    pub(crate) cluster: String,
    /// `namespace/name` of the Service or Ingress, for shards.
    pub(crate) object: Option<String>,
    /// What it was before (`None`: it did not exist).
    pub(crate) from: Option<String>,
    /// What it is now (`None`: it is gone).
    pub(crate) to: Option<String>,
    /// Why, when the table says (an Offline cluster's reason, endpoint counts).
    pub(crate) detail: Option<String>,
}

/// An entry of the ring, as `/api/v1/changes` serves it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Entry {
    /// Increases by one per entry, from 1: a page asks for those after the last it has.
    pub(crate) seq: u64,
    /// When the change was seen (RFC 3339, milliseconds).
    pub(crate) at: String,
    /// The table version it was seen in.
    pub(crate) version: u64,
    pub(crate) subject: Subject,
    pub(crate) cluster: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) object: Option<String>,
    pub(crate) from: Option<String>,
    pub(crate) to: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) detail: Option<String>,
}

/// What a page gets: the entries after the one it asked for, and the table version the
/// ring has caught up with (a page refetches the table's documents when it moves).
#[derive(Debug, Serialize)]
pub(crate) struct Page {
    pub(crate) version: u64,
    pub(crate) last: u64,
    pub(crate) changes: Vec<Entry>,
}

/// The ring. One writer (the change feed) and any number of readers (page requests);
/// a plain mutex, because both sides hold it only to copy a few entries.
pub(crate) struct ChangeLog {
    inner: Mutex<Ring>,
}

struct Ring {
    entries: VecDeque<Entry>,
    capacity: usize,
    last: u64,
    version: u64,
}

impl ChangeLog {
    pub(crate) fn new(capacity: usize) -> Self {
        let ring = Ring { entries: VecDeque::with_capacity(capacity), capacity, last: 0, version: 0 };
        ChangeLog { inner: Mutex::new(ring) }
    }

    /// Appends `events` seen at table `version`, dropping the oldest beyond capacity.
    pub(crate) fn push(&self, version: u64, events: Vec<Event>) {
        let at = chrono::DateTime::<chrono::Utc>::from(SystemTime::now())
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        ring.version = ring.version.max(version);
        for e in events {
            ring.last += 1;
            let entry = Entry {
                seq: ring.last,
                at: at.clone(),
                version,
                subject: e.subject,
                cluster: e.cluster,
                object: e.object,
                from: e.from,
                to: e.to,
                detail: e.detail,
            };
            if ring.entries.len() == ring.capacity {
                ring.entries.pop_front();
            }
            ring.entries.push_back(entry);
        }
    }

    /// The entries numbered after `after` that the ring still holds, oldest first.
    pub(crate) fn since(&self, after: u64) -> Page {
        let ring = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let changes = ring.entries.iter().filter(|e| e.seq > after).cloned().collect();
        Page { version: ring.version, last: ring.last, changes }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(cluster: &str) -> Event {
        Event {
            subject: Subject::Cluster,
            cluster: cluster.into(),
            object: None,
            from: Some("Pending".into()),
            to: Some("Ready".into()),
            detail: None,
        }
    }

    #[test]
    fn the_ring_keeps_the_newest_entries_and_serves_those_after_a_number() {
        let log = ChangeLog::new(3);
        log.push(7, vec![event("a"), event("b")]);
        log.push(9, vec![event("c"), event("d")]);
        let all = log.since(0);
        let clusters: Vec<_> = all.changes.iter().map(|e| (e.seq, e.cluster.as_str(), e.version)).collect();
        assert_eq!(clusters, [(2, "b", 7), (3, "c", 9), (4, "d", 9)], "the oldest entry fell out");
        assert_eq!((all.version, all.last), (9, 4));
        let newer = log.since(3);
        assert_eq!(newer.changes.len(), 1);
        assert_eq!(newer.changes[0].cluster, "d");
        assert!(log.since(4).changes.is_empty(), "nothing after the last");
    }

    #[test]
    fn an_empty_batch_still_moves_the_version() {
        let log = ChangeLog::new(3);
        log.push(5, Vec::new());
        let page = log.since(0);
        assert_eq!((page.version, page.last, page.changes.len()), (5, 0, 0));
    }
}
