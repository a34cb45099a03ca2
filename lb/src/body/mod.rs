//! Body types of the data path. Bodies stream frame by frame in both directions; nothing
//! is buffered whole.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::Notify;
use tokio::time::{Instant, Sleep};

mod raw;

pub(crate) use raw::RawBody;

use crate::balance::InFlight;
use crate::exchange::ClientFault;
use crate::retry::Active;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A request body sent upstream: nothing (which lets the request be retried) or the
/// client's stream.
pub(crate) enum ReqBody {
    Empty,
    Stream(Box<ClientBody>),
}

impl Body for ReqBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ReqBody::Empty => Poll::Ready(None),
            ReqBody::Stream(b) => b.poll(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ReqBody::Empty => true,
            ReqBody::Stream(b) => b.body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ReqBody::Empty => SizeHint::with_exact(0),
            ReqBody::Stream(b) => b.body.size_hint(),
        }
    }
}

/// The client's request body on its way upstream through hyper's client. It records how
/// reading it ended, so a failed attempt can tell the client's fault from the
/// backend's, and it says when it has been read whole: the first-byte timer starts then.
pub(crate) struct ClientBody {
    body: Incoming,
    watch: Arc<BodyWatch>,
    /// Longest pause between two reads of the body (`timeouts.body_read`).
    idle: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    deadline: Instant,
}

impl ClientBody {
    pub(crate) fn new(body: Incoming, idle: Duration) -> (Self, Arc<BodyWatch>) {
        let watch = Arc::new(BodyWatch::default());
        let b = ClientBody { body, watch: watch.clone(), idle, timer: None, deadline: Instant::now() + idle };
        (b, watch)
    }

    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                self.deadline = Instant::now() + self.idle;
                if self.body.is_end_stream() {
                    self.watch.set(BodyState::Done);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                self.watch.set(BodyState::Done);
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                // A client that went away mid-body is not a malformed body.
                let state = if e.is_incomplete_message() { BodyState::Gone } else { BodyState::Bad };
                self.watch.set(state);
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Pending => {
                let deadline = self.deadline;
                let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                loop {
                    ready!(timer.as_mut().poll(cx));
                    if Instant::now() >= self.deadline {
                        self.watch.set(BodyState::Slow);
                        return Poll::Ready(Some(Err(ClientTimeout(self.idle).into())));
                    }
                    timer.as_mut().reset(self.deadline);
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("client sent no body bytes for {0:?}")]
pub(crate) struct ClientTimeout(pub(crate) Duration);

/// How reading a client's body has gone so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum BodyState {
    Reading = 0,
    Done = 1,
    Gone = 2,
    Bad = 3,
    Slow = 4,
}

/// Shared between a [`ClientBody`] (polled inside hyper's client) and the attempt that
/// sent it.
#[derive(Default)]
pub(crate) struct BodyWatch {
    state: AtomicU8,
    changed: Notify,
}

impl BodyWatch {
    fn set(&self, s: BodyState) {
        self.state.store(s as u8, Ordering::Release);
        self.changed.notify_waiters();
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// The client's fault, when reading its body failed.
    pub(crate) fn fault(&self) -> Option<ClientFault> {
        match self.state() {
            s if s == BodyState::Gone as u8 => Some(ClientFault::Gone),
            s if s == BodyState::Bad as u8 => Some(ClientFault::BadBody),
            s if s == BodyState::Slow as u8 => Some(ClientFault::SlowBody),
            _ => None,
        }
    }

    /// Waits until the body has been read whole, or reading it failed.
    pub(crate) async fn finished(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.state() != BodyState::Reading as u8 {
                return;
            }
            changed.await;
        }
    }
}

/// A response body for the client: a short local one, or a backend's stream.
pub(crate) enum RespBody {
    Local(Option<Bytes>),
    Upstream(Box<Streaming>),
    /// A backend's body read from a raw pooled connection (`h1::bodyless`).
    Raw(Box<RawBody>),
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
