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
        // RFC 1995 §2: IXFR over UDP gets the current SOA (the client retries over TCP).
        ("meridian.test", IXFR, ResponseCode::NoError, &[SOA], &[]),
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

/// One record of a decoded reply; the owner as written (a pointer is left unresolved).
#[derive(Debug, Clone, PartialEq)]
struct Rec {
    owner: Vec<u8>,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: Vec<u8>,
}

/// A reply decoded by hand (hickory hides TSIG and OPT details the cases check).
#[derive(Debug)]
struct Reply {
    flags: u16,
    /// The full RCODE: header bits and the OPT's upper bits.
    rcode: u16,
    qdcount: u16,
    /// Answer, authority, additional.
    sections: [Vec<Rec>; 3],
}

impl Reply {
    fn opt(&self) -> Option<&Rec> {
        self.sections[2].iter().find(|r| r.rtype == 41)
    }
}

fn decode(p: &[u8]) -> Reply {
    let u16_at = |i: usize| u16::from_be_bytes([p[i], p[i + 1]]);
    let name_end = |mut i: usize| loop {
        match p[i] {
            0 => return i + 1,
            l if l >= 0xC0 => return i + 2,
            l => i += 1 + l as usize,
        }
    };
    let flags = u16_at(2);
    let counts = [u16_at(6), u16_at(8), u16_at(10)];
    let mut at = 12;
    for _ in 0..u16_at(4) {
        at = name_end(at) + 4;
    }
    let mut sections: [Vec<Rec>; 3] = Default::default();
    for (s, n) in counts.into_iter().enumerate() {
        for _ in 0..n {
            let end = name_end(at);
            let owner = p[at..end].to_vec();
            let rdlen = u16_at(end + 8) as usize;
            sections[s].push(Rec {
                owner,
                rtype: u16_at(end),
                class: u16_at(end + 2),
                ttl: u32::from_be_bytes([p[end + 4], p[end + 5], p[end + 6], p[end + 7]]),
                rdata: p[end + 10..end + 10 + rdlen].to_vec(),
            });
            at = end + 10 + rdlen;
        }
    }
    assert_eq!(at, p.len(), "trailing octets in {p:?}");
    let upper = sections[2].iter().find(|r| r.rtype == 41).map_or(0, |o| (o.ttl >> 24) as u16);
    Reply { flags, rcode: (upper << 4) | (flags & 0x000F), qdcount: u16_at(4), sections }
}

const RD: u16 = 0x0100;
const CD: u16 = 0x0010;

/// A query: header with `flags` and the counts, then the sections' octets.
fn packet(flags: u16, counts: [u16; 4], parts: &[&[u8]]) -> Vec<u8> {
    let mut p = vec![0xbe, 0xef];
    p.extend_from_slice(&flags.to_be_bytes());
    for c in counts {
        p.extend_from_slice(&c.to_be_bytes());
    }
    for part in parts {
        p.extend_from_slice(part);
    }
    p
}

/// `meridian.test SOA`: a name the sample index answers.
const Q_SOA: &[u8] = b"\x08meridian\x04test\x00\x00\x06\x00\x01";
/// `meridian.test TKEY`: a meta type that gets NOTIMP.
const Q_TKEY: &[u8] = b"\x08meridian\x04test\x00\x00\xf9\x00\x01";
/// `meridian.test OPT`: a format error.
const Q_OPT: &[u8] = b"\x08meridian\x04test\x00\x00\x29\x00\x01";
/// EDNS(0), payload 1232, no options.
const OPT: &[u8] = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00";
/// EDNS(0) with a client cookie only (RFC 7873 §4.1).
const OPT_COOKIE: &[u8] = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0c\x00\x0a\x00\x08clientck";
/// EDNS(0) with a Client Subnet option whose SCOPE is set: FORMERR (RFC 7871 §7.1.1).
const OPT_BAD_ECS: &[u8] = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x0b\x00\x08\x00\x07\x00\x01\x18\x18\x0a\x00\x00";

