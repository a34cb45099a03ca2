//! The change feed behind "recent changes": a [`Projection`] of the table that keeps
//! what the page cares about (each cluster's state, each shard's health) and writes the
//! differences between one view and the next into the [`ChangeLog`].
//!
//! It follows the table like every other reader (a `Follower`, never polling), so a
//! change appears here in the batch it was published in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use meridian_discovery::table::{ClusterState, ObjectKey, Shard, Snapshot, Table};
use meridian_model::follow::{Follower, Projection};
use tokio_util::sync::CancellationToken;

use super::changes::{ChangeLog, Event, Subject};

/// What the page shows of a shard; a change to any field is an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ShardView {
    healthy: bool,
    stale: bool,
    ready: u32,
    total: u32,
}

impl ShardView {
    fn of(s: &Shard) -> Self {
        ShardView { healthy: s.is_healthy(), stale: s.stale, ready: s.ready_endpoints, total: s.total_endpoints }
    }

    fn label(&self) -> String {
        let health = if self.healthy { "healthy" } else { "unhealthy" };
        if self.stale { format!("{health}, stale") } else { health.to_owned() }
    }

    fn endpoints(&self) -> String {
        format!("{}/{} endpoints ready", self.ready, self.total)
    }
}

/// The last view the log was written from.
pub(crate) struct ChangeFeed {
    log: Arc<ChangeLog>,
    /// Each cluster's state name, and the reason when Offline.
    clusters: BTreeMap<Arc<str>, (&'static str, Option<String>)>,
    services: BTreeMap<ObjectKey, BTreeMap<Arc<str>, ShardView>>,
    ingresses: BTreeMap<ObjectKey, BTreeSet<Arc<str>>>,
    /// The first build is summarised in one entry: listing a large table object by
    /// object would only push everything else out of the ring.
    built: bool,
}

impl ChangeFeed {
    pub(crate) fn new(log: Arc<ChangeLog>) -> Self {
        ChangeFeed {
            log,
            clusters: BTreeMap::new(),
            services: BTreeMap::new(),
            ingresses: BTreeMap::new(),
            built: false,
        }
    }

