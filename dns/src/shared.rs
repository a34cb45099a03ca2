//! What every listener shares: the published index with its only writer, the counters,
//! and the settings a reload swaps in. The index changes along one path, [`Shared::build`]:
//! the table's batches ([`IndexFeed`], a [`Projection`] of the table) and reloads both go
//! through it.

use std::sync::{Arc, Mutex};

use arc_swap::{ArcSwap, ArcSwapOption};
use meridian_config::Config;
use meridian_model::follow::Projection;
use meridian_model::table::{Change, Snapshot};

use crate::builder::Builder;
use crate::index::Index;
use crate::metrics::Metrics;
use crate::rrl::{self, Rrl};
use crate::tcp_limits::Timeouts;
use crate::xfr::Transfers;

/// State shared by every worker.
pub(crate) struct Shared {
    pub(crate) index: ArcSwap<Index>,
    /// The index's only writer (table updates and reloads).
    builder: Mutex<Builder>,
    pub(crate) metrics: Metrics,
    pub(crate) tcp_timeouts: Timeouts,
    /// UDP response-rate limiting, when enabled; replaced on reload.
    pub(crate) rrl: ArcSwapOption<Rrl>,
    rrl_counters: Arc<rrl::Counters>,
    /// Zone transfers: each zone's snapshot and journal, NOTIFY, their record.
    pub(crate) xfr: Arc<Transfers>,
}

impl Shared {
    /// Shares `builder`'s index (built already) and applies `config`'s TCP timeouts and
    /// rate limiting.
    pub(crate) fn new(builder: Builder, metrics: Metrics, config: &Config) -> Self {
        metrics.set_ranking(builder.problem_count(), builder.geo_status().is_loaded());
        let shared = Shared {
            index: ArcSwap::from_pointee(builder.index()),
            builder: Mutex::new(builder),
            metrics,
            tcp_timeouts: Timeouts::default(),
            rrl: ArcSwapOption::empty(),
            rrl_counters: Arc::default(),
            xfr: Arc::new(Transfers::new(config)),
        };
        shared.metrics.set_transfers(shared.xfr.clone());
        shared.tcp_timeouts.set(&config.dns);
        shared.set_rrl(config);
        shared.metrics.set_rrl_counters(shared.rrl_counters.clone());
        shared
    }

    /// Runs `f` on the builder, then publishes the index it leaves: the one way the index
    /// changes.
    pub(crate) fn build<R>(&self, f: impl FnOnce(&mut Builder) -> R) -> R {
        let mut b = self.builder.lock().unwrap_or_else(|e| e.into_inner());
        let r = f(&mut b);
        self.index.store(Arc::new(b.index()));
        self.metrics.set_ranking(b.problem_count(), b.geo_status().is_loaded());
        drop(b);
        self.xfr.mark_dirty();
        r
    }

    /// Moves the serial of the zone `apex` a step and publishes it (`xfr::publish` does,
    /// when the zone's records changed): the new serial.
    pub(crate) fn bump_serial(&self, apex: &str) -> Option<u32> {
        let mut b = self.builder.lock().unwrap_or_else(|e| e.into_inner());
        let serial = b.bump_serial(apex)?;
        self.index.store(Arc::new(b.index()));
        Some(serial)
    }

    /// Reads the builder's bookkeeping (ranking problems, GeoIP state).
    pub(crate) fn inspect<R>(&self, f: impl FnOnce(&Builder) -> R) -> R {
        f(&self.builder.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Applies a configuration's settings that are not in the index: TCP deadlines and
    /// rate limiting.
    pub(crate) fn set_limits(&self, config: &Config) {
        self.tcp_timeouts.set(&config.dns);
        self.xfr.set_config(config);
        self.set_rrl(config);
    }

    fn set_rrl(&self, config: &Config) {
        let current = self.rrl.load();
        let same = match (&*current, config.dns.rrl.enabled) {
            (None, false) => true,
            (Some(r), true) => r.settings() == &config.dns.rrl,
            _ => false,
        };
        if !same {
            self.rrl.store(Rrl::new(&config.dns.rrl, self.rrl_counters.clone()).map(Arc::new));
        }
    }
}

/// The index as a projection of the table: each batch the follower hands over goes
/// through [`Shared::build`], so it is published as soon as it is applied.
pub(crate) struct IndexFeed(pub(crate) Arc<Shared>);

impl Projection for IndexFeed {
    fn rebuild(&mut self, snap: &Snapshot) {
        self.0.build(|b| b.rebuild(snap));
    }

    fn apply(&mut self, snap: &Snapshot, change: &Change) {
        self.0.build(|b| b.apply(snap, change));
    }
}
