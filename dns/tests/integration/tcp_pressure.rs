//! DNS over TCP under pressure (RFC 7766 §6.2.3): clients that hold connections open
//! cannot lock others out, and a client that never reads its answers loses its slot.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::*;

const GLOBAL: &str = "web.shop.demo.svc.meridian.test";

/// A TCP connection to `server` from the loopback address `from`.
async fn connect_from(from: IpAddr, server: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(server).await
}

/// One query over a new TCP connection from `from`; true when an answer with NOERROR
/// came within a second.
async fn tcp_query(from: IpAddr, server: SocketAddr) -> bool {
    let exchange = async {
        let mut s = connect_from(from, server).await?;
        let q = query(GLOBAL, 1, None);
        s.write_all(&(q.len() as u16).to_be_bytes()).await?;
        s.write_all(&q).await?;
        let len = s.read_u16().await?;
        let mut msg = vec![0; usize::from(len)];
        s.read_exact(&mut msg).await?;
        Ok::<_, std::io::Error>(rcode_of(&msg) == 0)
    };
    matches!(tokio::time::timeout(Duration::from_secs(1), exchange).await, Ok(Ok(true)))
}

/// 1,100 idle connections (from eleven addresses, 100 each, over the 1,024 limit) do not
/// keep other clients out: new connections take the longest-idle slots, and at least 95%
/// of new TCP queries are answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_cannot_lock_out_new_queries() {
    let env = start(config(), vec![svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1))]).await;
    let mut held = Vec::new();
    for host in 1..=11u8 {
        for _ in 0..100 {
            if let Ok(s) = connect_from(IpAddr::V4(Ipv4Addr::new(127, 77, 1, host)), env.addr).await {
                held.push(s);
            }
        }
    }
    assert_eq!(held.len(), 1100, "the idle connections were opened");
    // Let the server take them all in before the queries arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = IpAddr::V4(Ipv4Addr::new(127, 77, 2, 1));
    let mut answered = 0;
    for _ in 0..40 {
        answered += usize::from(tcp_query(client, env.addr).await);
    }
    assert!(answered * 100 >= 40 * 95, "only {answered} of 40 TCP queries answered with 1,100 idle connections held");
    drop(held);
    env.server.shutdown().await;
}

/// A client that pipelines queries and never reads the answers is closed once a write
/// has been blocked for `tcp_write_timeout`, though its idle timeout is far away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_loses_its_slot() {
    let mut c = config();
    c.dns.tcp_idle_timeout = meridian_config::Duration::from_secs(60);
    c.dns.tcp_write_timeout = meridian_config::Duration::from_millis(500);
    let env = start(c, vec![svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1))]).await;
    let mut s = TcpStream::connect(env.addr).await.expect("connect");
    let q = query(GLOBAL, 1, None);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&q);
    let batch = framed.repeat(1000);
    // Send until the server stops reading (its answers fill the socket buffers). A
    // write blocked for 2 s means that: a server that still reads takes a batch in
    // milliseconds, even on a busy machine. (A shorter wait could end the loop while the
    // server was merely slow, with all its answers still fitting in the buffers: then
    // no write of the server's ever blocks, and nothing should close the connection.)
    let mut sent = 0usize;
    let stalled = loop {
        match tokio::time::timeout(Duration::from_secs(2), s.write_all(&batch)).await {
            Ok(Ok(())) => sent += 1000,
            Ok(Err(_)) => break true,
            Err(_) => break true,
        }
        if sent > 2_000_000 {
            break false;
        }
    };
    assert!(stalled, "the server kept reading {sent} queries without its answers being read");
    let blocked_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Now drain: the server must already have closed, so the stream ends (EOF or reset)
    // instead of answering the rest of the queries and idling for a minute.
    let mut sink = vec![0u8; 1 << 20];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "connection still open {:?} after the server's writes blocked", blocked_at.elapsed());
    env.server.shutdown().await;
}
