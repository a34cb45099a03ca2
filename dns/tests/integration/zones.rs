//! Zone master files: records served, SOA/NS synthesised, reload, broken edits rejected.

use std::io::Write;

use crate::support::*;

const ZONE: &str = "$ORIGIN meridian.test.
$TTL 300
@       IN SOA ns1.meridian.test. admin.meridian.test. ( 2024010101 3600 600 604800 60 )
@       IN NS  ns1.meridian.test.
ns1     IN A   192.0.2.53
mail    IN A   192.0.2.25
@       IN MX  10 mail.meridian.test.
@       IN TXT \"v=spf1 -all\"
@       IN CAA 0 issue \"letsencrypt.org\"
_sip._tcp IN SRV 10 60 5060 sip.meridian.test.
sip     IN AAAA 2001:db8::5
alias   IN CNAME mail
";

fn write(path: &std::path::Path, text: &str) {
    let mut f = std::fs::File::create(path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
}

fn with_zone_file(env_dir: &std::path::Path) -> (meridian_config::Config, std::path::PathBuf) {
    let path = env_dir.join("meridian.test.zone");
    write(&path, ZONE);
    let mut c = config();
    c.dns.zones.push(meridian_config::dns::ZoneConfig {
        name: "meridian.test".into(),
        file: Some(path.clone()),
        nameservers: Vec::new(),
    });
    (c, path)
}

/// Every record type of the file is served, the CNAME is chased, the file's SOA is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zone_file_records_are_served() {
    let dir = tempfile::tempdir().expect("dir");
    let (c, _) = with_zone_file(dir.path());
    let env = start(c, vec![]).await;
    let cases: &[(&str, &str, &str, &str)] = &[
        ("A", "ns1.meridian.test", "A", "192.0.2.53"),
        ("MX", "meridian.test", "MX", "10 mail.meridian.test."),
        ("TXT", "meridian.test", "TXT", "\"v=spf1 -all\""),
        ("CAA", "meridian.test", "CAA", "0 issue \"letsencrypt.org\""),
        ("SRV", "_sip._tcp.meridian.test", "SRV", "10 60 5060 sip.meridian.test."),
        ("AAAA", "sip.meridian.test", "AAAA", "2001:db8::5"),
        ("A", "alias.meridian.test", "A", "192.0.2.25"),
        ("NS", "meridian.test", "NS", "ns1.meridian.test."),
    ];
    for (t, name, rt, want) in cases {
        let out = dig(&env, &[t, name]);
        assert_eq!(answers(&out, rt), vec![want.to_string()], "{t} {name}: {out}");
    }
    let soa = answers(&dig(&env, &["SOA", "meridian.test"]), "SOA");
    assert!(soa[0].starts_with("ns1.meridian.test. admin.meridian.test."), "{soa:?}");
    // The negative TTL is min(SOA TTL, MINIMUM) = 60.
    let out = dig(&env, &["A", "nope.meridian.test"]);
    assert_eq!(section(&out, "AUTHORITY").first().map(|r| r.1), Some(60), "{out}");
    env.server.shutdown().await;
}

/// NS, MX and SRV answers carry the addresses of their targets served here in the
/// additional section (RFC 1034 §4.3.2, RFC 2782), as Knot and BIND do: a resolver that
/// asks for the NS set learns its name servers' addresses with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ns_mx_and_srv_answers_carry_their_targets_addresses() {
    let dir = tempfile::tempdir().expect("dir");
    let (c, _) = with_zone_file(dir.path());
    let env = start(c, vec![]).await;
    // Each additional record other than the OPT, as "owner type data".
    let cases: &[(&str, &str, &[&str])] = &[
        ("NS", "meridian.test", &["ns1.meridian.test. A 192.0.2.53"]),
        ("MX", "meridian.test", &["mail.meridian.test. A 192.0.2.25"]),
        ("SRV", "_sip._tcp.meridian.test", &["sip.meridian.test. AAAA 2001:db8::5"]),
        ("TXT", "meridian.test", &[]),
    ];
    for (t, name, want) in cases {
        let out = dig(&env, &[t, name]);
        let got: Vec<String> = section(&out, "ADDITIONAL")
            .into_iter()
            .filter(|r| r.2 != "OPT")
            .map(|(owner, _, rtype, data)| format!("{owner} {rtype} {data}"))
            .collect();
        assert_eq!(got, *want, "{t} {name}: {out}");
    }
    env.server.shutdown().await;
}

/// An edit is served after `reload` and advances the serial; a broken edit is reported
/// with file and line and the previous zone keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_serves_edits_and_rejects_broken_files() {
    let dir = tempfile::tempdir().expect("dir");
    let (c, path) = with_zone_file(dir.path());
    let env = start(c.clone(), vec![]).await;
    assert_eq!(meridian_dns::DnsServer::watched_files(&c), vec![path.clone()]);
    let serial = |out: &str| {
        answers(out, "SOA").first().and_then(|s| s.split_whitespace().nth(2).map(str::to_owned)).unwrap_or_default()
    };
    let before = serial(&dig(&env, &["SOA", "meridian.test"]));

    write(&path, &format!("{ZONE}new IN A 192.0.2.99\n"));
    env.server.reload(&c).expect("valid edit reloads");
    assert_eq!(answers(&dig(&env, &["A", "new.meridian.test"]), "A"), vec!["192.0.2.99"]);
    let after: u64 = serial(&dig(&env, &["SOA", "meridian.test"])).parse().expect("serial");
    assert!(after > before.parse::<u64>().expect("serial"), "serial did not advance: {before} -> {after}");

    write(&path, &format!("{ZONE}new IN A 192.0.2.99\nbroken IN A not-an-address\nlater IN A 192.0.2.100\n"));
    let err = env.server.reload(&c).expect_err("broken edit is rejected").to_string();
    assert!(err.contains(&format!("{}:14:", path.display())), "error does not name file:line: {err}");
    assert_eq!(answers(&dig(&env, &["A", "new.meridian.test"]), "A"), vec!["192.0.2.99"], "old zone must keep serving");
    assert_eq!(status(&dig(&env, &["A", "later.meridian.test"])), "NXDOMAIN");
    env.server.shutdown().await;
}

