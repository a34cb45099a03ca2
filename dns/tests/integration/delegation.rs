//! Zone cuts (referrals, RFC 1034 §4.3.2), wildcards (RFC 4592) and the cap on address
//! records per answer, checked with dig.

use crate::support::*;

const ZONE: &str = "$ORIGIN cut.test.
$TTL 300
@        IN SOA ns1 admin ( 7 3600 600 86400 60 )
@        IN NS  ns1
ns1      IN A   192.0.2.53
sub      IN NS  ns.sub
sub      IN NS  ns.elsewhere.example.
ns.sub   IN A   192.0.2.99
deep.sub IN A   192.0.2.1
*.wild   IN A   192.0.2.7
x.wild   IN TXT \"real\"
";

async fn env() -> (Env, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("cut.test.zone");
    std::fs::write(&path, ZONE).expect("write zone");
    let mut c = config();
    c.dns.zones.push(meridian_config::dns::ZoneConfig {
        name: "cut.test".into(),
        file: Some(path),
        nameservers: Vec::new(),
    });
    (start(c, vec![]).await, dir)
}

/// At and below a delegation the server refers: no AA, no answer, the cut's NS in the
/// authority section and the in-cut name server's address as glue; DS at the cut is the
/// parent's, answered authoritatively (NODATA here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_below_a_zone_cut_get_a_referral() {
    let (env, _dir) = env().await;
    for (t, name) in
        [("A", "deep.sub.cut.test"), ("A", "sub.cut.test"), ("NS", "sub.cut.test"), ("A", "new.sub.cut.test")]
    {
        let out = dig(&env, &[t, name]);
        assert_eq!(status(&out), "NOERROR", "{t} {name}: {out}");
        assert!(!flags(&out).contains(&"aa".to_owned()), "{t} {name}: a referral is not authoritative: {out}");
        assert!(section(&out, "ANSWER").is_empty(), "{t} {name}: {out}");
        let mut ns: Vec<String> = section(&out, "AUTHORITY").into_iter().filter(|r| r.2 == "NS").map(|r| r.3).collect();
        ns.sort();
        assert_eq!(ns, ["ns.elsewhere.example.", "ns.sub.cut.test."], "{t} {name}: {out}");
        let glue: Vec<(String, String)> =
            section(&out, "ADDITIONAL").into_iter().filter(|r| r.2 == "A").map(|r| (r.0, r.3)).collect();
        assert_eq!(glue, [("ns.sub.cut.test.".to_owned(), "192.0.2.99".to_owned())], "{t} {name}: {out}");
    }
    let ds = dig(&env, &["DS", "sub.cut.test"]);
    assert_eq!(status(&ds), "NOERROR", "{ds}");
    assert!(flags(&ds).contains(&"aa".to_owned()), "DS is the parent's: {ds}");
    assert!(section(&ds, "AUTHORITY").iter().any(|r| r.2 == "SOA"), "{ds}");
    env.server.shutdown().await;
}

/// A wildcard answers the names that do not exist below its parent, with the query's
/// name as the owner, however many labels deep; names that exist (or are empty
/// non-terminals) are not covered, and a name elsewhere is still NXDOMAIN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcards_answer_the_names_that_do_not_exist() {
    let (env, _dir) = env().await;
    for name in ["foo.wild.cut.test", "a.b.wild.cut.test"] {
        let out = dig(&env, &["A", name]);
        assert_eq!(answers(&out, "A"), ["192.0.2.7"], "{name}: {out}");
        assert_eq!(section(&out, "ANSWER")[0].0, format!("{name}."), "owner is the query name: {out}");
        assert!(flags(&out).contains(&"aa".to_owned()), "{out}");
    }
    let existing = dig(&env, &["A", "x.wild.cut.test"]);
    assert_eq!((status(&existing).as_str(), answers(&existing, "A").len()), ("NOERROR", 0), "{existing}");
    let ent = dig(&env, &["A", "wild.cut.test"]);
    assert_eq!((status(&ent).as_str(), answers(&ent, "A").len()), ("NOERROR", 0), "{ent}");
    let elsewhere = dig(&env, &["A", "nope.cut.test"]);
    assert_eq!(status(&elsewhere), "NXDOMAIN", "{elsewhere}");
    env.server.shutdown().await;
}

/// A service with 120 addresses answers 8 of them by default and never more than 100,
/// even when its annotation asks for every one (BIND refuses RRsets over 100 records).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_capped() {
    let many: Vec<String> = (0..120).map(|i| format!("10.1.{}.{}", i / 200, 1 + i % 200)).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    let mut wide = shard("us-east", &refs, 1);
    wide.annotations.insert("meridian.io/max-answers".into(), "0".into());
    let env = start(
        config(),
        vec![svc("us-east", "shop", "many", shard("us-east", &refs, 1)), svc("us-east", "shop", "wide", wide)],
    )
    .await;
    let tcp = ["+tcp", "+ignore"];
    let default = dig(&env, &["A", "many.shop.demo.svc.meridian.test", tcp[0]]);
    assert_eq!(answers(&default, "A").len(), 8, "{default}");
    let wide = dig(&env, &["A", "wide.shop.demo.svc.meridian.test", tcp[0], tcp[1]]);
    assert_eq!(answers(&wide, "A").len(), 100, "{wide}");
    env.server.shutdown().await;
}
