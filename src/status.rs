//! `meridian status`: reads the admin JSON API of a running server and prints tables.

use std::fmt::Write as _;
use std::net::SocketAddr;

use anyhow::{Context, Result};
use serde_json::Value;

/// Names listed in the table view; a federation of thousands of services serves many
/// more, and `--json` gives them all.
const MAX_NAMES: usize = 200;

async fn fetch(client: &reqwest::Client, admin: SocketAddr, path: &str) -> Result<Value> {
    let url = format!("http://{admin}{path}");
    let resp = client.get(&url).send().await.with_context(|| format!("cannot reach the admin endpoint at {admin}: is `meridian serve` or `meridian demo` running? (use --admin to point elsewhere)"))?;
    if !resp.status().is_success() {
        anyhow::bail!("{url} answered {}", resp.status());
    }
    resp.json().await.with_context(|| format!("{url} did not return JSON"))
}

/// Renders rows as a left-aligned table with a header.
pub(crate) fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let mut parts = Vec::new();
        for (i, c) in cells.enumerate() {
            let w = widths.get(i).copied().unwrap_or(0);
            parts.push(format!("{c:<w$}"));
        }
        let _ = writeln!(out, "{}", parts.join("  ").trim_end());
    };
    line(&mut out, &mut header.iter().copied());
    for r in rows {
        line(&mut out, &mut r.iter().map(String::as_str));
    }
    out
}

fn s(v: &Value) -> String {
    cell(v, ",")
}

/// A JSON value as a table cell: `-` for null, a string unquoted, a list's items joined
/// by `sep` (shared with `meridian explain`'s text).
pub(crate) fn cell(v: &Value, sep: &str) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(|v| cell(v, sep)).collect::<Vec<_>>().join(sep),
        other => other.to_string(),
    }
}

pub(crate) async fn run(admin: SocketAddr, json: bool) -> Result<()> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
    let clusters = fetch(&client, admin, "/api/v1/clusters").await?;
    let services = fetch(&client, admin, "/api/v1/services").await?;
    let ingresses = fetch(&client, admin, "/api/v1/ingresses").await?;
    // Modules that are not running answer 404: leave them out.
    let dns = fetch(&client, admin, "/api/v1/dns").await.ok();
    let health = fetch(&client, admin, "/api/v1/health").await.ok();
    let lb = fetch(&client, admin, "/api/v1/lb").await.ok();
    let sync = fetch(&client, admin, "/api/v1/sync").await.ok();
    let fleet = fetch(&client, admin, "/api/v1/fleet").await.ok();
    if json {
        let all = serde_json::json!({
            "clusters": clusters, "services": services, "ingresses": ingresses, "dns": dns, "health": health, "lb": lb, "sync": sync,
            "fleet": fleet
        });
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    print_clusters(&clusters);
    print_services(&services);
    print_ingresses(&ingresses);
    if let Some(dns) = &dns {
        print_dns(dns);
    }
    if let Some(health) = &health {
        print_health(health);
    }
    if let Some(lb) = &lb {
        print_proxy(lb);
    }
    if let Some(sync) = sync.filter(|s| s["enabled"].as_bool() == Some(true)) {
        print_sync(&sync);
    }
    if let Some(fleet) = &fleet {
        print_fleet(fleet);
    }
    Ok(())
}

fn print_clusters(clusters: &Value) {
    let rows: Vec<Vec<String>> = items(clusters)
        .iter()
        .map(|c| {
            let state = match c.get("reason").and_then(Value::as_str) {
                Some(r) => format!("{} ({r})", s(&c["state"])),
                None => s(&c["state"]),
            };
            vec![
                s(&c["name"]),
                state,
                s(&c["region"]),
                s(&c["zone"]),
                s(&c["weight"]),
                s(&c["service_shards"]),
                s(&c["watch_events"]),
            ]
        })
        .collect();
    println!("CLUSTERS");
    print!("{}", render(&["NAME", "STATE", "REGION", "ZONE", "WEIGHT", "SHARDS", "EVENTS"], &rows));
    println!();
}

fn print_services(services: &Value) {
    let mut rows = Vec::new();
    for svc in items(services) {
        let name = format!("{}/{}", s(&svc["namespace"]), s(&svc["name"]));
        for sh in items(&svc["shards"]) {
            let mut health = if sh["healthy"].as_bool() == Some(true) { "healthy" } else { "unhealthy" }.to_owned();
            if sh["stale"].as_bool() == Some(true) {
                health.push_str(",stale");
            }
            if let Some(p) = sh["probe"].as_str().filter(|p| *p != "none") {
                let _ = write!(health, ",probe={p}");
            }
            rows.push(vec![
                name.clone(),
                s(&sh["cluster"]),
                s(&sh["addresses"]),
                s(&sh["ports"]),
                format!("{}/{}", s(&sh["ready_endpoints"]), s(&sh["total_endpoints"])),
                health,
            ]);
        }
    }
    println!("SERVICES");
    print!("{}", render(&["SERVICE", "CLUSTER", "ADDRESSES", "PORTS", "READY", "HEALTH"], &rows));
}

