//! The names a federated object publishes, and what each answers.
//!
//! - Federation v1: `<svc>.<ns>.<fed>.svc.<dns-zone>` (global), `….svc.<region>.<dns-zone>`
//!   and `….svc.<zone>.<region>.<dns-zone>`, each with the healthy shards at that level or
//!   a CNAME one level up; the same under `ing` for Ingresses and under `route` for
//!   Gateway API HTTPRoutes. A headless shard answers with its ready endpoints, as its
//!   clusterset name does.
//! - Multi-Cluster Services (KEP-1645): `<svc>.<ns>.svc.<clusterset>`, SRV per named port,
//!   and per-endpoint names of headless services.
//! - Ingress and HTTPRoute hosts and configured custom names inside a served zone.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use meridian_model::rank::Problem;
use meridian_model::table::{
    FederatedIngress, FederatedRoute, FederatedService, HttpKind, IngressShard, ObjectKey, Shard, Snapshot, StalePolicy,
};

use crate::candidates::{Candidates, MemberInput};
use crate::name::{self, Key, NameMap};
use crate::record::{Cname, Level, Named, Node, Rrset, Source};
use crate::settings::Settings;
use crate::wire::rtype;

/// Annotation overriding the TTL of a service's answers, in seconds.
pub const TTL_ANNOTATION: &str = "meridian.io/ttl";
/// Highest TTL accepted from an annotation (one week, like `dns.ttl`).
const MAX_TTL: u32 = 604_800;
/// SRV weight of MCS records: every target is equal (RFC 2782 allows any value).
const SRV_WEIGHT: u16 = 100;

type Members<'a> = Vec<MemberInput<'a>>;
/// SRV RDATA by (port name, protocol).
type SrvSets = BTreeMap<(Arc<str>, &'static str), Vec<Box<[u8]>>>;

/// The TTL a set of annotations asks for (the first shard that sets it wins).
pub(crate) fn ttl_override<'a>(annotations: impl IntoIterator<Item = &'a BTreeMap<String, String>>) -> Option<u32> {
    annotations.into_iter().find_map(|a| {
        let v = a.get(TTL_ANNOTATION)?.trim();
        v.strip_suffix('s').unwrap_or(v).parse::<u32>().ok().map(|t| t.min(MAX_TTL))
    })
}

/// Healthy shards with addresses, and what the global name answers (fail-open when none is
/// healthy).
fn service_pools<'a>(snap: &Snapshot, s: &Settings, svc: &'a FederatedService) -> (Members<'a>, Members<'a>) {
    let members = |v: Vec<&'a Arc<Shard>>| -> Members<'a> {
        let mut out = Vec::with_capacity(v.len());
        v.into_iter().for_each(|sh| shard_members(sh, &mut out));
        out
    };
    let healthy = members(snap.usable_shards(&svc.shards, false));
    let global = if !healthy.is_empty() || !s.fail_open {
        healthy.clone()
    } else {
        members(snap.usable_shards(&svc.shards, true))
    };
    (healthy, global)
}

/// Ingress shards that answers may use: Ingresses carry no endpoint health, so every shard
/// with an address counts, subject to the stale policy.
fn ingress_members<'a>(snap: &Snapshot, shards: &'a [Arc<IngressShard>]) -> Members<'a> {
    let policy = snap.stale_policy.map_or(StalePolicy::Serve, |p| p.0);
    let with_addr = || shards.iter().filter(|sh| !sh.addresses.is_empty());
    let fresh: Vec<_> = with_addr().filter(|sh| !sh.stale).collect();
    let stale = || with_addr().filter(|sh| sh.stale && snap.stale_servable(&sh.cluster.name));
    let chosen: Vec<&Arc<IngressShard>> = match policy {
        StalePolicy::Drop => fresh,
        StalePolicy::Serve => with_addr().filter(|sh| !sh.stale || snap.stale_servable(&sh.cluster.name)).collect(),
        StalePolicy::Fallback if fresh.is_empty() => stale().collect(),
        StalePolicy::Fallback => fresh,
    };
    chosen
        .into_iter()
        .map(|sh| MemberInput { cluster: &sh.cluster, addrs: &sh.addresses, annotations: &sh.annotations, rtt: None })
        .collect()
}

/// What one shard answers with: its load-balancer or external addresses; a headless shard
/// without those (an exported `clusterIP: None` Service), its ready endpoints. Each
/// endpoint is a member of its own, as in the clusterset name, so the ranking orders
/// endpoints and the answer cap counts them.
fn shard_members<'a>(sh: &'a Shard, out: &mut Members<'a>) {
    if !sh.addresses.is_empty() {
        out.push(shard_member(sh, &sh.addresses));
    } else if sh.headless {
        let ready = sh.endpoints.iter().filter(|ep| ep.ready && !ep.addresses.is_empty());
        out.extend(ready.map(|ep| shard_member(sh, &ep.addresses)));
    }
}

