//! A recording HTTP/1.1 origin server: the backend of request-smuggling tests.
//!
//! It records, per connection, the exact bytes a proxy sent it and every request it
//! parsed from them (strictly: head by httparse plus CRLF-only line endings, then a
//! `Content-Length` or chunked body), and answers each with `200` and a body naming the
//! request line it saw (`seen: GET /x HTTP/1.1`). What it cannot parse is recorded as a
//! [`ParseError`] (evidence that the proxy forwarded something ambiguous), answered
//! `400` and the connection closed. Connections that send nothing (health probes) leave
//! no trace.
//!
//! Tests call [`RecordingBackend::take`] after each case: it returns everything since the
//! previous call, so one backend serves a whole corpus while pooled proxy connections to
//! it stay open.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::wire::{self, Chunked, show};

/// How often connection threads look at the stop flag.
const POLL: Duration = Duration::from_millis(50);
/// How often the accept loop looks for a connection: short against any test's timing.
const ACCEPT_POLL: Duration = Duration::from_millis(2);
/// A proxy that stops reading our (small) answers is stuck; give up on it.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Heads larger than this are an error rather than a wait for more bytes.
const MAX_HEAD: usize = 256 * 1024;
/// Header lines per request; more is an error (a proxy should have refused).
const MAX_HEADERS: usize = 256;

/// One request the backend parsed.
#[derive(Debug, Clone)]
pub struct Request {
    /// Which connection (in accept order) it came on.
    pub conn: u64,
    pub method: String,
    pub target: String,
    /// The minor version: `HTTP/1.<version>`.
    pub version: u8,
    /// Header lines as received, in order (names as sent, values as bytes).
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Request {
    /// `METHOD target HTTP/1.x`.
    pub fn line(&self) -> String {
        format!("{} {} HTTP/1.{}", self.method, self.target, self.version)
    }

    /// Values of every line named `name` (case-insensitive), in order.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
}

/// Bytes the backend could not take as a well-framed request.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub conn: u64,
    pub reason: String,
    /// The unparsed bytes, from where the bad request started.
    pub bytes: Vec<u8>,
}

/// Everything the backend saw between two [`RecordingBackend::take`] calls.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Requests parsed, in the order they completed.
    pub requests: Vec<Request>,
    pub errors: Vec<ParseError>,
    /// Bytes received per connection (connections that sent nothing are absent).
    pub raw: BTreeMap<u64, Vec<u8>>,
    /// Connections holding bytes that do not form a whole request yet, and how many.
    pub pending: BTreeMap<u64, usize>,
}

impl Recording {
    /// Nothing at all reached the backend.
    pub fn is_empty(&self) -> bool {
        self.raw.values().all(Vec::is_empty)
    }

    /// Requests, errors and pending bytes in one line, for test output.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "nothing".into();
        }
        let mut parts = Vec::new();
        if !self.requests.is_empty() {
            let lines: Vec<_> = self.requests.iter().map(Request::line).collect();
            parts.push(format!("{} req [{}]", self.requests.len(), lines.join(" | ")));
        }
        for e in &self.errors {
            parts.push(format!("parse error: {} in {:?}", e.reason, show(&e.bytes)));
        }
        for (conn, n) in &self.pending {
            parts.push(format!("{n} bytes pending on conn {conn}"));
        }
        parts.join("; ")
    }

    /// The raw bytes of every connection, for failure messages.
    pub fn raw_text(&self) -> String {
        self.raw.iter().map(|(c, b)| format!("conn {c}: {}", show(b))).collect::<Vec<_>>().join("\n")
    }
}

#[derive(Default)]
struct State {
    current: Recording,
    last_activity: Option<Instant>,
    next_conn: u64,
}

struct Shared {
    state: Mutex<State>,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking connection thread must not hide what was recorded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running backend; stops when dropped.
pub struct RecordingBackend {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl RecordingBackend {
    /// Listens on a free loopback address (see [`crate::free_addr`]).
    pub fn start() -> Result<Self> {
        let listener = bind_free()?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let shared = Arc::new(Shared { state: Mutex::default(), stop: AtomicBool::new(false) });
        let s = shared.clone();
        let accept = std::thread::Builder::new()
            .name(format!("recorder {addr}"))
            .spawn(move || accept_loop(&listener, &s))
            .context("spawning the recording backend")?;
        Ok(Self { addr, shared, accept: Some(accept) })
    }

