//! A client connection that fails once no byte has moved either way for too long.
//!
//! The fast path bounds each of its own waits (a request head, a body pause, keep-alive
//! between requests), but a client that stops reading its response blocks a write, and
//! hyper's connections have no idle bound of their own. Wrapped in [`Idle`], a
//! connection whose reads and writes have all been pending for the bound gets a
//! `TimedOut` error, which ends it and releases its backend connection; a slow client
//! that still reads (or writes) now and then is not cut off.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

pub(crate) struct Idle<S> {
    io: S,
    limit: Duration,
    /// When a byte last moved, either way.
    last: Instant,
    /// Armed while an operation is pending; fires at `last + limit` or later.
    timer: Option<Pin<Box<Sleep>>>,
}

impl<S> Idle<S> {
    pub(crate) fn new(io: S, limit: Duration) -> Self {
        Idle { io, limit, last: Instant::now(), timer: None }
    }

    fn moved(&mut self) {
        self.last = Instant::now();
    }

    /// For a pending operation: an error once nothing has moved for `limit`, else
    /// `Pending` with the timer armed. The timer is moved only when it fires early, so
    /// traffic costs no timer-wheel work.
    fn check<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let first_due = self.last + self.limit;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(first_due)));
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = self.last + self.limit;
            if Instant::now() >= due {
                let idle = format!("client connection idle for {:?}", self.limit);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, idle)));
            }
            timer.as_mut().reset(due);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(r) => {
                this.moved();
                Poll::Ready(r)
            }
            Poll::Pending => this.check(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Ready(r) => Poll::Ready(r),
            Poll::Pending => this.check(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}
