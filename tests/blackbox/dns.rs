//! The DNS server through the binary: `meridian demo` (and `serve` with a zone file),
//! queried with dig and kdig as clients anywhere would.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use anyhow::Result;
use meridian_tests::{Meridian, Reply, eventually, kubectl_ok};

const WEB: &str = "web.default.demo.svc.meridian.test";
const WEB_REGION_US: &str = "web.default.demo.svc.us-east1.meridian.test";
const WEB_ZONE_US: &str = "web.default.demo.svc.us-east1-b.us-east1.meridian.test";

/// The demo with every shard of `web` and `api` listed (each cluster's first list is in).
fn demo() -> Result<Meridian> {
    let m = Meridian::demo()?;
    eventually(Duration::from_secs(10), "demo names answer", || {
        let web = m.dig(&["A", WEB])?.answers("A").len() == 3;
        let api = m.dig(&["A", "api.shop.demo.svc.meridian.test"])?.answers("A").len() == 2;
        Ok((web && api).then_some(()))
    })?;
    Ok(m)
}

fn lb_ip(m: &Meridian, cluster: &str, ns: &str, svc: &str) -> Result<String> {
    kubectl_ok(
        &m.kubeconfig(),
        cluster,
        &["-n", ns, "get", "svc", svc, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
    )
}

/// Federation names at each level, Ingress names, MCS names: each a query, the expected
/// status and answer data. Both dig and kdig must agree.
#[test]
fn naming_rules_of_federation_ingress_and_clusterset_names() -> Result<()> {
    let m = demo()?;
    let us = lb_ip(&m, "us-east", "default", "web")?;
    let eu = lb_ip(&m, "eu-west", "default", "web")?;
    let ap = lb_ip(&m, "ap-south", "default", "web")?;
    let mut all = vec![us.clone(), eu.clone(), ap.clone()];
    all.sort();
    let api_us = lb_ip(&m, "us-east", "shop", "api")?;
    let ing_eu = kubectl_ok(
        &m.kubeconfig(),
        "eu-west",
        &["get", "ingress", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
    )?;
    let api_eu = lb_ip(&m, "eu-west", "shop", "api")?;
    let mut api_both = vec![api_us.clone(), api_eu];
    api_both.sort();
    // (type, name, status, expected sorted answer data of that type)
    let cases: Vec<(&str, &str, &str, Vec<String>)> = vec![
        ("A", WEB, "NOERROR", all.clone()),
        ("A", WEB_REGION_US, "NOERROR", vec![us.clone()]),
        ("A", WEB_ZONE_US, "NOERROR", vec![us.clone()]),
        ("A", "web.default.demo.svc.europe-west1-b.europe-west1.meridian.test", "NOERROR", vec![eu.clone()]),
        ("A", "web.default.demo.svc.asia-south1.meridian.test", "NOERROR", vec![ap.clone()]),
        // api is not in ap-south: its ap-south names are CNAMEs down to the global name.
        (
            "CNAME",
            "api.shop.demo.svc.asia-south1.meridian.test",
            "NOERROR",
            vec!["api.shop.demo.svc.meridian.test.".into()],
        ),
        ("A", "api.shop.demo.svc.asia-south1-a.asia-south1.meridian.test", "NOERROR", api_both.clone()),
        ("A", "api.shop.demo.svc.us-east1.meridian.test", "NOERROR", vec![api_us.clone()]),
        ("A", "web.default.demo.ing.europe-west1.meridian.test", "NOERROR", vec![ing_eu.clone()]),
        ("A", "www.meridian.test", "NOERROR", Vec::new()), // three ingress addresses, checked below
        ("A", "web.default.svc.clusterset.local", "NOERROR", all.clone()),
        (
            "SRV",
            "_http._tcp.web.default.svc.clusterset.local",
            "NOERROR",
            vec!["0 100 8080 web.default.svc.clusterset.local.".into()],
        ),
        ("TXT", "dns-version.clusterset.local", "NOERROR", vec!["\"1.0.0\"".into()]),
        // api has no ServiceExport: no clusterset name.
        ("A", "api.shop.svc.clusterset.local", "NXDOMAIN", Vec::new()),
        ("A", "nothing.default.demo.svc.meridian.test", "NXDOMAIN", Vec::new()),
    ];
    for (t, name, status, want) in &cases {
        for reply in [m.dig(&[t, name])?, m.kdig(&[t, name])?] {
            assert_eq!(&reply.status(), status, "{t} {name}:\n{}", reply.text);
            if !want.is_empty() {
                assert_eq!(&reply.answers(t), want, "{t} {name}:\n{}", reply.text);
            }
        }
    }
    let www = m.dig(&["A", "www.meridian.test"])?;
    assert_eq!(www.answers("A").len(), 3, "{}", www.text);
    assert!(www.answers("A").contains(&ing_eu), "{}", www.text);
    Ok(())
}

/// Section 6: flags, negative answers with the SOA, REFUSED, case, EDNS, opcodes, ANY.
#[test]
fn protocol_behaviour_through_the_binary() -> Result<()> {
    let m = demo()?;
    // (type, name, status, AA, SOA in authority with the negative TTL)
    let cases = [
        ("A", WEB, "NOERROR", true, false),
        ("A", "nope.meridian.test", "NXDOMAIN", true, true),
        ("TXT", WEB, "NOERROR", true, true),
        ("TYPE65000", WEB, "NOERROR", true, true),
        ("A", "example.org", "REFUSED", false, false),
        ("SOA", "meridian.test", "NOERROR", true, false),
    ];
    for (t, name, status, aa, soa) in cases {
        for r in [m.dig(&[t, name])?, m.kdig(&[t, name])?] {
            assert_eq!(r.status(), status, "{t} {name}:\n{}", r.text);
            assert_eq!(r.has_flag("aa"), aa, "AA for {t} {name}:\n{}", r.text);
            assert!(!r.has_flag("ra"), "RA for {t} {name}:\n{}", r.text);
            let auth = r.section("AUTHORITY");
            assert_eq!(auth.iter().any(|x| x.rtype == "SOA" && x.ttl == 30), soa, "{t} {name}:\n{}", r.text);
        }
    }
    // Case-insensitive, question echoed as sent.
    let mixed = "WeB.DeFaUlT.dEmO.SvC.MeRiDiAn.TeSt";
    let r = m.dig(&["A", mixed])?;
    assert_eq!(r.answers("A").len(), 3, "{}", r.text);
    assert!(r.text.contains(&format!(";{mixed}.")), "question not echoed as sent:\n{}", r.text);
    // EDNS: OPT echoed; version 1 gets BADVERS.
    let r = m.dig(&["+bufsize=4096", "A", WEB])?;
    assert!(r.text.contains("OPT PSEUDOSECTION"), "{}", r.text);
    let r = m.dig(&["+edns=1", "+noednsnegotiation", "A", WEB])?;
    assert_eq!(r.status(), "BADVERS", "{}", r.text);
    // Unknown opcode: NOTIMP.
    let r = m.dig(&["+opcode=15", "A", WEB])?;
    assert_eq!(r.status(), "NOTIMP", "{}", r.text);
    // ANY is answered minimally (one RRset).
    let r = m.dig(&["ANY", WEB])?;
    let types: std::collections::BTreeSet<_> = r.section("ANSWER").into_iter().map(|x| x.rtype).collect();
    assert_eq!(types.len(), 1, "{}", r.text);
    // TTLs: 30 s by default.
    assert!(m.dig(&["A", WEB])?.section("ANSWER").iter().all(|x| x.ttl == 30));
    Ok(())
}

/// Malformed packets: FORMERR when a header can be read, silence when not, and the
/// server keeps answering.
#[test]
fn malformed_packets_get_formerr_and_never_stop_the_server() -> Result<()> {
    let m = demo()?;
    let sock = UdpSocket::bind("127.0.0.1:0")?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))?;
    // A header claiming two questions but carrying one.
    let mut pkt = vec![0x12, 0x34, 0x01, 0x00, 0x00, 0x02, 0, 0, 0, 0, 0, 0];
    pkt.extend_from_slice(b"\x03www\x08meridian\x04test\x00\x00\x01\x00\x01");
    sock.send_to(&pkt, m.dns)?;
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf)?;
    assert!(n >= 12, "short reply");
    assert_eq!(&buf[..2], &[0x12, 0x34], "id echoed");
    assert_eq!(buf[3] & 0x0f, 1, "FORMERR");
    // Garbage of all sizes, then a valid query still answers.
    for len in [0usize, 1, 5, 11, 12, 13, 100, 512, 1400] {
        let junk: Vec<u8> = (0..len).map(|i| (i * 37 % 251) as u8).collect();
        sock.send_to(&junk, m.dns)?;
    }
    assert_eq!(m.dig(&["A", WEB])?.answers("A").len(), 3);
    Ok(())
}

