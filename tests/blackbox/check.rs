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
