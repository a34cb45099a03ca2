//! EDNS options answered with kdig and dig as clients: NSID (RFC 5001), server cookies
//! (RFC 7873, RFC 9018), Extended DNS Errors (RFC 8914); the addresses of SRV targets
//! in the additional section (RFC 2782); and a dump of every served zone that
//! `named-checkzone` (BIND) and Knot's zone checker both accept.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// The data of `; NAME: value` in a dig/kdig OPT pseudosection (`NSID`, `COOKIE`, `EDE`).
fn opt_line<'a>(out: &'a str, name: &str) -> Option<&'a str> {
    let tag = format!("; {name}: ");
    out.lines().find_map(|l| l.split_once(&tag).map(|(_, v)| v.trim()))
}

/// kdig's COOKIE line (client and server cookie in one hex string), split.
fn cookie(out: &str) -> Option<(String, String)> {
    let v = opt_line(out, "COOKIE")?.split_whitespace().next()?.to_ascii_lowercase();
    let (client, server) = v.split_at_checked(16)?;
    Some((client.to_owned(), server.to_owned()))
}

/// A raw query for `name` A with an OPT holding one option.
fn with_option(name: &str, code: u16, data: &[u8], qdcount: u16) -> Vec<u8> {
    let mut p = if qdcount == 0 { vec![0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1] } else { query(name, 1, None) };
    p[11] = 1;
    p.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0]);
    p.extend_from_slice(&(4 + data.len() as u16).to_be_bytes());
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(&(data.len() as u16).to_be_bytes());
    p.extend_from_slice(data);
    p
}

/// The options of a reply's OPT (the last record this server writes), as (code, data).
fn reply_options(reply: &[u8]) -> Vec<(u16, Vec<u8>)> {
    // The OPT is last: find it by its fixed fields (root owner, type 41, payload 1232).
    let Some(at) = reply.windows(5).rposition(|w| w == [0, 0, 41, 0x04, 0xd0]) else { return vec![] };
    let rdlen_at = at + 9;
    let mut rest = &reply[rdlen_at + 2..];
    let mut out = Vec::new();
    while rest.len() >= 4 {
        let code = u16::from_be_bytes([rest[0], rest[1]]);
        let len = usize::from(u16::from_be_bytes([rest[2], rest[3]]));
        out.push((code, rest[4..4 + len].to_vec()));
        rest = &rest[4 + len..];
    }
    out
}

const GLOBAL: &str = "web.shop.demo.svc.meridian.test";

