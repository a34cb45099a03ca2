//! The HTTP/1.1 fast path: one task per client connection reads each request head,
//! picks a backend and exchanges the request with it over a pooled raw connection, then
//! relays the response, all in that one task.
//!
//! Why: hyper serving the client and hyper's pooled client talking to the backend spent
//! several times nginx's user-space CPU per request (bench/README, "Lessons kept out of
//! the code"): a header map built and rewritten per request, the client's connection
//! task and the channel hop to it, its pool's checkout. Here heads are parsed with
//! httparse into stack slots and copied out already rewritten, a pooled connection is a
//! pop from a per-backend stack, and the answer to a small request is one write.
//!
//! It takes what most traffic is: HTTP/1.1 requests with no body or a `Content-Length`
//! body (origin- or absolute-form), after the one validation step both paths share
//! (`crate::request`). Anything else — HTTP/1.0, chunked request bodies, `Expect`, upgrades
//! (WebSocket), the h2 prior-knowledge preface — hands the
//! connection, with the bytes already read, to hyper for the rest of its life. Retries,
//! priority levels, P2C, outlier ejection, the retry budget and the metrics are the
//! same code as the hyper path's ([`exchange::attempts`]).

mod bodyless;
pub(crate) mod chunked;
pub(crate) mod head;

use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::Shared;
use crate::balance::Endpoint;
use crate::exchange::{self, Attempted, Attempts, ClientFault, ConnInfo, Failure, Reply, Sent};
use crate::routes::normalize_host;

use crate::pool::{Conn, READ_CHUNK};
pub(crate) use bodyless::{Bodyless, into_response};
use chunked::Chunked;
use head::{Framing, Plan};

/// Request header slots parsed on the stack; `limits.max_headers` above this is capped.
const MAX_REQUEST_HEADERS: usize = 256;
/// Largest response head (status line, headers, and any 1xx heads before it) accepted
/// from a backend.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// How the fast path finished with a connection.
pub(crate) enum End<S> {
    Closed,
    /// Serve the rest with hyper; the bytes already read come first.
    HandOver(Prefixed<S>),
}

/// What to do with the bytes at the front of the client buffer.
enum Step {
    /// A request head of `len` bytes to forward.
    Forward {
        req: Req,
        len: usize,
    },
    /// Answer locally; `len` bytes of head to skip.
    Local {
        status: StatusCode,
        text: &'static str,
        close: bool,
        len: usize,
    },
    More,
    HandOver,
    /// A version httparse does not know: see [`minor_version_fix`].
    Version,
}

/// The owned facts of a forwarded request (the head itself is in the upstream buffer).
struct Req {
    method: Method,
    route: Arc<crate::routes::Route>,
    length: u64,
    close: bool,
}

/// Serves HTTP/1.1 requests on a client connection until it closes or needs hyper.
pub(crate) async fn serve<S>(mut io: S, info: &ConnInfo, shared: &Shared, shutdown: &CancellationToken) -> End<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let mut buf = BytesMut::with_capacity(8 * 1024);
    let mut up_head: Vec<u8> = Vec::with_capacity(1024);
    let mut out: Vec<u8> = Vec::with_capacity(4 * 1024);
    let mut first = true;
    loop {
        let cfg = shared.config.load_full();
        if buf.is_empty() {
            // Between requests: the first may take `header_read` to start, later ones
            // the keep-alive idle time. Shutdown closes an idle connection at once.
            let wait = if first { cfg.timeouts.header_read } else { cfg.timeouts.idle }.as_std();
            if shutdown.is_cancelled() {
                return End::Closed;
            }
            let read = tokio::select! {
                r = tokio::time::timeout(wait, io.read_buf(&mut buf)) => r,
                () = shutdown.cancelled() => return End::Closed,
            };
            if !matches!(read, Ok(Ok(n)) if n > 0) {
                return End::Closed;
            }
        }
        first = false;
        // The whole head must arrive within `header_read` of its first byte (slowloris).
        let head_deadline = Instant::now() + cfg.timeouts.header_read.as_std();
        let mut patched = false;
        let step = loop {
            let step = classify(&buf, info, shared, &cfg, &mut up_head);
            if matches!(step, Step::Version) && !patched {
                patched = true;
                match minor_version_fix(&mut buf) {
                    VersionFix::Patched => continue,
                    VersionFix::Unsupported => {
                        break local(StatusCode::HTTP_VERSION_NOT_SUPPORTED, "HTTP version not supported\n");
                    }
                    VersionFix::Bad => break local(StatusCode::BAD_REQUEST, "malformed request\n"),
                }
            }
            if !matches!(step, Step::More) {
                break step;
            }
            buf.reserve(4096);
            match tokio::time::timeout_at(head_deadline, io.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return End::Closed,
            }
        };
        let (req, len) = match step {
            Step::Forward { req, len } => (req, len),
            Step::Local { status, text, close, len } => {
                buf.advance(len);
                out.clear();
                head::write_local(status, text, close, &mut out);
                if io.write_all(&out).await.is_err() || io.flush().await.is_err() || close {
                    let _ = io.shutdown().await;
                    return End::Closed;
                }
                continue;
            }
            Step::HandOver => return End::HandOver(Prefixed { prefix: buf.freeze(), io }),
            Step::More | Step::Version => return End::Closed,
        };
        buf.advance(len);
        let keep_open = exchange(&mut io, &mut buf, &up_head, &mut out, req, &cfg, shutdown).await;
        if !keep_open {
            let _ = io.shutdown().await;
            return End::Closed;
        }
    }
}

