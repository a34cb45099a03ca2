//! `meridian demo` end to end: simulated clusters, discovery, status, kubectl.

use std::time::Duration;

use anyhow::Result;
use meridian_tests::{Meridian, binary, eventually, kubectl_ok};
use serde_json::Value;

/// The shards of `ns/name` as (cluster, healthy) pairs, from the admin API.
fn shards(m: &Meridian, ns: &str, name: &str) -> Result<Option<Vec<(String, bool)>>> {
    let services = m.json("/api/v1/services")?;
    let Some(svc) = services.as_array().and_then(|a| a.iter().find(|s| s["namespace"] == ns && s["name"] == name))
    else {
        return Ok(None);
    };
    let list = svc["shards"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| (s["cluster"].as_str().unwrap_or("").to_owned(), s["healthy"].as_bool() == Some(true)))
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(list))
}

#[test]
fn demo_shows_three_ready_clusters_and_the_federated_services() -> Result<()> {
    let m = Meridian::demo()?;
    // Services appear once each cluster's first list is in.
    let web = eventually(Duration::from_secs(10), "web in 3 clusters", || {
        Ok(shards(&m, "default", "web")?.filter(|s| s.len() == 3))
    })?;
    assert!(web.iter().all(|(_, healthy)| *healthy), "{web:?}");
    let api = eventually(Duration::from_secs(10), "api in 2 clusters", || {
        Ok(shards(&m, "shop", "api")?.filter(|s| s.len() == 2))
    })?;
    let clusters: Vec<_> = api.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(clusters, ["us-east", "eu-west"]);

    // `meridian status` prints the same, as tables.
    let out = std::process::Command::new(binary()).args(["status", "--admin", &m.admin.to_string()]).output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let ready_lines = text.lines().filter(|l| l.contains(" Ready ")).count();
    assert_eq!(ready_lines, 3, "three Ready member clusters:\n{text}");
    for needle in ["us-east", "eu-west", "ap-south", "default/web", "shop/api", "www.meridian.test"] {
        assert!(text.contains(needle), "status lacks {needle}:\n{text}");
    }

    // kubectl reaches a simulated cluster through the printed kubeconfig.
    let svcs = kubectl_ok(&m.kubeconfig(), "eu-west", &["get", "svc", "-A"])?;
    assert!(svcs.contains("web") && svcs.contains("api"), "{svcs}");
    let ip = kubectl_ok(
        &m.kubeconfig(),
        "eu-west",
        &["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"],
    )?;
    assert!(ip.starts_with("127."), "loopback load-balancer address, got {ip:?}");
    Ok(())
}

#[test]
fn service_lifecycle_is_followed_through_the_table() -> Result<()> {
    let m = Meridian::demo()?;
    let kc = m.kubeconfig();
    let manifest = m.state_dir.path().join("cart.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: cart\n  namespace: shop\nspec:\n  type: LoadBalancer\n  selector: {app: cart}\n  ports:\n  - {name: http, port: 8080}\n",
    )?;
    let path = manifest.to_string_lossy().into_owned();
    kubectl_ok(&kc, "ap-south", &["apply", "-f", &path])?;
    // A new LoadBalancer service appears in the table.
    eventually(Duration::from_secs(5), "cart appears", || {
        Ok(shards(&m, "shop", "cart")?.filter(|s| s == &[("ap-south".to_owned(), true)]))
    })?;
    // Marking its endpoints not ready makes the shard unhealthy.
    kubectl_ok(
        &kc,
        "ap-south",
        &["-n", "shop", "annotate", "svc", "cart", "sim.meridian.io/ready=false", "--overwrite"],
    )?;
    eventually(Duration::from_secs(5), "cart unhealthy", || {
        Ok(shards(&m, "shop", "cart")?.filter(|s| s == &[("ap-south".to_owned(), false)]))
    })?;
    kubectl_ok(
        &kc,
        "ap-south",
        &["-n", "shop", "annotate", "svc", "cart", "sim.meridian.io/ready=true", "--overwrite"],
    )?;
    eventually(Duration::from_secs(5), "cart healthy again", || {
        Ok(shards(&m, "shop", "cart")?.filter(|s| s == &[("ap-south".to_owned(), true)]))
    })?;
    // Deleting it removes it.
    kubectl_ok(&kc, "ap-south", &["-n", "shop", "delete", "svc", "cart"])?;
    eventually(Duration::from_secs(5), "cart removed", || Ok(shards(&m, "shop", "cart")?.is_none().then_some(())))?;
    Ok(())
}

