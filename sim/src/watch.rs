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

use crate::core::Core;
use crate::error::ApiError;
use crate::resources::{self, ResId, ResourceDef};
use crate::selectors::{FieldSelector, LabelSelector};
use crate::store::{Event, EventType};
use crate::stored::Stored;
use crate::table;

/// How often BOOKMARK events are sent when asked for (the real server: about a minute;
/// shorter keeps clients' resume points fresh in tests).
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(15);

/// What a watch selects and how it renders.
#[derive(Debug, Clone)]
pub(crate) struct WatchSpec {
    /// The resource at the version the watch was opened for.
    pub(crate) def: Arc<ResourceDef>,
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
    /// Whether the watch covers the object's resource, namespace and name.
    fn selects_key(&self, res: ResId, ns: &str, name: &str) -> bool {
        res == self.def.id
            && self.ns.as_deref().is_none_or(|n| n == ns)
            && self.name.as_deref().is_none_or(|n| n == name)
    }

    fn selects_content(&self, obj: &Value) -> bool {
        self.labels.matches(obj) && self.fields.matches(obj)
    }

    /// Whether selectors can tell one state of an object from another.
    fn filtered(&self) -> bool {
        !(self.labels.is_empty() && self.fields.is_empty())
    }

    /// The event type this watcher sees for `ev`, whose object decodes to `now`, if any
    /// (selector transitions become ADDED/DELETED). `old` is the earlier state, decoded
    /// only when [`WatchSpec::filtered`]: without selectors, any earlier state was seen.
    fn view(&self, ev: &Event, now: &Value, old: Option<&Value>) -> Option<EventType> {
        let now = self.selects_content(now);
        let before = match old {
            Some(o) => self.selects_content(o),
            None => ev.old.is_some(),
        };
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

    /// The event as this watcher sees it: its type and the object to send. An object
    /// leaving the selector goes out as DELETED carrying its last state that matched,
    /// stamped with the event's resourceVersion, as the watch cache's `cacheWatcher`
    /// sends it. Events of other resources, namespaces and names are passed over before
    /// anything is decoded.
    fn seen(&self, ev: &Event) -> Option<(EventType, Value)> {
        if !self.selects_key(ev.res, &ev.ns, &ev.name) {
            return None;
        }
        let now = ev.object.value();
        let old = ev.old.as_ref().filter(|_| self.filtered()).map(Stored::value);
        let kind = self.view(ev, &now, old.as_ref())?;
        let left = ev.kind == EventType::Modified && kind == EventType::Deleted;
        let Some(mut last) = old.filter(|_| left) else { return Some((kind, now)) };
        if let Some(m) = crate::util::meta_mut(&mut last) {
            m.insert("resourceVersion".into(), Value::String(ev.rv.to_string()));
        }
        Some((kind, last))
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
                let t = table::table(&self.spec.def, [obj], json!({}), !self.columns_sent, full);
                self.columns_sent = true;
                t
            }
            Render::Meta => table::partial(obj),
            Render::Object => self.spec.def.view(obj).into_owned(),
        };
        encode(&json!({"type": kind, "object": object}))
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> Bytes {
        let def = &self.spec.def;
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
    let kill = core.kill_watches.subscribe();
    let mut renderer = Renderer { spec, columns_sent: false };
    let (initial, last_rv, events) = match opening(&core, &mut renderer, start) {
        Ok(opening) => opening,
        Err(e) => {
            let _ = tx.try_send(error_line(&e));
            return rx;
        }
    };
    let open = core.load.open(crate::load::Kind::Watch);
    let feed = Feed { core, tx, renderer, last_rv, events };
    tokio::spawn(async move {
        feed.run(initial, kill, bookmarks, timeout).await;
        drop(open);
    });
    rx
}

/// The lines a stream opens with, the resourceVersion they reach and the subscription for
/// what follows. Snapshot and subscription are taken under one read lock, so nothing is
/// missed or doubled.
fn opening(core: &Core, r: &mut Renderer, start: Start) -> Result<(Vec<Bytes>, u64, Events), ApiError> {
    let g = core.store.read();
    let mut lines = Vec::new();
    match start {
        Start::Current { initial_end_bookmark } => {
            let rv = g.rv();
            let ns = r.spec.ns.clone();
            for (k, stored) in g.range(r.spec.def.id, ns.as_deref(), None) {
                if !r.spec.selects_key(k.0, &k.1, &k.2) {
                    continue;
                }
                let obj = stored.value();
                if r.spec.selects_content(&obj) {
                    lines.push(r.line("ADDED", &obj));
                }
            }
            if initial_end_bookmark {
                lines.push(r.bookmark(rv, true));
            }
            Ok((lines, rv, g.subscribe()))
        }
        Start::After(rv) => {
            let (replay, events) = g.watch_from(rv)?;
            let mut last = rv;
            for ev in replay {
                last = ev.rv;
                if let Some((kind, obj)) = r.spec.seen(&ev) {
                    lines.push(r.line(kind.as_str(), &obj));
                }
            }
            Ok((lines, last.max(rv), events))
        }
    }
}

type Events = broadcast::Receiver<Arc<Event>>;

/// What woke a running stream up.
enum Wake {
    /// Told to stop, the client went away, or the timeout passed.
    Stop,
    Event(Result<Arc<Event>, broadcast::error::RecvError>),
    Bookmark,
}

/// A running stream: forwards the events its spec selects to the client.
struct Feed {
    core: Arc<Core>,
    tx: mpsc::Sender<Bytes>,
    renderer: Renderer,
    /// The last resourceVersion passed: events up to it are never sent again, and it is
    /// the only safe resume point a bookmark may carry.
    last_rv: u64,
    events: Events,
}

impl Feed {
    async fn run(
        mut self,
        initial: Vec<Bytes>,
        mut kill: tokio::sync::watch::Receiver<u64>,
        bookmarks: bool,
        timeout: Duration,
    ) {
        for line in initial {
            if !self.send(line).await {
                return;
            }
        }
        let deadline = tokio::time::sleep(timeout);
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_INTERVAL, BOOKMARK_INTERVAL);
        loop {
            let wake = tokio::select! {
                // Biased so a stream told to stop (drop_watches, stop) delivers nothing
                // written after that call, even if events are already queued.
                biased;
                _ = kill.changed() => Wake::Stop,
                _ = self.tx.closed() => Wake::Stop,
                _ = &mut deadline => Wake::Stop,
                got = self.events.recv() => Wake::Event(got),
                _ = tick.tick(), if bookmarks => Wake::Bookmark,
            };
            let go_on = match wake {
                Wake::Stop => false,
                Wake::Event(Ok(ev)) => self.forward(&ev).await && !self.resource_removed(&ev),
                Wake::Event(Err(broadcast::error::RecvError::Lagged(_))) => self.catch_up().await,
                Wake::Event(Err(broadcast::error::RecvError::Closed)) => false,
                Wake::Bookmark => {
                    let line = self.renderer.bookmark(self.last_rv, false);
                    self.send(line).await
                }
            };
            if !go_on {
                return;
            }
        }
    }