/// Without a file, SOA and NS are synthesised from the configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soa_and_ns_synthesised() {
    let env = start(config(), vec![]).await;
    let soa = answers(&dig(&env, &["SOA", "meridian.test"]), "SOA");
    assert!(soa[0].starts_with("ns1.meridian.test. hostmaster.meridian.test."), "{soa:?}");
    assert_eq!(answers(&dig(&env, &["NS", "clusterset.local"]), "NS"), vec!["ns1.clusterset.local."]);
    env.server.shutdown().await;
}

fn with_zone(dir: &std::path::Path, text: &str) -> meridian_config::Config {
    let path = dir.join("meridian.test.zone");
    write(&path, text);
    let mut c = config();
    c.dns.zones.push(meridian_config::dns::ZoneConfig {
        name: "meridian.test".into(),
        file: Some(path),
        nameservers: Vec::new(),
    });
    c
}

/// RFC 2181 §5: a CNAME loop in a zone file is answered with each CNAME once (the chase
/// stops where the chain comes back), with dig and kdig.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cname_loop_answers_each_record_once() {
    let dir = tempfile::tempdir().expect("dir");
    let text = "$TTL 300\nns1 IN A 192.0.2.53\na IN CNAME b\nb IN CNAME c\nc IN CNAME a\nself IN CNAME self\n";
    let env = start(with_zone(dir.path(), text), vec![]).await;
    let cases: &[(&str, &[&str])] = &[
        ("a.meridian.test", &["a.meridian.test.", "b.meridian.test.", "c.meridian.test."]),
        ("c.meridian.test", &["c.meridian.test.", "a.meridian.test.", "b.meridian.test."]),
        ("self.meridian.test", &["self.meridian.test."]),
    ];
    for (name, owners) in cases {
        for out in [dig(&env, &["A", name]), kdig(&env, &["A", name])] {
            assert_eq!(status(&out), "NOERROR", "{name}: {out}");
            let got: Vec<String> = section(&out, "ANSWER").into_iter().map(|r| r.0).collect();
            assert_eq!(got, owners.iter().map(|o| o.to_string()).collect::<Vec<_>>(), "{name}: {out}");
        }
    }
    env.server.shutdown().await;
}

/// A DNAME in a zone file (RFC 6672): the zone loads, the DNAME is served at its owner, and
/// a name below it gets the DNAME, the CNAME synthesised from it and the target's data;
/// a synthesised name over 255 octets is YXDOMAIN (§2.2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dname_is_served_and_redirects_names_below_it() {
    let dir = tempfile::tempdir().expect("dir");
    let long = format!("{}.meridian.test.", ["x".repeat(63), "y".repeat(63), "z".repeat(63)].join("."));
    let text = format!(
        "$TTL 300\nns1 IN A 192.0.2.53\nold IN DNAME new.meridian.test.\nwww.new IN A 192.0.2.80\n\
         away IN DNAME example.org.\nlong IN DNAME {long}\n"
    );
    let env = start(with_zone(dir.path(), &text), vec![]).await;
    for out in [dig(&env, &["DNAME", "old.meridian.test"]), kdig(&env, &["DNAME", "old.meridian.test"])] {
        assert_eq!(answers(&out, "DNAME"), vec!["new.meridian.test."], "{out}");
    }
    for out in [dig(&env, &["A", "WWW.old.meridian.test"]), kdig(&env, &["A", "WWW.old.meridian.test"])] {
        assert_eq!(status(&out), "NOERROR", "{out}");
        let got: Vec<(String, String, String)> =
            section(&out, "ANSWER").into_iter().map(|r| (r.0.to_lowercase(), r.2, r.3.to_lowercase())).collect();
        let want = [
            ("old.meridian.test.", "DNAME", "new.meridian.test."),
            ("www.old.meridian.test.", "CNAME", "www.new.meridian.test."),
            ("www.new.meridian.test.", "A", "192.0.2.80"),
        ];
        let want: Vec<(String, String, String)> =
            want.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
        assert_eq!(got, want, "{out}");
        assert!(flags(&out).contains(&"aa".to_owned()), "{out}");
    }
    // Out of the zone: the client follows the CNAME itself.
    let out = dig(&env, &["A", "a.away.meridian.test"]);
    assert_eq!(answers(&out, "CNAME"), vec!["a.example.org."], "{out}");
    assert_eq!(answers(&out, "DNAME"), vec!["example.org."], "{out}");
    // The target below the DNAME does not exist: NXDOMAIN for it, after the redirection.
    let out = dig(&env, &["A", "nope.old.meridian.test"]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert_eq!(answers(&out, "CNAME"), vec!["nope.new.meridian.test."], "{out}");
    let out = dig(&env, &["A", &format!("{}.long.meridian.test", "w".repeat(60))]);
    assert_eq!(status(&out), "YXDOMAIN", "{out}");
    assert_eq!(answers(&out, "DNAME"), vec![long.clone()], "{out}");
    env.server.shutdown().await;
}
