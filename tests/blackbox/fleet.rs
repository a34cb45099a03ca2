//! A fleet of three `meridian serve` processes judging health together (`[fleet]`,
//! quorum `majority`, 1 s probes, threshold 2), each in its own network namespace, all
//! sharing one `meridian sim` and one key file.
//!
//! The network: a bridge in this (the test's) namespace at 10.213.N.1, and per instance
//! a namespace whose veth end is 10.213.N.(10+i); admin, DNS and gossip listen there,
//! peers gossip across the bridge. The simulator's load-balancer backends (127.10x.…)
//! live on this namespace's loopback: an instance's namespace keeps only 127.0.0.1 on
//! its own loopback (the fleet's codec bridge uses it) and routes the rest of
//! 127.0.0.0/8 over its veth (`route_localnet`), so it reaches the backends as a remote
//! host would. The simulator's API, on this namespace's 127.0.0.1, is reached through a
//! TCP relay on the bridge address. Cutting one instance's path to one backend is a
//! `blackhole` route inside that instance's namespace: its probes fail as over a broken
//! network path, while the others' succeed.
//!
//! Needs root (`ip netns`), as CI runs.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use meridian_tests::{Reply, SimProcess, binary, dig, eventually, http_get, kubectl_ok};
use serde_json::Value;

/// The key every instance shares (at least 32 bytes).
const KEY: &str = "meridian-blackbox-fleet-shared-key-0123456789abcdef";
const ZONE_NAME: &str = "web.default.fl.svc.fl.test";
const GOSSIP_INTERVAL: &str = "200ms";
/// Peers go stale after this without a heartbeat.
const STALE_AFTER: Duration = Duration::from_secs(2);
/// Generous bound for start-up steps on two shared cores.
const PATIENCE: Duration = Duration::from_secs(30);

