use std::path::Path;
use std::sync::Arc;

use meridian_config::Config;
use meridian_model::table::Snapshot as TableSnapshot;

use super::*;
use crate::builder::Builder;
use crate::metrics::Metrics;
use crate::shared::Shared;
use crate::xfr::publish;
use crate::xfr::tsig::{Algorithm, sign_request};

const SECRET: &str = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0ISE=";

/// A server for `x.test` with the file `records` and one key `k.`, from a temp dir.
struct Env {
    dir: tempfile::TempDir,
    shared: Arc<Shared>,
}

fn config(dir: &Path, records: &str, extra: &str) -> Config {
    std::fs::write(dir.join("x.zone"), format!("$ORIGIN x.test.\n$TTL 60\n{records}")).expect("zone");
    std::fs::write(dir.join("k.conf"), format!("key \"k\" {{ algorithm hmac-sha256; secret \"{SECRET}\"; }};"))
        .expect("key");
    let text = format!(
        "name = \"x\"\ndns_zone = \"x.test\"\n[dns]\nlisten = [\"127.0.0.1:1053\"]\n\
         [[dns.zones]]\nname = \"x.test\"\nfile = \"x.zone\"\n[dns.transfer]\nkeys = [\"k.conf\"]\n{extra}"
    );
    Config::parse(&text, &dir.join("m.toml"), dir).expect("config")
}

fn env(records: &str) -> Env {
    let dir = tempfile::tempdir().expect("dir");
    let c = config(dir.path(), records, "");
    let shared = Arc::new(Shared::new(Builder::new(&c).expect("builder"), Metrics::default(), &c));
    publish::step(&shared);
    Env { dir, shared }
}

fn key() -> TsigKey {
    TsigKey::new("k", Algorithm::HmacSha256, b"secret-secret-secret-secret!!").expect("key")
}

/// A transfer query for `x.test`; IXFR carries `serial` in its authority SOA.
fn query(qtype: u16, serial: Option<u32>, signed: Option<&TsigKey>) -> Vec<u8> {
    let mut m = vec![0xAB, 0xCD, 0, 0, 0, 1, 0, 0, 0, u8::from(serial.is_some()), 0, 0];
    m.extend_from_slice(b"\x01x\x04test\x00");
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&[0, 1]);
    if let Some(s) = serial {
        m.extend_from_slice(&[0xC0, 12, 0, 6, 0, 1, 0, 0, 0, 0, 0, 22, 0, 0]);
        m.extend_from_slice(&s.to_be_bytes());
        m.extend_from_slice(&[0; 16]);
    }
    if let Some(k) = signed {
        sign_request(k, &mut m, tsig::now());
    }
    m
}

fn ask(e: &Env, packet: &[u8]) -> Vec<Vec<u8>> {
    respond(&e.shared.xfr, &e.shared.index.load(), packet, "127.0.0.9:5353".parse().expect("addr"))
}

/// The answer records (owner, type, RDATA) of a response written by `pack`.
fn answers(msg: &[u8]) -> Vec<(Vec<u8>, u16, Vec<u8>)> {
    let an = u16::from_be_bytes([msg[6], msg[7]]);
    let mut at = crate::xfr::skip_name(msg, 12).expect("question") + 4;
    let mut out = Vec::new();
    for _ in 0..an {
        let end = crate::xfr::skip_name(msg, at).expect("owner");
        let rt = u16::from_be_bytes([msg[end], msg[end + 1]]);
        let len = usize::from(u16::from_be_bytes([msg[end + 8], msg[end + 9]]));
        out.push((msg[at..end].to_vec(), rt, msg[end + 10..end + 10 + len].to_vec()));
        at = end + 10 + len;
    }
    out
}

fn rcode_of(msg: &[u8]) -> u8 {
    msg[3] & 0x0F
}

fn serial_of(soa_rdata: &[u8]) -> u32 {
    let n = soa_rdata.len();
    u32::from_be_bytes([soa_rdata[n - 20], soa_rdata[n - 19], soa_rdata[n - 18], soa_rdata[n - 17]])
}

/// Unsigned, with a wrong MAC, or for a zone not served: refused (REFUSED, NOTAUTH) in
/// one message with no records, and counted.
#[test]
fn unsigned_tampered_and_unknown_zone_requests_are_refused() {
    let e = env("www A 192.0.2.1\n");
    let r = ask(&e, &query(rtype::AXFR, None, None));
    assert_eq!((r.len(), rcode_of(&r[0]), answers(&r[0]).len()), (1, rcode::REFUSED as u8, 0));
    let mut bad = query(rtype::AXFR, None, Some(&key()));
    let last = bad.len() - 8;
    bad[last] ^= 1; // inside the MAC
    let r = ask(&e, &bad);
    assert_eq!(rcode_of(&r[0]), rcode::NOTAUTH as u8);
    let wrong = TsigKey::new("k", Algorithm::HmacSha256, b"other").expect("key");
    let r = ask(&e, &query(rtype::AXFR, None, Some(&wrong)));
    assert_eq!(rcode_of(&r[0]), rcode::NOTAUTH as u8);
    let mut other_zone = query(rtype::AXFR, None, None);
    other_zone[13] = b'y';
    let r = ask(&e, &other_zone);
    assert_eq!(rcode_of(&r[0]), rcode::NOTAUTH as u8);
    let counts = e.shared.xfr.counts();
    let count = |result: &str| counts.iter().filter(|((_, _, r), _)| *r == result).map(|(_, n)| n).sum::<u64>();
    assert_eq!((count("unsigned"), count("badsig"), count("notauth")), (1, 2, 1), "{counts:?}");
}

