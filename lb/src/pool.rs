//! Idle upstream connections of one backend, shared by the HTTP/1.1 fast path and hyper's
//! bodyless requests (`h1`).
//!
//! A stack per endpoint (the most recently used connection first: it is the least likely
//! to have been closed by the backend). The lock is held for a push or a pop, never
//! across I/O.

use std::net::SocketAddr;
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
}

impl Conn {
    pub(crate) async fn open(addr: SocketAddr, timeout: Duration) -> std::io::Result<Conn> {
        let io = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(r) => r?,
            Err(_) => return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")),
        };
        io.set_nodelay(true)?;
        Ok(Conn { io, buf: BytesMut::with_capacity(READ_CHUNK), reused: false, idle_since: Instant::now() })
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
}

impl Pool {
    /// The most recently returned connection that is still usable and has not been idle
    /// longer than `max_idle`; older or closed ones are dropped on the way.
    pub(crate) fn take(&self, max_idle: Duration) -> Option<Conn> {
        let now = Instant::now();
        loop {
            let mut conn = self.idle.lock().pop()?;
            if now.duration_since(conn.idle_since) < max_idle && conn.is_quiet() {
                conn.reused = true;
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
        let stale = {
            let mut idle = self.idle.lock();
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

    /// Closes every idle connection (after one turned out closed by the backend).
    pub(crate) fn clear(&self) {
        let gone = std::mem::take(&mut *self.idle.lock());
        drop(gone);
    }

    /// Idle connections now (for status and tests).
    pub(crate) fn idle(&self) -> usize {
        self.idle.lock().len()
    }
}
