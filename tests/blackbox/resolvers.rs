//! Real recursive resolvers in front of the binary. unbound with `stub-prime: yes` asks
//! Meridian for the zone's NS set first and then for the name servers' addresses, and
//! sends every later query to those addresses on port 53 — so a name server without an
//! address, or at the wrong one, turns every answer into SERVFAIL. Then a real
//! delegation: Knot serves a root zone that delegates the Meridian zone with short-lived
//! glue, and BIND and unbound resolve through it from the root, past several glue TTLs.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use meridian_tests::{Meridian, Reply, dig, eventually, free_addr, kubectl_ok, require};

/// A loopback address whose port 53 is free for TCP and UDP (the tests run as root);
/// `salt` keeps several of one test apart.
fn port_53_addr(salt: u32) -> Result<SocketAddr> {
    for attempt in 0u32..100 {
        let r =
            std::process::id().wrapping_mul(7919).wrapping_add(attempt.wrapping_mul(104_729)).wrapping_add(salt * 31);
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

/// Meridian serving federation `fed` (zone `<fed>.test`) on port 53 of `dns`, with one
/// simulated cluster whose LoadBalancer Service `web` resolves; returns it with web's
/// addresses.
fn meridian_with_web(fed: &str, dns: SocketAddr, dir: &Path) -> Result<(Meridian, Vec<String>)> {
    let admin = free_addr();
    let config = format!(
        "{}[[clusters]]\nname = \"one\"\nsimulated = true\nregion = \"r1\"\n",
        meridian_tests::config_head(fed, admin, dns)
    );
    let file = dir.join("meridian.toml");
    std::fs::write(&file, config)?;
    let m = Meridian::serve(&file)?.with_ports(admin, dns)?;
    apply_service(&m.kubeconfig(), dir, "web")?;
    let name = format!("web.default.{fed}.svc.{fed}.test");
    let direct = eventually(Duration::from_secs(20), "web resolves at Meridian", || {
        let r = m.dig(&[&name, "A"])?;
        Ok((!r.answers("A").is_empty()).then_some(r.answers("A")))
    })?;
    Ok((m, direct))
}

/// With the default name server (`ns1.<zone>` at the listen address), unbound primes
/// the stub, follows the NS set to Meridian's port 53, and resolves the federated name,
/// the name server itself and an NXDOMAIN — no SERVFAIL.
#[test]
fn unbound_with_a_primed_stub_resolves_through_the_zones_own_name_servers() -> Result<()> {
    let dns = port_53_addr(0)?;
    let dir = tempfile::tempdir()?;
    let (m, direct) = meridian_with_web("rs", dns, dir.path())?;
    let name = "web.default.rs.svc.rs.test";
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

/// A daemon started by a test, killed when dropped; `cleanup` undoes what it needed.
struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    log: &'static str,
    cleanup: Vec<String>,
}

impl Daemon {
    fn spawn(cmd: &mut Command, dir: tempfile::TempDir, log: &'static str) -> Result<Daemon> {
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).stdin(Stdio::null()).spawn()?;
        Ok(Daemon { child, dir, log, cleanup: Vec::new() })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(self.log)).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for c in &self.cleanup {
            let _ = Command::new("sh").arg("-c").arg(c).status();
        }
    }
}

/// Knot serving a root zone that delegates `zone` to `ns1.<zone>` at `child`, with glue
/// that lives `glue_ttl` seconds.
fn knot_root(at: SocketAddr, zone: &str, child: SocketAddr, glue_ttl: u32) -> Result<Daemon> {
    require("knotd", "knot");
    let dir = tempfile::tempdir()?;
    let d = dir.path().display();
    let root = format!(
        "$ORIGIN .\n$TTL 300\n@ IN SOA a.root. admin.root. 1 3600 600 86400 60\n@ IN NS a.root.\n\
         a.root. IN A {}\n{zone}. {glue_ttl} IN NS ns1.{zone}.\nns1.{zone}. {glue_ttl} IN A {}\n",
        at.ip(),
        child.ip()
    );
    std::fs::write(dir.path().join("root.zone"), root)?;
    let conf = format!(
        "server:\n  listen: {}@{}\n  rundir: \"{d}\"\n\
         log:\n  - target: {d}/knot.log\n    any: info\n\
         database:\n  storage: \"{d}\"\n\
         template:\n  - id: default\n    storage: \"{d}\"\n\
         zone:\n  - domain: .\n    file: root.zone\n",
        at.ip(),
        at.port()
    );
    let path = dir.path().join("knot.conf");
    std::fs::write(&path, conf)?;
    Daemon::spawn(Command::new("knotd").arg("-c").arg(&path), dir, "knot.log")
}

