//! Idle upstream connections of one backend, shared by the HTTP/1.1 fast path and hyper's
//! bodyless requests (`h1`).
//!
//! A stack per endpoint (the most recently used connection first: it is the least likely
//! to have been closed by the backend). The lock is held for a push or a pop, never
//! across I/O.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use parking_lot::Mutex;
use tokio::net::TcpStream;

/// Idle connections kept per backend; more are closed when they come back. Above any
/// concurrency one proxy core drives, so a busy backend never reconnects per request.
const MAX_IDLE: usize = 1024;

/// Bytes read from a backend per read call.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// One connection to a backend, with what was read from it and not yet used.
pub(crate) struct Conn {
    pub(crate) io: TcpStream,
    pub(crate) buf: BytesMut,
    /// Taken from the pool rather than just opened: it may have been closed meanwhile.
    pub(crate) reused: bool,
    idle_since: Instant,
    /// The pool's generation when this connection was opened or taken: a connection
    /// out while the pool was cleared is not taken back.
    generation: u64,
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let io = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
        };
        io.set_nodelay(true)?;
        Ok(Conn {
            io,
            buf: BytesMut::with_capacity(READ_CHUNK),
            reused: false,
            idle_since: Instant::now(),
            generation: 0,
        })
    }

    /// Still open and silent: the backend has neither closed it nor sent anything unasked.
    /// Uses the reactor's cached readiness, so a quiet connection costs no system call.
    fn is_quiet(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.io.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Conn>>,
    /// Bumped by every `clear`.
    generation: AtomicU64,
}

impl Pool {
    /// A new connection to `addr`, of this pool's current generation.
    pub(crate) async fn connect(&self, addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let generation = self.generation.load(Ordering::Acquire);
        let mut conn = Conn::open(addr, timeout).await?;
        conn.generation = generation;
        Ok(conn)
    }

    /// The most recently returned connection that is still usable and has not been idle
    /// longer than `max_idle`; older or closed ones are dropped on the way.
    pub(crate) fn take(&self, max_idle: Duration) -> Option<Conn> {
        let now = Instant::now();
        loop {
            let mut conn = self.idle.lock().pop()?;
            if now.duration_since(conn.idle_since) < max_idle && conn.is_quiet() {
                conn.reused = true;
                conn.generation = self.generation.load(Ordering::Acquire);
                return Some(conn);
            }
        }
    }

    /// Returns a connection whose last response was read whole. The oldest idle
    /// connection goes if it has been idle longer than `max_idle`, so a pool that shrinks
    /// after a burst does not hold its sockets for ever.
    pub(crate) fn put(&self, mut conn: Conn, max_idle: Duration) {
        if !conn.buf.is_empty() {
            return;
        }
        let now = Instant::now();
        conn.idle_since = now;
        // Whatever is closed is dropped after the lock is released.
        let stale = {
            let mut idle = self.idle.lock();
            // Read under the lock, so a `clear` cannot pass between check and push.
            if conn.generation != self.generation.load(Ordering::Acquire) {
                return drop((idle, conn));
            }
            let stale = match idle.first() {
                Some(oldest) if now.duration_since(oldest.idle_since) >= max_idle => Some(idle.remove(0)),
                _ => None,
            };
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
            stale
        };
        drop(stale);
    }

    /// Closes every idle connection (after one turned out closed by the backend), and
    /// every one now in use as it comes back: the backend has likely closed them all.
    pub(crate) fn clear(&self) {
        let gone = {
            let mut idle = self.idle.lock();
            self.generation.fetch_add(1, Ordering::AcqRel);
            std::mem::take(&mut *idle)
        };
        drop(gone);
    }

    /// Idle connections now (for status and tests).
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair() -> (Pool, SocketAddr, tokio::net::TcpListener) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        (Pool::default(), addr, listener)
    }

    #[tokio::test]
    async fn a_connection_out_during_clear_is_not_taken_back() {
        let (pool, addr, listener) = pair().await;
        let out = pool.connect(addr, Duration::from_secs(1)).await.expect("connect");
        let kept = pool.connect(addr, Duration::from_secs(1)).await.expect("connect");
        let _accepted = (listener.accept().await.expect("accept"), listener.accept().await.expect("accept"));
        pool.put(kept, Duration::from_secs(60));
        assert_eq!(pool.idle(), 1);
        pool.clear();
        assert_eq!(pool.idle(), 0, "idle connections closed");
        pool.put(out, Duration::from_secs(60));
        assert_eq!(pool.idle(), 0, "a connection in use while the pool was cleared");
        let fresh = pool.connect(addr, Duration::from_secs(1)).await.expect("connect");
        pool.put(fresh, Duration::from_secs(60));
        assert_eq!(pool.idle(), 1, "one opened after the clear is pooled");
    }
}
