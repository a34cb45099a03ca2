use super::*;

/// A head as `(proto, method, target, headers)` and what `check` must say of it.
struct Case {
    name: &'static str,
    proto: Proto,
    method: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    want: Result<(&'static str, BodyFraming), StatusCode>,
}

const fn case(
    name: &'static str,
    target: &'static str,
    headers: &'static [(&'static str, &'static str)],
    want: Result<(&'static str, BodyFraming), StatusCode>,
) -> Case {
    Case { name, proto: Proto::Http11, method: "GET", target, headers, want }
}

const NONE: BodyFraming = BodyFraming::Length(0);
const BAD: Result<(&str, BodyFraming), StatusCode> = Err(StatusCode::BAD_REQUEST);
const NOT_IMPL: Result<(&str, BodyFraming), StatusCode> = Err(StatusCode::NOT_IMPLEMENTED);

const CASES: &[Case] = &[
    case("plain", "/", &[("Host", "a.test")], Ok(("a.test", NONE))),
    case("host with port", "/", &[("host", "a.test:8080")], Ok(("a.test:8080", NONE))),
    case("ipv6 host", "/", &[("Host", "[::1]:80")], Ok(("[::1]:80", NONE))),
    case("missing host", "/", &[], BAD),
    case("empty host", "/", &[("Host", "")], BAD),
    case("two hosts", "/", &[("Host", "a.test"), ("Host", "a.test")], BAD),
    case("host with a path", "/", &[("Host", "a.test/x")], BAD),
    case("host with userinfo", "/", &[("Host", "u@a.test")], BAD),
    case("host with a space", "/", &[("Host", "a .test")], BAD),
    case("host with a bad port", "/", &[("Host", "a.test:8x")], BAD),
    case("length", "/", &[("Host", "a"), ("Content-Length", "5")], Ok(("a", BodyFraming::Length(5)))),
    case("length with a plus", "/", &[("Host", "a"), ("Content-Length", "+5")], BAD),
    case("length list", "/", &[("Host", "a"), ("Content-Length", "5, 5")], BAD),
    case("two equal lengths", "/", &[("Host", "a"), ("Content-Length", "5"), ("Content-Length", "5")], BAD),
    case("length overflow", "/", &[("Host", "a"), ("Content-Length", "99999999999999999999999")], BAD),
    case("hex length", "/", &[("Host", "a"), ("Content-Length", "0x5")], BAD),
    case("chunked", "/", &[("Host", "a"), ("Transfer-Encoding", "chunked")], Ok(("a", BodyFraming::Chunked))),
    case(
        "chunked any case",
        "/",
        &[("Host", "a"), ("Transfer-Encoding", " Chunked ")],
        Ok(("a", BodyFraming::Chunked)),
    ),
    case("gzip then chunked", "/", &[("Host", "a"), ("Transfer-Encoding", "gzip, chunked")], NOT_IMPL),
    case("identity then chunked", "/", &[("Host", "a"), ("Transfer-Encoding", "identity, chunked")], NOT_IMPL),
    case("xchunked", "/", &[("Host", "a"), ("Transfer-Encoding", "xchunked")], NOT_IMPL),
    case("chunked with a parameter", "/", &[("Host", "a"), ("Transfer-Encoding", "chunked;x=1")], NOT_IMPL),
    case("chunked twice", "/", &[("Host", "a"), ("Transfer-Encoding", "chunked, chunked")], BAD),
    case(
        "two TE lines",
        "/",
        &[("Host", "a"), ("Transfer-Encoding", "chunked"), ("Transfer-Encoding", "chunked")],
        BAD,
    ),
    case("empty TE", "/", &[("Host", "a"), ("Transfer-Encoding", "")], BAD),
    case("TE and CL", "/", &[("Host", "a"), ("Transfer-Encoding", "chunked"), ("Content-Length", "3")], BAD),
    case("Connection names CL", "/", &[("Host", "a"), ("Connection", "Content-Length")], BAD),
    case("Connection lists CL", "/", &[("Host", "a"), ("Connection", "close, content-length")], BAD),
    case(
        "Connection names TE",
        "/",
        &[("Host", "a"), ("Connection", "keep-alive"), ("Connection", "Transfer-Encoding")],
        BAD,
    ),
    case("Connection names Host", "/", &[("Host", "a"), ("Connection", "host")], BAD),
    case("Connection names another header", "/", &[("Host", "a"), ("Connection", "x-private")], Ok(("a", NONE))),
    case("absolute form routes by its authority", "http://b.test/p", &[("Host", "a.test")], Ok(("b.test", NONE))),
    case("absolute form without a Host", "https://b.test", &[], BAD),
    case("absolute form with two Hosts", "http://b.test/", &[("Host", "b.test"), ("Host", "c")], BAD),
    case("absolute form with userinfo", "http://u:p@b.test/", &[("Host", "b.test")], BAD),
    case("ftp scheme", "ftp://b.test/", &[("Host", "b.test")], BAD),
    case("empty authority", "http:///p", &[("Host", "b.test")], BAD),
    case("authority form", "b.test:80", &[("Host", "b.test")], BAD),
    case("asterisk", "*", &[("Host", "b.test")], BAD),
];

#[test]
fn requests_are_checked_as_the_rules_say() {
    for c in CASES {
        let headers = c.headers.iter().map(|(n, v)| (*n, v.as_bytes()));
        let got = check(c.proto, c.method, Target::parse(c.target), headers).map(|k| (k.authority, k.body));
        assert_eq!(got.map_err(|r| r.status), c.want, "{}", c.name);
    }
}

/// HTTP/1.0 may leave Host out when its target is absolute.
#[test]
fn http10_absolute_form_needs_no_host() {
    let got = check(Proto::Http10, "GET", Target::parse("http://b.test/"), std::iter::empty());
    assert_eq!(got.map(|c| c.authority), Ok("b.test"));
}

#[test]
fn connect_is_not_implemented() {
    let got = check(Proto::Http11, "CONNECT", Target::parse("b.test:443"), [("Host", &b"b.test:443"[..])]);
    assert_eq!(got.map_err(|r| r.status), Err(StatusCode::NOT_IMPLEMENTED));
}

/// HTTP/1.0 may not carry Transfer-Encoding, and closes unless it asks to keep alive.
#[test]
fn http10_framing_and_keep_alive() {
    let te = [("Host", &b"a"[..]), ("Transfer-Encoding", b"chunked")];
    assert_eq!(
        check(Proto::Http10, "POST", Target::parse("/"), te).map_err(|r| r.status),
        Err(StatusCode::BAD_REQUEST)
    );
    let plain = check(Proto::Http10, "GET", Target::parse("/"), [("Host", &b"a"[..])]);
    assert!(plain.is_ok_and(|c| c.close));
    let kept = check(Proto::Http10, "GET", Target::parse("/"), [("Host", &b"a"[..]), ("Connection", b"keep-alive")]);
    assert!(kept.is_ok_and(|c| !c.close));
}

/// HTTP/2: `:authority` routes; a `host` naming something else is malformed; without
/// `:authority` the `host` header routes; the body is framed by DATA frames.
#[test]
fn http2_authority_and_host_must_agree() {
    let abs = Target::Absolute { scheme: "https", authority: "a.test", path: "/x" };
    let h2 = |target, headers: &[(&'static str, &'static [u8])]| {
        check(Proto::Http2, "GET", target, headers.iter().copied()).map(|c| (c.authority, c.body)).map_err(|r| r.status)
    };
    assert_eq!(h2(abs, &[]), Ok(("a.test", BodyFraming::Frames)));
    assert_eq!(h2(abs, &[("host", b"A.test")]), Ok(("a.test", BodyFraming::Frames)));
    assert_eq!(h2(abs, &[("host", b"b.test")]), Err(StatusCode::BAD_REQUEST));
    assert_eq!(h2(abs, &[("content-length", b"3")]), Ok(("a.test", BodyFraming::Length(3))));
    assert_eq!(h2(abs, &[("transfer-encoding", b"chunked")]), Err(StatusCode::BAD_REQUEST));
    let no_authority = Target::Absolute { scheme: "https", authority: "", path: "/x" };
    assert_eq!(h2(no_authority, &[("host", b"b.test")]), Ok(("b.test", BodyFraming::Frames)));
    assert_eq!(h2(no_authority, &[]), Err(StatusCode::BAD_REQUEST));
}

#[test]
fn targets_split_into_their_forms() {
    assert_eq!(Target::parse("/a?b"), Target::Origin("/a?b"));
    assert_eq!(Target::parse("*"), Target::Asterisk);
    assert_eq!(Target::parse("a:80"), Target::Authority("a:80"));
    assert_eq!(Target::parse("http://a:8/p?q"), Target::Absolute { scheme: "http", authority: "a:8", path: "/p?q" });
    assert_eq!(Target::parse("http://a?q"), Target::Absolute { scheme: "http", authority: "a", path: "?q" });
    let p = Target::parse("http://a?q").origin_path();
    assert_eq!((p.slash, p.rest, p.route_path()), (true, "?q", "/"));
    let p = Target::parse("/x/y?q").origin_path();
    assert_eq!((p.slash, p.rest, p.route_path()), (false, "/x/y?q", "/x/y"));
}