fn shard_member<'a>(sh: &'a Shard, addrs: &'a [IpAddr]) -> MemberInput<'a> {
    MemberInput { cluster: &sh.cluster, addrs, annotations: &sh.annotations, rtt: sh.probe.rtt }
}

/// Who a name's ranking belongs to, and where its annotation problems go.
pub(crate) struct Ranked<'a, 'p> {
    pub(crate) key: &'a ObjectKey,
    pub(crate) settings: &'a Settings,
    pub(crate) problems: &'p mut Vec<Problem>,
}

fn addr_node(ttl: u32, members: &[MemberInput<'_>], source: Source, r: &mut Ranked<'_, '_>) -> Arc<Node> {
    let c = Candidates::new(ttl, members, r.key, &r.settings.ranking, r.problems);
    Arc::new(Node { addrs: Some(Arc::new(c)), source, ..Default::default() })
}

fn cname_node(ttl: u32, target: &Key, source: Source) -> Arc<Node> {
    let cname = Cname { ttl, target: target.clone(), key: target.clone() };
    Arc::new(Node { cname: Some(cname), source, ..Default::default() })
}

/// The node every region name (`zone` false) or zone name of one object shares while it
/// has members there: it answers with the global name's members in that place.
fn level_node(global: &Key, apex_len: usize, zone: bool, source: Source) -> Arc<Node> {
    let level = Level { global: Arc::from(&global[..]), apex_len, zone };
    Arc::new(Node { level: Some(level), source, ..Default::default() })
}

/// Names of a federated service (Federation v1 and, when exported, MCS). With `only`,
/// the region and zone names of other regions are left out (see `Builder::update_service`).
pub(crate) fn service(
    snap: &Snapshot,
    s: &Settings,
    svc: &FederatedService,
    only: Option<&HashSet<Arc<str>>>,
    out: &mut Vec<Named>,
    problems: &mut Vec<Problem>,
) {
    let ttl = ttl_override(svc.shards.iter().map(|sh| &sh.annotations)).unwrap_or(s.ttl);
    let (healthy, global) = service_pools(snap, s, svc);
    let mut r = Ranked { key: &svc.key, settings: s, problems };
    let source = Source::Service(svc.key.clone());
    federated(snap, s, &svc.key, "svc", &healthy, &global, ttl, source, only, out, &mut r);
    if let Some(domain) = &s.clusterset
        && (s.export_all || snap.exports.contains_key(&svc.key))
    {
        clusterset(snap, domain, svc, &global, ttl, out, &mut r);
    }
}

/// Names of a federated Ingress.
pub(crate) fn ingress(
    snap: &Snapshot,
    s: &Settings,
    ing: &FederatedIngress,
    out: &mut Vec<Named>,
    problems: &mut Vec<Problem>,
) {
    routed(snap, s, ing, "ing", Source::Ingress(ing.key.clone()), out, problems);
}

/// The three levels of names of an Ingress or an HTTPRoute (both Ingress-shaped),
/// under `label`, answering its shards' addresses.
fn routed(
    snap: &Snapshot,
    s: &Settings,
    fed: &FederatedIngress,
    label: &str,
    source: Source,
    out: &mut Vec<Named>,
    problems: &mut Vec<Problem>,
) {
    let ttl = ttl_override(fed.shards.iter().map(|sh| &sh.annotations)).unwrap_or(s.ttl);
    let members = ingress_members(snap, &fed.shards);
    let mut r = Ranked { key: &fed.key, settings: s, problems };
    federated(snap, s, &fed.key, label, &members, &members, ttl, source, None, out, &mut r);
}

/// The label of HTTPRoutes' federation names (`<name>.<ns>.<fed>.route.<zone>`), beside
/// Services' `svc` and Ingresses' `ing`.
pub(crate) const ROUTE_LABEL: &str = "route";

/// Names of a federated Gateway API HTTPRoute: the three levels, as an Ingress has them,
/// answering its parent Gateways' addresses.
pub(crate) fn route(
    snap: &Snapshot,
    s: &Settings,
    route: &FederatedRoute,
    out: &mut Vec<Named>,
    problems: &mut Vec<Problem>,
) {
    routed(snap, s, route, ROUTE_LABEL, Source::Route(route.key.clone()), out, problems);
}

/// The source of a host name that an Ingress or HTTPRoute routes.
fn host_source(kind: HttpKind, key: &ObjectKey) -> Source {
    match kind {
        HttpKind::Ingress => Source::IngressHost(key.clone()),
        HttpKind::HttpRoute => Source::RouteHost(key.clone()),
    }
}

/// The three levels of Federation v1 names.
#[allow(clippy::too_many_arguments)]
fn federated(
    snap: &Snapshot,
    s: &Settings,
    key: &ObjectKey,
    kind: &str,
    healthy: &Members<'_>,
    global: &Members<'_>,
    ttl: u32,
    source: Source,
    only: Option<&HashSet<Arc<str>>>,
    out: &mut Vec<Named>,
    r: &mut Ranked<'_, '_>,
) {
    let base = format!("{}.{}.{}.{kind}", key.name, key.namespace, s.federation);
    let Some(gkey) = name::key(&format!("{base}.{}", s.dns_zone)) else { return };
    let Some(apex_len) = name::key(&s.dns_zone).map(|k| k.len()) else { return };
    out.push((gkey.clone(), addr_node(ttl, global, source.clone(), r)));
    // One node for all region names with members, one for all zone names with members,
    // one for all region names without (a CNAME to the global name).
    let region_level = level_node(&gkey, apex_len, false, source.clone());
    let zone_level = level_node(&gkey, apex_len, true, source.clone());
    let to_global = cname_node(ttl, &gkey, source.clone());

    // Every region and zone of the federation gets names (as in Federation v1), so a
    // client pinned to its zone's name keeps resolving when the service leaves the zone.
    let mut regions = BTreeSet::new();
    let mut zones = BTreeSet::new();
    let metas = snap
        .clusters
        .values()
        .map(|c| &c.meta)
        .chain(healthy.iter().map(|m| m.cluster))
        .chain(global.iter().map(|m| m.cluster));
    for meta in metas {
        if let Some(r) = &meta.region {
            regions.insert(r.clone());
            if let Some(z) = &meta.zone {
                zones.insert((z.clone(), r.clone()));
            }
        }
    }
    // The regions and (zone, region) pairs with healthy members, in one pass: filtering
    // `healthy` once per name is O(names × shards), which for a service spread over many
    // regions was the bulk of the index's cost under churn. The level node answers from
    // the global name's members, so only whether a place has any is needed here.
    let mut by_region: HashSet<&str> = HashSet::new();
    let mut by_zone: HashSet<(&str, &str)> = HashSet::new();
    for m in healthy {
        if let Some(reg) = &m.cluster.region {
            by_region.insert(reg);
            if let Some(z) = &m.cluster.zone {
                by_zone.insert((z, reg));
            }
        }
    }
    let mut region_keys = HashMap::new();
    let wanted = |reg: &Arc<str>| only.is_none_or(|o| o.contains(reg));
    for reg in regions.iter().filter(|reg| wanted(reg)) {
        let Some(rkey) = name::key(&format!("{base}.{reg}.{}", s.dns_zone)) else { continue };
        let node = if by_region.contains(&**reg) { region_level.clone() } else { to_global.clone() };
        region_keys.insert(reg.clone(), rkey.clone());
        out.push((rkey, node));
    }
    for (z, reg) in &zones {
        let (Some(zkey), Some(rkey)) = (name::key(&format!("{base}.{z}.{reg}.{}", s.dns_zone)), region_keys.get(reg))
        else {
            continue;
        };
        let node =
            if by_zone.contains(&(&**z, &**reg)) { zone_level.clone() } else { cname_node(ttl, rkey, source.clone()) };
        out.push((zkey, node));
    }
}

/// SRV RDATA (RFC 2782), target uncompressed.
fn srv(port: u16, target: &[u8]) -> Box<[u8]> {
    let mut v = Vec::with_capacity(6 + target.len());
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&SRV_WEIGHT.to_be_bytes());
    v.extend_from_slice(&port.to_be_bytes());
    v.extend_from_slice(target);
    v.into_boxed_slice()
}

