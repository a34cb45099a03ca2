//! The simulated clusters, hosted in the bench process (Meridian runs as a separate
//! process and reaches them through a kubeconfig, as it would real clusters), and the
//! Meridian configuration that points at them.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use meridian_sim::{ClusterSpec, SimCluster, SimOptions, Simulator};

/// Federation name and DNS suffix of every benchmark.
pub(crate) const FEDERATION: &str = "bench";
pub(crate) const ZONE: &str = "gslb.test";
pub(crate) const NAMESPACE: &str = "default";

/// One seeded service and its load-balancer address in each cluster (cluster order).
pub(crate) struct Seeded {
    pub(crate) name: String,
    pub(crate) addrs: Vec<Ipv4Addr>,
}

/// The global federated name of a service.
pub(crate) fn global_name(svc: &str) -> String {
    format!("{svc}.{NAMESPACE}.{FEDERATION}.svc.{ZONE}")
}

/// The zone-level name: the shards of one cluster's zone, else a CNAME to the region name.
pub(crate) fn zone_name(svc: &str, region: &str, zone: &str) -> String {
    format!("{svc}.{NAMESPACE}.{FEDERATION}.svc.{zone}.{region}.{ZONE}")
}

pub(crate) fn service_name(i: usize) -> String {
    format!("svc-{i:04}")
}

/// Places for the clusters, so geo ranking has distances to compare.
const PLACES: [(f64, f64); 6] = [(39.0, -77.5), (50.1, 8.7), (19.1, 72.9), (35.7, 139.7), (-23.5, -46.6), (51.5, -0.1)];

pub(crate) fn region(i: usize) -> String {
    format!("r{i}")
}

pub(crate) fn zone(i: usize) -> String {
    format!("r{i}-a")
}

pub(crate) fn cluster_name(i: usize) -> String {
    format!("c{i}")
}

/// How simulated clusters serve their API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// Plain HTTP/1.1, no authentication.
    Plain,
    /// HTTPS with a bearer token, HTTP/2 or HTTP/1.1 by ALPN, as kube-apiserver.
    Tls,
    /// HTTPS with a bearer token, HTTP/1.1 only.
    TlsHttp1,
}

impl Transport {
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Transport::Plain => "plain HTTP/1.1",
            Transport::Tls => "HTTPS, HTTP/2 by ALPN",
            Transport::TlsHttp1 => "HTTPS, HTTP/1.1 only",
        }
    }
}

/// The load-balancer pool of cluster `i`: the simulator's default (127.(100+i).0.0/16)
/// for the first 150, then a /22 (1,022 addresses) each from 127.16.0.0 up, so a
/// thousand clusters of a thousand services fit below 127.100.
fn lb_cidr(i: usize) -> Option<String> {
    const DEFAULTS: usize = 150;
    let j = i.checked_sub(DEFAULTS)?;
    Some(format!("127.{}.{}.0/22", 16 + j / 64, (j % 64) * 4))
}

/// The simulator and its clusters.
pub(crate) struct Sims {
    pub(crate) sim: Arc<Simulator>,
    pub(crate) clusters: Vec<Arc<SimCluster>>,
    pub(crate) kubeconfig: PathBuf,
    /// How the clusters serve their API.
    transport: Transport,
}

impl Sims {
    /// Starts `n` clusters; `backends` runs real HTTP servers behind LB addresses (for
    /// health checks), off for the scale benchmark.
    pub(crate) async fn start(n: usize, backends: bool, dir: &Path) -> Result<Sims> {
        Self::start_as(n, backends, Transport::Plain, dir).await
    }

    /// [`Sims::start`], with clusters that serve their API over `transport`.
    pub(crate) async fn start_as(n: usize, backends: bool, transport: Transport, dir: &Path) -> Result<Sims> {
        let sim = Arc::new(Simulator::new(SimOptions { history: 100_000, backends, state_dir: None }));
        let kubeconfig = dir.join("kubeconfig");
        let mut sims = Sims { sim, clusters: Vec::new(), kubeconfig, transport };
        sims.add(n).await?;
        Ok(sims)
    }

    /// Applies services `0..count` to every cluster, the clusters split into one run of
    /// neighbours per core, each seeded on a thread; their addresses, cluster by cluster.
    pub(crate) fn seed(&self, count: usize) -> Result<Vec<Seeded>> {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_thread = self.clusters.len().div_ceil(threads).max(1);
        let per_cluster: Vec<Vec<Ipv4Addr>> = std::thread::scope(|s| {
            let jobs: Vec<_> = self
                .clusters
                .chunks(per_thread)
                .map(|run| {
                    s.spawn(move || run.iter().map(|c| seed_range(c, 0, count, true)).collect::<Result<Vec<_>>>())
                })
                .collect();
            let mut all = Vec::with_capacity(self.clusters.len());
            for job in jobs {
                all.extend(job.join().map_err(|_| anyhow::anyhow!("a seeding thread panicked"))??);
            }
            Ok::<_, anyhow::Error>(all)
        })?;
        Ok((0..count)
            .map(|i| Seeded { name: service_name(i), addrs: per_cluster.iter().map(|addrs| addrs[i]).collect() })
            .collect())
    }

