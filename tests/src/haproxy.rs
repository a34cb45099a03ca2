//! A real HAProxy as a reverse proxy in front of one backend (the differential oracle of
//! the smuggling tests): its own config in a temporary directory, in the foreground with
//! one thread, killed when dropped.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use meridian_testkit::wait::eventually_blocking;

use crate::require;

pub struct Haproxy {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Child,
}

impl Haproxy {
    /// `mode http` with keep-alive on both sides, `X-Forwarded-For` added, one `server`.
    /// Client timeouts are short (1 s for a request head) so an incomplete request fails
    /// fast in tests.
    pub fn reverse_proxy(addr: SocketAddr, backend: SocketAddr) -> Result<Haproxy> {
        require("haproxy", "haproxy");
        let dir = tempfile::tempdir()?;
        let conf = format!(
            "global\n  nbthread 1\n  maxconn 512\n\
             defaults\n  mode http\n  option http-keep-alive\n  option forwardfor\n\
             \x20 timeout connect 2s\n  timeout client 2s\n  timeout server 5s\n\
             \x20 timeout http-request 1s\n  timeout http-keep-alive 2s\n\
             frontend fe\n  bind {addr}\n  default_backend be\n\
             backend be\n  server app {backend}\n"
        );
        let file = dir.path().join("haproxy.cfg");
        std::fs::write(&file, conf)?;
        let log = std::fs::File::create(dir.path().join("haproxy.log"))?;
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("cannot start haproxy")?;
        let mut h = Haproxy { addr, dir, child };
        h.wait_listening()?;
        Ok(h)
    }

    fn wait_listening(&mut self) -> Result<()> {
        let what = format!("haproxy listening on {}", self.addr);
        let up = eventually_blocking(Duration::from_secs(5), &what, || match self.child.try_wait() {
            Ok(None) => {
                std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).ok().map(|_| Ok(()))
            }
            Ok(Some(st)) => Some(Err(anyhow!("haproxy exited with {st}"))),
            Err(e) => Some(Err(e.into())),
        });
        match up {
            Ok(r) => r.with_context(|| self.log()),
            Err(timed_out) => bail!("{timed_out}: {}", self.log()),
        }
    }

    /// What HAProxy printed (warnings, alerts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