/// Making all of us-east's `web` endpoints not ready (through kubectl against the
/// simulator) turns its zone name into a CNAME to the region name and then to the
/// global name within one second; restoring them reverts it.
#[test]
fn unhealthy_zone_fails_over_by_cname_within_a_second() -> Result<()> {
    let m = demo()?;
    let us = lb_ip(&m, "us-east", "default", "web")?;
    kubectl_ok(&m.kubeconfig(), "us-east", &["annotate", "svc", "web", "sim.meridian.io/ready=false", "--overwrite"])?;
    let t0 = Instant::now();
    let cname_chain = |r: &Reply| -> Vec<(String, String)> {
        r.section("ANSWER").into_iter().filter(|x| x.rtype == "CNAME").map(|x| (x.name, x.data)).collect()
    };
    // zone → region (us-east1 has no other healthy shard) → global, whose A records follow.
    let want = vec![
        (format!("{WEB_ZONE_US}."), format!("{WEB_REGION_US}.")),
        (format!("{WEB_REGION_US}."), format!("{WEB}.")),
    ];
    let r = eventually(Duration::from_secs(1), "zone name becomes a CNAME chain", || {
        let r = m.dig(&["A", WEB_ZONE_US])?;
        Ok((cname_chain(&r) == want).then_some(r))
    })?;
    assert!(t0.elapsed() <= Duration::from_secs(1));
    let a = r.answers("A");
    assert_eq!(a.len(), 2, "{}", r.text);
    assert!(!a.contains(&us), "us-east is unhealthy:\n{}", r.text);

    kubectl_ok(&m.kubeconfig(), "us-east", &["annotate", "svc", "web", "sim.meridian.io/ready=true", "--overwrite"])?;
    eventually(Duration::from_secs(1), "zone name answers A again", || {
        let r = m.dig(&["A", WEB_ZONE_US])?;
        Ok((r.answers("A") == [us.clone()] && r.answers("CNAME").is_empty()).then_some(()))
    })?;
    Ok(())
}

