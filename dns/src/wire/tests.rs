use super::*;

fn packet(flags: u16, qd: u16, ar: u16, body: &[u8]) -> Vec<u8> {
    let mut p = vec![0x12, 0x34];
    p.extend_from_slice(&flags.to_be_bytes());
    for c in [qd, 0, 0, ar] {
        p.extend_from_slice(&c.to_be_bytes());
    }
    p.extend_from_slice(body);
    p
}

const QUESTION: &[u8] = b"\x03WWW\x07example\x04test\x00\x00\x01\x00\x01";
const OPT_V0: &[u8] = b"\x00\x00\x29\x04\xd0\x00\x00\x80\x00\x00\x00";

#[derive(Debug, PartialEq)]
enum Want {
    Drop,
    Error(u16),
    Ok { qtype: u16, edns: Option<(u16, u8, bool)> },
}

fn outcome(p: &[u8]) -> Want {
    match parse(p) {
        Parsed::Drop => Want::Drop,
        Parsed::Query(q) if q.error.is_some() => Want::Error(q.error.unwrap_or_default()),
        Parsed::Query(q) => Want::Ok {
            qtype: q.question.map_or(0, |x| x.qtype),
            edns: q.edns.map(|e| (e.payload, e.version, e.dnssec_ok)),
        },
    }
}

/// The question, then an OPT record (as [`OPT_V0`]) whose owner is `owner` (at offset 33).
fn opt_owned_by(owner: &[u8]) -> Vec<u8> {
    [QUESTION, owner, &OPT_V0[1..]].concat()
}

/// What the parser makes of well-formed and malformed packets.
#[test]
fn parse_cases() {
    let with_opt = [QUESTION, OPT_V0].concat();
    let two_opts = [QUESTION, OPT_V0, OPT_V0].concat();
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        ("empty", vec![], Want::Drop),
        ("short header", vec![0; 11], Want::Drop),
        ("a response", packet(0x8000, 1, 0, QUESTION), Want::Drop),
        ("plain query", packet(0x0100, 1, 0, QUESTION), Want::Ok { qtype: 1, edns: None }),
        ("with OPT", packet(0, 1, 1, &with_opt), Want::Ok { qtype: 1, edns: Some((1232, 0, true)) }),
        ("two OPTs", packet(0, 1, 2, &two_opts), Want::Error(rcode::FORMERR)),
        ("no question", packet(0, 0, 0, &[]), Want::Error(rcode::FORMERR)),
        ("two questions", packet(0, 2, 0, &[QUESTION, QUESTION].concat()), Want::Error(rcode::FORMERR)),
        ("pointer in question", packet(0, 1, 0, b"\xc0\x0c\x00\x01\x00\x01"), Want::Error(rcode::FORMERR)),
        (
            "label of 64",
            packet(0, 1, 0, &[&[64u8][..], &[b'a'; 64], b"\x00\x00\x01\x00\x01"].concat()),
            Want::Error(rcode::FORMERR),
        ),
        ("cut question", packet(0, 1, 0, &QUESTION[..QUESTION.len() - 2]), Want::Error(rcode::FORMERR)),
        ("announced OPT missing", packet(0, 1, 1, QUESTION), Want::Error(rcode::FORMERR)),
        ("opcode 2", packet(2 << 11, 1, 0, QUESTION), Want::Error(rcode::NOTIMP)),
        ("qtype OPT", packet(0, 1, 0, b"\x00\x00\x29\x00\x01"), Want::Error(rcode::FORMERR)),
        // The owner of an OPT may be written as a pointer, and is then the name it points
        // to: the root at offset 29 (the question name's last octet) is legal (RFC 6891
        // §6.1.2); a pointer to `www.example.test`, or one that points at itself, is not.
        (
            "OPT owner points to the root",
            packet(0, 1, 1, &opt_owned_by(b"\xc0\x1d")),
            Want::Ok { qtype: 1, edns: Some((1232, 0, true)) },
        ),
        ("OPT owner points to a name", packet(0, 1, 1, &opt_owned_by(b"\xc0\x0c")), Want::Error(rcode::FORMERR)),
        ("OPT owner points to itself", packet(0, 1, 1, &opt_owned_by(b"\xc0\x21")), Want::Error(rcode::FORMERR)),
        ("OPT owner points past the end", packet(0, 1, 1, &opt_owned_by(b"\xc0\xff")), Want::Error(rcode::FORMERR)),
    ];
    for (what, p, want) in cases {
        assert_eq!(outcome(&p), want, "{what}");
    }
    // A name over 255 octets: five labels of 63.
    let mut long = Vec::new();
    for _ in 0..5 {
        long.push(63);
        long.extend_from_slice(&[b'a'; 63]);
    }
    long.extend_from_slice(b"\x00\x00\x01\x00\x01");
    assert_eq!(outcome(&packet(0, 1, 0, &long)), Want::Error(rcode::FORMERR));
}

/// The question is lower-cased for lookup and kept as sent for the echo.
#[test]
fn question_lowercased_and_raw_kept() {
    let p = packet(0, 1, 0, QUESTION);
    let Parsed::Query(q) = parse(&p) else { panic!("dropped") };
    let qu = q.question.expect("question");
    assert_eq!(qu.name.wire(), b"\x03www\x07example\x04test\x00");
    assert_eq!(&p[qu.raw.clone()], QUESTION);
}

