//! Ranking through the binary: the demo's `web` Service uses the `geo` policy, so a
//! resolver's EDNS Client Subnet decides which cluster comes first; active health checks
//! take a shard whose backend died out of answers.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use meridian_tests::{Meridian, eventually, free_addr, kubectl_ok};

const WEB: &str = "web.default.demo.svc.meridian.test";

fn region_ip(m: &Meridian, region: &str) -> Result<String> {
    let r = m.dig(&["A", &format!("web.default.demo.svc.{region}.meridian.test")])?;
    r.answers("A").into_iter().next().with_context(|| format!("no address for {region}:\n{}", r.text))
}

/// Subnets checked with mmdblookup against the pinned GeoLite2 City database: Paris,
/// Bangalore and New Jersey.
#[test]
fn client_subnet_puts_the_nearest_cluster_first_and_echoes_the_scope() -> Result<()> {
    assert!(
        std::env::var_os("MERIDIAN_GEOIP_DB").is_some(),
        "MERIDIAN_GEOIP_DB is not set: run the tests with scripts/test, which downloads GeoLite2"
    );
    let m = Meridian::demo()?;
    eventually(Duration::from_secs(10), "web in 3 clusters", || {
        Ok((m.dig(&["A", WEB])?.answers("A").len() == 3).then_some(()))
    })?;
    let eu = region_ip(&m, "europe-west1")?;
    let ap = region_ip(&m, "asia-south1")?;
    let us = region_ip(&m, "us-east1")?;
    for (subnet, first) in [("195.154.0.0/24", &eu), ("117.192.0.0/24", &ap), ("24.0.0.0/24", &us)] {
        let opt = format!("+subnet={subnet}");
        for r in [m.dig(&[&opt, "A", WEB])?, m.kdig(&[&opt, "A", WEB])?] {
            let order = r.answers_in_order("A");
            assert_eq!(order.first(), Some(first), "{subnet}:\n{}", r.text);
            assert_eq!(order.len(), 3, "all healthy shards, nearest first:\n{}", r.text);
            let ecs = r.client_subnet().with_context(|| format!("no ECS echoed for {subnet}:\n{}", r.text))?;
            // "<address>/<source>/<scope>": the scope used is the matched network's prefix.
            let scope: u8 = ecs.rsplit('/').next().and_then(|v| v.parse().ok()).unwrap_or(0);
            assert!((1..=24).contains(&scope), "scope for {subnet}: {ecs}");
        }
    }
    // A service whose answer does not depend on location echoes scope 0.
    let r = m.dig(&["+subnet=195.154.0.0/24", "A", "api.shop.demo.svc.meridian.test"])?;
    let ecs = r.client_subnet().context("no ECS echoed for api")?;
    assert!(ecs.ends_with("/0"), "{ecs}");
    // Without ECS the source address (loopback: no location) is used: fallback, no echo.
    let r = m.dig(&["A", WEB])?;
    assert_eq!(r.answers("A").len(), 3);
    assert!(r.client_subnet().is_none(), "{}", r.text);
    Ok(())
}

