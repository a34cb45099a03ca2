//! The proxy through the binary: `meridian demo` routes `www.meridian.test` to the `web`
//! backends of the simulated clusters, over HTTP/1.1, HTTP/2 and TLS.

use std::process::Command;
use std::time::Duration;

use anyhow::Result;
use meridian_tests::{Meridian, curl, eventually, kubectl_ok, require};

const HOST: &str = "Host: www.meridian.test";

#[test]
fn proxy_routes_by_host_over_http1_http2_and_tls() -> Result<()> {
    let m = Meridian::demo()?;
    let plain = format!("http://{}/hello", m.proxy);
    // The demo instance's region is europe-west1: eu-west serves while it is healthy.
    let (code, body) = eventually(Duration::from_secs(10), "proxy routes", || {
        let r = curl(&["-H", HOST, &plain])?;
        Ok((r.0 == 200).then_some(r))
    })?;
    assert_eq!(code, 200);
    assert_eq!(body.trim(), "eu-west default/web /hello");
    // HTTP/2 without TLS (prior knowledge) and over TLS (ALPN), self-signed certificate.
    let (code, body) = curl(&["--http2-prior-knowledge", "-H", HOST, &plain])?;
    assert_eq!((code, body.trim()), (200, "eu-west default/web /hello"));
    let tls = format!("https://{}/secure", m.proxy_tls);
    let out = Command::new("curl")
        .args(["-sSk", "--http2", "-o", "/dev/null", "-w", "%{http_code} %{http_version}", "-H", HOST, &tls])
        .output()?;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 2", "{}", String::from_utf8_lossy(&out.stderr));
    // Unknown host: 404 with a short body.
    let (code, _) = curl(&["-H", "Host: nobody.example", &plain])?;
    assert_eq!(code, 404);
    Ok(())
}

#[test]
fn h2load_through_the_proxy_sees_no_failures() -> Result<()> {
    require("h2load", "nghttp2-client");
    let m = Meridian::demo()?;
    let url = format!("http://{}/", m.proxy);
    eventually(Duration::from_secs(10), "proxy routes", || Ok((curl(&["-H", HOST, &url])?.0 == 200).then_some(())))?;
    for proto in [&[][..], &["--h1"][..]] {
        // `:authority` becomes the Host header over HTTP/1.1 too.
        let out = Command::new("h2load")
            .args(["-n", "2000", "-c", "8", "-H", ":authority: www.meridian.test"])
            .args(proto)
            .arg(&url)
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("2000 succeeded, 0 failed, 0 errored"), "{proto:?}: {text}");
        assert!(text.contains("status codes: 2000 2xx"), "{proto:?}: {text}");
    }
    Ok(())
}

/// When the local region's shard fails, traffic spills to the next region; readiness for
/// the anycast VIP follows whether any backend can take traffic.
#[test]
fn local_region_failure_spills_over_and_readyz_follows_backends() -> Result<()> {
    let m = Meridian::demo()?;
    let url = format!("http://{}/", m.proxy);
    eventually(Duration::from_secs(10), "proxy routes", || Ok((curl(&["-H", HOST, &url])?.0 == 200).then_some(())))?;
    let kc = m.kubeconfig();
    kubectl_ok(&kc, "eu-west", &["annotate", "svc", "web", "sim.meridian.io/ready=false", "--overwrite"])?;
    let body = eventually(Duration::from_secs(5), "spill to another region", || {
        let (code, body) = curl(&["-H", HOST, &url])?;
        Ok((code == 200 && !body.starts_with("eu-west")).then_some(body))
    })?;
    assert!(body.starts_with("us-east") || body.starts_with("ap-south"), "{body}");
    assert!(m.get("/readyz")?.starts_with("ready"));
    for ctx in ["us-east", "ap-south"] {
        kubectl_ok(&kc, ctx, &["annotate", "svc", "web", "sim.meridian.io/ready=false", "--overwrite"])?;
    }
    eventually(Duration::from_secs(5), "readyz withdraws the VIP", || Ok(m.get("/readyz").is_err().then_some(())))?;
    let (code, _) = curl(&["-H", HOST, &url])?;
    assert_eq!(code, 503);
    kubectl_ok(&kc, "eu-west", &["annotate", "svc", "web", "sim.meridian.io/ready=true", "--overwrite"])?;
    eventually(Duration::from_secs(5), "eu-west back", || {
        let (code, body) = curl(&["-H", HOST, &url])?;
        Ok((code == 200 && body.starts_with("eu-west")).then_some(()))
    })?;
    assert!(m.get("/readyz")?.starts_with("ready"));
    Ok(())
}

