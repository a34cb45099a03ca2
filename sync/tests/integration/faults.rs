//! A cluster that goes silent (a fault proxy stalls its API: connections stay open,
//! nothing is answered) holds up neither the other members nor deletions, and catches
//! up once it answers again; a silent control plane makes the leader step down on time.

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use meridian_testkit::Mode;
use meridian_testkit::wait::eventually_sync;
use serde_json::Value;

use crate::support::{Env, Options, wait_for};

const WAIT: Duration = Duration::from_secs(10);
/// `[sync] deletion_timeout` in these tests.
const DELETION_TIMEOUT: Duration = Duration::from_secs(5);

fn configmap(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{k: v}}\n")
}

/// Names of the ConfigMaps of `default` in a cluster.
async fn configmaps(env: &Env, context: &str) -> Result<Vec<String>> {
    let out = env.kubectl(&["--context", context, "get", "configmaps", "-o", "json"]).await?;
    let list: Value = serde_json::from_str(&out)?;
    let items = list["items"].as_array().cloned().unwrap_or_default();
    Ok(items.iter().filter_map(|o| o.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned)).collect())
}

/// With m3 stalled (and still Ready as far as discovery can tell, so only sync's own
/// deadlines can notice): a new ConfigMap reaches m1 and m2 within 2 s; once m3 is
/// known to be silent a burst of 12 ConfigMaps reaches them within 2 s (three rounds of
/// the four workers, were each to wait a 1 s timeout for m3, would not); a cascade
/// deletion completes within deletion_timeout + 5 s; m3 is reported NotAnswering with an
/// Event, a log line and metrics; after the stall m3 catches up within 5 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn silent_member_holds_up_nobody_and_catches_up() -> Result<()> {
    let env = Env::start_with(Options {
        proxied: &["m3"],
        // Discovery would take 200 s to call m3 Offline: sync must notice on its own.
        offline_after: 1000,
        deletion_timeout: "5s",
        request_timeout: "1s",
        sync_lines: "",
    })
    .await?;
    env.apply("host", &configmap("doomed")).await?;
    for c in ["m1", "m2", "m3"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "doomed"), Option::is_some).await?;
    }

    env.proxy("m3")?.set(Mode::Stall);
    let start = Instant::now();
    env.apply("host", &configmap("fresh")).await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "fresh"), Option::is_some).await?;
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "fresh reached m1 and m2 after {took:?} with m3 silent");

    // m3 is reported: status, Event, metrics, and the gate is shut.
    let status = wait_for(
        "m3 NotAnswering",
        WAIT,
        || env.sync_status("configmap", "fresh"),
        |s| s["clusters"]["m3"]["state"] == "NotAnswering",
    )
    .await?;
    assert_eq!(status["clusters"]["m1"]["state"], "Synced", "{status}");
    let message = status["clusters"]["m3"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("no answer within 1s"), "{status}");
    let described = env.kubectl(&["--context", "host", "describe", "configmap", "fresh"]).await?;
    assert!(described.contains("ClusterNotAnswering"), "{described}");
    let sync = env.sync()?;
    eventually_sync(WAIT, "m3 listed as not answering", || {
        (sync.status()["not_answering"] == serde_json::json!(["m3"])).then_some(())
    })
    .await?;
    let timeouts = env.metric("meridian_sync_request_timeouts_total", &[("cluster", "m3")])?;
    assert!(timeouts >= 1.0, "timeouts of m3: {timeouts}");

    // Known to be silent, m3 costs the others nothing: 12 objects in one go.
    let burst: Vec<String> = (0..12).map(|i| format!("burst-{i}")).collect();
    let yaml: Vec<String> = burst.iter().map(|n| configmap(n)).collect();
    let start = Instant::now();
    env.apply("host", &yaml.join("---\n")).await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || configmaps(&env, c), |names| burst.iter().all(|b| names.contains(b))).await?;
    }
    let took = start.elapsed();
    assert!(took < Duration::from_secs(2), "12 ConfigMaps reached m1 and m2 after {took:?} with m3 silent");
    let skips = env.metric("meridian_sync_member_skips_total", &[("cluster", "m3"), ("reason", "not_answering")])?;
    assert!(skips >= 12.0, "skips of m3: {skips}");

    // A cascading delete: m1 and m2 lose their copies at once, m3's is left over after the
    // deletion timeout, and the control-plane object goes well within 5 s of that.
    let start = Instant::now();
    env.kubectl(&["--context", "host", "delete", "configmap", "doomed", "--cascade=foreground", "--wait=false"])
        .await?;
    for c in ["m1", "m2"] {
        wait_for(c, WAIT, || env.get(c, "configmap", "doomed"), Option::is_none).await?;
    }
    let describe = || env.kubectl(&["--context", "host", "describe", "configmap", "doomed"]);
    wait_for("DeletionWaiting Event", WAIT, describe, |d| d.contains("DeletionWaiting")).await?;
    let limit = DELETION_TIMEOUT + Duration::from_secs(5);
    wait_for("doomed released", limit, || env.get("host", "configmap", "doomed"), Option::is_none).await?;
    let took = start.elapsed();
    assert!(took < limit, "the cascade deletion took {took:?} with m3 silent");
    assert!(took >= DELETION_TIMEOUT - Duration::from_millis(200), "released before the deletion timeout: {took:?}");
    let s = sync.status();
    let left = s["leftovers"].as_array().cloned().unwrap_or_default();
    ensure!(left.iter().any(|l| l["cluster"] == "m3" && l["object"] == "ConfigMap default/doomed"), "leftovers: {s}");

    // m3 answers again: it gets what it missed, and its leftover copy is finished (deleted:
    // the deletion cascaded) at a resync after it answers (`controller::leftovers`).
    env.proxy("m3")?.set(Mode::Pass);
    let start = Instant::now();
    let catch_up = Duration::from_secs(5);
    wait_for(
        "m3 catches up",
        catch_up,
        || configmaps(&env, "m3"),
        |names| names.iter().any(|n| n == "fresh") && burst.iter().all(|b| names.contains(b)),
    )
    .await?;
    let took = start.elapsed();
    assert!(took < catch_up, "m3 caught up after {took:?}");
    wait_for("m3 Synced", WAIT, || env.sync_status("configmap", "fresh"), |s| s["clusters"]["m3"]["state"] == "Synced")
        .await?;
    assert_eq!(sync.status()["not_answering"], serde_json::json!([]));
    wait_for("m3's leftover deleted", WAIT, || env.get("m3", "configmap", "doomed"), Option::is_none).await?;
    wait_for("no leftovers", WAIT, || async { anyhow::Ok(sync.status()) }, |s| s["leftovers"] == serde_json::json!([]))
        .await?;
    env.shutdown().await;
    Ok(())
}

