//! Zone transfers to standard secondaries: AXFR (RFC 5936) and IXFR (RFC 1995) over TCP,
//! NOTIFY (RFC 1996), TSIG (RFC 8945) and a catalog zone (RFC 9432).
//!
//! A transfer carries a zone as it was at its serial — a [`records::Snapshot`] taken
//! when the serial moved — while queries are answered from the live index: a burst of
//! table changes becomes one serial step at most every `min_serial_interval`
//! (`publish`), each step recorded in the zone's journal for IXFR.
//!
//! - `records`: a zone's records from the index (all candidates, unranked) and diffs.
//! - `journal`: each zone's serial steps for IXFR.
//! - `publish`: the task that coalesces changes into serial steps and sends NOTIFY.
//! - `respond`: a transfer request in, its response messages out.
//! - `tsig`, `keyfile`: signatures and BIND key files. `acl`: who may transfer.
//! - `notify`: NOTIFY with retries. `catalog`: the catalog zone's records.
//! - `status`: what `meridian status` and the admin API show.

pub(crate) mod acl;
pub(crate) mod catalog;
mod journal;
mod keyfile;
mod notify;
pub(crate) mod publish;
mod records;
pub(crate) mod respond;
mod status;
pub(crate) mod tsig;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use meridian_config::Config;
use tokio::sync::Notify;

pub use keyfile::KeyFileError;
pub use status::{NotifyStatus, NotifyTarget, TransferRecord, ZoneTransferStatus};

use crate::name::Key;
use journal::Journal;
use records::Snapshot;

/// The part of `[dns.transfer]` the publisher and NOTIFY read; swapped on reloads.
#[derive(Debug, Clone)]
pub(crate) struct XfrSettings {
    pub(crate) min_interval: Duration,
    pub(crate) journal_depth: usize,
    /// (address, key name) of each secondary to NOTIFY.
    pub(crate) secondaries: Vec<(SocketAddr, Option<String>)>,
    pub(crate) notify_attempts: u32,
    pub(crate) notify_timeout: Duration,
    /// Specific listen addresses: NOTIFY leaves from one of them, the address the
    /// secondaries know their primary by.
    pub(crate) sources: Vec<IpAddr>,
}

impl XfrSettings {
    fn from_config(config: &Config) -> Self {
        let t = &config.dns.transfer;
        XfrSettings {
            min_interval: t.min_serial_interval.as_std(),
            journal_depth: t.journal_depth,
            secondaries: t.secondaries.iter().map(|s| (s.address, s.key.clone())).collect(),
            notify_attempts: t.notify_attempts.max(1),
            notify_timeout: t.notify_timeout.as_std(),
            sources: config.dns.listen.iter().map(|a| a.ip()).filter(|ip| !ip.is_unspecified()).collect(),
        }
    }
}

/// One zone's transfer state.
#[derive(Debug)]
struct ZoneState {
    name: Arc<str>,
    current: Arc<Snapshot>,
    journal: Journal,
}

/// Transfer state shared by the listeners and the publisher.
#[derive(Debug)]
pub(crate) struct Transfers {
    zones: Mutex<HashMap<Key, ZoneState>>,
    /// Woken by every change of the index.
    dirty: Notify,
    /// When the last serial step of any zone was taken.
    last_step: Mutex<Option<Instant>>,
    pub(crate) settings: ArcSwap<XfrSettings>,
    book: Mutex<status::Book>,
}

impl Transfers {
    pub(crate) fn new(config: &Config) -> Self {
        Transfers {
            zones: Mutex::default(),
            dirty: Notify::new(),
            last_step: Mutex::new(None),
            settings: ArcSwap::from_pointee(XfrSettings::from_config(config)),
            book: Mutex::default(),
        }
    }

    pub(crate) fn set_config(&self, config: &Config) {
        self.settings.store(Arc::new(XfrSettings::from_config(config)));
    }

    /// The index changed: the publisher looks for serial steps to take.
    pub(crate) fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// The snapshot a transfer of `apex` sends, and the journal steps from `serial` when
    /// the journal reaches back to it.
    fn zone(&self, apex: &[u8], serial: Option<u32>) -> Option<(Arc<Snapshot>, Option<Vec<journal::Delta>>)> {
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let z = zones.get(apex)?;
        let steps = serial.and_then(|s| z.journal.since(s)).map(|v| v.into_iter().cloned().collect());
        Some((z.current.clone(), steps))
    }

    fn book(&self) -> std::sync::MutexGuard<'_, status::Book> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every zone's transfer status, sorted by zone.
    pub(crate) fn status(&self) -> Vec<ZoneTransferStatus> {
        let zones = self.zones.lock().unwrap_or_else(|e| e.into_inner());
        let book = self.book();
        let mut out: Vec<ZoneTransferStatus> =
            zones.values().map(|z| book.zone_status(&z.name, z.current.serial, z.journal.depth())).collect();
        out.sort_by(|a, b| a.zone.cmp(&b.zone));
        out
    }

    /// `meridian_dns_transfers_total` by zone, kind and result.
    pub(crate) fn counts(&self) -> Vec<((String, &'static str, &'static str), u64)> {
        self.book().counts()
    }
}

/// The offset just past the (possibly compressed) name at `at` in a raw message: what
/// the transfer code needs to step over a question or an owner without decoding it.
pub(crate) fn skip_name(buf: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *buf.get(at)?;
        match len {
            0 => return Some(at + 1),
            1..=63 => at += 1 + usize::from(len),
            0xC0..=0xFF => return Some(at + 2),
            _ => return None,
        }
    }
}
