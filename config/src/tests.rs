use std::path::Path;

use super::*;

/// Parses `base` followed by each section: `None` must be accepted, `Some(text)` rejected
/// with an error that contains `text` (usually the field path).
pub(crate) fn check_sections(base: &str, cases: &[(&str, Option<&str>)]) {
    for &(section, err) in cases {
        let text = format!("{base}{section}\n");
        let got = Config::parse(&text, Path::new("t.toml"), Path::new("."));
        match (err, got) {
            (None, Ok(_)) => {}
            (Some(field), Err(e)) => assert!(e.to_string().contains(field), "{section}: {e}"),
            (None, Err(e)) => panic!("{section}: rejected: {e}"),
            (Some(_), Ok(_)) => panic!("{section}: accepted"),
        }
    }
}

fn parse(text: &str) -> Result<Config> {
    Config::parse(text, Path::new("test.toml"), Path::new("."))
}

const MINIMAL: &str = r#"
name = "fed"
dns_zone = "example.com"

[[clusters]]
name = "a"
simulated = true
region = "r1"
zone = "z1"
"#;

#[test]
fn embedded_demo_config_is_valid_and_has_the_three_members() {
    let c = Config::demo();
    let names: Vec<_> = c.clusters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["us-east", "eu-west", "ap-south"]);
    assert_eq!(c.name, "demo");
    assert_eq!(c.dns_zone, "meridian.test");
    assert_eq!(c.sync.host.as_ref().map(|h| h.name.as_str()), Some("host"));
}

#[test]
fn example_configs_in_the_repo_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("examples dir") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            seen += 1;
            if let Err(e) = Config::load(&path) {
                panic!("{} is invalid:\n{e}", path.display());
            }
        }
    }
    assert!(seen >= 2, "expected example configs in {}", dir.display());
}

#[test]
fn defaults_fill_missing_sections() {
    let c = parse(MINIMAL).expect("valid");
    assert_eq!(c.clusters[0].weight, 1);
    assert_eq!(c.admin.listen.to_string(), "127.0.0.1:9480");
    assert_eq!(c.dns.ttl, 30);
    assert_eq!(c.discovery.stale_policy, StalePolicy::Serve);
}

/// Load balancers' name servers are `ip:port` (IPv6 in brackets); none means the system's.
#[test]
fn lb_name_servers_are_socket_addresses() {
    assert!(parse(MINIMAL).expect("valid").discovery.lb_name_servers.is_empty());
    let text = format!("{MINIMAL}\n[discovery]\nlb_name_servers = [\"127.0.0.53:53\", \"[fd00::1]:5353\"]\n");
    let c = parse(&text).expect("valid");
    let got: Vec<String> = c.discovery.lb_name_servers.iter().map(ToString::to_string).collect();
    assert_eq!(got, ["127.0.0.53:53", "[fd00::1]:5353"]);
    assert!(parse(&text.replace("127.0.0.53:53", "127.0.0.53")).is_err(), "a port is required");
}

/// Gateway class filters are class names or controller names; empty serves every class.
#[test]
fn gateway_classes_take_class_and_controller_names() {
    assert!(parse(MINIMAL).expect("valid").discovery.gateway_classes.is_empty());
    let text = format!("{MINIMAL}\n[discovery]\ngateway_classes = [\"sim\", \"example.net/gateway-controller\"]\n");
    let c = parse(&text).expect("valid");
    assert_eq!(c.discovery.gateway_classes, ["sim", "example.net/gateway-controller"]);
    for bad in ["", "Upper", "example.net/", "/path", "a b/c", "example.net/with space"] {
        assert!(parse(&text.replace("\"sim\"", &format!("{bad:?}"))).is_err(), "{bad:?} accepted");
    }
}