/// The static content of the clusterset zone: `dns-version` TXT "1.0.0" (KEP-1645).
pub(crate) fn clusterset_static(domain: &str, ttl: u32) -> Vec<(Key, Rrset)> {
    let Some(key) = name::key(&format!("dns-version.{domain}")) else { return Vec::new() };
    let txt: Box<[u8]> = Box::new(*b"\x051.0.0");
    vec![(key, Rrset { rtype: rtype::TXT, ttl, rdata: vec![txt] })]
}

/// A DNS label for an endpoint without a hostname: its address with '-' for '.' and ':'.
fn address_label(ip: &IpAddr) -> String {
    ip.to_string().replace(['.', ':'], "-")
}

/// MCS names of an exported service.
fn clusterset(
    snap: &Snapshot,
    domain: &str,
    svc: &FederatedService,
    global: &Members<'_>,
    ttl: u32,
    out: &mut Vec<Named>,
    r: &mut Ranked<'_, '_>,
) {
    let base = format!("{}.{}.svc.{domain}", svc.key.name, svc.key.namespace);
    let Some(bkey) = name::key(&base) else { return };
    let source = Source::ClusterSet(svc.key.clone());
    let headless = svc.shards.iter().any(|sh| sh.headless);
    // (port name, protocol) → SRV RDATA
    let mut srvs: SrvSets = BTreeMap::new();
    if !headless {
        out.push((bkey.clone(), addr_node(ttl, global, source.clone(), r)));
        for port in svc.shards.iter().flat_map(|sh| &sh.ports) {
            if let Some(n) = &port.name {
                srvs.entry((n.clone(), port.protocol.as_str())).or_insert_with(|| vec![srv(port.port, &bkey)]);
            }
        }
    } else {
        let mut all: Members<'_> = Vec::new();
        for sh in snap.usable_shards(&svc.shards, false) {
            for ep in sh.endpoints.iter().filter(|ep| ep.ready && !ep.addresses.is_empty()) {
                all.push(shard_member(sh, &ep.addresses));
                let host = match (&ep.hostname, ep.addresses.first()) {
                    (Some(h), _) => h.to_string(),
                    (None, Some(ip)) => address_label(ip),
                    (None, None) => continue,
                };
                let Some(hkey) = name::key(&format!("{host}.{}.{base}", sh.cluster.name)) else { continue };
                out.push((hkey.clone(), addr_node(ttl, &[shard_member(sh, &ep.addresses)], source.clone(), r)));
                for port in &sh.ports {
                    let Some(n) = &port.name else { continue };
                    let number = ep.ports.iter().find(|p| p.name.as_ref() == Some(n)).map_or(port.port, |p| p.port);
                    srvs.entry((n.clone(), port.protocol.as_str())).or_default().push(srv(number, &hkey));
                }
            }
        }
        if all.is_empty() {
            // KEP-1645: a headless service without ready endpoints is NXDOMAIN.
            return;
        }
        out.push((bkey.clone(), addr_node(ttl, &all, source.clone(), r)));
    }
    for ((port, proto), rdata) in srvs {
        let Some(k) = name::key(&format!("_{port}._{proto}.{base}")) else { continue };
        let rrsets = vec![Rrset { rtype: rtype::SRV, ttl, rdata }];
        out.push((k, Arc::new(Node { rrsets, source: source.clone(), ..Default::default() })));
    }
}

