//! `GET /api/v1/explain` and `meridian explain`: the answer Meridian would give a client
//! now, and why — for a DNS name (`DnsServer::explain`, the serving path run with a
//! recorder) or, with `http=HOST[/path]`, for a request through the proxy
//! (`Proxy::explain`).

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use meridian_dns::explain::{ExplainQuery, IpNet, parse_qtype};
use serde::Deserialize;
use serde_json::Value;

use crate::admin::{AdminState, json_error};

/// The query string of `/api/v1/explain`.
#[derive(Debug, Default, Deserialize, serde::Serialize)]
pub(crate) struct Params {
    pub(crate) name: Option<String>,
    #[serde(rename = "type")]
    pub(crate) qtype: Option<String>,
    pub(crate) client: Option<String>,
    pub(crate) subnet: Option<String>,
    /// `LAT,LON`.
    pub(crate) at: Option<String>,
    /// `HOST[/path]`: explain a request through the proxy instead.
    pub(crate) http: Option<String>,
}

pub(crate) async fn handler(State(s): State<Arc<AdminState>>, Query(p): Query<Params>) -> Response {
    if let Some(target) = &p.http {
        let Some(proxy) = &s.proxy else {
            return json_error(StatusCode::NOT_FOUND, "the proxy does not run here ([lb] enabled = false)".into());
        };
        let (host, path) = split_target(target);
        let mut doc = proxy.explain(host, &path);
        if let (Some(c), Some(o)) = (&p.client, doc.as_object_mut()) {
            // Said, not silently dropped: the client's address changes nothing here.
            o.insert("client".into(), c.clone().into());
            o.insert(
                "client_note".into(),
                "the proxy ranks by its own region (lb.region): every client gets these levels".into(),
            );
        }
        return Json(doc).into_response();
    }
    let Some(dns) = &s.dns else {
        return json_error(StatusCode::NOT_FOUND, "the DNS server does not run here".into());
    };
    let q = match dns_query(&p) {
        Ok(q) => q,
        Err(e) => return json_error(StatusCode::BAD_REQUEST, format!("{e:#}")),
    };
    match dns.explain(&q) {
        Ok(x) => Json(x).into_response(),
        Err(e) => json_error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// `host/path` → (`host`, `/path`); no path is `/`.
fn split_target(target: &str) -> (&str, String) {
    let t = target.strip_prefix("http://").or_else(|| target.strip_prefix("https://")).unwrap_or(target);
    match t.find('/') {
        Some(i) => (t.get(..i).unwrap_or(t), t.get(i..).unwrap_or("/").to_owned()),
        None => (t, "/".to_owned()),
    }
}

fn dns_query(p: &Params) -> Result<ExplainQuery> {
    let name = p.name.clone().filter(|n| !n.is_empty()).context("name is required (or http=HOST/path)")?;
    let qtype = parse_qtype(p.qtype.as_deref().unwrap_or("A"))?;
    let client = match p.client.as_deref() {
        None | Some("") => None,
        Some(c) => Some(c.parse::<IpAddr>().with_context(|| format!("client {c:?} is not an IP address"))?),
    };
    let subnet = match p.subnet.as_deref() {
        None | Some("") => None,
        Some(s) => Some(parse_subnet(s)?),
    };
    let at = match p.at.as_deref() {
        None | Some("") => None,
        Some(a) => Some(parse_at(a)?),
    };
    Ok(ExplainQuery { name, qtype, client, subnet, at })
}

/// A CIDR, or a bare address as its host route.
fn parse_subnet(s: &str) -> Result<IpNet> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Ok(ip.into());
    }
    s.parse::<IpNet>().with_context(|| format!("subnet {s:?} is not a CIDR such as 192.0.2.0/24"))
}

fn parse_at(s: &str) -> Result<[f64; 2]> {
    let bad = || format!("at {s:?} is not LAT,LON such as 48.86,2.35");
    let (lat, lon) = s.split_once(',').with_context(bad)?;
    Ok([lat.trim().parse().with_context(bad)?, lon.trim().parse().with_context(bad)?])
}

/// `meridian explain`: asks the admin endpoint and prints the explanation.
pub(crate) async fn run(admin: SocketAddr, params: Params, json: bool) -> Result<()> {
    let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(5)).build()?;
    let url = format!("http://{admin}/api/v1/explain");
    let resp = client.get(&url).query(&params).send().await.with_context(|| {
        format!("cannot reach the admin endpoint at {admin}: is `meridian serve` or `meridian demo` running? (use --admin to point elsewhere)")
    })?;
    let status = resp.status();
    let doc: Value = resp.json().await.with_context(|| format!("{url} did not return JSON"))?;
    if !status.is_success() {
        anyhow::bail!("{}", doc["error"].as_str().unwrap_or("the admin endpoint refused the question"));
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else if params.http.is_some() {
        print!("{}", render_http(&doc));
    } else {
        print!("{}", render_dns(&doc));
    }
    Ok(())
}