/// Each case: a file, and the (path, line) every reported error must have, in order.
#[test]
fn errors_name_the_field_and_line() {
    let cases: &[(&str, &[(&str, usize)])] = &[
        // Unknown key: serde's error, located at the key.
        (
            "name = \"f\"\ndns_zone = \"x.com\"\n[[clusters]]\nname = \"a\"\nsimulated = true\nregoin = \"r\"\n",
            &[("clusters[0].regoin", 6)],
        ),
        // Wrong type.
        (
            "name = \"f\"\ndns_zone = \"x.com\"\n[[clusters]]\nname = \"a\"\nsimulated = true\nweight = \"heavy\"\n",
            &[("clusters[0].weight", 6)],
        ),
        // Several semantic errors at once, each at its own line.
        (
            "name = \"Bad_Name\"\ndns_zone = \"x..com\"\n[[clusters]]\nname = \"a\"\n\n[[clusters]]\nname = \"a\"\nsimulated = true\nlocation = { lat = 91.0, lon = 0.0 }\n",
            &[
                ("name", 1),
                ("dns_zone", 2),
                ("clusters[0].kubeconfig", 3),
                ("clusters[1].name", 7),
                ("clusters[1].location.lat", 9),
            ],
        ),
        // Syntax error.
        ("name = \"f\"\ndns_zone = \n", &[("", 2)]),
        // Several type errors: all of them in one run, in file order.
        (
            "name = \"f\"\ndns_zone = \"x.com\"\n[admin]\nlisten = 5\n[dns]\ntcp_idle_timeout = \"ten\"\n[lb]\nenabled = \"yes\"\n",
            &[("admin.listen", 4), ("dns.tcp_idle_timeout", 6), ("lb.enabled", 8)],
        ),
        // A required key of the wrong type: the search goes on past the cluster that then
        // misses it (no second error for the missing name), to the unknown key after it.
        (
            "name = \"f\"\ndns_zone = \"x.com\"\n[[clusters]]\nname = 7\nsimulated = true\n[dns]\nbogus = 1\n",
            &[("clusters[0].name", 4), ("dns.bogus", 7)],
        ),
        (
            "name = \"f\"\ndns_zone = \"x.com\"\n[discovery]\nprobe_interval = \"fast\"\n",
            &[("discovery.probe_interval", 4)],
        ),
        // A load balancers' name server that no query can reach.
        (
            "name = \"f\"\ndns_zone = \"x.com\"\n[discovery]\nlb_name_servers = [\"10.0.0.2:53\", \"0.0.0.0:53\"]\n",
            &[("discovery.lb_name_servers[1]", 4)],
        ),
        // A Gateway class filter that is neither a class nor a controller name.
        (
            "name = \"f\"\ndns_zone = \"x.com\"\n[discovery]\ngateway_classes = [\"sim\", \"Not A Class\"]\n",
            &[("discovery.gateway_classes[1]", 4)],
        ),
        // A nice value the kernel has no use for.
        (
            "name = \"f\"\ndns_zone = \"x.com\"\n[[clusters]]\nname = \"a\"\nsimulated = true\n[dns]\nudp_nice = 5\n",
            &[("dns.udp_nice", 7)],
        ),
    ];
    for (text, want) in cases {
        let all = parse(text).expect_err("must be rejected");
        let errs = &all.0;
        let got: Vec<(&str, usize)> = errs.iter().map(|e| (e.path.as_str(), e.line.unwrap_or(0))).collect();
        let want: Vec<(&str, usize)> = want.to_vec();
        if want.len() == 1 && want[0].0.is_empty() {
            assert_eq!(got.len(), 1, "{all}");
            assert_eq!(got[0].1, want[0].1, "{all}");
        } else {
            assert_eq!(got, want, "for file:\n{text}\nerrors:\n{all}");
        }
        for e in errs {
            assert!(e.to_string().starts_with("test.toml:"), "{e}");
        }
    }
}

#[test]
fn missing_file_is_a_clear_error() {
    let err = Config::load(Path::new("/nonexistent/meridian.toml")).expect_err("missing");
    assert!(err.to_string().contains("cannot read /nonexistent/meridian.toml"), "{err}");
}

/// `[dns.transfer]`: TSIG is required by default, one serial step a second at most; each
/// bad setting is refused with its field path, and a good one is read as written.
#[test]
fn transfer_settings_are_checked_by_field() {
    let c = parse(MINIMAL).expect("minimal");
    assert!(c.dns.transfer.require_tsig);
    assert_eq!(c.dns.transfer.min_serial_interval, Duration::from_secs(1));
    let base = "name = \"fed\"\ndns_zone = \"example.com\"\n";
    let cases: &[(&str, Option<&str>)] = &[
        ("[dns.transfer]\njournal_depth = 0", Some("dns.transfer.journal_depth")),
        ("[dns.transfer]\njournal_depth = 100000", Some("dns.transfer.journal_depth")),
        ("[dns.transfer]\nallow = [{ networks = [\"10.0.0.0/33\"] }]", Some("dns.transfer.allow[0].networks[0]")),
        ("[dns.transfer]\nallow = [{}]", Some("dns.transfer.allow[0]")),
        ("[dns.transfer]\nkeys = [\"/nonexistent/k.conf\"]", Some("dns.transfer.keys[0]")),
        ("[dns.transfer]\ncatalog = \"example.com\"", Some("dns.transfer.catalog")),
        ("[dns.transfer]\ncatalog = \"bad..name\"", Some("dns.transfer.catalog")),
        ("[dns.transfer]\nnotify_attempts = 0", Some("dns.transfer.notify_attempts")),
        ("[dns.transfer]\nnotify_timeout = \"0s\"", Some("dns.transfer.notify_timeout")),
        ("[dns.transfer]\nmin_serial_interval = \"2h\"", Some("dns.transfer.min_serial_interval")),
        ("[dns.transfer]\nsecondaries = [{ address = \"not an address\" }]", Some("secondaries")),
        ("[dns.transfer]\nbogus = 1", Some("bogus")),
        (
            "[dns.transfer]\nrequire_tsig = false\nmin_serial_interval = \"250ms\"\ncatalog = \"catalog.meridian.invalid\"\n\
             allow = [{ key = \"k\", networks = [\"127.0.0.0/8\", \"::1\"] }]\n\
             secondaries = [{ address = \"127.0.0.53:5300\", key = \"k\" }]",
            None,
        ),
    ];
    check_sections(base, cases);
}
