//! Response-rate limiting: a burst of identical UDP queries from one network gets its
//! rate of answers, then truncated replies (every `slip`-th) and silence; TCP, another
//! network and a disabled limiter are untouched.

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::*;

const NAME: &str = "web.shop.demo.svc.meridian.test";

/// What came back for `count` queries sent at once from `from`: full answers and
/// truncated ones.
async fn burst(server: SocketAddr, from: &str, count: u16) -> (usize, usize) {
    let sock = tokio::net::UdpSocket::bind(from).await.expect("bind");
    let q = query(NAME, 1, None);
    for i in 0..count {
        let mut p = q.clone();
        p[..2].copy_from_slice(&i.to_be_bytes());
        sock.send_to(&p, server).await.expect("send");
    }
    let (mut full, mut truncated) = (0, 0);
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await {
        let ancount = u16::from_be_bytes([buf[6], buf[7]]);
        if buf[2] & 0x02 != 0 && ancount == 0 && n > 12 {
            truncated += 1;
        } else if ancount > 0 {
            full += 1;
        }
    }
    (full, truncated)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_over_the_rate_is_truncated_or_dropped() {
    let mut c = config();
    c.dns.rrl.enabled = true;
    c.dns.rrl.responses_per_second = 10;
    c.dns.rrl.slip = 2;
    c.dns.rrl.exempt = vec!["127.66.9.0/24".into()];
    let env = start(c, vec![svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1))]).await;
    let (full, truncated) = burst(env.addr, "127.66.1.1:0", 100).await;
    // 10 per second, and the burst may straddle a second boundary.
    assert!((10..=20).contains(&full), "{full} full answers");
    assert!(truncated >= 30 && full + truncated < 100, "{truncated} truncated, {full} full: the rest dropped");
    // Another network has its own budget; an exempt one has none.
    let (other, _) = burst(env.addr, "127.66.2.1:0", 5).await;
    assert_eq!(other, 5);
    let (exempt, _) = burst(env.addr, "127.66.9.1:0", 50).await;
    assert_eq!(exempt, 50);
    // TCP cannot be spoofed: never limited.
    let out = dig(&env, &["A", NAME, "+tcp"]);
    assert_eq!(answers(&out, "A"), ["192.0.2.1"], "{out}");
    env.server.shutdown().await;
}

/// Off by default: the same burst is answered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_rrl_every_query_is_answered() {
    let env = start(config(), vec![svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1))]).await;
    let (full, truncated) = burst(env.addr, "127.66.3.1:0", 100).await;
    assert_eq!((full, truncated), (100, 0));
    env.server.shutdown().await;
}
