//! Query counters (zone, type, RCODE) and the answer-latency histogram.
//!
//! prometheus-client's `Family` and `Histogram` take a lock per observation; at the rate
//! the UDP threads answer, that lock would be the hot spot. Each socket worker
//! counts into a [`LocalStats`] and merges it into the shared totals once per batch of
//! packets (after the socket runs dry), and a custom collector encodes the totals.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::answer::Outcome;
use crate::rrl;
use crate::tcp_limits::Slots;
use crate::xfr::Transfers;

/// Upper bounds of the latency buckets, in seconds: 1 µs to ~65 ms, ×4 per bucket. Answers
/// from the index take microseconds; the upper buckets catch a stalled worker.
const BUCKETS: [f64; 9] = [1e-6, 4e-6, 16e-6, 64e-6, 256e-6, 1.024e-3, 4.096e-3, 16.384e-3, 65.536e-3];

/// (zone, query type, RCODE).
type CountKey = (Option<Arc<str>>, u16, u16);

#[derive(Debug, Default)]
struct Totals {
    counts: Mutex<HashMap<CountKey, u64>>,
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
    /// Malformed ranking annotations in the current index.
    ranking_problems: AtomicU64,
    /// 1 when a GeoIP database is loaded.
    geoip_loaded: AtomicU64,
    /// The TCP slots, for their eviction and refusal counts.
    tcp: Mutex<Option<Arc<Slots>>>,
    /// Responses the rate limiter dropped or slipped.
    rrl: Mutex<Option<Arc<rrl::Counters>>>,
    /// Zone transfer requests, by zone, kind and result.
    xfr: Mutex<Option<Arc<Transfers>>>,
}

/// Shared totals; cheap to clone.
#[derive(Debug, Clone, Default)]
pub(crate) struct Metrics {
    totals: Arc<Totals>,
}

impl Metrics {
    /// Registers `meridian_dns_queries_total` and `meridian_dns_answer_duration_seconds`.
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let m = Metrics::default();
        registry.register_collector(Box::new(m.clone()));
        m
    }

    /// The TCP connection slots whose counts `/metrics` shows.
    pub(crate) fn set_tcp_slots(&self, slots: Arc<Slots>) {
        *self.totals.tcp.lock().unwrap_or_else(|e| e.into_inner()) = Some(slots);
    }

    /// The rate limiter's counters that `/metrics` shows.
    pub(crate) fn set_rrl_counters(&self, counters: Arc<rrl::Counters>) {
        *self.totals.rrl.lock().unwrap_or_else(|e| e.into_inner()) = Some(counters);
    }

    /// The transfer record whose counts `/metrics` shows.
    pub(crate) fn set_transfers(&self, xfr: Arc<Transfers>) {
        *self.totals.xfr.lock().unwrap_or_else(|e| e.into_inner()) = Some(xfr);
    }

    /// Publishes the index's ranking problem count and GeoIP state.
    pub(crate) fn set_ranking(&self, problems: usize, geoip_loaded: bool) {
        self.totals.ranking_problems.store(problems as u64, Ordering::Relaxed);
        self.totals.geoip_loaded.store(u64::from(geoip_loaded), Ordering::Relaxed);
    }
}

/// One worker's counts since its last flush.
#[derive(Debug, Default)]
pub(crate) struct LocalStats {
    counts: HashMap<CountKey, u64>,
    buckets: [u64; BUCKETS.len() + 1],
    sum_nanos: u64,
    count: u64,
}

impl LocalStats {
    pub(crate) fn record(&mut self, o: &Outcome, elapsed: Duration) {
        if !o.respond {
            return;
        }
        *self.counts.entry((o.zone.clone(), qtype_bucket(o.qtype), o.rcode)).or_insert(0) += 1;
        let secs = elapsed.as_secs_f64();
        let i = BUCKETS.iter().position(|b| secs <= *b).unwrap_or(BUCKETS.len());
        if let Some(b) = self.buckets.get_mut(i) {
            *b += 1;
        }
        self.sum_nanos += elapsed.as_nanos() as u64;
        self.count += 1;
    }

    pub(crate) fn flush(&mut self, m: &Metrics) {
        if self.count == 0 && self.counts.is_empty() {
            return;
        }
        let t = &m.totals;
        {
            let mut counts = t.counts.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in self.counts.drain() {
                *counts.entry(k).or_insert(0) += v;
            }
        }
        for (total, local) in t.buckets.iter().zip(self.buckets.iter_mut()) {
            total.fetch_add(std::mem::take(local), Ordering::Relaxed);
        }
        t.sum_nanos.fetch_add(std::mem::take(&mut self.sum_nanos), Ordering::Relaxed);
        t.count.fetch_add(std::mem::take(&mut self.count), Ordering::Relaxed);
    }
}

/// Query types get their own label value only when well known, so random types cannot
/// grow the label set without bound; the rest count as 0 ("OTHER").
fn qtype_bucket(t: u16) -> u16 {
    match t {
        1 | 2 | 5 | 6 | 12 | 15 | 16 | 28 | 33 | 35 | 43 | 46 | 48 | 64 | 65 | 99 | 252 | 251 | 255 | 257 => t,
        _ => 0,
    }
}

fn qtype_name(t: u16) -> String {
    if t == 0 { "OTHER".to_owned() } else { hickory_proto::rr::RecordType::from(t).to_string() }
}

