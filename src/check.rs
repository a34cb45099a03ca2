//! `meridian check`: validates a configuration file, builds every zone the DNS server
//! would serve from its master file (as the server does at start), and, unless
//! `--offline`, checks that every member cluster's kubeconfig, context and API can be used.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use meridian_config::Config;
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
    let mut problems = 0;
    for c in &config.clusters {
        if c.simulated {
            continue;
        }
        let result = async {
            let (kc, ctx) = registry::endpoint(&config, c, &SimulatorLink::default())?;
            let client = registry::connect(&c.name, &kc, ctx.as_deref()).await?;
            anyhow::Ok(client)
        }
        .await;
        let client = match result {
            Ok(client) => client,
            Err(e) => {
                eprintln!("{}: {e:#}", path.display());
                problems += 1;
                continue;
            }
        };
        if offline {
            continue;
        }
        let req = http::Request::get("/readyz").body(Vec::new())?;
        match tokio::time::timeout(REACH_TIMEOUT, client.request_text(req)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                eprintln!(
                    "{}: cluster {}: unreachable: {}",
                    path.display(),
                    c.name,
                    e.to_string().lines().next().unwrap_or("")
                );
                problems += 1;
            }
            Err(_) => {
                eprintln!("{}: cluster {}: unreachable: no answer within {REACH_TIMEOUT:?}", path.display(), c.name);
                problems += 1;
            }
        }
    }
    match (zone_problems, problems) {
        (0, 0) => {}
        (0, n) => anyhow::bail!("{}: {n} cluster(s) cannot be used", path.display()),
        (z, 0) => anyhow::bail!("{}: {z} zone error(s)", path.display()),
        (z, n) => anyhow::bail!("{}: {z} zone error(s), {n} cluster(s) cannot be used", path.display()),
    }
    println!("{}: ok ({} clusters)", path.display(), config.clusters.len());
    Ok(())
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
