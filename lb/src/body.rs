//! Body types of the data path. Bodies stream frame by frame in both directions; nothing
//! is buffered whole.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::balance::InFlight;
use crate::retry::Active;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body sent upstream: nothing (which lets the request be retried) or the
/// client's stream.
pub(crate) enum ReqBody {
    Empty,
    Stream(Incoming),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Stream(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Stream(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Stream(b) => b.size_hint(),
        }
    }
}

/// A response body for the client: a short local one, or a backend's stream.
pub(crate) enum RespBody {
    Local(Option<Bytes>),
    Upstream(Box<Streaming>),
    /// A backend's body read from a raw pooled connection (`h1::bodyless`).
    Raw(Box<crate::h1::RawBody>),
}

/// A backend's response body, with the idle timeout and the guards that count the
/// request as in flight until the last byte.
pub(crate) struct Streaming {
    pub(crate) body: Incoming,
    pub(crate) idle: Duration,
    pub(crate) timer: Pin<Box<Sleep>>,
    /// When the body times out; moved forward by every frame. The timer is only reset
    /// when it fires early, which keeps timer-wheel work off the per-frame path.
    pub(crate) deadline: Instant,
    pub(crate) _in_flight: InFlight,
    pub(crate) _active: Active,
}

impl RespBody {
    pub(crate) fn local(text: &'static str) -> Self {
        RespBody::Local(Some(Bytes::from_static(text.as_bytes())))
    }

    pub(crate) fn empty() -> Self {
        RespBody::Local(None)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("backend sent nothing for {0:?}")]
pub(crate) struct IdleTimeout(pub(crate) Duration);

impl Body for RespBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            RespBody::Local(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            RespBody::Raw(r) => r.poll_frame(cx),
            RespBody::Upstream(s) => {
                if let Poll::Ready(frame) = Pin::new(&mut s.body).poll_frame(cx) {
                    s.deadline = Instant::now() + s.idle;
                    return Poll::Ready(frame.map(|f| f.map_err(BoxError::from)));
                }
                loop {
                    ready!(s.timer.as_mut().poll(cx));
                    if Instant::now() >= s.deadline {
                        return Poll::Ready(Some(Err(IdleTimeout(s.idle).into())));
                    }
                    let d = s.deadline;
                    s.timer.as_mut().reset(d);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RespBody::Local(b) => b.is_none(),
            RespBody::Raw(r) => r.is_end_stream(),
            RespBody::Upstream(s) => s.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RespBody::Local(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            RespBody::Raw(r) => r.size_hint(),
            RespBody::Upstream(s) => s.body.size_hint(),
        }
    }
}
