//! The members' supervisor: keeps one drift watch per member, probes members whose gate
//! is shut, and resyncs everything when a member's state changes or its gate opens (a
//! cluster that comes back gets what it missed).
//!
//! A member's drift watch is started afresh when its connection settings change, when
//! it comes back from Offline and when its gate opens: the old watch may sit on a
//! connection that died silently, and would never report drift.
//!
//! Two sources drive it. The clusters' states are discovery's table, followed with a
//! [`Follower`] so a change is acted on as soon as it is published. The member registry
//! (clients and connection settings, changed by a reload) and the gates' probe times are
//! not in the table; they are looked at every [`SUPERVISE_EVERY`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::Client;
use meridian_config::ClusterConfig;
use meridian_discovery::Member;
use meridian_discovery::table::{Change, ClusterState, Snapshot};
use meridian_model::follow::{Batch, Follower, Projection};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::Shared;
use super::release_member::release_member;
use super::settings::BUILT_IN_NAMESPACE;
use super::shared::api;
use super::watch::watch_member;
use crate::gate::short;
use crate::kinds;

/// How often the member registry and the gates' probes are looked at. The registry
/// changes only on a reload, and a probe's backoff starts at 250 ms, so half a second
/// adds little to either.
const SUPERVISE_EVERY: Duration = Duration::from_millis(500);

/// Runs the supervisor until `shutdown` (see the module comment); its drift watches stop
/// with it.
pub(super) async fn supervise(sh: Arc<Shared>, shutdown: CancellationToken) {
    let table = sh.discovery.table();
    // Subscribed before the first read of the states, so no change falls in between.
    let mut follower = Some(Follower::new(&table, "sync"));
    let mut s = Supervisor::new(sh);
    s.states.rebuild(&table.snapshot());
    s.check_members();
    s.after_states();
    let start = tokio::time::Instant::now() + SUPERVISE_EVERY;
    let mut tick = tokio::time::interval_at(start, SUPERVISE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = tick.tick() => s.check_members(),
            batch = next_batch(&mut follower) => match batch {
                Some(batch) => batch.feed(&mut s.states),
                // Discovery's table writer is gone: the states no longer change.
                None => follower = None,
            },
        }
        s.after_states();
    }
    s.stop();
}

