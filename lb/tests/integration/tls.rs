//! TLS: certificates chosen by SNI, ALPN h2 and http/1.1, reload on new files.

use std::time::Duration;

use anyhow::Result;

use crate::support::*;

async fn https(port: u16, host: &str, ca: &std::path::Path, extra: &[&str]) -> Result<CurlOut> {
    let resolve = format!("{host}:{port}:127.0.0.1");
    let url = format!("https://{host}:{port}/tls");
    let mut args = vec!["--resolve", &resolve, "--cacert", ca.to_str().unwrap_or_default()];
    args.extend_from_slice(extra);
    args.push(&url);
    curl(&args).await
}

/// curl verifies the certificate chosen by SNI over h2 and http/1.1; h2load gets h2 via
/// ALPN; after the files change, `reload` serves the new certificate.
#[tokio::test]
async fn sni_alpn_h2_and_certificate_reload() -> Result<()> {
    let c = cluster("c1", "r1", 0);
    let (backends, port) = backends(&["c1"]).await?;
    let mut world = World::new(std::slice::from_ref(&c));
    world.service("shop", "web", &c, &[backends[0].addr.ip()], port, true);
    let dir = tempfile::tempdir()?;
    let (a_crt, a_key) = write_cert(dir.path(), "a", &["a.test"])?;
    let (b_crt, b_key) = write_cert(dir.path(), "b", &["b.test"])?;
    let lb = format!(
        "[[lb.certificates]]\ncert = \"{}\"\nkey = \"{}\"\nnames = [\"a.test\"]\n\
         [[lb.certificates]]\ncert = \"{}\"\nkey = \"{}\"\nnames = [\"b.test\"]\n\
         [[lb.routes]]\nhost = \"a.test\"\nservice = \"shop/web\"\n\
         [[lb.routes]]\nhost = \"b.test\"\nservice = \"shop/web\"\n\
         [[lb.routes]]\nhost = \"127.0.0.1\"\nservice = \"shop/web\"\n",
        a_crt.display(),
        a_key.display(),
        b_crt.display(),
        b_key.display()
    );
    let cfg = config(std::slice::from_ref(&c), &lb);
    assert_eq!(
        meridian_lb::Proxy::watched_files(&cfg),
        vec![a_crt.clone(), a_key.clone(), b_crt.clone(), b_key.clone()]
    );
    let p = start(&cfg, &world.table).await?;
    let tls_port = p.https.port();

    let a = https(tls_port, "a.test", &a_crt, &["--http2"]).await?;
    assert_eq!(a.status, 200, "{} {}", a.stderr, a.body);
    assert_eq!((a.body.as_str(), a.version.as_str()), ("c1 /tls\n", "2"), "h2 over TLS");
    let b = https(tls_port, "b.test", &b_crt, &["--http1.1"]).await?;
    assert_eq!(b.status, 200, "SNI b.test gets b's certificate: {}", b.stderr);
    assert_eq!((b.body.as_str(), b.version.as_str()), ("c1 /tls\n", "1.1"));
    let wrong = https(tls_port, "b.test", &a_crt, &[]).await?;
    assert_eq!(wrong.status, 0, "a's CA must not verify b.test's certificate");

    let h2 = h2load(&["-n", "500", "-c", "2", "-m", "4", &format!("https://127.0.0.1:{tls_port}/")]).await?;
    assert_eq!(h2.protocol, "h2", "{}", h2.output);
    assert_eq!(h2.succeeded, 500, "{}", h2.output);

    // New certificate for a.test in the same files, then reload.
    let old_ca = dir.path().join("old-a.crt");
    std::fs::copy(&a_crt, &old_ca)?;
    write_cert(dir.path(), "a", &["a.test"])?;
    p.proxy.reload(&cfg)?;
    let fresh = https(tls_port, "a.test", &a_crt, &[]).await?;
    assert_eq!(fresh.status, 200, "new certificate served after reload: {}", fresh.stderr);
    let stale = https(tls_port, "a.test", &old_ca, &[]).await?;
    assert_eq!(stale.status, 0, "old certificate no longer served");
    p.proxy.shutdown().await;
    Ok(())
}

/// With no certificate configured, HTTPS still works with a self-signed one.
#[tokio::test]
async fn self_signed_when_no_certificate_configured() -> Result<()> {
    let c = cluster("c1", "r1", 0);
    let (backends, port) = backends(&["c1"]).await?;
    let mut world = World::new(std::slice::from_ref(&c));
    world.service("shop", "web", &c, &[backends[0].addr.ip()], port, true);
    let cfg = config(std::slice::from_ref(&c), "[[lb.routes]]\nhost = \"www.meridian.test\"\nservice = \"shop/web\"\n");
    let p = start(&cfg, &world.table).await?;
    let out = curl(&["-k", "-H", "Host: www.meridian.test", &format!("https://127.0.0.1:{}/", p.https.port())]).await?;
    assert_eq!((out.status, out.body.as_str()), (200, "c1 /\n"), "{}", out.stderr);
    assert!(names_of_certificate(p.https).await?.contains("DNS:www.meridian.test"));
    // A host that only a cluster's Ingress names joins the certificate's names.
    publish_ingress(&mut world, &c, "shop.example.com", port);
    let mut names = String::new();
    for _ in 0..50 {
        names = names_of_certificate(p.https).await?;
        if names.contains("DNS:shop.example.com") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(names.contains("DNS:shop.example.com") && names.contains("DNS:localhost"), "{names}");
    p.proxy.shutdown().await;
    Ok(())
}

/// The subject alternative names of the certificate the listener at `addr` serves.
async fn names_of_certificate(addr: std::net::SocketAddr) -> Result<String> {
    require("openssl", "openssl");
    let script = format!(
        "openssl s_client -connect {addr} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -ext subjectAltName"
    );
    let out = tokio::process::Command::new("sh").arg("-c").arg(script).output().await?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `check_certificates` (what `meridian check` runs) loads each pair as a start would: a
/// key that is not its certificate's, or a missing file, is an error naming the file.
#[tokio::test]
async fn mismatched_or_missing_certificate_files_are_named() -> Result<()> {
    let c = cluster("c1", "r1", 0);
    let dir = tempfile::tempdir()?;
    let (a_crt, a_key) = write_cert(dir.path(), "a", &["a.test"])?;
    let (_, b_key) = write_cert(dir.path(), "b", &["b.test"])?;
    let with = |crt: &std::path::Path, key: &std::path::Path| {
        let lb = format!("[[lb.certificates]]\ncert = \"{}\"\nkey = \"{}\"\n", crt.display(), key.display());
        config(std::slice::from_ref(&c), &lb)
    };
    meridian_lb::Proxy::check_certificates(&with(&a_crt, &a_key))?;
    let mismatch = meridian_lb::Proxy::check_certificates(&with(&a_crt, &b_key)).map_err(|e| e.to_string());
    let msg = mismatch.err().unwrap_or_default();
    assert!(msg.contains(&b_key.display().to_string()) && msg.contains("not the key of"), "{msg}");
    let gone = dir.path().join("gone.crt");
    let missing = meridian_lb::Proxy::check_certificates(&with(&gone, &a_key)).map_err(|e| e.to_string());
    let msg = missing.err().unwrap_or_default();
    assert!(msg.contains(&gone.display().to_string()), "{msg}");
    Ok(())
}
