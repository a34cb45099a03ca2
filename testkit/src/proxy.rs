//! The fault-injecting TCP proxy: one listener, one upstream, a mode switched at any time.
//!
//! Each accepted connection is a task that connects to the upstream and copies bytes in
//! both directions, looking at the mode before every read and every write. All tasks
//! belong to the proxy: dropping the [`FaultProxy`] ends them and closes their sockets.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

/// What the proxy does with traffic. A new mode applies at once to open connections as
/// well as to new ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward bytes both ways as they come. Entered at start; entering it after a stall
    /// delivers what the stall held back and lets stalled new connections through.
    Pass,
    /// Forward nothing and close nothing: open connections go silent in both directions
    /// (bytes already read are held, not dropped), and new connections are accepted but
    /// get nothing — the upstream is not even contacted. This is what a WAN path that
    /// drops every packet, or a peer whose process is stopped, looks like to a client:
    /// only its own deadlines get it out.
    Stall,
    /// Reset (TCP RST) every open connection and every new one as soon as it is accepted.
    Reset,
    /// Forward like [`Mode::Pass`], but hold each chunk read for this long before writing
    /// it, in each direction (a request/response round trip gains twice this). Chunks
    /// are held one after the other, so a transfer of many chunks slows down further:
    /// this is a slow path, not a long fat pipe.
    Delay(Duration),
    /// Answer every new connection with this HTTP status (after reading its request
    /// head), `Connection: close`, and close it; nothing reaches the upstream. Open
    /// connections are closed (FIN) at once, so that keep-alive clients reconnect and
    /// meet the error.
    HttpError(u16),
}

/// A TCP proxy in front of `upstream` that injects faults on command (see [`Mode`]).
///
/// Point the client under test at [`FaultProxy::addr`] (or [`FaultProxy::url`] for
/// HTTP), then [`FaultProxy::set`] the mode. Dropping the proxy closes its listener and
/// every connection.
pub struct FaultProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Bumped by [`FaultProxy::forget_open`]; a connection accepted before the current
    /// value stays stalled for good.
    forgotten: watch::Sender<u64>,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

/// How long a canned HTTP answer waits for the request head before answering anyway.
const HEAD_WAIT: Duration = Duration::from_secs(2);
/// Request heads longer than this are not waited for to the end.
const MAX_HEAD: usize = 64 * 1024;
/// How long a connection answered with a canned error is drained after the answer, so
/// that its close is a FIN rather than a RST that could overtake the answer.
const DRAIN: Duration = Duration::from_millis(500);
/// Size of each direction's copy buffer.
const CHUNK: usize = 16 * 1024;

