//! A fixed index (the demo configuration with a few services) and the query handler over
//! it, so arbitrary bytes can be thrown at exactly the code the server runs.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use meridian_config::Config;
use meridian_model::table::{
    ClusterMeta, Endpoint, IngressPath, IngressShard, ObjectKey, Port, Protocol, Shard, Table, Update,
};

use crate::answer::{Client, Transport, answer};
use crate::builder::Builder;
use crate::index::Index;

fn index() -> &'static Index {
    static INDEX: OnceLock<Index> = OnceLock::new();
    INDEX.get_or_init(|| {
        let mut config = Config::demo();
        config.dns.clusterset.export = meridian_config::dns::ExportMode::All;
        let (table, mut writer) = Table::new();
        writer.apply(sample_updates());
        match Builder::new(&config) {
            Ok(mut b) => {
                b.rebuild(&table.snapshot());
                b.index()
            }
            Err(_) => Index::default(),
        }
    })
}

fn meta(name: &str, region: &str, zone: &str, order: usize) -> Arc<ClusterMeta> {
    Arc::new(ClusterMeta {
        name: name.into(),
        region: Some(region.into()),
        zone: Some(zone.into()),
        location: None,
        weight: 1,
        labels: Default::default(),
        order,
    })
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// Three clusters, a service with IPv4 and IPv6 shards, a headless service and an Ingress.
pub(crate) fn sample_updates() -> Vec<Update> {
    let clusters = [meta("us-east", "us-east1", "us-east1-b", 0), meta("eu-west", "europe-west1", "europe-west1-b", 1)];
    let mut updates: Vec<Update> = clusters.iter().cloned().map(Update::Cluster).collect();
    for (i, c) in clusters.iter().enumerate() {
        let port = Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp };
        let shard = Shard {
            cluster: c.clone(),
            addresses: vec![ip(&format!("192.0.2.{}", i + 1)), ip(&format!("2001:db8::{}", i + 1))],
            hostnames: vec![],
            ports: vec![port.clone()],
            headless: false,
            ready_endpoints: 1,
            total_endpoints: 1,
            endpoints: vec![],
            annotations: Default::default(),
            exported: true,
            created: None,
            stale: false,
            probe: Default::default(),
        };
        updates.push(Update::Service {
            cluster: c.name.clone(),
            key: ObjectKey::new("default", "web"),
            shard: Some(shard.clone()),
        });
        let headless = Shard {
            addresses: vec![],
            headless: true,
            endpoints: vec![Endpoint {
                addresses: vec![ip(&format!("10.0.{i}.1"))],
                hostname: Some("db-0".into()),
                ready: true,
                ports: vec![port],
            }],
            ..shard
        };
        updates.push(Update::Service {
            cluster: c.name.clone(),
            key: ObjectKey::new("default", "db"),
            shard: Some(headless),
        });
        let ing = IngressShard {
            cluster: c.clone(),
            addresses: vec![ip(&format!("198.51.100.{}", i + 1))],
            hostnames: vec![],
            paths: vec![IngressPath {
                host: "www.meridian.test".into(),
                path: "/".into(),
                path_type: "Prefix".into(),
                service: "web".into(),
                port: 80,
                port_name: None,
            }],
            annotations: Default::default(),
            stale: false,
        };
        updates.push(Update::Ingress {
            cluster: c.name.clone(),
            key: ObjectKey::new("default", "web"),
            shard: Some(ing),
        });
    }
    updates
}

/// Answers `packet` as if it came over UDP (`tcp = false`) or TCP; `None` when dropped.
/// Checks the invariants every response must hold, panicking when one breaks (that is
/// the point of a fuzz target).
pub fn answer_bytes(packet: &[u8], tcp: bool) -> Option<Vec<u8>> {
    // Over TCP a transfer request takes the transfer path, as in `tcp`.
    if tcp && crate::xfr::respond::is_transfer(packet) {
        return transfer_bytes(packet);
    }
    let client = Client { transport: if tcp { Transport::Tcp } else { Transport::Udp }, addr: None };
    let mut out = Vec::new();
    let outcome = answer(index(), packet, &client, &mut out);
    if !outcome.respond {
        return None;
    }
    let limit = if tcp { crate::wire::MAX_MESSAGE } else { usize::from(crate::wire::EDNS_PAYLOAD) };
    assert!(out.len() >= crate::wire::HEADER_LEN && out.len() <= limit, "response of {} octets", out.len());
    assert_eq!(out.get(..2), packet.get(..2), "response id differs from the query's");
    Some(out)
}

/// The transfer path (`xfr::respond`) over the same index: every message within 64 KiB
/// and carrying the query's ID; the first one is returned.
fn transfer_bytes(packet: &[u8]) -> Option<Vec<u8>> {
    static XFR: OnceLock<crate::xfr::Transfers> = OnceLock::new();
    let xfr = XFR.get_or_init(|| crate::xfr::Transfers::new(&Config::demo()));
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 5353));
    let msgs = crate::xfr::respond::respond(xfr, index(), packet, peer);
    for m in &msgs {
        assert!(
            m.len() >= crate::wire::HEADER_LEN && m.len() <= crate::wire::MAX_MESSAGE,
            "message of {} octets",
            m.len()
        );
        assert_eq!(m.get(..2), packet.get(..2), "response id differs from the query's");
    }
    msgs.into_iter().next()
}
