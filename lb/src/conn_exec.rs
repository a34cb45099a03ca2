//! Runs hyper's HTTP/2 stream futures inside their connection's own task.
//!
//! hyper hands every h2 stream to an executor. With tokio's that is a task per request:
//! a spawn, and for every response a wake of the connection task from the stream's task
//! (h2 keeps one state behind a lock and only the connection task writes). Profiled on
//! one core, a proxied h2 request cost about twice an HTTP/1.1 one, and the socket was
//! written once per response rather than once per batch.
//!
//! [`ConnExec`] instead pushes each stream into a per-connection set that
//! [`Multiplexed`] polls together with the connection: a read that brings ten requests
//! starts ten streams in the same poll, and the responses that are ready when the
//! connection is next polled leave in one write. Outside a [`Multiplexed`] scope (hyper
//! never calls it there, but the type cannot promise that) it falls back to spawning.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

type StreamFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

tokio::task_local! {
    /// Streams started while the current connection was being polled.
    static STARTED: RefCell<Vec<StreamFuture>>;
}

/// The executor given to hyper's server builder.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ConnExec;

impl<F> hyper::rt::Executor<F> for ConnExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut fut: Option<StreamFuture> = Some(Box::pin(fut));
        let _ = STARTED.try_with(|started| {
            if let Some(f) = fut.take() {
                started.borrow_mut().push(f);
            }
        });
        if let Some(f) = fut {
            tokio::spawn(f);
        }
    }
}

/// Serves `conn` with its streams in the same task; resolves to the connection's
/// output once the connection and every stream it started have ended.
pub(crate) async fn run<C: Future>(conn: C) -> C::Output {
    STARTED
        .scope(
            RefCell::new(Vec::new()),
            Multiplexed { conn: Some(Box::pin(conn)), out: None, streams: FuturesUnordered::new() },
        )
        .await
}

struct Multiplexed<C: Future> {
    conn: Option<Pin<Box<C>>>,
    out: Option<C::Output>,
    streams: FuturesUnordered<StreamFuture>,
}

// Nothing in it is pinned in place: the connection is boxed, its output only moved.
impl<C: Future> Unpin for Multiplexed<C> {}

impl<C: Future> Future for Multiplexed<C> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.get_mut();
        loop {
            if let Some(conn) = this.conn.as_mut()
                && let Poll::Ready(out) = conn.as_mut().poll(cx)
            {
                this.out = Some(out);
                this.conn = None;
            }
            let started = STARTED.with(|s| std::mem::take(&mut *s.borrow_mut()));
            let new = started.len();
            this.streams.extend(started);
            let mut ended = 0;
            while let Poll::Ready(Some(())) = this.streams.poll_next_unpin(cx) {
                ended += 1;
            }
            // Streams that just started or finished left frames for the connection to
            // write (or asked it for more): poll it again now rather than after a wake,
            // so one write carries them all.
            if (new == 0 && ended == 0) || this.conn.is_none() {
                break;
            }
        }
        match (this.conn.is_none() && this.streams.is_empty(), this.out.take()) {
            (true, Some(out)) => Poll::Ready(out),
            (_, out) => {
                this.out = out;
                Poll::Pending
            }
        }
    }
}