impl FaultProxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream`, in [`Mode::Pass`].
    pub async fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        Self::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), upstream).await
    }

    /// Listens on `listen` (port 0 for a free one) and forwards to `upstream`.
    pub async fn bind(listen: SocketAddr, upstream: SocketAddr) -> io::Result<FaultProxy> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let (mode, rx) = watch::channel(Mode::Pass);
        let (forgotten, forgotten_rx) = watch::channel(0);
        let accepted = Arc::new(AtomicUsize::new(0));
        let task =
            tokio::spawn(serve(listener, upstream, Modes { mode: rx, forgotten: forgotten_rx }, accepted.clone()));
        Ok(FaultProxy { addr, upstream, mode, forgotten, accepted, task })
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, for clients configured by URL (a kubeconfig's `server`).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Switches the mode, for open and new connections alike.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }

    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// The connections open now go silent for good, whatever the mode does later; new
    /// ones follow the mode. This is what a long partition leaves behind once it heals:
    /// the far end gave up on its connections and the close was lost on the way, so the
    /// near end waits on them for ever unless its own deadlines notice.
    pub fn forget_open(&self) {
        self.forgotten.send_modify(|g| *g += 1);
    }

    /// Connections accepted so far, whatever the mode did with them.
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        // The connection tasks live in the accept task's JoinSet and end with it.
        self.task.abort();
    }
}

/// The proxy's mode and its forgetting generation, as every connection reads them.
#[derive(Clone)]
struct Modes {
    mode: watch::Receiver<Mode>,
    forgotten: watch::Receiver<u64>,
}

impl Modes {
    /// A mode channel for one connection accepted now: the proxy's mode, until the
    /// connection is forgotten, then [`Mode::Stall`] for good. Its relay ends with the
    /// connection (or the proxy).
    fn for_connection(&self, conns: &mut JoinSet<()>) -> watch::Receiver<Mode> {
        let mut all = self.clone();
        let born = *all.forgotten.borrow();
        let (tx, rx) = watch::channel(*all.mode.borrow());
        conns.spawn(async move {
            loop {
                let m =
                    if *all.forgotten.borrow_and_update() > born { Mode::Stall } else { *all.mode.borrow_and_update() };
                tx.send_if_modified(|cur| std::mem::replace(cur, m) != m);
                tokio::select! {
                    r = all.mode.changed() => if r.is_err() { return },
                    r = all.forgotten.changed() => if r.is_err() { return },
                    () = tx.closed() => return,
                }
            }
        });
        rx
    }
}

async fn serve(listener: TcpListener, upstream: SocketAddr, modes: Modes, accepted: Arc<AtomicUsize>) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let mode = modes.for_connection(&mut conns);
                    conns.spawn(connection(stream, upstream, mode));
                }
                // Out of file descriptors and the like: wait instead of spinning; the test
                // sees a connection that is never answered.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// How one direction of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// Its source closed; the close was passed on (half-close).
    Eof,
    /// [`Mode::Reset`]: both sockets are to be reset.
    Reset,
    /// [`Mode::HttpError`], or the proxy is going away: both sockets are closed.
    Close,
    /// A read or write failed; both sockets are closed.
    Failed,
}

async fn connection(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    // A connection accepted during a stall waits, unanswered, for the stall to end.
    let Ok(first) = mode.wait_for(|m| *m != Mode::Stall).await.map(|m| *m) else { return };
    match first {
        Mode::Reset => return reset(&client),
        Mode::HttpError(status) => return answer(client, status).await,
        Mode::Pass | Mode::Delay(_) | Mode::Stall => {}
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else { return reset(&client) };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let end = {
        let (mut client_read, mut client_write) = client.split();
        let (mut server_read, mut server_write) = server.split();
        let up = pump(&mut client_read, &mut server_write, mode.clone());
        let down = pump(&mut server_read, &mut client_write, mode.clone());
        tokio::pin!(up, down);
        // A direction that ended by end of file has passed the half-close on; the other
        // carries on until it ends too, or a mode ends it.
        tokio::select! {
            e = &mut up => if e == End::Eof { down.await } else { e },
            e = &mut down => if e == End::Eof { up.await } else { e },
        }
    };
    if end == End::Reset {
        reset(&client);
        reset(&server);
    }
}

/// Makes the socket's close (when it is dropped) a RST.
fn reset(s: &TcpStream) {
    let _ = s.set_zero_linger();
}

/// Copies `src` to `dst` under the mode, until end of file or a mode that ends it.
async fn pump(src: &mut ReadHalf<'_>, dst: &mut WriteHalf<'_>, mut mode: watch::Receiver<Mode>) -> End {
    let mut buf = vec![0u8; CHUNK];
    loop {
        if let Err(end) = forwarding(&mut mode).await {
            return end;
        }
        let n = tokio::select! {
            r = src.read(&mut buf) => match r {
                Ok(0) => {
                    let _ = dst.shutdown().await;
                    return End::Eof;
                }
                Ok(n) => n,
                Err(_) => return End::Failed,
            },
            // A new mode applies to a connection waiting for input too (a reset, a stall).
            r = mode.changed() => {
                if r.is_err() {
                    return End::Close;
                }
                continue;
            }
        };
        match forwarding(&mut mode).await {
            Ok(Some(latency)) => tokio::select! {
                () = tokio::time::sleep(latency) => {}
                end = ended(&mut mode) => return end,
            },
            Ok(None) => {}
            Err(end) => return end,
        }
        let mut sent = 0;
        while sent < n {
            // Bytes read before a stall began are held until it ends.
            if let Err(end) = forwarding(&mut mode).await {
                return end;
            }
            let Some(chunk) = buf.get(sent..n) else { return End::Failed };
            tokio::select! {
                r = dst.write(chunk) => match r {
                    Ok(0) | Err(_) => return End::Failed,
                    Ok(w) => sent += w,
                },
                r = mode.changed() => {
                    if r.is_err() {
                        return End::Close;
                    }
                }
            }
        }
    }
}

/// Waits while the mode is [`Mode::Stall`]; then the latency to add (`Ok`), or how the
/// connection ends (`Err`).
async fn forwarding(mode: &mut watch::Receiver<Mode>) -> Result<Option<Duration>, End> {
    loop {
        let m = *mode.borrow_and_update();
        match m {
            Mode::Pass => return Ok(None),
            Mode::Delay(d) => return Ok(Some(d)),
            Mode::Reset => return Err(End::Reset),
            Mode::HttpError(_) => return Err(End::Close),
            Mode::Stall => {
                if mode.changed().await.is_err() {
                    return Err(End::Close);
                }
            }
        }
    }
}

/// Resolves when the mode becomes one that ends connections.
async fn ended(mode: &mut watch::Receiver<Mode>) -> End {
    loop {
        let m = *mode.borrow_and_update();
        match m {
            Mode::Reset => return End::Reset,
            Mode::HttpError(_) => return End::Close,
            Mode::Pass | Mode::Stall | Mode::Delay(_) => {}
        }
        if mode.changed().await.is_err() {
            return End::Close;
        }
    }
}

/// Answers one new connection with a canned HTTP error and closes it.
async fn answer(mut client: TcpStream, status: u16) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    // Answering before the request arrived would work for most clients, but one that is
    // still writing when the close comes gets a reset instead of the answer.
    let _ = tokio::time::timeout(HEAD_WAIT, async {
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < MAX_HEAD {
            match client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(buf.get(..n).unwrap_or_default()),
            }
        }
    })
    .await;
    let body = "injected by meridian-testkit's fault proxy\n";
    let response = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    );
    if client.write_all(response.as_bytes()).await.is_err() {
        return;
    }
    let _ = client.shutdown().await;
    // Unread input (a request body) at close would turn the FIN into a RST.
    let _ = tokio::time::timeout(DRAIN, async {
        while let Ok(n) = client.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    })
    .await;
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}
