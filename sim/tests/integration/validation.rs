//! Update validation: the uid, immutable ConfigMaps and Secrets, workload selectors.

use anyhow::Result;
use serde_json::Value;

use crate::support::Env;

/// A PUT whose body names another uid fails the registry's uid precondition (409
/// Conflict, "Precondition failed: UID in precondition"); a patch that changes the uid
/// fails ValidateObjectMetaUpdate (422, field is immutable). Neither is applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_uid_is_refused_by_put_and_by_patch() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    env.kubectl(&["create", "configmap", "settings", "--from-literal=a=1"]).await?;
    let mut cm: Value = serde_json::from_str(&env.kubectl(&["get", "cm", "settings", "-o", "json"]).await?)?;
    let uid = cm["metadata"]["uid"].as_str().unwrap_or_default().to_string();
    cm["metadata"]["uid"] = "0b9c1f6e-0000-4000-8000-000000000000".into();
    cm["data"]["a"] = "2".into();
    let f = env.manifest("cm.json", &cm.to_string())?;
    let err = env.kubectl_err(&["replace", "-f", &f]).await?;
    assert!(err.contains("(Conflict)") && err.contains("Precondition failed: UID in precondition"), "{err}");

    let err = env
        .kubectl_err(&[
            "patch",
            "cm",
            "settings",
            "--type=merge",
            "-p",
            r#"{"metadata":{"uid":"other"},"data":{"a":"3"}}"#,
        ])
        .await?;
    assert!(
        err.contains(
            r#"The ConfigMap "settings" is invalid: metadata.uid: Invalid value: "other": field is immutable"#
        ),
        "{err}"
    );
    let now = env.kubectl(&["get", "cm", "settings", "-o", "jsonpath={.metadata.uid} {.data.a}"]).await?;
    assert_eq!(now, format!("{uid} 1"));
    Ok(())
}

/// ValidateConfigMapUpdate and ValidateSecretUpdate: with `immutable: true` the data and
/// the flag itself are frozen (metadata is not), and a Secret's type never changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immutable_config_maps_and_secrets_keep_their_data() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let f = env.manifest(
        "frozen.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: frozen}\nimmutable: true\ndata: {a: '1'}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: sealed}\nimmutable: true\nstringData: {k: v}\n",
    )?;
    env.kubectl(&["create", "-f", &f]).await?;
    const WHY: &str = "Forbidden: field is immutable when `immutable` is set";
    let err = env.kubectl_err(&["patch", "cm", "frozen", "-p", r#"{"data":{"a":"2"}}"#]).await?;
    assert!(err.contains(&format!("data: {WHY}")), "{err}");
    let err = env.kubectl_err(&["patch", "cm", "frozen", "-p", r#"{"immutable":false}"#]).await?;
    assert!(err.contains(&format!("immutable: {WHY}")), "{err}");
    env.kubectl(&["label", "cm", "frozen", "team=a"]).await?;
    assert_eq!(env.kubectl(&["get", "cm", "frozen", "-o", "jsonpath={.data.a}"]).await?, "1");

    let err = env.kubectl_err(&["patch", "secret", "sealed", "-p", r#"{"stringData":{"k":"w"}}"#]).await?;
    assert!(err.contains(&format!("data: {WHY}")), "{err}");
    env.kubectl(&["create", "secret", "generic", "plain", "--from-literal=k=v"]).await?;
    let err = env.kubectl_err(&["patch", "secret", "plain", "-p", r#"{"type":"example.com/custom"}"#]).await?;
    assert!(err.contains(r#"type: Invalid value: "example.com/custom": field is immutable"#), "{err}");
    Ok(())
}

/// apps/v1 ValidateDeploymentUpdate: `spec.selector` is immutable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_selector_never_changes() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    env.kubectl(&["create", "deployment", "web", "--image=nginx:1.27"]).await?;
    let patch =
        r#"{"spec":{"selector":{"matchLabels":{"app":"other"}},"template":{"metadata":{"labels":{"app":"other"}}}}}"#;
    let err = env.kubectl_err(&["patch", "deploy", "web", "-p", patch]).await?;
    assert!(
        // kubectl words a 422 as "The <kind> <name> is invalid", from the Status details.
        err.contains(r#"The Deployment "web" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"other"}"#)
            && err.contains("field is immutable"),
        "{err}"
    );
    let sel = env.kubectl(&["get", "deploy", "web", "-o", "jsonpath={.spec.selector.matchLabels.app}"]).await?;
    assert_eq!(sel, "web");
    Ok(())
}