/// A signed AXFR sends SOA, every record, SOA, with the question and a TSIG in each
/// message.
#[test]
fn signed_axfr_sends_the_zone_between_two_soas() {
    let e = env("www A 192.0.2.1\nwww A 192.0.2.2\nmail MX 10 www\n");
    let r = ask(&e, &query(rtype::AXFR, None, Some(&key())));
    assert_eq!(r.len(), 1);
    assert_eq!(rcode_of(&r[0]), 0);
    let recs = answers(&r[0]);
    let types: Vec<u16> = recs.iter().map(|r| r.1).collect();
    assert_eq!(types.first(), Some(&rtype::SOA));
    assert_eq!(types.last(), Some(&rtype::SOA));
    assert_eq!(types.iter().filter(|&&t| t == rtype::A).count(), 3, "two www and ns1's address: {types:?}");
    assert!(types.contains(&rtype::MX) && types.contains(&rtype::NS), "{types:?}");
    assert_eq!(u16::from_be_bytes([r[0][10], r[0][11]]), 1, "one additional: the TSIG");
}

/// Records are split into messages within the budget, every record sent once, in order.
#[test]
fn records_are_split_across_messages() {
    let many: String = (0..200).map(|i| format!("h{i} A 10.0.{}.{}\n", i / 256, i % 256)).collect();
    let e = env(&many);
    let packet = query(rtype::AXFR, None, None);
    let Parsed::Query(q) = wire::parse(&packet) else { panic!("parse") };
    let question = q.question.as_ref().expect("question");
    let req = Request { packet: &packet, q: &q, question, key: None };
    let (snap, _) = e.shared.xfr.zone(b"\x01x\x04test\x00", None).expect("snapshot");
    let (_, rrs) = stream(&snap, None, None);
    let msgs = pack(&req, &rrs, 500);
    assert!(msgs.len() >= 8, "{} messages", msgs.len());
    let all: Vec<_> = msgs.iter().flat_map(|m| answers(m)).collect();
    assert_eq!(all.len(), rrs.len());
    for m in &msgs {
        let records = m.len() - 12 - question.raw.len();
        assert!(records <= 500 + 30, "{records} octets of records");
    }
}

/// After a reload changes a record, IXFR from the old serial sends the step (old SOA,
/// the deleted record, new SOA, the added one); from the current serial just the SOA;
/// from a serial the journal does not know, the whole zone.
#[test]
fn ixfr_sends_the_journal_or_falls_back() {
    let e = env("www A 192.0.2.1\n");
    let old = e.shared.xfr.zone(b"\x01x\x04test\x00", None).expect("snapshot").0.serial;
    let c = config(e.dir.path(), "www A 192.0.2.7\n", "");
    e.shared.build(|b| b.set_config(&c, &TableSnapshot::default())).expect("reload");
    publish::step(&e.shared);
    let new = e.shared.xfr.zone(b"\x01x\x04test\x00", None).expect("snapshot").0.serial;
    assert!(newer(new, old), "{old} -> {new}");

    let r = ask(&e, &query(rtype::IXFR, Some(old), Some(&key())));
    let recs: Vec<_> = r.iter().flat_map(|m| answers(m)).collect();
    let summary: Vec<(u16, Vec<u8>)> = recs.iter().map(|(_, t, d)| (*t, d.clone())).collect();
    assert_eq!(summary.len(), 6, "{summary:?}");
    assert_eq!(serial_of(&summary[0].1), new);
    assert_eq!(serial_of(&summary[1].1), old);
    assert_eq!(summary[2], (rtype::A, vec![192, 0, 2, 1]));
    assert_eq!(serial_of(&summary[3].1), new);
    assert_eq!(summary[4], (rtype::A, vec![192, 0, 2, 7]));
    assert_eq!(serial_of(&summary[5].1), new);

    let current = ask(&e, &query(rtype::IXFR, Some(new), Some(&key())));
    let recs = answers(&current[0]);
    assert_eq!((recs.len(), recs[0].1), (1, rtype::SOA));

    let full = ask(&e, &query(rtype::IXFR, Some(old.wrapping_sub(5)), Some(&key())));
    let recs: Vec<_> = full.iter().flat_map(|m| answers(m)).collect();
    assert!(recs.iter().any(|r| r.2 == [192, 0, 2, 7]) && !recs.iter().any(|r| r.2 == [192, 0, 2, 1]));
    let status = e.shared.xfr.status();
    let x = status.iter().find(|z| z.zone == "x.test").expect("x.test status");
    assert_eq!((x.serial, x.journal_depth), (new, 1));
    assert_eq!(x.transfers.len(), 1, "one client");
    assert_eq!((x.transfers[0].kind, x.transfers[0].result), ("IXFR-full", "ok"));
}

/// Only QUERY-opcode AXFR/IXFR questions go the transfer path.
#[test]
fn is_transfer_reads_the_question_only() {
    assert!(is_transfer(&query(rtype::AXFR, None, None)));
    assert!(is_transfer(&query(rtype::IXFR, Some(1), None)));
    assert!(!is_transfer(&query(rtype::SOA, None, None)));
    let mut response = query(rtype::AXFR, None, None);
    response[2] |= 0x80;
    assert!(!is_transfer(&response));
    assert!(!is_transfer(&[0; 5]));
}
