use std::net::SocketAddr;
use std::time::Duration;

use meridian_fleet::{FleetKey, Health, Quorum};
use tokio::net::UdpSocket;

use crate::support::{KEY, KeyFile, Net, Node, PATIENCE, all_agree, backend, eventually};

/// Instances with the wrong key, or the right secret under another key id, never join,
/// never change a verdict, and every datagram they send is dropped and counted.
#[tokio::test]
async fn wrong_key_never_joins_and_is_counted() -> anyhow::Result<()> {
    let net = Net::new([4, 1])?;
    let a = net.start("a", "eu", 1, &[], Quorum::Majority).await?;
    let b = net.start("b", "us", 2, &[a.addr()], Quorum::Majority).await?;
    let seeds = [a.addr(), b.addr()];
    let wrong_key = KeyFile::new("an-attacker-who-guessed-wrong-0123456789abcdef")?;
    let mut m = net.config("m", "ap", 3, &seeds, Quorum::Majority);
    m.key_file = Some(wrong_key.path().to_path_buf());
    let m = Node::start(&m).await?;
    let mut k = net.config("k", "ap", 4, &seeds, Quorum::Majority);
    k.key_id = 9;
    let k = Node::start(&k).await?;

    // a says up, b says down: a tie, down. An intruder's "up" would make it up.
    let x = backend(1);
    a.fleet.observe(x, true, None);
    b.fleet.observe(x, false, None);
    m.fleet.observe(x, true, None);
    k.fleet.observe(x, true, None);
    eventually("a and b", PATIENCE, || all_agree(&[&a, &b], x, Health::Down, 2)).await?;
    eventually("datagrams dropped by reason", PATIENCE, || {
        let s = a.fleet.transport_stats();
        match (s.rejected.get("bad_mac"), s.rejected.get("unknown_key")) {
            (Some(mac), Some(id)) if *mac >= 3 && *id >= 3 => Ok(()),
            _ => Err(format!("{:?}", s.rejected)),
        }
    })
    .await?;
    // Several more gossip rounds: still nobody let in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for n in [&a, &b] {
        let ids: Vec<String> = n.fleet.instances().into_iter().map(|i| i.id).collect();
        assert_eq!(ids, ["a", "b"], "{} lists an intruder", n.fleet.id());
        assert_eq!(n.fleet.health(x), Health::Down);
    }
    for n in [&m, &k] {
        assert_eq!(n.alive(), [n.fleet.id()], "{} joined nobody", n.fleet.id());
        assert_eq!(n.fleet.transport_stats().decoded, 0, "{} decoded nothing", n.fleet.id());
    }
    let mut registry = prometheus_client::registry::Registry::default();
    a.fleet.register_metrics(&mut registry);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    assert!(text.contains("meridian_fleet_datagrams_rejected_total{reason=\"bad_mac\"}"), "{text}");
    Ok(())
}

/// A captured datagram replayed, corrupted or truncated, and plain junk, are dropped
/// by reason; an authentic datagram that is not chitchat's is counted undecodable; the
/// receiver keeps gossiping with its fleet afterwards.
#[tokio::test]
async fn replayed_and_garbage_datagrams_are_dropped() -> anyhow::Result<()> {
    let net = Net::new([4, 2])?;
    let a = net.start("a", "eu", 1, &[], Quorum::Majority).await?;
    // b knows only the tap as its seed: its first SYN is captured there.
    let tap = UdpSocket::bind(SocketAddr::new(net.ip(9), 0)).await?;
    let b = net.start("b", "us", 2, &[tap.local_addr()?], Quorum::Majority).await?;
    let mut buf = vec![0u8; 70_000];
    let (n, _) = tokio::time::timeout(PATIENCE, tap.recv_from(&mut buf)).await??;
    let syn = buf[..n].to_vec();
    b.stop().await?;

    let send = |d: Vec<u8>| {
        let tap = &tap;
        let to = a.addr();
        async move { tap.send_to(&d, to).await }
    };
    send(syn.clone()).await?;
    send(syn.clone()).await?;
    let mut flipped = syn.clone();
    flipped[40] ^= 0x80;
    send(flipped).await?;
    send(syn[..20].to_vec()).await?;
    send(b"GET / HTTP/1.1\r\n\r\n plenty of junk that is not a fleet datagram at all".to_vec()).await?;
    let key = FleetKey::from_bytes(1, KEY.as_bytes(), "test")?;
    for frame in meridian_fleet::testing::seal(&key, 77, b"authentic, but not chitchat") {
        send(frame).await?;
    }
    eventually("every kind counted", PATIENCE, || {
        let s = a.fleet.transport_stats();
        let got = |r: &str| s.rejected.get(r).copied().unwrap_or(0);
        let ok = got("replayed") == 1 && got("bad_mac") == 1 && got("short") == 1 && got("foreign") == 1;
        if ok && s.accepted == 2 && s.undecodable == 1 { Ok(()) } else { Err(format!("{s:?}")) }
    })
    .await?;

    // The gossip loop survived all that: a new instance joins a.
    let c = net.start("c", "ap", 3, &[a.addr()], Quorum::Majority).await?;
    eventually("c joins a", PATIENCE, || {
        if a.alive().contains(&"c".to_owned()) { Ok(()) } else { Err(format!("{:?}", a.alive())) }
    })
    .await?;
    drop(c);
    Ok(())
}