    fn diff_clusters(&mut self, snap: &Snapshot, out: &mut Vec<Event>) {
        let now: BTreeMap<Arc<str>, (&'static str, Option<String>)> = snap
            .clusters
            .iter()
            .map(|(name, c)| {
                let reason = match &c.state {
                    ClusterState::Offline { reason, .. } => Some(reason.clone()),
                    _ => None,
                };
                (name.clone(), (c.state.name(), reason))
            })
            .collect();
        let names: BTreeSet<&Arc<str>> = self.clusters.keys().chain(now.keys()).collect();
        for name in names {
            let (before, after) = (self.clusters.get(name), now.get(name));
            if before.map(|b| b.0) != after.map(|a| a.0) {
                out.push(Event {
                    subject: Subject::Cluster,
                    cluster: name.to_string(),
                    object: None,
                    from: before.map(|b| b.0.to_owned()),
                    to: after.map(|a| a.0.to_owned()),
                    detail: after.and_then(|a| a.1.clone()),
                });
            }
        }
        self.clusters = now;
    }

    fn diff_service(&mut self, snap: &Snapshot, key: &ObjectKey, out: &mut Vec<Event>) {
        let now: BTreeMap<Arc<str>, ShardView> = snap
            .services
            .get(key)
            .map(|svc| svc.shards.iter().map(|s| (s.cluster.name.clone(), ShardView::of(s))).collect())
            .unwrap_or_default();
        let before = self.services.remove(key).unwrap_or_default();
        let clusters: BTreeSet<&Arc<str>> = before.keys().chain(now.keys()).collect();
        for cluster in clusters {
            let (b, a) = (before.get(cluster), now.get(cluster));
            if b == a {
                continue;
            }
            let (from, to) = (b.map(ShardView::label), a.map(ShardView::label));
            let detail = match (b, a) {
                (Some(b), Some(a)) if b.endpoints() != a.endpoints() => {
                    Some(format!("{} (was {}/{})", a.endpoints(), b.ready, b.total))
                }
                (_, Some(a)) => Some(a.endpoints()),
                (_, None) => None,
            };
            let (cluster, object) = (cluster.to_string(), Some(key.to_string()));
            out.push(Event { subject: Subject::Shard, cluster, object, from, to, detail });
        }
        if !now.is_empty() {
            self.services.insert(key.clone(), now);
        }
    }

    fn diff_ingress(&mut self, snap: &Snapshot, key: &ObjectKey, out: &mut Vec<Event>) {
        let now: BTreeSet<Arc<str>> = snap
            .ingresses
            .get(key)
            .map(|ing| ing.shards.iter().map(|s| s.cluster.name.clone()).collect())
            .unwrap_or_default();
        let before = self.ingresses.remove(key).unwrap_or_default();
        for cluster in before.symmetric_difference(&now) {
            let present = now.contains(cluster);
            out.push(Event {
                subject: Subject::Ingress,
                cluster: cluster.to_string(),
                object: Some(key.to_string()),
                from: (!present).then(|| "present".to_owned()),
                to: present.then(|| "present".to_owned()),
                detail: None,
            });
        }
        if !now.is_empty() {
            self.ingresses.insert(key.clone(), now);
        }
    }
}

/// More events than this about one cluster's shards in one batch are summarised in one
/// entry: a cluster going Offline marks every shard of it stale, and a thousand entries
/// would push the cluster's own entry (the cause) out of the ring.
const SHARD_EVENTS_PER_CLUSTER: usize = 8;

/// Replaces each cluster's shard and ingress events by one summary when there are more
/// than [`SHARD_EVENTS_PER_CLUSTER`] of them.
fn summarise(events: Vec<Event>) -> Vec<Event> {
    let mut per_cluster: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events.iter().filter(|e| e.object.is_some()) {
        *per_cluster.entry(&e.cluster).or_default() += 1;
    }
    let crowded: BTreeSet<String> =
        per_cluster.into_iter().filter(|(_, n)| *n > SHARD_EVENTS_PER_CLUSTER).map(|(c, _)| c.to_owned()).collect();
    if crowded.is_empty() {
        return events;
    }
    let (many, mut out): (Vec<Event>, Vec<Event>) =
        events.into_iter().partition(|e| e.object.is_some() && crowded.contains(&e.cluster));
    for cluster in crowded {
        let of: Vec<&Event> = many.iter().filter(|e| e.cluster == cluster).collect();
        let common = |f: fn(&Event) -> &Option<String>| {
            let first = f(of[0]);
            if of.iter().all(|e| f(e) == first) { first.clone() } else { Some("various".into()) }
        };
        out.push(Event {
            subject: Subject::Shard,
            object: Some(format!("{} objects", of.len())),
            from: common(|e| &e.from),
            to: common(|e| &e.to),
            detail: Some("summarised: too many to list one by one".into()),
            cluster,
        });
    }
    out
}

impl Projection for ChangeFeed {
    fn rebuild(&mut self, snap: &Snapshot) {
        let mut out = Vec::new();
        self.diff_clusters(snap, &mut out);
        let services: BTreeSet<ObjectKey> =
            self.services.keys().cloned().chain(snap.services.keys().cloned()).collect();
        for key in &services {
            self.diff_service(snap, key, &mut out);
        }
        let ingresses: BTreeSet<ObjectKey> =
            self.ingresses.keys().cloned().chain(snap.ingresses.keys().cloned()).collect();
        for key in &ingresses {
            self.diff_ingress(snap, key, &mut out);
        }
        if !self.built {
            self.built = true;
            out = vec![Event {
                subject: Subject::Table,
                cluster: String::new(),
                object: None,
                from: None,
                to: Some(format!("{} clusters, {} services", snap.clusters.len(), snap.services.len())),
                detail: Some("the page follows the table from here".into()),
            }];
        }
        self.log.push(snap.version, summarise(out));
    }