/// unbound resolving from the root hints at `root` (no stub): the real delegation path.
fn unbound_recursive(root: SocketAddr) -> Result<(Daemon, SocketAddr)> {
    require("unbound", "unbound");
    let dir = tempfile::tempdir()?;
    let addr = free_addr();
    let d = dir.path().display();
    std::fs::write(dir.path().join("root.hints"), format!(". 3600000 NS a.root.\na.root. 3600000 A {}\n", root.ip()))?;
    let conf = format!(
        "server:\n  interface: {ip}@{port}\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n\
         \x20 pidfile: \"{d}/unbound.pid\"\n  logfile: \"{d}/unbound.log\"\n  use-syslog: no\n  num-threads: 1\n\
         \x20 do-daemonize: no\n  do-not-query-localhost: no\n  access-control: 127.0.0.0/8 allow\n\
         \x20 root-hints: \"{d}/root.hints\"\n  local-zone: \"test.\" nodefault\n\
         \x20 qname-minimisation: yes\n  qname-minimisation-strict: yes\n  module-config: \"iterator\"\n\
         \x20 harden-referral-path: yes\n  verbosity: 2\n",
        ip = addr.ip(),
        port = addr.port(),
    );
    let path = dir.path().join("unbound.conf");
    std::fs::write(&path, conf)?;
    let daemon = Daemon::spawn(Command::new("unbound").arg("-d").arg("-c").arg(&path), dir, "unbound.log")?;
    Ok((daemon, addr))
}

/// BIND 9 resolving from the root hints at `root`, with QNAME minimisation.
fn bind_recursive(root: SocketAddr) -> Result<(Daemon, SocketAddr)> {
    require("named", "bind9");
    let dir = tempfile::tempdir()?;
    let addr = port_53_addr(7)?;
    // named listens only on addresses configured on an interface.
    let add = format!("ip addr add {}/32 dev lo", addr.ip());
    let st = Command::new("sh").arg("-c").arg(&add).status()?;
    if !st.success() {
        bail!("`{add}` failed (the test must run as root)");
    }
    let d = dir.path().display();
    std::fs::write(dir.path().join("root.hint"), format!(". 3600000 NS a.root.\na.root. 3600000 A {}\n", root.ip()))?;
    let conf = format!(
        "options {{\n  directory \"{d}\";\n  pid-file \"{d}/named.pid\";\n  listen-on port {port} {{ {ip}; }};\n\
         \x20 listen-on-v6 {{ none; }};\n  recursion yes;\n  allow-recursion {{ any; }};\n  allow-query {{ any; }};\n\
         \x20 dnssec-validation no;\n  qname-minimization strict;\n  notify no;\n}};\n\
         logging {{ channel f {{ file \"{d}/named.log\"; severity info; }}; category default {{ f; }}; \
         category resolver {{ f; }}; category lame-servers {{ f; }}; }};\n\
         zone \".\" {{ type hint; file \"{d}/root.hint\"; }};\n",
        ip = addr.ip(),
        port = addr.port(),
    );
    let path = dir.path().join("named.conf");
    std::fs::write(&path, conf)?;
    let mut daemon =
        Daemon::spawn(Command::new("named").args(["-g", "-u", "root", "-c"]).arg(&path), dir, "named.log")?;
    daemon.cleanup.push(format!("ip addr del {}/32 dev lo", addr.ip()));
    Ok((daemon, addr))
}

/// The parent delegates the zone with 5-second glue; BIND and unbound, resolving from
/// the root with QNAME minimisation, answer the federated name, an NXDOMAIN and the
/// name server's address for 20 s — four glue lifetimes — with no SERVFAIL.
#[test]
fn bind_and_unbound_resolve_through_a_real_delegation_past_the_glue_ttl() -> Result<()> {
    let dns = port_53_addr(1)?;
    let dir = tempfile::tempdir()?;
    let (_m, direct) = meridian_with_web("rd", dns, dir.path())?;
    let name = "web.default.rd.svc.rd.test";
    let root = port_53_addr(2)?;
    let knot = knot_root(root, "rd.test", dns, 5)?;
    eventually(Duration::from_secs(10), "knot serves the root", || {
        Ok((dig(root, &[".", "SOA", "+tries=1", "+time=1"]).map(Reply::new)?.status() == "NOERROR").then_some(()))
    })
    .with_context(|| knot.log())?;
    let (unbound, unbound_at) = unbound_recursive(root)?;
    let (bind, bind_at) = bind_recursive(root)?;
    let resolvers = [("unbound", unbound_at, &unbound), ("bind", bind_at, &bind)];
    for (what, at, daemon) in &resolvers {
        eventually(Duration::from_secs(15), what, || {
            Ok((dig(*at, &[".", "NS", "+tries=1", "+time=1"]).map(Reply::new)?.status() != "<none>").then_some(()))
        })
        .with_context(|| daemon.log())?;
    }
    let end = std::time::Instant::now() + Duration::from_secs(20);
    let mut rounds = 0;
    while std::time::Instant::now() < end {
        for (what, at, daemon) in &resolvers {
            let ask = |n: &str, t: &str| dig(*at, &[n, t, "+tries=1", "+time=3"]).map(Reply::new);
            let web = ask(name, "A")?;
            assert_eq!(web.status(), "NOERROR", "{what}, round {rounds}: {}\n{}", web.text, daemon.log());
            assert_eq!(web.answers("A"), direct, "{what}, round {rounds}");
            let ns = ask("ns1.rd.test", "A")?;
            assert_eq!(ns.answers("A"), [dns.ip().to_string()], "{what}, round {rounds}: {}", ns.text);
            let missing = ask("nope.default.rd.svc.rd.test", "A")?;
            assert_eq!(missing.status(), "NXDOMAIN", "{what}, round {rounds}: {}", missing.text);
        }
        rounds += 1;
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(rounds >= 5, "only {rounds} rounds in 20 s");
    Ok(())
}