fn print_ingresses(ingresses: &Value) {
    let rows: Vec<Vec<String>> = items(ingresses)
        .iter()
        .flat_map(|ing| {
            // HTTPRoutes (Gateway API) are listed with their kind; Ingresses as before.
            let kind = if ing["kind"] == "HTTPRoute" { "httproute " } else { "" };
            let name = format!("{kind}{}/{}", s(&ing["namespace"]), s(&ing["name"]));
            let hosts = s(&ing["hosts"]);
            items(&ing["shards"])
                .iter()
                .map(move |sh| vec![name.clone(), hosts.clone(), s(&sh["cluster"]), s(&sh["addresses"])])
        })
        .collect();
    if !rows.is_empty() {
        println!();
        println!("INGRESSES");
        print!("{}", render(&["INGRESS", "HOSTS", "CLUSTER", "ADDRESSES"], &rows));
    }
}

fn print_dns(dns: &Value) {
    let names = items(&dns["names"]);
    let rows: Vec<Vec<String>> = names
        .iter()
        .take(MAX_NAMES)
        .map(|n| vec![s(&n["name"]), s(&n["kind"]), s(&n["object"]), s(&n["answer"])])
        .collect();
    println!();
    println!("DNS NAMES (GeoIP: {})", s(&dns["geoip"]));
    print!("{}", render(&["NAME", "KIND", "OBJECT", "ANSWER"], &rows));
    if names.len() > MAX_NAMES {
        println!("... and {} more (all of them: meridian status --json)", names.len() - MAX_NAMES);
    }
    print_problems(&dns["ranking_problems"]);
    print_transfers(&dns["transfers"]);
}

/// Zone transfers (`dns.transfers`, from `DnsServer::transfer_status`): each zone's
/// serial, journal depth and last NOTIFY round, then each secondary's last transfer.
fn print_transfers(transfers: &Value) {
    let zones = items(transfers);
    if zones.is_empty() {
        return;
    }
    let notify = |z: &Value| {
        let n = &z["last_notify"];
        let targets = items(&n["targets"]);
        if n.is_null() {
            return "-".to_owned();
        }
        let acked = targets.iter().filter(|t| t["acknowledged"] == Value::Bool(true)).count();
        format!("serial {} at {}: {acked}/{} acknowledged", s(&n["serial"]), s(&n["sent_at"]), targets.len())
    };
    let rows: Vec<Vec<String>> =
        zones.iter().map(|z| vec![s(&z["zone"]), s(&z["serial"]), s(&z["journal_depth"]), notify(z)]).collect();
    println!();
    println!("ZONE TRANSFERS");
    print!("{}", render(&["ZONE", "SERIAL", "JOURNAL", "LAST NOTIFY"], &rows));
    let rows: Vec<Vec<String>> = zones
        .iter()
        .flat_map(|z| items(&z["transfers"]).iter().map(move |t| (z, t)))
        .map(|(z, t)| {
            let what = [&t["client"], &t["kind"], &t["result"], &t["serial"], &t["key"], &t["at"]];
            std::iter::once(s(&z["zone"])).chain(what.into_iter().map(s)).collect()
        })
        .collect();
    if !rows.is_empty() {
        print!("{}", render(&["ZONE", "CLIENT", "KIND", "RESULT", "SERIAL", "KEY", "AT (UNIX)"], &rows));
    }
}

fn print_health(health: &Value) {
    let rows: Vec<Vec<String>> = items(&health["targets"])
        .iter()
        .map(|t| {
            let rtt = t["rtt_ms"].as_f64().map_or("-".to_owned(), |v| format!("{v:.2}"));
            vec![
                s(&t["service"]),
                s(&t["cluster"]),
                s(&t["address"]),
                s(&t["kind"]),
                s(&t["state"]),
                rtt,
                s(&t["last_error"]),
            ]
        })
        .collect();
    if !rows.is_empty() {
        println!();
        println!("HEALTH CHECKS");
        print!("{}", render(&["SERVICE", "CLUSTER", "ADDRESS", "CHECK", "STATE", "RTT-MS", "LAST ERROR"], &rows));
    }
    print_problems(&health["problems"]);
}

fn print_proxy(lb: &Value) {
    println!();
    println!("PROXY (ready: {}, region: {})", s(&lb["ready"]), s(&lb["region"]));
    let header = ["ROUTE", "UPSTREAM", "LEVEL", "LOAD%", "BACKEND", "CLUSTER", "STATE", "OUTSTANDING", "EWMA-MS"];
    print!("{}", render(&header, &proxy_rows(lb)));
}

