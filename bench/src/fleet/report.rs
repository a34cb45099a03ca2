//! The fleet benchmark's tables: deaths, gossip per instance, the large variant.

use std::fmt::Write as _;
use std::time::Duration;

use super::load::{Death, Rates, TRIAL_TIMEOUT};
use super::nodes;
use super::{Churn, FAST_CLUSTERS, Large, Opts, Small};
use crate::harness;

/// Issue 17: every instance drops a dead backend within 3 s (1 s probes, threshold 2,
/// plus gossip).
const TARGET_SECS: f64 = 3.0;

/// The report; `failed`: why the large variant has no figures.
pub(super) fn write(opts: &Opts, small: &Small, large: Option<&Large>, failed: Option<&str>, load: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "{n} `meridian serve` instances on loopback (each its own 127.x IP for DNS, admin and gossip; \
         not pinned, both cores), `[fleet]` quorum `majority`, gossip every {gi}, stale after {sa}. \
         {total} LoadBalancer services' addresses, each a real listener of the simulator (in a process of its \
         own, `nice -n -5`, not pinned): {FAST_CLUSTERS} clusters × {live} services (the victims and the flapping pool) with \
         `[health]` {h}, and {rc} clusters × {rest} probed every {ri} s. A death closes one service's listener \
         (connections refused); every instance's answer for its global name is polled over UDP (a query per \
         instance every ~2 ms) until it no longer holds the address. Load average (1 min) {load}.\n",
        n = opts.instances,
        gi = nodes::GOSSIP_INTERVAL,
        sa = nodes::STALE_AFTER,
        total = opts.fast_addresses(),
        live = opts.live(),
        rc = opts.rest_clusters(),
        rest = opts.services - opts.live(),
        ri = opts.rest_interval.as_secs(),
        h = nodes::fast_health(),
    );
    deaths(&mut t, &small.deaths);
    gossip(&mut t, opts, small, large);
    if let Some(l) = large {
        large_table(&mut t, opts, l);
    }
    let _ = writeln!(
        t,
        "\nFleet of {} addresses converged (every instance alive, holding every instance's observation of every address, a verdict on each) {:.1} s \
         after the instances started; RSS per instance then {} MiB (median, min–max).",
        opts.fast_addresses(),
        small.converged.as_secs_f64(),
        spread(&small.rss_mib, 0)
    );
    if let Some(why) = failed {
        let _ = writeln!(t, "\n**The {}-address variant did not complete**: {why}", opts.addresses);
    }
    t
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(|| format!("never (> {TRIAL_TIMEOUT:?})"), |d| format!("{:.2} s", d.as_secs_f64()))
}

/// p50, p99 and max of per-death times; a death some instance never saw counts as the
/// longest.
fn quantiles(v: &[Option<Duration>]) -> [Option<Option<Duration>>; 3] {
    let mut sorted = v.to_vec();
    sorted.sort_unstable_by_key(|d| d.unwrap_or(Duration::MAX));
    [0.5, 0.99, 1.0].map(|p| harness::quantile(&sorted, p))
}

fn shown(q: [Option<Option<Duration>>; 3]) -> [String; 3] {
    q.map(|d| d.map_or_else(|| "—".to_owned(), secs))
}

fn deaths(t: &mut String, deaths: &[Death]) {
    let all: Vec<Option<Duration>> = deaths.iter().map(Death::all_dropped).collect();
    let first: Vec<Option<Duration>> = deaths.iter().map(Death::first_dropped).collect();
    let back: Vec<Option<Duration>> = deaths.iter().map(Death::all_back).collect();
    let _ = writeln!(t, "| measure ({} deaths) | p50 | p99 | max | target | verdict |", deaths.len());
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---|");
    let q = quantiles(&all);
    let verdict = match q[1] {
        Some(Some(d)) if d.as_secs_f64() <= TARGET_SECS => "met".to_owned(),
        Some(Some(d)) => format!("missed by {:.2} s", d.as_secs_f64() - TARGET_SECS),
        Some(None) => "missed (an instance never dropped it)".to_owned(),
        None => "not measured".to_owned(),
    };
    let [p50, p99, max] = shown(q);
    let _ = writeln!(
        t,
        "| backend dies → every instance's answers drop it | {p50} | {p99} | {max} | p99 ≤ {TARGET_SECS} s | {verdict} |"
    );
    let [p50, p99, max] = shown(quantiles(&first));
    let _ = writeln!(t, "| backend dies → the first instance drops it | {p50} | {p99} | {max} | | |");
    let [p50, p99, max] = shown(quantiles(&back));
    let _ = writeln!(t, "| backend back → every instance returns it | {p50} | {p99} | {max} | | |");
    let per: Vec<String> =
        all.iter().map(|d| d.map_or_else(|| "never".to_owned(), |d| format!("{:.2}", d.as_secs_f64()))).collect();
    let _ = writeln!(t, "\nEvery instance dropped it, per death (s): {}.", per.join(", "));
    let spreads: Vec<String> = deaths
        .iter()
        .filter_map(|d| Some(format!("{:.2}", (d.all_dropped()? - d.first_dropped()?).as_secs_f64())))
        .collect();
    let _ = writeln!(t, "Last instance − first instance, per death (s): {}.\n", spreads.join(", "));
}