/// A service whose load balancers have IPv6 addresses answers AAAA; a TTL annotation
/// overrides the configured TTL.
#[test]
fn aaaa_answers_and_ttl_annotation() -> Result<()> {
    let m = demo()?;
    let kc = m.kubeconfig();
    for ctx in ["us-east", "eu-west"] {
        kubectl_ok(
            &kc,
            ctx,
            &["-n", "shop", "annotate", "svc", "api", "sim.meridian.io/ipv6=true", "meridian.io/ttl=7", "--overwrite"],
        )?;
    }
    let r: Reply = eventually(Duration::from_secs(5), "AAAA for api", || {
        let r = m.dig(&["AAAA", "api.shop.demo.svc.meridian.test"])?;
        Ok((r.answers("AAAA").len() == 2).then_some(r))
    })?;
    assert!(r.answers("AAAA").iter().all(|a| a.starts_with("fd00:")), "{}", r.text);
    assert!(r.section("ANSWER").iter().all(|x| x.ttl == 7), "{}", r.text);
    let v4 = m.dig(&["A", "api.shop.demo.svc.meridian.test"])?;
    assert_eq!(v4.answers("A").len(), 2, "{}", v4.text);
    Ok(())
}

fn zone_config(admin: std::net::SocketAddr, dns: std::net::SocketAddr) -> String {
    let head = meridian_tests::config_head("zt", admin, dns);
    format!(
        "{head}zones = [{{ name = \"zt.test\", file = \"zt.zone\" }}]\n[[clusters]]\nname = \"one\"\nsimulated = true\nregion = \"r1\"\n"
    )
}

