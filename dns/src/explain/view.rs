//! The explanation as `/api/v1/explain` and `meridian explain` show it.

use std::net::IpAddr;

use hickory_proto::rr::{RData, Record};
use meridian_model::geo::{Geo, Located, Place};
use serde::Serialize;

use super::ExplainQuery;
use super::trace::{Ranked as Trace, Reached};
use crate::candidates::Mode;

/// The answer a client would get now, and how it was made.
#[derive(Debug, Serialize)]
pub struct Explanation {
    pub query: QueryView,
    /// The served zone the name falls in; `None` when the query was refused.
    pub zone: Option<String>,
    pub rcode: String,
    /// The answer did not fit a 1,232-octet UDP response: the client retries over TCP.
    pub truncated: bool,
    /// Every name the lookup went through, the question's first.
    pub chain: Vec<Chained>,
    /// Where the client was placed, when the name's policy looks.
    pub location: Option<LocationView>,
    /// How the address records were ordered and cut, when the name has generated ones.
    pub ranking: Option<RankingView>,
    /// Every shard of the objects on the chain, usable or not, and why not.
    pub shards: Vec<ShardView>,
    pub answer: Vec<Answered>,
    /// The lowest TTL of the answer section.
    pub ttl: Option<u32>,
    /// The Client Subnet scope echoed (RFC 7871): how many bits of the subnet the answer
    /// depends on.
    pub ecs_scope: Option<u8>,
}

#[derive(Debug, Serialize)]
pub struct QueryView {
    pub name: String,
    #[serde(rename = "type")]
    pub qtype: String,
    pub client: Option<IpAddr>,
    pub subnet: Option<String>,
    pub at: Option<[f64; 2]>,
}

#[derive(Debug, Serialize)]
pub struct Chained {
    pub name: String,
    pub source: ObjectRef,
    pub cname: Option<String>,
}

/// The kind of a name (service, ingress, clusterset, ingress-host, custom, zone-file)
/// and the object it comes from.
#[derive(Debug, Clone, Serialize)]
pub struct ObjectRef {
    pub kind: &'static str,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct LocationView {
    /// `given` (a location was asked for), `ecs`, `source-address`.
    pub from: &'static str,
    /// `networks` (the `[[ranking.networks]]` table), `geoip` (the database), or `None`
    /// when the client could not be located.
    pub found_in: Option<&'static str>,
    pub place: Option<PlaceView>,
    pub scope: u8,
}

#[derive(Debug, Serialize)]
pub struct PlaceView {
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub region: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RankingView {
    /// The name's policy: roundrobin, failover, latency, weighted, geo.
    pub policy: &'static str,
    /// The policy that ordered this answer: geo falls back when the client has no location.
    pub applied: &'static str,
    /// The most address records an answer holds (`ranking.max_answers`).
    pub cap: usize,
    /// Clusters in the order their records were offered to the answer; those past the
    /// cap were cut.
    pub order: Vec<String>,
    pub candidates: Vec<Ranked>,
}

/// One candidate shard with the ranking's inputs.
#[derive(Debug, Serialize)]
pub struct Ranked {
    pub cluster: String,
    pub region: Option<String>,
    pub addresses: Vec<IpAddr>,
    pub weight: u32,
    /// Failover group (0 first).
    pub group: usize,
    pub distance_km: Option<f64>,
    pub rtt_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct ShardView {
    pub object: ObjectRef,
    pub cluster: String,
    pub addresses: Vec<IpAddr>,
    pub ready_endpoints: u32,
    pub total_endpoints: Option<u32>,
    /// `up`, `down` or `none` (not probed): this instance's verdict, the fleet's with `[fleet]`.
    pub probe: &'static str,
    pub stale: bool,
    /// Among the candidates of the name that answered.
    pub usable: bool,
    /// Why it is not, when it is not.
    pub reason: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Answered {
    pub name: String,
    #[serde(rename = "type")]
    pub rtype: String,
    pub ttl: u32,
    pub data: String,
    /// The cluster whose shard an address record comes from.
    pub cluster: Option<String>,
}

pub(super) fn query(q: &ExplainQuery) -> QueryView {
    QueryView {
        name: q.name.clone(),
        qtype: hickory_proto::rr::RecordType::from(q.qtype).to_string(),
        client: q.client,
        subnet: q.subnet.map(|n| n.trunc().to_string()),
        at: q.at,
    }
}

pub(super) fn object(source: &crate::record::Source) -> ObjectRef {
    let (kind, key) = source.describe();
    ObjectRef { kind, namespace: key.map(|k| k.namespace.to_string()), name: key.map(|k| k.name.to_string()) }
}

pub(super) fn chained(r: &Reached) -> Chained {
    Chained { name: r.name.clone(), source: object(&r.source), cname: r.cname.clone() }
}

pub(super) fn answered(r: &Record, ranked: Option<&Trace>) -> Answered {
    let ip: Option<IpAddr> = match &r.data {
        RData::A(a) => Some(IpAddr::V4(a.0)),
        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
        _ => None,
    };
    let cluster = ip.and_then(|ip| {
        let members = &ranked?.members;
        members.iter().find(|m| m.addresses.contains(&ip)).map(|m| m.cluster.clone())
    });
    Answered {
        name: r.name.to_string(),
        rtype: r.record_type().to_string(),
        ttl: r.ttl,
        data: r.data.to_string(),
        cluster,
    }
}

pub(super) fn location(q: &ExplainQuery, l: &Located, geo: &Geo) -> LocationView {
    let (from, probe) = match (q.at, q.subnet, q.client) {
        (Some(_), _, _) => ("given", None),
        (None, Some(net), _) => ("ecs", Some(net.addr())),
        (None, None, Some(ip)) => ("source-address", Some(ip)),
        (None, None, None) => ("none", None),
    };
    let found_in = match (&l.place, probe) {
        (Some(_), Some(ip)) if geo.in_networks(ip) => Some("networks"),
        (Some(_), Some(_)) => Some("geoip"),
        _ => None,
    };
    LocationView { from, found_in, place: l.place.as_ref().map(place), scope: l.scope }
}

fn place(p: &Place) -> PlaceView {
    PlaceView {
        lat: p.point.map(|x| x.lat),
        lon: p.point.map(|x| x.lon),
        region: p.region.as_deref().map(str::to_owned),
    }
}

pub(super) fn ranking(r: &Trace, client: Option<&Place>) -> RankingView {
    let at = client.and_then(|p| p.point);
    let candidates = r
        .members
        .iter()
        .map(|m| Ranked {
            cluster: m.cluster.clone(),
            region: m.region.clone(),
            addresses: m.addresses.clone(),
            weight: m.weight,
            group: m.group,
            distance_km: at.zip(m.point).map(|(a, b)| (a.distance_km(&b) * 10.0).round() / 10.0),
            rtt_ms: m.rtt.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
        })
        .collect();
    let order = r.order.iter().filter_map(|&i| r.members.get(i)).map(|m| m.cluster.clone()).collect();
    RankingView { policy: policy(r.policy), applied: policy(r.mode), cap: r.cap, order, candidates }
}

fn policy(m: Mode) -> &'static str {
    match m {
        Mode::Rotate => "roundrobin",
        Mode::RotateSubset => "failover",
        Mode::Fixed => "latency",
        Mode::Weighted => "weighted",
        Mode::Geo => "geo",
    }
}
