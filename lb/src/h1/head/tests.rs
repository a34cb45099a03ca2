use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

/// What `plan` decided, owned, so the parsed request can go.
#[derive(Debug, PartialEq)]
enum Got {
    Forward { head: String, method: Method, host: String, path: String, length: u64, close: bool },
    Local(StatusCode, &'static str),
    HandOver,
}

fn plan_with(raw: &str, client: IpAddr, tls: bool) -> Got {
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    let parsed = req.parse(raw.as_bytes());
    assert!(matches!(parsed, Ok(httparse::Status::Complete(n)) if n == raw.len()), "{raw:?}: {parsed:?}");
    let mut out = b"stale bytes from the last request".to_vec();
    match plan(&req, client, tls, &mut out) {
        Plan::Forward(r) => Got::Forward {
            head: String::from_utf8(out).expect("the head is text"),
            method: r.method,
            host: r.host.to_owned(),
            path: r.path.to_owned(),
            length: r.content_length,
            close: r.close,
        },
        Plan::Local { status, text } => Got::Local(status, text),
        Plan::HandOver => Got::HandOver,
    }
}

fn plan_of(raw: &str) -> Got {
    plan_with(raw, CLIENT, false)
}

/// The upstream head of a forwarded request.
fn forwarded(raw: &str, client: IpAddr, tls: bool) -> String {
    match plan_with(raw, client, tls) {
        Got::Forward { head, .. } => head,
        other => panic!("{raw:?} must be forwarded, got {other:?}"),
    }
}

fn status_of(raw: &str) -> StatusCode {
    match plan_of(raw) {
        Got::Local(status, _) => status,
        other => panic!("{raw:?} must be answered locally, got {other:?}"),
    }
}

#[test]
fn forwarded_head_is_rewritten() {
    let raw = "GET /a/b?q=1 HTTP/1.1\r\n\
               Host: www.test\r\n\
               User-Agent: t\r\n\
               Connection: keep-alive, X-Private\r\n\
               X-Private: secret\r\n\
               Keep-Alive: timeout=5\r\n\
               Proxy-Connection: keep-alive\r\n\
               Proxy-Authorization: Basic eA==\r\n\
               TE: trailers\r\n\
               Trailer: X-T\r\n\
               X-Forwarded-For: 10.0.0.1\r\n\
               X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\n\
               X-Forwarded-Proto: https\r\n\
               Forwarded: for=10.0.0.1\r\n\
               Accept: */*\r\n\
               \r\n";
    let want = "GET /a/b?q=1 HTTP/1.1\r\n\
                host: www.test\r\n\
                User-Agent: t\r\n\
                Accept: */*\r\n\
                x-forwarded-for: 10.0.0.1, 10.0.0.2, 10.0.0.3, 192.0.2.7\r\n\
                x-forwarded-proto: http\r\n\
                forwarded: for=10.0.0.1, for=192.0.2.7;proto=http\r\n\
                via: 1.1 meridian\r\n\
                \r\n";
    assert_eq!(
        plan_of(raw),
        Got::Forward {
            head: want.into(),
            method: Method::GET,
            host: "www.test".into(),
            path: "/a/b".into(),
            length: 0,
            close: false,
        }
    );
}

#[test]
fn minimal_request_gets_the_forwarding_headers() {
    let head = forwarded("GET / HTTP/1.1\r\nHost: h\r\n\r\n", CLIENT, false);
    assert_eq!(
        head,
        "GET / HTTP/1.1\r\nhost: h\r\nx-forwarded-for: 192.0.2.7\r\nx-forwarded-proto: http\r\n\
         forwarded: for=192.0.2.7;proto=http\r\nvia: 1.1 meridian\r\n\r\n"
    );
}

#[test]
fn tls_and_ipv6_clients() {
    let head = forwarded("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-Proto: http\r\n\r\n", CLIENT, true);
    assert!(head.contains("x-forwarded-proto: https\r\n"), "{head}");
    assert!(!head.contains("X-Forwarded-Proto"), "the client's value goes: {head}");
    assert!(head.contains("forwarded: for=192.0.2.7;proto=https\r\n"), "{head}");

    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7));
    let head = forwarded("GET / HTTP/1.1\r\nHost: h\r\nForwarded: for=unknown\r\n\r\n", v6, false);
    assert!(head.contains("x-forwarded-for: 2001:db8::7\r\n"), "{head}");
    assert!(head.contains("forwarded: for=unknown, for=\"[2001:db8::7]\";proto=http\r\n"), "{head}");
    let head = forwarded("GET / HTTP/1.1\r\nHost: h\r\n\r\n", IpAddr::V6(Ipv6Addr::LOCALHOST), true);
    assert!(head.contains("forwarded: for=\"[::1]\";proto=https\r\n"), "{head}");
}