#[test]
fn metrics_expose_watch_events_cluster_state_and_table_size() -> Result<()> {
    let m = Meridian::demo()?;
    eventually(Duration::from_secs(10), "web in 3 clusters", || {
        Ok(shards(&m, "default", "web")?.filter(|s| s.len() == 3))
    })?;
    let metrics = m.get("/metrics")?;
    for needle in [
        "meridian_watch_events_total{cluster=\"us-east\",kind=\"Service\"}",
        "meridian_cluster_ready{cluster=\"eu-west\"} 1",
        "meridian_table_services",
        "meridian_table_shards",
    ] {
        assert!(metrics.contains(needle), "metrics lack {needle}:\n{metrics}");
    }
    let shards_line = metrics.lines().find(|l| l.starts_with("meridian_table_shards ")).unwrap_or_default();
    let n: u64 = shards_line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    assert!(n >= 5, "web has 3 shards and api 2: {shards_line}");
    Ok(())
}

#[test]
fn a_port_in_use_is_a_clear_start_up_error() -> Result<()> {
    let busy = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = busy.local_addr()?.to_string();
    let state = tempfile::tempdir()?;
    let dns = meridian_tests::free_addr().to_string();
    let out = std::process::Command::new(binary())
        .args(["demo", "--admin", &addr, "--dns", &dns, "--state-dir"])
        .arg(state.path())
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr) && err.contains("admin.listen"), "error must name the address and setting: {err}");
    Ok(())
}

/// A second demo on the same state directory stops before touching it: the first one's
/// kubeconfig still reaches its clusters, and the error says what to change.
#[test]
fn a_second_demo_on_the_same_state_directory_leaves_the_first_alone() -> Result<()> {
    let m = Meridian::demo()?;
    let before = std::fs::read_to_string(m.kubeconfig())?;
    let addrs: Vec<String> = (0..4).map(|_| meridian_tests::free_addr().to_string()).collect();
    let out = std::process::Command::new(binary())
        .args(["demo", "--admin", &addrs[0], "--dns", &addrs[1], "--proxy", &addrs[2], "--proxy-tls", &addrs[3]])
        .arg("--fresh")
        .arg("--state-dir")
        .arg(m.state_dir.path())
        .stdin(std::process::Stdio::null())
        .output()?;
    assert!(!out.status.success(), "the second demo started");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use by another Meridian") && err.contains("--state-dir"), "{err}");
    assert_eq!(std::fs::read_to_string(m.kubeconfig())?, before, "the first demo's kubeconfig was rewritten");
    let svcs = kubectl_ok(&m.kubeconfig(), "eu-west", &["get", "svc", "web", "-o", "name"])?;
    assert_eq!(svcs.trim(), "service/web", "the first demo's clusters still answer");
    Ok(())
}

#[test]
fn admin_json_lists_clusters_with_their_topology() -> Result<()> {
    let m = Meridian::demo()?;
    let clusters: Value = m.json("/api/v1/clusters")?;
    let names: Vec<_> = clusters.as_array().into_iter().flatten().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["us-east", "eu-west", "ap-south"]);
    let eu = &clusters[1];
    assert_eq!(eu["region"], "europe-west1");
    assert_eq!(eu["zone"], "europe-west1-b");
    assert_eq!(eu["state"], "Ready");
    Ok(())
}
