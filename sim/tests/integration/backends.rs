//! Load-balancer addresses answer HTTP and follow the backend annotation.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, Result};
use meridian_testkit::wait::{eventually, eventually_sync};

use crate::support::{Env, WAIT, http_get, lb_service};

/// The LB address from kubectl's jsonpath serves the cluster name; `backend=down` refuses
/// connections and `set_backend(.., true)` brings it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lb_address_serves_http_until_backend_is_marked_down() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let f = env.manifest("web.yaml", "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector: {app: web}\n  ports:\n  - port: 8080\n")?;
    env.kubectl(&["apply", "-f", &f]).await?;
    let ip = {
        let mut ip = String::new();
        for _ in 0..50 {
            ip = env.kubectl(&["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"]).await?;
            if !ip.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        ip
    };
    assert!(ip.starts_with("127."), "LB ip {ip:?}");
    let addr: SocketAddr = format!("{ip}:8080").parse()?;
    let resp = http_get(addr, "/foo").await?;
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.contains("east default/web /foo"), "{resp}");
    assert!(http_get(addr, "/healthz").await?.ends_with("ok\n"));

    env.kubectl(&["annotate", "svc", "web", "sim.meridian.io/backend=down"]).await?;
    eventually(WAIT, "backend refusing connections", || async {
        let refused = tokio::net::TcpStream::connect(addr).await;
        matches!(refused, Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused).then_some(())
    })
    .await?;

    c.set_backend("default", "web", true)?;
    assert!(http_get(addr, "/").await?.contains("east default/web /"));

    // The address is stable across updates and released on delete.
    c.apply_json(lb_service("web", "default", 8080))?;
    let again = c
        .get_json("v1", "Service", Some("default"), "web")
        .and_then(|s| s.pointer("/status/loadBalancer/ingress/0/ip").cloned())
        .context("ip")?;
    assert_eq!(again, ip.as_str());
    c.delete_json("v1", "Service", Some("default"), "web")?;
    eventually_sync(WAIT, "backend stopped", || (c.backend_count() == 0).then_some(())).await?;
    Ok(())
}

/// Ready counts, endpoint counts, hostnames and IPv6/hostname ingress annotations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_slices_follow_service_annotations() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let mut svc = lb_service("db", "default", 5432);
    svc["metadata"]["annotations"] = serde_json::json!({
        "sim.meridian.io/endpoints": "3", "sim.meridian.io/hostnames": "true",
        "sim.meridian.io/ipv6": "true", "sim.meridian.io/lb-hostname": "db.elb.example.com",
    });
    c.apply_json(svc)?;
    let s = c.get_json("v1", "Service", Some("default"), "db").context("svc")?;
    assert_eq!(
        s.pointer("/status/loadBalancer/ingress/0/hostname").and_then(|v| v.as_str()),
        Some("db.elb.example.com")
    );
    assert!(
        s.pointer("/status/loadBalancer/ingress/1/ip")
            .and_then(|v| v.as_str())
            .is_some_and(|ip| ip.starts_with("fd00:"))
    );
    let slice = c.get_json("discovery.k8s.io/v1", "EndpointSlice", Some("default"), "db-sim").context("slice")?;
    let eps = slice["endpoints"].as_array().context("endpoints")?;
    assert_eq!(eps.len(), 3);
    assert!(
        eps.iter().all(|e| e["conditions"]["ready"] == true && e["hostname"].is_string() && e["zone"] == "eu-west-1a")
    );
    assert_eq!(slice["ports"][0]["port"], 8080);
    assert_eq!(slice["metadata"]["labels"]["kubernetes.io/service-name"], "db");

    c.set_ready("default", "db", 1)?;
    let slice = c.get_json("discovery.k8s.io/v1", "EndpointSlice", Some("default"), "db-sim").context("slice")?;
    let ready: Vec<bool> =
        slice["endpoints"].as_array().context("endpoints")?.iter().map(|e| e["conditions"]["ready"] == true).collect();
    assert_eq!(ready, vec![true, false, false]);
    let ep = c.get_json("v1", "Endpoints", Some("default"), "db").context("endpoints")?;
    assert_eq!(ep["subsets"][0]["addresses"].as_array().map(Vec::len), Some(1));
    assert_eq!(ep["subsets"][0]["notReadyAddresses"].as_array().map(Vec::len), Some(2));

    // A slice someone else manages is left alone.
    let foreign = serde_json::json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "db-manual", "labels": {"kubernetes.io/service-name": "db", "endpointslice.kubernetes.io/managed-by": "someone"}},
        "addressType": "IPv4", "endpoints": [{"addresses": ["10.9.9.9"]}],
    });
    c.apply_json(foreign)?;
    c.set_ready("default", "db", 3)?;
    let manual = c.get_json("discovery.k8s.io/v1", "EndpointSlice", Some("default"), "db-manual").context("manual")?;
    assert_eq!(manual["endpoints"][0]["addresses"][0], "10.9.9.9");
    Ok(())
}

/// Two simulators on one machine (parallel tests, a demo beside `meridian sim`) use the
/// same default pools: the second must skip addresses the first serves, so each LB
/// address reaches its own cluster's backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulators_sharing_a_pool_never_share_an_address() -> Result<()> {
    use meridian_sim::{ClusterSpec, SimOptions, Simulator};
    let pool = "127.180.0.0/16".to_owned();
    let mut addrs = Vec::new();
    let mut sims = Vec::new();
    for name in ["first", "second"] {
        let sim = Simulator::new(SimOptions::default());
        let c = sim.add_cluster(ClusterSpec { lb_cidr: Some(pool.clone()), ..ClusterSpec::new(name) }).await?;
        let svc = c.apply_json(lb_service("web", "default", 8080))?;
        let ip = svc.pointer("/status/loadBalancer/ingress/0/ip").and_then(|v| v.as_str()).context("no LB ip")?;
        addrs.push((name, SocketAddr::new(ip.parse()?, 8080)));
        sims.push(sim);
    }
    assert_ne!(addrs[0].1, addrs[1].1, "both simulators got {}", addrs[0].1);
    for (name, addr) in addrs {
        let resp = http_get(addr, "/").await?;
        assert!(resp.contains(&format!("{name} default/web")), "{addr} answered {resp}");
    }
    for s in sims {
        s.shutdown().await;
    }
    Ok(())
}
