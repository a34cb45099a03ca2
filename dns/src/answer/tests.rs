use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

use crate::fuzzing::answer_bytes;

fn query(name: &str, qtype: u16, edns: bool) -> Vec<u8> {
    let mut p = vec![0xbe, 0xef, 0x00, 0x00, 0, 1, 0, 0, 0, 0, 0, u8::from(edns)];
    for label in name.split('.') {
        p.push(label.len() as u8);
        p.extend_from_slice(label.as_bytes());
    }
    p.extend_from_slice(&[0]);
    p.extend_from_slice(&qtype.to_be_bytes());
    p.extend_from_slice(&[0, 1]);
    if edns {
        p.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
    }
    p
}

/// Answers built from the sample index, decoded with hickory: (name, type) → rcode,
/// answer types in order, authority types.
#[test]
fn answer_cases() {
    use RecordType::*;
    type Case<'a> = (&'a str, RecordType, ResponseCode, &'a [RecordType], &'a [RecordType]);
    let cases: &[Case<'_>] = &[
        ("web.default.demo.svc.meridian.test", A, ResponseCode::NoError, &[A, A], &[]),
        ("web.default.demo.svc.meridian.test", AAAA, ResponseCode::NoError, &[AAAA, AAAA], &[]),
        ("web.default.demo.svc.meridian.test", MX, ResponseCode::NoError, &[], &[SOA]),
        ("web.default.demo.svc.asia-south1.meridian.test", A, ResponseCode::NXDomain, &[], &[SOA]),
        ("web.default.demo.svc.us-east1-b.us-east1.meridian.test", A, ResponseCode::NoError, &[A], &[]),
        ("nothing.meridian.test", A, ResponseCode::NXDomain, &[], &[SOA]),
        ("default.demo.svc.meridian.test", A, ResponseCode::NoError, &[], &[SOA]),
        ("meridian.test", SOA, ResponseCode::NoError, &[SOA], &[]),
        ("meridian.test", ANY, ResponseCode::NoError, &[SOA], &[]),
        ("www.meridian.test", A, ResponseCode::NoError, &[A, A], &[]),
        ("_http._tcp.web.default.svc.clusterset.local", SRV, ResponseCode::NoError, &[SRV], &[]),
        ("db-0.us-east.db.default.svc.clusterset.local", A, ResponseCode::NoError, &[A], &[]),
        ("dns-version.clusterset.local", TXT, ResponseCode::NoError, &[TXT], &[]),
        ("example.org", A, ResponseCode::Refused, &[], &[]),
        ("meridian.test", AXFR, ResponseCode::Refused, &[], &[]),
    ];
    for (name, t, rc, ans, auth) in cases {
        let reply = answer_bytes(&query(name, u16::from(*t), true), false).expect("answered");
        let m = Message::from_vec(&reply).expect("decodes");
        assert_eq!(m.metadata.response_code, *rc, "{name} {t}");
        let got: Vec<RecordType> = m.answers.iter().map(|r| r.record_type()).collect();
        assert_eq!(&got, ans, "{name} {t}");
        let got: Vec<RecordType> = m.authorities.iter().map(|r| r.record_type()).collect();
        assert_eq!(&got, auth, "{name} {t}");
        assert!(m.edns.is_some(), "OPT echoed");
        assert_eq!(m.metadata.authoritative, *rc != ResponseCode::Refused, "{name} {t}");
        assert!(!m.metadata.recursion_available);
    }
}

/// Equal-rank records rotate between answers.
#[test]
fn rotation_changes_the_first_record() {
    let mut firsts = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let reply = answer_bytes(&query("web.default.demo.svc.meridian.test", 1, false), false).expect("answered");
        let m = Message::from_vec(&reply).expect("decodes");
        firsts.insert(m.answers.first().map(|r| r.data.to_string()));
    }
    assert_eq!(firsts.len(), 2);
}

/// The BADVERS answer: extended RCODE 16 through the OPT record.
#[test]
fn badvers_for_edns_version_1() {
    let mut q = query("meridian.test", 6, true);
    let n = q.len();
    q[n - 5] = 1; // version byte of the OPT TTL
    let reply = answer_bytes(&q, false).expect("answered");
    let m = Message::from_vec(&reply).expect("decodes");
    // 16 is both BADVERS and BADSIG; hickory names it BADSIG.
    assert_eq!(u16::from(m.metadata.response_code), 16);
    assert!(m.answers.is_empty());
}
