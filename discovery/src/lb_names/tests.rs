use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc::unbounded_channel;
use tokio::time::Instant;

use super::name::{InvalidName, MAX_NAMES_PER_SERVICE, check, wanted};
use super::state::{Answer, MAX_ADDRS, NameState, Outcome, keep_for, refresh_in, retry_in};
use super::task::{Command, Resolved};
use super::users::{NameUsers, Via};
use crate::table::ObjectKey;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("ip")
}

fn addrs(list: &[&str], ttl: u64) -> Answer {
    Answer::Addrs(list.iter().map(|s| ip(s)).collect(), secs(ttl))
}

fn failed() -> Answer {
    Answer::Failed("timed out".into())
}

const NODATA: Answer = Answer::Absent { nx: false, ttl: None };

/// Refreshes come at nine tenths of the TTL, never sooner than 5 s nor later than 5 min.
#[test]
fn refresh_follows_the_ttl_within_bounds() {
    let cases = [(0, 5_000), (1, 5_000), (5, 5_000), (10, 9_000), (60, 54_000), (300, 270_000), (86_400, 300_000)];
    for (ttl, want_ms) in cases {
        assert_eq!(refresh_in(secs(ttl)), Duration::from_millis(want_ms), "ttl {ttl}");
    }
}

/// Kept through failures for four bounded TTLs, and at least a minute.
#[test]
fn addresses_are_kept_for_four_ttls_and_at_least_a_minute() {
    let cases = [(0, 60), (5, 60), (15, 60), (30, 120), (60, 240), (300, 1200), (86_400, 1200)];
    for (ttl, want) in cases {
        assert_eq!(keep_for(secs(ttl)), secs(want), "ttl {ttl}");
    }
}

#[test]
fn retries_back_off_from_five_seconds_to_a_minute() {
    let got: Vec<u64> = (1..=7).map(|n| retry_in(n).as_secs()).collect();
    assert_eq!(got, [5, 10, 20, 40, 60, 60, 60]);
    assert_eq!(retry_in(u32::MAX), secs(60));
}