/// A local answer that closes the connection.
fn local(status: StatusCode, text: &'static str) -> Step {
    Step::Local { status, text, close: true, len: 0 }
}

/// Parses the buffered head, if whole, and decides what to do with it.
fn classify(
    buf: &[u8],
    info: &ConnInfo,
    shared: &Shared,
    cfg: &meridian_config::lb::LbConfig,
    up_head: &mut Vec<u8>,
) -> Step {
    let limit = cfg.limits.max_headers.clamp(1, MAX_REQUEST_HEADERS);
    let mut slots: [MaybeUninit<httparse::Header<'_>>; MAX_REQUEST_HEADERS] =
        [const { MaybeUninit::uninit() }; MAX_REQUEST_HEADERS];
    let max = cfg.limits.max_header_bytes;
    let bad = local;
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, slots.get_mut(..limit).unwrap_or_default()) {
        Ok(httparse::Status::Complete(len)) if len > max => return too_large(buf, max),
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() > max => return too_large(buf, max),
        Ok(httparse::Status::Partial) => return Step::More,
        Err(httparse::Error::TooManyHeaders) => {
            return bad(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "too many request headers\n");
        }
        // HTTP/2 with prior knowledge starts `PRI * HTTP/2.0`: hyper's auto server takes it.
        Err(_) if buf.starts_with(b"PRI * HTTP/2.0") => return Step::HandOver,
        Err(httparse::Error::Version) => return Step::Version,
        Err(_) => return bad(StatusCode::BAD_REQUEST, "malformed request\n"),
    };
    match head::plan(&req, info.peer.ip(), info.tls, up_head) {
        Plan::HandOver => Step::HandOver,
        Plan::Local { status, text } => Step::Local { status, text, close: true, len },
        Plan::Forward(r) => {
            let route = shared.routes.load().lookup(&normalize_host(r.host), r.path).cloned();
            match route {
                Some(route) => Step::Forward {
                    req: Req { method: r.method, route, length: r.content_length, close: r.close },
                    len,
                },
                // A body not read would be taken for the next request: close instead.
                None => Step::Local {
                    status: StatusCode::NOT_FOUND,
                    text: "no route for this host\n",
                    close: r.close || r.content_length > 0,
                    len,
                },
            }
        }
    }
}

/// A head over the limit: 414 when the request line alone is (RFC 9112 §3), else 431.
fn too_large(buf: &[u8], max: usize) -> Step {
    let line = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let (status, text) = if line > max {
        (StatusCode::URI_TOO_LONG, "request target too long\n")
    } else {
        (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large\n")
    };
    local(status, text)
}

enum VersionFix {
    /// `HTTP/1.x` with x above 1, now read as HTTP/1.1.
    Patched,
    /// HTTP/2 or later on an HTTP/1 request line: 505.
    Unsupported,
    Bad,
}

/// httparse knows only HTTP/1.0 and 1.1. A later 1.x minor version is served as 1.1
/// (RFC 9110 §2.5: a recipient treats a higher minor version as the highest it
/// supports); a later major version gets 505.
fn minor_version_fix(buf: &mut BytesMut) -> VersionFix {
    let Some(eol) = buf.iter().position(|&b| b == b'\n') else { return VersionFix::Bad };
    let line_end = if eol > 0 && buf.get(eol - 1) == Some(&b'\r') { eol - 1 } else { eol };
    let Some(at) = line_end.checked_sub(8) else { return VersionFix::Bad };
    let Some(version) = buf.get_mut(at..line_end) else { return VersionFix::Bad };
    match *version {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', ref mut minor @ b'2'..=b'9'] => {
            *minor = b'1';
            VersionFix::Patched
        }
        [b'H', b'T', b'T', b'P', b'/', b'2'..=b'9', b'.', b'0'..=b'9'] => VersionFix::Unsupported,
        _ => VersionFix::Bad,
    }
}