fn print_sync(sync: &Value) {
    println!();
    println!(
        "SYNC (leader: {}, identity: {}, queued: {})",
        s(&sync["leader"]),
        s(&sync["identity"]),
        s(&sync["queued"])
    );
    print!("{}", render(&["KIND", "OBJECT", "CLUSTER", "STATE", "MESSAGE"], &sync_rows(sync)));
    for k in items(&sync["kinds"]).iter().filter(|k| k["watchError"].is_string()) {
        println!(
            "cannot watch {} {} in the control plane: {}",
            s(&k["apiVersion"]),
            s(&k["kind"]),
            s(&k["watchError"])
        );
    }
    let leftovers = sync["leftovers"].as_array().map_or(0, Vec::len);
    if leftovers > 0 {
        println!("leftovers (deletions that could not reach a member): {}", s(&sync["leftovers"]));
    }
}

/// The fleet's instances, and the addresses where the fleet's verdict overrules this
/// instance's own probes.
fn print_fleet(fleet: &Value) {
    println!();
    println!(
        "FLEET (this instance: {}, region: {}, quorum: {})",
        s(&fleet["id"]),
        s(&fleet["region"]),
        s(&fleet["quorum"])
    );
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let rows: Vec<Vec<String>> = items(&fleet["instances"])
        .iter()
        .map(|i| {
            let seen = match i["last_seen"].as_u64() {
                _ if i["this_instance"].as_bool() == Some(true) => "(this)".to_owned(),
                Some(t) => format!("{:.1}s ago", now_ms.saturating_sub(t) as f64 / 1000.0),
                None => "never".to_owned(),
            };
            vec![s(&i["id"]), s(&i["region"]), s(&i["alive"]), seen, s(&i["gossip_addr"]), s(&i["observations"])]
        })
        .collect();
    print!("{}", render(&["INSTANCE", "REGION", "ALIVE", "LAST SEEN", "GOSSIP", "OBSERVED"], &rows));
    let disagreeing = items(&fleet["disagreeing_verdicts"]);
    println!(
        "verdicts: {} up, {} down; {} address(es) where instances disagree with this one",
        s(&fleet["up"]),
        s(&fleet["down"]),
        s(&fleet["disagreements"])
    );
    if disagreeing.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = disagreeing
        .iter()
        .map(|v| {
            let seen: Vec<String> = items(&v["seen_by"])
                .iter()
                .map(|b| {
                    let up = if b["up"].as_bool() == Some(true) { "up" } else { "down" };
                    let counted = if b["counted"].as_bool() == Some(false) { " (stale)" } else { "" };
                    format!("{}={up}{counted}", s(&b["instance"]))
                })
                .collect();
            vec![s(&v["addr"]), s(&v["health"]), format!("{}/{}", s(&v["up"]), s(&v["down"])), seen.join(" ")]
        })
        .collect();
    print!("{}", render(&["ADDRESS", "VERDICT", "UP/DOWN", "SEEN BY"], &rows));
}

/// Malformed annotations: reported, and the defaults apply.
fn print_problems(problems: &Value) {
    for p in items(problems) {
        println!(
            "problem: {}",
            p.as_object()
                .map_or_else(|| s(p), |o| o.iter().map(|(k, v)| format!("{k}={}", s(v))).collect::<Vec<_>>().join(" "))
        );
    }
}

fn items(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// One row per backend of every route's priority levels.
fn proxy_rows(lb: &Value) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for route in items(&lb["routes"]) {
        let name = format!("{}{}", s(&route["host"]), s(&route["path"]));
        for level in items(&route["levels"]) {
            for b in items(&level["backends"]) {
                let ewma = b["ewma_ms"].as_f64().map_or("-".to_owned(), |v| format!("{v:.1}"));
                let load = level["load_percent"].as_f64().map_or("-".to_owned(), |v| format!("{v:.0}"));
                rows.push(vec![
                    name.clone(),
                    s(&route["upstream"]),
                    s(&level["name"]),
                    load,
                    s(&b["address"]),
                    s(&b["cluster"]),
                    s(&b["state"]),
                    s(&b["outstanding"]),
                    ewma,
                ]);
            }
        }
    }
    rows
}

/// One row per object and member cluster.
fn sync_rows(sync: &Value) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for obj in items(&sync["objects"]) {
        let name = match obj["namespace"].as_str() {
            Some(ns) => format!("{ns}/{}", s(&obj["name"])),
            None => s(&obj["name"]),
        };
        for (cluster, st) in obj["clusters"].as_object().into_iter().flatten() {
            let message = st["message"].as_str().unwrap_or("").to_owned();
            rows.push(vec![s(&obj["kind"]), name.clone(), cluster.clone(), s(&st["state"]), message]);
        }
    }
    rows
}