const TSIG_KEY: &[u8] = b"\x08test-key\x07example\x00";
const TSIG_ALG: &[u8] = b"\x0bhmac-sha256\x00";
/// Time signed (48 bits) and fudge of the query's TSIG.
const TSIG_TIME_FUDGE: &[u8] = b"\x00\x00\x65\x00\x00\x01\x01\x2c";

/// A TSIG record (RFC 8945 §4.2) by `TSIG_KEY` with a 32-octet MAC and original ID 0xbeef.
fn tsig() -> Vec<u8> {
    let mut rdata = [TSIG_ALG, TSIG_TIME_FUDGE, b"\x00\x20", &[0x5a; 32], b"\xbe\xef\x00\x00\x00\x00"].concat();
    let mut r = [TSIG_KEY, b"\x00\xfa\x00\xff\x00\x00\x00\x00"].concat();
    r.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    r.append(&mut rdata);
    r
}

/// The unsigned TSIG of a BADKEY answer (RFC 8945 §5.2.1, §5.3.2): the query's key and
/// algorithm, time and fudge, no MAC, the original ID, error 17.
fn badkey_tsig() -> Rec {
    Rec {
        owner: TSIG_KEY.to_vec(),
        rtype: 250,
        class: 255,
        ttl: 0,
        rdata: [TSIG_ALG, TSIG_TIME_FUDGE, b"\x00\x00\xbe\xef\x00\x11\x00\x00"].concat(),
    }
}

