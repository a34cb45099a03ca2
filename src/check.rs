//! `meridian check`: validates a configuration file, builds every zone the DNS server
//! would serve from its master file (as the server does at start), loads the proxy's
//! certificates and the fleet's key, and checks that every member cluster's (and the
//! sync control plane's) kubeconfig and context can be used and, unless `--offline`,
//! that its API answers.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use meridian_config::{ClusterConfig, Config};
use meridian_discovery::registry::{self, SimulatorLink};
use meridian_dns::DnsServer;

/// How long `check` waits for each cluster's `/readyz`.
const REACH_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) async fn run(path: &Path, offline: bool) -> Result<()> {
    let config = match Config::load(path) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            anyhow::bail!("{} has {} error(s)", path.display(), errors.0.len());
        }
    };
    let zone_problems = check_zones(path, &config);
    let file_problems = check_files(path, &config);
    let mut problems = 0;
    // The members, and the sync control plane when sync runs: `serve` connects to both.
    let host = config.sync.host.iter().filter(|_| config.sync.enabled);
    for c in config.clusters.iter().chain(host).filter(|c| !c.simulated) {
        if let Err(e) = check_cluster(&config, c, offline).await {
            eprintln!("{}: {e:#}", path.display());
            problems += 1;
        }
    }
    let mut found = Vec::new();
    if zone_problems > 0 {
        found.push(format!("{zone_problems} zone error(s)"));
    }
    if file_problems > 0 {
        found.push(format!("{file_problems} unusable file(s)"));
    }
    if problems > 0 {
        found.push(format!("{problems} cluster(s) cannot be used"));
    }
    if !found.is_empty() {
        anyhow::bail!("{}: {}", path.display(), found.join(", "));
    }
    println!("{}: ok ({} clusters)", path.display(), config.clusters.len());
    Ok(())
}

/// One cluster's kubeconfig and context, and (unless `offline`) its API's `/readyz`. An
/// `in_cluster` cluster is checked only online: its credentials exist only in the pod.
async fn check_cluster(config: &Config, c: &ClusterConfig, offline: bool) -> Result<()> {
    if c.in_cluster && offline {
        return Ok(());
    }
    let client = registry::cluster_client(config, c, &SimulatorLink::default()).await?;
    if offline {
        return Ok(());
    }
    let req = http::Request::get("/readyz").body(Vec::new())?;
    match tokio::time::timeout(REACH_TIMEOUT, client.request_text(req)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => {
            anyhow::bail!("cluster {}: unreachable: {}", c.name, e.to_string().lines().next().unwrap_or(""))
        }
        Err(_) => anyhow::bail!("cluster {}: unreachable: no answer within {REACH_TIMEOUT:?}", c.name),
    }
}

/// The files `serve` opens besides the zone files: the proxy's certificates and keys
/// (each pair loaded and matched) and the fleet's key. Prints each problem; returns how
/// many there were.
fn check_files(path: &Path, config: &Config) -> usize {
    let mut problems = 0;
    if config.lb.enabled
        && let Err(e) = meridian_lb::Proxy::check_certificates(config)
    {
        eprintln!("{}: {e}", path.display());
        problems += 1;
    }
    if let Some(fleet) = &config.fleet
        && let Err(e) = meridian_fleet::FleetKey::load(fleet)
    {
        eprintln!("{}: fleet: {e}", path.display());
        problems += 1;
    }
    problems
}

/// Builds the served zones as the DNS server would (`DnsServer::check_zones`), printing
/// each error: a master file's with its file and line, a zone's with its name. Returns how
/// many there were.
fn check_zones(path: &Path, config: &Config) -> usize {
    if !config.dns.enabled {
        return 0;
    }
    match DnsServer::check_zones(config) {
        Ok(_) => 0,
        Err(e) => {
            let errors = e.into_list();
            for e in &errors {
                match e {
                    meridian_dns::Error::ZoneFile { .. } => eprintln!("{e}"),
                    _ => eprintln!("{}: {e}", path.display()),
                }
            }
            errors.len()
        }
    }
}