async fn env_with(f: impl FnOnce(&mut meridian_config::Config)) -> Env {
    let mut c = config();
    f(&mut c);
    let updates = vec![svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1"], 1))];
    start(c, updates).await
}

/// RFC 5001: `kdig +nsid` gets the configured identifier; a server with none configured
/// answers without an NSID option, and no NSID is sent unasked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nsid_is_answered_to_kdig() {
    let env = env_with(|c| c.dns.nsid = Some("meridian-fra-1".into())).await;
    let out = kdig(&env, &["+nsid", "A", GLOBAL]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    let nsid = opt_line(&out, "NSID").unwrap_or_default();
    assert!(nsid.contains("meridian-fra-1"), "NSID shown: {out}");
    let out = kdig(&env, &["A", GLOBAL]);
    assert_eq!(opt_line(&out, "NSID"), None, "not asked: {out}");
    env.server.shutdown().await;
    let env = env_with(|_| {}).await;
    let out = kdig(&env, &["+nsid", "A", GLOBAL]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(opt_line(&out, "NSID"), None, "none configured: {out}");
    env.server.shutdown().await;
}

/// RFC 7873 with RFC 9018 server cookies: kdig's client cookie gets a 16-octet server
/// cookie (version 1); sent back with it, the query is answered normally with a fresh
/// one; a made-up server cookie is treated as a client cookie alone (answered, with a new
/// server cookie, no BADCOOKIE). The secret comes from `dns.cookie_secret_file`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_cookies_round_trip_with_kdig() {
    let dir = tempfile::tempdir().expect("dir");
    let secret = dir.path().join("cookie.key");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef\n").expect("write");
    let env = env_with(|c| c.dns.cookie_secret_file = Some(secret.clone())).await;
    let client = "24a1b2c3d4e5f607";
    let out = kdig(&env, &[&format!("+cookie={client}"), "A", GLOBAL]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    let (c, server) = cookie(&out).unwrap_or_else(|| panic!("a cookie: {out}"));
    assert_eq!(c, client, "client cookie echoed: {out}");
    assert_eq!(server.len(), 32, "16-octet server cookie: {out}");
    assert!(server.starts_with("01000000"), "version 1, reserved zero: {out}");
    let out = kdig(&env, &[&format!("+cookie={client}{server}"), "A", GLOBAL]);
    assert_eq!(status(&out), "NOERROR", "our cookie accepted: {out}");
    assert_eq!(answers(&out, "A"), ["192.0.2.1"], "{out}");
    let (c, again) = cookie(&out).unwrap_or_else(|| panic!("a cookie: {out}"));
    assert_eq!((c.as_str(), again.len()), (client, 32), "{out}");
    let out = kdig(&env, &[&format!("+cookie={client}0100000000000000ffffffffffffffff"), "A", GLOBAL]);
    assert_eq!(status(&out), "NOERROR", "a bad server cookie is not BADCOOKIE: {out}");
    assert_eq!(answers(&out, "A"), ["192.0.2.1"], "{out}");
    assert!(cookie(&out).is_some_and(|(_, s)| s.len() == 32 && s != "0100000000000000ffffffffffffffff"), "{out}");
    // kdig with its own random client cookie, as a resolver sends it.
    let out = kdig(&env, &["+cookie", "A", GLOBAL]);
    assert!(cookie(&out).is_some_and(|(c, s)| c.len() == 16 && s.len() == 32), "{out}");
    env.server.shutdown().await;
}

/// RFC 7873 §5.2.2: a COOKIE option whose length is not 8 or 16 to 40 is FORMERR (with an
/// OPT, no cookie); §5.4: no question but a cookie is answered NOERROR with a server
/// cookie (`dig +header-only +cookie`), no question and no cookie FORMERR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cookies_and_cookie_only_queries() {
    let env = env_with(|_| {}).await;
    let client = *b"\x01\x02\x03\x04\x05\x06\x07\x08";
    let cases: Vec<(&str, Vec<u8>, u16, u8, bool)> = vec![
        ("client cookie", client.to_vec(), 1, 0, true),
        ("40 octets", [&client[..], &[9; 32]].concat(), 1, 0, true),
        ("16 octets", [&client[..], &[9; 8]].concat(), 1, 0, true),
        ("empty", vec![], 1, 1, false),
        ("7 octets", client[..7].to_vec(), 1, 1, false),
        ("12 octets", [&client[..], &[9; 4]].concat(), 1, 1, false),
        ("15 octets", [&client[..], &[9; 7]].concat(), 1, 1, false),
        ("41 octets", [&client[..], &[9; 33]].concat(), 1, 1, false),
        ("no question, client cookie", client.to_vec(), 0, 0, true),
        ("no question, 7 octets", client[..7].to_vec(), 0, 1, false),
    ];
    for (what, data, qd, rcode, has_cookie) in cases {
        let reply = udp(env.addr, &with_option(GLOBAL, 10, &data, qd)).await.expect("answered");
        assert_eq!(rcode_of(&reply), rcode, "{what}");
        assert_eq!(reply[11], 1, "{what}: ARCOUNT, the OPT");
        let opts = reply_options(&reply);
        let got = opts.iter().find(|(c, _)| *c == 10);
        assert_eq!(got.is_some(), has_cookie, "{what}: {opts:?}");
        if let Some((_, c)) = got {
            assert_eq!((c.len(), &c[..8], c[8]), (24, &client[..], 1), "{what}");
        }
    }
    let out = dig(&env, &["+header-only", "+cookie"]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(out.contains("COOKIE:"), "{out}");
    let reply = udp(env.addr, &[0x12, 0x34, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0])
        .await
        .expect("answered");
    assert_eq!(rcode_of(&reply), 1, "no question, no cookie");
    env.server.shutdown().await;
}

/// RFC 8914: a name outside every zone is REFUSED with EDE 20 (Not Authoritative); a
/// class other than IN, a zone transfer over UDP and a meta type with EDE 21 (Not
/// Supported); only to a query that had an OPT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_extended_errors() {
    let env = env_with(|_| {}).await;
    let out = kdig(&env, &["+edns", "A", "www.example.org"]);
    assert_eq!(status(&out), "REFUSED", "{out}");
    assert!(opt_line(&out, "EDE").is_some_and(|e| e.starts_with("20 (Not Authoritative)")), "{out}");
    let out = dig(&env, &["CH", "TXT", "version.bind"]);
    assert_eq!(status(&out), "REFUSED", "{out}");
    assert!(opt_line(&out, "EDE").is_some_and(|e| e.starts_with("21 (Not Supported)")), "{out}");
    let out = kdig(&env, &["+edns", "+notcp", "-t", "TYPE254", "meridian.test"]);
    assert_eq!(status(&out), "NOTIMPL", "kdig's name for NOTIMP: {out}");
    assert!(opt_line(&out, "EDE").is_some_and(|e| e.starts_with("21 (Not Supported)")), "{out}");
    // A zone transfer over UDP (kdig and dig would switch to TCP): raw.
    let reply = udp(env.addr, &query("meridian.test", 252, Some(1232))).await.expect("answered");
    assert_eq!(rcode_of(&reply), 5);
    let ede = reply_options(&reply).into_iter().find(|(c, _)| *c == 15).expect("EDE");
    assert_eq!(u16::from_be_bytes([ede.1[0], ede.1[1]]), 21, "{ede:?}");
    let out = dig(&env, &["+noedns", "A", "www.example.org"]);
    assert_eq!(status(&out), "REFUSED", "{out}");
    assert!(!out.contains("OPT PSEUDOSECTION") && !out.contains("EDE"), "no OPT without one: {out}");
    let out = kdig(&env, &["+edns", "A", GLOBAL]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert_eq!(opt_line(&out, "EDE"), None, "an answer has none: {out}");
    env.server.shutdown().await;
}

/// RFC 2782: SRV answers carry the A records of their targets in the additional section
/// (names this server serves), as Knot does; 6 targets' addresses do not all fit in 512
/// octets without EDNS and are left out rather than truncating the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_answers_carry_target_addresses() {
    let mut updates = Vec::new();
    let eps = |base: u8| {
        (0..3).map(|i| endpoint(&format!("10.{base}.0.{}", i + 1), Some(&format!("db-{base}{i}")), true)).collect()
    };
    for (cluster, base) in [("us-east", 1u8), ("eu-west", 2)] {
        let mut s = shard(cluster, &[], 3);
        s.headless = true;
        s.endpoints = eps(base);
        updates.push(svc(cluster, "shop", "db", s));
        updates.push(meridian_model::table::Update::Export {
            cluster: cluster.into(),
            key: meridian_model::table::ObjectKey::new("shop", "db"),
            present: true,
        });
    }
    let env = start(config(), updates).await;
    let name = "_http._tcp.db.shop.svc.clusterset.local";
    let out = kdig(&env, &["+edns", "SRV", name]);
    let srv = answers(&out, "SRV");
    assert_eq!(srv.len(), 6, "{out}");
    let extra: Vec<(String, String)> =
        section(&out, "ADDITIONAL").into_iter().filter(|r| r.2 == "A").map(|r| (r.0, r.3)).collect();
    assert_eq!(extra.len(), 6, "one A per target: {out}");
    for (owner, addr) in &extra {
        assert!(srv.iter().any(|s| s.ends_with(&format!(" {owner}"))), "{owner} is a target: {out}");
        let direct = dig(&env, &["A", owner]);
        assert_eq!(answers(&direct, "A"), std::slice::from_ref(addr), "{direct}");
    }
    let out = dig(&env, &["+noedns", "+ignore", "SRV", name]);
    assert!(!flags(&out).contains(&"tc".to_owned()), "not truncated: {out}");
    assert_eq!(answers(&out, "SRV").len(), 6, "{out}");
    let n = section(&out, "ADDITIONAL").len();
    assert!(n < 6, "only the addresses that fit in 512 octets: {n}: {out}");
    env.server.shutdown().await;
}

/// A zone file with the record types operators write, served beside the generated zones.
const ZONE: &str = "$ORIGIN ops.test.
$TTL 300
@        IN SOA ns1 hostmaster ( 12 3600 600 86400 60 )
@        IN NS  ns1
@        IN NS  ns.provider.example.
@        IN MX  10 mail
@        IN TXT \"v=spf1 mx -all\" \"second \\\"quoted\\\" string\"
ns1      IN A   192.0.2.53
ns1      IN AAAA 2001:db8::53
mail     IN A   192.0.2.25
www      IN CNAME mail
_sip._tcp IN SRV 10 60 5060 mail
sub      IN NS  ns.sub
ns.sub   IN A   192.0.2.99
*.wild   IN A   192.0.2.7
old      IN DNAME ops.example.
caa      IN CAA 0 issue \"letsencrypt.org\"
";

/// Runs `cmd`; `None` when it is not installed.
fn run(cmd: &str, args: &[&str]) -> Option<(bool, String)> {
    let out = Command::new(cmd).args(args).output().ok()?;
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Some((out.status.success(), text))
}

/// Knot's zone checker on `file`: `kzonecheck` where packaged, else `knotc zone-check`
/// (Debian's knot ships only the latter; both run the same semantic checks).
fn knot_check(apex: &str, file: &Path, dir: &Path) -> (bool, String) {
    if let Some(r) = run("kzonecheck", &["-o", apex, &file.display().to_string()]) {
        return r;
    }
    let conf = dir.join(format!("{apex}.knot.conf"));
    let text = format!(
        "server:\n    rundir: {d}\ndatabase:\n    storage: {d}\nzone:\n  - domain: {apex}\n    file: {f}\n",
        d = dir.display(),
        f = file.display()
    );
    std::fs::write(&conf, text).expect("write knot conf");
    run("knotc", &["-c", &conf.display().to_string(), "zone-check", apex])
        .unwrap_or_else(|| panic!("neither kzonecheck nor knotc: apt-get install -y knot"))
}

/// Every served zone of a demo-like server (federated services with regions and zones,
/// a headless service, an Ingress, clusterset names, a zone file with NS, glue, MX, TXT,
/// CNAME, SRV, a delegation, a wildcard, a DNAME, CAA) dumped as a master file is
/// accepted by `named-checkzone` and by Knot's checker with no error, and holds what the
/// server answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_dumps_pass_named_checkzone_and_knot() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("ops.test.zone");
    std::fs::write(&path, ZONE).expect("write zone");
    let mut c = config();
    c.dns.clusterset.export = meridian_config::dns::ExportMode::All;
    c.dns.zones.push(meridian_config::dns::ZoneConfig {
        name: "ops.test".into(),
        file: Some(path),
        nameservers: vec![],
    });
    let mut updates = vec![
        svc("us-east", "shop", "web", shard("us-east", &["192.0.2.1", "2001:db8::1"], 1)),
        svc("eu-west", "shop", "web", shard("eu-west", &["192.0.2.2"], 1)),
        svc("ap-south", "shop", "web", shard("ap-south", &["192.0.2.3"], 0)),
    ];
    let mut db = shard("us-east", &[], 2);
    db.headless = true;
    db.endpoints = vec![endpoint("10.0.0.1", Some("db-0"), true), endpoint("10.0.0.2", None, true)];
    updates.push(svc("us-east", "shop", "db", db));
    let env = start(c, updates).await;
    let zones = env.server.zones();
    assert!(zones.len() >= 3, "{zones:?}");
    for apex in &zones {
        let dump = env.server.zone_dump(apex).expect("served");
        assert!(dump.lines().nth(1).is_some_and(|l| l.contains(" IN SOA ")), "SOA first: {dump}");
        let file = dir.path().join(format!("{apex}.dump"));
        std::fs::write(&file, &dump).expect("write dump");
        let (ok, out) = run("named-checkzone", &["-k", "fail", "-n", "fail", apex, &file.display().to_string()])
            .unwrap_or_else(|| panic!("named-checkzone missing: apt-get install -y bind9-utils"));
        assert!(ok && out.contains("OK"), "named-checkzone {apex}: {out}\n{dump}");
        let (ok, out) = knot_check(apex, &file, dir.path());
        assert!(ok && !out.contains("error"), "knot {apex}: {out}\n{dump}");
    }
    let dump = env.server.zone_dump("meridian.test.").expect("main zone");
    for want in [
        "web.shop.demo.svc.meridian.test. 30 IN A 192.0.2.1",
        "web.shop.demo.svc.meridian.test. 30 IN AAAA 2001:db8::1",
        "ns1.meridian.test.",
    ] {
        assert!(dump.contains(want), "{want}: {dump}");
    }
    let ops = env.server.zone_dump("OPS.test").expect("file zone");
    for want in ["IN MX 10 mail.ops.test.", "IN SRV 10 60 5060 mail.ops.test.", "\"second \\\"quoted\\\" string\""] {
        assert!(ops.contains(want), "{want}: {ops}");
    }
    assert_eq!(env.server.zone_dump("example.org"), None);
    env.server.shutdown().await;
}