/// Header, OPT and TSIG handling as data: (case, packet) → RCODE, whether the reply has
/// an OPT (RFC 6891 §6.1.1: whenever the query had a valid one, FORMERR included), RD and
/// CD (copied for QUERY; cleared for opcodes this server does not know, whose header bits
/// mean something else), and the TSIG of the reply (the last record).
#[test]
fn header_opt_and_tsig_cases() {
    struct Want {
        rcode: u16,
        opt: bool,
        rd: bool,
        cd: bool,
        tsig: Option<Rec>,
    }
    let ok = |rcode, opt, rd, cd| Want { rcode, opt, rd, cd, tsig: None };
    let badkey = |opt, rd, cd| Want { rcode: 9, opt, rd, cd, tsig: Some(badkey_tsig()) };
    let tsig = tsig();
    let cases: Vec<(&str, Vec<u8>, Want)> = vec![
        ("a query with RD and CD", packet(RD | CD, [1, 0, 0, 1], &[Q_SOA, OPT]), ok(0, true, true, true)),
        ("no question, OPT", packet(0, [0, 0, 0, 1], &[OPT]), ok(1, true, false, false)),
        ("no question, no OPT", packet(0, [0, 0, 0, 0], &[]), ok(1, false, false, false)),
        // RFC 7873 §5.4: a request for a server cookie, answered NOERROR with one.
        ("no question, a client cookie", packet(RD, [0, 0, 0, 1], &[OPT_COOKIE]), ok(0, true, true, false)),
        ("two questions, OPT", packet(0, [2, 0, 0, 1], &[Q_SOA, Q_SOA, OPT]), ok(1, true, false, false)),
        ("qtype OPT, OPT", packet(0, [1, 0, 0, 1], &[Q_OPT, OPT]), ok(1, true, false, false)),
        ("malformed Client Subnet", packet(0, [1, 0, 0, 1], &[Q_SOA, OPT_BAD_ECS]), ok(1, true, false, false)),
        ("two OPTs", packet(0, [1, 0, 0, 2], &[Q_SOA, OPT, OPT]), ok(1, false, false, false)),
        (
            "a pointer in the question, OPT",
            packet(0, [1, 0, 0, 1], &[b"\xc0\x00\x00\x01\x00\x01", OPT]),
            ok(1, true, false, false),
        ),
        ("a cut question", packet(0, [1, 0, 0, 1], &[&Q_SOA[..16]]), ok(1, false, false, false)),
        ("opcode 2 with RD and CD", packet(2 << 11 | RD | CD, [1, 0, 0, 1], &[Q_SOA, OPT]), ok(4, true, false, false)),
        ("UPDATE with RD, no question", packet(5 << 11 | RD, [0, 0, 0, 0], &[]), ok(4, false, false, false)),
        ("meta type TKEY with RD and CD", packet(RD | CD, [1, 0, 0, 0], &[Q_TKEY]), ok(4, false, true, true)),
        ("TSIG with an unknown key", packet(RD, [1, 0, 0, 1], &[Q_SOA, &tsig]), badkey(false, true, false)),
        ("OPT, then TSIG", packet(0, [1, 0, 0, 2], &[Q_SOA, OPT, &tsig]), badkey(true, false, false)),
        ("TSIG with opcode 2", packet(2 << 11 | RD, [1, 0, 0, 1], &[Q_SOA, &tsig]), badkey(false, false, false)),
        ("TSIG, then OPT", packet(0, [1, 0, 0, 2], &[Q_SOA, &tsig, OPT]), ok(1, true, false, false)),
        ("two TSIGs", packet(0, [1, 0, 0, 2], &[Q_SOA, &tsig, &tsig]), ok(1, false, false, false)),
        ("TSIG in the answer section", packet(0, [1, 1, 0, 0], &[Q_SOA, &tsig]), ok(1, false, false, false)),
        ("TSIG cut short", packet(0, [1, 0, 0, 1], &[Q_SOA, &tsig_cut(&tsig)]), ok(1, false, false, false)),
    ];
    for (what, p, want) in cases {
        let reply = answer_bytes(&p, false).expect("answered");
        let r = decode(&reply);
        assert_eq!(r.rcode, want.rcode, "{what}: rcode");
        assert_eq!(r.opt().is_some(), want.opt, "{what}: OPT");
        if let Some(opt) = r.opt() {
            let codes: Vec<u16> = options(&opt.rdata).into_iter().map(|(c, _)| c).collect();
            let want: &[u16] = match what {
                "no question, a client cookie" => &[10],
                "opcode 2 with RD and CD" => &[15],
                _ => &[],
            };
            assert_eq!(codes, want, "{what}: options of the reply");
        }
        assert_eq!(r.flags & RD != 0, want.rd, "{what}: RD");
        assert_eq!(r.flags & CD != 0, want.cd, "{what}: CD");
        assert_eq!(r.flags & 0x7800, u16::from_be_bytes([p[2], p[3]]) & 0x7800, "{what}: opcode echoed");
        let tsig: Vec<&Rec> = r.sections.iter().flatten().filter(|x| x.rtype == 250).collect();
        assert_eq!(tsig.first().copied(), want.tsig.as_ref(), "{what}: TSIG");
        if want.tsig.is_some() {
            assert_eq!(r.sections[2].last().map(|x| x.rtype), Some(250), "{what}: TSIG is the last record");
            assert!(r.sections[0].is_empty() && r.sections[1].is_empty(), "{what}: nothing answered");
            assert_eq!(r.qdcount, 1, "{what}: question echoed");
            assert_eq!(r.flags & 0x0400, 0, "{what}: not authoritative");
        }
    }
}

/// A TSIG record whose RDATA stops inside the MAC (RDLENGTH says so: well-framed, but
/// not a TSIG).
fn tsig_cut(full: &[u8]) -> Vec<u8> {
    let mut r = [TSIG_KEY, b"\x00\xfa\x00\xff\x00\x00\x00\x00\x00\x1c"].concat();
    let rdata_at = TSIG_KEY.len() + 10;
    r.extend_from_slice(&full[rdata_at..rdata_at + 28]);
    r
}