    fn apply(&mut self, snap: &Snapshot, change: &meridian_discovery::table::Change) {
        let mut out = Vec::new();
        for key in &change.services {
            self.diff_service(snap, key, &mut out);
        }
        for key in &change.ingresses {
            self.diff_ingress(snap, key, &mut out);
        }
        self.log.push(snap.version, summarise(out));
    }
}

/// Keeps `log` written from `table` until `stop` is cancelled (or the table's writer is
/// gone).
pub(crate) async fn run(table: Table, log: Arc<ChangeLog>, stop: CancellationToken) {
    let mut feed = ChangeFeed::new(log);
    let follower = Follower::new(&table, "web");
    feed.rebuild(&table.snapshot());
    match follower.spawn(feed, stop) {
        Ok(task) => drop(task.await),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the thread that follows the table; recent changes stay empty")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::SystemTime;

    use meridian_discovery::table::{ClusterMeta, Update};

    use super::*;

    fn shard(cluster: &Arc<ClusterMeta>, ready: u32) -> Update {
        let s = Shard {
            ready_endpoints: ready,
            total_endpoints: 2,
            ..Shard::new(cluster.clone(), vec![IpAddr::V4(Ipv4Addr::LOCALHOST)])
        };
        Update::Service { cluster: cluster.name.clone(), key: ObjectKey::new("default", "web"), shard: Some(s) }
    }

    /// What the log holds, as (subject cluster object from to) lines.
    fn lines(log: &ChangeLog) -> Vec<String> {
        let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        log.since(0)
            .changes
            .iter()
            .map(|e| format!("{:?} {} {} {} {}", e.subject, e.cluster, show(&e.object), show(&e.from), show(&e.to)))
            .collect()
    }

    #[test]
    fn shards_appearing_flipping_health_and_leaving_and_cluster_states_are_logged() {
        let (table, mut writer) = Table::new();
        let log = Arc::new(ChangeLog::new(50));
        let mut feed = ChangeFeed::new(log.clone());
        let c = Arc::new(ClusterMeta::new("eu-west", 0));
        writer.apply([Update::Cluster(c.clone())]);
        feed.rebuild(&table.snapshot());
        let key = ObjectKey::new("default", "web");
        let change = |services: Vec<ObjectKey>| meridian_discovery::table::Change { services, ..Default::default() };
        for update in [shard(&c, 2), shard(&c, 0)] {
            writer.apply([update]);
            feed.apply(&table.snapshot(), &change(vec![key.clone()]));
        }
        let offline = ClusterState::Offline { reason: "connection refused".into(), since: SystemTime::now() };
        writer.apply([Update::State { cluster: c.name.clone(), state: offline }]);
        feed.rebuild(&table.snapshot());
        writer.apply([Update::Service { cluster: c.name.clone(), key: key.clone(), shard: None }]);
        feed.apply(&table.snapshot(), &change(vec![key]));
        assert_eq!(
            lines(&log),
            [
                "Table  - - 1 clusters, 0 services",
                "Shard eu-west default/web - healthy",
                "Shard eu-west default/web healthy unhealthy",
                "Cluster eu-west - Pending Offline",
                "Shard eu-west default/web unhealthy unhealthy, stale",
                "Shard eu-west default/web unhealthy, stale -",
            ]
        );
        let page = log.since(0);
        assert_eq!(page.changes[2].detail.as_deref(), Some("0/2 endpoints ready (was 2/2)"));
        assert_eq!(page.changes[3].detail.as_deref(), Some("connection refused"));
    }

    #[test]
    fn many_shard_events_of_one_cluster_are_summarised_after_its_own() {
        let event = |object: Option<String>, to: &str| Event {
            subject: if object.is_some() { Subject::Shard } else { Subject::Cluster },
            cluster: "us-east".into(),
            object,
            from: Some("Ready".into()),
            to: Some(to.into()),
            detail: None,
        };
        let mut events = vec![event(None, "Offline")];
        events.extend((0..20).map(|i| event(Some(format!("ns/s{i}")), "healthy, stale")));
        let out = summarise(events);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].to.as_deref(), Some("Offline"), "the cause stays first");
        assert_eq!(out[1].object.as_deref(), Some("20 objects"));
        assert_eq!(out[1].to.as_deref(), Some("healthy, stale"));
        let few = vec![event(Some("ns/a".into()), "healthy"), event(Some("ns/b".into()), "unhealthy")];
        assert_eq!(summarise(few.clone()), few, "a few are listed one by one");
    }
}
