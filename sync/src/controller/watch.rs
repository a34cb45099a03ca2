//! The watches that queue objects: the control-plane watch of every federated type,
//! and each member's drift watch of Meridian-managed copies. Both start afresh when a
//! reload changes the federated types.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll, select_all};
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::Shared;
use super::shared::{key_of, to_value};
use crate::kinds::{self, KindId, KindSet};
use crate::template;

/// One watch event, with the type whose watch it came from.
type KindEvent = (KindId, Result<watcher::Event<DynamicObject>, watcher::Error>);

/// One watch per federated type through `client`, merged into one stream.
fn watch_every_kind(
    client: &Client,
    kinds: &KindSet,
    config: &watcher::Config,
) -> SelectAll<BoxStream<'static, KindEvent>> {
    select_all(kinds.iter().map(|(id, k)| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &k.api_resource());
        watcher(api, config.clone()).default_backoff().map(move |ev| (id, ev)).boxed()
    }))
}

/// Watches every federated type in the control plane. The watch starts afresh when this
/// replica gains the Lease again after losing it: the loss may have been a silent
/// control plane, and a watch on a dead connection would never report new objects.
pub(super) async fn watch_host(sh: Arc<Shared>, shutdown: CancellationToken) {
    let mut leader = sh.leader.clone();
    let mut kinds = sh.kinds.subscribe();
    loop {
        let set = kinds.borrow_and_update().clone();
        let mut events = watch_every_kind(&sh.host, &set, &watcher::Config::default());
        // Whether the Lease was lost since this watch started.
        let mut lost = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = leader.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let leading = *leader.borrow_and_update();
                    if leading && lost {
                        debug!("Lease regained: restarting the control-plane watch");
                        break;
                    }
                    lost |= !leading;
                }
                changed = kinds.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    debug!("federated types changed: restarting the control-plane watch");
                    break;
                }
                item = events.next() => {
                    let Some((kind, ev)) = item else { return };
                    host_event(&sh, kind, ev);
                }
            }
        }
    }
}

/// One control-plane watch event: remember the object and queue it.
fn host_event(sh: &Shared, kind: KindId, ev: Result<watcher::Event<DynamicObject>, watcher::Error>) {
    match ev {
        Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => {
            let key = key_of(kind, &o);
            if o.metadata.deletion_timestamp.is_some() {
                let policy = template::delete_policy(&to_value(&o));
                sh.first_seen_deleting.lock().entry(key.clone()).or_insert(policy);
            }
            sh.known.lock().insert(key.clone());
            if sh.is_leader() {
                sh.queue.add(key);
            }
        }
        Ok(watcher::Event::Delete(o)) => {
            let key = key_of(kind, &o);
            if sh.is_leader() {
                sh.queue.add(key);
            } else {
                sh.forget(&key);
            }
        }
        Ok(watcher::Event::Init) => {}
        Ok(watcher::Event::InitDone) => {
            if sh.watch_errors.lock().remove(&kind).is_some() {
                info!(kind = kinds::get(kind).kind, "the control-plane watch works again");
            }
        }
        Err(e) => host_watch_failed(sh, kind, &e),
    }
}

/// A failed control-plane watch of one type: logged once until it works again (the
/// watcher retries with backoff) and shown by `meridian status`.
fn host_watch_failed(sh: &Shared, kind: KindId, e: &watcher::Error) {
    let k = kinds::get(kind);
    let first = sh.watch_errors.lock().insert(kind, e.to_string()).is_none();
    if first {
        warn!(
            kind = k.kind,
            api_version = %k.api_version(),
            error = %e,
            "cannot watch this type in the control plane (is it served there?); retrying"
        );
    } else {
        debug!(kind = k.kind, error = %e, "control-plane watch failed; retrying");
    }
}

/// Watches Meridian-managed copies in one member: any change or deletion there queues
/// the control-plane object, whose reconcile undoes the drift.
pub(super) async fn watch_member(sh: Arc<Shared>, cluster: String, client: Client) {
    let selector = format!("{}={}", template::MANAGED_LABEL, template::MANAGED_VALUE);
    let config = watcher::Config::default().labels(&selector);
    let mut kinds = sh.kinds.subscribe();
    loop {
        let set = kinds.borrow_and_update().clone();
        let mut events = watch_every_kind(&client, &set, &config);
        loop {
            tokio::select! {
                changed = kinds.changed() => match changed {
                    Ok(()) => break,
                    Err(_) => return,
                },
                item = events.next() => {
                    let Some((kind, ev)) = item else { return };
                    member_event(&sh, &cluster, kind, ev);
                }
            }
        }
    }
}

/// One drift-watch event: queue the control-plane object of a changed or deleted copy.
fn member_event(sh: &Shared, cluster: &str, kind: KindId, ev: Result<watcher::Event<DynamicObject>, watcher::Error>) {
    match ev {
        Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
            if sh.is_leader() {
                sh.queue.add(key_of(kind, &o));
            }
        }
        Ok(_) => {}
        Err(e) => debug!(cluster = %cluster, kind = kinds::get(kind).kind, error = %e, "member watch failed; retrying"),
    }
}
