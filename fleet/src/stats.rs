//! Counters of the fleet: what the transport accepted and dropped, gossip bytes, verdict
//! changes. Prometheus counters underneath, so [`Stats::register`] exposes the same
//! numbers that `/api/v1/fleet` reports.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::wire::Rejection;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// Shared by the transport (one socket at a time) and the fleet's own task.
#[derive(Clone, Default)]
pub(crate) struct Stats {
    /// Datagrams that passed every check.
    pub(crate) accepted: Counter,
    rejected: Family<ReasonLabel, Counter>,
    /// Whole messages handed to chitchat's decoder, and those it decoded.
    pub(crate) fed: Counter,
    pub(crate) decoded: Counter,
    pub(crate) bytes_in: Counter,
    pub(crate) bytes_out: Counter,
    pub(crate) datagrams_out: Counter,
    /// Messages sent as two parts (chitchat filled a whole datagram).
    pub(crate) split: Counter,
    /// Payloads too large even for two parts: not sent.
    pub(crate) oversize: Counter,
    pub(crate) send_errors: Counter,
    /// Observation values in gossip that do not parse (a newer Meridian's format?).
    pub(crate) bad_values: Counter,
    pub(crate) verdict_changes: Counter,
    /// Addresses whose verdict differs from this instance's own observation.
    pub(crate) disagreements: Gauge,
    /// The gossip socket's buffers as the kernel granted them (`sockbuf`): a figure below
    /// `socket_buffer_bytes` explains dropped catch-up deltas.
    pub(crate) receive_buffer: Gauge,
    pub(crate) send_buffer: Gauge,
}

/// A snapshot of the transport's counters, for the status API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransportStats {
    /// Datagrams that passed every check.
    pub accepted: u64,
    /// Messages chitchat decoded (a two-part message counts once).
    pub decoded: u64,
    /// Authentic messages chitchat could not decode (another chitchat version?).
    /// Dropped datagrams by reason (`bad_mac`, `replayed`, …), every reason listed.
    pub rejected: BTreeMap<&'static str, u64>,
    pub bytes_received: u64,
    pub bytes_sent: u64,
    pub datagrams_sent: u64,
    pub split_messages: u64,
    pub undecodable: u64,
    pub oversize: u64,
    pub send_errors: u64,
    pub bad_values: u64,
    /// `SO_RCVBUF` and `SO_SNDBUF` of the gossip socket as the kernel reports them (Linux
    /// reports twice the size set).
    pub receive_buffer_bytes: u64,
    pub send_buffer_bytes: u64,
}

impl TransportStats {
    /// All rejected datagrams, whatever the reason.
    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }
}

impl Stats {
    pub(crate) fn buffers(&self, granted: crate::sockbuf::Granted) {
        self.receive_buffer.set(i64::try_from(granted.receive).unwrap_or(i64::MAX));
        self.send_buffer.set(i64::try_from(granted.send).unwrap_or(i64::MAX));
    }

    pub(crate) fn reject(&self, why: Rejection) {
        self.rejected.get_or_create(&ReasonLabel { reason: why.as_str().to_owned() }).inc();
    }

    pub(crate) fn snapshot(&self) -> TransportStats {
        let rejected = Rejection::ALL
            .iter()
            .map(|r| {
                let n = self.rejected.get(&ReasonLabel { reason: r.as_str().to_owned() }).map_or(0, |c| c.get());
                (r.as_str(), n)
            })
            .collect();
        TransportStats {
            accepted: self.accepted.get(),
            decoded: self.decoded.get(),
            rejected,
            bytes_received: self.bytes_in.get(),
            bytes_sent: self.bytes_out.get(),
            datagrams_sent: self.datagrams_out.get(),
            split_messages: self.split.get(),
            undecodable: self.fed.get().saturating_sub(self.decoded.get()),
            oversize: self.oversize.get(),
            send_errors: self.send_errors.get(),
            bad_values: self.bad_values.get(),
            receive_buffer_bytes: u64::try_from(self.receive_buffer.get()).unwrap_or(0),
            send_buffer_bytes: u64::try_from(self.send_buffer.get()).unwrap_or(0),
        }
    }

    pub(crate) fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("meridian_fleet");
        r.register("datagrams_accepted", "Authenticated gossip datagrams received", self.accepted.clone());
        r.register("datagrams_rejected", "Gossip datagrams dropped, by reason", self.rejected.clone());
        r.register("datagrams_sent", "Gossip datagrams sent", self.datagrams_out.clone());
        r.register("split_messages", "Gossip messages sent as two datagrams", self.split.clone());
        r.register("received_bytes", "Gossip bytes received, framing included", self.bytes_in.clone());
        r.register("sent_bytes", "Gossip bytes sent, framing included", self.bytes_out.clone());
        r.register("messages_fed", "Authentic messages handed to chitchat", self.fed.clone());
        r.register("messages_decoded", "Authentic messages chitchat decoded", self.decoded.clone());
        r.register("oversize", "Gossip messages too large to send", self.oversize.clone());
        r.register("send_errors", "Gossip datagrams the socket refused", self.send_errors.clone());
        r.register("bad_values", "Observations in gossip that did not parse", self.bad_values.clone());
        r.register("verdict_changes", "Changes of a fleet verdict on an address", self.verdict_changes.clone());
        r.register(
            "disagreements",
            "Addresses whose fleet verdict differs from this instance's own observation",
            self.disagreements.clone(),
        );
        r.register(
            "socket_receive_buffer_bytes",
            "SO_RCVBUF of the gossip socket as the kernel reports it",
            self.receive_buffer.clone(),
        );
        r.register(
            "socket_send_buffer_bytes",
            "SO_SNDBUF of the gossip socket as the kernel reports it",
            self.send_buffer.clone(),
        );
    }
}
