//! HTTP/1.1 proxying: routing, headers, streaming bodies, keep-alive, error statuses.

use anyhow::Result;

use crate::support::*;

/// Host routing reaches the configured service; unknown hosts get 404, a route without
/// healthy backends 503.
#[tokio::test]
async fn routes_by_host_and_answers_404_and_503() -> Result<()> {
    let c = cluster("c1", "r1", 0);
    let (backends, port) = backends(&["c1"]).await?;
    let mut world = World::new(std::slice::from_ref(&c));
    world.service("shop", "web", &c, &[backends[0].addr.ip()], port, true);
    world.service("shop", "down", &c, &[backends[0].addr.ip()], port, false);
    let cfg = config(
        std::slice::from_ref(&c),
        "[[lb.routes]]\nhost = \"www.meridian.test\"\nservice = \"shop/web\"\n\
         [[lb.routes]]\nhost = \"down.meridian.test\"\nservice = \"shop/down\"\n\
         [[lb.routes]]\nhost = \"www.meridian.test\"\npath = \"/api\"\nservice = \"shop/missing\"\n",
    );
    let p = start(&cfg, &world.table).await?;

    let ok = get(p.http, "www.meridian.test", "/hello?x=1").await?;
    assert_eq!((ok.status, ok.body.as_str()), (200, "c1 /hello\n"), "{}", ok.stderr);
    let upper = get(p.http, "WWW.Meridian.test:8480", "/").await?;
    assert_eq!(upper.status, 200, "host matching ignores case and port");

    let unknown = get(p.http, "nope.test", "/").await?;
    assert_eq!(unknown.status, 404);
    assert!(unknown.body.len() < 100 && !unknown.body.is_empty(), "short plain-text body: {:?}", unknown.body);

    let down = get(p.http, "down.meridian.test", "/").await?;
    assert_eq!(down.status, 503, "{}", down.body);
    let missing = get(p.http, "www.meridian.test", "/api/v1").await?;
    assert_eq!(missing.status, 503, "longest path prefix wins, and its service has no backend");
    let not_api = get(p.http, "www.meridian.test", "/apix").await?;
    assert_eq!(not_api.status, 200, "prefixes match whole path segments");
    assert!(p.proxy.ready());
    p.proxy.shutdown().await;
    Ok(())
}

/// Routes come from Ingresses: host + path → the service's shards in the clusters where
/// the Ingress exists (not in the others).
#[tokio::test]
async fn ingress_rules_route_to_their_clusters_only() -> Result<()> {
    let (a, b) = (cluster("a", "r1", 0), cluster("b", "r1", 1));
    let (backends, port) = backends(&["a", "b"]).await?;
    let mut world = World::new(&[a.clone(), b.clone()]);
    world.service("shop", "web", &a, &[backends[0].addr.ip()], port, true);
    world.service("shop", "web", &b, &[backends[1].addr.ip()], port, true);
    publish_ingress(&mut world, &b, "shop.example.com", port);
    let cfg = config(&[a, b], "");
    let p = start(&cfg, &world.table).await?;
    let bodies = get_many(p.http, "shop.example.com", "/x", 20).await?;
    assert_eq!(bodies.len(), 20);
    assert!(bodies.iter().all(|b| b == "b /x|200"), "only cluster b has the Ingress: {bodies:?}");
    p.proxy.shutdown().await;
    Ok(())
}

/// X-Forwarded-For/-Proto, Forwarded and Via are added; hop-by-hop headers are stripped.
#[tokio::test]
async fn rewrites_forwarding_and_hop_by_hop_headers() -> Result<()> {
    let (p, _world, _backends) = proxy_to_backend("h.test", "").await?;
    let out = curl(&[
        "-H",
        "Host: h.test",
        "-H",
        "X-Forwarded-For: 10.0.0.1",
        "-H",
        "Connection: keep-alive, X-Secret",
        "-H",
        "X-Secret: 1",
        "-H",
        "Keep-Alive: timeout=5",
        "-D",
        "-",
        &format!("http://{}/headers", p.http),
    ])
    .await?;
    assert_eq!(out.status, 200);
    let body = out.body.to_lowercase();
    assert!(body.contains("x-forwarded-for: 10.0.0.1, 127.0.0.1"), "{body}");
    assert!(body.contains("x-forwarded-proto: http"), "{body}");
    assert!(body.contains("forwarded: for=127.0.0.1;proto=http"), "{body}");
    assert!(body.contains("via: 1.1 meridian"), "{body}");
    assert!(!body.contains("x-secret"), "headers named by Connection are dropped: {body}");
    assert!(!body.contains("keep-alive: timeout"), "{body}");
    assert!(body.contains("via: 1.1 meridian\r\n"), "the response carries Via too: {body}");
    p.proxy.shutdown().await;
    Ok(())
}

/// A large request body streams to the backend and back unchanged (chunked, 8 MiB).
#[tokio::test]
async fn streams_large_bodies_both_ways() -> Result<()> {
    let (p, _world, _backends) = proxy_to_backend("h.test", "").await?;
    let data: Vec<u8> = (0..8 * 1024 * 1024).map(|i: u32| (i % 251) as u8).collect();
    let (out, echoed) = echo_through(p.http, "h.test", &["-H", "Transfer-Encoding: chunked"], &data).await?;
    assert_eq!(out.status, 200, "{}", out.stderr);
    assert!(echoed == data, "echoed body differs");
    p.proxy.shutdown().await;
    Ok(())
}

