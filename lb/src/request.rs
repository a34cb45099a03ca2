//! The one validation step every client request passes before it is routed, whichever
//! path serves it (the HTTP/1.1 fast path, hyper's HTTP/1 or HTTP/2): how its body is
//! framed, which authority routes it (and becomes the backend's `Host`), and the rules
//! that make the proxy and the backend read the same message (RFC 9110, 9112, 9113).
//!
//! A request that breaks a rule is answered locally and its connection closed; it never
//! reaches a backend. Where the proxy could guess (two Host lines, a transfer coding it
//! does not know, a framing header named in `Connection`), it refuses instead: a backend
//! that guesses differently is how requests are smuggled.

use http::StatusCode;

/// Headers that frame or route a message: never hop-by-hop, whatever `Connection` says.
pub(crate) const FRAMING: [&str; 3] = ["content-length", "transfer-encoding", "host"];

/// The protocol a request arrived on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Proto {
    Http10,
    Http11,
    Http2,
}

/// The request target (RFC 9112 §3.2); for HTTP/2, what the pseudo-headers make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target<'a> {
    /// `/path?query`.
    Origin(&'a str),
    /// `scheme://authority/path?query`; `path` may be empty or start with `?`.
    Absolute { scheme: &'a str, authority: &'a str, path: &'a str },
    /// `host:port`, CONNECT's form.
    Authority(&'a str),
    /// `*`.
    Asterisk,
}

impl<'a> Target<'a> {
    /// Splits an HTTP/1 request target into its form.
    pub(crate) fn parse(target: &'a str) -> Self {
        if target.starts_with('/') {
            return Target::Origin(target);
        }
        if target == "*" {
            return Target::Asterisk;
        }
        match target.split_once("://") {
            Some((scheme, rest)) => {
                let (authority, path) = rest.find(['/', '?']).map_or((rest, ""), |i| rest.split_at(i));
                Target::Absolute { scheme, authority, path }
            }
            None => Target::Authority(target),
        }
    }

    /// The target from a URI as hyper parsed it.
    pub(crate) fn of_uri(uri: &'a http::Uri) -> Self {
        let path = uri.path_and_query().map_or("", http::uri::PathAndQuery::as_str);
        match (uri.scheme_str(), uri.authority()) {
            (Some(scheme), authority) => {
                Target::Absolute { scheme, authority: authority.map_or("", http::uri::Authority::as_str), path }
            }
            (None, Some(authority)) if path.is_empty() => Target::Authority(authority.as_str()),
            _ if path == "*" => Target::Asterisk,
            _ => Target::Origin(path),
        }
    }

    /// The path and query to send upstream in origin form.
    pub(crate) fn origin_path(&self) -> OriginPath<'a> {
        match *self {
            Target::Origin(p) => OriginPath { slash: false, rest: p },
            Target::Absolute { path, .. } => OriginPath { slash: !path.starts_with('/'), rest: path },
            Target::Authority(_) | Target::Asterisk => OriginPath { slash: true, rest: "" },
        }
    }
}

/// An origin-form target: `/` (when `slash`) then `rest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OriginPath<'a> {
    pub(crate) slash: bool,
    pub(crate) rest: &'a str,
}

impl<'a> OriginPath<'a> {
    /// The path without the query, for the route lookup (`/` when empty).
    pub(crate) fn route_path(self) -> &'a str {
        let p = self.rest.split_once('?').map_or(self.rest, |(p, _)| p);
        if p.is_empty() { "/" } else { p }
    }
}

/// How a request's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodyFraming {
    /// `Content-Length` (0 when absent on HTTP/1).
    Length(u64),
    Chunked,
    /// HTTP/2 without `content-length`: the stream's DATA frames.
    Frames,
}

/// What the checks found out about an acceptable request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked<'a> {
    /// Routes the request and is the backend's one `Host` header.
    pub(crate) authority: &'a str,
    pub(crate) body: BodyFraming,
    /// The client asked to close the connection after this exchange.
    pub(crate) close: bool,
    /// `Expect` or `Upgrade` is present.
    pub(crate) expect_or_upgrade: bool,
    /// `Connection` names a header besides `close` and `keep-alive` (it is then dropped).
    pub(crate) names_headers: bool,
}

/// Why a request is answered locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reject {
    pub(crate) status: StatusCode,
    pub(crate) text: &'static str,
}

const fn reject(status: StatusCode, text: &'static str) -> Reject {
    Reject { status, text }
}

const fn bad(text: &'static str) -> Reject {
    reject(StatusCode::BAD_REQUEST, text)
}

/// The header lines that matter to the checks, gathered in one pass.
#[derive(Default)]
struct Seen<'a> {
    hosts: usize,
    host: &'a [u8],
    lengths: usize,
    length: &'a [u8],
    encodings: usize,
    encoding: &'a [u8],
    close: bool,
    keep_alive: bool,
    expect_or_upgrade: bool,
    names_headers: bool,
}

impl<'a> Seen<'a> {
    fn gather<I>(headers: I) -> Result<Self, Reject>
    where
        I: IntoIterator<Item = (&'a str, &'a [u8])>,
    {
        let mut s = Seen::default();
        for (name, value) in headers {
            if is(name, "host") {
                s.hosts += 1;
                s.host = value;
            } else if is(name, "content-length") {
                s.lengths += 1;
                s.length = value;
            } else if is(name, "transfer-encoding") {
                s.encodings += 1;
                s.encoding = value;
            } else if is(name, "connection") {
                for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                    if FRAMING.iter().any(|f| token.eq_ignore_ascii_case(f.as_bytes())) {
                        return Err(bad("Connection names a framing header\n"));
                    }
                    let close = token.eq_ignore_ascii_case(b"close");
                    let keep_alive = token.eq_ignore_ascii_case(b"keep-alive");
                    s.close |= close;
                    s.keep_alive |= keep_alive;
                    s.names_headers |= !(close || keep_alive || token.is_empty());
                }
            } else if is(name, "expect") || is(name, "upgrade") {
                s.expect_or_upgrade = true;
            }
        }
        Ok(s)
    }
}