    /// Whether `ev` removes the CRD that defines the watched resource. The resource is no
    /// longer served, so the stream ends (and the client relists into a 404), as
    /// kube-apiserver ends a deleted CRD's watches; a CRD created again under the name
    /// is a new resource.
    fn resource_removed(&self, ev: &Event) -> bool {
        ev.kind == EventType::Deleted
            && ev.res == resources::CRDS
            && self.renderer.spec.def.custom.as_ref().is_some_and(|c| c.crd == ev.name)
    }

    /// Sends one line; false once the client is gone.
    async fn send(&self, line: Bytes) -> bool {
        self.tx.send(line).await.is_ok()
    }

    /// Sends the event as this watcher sees it, unless already passed.
    async fn forward(&mut self, ev: &Event) -> bool {
        if ev.rv <= self.last_rv {
            return true;
        }
        self.last_rv = ev.rv;
        let line = match self.renderer.spec.seen(ev) {
            Some((kind, obj)) => self.renderer.line(kind.as_str(), &obj),
            None => return true,
        };
        self.send(line).await
    }

    /// After falling behind the broadcast channel: replays from history, or ends the
    /// stream with 410 when history has moved on too.
    async fn catch_up(&mut self) -> bool {
        let caught_up = self.core.store.read().watch_from(self.last_rv);
        match caught_up {
            Ok((replay, events)) => {
                self.events = events;
                for ev in replay {
                    if !self.forward(&ev).await || self.resource_removed(&ev) {
                        return false;
                    }
                }
                true
            }
            Err(e) => {
                let _ = self.tx.send(error_line(&e)).await;
                false
            }
        }
    }
}

/// The server-side default watch timeout: random within 5–10 minutes, so many clients
/// do not reconnect in lockstep.
pub(crate) fn default_timeout() -> Duration {
    Duration::from_secs(300 + crate::util::random_u64() % 300)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Key;

    #[test]
    fn selector_transitions_become_added_and_deleted() -> Result<(), ApiError> {
        let spec = WatchSpec {
            def: resources::BUILTINS[resources::SERVICES].clone(),
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
            object: Stored::new(&new),
            old: old.as_ref().map(Stored::new),
        };
        let view = |e: Event| spec.seen(&e).map(|(kind, _)| kind);
        let web = json!({"metadata": {"labels": {"app": "web"}}});
        let db = json!({"metadata": {"labels": {"app": "db"}}});
        assert_eq!(view(ev(EventType::Modified, web.clone(), Some(db.clone()))), Some(EventType::Added));
        assert_eq!(view(ev(EventType::Modified, db.clone(), Some(web.clone()))), Some(EventType::Deleted));
        // Leaving the selector: DELETED with the last matching state at the event's version.
        let left = ev(EventType::Modified, db.clone(), Some(web.clone()));
        let sent = spec.seen(&left).map(|(_, o)| o);
        assert_eq!(sent, Some(json!({"metadata": {"labels": {"app": "web"}, "resourceVersion": "1"}})));
        assert_eq!(view(ev(EventType::Modified, db.clone(), Some(db.clone()))), None);
        assert_eq!(view(ev(EventType::Added, web.clone(), None)), Some(EventType::Added));
        assert_eq!(view(ev(EventType::Deleted, web, None)), Some(EventType::Deleted));
        Ok(())
    }
}
