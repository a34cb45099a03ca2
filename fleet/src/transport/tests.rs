use super::*;

fn key() -> FleetKey {
    FleetKey::from_bytes(1, b"a-shared-fleet-key-of-forty-bytes-long!!", "test").expect("key")
}

fn from() -> SocketAddr {
    "127.0.0.1:9".parse().expect("addr")
}

/// A datagram is admitted once; its replay is dropped and counted as such.
#[test]
fn replay_is_dropped_and_counted() {
    let stats = Stats::default();
    let mut gate = Gate::new(key(), stats.clone());
    let frame = Sealer::new(key(), 5).seal(b"syn", unix_ms()).expect("fits").remove(0);
    assert_eq!(gate.admit(&frame, from()).as_deref(), Some(&b"syn"[..]));
    assert_eq!(gate.admit(&frame, from()), None);
    let s = stats.snapshot();
    assert_eq!(s.accepted, 1);
    assert_eq!(s.rejected.get("replayed"), Some(&1));
    assert_eq!(s.rejected_total(), 1);
}

/// A two-part message comes out whole once both parts are in, in either order.
#[test]
fn two_parts_make_one_message() {
    let mut gate = Gate::new(key(), Stats::default());
    let payload: Vec<u8> = (0..MAX_DATAGRAM).map(|i| (i % 251) as u8).collect();
    let frames = Sealer::new(key(), 6).seal(&payload, unix_ms()).expect("two parts");
    assert_eq!(gate.admit(&frames[1], from()), None);
    assert_eq!(gate.admit(&frames[0], from()), Some(payload));
}

/// Forged datagrams never reach the replay table: a flood of them cannot evict the
/// counters of real senders.
#[test]
fn forgeries_leave_no_state() {
    let stats = Stats::default();
    let mut gate = Gate::new(key(), stats.clone());
    let wrong = FleetKey::from_bytes(1, b"another-key-entirely-also-forty-bytes!!!", "test").expect("key");
    for boot in 0..5000 {
        let forged = Sealer::new(wrong.clone(), boot).seal(b"x", unix_ms()).expect("fits").remove(0);
        assert_eq!(gate.admit(&forged, from()), None);
    }
    assert_eq!(gate.replay.len(), 0);
    assert_eq!(stats.snapshot().rejected.get("bad_mac"), Some(&5000));
}

fn syn(cluster_id: String) -> ChitchatEnvelope {
    ChitchatEnvelope {
        version: chitchat::ProtocolVersion::V0,
        message: chitchat::ChitchatMessage::Syn { cluster_id, digest: Default::default() },
    }
}

async fn socket(transport: &AuthTransport) -> Box<dyn Socket> {
    transport.open("127.0.0.1:0".parse().expect("addr")).await.expect("opens")
}

/// Through real sockets and chitchat's codec: a small message arrives whole with its
/// real sender, and one too large for a single frame travels as two parts and arrives
/// whole too.
#[tokio::test]
async fn messages_cross_the_bridge_whole() {
    let stats = Stats::default();
    let bound = || async { UdpSocket::bind("127.0.0.1:0").await.expect("binds") };
    let ta = AuthTransport::new(key(), bound().await, stats.clone());
    let tb = AuthTransport::new(key(), bound().await, Stats::default());
    let (mut a, mut b) = (socket(&ta).await, socket(&tb).await);
    let (a_addr, b_addr) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
    // Just above one frame's payload, below chitchat's datagram limit.
    for cluster_id in ["fleet".to_owned(), "x".repeat(wire::MAX_PART + 10)] {
        a.send(b_addr, syn(cluster_id.clone())).await.expect("sends");
        let got = tokio::time::timeout(Duration::from_secs(10), b.recv()).await.expect("in time").expect("receives");
        assert_eq!(got.from_addr, a_addr);
        assert_eq!(got.envelope, syn(cluster_id));
    }
    assert_eq!(stats.snapshot().split_messages, 1);
}

/// A burst of large messages queued on the gossip socket all reach chitchat: the
/// decoder's loopback socket (the kernel's default buffer, a few such messages) is never
/// fed faster than it is read.
#[tokio::test]
async fn a_burst_of_large_messages_all_arrives() {
    const BURST: usize = 40;
    let bound = || async { UdpSocket::bind("127.0.0.1:0").await.expect("binds") };
    let ta = AuthTransport::new(key(), bound().await, Stats::default());
    let tb_socket = bound().await;
    crate::sockbuf::apply(&tb_socket, 8 << 20);
    let stats = Stats::default();
    let tb = AuthTransport::new(key(), tb_socket, stats.clone());
    let (mut a, mut b) = (socket(&ta).await, socket(&tb).await);
    let b_addr = b.local_addr().expect("addr");
    // 30,000 bytes each: the decoder's 208 KiB buffer would hold about six.
    let big = |i: usize| syn(format!("{i:05}{}", "y".repeat(30_000)));
    for i in 0..BURST {
        a.send(b_addr, big(i)).await.expect("sends");
    }
    for i in 0..BURST {
        let got = tokio::time::timeout(Duration::from_secs(10), b.recv()).await.expect("in time").expect("receives");
        assert_eq!(got.envelope, big(i), "message {i} of the burst");
    }
    assert_eq!(stats.snapshot().decoded, BURST as u64);
}
