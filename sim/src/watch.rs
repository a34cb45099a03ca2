//! Watch streams: newline-delimited JSON events, one chunk (and flush) per event.
//!
//! A stream starts either with synthetic ADDED events for the current state (no
//! resourceVersion, `0`, or `sendInitialEvents=true`) or by replaying history after the
//! given resourceVersion; a version older than history yields one ERROR event with a
//! 410 Expired Status, as the real server does. A watcher that falls behind the broadcast
//! channel catches up from history (or gets 410 if that, too, has moved on).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{broadcast, mpsc};

use crate::cluster::Core;
use crate::error::ApiError;
use crate::resources::{self, ResId};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType};
use crate::table;

/// How often BOOKMARK events are sent when asked for (the real server: about a minute;
/// shorter keeps clients' resume points fresh in tests).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);

/// What a watch selects and how it renders.
#[derive(Debug, Clone)]
pub(crate) struct WatchSpec {
    pub(crate) res: ResId,
    pub(crate) ns: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) labels: LabelSelector,
    pub(crate) fields: FieldSelector,
    pub(crate) render: Render,
}

/// How objects are written on the wire, from the request's Accept header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Render {
    /// The stored object.
    Object,
    /// A `meta.k8s.io/v1 Table` (kubectl's human output); `true` = `includeObject=Object`.
    Table(bool),
    /// `PartialObjectMetadata` (kube-rs metadata watches).
    Meta,
}

/// Where the stream starts.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Start {
    /// Synthetic ADDED for current objects, then live events; `initial_end_bookmark` adds
    /// the `k8s.io/initial-events-end` BOOKMARK (`sendInitialEvents=true`).
    Current { initial_end_bookmark: bool },
    /// Replay history after this resourceVersion, then live events.
    After(u64),
}

impl WatchSpec {
    fn selects(&self, res: ResId, ns: &str, name: &str, obj: &Value) -> bool {
        res == self.res
            && self.ns.as_deref().is_none_or(|n| n == ns)
            && self.name.as_deref().is_none_or(|n| n == name)
            && self.labels.matches(obj)
            && self.fields.matches(obj)
    }

    /// The event type this watcher sees for `ev`, if any (selector transitions become
    /// ADDED/DELETED).
    fn view(&self, ev: &Event) -> Option<EventType> {
        let now = self.selects(ev.res, &ev.ns, &ev.name, &ev.object);
        let before = ev.old.as_ref().is_some_and(|o| self.selects(ev.res, &ev.ns, &ev.name, o));
        match ev.kind {
            EventType::Added if now => Some(EventType::Added),
            EventType::Deleted if now || before => Some(EventType::Deleted),
            EventType::Modified => match (before, now) {
                (true, true) => Some(EventType::Modified),
                (false, true) => Some(EventType::Added),
                (true, false) => Some(EventType::Deleted),
                (false, false) => None,
            },
            _ => None,
        }
    }
}

struct Renderer {
    spec: WatchSpec,
    columns_sent: bool,
}