/// A failed lookup keeps the last good addresses until they are stale, then drops them.
#[test]
fn failures_keep_addresses_until_stale_then_drop_them() {
    let t0 = Instant::now();
    let mut s = NameState::default();
    let a = s.apply(&addrs(&["192.0.2.1", "192.0.2.2"], 30), &addrs(&["2001:db8::1"], 60), t0);
    assert_eq!(a, super::state::Applied { changed: true, next: secs(27), outcome: Outcome::Ok });
    let want = vec![ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::1")];
    assert_eq!(s.addresses(), want);

    // Failures within 4 × 30 s keep everything; retries back off.
    let a = s.apply(&failed(), &failed(), t0 + secs(30));
    assert_eq!((a.changed, a.next, a.outcome), (false, secs(5), Outcome::Failed));
    let a = s.apply(&failed(), &failed(), t0 + secs(40));
    assert_eq!((a.changed, a.next), (false, secs(10)));
    assert_eq!(s.addresses(), want);
    // The retry is due no later than when the IPv4 addresses turn stale (t0 + 120 s).
    let a = s.apply(&failed(), &failed(), t0 + secs(110));
    assert_eq!(a.next, secs(10), "capped at the time left before stale");

    // At 120 s the IPv4 addresses are stale; the IPv6 one (TTL 60: kept 240 s) stays.
    let a = s.apply(&failed(), &failed(), t0 + secs(120));
    assert!(a.changed);
    assert_eq!(s.addresses(), [ip("2001:db8::1")]);
    let a = s.apply(&failed(), &failed(), t0 + secs(240));
    assert!(a.changed);
    assert!(s.addresses().is_empty());
}

/// NXDOMAIN drops the addresses at once, and the name is asked again by its negative TTL.
#[test]
fn nxdomain_drops_addresses_at_once() {
    let t0 = Instant::now();
    let mut s = NameState::default();
    s.apply(&addrs(&["192.0.2.1"], 300), &NODATA, t0);
    assert_eq!(s.addresses(), [ip("192.0.2.1")]);
    let nx = Answer::Absent { nx: true, ttl: Some(secs(20)) };
    let a = s.apply(&nx, &nx, t0 + secs(1));
    assert_eq!(a, super::state::Applied { changed: true, next: secs(18), outcome: Outcome::NxDomain });
    assert!(s.addresses().is_empty());
    let a = s.apply(&NODATA, &NODATA, t0 + secs(2));
    assert_eq!((a.changed, a.outcome, a.next), (false, Outcome::NoData, secs(30)));
}

/// One family failing keeps that family's addresses while the other is refreshed.
#[test]
fn a_failing_family_keeps_its_own_addresses() {
    let t0 = Instant::now();
    let mut s = NameState::default();
    s.apply(&addrs(&["192.0.2.1"], 60), &addrs(&["2001:db8::1"], 60), t0);
    let a = s.apply(&addrs(&["192.0.2.9"], 60), &failed(), t0 + secs(54));
    assert_eq!((a.changed, a.outcome), (true, Outcome::Failed));
    assert_eq!(s.addresses(), [ip("192.0.2.9"), ip("2001:db8::1")]);
    // An IPv4-only name: AAAA NODATA is an answer, not a failure.
    let a = s.apply(&addrs(&["192.0.2.9"], 60), &NODATA, t0 + secs(60));
    // Asked again by the sooner of the two: NODATA without a negative TTL, 30 s.
    assert_eq!((a.outcome, a.next), (Outcome::Ok, secs(30)));
    assert_eq!(s.addresses(), [ip("192.0.2.9")]);
}

/// An answer's addresses are deduplicated and bounded.
#[test]
fn answers_are_bounded() {
    let many: Vec<IpAddr> = (0..200u8).map(|i| IpAddr::from([10, 0, 0, i])).chain([ip("10.0.0.1")]).collect();
    let mut s = NameState::default();
    s.apply(&Answer::Addrs(many, secs(60)), &NODATA, Instant::now());
    assert_eq!(s.addresses().len(), MAX_ADDRS);
    assert_eq!(s.addresses()[1], ip("10.0.0.1"));
}

/// Which hostnames are looked up, as data: `None` is accepted, else the error's kind.
#[test]
fn hostnames_from_clusters_are_checked() {
    let long_label = format!("{}.example.com", "a".repeat(64));
    let long_name = format!("{}.com", ["abcdefghij"; 23].join("."));
    let cases: Vec<(&str, Option<&str>)> = vec![
        ("a1b2c3-1234567890.us-east-1.elb.amazonaws.com", None),
        ("lb.meridian.test", None),
        ("xn--bcher-kva.example", None),
        ("kubernetes", Some("single")),
        ("10.0.0.1", Some("numeric")),
        ("1.2.3.4.5", Some("numeric")),
        ("localhost", Some("special")),
        ("db.localhost", Some("special")),
        ("x.invalid", Some("special")),
        ("printer.local", Some("special")),
        ("hidden.onion", Some("special")),
        ("notlocal", Some("single")),
        ("mylocal.com", None),
        ("", Some("syntax")),
        ("a..b.com", Some("syntax")),
        ("-a.example.com", Some("syntax")),
        ("a-.example.com", Some("syntax")),
        ("_srv.example.com", Some("syntax")),
        ("a b.example.com", Some("syntax")),
        ("a/b.example.com", Some("syntax")),
        ("UPPER.example.com", Some("syntax")),
        (long_label.as_str(), Some("syntax")),
        (long_name.as_str(), Some("syntax")),
    ];
    for (name, want) in cases {
        let got = check(name).err().map(|e| match e {
            InvalidName::Syntax { .. } => "syntax",
            InvalidName::SingleLabel(_) => "single",
            InvalidName::Numeric(_) => "numeric",
            InvalidName::SpecialUse(_) => "special",
        });
        assert_eq!(got, want, "{name:?}");
    }
}

#[test]
fn a_service_gets_at_most_a_few_names() {
    let names: Vec<Arc<str>> = ["localhost"]
        .into_iter()
        .map(String::from)
        .chain((0..10).map(|i| format!("lb{i}.example.com")))
        .map(Arc::from)
        .collect();
    let (ok, bad) = wanted(&names);
    assert_eq!(ok.len(), MAX_NAMES_PER_SERVICE);
    assert_eq!(&*ok[0], "lb0.example.com");
    assert_eq!(bad.len(), 1);
}

/// A name is wanted once however many Services use it, and released with its last user;
/// a Service gets the addresses its names have.
#[test]
fn names_are_wanted_once_and_released_with_their_last_user() {
    let (tx, mut commands) = unbounded_channel();
    let (results_tx, results) = unbounded_channel();
    let mut users = NameUsers::new(7, tx, results);
    // A Service and an Ingress of the same name are two users.
    let (web, api) =
        ((Via::Service, ObjectKey::new("default", "web")), (Via::Ingress, ObjectKey::new("default", "web")));
    let lb: Arc<str> = "lb.example.com".into();
    assert!(users.set(&web, vec![lb.clone()]).is_empty());
    assert!(users.set(&api, vec![lb.clone()]).is_empty());
    assert!(matches!(commands.try_recv(), Ok(Command::Want { id: 7, ref name }) if *name == lb));
    assert!(commands.try_recv().is_err(), "wanted once");

    let addrs: Arc<[IpAddr]> = vec![ip("192.0.2.1")].into();
    results_tx.send(Resolved { name: lb.clone(), addrs }).expect("send");
    let r = users.results_now().expect("a result");
    let mut touched = users.resolved(r);
    touched.sort();
    assert_eq!(touched, [web.clone(), api.clone()]);
    assert_eq!(users.set(&web, vec![lb.clone()]), [ip("192.0.2.1")]);

    assert!(users.set(&web, Vec::new()).is_empty());
    assert!(commands.try_recv().is_err(), "api still uses it");
    users.set(&api, Vec::new());
    assert!(matches!(commands.try_recv(), Ok(Command::Unwant { id: 7, ref name }) if *name == lb));
}
