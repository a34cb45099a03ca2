//! Protocol behaviour of section 6, checked with dig, kdig and raw packets.

use std::time::Duration;

use meridian_testkit::wait::eventually_sync;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::*;

const GLOBAL: &str = "web.shop.demo.svc.meridian.test";

async fn env() -> Env {
    start(config(), vec![svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1))]).await
}

/// AA on authoritative answers, RA never; NXDOMAIN and NODATA carry the SOA with the
/// negative TTL; names outside the zones are REFUSED (without AA).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_rcodes_and_negative_answers() {
    let env = env().await;
    // (query type, name, status, aa, SOA in authority)
    let cases = [
        ("A", GLOBAL, "NOERROR", true, false),
        ("A", "nope.meridian.test", "NXDOMAIN", true, true),
        ("TXT", GLOBAL, "NOERROR", true, true),
        ("TYPE65000", GLOBAL, "NOERROR", true, true),
        ("A", "shop.demo.svc.meridian.test", "NOERROR", true, true),
        ("A", "example.org", "REFUSED", false, false),
        ("SOA", "meridian.test", "NOERROR", true, false),
        ("NS", "meridian.test", "NOERROR", true, false),
    ];
    for (t, name, want, aa, soa) in cases {
        for out in [dig(&env, &[t, name]), kdig(&env, &[t, name])] {
            assert_eq!(status(&out), want, "{t} {name}: {out}");
            let f = flags(&out);
            assert_eq!(f.contains(&"aa".to_owned()), aa, "{t} {name}: {out}");
            assert!(!f.contains(&"ra".to_owned()), "{t} {name}: {out}");
            let auth = section(&out, "AUTHORITY");
            assert_eq!(
                auth.iter().any(|r| r.2 == "SOA" && r.1 == 30 && r.0 == "meridian.test."),
                soa,
                "{t} {name}: {out}"
            );
        }
    }
    env.server.shutdown().await;
}

/// Names match case-insensitively and the question comes back exactly as sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_insensitive_and_question_echoed() {
    let env = env().await;
    let mixed = "WeB.ShOp.DeMo.SvC.MeRiDiAn.TeSt";
    let out = dig(&env, &["A", mixed]);
    assert_eq!(answers(&out, "A"), vec!["192.0.2.1"], "{out}");
    assert!(out.contains(&format!(";{mixed}.")), "question not echoed as sent: {out}");
    env.server.shutdown().await;
}

/// EDNS: OPT echoed with our payload size, BADVERS for version 1, ANY answered minimally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edns_badvers_and_minimal_any() {
    let env = env().await;
    let out = dig(&env, &["A", GLOBAL, "+edns=0"]);
    assert!(out.contains("EDNS: version: 0") && out.contains("udp: 1232"), "{out}");
    let out = dig(&env, &["A", GLOBAL, "+edns=1", "+noednsneg"]);
    assert_eq!(status(&out), "BADVERS", "{out}");
    let out = dig(&env, &["A", GLOBAL, "+noedns"]);
    assert!(!out.contains("OPT PSEUDOSECTION"), "{out}");
    let out = dig(&env, &["ANY", "meridian.test"]);
    assert_eq!(section(&out, "ANSWER").len(), 1, "ANY must return one RRset: {out}");
    env.server.shutdown().await;
}

/// Unknown opcodes get NOTIMP; two questions get FORMERR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notimp_and_formerr() {
    let env = env().await;
    let mut p = query(GLOBAL, 1, None);
    p[2] = 5 << 3; // opcode UPDATE
    assert_eq!(udp(env.addr, &p).await.map(|r| rcode_of(&r)), Some(4));
    let mut p = query(GLOBAL, 1, None);
    p[5] = 2;
    let q = query(GLOBAL, 1, None);
    p.extend_from_slice(&q[12..]);
    assert_eq!(udp(env.addr, &p).await.map(|r| rcode_of(&r)), Some(1));
    let out = dig(&env, &["A", GLOBAL, "+opcode=15"]);
    assert_eq!(status(&out), "NOTIMP", "{out}");
    env.server.shutdown().await;
}

/// A UDP answer bigger than the client allows is truncated (TC=1); TCP carries it whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_answers_truncate_over_udp_and_complete_over_tcp() {
    let addrs: Vec<String> = (1..=100).map(|i| format!("10.1.0.{i}")).collect();
    let refs: Vec<&str> = addrs.iter().map(String::as_str).collect();
    // Every address (up to the ceiling of 100), not the default 8: this is about size.
    let mut c = config();
    c.ranking.max_answers = 0;
    let env = start(c, vec![svc("us-east", "shop", "big", shard("us-east", &refs, 1))]).await;
    let name = "big.shop.demo.svc.meridian.test";
    for args in [vec!["A", name, "+ignore", "+noedns"], vec!["A", name, "+ignore", "+bufsize=1232"]] {
        let out = dig(&env, &args);
        assert!(flags(&out).contains(&"tc".to_owned()), "{out}");
    }
    let out = dig(&env, &["A", name, "+tcp"]);
    assert_eq!(answers(&out, "A").len(), 100, "{out}");
    let out = kdig(&env, &["A", name, "+tcp"]);
    assert_eq!(answers(&out, "A").len(), 100, "{out}");
    // dig retries over TCP on its own after TC=1.
    assert_eq!(answers(&dig(&env, &["A", name, "+noedns"]), "A").len(), 100);
    env.server.shutdown().await;
}

