//! The Gateway API side of a cluster task: watches of GatewayClasses, Gateways and
//! HTTPRoutes (`gateway.networking.k8s.io/v1`, as DynamicObjects), what the task keeps
//! of each, and the HTTPRoute shards ([`shard::gateway`]) they give.
//!
//! Many clusters do not serve the Gateway API. A kind whose list answers 404 is not
//! served (403, a member role without the Gateway API grants, is taken the same way):
//! the task logs it once, drops what it had of that kind, and asks again every
//! [`RECHECK`] (or when the cluster comes back from Offline and every watch restarts),
//! without counting it as a failing watch; the cluster's state is not affected.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::utils::Backoff;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use tracing::{debug, info, warn};

use super::{ClusterView, Ev, Step, WatchBackoff, Watched};
use crate::lb_names::Via;
use crate::shard::gateway::{self as translate, ClassInfo, GatewayInfo, Parents, RouteInfo};
use crate::table::{Kind, ObjectKey, Update};

/// How often a cluster that does not serve a Gateway API kind is asked again.
const RECHECK: Duration = Duration::from_secs(300);

/// The three Gateway API kinds a cluster task watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum GwKind {
    Class,
    Gateway,
    Route,
}

impl GwKind {
    const ALL: [GwKind; 3] = [GwKind::Class, GwKind::Gateway, GwKind::Route];

    pub(super) fn what(self) -> &'static str {
        match self {
            GwKind::Class => "GatewayClass",
            GwKind::Gateway => "Gateway",
            GwKind::Route => "HTTPRoute",
        }
    }

    fn resource(self) -> ApiResource {
        let plural = match self {
            GwKind::Class => "gatewayclasses",
            GwKind::Gateway => "gateways",
            GwKind::Route => "httproutes",
        };
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(translate::GROUP, "v1", self.what()), plural)
    }
}

/// What the task keeps of the Gateway API objects of its cluster.
#[derive(Default)]
pub(super) struct GatewayView {
    classes: Watched<ClassInfo>,
    gateways: Watched<GatewayInfo>,
    routes: Watched<RouteInfo>,
    /// Routes by parent Gateway, so a Gateway's change refreshes only its routes.
    by_gateway: HashMap<ObjectKey, BTreeSet<ObjectKey>>,
    /// Route shards currently published.
    published: BTreeSet<ObjectKey>,
    /// What was left out of each route, last reported (reported again only on change).
    notes: HashMap<ObjectKey, Vec<String>>,
    /// The kinds the cluster answered 404 for.
    not_served: BTreeSet<GwKind>,
}

impl GatewayView {
    /// Every kind listed or known not to be served: routes can be judged without
    /// withdrawing one whose Gateway is merely not listed yet.
    fn settled(&self) -> bool {
        let listed = |k: GwKind| {
            self.not_served.contains(&k)
                || match k {
                    GwKind::Class => self.classes.list.listed(),
                    GwKind::Gateway => self.gateways.list.listed(),
                    GwKind::Route => self.routes.list.listed(),
                }
        };
        GwKind::ALL.into_iter().all(listed)
    }

    fn link(&mut self, route: &ObjectKey) {
        for p in self.routes.objects.get(route).map(|r| r.parents.clone()).unwrap_or_default() {
            self.by_gateway.entry(p.gateway).or_default().insert(route.clone());
        }
    }

    fn unlink(&mut self, route: &ObjectKey, old: Option<&RouteInfo>) {
        for p in old.map(|r| r.parents.as_slice()).unwrap_or_default() {
            if let Some(set) = self.by_gateway.get_mut(&p.gateway) {
                set.remove(route);
                if set.is_empty() {
                    self.by_gateway.remove(&p.gateway);
                }
            }
        }
    }
}

impl ClusterView {
    /// One Gateway API watch event.
    pub(super) fn on_gateway_api(&mut self, kind: GwKind, ev: watcher::Event<DynamicObject>) {
        if self.gw.not_served.remove(&kind) && self.gw.not_served.is_empty() {
            info!(cluster = %self.meta.name, "the cluster serves the Gateway API now: reading its HTTPRoutes");
        }
        let was_settled = self.gw.settled();
        match kind {
            GwKind::Class => {
                let step = self.gw.classes.follow(ev, |c| ClassInfo::new(&c.data));
                if !matches!(step, Step::Began) {
                    self.refresh_all_routes();
                }
            }
            GwKind::Gateway => {
                let touched = match self.gw.gateways.follow(ev, |g| GatewayInfo::new(&g.data)) {
                    Step::Began => Vec::new(),
                    Step::Applied { key, .. } | Step::Deleted { key, .. } => vec![key],
                    Step::Listed { gone, .. } => gone.into_iter().map(|(k, _)| k).collect(),
                };
                for gw in touched {
                    let routes: Vec<ObjectKey> = self.gw.by_gateway.get(&gw).into_iter().flatten().cloned().collect();
                    routes.iter().for_each(|r| self.refresh_route(r));
                }
            }
            GwKind::Route => self.on_route(ev),
        }
        if !was_settled && self.gw.settled() {
            self.routes_live();
        }
    }