/// With the control plane silent, the leader stops syncing within the renew deadline
/// (2/3 of the 2 s Lease: 1.33 s, asserted with 1 s of slack for a busy machine) instead
/// of hanging in a renewal; once the control plane answers again it leads again and
/// syncs what was created meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_steps_down_when_the_control_plane_goes_silent() -> Result<()> {
    let env = Env::start_with(Options { proxied: &["host"], ..Options::default() }).await?;
    let sync = env.sync()?;
    env.proxy("host")?.set(Mode::Stall);
    let start = Instant::now();
    let limit = Duration::from_millis(2500);
    eventually_sync(limit, "leader steps down", || (sync.status()["leader"] == false).then_some(())).await?;
    let took = start.elapsed();
    assert!(took < limit, "still leading {took:?} after the control plane went silent");

    // kubectl reaches the control plane directly; sync does not, and must not act.
    env.apply("host", &configmap("meanwhile")).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(env.get("m1", "configmap", "meanwhile").await?.is_none(), "synced without the Lease");

    env.proxy("host")?.set(Mode::Pass);
    eventually_sync(WAIT, "leads again", || (sync.status()["leader"] == true).then_some(())).await?;
    wait_for("meanwhile synced", WAIT, || env.get("m1", "configmap", "meanwhile"), Option::is_some).await?;
    env.shutdown().await;
    Ok(())
}