/// `median (min–max)` of per-instance figures.
fn spread(v: &[f64], decimals: usize) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let m = harness::median(v.to_vec());
    format!("{m:.decimals$} ({lo:.decimals$}–{hi:.decimals$})")
}

fn row(t: &mut String, addresses: usize, phase: &str, r: &Rates) {
    let cpu: Vec<f64> = r.cpu.iter().map(|c| c * 100.0).collect();
    let _ = writeln!(
        t,
        "| {addresses} | {phase} | {} | {} | {} | {} | {}% |",
        spread(&r.sent, 0),
        spread(&r.received, 0),
        spread(&r.datagrams, 1),
        spread(&r.verdict_changes, 1),
        spread(&cpu, 0),
    );
}

fn churn_phase(opts: &Opts, c: &Churn) -> String {
    let errors = if c.errors > 0 { format!(", {} toggles failed", c.errors) } else { String::new() };
    format!("churn: {} backends flapping, {:.1} toggles/s{errors}", opts.flap, c.toggles_per_s)
}

fn gossip(t: &mut String, opts: &Opts, small: &Small, large: Option<&Large>) {
    let _ = writeln!(
        t,
        "Gossip per instance over {} s windows, framing included (`meridian_fleet_sent_bytes_total`, \
         `received_bytes_total`), median over the instances (min–max); CPU is each instance's whole process \
         (probes, DNS, discovery) as a share of one core.\n",
        opts.window.as_secs()
    );
    let _ = writeln!(t, "| addresses | phase | sent B/s | received B/s | datagrams sent/s | verdict changes/s | CPU |");
    let _ = writeln!(t, "|---:|---|---:|---:|---:|---:|---:|");
    row(t, opts.fast_addresses(), "steady state", &small.steady);
    row(t, opts.fast_addresses(), &churn_phase(opts, &small.churn), &small.churn.rates);
    if let Some(l) = large {
        row(t, opts.addresses, "steady state", &l.steady);
        row(t, opts.addresses, &churn_phase(opts, &l.churn), &l.churn.rates);
    }
}

fn large_table(t: &mut String, opts: &Opts, l: &Large) {
    let bulk = opts.addresses - opts.fast_addresses();
    let _ = writeln!(
        t,
        "\n{} addresses: the {} above plus {bulk} services in {} more clusters with nothing listening \
         (each probe refused: a Down ballot per instance), probed every {} s.\n",
        opts.addresses,
        opts.fast_addresses(),
        l.clusters,
        opts.bulk_interval.as_secs()
    );
    let _ = writeln!(t, "| measure ({} addresses, {} instances) | median (min–max) |", opts.addresses, opts.instances);
    let _ = writeln!(t, "|---|---:|");
    let _ = writeln!(
        t,
        "| start → every instance holds every instance's observations | {:.1} s |",
        l.converged.as_secs_f64()
    );
    let mb = |v: &[f64]| v.iter().map(|b| b / 1e6).collect::<Vec<f64>>();
    let _ = writeln!(t, "| gossip sent per instance until then | {} MB |", spread(&mb(&l.catchup_sent), 1));
    let _ = writeln!(t, "| gossip received per instance until then | {} MB |", spread(&mb(&l.catchup_received), 1));
    let _ =
        writeln!(t, "| UDP receive-buffer drops until then (`RcvbufErrors`, whole machine) | {} |", l.rcvbuf_errors);
    let kib: Vec<f64> = l.receive_buffer.iter().map(|b| b / 1024.0).collect();
    let _ = writeln!(t, "| gossip socket receive buffer (kernel's figure) | {} KiB |", spread(&kib, 0));
    let _ = writeln!(t, "| RSS per instance after the churn and deaths (VmRSS) | {} MiB |", spread(&l.rss_mib, 0));
    let _ = writeln!(t, "| peak RSS per instance (VmHWM) | {} MiB |", spread(&l.hwm_mib, 0));
    let _ = writeln!(t, "\nDeaths at {} addresses (the same victims, after the churn):\n", opts.addresses);
    deaths(t, &l.deaths);
}
