//! What the API server does to a body before storing it: Secret `stringData`, base64
//! validation, and the allocation of `healthCheckNodePort`.

use anyhow::{Context as _, Result};
use serde_json::{Value, json};

use crate::support::Env;

/// v1 Secret conversion: `stringData` is merged into `data` (base64) on create, update and
/// patch and never stored; `data` that is not base64 fails decoding with 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_string_data_is_folded_into_data_and_bad_base64_is_refused() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let f = env.manifest(
        "secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds}\ndata: {user: YWRtaW4=}\nstringData: {password: s3cret, user: root}\n",
    )?;
    env.kubectl(&["apply", "-f", &f]).await?;
    let table = env.kubectl(&["get", "secret", "creds"]).await?;
    let row = table.lines().find(|l| l.starts_with("creds")).context("no row")?;
    assert_eq!(row.split_whitespace().nth(2), Some("2"), "{table}");
    let s = c.get_json("v1", "Secret", Some("default"), "creds").context("secret")?;
    assert_eq!(s["data"], json!({"password": "czNjcmV0", "user": "cm9vdA=="}));
    assert!(s.get("stringData").is_none());

    env.kubectl(&["patch", "secret", "creds", "--type=merge", "-p", r#"{"stringData":{"token":"abc"}}"#]).await?;
    let s = c.get_json("v1", "Secret", Some("default"), "creds").context("secret")?;
    assert_eq!(s["data"]["token"], "YWJj");
    assert!(s.get("stringData").is_none());

    let bad =
        env.manifest("bad.yaml", "apiVersion: v1\nkind: Secret\nmetadata: {name: bad}\ndata: {key: 'not base64!'}\n")?;
    let err = env.kubectl_err(&["create", "-f", &bad]).await?;
    assert!(err.contains("BadRequest") && err.contains("illegal base64 data at input byte 3"), "{err}");
    assert!(c.get_json("v1", "Secret", Some("default"), "bad").is_none());
    Ok(())
}

fn hc_port(svc: &Value) -> Option<u64> {
    svc.pointer("/spec/healthCheckNodePort").and_then(Value::as_u64)
}

/// `type: LoadBalancer` with `externalTrafficPolicy: Local` gets a `healthCheckNodePort`
/// from the NodePort range, unique in the cluster, kept across updates and released when
/// no longer needed; setting one otherwise is 422 (ValidateService).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_load_balancers_get_a_unique_health_check_node_port() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let c = env.cluster("east")?;
    let svc = |name: &str, policy: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  type: LoadBalancer\n  externalTrafficPolicy: {policy}\n  selector: {{app: {name}}}\n  ports: [{{port: 80}}]\n"
        )
    };
    for name in ["a", "b"] {
        env.kubectl(&["apply", "-f", &env.manifest(&format!("{name}.yaml"), &svc(name, "Local"))?]).await?;
    }
    let get = |name: &str| c.get_json("v1", "Service", Some("default"), name).context("service");
    let (a, b) = (get("a")?, get("b")?);
    let (pa, pb) = (hc_port(&a).context("a has none")?, hc_port(&b).context("b has none")?);
    assert!((30000..=32767).contains(&pa) && (30000..=32767).contains(&pb), "{pa} {pb}");
    let node_ports: Vec<u64> =
        [&a, &b].iter().filter_map(|s| s.pointer("/spec/ports/0/nodePort").and_then(Value::as_u64)).collect();
    assert!(pa != pb && !node_ports.contains(&pa) && !node_ports.contains(&pb), "{pa} {pb} {node_ports:?}");

    env.kubectl(&["label", "svc", "a", "x=y"]).await?;
    assert_eq!(hc_port(&get("a")?), Some(pa));
    env.kubectl(&["patch", "svc", "a", "-p", r#"{"spec":{"externalTrafficPolicy":"Cluster"}}"#]).await?;
    assert_eq!(hc_port(&get("a")?), None);

    let f = env.manifest(
        "c.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: c}\nspec:\n  healthCheckNodePort: 31000\n  ports: [{port: 80}]\n",
    )?;
    let err = env.kubectl_err(&["apply", "-f", &f]).await?;
    assert!(
        err.contains("may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'"),
        "{err}"
    );
    Ok(())
}