#[test]
fn empty_forwarding_headers_are_not_joined() {
    let head =
        forwarded("GET / HTTP/1.1\r\nHost: h\r\nX-Forwarded-For:\r\nX-Forwarded-For: 10.1.1.1 \r\n\r\n", CLIENT, false);
    assert!(head.contains("x-forwarded-for: 10.1.1.1, 192.0.2.7\r\n"), "{head}");
    assert_eq!(head.matches("x-forwarded-for").count(), 1, "one field: {head}");
}

#[test]
fn connection_tokens_and_close() {
    let Got::Forward { head, close, .. } =
        plan_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nX-Keep: 1\r\n\r\n")
    else {
        panic!("forwarded")
    };
    assert!(close, "Connection: close ends the client connection after this exchange");
    assert!(!head.to_ascii_lowercase().contains("connection"), "{head}");
    assert!(head.contains("X-Keep: 1\r\n"), "{head}");

    let Got::Forward { head, close, .. } = plan_of(
        "GET / HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive\r\nconnection: X-A , x-b\r\nX-A: 1\r\nX-B: 2\r\nX-C: 3\r\n\r\n",
    ) else {
        panic!("forwarded")
    };
    assert!(!close);
    assert!(!head.contains("X-A") && !head.contains("X-B"), "headers named in any Connection field go: {head}");
    assert!(head.contains("X-C: 3\r\n"), "{head}");

    let Got::Forward { close, .. } = plan_of("GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, CLOSE\r\n\r\n")
    else {
        panic!("forwarded")
    };
    assert!(close, "tokens are case-insensitive");
}

