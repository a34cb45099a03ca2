//! Real nginx processes, each with its own config in a temporary directory, killed when
//! dropped: as HTTP backends answering `<name> <uri>`, or as a reverse proxy in front of
//! a backend (the differential oracle of the smuggling tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use meridian_testkit::wait::eventually_blocking;

use crate::require;

/// One nginx in single-process mode (killing it leaves nothing behind).
pub struct Nginx {
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Nginx {
    /// Starts nginx on `addr` and waits until it accepts connections.
    pub fn start(name: &str, addr: SocketAddr) -> Result<Nginx> {
        Self::with_server(
            addr,
            &format!(
                "keepalive_requests 100000;\n\
                 server {{ listen {addr}; location / {{ default_type text/plain; return 200 \"{name} $uri\\n\"; }} }}\n"
            ),
        )
    }

    /// nginx as a pooling reverse proxy on `addr` in front of `backend`: HTTP/1.1 to the
    /// upstream over a keep-alive pool, the client's `Host` passed on and
    /// `X-Forwarded-For` appended, as nginx is deployed in front of an application.
    /// Client timeouts are short (1 s) so an incomplete request fails fast in tests.
    pub fn reverse_proxy(addr: SocketAddr, backend: SocketAddr) -> Result<Nginx> {
        Self::with_server(
            addr,
            &format!(
                "client_header_timeout 1s;\n  client_body_timeout 1s;\n  keepalive_timeout 5s;\n\
                 upstream backend {{ server {backend}; keepalive 16; }}\n\
                 server {{ listen {addr};\n    location / {{ proxy_pass http://backend; proxy_http_version 1.1;\n\
                 proxy_set_header Connection \"\"; proxy_set_header Host $host;\n\
                 proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for; }} }}\n"
            ),
        )
    }

    /// Starts nginx with `http` holding the common settings and then `server`.
    fn with_server(addr: SocketAddr, server: &str) -> Result<Nginx> {
        require("nginx", "nginx");
        let dir = tempfile::tempdir()?;
        let d = dir.path().display();
        let conf = format!(
            "master_process off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  {server}}}\n"
        );
        std::fs::write(dir.path().join("nginx.conf"), conf)?;
        let mut n = Nginx { addr, dir, child: None };
        n.spawn()?;
        Ok(n)
    }

    fn conf(&self) -> PathBuf {
        self.dir.path().join("nginx.conf")
    }

    fn spawn(&mut self) -> Result<()> {
        let child = Command::new("nginx")
            .arg("-p")
            .arg(self.dir.path())
            .arg("-e")
            .arg(self.dir.path().join("error.log"))
            .arg("-c")
            .arg(self.conf())
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?;
        self.child = Some(child);
        let what = format!("nginx listening on {}", self.addr);
        let up = eventually_blocking(Duration::from_secs(5), &what, || {
            std::net::TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).ok()
        });
        if let Err(timed_out) = up {
            let log = std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
            bail!("{timed_out}: {log}");
        }
        Ok(())
    }

    /// Kills the process: connections are refused from now on.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same address.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.kill();
    }
}
