//! Bad input never crashes or hangs the server.

use crate::support::*;

/// Garbage, truncated headers, compression loops, oversized labels and many questions:
/// FORMERR where an answer is possible, silence otherwise, and the server keeps answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_packets_get_formerr_or_silence() {
    let env = start(config(), vec![svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1))]).await;
    let header = |qd: u8| vec![0xab, 0xcd, 0x00, 0x00, 0, qd, 0, 0, 0, 0, 0, 0];
    let mut loop_q = header(1);
    loop_q.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
    let mut long_label = header(1);
    long_label.push(64);
    long_label.extend_from_slice(&[b'a'; 64]);
    long_label.extend_from_slice(&[0, 0, 1, 0, 1]);
    let mut many = header(200);
    for _ in 0..200 {
        many.extend_from_slice(&[3, b'w', b'e', b'b', 0, 0, 1, 0, 1]);
    }
    let mut truncated_q = header(1);
    truncated_q.extend_from_slice(&[3, b'w', b'e']);
    // (packet, expected rcode or None for no answer)
    let cases: Vec<(Vec<u8>, Option<u8>)> = vec![
        (vec![], None),
        (vec![1, 2, 3], None),
        (header(0)[..11].to_vec(), None),
        (header(0), Some(1)),
        (loop_q, Some(1)),
        (long_label, Some(1)),
        (many, Some(1)),
        (truncated_q, Some(1)),
    ];
    for (i, (p, want)) in cases.iter().enumerate() {
        let got = udp(env.addr, p).await.map(|r| rcode_of(&r));
        assert_eq!(got, *want, "case {i}");
    }
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..300 {
        let len = (x % 300) as usize;
        let mut p = Vec::with_capacity(len);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            p.push(x as u8);
        }
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let _ = sock.send_to(&p, env.addr);
    }
    let out = dig(&env, &["A", "web.shop.demo.svc.meridian.test"]);
    assert_eq!(answers(&out, "A"), vec!["192.0.2.1"], "server stopped answering: {out}");
    env.server.shutdown().await;
}
