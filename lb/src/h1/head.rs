//! Message heads of the HTTP/1.1 fast path: which requests it takes, the request head
//! written to the backend and the response head written to the client, with the same
//! rewriting as the hyper path (`crate::headers`): hop-by-hop headers and those named by
//! `Connection` go; `X-Forwarded-For`, `X-Forwarded-Proto`, `Forwarded` and `Via` are
//! set. Heads are copied as the peer sent them (httparse has checked their syntax), so a
//! request costs no header map.

use std::cell::RefCell;
use std::net::IpAddr;
use std::time::SystemTime;

use http::{Method, StatusCode};

// Headers never forwarded in either direction (RFC 9110 §7.6.1), as on the hyper path.
use crate::headers::HOP_BY_HOP;
use crate::request::{self, BodyFraming, FRAMING, Proto, Target, parse_length};

/// Most headers read from a backend's response head.
pub(crate) const MAX_RESPONSE_HEADERS: usize = 128;

fn is(name: &str, want: &str) -> bool {
    name.eq_ignore_ascii_case(want)
}

/// The comma-separated tokens of every `Connection` header.
fn connection_tokens<'a>(headers: &'a [httparse::Header<'a>]) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(|h| is(h.name, "connection"))
        .flat_map(|h| h.value.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
}

/// A header dropped on the way through: hop-by-hop, or named by `Connection` — except
/// the framing headers, which `Connection` never removes (a response whose
/// `Content-Length` went would reach the client unframed).
fn dropped(name: &str, headers: &[httparse::Header<'_>], named: bool) -> bool {
    HOP_BY_HOP.iter().any(|h| is(name, h))
        || is(name, "upgrade")
        || (named
            && !FRAMING.iter().any(|f| is(name, f))
            && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(name.as_bytes())))
}

/// Whether `Connection` names a header other than the common tokens (checked once per
/// message, so the usual case skips the per-header scan).
fn names_headers(headers: &[httparse::Header<'_>]) -> bool {
    connection_tokens(headers)
        .any(|t| !["close", "keep-alive", ""].iter().any(|c| t.eq_ignore_ascii_case(c.as_bytes())))
}

fn has_token(headers: &[httparse::Header<'_>], token: &str) -> bool {
    connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// What the fast path does with a parsed request head.
pub(crate) enum Plan<'a> {
    /// Forward it: the upstream head is in the output buffer.
    Forward(Request<'a>),
    /// Answer it locally (bad request, no route).
    Local { status: StatusCode, text: &'static str },
    /// Serve this connection with hyper from here on.
    HandOver,
}

/// A request head the fast path forwards.
pub(crate) struct Request<'a> {
    pub(crate) method: Method,
    pub(crate) host: &'a str,
    /// The path without the query, for the route lookup.
    pub(crate) path: &'a str,
    pub(crate) content_length: u64,
    /// The client asked to close the connection after this exchange.
    pub(crate) close: bool,
}

/// Classifies a parsed request and, when it is forwarded, writes the head for the
/// backend into `out`.
pub(crate) fn plan<'a>(req: &httparse::Request<'_, 'a>, client: IpAddr, tls: bool, out: &mut Vec<u8>) -> Plan<'a> {
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Plan::Local { status: StatusCode::BAD_REQUEST, text: "malformed request\n" };
    };
    let proto = if minor == 0 { Proto::Http10 } else { Proto::Http11 };
    let target = Target::parse(target);
    let headers = &*req.headers;
    let checked = match request::check(proto, method, target, headers.iter().map(|h| (h.name, h.value))) {
        Ok(c) => c,
        Err(r) => return Plan::Local { status: r.status, text: r.text },
    };
    // HTTP/1.0, chunked bodies, `Expect` and upgrades: hyper's path serves them.
    if proto == Proto::Http10 || checked.body == BodyFraming::Chunked || checked.expect_or_upgrade {
        return Plan::HandOver;
    }
    let Ok(method) = Method::from_bytes(method.as_bytes()) else {
        return Plan::Local { status: StatusCode::BAD_REQUEST, text: "bad method\n" };
    };
    let BodyFraming::Length(content_length) = checked.body else { return Plan::HandOver };
    let named = checked.names_headers;
    let path = target.origin_path();

    out.clear();
    out.extend_from_slice(method.as_str().as_bytes());
    out.push(b' ');
    if path.slash {
        out.push(b'/');
    }
    out.extend_from_slice(path.rest.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    // The one Host the request is routed by (the target's authority when it has one).
    put_header(out, b"host", checked.authority.as_bytes());
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    let mut forwarded: Vec<&[u8]> = Vec::new();
    for h in headers {
        if is(h.name, "x-forwarded-for") {
            forwarded_for.push(h.value);
        } else if is(h.name, "forwarded") {
            forwarded.push(h.value);
        } else if !is(h.name, "x-forwarded-proto") && !is(h.name, "host") && !dropped(h.name, headers, named) {
            put_header(out, h.name.as_bytes(), h.value);
        }
    }
    let proto: &[u8] = if tls { b"https" } else { b"http" };
    let mut addr = String::with_capacity(48);
    crate::headers::push_ip(&mut addr, client);
    append_list(out, b"x-forwarded-for", &forwarded_for, &[addr.as_bytes()]);
    put_header(out, b"x-forwarded-proto", proto);
    let node = crate::headers::forwarded_node(client, &addr);
    append_list(out, b"forwarded", &forwarded, &[b"for=", node.as_bytes(), b";proto=", proto]);
    put_header(out, b"via", b"1.1 meridian");
    out.extend_from_slice(b"\r\n");
    Plan::Forward(Request {
        method,
        host: checked.authority,
        path: path.route_path(),
        content_length,
        close: checked.close,
    })
}

/// `name: prev, prev, item` as one field (most parsers read only the first).
fn append_list(out: &mut Vec<u8>, name: &[u8], prev: &[&[u8]], item: &[&[u8]]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    for p in prev.iter().filter(|p| !p.trim_ascii().is_empty()) {
        out.extend_from_slice(p.trim_ascii());
        out.extend_from_slice(b", ");
    }
    for part in item {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
}

/// How a response body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the backend closes the connection.
    Close,
}

/// A backend's final response head, as the fast path needs it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    pub(crate) framing: Framing,
    /// The backend keeps the connection open after this response.
    pub(crate) reusable: bool,
}

/// Why a backend's response head is refused (a 502 for the client).
#[derive(Debug, thiserror::Error)]
pub(crate) enum BadResponse {
    #[error("status {0} is not a valid HTTP status")]
    Status(u16),
    #[error("a 101 Switching Protocols the request did not ask for")]
    UnaskedSwitch,
    #[error("invalid or conflicting Content-Length")]
    Length,
}

/// Reads the framing and reusability of a parsed response to a `method` request.
pub(crate) fn response(resp: &httparse::Response<'_, '_>, method: &Method) -> Result<Response, BadResponse> {
    let code = resp.code.unwrap_or(0);
    let status = StatusCode::from_u16(code).map_err(|_| BadResponse::Status(code))?;
    if status == StatusCode::SWITCHING_PROTOCOLS {
        return Err(BadResponse::UnaskedSwitch);
    }
    let headers = &*resp.headers;
    let mut chunked = None;
    let mut length: Option<u64> = None;
    for h in headers {
        if is(h.name, "transfer-encoding") {
            // Only the final coding decides; `chunked` anywhere else is not framing.
            let last = h.value.rsplit(|&b| b == b',').next().map(<[u8]>::trim_ascii);
            chunked = Some(last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")));
        } else if is(h.name, "content-length") {
            match (parse_length(h.value), length) {
                (Some(n), None) => length = Some(n),
                (Some(n), Some(prev)) if n == prev => {}
                _ => return Err(BadResponse::Length),
            }
        }
    }
    let bodyless = *method == Method::HEAD
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let framing = match (bodyless, chunked, length) {
        (true, _, _) => Framing::Empty,
        (false, Some(true), _) => Framing::Chunked,
        (false, Some(false), _) => Framing::Close,
        (false, None, Some(n)) => Framing::Length(n),
        (false, None, None) => Framing::Close,
    };
    let reusable = resp.version == Some(1) && !has_token(headers, "close") && framing != Framing::Close;
    Ok(Response { status, framing, reusable })
}

/// Writes the head for the client: the backend's status line and headers without the
/// hop-by-hop ones, `Transfer-Encoding: chunked` when the body is relayed chunked, `Via`,
/// `Date` when the backend sent none, and `Connection: close` when the client connection
/// ends after this response.
pub(crate) fn write_response(resp: &httparse::Response<'_, '_>, framing: Framing, close: bool, out: &mut Vec<u8>) {
    let headers = &*resp.headers;
    let named = names_headers(headers);
    let code = resp.code.unwrap_or(502);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(code).as_slice());
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut dated = false;
    for h in headers {
        // A relayed chunked body keeps its framing; a stray length would contradict it.
        let stale_length = framing == Framing::Chunked && is(h.name, "content-length");
        if !stale_length && !dropped(h.name, headers, named) {
            dated |= is(h.name, "date");
            put_header(out, h.name.as_bytes(), h.value);
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    let via: &[u8] = if resp.version == Some(0) { b"1.0 meridian" } else { b"1.1 meridian" };
    put_header(out, b"via", via);
    if !dated {
        put_date(out);
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A short local answer (`text/plain`), as the hyper path's `forward::local`.
pub(crate) fn write_local(status: StatusCode, text: &str, close: bool, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa3(status.as_u16()).as_slice());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ");
    out.extend_from_slice(text.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    put_date(out);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(text.as_bytes());
}

fn itoa3(code: u16) -> [u8; 3] {
    let c = code.min(999);
    [b'0' + (c / 100) as u8, b'0' + (c / 10 % 10) as u8, b'0' + (c % 10) as u8]
}

thread_local! {
    /// `date: <IMF-fixdate>\r\n` and the second it was formatted for.
    static DATE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

/// A `Date` header (RFC 9110 §6.6.1: a proxy adds one when the origin sent none),
/// formatted at most once per second per thread.
fn put_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let secs = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|d| {
        let Ok(mut d) = d.try_borrow_mut() else { return };
        if d.0 != secs {
            d.1.clear();
            d.1.extend_from_slice(format!("date: {}\r\n", httpdate::fmt_http_date(now)).as_bytes());
            d.0 = secs;
        }
        out.extend_from_slice(&d.1);
    });
}

#[cfg(test)]
mod tests;