/// A backend's response head read from a raw connection.
pub(crate) struct UpReply {
    conn: Conn,
    head: head::Response,
    /// `conn.buf[..head_end]` holds the 1xx heads (if any) and the final head.
    head_end: usize,
}

impl Reply for UpReply {
    fn status(&self) -> StatusCode {
        self.head.status
    }
}

/// One request: attempts against the backends, then the response relayed. Returns
/// whether the client connection stays open.
async fn exchange<S>(
    io: &mut S,
    buf: &mut BytesMut,
    up_head: &[u8],
    out: &mut Vec<u8>,
    req: Req,
    cfg: &meridian_config::lb::LbConfig,
    shutdown: &CancellationToken,
) -> bool
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let start = Instant::now();
    let route = &req.route;
    let plan = Attempts {
        cfg,
        route,
        deadline: start + cfg.timeouts.overall.as_std(),
        idempotent: exchange::is_idempotent(&req.method),
        bodyless: req.length == 0,
    };
    let active = route.upstream.budget.request();
    let mut raw =
        Raw { up_head, buf, io, body: BodyState { left: req.length, started: false }, method: &req.method, cfg };
    let attempted = exchange::attempts(&plan, &mut raw).await;
    let (io, body) = (raw.io, raw.body);
    let (reply, in_flight) = match attempted {
        Attempted::Reply { reply, in_flight } => (reply, in_flight),
        failed => {
            route.stats.record(None, start.elapsed().as_secs_f64());
            let Some((status, text)) = failed.local_parts() else { return false };
            if matches!(failed, Attempted::Client(_)) {
                // What follows on the connection cannot be told from the rest of the body.
                out.clear();
                head::write_local(status, text, true, out);
                let _ = io.write_all(out).await;
                return false;
            }
            // An unread body would be taken for the next request: close after answering.
            let close = req.close || body.left > 0 || shutdown.is_cancelled();
            out.clear();
            head::write_local(status, text, close, out);
            return io.write_all(out).await.is_ok() && io.flush().await.is_ok() && !close;
        }
    };
    route.stats.record(Some(reply.head.status), start.elapsed().as_secs_f64());
    let UpReply { mut conn, head: resp, head_end } = reply;
    let close = req.close || shutdown.is_cancelled() || resp.framing == Framing::Close;
    out.clear();
    write_heads(conn.buf.get(..head_end).unwrap_or_default(), resp.framing, close, out);
    conn.buf.advance(head_end);
    let idle = cfg.timeouts.idle.as_std();
    let relayed = relay(io, &mut conn, resp.framing, out, idle).await;
    match relayed {
        Ok(whole) => {
            if whole && resp.reusable {
                in_flight.endpoint().pool.put(conn, idle);
            }
        }
        Err(e) => {
            tracing::debug!(backend = %in_flight.endpoint().addr, error = %e, "response relay ended early");
            return false;
        }
    }
    drop((in_flight, active));
    !close
}

/// How much of the client's request body is still to be read.
struct BodyState {
    left: u64,
    /// Some of it left the client buffer: the request cannot be sent again.
    started: bool,
}

/// Why sending a request failed.
enum SendError {
    Client(ClientFault),
    Upstream(io::Error),
}

/// The fast path's transport: the rewritten head and the client's body over a pooled
/// (or new) raw connection.
struct Raw<'a, S> {
    up_head: &'a [u8],
    /// The client's buffer: the start of the body, and maybe of the next request.
    buf: &'a mut BytesMut,
    io: &'a mut S,
    body: BodyState,
    method: &'a Method,
    cfg: &'a meridian_config::lb::LbConfig,
}

impl<S: AsyncRead + Unpin + Send> exchange::Transport for Raw<'_, S> {
    type Reply = UpReply;

    async fn send(&mut self, ep: &Arc<Endpoint>, wait: Duration) -> Sent<UpReply> {
        attempt(ep, self, wait).await
    }
}

