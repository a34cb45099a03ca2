use super::*;

fn build_text(text: &str) -> Result<ZoneData> {
    let dir = std::env::temp_dir().join(format!("meridian-dns-zone-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{:x}.zone", {
        let mut h = DefaultHasher::new();
        text.hash(&mut h);
        h.finish()
    }));
    std::fs::write(&path, text).expect("write zone");
    let spec = ZoneSpec { apex: "example.test".into(), file: Some(path) };
    build(&spec, &ZoneDefaults { ttl: 30, negative_ttl: 30, nameservers: &[] }, Vec::new())
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
