//! Bodyless requests that hyper serves (HTTP/2 streams, HTTP/1.0 and the other hand-over
//! cases) go to the backend over the fast path's raw connections as well, instead of
//! through hyper's pooled client: no connection task and channel hop per request, and one
//! pool per backend for both paths. The response head becomes an `http::Response` and
//! the body is read from the raw connection as hyper polls it, decoding a chunked body
//! into data frames (trailers and 1xx heads are not passed on to these clients).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Response, Version};
use http_body::{Frame, SizeHint};
use meridian_config::lb::LbConfig;
use tokio::time::{Instant, Sleep};

use super::head::{self, Framing};
use super::{BodyState, Conn, READ_CHUNK, Raw, RelayError, UpReply, attempt};
use crate::balance::{Endpoint, InFlight};
use crate::body::{BoxError, IdleTimeout, RespBody};
use crate::exchange::{Sent, Transport};
use crate::headers;
use crate::retry::Active;

/// The transport for a bodyless request from hyper's path.
pub(crate) struct Bodyless {
    head: Vec<u8>,
    method: Method,
    cfg: Arc<LbConfig>,
    /// Stand-ins for the client side, which a bodyless request never reads.
    buf: BytesMut,
    io: tokio::io::Empty,
}

impl Bodyless {
    /// The HTTP/1.1 head for the backend, from request parts already rewritten by
    /// `headers::rewrite_request`.
    pub(crate) fn new(parts: &http::request::Parts, pq: &PathAndQuery, cfg: Arc<LbConfig>) -> Self {
        let mut head = Vec::with_capacity(512);
        head.extend_from_slice(parts.method.as_str().as_bytes());
        head.push(b' ');
        head.extend_from_slice(pq.as_str().as_bytes());
        head.extend_from_slice(b" HTTP/1.1\r\n");
        for (name, value) in &parts.headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"\r\n");
        Self { head, method: parts.method.clone(), cfg, buf: BytesMut::new(), io: tokio::io::empty() }
    }
}

impl Transport for Bodyless {
    type Reply = UpReply;

    async fn send(&mut self, ep: &Arc<Endpoint>, wait: Duration) -> Sent<UpReply> {
        let mut raw = Raw {
            up_head: &self.head,
            buf: &mut self.buf,
            io: &mut self.io,
            body: BodyState { left: 0, started: false },
            method: &self.method,
            cfg: &self.cfg,
        };
        attempt(ep, &mut raw, wait).await
    }
}

/// The backend's answer as a response for hyper; `None` when its head has a header
/// `http` refuses (the caller answers 502).
pub(crate) fn into_response(
    reply: UpReply,
    in_flight: InFlight,
    active: Active,
    idle: Duration,
) -> Option<Response<RespBody>> {
    let UpReply { conn, head: info, head_end } = reply;
    let heads = conn.buf.get(..head_end)?;
    // The final head is the last one; 1xx heads before it are dropped.
    let mut at = 0;
    let (version, headers) = loop {
        let mut slots = [httparse::EMPTY_HEADER; head::MAX_RESPONSE_HEADERS];
        let mut resp = httparse::Response::new(&mut slots);
        let Ok(httparse::Status::Complete(n)) = resp.parse(heads.get(at..)?) else { return None };
        at += n;
        if at >= heads.len() {
            let mut map = HeaderMap::with_capacity(resp.headers.len() + 2);
            for h in &*resp.headers {
                let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
                map.append(name, HeaderValue::from_bytes(h.value).ok()?);
            }
            let version = if resp.version == Some(0) { Version::HTTP_10 } else { Version::HTTP_11 };
            break (version, map);
        }
    };
    let mut headers = headers;
    headers::rewrite_response(&mut headers, version, false);
    if info.framing == Framing::Chunked {
        headers.remove(CONTENT_LENGTH);
    }
    let mut conn = conn;
    conn.buf.advance(head_end);
    let body = RawBody {
        conn: Some(conn),
        framing: info.framing,
        left: match info.framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        chunks: Default::default(),
        reusable: info.reusable,
        idle,
        timer: None,
        deadline: Instant::now() + idle,
        in_flight,
        _active: active,
    };
    let mut response = Response::new(RespBody::Raw(Box::new(body)));
    *response.status_mut() = info.status;
    *response.headers_mut() = headers;
    Some(response)
}

