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

/// `check` opens what `serve` would open besides zone files, and names each failure: a
/// proxy certificate that is missing or whose key is another's, a fleet key file that is
/// missing, and the sync control plane's kubeconfig (checked like a member's).
#[test]
fn check_opens_certificates_fleet_keys_and_the_sync_control_plane() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("m.toml");
    std::fs::write(
        &file,
        "name = \"fed\"\ndns_zone = \"example.com\"\n[dns]\nnameservers = [\"ns.provider.example\"]\n\
         [[clusters]]\nname = \"a\"\nsimulated = true\n\
         [lb]\nenabled = true\n[[lb.certificates]]\ncert = \"missing.crt\"\nkey = \"missing.key\"\n\
         [fleet]\nid = \"a\"\nregion = \"r\"\nlisten = \"127.0.0.1:7946\"\nkey_file = \"fleet.key\"\n\
         [sync]\nenabled = true\n[sync.host]\nname = \"host\"\nkubeconfig = \"host-kubeconfig.yaml\"\n",
    )?;
    let (ok, out, err) = check(&file, &["--offline"])?;
    assert!(!ok, "{out}");
    assert!(err.contains("missing.crt"), "certificate: {err}");
    assert!(err.contains("fleet") && err.contains("fleet.key"), "fleet key: {err}");
    assert!(err.contains("cluster host: cannot read kubeconfig") && err.contains("host-kubeconfig.yaml"), "{err}");
    assert!(err.contains("2 unusable file(s)") && err.contains("1 cluster(s) cannot be used"), "{err}");
    Ok(())
}

/// The README's configuration example, with the files it names made real (a kubeconfig
/// with both of its contexts, the zone file, the cookie secret, a certificate and its
/// key), passes `check --offline`: what the README shows is a configuration that works.
#[test]
fn the_readme_configuration_example_passes_check() -> Result<()> {
    let readme = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))?;
    let start = readme.find("## Configuration").and_then(|at| readme[at..].find("```toml\n").map(|s| at + s + 8));
    let Some(start) = start else { anyhow::bail!("no toml block under ## Configuration") };
    let Some(len) = readme[start..].find("```") else { anyhow::bail!("unterminated toml block") };
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("meridian.toml");
    std::fs::write(&file, &readme[start..start + len])?;
    std::fs::write(
        dir.path().join("kubeconfig.yaml"),
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"http://127.0.0.1:1\"}\n\
         users:\n- name: u\n  user: {}\ncontexts:\n- name: gke_us-east1\n  context: {cluster: c, user: u}\n\
         - name: control-plane\n  context: {cluster: c, user: u}\n- name: eks_eu-central-1\n  context: {cluster: c, user: u}\n\
         current-context: gke_us-east1\n",
    )?;
    std::fs::write(dir.path().join("global.zone"), "$TTL 60\nwww-static IN A 192.0.2.80\n")?;
    std::fs::write(dir.path().join("cookie.key"), "00112233445566778899aabbccddeeff\n")?;
    let openssl = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"])
        .args(["-keyout", "www.key", "-out", "www.pem", "-days", "1", "-subj", "/CN=www.example.com"])
        .current_dir(dir.path())
        .output()?;
    assert!(openssl.status.success(), "openssl: {}", String::from_utf8_lossy(&openssl.stderr));
    let (ok, out, err) = check(&file, &["--offline"])?;
    assert!(ok && out.contains("ok"), "{err}");
    Ok(())
}