/// Several queries written at once on one TCP connection are all answered, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_tcp_queries() {
    let env = env().await;
    let mut s = tokio::net::TcpStream::connect(env.addr).await.expect("connect");
    let mut burst = Vec::new();
    for (i, name) in [GLOBAL, "nope.meridian.test", "example.org"].iter().enumerate() {
        let mut q = query(name, 1, None);
        q[1] = i as u8;
        burst.extend_from_slice(&(q.len() as u16).to_be_bytes());
        burst.extend_from_slice(&q);
    }
    s.write_all(&burst).await.expect("write");
    for (i, want) in [0u8, 3, 5].into_iter().enumerate() {
        let len = tokio::time::timeout(Duration::from_secs(2), s.read_u16()).await.expect("in time").expect("len");
        let mut msg = vec![0; len as usize];
        s.read_exact(&mut msg).await.expect("msg");
        assert_eq!(msg[1], i as u8, "answers out of order");
        assert_eq!(rcode_of(&msg), want);
    }
    env.server.shutdown().await;
}

/// An idle TCP connection is closed after `dns.tcp_idle_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_tcp_connections_close() {
    let mut c = config();
    c.dns.tcp_idle_timeout = meridian_config::Duration::from_millis(200);
    let env = start(c, vec![]).await;
    let mut s = tokio::net::TcpStream::connect(env.addr).await.expect("connect");
    let mut b = [0u8; 1];
    let r = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b)).await.expect("closed in time");
    assert!(matches!(r, Ok(0) | Err(_)), "connection still open");
    env.server.shutdown().await;
}

/// The server also answers on IPv6 when [::1] is available.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_listener() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipping the IPv6 listener check");
        return;
    }
    let mut c = config();
    c.dns.listen = vec!["[::1]:0".parse().expect("addr"), crate::support::listen_addr()];
    let env = start(c, vec![svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1))]).await;
    let addrs = env.server.local_addrs();
    assert_eq!(addrs.len(), 2);
    let v6 = addrs.iter().find(|a| a.is_ipv6()).copied().expect("v6 addr");
    let sock = tokio::net::UdpSocket::bind("[::1]:0").await.expect("bind v6");
    sock.send_to(&query(GLOBAL, 1, None), v6).await.expect("send");
    let mut buf = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(1), sock.recv(&mut buf)).await.expect("answer").expect("recv");
    assert_eq!(rcode_of(&buf[..n]), 0);
    env.server.shutdown().await;
}

/// A port already in use is an error naming the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_names_the_address() {
    let env = env().await;
    let mut c = config();
    c.dns.listen = vec![env.addr];
    let (table, _w) = meridian_model::table::Table::new();
    let err = meridian_dns::DnsServer::start(&c, table, &mut Default::default(), Default::default())
        .await
        .err()
        .expect("bind fails");
    assert!(err.to_string().contains(&env.addr.to_string()), "{err}");
    env.server.shutdown().await;
}

/// A burst from many clients (the UDP fast path receives and sends in batches) gets one
/// answer per query, each to the client that asked, with its own ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burst_of_queries_gets_every_answer_to_its_sender() {
    let env = env().await;
    let mut socks = Vec::new();
    for _ in 0..8 {
        socks.push(tokio::net::UdpSocket::bind("127.0.0.1:0").await.expect("bind"));
    }
    // 8 clients × 40 queries, all sent before any answer is read.
    for (c, sock) in socks.iter().enumerate() {
        for q in 0..40u16 {
            let mut p = query(GLOBAL, 1, None);
            p[..2].copy_from_slice(&((c as u16) << 8 | q).to_be_bytes());
            sock.send_to(&p, env.addr).await.expect("send");
        }
    }
    let mut buf = vec![0u8; 512];
    for (c, sock) in socks.iter().enumerate() {
        let mut ids = Vec::new();
        while ids.len() < 40 {
            let r = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf)).await;
            let n = r.expect("every query answered").expect("recv");
            assert_eq!(rcode_of(&buf[..n]), 0);
            ids.push(u16::from_be_bytes([buf[0], buf[1]]));
        }
        ids.sort_unstable();
        let want: Vec<u16> = (0..40u16).map(|q| (c as u16) << 8 | q).collect();
        assert_eq!(ids, want, "client {c}");
    }
    env.server.shutdown().await;
}

