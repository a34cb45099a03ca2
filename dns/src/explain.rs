//! `meridian explain`: the answer a client would get for a name right now, and why. The
//! answer is made by the serving path itself (`answer::answer_traced`) from the
//! published index, with a `Trace` recording what it did, so the explanation and the
//! answer cannot disagree; the shards' health comes from the same table the index was
//! built from.

mod query;
mod shards;
pub(crate) mod trace;
mod view;

use std::net::SocketAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use meridian_model::geo::{Located, Place, Point};
use meridian_model::table::Snapshot;

use crate::answer::{self, Client, Transport};
use crate::index::Index;
pub(crate) use trace::Trace;
pub use view::{
    Answered, Chained, Explanation, LocationView, ObjectRef, PlaceView, QueryView, Ranked, RankingView, ShardView,
};

pub use ipnet::IpNet;
pub use query::{ExplainQuery, parse_qtype};

/// Why a question cannot be explained.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("name {name:?}: {reason}")]
    Name { name: String, reason: &'static str },
    #[error("unknown record type {0:?} (try A, AAAA, SRV, TXT, NS, MX, SOA, CNAME or a number)")]
    Type(String),
    #[error("location {lat},{lon}: latitude must be within ±90 and longitude within ±180")]
    At { lat: f64, lon: f64 },
    #[error("the answer path wrote a response that does not decode: {0}")]
    Decode(String),
}

/// Runs `q` through the answer path against `index` and explains the result, with the
/// health of every shard of the objects the answer came from, read from `snap`.
pub(crate) fn explain(index: &Index, snap: &Snapshot, q: &ExplainQuery) -> Result<Explanation, ExplainError> {
    let packet = query::packet(q)?;
    let mut trace = Trace { given: given_place(q)?, ..Trace::default() };
    // Port 0: no real source port; the address is what locating and cookies read.
    let addr = q.client.map(|ip| SocketAddr::new(ip, 0));
    let client = Client { transport: Transport::Udp, addr };
    let mut out = Vec::new();
    let outcome = answer::answer_traced(index, &packet, &client, &mut out, Some(&mut trace));
    let msg = Message::from_vec(&out).map_err(|e| ExplainError::Decode(e.to_string()))?;
    let ranked = trace.ranked.last();
    let answer = msg.answers.iter().map(|r| view::answered(r, ranked)).collect();
    let ecs_scope = msg.edns.as_ref().and_then(|e| match e.option(EdnsCode::Subnet) {
        Some(EdnsOption::Subnet(s)) => Some(s.scope_prefix()),
        _ => None,
    });
    let location = trace.located.as_ref().map(|l| view::location(q, l, &index.geo));
    let place = trace.located.as_ref().and_then(|l| l.place.as_ref());
    Ok(Explanation {
        query: view::query(q),
        zone: outcome.zone.map(|z| format!("{z}.")),
        rcode: rcode_name(outcome.rcode),
        truncated: msg.metadata.truncation,
        chain: trace.reached.iter().map(view::chained).collect(),
        shards: shards::of(snap, &trace),
        ranking: ranked.map(|r| view::ranking(r, place)),
        location,
        ttl: msg.answers.iter().map(|r| r.ttl).min(),
        answer,
        ecs_scope,
    })
}

/// The RCODE's mnemonic, as dig prints it; a number for one metrics do not name.
fn rcode_name(rc: u16) -> String {
    match crate::metrics::rcode_name(rc) {
        "OTHER" => format!("RCODE{rc}"),
        name => name.to_owned(),
    }
}

/// The location `--at` gives, as the answer path's locating step would have found it:
/// a point, scope 0 (no address bits were read).
fn given_place(q: &ExplainQuery) -> Result<Option<Located>, ExplainError> {
    let Some([lat, lon]) = q.at else { return Ok(None) };
    if !(lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0) {
        return Err(ExplainError::At { lat, lon });
    }
    Ok(Some(Located { place: Some(Place { point: Some(Point::new(lat, lon)), region: None }), scope: 0 }))
}

#[cfg(test)]
mod tests;
