//! The proxy under hostile clients: framing headers named in `Connection`, malformed,
//! slow and abandoned bodies (which must never count against a backend), Host and
//! `:authority` disagreements, HTTP/2 cookie crumbs, a backend's response framing, and
//! retries that stay within `max_retries`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use meridian_testkit::addr::shared_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

const HOST: &str = "h.test";

/// Sends `parts` (pausing `pause` between them), then reads until the proxy closes or
/// 5 s pass; returns the status codes of the responses, in order, and the raw text.
async fn exchange(addr: SocketAddr, parts: &[&[u8]], pause: Duration) -> Result<(Vec<u16>, String)> {
    let mut s = TcpStream::connect(addr).await?;
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(pause).await;
        }
        if s.write_all(p).await.is_err() {
            break;
        }
    }
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    Ok((statuses(&text), text))
}

/// The status codes of every `HTTP/1.x NNN` status line in `text`.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.").filter_map(|(i, _)| text.get(i + 9..i + 12)).filter_map(|c| c.parse().ok()).collect()
}

async fn send(addr: SocketAddr, raw: &[u8]) -> Result<(Vec<u16>, String)> {
    exchange(addr, &[raw], Duration::ZERO).await
}

/// A proxy in front of one support backend, with `lb` added to `[lb]`.
async fn proxy(lb: &str) -> Result<(Running, World, Vec<Backend>)> {
    proxy_to_backend(HOST, lb).await
}