/// One attempt: a pooled (or new) connection, the request, then the response head
/// within `wait`.
async fn attempt<S: AsyncRead + Unpin>(ep: &Arc<Endpoint>, raw: &mut Raw<'_, S>, wait: Duration) -> Sent<UpReply> {
    let Raw { up_head, buf, io, body, method, cfg } = raw;
    if body.started {
        return Sent::Unsendable;
    }
    let idle = cfg.timeouts.idle.as_std();
    let mut pooled = ep.pool.take(idle);
    loop {
        let mut conn = match pooled.take() {
            Some(c) => c,
            None => match ep.pool.connect(ep.addr, cfg.timeouts.connect.as_std()).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(backend = %ep.addr, error = %e, "upstream connect failed");
                    return Sent::Failed(Failure::Connect);
                }
            },
        };
        // A pooled connection the backend had already closed fails the write: the request
        // did not reach it, and goes once more on a new connection.
        let reused = conn.reused;
        match send(&mut conn, up_head, buf, io, body, cfg).await {
            Ok(()) => {}
            Err(SendError::Client(fault)) => return Sent::Client(fault),
            Err(SendError::Upstream(_)) if reused && !body.started => continue,
            Err(SendError::Upstream(e)) => {
                tracing::debug!(backend = %ep.addr, error = %e, "sending upstream failed");
                return Sent::Failed(Failure::Upstream);
            }
        }
        return match tokio::time::timeout(wait, read_head(&mut conn, method)).await {
            Err(_) => Sent::Failed(Failure::Timeout),
            Ok(Ok((head, head_end))) => Sent::Reply(UpReply { conn, head, head_end }),
            // Closed without a byte of answer: the backend timed the idle connection out
            // as the request arrived, and its other idle connections are likely gone
            // too. The backend may have read the request: sending it again is a retry.
            Ok(Err(HeadError::Closed)) if reused && !body.started && exchange::is_idempotent(method) => {
                ep.pool.clear();
                Sent::Failed(Failure::Reused)
            }
            Ok(Err(e)) => {
                tracing::debug!(backend = %ep.addr, error = %e, "bad response from backend");
                Sent::Failed(Failure::Upstream)
            }
        };
    }
}