/// The sample index with `geo` as the default policy and a network table (no database):
/// 10.1.0.0/19 and 2001:db8::/32.
fn geo_index() -> crate::index::Index {
    use meridian_config::ranking::{NetworkLocation, PolicyName};
    let mut config = meridian_config::Config::demo();
    config.ranking.default_policy = PolicyName::Geo;
    config.ranking.geoip_db.clear();
    config.ranking.networks = ["10.1.0.0/19", "2001:db8::/32"]
        .into_iter()
        .map(|cidr| NetworkLocation { cidr: cidr.into(), location: None, region: Some("us-east1".into()) })
        .collect();
    let (table, mut writer) = meridian_model::table::Table::new();
    writer.apply(crate::fuzzing::sample_updates());
    let mut b = crate::builder::Builder::new(&config).expect("index builds");
    b.rebuild(&table.snapshot());
    b.index()
}

/// RFC 7871 §7.2.1: the echoed SCOPE PREFIX-LENGTH counts bits of the option's FAMILY.
/// An IPv4-mapped IPv6 subnet is located as IPv4, but its scope is in IPv6 bits: the /19
/// network gives 19 for `10.1.0.0/24` and 96 + 19 = 115 for `::ffff:10.1.0.0/120`.
#[test]
fn client_subnet_scope_counts_bits_of_its_family() {
    use crate::answer::{Client, Transport, answer};
    let index = geo_index();
    // (family, source prefix, address octets sent, scope wanted)
    let mapped: &[u8] = &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 0];
    let cases: &[(u16, u8, &[u8], u8)] = &[
        (1, 24, &[10, 1, 0], 19),
        (1, 16, &[10, 1], 16),
        (2, 120, mapped, 115),
        (2, 112, &mapped[..14], 112),
        (2, 56, &[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0], 32),
    ];
    for &(family, source, addr, want) in cases {
        let mut option = vec![0, 8];
        option.extend_from_slice(&(4 + addr.len() as u16).to_be_bytes());
        option.extend_from_slice(&family.to_be_bytes());
        option.extend_from_slice(&[source, 0]);
        option.extend_from_slice(addr);
        let mut p = query("web.default.demo.svc.meridian.test", 1, false);
        p[11] = 1;
        p.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0]);
        p.extend_from_slice(&(option.len() as u16).to_be_bytes());
        p.extend_from_slice(&option);
        let mut out = Vec::new();
        let client = Client { transport: Transport::Udp, addr: None };
        let outcome = answer(&index, &p, &client, &mut out);
        assert_eq!(outcome.rcode, 0, "family {family} /{source}");
        let opt = decode(&out).opt().cloned().expect("OPT");
        // CODE, LENGTH, FAMILY, SOURCE, SCOPE, ADDRESS.
        assert_eq!(opt.rdata.get(4..7), Some(&[0, family as u8, source][..]), "family {family} /{source}");
        assert_eq!(opt.rdata.get(7).copied(), Some(want), "family {family} /{source}: scope");
    }
}

/// The options of an OPT's RDATA as (code, data).
fn options(mut rdata: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    while rdata.len() >= 4 {
        let code = u16::from_be_bytes([rdata[0], rdata[1]]);
        let len = usize::from(u16::from_be_bytes([rdata[2], rdata[3]]));
        out.push((code, rdata[4..4 + len].to_vec()));
        rdata = &rdata[4 + len..];
    }
    out
}

/// The option `code` of a reply, if its OPT has it.
fn option(reply: &[u8], code: u16) -> Option<Vec<u8>> {
    let opt = decode(reply).opt().cloned()?;
    options(&opt.rdata).into_iter().find(|(c, _)| *c == code).map(|(_, d)| d)
}

const COOKIE_SECRET: &str = "e5e973e5a6b2a43f48e7dc849e37bfcf";

/// The sample index with an NSID and a cookie secret from a file; the file is removed
/// once read.
fn identity_index(extra: Vec<meridian_model::table::Update>) -> crate::index::Index {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("cookie.key");
    std::fs::write(&secret, format!("{COOKIE_SECRET}\n")).expect("write");
    let mut config = meridian_config::Config::demo();
    config.dns.clusterset.export = meridian_config::dns::ExportMode::All;
    config.dns.nsid = Some("ns1.fra".into());
    config.dns.cookie_secret_file = Some(secret);
    let (table, mut writer) = meridian_model::table::Table::new();
    let mut updates = crate::fuzzing::sample_updates();
    updates.extend(extra);
    writer.apply(updates);
    let mut b = crate::builder::Builder::new(&config).expect("index builds");
    b.rebuild(&table.snapshot());
    b.index()
}