    fn on_route(&mut self, ev: watcher::Event<DynamicObject>) {
        let federate = self.settings.federate_annotation.clone();
        let keep = |r: DynamicObject| {
            let ns = r.namespace().unwrap_or_default();
            RouteInfo::new(&ns, &r.data, r.metadata.annotations.as_ref(), &federate)
        };
        match self.gw.routes.follow(ev, keep) {
            Step::Began => {}
            Step::Applied { key, old } => {
                self.gw.unlink(&key, old.as_ref());
                self.gw.link(&key);
                self.refresh_route(&key);
            }
            Step::Deleted { key, old, .. } => {
                self.gw.unlink(&key, old.as_ref());
                self.refresh_route(&key);
            }
            Step::Listed { gone, first } => {
                for (k, old) in gone {
                    self.gw.unlink(&k, Some(&old));
                    self.refresh_route(&k);
                }
                if !first {
                    self.resync_routes();
                }
            }
        }
    }

    /// The cluster answered 404 for `kind`: it does not serve it (any more). What was
    /// kept of it goes, as after a list that found nothing.
    pub(super) fn on_gateway_api_absent(&mut self, kind: GwKind, code: u16) {
        if self.gw.not_served.is_empty() {
            info!(cluster = %self.meta.name, kind = kind.what(), code, every = ?RECHECK,
                "the cluster does not serve the Gateway API (or denies it): no HTTPRoutes from it; asking again periodically");
        }
        let was_settled = self.gw.settled();
        self.gw.not_served.insert(kind);
        match kind {
            GwKind::Class => self.gw.classes = Watched::default(),
            GwKind::Gateway => self.gw.gateways = Watched::default(),
            GwKind::Route => {
                self.gw.routes = Watched::default();
                self.gw.by_gateway.clear();
            }
        }
        if was_settled || self.gw.settled() {
            self.refresh_all_routes();
            self.resync_routes();
        }
    }

    /// Every kind has been listed (or is not served): publish every route, and clear
    /// what an earlier task of this cluster published that no longer exists.
    fn routes_live(&mut self) {
        self.refresh_all_routes();
        self.resync_routes();
    }

    fn resync_routes(&self) {
        let keys = self.gw.published.iter().cloned().collect();
        self.send(Update::Resync { cluster: self.name(), kind: Kind::Routes, keys });
    }

    fn refresh_all_routes(&mut self) {
        let mut keys: BTreeSet<ObjectKey> = self.gw.routes.objects.keys().cloned().collect();
        keys.extend(self.gw.published.iter().cloned());
        keys.iter().for_each(|k| self.refresh_route(k));
    }

    /// Recomputes and publishes the shard of one HTTPRoute.
    pub(super) fn refresh_route(&mut self, key: &ObjectKey) {
        if !self.gw.settled() {
            return;
        }
        let parents = Parents {
            gateways: &self.gw.gateways.objects,
            classes: &self.gw.classes.objects,
            filter: &self.settings.gateway_classes,
        };
        let translation = self.gw.routes.objects.get(key).map(|r| translate::route_shard(&self.meta, r, &parents));
        let (mut shard, notes) = match translation {
            Some(translate::Translation { shard: Ok(s), notes }) => (Some(s), notes),
            Some(translate::Translation { shard: Err(why), notes }) => {
                debug!(cluster = %self.meta.name, route = %key, ?why, "route not federated");
                (None, notes)
            }
            None => (None, Vec::new()),
        };
        self.report(key, notes);
        let names = shard.as_ref().filter(|s| s.addresses.is_empty()).map(|s| s.hostnames.clone());
        let resolved = self.lb_addresses(&(Via::Route, key.clone()), names.as_deref());
        if let Some(s) = shard.as_mut() {
            s.addresses.extend(resolved);
        }
        if shard.is_some() {
            self.gw.published.insert(key.clone());
        } else if !self.gw.published.remove(key) {
            return;
        }
        self.send(Update::Route { cluster: self.name(), key: key.clone(), shard });
    }

