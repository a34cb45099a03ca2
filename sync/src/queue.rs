//! The work queue of control-plane objects to reconcile.
//!
//! Like client-go's workqueue: a key is queued at most once, a key being worked on is
//! never handed to a second worker (a change during the work requeues it afterwards),
//! and failures are retried after an exponential backoff that resets on success. A key
//! has at most one pending delayed add ([`Queue::add_after`]), so a deletion that is
//! rechecked every half second stays one recheck however often it is triggered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::kinds::KindId;

/// A control-plane object: its type, namespace (empty for Namespaces) and name. The same
/// key names its copy in every member.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ObjKey {
    pub(crate) kind: KindId,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl fmt::Display for ObjKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = crate::kinds::get(self.kind).kind;
        if self.namespace.is_empty() {
            write!(f, "{kind} {}", self.name)
        } else {
            write!(f, "{kind} {}/{}", self.namespace, self.name)
        }
    }
}

#[derive(Default)]
struct Inner {
    ready: VecDeque<ObjKey>,
    queued: HashSet<ObjKey>,
    active: HashSet<ObjKey>,
    /// Added while active: requeue when the worker is done.
    dirty: HashSet<ObjKey>,
    failures: HashMap<ObjKey, u32>,
    /// When the pending delayed add of each key fires.
    scheduled: HashMap<ObjKey, Instant>,
}

#[derive(Clone, Default)]
pub(crate) struct Queue {
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
}

impl Queue {
    pub(crate) fn add(&self, key: ObjKey) {
        let mut g = self.inner.lock();
        if g.active.contains(&key) {
            g.dirty.insert(key);
        } else if g.queued.insert(key.clone()) {
            g.ready.push_back(key);
            drop(g);
            self.notify.notify_one();
        }
    }

    /// Waits for the next key and marks it active.
    pub(crate) async fn next(&self) -> ObjKey {
        loop {
            let notified = self.notify.notified();
            {
                let mut g = self.inner.lock();
                if let Some(k) = g.ready.pop_front() {
                    g.queued.remove(&k);
                    g.active.insert(k.clone());
                    let more = !g.ready.is_empty();
                    drop(g);
                    if more {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return k;
                }
            }
            notified.await;
        }
    }

    /// Ends the work on `key`. On failure, requeues it after a backoff that doubles from
    /// `first` up to `max`.
    pub(crate) fn done(&self, key: &ObjKey, failed: bool, first: Duration, max: Duration) {
        let delay = {
            let mut g = self.inner.lock();
            g.active.remove(key);
            let delay = if failed {
                let n = g.failures.entry(key.clone()).or_insert(0);
                *n = n.saturating_add(1);
                let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
                Some(first.saturating_mul(factor).min(max))
            } else {
                g.failures.remove(key);
                None
            };
            if g.dirty.remove(key) && delay.is_none() {
                drop(g);
                self.add(key.clone());
            }
            delay
        };
        if let Some(d) = delay {
            let q = self.clone();
            let key = key.clone();
            tokio::spawn(async move {
                tokio::time::sleep(d).await;
                q.add(key);
            });
        }
    }

    /// Requeues `key` after `delay` without counting a failure (a deadline to check).
    /// Without effect when a delayed add of `key` already fires by then.
    pub(crate) fn add_after(&self, key: ObjKey, delay: Duration) {
        let at = Instant::now() + delay;
        {
            let mut g = self.inner.lock();
            if g.scheduled.get(&key).is_some_and(|pending| *pending <= at) {
                return;
            }
            g.scheduled.insert(key.clone(), at);
        }
        let q = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(at).await;
            let mine = {
                let mut g = q.inner.lock();
                let mine = g.scheduled.get(&key) == Some(&at);
                if mine {
                    g.scheduled.remove(&key);
                }
                mine
            };
            // An earlier add replaced this one and fires (or fired) in its place.
            if mine {
                q.add(key);
            }
        });
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().ready.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjKey {
        let config_map = crate::kinds::by_name("ConfigMap").unwrap_or(crate::kinds::NAMESPACE);
        ObjKey { kind: config_map, namespace: "default".into(), name: name.into() }
    }

    #[tokio::test]
    async fn keys_are_deduplicated_and_never_worked_twice_at_once() {
        let q = Queue::default();
        q.add(key("a"));
        q.add(key("a"));
        q.add(key("b"));
        assert_eq!(q.len(), 2);
        let a = q.next().await;
        assert_eq!(a, key("a"));
        // A change while `a` is active is remembered, not handed to another worker.
        q.add(key("a"));
        assert_eq!(q.next().await, key("b"));
        assert_eq!(q.len(), 0);
        q.done(&a, false, Duration::from_millis(1), Duration::from_millis(1));
        assert_eq!(q.next().await, key("a"));
    }

    /// However often a recheck is asked for, one add per key is pending: the earliest.
    #[tokio::test]
    async fn delayed_adds_of_a_key_collapse_into_the_earliest() {
        let q = Queue::default();
        q.add_after(key("a"), Duration::from_millis(200));
        q.add_after(key("a"), Duration::from_millis(50));
        q.add_after(key("a"), Duration::from_millis(100));
        let first = tokio::time::timeout(Duration::from_secs(2), q.next()).await;
        assert_eq!(first.ok(), Some(key("a")));
        q.done(&key("a"), false, Duration::from_millis(1), Duration::from_millis(1));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(q.len(), 0, "a replaced delayed add fired too");
    }

    #[tokio::test]
    async fn failures_come_back_after_a_backoff() {
        let q = Queue::default();
        q.add(key("a"));
        let a = q.next().await;
        q.done(&a, true, Duration::from_millis(20), Duration::from_secs(1));
        assert_eq!(q.len(), 0);
        let back = tokio::time::timeout(Duration::from_secs(2), q.next()).await;
        assert_eq!(back.ok(), Some(key("a")));
    }
}