#[test]
fn methods_and_lengths() {
    let raw = "POST /upload?x HTTP/1.1\r\nHost: Up.Test:8080\r\nContent-Length: 11\r\n\r\n";
    let Got::Forward { head, method, host, path, length, close } = plan_of(raw) else { panic!("forwarded") };
    assert_eq!(
        (method, host.as_str(), path.as_str(), length, close),
        (Method::POST, "Up.Test:8080", "/upload", 11, false)
    );
    assert!(head.starts_with("POST /upload?x HTTP/1.1\r\nhost: Up.Test:8080\r\nContent-Length: 11\r\n"), "{head}");

    let dup = "PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n";
    assert_eq!(status_of(dup), StatusCode::BAD_REQUEST, "equal duplicate lengths are refused, as nginx does");

    assert!(matches!(
        plan_of("DELETE /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"),
        Got::Forward { length: 0, .. }
    ));
    let custom = plan_of("PURGE /x HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(matches!(&custom, Got::Forward { method, .. } if method.as_str() == "PURGE"), "{custom:?}");
}

#[test]
fn hand_over_cases() {
    for raw in [
        "GET / HTTP/1.0\r\nHost: h\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
        "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\n\r\n",
        "GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\n",
    ] {
        assert_eq!(plan_of(raw), Got::HandOver, "{raw:?}");
    }
}

/// Absolute-form: routed by its authority, and the backend gets that as its one Host
/// and an origin-form target (RFC 9112 §3.2.2).
#[test]
fn absolute_form_replaces_host() {
    let Got::Forward { head, host, path, .. } = plan_of("GET http://b.test/x?y HTTP/1.1\r\nHost: a.test\r\n\r\n")
    else {
        panic!("forwarded")
    };
    assert_eq!((host.as_str(), path.as_str()), ("b.test", "/x"));
    assert!(head.starts_with("GET /x?y HTTP/1.1\r\nhost: b.test\r\n"), "{head}");
    assert!(!head.contains("a.test"), "{head}");
}

#[test]
fn local_answers() {
    assert_eq!(
        plan_of("GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"),
        Got::Local(StatusCode::BAD_REQUEST, "missing Host header\n")
    );
    assert_eq!(status_of("GET / HTTP/1.1\r\nHost:\r\n\r\n"), StatusCode::BAD_REQUEST, "an empty Host");
    assert_eq!(
        plan_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
        Got::Local(StatusCode::BAD_REQUEST, "more than one Host header\n")
    );
    assert_eq!(status_of("GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n"), StatusCode::BAD_REQUEST, "even equal");
    assert_eq!(
        plan_of("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
        Got::Local(StatusCode::BAD_REQUEST, "more than one Content-Length\n")
    );
    for (raw, status) in [
        ("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", StatusCode::BAD_REQUEST),
        ("CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", StatusCode::NOT_IMPLEMENTED),
        ("CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n", StatusCode::NOT_IMPLEMENTED),
        ("GET / HTTP/1.0\r\n\r\n", StatusCode::BAD_REQUEST),
        ("POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: gzip, chunked\r\n\r\n", StatusCode::NOT_IMPLEMENTED),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
            StatusCode::BAD_REQUEST,
        ),
        ("POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", StatusCode::BAD_REQUEST),
        (
            "POST / HTTP/1.1\r\nHost: h\r\nConnection: content-length\r\nContent-Length: 3\r\n\r\n",
            StatusCode::BAD_REQUEST,
        ),
        ("GET / HTTP/1.1\r\nHost: h\r\nConnection: close, Host\r\n\r\n", StatusCode::BAD_REQUEST),
    ] {
        assert_eq!(status_of(raw), status, "{raw:?}");
    }
    for bad in ["abc", "-1", "3, 3", "18446744073709551616", "0x10", "1 2"] {
        let raw = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {bad}\r\n\r\n");
        assert_eq!(status_of(&raw), StatusCode::BAD_REQUEST, "Content-Length: {bad}");
    }
}

/// RFC 9112 §6.3 / RFC 9110 §8.6: `Content-Length = 1*DIGIT`. A sign is not a length:
/// forwarding `+5` verbatim lets a backend that reads it differently split the stream
/// elsewhere than the proxy does.
#[test]
fn signed_content_length_is_refused() {
    for bad in ["+5", "+0"] {
        let raw = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {bad}\r\n\r\n");
        assert_eq!(status_of(&raw), StatusCode::BAD_REQUEST, "Content-Length: {bad}");
    }
}

/// `response` on a parsed head answering a `method` request.
fn framing_of(raw: &str, method: &Method) -> Result<Response, BadResponse> {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut slots);
    let parsed = resp.parse(raw.as_bytes());
    assert!(matches!(parsed, Ok(httparse::Status::Complete(n)) if n == raw.len()), "{raw:?}: {parsed:?}");
    response(&resp, method)
}

/// (framing, reusable) of a response to GET (or `method`).
fn frame(raw: &str, method: &Method) -> (Framing, bool) {
    match framing_of(raw, method) {
        Ok(r) => (r.framing, r.reusable),
        Err(e) => panic!("{raw:?}: {e}"),
    }
}

