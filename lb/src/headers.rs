//! Header rewriting on the way through: hop-by-hop headers (RFC 9110 §7.6.1) go,
//! `X-Forwarded-For`/`X-Forwarded-Proto`/`Forwarded` (RFC 7239) and `Via` are added.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::request::FRAMING;

/// Headers that describe one connection, never forwarded (besides those the
/// `Connection` header names).
pub(crate) const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// What `Via` says about this hop.
const VIA_10: HeaderValue = HeaderValue::from_static("1.0 meridian");
const VIA_11: HeaderValue = HeaderValue::from_static("1.1 meridian");
const VIA_2: HeaderValue = HeaderValue::from_static("2 meridian");

fn via(version: http::Version) -> HeaderValue {
    match version {
        http::Version::HTTP_2 => VIA_2,
        http::Version::HTTP_10 | http::Version::HTTP_09 => VIA_10,
        _ => VIA_11,
    }
}

/// True when the request asks for a protocol switch (WebSocket): `Upgrade` present and
/// `Connection` naming it.
pub(crate) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE) && connection_has(headers, "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Removes hop-by-hop headers. With `keep_upgrade`, `Upgrade` stays and `Connection:
/// upgrade` is set again, so a protocol switch passes through.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Headers named by `Connection` are hop-by-hop too. Common tokens are dropped
    // anyway, so only unusual ones cost an allocation.
    if let Some(named) = connection_named(headers) {
        for n in named {
            if !(keep_upgrade && n == header::UPGRADE) {
                headers.remove(&n);
            }
        }
    }
    for h in HOP_BY_HOP {
        headers.remove(h);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

fn connection_named(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut out: Option<Vec<HeaderName>> = None;
    for v in headers.get_all(header::CONNECTION).iter().filter_map(|v| v.to_str().ok()) {
        for t in v.split(',').map(str::trim) {
            let common = ["close", "keep-alive", "upgrade", ""].iter().any(|c| t.eq_ignore_ascii_case(c));
            // Framing headers are never hop-by-hop (requests naming them are refused
            // before this; a response keeps them so its body stays framed).
            let framing = FRAMING.iter().any(|f| t.eq_ignore_ascii_case(f));
            if !common
                && !framing
                && let Ok(n) = HeaderName::from_bytes(t.as_bytes())
            {
                out.get_or_insert_with(Vec::new).push(n);
            }
        }
    }
    out
}

/// Rewrites a client's request headers for the backend.
pub(crate) fn rewrite_request(
    headers: &mut HeaderMap,
    client: IpAddr,
    tls: bool,
    version: http::Version,
    upgrade: bool,
) {
    strip_hop_by_hop(headers, upgrade);
    if version == http::Version::HTTP_2 {
        join_cookies(headers);
    }
    let proto = if tls { "https" } else { "http" };
    // The client address is formatted once per request, by hand: `Ipv4Addr`'s `Display`
    // showed in the proxy's profile.
    let mut addr = String::with_capacity(48);
    push_ip(&mut addr, client);
    append_list(headers, &X_FORWARDED_FOR, &addr);
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    let node = forwarded_node(client, &addr);
    let mut fwd = String::with_capacity(16 + node.len());
    fwd.push_str("for=");
    fwd.push_str(&node);
    fwd.push_str(";proto=");
    fwd.push_str(proto);
    append_list(headers, &header::FORWARDED, &fwd);
    append_via(headers, version);
}

/// The bare client address: dotted quad, or IPv6 text.
pub(crate) fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => push_ipv4(out, a),
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// The RFC 7239 `node` for an address formatted by [`push_ip`]: IPv6 goes in brackets
/// and quotes.
pub(crate) fn forwarded_node(ip: IpAddr, addr: &str) -> std::borrow::Cow<'_, str> {
    match ip {
        IpAddr::V4(_) => addr.into(),
        IpAddr::V6(_) => format!("\"[{addr}]\"").into(),
    }
}

/// Dotted-quad decimal, without going through `fmt`.
fn push_ipv4(out: &mut String, a: Ipv4Addr) {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + (o / 10) % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
}

/// Rewrites a backend's response headers for the client.
pub(crate) fn rewrite_response(headers: &mut HeaderMap, version: http::Version, upgrade: bool) {
    strip_hop_by_hop(headers, upgrade);
    append_via(headers, version);
}

fn append_via(headers: &mut HeaderMap, version: http::Version) {
    headers.append(header::VIA, via(version));
}

/// Adds `item` to a comma-separated list header, joining every line the client sent
/// into one field (most parsers read only the first).
fn append_list(headers: &mut HeaderMap, name: &HeaderName, item: &str) {
    let mut joined = String::new();
    for prev in headers.get_all(name).iter().filter_map(|v| v.to_str().ok()).map(str::trim) {
        if !prev.is_empty() {
            joined.push_str(prev);
            joined.push_str(", ");
        }
    }
    joined.push_str(item);
    if let Ok(v) = HeaderValue::from_str(&joined) {
        headers.insert(name.clone(), v);
    }
}

/// HTTP/2 may split `cookie` into one field per pair; an HTTP/1.1 backend gets them
/// joined with `; ` (RFC 9113 §8.2.3).
fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (values.next(), values.next()) else { return };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests;
