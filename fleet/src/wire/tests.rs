use super::*;

const NOW: u64 = 1_767_225_600_000;

fn key(id: u8, secret: &str) -> FleetKey {
    FleetKey::from_bytes(id, secret.as_bytes(), "test").expect("key")
}

fn good() -> FleetKey {
    key(1, "a-shared-fleet-key-of-forty-bytes-long!!")
}

/// A sealed datagram opens with the same key and carries its fields through.
#[test]
fn round_trip() {
    let mut s = Sealer::new(good(), 42);
    let frames = s.seal(b"chitchat bytes", NOW).expect("fits");
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].len(), OVERHEAD + 14);
    let (h, payload) = open(&good(), &frames[0], NOW + 5).expect("opens");
    assert_eq!(payload, b"chitchat bytes");
    assert_eq!(h, Header { index: 0, count: 1, boot: 42, counter: 1, sent_ms: NOW });
    let next = s.seal(b"", NOW).expect("fits");
    assert_eq!(open(&good(), &next[0], NOW).expect("opens").0.counter, 2, "counters advance");
}

/// Each way a datagram can be wrong, and the reason it is dropped for.
#[test]
fn rejections() {
    let frame = Sealer::new(good(), 7).seal(b"payload", NOW).expect("fits").remove(0);
    let with = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut d = frame.clone();
        f(&mut d);
        d
    };
    let cases: Vec<(Vec<u8>, FleetKey, u64, Rejection)> = vec![
        (frame[..OVERHEAD - 1].to_vec(), good(), NOW, Rejection::Short),
        (with(&|d| d[0] = b'X'), good(), NOW, Rejection::Foreign),
        (with(&|d| d[2] = 9), good(), NOW, Rejection::Foreign),
        (frame.clone(), key(2, "a-shared-fleet-key-of-forty-bytes-long!!"), NOW, Rejection::UnknownKey),
        (frame.clone(), key(1, "another-key-entirely-also-forty-bytes!!!"), NOW, Rejection::BadMac),
        (with(&|d| d[HEADER_LEN] ^= 1), good(), NOW, Rejection::BadMac),
        (with(&|d| d[14] ^= 1), good(), NOW, Rejection::BadMac),
        (with(&|d| d.truncate(d.len() - 1)), good(), NOW, Rejection::BadMac),
        (frame.clone(), good(), NOW + MAX_AGE_MS + 1, Rejection::Stale),
        (frame.clone(), good(), NOW - MAX_AGE_MS - 1, Rejection::Stale),
    ];
    for (i, (datagram, k, now, want)) in cases.into_iter().enumerate() {
        assert_eq!(open(&k, &datagram, now).map(|_| ()), Err(want), "case {i}");
    }
}

/// Authentic part fields that make no sense are refused too.
#[test]
fn bad_part_fields() {
    let s = Sealer::new(good(), 1);
    for part in [0x00, 0x03, 0x22, 0x11] {
        let d = s.frame(part, b"x", NOW);
        assert_eq!(open(&good(), &d, NOW).map(|_| ()), Err(Rejection::BadPart), "part byte {part:#x}");
    }
}

/// chitchat's largest datagram goes as two halves; nothing larger is sealed.
#[test]
fn large_payloads_split_in_two() {
    let payload: Vec<u8> = (0..MAX_DATAGRAM).map(|i| i as u8).collect();
    let mut s = Sealer::new(good(), 3);
    let frames = s.seal(&payload, NOW).expect("two parts");
    assert_eq!(frames.len(), 2);
    assert!(frames.iter().all(|f| f.len() <= MAX_DATAGRAM));
    let mut joined = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        let (h, p) = open(&good(), f, NOW).expect("opens");
        assert_eq!((h.index, h.count, h.counter), (i as u8, 2, i as u64 + 1));
        joined.extend_from_slice(p);
    }
    assert_eq!(joined, payload);
    assert!(s.seal(&vec![0; 2 * MAX_PART + 1], NOW).is_none());
}

/// Hostile input never panics: random bytes of every length up to a header and a bit,
/// and random corruptions of a valid datagram, are all refused.
#[test]
fn random_bytes_never_open() {
    let frame = Sealer::new(good(), 7).seal(b"payload", NOW).expect("fits").remove(0);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64: deterministic, so a failure reproduces.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for len in 0..(OVERHEAD + 40) {
        for _ in 0..50 {
            let d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            assert!(open(&good(), &d, NOW).is_err());
        }
    }
    for _ in 0..2000 {
        let mut d = frame.clone();
        let i = (next() as usize) % d.len();
        d[i] ^= (next() as u8) | 1;
        assert!(open(&good(), &d, NOW).is_err(), "flipped byte {i}");
    }
}
