//! A backend's response body read from a raw pooled connection (for hyper's bodyless
//! requests, `h1::bodyless`), framed as the backend framed it; the connection goes back
//! to the pool when the body ended as framed.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use super::{BoxError, IdleTimeout};
use crate::balance::InFlight;
use crate::h1::chunked::Chunked;
use crate::h1::head::Framing;
use crate::pool::{Conn, READ_CHUNK};
use crate::retry::Active;

/// The backend closed its connection before the body's framing said it ended.
#[derive(Debug, thiserror::Error)]
#[error("backend closed the connection inside the body")]
struct Truncated;

/// A response body read from a raw backend connection; the connection goes back to the
/// pool when the body ended as framed.
pub(crate) struct RawBody {
    /// `None` once the body ended.
    conn: Option<Conn>,
    framing: Framing,
    /// Bytes still to come of a `Content-Length` body.
    left: u64,
    chunks: Chunked,
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
    pub(crate) fn new(
        conn: Conn,
        framing: Framing,
        reusable: bool,
        idle: Duration,
        in_flight: InFlight,
        active: Active,
    ) -> RawBody {
        let left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        RawBody {
            conn: Some(conn),
            framing,
            left,
            chunks: Chunked::default(),
            reusable,
            idle,
            timer: None,
            deadline: Instant::now() + idle,
            in_flight,
            _active: active,
        }
    }

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
                    return Poll::Ready(Some(Err(Truncated.into())));
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