/// The table's next batch of changes; never, once the table's writer is gone.
async fn next_batch(follower: &mut Option<Follower>) -> Option<Batch> {
    match follower {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

/// A member's drift watch, and what it was started with.
struct DriftWatch {
    config: ClusterConfig,
    /// The member's gate openings when this watch started.
    openings: u64,
    task: JoinHandle<()>,
}

/// The clusters' states as the table last showed them: sync's projection of the table.
#[derive(Default)]
struct ClusterStates {
    states: BTreeMap<String, &'static str>,
    /// Clusters seen going from Offline to Ready, not yet acted on.
    back: BTreeSet<String>,
    /// The states changed since last acted on.
    changed: bool,
}

impl ClusterStates {
    fn update(&mut self, snap: &Snapshot) {
        let now: BTreeMap<String, &'static str> =
            snap.clusters.iter().map(|(n, c)| (n.to_string(), c.state.name())).collect();
        if now == self.states {
            return;
        }
        for (name, c) in &snap.clusters {
            if c.state == ClusterState::Ready && self.states.get(name.as_ref()).is_some_and(|s| *s == "Offline") {
                self.back.insert(name.to_string());
            }
        }
        self.states = now;
        self.changed = true;
    }
}

impl Projection for ClusterStates {
    fn rebuild(&mut self, snap: &Snapshot) {
        self.update(snap);
    }

    /// A state change names no objects (only those whose staleness flipped), so every
    /// batch is a reason to read the states again; there are few clusters.
    fn apply(&mut self, snap: &Snapshot, _change: &Change) {
        self.update(snap);
    }
}

struct Supervisor {
    sh: Arc<Shared>,
    watches: HashMap<String, DriftWatch>,
    probes: JoinSet<bool>,
    states: ClusterStates,
    /// A gate opened since everything was last queued.
    reopened: bool,
}

impl Supervisor {
    fn new(sh: Arc<Shared>) -> Self {
        Self { sh, watches: HashMap::new(), probes: JoinSet::new(), states: ClusterStates::default(), reopened: false }
    }

    /// What is not in the table: the registry's members, and the gates' probes.
    fn check_members(&mut self) {
        let members = self.sh.members();
        for (name, client) in self.sh.gone_members(&members) {
            if self.sh.is_leader() {
                tokio::spawn(release_member(self.sh.clone(), name, client));
            }
        }
        self.sh.gates.retain(|name| members.contains_key(name));
        while let Some(done) = self.probes.try_join_next() {
            self.reopened |= done.unwrap_or(false);
        }
        for name in self.sh.gates.due(Instant::now()) {
            if let Some(m) = members.get(&name) {
                self.probes.spawn(probe(self.sh.clone(), name, m.client.clone()));
            }
        }
        let gates = &self.sh.gates;
        self.watches.retain(|name, w| {
            let keep = w.openings == gates.openings(name) && members.get(name).is_some_and(|m| m.config == w.config);
            if !keep {
                w.task.abort();
            }
            keep
        });
        self.start_missing(&members);
    }

    /// Acts on what the states and the gates said since the last call: restarts the drift
    /// watches of members back from Offline, and queues everything.
    fn after_states(&mut self) {
        let back = std::mem::take(&mut self.states.back);
        if !back.is_empty() {
            for name in &back {
                if let Some(w) = self.watches.remove(name) {
                    w.task.abort();
                }
            }
            let members = self.sh.members();
            self.start_missing(&members);
        }
        let changed = std::mem::take(&mut self.states.changed);
        if (changed || std::mem::take(&mut self.reopened)) && self.sh.is_leader() {
            self.sh.enqueue_all();
        }
    }

    /// Starts a drift watch for every member that has none.
    fn start_missing(&mut self, members: &BTreeMap<String, Member>) {
        for (name, m) in members {
            if !self.watches.contains_key(name) {
                let task = tokio::spawn(watch_member(self.sh.clone(), name.clone(), m.client.clone()));
                let openings = self.sh.gates.openings(name);
                self.watches.insert(name.clone(), DriftWatch { config: m.config.clone(), openings, task });
            }
        }
    }

    fn stop(self) {
        for (_, w) in self.watches {
            w.task.abort();
        }
    }
}

/// Asks a member whose gate is shut for the `default` Namespace: a read through its
/// storage, like sync's own requests, and cheap. Any answer, an error status included,
/// opens the gate (errors are then handled per object, with their message); silence or
/// a failed connection keeps it shut. True when the gate opened.
async fn probe(sh: Arc<Shared>, cluster: String, client: Client) -> bool {
    let settings = sh.settings();
    let api = api(&client, kinds::get(kinds::NAMESPACE), "");
    let answered = match tokio::time::timeout(settings.request_timeout, api.get_opt(BUILT_IN_NAMESPACE)).await {
        Ok(Ok(_) | Err(kube::Error::Api(_))) => true,
        Ok(Err(e)) => {
            debug!(cluster = %cluster, error = %short(&e), "probe failed; the cluster stays skipped");
            false
        }
        Err(_) => {
            sh.metrics.timed_out(&cluster, "probe");
            info!(cluster = %cluster, timeout = ?settings.request_timeout, "member request timed out (probe); the cluster stays skipped");
            false
        }
    };
    let opened = sh.gates.probed(&cluster, answered, Instant::now(), settings.retry_max);
    if opened {
        info!(cluster = %cluster, "cluster answers again; reconciling every object");
    }
    opened
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::SystemTime;

    use meridian_discovery::table::{ClusterEntry, ClusterMeta};

    use super::*;

    fn snapshot(states: &[(&str, ClusterState)]) -> Snapshot {
        let mut snap = Snapshot::default();
        for (i, (name, state)) in states.iter().enumerate() {
            let meta = Arc::new(ClusterMeta::new(name, i));
            snap.clusters.insert((*name).into(), ClusterEntry { meta, state: state.clone() });
        }
        snap
    }

    fn offline() -> ClusterState {
        ClusterState::Offline { reason: "refused".into(), since: SystemTime::now() }
    }

    /// Any state change asks for a resync; only Offline → Ready restarts a drift watch,
    /// and a batch that changed no state asks for nothing.
    #[test]
    fn state_changes_ask_for_a_resync_and_a_return_from_offline_for_a_new_watch() {
        let mut states = ClusterStates::default();
        states.rebuild(&snapshot(&[("a", ClusterState::Pending), ("b", offline())]));
        assert!(states.changed, "the first states are a change");
        assert!(states.back.is_empty(), "nothing came back yet");
        states.changed = false;

        states.apply(&snapshot(&[("a", ClusterState::Pending), ("b", offline())]), &Change::default());
        assert!(!states.changed, "the same states again");

        states.apply(&snapshot(&[("a", ClusterState::Ready), ("b", ClusterState::Ready)]), &Change::default());
        assert!(states.changed);
        assert_eq!(states.back.iter().collect::<Vec<_>>(), ["b"], "Pending → Ready is not a return");
    }
}
