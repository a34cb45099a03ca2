use std::path::PathBuf;

use super::*;

fn net(s: &str) -> IpNet {
    parse_net(s).expect("network")
}

fn place(lat: f64, lon: f64) -> Option<Place> {
    Some(Place { point: Some(Point::new(lat, lon)), region: None })
}

/// The GeoLite2 City database `scripts/test` downloads. Tests that need it fail, with a
/// way to get it, rather than pass without testing anything.
pub(crate) fn geolite2() -> PathBuf {
    let path = std::env::var_os("MERIDIAN_GEOIP_DB")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/meridian/GeoLite2-City.mmdb")));
    match path {
        Some(p) if p.is_file() => p,
        _ => panic!(
            "GeoLite2-City.mmdb not found: set MERIDIAN_GEOIP_DB or run scripts/test, which downloads it to \
             ~/.cache/meridian/ (pip download maxminddb-geolite2)"
        ),
    }
}

/// The network table: most specific entry wins; its prefix is the scope, capped by the
/// source prefix; an entry with other entries inside it scopes to the whole source.
#[test]
fn network_table_most_specific_wins_with_scope() {
    let geo = Geo::with_networks(
        vec![
            (net("10.0.0.0/8"), place(50.0, 4.0)),
            (net("10.1.0.0/16"), Some(Place { point: None, region: Some("asia-south1".into()) })),
            (net("127.0.0.0/8"), None),
            (net("fd00::/8"), place(19.0, 72.0)),
        ],
        None,
    );
    type Case<'a> = (&'a str, u8, bool, Option<&'a str>, u8);
    let cases: &[Case<'_>] = &[
        ("10.2.3.0", 24, true, None, 24), // /8 has /16 nested: full source
        ("10.1.3.0", 24, true, Some("asia-south1"), 16),
        ("127.0.0.1", 32, false, None, 8),
        ("::ffff:127.0.0.1", 128, false, None, 8),
        ("fd12::1", 56, true, None, 8),
        ("192.0.2.1", 24, false, None, 0), // no DB: nothing depends on the address
    ];
    for (ip, src, located, region, scope) in cases {
        let l = geo.locate(ip.parse().expect("ip"), *src);
        assert_eq!(l.place.is_some(), *located, "{ip}/{src}");
        assert_eq!(l.place.as_ref().and_then(|p| p.region.as_deref()), *region, "{ip}/{src}");
        assert_eq!(l.scope, *scope, "{ip}/{src}");
    }
}

/// The real GeoLite2 City database: addresses picked with `mmdblookup` (FR, IN, US) are
/// located near Paris, Bangalore and New Jersey, with the database's network as scope.
#[test]
fn geolite2_locates_known_addresses() {
    let reader = maxminddb::Reader::open_readfile(geolite2()).expect("GeoLite2 opens");
    let geo = Geo::with_networks(vec![], Some(reader));
    let cases = [("195.154.0.0", (48.83, 2.36)), ("117.192.0.0", (12.98, 77.58)), ("24.0.0.0", (40.55, -74.29))];
    for (ip, (lat, lon)) in cases {
        let l = geo.locate(ip.parse().expect("ip"), 24);
        let p = l.place.and_then(|p| p.point).unwrap_or_else(|| panic!("{ip} located"));
        assert!(p.distance_km(&Point::new(lat, lon)) < 50.0, "{ip}: {p:?}");
        assert!(l.scope > 0 && l.scope <= 24, "{ip}: scope {}", l.scope);
    }
    let v6 = geo.locate("2a01:e0a::".parse().expect("ip"), 32);
    assert!(v6.place.is_some() && v6.scope <= 32, "{v6:?}");
    // Private space is in no GeoLite2 record: unlocated.
    assert!(geo.locate("10.0.0.1".parse().expect("ip"), 32).place.is_none());
}
