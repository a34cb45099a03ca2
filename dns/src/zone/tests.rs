use super::*;

fn build_text(text: &str) -> Result<ZoneData> {
    build_with(text, &[ns("ns1.example.test", &["192.0.2.53", "2001:db8::53"])])
}

fn ns(name: &str, addresses: &[&str]) -> NameServer {
    NameServer { name: name.into(), addresses: addresses.iter().map(|a| a.parse().expect("address")).collect() }
}

fn build_with(text: &str, nameservers: &[NameServer]) -> Result<ZoneData> {
    let dir = std::env::temp_dir().join(format!("meridian-dns-zone-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{:x}.zone", {
        let mut h = DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    }));
    std::fs::write(&path, text).expect("write zone");
    let spec = ZoneSpec { apex: "example.test".into(), file: Some(path), nameservers: nameservers.to_vec() };
    build(&spec, &ZoneDefaults { ttl: 30, negative_ttl: 30 }, Vec::new())
}

/// Broken files are reported with the line of the first error.
#[test]
fn errors_name_the_line() {
    let cases = [
        ("$ORIGIN example.test.\n$TTL 60\nwww IN A 192.0.2.1\nbad IN A 300.1.1.1\n", 4),
        ("$TTL 60\nwww IN A 192.0.2.1\n\n\nx IN BOGUS 1\n", 5),
        ("$TTL 60\nwww.other.test. IN A 192.0.2.1\n", 2),
        ("$TTL 60\n@ IN SOA ns1 admin ( 1 2 3 4 5 )\nwww IN CNAME a\nwww IN A 192.0.2.1\n", 4),
        ("$TTL 60\n@ IN SOA ns1 admin ( 1 2\n3 4 5\n", 3),
        // RFC 6672 §2.4: no DNAME beside a CNAME.
        ("$TTL 60\nold IN DNAME a.example.test.\n\nold IN CNAME b\n", 4),
        ("$TTL 60\nold IN DNAME a.example.test.\nx IN ANAME y.example.test.\n", 3),
    ];
    for (text, line) in cases {
        match build_text(text) {
            Err(Error::ZoneFile { line: got, .. }) => assert_eq!(got, line, "{text:?}"),
            other => panic!("{text:?}: expected a zone file error, got {other:?}"),
        }
    }
}

/// A file without SOA/NS gets them synthesised; one with an SOA keeps it.
#[test]
fn soa_and_ns_synthesised_or_kept() {
    let z = build_text("$TTL 60\nwww IN A 192.0.2.1\n").expect("valid");
    assert_eq!(z.file_serial, None);
    assert_eq!(z.negative_ttl, 30);
    let apex = z.nodes.get(&name::key("example.test").expect("key")[..]).expect("apex node");
    assert!(apex.rrsets.iter().any(|r| r.rtype == u16::from(RecordType::NS)));
    let z = build_text("$TTL 60\n@ IN SOA ns1 admin ( 42 3600 600 86400 10 )\n").expect("valid");
    assert_eq!(z.file_serial, Some(42));
    assert_eq!(z.negative_ttl, 10, "min(SOA TTL 60, MINIMUM 10)");
    assert_eq!(&with_serial(&z.soa, 7)[z.soa.len() - 20..z.soa.len() - 16], &7u32.to_be_bytes());
}

/// Names between a record and the apex are empty non-terminals.
#[test]
fn empty_non_terminals() {
    let z = build_text("$TTL 60\na.b.c IN A 192.0.2.1\n").expect("valid");
    for n in ["b.c.example.test", "c.example.test"] {
        assert!(z.ents.contains(&name::key(n).expect("key")), "{n}");
    }
    assert!(!z.ents.contains(&name::key("example.test").expect("key")));
}

fn rtypes_at(z: &ZoneData, name: &str) -> Vec<u16> {
    z.nodes
        .get(&name::key(name).expect("key")[..])
        .map(|n| n.rrsets.iter().map(|r| r.rtype).collect())
        .unwrap_or_default()
}

