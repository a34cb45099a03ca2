//! An explanation's answer is the answer: for many random tables and questions, the
//! answer `explain` reports equals the one the serving path gives the same query built
//! independently (hickory's encoder), and it is consistent with the ranking it reports.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{Name, RData, RecordType};
use meridian_config::ranking::{NetworkLocation, PolicyName};
use meridian_model::table::{ClusterMeta, Location, ObjectKey, Port, Protocol, Shard, Table, Update};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{ExplainQuery, Explanation, explain};
use crate::answer::{Client, Transport, answer};
use crate::builder::Builder;
use crate::index::Index;

const CITIES: [(f64, f64); 6] =
    [(48.86, 2.35), (40.71, -74.0), (19.08, 72.88), (35.68, 139.69), (-23.55, -46.63), (51.5, -0.12)];
const POLICIES: [&str; 5] = ["roundrobin", "weighted", "failover", "latency", "geo"];

fn clusters(rng: &mut StdRng) -> Vec<Arc<ClusterMeta>> {
    let n = rng.random_range(2..=6);
    (0..n)
        .map(|i| {
            let (lat, lon) = CITIES[rng.random_range(0..CITIES.len())];
            Arc::new(ClusterMeta {
                region: Some(format!("region-{}", i % 3).into()),
                zone: Some(format!("zone-{i}").into()),
                location: Some(Location { lat: lat + f64::from(i as u8), lon }),
                weight: rng.random_range(1..5),
                ..ClusterMeta::new(&format!("c{i}"), i)
            })
        })
        .collect()
}

/// A service over some of `clusters`, one address per shard, random health, policy
/// and cap.
fn service(rng: &mut StdRng, s: usize, clusters: &[Arc<ClusterMeta>]) -> Vec<Update> {
    let mut annotations = BTreeMap::new();
    let policy = POLICIES[rng.random_range(0..POLICIES.len())];
    annotations.insert("meridian.io/policy".to_owned(), policy.to_owned());
    if rng.random_bool(0.5) {
        annotations.insert("meridian.io/max-answers".to_owned(), rng.random_range(1..4).to_string());
    }
    let mut out = Vec::new();
    for (i, c) in clusters.iter().enumerate() {
        if rng.random_bool(0.25) {
            continue;
        }
        let v6 = rng.random_bool(0.3);
        let addr: IpAddr = if v6 { format!("2001:db8::{s}:{i}").parse() } else { format!("192.0.{s}.{i}").parse() }
            .unwrap_or(IpAddr::from([192, 0, 2, 1]));
        let ready = u32::from(rng.random_bool(0.8));
        let rtt = Some(std::time::Duration::from_micros(rng.random_range(100..5000)));
        let shard = Shard {
            ports: vec![Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp }],
            ready_endpoints: ready,
            total_endpoints: 1,
            annotations: annotations.clone(),
            probe: meridian_model::table::Probe { rtt, ..Default::default() },
            ..Shard::new(c.clone(), vec![addr])
        };
        let key = ObjectKey::new("default", &format!("svc{s}"));
        out.push(Update::Service { cluster: c.name.clone(), key, shard: Some(shard) });
    }
    out
}

fn index(rng: &mut StdRng) -> (Index, Table) {
    let mut config = meridian_config::Config::demo();
    config.ranking.default_policy = PolicyName::RoundRobin;
    config.ranking.geoip_db.clear();
    config.ranking.networks = ["10.1.0.0/16", "10.2.0.0/16"]
        .into_iter()
        .enumerate()
        .map(|(i, cidr)| {
            let (lat, lon) = CITIES[i];
            NetworkLocation { cidr: cidr.into(), location: Some(Location { lat, lon }), region: None }
        })
        .collect();
    let cs = clusters(rng);
    let mut updates: Vec<Update> = cs.iter().cloned().map(Update::Cluster).collect();
    for s in 0..4 {
        updates.extend(service(rng, s, &cs));
    }
    let (table, mut writer) = Table::new();
    writer.apply(updates);
    let mut b = Builder::new(&config).expect("index builds");
    b.rebuild(&table.snapshot());
    (b.index(), table)
}

