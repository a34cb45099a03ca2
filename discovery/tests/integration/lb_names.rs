//! Hostname-only load balancers against a real authoritative server: Knot serves the
//! load balancer's name on loopback, discovery's resolver is pointed at it, and the
//! simulator publishes a LoadBalancer status with only that hostname.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meridian_config::Config;
use meridian_discovery::table::Snapshot;
use meridian_discovery::{Discovery, HealthChecker, Metrics, SimulatorLink};
use meridian_sim::{ClusterSpec, SimCluster, SimOptions, Simulator};
use meridian_testkit::addr::{free_addr, loopback_ip, shared_port};
use meridian_testkit::wait::{eventually_sync, eventually_timed};
use serde_json::json;

/// The zone Knot serves, and the load balancer's name in it.
const ZONE: &str = "elb.example.net";
const LB_NAME: &str = "web.elb.example.net";
/// The /16 this file's addresses come from (away from the simulator's pools).
const BLOCK: u8 = 181;

/// knotd serving [`ZONE`] on its own loopback address, killed when dropped.
struct Knot {
    child: tokio::process::Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    serial: u32,
}

impl Knot {
    /// Starts Knot with `records` (lines relative to the zone) and waits until it answers.
    async fn start(records: &str) -> Knot {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = free_addr();
        let d = dir.path().display();
        let conf = format!(
            "server:\n    listen: {ip}@{port}\n    rundir: {d}\n    udp-workers: 1\n    tcp-workers: 1\n    background-workers: 1\n\
             control:\n    listen: {d}/knot.sock\ndatabase:\n    storage: {d}\nlog:\n  - target: {d}/knot.log\n    any: info\n\
             zone:\n  - domain: {ZONE}\n    file: {d}/zone\n    storage: {d}\n    journal-content: none\n    zonefile-sync: -1\n",
            ip = addr.ip(),
            port = addr.port(),
        );
        std::fs::write(dir.path().join("knot.conf"), conf).expect("knot.conf");
        let mut knot = Knot { child: spawn_knot(dir.path()), addr, dir, serial: 0 };
        knot.write_zone(records);
        knot.wait_answering().await;
        knot
    }

    fn write_zone(&mut self, records: &str) {
        self.serial += 1;
        let zone = format!(
            "$ORIGIN {ZONE}.\n$TTL 1\n@ IN SOA ns hostmaster {} 3600 600 86400 1\n@ IN NS ns\nns IN A {}\n{records}",
            self.serial,
            self.addr.ip()
        );
        std::fs::write(self.dir.path().join("zone"), zone).expect("zone");
    }