fn text(v: &Value) -> String {
    crate::status::cell(v, ", ")
}

fn render_dns(d: &Value) -> String {
    let mut o = String::new();
    let q = &d["query"];
    let _ =
        writeln!(o, "{} {}  →  {} (zone {})", text(&q["name"]), text(&q["type"]), text(&d["rcode"]), text(&d["zone"]));
    for c in d["chain"].as_array().into_iter().flatten() {
        let src = &c["source"];
        let object = match (&src["namespace"], &src["name"]) {
            (Value::String(ns), Value::String(n)) => format!(" {ns}/{n}"),
            _ => String::new(),
        };
        let cname = c["cname"].as_str().map(|t| format!("  CNAME {t}")).unwrap_or_default();
        let _ = writeln!(o, "  name  {}  ({}{object}){cname}", text(&c["name"]), text(&src["kind"]));
    }
    if let Some(l) = d["location"].as_object() {
        let place = &l["place"];
        let _ = writeln!(
            o,
            "  client located from {} in {}: lat {} lon {} region {}  (scope /{})",
            text(&l["from"]),
            text(&l["found_in"]),
            text(&place["lat"]),
            text(&place["lon"]),
            text(&place["region"]),
            text(&l["scope"])
        );
    }
    if let Some(r) = d["ranking"].as_object() {
        let _ = writeln!(
            o,
            "  policy {} (applied: {}), at most {} records, order: {}",
            text(&r["policy"]),
            text(&r["applied"]),
            text(&r["cap"]),
            text(&r["order"])
        );
        let rows: Vec<Vec<String>> = r["candidates"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                ["cluster", "region", "addresses", "weight", "group", "distance_km", "rtt_ms"]
                    .iter()
                    .map(|k| text(&c[*k]))
                    .collect()
            })
            .collect();
        o.push_str(&indent(&crate::status::render(
            &["CLUSTER", "REGION", "ADDRESSES", "WEIGHT", "GROUP", "KM", "RTT_MS"],
            &rows,
        )));
    }
    let shards: Vec<Vec<String>> = d["shards"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| {
            let usable = if s["usable"].as_bool() == Some(true) { "yes".to_owned() } else { text(&s["reason"]) };
            vec![
                text(&s["cluster"]),
                text(&s["addresses"]),
                text(&s["ready_endpoints"]),
                text(&s["probe"]),
                text(&s["stale"]),
                usable,
            ]
        })
        .collect();
    if !shards.is_empty() {
        o.push_str(&indent(&crate::status::render(
            &["SHARD", "ADDRESSES", "READY", "PROBE", "STALE", "USABLE"],
            &shards,
        )));
    }
    let _ = writeln!(o, "answer (TTL {}, ECS scope {}):", text(&d["ttl"]), text(&d["ecs_scope"]));
    for a in d["answer"].as_array().into_iter().flatten() {
        let from = a["cluster"].as_str().map(|c| format!("   ; {c}")).unwrap_or_default();
        let _ =
            writeln!(o, "  {} {} {} {}{from}", text(&a["name"]), text(&a["ttl"]), text(&a["type"]), text(&a["data"]));
    }
    o
}

fn render_http(d: &Value) -> String {
    let mut o = String::new();
    let r = &d["route"];
    if r.is_null() {
        let _ = writeln!(o, "no route for {}{} (hosts: {})", text(&d["host"]), text(&d["path"]), text(&d["hosts"]));
        return o;
    }
    let _ = writeln!(
        o,
        "{}{} → route {}{} from {} to {}",
        text(&d["host"]),
        text(&d["path"]),
        text(&r["host"]),
        text(&r["path"]),
        text(&r["source"]),
        text(&r["upstream"])
    );
    for l in r["levels"].as_array().into_iter().flatten() {
        let _ = writeln!(
            o,
            "  level {} takes {:.1}% of requests",
            text(&l["name"]),
            l["load_percent"].as_f64().unwrap_or(0.0)
        );
        let rows: Vec<Vec<String>> = l["backends"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|b| ["address", "cluster", "state", "outstanding", "ewma_ms"].iter().map(|k| text(&b[*k])).collect())
            .collect();
        o.push_str(&indent(&crate::status::render(&["BACKEND", "CLUSTER", "STATE", "OUTSTANDING", "EWMA_MS"], &rows)));
    }
    if let Some(note) = d["client_note"].as_str() {
        let _ = writeln!(o, "client {}: {note}", text(&d["client"]));
    }
    let f = &d["favoured"];
    let _ = writeln!(o, "favoured: {} ({}, level {})", text(&f["address"]), text(&f["cluster"]), text(&f["level"]));
    o
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}