fn question(rng: &mut StdRng, names: &[String]) -> ExplainQuery {
    let name = match names.get(rng.random_range(0..names.len() + 1)) {
        Some(n) => n.clone(),
        None => "nothing-here.meridian.test".to_owned(),
    };
    let qtype = [1u16, 28, 255, 33, 16][rng.random_range(0..5)];
    let client: Option<IpAddr> = match rng.random_range(0..3) {
        0 => None,
        1 => Some(IpAddr::from([10, 1, 2, 3])),
        _ => Some(IpAddr::from([10, 2, 9, 9])),
    };
    let subnet = rng.random_bool(0.4).then(|| if rng.random_bool(0.5) { "10.1.7.0/24" } else { "10.2.0.0/20" });
    let subnet = subnet.and_then(|s| s.parse().ok());
    ExplainQuery { name, qtype, client, subnet, at: None }
}

/// The same question as a resolver would send it, encoded by hickory.
fn served(index: &Index, q: &ExplainQuery) -> Message {
    let mut m = Message::query();
    let name = Name::from_ascii(&q.name).expect("name");
    m.add_query(Query::query(name, RecordType::from(q.qtype)));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    if let Some(net) = q.subnet {
        edns.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(net.addr(), net.prefix_len(), 0)));
    }
    m.set_edns(edns);
    let packet = m.to_vec().expect("encodes");
    let client = Client { transport: Transport::Udp, addr: q.client.map(|ip| SocketAddr::new(ip, 0)) };
    let mut out = Vec::new();
    answer(index, &packet, &client, &mut out);
    Message::from_vec(&out).expect("decodes")
}

fn records(m: &Message) -> Vec<String> {
    let mut v: Vec<String> =
        m.answers.iter().map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data)).collect();
    v.sort();
    v
}

/// Clusters of the address records of an answer, in order.
fn clusters_of(x: &Explanation) -> Vec<String> {
    x.answer.iter().filter_map(|a| a.cluster.clone()).collect()
}

#[test]
fn explained_answers_are_the_served_answers() {
    let mut compared = 0;
    for seed in 0..60u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let (index, table) = index(&mut rng);
        let names: Vec<String> = index.all_names().into_iter().map(|(k, _, _)| crate::name::text(k)).collect();
        for _ in 0..40 {
            let q = question(&mut rng, &names);
            let x = explain(&index, &table.snapshot(), &q).expect("explains");
            let m = served(&index, &q);
            let case = format!("seed {seed}: {q:?}\n{x:#?}");
            assert_eq!(x.rcode, super::rcode_name(u16::from(m.metadata.response_code)), "{case}");
            assert_eq!(x.answer.len(), m.answers.len(), "{case}");
            let ranking = x.ranking.as_ref();
            let cut = ranking.is_some_and(|r| r.candidates.len() > r.cap);
            let fixed = ranking.is_some_and(|r| matches!(r.applied, "latency" | "geo"));
            // A rotation or a weighted draw that is cut to the cap keeps different
            // members from one answer to the next; otherwise the two answers hold the
            // same records.
            if !cut || fixed {
                let mine: Vec<String> = {
                    let mut v: Vec<String> =
                        x.answer.iter().map(|a| format!("{} {} {} {}", a.name, a.ttl, a.rtype, a.data)).collect();
                    v.sort();
                    v
                };
                assert_eq!(mine, records(&m), "{case}");
            }
            if let Some(r) = ranking {
                check_ranking(&x, r, &index, &q, &case);
                compared += 1;
            }
            let scope = m.edns.as_ref().and_then(|e| match e.option(hickory_proto::rr::rdata::opt::EdnsCode::Subnet) {
                Some(EdnsOption::Subnet(s)) => Some(s.scope_prefix()),
                _ => None,
            });
            assert_eq!(x.ecs_scope, scope, "{case}");
        }
    }
    assert!(compared > 500, "only {compared} ranked answers compared");
}

