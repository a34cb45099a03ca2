//! Bodyless requests that hyper serves (HTTP/2 streams, HTTP/1.0 and the other hand-over
//! cases) go to the backend over the fast path's raw connections as well, instead of
//! through hyper's pooled client: no connection task and channel hop per request, and one
//! pool per backend for both paths. The response head becomes an `http::Response` and
//! the body is read from the raw connection as hyper polls it, decoding a chunked body
//! into data frames (trailers and 1xx heads are not passed on to these clients).

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::header::{CONTENT_LENGTH, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Method, Response, Version};
use meridian_config::lb::LbConfig;

use super::head::{self, Framing};
use super::{BodyState, Raw, UpReply, attempt};
use crate::balance::{Endpoint, InFlight};
use crate::body::{RawBody, RespBody};
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
    let body = RawBody::new(conn, info.framing, info.reusable, idle, in_flight, active);
    let mut response = Response::new(RespBody::Raw(Box::new(body)));
    *response.status_mut() = info.status;
    *response.headers_mut() = headers;
    Some(response)
}
