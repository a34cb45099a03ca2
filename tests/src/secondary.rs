//! Real secondaries of a Meridian primary: Knot (`knotd`), NSD and BIND (`named`), each
//! in its own temp directory on its own loopback address, TSIG-authenticated with one
//! key, taking NOTIFY from the primary and transferring its zones. Killed when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{Reply, dig, require};

/// A TSIG key made by `tsig-keygen`, with the file it wrote.
#[derive(Debug, Clone)]
pub struct TsigKeyFile {
    pub name: String,
    /// Base64, as every server's configuration writes it.
    pub secret: String,
    /// `tsig-keygen`'s output, BIND's key-file format.
    pub text: String,
}

impl TsigKeyFile {
    /// A fresh hmac-sha256 key called `name`.
    pub fn generate(name: &str) -> Result<TsigKeyFile> {
        require("tsig-keygen", "bind9");
        let out = Command::new("tsig-keygen").args(["-a", "hmac-sha256", name]).output().context("run tsig-keygen")?;
        let text = String::from_utf8(out.stdout)?;
        let secret = text
            .split_once("secret \"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(s, _)| s.to_owned())
            .context("no secret in tsig-keygen's output")?;
        Ok(TsigKeyFile { name: name.to_owned(), secret, text })
    }

    /// `hmac-sha256:name:secret`, for `dig -y`.
    pub fn dig_arg(&self) -> String {
        format!("hmac-sha256:{}:{}", self.name, self.secret)
    }
}

/// Which server a [`Secondary`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Knot,
    Nsd,
    Bind,
}

/// A secondary server process.
pub struct Secondary {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    pub dir: tempfile::TempDir,
    log: &'static str,
    cleanup: Vec<String>,
}

impl Secondary {
    /// Starts `kind` on `addr` (see [`crate::free_addr`]) as a secondary of `zones` from
    /// `primary`, signing with `key`; `catalog` (Knot and BIND) is a catalog zone whose
    /// members it provisions.
    pub fn start(
        kind: Kind,
        addr: SocketAddr,
        primary: SocketAddr,
        zones: &[&str],
        key: &TsigKeyFile,
        catalog: Option<&str>,
    ) -> Result<Secondary> {
        let dir = tempfile::tempdir()?;
        let (mut cmd, log) = match kind {
            Kind::Knot => (knot(dir.path(), addr, primary, zones, key, catalog)?, "knot.log"),
            Kind::Nsd => (nsd(dir.path(), addr, primary, zones, key)?, "nsd.log"),
            Kind::Bind => {
                // named listens only on addresses configured on an interface.
                let add = format!("ip addr add {}/32 dev lo", addr.ip());
                if !Command::new("sh").arg("-c").arg(&add).status()?.success() {
                    bail!("`{add}` failed (the test must run as root)");
                }
                (bind(dir.path(), addr, primary, zones, key, catalog)?, "named.log")
            }
        };
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).stdin(Stdio::null()).spawn()?;
        let mut s = Secondary { kind, addr, child, dir, log, cleanup: Vec::new() };
        if kind == Kind::Bind {
            s.cleanup.push(format!("ip addr del {}/32 dev lo", addr.ip()));
        }
        Ok(s)
    }

    /// `dig` against the secondary.
    pub fn dig(&self, args: &[&str]) -> Result<Reply> {
        dig(self.addr, args).map(Reply::new)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }

    /// Where BIND keeps `zone` (text master format), for named-checkzone.
    pub fn zone_file(&self, zone: &str) -> PathBuf {
        self.dir.path().join(format!("{zone}.db"))
    }
}

impl Drop for Secondary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for c in &self.cleanup {
            let _ = Command::new("sh").arg("-c").arg(c).status();
        }
    }
}

fn write_conf(dir: &Path, name: &str, text: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    std::fs::write(&path, text)?;
    Ok(path)
}

