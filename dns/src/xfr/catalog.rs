//! The catalog zone (RFC 9432, schema version 2): one PTR per served zone under
//! `zones.<catalog>`, so a secondary that reads catalogs (Knot, BIND) provisions the
//! member zones itself. It is served, queried and transferred like any other zone.

use meridian_config::dns::NameServer;

use crate::name::{self, Key};
use crate::record::Rrset;
use crate::wire::rtype;

/// RFC 9432 §4.1: the catalog's NS is `invalid.`, a name no one resolves; the zone is
/// data for secondaries, not for resolvers.
pub(crate) fn nameservers() -> Vec<NameServer> {
    vec![NameServer { name: "invalid".into(), addresses: Vec::new() }]
}

/// The catalog's own records: `version` TXT "2" and a member PTR per zone. Each
/// member's label is a hash of its name, so every instance (and every reload) gives a
/// zone the same label, and a secondary does not see it as removed and re-added.
pub(crate) fn records(catalog: &str, members: &[String], ttl: u32) -> Vec<(Key, Rrset)> {
    let mut out = Vec::new();
    if let Some(k) = name::key(&format!("version.{catalog}")) {
        out.push((k, Rrset { rtype: rtype::TXT, ttl, rdata: vec![Box::new(*b"\x012")] }));
    }
    for m in members {
        let (Some(owner), Some(target)) = (name::key(&format!("{}.zones.{catalog}", member_label(m))), name::key(m))
        else {
            continue;
        };
        out.push((owner, Rrset { rtype: rtype::PTR, ttl, rdata: vec![target] }));
    }
    out
}

/// FNV-1a of the lower-cased name, as 16 hex digits: stable across processes and
/// versions (std's hashers promise neither).
fn member_label(zone: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in zone.trim_end_matches('.').to_ascii_lowercase().bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each member gets a PTR under `zones.`, labels stable and distinct; the version
    /// TXT says 2.
    #[test]
    fn members_are_listed_under_stable_labels() {
        let recs = records("cat.invalid", &["a.test".into(), "b.test".into()], 60);
        assert_eq!(recs.len(), 3);
        assert_eq!(name::text(&recs[0].0), "version.cat.invalid.");
        assert_eq!(&*recs[0].1.rdata[0], b"\x012");
        let label = member_label("a.test");
        assert_eq!(label, member_label("A.test."), "case and trailing dot do not matter");
        assert_ne!(label, member_label("b.test"));
        assert_eq!(name::text(&recs[1].0), format!("{label}.zones.cat.invalid."));
        assert_eq!(recs[1].1.rdata[0], name::key("a.test").expect("name"));
    }
}
