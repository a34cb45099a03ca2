//! Protocol upgrades pass through: a WebSocket echo via the proxy.

use anyhow::{Context, Result};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// Messages sent through the proxy come back from a WebSocket echo backend.
#[tokio::test]
async fn websocket_echo_through_the_proxy() -> Result<()> {
    let ip = loopback();
    let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else { return };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        let _ = ws.send(m).await;
                    }
                }
            });
        }
    });
    let c = cluster("c1", "r1", 0);
    let mut world = World::new(std::slice::from_ref(&c));
    world.service("chat", "ws", &c, &[ip], port, true);
    let cfg = config(&[c], "[[lb.routes]]\nhost = \"ws.test\"\nservice = \"chat/ws\"\n");
    let p = start(&cfg, &world.table).await?;

    let stream = tokio::net::TcpStream::connect(p.http).await?;
    let (mut ws, resp) = tokio_tungstenite::client_async("ws://ws.test/chat", stream).await.context("handshake")?;
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}"))).await?;
        let echoed = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await?;
        assert_eq!(echoed.context("closed")??, Message::text(format!("hello {i}")));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255])).await?;
    let echoed = tokio::time::timeout(std::time::Duration::from_secs(5), ws.next()).await?;
    assert_eq!(echoed.context("closed")??, Message::binary(vec![0u8, 1, 2, 255]));
    ws.close(None).await?;
    p.proxy.shutdown().await;
    Ok(())
}