/// With checks every second and an unhealthy threshold of 2, a shard whose HTTP backend
/// stops (its endpoints stay ready) leaves the answers within 3 s, and comes back.
#[test]
fn a_dead_backend_leaves_answers_within_interval_times_threshold() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (admin, dns) = (free_addr(), free_addr());
    let head = meridian_tests::config_head("hc", admin, dns);
    let file = dir.path().join("meridian.toml");
    std::fs::write(
        &file,
        format!(
            "{head}\
             [health]\nkind = \"http\"\npath = \"/healthz\"\ninterval = \"1s\"\ntimeout = \"500ms\"\nunhealthy_threshold = 2\nhealthy_threshold = 1\n\
             [[clusters]]\nname = \"a\"\nsimulated = true\nregion = \"ra\"\n[[clusters]]\nname = \"b\"\nsimulated = true\nregion = \"rb\"\n"
        ),
    )?;
    let m = Meridian::serve(&file)?.with_ports(admin, dns)?;
    let svc = dir.path().join("svc.yaml");
    std::fs::write(
        &svc,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  ports:\n  - {name: http, port: 8080}\n",
    )?;
    for ctx in ["a", "b"] {
        kubectl_ok(&m.kubeconfig(), ctx, &["apply", "-f", &svc.to_string_lossy()])?;
    }
    let name = "web.default.hc.svc.hc.test";
    eventually(Duration::from_secs(10), "two shards", || {
        Ok((m.dig(&["A", name])?.answers("A").len() == 2).then_some(()))
    })?;
    let a_ip = kubectl_ok(
        &m.kubeconfig(),
        "a",
        &["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
    )?;
    kubectl_ok(&m.kubeconfig(), "a", &["annotate", "svc", "web", "sim.meridian.io/backend=down", "--overwrite"])?;
    let t0 = Instant::now();
    eventually(Duration::from_secs(3), "dead shard leaves answers", || {
        let a = m.dig(&["A", name])?.answers("A");
        Ok((a.len() == 1 && !a.contains(&a_ip)).then_some(()))
    })?;
    assert!(t0.elapsed() <= Duration::from_secs(3), "took {:?}", t0.elapsed());
    kubectl_ok(&m.kubeconfig(), "a", &["annotate", "svc", "web", "sim.meridian.io/backend=up", "--overwrite"])?;
    eventually(Duration::from_secs(3), "shard back", || {
        Ok((m.dig(&["A", name])?.answers("A").len() == 2).then_some(()))
    })?;
    Ok(())
}

/// Without EDNS Client Subnet the query's source address locates the client; the
/// configured CIDR table places 127.0.0.2 in Paris and 127.0.0.3 in Mumbai.
#[test]
fn without_client_subnet_the_source_address_locates_the_client() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let (admin, dns) = (free_addr(), free_addr());
    let head = meridian_tests::config_head("sa", admin, dns);
    let file = dir.path().join("meridian.toml");
    std::fs::write(
        &file,
        format!(
            "{head}\
             [health]\nkind = \"off\"\n[ranking]\ndefault_policy = \"geo\"\ngeoip_required = false\ngeoip_db = []\n\
             [[ranking.networks]]\ncidr = \"127.0.0.2/32\"\nlocation = {{ lat = 48.85, lon = 2.35 }}\n\
             [[ranking.networks]]\ncidr = \"127.0.0.3/32\"\nlocation = {{ lat = 19.08, lon = 72.88 }}\n\
             [[clusters]]\nname = \"eu\"\nsimulated = true\nregion = \"eu-r\"\nlocation = {{ lat = 50.45, lon = 3.82 }}\n\
             [[clusters]]\nname = \"ap\"\nsimulated = true\nregion = \"ap-r\"\nlocation = {{ lat = 19.08, lon = 72.88 }}\n"
        ),
    )?;
    let m = Meridian::serve(&file)?.with_ports(admin, dns)?;
    let svc = dir.path().join("svc.yaml");
    std::fs::write(
        &svc,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports:\n  - {name: http, port: 8080}\n",
    )?;
    let mut ips = Vec::new();
    for ctx in ["eu", "ap"] {
        kubectl_ok(&m.kubeconfig(), ctx, &["apply", "-f", &svc.to_string_lossy()])?;
        let ip = eventually(Duration::from_secs(5), "LB address", || {
            let ip = kubectl_ok(
                &m.kubeconfig(),
                ctx,
                &["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
            )?;
            Ok((!ip.is_empty()).then_some(ip))
        })?;
        ips.push(ip);
    }
    let name = "web.default.sa.svc.sa.test";
    eventually(Duration::from_secs(10), "two shards", || {
        Ok((m.dig(&["A", name])?.answers("A").len() == 2).then_some(()))
    })?;
    for (source, first) in [("127.0.0.2", &ips[0]), ("127.0.0.3", &ips[1])] {
        for _ in 0..3 {
            let r = m.dig(&["-b", source, "A", name])?;
            assert_eq!(r.answers_in_order("A").first(), Some(first), "from {source}:\n{}", r.text);
        }
    }
    Ok(())
}