/// Shutdown stops the UDP workers promptly and releases the port: a plain (not
/// SO_REUSEPORT) socket can bind it right after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_the_port() {
    let env = env().await;
    let addr = env.addr;
    assert_eq!(udp(addr, &query(GLOBAL, 1, None)).await.map(|r| rcode_of(&r)), Some(0));
    let t0 = std::time::Instant::now();
    env.server.shutdown().await;
    assert!(t0.elapsed() < Duration::from_secs(1), "shutdown took {:?}", t0.elapsed());
    std::net::UdpSocket::bind(addr).expect("udp port released");
    std::net::TcpListener::bind(addr).expect("tcp port released");
}

/// The caller's token stops the server as `shutdown` does: once it is cancelled the
/// workers and the acceptor end and the ports are free again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_the_callers_token_stops_the_server() {
    let (table, mut writer) = meridian_model::table::Table::new();
    let mut updates: Vec<_> = clusters().into_iter().map(meridian_model::table::Update::Cluster).collect();
    updates.push(svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1)));
    writer.apply(updates);
    let c = config();
    let sockets = meridian_dns::Sockets::bind(&c.dns.listen).await.expect("bind");
    let token = tokio_util::sync::CancellationToken::new();
    let server = meridian_dns::DnsServer::serve(&c, table, sockets, &mut Default::default(), token.clone())
        .expect("server starts");
    let addr = server.local_addrs()[0];
    assert_eq!(udp(addr, &query(GLOBAL, 1, None)).await.map(|r| rcode_of(&r)), Some(0));
    token.cancel();
    let released = eventually_sync(Duration::from_secs(2), "ports released", || {
        (std::net::UdpSocket::bind(addr).is_ok() && std::net::TcpListener::bind(addr).is_ok()).then_some(())
    });
    assert!(released.await.is_ok(), "ports still held after the token was cancelled");
    server.shutdown().await;
}

/// RFC 6891 §6.1.1: a FORMERR to a query with a valid OPT carries an OPT. `dig
/// +header-only` sends no question and a client cookie (RFC 7873 §5.4): a request for a
/// server cookie, answered NOERROR with one (dig checks it echoes its client cookie).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn formerr_keeps_the_opt_record() {
    let env = env().await;
    let out = dig(&env, &["+header-only", "+cookie"]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(out.contains("OPT PSEUDOSECTION") && out.contains("udp: 1232"), "{out}");
    assert!(out.contains("COOKIE:") && out.contains("(good)"), "a server cookie: {out}");
    // Two questions with an OPT, as a raw packet.
    let mut p = query(GLOBAL, 1, Some(1232));
    let q = query(GLOBAL, 1, None);
    let opt_at = q.len();
    p[5] = 2;
    p.splice(opt_at..opt_at, q[12..].iter().copied());
    let reply = udp(env.addr, &p).await.expect("answered");
    assert_eq!(rcode_of(&reply), 1);
    assert_eq!(reply[11], 1, "ARCOUNT: the OPT");
    env.server.shutdown().await;
}

/// An unknown opcode gets NOTIMP with RD and CD clear: they are defined for QUERY only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notimp_for_an_unknown_opcode_copies_no_query_flags() {
    let env = env().await;
    for out in
        [dig(&env, &["A", GLOBAL, "+opcode=15", "+rec", "+cdflag"]), dig(&env, &["A", GLOBAL, "+rec", "+cdflag"])]
    {
        let f = flags(&out);
        let query = status(&out) == "NOERROR";
        assert!(query || status(&out) == "NOTIMP", "{out}");
        assert_eq!(f.contains(&"rd".to_owned()), query, "{out}");
        assert_eq!(f.contains(&"cd".to_owned()), query, "{out}");
    }
    env.server.shutdown().await;
}

/// RFC 8945 §5.2.1: the server has no TSIG keys, so a signed query is answered NOTAUTH
/// with an unsigned TSIG whose error is BADKEY — dig and kdig both report it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tsig_signed_query_gets_notauth_badkey() {
    let env = env().await;
    let key = "hmac-sha256:meridian-test-key:c2VjcmV0LXNlY3JldC1zZWNyZXQ=";
    let out = dig(&env, &["A", GLOBAL, "-y", key]);
    assert_eq!(status(&out), "NOTAUTH", "{out}");
    assert!(out.contains("TSIG PSEUDOSECTION") && out.contains("BADKEY"), "{out}");
    assert!(answers(&out, "A").is_empty(), "{out}");
    // kdig shows the TSIG error as the status.
    let out = kdig(&env, &["A", GLOBAL, "-y", key]);
    assert_eq!(status(&out), "BADKEY", "{out}");
    let tsig = out.lines().skip_while(|l| !l.contains("TSIG PSEUDOSECTION")).nth(1).unwrap_or_default();
    assert!(
        tsig.starts_with("meridian-test-key.") && tsig.contains("hmac-sha256. ") && tsig.ends_with(" BADKEY 0"),
        "{out}"
    );
    env.server.shutdown().await;
}