/// A response body read from a raw backend connection; the connection goes back to the
/// pool when the body ended as framed.
pub(crate) struct RawBody {
    /// `None` once the body ended.
    conn: Option<Conn>,
    framing: Framing,
    /// Bytes still to come of a `Content-Length` body.
    left: u64,
    chunks: super::chunked::Chunked,
    reusable: bool,
    idle: Duration,
    /// Created the first time the body has to wait for the backend.
    timer: Option<Pin<Box<Sleep>>>,
    deadline: Instant,
    in_flight: InFlight,
    _active: Active,
}

fn data(b: BytesMut) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
    Poll::Ready(Some(Ok(Frame::data(b.freeze()))))
}

impl RawBody {
    pub(crate) fn poll_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            let Some(conn) = self.conn.as_mut() else { return Poll::Ready(None) };
            let done = match self.framing {
                Framing::Empty => true,
                Framing::Length(_) => {
                    if self.left > 0 && !conn.buf.is_empty() {
                        let n = usize::try_from(self.left).unwrap_or(usize::MAX).min(conn.buf.len());
                        self.left -= n as u64;
                        return data(conn.buf.split_to(n));
                    }
                    self.left == 0
                }
                Framing::Chunked => {
                    let (skip, n) = self.chunks.next_data(&conn.buf).map_err(BoxError::from)?;
                    conn.buf.advance(skip);
                    if n > 0 {
                        return data(conn.buf.split_to(n));
                    }
                    self.chunks.is_done()
                }
                Framing::Close => {
                    if !conn.buf.is_empty() {
                        return data(conn.buf.split());
                    }
                    false
                }
            };
            if done {
                self.finish();
                return Poll::Ready(None);
            }
            conn.buf.reserve(READ_CHUNK);
            match tokio_util::io::poll_read_buf(Pin::new(&mut conn.io), cx, &mut conn.buf) {
                Poll::Ready(Ok(0)) if self.framing == Framing::Close => {
                    self.conn = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(RelayError::Truncated.into())));
                }
                Poll::Ready(Ok(_)) => self.deadline = Instant::now() + self.idle,
                Poll::Ready(Err(e)) => {
                    self.conn = None;
                    return Poll::Ready(Some(Err(e.into())));
                }
                Poll::Pending => return self.poll_idle(cx),
            }
        }
    }

    /// Pending until the idle timeout; then an error.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let deadline = self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        ready!(timer.as_mut().poll(cx));
        self.conn = None;
        Poll::Ready(Some(Err(IdleTimeout(self.idle).into())))
    }

    /// The body ended as framed (hyper may stop polling once `is_end_stream` says so).
    fn complete(&self) -> bool {
        match self.framing {
            Framing::Empty => true,
            Framing::Length(_) => self.left == 0,
            Framing::Chunked => self.chunks.is_done(),
            Framing::Close => false,
        }
    }

    /// Returns the connection to the pool if the body ended as framed.
    fn finish(&mut self) {
        let complete = self.complete();
        if let Some(conn) = self.conn.take()
            && complete
            && self.reusable
        {
            self.in_flight.endpoint().pool.put(conn, self.idle);
        }
    }

    pub(crate) fn is_end_stream(&self) -> bool {
        self.conn.is_none() || (self.complete() && self.framing != Framing::Chunked)
    }

    pub(crate) fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(_) => SizeHint::with_exact(self.left),
            Framing::Empty => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

impl Drop for RawBody {
    fn drop(&mut self) {
        self.finish();
    }
}
