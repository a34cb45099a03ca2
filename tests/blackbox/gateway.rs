//! The Gateway API through the binary: a Gateway of the simulator's class `sim` and an
//! HTTPRoute applied with kubectl to a demo cluster make the route's hostname answer the
//! Gateway's address in DNS and route through the proxy to the Service the route names;
//! a cluster whose Gateway API CRDs are deleted keeps serving its Services.

use std::time::Duration;

use anyhow::Result;
use meridian_tests::{Meridian, curl, eventually, kubectl_ok};

/// A Gateway with a wildcard listener, and an HTTPRoute on it sending `shop.meridian.test`
/// to the demo's `web` Service.
const MANIFEST: &str = "apiVersion: gateway.networking.k8s.io/v1\nkind: Gateway\n\
    metadata: {name: gw, namespace: default}\n\
    spec: {gatewayClassName: sim, listeners: [{name: http, protocol: HTTP, port: 80, hostname: '*.meridian.test'}]}\n\
    ---\napiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\n\
    metadata: {name: shop, namespace: default}\n\
    spec: {parentRefs: [{name: gw}], hostnames: [shop.meridian.test], \
    rules: [{matches: [{path: {type: PathPrefix, value: /}}], backendRefs: [{name: web, port: 8080}]}]}\n";

#[test]
fn an_httproute_answers_in_dns_and_routes_through_the_proxy() -> Result<()> {
    let m = Meridian::demo()?;
    let kc = m.kubeconfig();
    let manifest = m.state_dir.path().join("gateway.yaml");
    std::fs::write(&manifest, MANIFEST)?;
    kubectl_ok(&kc, "eu-west", &["apply", "-f", &manifest.to_string_lossy()])?;
    let gw_ip = eventually(Duration::from_secs(10), "the Gateway's address", || {
        let ip = kubectl_ok(&kc, "eu-west", &["get", "gateway", "gw", "-o", "jsonpath={.status.addresses[0].value}"])?;
        Ok((!ip.is_empty()).then_some(ip))
    })?;
    for name in ["shop.meridian.test", "shop.default.demo.route.meridian.test"] {
        eventually(Duration::from_secs(10), &format!("{name} answers the Gateway's address"), || {
            let answers = m.dig(&["A", name])?.answers("A");
            Ok((answers == [gw_ip.clone()]).then_some(()))
        })?;
    }
    let names = m.json("/api/v1/ingresses")?;
    let route = names.as_array().into_iter().flatten().find(|i| i["name"] == "shop");
    assert_eq!(route.map(|r| r["kind"].clone()), Some("HTTPRoute".into()), "{names}");
    // The proxy sends the route's host to `web` in the route's cluster only.
    let url = format!("http://{}/hello", m.proxy);
    let (code, body) = eventually(Duration::from_secs(10), "the proxy routes shop.meridian.test", || {
        let r = curl(&["-H", "Host: shop.meridian.test", &url])?;
        Ok((r.0 == 200).then_some(r))
    })?;
    assert_eq!((code, body.trim()), (200, "eu-west default/web /hello"));
    Ok(())
}

#[test]
fn a_cluster_without_the_gateway_api_crds_still_serves_its_services() -> Result<()> {
    let m = Meridian::demo()?;
    let kc = m.kubeconfig();
    for plural in ["httproutes", "gateways", "gatewayclasses"] {
        kubectl_ok(&kc, "us-east", &["delete", "crd", &format!("{plural}.gateway.networking.k8s.io")])?;
    }
    eventually(Duration::from_secs(10), "the 404 noticed and logged once", || {
        Ok(m.log().contains("does not serve the Gateway API").then_some(()))
    })?;
    // A Service created after the CRDs went is served from us-east, and us-east is Ready.
    kubectl_ok(&kc, "us-east", &["create", "service", "loadbalancer", "late", "--tcp=8080:8080"])?;
    eventually(Duration::from_secs(10), "late served from us-east", || {
        let services = m.json("/api/v1/services")?;
        let late = services.as_array().into_iter().flatten().find(|s| s["name"] == "late").cloned();
        let shards = late.map(|l| l["shards"].clone()).unwrap_or_default();
        let from_us = shards.as_array().into_iter().flatten().any(|sh| sh["cluster"] == "us-east");
        Ok(from_us.then_some(()))
    })?;
    // The Federation v1 name of the demo's web Service still has us-east's address.
    let web_us = eventually(Duration::from_secs(5), "web's us-east1 name", || {
        let answers = m.dig(&["A", "web.default.demo.svc.us-east1.meridian.test"])?.answers("A");
        Ok((!answers.is_empty()).then_some(answers))
    })?;
    let us_ip =
        kubectl_ok(&kc, "us-east", &["get", "svc", "web", "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}"])?;
    assert!(web_us.contains(&us_ip), "{web_us:?} lacks {us_ip}");
    let clusters = m.json("/api/v1/clusters")?;
    let us = clusters.as_array().into_iter().flatten().find(|c| c["name"] == "us-east").cloned();
    assert_eq!(us.map(|c| c["state"].clone()), Some("Ready".into()), "{clusters}");
    assert_eq!(m.log().matches("does not serve the Gateway API").count(), 1, "logged once:\n{}", m.log());
    Ok(())
}
