//! What transfers and NOTIFY did, per zone and per secondary, for `meridian status`, the
//! admin API and `/metrics`. Never holds a key's secret: only key names.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use serde::Serialize;

/// One zone's transfer state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ZoneTransferStatus {
    /// Apex without the trailing dot.
    pub zone: String,
    /// The serial a transfer sends now.
    pub serial: u32,
    /// Serial steps kept for IXFR.
    pub journal_depth: usize,
    /// The last NOTIFY round, if any was sent.
    pub last_notify: Option<NotifyStatus>,
    /// Each client's last transfer request for the zone, by client address.
    pub transfers: Vec<TransferRecord>,
}

/// One NOTIFY round: a serial told to every configured secondary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifyStatus {
    pub serial: u32,
    /// Unix time (seconds) the round started.
    pub sent_at: u64,
    pub targets: Vec<NotifyTarget>,
}

/// A secondary's part of a NOTIFY round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NotifyTarget {
    pub address: SocketAddr,
    /// It answered NOERROR.
    pub acknowledged: bool,
    /// Tries so far (the round stops at the first answer).
    pub attempts: u32,
    /// Why the last try failed (timeout, an RCODE), while not acknowledged.
    pub error: Option<String>,
}

/// A client's last transfer request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferRecord {
    pub client: IpAddr,
    /// Unix time (seconds).
    pub at: u64,
    /// `AXFR`, `IXFR` (a journal answer), `IXFR-full` (an IXFR answered with the whole
    /// zone) or `IXFR-current` (the client was up to date).
    pub kind: &'static str,
    /// `ok`, `unsigned`, `denied`, `badkey`, `badsig`, `badtime` or `notauth` (not a zone here).
    pub result: &'static str,
    /// The serial sent (ok only).
    pub serial: Option<u32>,
    /// The key it was signed with.
    pub key: Option<String>,
    /// Messages sent.
    pub messages: usize,
}

/// The record of transfers and NOTIFY rounds.
#[derive(Debug, Default)]
pub(crate) struct Book {
    notify: HashMap<String, NotifyStatus>,
    transfers: HashMap<(String, IpAddr), TransferRecord>,
    counts: HashMap<(String, &'static str, &'static str), u64>,
}

impl Book {
    /// Notes a transfer request of `zone`, counted by its kind (AXFR, IXFR from the
    /// journal, IXFR-full, IXFR-current) and result.
    pub(crate) fn transfer(&mut self, zone: &str, rec: TransferRecord) {
        *self.counts.entry((zone.to_owned(), rec.kind, rec.result)).or_insert(0) += 1;
        // Requests for zones not served are counted, not kept per client: anyone can
        // send them, and the map would grow without bound.
        if rec.result != "notauth" {
            self.transfers.insert((zone.to_owned(), rec.client), rec);
        }
    }

    pub(crate) fn notify_started(&mut self, zone: &str, round: NotifyStatus) {
        self.notify.insert(zone.to_owned(), round);
    }

    /// Updates one target of `zone`'s round for `serial` (a later round replaced it: no-op).
    pub(crate) fn notify_update(&mut self, zone: &str, serial: u32, target: NotifyTarget) {
        if let Some(round) = self.notify.get_mut(zone).filter(|r| r.serial == serial)
            && let Some(t) = round.targets.iter_mut().find(|t| t.address == target.address)
        {
            *t = target;
        }
    }

    /// The serial of `zone`'s latest NOTIFY round.
    pub(crate) fn notify_serial(&self, zone: &str) -> Option<u32> {
        self.notify.get(zone).map(|r| r.serial)
    }

    pub(crate) fn zone_status(&self, zone: &str, serial: u32, journal_depth: usize) -> ZoneTransferStatus {
        let mut transfers: Vec<TransferRecord> =
            self.transfers.iter().filter(|((z, _), _)| z == zone).map(|(_, r)| r.clone()).collect();
        transfers.sort_by_key(|r| r.client);
        ZoneTransferStatus {
            zone: zone.to_owned(),
            serial,
            journal_depth,
            last_notify: self.notify.get(zone).cloned(),
            transfers,
        }
    }

    pub(crate) fn counts(&self) -> Vec<((String, &'static str, &'static str), u64)> {
        let mut v: Vec<_> = self.counts.iter().map(|(k, n)| (k.clone(), *n)).collect();
        v.sort();
        v
    }
}