/// Synthesised NS bring the A and AAAA records of the in-zone name servers; an
/// out-of-zone name server needs none; records the file has at those names stay.
#[test]
fn in_zone_name_servers_get_their_addresses() {
    let z = build_text(
        "$TTL 60
www IN A 192.0.2.1
",
    )
    .expect("valid");
    assert_eq!(rtypes_at(&z, "ns1.example.test"), [u16::from(RecordType::A), u16::from(RecordType::AAAA)]);
    let out = build_with(
        "$TTL 60
",
        &[ns("ns.provider.example", &[])],
    )
    .expect("out-of-zone NS need no address");
    assert!(rtypes_at(&out, "ns.provider.example").is_empty());
    let kept = build_with(
        "$TTL 60
ns1 IN A 198.51.100.1
",
        &[ns("ns1.example.test", &["192.0.2.53"])],
    )
    .expect("ok");
    let node = kept.nodes.get(&name::key("ns1.example.test").expect("key")[..]).expect("node");
    assert_eq!(node.rrsets.len(), 1);
    assert_eq!(&node.rrsets[0].rdata[0][..], &[198, 51, 100, 1], "the file's own A record stays");
}

/// An in-zone name server without an address is an error naming it, whether the NS
/// comes from the file or from the configuration.
#[test]
fn unaddressed_in_zone_name_servers_are_refused() {
    for (text, servers) in [
        (
            "$TTL 60
@ IN NS ns.example.test.
",
            vec![],
        ),
        (
            "$TTL 60
www IN A 192.0.2.1
",
            vec![ns("ns2.example.test", &[])],
        ),
    ] {
        match build_with(text, &servers) {
            Err(Error::Zone { reason, .. }) => {
                let reason = reason.to_string();
                assert!(reason.contains("has no A or AAAA"), "{reason}")
            }
            other => panic!("{text:?}: expected a refusal, got {other:?}"),
        }
    }
    build_with(
        "$TTL 60
@ IN NS ns.example.test.
ns IN AAAA 2001:db8::1
",
        &[],
    )
    .expect("addressed by the file");
}

/// A DNAME (RFC 6672) loads like any record: it is served at its owner, and names below
/// it are redirected at query time rather than refused when the zone loads.
#[test]
fn dname_loads() {
    let z = build_text("$TTL 60\nold IN DNAME new.example.test.\nwww.new IN A 192.0.2.80\n").expect("a DNAME loads");
    assert_eq!(rtypes_at(&z, "old.example.test"), [u16::from(RecordType::DNAME)]);
    let node = z.nodes.get(&name::key("old.example.test").expect("key")[..]).expect("node");
    assert_eq!(&node.rrsets[0].rdata[0][..], b"\x03new\x07example\x04test\x00");
}

/// The TYPE field of each record is found past owners, TTLs, classes, comments, quotes
/// and parentheses; directives have none (this is how DNAMEs are found for the parser).
#[test]
fn type_fields_cases() {
    let cases: &[(&str, &[(&str, usize)])] = &[
        ("dname IN A 192.0.2.1\n", &[("A", 1)]),
        ("old 300 IN DNAME new\n  IN TXT \"DNAME ; (\"\n", &[("DNAME", 1), ("TXT", 2)]),
        ("$ORIGIN example.test.\n$TTL 60\n\tDNAME x\n", &[("DNAME", 3)]),
        ("; old IN DNAME x\nold CLASS1 3600 dname x ; DNAME\n", &[("dname", 2)]),
        (
            "@ IN SOA ns1 admin (\n 1 2 3 4 5 )\nold ( 1h IN\n DNAME x )\nz\\ IN A 192.0.2.1\n",
            &[("SOA", 1), ("DNAME", 4), ("A", 5)],
        ),
    ];
    for (text, want) in cases {
        let got: Vec<(&str, usize)> = type_fields(text).into_iter().map(|(r, line)| (&text[r], line)).collect();
        assert_eq!(&got, want, "{text:?}");
    }
}