    /// Everything recorded since the previous call, after the backend has been quiet for
    /// `quiet` (at most one second more), so bytes in flight land in this call.
    pub fn take(&self, quiet: Duration) -> Recording {
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let last = self.shared.lock().last_activity;
            let idle = last.map(|t| t.elapsed()).unwrap_or(Duration::MAX);
            if idle >= quiet || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(quiet.saturating_sub(idle).min(Duration::from_millis(20)));
        }
        let mut st = self.shared.lock();
        let mut out = std::mem::take(&mut st.current);
        // Partial requests stay pending: the next recording still shows them.
        st.current.pending = out.pending.clone();
        // Only connections that received bytes in this recording: a partial request
        // left by an earlier case is not this case's doing.
        let raw = &out.raw;
        out.pending.retain(|c, n| *n > 0 && raw.contains_key(c));
        out
    }
}

impl Drop for RecordingBackend {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

fn bind_free() -> Result<TcpListener> {
    let mut last = None;
    for _ in 0..20 {
        match TcpListener::bind(crate::free_addr()) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map(anyhow::Error::from).unwrap_or_else(|| anyhow::anyhow!("no address")))
        .context("binding the recording backend")
}

/// Accepts until stopped; the listener is non-blocking so the stop flag is seen within
/// [`ACCEPT_POLL`] even if no connection ever comes.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    while !shared.stop.load(Ordering::Relaxed) {
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            // Nothing to accept, or an error that a retry may clear (EMFILE, an aborted
            // handshake): look again shortly.
            Err(_) => {
                std::thread::sleep(ACCEPT_POLL);
                continue;
            }
        };
        if stream.set_nonblocking(false).is_err() {
            continue;
        }
        let id = {
            let mut st = shared.lock();
            st.next_conn += 1;
            st.next_conn
        };
        let s = shared.clone();
        let _ = std::thread::Builder::new().name(format!("recorder conn {id}")).spawn(move || {
            Conn { id, stream, shared: s, buf: Vec::new() }.serve();
        });
    }
}

/// One accepted connection.
struct Conn {
    id: u64,
    stream: TcpStream,
    shared: Arc<Shared>,
    /// Received bytes not yet consumed by a complete request.
    buf: Vec<u8>,
}

/// What one parse attempt over the buffer found.
enum Parsed {
    Partial,
    Complete { req: Request, used: usize, close: bool },
    Invalid(String),
}

impl Conn {
    fn serve(mut self) {
        if self.stream.set_read_timeout(Some(POLL)).is_err()
            || self.stream.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
        {
            return;
        }
        let mut chunk = vec![0u8; 64 * 1024];
        while !self.shared.stop.load(Ordering::Relaxed) {
            match self.stream.read(&mut chunk) {
                Ok(0) => return self.eof(),
                Ok(n) => {
                    self.received(&chunk[..n]);
                    if !self.drain() {
                        return;
                    }
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted) => {}
                Err(_) => return self.eof(),
            }
        }
    }

    fn received(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        let mut st = self.shared.lock();
        st.current.raw.entry(self.id).or_default().extend_from_slice(bytes);
        st.last_activity = Some(Instant::now());
    }

