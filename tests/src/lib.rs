//! Support for Meridian's black-box tests: start the real `meridian` binary, find free
//! loopback ports, and drive real clients (dig, kubectl, curl) against it.
//!
//! Tests talk to the binary only over the network, as users do. This crate holds what
//! every test needs once; the tests themselves live in `blackbox/`.
//!
//! # Layout
//! - `lib.rs`: [`Meridian`] (the process), dig/kdig/kubectl/curl, and free addresses
//!   and [`eventually`] over `meridian-testkit`'s.
//! - `dig`: parsed dig answers. `nginx`, `haproxy`: real peers as backends or proxies.
//! - `secondary`: Knot, NSD and BIND as TSIG-authenticated secondaries of a Meridian
//!   primary, with `tsig-keygen` keys.
//! - `front`: [`MeridianProxy`], `meridian serve` proxying to backends the test runs.
//! - `recorder`: [`RecordingBackend`], an origin that records the exact bytes and
//!   requests a proxy sent it. `raw`: a raw HTTP/1.x client. `wire`: strict chunked
//!   decoding and line-ending checks both of them share.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use meridian_testkit::wait::eventually_blocking;

pub mod dig;
pub mod front;
pub mod haproxy;
pub mod nginx;
pub mod raw;
pub mod recorder;
pub mod secondary;
pub mod sim;
pub mod wire;
pub use dig::{Record, Reply};
pub use front::MeridianProxy;
pub use haproxy::Haproxy;
pub use nginx::Nginx;
pub use recorder::RecordingBackend;
pub use sim::SimProcess;

/// The `meridian` binary built by `cargo build` (scripts/test builds it first).
pub fn binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    let profile = if cfg!(debug_assertions) { "debug" } else { "release" };
    target.join(profile).join("meridian")
}

// Free loopback addresses, from testkit: each on its own random IP, so that parallel test
// processes do not race for ports.
pub use meridian_testkit::addr::{free_addr, free_port};

/// The head of a test config: federation `name`, zone `<name>.test`, and the admin and
/// DNS listen addresses (the `[dns]` table stays open for more keys).
pub fn config_head(name: &str, admin: SocketAddr, dns: SocketAddr) -> String {
    format!(
        "name = \"{name}\"\ndns_zone = \"{name}.test\"\n[admin]\nlisten = \"{admin}\"\n[dns]\nlisten = [\"{dns}\"]\n"
    )
}

/// Fails with the package to install when a client program is missing: tests never skip
/// silently.
pub fn require(cmd: &str, package: &str) {
    let found = Command::new("sh").arg("-c").arg(format!("command -v {cmd}")).output().map(|o| o.status.success());
    assert!(found.unwrap_or(false), "`{cmd}` is not installed: run scripts/test, or apt-get install {package}");
}

/// A running `meridian` process, killed on drop.
pub struct Meridian {
    child: Child,
    pub admin: SocketAddr,
    pub dns: SocketAddr,
    /// The proxy's plain-HTTP and HTTPS listeners (demo only).
    pub proxy: SocketAddr,
    pub proxy_tls: SocketAddr,
    pub state_dir: tempfile::TempDir,
    log: PathBuf,
}

impl Meridian {
    /// `meridian demo` on free ports, waiting until its admin endpoint reports ready.
    pub fn demo() -> Result<Self> {
        Self::spawn(&["demo"], &[])
    }

    /// `meridian serve --config FILE`.
    pub fn serve(config: &Path) -> Result<Self> {
        let c = config.to_string_lossy().into_owned();
        Self::spawn(&["serve", "--config", &c], &[])
    }

    fn spawn(args: &[&str], env: &[(&str, &str)]) -> Result<Self> {
        let state_dir = tempfile::tempdir()?;
        let admin = free_addr();
        let dns = free_addr();
        let proxy = free_addr();
        let proxy_tls = free_addr();
        let log = state_dir.path().join("meridian.log");
        let mut cmd = Command::new(binary());
        cmd.args(args).arg("--state-dir").arg(state_dir.path());
        if args.first() == Some(&"demo") {
            cmd.arg("--admin").arg(admin.to_string()).arg("--dns").arg(dns.to_string());
            cmd.arg("--proxy").arg(proxy.to_string()).arg("--proxy-tls").arg(proxy_tls.to_string());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let logfile = std::fs::File::create(&log)?;
        cmd.stdout(logfile.try_clone()?).stderr(logfile).stdin(Stdio::null());
        let child =
            cmd.spawn().with_context(|| format!("cannot run {}: build it with `cargo build`", binary().display()))?;
        let mut m = Self { child, admin, dns, proxy, proxy_tls, state_dir, log };
        if args.first() == Some(&"demo") {
            m.wait_ready(Duration::from_secs(30))?;
        }
        Ok(m)
    }

    /// For `serve`, the caller's config decides the ports; tell the handle, and wait
    /// until `/readyz` says ready.
    pub fn with_ports(mut self, admin: SocketAddr, dns: SocketAddr) -> Result<Self> {
        self.admin = admin;
        self.dns = dns;
        self.wait_ready(Duration::from_secs(30))?;
        Ok(self)
    }

    /// Like [`Meridian::with_ports`], but waits only until the admin endpoint answers
    /// `/healthz`: for a proxy that is rightly not ready before it has backends.
    pub fn with_ports_live(mut self, admin: SocketAddr, dns: SocketAddr) -> Result<Self> {
        self.admin = admin;
        self.dns = dns;
        self.wait_for("/healthz", "ok", Duration::from_secs(30))?;
        Ok(self)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.state_dir.path().join("kubeconfig")
    }

    /// Everything the process printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        self.wait_for("/readyz", "ready", timeout)
    }