    /// Adds `n` clusters after the existing ones (named, placed and pooled as
    /// [`Sims::start`] would have) and rewrites the kubeconfig to include them.
    pub(crate) async fn add(&mut self, n: usize) -> Result<()> {
        for i in self.clusters.len()..self.clusters.len() + n {
            let spec = ClusterSpec {
                lb_cidr: lb_cidr(i),
                ..ClusterSpec::new(cluster_name(i)).with_topology(region(i), zone(i))
            };
            let spec = match self.transport {
                Transport::Plain => spec,
                Transport::Tls => spec.secure(),
                Transport::TlsHttp1 => spec.secure().http1_only(),
            };
            self.clusters.push(self.sim.add_cluster(spec).await.with_context(|| format!("simulated cluster {i}"))?);
        }
        self.sim.write_kubeconfig(&self.kubeconfig)?;
        Ok(())
    }

    pub(crate) async fn shutdown(&self) {
        self.sim.shutdown().await;
    }
}

/// Applies services `first..first + count` to `cluster`; their load-balancer addresses.
/// Without `listening`, nothing listens behind them (the simulator's `backend: down`):
/// probes of them are refused, so each is state (a Down ballot per instance) that costs
/// no listener.
pub(crate) fn seed_range(cluster: &SimCluster, first: usize, count: usize, listening: bool) -> Result<Vec<Ipv4Addr>> {
    let mut addrs = Vec::with_capacity(count);
    for i in first..first + count {
        let mut svc = service_json(&service_name(i));
        if !listening {
            svc["metadata"]["annotations"] = serde_json::json!({"sim.meridian.io/backend": "down"});
        }
        let stored =
            cluster.apply_json(svc).with_context(|| format!("seeding {} in {}", service_name(i), cluster.name()))?;
        let ip = stored.pointer("/status/loadBalancer/ingress/0/ip").and_then(|v| v.as_str()?.parse().ok());
        addrs.push(
            ip.with_context(|| format!("{} in {} got no load-balancer address", service_name(i), cluster.name()))?,
        );
    }
    Ok(addrs)
}

fn service_json(name: &str) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "type": "LoadBalancer",
            // As clusters with thousands of load balancers set it: the nodePort range
            // (2,768 ports) would otherwise bound how many a cluster can have.
            "allocateLoadBalancerNodePorts": false,
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
        },
    })
}

/// Settings of the generated Meridian configuration.
pub(crate) struct MeridianConf<'a> {
    pub(crate) kubeconfig: &'a Path,
    pub(crate) clusters: usize,
    pub(crate) dns_port: u16,
    pub(crate) admin_port: u16,
    /// The `[health]` section's body (`None`: no active checks).
    pub(crate) health: Option<&'a str>,
    /// Geo ranking, with loopback clients placed in Europe.
    pub(crate) geo: bool,
}

/// The TOML for `meridian serve`.
pub(crate) fn meridian_config(c: &MeridianConf<'_>) -> String {
    let mut t = String::new();
    let _ = writeln!(t, "name = \"{FEDERATION}\"\ndns_zone = \"{ZONE}\"\n");
    t.push_str(&clusters_toml(c.kubeconfig, c.clusters));
    let _ = writeln!(t, "[dns]\nlisten = [\"127.0.0.1:{}\"]\n", c.dns_port);
    let _ = writeln!(t, "[admin]\nlisten = \"127.0.0.1:{}\"\n", c.admin_port);
    match c.health {
        Some(h) => {
            let _ = writeln!(t, "[health]\n{h}\n");
        }
        None => {
            let _ = writeln!(t, "[health]\nkind = \"off\"\n");
        }
    }
    if c.geo {
        let _ = writeln!(
            t,
            "[ranking]\ndefault_policy = \"geo\"\ngeoip_required = false\n\n[[ranking.networks]]\ncidr = \"127.0.0.0/8\"\nlocation = {{ lat = 48.85, lon = 2.35 }}\n"
        );
    }
    let _ = writeln!(t, "[log]\nlevel = \"warn\"");
    t
}

/// The `[[clusters]]` entries of the first `n` simulated clusters.
pub(crate) fn clusters_toml(kubeconfig: &Path, n: usize) -> String {
    let mut t = String::new();
    for i in 0..n {
        let (lat, lon) = PLACES[i % PLACES.len()];
        let _ = writeln!(
            t,
            "[[clusters]]\nname = \"{}\"\nkubeconfig = \"{}\"\ncontext = \"{}\"\nlocation = {{ lat = {lat}, lon = {lon} }}\n",
            cluster_name(i),
            kubeconfig.display(),
            cluster_name(i)
        );
    }
    t
}
