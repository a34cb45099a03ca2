//! Each mode of the fault proxy does what it says, against an echo server upstream.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{FaultProxy, Mode};

/// Long enough that a forwarded byte would have arrived on loopback many times over.
const SILENCE: Duration = Duration::from_millis(300);
/// Upper bound for anything that should happen at once.
const PROMPT: Duration = Duration::from_secs(5);

/// An echo server; counts the connections it accepted.
async fn echo() -> io::Result<(SocketAddr, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::Relaxed);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(buf.get(..n).unwrap_or_default()).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    Ok((addr, count))
}

/// Writes `msg` and reads exactly as many bytes back, within `within`.
async fn round_trip(s: &mut TcpStream, msg: &[u8], within: Duration) -> io::Result<Vec<u8>> {
    s.write_all(msg).await?;
    let mut back = vec![0u8; msg.len()];
    tokio::time::timeout(within, s.read_exact(&mut back)).await??;
    Ok(back)
}

/// Reads for `SILENCE`: `Ok(true)` if nothing came and the connection stayed open.
async fn silent(s: &mut TcpStream) -> io::Result<bool> {
    let mut buf = [0u8; 16];
    match tokio::time::timeout(SILENCE, s.read(&mut buf)).await {
        Err(_) => Ok(true),
        Ok(r) => r.map(|_| false),
    }
}

/// Pass forwards both ways, connection after connection.
#[tokio::test]
async fn pass_forwards_both_ways() -> io::Result<()> {
    let (up, count) = echo().await?;
    let proxy = FaultProxy::start(up).await?;
    for i in 0..3 {
        let mut s = TcpStream::connect(proxy.addr()).await?;
        let msg = format!("hello {i}");
        assert_eq!(round_trip(&mut s, msg.as_bytes(), PROMPT).await?, msg.as_bytes());
    }
    assert_eq!((proxy.accepted(), count.load(Ordering::Relaxed)), (3, 3));
    Ok(())
}

/// Stall silences an open connection in both directions without closing it, accepts new
/// connections without forwarding them, and Pass resumes both with nothing lost.
#[tokio::test]
async fn stall_silences_open_and_new_connections_and_pass_resumes_them() -> io::Result<()> {
    let (up, count) = echo().await?;
    let proxy = FaultProxy::start(up).await?;
    let mut open = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(round_trip(&mut open, b"before", PROMPT).await?, b"before");

    proxy.set(Mode::Stall);
    open.write_all(b"during").await?;
    assert!(silent(&mut open).await?, "the open connection answered during the stall");
    let mut new = TcpStream::connect(proxy.addr()).await?;
    new.write_all(b"new").await?;
    assert!(silent(&mut new).await?, "the new connection answered during the stall");
    assert_eq!(proxy.accepted(), 2, "the new connection was accepted");
    assert_eq!(count.load(Ordering::Relaxed), 1, "the stalled new connection reached the upstream");

    proxy.set(Mode::Pass);
    let mut back = [0u8; 6];
    tokio::time::timeout(PROMPT, open.read_exact(&mut back)).await??;
    assert_eq!(&back, b"during");
    let mut back = [0u8; 3];
    tokio::time::timeout(PROMPT, new.read_exact(&mut back)).await??;
    assert_eq!(&back, b"new");
    Ok(())
}

/// Reset resets the open connection and every new one.
#[tokio::test]
async fn reset_resets_open_and_new_connections() -> io::Result<()> {
    let (up, _) = echo().await?;
    let proxy = FaultProxy::start(up).await?;
    let mut open = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(round_trip(&mut open, b"x", PROMPT).await?, b"x");

    proxy.set(Mode::Reset);
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(PROMPT, open.read(&mut buf)).await?;
    assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::ConnectionReset), "open connection");
    let mut new = TcpStream::connect(proxy.addr()).await?;
    let r = tokio::time::timeout(PROMPT, new.read(&mut buf)).await?;
    assert_eq!(r.map_err(|e| e.kind()), Err(io::ErrorKind::ConnectionReset), "new connection");

    proxy.set(Mode::Pass);
    let mut after = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(round_trip(&mut after, b"y", PROMPT).await?, b"y");
    Ok(())
}

/// Delay adds its latency in each direction: an echo round trip takes at least twice it,
/// where Pass takes far less than once.
#[tokio::test]
async fn delay_adds_latency_in_each_direction() -> io::Result<()> {
    let latency = Duration::from_millis(150);
    let (up, _) = echo().await?;
    let proxy = FaultProxy::start(up).await?;
    let mut s = TcpStream::connect(proxy.addr()).await?;
    let start = Instant::now();
    round_trip(&mut s, b"fast", PROMPT).await?;
    let fast = start.elapsed();
    assert!(fast < latency, "pass took {fast:?}");

    proxy.set(Mode::Delay(latency));
    let start = Instant::now();
    assert_eq!(round_trip(&mut s, b"slow", PROMPT).await?, b"slow");
    let slow = start.elapsed();
    assert!(slow >= 2 * latency, "delayed round trip took {slow:?}");
    Ok(())
}

/// HttpError answers a new connection with the status, closes it, and never contacts the
/// upstream; an open connection is closed.
#[tokio::test]
async fn http_error_answers_new_connections_and_closes_open_ones() -> io::Result<()> {
    let (up, count) = echo().await?;
    let proxy = FaultProxy::start(up).await?;
    let mut open = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(round_trip(&mut open, b"x", PROMPT).await?, b"x");

    proxy.set(Mode::HttpError(503));
    let mut buf = [0u8; 16];
    let r = tokio::time::timeout(PROMPT, open.read(&mut buf)).await?;
    assert_eq!(r.map_err(|e| e.kind()), Ok(0), "the open connection was closed");

    let mut new = TcpStream::connect(proxy.addr()).await?;
    new.write_all(b"GET /readyz HTTP/1.1\r\nhost: example\r\n\r\n").await?;
    let mut response = Vec::new();
    tokio::time::timeout(PROMPT, new.read_to_end(&mut response)).await??;
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"), "{text}");
    assert!(text.contains("connection: close\r\n"), "{text}");
    assert_eq!(count.load(Ordering::Relaxed), 1, "the answered connection reached the upstream");
    Ok(())
}

/// After `forget_open`, the connections open then stay silent for good, even in Pass,
/// while new connections forward again.
#[tokio::test]
async fn forgotten_connections_stay_silent_and_new_ones_pass() -> io::Result<()> {
    let (up, _) = echo().await?;
    let proxy = FaultProxy::start(up).await?;
    let mut old = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(round_trip(&mut old, b"before", PROMPT).await?, b"before");
    proxy.set(Mode::Stall);
    proxy.forget_open();
    proxy.set(Mode::Pass);
    old.write_all(b"after").await?;
    assert!(silent(&mut old).await?, "a forgotten connection answered");
    let mut new = TcpStream::connect(proxy.addr()).await?;
    assert_eq!(round_trip(&mut new, b"fresh", PROMPT).await?, b"fresh");
    assert!(silent(&mut old).await?, "a forgotten connection answered later");
    Ok(())
}