/// A query for `meridian.test SOA` with an OPT carrying `opts` (code, data).
fn with_options(qd: u16, opts: &[(u16, &[u8])]) -> Vec<u8> {
    let mut rdata = Vec::new();
    for (code, data) in opts {
        rdata.extend_from_slice(&code.to_be_bytes());
        rdata.extend_from_slice(&(data.len() as u16).to_be_bytes());
        rdata.extend_from_slice(data);
    }
    let mut opt = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00".to_vec();
    opt.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    opt.extend_from_slice(&rdata);
    let question: &[u8] = if qd == 1 { Q_SOA } else { &[] };
    packet(RD, [qd, 0, 0, 1], &[question, &opt])
}

fn answer_from(index: &crate::index::Index, p: &[u8], ip: &str) -> (crate::answer::Outcome, Vec<u8>) {
    use crate::answer::{Client, Transport, answer};
    let addr = std::net::SocketAddr::new(ip.parse().expect("ip"), 5353);
    let client = Client { transport: Transport::Udp, addr: Some(addr) };
    let mut out = Vec::new();
    let outcome = answer(index, p, &client, &mut out);
    (outcome, out)
}

/// RFC 5001: an empty NSID option is answered with the configured identifier; no NSID
/// is sent unasked, nor by a server that has none configured.
#[test]
fn nsid_is_answered_when_asked_and_configured() {
    let index = identity_index(vec![]);
    let (_, reply) = answer_from(&index, &with_options(1, &[(3, b"")]), "192.0.2.7");
    assert_eq!(option(&reply, 3).as_deref(), Some(&b"ns1.fra"[..]));
    let (_, reply) = answer_from(&index, &with_options(1, &[]), "192.0.2.7");
    assert_eq!(option(&reply, 3), None, "not asked");
    let reply = answer_bytes(&with_options(1, &[(3, b"")]), false).expect("answered");
    assert_eq!(option(&reply, 3), None, "none configured");
    assert!(decode(&reply).opt().is_some());
}