    /// Waits until `path` answers a body starting with `prefix`; fails at once if the
    /// process exits meanwhile.
    fn wait_for(&mut self, path: &str, prefix: &str, timeout: Duration) -> Result<()> {
        let what = format!("meridian's {path} answers {prefix:?}");
        let answered = eventually_blocking(timeout, &what, || match self.child.try_wait() {
            Ok(None) => self.get(path).is_ok_and(|body| body.starts_with(prefix)).then_some(Ok(())),
            Ok(Some(status)) => Some(Err(anyhow!("meridian exited with {status} before {path} answered"))),
            Err(e) => Some(Err(e.into())),
        });
        match answered {
            Ok(r) => r.with_context(|| self.log()),
            Err(timed_out) => bail!("{timed_out}:\n{}", self.log()),
        }
    }

    /// GET a path of the admin endpoint (plain HTTP/1.1 over a TCP socket).
    pub fn get(&self, path: &str) -> Result<String> {
        http_get(self.admin, path)
    }

    /// GET a JSON document from the admin endpoint.
    pub fn json(&self, path: &str) -> Result<serde_json::Value> {
        Ok(serde_json::from_str(&self.get(path)?)?)
    }

    /// Runs kubectl against one simulated cluster.
    pub fn kubectl(&self, context: &str, args: &[&str]) -> Result<Output> {
        kubectl(&self.kubeconfig(), context, args)
    }

    /// `dig` against the DNS listener.
    pub fn dig(&self, args: &[&str]) -> Result<Reply> {
        dig(self.dns, args).map(Reply::new)
    }

    /// `kdig` against the DNS listener.
    pub fn kdig(&self, args: &[&str]) -> Result<Reply> {
        kdig(self.dns, args).map(Reply::new)
    }

    /// Sends a signal to the process.
    pub fn signal(&self, sig: &str) -> Result<()> {
        let st = Command::new("kill").arg(format!("-{sig}")).arg(self.child.id().to_string()).status()?;
        if !st.success() {
            bail!("kill -{sig} failed");
        }
        Ok(())
    }

    /// Waits for the process to exit and returns its exit status.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        Ok(eventually_blocking(timeout, "meridian exited", || self.child.try_wait().transpose())??)
    }
}

impl Drop for Meridian {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Minimal HTTP/1.1 GET; the admin endpoint is plain HTTP on loopback.
pub fn http_get(addr: SocketAddr, path: &str) -> Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").context("malformed HTTP response")?;
    let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).context("no status code")?;
    let body =
        if head.to_ascii_lowercase().contains("transfer-encoding: chunked") { dechunk(body) } else { body.to_owned() };
    if !(200..300).contains(&status) {
        bail!("GET {path} answered {status}: {body}");
    }
    Ok(body)
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Runs kubectl with a kubeconfig and context.
pub fn kubectl(kubeconfig: &Path, context: &str, args: &[&str]) -> Result<Output> {
    require("kubectl", "kubernetes-client");
    let out = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--context")
        .arg(context)
        .args(args)
        .output()
        .context("cannot run kubectl")?;
    Ok(out)
}

/// Runs kubectl and returns stdout, failing with stderr when it fails.
pub fn kubectl_ok(kubeconfig: &Path, context: &str, args: &[&str]) -> Result<String> {
    let out = kubectl(kubeconfig, context, args)?;
    if !out.status.success() {
        bail!("kubectl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `dig @server -p port ARGS`, returning stdout.
pub fn dig(server: SocketAddr, args: &[&str]) -> Result<String> {
    require("dig", "dnsutils");
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .arg("+time=2")
        .arg("+tries=1")
        .args(args)
        .output()
        .context("cannot run dig")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `kdig @server -p port ARGS`, returning stdout.
pub fn kdig(server: SocketAddr, args: &[&str]) -> Result<String> {
    require("kdig", "knot-dnsutils");
    let out = Command::new("kdig")
        .arg(format!("@{}", server.ip()))
        .arg("-p")
        .arg(server.port().to_string())
        .arg("+time=2")
        .arg("+retry=0")
        .args(args)
        .output()
        .context("cannot run kdig")?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `curl -sS` with ARGS; returns (HTTP status, body). `-w` is appended to read the
/// status, so ARGS must not use it.
pub fn curl(args: &[&str]) -> Result<(u16, String)> {
    require("curl", "curl");
    let out = Command::new("curl").args(["-sS", "--max-time", "10", "-w", "\n%{http_code}"]).args(args).output()?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
    let code: u16 = code.trim().parse().unwrap_or(0);
    if code == 0 {
        bail!("curl {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok((code, body.to_owned()))
}

/// Polls `f` until it returns `Some`, or fails after `timeout` with the last value seen:
/// testkit's [`eventually_blocking`], where an error of `f` is an observation (the next
/// look retries) rather than the end.
pub fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let look = || f().map_err(|e| format!("{e:#}")).and_then(|v| v.ok_or_else(|| "condition not met".to_owned()));
    Ok(eventually_blocking(timeout, what, look)?)
}