/// The answer follows the ranking the explanation reports: no more records than the
/// cap, and, where the order is fixed (latency, geo with a location), its clusters in
/// the reported order, as the served answer's are.
fn check_ranking(x: &Explanation, r: &super::RankingView, index: &Index, q: &ExplainQuery, case: &str) {
    let addrs = x.answer.iter().filter(|a| a.rtype == "A" || a.rtype == "AAAA").count();
    assert!(addrs <= r.cap, "{case}");
    if !matches!(r.applied, "latency" | "geo") {
        return;
    }
    let got = clusters_of(x);
    let expected: Vec<String> = r.order.iter().filter(|c| got.contains(c)).cloned().collect();
    assert_eq!(got, expected, "answer out of the reported order: {case}");
    let again = served(index, q);
    let served_clusters: Vec<String> = again
        .answers
        .iter()
        .filter_map(|rec| {
            let ip: IpAddr = match &rec.data {
                RData::A(a) => a.0.into(),
                RData::AAAA(a) => a.0.into(),
                _ => return None,
            };
            r.candidates.iter().find(|c| c.addresses.contains(&ip)).map(|c| c.cluster.clone())
        })
        .collect();
    assert_eq!(got, served_clusters, "{case}");
}

/// A location given directly orders a geo name as a client there would see it.
#[test]
fn a_given_location_ranks_geo_names_from_there() {
    let geo_name = |index: &Index| {
        let mut names = index.all_names().into_iter();
        let geo = |node: &crate::record::Node| {
            node.addrs.as_ref().is_some_and(|c| c.rank.mode == crate::candidates::Mode::Geo)
        };
        names.find(|(_, node, _)| geo(node)).map(|(k, _, _)| crate::name::text(k))
    };
    let Some((index, table, name)) = (0..20u64).find_map(|seed| {
        let (index, table) = index(&mut StdRng::seed_from_u64(seed));
        let name = geo_name(&index)?;
        Some((index, table, name))
    }) else {
        panic!("no seed makes a geo name")
    };
    for (lat, lon) in CITIES {
        let q = ExplainQuery { name: name.clone(), qtype: 1, at: Some([lat, lon]), ..Default::default() };
        let x = explain(&index, &table.snapshot(), &q).expect("explains");
        if x.answer.is_empty() {
            continue;
        }
        let Some(r) = &x.ranking else { panic!("{name} has no ranking") };
        assert_eq!(r.applied, "geo");
        let d: Vec<f64> =
            r.order.iter().filter_map(|c| r.candidates.iter().find(|k| &k.cluster == c)?.distance_km).collect();
        assert!(d.windows(2).all(|w| w[0] <= w[1] + 0.1), "nearest first from {lat},{lon}: {d:?}");
        assert_eq!(x.location.as_ref().map(|l| l.from), Some("given"));
    }
}

#[test]
fn bad_questions_are_named() {
    let mut rng = StdRng::seed_from_u64(1);
    let (index, table) = index(&mut rng);
    let q = |name: &str, at| ExplainQuery { name: name.into(), qtype: 1, at, ..Default::default() };
    let long = format!("{}.meridian.test", "a".repeat(64));
    for (bad, want) in [
        (q("a..b", None), "empty label"),
        (q(&long, None), "63"),
        (q("web.meridian.test", Some([91.0, 0.0])), "latitude"),
    ] {
        let Err(e) = explain(&index, &table.snapshot(), &bad) else { panic!("{bad:?} explained") };
        assert!(e.to_string().contains(want), "{e}");
    }
    assert!(super::parse_qtype("aaaa").is_ok_and(|t| t == 28));
    assert!(super::parse_qtype("BOGUS").is_err());
}