/// Writes the request head and streams its `Content-Length` body from the client. A
/// client pause over `body_read` is the client's fault; a backend that stops reading
/// for `idle` is the backend's.
async fn send<S>(
    conn: &mut Conn,
    up_head: &[u8],
    buf: &mut BytesMut,
    client: &mut S,
    body: &mut BodyState,
    cfg: &meridian_config::lb::LbConfig,
) -> Result<(), SendError>
where
    S: AsyncRead + Unpin,
{
    let idle = cfg.timeouts.idle.as_std();
    let write = async |conn: &mut Conn, data: &[u8]| match tokio::time::timeout(idle, conn.io.write_all(data)).await {
        Ok(r) => r.map_err(SendError::Upstream),
        Err(_) => Err(SendError::Upstream(io::Error::new(io::ErrorKind::TimedOut, "backend stopped reading"))),
    };
    write(conn, up_head).await?;
    while body.left > 0 {
        if buf.is_empty() {
            buf.reserve(READ_CHUNK);
            match tokio::time::timeout(cfg.timeouts.body_read.as_std(), client.read_buf(buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) => return Err(SendError::Client(ClientFault::Gone)),
                Err(_) => return Err(SendError::Client(ClientFault::SlowBody)),
            }
        }
        let take = usize::try_from(body.left).unwrap_or(usize::MAX).min(buf.len());
        body.started = true;
        let chunk = buf.split_to(take);
        body.left -= take as u64;
        write(conn, &chunk).await?;
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum HeadError {
    #[error("connection closed before a response")]
    Closed,
    #[error("connection closed inside the response head")]
    Truncated,
    #[error("response head over {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    #[error("malformed response head: {0}")]
    Parse(httparse::Error),
    #[error(transparent)]
    Bad(#[from] head::BadResponse),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads up to the end of the final response head (after any 1xx heads); returns it
/// and where it ends in `conn.buf`.
async fn read_head(conn: &mut Conn, method: &Method) -> Result<(head::Response, usize), HeadError> {
    let mut start = 0;
    loop {
        if conn.buf.len() > start {
            let mut slots = [httparse::EMPTY_HEADER; head::MAX_RESPONSE_HEADERS];
            let mut resp = httparse::Response::new(&mut slots);
            match resp.parse(conn.buf.get(start..).unwrap_or_default()) {
                // The limit counts the 1xx heads too: a backend sending them without end
                // would otherwise grow the buffer until the first-byte timeout.
                Ok(httparse::Status::Complete(n)) if start + n > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::TooLarge);
                }
                Ok(httparse::Status::Complete(n)) => {
                    let info = resp.code.is_some_and(|c| (100..200).contains(&c) && c != 101);
                    if info {
                        start += n;
                        continue;
                    }
                    return Ok((head::response(&resp, method)?, start + n));
                }
                Ok(httparse::Status::Partial) if conn.buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(HeadError::TooLarge);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(HeadError::Parse(e)),
            }
        }
        conn.buf.reserve(READ_CHUNK);
        let read = match conn.io.read_buf(&mut conn.buf).await {
            // A reset before any byte of an answer is a close too: a backend that closes
            // an idle connection with the request already unread in its socket buffer
            // sends RST, not FIN.
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && conn.buf.is_empty() => 0,
            r => r?,
        };
        if read == 0 {
            return Err(if conn.buf.is_empty() { HeadError::Closed } else { HeadError::Truncated });
        }
    }
}

/// Rewrites the 1xx heads (passed on, RFC 9110 §15.2) and the final head for the client.
fn write_heads(heads: &[u8], framing: Framing, close: bool, out: &mut Vec<u8>) {
    let mut at = 0;
    while at < heads.len() {
        let mut slots = [httparse::EMPTY_HEADER; head::MAX_RESPONSE_HEADERS];
        let mut resp = httparse::Response::new(&mut slots);
        let Ok(httparse::Status::Complete(n)) = resp.parse(heads.get(at..).unwrap_or_default()) else { return };
        at += n;
        let last = at >= heads.len();
        head::write_response(&resp, if last { framing } else { Framing::Empty }, last && close, out);
    }
}

#[derive(Debug, thiserror::Error)]
enum RelayError {
    #[error("backend closed the connection inside the body")]
    Truncated,
    #[error("backend sent nothing for {0:?}")]
    Idle(Duration),
    #[error(transparent)]
    Chunk(#[from] chunked::BadChunk),
    #[error("backend: {0}")]
    Upstream(io::Error),
    #[error("client: {0}")]
    Client(io::Error),
}

/// Sends the heads in `out` and the body after them, as the framing delimits it.
/// Returns whether the body ended as framed (the connection may then be reused).
async fn relay<S>(
    client: &mut S,
    conn: &mut Conn,
    framing: Framing,
    out: &mut Vec<u8>,
    idle: Duration,
) -> Result<bool, RelayError>
where
    S: AsyncWrite + Unpin,
{
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    let mut chunks = Chunked::default();
    loop {
        let take = match framing {
            Framing::Empty => 0,
            Framing::Length(_) | Framing::Close => usize::try_from(left).unwrap_or(usize::MAX).min(conn.buf.len()),
            Framing::Chunked => chunks.scan(&conn.buf)?,
        };
        let body = conn.buf.split_to(take);
        if framing != Framing::Close {
            left -= take as u64;
        }
        // The heads and the first bytes of the body go in one write.
        let written = if out.is_empty() {
            client.write_all(&body).await
        } else {
            out.extend_from_slice(&body);
            let r = client.write_all(out).await;
            out.clear();
            r
        };
        written.map_err(RelayError::Client)?;
        let done = match framing {
            Framing::Empty => true,
            Framing::Length(_) => left == 0,
            Framing::Chunked => chunks.is_done(),
            Framing::Close => false,
        };
        if done {
            break;
        }
        conn.buf.reserve(READ_CHUNK);
        let n = match tokio::time::timeout(idle, conn.io.read_buf(&mut conn.buf)).await {
            Err(_) => return Err(RelayError::Idle(idle)),
            Ok(Err(e)) => return Err(RelayError::Upstream(e)),
            Ok(Ok(n)) => n,
        };
        if n == 0 {
            if framing == Framing::Close {
                client.flush().await.map_err(RelayError::Client)?;
                return Ok(false);
            }
            return Err(RelayError::Truncated);
        }
    }
    client.flush().await.map_err(RelayError::Client)?;
    Ok(true)
}

/// A connection with bytes already read in front of it.
pub(crate) struct Prefixed<S> {
    prefix: Bytes,
    io: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(out.remaining());
            out.put_slice(&this.prefix.split_to(n));
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.io).poll_read(cx, out)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, data)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