#[test]
fn response_framing() {
    let get = &Method::GET;
    let cases: [(&str, &Method, Framing, bool); 17] = [
        ("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", &Method::HEAD, Framing::Empty, true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", &Method::HEAD, Framing::Empty, true),
        ("HTTP/1.1 204 No Content\r\n\r\n", get, Framing::Empty, true),
        ("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", get, Framing::Empty, true),
        ("HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n", get, Framing::Empty, true),
        ("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", get, Framing::Empty, true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", get, Framing::Chunked, true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n", get, Framing::Chunked, true),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", get, Framing::Chunked, true),
        // Chunked not last: the body runs to the close.
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", get, Framing::Close, false),
        (
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            get,
            Framing::Close,
            false,
        ),
        ("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n", get, Framing::Close, false),
        ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", get, Framing::Length(5), true),
        ("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", get, Framing::Length(0), true),
        ("HTTP/1.1 200 OK\r\n\r\n", get, Framing::Close, false),
        ("HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\n", get, Framing::Length(5), false),
        (
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, Close\r\n\r\n",
            get,
            Framing::Length(5),
            false,
        ),
    ];
    for (raw, method, framing, reusable) in cases {
        assert_eq!(frame(raw, method), (framing, reusable), "{method} {raw:?}");
    }
    let dup =
        framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", get).expect("equal lengths");
    assert_eq!(dup.framing, Framing::Length(5));
    assert_eq!(dup.status, StatusCode::OK);
    let teapot = framing_of("HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n", get).expect("any status");
    assert_eq!(teapot.status, StatusCode::IM_A_TEAPOT);
}

#[test]
fn bad_responses() {
    let get = &Method::GET;
    assert!(matches!(
        framing_of("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", get),
        Err(BadResponse::Length)
    ));
    for bad in ["five", "+5", "-5", "5, 5", "18446744073709551616"] {
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: {bad}\r\n\r\n");
        assert!(matches!(framing_of(&raw, get), Err(BadResponse::Length)), "Content-Length: {bad}");
    }
    let max = framing_of("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n", get);
    assert_eq!(max.map(|r| r.framing).ok(), Some(Framing::Length(u64::MAX)));
    assert!(matches!(
        framing_of("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", get),
        Err(BadResponse::UnaskedSwitch)
    ));
    assert!(matches!(framing_of("HTTP/1.1 099 Low\r\n\r\n", get), Err(BadResponse::Status(99))));
}

/// `write_response` for a parsed head.
fn written(raw: &str, framing: Framing, close: bool) -> String {
    let mut slots = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut slots);
    let parsed = resp.parse(raw.as_bytes());
    assert!(matches!(parsed, Ok(httparse::Status::Complete(n)) if n == raw.len()), "{raw:?}: {parsed:?}");
    let mut out = Vec::new();
    write_response(&resp, framing, close, &mut out);
    String::from_utf8(out).expect("text")
}

/// The one `date:` line of a head (any case), checked to be an HTTP date.
fn date_of(head: &str) -> String {
    let dates: Vec<&str> = head.split("\r\n").filter(|l| l.len() > 5 && l[..5].eq_ignore_ascii_case("date:")).collect();
    assert_eq!(dates.len(), 1, "exactly one Date: {head}");
    let value = dates[0][5..].trim();
    assert!(httpdate::parse_http_date(value).is_ok(), "{value:?} is an HTTP date");
    value.to_owned()
}

#[test]
fn response_head_strips_hop_by_hop() {
    let raw = "HTTP/1.1 200 OK\r\n\
               Content-Type: text/plain\r\n\
               Content-Length: 5\r\n\
               Connection: keep-alive, X-Internal\r\n\
               X-Internal: 1\r\n\
               Keep-Alive: timeout=5\r\n\
               Proxy-Authenticate: Basic\r\n\
               Trailer: X-T\r\n\
               Upgrade: h2c\r\n\
               Set-Cookie: a=1\r\n\
               Set-Cookie: b=2\r\n\
               \r\n";
    let head = written(raw, Framing::Length(5), false);
    let date = date_of(&head);
    assert_eq!(
        head,
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nSet-Cookie: a=1\r\n\
             Set-Cookie: b=2\r\nvia: 1.1 meridian\r\ndate: {date}\r\n\r\n"
        )
    );
}