/// Two clusters whose `web` Services point (externalIPs) at real nginx processes; the
/// proxy prefers its own region. Under steady h2load traffic the local nginx is killed:
/// no request fails, traffic moves to the other cluster, and returns after a restart.
#[test]
fn killing_the_local_clusters_nginx_under_load_fails_no_request() -> Result<()> {
    require("h2load", "nghttp2-client");
    let (near_addr, far_addr) = (meridian_tests::free_addr(), meridian_tests::free_addr());
    let mut near = meridian_tests::Nginx::start("near", near_addr)?;
    let _far = meridian_tests::Nginx::start("far", far_addr)?;
    let dir = tempfile::tempdir()?;
    let (admin, dns, proxy) = (meridian_tests::free_addr(), meridian_tests::free_addr(), meridian_tests::free_addr());
    let head = meridian_tests::config_head("px", admin, dns);
    let file = dir.path().join("meridian.toml");
    std::fs::write(
        &file,
        format!(
            "{head}\
             [health]\nkind = \"off\"\n\
             [lb]\nenabled = true\nregion = \"near-r\"\nlisten = [\"{proxy}\"]\nlisten_tls = []\n\
             [lb.outlier]\nbase_ejection_time = \"2s\"\n[[lb.routes]]\nhost = \"app.px.test\"\nservice = \"default/web\"\n\
             [[clusters]]\nname = \"near\"\nsimulated = true\nregion = \"near-r\"\n\
             [[clusters]]\nname = \"far\"\nsimulated = true\nregion = \"far-r\"\n"
        ),
    )?;
    let m = Meridian::serve(&file)?.with_ports_live(admin, dns)?;
    // No backend yet: the VIP must not be announced.
    assert!(m.get("/readyz").is_err(), "ready without any backend");
    for (ctx, addr) in [("near", near_addr), ("far", far_addr)] {
        let svc = dir.path().join(format!("{ctx}.yaml"));
        std::fs::write(
            &svc,
            format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  selector: {{app: web}}\n  externalIPs: [\"{}\"]\n  ports:\n  - {{name: http, port: {}}}\n",
                addr.ip(),
                addr.port()
            ),
        )?;
        kubectl_ok(&m.kubeconfig(), ctx, &["apply", "-f", &svc.to_string_lossy()])?;
    }
    let url = format!("http://{proxy}/");
    let body = eventually(Duration::from_secs(10), "route to the local nginx", || {
        let (code, body) = curl(&["-H", "Host: app.px.test", &url])?;
        Ok((code == 200).then_some(body))
    })?;
    assert_eq!(body.trim(), "near /", "local region first");

    // Steady load for 4 s; the local backend dies after 1 s and comes back after 2.5 s.
    let load = std::process::Command::new("h2load")
        .args(["--h1", "-D", "4", "-c", "4", "-H", ":authority: app.px.test", &url])
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(1));
    near.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let (code, body) = curl(&["-H", "Host: app.px.test", &url])?;
    assert_eq!((code, body.trim()), (200, "far /"), "traffic moved to the other cluster");
    near.restart()?;
    let out = load.wait_with_output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("requests:")).unwrap_or_default().to_owned();
    let failed = !line.contains(" 0 failed, 0 errored") || !text.contains("0 4xx, 0 5xx");
    assert!(!failed, "{text}\nmeridian's log:\n{}", m.log());
    // Traffic returns to the local cluster once its backend is back.
    eventually(Duration::from_secs(10), "back to the local nginx", || {
        let (code, body) = curl(&["-H", "Host: app.px.test", &url])?;
        Ok((code == 200 && body.trim() == "near /").then_some(()))
    })?;
    Ok(())
}