/// No backend of the proxy is ejected, and a plain request still reaches one.
async fn assert_backend_serves(p: &Running, what: &str) -> Result<()> {
    let status = p.proxy.status().to_string();
    ensure!(!status.contains("\"state\":\"ejected\""), "{what}: a backend was ejected: {status}");
    let (codes, text) = send(p.http, format!("GET /after HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await?;
    ensure!(codes == [200], "{what}: a plain request afterwards got {codes:?}: {text}");
    Ok(())
}

/// A request whose `Connection` names `Content-Length` would be forwarded without its
/// length, and its body read by the backend as the next request: refused with 400 and
/// the connection closed, on the fast path and on a connection hyper serves.
#[tokio::test]
async fn connection_naming_a_framing_header_is_refused() -> Result<()> {
    let (p, _w, _b) = proxy("").await?;
    let smuggled = format!("GET /headers HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    for conn in ["Content-Length", "close, content-length", "Host", "keep-alive, Transfer-Encoding"] {
        let attack = format!(
            "POST /echo HTTP/1.1\r\nHost: {HOST}\r\nConnection: {conn}\r\nContent-Length: {}\r\n\r\n{smuggled}",
            smuggled.len()
        );
        let (codes, text) = send(p.http, attack.as_bytes()).await?;
        assert_eq!(codes, [400], "Connection: {conn}: {text}");
        // Behind a chunked request hyper serves the rest of the connection.
        let first =
            format!("POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n");
        let (codes, text) = send(p.http, format!("{first}{attack}").as_bytes()).await?;
        assert_eq!(codes, [200, 400], "after hand-over, Connection: {conn}: {text}");
    }
    Ok(())
}

/// Malformed chunked bodies are the client's fault: 400, and no backend is ejected
/// however many arrive (three gateway failures would eject it).
#[tokio::test]
async fn malformed_bodies_never_eject_the_backend() -> Result<()> {
    let (p, _w, _b) = proxy("").await?;
    let head = format!("POST /collect HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n");
    let extension = format!("5;{}\r\nhello\r\n0\r\n\r\n", "x".repeat(20_000));
    let bodies: [&str; 4] =
        ["ffffffffffffffffff1\r\nx\r\n0\r\n\r\n", "5\r\nhelloXX0\r\n\r\n", "zz\r\nhi\r\n0\r\n\r\n", &extension];
    for round in 0..3 {
        for body in bodies {
            let (codes, text) =
                exchange(p.http, &[head.as_bytes(), body.as_bytes()], Duration::from_millis(20)).await?;
            ensure!(codes.iter().all(|&c| c == 400), "round {round}: {body:.30?} got {codes:?}: {text:.200}");
        }
    }
    assert_backend_serves(&p, "after 12 malformed bodies").await
}

/// Uploads that pause longer than `body_read` get 408, uploads the client abandons get
/// nothing; neither ejects the backend, on either path.
#[tokio::test]
async fn slow_and_abandoned_uploads_never_eject_the_backend() -> Result<()> {
    let (p, _w, _b) = proxy("[lb.timeouts]\nbody_read = \"300ms\"\n").await?;
    let length = format!("POST /collect HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 100\r\n\r\npart");
    let chunked = format!("POST /collect HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\npart\r\n");
    for head in [&length, &chunked] {
        for _ in 0..4 {
            let (codes, text) = send(p.http, head.as_bytes()).await?;
            assert_eq!(codes, [408], "{head:.60?}: {text}");
        }
        for _ in 0..4 {
            let mut s = TcpStream::connect(p.http).await?;
            s.write_all(head.as_bytes()).await?;
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(s);
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_backend_serves(&p, "after slow and abandoned uploads").await
}

/// The first-byte timer starts when the request has been sent whole: an upload that
/// takes longer than `first_byte` (but never pauses for `body_read`) succeeds.
#[tokio::test]
async fn uploads_slower_than_first_byte_succeed() -> Result<()> {
    let (p, _w, _b) = proxy("[lb.timeouts]\nfirst_byte = \"500ms\"\noverall = \"1s\"\nbody_read = \"2s\"\n").await?;
    let piece = "0123456789";
    let length = format!("POST /collect HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {}\r\n\r\n", piece.len() * 8);
    let chunk = format!("a\r\n{piece}\r\n");
    let chunked = format!("POST /collect HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n");
    for (head, part, end) in [(&length, piece, ""), (&chunked, chunk.as_str(), "0\r\n\r\n")] {
        let mut parts: Vec<&[u8]> = vec![head.as_bytes()];
        parts.extend(std::iter::repeat_n(part.as_bytes(), 8));
        parts.push(end.as_bytes());
        parts.push(format!("GET /x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes().to_vec().leak());
        // 8 pauses of 200 ms: 1.6 s of upload, over both first_byte and overall.
        let (codes, text) = exchange(p.http, &parts, Duration::from_millis(200)).await?;
        assert_eq!(codes, [200, 200], "{head:.60?}: {text}");
        assert!(text.contains(&piece.repeat(8)), "the whole body came back: {text}");
    }
    Ok(())
}

/// RFC 9112 §3.2: two Host lines are refused, whatever comes before them and whichever
/// path serves the request.
#[tokio::test]
async fn two_host_headers_are_refused_on_every_path() -> Result<()> {
    let (p, _w, _b) = proxy("").await?;
    for raw in [
        format!("GET / HTTP/1.0\r\nHost: {HOST}\r\nHost: other.test\r\n\r\n"),
        format!(
            "POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: {HOST}\r\nHost: other.test\r\n\r\n0\r\n\r\n"
        ),
        format!("POST /echo HTTP/1.1\r\nExpect: 100-continue\r\nHost: {HOST}\r\nHost: o\r\nContent-Length: 0\r\n\r\n"),
        // After a hand-over, hyper parses the second request itself.
        format!(
            "GET / HTTP/1.0\r\nHost: {HOST}\r\nConnection: keep-alive\r\n\r\n\
             GET / HTTP/1.1\r\nHost: {HOST}\r\nHost: other.test\r\n\r\n"
        ),
    ] {
        let (codes, text) = send(p.http, raw.as_bytes()).await?;
        assert_eq!(codes.last(), Some(&400), "{raw:?}: {text}");
    }
    Ok(())
}

/// An absolute-form target routes the request and is the backend's one Host (RFC 9112
/// §3.2.2), on the fast path and on a connection hyper serves.
#[tokio::test]
async fn absolute_form_target_is_the_backends_host() -> Result<()> {
    let (p, _w, _b) = proxy("").await?;
    for raw in [
        format!("GET http://{HOST}/headers HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n"),
        format!("GET http://{HOST}/headers HTTP/1.0\r\nHost: other.test\r\n\r\n"),
    ] {
        let (codes, text) = send(p.http, raw.as_bytes()).await?;
        assert_eq!(codes, [200], "{raw:?}: {text}");
        let hosts: Vec<&str> = text.lines().filter(|l| l.starts_with("host:")).collect();
        assert_eq!(hosts, [format!("host: {HOST}")], "{raw:?}: {text}");
    }
    Ok(())
}

/// Every `X-Forwarded-For` line reaches the backend, joined in one field, on hyper's
/// path as on the fast path.
#[tokio::test]
async fn every_forwarded_for_line_is_kept() -> Result<()> {
    let (p, _w, _b) = proxy("").await?;
    for version in ["1.1", "1.0"] {
        let raw = format!(
            "GET /headers HTTP/{version}\r\nHost: {HOST}\r\nX-Forwarded-For: 10.0.0.1\r\n\
             X-Forwarded-For: 10.0.0.2, 10.0.0.3\r\nConnection: close\r\n\r\n"
        );
        let (codes, text) = send(p.http, raw.as_bytes()).await?;
        assert_eq!(codes, [200], "{text}");
        let xff: Vec<&str> = text.lines().filter(|l| l.starts_with("x-forwarded-for:")).collect();
        assert_eq!(xff, ["x-forwarded-for: 10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"], "HTTP/{version}: {text}");
    }
    Ok(())
}

/// One h2c request with extra headers; returns its status and body.
async fn h2_request(addr: SocketAddr, uri: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut req = hyper::Request::builder().uri(uri);
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    let resp = sender.send_request(req.body(Empty::<Bytes>::new())?).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// RFC 9113 §8.3.1: a `host` that differs from `:authority` is refused (routing by one
/// and forwarding the other would let them disagree); one that agrees is served.
#[tokio::test]
async fn h2_authority_and_host_must_agree() -> Result<()> {
    let (p, _w, _b) = proxy("").await?;
    let uri = format!("http://{HOST}/headers");
    let (status, body) = h2_request(p.http, &uri, &[("host", "other.test")]).await?;
    assert_eq!(status, 400, "{body}");
    let (status, body) = h2_request(p.http, &uri, &[("host", HOST)]).await?;
    assert_eq!(status, 200, "{body}");
    let hosts: Vec<&str> = body.lines().filter(|l| l.starts_with("host:")).collect();
    assert_eq!(hosts, [format!("host: {HOST}")], "{body}");
    Ok(())
}

/// RFC 9113 §8.2.3: HTTP/2 cookie crumbs reach an HTTP/1.1 backend as one field joined
/// with `; `.
#[tokio::test]
async fn h2_cookie_crumbs_are_joined() -> Result<()> {
    let (p, _w, _b) = proxy("").await?;
    let uri = format!("http://{HOST}/headers");
    let (status, body) = h2_request(p.http, &uri, &[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]).await?;
    assert_eq!(status, 200, "{body}");
    let cookies: Vec<&str> = body.lines().filter(|l| l.starts_with("cookie:")).collect();
    assert_eq!(cookies, ["cookie: a=1; b=2; c=3"], "{body}");
    Ok(())
}

/// Reads until `buf` holds a whole request head and takes it out (the test backends'
/// requests have no body); false when the connection ends first.
async fn next_head(s: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..at + 4);
            return true;
        }
        if !matches!(s.read_buf(buf).await, Ok(n) if n > 0) {
            return false;
        }
    }
}

/// A raw backend answering every request it reads with `reply` (after reading the head;
/// requests here have no body). With `reset` set, it resets instead. Counts requests.
async fn raw_backend(
    reply: &'static [u8],
    reset: Arc<AtomicBool>,
    at: SocketAddr,
) -> Result<(SocketAddr, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind(at).await.context("bind raw backend")?;
    let addr = listener.local_addr()?;
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let (seen, reset) = (seen.clone(), reset.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    if !next_head(&mut s, &mut buf).await {
                        return;
                    }
                    seen.fetch_add(1, Ordering::SeqCst);
                    if reset.load(Ordering::SeqCst) {
                        let _ = s.set_zero_linger();
                        return;
                    }
                    // Long enough for concurrent requests to overlap.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((addr, count))
}

/// A backend response whose `Connection` names `Content-Length` keeps its length on the
/// way to the client, so the next response on the connection is not read as its body.
#[tokio::test]
async fn response_framing_survives_connection_naming_it() -> Result<()> {
    let reply = b"HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello";
    let (addr, _) = raw_backend(reply, Arc::new(AtomicBool::new(false)), SocketAddr::new(loopback(), 0)).await?;
    let (p, _w) = proxy_to(HOST, addr.ip(), addr.port(), "").await?;
    let get = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n");
    let close = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let (codes, text) = exchange(p.http, &[get.as_bytes(), close.as_bytes()], Duration::from_millis(100)).await?;
    assert_eq!(codes, [200, 200], "{text}");
    assert_eq!(text.matches("content-length: 5\r\n").chain(text.matches("Content-Length: 5\r\n")).count(), 2, "{text}");
    Ok(())
}

/// A backend that resets every request: an idempotent request reaches the backends at
/// most `1 + max_retries` times, reused pooled connections included.
#[tokio::test]
async fn resets_on_pooled_connections_stay_within_max_retries() -> Result<()> {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    let reset = Arc::new(AtomicBool::new(false));
    let port = shared_port();
    let (mut counts, mut ips) = (Vec::new(), Vec::new());
    for _ in 0..2 {
        let (addr, count) = raw_backend(reply, reset.clone(), SocketAddr::new(loopback(), port)).await?;
        ips.push(addr.ip());
        counts.push(count);
    }
    let c = cluster("c1", "r1", 0);
    let mut world = World::new(std::slice::from_ref(&c));
    world.service("shop", "web", &c, &ips, port, true);
    let cfg = config(
        &[c],
        &format!("[[lb.routes]]\nhost = \"{HOST}\"\nservice = \"shop/web\"\n[lb.retry]\nmax_retries = 2\n"),
    );
    let p = start(&cfg, &world.table).await?;
    // Warm both backends' pools: concurrent requests spread over both (P2C weighs
    // outstanding requests), and each leaves a kept-alive connection behind.
    let mut warm = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (addr, get) = (p.http, format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n"));
        warm.spawn(async move {
            let mut client = TcpStream::connect(addr).await?;
            for _ in 0..5 {
                client.write_all(get.as_bytes()).await?;
                let mut buf = [0u8; 512];
                let _ = tokio::time::timeout(Duration::from_secs(2), client.read(&mut buf)).await;
            }
            anyhow::Ok(())
        });
    }
    while let Some(r) = warm.join_next().await {
        r??;
    }
    ensure!(counts.iter().all(|c| c.load(Ordering::SeqCst) > 0), "both backends warmed");
    reset.store(true, Ordering::SeqCst);
    let before: usize = counts.iter().map(|c| c.load(Ordering::SeqCst)).sum();
    let (codes, text) =
        send(p.http, format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n").as_bytes()).await?;
    assert_eq!(codes, [502], "{text}");
    let delivered = counts.iter().map(|c| c.load(Ordering::SeqCst)).sum::<usize>() - before;
    assert!((1..=3).contains(&delivered), "delivered {delivered} times with max_retries = 2");
    Ok(())
}

/// CONNECT is not implemented (501, not forwarded), a request line over the head limit
/// is 414, a later HTTP/1 minor version is served as HTTP/1.1 and HTTP/2.0 on a request
/// line is 505.
#[tokio::test]
async fn request_line_rules() -> Result<()> {
    let (p, _w, _b) = proxy("[lb.limits]\nmax_header_bytes = 8192\n").await?;
    let long = format!("GET /{} HTTP/1.1\r\nHost: {HOST}\r\n\r\n", "a".repeat(9000));
    for (raw, want) in [
        (format!("CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n\r\n"), 501),
        (long, 414),
        (format!("GET /{} HTTP/1.1\r\nHost: {HOST}\r\nX: {}\r\n\r\n", "a", "b".repeat(9000)), 431),
        (format!("GET /x HTTP/1.2\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"), 200),
        (format!("GET /x HTTP/2.0\r\nHost: {HOST}\r\n\r\n"), 505),
        (format!("OPTIONS * HTTP/1.1\r\nHost: {HOST}\r\n\r\n"), 400),
        (format!("GET ftp://{HOST}/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n"), 400),
        (format!("GET http://u@{HOST}/ HTTP/1.1\r\nHost: {HOST}\r\n\r\n"), 400),
    ] {
        let (codes, text) = send(p.http, raw.as_bytes()).await?;
        assert_eq!(codes, [want], "{:.80?}: {text:.300}", raw);
    }
    Ok(())
}

/// A client that asks for a large response and never reads it loses its connection once
/// nothing has moved for the idle bound, instead of holding it (and a backend
/// connection) for ever.
#[tokio::test]
async fn a_client_that_never_reads_its_response_is_disconnected() -> Result<()> {
    const SIZE: usize = 64 << 20;
    let mut reply = format!("HTTP/1.1 200 OK\r\nContent-Length: {SIZE}\r\n\r\n").into_bytes();
    reply.resize(reply.len() + SIZE, b'x');
    let reply: &'static [u8] = reply.leak();
    let (addr, _) = raw_backend(reply, Arc::new(AtomicBool::new(false)), SocketAddr::new(loopback(), 0)).await?;
    let (p, _w) = proxy_to(HOST, addr.ip(), addr.port(), "[lb.timeouts]\nidle = \"1s\"\noverall = \"1s\"\n").await?;
    let mut s = TcpStream::connect(p.http).await?;
    s.write_all(format!("GET /big HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await?;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got += n,
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "the connection was still open after the client stopped reading for 4 s");
    assert!(got < SIZE, "the whole response arrived ({got} bytes): the connection was never cut");
    Ok(())
}

/// One HTTP/2 frame: length, type, flags, stream.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK "literal header field without indexing, new name", lengths under 127.
fn hpack_literal(block: &mut Vec<u8>, name: &str, value: &str) {
    block.push(0);
    block.push(name.len() as u8);
    block.extend_from_slice(name.as_bytes());
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}

/// An h2c POST with `content-length: 10` whose body is only `abc`: ended there
/// (`end`: a malformed request, RFC 9113 §8.1.1) or left hanging (a stalled upload);
/// the client's fault either way. Returns the first frame the proxy sends on stream 1
/// (its type and payload): HEADERS with the status, or RST_STREAM.
async fn h2_short_body(addr: SocketAddr, end: bool) -> Result<(u8, Vec<u8>)> {
    let mut block = Vec::new();
    for (n, v) in [(":method", "POST"), (":scheme", "http"), (":path", "/collect"), (":authority", HOST)] {
        hpack_literal(&mut block, n, v);
    }
    hpack_literal(&mut block, "content-length", "10");
    let mut wire = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    wire.extend(h2_frame(0x4, 0, 0, &[]));
    wire.extend(h2_frame(0x1, 0x4, 1, &block));
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(&wire).await?;
    // The request is on its way to the backend when its body turns out short.
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(&h2_frame(0x0, u8::from(end), 1, b"abc")).await?;
    let mut buf = Vec::new();
    let answer = async {
        loop {
            while buf.len() >= 9 {
                let len = (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, stream) = (buf[3], u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff);
                let payload = buf[9..9 + len].to_vec();
                buf.drain(..9 + len);
                if stream == 1 && (kind == 0x1 || kind == 0x3) {
                    return Ok((kind, payload));
                }
                ensure!(kind != 0x7, "GOAWAY instead of an answer on the stream");
            }
            ensure!(s.read_buf(&mut buf).await? > 0, "connection closed before an answer");
        }
    };
    tokio::time::timeout(Duration::from_secs(5), answer).await.context("no answer on stream 1")?
}

/// An h2c POST whose body sends `abc` and then nothing, never ending; its status.
async fn h2_stalled_upload(addr: SocketAddr) -> Result<u16> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let (tx, rx) = futures::channel::mpsc::channel::<Result<hyper::body::Frame<Bytes>, std::convert::Infallible>>(1);
    let mut tx = tx;
    tx.try_send(Ok(hyper::body::Frame::data(Bytes::from_static(b"abc"))))?;
    let body = http_body_util::StreamBody::new(rx);
    let req = hyper::Request::post(format!("http://{HOST}/collect")).body(body)?;
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req)).await??;
    drop(tx);
    Ok(resp.status().as_u16())
}

/// Over HTTP/2 too, short and stalled bodies are the client's fault: ten of each eject
/// nothing, and a stalled one is answered 408 after `body_read`.
#[tokio::test]
async fn malformed_and_stalled_h2_bodies_never_eject_the_backend() -> Result<()> {
    let (p, _w, _b) = proxy("[lb.timeouts]\nbody_read = \"300ms\"\n").await?;
    for _ in 0..10 {
        let (kind, payload) = h2_short_body(p.http, true).await?;
        // A reset stream, or HEADERS whose `:status` is 400 (HPACK static index 12).
        assert!(kind == 0x3 || payload.first() == Some(&0x8c), "frame {kind}: {payload:?}");
        assert_eq!(h2_stalled_upload(p.http).await?, 408);
    }
    let status = p.proxy.status().to_string();
    assert!(!status.contains("\"state\":\"ejected\""), "a backend was ejected: {status}");
    let (code, body) = h2_request(p.http, &format!("http://{HOST}/x"), &[]).await?;
    assert_eq!(code, 200, "{body}");
    Ok(())
}

/// A backend that answers `reply` on kept-alive connections until `die` is notified;
/// then it stops listening (connects are refused) and each open connection reads its
/// next request and closes without answering, as a backend killed mid-keep-alive does.
async fn dying_backend(reply: &'static [u8], at: SocketAddr) -> Result<(SocketAddr, Arc<tokio::sync::Notify>)> {
    let listener = TcpListener::bind(at).await.context("bind dying backend")?;
    let addr = listener.local_addr()?;
    let die = Arc::new(tokio::sync::Notify::new());
    let dead = Arc::new(AtomicBool::new(false));
    let (stop, gone) = (die.clone(), dead.clone());
    tokio::spawn(async move {
        loop {
            let mut s = tokio::select! {
                r = listener.accept() => match r { Ok((s, _)) => s, Err(_) => return },
                () = stop.notified() => { gone.store(true, Ordering::SeqCst); return }
            };
            let gone = gone.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    if !next_head(&mut s, &mut buf).await {
                        return;
                    }
                    if gone.load(Ordering::SeqCst) || s.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((addr, die))
}

/// The local backend dies with kept-alive connections in the pool: the first retry goes
/// back to it on a new connection (a closed reused connection says nothing of its
/// health), that connect is refused, and the request is answered by the other region's
/// backend. A refused connect delivers nothing, so it does not use up `max_retries`.
#[tokio::test]
async fn a_backend_dying_with_pooled_connections_fails_no_request() -> Result<()> {
    let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nnear";
    let port = shared_port();
    let (near_addr, die) = dying_backend(reply, SocketAddr::new(loopback(), port)).await?;
    let far = Backend::start("far", SocketAddr::new(loopback(), port)).await?;
    let (near, far_c) = (cluster("near", "r-near", 0), cluster("far", "r-far", 1));
    let mut world = World::new(&[near.clone(), far_c.clone()]);
    world.service("shop", "web", &near, &[near_addr.ip()], port, true);
    world.service("shop", "web", &far_c, &[far.addr.ip()], port, true);
    let cfg = config(
        &[near, far_c],
        &format!(
            "region = \"r-near\"\n[[lb.routes]]\nhost = \"{HOST}\"\nservice = \"shop/web\"\n[lb.retry]\nmax_retries = 1\n"
        ),
    );
    let p = start(&cfg, &world.table).await?;
    let close = format!("GET / HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n");
    let (codes, text) = send(p.http, close.as_bytes()).await?;
    ensure!(codes == [200] && text.ends_with("near"), "warm-up reached the local backend: {text}");
    die.notify_one();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (codes, text) = send(p.http, close.as_bytes()).await?;
    assert_eq!(codes, [200], "{text}");
    assert!(text.contains("far"), "answered by the other region: {text}");
    Ok(())
}