    /// Replaces the zone's records and has Knot load them.
    async fn reload(&mut self, records: &str) {
        self.write_zone(records);
        let sock = self.dir.path().join("knot.sock");
        let st = tokio::process::Command::new("knotc")
            .arg("-s")
            .arg(&sock)
            .args(["zone-reload", ZONE])
            .stdout(Stdio::null())
            .status()
            .await
            .expect("knotc runs (Debian package knot)");
        assert!(st.success(), "knotc zone-reload failed; log:\n{}", self.log());
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("knot.log")).unwrap_or_default()
    }

    /// Waits until `kdig` gets an authoritative answer for the zone's SOA.
    async fn wait_answering(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let out = tokio::process::Command::new("kdig")
                .arg(format!("@{}", self.addr.ip()))
                .args(["-p", &self.addr.port().to_string(), "+short", "+timeout=1", "+retry=0", "SOA", ZONE])
                .output()
                .await
                .expect("kdig runs (Debian package knot-dnsutils)");
            if out.status.success() && !out.stdout.is_empty() {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("knotd exited ({st}); log:\n{}", self.log());
            }
            assert!(Instant::now() < deadline, "knotd does not answer; log:\n{}", self.log());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn spawn_knot(dir: &Path) -> tokio::process::Child {
    tokio::process::Command::new("knotd")
        .arg("-c")
        .arg(dir.join("knot.conf"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("knotd runs (Debian package knot)")
}

struct Fixture {
    sim: Simulator,
    discovery: Arc<Discovery>,
    metrics: Metrics,
    config: Config,
    _dir: tempfile::TempDir,
}

/// One simulated cluster `a`, discovery resolving load balancers' names at `servers`.
async fn fixture(servers: &[SocketAddr]) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Simulator::new(SimOptions { history: 10_000, backends: false, state_dir: None });
    sim.add_cluster(ClusterSpec::new("a")).await.expect("cluster a");
    let kubeconfig: PathBuf = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig).expect("kubeconfig");
    let servers: Vec<String> = servers.iter().map(|s| format!("\"{s}\"")).collect();
    let text = format!(
        "name = \"t\"\ndns_zone = \"t.test\"\n[discovery]\nprobe_interval = \"100ms\"\nlb_name_servers = [{}]\n\
         [health]\ninterval = \"1s\"\ntimeout = \"500ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n\
         [[clusters]]\nname = \"a\"\nsimulated = true\n",
        servers.join(", ")
    );
    let config = Config::parse(&text, Path::new("test.toml"), dir.path()).expect("config");
    let metrics = Metrics::default();
    let discovery = Discovery::new(metrics.clone(), SimulatorLink { kubeconfig: Some(kubeconfig) });
    let errors = discovery.apply(&config).await;
    assert!(errors.is_empty(), "{errors:?}");
    Fixture { sim, discovery, metrics, config, _dir: dir }
}

impl Fixture {
    fn cluster(&self) -> Arc<SimCluster> {
        self.sim.cluster("a").expect("cluster a")
    }

    /// The addresses of `svc`'s shard in `a`, once it has one.
    fn addresses(&self, svc: &str) -> Option<Vec<IpAddr>> {
        let snap: Arc<Snapshot> = self.discovery.table().snapshot();
        snap.service("default", svc).and_then(|s| s.shard("a")).map(|sh| sh.addresses.clone())
    }

    async fn wait_addresses(&self, svc: &str, within: Duration, want: &[IpAddr]) -> Duration {
        let mut want = want.to_vec();
        want.sort();
        let what = format!("{svc}'s shard has the addresses {want:?}");
        let check = || match self.addresses(svc) {
            Some(got) if got == want => Ok(()),
            other => Err(format!("{other:?}")),
        };
        let (_, took) =
            eventually_timed(within, &what, || std::future::ready(check())).await.unwrap_or_else(|e| panic!("{e}"));
        took
    }
}

/// A LoadBalancer Service whose status the simulator fills with only `hostname`.
fn named_lb(name: &str, hostname: &str, port: u16) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default", "annotations": {"sim.meridian.io/lb-hostname": hostname}},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"name": "http", "port": port}]}
    })
}

fn ip(v4: Ipv4Addr) -> IpAddr {
    IpAddr::V4(v4)
}

/// The shard of a hostname-only load balancer gets the name's A and AAAA addresses; a
/// changed zone changes them after the (bounded, 5 s) TTL; the health checker probes
/// them like published IPs: the address with a listener is up, the other down.
#[tokio::test]
async fn a_hostname_only_load_balancer_gets_its_names_addresses_probed_and_refreshed() {
    let port = shared_port();
    let (up, down, moved) = (loopback_ip(BLOCK), loopback_ip(BLOCK), loopback_ip(BLOCK));
    let _listener = tokio::net::TcpListener::bind((up, port)).await.expect("backend listens");
    let mut knot = Knot::start(&format!("web IN A {up}\nweb IN A {down}\nweb IN AAAA fd00:181::7\n")).await;
    let f = fixture(&[knot.addr]).await;
    let mut registry = prometheus_client::registry::Registry::default();
    let cancel = tokio_util::sync::CancellationToken::new();
    let checker = meridian_discovery::health::spawn(
        &f.config,
        f.discovery.table(),
        f.discovery.updates(),
        &mut registry,
        &cancel,
    );

    f.cluster().apply_json(named_lb("web", LB_NAME, port)).expect("create");
    let v6: IpAddr = "fd00:181::7".parse().expect("ip");
    f.wait_addresses("web", Duration::from_secs(10), &[ip(up), ip(down), v6]).await;
    let snap = f.discovery.table().snapshot();
    let shard = snap.service("default", "web").and_then(|s| s.shard("a")).cloned().expect("shard");
    assert_eq!(shard.hostnames, [Arc::<str>::from(LB_NAME)], "the hostname stays in the shard");
    assert!(f.metrics.lb_name_lookups("ok") >= 1);

    wait_probed(&checker, &[(up, port, "up"), (down, port, "down")]).await;

    knot.reload(&format!("web IN A {up}\nweb IN A {moved}\n")).await;
    let took = f.wait_addresses("web", Duration::from_secs(15), &[ip(up), ip(moved)]).await;
    assert!(took <= Duration::from_secs(12), "the new answer arrived {took:?} after the reload");
    wait_probed(&checker, &[(up, port, "up"), (moved, port, "down")]).await;
    let gone = checker.targets().into_iter().any(|t| t.address == format!("{down}:{port}"));
    assert!(!gone, "the address the name no longer has is not probed");

    // NXDOMAIN: the name is gone from the zone, and so are the shard's addresses.
    knot.reload("other IN A 192.0.2.1\n").await;
    f.wait_addresses("web", Duration::from_secs(15), &[]).await;
    assert!(f.metrics.lb_name_lookups("nxdomain") >= 1);
    checker.shutdown().await;
}