/// Ingress and HTTPRoute hosts and custom names that fall inside a served zone
/// (`in_zone`). A host both kinds route answers the addresses of all of them; its source
/// is the first (Ingresses before HTTPRoutes, see `Snapshot::http_sources`).
pub(crate) fn extras(snap: &Snapshot, s: &Settings, in_zone: impl Fn(&[u8]) -> bool) -> NameMap<Arc<Node>> {
    let mut out = NameMap::default();
    // Problems of these names are those of their service or ingress, reported there.
    let mut ignored = Vec::new();
    for (key, svc_key) in &s.names {
        if !in_zone(key) {
            continue;
        }
        let mut r = Ranked { key: svc_key, settings: s, problems: &mut ignored };
        let node = match snap.services.get(svc_key) {
            Some(svc) => {
                let ttl = ttl_override(svc.shards.iter().map(|sh| &sh.annotations)).unwrap_or(s.ttl);
                let (_, global) = service_pools(snap, s, svc);
                addr_node(ttl, &global, Source::Custom(svc_key.clone()), &mut r)
            }
            None => addr_node(s.ttl, &[], Source::Custom(svc_key.clone()), &mut r),
        };
        out.insert(key.clone(), node);
    }
    let mut hosts: BTreeMap<Key, (u32, Members<'_>, Source, &ObjectKey)> = BTreeMap::new();
    for (kind, ing) in snap.http_sources() {
        let ttl = ttl_override(ing.shards.iter().map(|sh| &sh.annotations)).unwrap_or(s.ttl);
        let members = ingress_members(snap, &ing.shards);
        for host in ing.hosts() {
            let Some(key) = name::key(&host) else { continue };
            if !in_zone(&key) || out.contains_key(&key) {
                continue;
            }
            let entry = hosts.entry(key).or_insert_with(|| (ttl, Vec::new(), host_source(kind, &ing.key), &ing.key));
            entry.1.extend(members.iter().copied());
        }
    }
    for (key, (ttl, members, source, ing)) in hosts {
        let mut r = Ranked { key: ing, settings: s, problems: &mut ignored };
        let node = addr_node(ttl, &members, source, &mut r);
        out.insert(key, node);
    }
    out
}

#[cfg(test)]
mod tests;
