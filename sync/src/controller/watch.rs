//! The watches that queue objects: the control-plane watch of every federated type,
//! and each member's drift watch of Meridian-managed copies.

use std::sync::Arc;

use futures::StreamExt;
use futures::stream::{BoxStream, SelectAll, select_all};
use kube::Client;
use kube::api::{Api, DynamicObject};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::Shared;
use super::shared::{key_of, to_value};
use crate::kinds::{self, KindId};
use crate::template;

/// One watch event, with the type whose watch it came from.
type KindEvent = (KindId, Result<watcher::Event<DynamicObject>, watcher::Error>);

/// One watch per federated type through `client`, merged into one stream.
fn watch_every_kind(client: &Client, config: &watcher::Config) -> SelectAll<BoxStream<'static, KindEvent>> {
    select_all(kinds::all().map(|(id, k)| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &k.api_resource());
        watcher(api, config.clone()).default_backoff().map(move |ev| (id, ev)).boxed()
    }))
}

/// Watches every federated type in the control plane. The watch starts afresh when this
/// replica gains the Lease again after losing it: the loss may have been a silent
/// control plane, and a watch on a dead connection would never report new objects.
pub(super) async fn watch_host(sh: Arc<Shared>, shutdown: CancellationToken) {
    let mut leader = sh.leader.clone();
    loop {
        let mut events = watch_every_kind(&sh.host, &watcher::Config::default());
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
        Ok(watcher::Event::Init | watcher::Event::InitDone) => {}
        Err(e) => debug!(kind = kinds::get(kind).kind, error = %e, "control-plane watch failed; retrying"),
    }
}

/// Watches Meridian-managed copies in one member: any change or deletion there queues
/// the control-plane object, whose reconcile undoes the drift.
pub(super) async fn watch_member(sh: Arc<Shared>, cluster: String, client: Client) {
    let selector = format!("{}={}", template::MANAGED_LABEL, template::MANAGED_VALUE);
    let mut events = watch_every_kind(&client, &watcher::Config::default().labels(&selector));
    while let Some((kind, ev)) = events.next().await {
        match ev {
            Ok(watcher::Event::Apply(o) | watcher::Event::Delete(o)) => {
                if sh.is_leader() {
                    sh.queue.add(key_of(kind, &o));
                }
            }
            Ok(_) => {}
            Err(e) => debug!(cluster = %cluster, error = %e, "member watch failed; retrying"),
        }
    }
}