impl Renderer {
    fn line(&mut self, kind: &str, obj: &Value) -> Bytes {
        let object = match self.spec.render {
            Render::Table(full) => {
                let t = table::table(self.spec.res, [obj], json!({}), !self.columns_sent, full);
                self.columns_sent = true;
                t
            }
            Render::Meta => table::partial(obj),
            Render::Object => obj.clone(),
        };
        encode(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let def = resources::def(self.spec.res);
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        encode(
            &json!({"type": "BOOKMARK", "object": {"kind": def.kind, "apiVersion": def.api_version(), "metadata": meta}}),
        )
    }
}

fn encode(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap_or_default();
    b.push(b'\n');
    Bytes::from(b)
}

/// A single ERROR event line carrying `err` as a Status.
pub(crate) fn error_line(err: &ApiError) -> Bytes {
    encode(&json!({"type": "ERROR", "object": err.to_status()}))
}

/// Starts a watch; the returned receiver yields the body chunks and ends when the stream
/// does (timeout, `drop_watches`, server stop, or the client going away).
pub(crate) fn start(
    core: Arc<Core>,
    spec: WatchSpec,
    start: Start,
    bookmarks: bool,
    timeout: Duration,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel::<Bytes>(256);
    let mut kill = core.kill_watches.subscribe();
    let mut r = Renderer { spec, columns_sent: false };

    // Snapshot and subscription are taken under one read lock: nothing is missed or doubled.
    let mut initial: Vec<Bytes> = Vec::new();
    let (mut last_rv, mut events) = {
        let g = core.store.read();
        match start {
            Start::Current { initial_end_bookmark } => {
                let rv = g.rv();
                let ns = r.spec.ns.clone();
                for (k, obj) in g.range(r.spec.res, ns.as_deref(), None) {
                    if r.spec.selects(k.0, &k.1, &k.2, obj) {
                        initial.push(r.line("ADDED", obj));
                    }
                }
                if initial_end_bookmark {
                    initial.push(r.bookmark(rv, true));
                }
                (rv, g.subscribe())
            }
            Start::After(rv) => match g.watch_from(rv) {
                Ok((replay, rx)) => {
                    let mut last = rv;
                    for ev in replay {
                        last = ev.rv;
                        if let Some(kind) = r.spec.view(&ev) {
                            initial.push(r.line(kind.as_str(), &ev.object));
                        }
                    }
                    (last.max(rv), rx)
                }
                Err(e) => {
                    let _ = tx.try_send(error_line(&e));
                    return rx;
                }
            },
        }
    };

    tokio::spawn(async move {
        for line in initial {
            if tx.send(line).await.is_err() {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
        loop {
            tokio::select! {
                // Biased so a stream told to stop (drop_watches, stop) delivers nothing
                // written after that call, even if events are already queued.
                biased;
                _ = kill.changed() => return,
                _ = tx.closed() => return,
                _ = &mut deadline => return,
                got = events.recv() => match got {
                    Ok(ev) => {
                        if ev.rv <= last_rv {
                            continue;
                        }
                        last_rv = ev.rv;
                        if let Some(kind) = r.spec.view(&ev)
                            && tx.send(r.line(kind.as_str(), &ev.object)).await.is_err() {
                                return;
                            }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        let caught_up = core.store.read().watch_from(last_rv);
                        match caught_up {
                            Ok((replay, rx)) => {
                                events = rx;
                                for ev in replay {
                                    last_rv = ev.rv;
                                    if let Some(kind) = r.spec.view(&ev)
                                        && tx.send(r.line(kind.as_str(), &ev.object)).await.is_err() {
                                            return;
                                        }
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(error_line(&e)).await;
                                return;
                            }
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick(), if bookmarks => {
                    // Only versions whose events this watcher has already passed are safe
                    // resume points.
                    if tx.send(r.bookmark(last_rv, false)).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

/// The server-side default watch timeout: random within 5–10 minutes, so many clients
/// do not reconnect in lockstep.
pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(300 + crate::util::random_u64() % 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Key;

    #[test]
    fn selector_transitions_become_added_and_deleted() -> Result<(), ApiError> {
        let spec = WatchSpec {
            res: resources::SERVICES,
            ns: None,
            name: None,
            labels: LabelSelector::parse("app=web")?,
            fields: FieldSelector::default(),
            render: Render::Object,
        };
        let k: Key = (resources::SERVICES, "d".into(), "a".into());
        let ev = |kind, new: Value, old: Option<Value>| Event {
            rv: 1,
            kind,
            res: k.0,
            ns: k.1.clone(),
            name: k.2.clone(),
            object: Arc::new(new),
            old: old.map(Arc::new),
        };
        let web = json!({"metadata": {"labels": {"app": "web"}}});
        let db = json!({"metadata": {"labels": {"app": "db"}}});
        assert_eq!(spec.view(&ev(EventType::Modified, web.clone(), Some(db.clone()))), Some(EventType::Added));
        assert_eq!(spec.view(&ev(EventType::Modified, db.clone(), Some(web.clone()))), Some(EventType::Deleted));
        assert_eq!(spec.view(&ev(EventType::Modified, db.clone(), Some(db.clone()))), None);
        assert_eq!(spec.view(&ev(EventType::Added, web.clone(), None)), Some(EventType::Added));
        assert_eq!(spec.view(&ev(EventType::Deleted, web, None)), Some(EventType::Deleted));
        Ok(())
    }
}
