use super::*;

fn parse(toml_text: &str) -> Result<FleetConfig, toml::de::Error> {
    toml::from_str(toml_text)
}

const FULL: &str = r#"
id = "ns1-fra"
region = "eu-central"
location = { lat = 50.11, lon = 8.68 }
listen = "0.0.0.0:7946"
advertise = "192.0.2.10:7946"
seeds = ["192.0.2.11:7946", "ns3.example.net:7946", "[2001:db8::3]:7946"]
key_file = "/etc/meridian/fleet.key"
key_id = 2
quorum = "fraction:0.18"
stale_after = "5s"
gossip_interval = "500ms"
socket_buffer_bytes = 8388608
"#;

/// The documented example reads and validates, every field where it belongs.
#[test]
fn full_example_is_valid() {
    let c = parse(FULL).expect("parses");
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.quorum, Quorum::Fraction(0.18));
    assert_eq!(c.key_id, 2);
    assert_eq!(c.gossip_interval, Duration::from_millis(500));
    assert_eq!(c.socket_buffer_bytes, 8 << 20);
    assert_eq!(c.advertised(), "192.0.2.10:7946".parse().expect("addr"));
}

/// Defaults fill in everything optional.
#[test]
fn minimal_config_takes_defaults() {
    let c = parse("id = \"a\"\nregion = \"r\"\nlisten = \"127.0.0.1:7946\"\nkey = \"$FLEET_KEY\"\n").expect("parses");
    assert_eq!(c.validate(), Ok(()));
    assert_eq!(c.quorum, Quorum::Majority);
    assert_eq!(c.stale_after, DEFAULT_STALE_AFTER);
    assert_eq!(c.key_id, 1);
    assert_eq!(c.socket_buffer_bytes, DEFAULT_SOCKET_BUFFER_BYTES);
    assert!(c.seeds.is_empty());
}

/// Unknown fields and bad rule spellings fail at parse time, naming the culprit.
#[test]
fn unknown_fields_and_bad_rules_are_refused() {
    let typo = parse("id = \"a\"\nregion = \"r\"\nlisten = \"127.0.0.1:1\"\nsteal_after = \"1s\"\n").expect_err("typo");
    assert!(typo.to_string().contains("steal_after"), "{typo}");
    let rule =
        parse("id = \"a\"\nregion = \"r\"\nlisten = \"127.0.0.1:1\"\nquorum = \"fraction:2\"\n").expect_err("rule");
    assert!(rule.to_string().contains("fraction"), "{rule}");
}

/// Each validation rule, one case each, with the field it names.
#[test]
fn validation_names_each_problem() {
    let base = || FleetConfig {
        key: Some("$K".into()),
        ..FleetConfig::new("a", "r", "127.0.0.1:7946".parse().expect("addr"))
    };
    let cases: Vec<(FleetConfig, &str)> = vec![
        (FleetConfig { id: "has space".into(), ..base() }, "fleet.id"),
        (FleetConfig { id: String::new(), ..base() }, "fleet.id"),
        (FleetConfig { region: "x".repeat(64), ..base() }, "fleet.region"),
        (FleetConfig { location: Some(Location { lat: 91.0, lon: 0.0 }), ..base() }, "fleet.location.lat"),
        (FleetConfig { location: Some(Location { lat: 0.0, lon: 181.0 }), ..base() }, "fleet.location.lon"),
        (FleetConfig { listen: "0.0.0.0:7946".parse().expect("addr"), ..base() }, "fleet.advertise"),
        (FleetConfig { seeds: vec!["ok:1".into(), "no-port".into()], ..base() }, "fleet.seeds[1]"),
        (FleetConfig { seeds: vec!["host:0".into()], ..base() }, "fleet.seeds[0]"),
        (FleetConfig { key: None, ..base() }, "fleet.key"),
        (FleetConfig { key_file: Some("/k".into()), ..base() }, "fleet.key_file"),
        (FleetConfig { key: Some("hunter2-inline-secret".into()), ..base() }, "fleet.key"),
        (FleetConfig { key: Some("$1BAD".into()), ..base() }, "fleet.key"),
        (FleetConfig { stale_after: Duration::from_millis(1000), ..base() }, "fleet.stale_after"),
        (FleetConfig { gossip_interval: Duration::from_millis(1), ..base() }, "fleet.gossip_interval"),
        (FleetConfig { socket_buffer_bytes: 1024, ..base() }, "fleet.socket_buffer_bytes"),
        (FleetConfig { socket_buffer_bytes: 1 << 30, ..base() }, "fleet.socket_buffer_bytes"),
    ];
    assert_eq!(base().validate(), Ok(()));
    for (config, field) in cases {
        let errors = config.validate().expect_err(field);
        assert!(errors.iter().any(|e| e.field() == field), "{field}: {errors:?}");
    }
}

/// An inline key is neither printed by Debug, serialized, nor echoed by the error.
#[test]
fn inline_key_is_redacted_everywhere() {
    let c = FleetConfig {
        key: Some("hunter2-inline-secret".into()),
        ..FleetConfig::new("a", "r", "127.0.0.1:1".parse().expect("addr"))
    };
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    let serialized = toml::to_string(&c).expect("serializes");
    assert!(!serialized.contains("hunter2"), "{serialized}");
    let errors = c.validate().expect_err("inline");
    assert!(errors.iter().all(|e| !e.to_string().contains("hunter2")), "{errors:?}");
    let env = FleetConfig { key: Some("$FLEET_KEY".into()), ..c };
    assert!(format!("{env:?}").contains("$FLEET_KEY"), "an environment reference is not a secret");
}

/// `[fleet]` in a whole file: absent by default, read when present, and its problems
/// reported like every other section's, with the field path and the line.
#[test]
fn fleet_section_in_the_file() {
    // A fleet lists its name servers (every instance's), as `dns.nameservers` requires.
    let base = "name = \"f\"\ndns_zone = \"example.com\"\n[dns]\nnameservers = [\"ns.provider.example\"]\n\
                [[clusters]]\nname = \"a\"\nsimulated = true\n";
    let none = crate::Config::parse(base, std::path::Path::new("t.toml"), std::path::Path::new(".")).expect("valid");
    assert_eq!(none.fleet, None);
    let cases: &[(&str, Option<&str>)] = &[
        ("[fleet]\nid = \"a\"\nregion = \"r\"\nlisten = \"127.0.0.1:7946\"\nkey = \"$K\"\nquorum = \"any\"", None),
        (
            "[fleet]\nid = \"a b\"\nregion = \"r\"\nlisten = \"127.0.0.1:7946\"\nkey = \"$K\"",
            Some("t.toml:9:6: fleet.id"),
        ),
        ("[fleet]\nid = \"a\"\nregion = \"r\"\nlisten = \"127.0.0.1:7946\"", Some("fleet.key")),
        (
            "[fleet]\nid = \"a\"\nregion = \"r\"\nlisten = \"127.0.0.1:7946\"\nkey = \"$K\"\nstale_after = \"1s\"",
            Some("t.toml:13:15: fleet.stale_after"),
        ),
        (
            "[fleet]\nid = \"a\"\nregion = \"r\"\nlisten = \"127.0.0.1:7946\"\nkey = \"$K\"\nquorum = \"most\"",
            Some("most"),
        ),
    ];
    crate::tests::check_sections(base, cases);
    let text = format!("{base}{}\n", cases[0].0);
    let c = crate::Config::parse(&text, std::path::Path::new("t.toml"), std::path::Path::new(".")).expect("valid");
    assert_eq!(c.fleet.map(|f| f.quorum), Some(Quorum::Any));
}
