//! The shards behind an explained answer: every shard of each object the chase went
//! through, read from the table, with whether the answering name had it as a candidate
//! and, when not, the reason the table shows.

use std::net::IpAddr;
use std::sync::Arc;

use meridian_model::table::{IngressShard, ObjectKey, ProbeState, Shard, Snapshot};

use super::trace::{Ranked, Trace};
use super::view::{ShardView, object};
use crate::record::Source;

/// The shards of the objects `trace` reached, each object once, in chase order.
pub(super) fn of(snap: &Snapshot, trace: &Trace) -> Vec<ShardView> {
    let ranked = trace.ranked.last();
    let mut seen: Vec<&Source> = Vec::new();
    let mut out = Vec::new();
    for r in &trace.reached {
        if seen.contains(&&r.source) {
            continue;
        }
        seen.push(&r.source);
        match &r.source {
            Source::Service(k) | Source::ClusterSet(k) | Source::Custom(k) => {
                service(snap, k, &r.source, ranked, &mut out)
            }
            Source::Ingress(k) | Source::IngressHost(k) => {
                let shards = snap.ingresses.get(k).map(|i| &i.shards[..]).unwrap_or_default();
                ingress(snap, shards, &r.source, ranked, &mut out)
            }
            Source::Route(k) | Source::RouteHost(k) => {
                let shards = snap.routes.get(k).map(|i| &i.shards[..]).unwrap_or_default();
                ingress(snap, shards, &r.source, ranked, &mut out)
            }
            Source::ZoneFile => {}
        }
    }
    out
}

fn service(snap: &Snapshot, k: &ObjectKey, source: &Source, ranked: Option<&Ranked>, out: &mut Vec<ShardView>) {
    let Some(svc) = snap.services.get(k) else { return };
    for sh in &svc.shards {
        let usable = is_candidate(ranked, &sh.cluster.name, &answer_addresses(sh));
        let reason = (!usable).then(|| service_reason(snap, sh));
        out.push(ShardView {
            object: object(source),
            cluster: sh.cluster.name.to_string(),
            addresses: sh.addresses.clone(),
            ready_endpoints: sh.ready_endpoints,
            total_endpoints: Some(sh.total_endpoints),
            probe: probe(sh.probe.state),
            stale: sh.stale,
            usable,
            reason,
        });
    }
}

/// The shards of an Ingress or an HTTPRoute (which share a shape).
fn ingress(
    snap: &Snapshot,
    shards: &[Arc<IngressShard>],
    source: &Source,
    ranked: Option<&Ranked>,
    out: &mut Vec<ShardView>,
) {
    for sh in shards {
        let usable = is_candidate(ranked, &sh.cluster.name, &sh.addresses);
        let reason = (!usable).then(|| ingress_reason(snap, sh));
        out.push(ShardView {
            object: object(source),
            cluster: sh.cluster.name.to_string(),
            addresses: sh.addresses.clone(),
            ready_endpoints: 0,
            total_endpoints: None,
            probe: "none",
            stale: sh.stale,
            usable,
            reason,
        });
    }
}

/// The addresses a shard answers with: its load balancer's, else (headless) its ready
/// endpoints'.
fn answer_addresses(sh: &Shard) -> Vec<IpAddr> {
    if !sh.addresses.is_empty() {
        return sh.addresses.clone();
    }
    sh.endpoints.iter().filter(|e| e.ready).flat_map(|e| e.addresses.iter().copied()).collect()
}

/// Whether the answering name ranked a member of `cluster` with one of `addrs`.
fn is_candidate(ranked: Option<&Ranked>, cluster: &str, addrs: &[IpAddr]) -> bool {
    ranked.is_some_and(|r| {
        r.members.iter().any(|m| m.cluster == cluster && m.addresses.iter().any(|a| addrs.contains(a)))
    })
}

fn service_reason(snap: &Snapshot, sh: &Shard) -> String {
    let why = if sh.addresses.is_empty() && !sh.headless {
        "no load-balancer or external address"
    } else if sh.ready_endpoints == 0 {
        "no ready endpoints"
    } else if sh.probe.state == ProbeState::Down {
        "the health check fails"
    } else if sh.stale && !snap.stale_servable(&sh.cluster.name) {
        "its cluster is offline and the stale policy drops it"
    } else if sh.stale {
        "its cluster is offline: left out while fresh shards are healthy"
    } else {
        "not a candidate of this name (another region or zone, or the name answers with a CNAME)"
    };
    why.to_owned()
}

fn ingress_reason(snap: &Snapshot, sh: &IngressShard) -> String {
    let why = if sh.addresses.is_empty() {
        "no load-balancer address"
    } else if sh.stale && !snap.stale_servable(&sh.cluster.name) {
        "its cluster is offline and the stale policy drops it"
    } else {
        "not a candidate of this name (another region or zone, or the name answers with a CNAME)"
    };
    why.to_owned()
}

fn probe(s: ProbeState) -> &'static str {
    match s {
        ProbeState::Unknown => "none",
        ProbeState::Up => "up",
        ProbeState::Down => "down",
    }
}
