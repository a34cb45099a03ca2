use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use http::{HeaderMap, Version};

use super::*;

fn map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_static(v));
    }
    h
}

fn get<'a>(h: &'a HeaderMap, k: &str) -> Vec<&'a str> {
    h.get_all(k).iter().filter_map(|v| v.to_str().ok()).collect()
}

/// Request rewriting, case by case: (input headers, client, tls, upgrade) → expected.
#[test]
fn request_rewriting() {
    let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);

    let mut h = map(&[
        ("host", "a.test"),
        ("connection", "keep-alive, x-private"),
        ("x-private", "1"),
        ("te", "trailers"),
        ("keep-alive", "5"),
        ("upgrade", "h2c"),
        ("accept", "*/*"),
    ]);
    rewrite_request(&mut h, v4, false, Version::HTTP_11, false);
    for gone in ["connection", "x-private", "te", "keep-alive", "upgrade"] {
        assert!(!h.contains_key(gone), "{gone} must be stripped: {h:?}");
    }
    assert_eq!(get(&h, "accept"), ["*/*"]);
    assert_eq!(get(&h, "x-forwarded-for"), ["192.0.2.7"]);
    assert_eq!(get(&h, "x-forwarded-proto"), ["http"]);
    assert_eq!(get(&h, "forwarded"), ["for=192.0.2.7;proto=http"]);
    assert_eq!(get(&h, "via"), ["1.1 meridian"]);

    let mut h = map(&[
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-proto", "http"),
        ("forwarded", "for=10.0.0.1"),
        ("via", "1.0 edge"),
    ]);
    rewrite_request(&mut h, v6, true, Version::HTTP_2, false);
    assert_eq!(get(&h, "x-forwarded-for"), ["10.0.0.1, ::1"]);
    assert_eq!(get(&h, "x-forwarded-proto"), ["https"], "the proxy's own view overrides");
    assert_eq!(get(&h, "forwarded"), ["for=10.0.0.1, for=\"[::1]\";proto=https"]);
    assert_eq!(get(&h, "via"), ["1.0 edge", "2 meridian"]);

    let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket"), ("sec-websocket-key", "k")]);
    assert!(is_upgrade(&h));
    rewrite_request(&mut h, v4, false, Version::HTTP_11, true);
    assert_eq!(get(&h, "upgrade"), ["websocket"], "upgrades keep Upgrade");
    assert_eq!(get(&h, "connection"), ["upgrade"]);
    assert_eq!(get(&h, "sec-websocket-key"), ["k"]);
    assert!(!is_upgrade(&map(&[("upgrade", "websocket")])), "Upgrade without Connection: upgrade is not one");
}

#[test]
fn response_rewriting() {
    let mut h = map(&[("transfer-encoding", "chunked"), ("connection", "close"), ("content-type", "text/plain")]);
    rewrite_response(&mut h, Version::HTTP_11, false);
    assert!(!h.contains_key("transfer-encoding") && !h.contains_key("connection"));
    assert_eq!(get(&h, "content-type"), ["text/plain"]);
    assert_eq!(get(&h, "via"), ["1.1 meridian"]);
}

#[test]
fn ipv4_without_fmt() {
    for a in ["0.0.0.0", "10.0.0.1", "192.168.100.255", "127.77.0.9", "255.255.255.255", "1.20.199.9"] {
        let mut s = String::new();
        push_ipv4(&mut s, a.parse().expect("address"));
        assert_eq!(s, a);
    }
}