/// Waits until the checker's targets include each (ip, port, state).
async fn wait_probed(checker: &HealthChecker, want: &[(Ipv4Addr, u16, &str)]) {
    let what = format!("probed as {want:?}");
    eventually_sync(Duration::from_secs(10), &what, || {
        let targets = checker.targets();
        let ok = want
            .iter()
            .all(|(ip, port, state)| targets.iter().any(|t| t.address == format!("{ip}:{port}") && t.state == *state));
        if ok { Ok(()) } else { Err(format!("{targets:?}")) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// A resolver that never answers (a UDP socket nobody reads) holds up neither the
/// cluster's other Services nor its hostname-only one's shard: both are published at
/// once, the lookups end at their deadline as failures, and changes keep flowing.
#[tokio::test]
async fn a_silent_resolver_does_not_hold_up_other_shards() {
    let silent = std::net::UdpSocket::bind((loopback_ip(BLOCK), 0)).expect("bind");
    let f = fixture(&[silent.local_addr().expect("addr")]).await;
    let a = f.cluster();
    a.apply_json(named_lb("named", LB_NAME, 8080)).expect("create named");
    eventually_sync(Duration::from_secs(10), "named's shard published", || f.addresses("named").ok_or("no shard"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));

    // While the first lookup of the name hangs, another Service arrives promptly.
    let t0 = Instant::now();
    a.apply_json(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "plain", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "plain"}, "ports": [{"name": "http", "port": 8080}]}
    }))
    .expect("create plain");
    eventually_sync(Duration::from_secs(10), "plain's shard with its IP", || {
        f.addresses("plain").filter(|a| !a.is_empty()).ok_or("none yet")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(t0.elapsed() < Duration::from_secs(3), "plain waited {:?} behind the silent lookup", t0.elapsed());
    assert_eq!(f.metrics.lb_name_lookups("failed"), 0, "the first lookup is still waiting for its deadline");

    eventually_sync(Duration::from_secs(15), "the silent lookup fails at its deadline", || {
        if f.metrics.lb_name_lookups("failed") >= 1 { Ok(()) } else { Err("not yet") }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(f.addresses("named"), Some(Vec::new()), "nothing resolved, nothing invented");
    a.set_ready("default", "plain", 0).expect("not ready");
    eventually_sync(Duration::from_secs(5), "plain's change arrives", || {
        let snap = f.discovery.table().snapshot();
        let ready = snap.service("default", "plain").and_then(|s| s.shard("a")).map(|s| s.ready_endpoints);
        if ready == Some(0) { Ok(()) } else { Err(format!("{ready:?}")) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// An Ingress whose load balancer publishes only a hostname (an AWS ALB) gets the name's
/// addresses too, kept apart from a Service of the same name that publishes an IP.
#[tokio::test]
async fn a_hostname_only_ingress_gets_its_names_addresses() {
    let (first, second) = (loopback_ip(BLOCK), loopback_ip(BLOCK));
    let knot = Knot::start(&format!("web IN A {first}\nweb IN A {second}\n")).await;
    let f = fixture(&[knot.addr]).await;
    let a = f.cluster();
    a.apply_json(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80}]}
    }))
    .expect("create the Service");
    a.apply_json(json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
        "metadata": {"name": "web", "namespace": "default", "annotations": {"sim.meridian.io/lb-hostname": LB_NAME}},
        "spec": {"rules": [{"host": "shop.example", "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}
    }))
    .expect("create the Ingress");
    let mut want = vec![ip(first), ip(second)];
    want.sort();
    let ingress = || {
        let snap: Arc<Snapshot> = f.discovery.table().snapshot();
        snap.ingress("default", "web")
            .and_then(|i| i.shards.first().map(|s| (s.addresses.clone(), s.hostnames.clone())))
    };
    eventually_sync(Duration::from_secs(10), "the Ingress has the name's addresses", || match ingress() {
        Some((addrs, _)) if addrs == want => Ok(()),
        other => Err(format!("{other:?}")),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ingress().map(|(_, h)| h), Some(vec![Arc::<str>::from(LB_NAME)]), "the hostname stays");
    let service = f.addresses("web").expect("the Service's shard");
    assert!(service.len() == 1 && !want.contains(&service[0]), "the Service keeps its own IP: {service:?}");
}