#[test]
fn chunked_response_head_keeps_its_framing_only() {
    let raw = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\nX-A: 1\r\n\r\n";
    let head = written(raw, Framing::Chunked, false);
    assert!(
        head.starts_with("HTTP/1.1 201 Created\r\nX-A: 1\r\ntransfer-encoding: chunked\r\nvia: 1.1 meridian\r\n"),
        "{head}"
    );
    assert!(!head.to_ascii_lowercase().contains("content-length"), "a stale length would contradict chunked: {head}");
    assert_eq!(head.to_ascii_lowercase().matches("transfer-encoding").count(), 1, "{head}");
    assert!(!head.contains("connection"), "{head}");
    assert!(head.ends_with("\r\n\r\n"));
}

#[test]
fn close_delimited_and_http10_response_heads() {
    let head = written("HTTP/1.0 200 OK\r\nX-A: 1\r\n\r\n", Framing::Close, true);
    assert!(head.starts_with("HTTP/1.1 200 OK\r\nX-A: 1\r\nvia: 1.0 meridian\r\n"), "{head}");
    assert!(head.ends_with("connection: close\r\n\r\n"), "{head}");
    date_of(&head);

    // `transfer-encoding: gzip` (not chunked last) is relayed to the close, unframed.
    let head = written("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", Framing::Close, true);
    assert!(!head.to_ascii_lowercase().contains("transfer-encoding"), "{head}");
    assert!(head.ends_with("connection: close\r\n\r\n"), "{head}");

    let head = written("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", Framing::Length(0), false);
    assert!(!head.to_ascii_lowercase().contains("connection"), "the backend's close is not the client's: {head}");
}

#[test]
fn existing_date_is_kept() {
    let raw = "HTTP/1.1 304 Not Modified\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nETag: \"x\"\r\n\r\n";
    let head = written(raw, Framing::Empty, false);
    assert_eq!(date_of(&head), "Mon, 01 Jan 2024 00:00:00 GMT");
    assert_eq!(
        head,
        "HTTP/1.1 304 Not Modified\r\nDate: Mon, 01 Jan 2024 00:00:00 GMT\r\nETag: \"x\"\r\nvia: 1.1 meridian\r\n\r\n"
    );
    let lower = written("HTTP/1.1 200 OK\r\ndate: Mon, 01 Jan 2024 00:00:00 GMT\r\n\r\n", Framing::Close, true);
    assert_eq!(date_of(&lower), "Mon, 01 Jan 2024 00:00:00 GMT");
}

#[test]
fn informational_head_is_passed_on() {
    let head = written("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n", Framing::Empty, false);
    assert!(
        head.starts_with("HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\nvia: 1.1 meridian\r\n"),
        "{head}"
    );
    let empty_reason = written("HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n", Framing::Length(0), false);
    assert!(empty_reason.starts_with("HTTP/1.1 200 \r\n"), "{empty_reason}");
}

#[test]
fn local_answer() {
    let mut out = Vec::new();
    write_local(StatusCode::BAD_GATEWAY, "bad gateway\n", true, &mut out);
    let text = String::from_utf8(out).expect("text");
    let date = date_of(&text);
    assert_eq!(
        text,
        format!(
            "HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: 12\r\n\
             date: {date}\r\nconnection: close\r\n\r\nbad gateway\n"
        )
    );
    let mut out = Vec::new();
    write_local(StatusCode::NOT_FOUND, "no\n", false, &mut out);
    let text = String::from_utf8(out).expect("text");
    assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n") && text.ends_with("\r\n\r\nno\n"), "{text}");
    assert!(!text.contains("connection"), "{text}");
}

#[test]
fn status_digits() {
    assert_eq!(&itoa3(200), b"200");
    assert_eq!(&itoa3(103), b"103");
    assert_eq!(&itoa3(599), b"599");
    assert_eq!(&itoa3(1000), b"999");
}
