//! The status page on the admin endpoint's `/`, loaded from the demo in headless
//! Chromium: what a person sees, updated live, and the explain box.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use meridian_tests::{Meridian, eventually, kubectl_ok};
use serde_json::Value;

use crate::chromium::{Chromium, Page};

/// Where the test leaves its screenshot: `target/artifacts/`, beside the binary's build.
fn artifact(name: &str) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("artifacts").join(name)
}

/// Polls a JavaScript expression until `accept` takes its value.
fn wait_for<T>(page: &mut Page, what: &str, js: &str, accept: impl Fn(&Value) -> Option<T>) -> Result<T> {
    eventually(Duration::from_secs(20), what, || {
        let v = page.eval(js)?;
        Ok(accept(&v))
    })
}

const MAP_CLUSTERS: &str = "JSON.stringify([...document.querySelectorAll('#clusters-layer [data-cluster]')]\
    .map(g => [g.dataset.cluster, g.dataset.state]))";
const WEB_SHARDS: &str = "JSON.stringify([...document.querySelectorAll('[data-service=\"default/web\"] [data-shard]')]\
    .map(c => [c.dataset.shard, c.dataset.health]))";
const CHANGES: &str = "[...document.querySelectorAll('#changes li')].map(li => li.textContent).join('\\n')";

fn parse(v: &Value) -> Value {
    v.as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(Value::Null)
}

/// The page shows the demo's three clusters on the map and its `web` service; a shard
/// marked not ready in the simulator turns up on the open page without a reload; and
/// asking from Paris is answered by eu-west, with a line drawn to it.
#[test]
fn the_status_page_shows_the_demo_live_and_explains_an_answer_from_paris() -> Result<()> {
    let m = Meridian::demo()?;
    let (browser, ws) = Chromium::launch()?;
    let mut page = Page::open(&ws, 1440, 1000)?;
    page.navigate(&format!("http://{}/", m.admin))?;
    let result = check_page(&m, &mut page);
    let shot = artifact("status-page.png");
    let saved = page.screenshot(&shot);
    if let Err(e) = result {
        bail!("{e:#}\nscreenshot: {} ({saved:?})\nchromium:\n{}", shot.display(), browser.log());
    }
    saved?;
    eprintln!("screenshot: {}", shot.display());
    Ok(())
}

fn check_page(m: &Meridian, page: &mut Page) -> Result<()> {
    let three_ready = |v: &Value| {
        let list = parse(v);
        let names: Vec<_> = list.as_array()?.iter().filter(|c| c[1] == "Ready").filter_map(|c| c[0].as_str()).collect();
        (names == ["us-east", "eu-west", "ap-south"]).then_some(())
    };
    wait_for(page, "three Ready clusters on the map", MAP_CLUSTERS, three_ready)?;
    let all_healthy = |v: &Value| {
        let list = parse(v);
        let shards = list.as_array()?;
        (shards.len() == 3 && shards.iter().all(|s| s[1] == "healthy")).then_some(())
    };
    wait_for(page, "web listed with three healthy shards", WEB_SHARDS, all_healthy)?;
    // A mark that a reload would wipe: the change below must arrive without one.
    page.eval("window.sameDocument = true")?;

    kubectl_ok(&m.kubeconfig(), "us-east", &["annotate", "svc", "web", "sim.meridian.io/ready=false", "--overwrite"])?;
    let us_east_down = |v: &Value| {
        let list = parse(v);
        let shards = list.as_array()?;
        shards.iter().any(|s| s[0] == "default/web@us-east" && s[1] == "unhealthy").then_some(())
    };
    wait_for(page, "web's us-east shard shown unhealthy", WEB_SHARDS, us_east_down)?;
    let logged = |v: &Value| v.as_str()?.contains("default/web in us-east: healthy → unhealthy").then_some(());
    wait_for(page, "the change listed under recent changes", CHANGES, logged)?;
    let degraded = "document.querySelector('#clusters-layer [data-cluster=\"us-east\"]').dataset.degraded";
    wait_for(page, "us-east drawn degraded on the map", degraded, |v| (v == "true").then_some(()))?;
    assert_eq!(page.eval("window.sameDocument === true")?, true, "the page was reloaded");

    ask_from_paris(page)
}

/// Picks Paris in the explain box, asks, and reads the answer and the line drawn.
fn ask_from_paris(page: &mut Page) -> Result<()> {
    let named = "document.getElementById('explain-name').value";
    let name = wait_for(page, "the explain box names web", named, |v| {
        v.as_str().filter(|s| s.starts_with("web.default.")).map(str::to_owned)
    })?;
    page.eval(
        "(() => { const f = document.getElementById('explain-from');\
         f.value = [...f.options].find(o => o.text === 'Paris').value;\
         document.getElementById('explain-ask').click(); return true; })()",
    )?;
    let done = "(() => { const r = document.getElementById('explain-result');\
        return JSON.stringify([r.dataset.state, r.dataset.cluster || '', r.textContent]); })()";
    let (state, cluster, text) = wait_for(page, "an explain answer", done, |v| {
        let r = parse(v);
        let state = r[0].as_str()?;
        (state == "done" || state == "error")
            .then(|| (state.to_owned(), r[1].as_str().unwrap_or("").to_owned(), r[2].as_str().unwrap_or("").to_owned()))
    })?;
    assert_eq!(state, "done", "explain of {name} from Paris failed: {text}");
    assert_eq!(cluster, "eu-west", "Paris is answered by the nearest cluster: {text}");
    let line = page.eval("document.getElementById('explain-line')?.dataset.cluster ?? null")?;
    assert_eq!(line, "eu-west", "a line drawn from Paris to eu-west");
    let order = page.eval("[...document.querySelectorAll('#explain-order li')].map(li => li.dataset.rank)")?;
    assert_eq!(order[0], "eu-west", "the ranking listed, eu-west first: {order}");
    Ok(())
}
