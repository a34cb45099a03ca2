//! The HTTP/1.1 fast path (`lb/src/h1`) seen from outside: response framings relayed from
//! raw backends, 1xx heads, keep-alive and pipelining, request bodies, pooled connections
//! the backend closed, the hand-over to hyper, and backends that break the exchange.
//!
//! Backends that must send exact bytes are raw TCP servers written here ([`raw_backend`]);
//! the client side is curl or a raw TCP client ([`Client`]) whose every read has a
//! timeout, so a proxy that hangs fails the test instead of stalling it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use meridian_testkit::wait::eventually_sync;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::*;

/// Longest wait for any one read; far above what loopback needs.
const READ: Duration = Duration::from_secs(2);

/// The route every test uses.
const HOST: &str = "raw.test";

// ---------------------------------------------------------------------------------------
// Raw backends

/// A request as a raw backend read it.
struct Seen {
    method: String,
    path: String,
    head: String,
    body: Vec<u8>,
    /// Requests before this one on the same connection.
    index: usize,
}

/// What a raw backend does after writing its answer.
enum Then {
    KeepOpen,
    /// Close the connection (FIN).
    Close,
    /// Abort the connection (RST).
    Reset,
}

/// A raw backend's answer: written part by part (with a short pause between parts, so
/// the proxy reads them separately), then `then`.
struct Reply {
    parts: Vec<Vec<u8>>,
    then: Then,
}

impl Reply {
    fn keep(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply { parts: vec![bytes.into()], then: Then::KeepOpen }
    }

    fn close(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply { parts: vec![bytes.into()], then: Then::Close }
    }
}

/// A raw backend on its own loopback address, and what it has seen.
struct RawBackend {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

/// Starts a raw backend that reads requests (heads and `Content-Length` bodies) on every
/// connection and answers each as `script` says. It lives as long as the test's runtime.
async fn raw_backend<F>(script: F) -> Result<RawBackend>
where
    F: Fn(&Seen) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind((loopback(), 0)).await.context("bind raw backend")?;
    let addr = listener.local_addr()?;
    let script = Arc::new(script);
    let connections = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let (conns, reqs) = (connections.clone(), requests.clone());
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            conns.fetch_add(1, Ordering::SeqCst);
            let (script, reqs) = (script.clone(), reqs.clone());
            tokio::spawn(async move {
                let _ = serve_raw(stream, &*script, &reqs).await;
            });
        }
    });
    Ok(RawBackend { addr, connections, requests })
}