/// The same over h2 (TLS), with 40 GETs multiplexed beside it on the same connection:
/// the request body's flow-control window and the response's are honoured while every
/// stream runs inside the connection's task, and the small streams are not stuck
/// behind the large one. (curl 7.88 cannot multiplex h2c with prior knowledge.)
#[tokio::test]
async fn streams_large_bodies_over_h2_beside_other_streams() -> Result<()> {
    require("curl", "curl");
    let (p, _world, _backends) = proxy_to_backend("h.test", "").await?;
    let dir = tempfile::tempdir()?;
    let data: Vec<u8> = (0..8 * 1024 * 1024).map(|i: u32| (i % 241) as u8).collect();
    let (body, echoed) = (dir.path().join("body"), dir.path().join("echoed"));
    std::fs::write(&body, &data)?;
    let (at_body, echoed_path) = (format!("@{}", body.display()), echoed.display().to_string());
    let (echo_url, get_url) = (format!("https://{}/echo", p.https), format!("https://{}/g", p.https));
    let each = ["-k", "--http2", "-H", "Host: h.test", "-w", "%{http_code} %{http_version} %{num_connects}\n"];
    let mut args = vec!["-sS", "--max-time", "20", "--parallel", "--parallel-max", "50"];
    args.extend(each);
    args.extend(["--data-binary", &at_body, "-o", &echoed_path, &echo_url]);
    for _ in 0..40 {
        args.push("--next");
        args.extend(each);
        args.extend(["-o", "/dev/null", &get_url]);
    }
    let out = tokio::process::Command::new("curl").args(&args).output().await?;
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 41, "{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(lines.iter().all(|l| l.starts_with("200 2 ")), "{report}{}", String::from_utf8_lossy(&out.stderr));
    let connects: u32 = lines.iter().filter_map(|l| l.rsplit(' ').next()?.parse::<u32>().ok()).sum();
    assert_eq!(connects, 1, "one multiplexed connection: {report}");
    let back = std::fs::read(&echoed)?;
    assert!(back == data, "echoed body differs ({} bytes back)", back.len());
    p.proxy.shutdown().await;
    Ok(())
}

/// h2load over HTTP/1.1 keep-alive and h2c: every request succeeds, and metrics count
/// them per route and backend.
#[tokio::test]
async fn h2load_http1_and_h2c_all_succeed() -> Result<()> {
    let c = cluster("c1", "r1", 0);
    let (backends, port) = backends(&["c1", "c1"]).await?;
    let mut world = World::new(std::slice::from_ref(&c));
    world.service("shop", "web", &c, &[backends[0].addr.ip(), backends[1].addr.ip()], port, true);
    let cfg = config(&[c], "[[lb.routes]]\nhost = \"127.0.0.1\"\nservice = \"shop/web\"\n");
    let p = start(&cfg, &world.table).await?;
    let url = format!("http://{}/", p.http);
    let h1 = h2load(&["--h1", "-n", "2000", "-c", "8", &url]).await?;
    assert_eq!((h1.total, h1.succeeded, h1.status_2xx), (2000, 2000, 2000), "{}", h1.output);
    let h2 = h2load(&["-n", "2000", "-c", "4", "-m", "8", &url]).await?;
    assert_eq!(h2.protocol, "h2c", "{}", h2.output);
    assert_eq!((h2.succeeded, h2.status_2xx), (2000, 2000), "{}", h2.output);
    let m = p.metrics();
    assert!(m.contains("lb_requests_total{route=\"127.0.0.1/\",class=\"2xx\"} 4000"), "{m}");
    assert!(m.contains(&format!("lb_backend_requests_total{{backend=\"{}\",class=\"2xx\"}}", backends[0].addr)), "{m}");
    assert!(m.contains("lb_request_duration_seconds_bucket"), "{m}");
    let status = p.proxy.status();
    let route = &status["routes"][0];
    assert_eq!(route["host"], "127.0.0.1");
    assert_eq!(route["levels"][0]["backends"].as_array().map(Vec::len), Some(2), "{status}");
    assert_eq!(route["levels"][0]["backends"][0]["state"], "up", "{status}");
    p.proxy.shutdown().await;
    Ok(())
}

/// A backend that answers garbage gives 502 to that client; others are unaffected.
#[tokio::test]
async fn garbage_from_backend_is_502() -> Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let c = cluster("c1", "r1", 0);
    let ip = loopback();
    let listener = tokio::net::TcpListener::bind((ip, 0)).await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(b"NOT HTTP AT ALL\r\n\r\n").await;
            });
        }
    });
    let mut world = World::new(std::slice::from_ref(&c));
    world.service("shop", "bad", &c, &[ip], port, true);
    let cfg = config(&[c], "[[lb.routes]]\nhost = \"bad.test\"\nservice = \"shop/bad\"\n");
    let p = start(&cfg, &world.table).await?;
    let out = curl(&["-H", "Host: bad.test", "-X", "POST", "-d", "x", &format!("http://{}/", p.http)]).await?;
    assert_eq!(out.status, 502, "{}", out.body);
    assert_eq!(get(p.http, "nope.test", "/").await?.status, 404, "the proxy still serves");
    p.proxy.shutdown().await;
    Ok(())
}

/// Shutdown drains: a request in flight completes while the listener closes.
#[tokio::test]
async fn shutdown_drains_in_flight_requests() -> Result<()> {
    let (p, _world, _backends) = proxy_to_backend("h.test", "").await?;
    let addr = p.http;
    let slow = tokio::spawn(async move { get(addr, "h.test", "/slow").await });
    // Shut down only once the request is in flight at the backend.
    for _ in 0..200 {
        if p.proxy.status()["routes"][0]["active_requests"].as_u64() == Some(1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(p.proxy.status()["routes"][0]["active_requests"].as_u64(), Some(1));
    p.proxy.shutdown().await;
    let out = slow.await??;
    assert_eq!((out.status, out.body.as_str()), (200, "c1 /slow\n"));
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "listener closed after shutdown");
    Ok(())
}