/// RFC 7873 with RFC 9018 cookies, as data: (case, COOKIE data sent, QDCOUNT) → RCODE,
/// whether the reply's cookie is a fresh one of ours for the client cookie sent, and
/// whether the query's server cookie verified.
#[test]
fn cookie_cases() {
    let index = identity_index(vec![]);
    let ip = "192.0.2.7";
    let client = *b"clientck";
    let secret = crate::cookie::Secret::new(meridian_config::dns::parse_cookie_secret(COOKIE_SECRET).expect("secret"));
    let ours = secret.server_cookie(&client, Some(ip.parse().expect("ip")), crate::cookie::now());
    let for_other_ip = secret.server_cookie(&client, Some("192.0.2.8".parse().expect("ip")), crate::cookie::now());
    let stale = secret.server_cookie(&client, Some(ip.parse().expect("ip")), crate::cookie::now() - 3700);
    let with = |server: &[u8]| [&client[..], server].concat();
    type Case = (&'static str, Vec<u8>, u16, u16, bool, bool);
    let cases: Vec<Case> = vec![
        ("client cookie only", client.to_vec(), 1, 0, true, false),
        ("our server cookie", with(&ours), 1, 0, true, true),
        ("a cookie made for another address", with(&for_other_ip), 1, 0, true, false),
        ("an expired cookie", with(&stale), 1, 0, true, false),
        ("a foreign 8-octet server cookie", with(b"12345678"), 1, 0, true, false),
        ("a 32-octet server cookie", with(&[7; 32]), 1, 0, true, false),
        ("no question, a client cookie", client.to_vec(), 0, 0, true, false),
        ("empty", vec![], 1, 1, false, false),
        ("7 octets", client[..7].to_vec(), 1, 1, false, false),
        ("9 octets", with(b"1"), 1, 1, false, false),
        ("15 octets", with(b"1234567"), 1, 1, false, false),
        ("41 octets", with(&[7; 33]), 1, 1, false, false),
        ("no question, a malformed cookie", client[..7].to_vec(), 0, 1, false, false),
    ];
    for (what, data, qd, rcode, cookie, valid) in cases {
        let (outcome, reply) = answer_from(&index, &with_options(qd, &[(10, &data)]), ip);
        let r = decode(&reply);
        assert_eq!(r.rcode, rcode, "{what}: rcode");
        assert!(r.opt().is_some(), "{what}: OPT");
        assert_eq!(outcome.valid_cookie, valid, "{what}: verified");
        let got = option(&reply, 10);
        assert_eq!(got.is_some(), cookie, "{what}: cookie");
        if let Some(got) = got {
            assert_eq!(got.len(), 24, "{what}");
            assert_eq!(got[..8], client, "{what}: client cookie echoed");
            assert_eq!(got[8..12], [1, 0, 0, 0], "{what}: version 1, reserved");
            let now = crate::cookie::now();
            assert!(secret.verify(&client, &got[8..], Some(ip.parse().expect("ip")), now), "{what}: ours, fresh");
        }
        if rcode == 0 && qd == 1 {
            assert_eq!(r.sections[0].len(), 1, "{what}: answered");
        }
    }
    // A second COOKIE option is ignored (the first counts), even malformed.
    let (_, reply) = answer_from(&index, &with_options(1, &[(10, &client), (10, b"x")]), ip);
    assert_eq!((decode(&reply).rcode, option(&reply, 10).map(|c| c.len())), (0, Some(24)));
    // NSID, Client Subnet and COOKIE together.
    let ecs: &[u8] = &[0, 1, 24, 0, 192, 0, 2];
    let (_, reply) = answer_from(&index, &with_options(1, &[(3, b""), (8, ecs), (10, &client)]), ip);
    let opt = decode(&reply).opt().cloned().expect("OPT");
    let codes: Vec<u16> = options(&opt.rdata).into_iter().map(|(c, _)| c).collect();
    assert_eq!(codes, [8, 3, 10]);
}

/// RFC 8914: refusals and NOTIMP say why in an Extended DNS Error — only to a query
/// with an OPT.
#[test]
fn extended_errors_say_why() {
    let q = |name: &str, qtype: u16, class: u16, edns: bool| {
        let mut p = query(name, qtype, edns);
        let at = 12 + name.len() + 2 + 2;
        p[at..at + 2].copy_from_slice(&class.to_be_bytes());
        p
    };
    let cases: &[(&str, Vec<u8>, u16, Option<u16>)] = &[
        ("outside the zones", q("example.org", 1, 1, true), 5, Some(20)),
        ("AXFR", q("meridian.test", 252, 1, true), 5, Some(21)),
        ("IXFR over UDP: the SOA", q("meridian.test", 251, 1, true), 0, None),
        ("IXFR of a name that is no zone", q("www.meridian.test", 251, 1, true), 9, Some(20)),
        ("class CH", q("meridian.test", 16, 3, true), 5, Some(21)),
        ("meta type MAILA", q("meridian.test", 254, 1, true), 4, Some(21)),
        ("an answer", q("meridian.test", 6, 1, true), 0, None),
        ("NXDOMAIN", q("nothing.meridian.test", 1, 1, true), 3, None),
        ("outside the zones, no OPT", q("example.org", 1, 1, false), 5, None),
    ];
    for (what, p, rcode, ede) in cases {
        let reply = answer_bytes(p, false).expect("answered");
        assert_eq!(decode(&reply).rcode, *rcode, "{what}");
        let got = option(&reply, 15);
        assert_eq!(got.as_ref().map(|d| u16::from_be_bytes([d[0], d[1]])), *ede, "{what}: EDE");
        if let Some(d) = got {
            assert!(std::str::from_utf8(&d[2..]).is_ok(), "{what}: EXTRA-TEXT is UTF-8");
        }
    }
}

/// A headless service with `n` endpoints in us-east, each with a hostname.
fn headless(name: &str, n: u8) -> meridian_model::table::Update {
    use meridian_model::table::{ClusterMeta, Endpoint, ObjectKey, Port, Protocol, Shard};
    let port = Port { name: Some("http".into()), port: 80, protocol: Protocol::Tcp };
    let endpoints = (0..n)
        .map(|i| Endpoint {
            addresses: vec![std::net::IpAddr::from([10, 9, 0, i])],
            hostname: Some(format!("{name}-{i}").into()),
            ready: true,
            ports: vec![port.clone()],
        })
        .collect();
    let cluster = std::sync::Arc::new(ClusterMeta::new("us-east", 0));
    let shard = Shard {
        headless: true,
        endpoints,
        ports: vec![port],
        ready_endpoints: u32::from(n),
        total_endpoints: u32::from(n),
        ..Shard::new(cluster, vec![])
    };
    meridian_model::table::Update::Service {
        cluster: "us-east".into(),
        key: ObjectKey::new("default", name),
        shard: Some(shard),
    }
}

/// RFC 2782: an SRV answer carries the addresses of its targets (names served here) in
/// the additional section, each target once; over UDP those that do not fit are left
/// out, never truncating the answer (RFC 2181 §9); over TCP all are there.
#[test]
fn srv_answers_carry_their_targets_addresses() {
    use crate::answer::{Client, Transport, answer};
    let index = identity_index(vec![headless("big", 12)]);
    let srv = |name: &str, edns: bool, transport| {
        let mut out = Vec::new();
        let client = Client { transport, addr: None };
        answer(&index, &query(name, 33, edns), &client, &mut out);
        decode(&out)
    };
    let r = srv("_http._tcp.db.default.svc.clusterset.local", true, Transport::Udp);
    assert_eq!(r.sections[0].iter().filter(|x| x.rtype == 33).count(), 2, "two SRV");
    let addrs: Vec<&Rec> = r.sections[2].iter().filter(|x| x.rtype == 1).collect();
    assert_eq!(addrs.len(), 2, "one A per target: {:?}", r.sections[2]);
    for a in addrs {
        let target = r.sections[0].iter().find(|s| s.rdata[6..] == a.owner[..]);
        assert!(target.is_some(), "the A is at an SRV target: {a:?}");
    }
    let big = "_http._tcp.big.default.svc.clusterset.local";
    let udp = srv(big, true, Transport::Udp);
    let tcp = srv(big, true, Transport::Tcp);
    assert_eq!(udp.flags & 0x0200, 0, "not truncated");
    assert_eq!(udp.sections[0].len(), 12, "every SRV");
    let (u, t) = (udp.sections[2].iter().filter(|x| x.rtype == 1).count(), tcp.sections[2].len() - 1);
    assert!(u > 0 && u < 12, "only what fits over UDP: {u}");
    assert_eq!(t, 12, "all over TCP");
    let classic = srv(big, false, Transport::Udp);
    assert_eq!(classic.flags & 0x0200, 0x0200, "12 SRV do not fit 512 octets: TC");
}

/// A LoadBalancer shard of `name` in the sample cluster `cluster` (region `region`, zone
/// `zone`), with `addrs` and `annotations`.
fn lb_shard(
    name: &str,
    cluster: (&str, &str, &str, usize),
    addrs: &[&str],
    annotations: &[(&str, &str)],
) -> Vec<meridian_model::table::Update> {
    use meridian_model::table::{ClusterMeta, ObjectKey, Shard, Update};
    let (cname, region, zone, order) = cluster;
    let meta = std::sync::Arc::new(ClusterMeta {
        region: Some(region.into()),
        zone: Some(zone.into()),
        ..ClusterMeta::new(cname, order)
    });
    let mut shard = Shard::new(meta.clone(), addrs.iter().map(|a| a.parse().expect("ip")).collect());
    shard.ready_endpoints = 1;
    shard.total_endpoints = 1;
    shard.annotations = annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    let service = Update::Service { cluster: cname.into(), key: ObjectKey::new("default", name), shard: Some(shard) };
    vec![Update::Cluster(meta), service]
}

/// The A records a name answers with, sorted, as text.
fn a_records(index: &crate::index::Index, name: &str) -> Vec<String> {
    let (_, reply) = answer_from(index, &query(name, 1, true), "192.0.2.7");
    let r = decode(&reply);
    let mut v: Vec<String> = r.sections[0]
        .iter()
        .filter(|x| x.rtype == 1)
        .filter_map(|x| <[u8; 4]>::try_from(&x.rdata[..]).ok())
        .map(|o| std::net::Ipv4Addr::from(o).to_string())
        .collect();
    v.sort();
    v
}

const US_EAST: (&str, &str, &str, usize) = ("us-east", "us-east1", "us-east1-b", 0);
const EU_WEST: (&str, &str, &str, usize) = ("eu-west", "europe-west1", "europe-west1-b", 1);

/// Region and zone names answer with the members of their global name in that place:
/// every address of each (an anycast address two clusters announce included, once per
/// answer), failover's first group among the place's own members, and the place matched
/// whatever the case of the cluster's region.
#[test]
fn region_and_zone_names_answer_their_places_members() {
    let mut extra = lb_shard("vip", US_EAST, &["203.0.113.5"], &[]);
    extra.extend(lb_shard("vip", EU_WEST, &["203.0.113.5", "203.0.113.6"], &[]));
    let failover = [("meridian.io/policy", "failover"), ("meridian.io/failover", "eu-west,us-east")];
    extra.extend(lb_shard("fo", US_EAST, &["198.51.100.1"], &failover));
    extra.extend(lb_shard("fo", EU_WEST, &["198.51.100.2"], &failover));
    extra.extend(lb_shard("upper", ("ap-east", "AP-East1", "AP-East1-a", 2), &["192.0.2.99"], &[]));
    let index = identity_index(extra);
    let name = |svc: &str, place: &str| format!("{svc}.default.demo.svc.{place}meridian.test");
    let cases: &[(String, &[&str])] = &[
        (name("vip", ""), &["203.0.113.5", "203.0.113.6"]),
        (name("vip", "us-east1."), &["203.0.113.5"]),
        (name("vip", "us-east1-b.us-east1."), &["203.0.113.5"]),
        (name("vip", "europe-west1."), &["203.0.113.5", "203.0.113.6"]),
        (name("vip", "europe-west1-b.europe-west1."), &["203.0.113.5", "203.0.113.6"]),
        // Failover: the global name answers the first group (eu-west) only; us-east's
        // own names answer us-east, the first group among their members.
        (name("fo", ""), &["198.51.100.2"]),
        (name("fo", "us-east1."), &["198.51.100.1"]),
        (name("fo", "us-east1-b.us-east1."), &["198.51.100.1"]),
        (name("fo", "europe-west1."), &["198.51.100.2"]),
        (name("upper", "ap-east1-a.ap-east1."), &["192.0.2.99"]),
        (name("upper", "ap-east1."), &["192.0.2.99"]),
    ];
    for (name, want) in cases {
        assert_eq!(a_records(&index, name), *want, "{name}");
    }
    // Where the service has no member, the zone name goes up a level by CNAME, twice.
    let (_, reply) = answer_from(&index, &query(&name("upper", "us-east1-b.us-east1."), 1, true), "192.0.2.7");
    let types: Vec<u16> = decode(&reply).sections[0].iter().map(|x| x.rtype).collect();
    assert_eq!(types, [5, 5, 1], "CNAME to the region name, CNAME to the global name, its A");
}
