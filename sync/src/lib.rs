//! Cross-cluster resource sync: propagates every federated object of the control-plane
//! cluster to the member clusters, with placement, per-cluster overrides, Federation v1
//! replica preferences, drift correction, status and Federation v1's deletion rules.
//!
//! Layout:
//! - `lib.rs`: [`ResourceSync`], the running module (start, reload, status, shutdown).
//! - `controller`: watches, the work queue's workers, the reconcile of one object, its
//!   deletion, and the supervisor that follows the members' states in discovery's table
//!   (one module per concern; see its comment).
//! - `gate`: request deadlines, and the per-member gate that skips a member whose
//!   request timed out until a probe gets an answer.
//! - [`planner`]: the replica planner (pure).
//! - [`template`]: annotations, the member copy of a template, the deletion decision (pure).
//! - [`selector`]: label selectors over cluster labels (pure).
//! - `leader`: Lease-based leader election, so only one replica syncs.
//! - `rollup`: the control-plane object's `.status` rolled up from the members' (pure).
//! - `queue`, `status`, `events`, `kinds`, `metrics`: the work queue, the status book,
//!   Kubernetes Events, the federated types (named by `KindId`), Prometheus metrics.
//! - [`join`](fn@join) / [`unjoin`]: registering member clusters in the config file.
//!
//! This crate shares only the cluster registry ([`meridian_discovery::Discovery`]) with
//! discovery: of the table it reads the clusters' states (following them with
//! `meridian_model::follow`), never the service table's shards, and it never answers DNS. It never
//! overwrites or deletes a member object it did not create (unless `[sync] adopt`), and
//! never writes a Secret's data anywhere but the members' Secrets.

mod controller;
mod error;
mod events;
mod gate;
mod join;
mod kinds;
mod leader;
mod metrics;
pub mod planner;
mod queue;
mod rollup;
pub mod selector;
mod status;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use meridian_config::Config;
use meridian_discovery::Discovery;
use prometheus_client::registry::Registry;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use error::{Error, Result};
pub use join::{join, unjoin};

/// How long [`ResourceSync::shutdown`] waits for tasks to finish (releasing the Lease) before
/// aborting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The running sync module.
pub struct ResourceSync {
    /// `None` when `[sync] enabled = false`: nothing runs, status says so.
    running: Option<Running>,
}

struct Running {
    shared: Arc<controller::Shared>,
    identity: String,
    shutdown: CancellationToken,
    /// Taken by the first [`ResourceSync::stopped`].
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl ResourceSync {
    /// Starts leader election and, while leading, the sync loops, until `shutdown` is
    /// cancelled. `host` reaches the control-plane cluster; `discovery` gives the members'
    /// clients and Ready state.
    pub async fn start(
        config: &Config,
        host: kube::Client,
        discovery: Arc<Discovery>,
        registry: &mut Registry,
        shutdown: CancellationToken,
    ) -> Result<ResourceSync> {
        if !config.sync.enabled {
            info!("sync is disabled");
            return Ok(ResourceSync { running: None });
        }
        let metrics = metrics::Metrics::register(registry);
        let identity = config.sync.identity.clone().unwrap_or_else(default_identity);
        let host_name = config.sync.host.as_ref().map_or_else(|| "host".to_owned(), |h| h.name.clone());
        let (elector, leader) = leader::Elector::new(
            host.clone(),
            host_name.clone(),
            &config.sync.lease_namespace,
            identity.clone(),
            config.sync.lease_duration.as_std(),
            config.sync.request_timeout.as_std(),
            metrics.clone(),
        );
        let settings = controller::Settings::from_config(config);
        let kinds = kinds::KindSet::from_config(&config.sync.extra_kinds);
        let shared = Arc::new(controller::Shared::new(host, host_name, discovery, settings, kinds, leader, metrics));
        let shutdown = shutdown.child_token();
        let mut tasks = controller::spawn(shared.clone(), shutdown.clone());
        tasks.push(tokio::spawn(elector.run(shutdown.clone())));
        info!(identity = %identity, "sync started; waiting for the Lease");
        let tasks = parking_lot::Mutex::new(tasks);
        Ok(ResourceSync { running: Some(Running { shared, identity, shutdown, tasks }) })
    }

    /// Applies a new configuration: placement labels, exclusions, adoption, timeouts and
    /// the federated types (the watches start again with the new set; a type taken out
    /// has Meridian's finalizer taken off its control-plane objects, and its member copies
    /// are left as they are). The control plane, the Lease
    /// settings (and the request timeout of the Lease's requests) and `enabled` take
    /// effect on restart.
    pub fn reload(&self, config: &Config) {
        if let Some(r) = &self.running {
            *r.shared.settings.write() = Arc::new(controller::Settings::from_config(config));
            let kinds = kinds::KindSet::from_config(&config.sync.extra_kinds);
            let changed = r.shared.kinds.send_if_modified(|k| {
                let changed = *k != kinds;
                *k = kinds;
                changed
            });
            if changed {
                info!("the federated types changed: the watches start again");
            }
            if r.shared.is_leader() {
                r.shared.enqueue_all();
            }
        }
    }

    /// For `meridian status` and the admin API: whether this replica leads, and every
    /// object's state in every member, plus copies that deletions left behind and the
    /// members skipped because they stopped answering.
    pub fn status(&self) -> Value {
        match &self.running {
            None => json!({"enabled": false}),
            Some(r) => {
                let mut v = r.shared.book.lock().to_json();
                v["enabled"] = json!(true);
                v["identity"] = json!(r.identity);
                v["leader"] = json!(r.shared.is_leader());
                v["queued"] = json!(r.shared.queue.len());
                v["kinds"] = r.shared.kinds_json();
                v["not_answering"] = json!(r.shared.gates.shut_members());
                v
            }
        }
    }

    /// Stops every task; a leader releases its Lease so another replica takes over at once.
    pub async fn shutdown(&self) {
        if let Some(r) = &self.running {
            r.shutdown.cancel();
        }
        self.stopped().await;
    }

    /// Once the shutdown token is cancelled, waits (briefly) for every task; returns at
    /// once when another call already waited.
    pub async fn stopped(&self) {
        let Some(r) = &self.running else { return };
        let tasks = std::mem::take(&mut *r.tasks.lock());
        if tasks.is_empty() {
            return;
        }
        r.shutdown.cancelled().await;
        for mut t in tasks {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}

/// Host name and a random suffix: unique per process, recognisable in the Lease.
fn default_identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "meridian".to_owned());
    format!("{host}-{:08x}", rand::random::<u32>())
}