fn knot(
    dir: &Path,
    addr: SocketAddr,
    primary: SocketAddr,
    zones: &[&str],
    key: &TsigKeyFile,
    catalog: Option<&str>,
) -> Result<Command> {
    require("knotd", "knot");
    let d = dir.display();
    let mut conf = format!(
        "server:\n  listen: {ip}@{port}\n  rundir: \"{d}\"\n\
         log:\n  - target: {d}/knot.log\n    any: debug\n\
         database:\n  storage: \"{d}\"\n\
         key:\n  - id: {k}\n    algorithm: hmac-sha256\n    secret: {s}\n\
         remote:\n  - id: meridian\n    address: {pip}@{pport}\n    key: {k}\n\
         acl:\n  - id: notify\n    address: 127.0.0.0/8\n    key: {k}\n    action: notify\n\
         template:\n  - id: default\n    storage: \"{d}\"\n    master: meridian\n    acl: notify\n\
         \x20   zonefile-sync: -1\n    zonefile-load: none\n    journal-content: all\n\
         zone:\n",
        ip = addr.ip(),
        port = addr.port(),
        k = key.name,
        s = key.secret,
        pip = primary.ip(),
        pport = primary.port(),
    );
    for z in zones {
        conf.push_str(&format!("  - domain: {z}\n"));
    }
    if let Some(c) = catalog {
        conf.push_str(&format!("  - domain: {c}\n    catalog-role: interpret\n    catalog-template: default\n"));
    }
    let path = write_conf(dir, "knot.conf", &conf)?;
    let mut cmd = Command::new("knotd");
    cmd.arg("-c").arg(path);
    Ok(cmd)
}

fn nsd(dir: &Path, addr: SocketAddr, primary: SocketAddr, zones: &[&str], key: &TsigKeyFile) -> Result<Command> {
    require("nsd", "nsd");
    let d = dir.display();
    let mut conf = format!(
        "server:\n  ip-address: {ip}@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n\
         \x20 database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  logfile: \"{d}/nsd.log\"\n  xfrdfile: \"{d}/xfrd.state\"\n\
         \x20 zonelistfile: \"{d}/zone.list\"\n  xfrdir: \"{d}\"\n  server-count: 1\n  verbosity: 2\n\
         \x20 rrl-ratelimit: 0\n  xfrd-reload-timeout: 0\n\
         remote-control:\n  control-enable: no\n\
         key:\n  name: {k}\n  algorithm: hmac-sha256\n  secret: \"{s}\"\n",
        ip = addr.ip(),
        port = addr.port(),
        k = key.name,
        s = key.secret,
    );
    for z in zones {
        conf.push_str(&format!(
            "zone:\n  name: {z}\n  zonefile: \"{z}.zone\"\n  request-xfr: {pip}@{pport} {k}\n  allow-notify: 127.0.0.0/8 {k}\n",
            pip = primary.ip(),
            pport = primary.port(),
            k = key.name,
        ));
    }
    let path = write_conf(dir, "nsd.conf", &conf)?;
    let mut cmd = Command::new("nsd");
    cmd.arg("-d").arg("-c").arg(path);
    Ok(cmd)
}

fn bind(
    dir: &Path,
    addr: SocketAddr,
    primary: SocketAddr,
    zones: &[&str],
    key: &TsigKeyFile,
    catalog: Option<&str>,
) -> Result<Command> {
    require("named", "bind9");
    let d = dir.display();
    let (pip, pport, k) = (primary.ip(), primary.port(), &key.name);
    let catalog_opt = catalog.map_or(String::new(), |c| {
        format!(
            "  catalog-zones {{ zone \"{c}\" default-primaries {{ {pip} port {pport} key {k}; }} \
             in-memory no zone-directory \"{d}\"; }};\n"
        )
    });
    let mut conf = format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  listen-on port {port} {{ {ip}; }};\n\
         \x20 listen-on-v6 {{ none; }};\n  recursion no;\n  notify no;\n  allow-query {{ any; }};\n\
         \x20 dnssec-validation no;\n  allow-new-zones yes;\n{catalog_opt}}};\n\
         key \"{k}\" {{ algorithm hmac-sha256; secret \"{s}\"; }};\n\
         server {pip} {{ keys {{ {k}; }}; }};\n\
         logging {{ channel f {{ file \"{d}/named.log\"; severity debug 1; print-time yes; }}; \
         category default {{ f; }}; category xfer-in {{ f; }}; category notify {{ f; }}; }};\n",
        ip = addr.ip(),
        port = addr.port(),
        s = key.secret,
    );
    for z in zones.iter().chain(catalog.iter()) {
        conf.push_str(&format!(
            "zone \"{z}\" {{ type secondary; primaries {{ {pip} port {pport} key {k}; }}; file \"{d}/{z}.db\"; \
             masterfile-format text; allow-notify {{ 127.0.0.0/8; }}; }};\n"
        ));
    }
    let path = write_conf(dir, "named.conf", &conf)?;
    let mut cmd = Command::new("named");
    cmd.args(["-g", "-u", "root", "-c"]).arg(path);
    Ok(cmd)
}
