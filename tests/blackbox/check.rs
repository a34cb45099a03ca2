//! `meridian check`: every error with its field and line, non-zero exit.

use std::process::Command;

use anyhow::Result;
use meridian_tests::binary;

fn check(file: &std::path::Path, extra: &[&str]) -> Result<(bool, String, String)> {
    let out = Command::new(binary()).arg("check").arg("--config").arg(file).args(extra).output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn check_reports_every_error_with_field_and_line() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bad.toml");
    std::fs::write(
        &file,
        "name = \"fed\"\ndns_zone = \"example.com\"\n\n[[clusters]]\nname = \"a\"\nsimulated = true\nlocation = { lat = 120.0, lon = 0.0 }\n\n[[clusters]]\nname = \"a\"\nsimulated = true\n",
    )?;
    let (ok, _, err) = check(&file, &[])?;
    assert!(!ok);
    let f = file.display().to_string();
    assert!(err.contains(&format!("{f}:7:")) && err.contains("clusters[0].location.lat"), "{err}");
    assert!(err.contains(&format!("{f}:10:")) && err.contains("clusters[1].name"), "{err}");
    Ok(())
}

#[test]
fn check_names_a_missing_kubeconfig_and_an_unknown_context() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let kc = dir.path().join("kubeconfig.yaml");
    std::fs::write(
        &kc,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {}\ncontexts:\n- name: real\n  context: {cluster: c, user: u}\ncurrent-context: real\n",
    )?;
    let file = dir.path().join("m.toml");
    std::fs::write(
        &file,
        "name = \"fed\"\ndns_zone = \"example.com\"\n[[clusters]]\nname = \"a\"\nkubeconfig = \"missing.yaml\"\n[[clusters]]\nname = \"b\"\nkubeconfig = \"kubeconfig.yaml\"\ncontext = \"nope\"\n[[clusters]]\nname = \"c\"\nkubeconfig = \"kubeconfig.yaml\"\ncontext = \"real\"\n",
    )?;
    let (ok, _, err) = check(&file, &[])?;
    assert!(!ok);
    assert!(err.contains("cluster a: cannot read kubeconfig") && err.contains("missing.yaml"), "{err}");
    assert!(err.contains("cluster b: context \"nope\" not found") && err.contains("real"), "{err}");
    assert!(err.contains("cluster c: unreachable"), "{err}");
    // --offline skips reachability but not the file checks.
    let (ok, _, err) = check(&file, &["--offline"])?;
    assert!(!ok);
    assert!(!err.contains("cluster c"), "{err}");
    Ok(())
}

#[test]
fn example_configs_pass_check() -> Result<()> {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    for name in ["simulated.toml", "kubeconfig-clusters.toml"] {
        let (ok, out, err) = check(&examples.join(name), &["--offline"])?;
        assert!(ok, "{name}: {err}");
        assert!(out.contains("ok"), "{out}");
    }
    Ok(())
}

/// A configuration serving `example.test` from `zone` (a file beside it).
fn config_with_zone(dir: &std::path::Path, zone: &str) -> Result<std::path::PathBuf> {
    std::fs::write(dir.join("example.test.zone"), zone)?;
    let file = dir.join("m.toml");
    std::fs::write(
        &file,
        "name = \"fed\"\ndns_zone = \"example.com\"\n[dns]\nlisten = [\"127.0.0.1:5353\"]\n\
         [[dns.zones]]\nname = \"example.test\"\nfile = \"example.test.zone\"\n\
         [[clusters]]\nname = \"a\"\nsimulated = true\n",
    )?;
    Ok(file)
}

/// `check` builds every served zone from its master file as the server does: a broken
/// record is reported with file, line and reason, so is a zone the server would refuse
/// (an in-zone name server without an address), and a valid file, DNAME included, passes.
#[test]
fn check_loads_zone_files_as_the_server_does() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let zone = dir.path().join("example.test.zone");
    let z = zone.display().to_string();
    let cases: &[(&str, Option<&[&str]>)] = &[
        ("$TTL 60\nwww IN A 192.0.2.1\n\nbad IN A 300.1.1.1\n", Some(&[&format!("{z}:4:")])),
        ("$TTL 60\nwww IN CNAME a\nwww IN TXT \"x\"\n", Some(&[&format!("{z}:3:"), "CNAME and other records"])),
        ("$TTL 60\n@ IN NS ns.example.test.\n", Some(&["example.test", "ns.example.test", "no A or AAAA"])),
        ("$TTL 60\nold IN DNAME new.example.test.\nwww.new IN A 192.0.2.1\n", None),
    ];
    for (text, want) in cases {
        let file = config_with_zone(dir.path(), text)?;
        let (ok, out, err) = check(&file, &["--offline"])?;
        match want {
            Some(parts) => {
                assert!(!ok, "{text:?} passed: {out}");
                for p in *parts {
                    assert!(err.contains(p), "{text:?}: {p:?} missing from {err}");
                }
            }
            None => assert!(ok && out.contains("ok"), "{text:?}: {err}"),
        }
    }
    Ok(())
}