fn zone_file(extra: &str) -> String {
    let mut z = String::from(
        "$ORIGIN zt.test.\n$TTL 300\n@ IN SOA ns1.zt.test. admin.zt.test. 7 3600 600 86400 60\n@ IN NS ns1.zt.test.\nns1 IN A 192.0.2.53\nmail IN A 192.0.2.25\n@ IN MX 10 mail.zt.test.\n@ IN CAA 0 issue \"letsencrypt.org\"\n",
    );
    // A name whose answer cannot fit in 512 bytes.
    for i in 0..20 {
        z.push_str(&format!("big IN TXT \"record {i:02} padding padding padding padding padding\"\n"));
    }
    z.push_str(extra);
    z
}

/// The zone's own records come from its master file; an edit is served without a
/// restart; a broken edit is reported with file and line and the old zone keeps serving;
/// a large answer is truncated over UDP and complete over TCP.
#[test]
fn zone_file_records_reloads_and_truncation() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = meridian_tests::free_addr();
    let dns = meridian_tests::free_addr();
    let file = dir.path().join("meridian.toml");
    let zone = dir.path().join("zt.zone");
    std::fs::write(&zone, zone_file(""))?;
    std::fs::write(&file, zone_config(admin, dns))?;
    let m = Meridian::serve(&file)?.with_ports(admin, dns)?;

    assert_eq!(m.dig(&["MX", "zt.test"])?.answers("MX"), ["10 mail.zt.test."]);
    assert_eq!(m.kdig(&["CAA", "zt.test"])?.answers("CAA").len(), 1);
    let soa = m.dig(&["SOA", "zt.test"])?;
    let serial: u64 = soa.answers("SOA").first().and_then(|s| s.split_whitespace().nth(2)?.parse().ok()).unwrap_or(0);
    assert!(serial >= 7, "{}", soa.text);

    // Truncation over UDP without EDNS, the whole answer over TCP.
    let udp = m.dig(&["+noedns", "+ignore", "TXT", "big.zt.test"])?;
    assert!(udp.has_flag("tc"), "{}", udp.text);
    let tcp = m.dig(&["+tcp", "TXT", "big.zt.test"])?;
    assert_eq!(tcp.answers("TXT").len(), 20, "{}", tcp.text);
    assert!(!tcp.has_flag("tc"));

    // An edit is served without restart, with a higher serial.
    std::fs::write(&zone, zone_file("new IN A 192.0.2.77\n"))?;
    eventually(Duration::from_secs(10), "edited zone served", || {
        Ok((m.dig(&["A", "new.zt.test"])?.answers("A") == ["192.0.2.77"]).then_some(()))
    })?;
    let serial2: u64 = m
        .dig(&["SOA", "zt.test"])?
        .answers("SOA")
        .first()
        .and_then(|s| s.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or(0);
    assert!(serial2 > serial, "serial {serial} -> {serial2}");

    // A broken edit: reported with file and line, the previous zone keeps serving.
    let broken = zone_file("new IN A 192.0.2.77\nbad IN A not-an-address\n");
    let bad_line = broken.lines().position(|l| l.starts_with("bad ")).map_or(0, |i| i + 1);
    std::fs::write(&zone, broken)?;
    eventually(Duration::from_secs(10), "broken zone reported", || {
        Ok(m.log().contains(&format!("zt.zone:{bad_line}")).then_some(()))
    })?;
    assert_eq!(m.dig(&["A", "new.zt.test"])?.answers("A"), ["192.0.2.77"], "old zone still served");
    assert_eq!(m.dig(&["MX", "zt.test"])?.answers("MX"), ["10 mail.zt.test."]);
    Ok(())
}
