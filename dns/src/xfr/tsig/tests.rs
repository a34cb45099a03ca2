use super::*;

fn key(name: &str, secret: &[u8]) -> TsigKey {
    TsigKey::new(name, Algorithm::HmacSha256, secret).expect("key")
}

/// A query for `example.` SOA with ID 0x1234, unsigned.
fn query() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    m.extend_from_slice(b"\x07example\x00\x00\x06\x00\x01");
    m
}

fn signed_query(k: &TsigKey, time: u64) -> (Vec<u8>, usize) {
    let mut m = query();
    let start = m.len();
    sign_request(k, &mut m, time);
    (m, start)
}

/// A request signed with a key verifies with it, at any time inside the fudge.
#[test]
fn sign_then_verify_round_trips() {
    let k = key("xfr.", b"0123456789abcdef0123456789abcdef");
    let (m, start) = signed_query(&k, 1_000_000);
    let s = read(&m, start).expect("tsig read");
    assert_eq!(&s.key_name[..], b"\x03xfr\x00");
    assert_eq!(s.mac.len(), 32);
    assert_eq!(s.original_id, 0x1234);
    let keys = [k.clone()];
    assert!(verify(&keys, &m, &s, 1_000_000 + 299).is_ok());
    assert!(verify(&keys, &m, &s, 1_000_000 - 300).is_ok());
}

/// A changed byte, a different secret, an unknown name and a time outside the fudge are
/// each told apart.
#[test]
fn tampering_wrong_keys_and_stale_times_fail() {
    let k = key("xfr.", b"secret-one");
    let (m, start) = signed_query(&k, 5000);
    let keys = [k.clone()];
    let mut tampered = m.clone();
    tampered[13] ^= 0x20; // a letter of the question's name
    let s = read(&tampered, start).expect("read");
    assert_eq!(verify(&keys, &tampered, &s, 5000).err().map(|e| e.0), Some(Failure::Sig));
    let mut mac_flipped = m.clone();
    let s = read(&m, start).expect("read");
    let mac_at = m.len() - 6 - s.mac.len();
    mac_flipped[mac_at] ^= 1;
    let s2 = read(&mac_flipped, start).expect("read");
    assert_eq!(verify(&keys, &mac_flipped, &s2, 5000).err().map(|e| e.0), Some(Failure::Sig));
    let other_secret = [key("xfr.", b"secret-two")];
    assert_eq!(verify(&other_secret, &m, &s, 5000).err().map(|e| e.0), Some(Failure::Sig));
    let other_name = [key("other.", b"secret-one")];
    assert_eq!(verify(&other_name, &m, &s, 5000).err().map(|e| e.0), Some(Failure::Key));
    let sha512 = [TsigKey::new("xfr.", Algorithm::HmacSha512, b"secret-one").expect("key")];
    assert_eq!(verify(&sha512, &m, &s, 5000).err().map(|e| e.0), Some(Failure::Key));
    let late = verify(&keys, &m, &s, 5000 + 301).expect_err("late");
    assert_eq!(late.0, Failure::Time);
    assert!(late.1.is_some(), "BADTIME knows the key, to sign its answer");
}

/// Key names compare without case; the MAC covers the canonical (lower-case) name.
#[test]
fn key_names_are_case_insensitive() {
    let k = key("XFR.Example.", b"s");
    let (m, start) = signed_query(&k, 77);
    let s = read(&m, start).expect("read");
    assert!(verify(&[key("xfr.example", b"s")], &m, &s, 77).is_ok());
}

/// Recomputes a chained response MAC (RFC 8945 §5.3.1) independently of `Signer`.
fn expected_mac(k: &TsigKey, prior: &[u8], msg: &[u8], first: bool, time: u64) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(&(prior.len() as u16).to_be_bytes());
    data.extend_from_slice(prior);
    data.extend_from_slice(msg);
    if first {
        data.extend_from_slice(&k.name);
        data.extend_from_slice(&[0, 255, 0, 0, 0, 0]);
        data.extend_from_slice(k.algorithm.wire());
    }
    data.extend_from_slice(&time.to_be_bytes()[2..]);
    data.extend_from_slice(&FUDGE.to_be_bytes());
    if first {
        data.extend_from_slice(&[0, 0, 0, 0]);
    }
    let hk = hmac::Key::new(hmac::HMAC_SHA256, b"chain");
    hmac::sign(&hk, &data).as_ref().to_vec()
}

/// Each message of a transfer is signed, its MAC chained to the previous one: the first
/// covers the request's MAC and every variable, later ones the previous MAC and timers.
#[test]
fn multi_message_signatures_chain() {
    let k = key("xfr.", b"chain");
    let request_mac = vec![7u8; 32];
    let mut signer = Signer::new(&k, &request_mac, 42);
    let mut prior = request_mac.clone();
    for i in 0..3u8 {
        let mut msg = query();
        msg[2] = 0x84; // QR AA
        msg.push(i);
        let body = msg.clone();
        signer.sign(&mut msg, 0, &[]);
        let s = read(&msg, body.len()).expect("read");
        let want = expected_mac(&k, &prior, &body, i == 0, 42);
        assert_eq!(s.mac, &want[..], "message {i}");
        assert_eq!(u16::from_be_bytes([msg[10], msg[11]]), 1, "ARCOUNT counts the TSIG");
        prior = want;
    }
}

/// A record too short for its fields is not read.
#[test]
fn truncated_records_are_not_read() {
    let k = key("xfr.", b"s");
    let (m, start) = signed_query(&k, 1);
    for cut in start..m.len() {
        assert!(read(&m[..cut], start).is_none(), "cut at {cut}");
    }
}
