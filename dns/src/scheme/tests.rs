//! The names a service publishes, computed from a table and read back: headless services
//! (exported `clusterIP: None`) answer their ready endpoints at every Federation v1 level.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use meridian_config::Config;
use meridian_model::table::{ClusterMeta, Endpoint, FederatedService, ObjectKey, Shard, Snapshot, Table, Update};

use super::service;
use crate::candidates::Addrs;
use crate::name::{self, Key};
use crate::record::Node;
use crate::settings::Settings;

const GLOBAL: &str = "db.shop.demo.svc.meridian.test";
const US: &str = "db.shop.demo.svc.us-east1.meridian.test";
const US_ZONE: &str = "db.shop.demo.svc.us-east1-b.us-east1.meridian.test";
const EU: &str = "db.shop.demo.svc.europe-west1.meridian.test";
const AP: &str = "db.shop.demo.svc.asia-south1.meridian.test";
const AP_ZONE: &str = "db.shop.demo.svc.asia-south1-a.asia-south1.meridian.test";
const CLUSTERSET: &str = "db.shop.svc.clusterset.local";

fn clusters() -> Vec<Arc<ClusterMeta>> {
    [
        ("us-east", "us-east1", "us-east1-b"),
        ("eu-west", "europe-west1", "europe-west1-b"),
        ("ap-south", "asia-south1", "asia-south1-a"),
    ]
    .iter()
    .enumerate()
    .map(|(i, (n, r, z))| {
        Arc::new(ClusterMeta { region: Some((*r).into()), zone: Some((*z).into()), ..ClusterMeta::new(n, i) })
    })
    .collect()
}

