//! The set of served zones: each built from its spec (its master file, the synthesised
//! SOA and NS, and for the clusterset domain the records MCS defines), with its serial.
//! A zone that fails to build keeps serving its previous content.

use std::sync::Arc;

use meridian_config::Config;

use crate::error::{Error, Result};
use crate::index::ZoneEntry;
use crate::scheme;
use crate::serial::Serials;
use crate::settings::Settings;
use crate::zone::{self, ZoneData, ZoneDefaults, ZoneSpec};

/// Builds one served zone from its spec. The server and [`check_zones`] both use it.
fn build_zone(s: &Settings, spec: &ZoneSpec) -> Result<ZoneData> {
    let defaults = ZoneDefaults { ttl: s.ttl, negative_ttl: s.negative_ttl };
    let extra = if s.clusterset.as_deref() == Some(spec.apex.as_str()) {
        scheme::clusterset_static(&spec.apex, s.ttl)
    } else if s.catalog.as_deref() == Some(spec.apex.as_str()) {
        let members: Vec<String> = s.zones.iter().filter(|z| z.apex != spec.apex).map(|z| z.apex.clone()).collect();
        crate::xfr::catalog::records(&spec.apex, &members, s.ttl)
    } else {
        Vec::new()
    };
    zone::build(spec, &defaults, extra)
}

/// Builds every zone `s` lists, most labels first. A zone that fails keeps its entry in
/// `previous` or, when it is new, serves only the synthesised SOA and NS; the errors are
/// returned beside the zones.
pub(crate) fn load(s: &Settings, previous: &[ZoneEntry], serials: &mut Serials) -> (Vec<ZoneEntry>, Vec<Error>) {
    let mut errors = Vec::new();
    let mut zones = Vec::new();
    for spec in &s.zones {
        let data = match build_zone(s, spec) {
            Ok(d) => d,
            Err(e) => {
                errors.push(e);
                if let Some(prev) = previous.iter().find(|z| &*z.data.name == spec.apex.as_str()) {
                    zones.push(prev.clone());
                    continue;
                }
                match build_zone(s, &ZoneSpec { file: None, ..spec.clone() }) {
                    Ok(d) => d,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                }
            }
        };
        let serial = serials.on_load(&spec.apex, data.file_serial, data.content_hash);
        let soa = zone::with_serial(&data.soa, serial).into();
        zones.push(ZoneEntry { data: Arc::new(data), soa, serial });
    }
    zones.sort_by_key(|z| std::cmp::Reverse(z.data.labels));
    (zones, errors)
}

/// Builds every zone `config` serves as the server would, without serving them; the
/// errors are those a start or a reload would report (the TSIG key files' too). Returns
/// how many zones were built.
pub(crate) fn check_zones(config: &Config) -> Result<usize> {
    let s = Settings::from_config(config);
    let mut errors: Vec<Error> = s.zones.iter().filter_map(|spec| build_zone(&s, spec).err()).collect();
    errors.extend(crate::xfr::acl::Policy::from_config(config).err());
    if errors.is_empty() { Ok(s.zones.len()) } else { Err(Error::many(errors)) }
}
