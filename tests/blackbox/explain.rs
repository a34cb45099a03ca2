//! `meridian explain` against the demo: what it says a client gets is what dig gets from
//! the same server, with the location, the ranking and the shards that made it; and a
//! request through the proxy is explained with its levels and favoured backend.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use meridian_tests::{Meridian, binary, eventually};
use serde_json::Value;

const WEB: &str = "web.default.demo.svc.meridian.test";

fn explain(m: &Meridian, args: &[&str]) -> Result<(Value, String)> {
    let admin = m.admin.to_string();
    let run = |json: bool| -> Result<String> {
        let mut cmd = Command::new(binary());
        cmd.arg("explain").args(args).args(["--admin", &admin]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output()?;
        ensure!(out.status.success(), "explain {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        Ok(String::from_utf8(out.stdout)?)
    };
    let doc: Value = serde_json::from_str(&run(true)?)?;
    Ok((doc, run(false)?))
}

fn answer_data(doc: &Value) -> Vec<String> {
    doc["answer"].as_array().into_iter().flatten().filter_map(|a| a["data"].as_str().map(str::to_owned)).collect()
}

/// Subnets checked against the pinned GeoLite2 City database (as in `geo`): Paris,
/// Bangalore, New Jersey.
#[test]
fn explain_tells_what_dig_gets_and_why() -> Result<()> {
    assert!(std::env::var_os("MERIDIAN_GEOIP_DB").is_some(), "MERIDIAN_GEOIP_DB is not set: run scripts/test");
    let m = Meridian::demo()?;
    eventually(Duration::from_secs(10), "web in 3 clusters", || {
        Ok((m.dig(&["A", WEB])?.answers("A").len() == 3).then_some(()))
    })?;
    for (subnet, nearest) in [("195.154.0.0/24", "eu-west"), ("117.192.0.0/24", "ap-south"), ("24.0.0.0/24", "us-east")]
    {
        let (doc, text) = explain(&m, &[WEB, "--subnet", subnet])?;
        let dug = m.dig(&[&format!("+subnet={subnet}"), "A", WEB])?;
        let mut mine = answer_data(&doc);
        let mut theirs = dug.answers_in_order("A");
        assert_eq!(mine.first(), theirs.first(), "{subnet}: explain {doc:#}\ndig {}", dug.text);
        assert_eq!(doc["answer"][0]["cluster"], nearest, "{doc:#}");
        mine.sort();
        theirs.sort();
        assert_eq!(mine, theirs, "{subnet}");
        let echoed = dug.client_subnet().context("dig saw no ECS")?;
        assert_eq!(echoed.rsplit('/').next(), doc["ecs_scope"].as_u64().map(|s| s.to_string()).as_deref(), "{echoed}");
        let ranking = &doc["ranking"];
        assert_eq!(ranking["policy"], "geo");
        assert_eq!(ranking["applied"], "geo");
        assert_eq!(ranking["order"][0], nearest);
        assert_eq!(doc["location"]["from"], "ecs");
        assert_eq!(doc["location"]["found_in"], "geoip");
        assert_eq!(doc["chain"][0]["source"]["kind"], "service");
        assert_eq!(doc["chain"][0]["source"]["name"], "web");
        let shards = doc["shards"].as_array().context("shards")?;
        assert_eq!(shards.len(), 3, "{doc:#}");
        assert!(shards.iter().all(|s| s["usable"] == true), "{doc:#}");
        assert!(text.contains("policy geo") && text.contains(&format!("; {nearest}")), "{text}");
    }
    // A region's name answers with a CNAME up the hierarchy when it has no healthy shard
    // of its own, and the chain shows it; a name outside the zones is refused.
    let (doc, _) = explain(&m, &["nothing.example.org"])?;
    assert_eq!(doc["rcode"], "REFUSED");
    let (doc, text) = explain(&m, &["--http", "www.meridian.test/", "--client", "195.154.0.1"])?;
    assert!(text.contains("lb.region"), "the client's address is said to change nothing: {text}");
    assert_eq!(doc["route"]["host"], "www.meridian.test", "{doc:#}");
    // The demo's proxy runs in europe-west1: eu-west is the first level and favoured.
    assert_eq!(doc["route"]["levels"][0]["name"], "europe-west1", "{doc:#}");
    assert_eq!(doc["favoured"]["cluster"], "eu-west", "{doc:#}");
    let (doc, text) = explain(&m, &["--http", "unknown.example/x"])?;
    assert!(doc["route"].is_null() && text.contains("no route"), "{text}");
    Ok(())
}

/// Bad questions get a clear error naming the input, not a panic or an empty answer.
#[test]
fn explain_names_what_is_wrong_with_a_question() -> Result<()> {
    let m = Meridian::demo()?;
    let admin = m.admin.to_string();
    for (args, want) in [
        (vec![WEB, "--type", "BOGUS"], "unknown record type"),
        (vec![WEB, "--subnet", "300.1.2.0/24"], "not a CIDR"),
        (vec![WEB, "--at", "95,0"], "latitude"),
        (vec!["a..b"], "empty label"),
    ] {
        let out = Command::new(binary()).arg("explain").args(&args).args(["--admin", &admin]).output()?;
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{args:?}: {err}");
    }
    Ok(())
}
