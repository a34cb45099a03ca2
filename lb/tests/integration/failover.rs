//! Locality and failover: the local region first, Envoy spill-over as it loses health,
//! and zero failed idempotent requests while a whole cluster dies under load.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Result;
use meridian_testkit::addr::shared_port;

use crate::support::*;

/// How many of `bodies` each backend (first word) answered.
fn tally(bodies: &[String]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for b in bodies {
        let who = b.split(' ').next().unwrap_or_default().to_owned();
        *m.entry(who).or_default() += 1;
    }
    m
}

/// Requests stay in the proxy's region while it is healthy, even though another region
/// comes first in the config; they spill in proportion (×1.4 overprovisioning) as local
/// backends turn unhealthy, and all go elsewhere when none is left.
#[tokio::test]
async fn local_region_first_then_spill_over() -> Result<()> {
    let far = cluster("far", "r-far", 0);
    let near: Vec<_> = (1..=5).map(|i| cluster(&format!("near{i}"), "r-near", i)).collect();
    let mut all = vec![far.clone()];
    all.extend(near.iter().cloned());
    let names: Vec<&str> = all.iter().map(|c| &*c.name).collect();
    let (backends, port) = backends(&names).await?;
    let mut world = World::new(&all);
    for (c, b) in all.iter().zip(&backends) {
        world.service("shop", "web", c, &[b.addr.ip()], port, true);
    }
    let cfg = config(&all, "region = \"r-near\"\n[[lb.routes]]\nhost = \"h.test\"\nservice = \"shop/web\"\n");
    let p = start(&cfg, &world.table).await?;
    let far_share = |bodies: &[String]| tally(bodies).get("far").copied().unwrap_or(0);

    let bodies = get_many(p.http, "h.test", "/", 200).await?;
    assert_eq!(bodies.len(), 200);
    assert_eq!(far_share(&bodies), 0, "all traffic stays local: {:?}", tally(&bodies));
    assert!(tally(&bodies).len() >= 4, "P2C spreads over the local backends: {:?}", tally(&bodies));

    // 3 of 5 local healthy: 60% × 1.4 = 84% local, 16% spills.
    for c in &near[..2] {
        world.service(
            "shop",
            "web",
            c,
            &[backends[all.iter().position(|x| x == c).unwrap_or(0)].addr.ip()],
            port,
            false,
        );
    }
    let wait = |p: &Running| {
        let v = p.proxy.status();
        v["routes"][0]["levels"][0]["load_percent"].as_f64()
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(wait(&p).map(f64::round), Some(84.0), "{}", p.proxy.status());
    let bodies = get_many(p.http, "h.test", "/", 500).await?;
    let spilled = far_share(&bodies);
    assert!((40..=130).contains(&spilled), "expected ~16% of 500 to spill, got {spilled}: {:?}", tally(&bodies));
    assert!(!tally(&bodies).contains_key("near1"), "unhealthy backends get nothing");

    // No local backend healthy: everything goes to the next level.
    for (c, b) in all.iter().zip(&backends).skip(1) {
        world.service("shop", "web", c, &[b.addr.ip()], port, false);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let bodies = get_many(p.http, "h.test", "/", 50).await?;
    assert_eq!(far_share(&bodies), 50, "{:?}", tally(&bodies));
    assert!(p.proxy.ready());

    // Nothing healthy anywhere: 503 and not ready (anycast withdraws).
    world.service("shop", "web", &far, &[backends[0].addr.ip()], port, false);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(p.http, "h.test", "/").await?.status, 503);
    assert!(!p.proxy.ready());
    p.proxy.shutdown().await;
    Ok(())
}

/// Under steady load from h2load, killing the local cluster's nginx backends fails no
/// request (retries go to the other cluster, the dead backend is ejected), and traffic
/// returns to the local cluster once nginx is back.
#[tokio::test]
async fn killing_a_cluster_under_load_fails_no_idempotent_request() -> Result<()> {
    let east = cluster("east", "r-east", 1);
    let west = cluster("west", "r-west", 0);
    let port = shared_port();
    let mut east_nginx = Nginx::start("east", SocketAddr::new(loopback(), port)).await?;
    let west_nginx = Nginx::start("west", SocketAddr::new(loopback(), port)).await?;
    let mut world = World::new(&[east.clone(), west.clone()]);
    world.service("shop", "web", &east, &[east_nginx.addr.ip()], port, true);
    world.service("shop", "web", &west, &[west_nginx.addr.ip()], port, true);
    let cfg = config(
        &[east.clone(), west.clone()],
        "region = \"r-east\"\n[[lb.routes]]\nhost = \"127.0.0.1\"\nservice = \"shop/web\"\n\
         [lb.outlier]\nbase_ejection_time = \"1s\"\n",
    );
    let p = start(&cfg, &world.table).await?;
    let before = get_many(p.http, "127.0.0.1", "/", 20).await?;
    assert!(before.iter().all(|b| b == "east /|200"), "{before:?}");

    let url = format!("http://{}/", p.http);
    let load = tokio::spawn(async move { h2load(&["--h1", "-D", "6", "-c", "3", &url]).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    east_nginx.kill().await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    east_nginx.restart().await?;
    let r = load.await??;
    assert!(r.total > 300, "too little load to prove anything: {}", r.output);
    assert_eq!((r.failed, r.errored, r.status_5xx), (0, 0, 0), "{}", r.output);
    assert_eq!(r.succeeded, r.total, "{}", r.output);

    let m = p.metrics();
    assert!(m.contains(&format!("lb_ejections_total{{backend=\"{}\"}}", east_nginx.addr)), "{m}");
    assert!(!m.contains("lb_retries_total{route=\"127.0.0.1/\"} 0"), "retries happened: {m}");

    // Traffic comes back to east once its ejection ends.
    let mut back = false;
    for _ in 0..40 {
        let bodies = get_many(p.http, "127.0.0.1", "/", 10).await?;
        if bodies.iter().all(|b| b == "east /|200") {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(back, "traffic did not return to east: {}", p.proxy.status());
    p.proxy.shutdown().await;
    Ok(())
}
