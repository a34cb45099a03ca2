//! Leader election over a `coordination.k8s.io/v1` Lease in the control plane, so that of
//! several Meridian replicas exactly one syncs.
//!
//! Every write is conditional on the resourceVersion read just before (create fails if
//! the Lease exists, replace fails if it changed), so two replicas cannot both take the
//! Lease. Expiry is judged on the local clock, like client-go: a follower takes over
//! only after it has seen the Lease unchanged for a whole `leaseDurationSeconds`, and a
//! leader stops syncing once its last successful renewal (timed from when the request
//! was sent) is older than two thirds of that. The leader thus always stops before a
//! follower can start, whatever the clocks of the machines say.
//!
//! A silent control plane cannot stall the elector: each Lease request has a deadline
//! (`[sync] request_timeout`, at most half the renew deadline, so a read and a write fit
//! in it), and a leader's renewal as a whole is cut off at the renew deadline, so it
//! stops syncing on time even while its requests hang.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::gate::RequestError;
use crate::metrics::Metrics;

/// Name of the Lease.
pub(crate) const LEASE_NAME: &str = "meridian-sync";

/// The elector's view of the Lease, as a state machine.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Another holder's Lease, last seen changing at `since` (local clock). Left when it
    /// expires (taken over) or the holder releases it.
    Following { resource_version: String, since: Instant },
    /// Held by us; `renewed` is when the last successful renewal was sent. Left when a
    /// renewal conflicts or the renew deadline passes.
    Leading { renewed: Instant },
    /// Nothing known yet (start, or after an API error).
    Unknown,
}

pub(crate) struct Elector {
    api: Api<Lease>,
    identity: String,
    duration: Duration,
    /// `[sync] request_timeout`; see [`Elector::request_timeout`].
    request_timeout: Duration,
    leader: watch::Sender<bool>,
    /// For the timeouts metric, labelled with the control plane's name.
    metrics: Metrics,
    host_name: String,
}

impl Elector {
    pub(crate) fn new(
        host: Client,
        host_name: String,
        namespace: &str,
        identity: String,
        duration: Duration,
        request_timeout: Duration,
        metrics: Metrics,
    ) -> (Self, watch::Receiver<bool>) {
        let (leader, rx) = watch::channel(false);
        let api = Api::namespaced(host, namespace);
        (Self { api, identity, duration, request_timeout, leader, metrics, host_name }, rx)
    }

    fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    /// Deadline of one Lease request: `[sync] request_timeout`, but at most half the
    /// renew deadline, so that a renewal's read and write both fit in it.
    fn request_timeout(&self) -> Duration {
        self.request_timeout.min(self.renew_deadline() / 2)
    }

    /// One Lease request under its deadline.
    async fn call<T>(&self, request: impl Future<Output = Result<T, kube::Error>>) -> Result<T, RequestError> {
        let limit = self.request_timeout();
        match tokio::time::timeout(limit, request).await {
            Ok(r) => r.map_err(RequestError::Api),
            Err(_) => {
                self.metrics.timed_out(&self.host_name, "lease");
                info!(cluster = %self.host_name, timeout = ?limit, "control-plane request timed out (Lease)");
                Err(RequestError::TimedOut(limit))
            }
        }
    }

    fn retry_period(&self) -> Duration {
        (self.duration / 5).max(Duration::from_millis(100))
    }

    fn set_leader(&self, on: bool) {
        self.leader.send_if_modified(|v| {
            let changed = *v != on;
            *v = on;
            changed
        });
    }

