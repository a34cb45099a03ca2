//! Real recursive resolvers in front of the binary. unbound with `stub-prime: yes` asks
//! Meridian for the zone's NS set first and then for the name servers' addresses, and
//! sends every later query to those addresses on port 53 — so a name server without an
//! address, or at the wrong one, turns every answer into SERVFAIL.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use meridian_tests::{Meridian, Reply, dig, eventually, free_addr, kubectl_ok, require};

/// A loopback address whose port 53 is free for TCP and UDP (the tests run as root).
fn port_53_addr() -> Result<SocketAddr> {
    for attempt in 0u32..100 {
        let r = std::process::id().wrapping_mul(7919).wrapping_add(attempt.wrapping_mul(104_729));
        let ip = Ipv4Addr::new(127, 230 + (r % 10) as u8, (r >> 8) as u8, 1 + ((r >> 16) % 250) as u8);
        let addr = SocketAddr::from((ip, 53));
        if let (Ok(_tcp), Ok(_udp)) = (TcpListener::bind(addr), UdpSocket::bind(addr)) {
            return Ok(addr);
        }
    }
    bail!("no loopback address with port 53 free (the test must run as root)")
}

/// unbound in the foreground with its own config, killed when dropped.
struct Unbound {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Unbound {
    /// A resolver with `zone` as a primed stub zone at `server`.
    fn start(zone: &str, server: SocketAddr) -> Result<Unbound> {
        require("unbound", "unbound");
        let dir = tempfile::tempdir()?;
        let addr = free_addr();
        let d = dir.path().display();
        let conf = format!(
            "server:\n  interface: {ip}@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n\
             \x20 pidfile: \"{d}/unbound.pid\"\n  logfile: \"{d}/unbound.log\"\n  use-syslog: no\n  num-threads: 1\n\
             \x20 do-daemonize: no\n  do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n\
             \x20 local-zone: \"test.\" nodefault\n  qname-minimisation: yes\n  module-config: \"iterator\"\n\
             \x20 verbosity: 2\n\
             stub-zone:\n  name: \"{zone}\"\n  stub-addr: {sip}@{sport}\n  stub-prime: yes\n",
            ip = addr.ip(),
            port = addr.port(),
            sip = server.ip(),
            sport = server.port(),
        );
        let path = dir.path().join("unbound.conf");
        std::fs::write(&path, conf)?;
        let child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("run unbound")?;
        Ok(Unbound { child, addr, dir })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("unbound.log")).unwrap_or_default()
    }

    fn query(&self, name: &str, rtype: &str) -> Result<Reply> {
        dig(self.addr, &[name, rtype, "+tries=1", "+time=3"]).map(Reply::new)
    }
}

impl Drop for Unbound {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn apply_service(kubeconfig: &Path, dir: &Path, name: &str) -> Result<()> {
    let svc = format!(
        "{{\"apiVersion\":\"v1\",\"kind\":\"Service\",\"metadata\":{{\"name\":\"{name}\",\"namespace\":\"default\"}},\
         \"spec\":{{\"type\":\"LoadBalancer\",\"selector\":{{\"app\":\"{name}\"}},\"ports\":[{{\"port\":80}}]}}}}"
    );
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, svc)?;
    kubectl_ok(kubeconfig, "one", &["apply", "-f", &file.to_string_lossy()]).map(|_| ())
}

/// With the default name server (`ns1.<zone>` at the listen address), unbound primes
/// the stub, follows the NS set to Meridian's port 53, and resolves the federated name,
/// the name server itself and an NXDOMAIN — no SERVFAIL.
#[test]
fn unbound_with_a_primed_stub_resolves_through_the_zones_own_name_servers() -> Result<()> {
    let dns = port_53_addr()?;
    let admin = free_addr();
    let dir = tempfile::tempdir()?;
    let config = format!(
        "{}[[clusters]]\nname = \"one\"\nsimulated = true\nregion = \"r1\"\n",
        meridian_tests::config_head("rs", admin, dns)
    );
    let file = dir.path().join("meridian.toml");
    std::fs::write(&file, config)?;
    let m = Meridian::serve(&file)?.with_ports(admin, dns)?;
    apply_service(&m.kubeconfig(), dir.path(), "web")?;
    let name = "web.default.rs.svc.rs.test";
    let direct = eventually(Duration::from_secs(20), "web resolves at Meridian", || {
        let r = m.dig(&[name, "A"])?;
        Ok((!r.answers("A").is_empty()).then_some(r.answers("A")))
    })?;
    assert_eq!(m.dig(&["ns1.rs.test", "A"])?.answers("A"), [dns.ip().to_string()], "the name server has its address");

    let unbound = Unbound::start("rs.test", dns)?;
    let through = eventually(Duration::from_secs(10), "unbound answers", || {
        let r = unbound.query(name, "A")?;
        Ok((r.status() != "<none>").then_some(r))
    })?;
    assert_eq!(through.status(), "NOERROR", "{}\n{}", through.text, unbound.log());
    assert_eq!(through.answers("A"), direct);
    let ns = unbound.query("ns1.rs.test", "A")?;
    assert_eq!(ns.answers("A"), [dns.ip().to_string()], "{}", ns.text);
    let missing = unbound.query("nope.default.rs.svc.rs.test", "A")?;
    assert_eq!(missing.status(), "NXDOMAIN", "{}", missing.text);
    Ok(())
}
