//! The Gateway API as a provider's Gateway controller serves it: the CRDs are installed,
//! the `sim` GatewayClass is accepted, a Gateway of it gets an address from the
//! load-balancer pool and `Programmed`, an HTTPRoute is accepted by its parent and
//! counted on the listener; a Gateway of another class is left alone.

use anyhow::Result;
use meridian_testkit::wait::eventually;
use serde_json::Value;

use crate::support::{Env, WAIT};

const GATEWAY: &str = r#"apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: sim
  listeners:
  - {name: http, protocol: HTTP, port: 80, hostname: "*.example.com"}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: other, namespace: default}
spec:
  gatewayClassName: someone-else
  listeners:
  - {name: http, protocol: HTTP, port: 80}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop, namespace: default}
spec:
  parentRefs: [{name: web}]
  hostnames: [shop.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /cart}}]
    backendRefs: [{name: cart, port: 8080}]
"#;

/// The object as JSON, or `None` when it cannot be read.
async fn get(env: &Env, kind: &str, name: &str) -> Option<Value> {
    let out = env.kubectl(&["get", kind, name, "-o", "json"]).await.ok()?;
    serde_json::from_str(&out).ok()
}

/// The `status` of condition `ty` in a conditions list.
fn condition(conditions: &Value, ty: &str) -> Option<Value> {
    conditions.as_array()?.iter().find(|c| c["type"] == ty).map(|c| c["status"].clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_get_addresses_and_routes_are_accepted() -> Result<()> {
    let env = Env::start(&["gw"]).await?;
    let class = eventually(WAIT, "the sim GatewayClass accepted", || async {
        get(&env, "gatewayclass", "sim").await.filter(|c| condition(&c["status"]["conditions"], "Accepted").is_some())
    })
    .await?;
    assert_eq!(class["spec"]["controllerName"], "sim.meridian.io/gateway-controller");
    env.kubectl(&["apply", "-f", &env.manifest("gateway.yaml", GATEWAY)?]).await?;
    let gw = eventually(WAIT, "the Gateway programmed with its route attached", || async {
        get(&env, "gateway", "web").await.filter(|g| {
            condition(&g["status"]["conditions"], "Programmed") == Some("True".into())
                && g.pointer("/status/listeners/0/attachedRoutes") == Some(&Value::from(1))
        })
    })
    .await?;
    let addr = gw.pointer("/status/addresses/0/value").and_then(Value::as_str).unwrap_or_default().to_owned();
    assert!(addr.starts_with("127."), "{gw}");
    assert_eq!(gw.pointer("/status/listeners/0/supportedKinds/0/kind"), Some(&Value::from("HTTPRoute")));
    let route = get(&env, "httproute", "shop").await.unwrap_or_default();
    let parent = route.pointer("/status/parents/0").cloned().unwrap_or_default();
    assert_eq!(parent["parentRef"]["name"], "web", "{route}");
    assert_eq!(condition(&parent["conditions"], "Accepted"), Some("True".into()), "{route}");
    // `kubectl get` shows the real printer columns.
    let table = env.kubectl(&["get", "gateways"]).await?;
    assert!(table.contains("PROGRAMMED") && table.contains(&addr), "{table}");
    let other = get(&env, "gateway", "other").await.unwrap_or_default();
    assert_eq!(other.get("status"), None, "another controller's Gateway: {other}");
    // The route leaves: the count follows; the Gateway leaves: its address is freed.
    env.kubectl(&["delete", "httproute", "shop"]).await?;
    eventually(WAIT, "no route attached", || async {
        get(&env, "gateway", "web")
            .await
            .filter(|g| g.pointer("/status/listeners/0/attachedRoutes") == Some(&Value::from(0)))
    })
    .await?;
    env.sim.shutdown().await;
    Ok(())
}