    /// Runs until `shutdown`; then releases the Lease if held, so a successor takes over
    /// at once instead of after the expiry.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut state = State::Unknown;
        loop {
            state = match state {
                // The renewal must end by the renew deadline, answered or not: until it
                // ends, this replica still counts itself the leader.
                State::Leading { renewed } => {
                    let deadline = tokio::time::Instant::from_std(renewed + self.renew_deadline());
                    match tokio::time::timeout_at(deadline, self.step(state.clone())).await {
                        Ok(next) => next,
                        Err(_) => {
                            warn!("renew deadline passed while renewing the sync Lease; no longer syncing");
                            State::Unknown
                        }
                    }
                }
                other => self.step(other).await,
            };
            let leading = matches!(state, State::Leading { .. });
            self.set_leader(leading);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.retry_period()) => {}
            }
        }
        if matches!(state, State::Leading { .. }) {
            self.set_leader(false);
            self.release().await;
        }
    }

    async fn step(&self, state: State) -> State {
        let sent = Instant::now();
        let lease = match self.call(self.api.get_opt(LEASE_NAME)).await {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "cannot read the sync Lease");
                return self.keep_if_fresh(state);
            }
        };
        let Some(lease) = lease else {
            return match self.call(self.api.create(&PostParams::default(), &self.lease(None, 0))).await {
                Ok(_) => {
                    info!(identity = %self.identity, "acquired the sync Lease");
                    State::Leading { renewed: sent }
                }
                Err(e) if e.is_conflict() => {
                    info!(error = %e, "another replica created the sync Lease first");
                    State::Unknown
                }
                Err(e) => {
                    warn!(error = %e, "cannot create the sync Lease");
                    State::Unknown
                }
            };
        };
        let rv = lease.metadata.resource_version.clone().unwrap_or_default();
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let transitions = spec.lease_transitions.unwrap_or(0);
        if holder == self.identity {
            let renewal = self.lease(Some(&lease), transitions);
            return match self.call(self.api.replace(LEASE_NAME, &PostParams::default(), &renewal)).await {
                Ok(_) => State::Leading { renewed: sent },
                Err(e) => {
                    warn!(error = %e, "cannot renew the sync Lease");
                    self.keep_if_fresh(state)
                }
            };
        }
        if matches!(state, State::Leading { .. }) {
            info!(holder = %holder, "lost the sync Lease");
        }
        let since = match state {
            State::Following { resource_version, since } if resource_version == rv => since,
            _ => Instant::now(),
        };
        let lease_duration =
            spec.lease_duration_seconds.and_then(|s| u64::try_from(s).ok()).map_or(self.duration, Duration::from_secs);
        let expired = holder.is_empty() || since.elapsed() >= lease_duration;
        if !expired {
            return State::Following { resource_version: rv, since };
        }
        let takeover = self.lease(Some(&lease), transitions + 1);
        match self.call(self.api.replace(LEASE_NAME, &PostParams::default(), &takeover)).await {
            Ok(_) => {
                info!(identity = %self.identity, previous = %holder, "took over the sync Lease");
                State::Leading { renewed: sent }
            }
            Err(e) if e.is_conflict() => {
                info!(error = %e, "another replica took the sync Lease first");
                State::Unknown
            }
            Err(e) => {
                warn!(error = %e, "cannot take over the sync Lease");
                State::Unknown
            }
        }
    }

    /// After a failed read or renewal: still leading while within the renew deadline.
    fn keep_if_fresh(&self, state: State) -> State {
        match state {
            State::Leading { renewed } if renewed.elapsed() < self.renew_deadline() => state,
            State::Leading { .. } => {
                warn!("renew deadline passed; no longer syncing");
                State::Unknown
            }
            other => other,
        }
    }

    /// The Lease to write, keeping `old`'s resourceVersion so the write is conditional.
    fn lease(&self, old: Option<&Lease>, transitions: i32) -> Lease {
        let now = MicroTime(Timestamp::now());
        let old_spec = old.and_then(|l| l.spec.clone()).unwrap_or_default();
        let acquire = if old_spec.holder_identity.as_deref() == Some(&self.identity) {
            old_spec.acquire_time
        } else {
            Some(now.clone())
        };
        Lease {
            metadata: ObjectMeta {
                name: Some(LEASE_NAME.to_owned()),
                resource_version: old.and_then(|l| l.metadata.resource_version.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(LeaseSpec {
                holder_identity: Some(self.identity.clone()),
                // Rounded up: a shorter Lease than our own deadline assumes would let a follower in
                // before this replica stops.
                lease_duration_seconds: Some(
                    i32::try_from(self.duration.as_millis().div_ceil(1000).max(1)).unwrap_or(i32::MAX),
                ),
                acquire_time: acquire,
                renew_time: Some(now),
                lease_transitions: Some(transitions),
                ..LeaseSpec::default()
            }),
        }
    }

    async fn release(&self) {
        let Ok(Some(lease)) = self.call(self.api.get_opt(LEASE_NAME)).await else { return };
        let holder = lease.spec.as_ref().and_then(|s| s.holder_identity.as_deref());
        if holder != Some(self.identity.as_str()) {
            return;
        }
        let mut released = lease.clone();
        if let Some(spec) = released.spec.as_mut() {
            spec.holder_identity = None;
        }
        match self.call(self.api.replace(LEASE_NAME, &PostParams::default(), &released)).await {
            Ok(_) => info!("released the sync Lease"),
            Err(e) => warn!(error = %e, "cannot release the sync Lease; a successor waits for its expiry"),
        }
    }
}
