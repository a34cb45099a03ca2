//! [`Fleet`]: one instance's membership in the fleet, the handle its parts use to publish
//! observations and read verdicts.
//!
//! `start` binds the gossip socket, starts chitchat over the authenticated transport and
//! one task that, every half gossip interval, writes this instance's changed
//! observations into its chitchat keys and reads what the peers' keys and heartbeats
//! changed (`absorb`). Observations and verdict reads take a short lock on the view and
//! never wait for the network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use chitchat::{Chitchat, ChitchatHandle};
use parking_lot::Mutex;
use prometheus_client::registry::Registry;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, watch};
use tokio_util::sync::CancellationToken;

use crate::absorb;
use crate::config::FleetConfig;
use crate::error::{Error, Result};
use crate::gossip;
use crate::key::FleetKey;
use crate::quorum::Health;
use crate::sockbuf;
use crate::stats::{Stats, TransportStats};
use crate::status::{FleetStatus, InstanceStatus, MAX_LISTED_DISAGREEMENTS, Verdict, VerdictChange};
use crate::transport::{AuthTransport, unix_ms};
use crate::view::{Changes, Me, View};

/// Changes a slow subscriber may fall behind by before it is told it lagged (it then
/// reads [`Fleet::verdicts`] whole).
const CHANGE_BACKLOG: usize = 1024;

/// One instance's handle on the fleet. Cheap to clone.
#[derive(Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

struct Inner {
    id: Arc<str>,
    local_addr: SocketAddr,
    view: Mutex<View>,
    stats: Stats,
    version: watch::Sender<u64>,
    changes: broadcast::Sender<Arc<VerdictChange>>,
    /// Cancelled once gossip has stopped and the socket is closed.
    stopped: CancellationToken,
}

impl Fleet {
    /// Validates `config`, loads the key, binds the gossip socket and starts gossiping.
    /// Runs until `cancel`; then [`Fleet::stopped`] resolves once the socket is closed,
    /// and the verdicts are this instance's own observations.
    pub async fn start(config: &FleetConfig, cancel: CancellationToken) -> Result<Fleet> {
        config.validate().map_err(Error::Config)?;
        let key = FleetKey::load(config)?;
        let bind_err = |source| Error::Bind { addr: config.listen, source };
        let socket = UdpSocket::bind(config.listen).await.map_err(bind_err)?;
        let local_addr = socket.local_addr().map_err(bind_err)?;
        let me = me(config, local_addr);
        let stats = Stats::default();
        stats.buffers(sockbuf::apply(&socket, config.socket_buffer_bytes));
        let handle = gossip::spawn(config, &me, AuthTransport::new(key, socket, stats.clone()), local_addr).await?;
        let inner = Arc::new(Inner {
            id: me.id.clone(),
            local_addr,
            view: Mutex::new(View::new(me, config.quorum, config.stale_after)),
            stats,
            version: watch::channel(0).0,
            changes: broadcast::channel(CHANGE_BACKLOG).0,
            stopped: CancellationToken::new(),
        });
        tokio::spawn(run(inner.clone(), handle, cancel, refresh_interval(config.gossip_interval)));
        Ok(Fleet { inner })
    }

    /// This instance's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The address the gossip socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    /// This instance's probe result for `addr`. Cheap when nothing changed (the health
    /// checker may call it after every probe); published at the next refresh.
    pub fn observe(&self, addr: SocketAddr, up: bool, rtt: Option<Duration>) {
        let now_s = u32::try_from(unix_ms() / 1000).unwrap_or(u32::MAX);
        self.inner.with_view(|v| v.observe(addr, up, rtt, now_s));
    }

    /// This instance stopped probing `addr` (its shard is gone): its observation is
    /// withdrawn from the fleet.
    pub fn forget(&self, addr: SocketAddr) {
        self.inner.with_view(|v| v.forget(addr));
    }

    /// The verdict on `addr` with every instance's sighting.
    pub fn verdict(&self, addr: SocketAddr) -> Verdict {
        self.inner.view.lock().verdict(addr)
    }

    /// Just the health of `addr` (no allocation).
    pub fn health(&self, addr: SocketAddr) -> Health {
        self.inner.view.lock().health(addr)
    }

    /// Every address with an Up or Down verdict, sorted.
    pub fn verdicts(&self) -> Vec<(SocketAddr, Health)> {
        self.inner.view.lock().all_verdicts()
    }

