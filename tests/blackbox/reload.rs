//! Configuration reload: a good file is applied without restart, a bad one is rejected
//! while the old configuration keeps serving.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use meridian_tests::{Meridian, eventually, free_addr};

fn config(admin: SocketAddr, dns: SocketAddr, clusters: &[(&str, u32)]) -> String {
    let head = meridian_tests::config_head("rl", admin, dns);
    let mut s = format!("{head}[discovery]\nprobe_interval = \"200ms\"\n");
    for (name, weight) in clusters {
        s.push_str(&format!(
            "[[clusters]]\nname = \"{name}\"\nsimulated = true\nregion = \"r-{name}\"\nweight = {weight}\n"
        ));
    }
    s
}

fn cluster_weights(m: &Meridian) -> Result<Vec<(String, u64)>> {
    let v = m.json("/api/v1/clusters")?;
    Ok(v.as_array()
        .into_iter()
        .flatten()
        .map(|c| (c["name"].as_str().unwrap_or("").to_owned(), c["weight"].as_u64().unwrap_or(0)))
        .collect())
}

#[test]
fn reload_applies_a_good_file_and_rejects_a_bad_one() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let admin = free_addr();
    let dns = free_addr();
    let file = dir.path().join("meridian.toml");
    std::fs::write(&file, config(admin, dns, &[("one", 1)]))?;
    let m = Meridian::serve(&file)?.with_ports(admin, dns)?;
    assert_eq!(cluster_weights(&m)?, [("one".to_owned(), 1)]);

    // A good edit: a second simulated cluster and a new weight, applied without restart.
    std::fs::write(&file, config(admin, dns, &[("one", 5), ("two", 1)]))?;
    eventually(Duration::from_secs(10), "reloaded clusters", || {
        let w = cluster_weights(&m)?;
        Ok((w == [("one".to_owned(), 5), ("two".to_owned(), 1)]).then_some(()))
    })?;

    // A bad edit: rejected with the reason in the log, the previous config keeps serving.
    std::fs::write(&file, config(admin, dns, &[("one", 5), ("Two_Bad", 1)]))?;
    eventually(Duration::from_secs(10), "rejection logged", || {
        Ok(m.log().contains("configuration reload rejected").then_some(()))
    })?;
    assert!(m.log().contains("clusters[1].name"), "the log names the field:\n{}", m.log());
    assert_eq!(cluster_weights(&m)?, [("one".to_owned(), 5), ("two".to_owned(), 1)]);
    let metrics = m.get("/metrics")?;
    assert!(metrics.contains("meridian_config_reloads_total{result=\"rejected\"} 1"), "{metrics}");

    // SIGHUP reloads too: remove the second cluster.
    let mut text = config(admin, dns, &[("one", 5)]);
    // Write without changing the file's mtime-visible content pattern: rely on SIGHUP.
    text.push_str("# edited\n");
    std::fs::write(&file, text)?;
    m.signal("HUP")?;
    eventually(Duration::from_secs(10), "cluster two removed", || {
        Ok((cluster_weights(&m)? == [("one".to_owned(), 5)]).then_some(()))
    })?;
    Ok(())
}

#[test]
fn sigterm_shuts_down_cleanly() -> Result<()> {
    let mut m = Meridian::demo()?;
    m.signal("TERM")?;
    let status = m.wait_exit(Duration::from_secs(10))?;
    assert!(status.success(), "exit status {status}:\n{}", m.log());
    assert!(m.log().contains("stopped"), "{}", m.log());
    Ok(())
}