/// Answers over the limit are cut back to the question with TC=1 and the OPT kept.
#[test]
fn truncation_cases() {
    let p = packet(0x0100, 1, 0, QUESTION);
    let Parsed::Query(q) = parse(&p) else { panic!("dropped") };
    let edns =
        Edns { payload: 4096, version: 0, dnssec_ok: false, options: 0..0, ecs: None, nsid: false, cookie: None };
    // (records of 4 octets, EDNS, limit, want TC, want ANCOUNT)
    let cases = [
        (10, None, 512, false, 10),
        (40, None, 512, true, 0),
        (40, Some(&edns), 1232, false, 40),
        (100, Some(&edns), 1232, true, 0),
    ];
    for (n, e, limit, tc, an) in cases {
        let mut buf = Vec::new();
        let mut r = Response::start(&mut buf, &q, &p);
        for i in 0..n {
            r.record(Section::Answer, Owner::Ptr(12), rtype::A, 30, &[10, 0, 0, i as u8]);
        }
        r.finish(e, rcode::NOERROR, limit, 0, &Default::default(), None);
        assert!(buf.len() <= limit, "{n} records: {} octets", buf.len());
        assert_eq!(buf[2] & 0x02 != 0, tc, "{n} records, limit {limit}");
        assert_eq!(u16::from_be_bytes([buf[6], buf[7]]), an);
        assert_eq!(u16::from_be_bytes([buf[10], buf[11]]), u16::from(e.is_some()));
        assert_eq!(buf[2] & 0x01, 1, "RD copied");
        assert_eq!(buf[3] & 0x80, 0, "RA clear");
    }
}

#[test]
fn udp_limit_clamps() {
    let e = |payload| {
        Some(Edns { payload, version: 0, dnssec_ok: false, options: 0..0, ecs: None, nsid: false, cookie: None })
    };
    assert_eq!(udp_limit(None), 512);
    assert_eq!(udp_limit(e(100).as_ref()), 512);
    assert_eq!(udp_limit(e(4096).as_ref()), 1232);
    assert_eq!(udp_limit(e(1000).as_ref()), 1000);
}

/// An OPT record carrying `options`.
fn opt_with(options: &[u8]) -> Vec<u8> {
    let mut o = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00".to_vec();
    o.extend_from_slice(&(options.len() as u16).to_be_bytes());
    o.extend_from_slice(options);
    o
}

fn ecs_option(family: u16, source: u8, scope: u8, addr: &[u8]) -> Vec<u8> {
    let mut v = OPTION_ECS.to_be_bytes().to_vec();
    v.extend_from_slice(&((4 + addr.len()) as u16).to_be_bytes());
    v.extend_from_slice(&family.to_be_bytes());
    v.extend_from_slice(&[source, scope]);
    v.extend_from_slice(addr);
    v
}

/// EDNS Client Subnet options as data (RFC 7871 §6, §7.1.1): what is read, and what is
/// a format error.
#[test]
fn client_subnet_cases() {
    let cookie = b"\x00\x0a\x00\x08abcdefgh".to_vec();
    type Case = (&'static str, Vec<u8>, Result<Option<(&'static str, u8)>, ()>);
    let cases: Vec<Case> = vec![
        ("ipv4 /24", ecs_option(1, 24, 0, &[195, 154, 0]), Ok(Some(("195.154.0.0", 24)))),
        ("ipv4 /22", ecs_option(1, 22, 0, &[117, 192, 0]), Ok(Some(("117.192.0.0", 22)))),
        ("ipv4 /0", ecs_option(1, 0, 0, &[]), Ok(Some(("0.0.0.0", 0)))),
        ("ipv6 /56", ecs_option(2, 56, 0, &[0x2a, 1, 0x0e, 0x0a, 0, 0, 0]), Ok(Some(("2a01:e0a::", 56)))),
        ("after a cookie", [cookie.clone(), ecs_option(1, 8, 0, &[10])].concat(), Ok(Some(("10.0.0.0", 8)))),
        ("cookie only", cookie.clone(), Ok(None)),
        ("host bits set", ecs_option(1, 22, 0, &[117, 192, 1]), Err(())),
        ("address too long", ecs_option(1, 8, 0, &[10, 0]), Err(())),
        ("address too short", ecs_option(1, 24, 0, &[10, 0]), Err(())),
        ("scope set in a query", ecs_option(1, 24, 24, &[10, 0, 0]), Err(())),
        ("prefix over 32", ecs_option(1, 33, 0, &[10, 0, 0, 0, 0]), Err(())),
        ("unknown family", ecs_option(3, 8, 0, &[10]), Err(())),
        ("twice", [ecs_option(1, 8, 0, &[10]), ecs_option(1, 8, 0, &[10])].concat(), Err(())),
        ("cut option", ecs_option(1, 24, 0, &[10, 0, 0])[..6].to_vec(), Err(())),
    ];
    for (what, opts, want) in cases {
        let p = packet(0, 1, 1, &[QUESTION, &opt_with(&opts)].concat());
        let got = match parse(&p) {
            Parsed::Query(q) if q.error.is_none() => {
                Ok(q.edns.and_then(|e| e.ecs).map(|e| (e.addr.to_string(), e.source_prefix)))
            }
            _ => Err(()),
        };
        let want = want.map(|w| w.map(|(a, s)| (a.to_owned(), s)));
        assert_eq!(got, want, "{what}");
    }
}

/// The echoed option: family, source prefix and address as sent, scope as decided.
#[test]
fn client_subnet_is_echoed_with_scope() {
    let p = packet(0, 1, 1, &[QUESTION, &opt_with(&ecs_option(1, 22, 0, &[117, 192, 0]))].concat());
    let Parsed::Query(q) = parse(&p) else { panic!("parsed") };
    let mut out = Vec::new();
    let r = Response::start(&mut out, &q, &p);
    r.finish(q.edns.as_ref(), rcode::NOERROR, 4096, 16, &Default::default(), None);
    let tail = &out[out.len() - 11..];
    assert_eq!(tail, [0, 8, 0, 7, 0, 1, 22, 16, 117, 192, 0], "{out:?}");
}
