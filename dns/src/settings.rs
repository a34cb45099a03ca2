//! The part of the configuration the index is built from, normalised once per reload:
//! names lower-cased without their trailing dot, every served zone listed once.

use meridian_config::Config;
use meridian_config::dns::{ExportMode, WhenNoneHealthy};
use meridian_config::ranking::RankingConfig;
use meridian_model::table::ObjectKey;

use crate::name::{self, Key};
use crate::zone::ZoneSpec;

/// The configuration the index is built from.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) federation: String,
    pub(crate) dns_zone: String,
    pub(crate) ttl: u32,
    pub(crate) negative_ttl: u32,
    pub(crate) fail_open: bool,
    /// MCS domain when enabled.
    pub(crate) clusterset: Option<String>,
    pub(crate) export_all: bool,
    /// Custom names → service.
    pub(crate) names: Vec<(Key, ObjectKey)>,
    pub(crate) zones: Vec<ZoneSpec>,
    /// The catalog zone's apex (RFC 9432), when one is served; it is the last of `zones`.
    pub(crate) catalog: Option<String>,
    pub(crate) ranking: RankingConfig,
}

impl Settings {
    pub(crate) fn from_config(config: &Config) -> Self {
        let dns = &config.dns;
        let clusterset = dns.clusterset.enabled.then(|| trim(&dns.clusterset.domain));
        let names = dns
            .names
            .iter()
            .filter_map(|n| {
                let (ns, svc) = n.service.split_once('/')?;
                Some((name::key(&n.name)?, ObjectKey::new(ns, svc)))
            })
            .collect();
        let mut zones = zone_specs(config, clusterset.as_deref());
        let catalog = dns.transfer.catalog.as_deref().map(trim).filter(|c| !zones.iter().any(|z| &z.apex == c));
        if let Some(c) = &catalog {
            zones.push(ZoneSpec { apex: c.clone(), file: None, nameservers: crate::xfr::catalog::nameservers() });
        }
        Settings {
            federation: config.name.to_ascii_lowercase(),
            dns_zone: trim(&config.dns_zone),
            ttl: dns.ttl,
            negative_ttl: dns.negative_ttl,
            fail_open: dns.when_none_healthy == WhenNoneHealthy::AllKnown,
            zones,
            catalog,
            clusterset,
            export_all: dns.clusterset.export == ExportMode::All,
            names,
            ranking: config.ranking.clone(),
        }
    }
}

/// A configured name as the index keys it: lower case, no trailing dot.
fn trim(s: &str) -> String {
    s.trim_end_matches('.').to_ascii_lowercase()
}

/// Every zone served, once each: the federation's DNS zone, the configured zones (with
/// their files), then the clusterset domain.
fn zone_specs(config: &Config, clusterset: Option<&str>) -> Vec<ZoneSpec> {
    let dns = &config.dns;
    let file_for = |apex: &str| {
        dns.zones.iter().find(|z| trim(&z.name) == apex).and_then(|z| z.file.as_ref()).map(|f| config.resolve(f))
    };
    let mut zones: Vec<ZoneSpec> = Vec::new();
    let mut add = |apex: String| {
        if !zones.iter().any(|z| z.apex == apex) {
            let file = file_for(&apex);
            let nameservers = dns.nameservers_of(&apex);
            zones.push(ZoneSpec { apex, file, nameservers });
        }
    };
    add(trim(&config.dns_zone));
    for z in &dns.zones {
        add(trim(&z.name));
    }
    if let Some(cs) = clusterset {
        add(cs.to_owned());
    }
    zones
}
