//! Bad input and limits: malformed requests, oversized heads, slow clients, the
//! connection limit.

use std::time::Duration;

use anyhow::Result;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::*;

/// Sends raw bytes, returns everything the proxy answers until it closes (or 5 s).
async fn raw(addr: std::net::SocketAddr, bytes: &[u8]) -> Result<String> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(bytes).await?;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

async fn proxy_with(lb: &str) -> Result<Running> {
    let (p, world, backends) = proxy_to_backend("h.test", lb).await?;
    // Keep the backend and table alive as long as the proxy.
    std::mem::forget(backends);
    std::mem::forget(world);
    Ok(p)
}

/// A malformed request line gets 400 and the connection is closed; an oversized header
/// block gets 431.
#[tokio::test]
async fn malformed_is_400_and_oversized_is_431() -> Result<()> {
    let p = proxy_with("").await?;
    let bad = raw(p.http, b"GET / HTTP/1.1 extra junk\r\n\0\r\n\r\n").await?;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad:?}");
    let big = format!("GET / HTTP/1.1\r\nHost: h.test\r\nX-Big: {}\r\n\r\n", "a".repeat(40_000));
    let out = raw(p.http, big.as_bytes()).await?;
    assert!(out.starts_with("HTTP/1.1 431"), "{out:?}");
    let ok = raw(p.http, b"GET /fine HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n").await?;
    assert!(ok.starts_with("HTTP/1.1 200") && ok.ends_with("c1 /fine\n"), "{ok:?}");
    p.proxy.shutdown().await;
    Ok(())
}

/// A client that trickles its request head is cut off after `header_read`.
#[tokio::test]
async fn slowloris_client_is_disconnected() -> Result<()> {
    let p = proxy_with("[lb.timeouts]\nheader_read = \"500ms\"\n").await?;
    let mut s = TcpStream::connect(p.http).await?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: h.test\r\n").await?;
    let started = std::time::Instant::now();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "connection still open after 5 s");
    assert!(started.elapsed() < Duration::from_secs(3), "closed after {:?}", started.elapsed());
    p.proxy.shutdown().await;
    Ok(())
}

/// Beyond `max_connections`, new connections are closed at once; a freed slot is reused.
#[tokio::test]
async fn connection_limit_closes_extra_connections() -> Result<()> {
    let p = proxy_with("[lb.limits]\nmax_connections = 2\n").await?;
    let _a = TcpStream::connect(p.http).await?;
    let _b = TcpStream::connect(p.http).await?;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let third = raw(p.http, b"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n").await?;
    assert!(third.is_empty(), "third connection must be closed unanswered: {third:?}");
    drop(_a);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let ok = raw(p.http, b"GET / HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n").await?;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok:?}");
    assert!(p.metrics().contains("lb_rejected_connections_total 1"), "{}", p.metrics());
    p.proxy.shutdown().await;
    Ok(())
}
