//! Headless Chromium driven over the DevTools protocol, for the status page's test: a
//! real browser runs the page's JavaScript against the real admin endpoint.
//!
//! One WebSocket to the browser; one page target attached with `flatten`, so every
//! command carries the page's session id. Calls block (a small runtime of their own),
//! so they fit `meridian_tests::eventually`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine;
use futures::{SinkExt, StreamExt};
use meridian_tests::require;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How long one DevTools command may take (a navigation, a screenshot).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A headless Chromium, stopped on drop even when the test fails: a [`Page`] dropped
/// before it closes the browser over DevTools (renderers and helpers exit with it); the
/// browser process is then waited for briefly and killed by its pid if still there.
///
/// Never `kill -SIG -PGID` through the `kill` command: procps-ng 4's `kill` reads the
/// negative pid as an option and signals every process (`kill(-1)`).
pub(crate) struct Chromium {
    child: Child,
    /// Everything Chromium printed, for failure messages.
    stderr: Arc<Mutex<Vec<String>>>,
    _profile: tempfile::TempDir,
}

impl Chromium {
    /// Starts `chromium --headless=new` on a fresh profile and returns it with its
    /// DevTools WebSocket address.
    pub(crate) fn launch() -> Result<(Chromium, String)> {
        require("chromium", "chromium");
        let profile = tempfile::tempdir()?;
        let mut child = Command::new("chromium")
            .args(["--headless=new", "--no-sandbox", "--remote-debugging-port=0", "--no-first-run"])
            .args(["--disable-gpu", "--hide-scrollbars", "--window-size=1440,1000", "--disable-extensions"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot run chromium (apt-get install chromium)")?;
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().context("chromium's stderr")?;
        let lines = stderr.clone();
        // Drains stderr for the browser's whole life: a full pipe would stall it.
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(std::io::Result::ok) {
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push(line);
            }
        });
        let browser = Chromium { child, stderr, _profile: profile };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => Ok((browser, url)),
            Err(_) => bail!("chromium printed no DevTools address in 30 s:\n{}", browser.log()),
        }
    }

    pub(crate) fn log(&self) -> String {
        self.stderr.lock().unwrap_or_else(std::sync::PoisonError::into_inner).join("\n")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One page of the browser, over the DevTools protocol.
pub(crate) struct Page {
    runtime: tokio::runtime::Runtime,
    socket: Socket,
    session: String,
    next_id: u64,
}

impl Page {
    /// Connects to the browser at `ws_url` and opens a blank page of `width`×`height`.
    pub(crate) fn open(ws_url: &str, width: u32, height: u32) -> Result<Page> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let (socket, _) = runtime
            .block_on(tokio_tungstenite::connect_async(ws_url))
            .with_context(|| format!("cannot connect to chromium's DevTools at {ws_url}"))?;
        let mut page = Page { runtime, socket, session: String::new(), next_id: 0 };
        let target = page.call_browser("Target.createTarget", json!({"url": "about:blank"}))?;
        let id = target["targetId"].as_str().context("Target.createTarget gave no targetId")?.to_owned();
        let attached = page.call_browser("Target.attachToTarget", json!({"targetId": id, "flatten": true}))?;
        page.session = attached["sessionId"].as_str().context("Target.attachToTarget gave no sessionId")?.to_owned();
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        page.call("Emulation.setDeviceMetricsOverride", metrics)?;
        Ok(page)
    }

    /// A command to the page's session.
    pub(crate) fn call(&mut self, method: &str, params: Value) -> Result<Value> {
        let session = self.session.clone();
        self.send(method, params, Some(&session))
    }

    fn call_browser(&mut self, method: &str, params: Value) -> Result<Value> {
        self.send(method, params, None)
    }

    fn send(&mut self, method: &str, params: Value, session: Option<&str>) -> Result<Value> {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = s.into();
        }
        let (runtime, socket) = (&self.runtime, &mut self.socket);
        let reply = runtime.block_on(async {
            socket.send(Message::text(msg.to_string())).await?;
            tokio::time::timeout(CALL_TIMEOUT, reply_to(socket, id)).await.map_err(|_| anyhow!("no reply in time"))?
        });
        let reply = reply.with_context(|| format!("DevTools {method}"))?;
        if let Some(err) = reply.get("error") {
            bail!("DevTools {method} failed: {err}");
        }
        Ok(reply["result"].clone())
    }

    pub(crate) fn navigate(&mut self, url: &str) -> Result<()> {
        let r = self.call("Page.navigate", json!({"url": url}))?;
        if let Some(err) = r.get("errorText").and_then(Value::as_str) {
            bail!("cannot load {url}: {err}");
        }
        Ok(())
    }

    /// The value of a JavaScript expression in the page (promises awaited); an
    /// exception is an error.
    pub(crate) fn eval(&mut self, expression: &str) -> Result<Value> {
        let params = json!({"expression": expression, "returnByValue": true, "awaitPromise": true});
        let r = self.call("Runtime.evaluate", params)?;
        if let Some(ex) = r.get("exceptionDetails") {
            bail!("{expression} threw: {}", ex["exception"]["description"].as_str().unwrap_or(&ex.to_string()));
        }
        Ok(r["result"]["value"].clone())
    }

    /// Saves a PNG of the whole page (grown to its full height) at `path`.
    pub(crate) fn screenshot(&mut self, path: &Path) -> Result<()> {
        let height = self.eval("document.documentElement.scrollHeight")?.as_u64().unwrap_or(1000);
        let width = self.eval("document.documentElement.scrollWidth")?.as_u64().unwrap_or(1440);
        let metrics = json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false});
        self.call("Emulation.setDeviceMetricsOverride", metrics)?;
        let shot = self.call("Page.captureScreenshot", json!({"format": "png"}))?;
        let data = shot["data"].as_str().context("Page.captureScreenshot gave no data")?;
        let png = base64::engine::general_purpose::STANDARD.decode(data)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, png).with_context(|| format!("cannot write {}", path.display()))
    }
}

impl Drop for Page {
    /// Closes the whole browser (`Browser.close`), so its helper processes exit with it.
    fn drop(&mut self) {
        let _ = self.call_browser("Browser.close", json!({}));
    }
}

/// Reads messages until the reply to `id` (events and other replies are skipped).
async fn reply_to(socket: &mut Socket, id: u64) -> Result<Value> {
    while let Some(msg) = socket.next().await {
        let Message::Text(text) = msg? else { continue };
        let v: Value = serde_json::from_str(text.as_str())?;
        if v["id"].as_u64() == Some(id) {
            return Ok(v);
        }
    }
    bail!("chromium closed the DevTools connection")
}