fn is(name: &str, want: &str) -> bool {
    name.eq_ignore_ascii_case(want)
}

/// Checks a request head; on success, how to route and frame it.
pub(crate) fn check<'a, I>(proto: Proto, method: &str, target: Target<'a>, headers: I) -> Result<Checked<'a>, Reject>
where
    I: IntoIterator<Item = (&'a str, &'a [u8])>,
{
    if method == "CONNECT" {
        return Err(reject(StatusCode::NOT_IMPLEMENTED, "CONNECT is not supported\n"));
    }
    let seen = Seen::gather(headers)?;
    let authority = authority(proto, target, &seen)?;
    let body = framing(proto, &seen)?;
    let close = seen.close || (proto == Proto::Http10 && !seen.keep_alive);
    Ok(Checked { authority, body, close, expect_or_upgrade: seen.expect_or_upgrade, names_headers: seen.names_headers })
}

/// The authority that routes the request: the target's when it has one (RFC 9112
/// §3.2.2: a proxy replaces `Host` with it), else the one `Host` line.
fn authority<'a>(proto: Proto, target: Target<'a>, seen: &Seen<'a>) -> Result<&'a str, Reject> {
    if seen.hosts > 1 {
        return Err(bad("more than one Host header\n"));
    }
    let host = std::str::from_utf8(seen.host).map_err(|_| bad("bad Host header\n"))?.trim_matches([' ', '\t']);
    let from_target = match target {
        Target::Origin(_) => None,
        Target::Asterisk => return Err(bad("asterisk-form target\n")),
        Target::Authority(_) => return Err(bad("authority-form target is only for CONNECT\n")),
        Target::Absolute { scheme, authority, .. } => {
            if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
                return Err(bad("unsupported scheme in the request target\n"));
            }
            if authority.contains('@') {
                return Err(bad("userinfo in the request target\n"));
            }
            // HTTP/2 may leave `:authority` out and send `host` instead (RFC 9113 §8.3.1).
            (!authority.is_empty() || proto != Proto::Http2).then_some(authority)
        }
    };
    // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused, whatever its target.
    if proto == Proto::Http11 && seen.hosts == 0 {
        return Err(bad("missing Host header\n"));
    }
    let chosen = match from_target {
        // RFC 9113 §8.3.1: a `host` that names another entity than `:authority` is
        // malformed; routing by one and forwarding the other would let them disagree.
        Some(a) if proto == Proto::Http2 && seen.hosts == 1 && !a.eq_ignore_ascii_case(host) => {
            return Err(bad(":authority and Host differ\n"));
        }
        Some(a) => a,
        None if seen.hosts == 0 || host.is_empty() => return Err(bad("missing Host header\n")),
        None => host,
    };
    if !valid_authority(chosen) {
        return Err(bad("bad Host header\n"));
    }
    Ok(chosen)
}

/// `host [":" port]` (RFC 3986 §3.2.2): reg-name characters or an IP literal in
/// brackets, and a port of digits. No userinfo, path, whitespace or controls.
fn valid_authority(a: &str) -> bool {
    let (host, port) = match a.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((ip, after))
                if !ip.is_empty() && ip.bytes().all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.') =>
            {
                match after.strip_prefix(':') {
                    Some(port) => (ip, port),
                    None if after.is_empty() => (ip, ""),
                    None => return false,
                }
            }
            _ => return false,
        },
        None => a.rsplit_once(':').unwrap_or((a, "")),
    };
    let reg_name = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b);
    !host.is_empty()
        && (a.starts_with('[') || host.bytes().all(reg_name))
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
}

/// The body framing of RFC 9112 §6, refusing every case where two parsers could
/// disagree.
fn framing(proto: Proto, seen: &Seen<'_>) -> Result<BodyFraming, Reject> {
    if seen.lengths > 1 {
        return Err(bad("more than one Content-Length\n"));
    }
    let length = match seen.lengths {
        0 => None,
        _ => Some(parse_length(seen.length).ok_or(bad("bad Content-Length\n"))?),
    };
    if seen.encodings == 0 {
        return Ok(match (proto, length) {
            (_, Some(n)) => BodyFraming::Length(n),
            (Proto::Http2, None) => BodyFraming::Frames,
            (_, None) => BodyFraming::Length(0),
        });
    }
    match proto {
        Proto::Http2 => return Err(bad("Transfer-Encoding in an HTTP/2 request\n")),
        // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing.
        Proto::Http10 => return Err(bad("Transfer-Encoding in an HTTP/1.0 request\n")),
        Proto::Http11 => {}
    }
    let codings = seen.encoding.split(|&b| b == b',').map(<[u8]>::trim_ascii);
    if codings.clone().any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"chunked")) {
        return Err(reject(StatusCode::NOT_IMPLEMENTED, "unsupported transfer coding\n"));
    }
    if seen.encodings > 1 || codings.count() != 1 || seen.encoding.trim_ascii().is_empty() {
        return Err(bad("chunked must be the one transfer coding\n"));
    }
    if length.is_some() {
        return Err(bad("both Transfer-Encoding and Content-Length\n"));
    }
    Ok(BodyFraming::Chunked)
}

/// A `Content-Length` value: `1*DIGIT` (RFC 9110 §8.6). `str::parse` would also take a
/// leading `+`, and a list (`5, 5`) is refused rather than folded, as nginx does.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
}

#[cfg(test)]
mod tests;