async fn serve_raw<F>(mut s: TcpStream, script: &F, requests: &AtomicUsize) -> Result<()>
where
    F: Fn(&Seen) -> Reply,
{
    let mut buf = Vec::new();
    for index in 0.. {
        let Some(mut seen) = read_request(&mut s, &mut buf).await? else { return Ok(()) };
        seen.index = index;
        requests.fetch_add(1, Ordering::SeqCst);
        let reply = script(&seen);
        for (i, part) in reply.parts.iter().enumerate() {
            if i > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            s.write_all(part).await?;
            s.flush().await?;
        }
        match reply.then {
            Then::KeepOpen => {}
            Then::Close => return Ok(()),
            Then::Reset => {
                s.set_zero_linger()?;
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads one request (head and `Content-Length` body); `None` at a clean end.
async fn read_request(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<Seen>> {
    let end = loop {
        if let Some(i) = find(buf, b"\r\n\r\n") {
            break i + 4;
        }
        if s.read_buf(buf).await? == 0 {
            ensure!(buf.is_empty(), "connection closed inside a request head");
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut slots);
    req.parse(&buf[..end]).context("backend got a malformed request head")?;
    let (method, path) = (req.method.unwrap_or_default().to_owned(), req.path.unwrap_or_default().to_owned());
    let length = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.trim().parse::<usize>().ok())
        .unwrap_or(0);
    buf.drain(..end);
    while buf.len() < length {
        ensure!(s.read_buf(buf).await? > 0, "connection closed inside a request body");
    }
    let body = buf.drain(..length).collect();
    Ok(Some(Seen { method, path, head, body, index: 0 }))
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------
// The proxy

/// Idle pooled upstream connections of the route's only backend (the fast path's pool).
fn idle_connections(p: &Running) -> u64 {
    p.proxy.status()["routes"][0]["levels"][0]["backends"][0]["idle_connections"].as_u64().unwrap_or(0)
}

/// Waits (up to 1 s) until the fast path has put a connection back in its pool: that
/// happens just after the response's last byte is written. 0 if it never does.
async fn wait_idle(p: &Running) -> u64 {
    let idle = || Some(idle_connections(p)).filter(|n| *n > 0);
    eventually_sync(Duration::from_secs(1), "an idle pooled connection", idle).await.unwrap_or(0)
}

fn requests_metric(p: &Running, class: &str) -> u64 {
    let prefix = format!("lb_requests_total{{route=\"{HOST}/\",class=\"{class}\"}} ");
    let m = p.metrics();
    m.lines().find_map(|l| l.strip_prefix(&prefix)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

// ---------------------------------------------------------------------------------------
// A raw client

/// A response as the client read it.
#[derive(Debug)]
struct Resp {
    /// 1xx heads before the final one.
    interim: Vec<String>,
    head: String,
    status: u16,
    /// The body as it came on the wire (still chunked when chunked).
    body: Vec<u8>,
}

impl Resp {
    /// The value of the first `name` header of the final head.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

struct Client {
    s: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Result<Client> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Client { s, buf: Vec::new() })
    }

    async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.s.write_all(bytes).await?;
        Ok(())
    }

    /// `GET path` with the test host, keep-alive.
    async fn get(&mut self, path: &str) -> Result<Resp> {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await?;
        self.response(false).await
    }

    /// Reads more; fails on timeout or when the proxy closed the connection.
    async fn fill(&mut self) -> Result<()> {
        match tokio::time::timeout(READ, self.s.read_buf(&mut self.buf)).await {
            Err(_) => bail!("no bytes from the proxy within {READ:?}; have {:?}", String::from_utf8_lossy(&self.buf)),
            Ok(r) => ensure!(r? > 0, "proxy closed the connection; have {:?}", String::from_utf8_lossy(&self.buf)),
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    /// The next head (up to its blank line).
    async fn head(&mut self) -> Result<String> {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                return Ok(String::from_utf8_lossy(&self.take(i + 4)).into_owned());
            }
            self.fill().await?;
        }
    }

    /// Where the line starting at `at` ends (after its CRLF).
    async fn line_end(&mut self, at: usize) -> Result<usize> {
        loop {
            if let Some(i) = self.buf.get(at..).and_then(|b| find(b, b"\r\n")) {
                return Ok(at + i + 2);
            }
            self.fill().await?;
        }
    }

    /// A whole chunked body, as on the wire.
    async fn chunked(&mut self) -> Result<Vec<u8>> {
        let mut at = 0;
        loop {
            let end = self.line_end(at).await?;
            let line = String::from_utf8_lossy(&self.buf[at..end - 2]).into_owned();
            let hex = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(hex, 16).with_context(|| format!("chunk size {line:?}"))?;
            at = end;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let end = self.line_end(at).await?;
                    let empty = end - at == 2;
                    at = end;
                    if empty {
                        return Ok(self.take(at));
                    }
                }
            }
            while self.buf.len() < at + size + 2 {
                self.fill().await?;
            }
            ensure!(&self.buf[at + size..at + size + 2] == b"\r\n", "chunk data not followed by CRLF");
            at += size + 2;
        }
    }

    /// The next response: any 1xx heads, the final head and its body as framed.
    async fn response(&mut self, head_request: bool) -> Result<Resp> {
        let mut interim = Vec::new();
        loop {
            let head = self.head().await?;
            let status: u16 = head.get(9..12).and_then(|c| c.parse().ok()).context("status code")?;
            if (100..200).contains(&status) && status != 101 {
                interim.push(head);
                continue;
            }
            let mut resp = Resp { interim, head, status, body: Vec::new() };
            let chunked = resp.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
            let length = resp.header("content-length").map(str::parse::<usize>).transpose()?;
            resp.body = if head_request || status == 204 || status == 304 {
                Vec::new()
            } else if chunked {
                self.chunked().await?
            } else if let Some(n) = length {
                while self.buf.len() < n {
                    self.fill().await?;
                }
                self.take(n)
            } else {
                self.rest().await?
            };
            return Ok(resp);
        }
    }

    /// Everything until the proxy closes the connection.
    async fn rest(&mut self) -> Result<Vec<u8>> {
        let read = tokio::time::timeout(READ, self.s.read_to_end(&mut self.buf)).await;
        ensure!(read.is_ok(), "the proxy did not close the connection within {READ:?}");
        read.ok().transpose()?;
        Ok(std::mem::take(&mut self.buf))
    }
}

// ---------------------------------------------------------------------------------------
// Response framings

/// A chunked response with extensions, a big chunk and a trailer, sent in several writes,
/// reaches curl decoded and a raw client byte for byte (still chunked, no length), and the
/// connection is then reused for the next request.
#[tokio::test]
async fn chunked_response_with_trailer_arrives_whole() -> Result<()> {
    let big = "x".repeat(100_000);
    let chunks: Vec<Vec<u8>> = vec![
        b"5;ext=1\r\nhello\r\n".to_vec(),
        format!("{:x}\r\n{big}\r\n", big.len()).into_bytes(),
        b"7\r\n, world\r\n0\r\nX-Sum: 42\r\n".to_vec(),
        b"\r\n".to_vec(),
    ];
    let wire: Vec<u8> = chunks.concat();
    let parts = chunks.clone();
    let b = raw_backend(move |_| {
        let mut all = vec![
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\nContent-Type: text/plain\r\n\r\n"
                .to_vec(),
        ];
        all.extend(parts.iter().cloned());
        Reply { parts: all, then: Then::KeepOpen }
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;

    let out = curl(&["-H", &format!("Host: {HOST}"), &format!("http://{}/chunked", p.http)]).await?;
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert_eq!(out.body, format!("hello{big}, world"), "curl decodes the relayed chunks");

    let mut c = Client::connect(p.http).await?;
    for _ in 0..2 {
        let r = c.get("/chunked").await?;
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(r.header("transfer-encoding"), Some("chunked"), "{}", r.head);
        assert_eq!(r.header("content-length"), None, "{}", r.head);
        assert_eq!(r.header("content-type"), Some("text/plain"), "{}", r.head);
        assert_eq!(r.header("connection"), None, "keep-alive: {}", r.head);
        assert!(r.body == wire, "chunks, extension and trailer relayed verbatim: {:?}", r.text());
    }
    assert_eq!(b.connections.load(Ordering::SeqCst), 1, "the upstream connection was reused after the last chunk");
    p.proxy.shutdown().await;
    Ok(())
}

/// A response with neither length nor chunks ends when the backend closes: it arrives
/// whole, and the client is told `connection: close` and then closed.
#[tokio::test]
async fn close_delimited_response_arrives_whole_and_closes_the_client() -> Result<()> {
    let body: Vec<u8> = (0..200_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let sent = body.clone();
    let b = raw_backend(move |_| {
        let mut bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n".to_vec();
        bytes.extend_from_slice(&sent);
        Reply::close(bytes)
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;

    let mut c = Client::connect(p.http).await?;
    c.send(format!("GET /stream HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await?;
    let r = c.response(false).await?;
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("connection"), Some("close"), "{}", r.head);
    assert_eq!((r.header("content-length"), r.header("transfer-encoding")), (None, None), "{}", r.head);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "body differs");

    let out = curl(&["-H", &format!("Host: {HOST}"), &format!("http://{}/stream", p.http)]).await?;
    assert_eq!((out.status, out.body.len()), (200, body.len()), "{}", out.stderr);
    p.proxy.shutdown().await;
    Ok(())
}

/// HEAD, 204 and 304 responses have no body, whatever their headers say, and the client
/// connection goes on: the next request on it is answered.
#[tokio::test]
async fn bodyless_responses_keep_the_connection() -> Result<()> {
    let b = raw_backend(|seen| match (seen.method.as_str(), seen.path.as_str()) {
        ("HEAD", _) => Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 1234\r\nETag: \"h\"\r\n\r\n"),
        (_, "/204") => Reply::keep("HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n"),
        (_, "/304") => Reply::keep("HTTP/1.1 304 Not Modified\r\nETag: \"h\"\r\nContent-Length: 1234\r\n\r\n"),
        (_, path) => Reply::keep(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{path}", path.len())),
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;

    let mut c = Client::connect(p.http).await?;
    c.send(format!("HEAD /head HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await?;
    let head = c.response(true).await?;
    assert_eq!((head.status, head.header("content-length")), (200, Some("1234")), "{}", head.head);
    assert_eq!(c.get("/after-head").await?.text(), "/after-head");

    let none = c.get("/204").await?;
    assert_eq!((none.status, none.header("x-kind")), (204, Some("none")), "{}", none.head);
    assert_eq!(c.get("/after-204").await?.text(), "/after-204");

    let not_modified = c.get("/304").await?;
    assert_eq!((not_modified.status, not_modified.header("etag")), (304, Some("\"h\"")), "{}", not_modified.head);
    assert_eq!(c.get("/after-304").await?.text(), "/after-304");
    assert!(c.buf.is_empty(), "no stray body bytes: {:?}", String::from_utf8_lossy(&c.buf));
    assert_eq!(b.connections.load(Ordering::SeqCst), 1, "one upstream connection for all six");
    p.proxy.shutdown().await;
    Ok(())
}

/// `103 Early Hints` before the final response: the client gets both heads, in order.
#[tokio::test]
async fn early_hints_then_the_response() -> Result<()> {
    let b = raw_backend(|_| Reply {
        parts: vec![
            b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n".to_vec(),
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhints".to_vec(),
        ],
        then: Then::KeepOpen,
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;

    let mut c = Client::connect(p.http).await?;
    let r = c.get("/page").await?;
    assert_eq!(r.interim.len(), 1, "{r:?}");
    assert!(r.interim[0].starts_with("HTTP/1.1 103 Early Hints\r\n"), "{:?}", r.interim);
    assert!(r.interim[0].contains("\r\nLink: </style.css>; rel=preload\r\n"), "{:?}", r.interim);
    assert!(!r.interim[0].to_ascii_lowercase().contains("content-length"), "{:?}", r.interim);
    assert_eq!((r.status, r.text().as_str()), (200, "hints"), "{}", r.head);
    let again = c.get("/page").await?;
    assert_eq!((again.interim.len(), again.status), (1, 200), "the connection goes on");

    let out = curl(&["-H", &format!("Host: {HOST}"), &format!("http://{}/page", p.http)]).await?;
    assert_eq!((out.status, out.body.as_str()), (200, "hints"), "{}", out.stderr);
    p.proxy.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Keep-alive, pipelining, bodies

/// Requests written at once on one connection (one with a body in between) get their
/// responses in order.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order() -> Result<()> {
    let (p, _world, _backends) = proxy_to_backend(HOST, "").await?;
    let mut c = Client::connect(p.http).await?;
    let burst = format!(
        "GET /one HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
         POST /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 11\r\n\r\nhello world\
         GET /two HTTP/1.1\r\nHost: {HOST}\r\n\r\n\
         GET /three HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    );
    c.send(burst.as_bytes()).await?;
    let mut bodies = Vec::new();
    for _ in 0..4 {
        let r = c.response(false).await?;
        assert_eq!(r.status, 200, "{}", r.head);
        bodies.push(r.text());
    }
    assert_eq!(bodies, ["c1 /one\n", "hello world", "c1 /two\n", "c1 /three\n"]);
    let last = c.get("/four").await?;
    assert_eq!(last.text(), "c1 /four\n");
    assert!(wait_idle(&p).await > 0, "served by the fast path");
    p.proxy.shutdown().await;
    Ok(())
}

/// `Content-Length` bodies (1 MiB through curl, a small one through a raw client) reach
/// the backend intact, on the fast path.
#[tokio::test]
async fn content_length_bodies_reach_the_backend_intact() -> Result<()> {
    let (p, _world, _backends) = proxy_to_backend(HOST, "").await?;
    let data: Vec<u8> = (0..1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    // curl would ask `Expect: 100-continue` for a body this big: that is hyper's.
    let (out, echoed) = echo_through(p.http, HOST, &["-H", "Expect:"], &data).await?;
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert!(echoed == data, "echoed body differs");
    assert_eq!(wait_idle(&p).await, 1, "curl's request went through the fast path's pool");

    let mut c = Client::connect(p.http).await?;
    c.send(format!("PUT /echo HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 5\r\n\r\n").as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send(b"ab").await?;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send(b"cde").await?;
    let r = c.response(false).await?;
    assert_eq!((r.status, r.text().as_str()), (200, "abcde"), "a body sent in pieces");
    assert_eq!(c.get("/next").await?.text(), "c1 /next\n", "the body was not taken for the next request");
    assert!(wait_idle(&p).await > 0, "served by the fast path");
    p.proxy.shutdown().await;
    Ok(())
}

/// The exact head the backend gets from the fast path: the client's request line and
/// headers, hop-by-hop ones removed, forwarding headers added, the body after it.
#[tokio::test]
async fn backend_gets_the_rewritten_head_and_the_body() -> Result<()> {
    let seen = Arc::new(parking_lot::Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let log = seen.clone();
    let b = raw_backend(move |s| {
        log.lock().push((s.head.clone(), s.body.clone()));
        Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;
    let mut c = Client::connect(p.http).await?;
    c.send(
        format!(
            "POST /form?a=1 HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 7\r\nConnection: keep-alive, X-Hop\r\n\
             X-Hop: 1\r\nTE: trailers\r\nX-Forwarded-For: 10.9.8.7\r\nX-App: yes\r\n\r\npayload"
        )
        .as_bytes(),
    )
    .await?;
    assert_eq!(c.response(false).await?.status, 200);
    let got = seen.lock().clone();
    assert_eq!(got.len(), 1);
    let (head, body) = &got[0];
    assert_eq!(
        head,
        &format!(
            "POST /form?a=1 HTTP/1.1\r\nhost: {HOST}\r\nContent-Length: 7\r\nX-App: yes\r\n\
             x-forwarded-for: 10.9.8.7, 127.0.0.1\r\nx-forwarded-proto: http\r\n\
             forwarded: for=127.0.0.1;proto=http\r\nvia: 1.1 meridian\r\n\r\n"
        )
    );
    assert_eq!(body, b"payload");
    p.proxy.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Pooled connections the backend closed

/// Each upstream connection answers one request with keep-alive, then takes the next
/// request and closes without a word (FIN): the pooled connection fails before any
/// response byte and the request goes again on a new connection. The client sees only
/// 200s.
#[tokio::test]
async fn pooled_connection_closed_on_the_next_request_is_retried() -> Result<()> {
    let b = raw_backend(|seen| match seen.index {
        0 => Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"),
        _ => Reply::close(Vec::new()),
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;
    let mut c = Client::connect(p.http).await?;
    for i in 0..4 {
        let r = c.get("/again").await?;
        assert_eq!((r.status, r.text().as_str()), (200, "first"), "request {i}: {}", r.head);
        assert!(wait_idle(&p).await > 0, "the connection went back to the pool");
    }
    // The first request opened a connection; each later one found the pooled connection
    // dead and opened another.
    assert_eq!(b.connections.load(Ordering::SeqCst), 4);
    assert_eq!(b.requests.load(Ordering::SeqCst), 7);
    assert_eq!(requests_metric(&p, "2xx"), 4);
    assert_eq!(requests_metric(&p, "error"), 0);
    p.proxy.shutdown().await;
    Ok(())
}

/// A request that is not idempotent is not sent again when the pooled connection closes
/// on it: the backend may have acted on it. The client gets 502 and the backend saw the
/// POST once.
#[tokio::test]
async fn pooled_connection_closed_on_a_post_is_not_retried() -> Result<()> {
    let posts = Arc::new(AtomicUsize::new(0));
    let seen_posts = posts.clone();
    let b = raw_backend(move |seen| {
        if seen.method == "POST" {
            seen_posts.fetch_add(1, Ordering::SeqCst);
        }
        match seen.index {
            0 => Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"),
            _ => Reply::close(Vec::new()),
        }
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;
    let mut c = Client::connect(p.http).await?;
    assert_eq!(c.get("/").await?.status, 200);
    assert!(wait_idle(&p).await > 0);
    c.send(format!("POST /act HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await?;
    let r = c.response(false).await?;
    assert_eq!((r.status, r.text().as_str()), (502, "bad gateway\n"), "{}", r.head);
    assert_eq!(posts.load(Ordering::SeqCst), 1, "the POST reached the backend once");
    assert_eq!(b.connections.load(Ordering::SeqCst), 1);
    assert_eq!(c.get("/").await?.status, 200, "the client connection goes on");
    p.proxy.shutdown().await;
    Ok(())
}

/// The backend answers with keep-alive and closes the connection at once: the next
/// request finds the pooled connection closed (or dead) and is still answered.
#[tokio::test]
async fn pooled_connection_closed_after_the_response_is_not_a_502() -> Result<()> {
    let b = raw_backend(|_| Reply::close("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")).await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;
    let mut c = Client::connect(p.http).await?;
    for i in 0..5 {
        let r = c.get("/x").await?;
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "request {i}: {}", r.head);
        // Once the close has reached the proxy, or not: both must work.
        if i % 2 == 1 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(b.requests.load(Ordering::SeqCst), 5, "no request was answered twice");
    assert_eq!(requests_metric(&p, "2xx"), 5);
    p.proxy.shutdown().await;
    Ok(())
}

/// Like the FIN case, but the backend aborts the pooled connection (RST) once it has the
/// next request: it failed before any response byte, so it is retried too.
#[tokio::test]
async fn pooled_connection_reset_on_the_next_request_is_retried() -> Result<()> {
    let b = raw_backend(|seen| match seen.index {
        0 => Reply::keep("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst"),
        _ => Reply { parts: Vec::new(), then: Then::Reset },
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;
    let mut c = Client::connect(p.http).await?;
    for i in 0..3 {
        let r = c.get("/again").await?;
        assert_eq!((r.status, r.text().as_str()), (200, "first"), "request {i}: {}", r.head);
        assert!(wait_idle(&p).await > 0);
    }
    assert_eq!(requests_metric(&p, "2xx"), 3);
    p.proxy.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Hand-over to hyper

/// HTTP/1.0, chunked request bodies, `Expect: 100-continue` and h2c prior knowledge go
/// to hyper, and work. Hyper's bodyless requests (HTTP/1.0, h2c) still reach the backend
/// over the raw pool (`h1::bodyless`); the bodies go through hyper's client.
#[tokio::test]
async fn hand_over_paths_work() -> Result<()> {
    let (p, _world, _backends) = proxy_to_backend(HOST, "").await?;
    let url = |path: &str| format!("http://{}{path}", p.http);
    let host = format!("Host: {HOST}");

    let h10 = curl(&["--http1.0", "-H", &host, &url("/old")]).await?;
    assert_eq!((h10.status, h10.body.as_str(), h10.version.as_str()), (200, "c1 /old\n", "1"), "{}", h10.stderr);

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("body");
    let data: String = (0..300_000u32).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
    std::fs::write(&file, &data)?;
    let at_file = format!("@{}", file.display());

    let chunked =
        curl(&["-H", &host, "-H", "Transfer-Encoding: chunked", "--data-binary", &at_file, &url("/echo")]).await?;
    assert_eq!(chunked.status, 200, "{}", chunked.stderr);
    assert!(chunked.body == data, "chunked request body echoed: {} bytes", chunked.body.len());

    let expect = curl(&["-H", &host, "-H", "Expect: 100-continue", "--data-binary", &at_file, &url("/echo")]).await?;
    assert_eq!(expect.status, 200, "{}", expect.stderr);
    assert!(expect.body == data, "body after 100-continue echoed: {} bytes", expect.body.len());

    let h2c = curl(&["--http2-prior-knowledge", "-H", &host, &url("/h2")]).await?;
    assert_eq!((h2c.status, h2c.body.as_str(), h2c.version.as_str()), (200, "c1 /h2\n", "2"), "{}", h2c.stderr);

    assert!(wait_idle(&p).await >= 1, "hyper's bodyless requests use the raw pool");
    assert_eq!(requests_metric(&p, "2xx"), 4, "hyper's requests are counted the same");
    p.proxy.shutdown().await;
    Ok(())
}

/// A connection served by the fast path, then handed over mid-way (a chunked body), keeps
/// its order: the bytes already read go to hyper first.
#[tokio::test]
async fn hand_over_after_fast_path_requests_on_one_connection() -> Result<()> {
    let (p, _world, _backends) = proxy_to_backend(HOST, "").await?;
    let mut c = Client::connect(p.http).await?;
    assert_eq!(c.get("/fast").await?.text(), "c1 /fast\n");
    c.send(
        format!(
            "POST /echo HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n\
             GET /then HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
        )
        .as_bytes(),
    )
    .await?;
    let echoed = c.response(false).await?;
    assert_eq!(echoed.status, 200, "{}", echoed.head);
    let body = if echoed.header("transfer-encoding").is_some() {
        String::from_utf8_lossy(&decode_chunked(&echoed.body)?).into_owned()
    } else {
        echoed.text()
    };
    assert_eq!(body, "hello world");
    assert_eq!(c.response(false).await?.text(), "c1 /then\n", "the pipelined request after it");
    assert_eq!(c.get("/last").await?.text(), "c1 /last\n");
    p.proxy.shutdown().await;
    Ok(())
}

fn decode_chunked(mut wire: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = find(wire, b"\r\n").context("chunk size line")?;
        let line = std::str::from_utf8(&wire[..eol])?;
        let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)?;
        wire = &wire[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        out.extend_from_slice(wire.get(..size).context("chunk data")?);
        wire = wire.get(size + 2..).context("chunk end")?;
    }
}

// ---------------------------------------------------------------------------------------
// Backends that break the exchange

/// A `101 Switching Protocols` nobody asked for is a 502 (and counted as an error); the
/// client connection goes on.
#[tokio::test]
async fn unsolicited_101_is_502() -> Result<()> {
    let b = raw_backend(|_| {
        Reply::keep("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;
    let mut c = Client::connect(p.http).await?;
    let r = c.get("/").await?;
    assert_eq!((r.status, r.text().as_str()), (502, "bad gateway\n"), "{}", r.head);
    assert!(r.interim.is_empty(), "the 101 is not passed on: {:?}", r.interim);
    assert_eq!(c.get("/").await?.status, 502, "the client connection stays usable");
    assert_eq!(requests_metric(&p, "error"), 2);
    assert_eq!(requests_metric(&p, "2xx"), 0);
    p.proxy.shutdown().await;
    Ok(())
}

/// The backend closes inside a body (fewer bytes than `Content-Length`, or a chunked body
/// without its last chunk): the client gets what was sent and then the connection closes;
/// it does not wait for bytes that will never come.
#[tokio::test]
async fn backend_closing_mid_body_closes_the_client() -> Result<()> {
    let b = raw_backend(|seen| match seen.path.as_str() {
        "/length" => Reply::close("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789"),
        _ => Reply::close("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;
    let started = std::time::Instant::now();

    let mut c = Client::connect(p.http).await?;
    c.send(format!("GET /length HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await?;
    let head = c.head().await?;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n") && head.contains("\r\nContent-Length: 100\r\n"), "{head}");
    let rest = c.rest().await?;
    assert_eq!(rest, b"0123456789", "what the backend sent, then the close");

    let mut c = Client::connect(p.http).await?;
    c.send(format!("GET /chunked HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes()).await?;
    let head = c.head().await?;
    assert!(head.contains("\r\ntransfer-encoding: chunked\r\n"), "{head}");
    assert_eq!(c.rest().await?, b"5\r\nhello\r\n");

    assert!(started.elapsed() < Duration::from_secs(1), "closed at once, took {:?}", started.elapsed());
    let out = curl(&["-H", &format!("Host: {HOST}"), &format!("http://{}/length", p.http)]).await?;
    assert_eq!(out.body, "0123456789", "{}", out.stderr);
    assert!(out.stderr.contains("(18)"), "curl sees a partial transfer: {}", out.stderr);
    p.proxy.shutdown().await;
    Ok(())
}

/// A backend sending one informational head after another, past the response-head limit
/// (64 KiB including 1xx heads), is refused like an oversized head: 502.
#[tokio::test]
async fn endless_informational_heads_are_502() -> Result<()> {
    let b = raw_backend(|_| {
        let mut bytes = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(4000);
        bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        Reply::keep(bytes)
    })
    .await?;
    let (p, _world) = proxy_to(HOST, b.addr.ip(), b.addr.port(), "").await?;
    let mut c = Client::connect(p.http).await?;
    let r = c.get("/").await?;
    assert_eq!((r.status, r.interim.len()), (502, 0), "{}", r.head);
    p.proxy.shutdown().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Metrics and status

/// Fast-path requests count in `lb_requests` like hyper's, and the status shows the
/// upstream connection idle in the pool after them.
#[tokio::test]
async fn metrics_count_fast_path_requests_and_status_shows_the_pool() -> Result<()> {
    let (p, _world, _backends) = proxy_to_backend(HOST, "").await?;
    assert_eq!(idle_connections(&p), 0);
    let mut c = Client::connect(p.http).await?;
    for i in 0..5 {
        assert_eq!(c.get(&format!("/n{i}")).await?.status, 200);
    }
    let r = c.get("/status/404").await?;
    assert_eq!(r.status, 404);
    assert_eq!(requests_metric(&p, "2xx"), 5, "{}", p.metrics());
    assert_eq!(requests_metric(&p, "4xx"), 1, "{}", p.metrics());
    assert_eq!(wait_idle(&p).await, 1, "one upstream connection, idle: {}", p.proxy.status());
    // A second client connection while the first is idle reuses the pooled upstream one.
    let mut d = Client::connect(p.http).await?;
    assert_eq!(d.get("/other").await?.status, 200);
    assert_eq!(wait_idle(&p).await, 1, "{}", p.proxy.status());
    assert_eq!(requests_metric(&p, "2xx"), 6);
    p.proxy.shutdown().await;
    Ok(())
}