    /// Logs what was left out of a route when that changed.
    fn report(&mut self, key: &ObjectKey, notes: Vec<String>) {
        if notes.is_empty() {
            self.gw.notes.remove(key);
            return;
        }
        if self.gw.notes.get(key) != Some(&notes) {
            for n in &notes {
                warn!(cluster = %self.meta.name, route = %key, "HTTPRoute: {n}");
            }
            self.gw.notes.insert(key.clone(), notes);
        }
    }
}

/// The watches of the three kinds, each restarting itself when silent for `silence`.
pub(super) fn streams(client: &Client, silence: Duration) -> Vec<BoxStream<'static, Ev>> {
    GwKind::ALL.into_iter().map(|k| stream(client.clone(), k, silence)).collect()
}

/// One kind's watch. Unlike the built-in kinds' (`watchdog` over `watch_stream`), a 404
/// is an answer, not a failure: it is reported once as [`Ev::NotServed`] and the kind is
/// asked again after [`RECHECK`]; silence is watched only while the kind is served.
fn stream(client: Client, kind: GwKind, silence: Duration) -> BoxStream<'static, Ev> {
    let api: Api<DynamicObject> = Api::all_with(client, &kind.resource());
    let state = Watch { api, kind, silence, inner: None, pause: None, backoff: WatchBackoff::new(), absent: false };
    futures::stream::unfold(state, Watch::step).boxed()
}

type Inner = BoxStream<'static, Result<watcher::Event<DynamicObject>, watcher::Error>>;

/// The state of one Gateway API kind's watch.
struct Watch {
    api: Api<DynamicObject>,
    kind: GwKind,
    silence: Duration,
    /// The watcher; `None` until (re)started.
    inner: Option<Inner>,
    /// A wait before the next poll: a backoff after an error, [`RECHECK`] after a 404.
    pause: Option<Duration>,
    backoff: WatchBackoff,
    /// The last answer was a 404 (reported once until the kind is served again).
    absent: bool,
}

impl Watch {
    async fn step(mut self) -> Option<(Ev, Self)> {
        loop {
            if let Some(d) = self.pause.take() {
                tokio::time::sleep(d).await;
            }
            let cfg = watcher::Config::default().timeout(290);
            let api = self.api.clone();
            let inner = self.inner.get_or_insert_with(|| watcher(api, cfg).boxed());
            let what = self.kind.what();
            match tokio::time::timeout(self.silence, inner.next()).await {
                Err(_) => {
                    self.inner = None;
                    return Some((Ev::Silent(what, self.silence), self));
                }
                Ok(None) => return None,
                Ok(Some(Ok(ev))) => {
                    self.backoff.reset();
                    self.absent = false;
                    return Some((Ev::GatewayApi(self.kind, ev), self));
                }
                Ok(Some(Err(e))) if not_served(&e).is_some() => {
                    self.inner = None;
                    self.pause = Some(RECHECK);
                    if !std::mem::replace(&mut self.absent, true) {
                        let code = not_served(&e).unwrap_or_default();
                        return Some((Ev::NotServed(self.kind, code), self));
                    }
                }
                Ok(Some(Err(e))) => {
                    self.pause = self.backoff.next();
                    return Some((Ev::Error(what, e), self));
                }
            }
        }
    }
}

/// The status code of a 404 (the cluster does not serve the resource) or 403 (it does
/// not let Meridian read it) from the list or watch; `None` for any other failure.
fn not_served(e: &watcher::Error) -> Option<u16> {
    let code = match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code,
        watcher::Error::WatchError(s) => s.code,
        _ => return None,
    };
    matches!(code, 403 | 404).then_some(code)
}

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    /// 404 (not served) and 403 (not readable) from a list or watch mean "ask again in a
    /// few minutes"; any other failure is an ordinary watch error, retried with backoff.
    #[test]
    fn only_404_and_403_mean_not_served() {
        let api = |code| kube::Error::Api(Status::failure("x", "y").with_code(code).boxed());
        assert_eq!(not_served(&watcher::Error::InitialListFailed(api(404))), Some(404));
        assert_eq!(not_served(&watcher::Error::WatchStartFailed(api(403))), Some(403));
        assert_eq!(
            not_served(&watcher::Error::WatchError(Status::failure("x", "y").with_code(404).boxed())),
            Some(404)
        );
        assert_eq!(not_served(&watcher::Error::InitialListFailed(api(500))), None);
        assert_eq!(not_served(&watcher::Error::NoResourceVersion), None);
    }
}