    /// Every live peer's observations have all arrived (as far as gossip has told this
    /// instance): a restarted instance can trust the fleet's verdicts from here on. With
    /// 100,000 addresses per instance this takes seconds (fleet/README.md). True when no
    /// peer is alive, so at start combine it with a grace period.
    pub fn caught_up(&self) -> bool {
        self.inner.view.lock().caught_up()
    }

    /// This instance and every peer, sorted by id.
    pub fn instances(&self) -> Vec<InstanceStatus> {
        self.inner.view.lock().instances(SystemTime::now())
    }

    /// A version that changes whenever any verdict does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }

    /// Which verdicts changed, batch by batch.
    pub fn changes(&self) -> broadcast::Receiver<Arc<VerdictChange>> {
        self.inner.changes.subscribe()
    }

    /// Everything `/api/v1/fleet` shows.
    pub fn status(&self) -> FleetStatus {
        let transport = self.transport_stats();
        let v = self.inner.view.lock();
        let (up, down) = v.tally();
        let disagreeing = v.disagreements();
        FleetStatus {
            id: v.me.id.to_string(),
            region: v.me.region.to_string(),
            quorum: v.rule,
            stale_after_ms: u64::try_from(v.stale_after.as_millis()).unwrap_or(u64::MAX),
            gossip_addr: v.me.gossip_addr,
            instances: v.instances(SystemTime::now()),
            up,
            down,
            observed_here: v.own.len(),
            disagreements: disagreeing.len(),
            disagreeing: disagreeing.into_iter().take(MAX_LISTED_DISAGREEMENTS).collect(),
            transport,
        }
    }

    pub fn transport_stats(&self) -> TransportStats {
        self.inner.stats.snapshot()
    }

    /// Registers the fleet's metrics (`meridian_fleet_*`).
    pub fn register_metrics(&self, registry: &mut Registry) {
        self.inner.stats.register(registry);
    }

    /// Resolves once the fleet has stopped after its cancellation and closed its socket.
    pub async fn stopped(&self) {
        self.inner.stopped.cancelled().await;
    }
}

impl Inner {
    /// Applies `f` to the view and announces the verdicts it changed.
    fn with_view(&self, f: impl FnOnce(&mut View) -> Changes) {
        let mut v = self.view.lock();
        let changes = f(&mut v);
        self.announce(&v, changes);
    }

    /// Called with the view locked, so versions go out in order.
    fn announce(&self, v: &View, changes: Changes) {
        self.stats.disagreements.set(i64::try_from(v.disagreement_count()).unwrap_or(i64::MAX));
        if changes.is_empty() {
            return;
        }
        self.stats.verdict_changes.inc_by(changes.len() as u64);
        self.version.send_replace(v.version);
        // No receiver is fine: nobody follows the changes yet.
        let _ = self.changes.send(Arc::new(VerdictChange { version: v.version, changes }));
    }

    fn refresh(&self, chitchat: &mut Chitchat) {
        let now = Instant::now();
        self.with_view(|v| {
            absorb::publish(v, chitchat);
            absorb::absorb(v, chitchat, &self.stats, now, SystemTime::now())
        });
    }
}

/// The fleet's task: refresh until cancelled (or until chitchat stops by itself), then
/// stop chitchat and decide alone.
async fn run(inner: Arc<Inner>, handle: ChitchatHandle, cancel: CancellationToken, every: Duration) {
    let chitchat = handle.chitchat();
    let ended = handle.termination_watcher();
    tokio::pin!(ended);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            result = &mut ended => {
                tracing::error!(error = ?result.err(), "fleet: gossip stopped; this instance now decides alone");
                break;
            }
            _ = tick.tick() => {}
        }
        let mut guard = tokio::select! {
            _ = cancel.cancelled() => break,
            guard = chitchat.lock() => guard,
        };
        inner.refresh(&mut guard);
    }
    drop(chitchat);
    gossip::stop(handle).await;
    inner.with_view(View::go_alone);
    inner.stopped.cancel();
}

/// This instance as the fleet sees it; a `:0` port is advertised as the one bound.
fn me(config: &FleetConfig, bound: SocketAddr) -> Me {
    let mut gossip_addr = config.advertise.unwrap_or(bound);
    if gossip_addr.port() == 0 {
        gossip_addr.set_port(bound.port());
    }
    Me {
        id: config.id.as_str().into(),
        region: config.region.as_str().into(),
        location: config.location,
        gossip_addr,
        // chitchat tells a restarted instance from its old self by a larger generation.
        generation: unix_ms(),
    }
}

/// Twice per gossip round: a change that arrived is seen within half a round.
fn refresh_interval(gossip: Duration) -> Duration {
    (gossip / 2).clamp(Duration::from_millis(5), Duration::from_millis(250))
}