/// Runs `ip ARGS` (in namespace `ns` when given), failing with its stderr.
fn ip(ns: Option<&str>, args: &[&str]) -> Result<()> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["netns", "exec", ns, "ip"]);
    }
    let out = cmd.args(args).output().context("cannot run ip (iproute2)")?;
    if !out.status.success() {
        bail!("ip {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

fn sysctl(ns: Option<&str>, setting: &str) -> Result<()> {
    let mut cmd = Command::new(if ns.is_some() { "ip" } else { "sysctl" });
    if let Some(ns) = ns {
        cmd.args(["netns", "exec", ns, "sysctl"]);
    }
    let out = cmd.args(["-qw", setting]).output().context("cannot run sysctl")?;
    if !out.status.success() {
        bail!("sysctl {setting} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// The bridge and one namespace per instance; everything is deleted on drop.
struct Net {
    tag: String,
    subnet: u8,
    namespaces: Vec<String>,
}

impl Net {
    fn new(instances: u8) -> Result<Net> {
        use std::hash::{BuildHasher, RandomState};
        let r = RandomState::new().hash_one((std::process::id(), Instant::now()));
        let mut net =
            Net { tag: format!("{:05x}", r & 0xf_ffff), subnet: 1 + ((r >> 20) % 250) as u8, namespaces: Vec::new() };
        let bridge = net.bridge();
        ip(None, &["link", "add", &bridge, "type", "bridge"]).context("network namespaces need root")?;
        ip(None, &["addr", "add", &format!("10.213.{}.1/24", net.subnet), "dev", &bridge])?;
        ip(None, &["link", "set", &bridge, "up"])?;
        // Replies from the simulator leave from 127.0.0.1 across the bridge.
        sysctl(None, &format!("net.ipv4.conf.{bridge}.route_localnet=1"))?;
        for i in 1..=instances {
            let ns = format!("mf-{}-{i}", net.tag);
            let host_end = format!("mfh{}{i}", net.tag);
            ip(None, &["netns", "add", &ns])?;
            net.namespaces.push(ns.clone());
            ip(None, &["link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &ns])?;
            ip(None, &["link", "set", &host_end, "master", &bridge, "up"])?;
            ip(Some(&ns), &["addr", "add", &format!("{}/24", net.host(i)), "dev", "eth0"])?;
            ip(Some(&ns), &["link", "set", "eth0", "up"])?;
            // Only 127.0.0.1 is local; the rest of 127.0.0.0/8 is the simulator's.
            ip(Some(&ns), &["link", "set", "lo", "up"])?;
            ip(Some(&ns), &["addr", "del", "127.0.0.1/8", "dev", "lo"])?;
            ip(Some(&ns), &["addr", "add", "127.0.0.1/32", "dev", "lo"])?;
            ip(Some(&ns), &["route", "add", "127.0.0.0/8", "via", &net.gateway()])?;
            sysctl(Some(&ns), "net.ipv4.conf.eth0.route_localnet=1")?;
            sysctl(Some(&ns), "net.ipv4.conf.all.rp_filter=0")?;
            sysctl(Some(&ns), "net.ipv4.conf.eth0.rp_filter=0")?;
        }
        Ok(net)
    }

    /// The bridge's address, this namespace's side.
    fn gateway(&self) -> String {
        format!("10.213.{}.1", self.subnet)
    }

    fn bridge(&self) -> String {
        format!("mfb{}", self.tag)
    }

    /// Instance `i`'s address (1-based).
    fn host(&self, i: u8) -> String {
        format!("10.213.{}.{}", self.subnet, 10 + i)
    }

    /// `dns.nameservers` naming every instance (`ns<i>.fl.test` at its address), the
    /// same on each, as the parent's delegation would.
    fn nameservers(&self) -> String {
        let one = |i: u8| format!("{{ name = \"ns{i}.fl.test\", addresses = [\"{}\"] }}", self.host(i));
        (1..=3u8).map(one).collect::<Vec<_>>().join(", ")
    }

    fn ns(&self, i: u8) -> &str {
        self.namespaces.get(usize::from(i) - 1).map_or("", String::as_str)
    }

    /// Drops every packet from instance `i` to `ip`, as a broken path would.
    fn cut(&self, i: u8, ip_addr: &str) -> Result<()> {
        ip(Some(self.ns(i)), &["route", "add", "blackhole", &format!("{ip_addr}/32")])
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        // The veth pairs go first: a namespace that a closing socket still holds would
        // keep its pair (and the bridge port) after `netns del`.
        for (i, ns) in self.namespaces.iter().enumerate() {
            let _ = ip(None, &["link", "del", &format!("mfh{}{}", self.tag, i + 1)]);
            let _ = ip(None, &["netns", "del", ns]);
        }
        let _ = ip(None, &["link", "del", &self.bridge()]);
    }
}

/// A TCP relay from `listen` to `upstream`, one thread per direction of a connection;
/// stops accepting when dropped.
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(ip: &str, upstream: SocketAddr) -> Result<Relay> {
        let listener = TcpListener::bind((ip, 0))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let _ = relay(client, upstream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Ok(Relay { addr, stop })
    }
}

fn relay(client: TcpStream, upstream: SocketAddr) -> Result<()> {
    client.set_nonblocking(false)?;
    let server = TcpStream::connect_timeout(&upstream, Duration::from_secs(2))?;
    let (mut c_read, mut s_write) = (client.try_clone()?, server.try_clone()?);
    let (mut s_read, mut c_write) = (server, client);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut c_read, &mut s_write);
        let _ = s_write.shutdown(std::net::Shutdown::Write);
    });
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut s_read, &mut c_write);
        let _ = c_write.shutdown(std::net::Shutdown::Write);
    });
    Ok(())
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A copy of `kubeconfig` whose API servers are reached through relays on `ip`.
fn relayed_kubeconfig(kubeconfig: &Path, ip: &str, out: &Path) -> Result<Vec<Relay>> {
    let mut text = std::fs::read_to_string(kubeconfig)?;
    let servers: Vec<String> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("server:"))
        .map(|s| s.trim().trim_matches('"').to_owned())
        .collect();
    let mut relays = Vec::new();
    for server in servers {
        let upstream: SocketAddr = server.trim_start_matches("http://").parse().context("a simulator API address")?;
        let relay = Relay::start(ip, upstream)?;
        text = text.replace(&server, &format!("http://{}", relay.addr));
        relays.push(relay);
    }
    std::fs::write(out, text)?;
    Ok(relays)
}

/// One `meridian serve` inside its namespace, killed when dropped.
struct Instance {
    id: String,
    child: Child,
    admin: SocketAddr,
    dns: SocketAddr,
    config: PathBuf,
    ns: String,
    state_dir: tempfile::TempDir,
}

impl Instance {
    fn start(ns: &str, id: &str, config: PathBuf, admin: SocketAddr, dns: SocketAddr) -> Result<Instance> {
        let state_dir = tempfile::tempdir()?;
        let log = std::fs::File::create(state_dir.path().join("meridian.log"))?;
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(binary())
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--state-dir")
            .arg(state_dir.path())
            .stdout(log.try_clone()?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .context("run meridian serve in its namespace")?;
        let mut m = Instance { id: id.to_owned(), child, admin, dns, config, ns: ns.to_owned(), state_dir };
        eventually(PATIENCE, &format!("{id} ready"), || {
            if let Some(st) = m.child.try_wait()? {
                bail!("{id} exited with {st}:\n{}", m.log());
            }
            Ok(http_get(m.admin, "/readyz").is_ok_and(|b| b.starts_with("ready")).then_some(()))
        })?;
        Ok(m)
    }

    /// The same instance started again (new process, same configuration).
    fn restart(mut self) -> Result<Instance> {
        self.kill();
        Instance::start(&self.ns.clone(), &self.id.clone(), self.config.clone(), self.admin, self.dns)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.state_dir.path().join("meridian.log")).unwrap_or_default()
    }

    fn json(&self, path: &str) -> Result<Value> {
        Ok(serde_json::from_str(&http_get(self.admin, path)?)?)
    }

    /// The addresses of `name`, empty when it does not resolve.
    fn addresses(&self, name: &str) -> Result<Vec<String>> {
        let r = Reply::new(dig(self.dns, &["A", name])?);
        Ok(if r.status() == "NOERROR" { r.answers("A") } else { Vec::new() })
    }

    /// (id, alive) of every instance this one lists.
    fn alive(&self) -> Result<Vec<(String, bool)>> {
        let v = self.json("/api/v1/fleet")?;
        Ok(v["instances"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| (i["id"].as_str().unwrap_or("").to_owned(), i["alive"].as_bool() == Some(true)))
            .collect())
    }

    /// This instance's own probe state of `addr` (`/api/v1/health`).
    fn own_state(&self, addr: &str) -> Result<Option<String>> {
        let v = self.json("/api/v1/health")?;
        Ok(v["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|t| t["address"] == addr)
            .and_then(|t| t["state"].as_str().map(str::to_owned)))
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The simulator, three instances in their namespaces, and the `web` Service in both
/// clusters resolving to two addresses everywhere.
struct Fleet {
    instances: Vec<Instance>,
    _relays: Vec<Relay>,
    sim: SimProcess,
    /// Cluster a's load-balancer address of `web`, and its probed `IP:PORT`.
    a_ip: String,
    a_target: String,
    net: Net,
    _dir: tempfile::TempDir,
}

impl Fleet {
    fn start() -> Result<Fleet> {
        let net = Net::new(3)?;
        let sim = SimProcess::start("a,b")?;
        let dir = tempfile::tempdir()?;
        let key = dir.path().join("fleet.key");
        std::fs::write(&key, format!("{KEY}\n"))?;
        let kubeconfig = dir.path().join("kubeconfig");
        let relays = relayed_kubeconfig(&sim.kubeconfig, &net.gateway(), &kubeconfig)?;
        let gossip = |i: u8| format!("{}:7946", net.host(i));
        let mut instances = Vec::new();
        for i in 1..=3u8 {
            let admin: SocketAddr = format!("{}:8080", net.host(i)).parse()?;
            let dns: SocketAddr = format!("{}:5353", net.host(i)).parse()?;
            let seeds: Vec<String> = (1..=3u8).filter(|j| *j != i).map(|j| format!("\"{}\"", gossip(j))).collect();
            let id = format!("i{i}");
            let config = format!(
                "{head}nameservers = [{nameservers}]\n\
                 [health]\ninterval = \"1s\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\nhealthy_threshold = 1\n\
                 [fleet]\nid = \"{id}\"\nregion = \"r{i}\"\nlisten = \"{listen}\"\nseeds = [{seeds}]\n\
                 key_file = \"{key}\"\nquorum = \"majority\"\ngossip_interval = \"{GOSSIP_INTERVAL}\"\nstale_after = \"{stale}s\"\n\
                 [[clusters]]\nname = \"a\"\nkubeconfig = \"{kc}\"\ncontext = \"a\"\nregion = \"ra\"\n\
                 [[clusters]]\nname = \"b\"\nkubeconfig = \"{kc}\"\ncontext = \"b\"\nregion = \"rb\"\n",
                head = meridian_tests::config_head("fl", admin, dns),
                nameservers = net.nameservers(),
                listen = gossip(i),
                seeds = seeds.join(", "),
                key = key.display(),
                stale = STALE_AFTER.as_secs(),
                kc = kubeconfig.display(),
            );
            let file = dir.path().join(format!("{id}.toml"));
            std::fs::write(&file, config)?;
            instances.push(Instance::start(net.ns(i), &id, file, admin, dns)?);
        }
        let svc = dir.path().join("svc.yaml");
        std::fs::write(
            &svc,
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  ports:\n  - {name: http, port: 8080}\n",
        )?;
        for ctx in ["a", "b"] {
            kubectl_ok(&sim.kubeconfig, ctx, &["apply", "-f", &svc.to_string_lossy()])?;
        }
        let a_ip = eventually(PATIENCE, "cluster a's LB address", || {
            let ip = kubectl_ok(
                &sim.kubeconfig,
                "a",
                &["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
            )?;
            Ok((!ip.is_empty()).then_some(ip))
        })?;
        let a_target = format!("{a_ip}:8080");
        let fleet = Fleet { instances, _relays: relays, sim, a_ip, a_target, net, _dir: dir };
        for m in &fleet.instances {
            eventually(PATIENCE, &format!("{}: web has two addresses, both probed up", m.id), || {
                let both = m.addresses(ZONE_NAME)?.len() == 2;
                Ok((both && m.own_state(&fleet.a_target)?.as_deref() == Some("up")).then_some(()))
            })?;
        }
        Ok(fleet)
    }

    /// Every instance lists all three alive.
    fn converged(&self) -> Result<()> {
        for m in &self.instances {
            eventually(PATIENCE, &format!("{} sees three alive instances", m.id), || {
                let alive = m.alive()?;
                Ok((alive.len() == 3 && alive.iter().all(|(_, a)| *a)).then_some(()))
            })?;
        }
        Ok(())
    }

    /// Every instance answers the zone's NS set naming all three, with each one's
    /// address as glue, and the same A record for each name server.
    fn same_name_servers_everywhere(&self) -> Result<()> {
        let names: Vec<String> = (1..=3u8).map(|i| format!("ns{i}.fl.test.")).collect();
        for m in &self.instances {
            let r = Reply::new(dig(m.dns, &["NS", "fl.test"])?);
            assert_eq!(r.answers("NS"), names, "{}: NS set", m.id);
            let mut glue: Vec<(String, String)> =
                r.section("ADDITIONAL").into_iter().filter(|g| g.rtype == "A").map(|g| (g.name, g.data)).collect();
            glue.sort();
            let want: Vec<(String, String)> =
                (1..=3u8).map(|i| (format!("ns{i}.fl.test."), self.net.host(i))).collect();
            assert_eq!(glue, want, "{}: glue in the additional section", m.id);
            for (name, addr) in &want {
                assert_eq!(m.addresses(name)?, vec![addr.clone()], "{}: A of {name}", m.id);
            }
        }
        Ok(())
    }

    fn instance(&self, i: usize) -> &Instance {
        &self.instances[i - 1]
    }
}

/// The three instances converge; then a backend that only one of them cannot reach (a
/// blackhole route in its namespace) stays in every instance's answers, because the
/// majority still reaches it, and that instance's `/api/v1/fleet?addr=` and
/// `meridian status` show the disagreement.
#[test]
fn fleet_converges_and_one_cut_path_keeps_the_backend_in_every_answer() -> Result<()> {
    let fleet = Fleet::start()?;
    fleet.converged()?;
    fleet.same_name_servers_everywhere()?;
    let cut = fleet.instance(1);
    fleet.net.cut(1, &fleet.a_ip)?;
    let in_every_answer = || -> Result<()> {
        for m in &fleet.instances {
            let a = m.addresses(ZONE_NAME)?;
            if !a.contains(&fleet.a_ip) || a.len() != 2 {
                bail!("{} answers {a:?} without {} while the majority reaches it:\n{}", m.id, fleet.a_ip, m.log());
            }
        }
        Ok(())
    };
    // Its own probes fail; the answers never change meanwhile.
    eventually(Duration::from_secs(10), "i1's own probes of the cut backend fail", || {
        in_every_answer()?;
        Ok((cut.own_state(&fleet.a_target)?.as_deref() == Some("down")).then_some(()))
    })?;
    let query = format!("/api/v1/fleet?addr={}", fleet.a_target);
    let verdict = eventually(Duration::from_secs(5), "i1 shows the disagreement", || {
        in_every_answer()?;
        let v = cut.json(&query)?;
        let listed = v["disagreeing"].as_array().is_some_and(|d| d.iter().any(|a| a == fleet.a_target.as_str()));
        Ok(listed.then_some(v["verdict"].clone()))
    })?;
    assert_eq!(verdict["health"], "up", "{verdict}");
    let seen = |id: &str| verdict["seen_by"].as_array().and_then(|s| s.iter().find(|b| b["instance"] == id)).cloned();
    assert_eq!(seen("i1").map(|b| b["up"].clone()), Some(Value::Bool(false)), "{verdict}");
    for id in ["i2", "i3"] {
        assert_eq!(seen(id).map(|b| b["up"].clone()), Some(Value::Bool(true)), "{verdict}");
    }
    // Held for several probe intervals past the local verdict.
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        in_every_answer()?;
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = Command::new(binary()).args(["status", "--admin", &cut.admin.to_string()]).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "meridian status failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("FLEET (this instance: i1"), "{text}");
    assert!(text.contains(&fleet.a_target) && text.contains("i1=down"), "{text}");
    // An address nobody probes: Unknown, and a bad one is refused with a JSON error.
    assert_eq!(cut.json("/api/v1/fleet?addr=192.0.2.1:1")?["verdict"]["health"], "unknown");
    let bad = http_get(cut.admin, "/api/v1/fleet?addr=nope").expect_err("400");
    assert!(bad.to_string().contains("400") && bad.to_string().contains("\"error\""), "{bad}");
    Ok(())
}

/// A backend killed for real leaves every instance's answers within 3 s (1 s probes,
/// threshold 2) plus gossip; a killed instance is marked not alive by the others after
/// `stale_after` while they keep answering; restarted, it answers with the fleet's
/// verdicts at once (the dead backend never appears in its answers).
#[test]
fn fleet_killing_a_backend_or_an_instance() -> Result<()> {
    let mut fleet = Fleet::start()?;
    fleet.converged()?;
    kubectl_ok(&fleet.sim.kubeconfig, "a", &["annotate", "svc", "web", "sim.meridian.io/backend=down", "--overwrite"])?;
    let killed = Instant::now();
    let limit = Duration::from_secs(3) + Duration::from_secs(1);
    for m in &fleet.instances {
        eventually(limit, &format!("{} drops the dead backend", m.id), || {
            let a = m.addresses(ZONE_NAME)?;
            Ok((a.len() == 1 && !a.contains(&fleet.a_ip)).then_some(()))
        })?;
    }
    let took = killed.elapsed();
    assert!(took <= limit, "the dead backend stayed in some answers for {took:?}");

    let mut third = fleet.instances.pop().context("three instances")?;
    third.kill();
    let stopped = Instant::now();
    for m in &fleet.instances {
        eventually(STALE_AFTER + Duration::from_secs(5), &format!("{} marks i3 not alive", m.id), || {
            let alive = m.alive()?;
            Ok(alive.iter().any(|(id, a)| id == "i3" && !a).then_some(()))
        })?;
        assert_eq!(m.addresses(ZONE_NAME)?.len(), 1, "{} keeps answering", m.id);
    }
    // Its last heartbeat left up to a gossip round before the kill.
    assert!(stopped.elapsed() + Duration::from_millis(500) >= STALE_AFTER, "i3 was marked dead before stale_after");

    let third = third.restart()?;
    // From its first answer on, the fleet's verdict: the dead backend is not served,
    // although its own probes have not failed twice yet.
    let first = eventually(PATIENCE, "the restarted i3 answers", || {
        let a = third.addresses(ZONE_NAME)?;
        Ok((!a.is_empty()).then_some(a))
    })?;
    assert!(!first.contains(&fleet.a_ip), "the restarted instance served the dead backend: {first:?}");
    fleet.instances.push(third);
    fleet.converged()?;
    Ok(())
}