    /// Parses and answers every complete request in the buffer; false when the
    /// connection must close.
    fn drain(&mut self) -> bool {
        loop {
            let keep = match parse(self.id, &self.buf) {
                Parsed::Partial => {
                    let n = self.buf.len();
                    self.shared.lock().current.pending.insert(self.id, n);
                    return true;
                }
                Parsed::Invalid(reason) => {
                    self.record_error(reason.clone());
                    let body = format!("backend parse error: {reason}");
                    let _ = write!(
                        self.stream,
                        "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    false
                }
                Parsed::Complete { req, used, close } => {
                    let body = format!("seen: {}", req.line());
                    self.buf.drain(..used);
                    {
                        let mut st = self.shared.lock();
                        st.current.requests.push(req);
                        st.current.pending.insert(self.id, self.buf.len());
                        st.last_activity = Some(Instant::now());
                    }
                    let conn = if close { "Connection: close\r\n" } else { "" };
                    let sent = write!(
                        self.stream,
                        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{conn}\r\n{body}",
                        body.len()
                    );
                    sent.is_ok() && !close
                }
            };
            if !keep {
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
                self.shared.lock().current.pending.remove(&self.id);
                return false;
            }
        }
    }

    /// The peer closed: bytes left over are a request it never finished. Reported only
    /// when some of them arrived since the last `take` (earlier ones were shown pending).
    fn eof(&mut self) {
        let mut st = self.shared.lock();
        st.current.pending.remove(&self.id);
        let fresh = st.current.raw.get(&self.id).is_some_and(|b| !b.is_empty());
        if !self.buf.is_empty() && fresh {
            let reason = match parse(self.id, &self.buf) {
                Parsed::Invalid(r) => r,
                _ => "connection closed inside a request".into(),
            };
            st.current.errors.push(ParseError { conn: self.id, reason, bytes: std::mem::take(&mut self.buf) });
            st.last_activity = Some(Instant::now());
        }
    }

    fn record_error(&mut self, reason: String) {
        let mut st = self.shared.lock();
        st.current.errors.push(ParseError { conn: self.id, reason, bytes: std::mem::take(&mut self.buf) });
        st.last_activity = Some(Instant::now());
    }
}

/// Parses one request from the start of `buf`.
fn parse(conn: u64, buf: &[u8]) -> Parsed {
    let mut slots = vec![httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut r = httparse::Request::new(&mut slots);
    let head_len = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => return Parsed::Invalid("head too large".into()),
        Ok(httparse::Status::Partial) => {
            return match wire::bare_line_ending(buf) {
                Some(e) => Parsed::Invalid(e),
                None => Parsed::Partial,
            };
        }
        Err(e) => return Parsed::Invalid(format!("httparse: {e}")),
    };
    if let Some(e) = wire::bare_line_ending(&buf[..head_len]) {
        return Parsed::Invalid(e);
    }
    let (Some(method), Some(target), Some(version)) = (r.method, r.path, r.version) else {
        return Parsed::Invalid("incomplete request line".into());
    };
    let headers: Vec<(String, Vec<u8>)> = r.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect();
    let mut req =
        Request { conn, method: method.to_owned(), target: target.to_owned(), version, headers, body: Vec::new() };
    let close = wants_close(&req);
    let rest = &buf[head_len..];
    let used = match framing(&req) {
        Err(e) => return Parsed::Invalid(e),
        Ok(Framing::None) => 0,
        Ok(Framing::Length(n)) => {
            if rest.len() < n {
                return Parsed::Partial;
            }
            req.body = rest[..n].to_vec();
            n
        }
        Ok(Framing::Chunked) => match wire::decode_chunked(rest) {
            Chunked::Partial => return Parsed::Partial,
            Chunked::Invalid(e) => return Parsed::Invalid(format!("chunked body: {e}")),
            Chunked::Complete { body, used } => {
                req.body = body;
                used
            }
        },
    };
    Parsed::Complete { req, used: head_len + used, close }
}

enum Framing {
    None,
    Length(usize),
    Chunked,
}

/// RFC 9112 §6, strictly: one `Transfer-Encoding: chunked` line, or one all-digits
/// `Content-Length` line, never both.
fn framing(req: &Request) -> Result<Framing, String> {
    let te = req.values("transfer-encoding");
    let cl = req.values("content-length");
    match (te.as_slice(), cl.as_slice()) {
        ([], []) => Ok(Framing::None),
        ([], [v]) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
            v.parse().map(Framing::Length).map_err(|e| format!("Content-Length {v:?}: {e}"))
        }
        ([], _) => Err(format!("bad Content-Length lines {cl:?}")),
        ([v], []) if v.trim().eq_ignore_ascii_case("chunked") => Ok(Framing::Chunked),
        _ => Err(format!("ambiguous framing: Transfer-Encoding {te:?}, Content-Length {cl:?}")),
    }
}

fn wants_close(req: &Request) -> bool {
    let tokens: Vec<String> = req
        .values("connection")
        .iter()
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()).collect::<Vec<_>>())
        .collect();
    if req.version == 0 { !tokens.iter().any(|t| t == "keep-alive") } else { tokens.iter().any(|t| t == "close") }
}