/// An RCODE's mnemonic (as dig prints it), `OTHER` for the rest.
pub(crate) fn rcode_name(r: u16) -> &'static str {
    match r {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        9 => "NOTAUTH",
        16 => "BADVERS",
        _ => "OTHER",
    }
}

impl Collector for Metrics {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let t = &self.totals;
        t.encode_queries(&mut encoder)?;
        t.encode_latency(&mut encoder)?;
        t.encode_gauges(&mut encoder)?;
        t.encode_transfers(&mut encoder)?;
        t.encode_counters(&mut encoder)
    }
}

impl Totals {
    /// `meridian_dns_queries_total` by zone, type and RCODE.
    fn encode_queries(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let counts: Vec<(CountKey, u64)> = {
            let c = self.counts.lock().unwrap_or_else(|e| e.into_inner());
            c.iter().map(|(k, v)| (k.clone(), *v)).collect()
        };
        let mut m = encoder.encode_descriptor(
            "meridian_dns_queries",
            "DNS queries answered, by zone, query type and RCODE",
            None,
            MetricType::Counter,
        )?;
        for ((zone, qtype, rcode), v) in counts {
            let labels = [
                ("zone", zone.as_deref().unwrap_or("").to_owned()),
                ("type", qtype_name(qtype)),
                ("rcode", rcode_name(rcode).to_owned()),
            ];
            m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        Ok(())
    }

    /// `meridian_dns_transfers_total` by zone, kind (`AXFR`, `IXFR` from the journal, `IXFR-full`,
    /// `IXFR-current`) and result (`ok`,
    /// `unsigned`, `denied`, `badkey`, `badsig`, `badtime`, `notauth`).
    fn encode_transfers(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let xfr = self.xfr.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(xfr) = xfr else { return Ok(()) };
        let mut m = encoder.encode_descriptor(
            "meridian_dns_transfers",
            "Zone transfer requests, by zone, kind and result",
            None,
            MetricType::Counter,
        )?;
        for ((zone, kind, result), v) in xfr.counts() {
            let labels = [("zone", zone), ("kind", kind.to_owned()), ("result", result.to_owned())];
            m.encode_family(&labels)?.encode_counter::<NoLabelSet, _, u64>(&v, None)?;
        }
        Ok(())
    }

    /// The answer-latency histogram.
    fn encode_latency(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let buckets: Vec<(f64, u64)> = BUCKETS
            .iter()
            .copied()
            .chain(std::iter::once(f64::MAX))
            .zip(self.buckets.iter().map(|b| b.load(Ordering::Relaxed)))
            .collect();
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        let count = self.count.load(Ordering::Relaxed);
        let mut h = encoder.encode_descriptor(
            "meridian_dns_answer_duration_seconds",
            "Time from a query's arrival to its answer being ready",
            None,
            MetricType::Histogram,
        )?;
        h.encode_histogram::<NoLabelSet>(sum, count, &buckets, None)
    }

    /// The index's ranking problems and GeoIP state.
    fn encode_gauges(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let gauges = [
            (
                "meridian_dns_ranking_problems",
                "Malformed ranking annotations (meridian.io/policy, weight, failover, max-answers); the default applies",
                self.ranking_problems.load(Ordering::Relaxed),
            ),
            (
                "meridian_dns_geoip_loaded",
                "1 when a GeoIP database locates clients",
                self.geoip_loaded.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            let mut g = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            g.encode_gauge(&(v as i64))?;
        }
        Ok(())
    }

    /// Counters kept by the TCP slots and the rate limiter, when they exist.
    fn encode_counters(&self, encoder: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let tcp = self.tcp.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let rrl = self.rrl.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut counters: Vec<(&str, &str, &AtomicU64)> = Vec::new();
        if let Some(slots) = &tcp {
            counters.push((
                "meridian_dns_tcp_evicted",
                "Idle TCP connections closed to make room for new ones",
                &slots.evicted,
            ));
            counters.push((
                "meridian_dns_tcp_refused",
                "TCP connections refused because every connection was busy",
                &slots.refused,
            ));
        }
        if let Some(r) = &rrl {
            counters.push(("meridian_dns_rrl_dropped", "UDP responses dropped by response-rate limiting", &r.dropped));
            counters.push((
                "meridian_dns_rrl_slipped",
                "UDP responses sent truncated (TC=1) by response-rate limiting",
                &r.slipped,
            ));
        }
        for (name, help, v) in counters {
            let mut c = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            c.encode_counter::<NoLabelSet, _, u64>(&v.load(Ordering::Relaxed), None)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counted queries show up on /metrics with zone, type and RCODE labels.
    #[test]
    fn counters_and_histogram_are_exposed() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let mut local = LocalStats::default();
        let o = Outcome { respond: true, zone: Some("meridian.test".into()), qtype: 1, rcode: 3, ..Default::default() };
        local.record(&o, Duration::from_micros(3));
        local.record(&Outcome { qtype: 65000, ..o.clone() }, Duration::from_micros(3));
        local.flush(&m);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encode");
        assert!(
            text.contains(r#"meridian_dns_queries_total{zone="meridian.test",type="A",rcode="NXDOMAIN"} 1"#),
            "{text}"
        );
        assert!(text.contains(r#"type="OTHER""#), "{text}");
        assert!(text.contains("meridian_dns_answer_duration_seconds_count 2"), "{text}");
    }
}