/// A shard of `db` in one cluster, as data.
enum Spec<'a> {
    /// Headless, with (address, ready) endpoints.
    Headless(&'a str, &'a [(&'a str, bool)]),
    /// A load balancer with these addresses and one ready endpoint.
    Lb(&'a str, &'a [&'a str]),
    /// Headless with an external address besides its endpoints.
    HeadlessExternal(&'a str, &'a str, &'a [(&'a str, bool)]),
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn shard(spec: &Spec<'_>, annotations: &BTreeMap<String, String>) -> (String, Shard) {
    let (cluster, addrs, eps, headless): (&str, Vec<IpAddr>, &[(&str, bool)], bool) = match *spec {
        Spec::Headless(c, eps) => (c, vec![], eps, true),
        Spec::Lb(c, addrs) => (c, addrs.iter().map(|a| ip(a)).collect(), &[("10.99.0.1", true)], false),
        Spec::HeadlessExternal(c, ext, eps) => (c, vec![ip(ext)], eps, true),
    };
    let meta = clusters().into_iter().find(|m| &*m.name == cluster).expect("known cluster");
    let endpoints: Vec<Endpoint> = eps
        .iter()
        .map(|(a, ready)| Endpoint { addresses: vec![ip(a)], hostname: None, ready: *ready, ports: vec![] })
        .collect();
    let ready = endpoints.iter().filter(|e| e.ready).count() as u32;
    let s = Shard {
        headless,
        ready_endpoints: ready,
        total_endpoints: endpoints.len() as u32,
        endpoints: if headless { endpoints } else { vec![] },
        annotations: annotations.clone(),
        exported: true,
        ..Shard::new(meta, addrs)
    };
    (cluster.to_owned(), s)
}

/// The snapshot with `db`'s shards, and the settings (every service exported).
fn setup(specs: &[Spec<'_>], annotations: &[(&str, &str)]) -> (Arc<Snapshot>, Settings) {
    let annotations: BTreeMap<String, String> =
        annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let (table, mut writer) = Table::new();
    let mut updates: Vec<Update> = clusters().into_iter().map(Update::Cluster).collect();
    for spec in specs {
        let (cluster, s) = shard(spec, &annotations);
        updates.push(Update::Service { cluster: cluster.into(), key: ObjectKey::new("shop", "db"), shard: Some(s) });
    }
    writer.apply(updates);
    let mut config = Config::demo();
    config.dns.clusterset.export = meridian_config::dns::ExportMode::All;
    (table.snapshot(), Settings::from_config(&config))
}

/// Every name `db` publishes, by its text.
fn names(snap: &Snapshot, s: &Settings) -> HashMap<String, (Key, Arc<Node>)> {
    let svc: &FederatedService = snap.services.get(&ObjectKey::new("shop", "db")).expect("db is in the table");
    let (mut out, mut problems) = (Vec::new(), Vec::new());
    service(snap, s, svc, None, &mut out, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    out.into_iter().map(|(k, n)| (name::text(&k).trim_end_matches('.').to_owned(), (k, n))).collect()
}

/// The candidates the name `key` answers with, as the index resolves them: a level
/// name's are those of its global name, in its place.
fn addrs_of<'a>(nodes: &'a HashMap<String, (Key, Arc<Node>)>, key: &'a [u8], node: &'a Node) -> Addrs<'a> {
    if let Some(c) = &node.addrs {
        return Addrs { c, place: None };
    }
    let level = node.level.as_ref().expect("an address or level node");
    let global = nodes.values().find(|(k, _)| **k == *level.global).expect("the level's global name");
    let c = global.1.addrs.as_ref().expect("the global name has addresses");
    Addrs { c, place: Some(level.place(key).expect("a place")) }
}

/// What a name answers, as data.
#[derive(Debug, PartialEq)]
enum Want<'a> {
    /// These A/AAAA candidates (sorted); none is NODATA.
    Addrs(&'a [&'a str]),
    /// A CNAME to this name.
    Cname(&'a str),
    /// The name does not exist.
    Absent,
}

fn answer_of(nodes: &HashMap<String, (Key, Arc<Node>)>, name: &str) -> Result<Vec<String>, Option<String>> {
    let Some((key, node)) = nodes.get(name) else { return Err(None) };
    if let Some(c) = &node.cname {
        return Err(Some(name::text(&c.key).trim_end_matches('.').to_owned()));
    }
    let (a, aaaa) = addrs_of(nodes, key, node).records();
    let mut v: Vec<String> =
        a.iter().filter_map(|o| <[u8; 4]>::try_from(*o).ok()).map(|o| IpAddr::from(o).to_string()).collect();
    v.extend(aaaa.iter().filter_map(|o| <[u8; 16]>::try_from(*o).ok()).map(|o| IpAddr::from(o).to_string()));
    v.sort();
    Ok(v)
}

fn check(case: &str, nodes: &HashMap<String, (Key, Arc<Node>)>, name: &str, want: &Want<'_>) {
    let got = answer_of(nodes, name);
    match want {
        Want::Addrs(a) => {
            assert_eq!(got, Ok(a.iter().map(|s| (*s).to_owned()).collect::<Vec<String>>()), "{case}: {name}")
        }
        Want::Cname(t) => assert_eq!(got, Err(Some((*t).to_owned())), "{case}: {name}"),
        Want::Absent => assert_eq!(got, Err(None), "{case}: {name}"),
    }
}

/// Each case: the shards of `db`, then what its names answer.
#[test]
fn headless_services_answer_their_ready_endpoints_at_every_level() {
    use Spec::*;
    use Want::*;
    type Case<'a> = (&'a str, &'a [Spec<'a>], &'a [(&'a str, Want<'a>)]);
    let cases: &[Case<'_>] = &[
        (
            "two clusters, one endpoint not ready",
            &[
                Headless("us-east", &[("10.0.0.1", true), ("10.0.0.2", false)]),
                Headless("eu-west", &[("10.1.0.1", true), ("2001:db8::11", true)]),
            ],
            &[
                (GLOBAL, Addrs(&["10.0.0.1", "10.1.0.1", "2001:db8::11"])),
                (US, Addrs(&["10.0.0.1"])),
                (US_ZONE, Addrs(&["10.0.0.1"])),
                (EU, Addrs(&["10.1.0.1", "2001:db8::11"])),
                (AP, Cname(GLOBAL)),
                (AP_ZONE, Cname(AP)),
                (CLUSTERSET, Addrs(&["10.0.0.1", "10.1.0.1", "2001:db8::11"])),
            ],
        ),
        (
            "no ready endpoint in us-east: its names go up to the global name",
            &[Headless("us-east", &[("10.0.0.2", false)]), Headless("eu-west", &[("10.1.0.1", true)])],
            &[(GLOBAL, Addrs(&["10.1.0.1"])), (US, Cname(GLOBAL)), (US_ZONE, Cname(US)), (EU, Addrs(&["10.1.0.1"]))],
        ),
        (
            "no ready endpoint anywhere: NODATA (not-ready pods are never served, fail-open or not)",
            &[Headless("us-east", &[("10.0.0.2", false)])],
            &[(GLOBAL, Addrs(&[])), (US, Cname(GLOBAL)), (CLUSTERSET, Absent)],
        ),
        (
            "headless in one cluster, a load balancer in another",
            &[Lb("us-east", &["192.0.2.1"]), Headless("eu-west", &[("10.1.0.1", true), ("10.1.0.2", true)])],
            &[
                (GLOBAL, Addrs(&["10.1.0.1", "10.1.0.2", "192.0.2.1"])),
                (US, Addrs(&["192.0.2.1"])),
                (EU, Addrs(&["10.1.0.1", "10.1.0.2"])),
            ],
        ),
        (
            "a headless shard with an external address answers that address",
            &[HeadlessExternal("us-east", "192.0.2.9", &[("10.0.0.1", true)])],
            &[(GLOBAL, Addrs(&["192.0.2.9"])), (US, Addrs(&["192.0.2.9"]))],
        ),
    ];
    for (case, specs, wants) in cases {
        let (snap, s) = setup(specs, &[]);
        let nodes = names(&snap, &s);
        for (name, want) in *wants {
            check(case, &nodes, name, want);
        }
    }
}

/// For a headless service the global Federation v1 name answers exactly as its clusterset
/// name: the same records, grouped the same way, under the same ranking and answer cap.
#[test]
fn the_global_name_of_a_headless_service_ranks_and_caps_like_its_clusterset_name() {
    let many: Vec<(String, bool)> = (1..=20).map(|i| (format!("10.0.1.{i}"), true)).collect();
    let many: Vec<(&str, bool)> = many.iter().map(|(a, r)| (a.as_str(), *r)).collect();
    let specs = [
        Spec::Headless("us-east", &many),
        Spec::Headless("eu-west", &[("10.1.0.1", true), ("10.1.0.2", true)]),
        Spec::Headless("ap-south", &[("10.2.0.1", true)]),
    ];
    let policies: &[&[(&str, &str)]] = &[
        &[],
        &[("meridian.io/policy", "failover"), ("meridian.io/failover", "eu-west,us-east")],
        &[("meridian.io/policy", "weighted"), ("meridian.io/max-answers", "3")],
        &[("meridian.io/policy", "geo")],
    ];
    for annotations in policies {
        let (snap, s) = setup(&specs, annotations);
        let nodes = names(&snap, &s);
        let of = |n: &str| nodes.get(n).and_then(|x| x.1.addrs.clone()).expect("address node");
        let (fed, mcs) = (of(GLOBAL), of(CLUSTERSET));
        assert_eq!((fed.a.len(), &fed.a), (23, &mcs.a), "{annotations:?}");
        let ranges = |c: &crate::candidates::Candidates| c.members.iter().map(|m| m.a.clone()).collect::<Vec<_>>();
        assert_eq!(ranges(&fed), ranges(&mcs), "{annotations:?}");
        let (fr, mr) = (&fed.rank, &mcs.rank);
        assert_eq!(
            (fr.mode, &fr.order, fr.fallback, &fr.fallback_order, fr.max_answers),
            (mr.mode, &mr.order, mr.fallback, &mr.fallback_order, mr.max_answers),
            "{annotations:?}"
        );
        let want_cap = if annotations.iter().any(|(k, _)| *k == "meridian.io/max-answers") { 3 } else { 8 };
        assert_eq!(fr.max_answers, want_cap, "{annotations:?}");
    }
    // Failover keeps only the first group: eu-west's two endpoints.
    let (snap, s) = setup(&specs, policies[1]);
    let fed = names(&snap, &s).remove(GLOBAL).and_then(|n| n.1.addrs.clone()).expect("address node");
    assert_eq!(fed.rank.order.len(), 2, "{:?}", fed.rank.order);
}
