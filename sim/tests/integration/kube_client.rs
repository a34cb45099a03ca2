//! kube-rs clients: the kubeconfig works, pagination, and `watcher` recovers from 410 Gone.

use std::sync::Arc;

use anyhow::{Context as _, Result};
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use kube::api::{ListParams, PostParams};
use kube::runtime::{reflector, watcher};
use kube::{Api, Client};
use meridian_testkit::wait::eventually_sync;
use parking_lot::Mutex;
use serde_json::json;

use crate::support::{Env, WAIT, lb_service};

async fn client(env: &Env, context: &str) -> Result<Client> {
    env.client(context).await
}

/// A reflector over Services sees objects, then after history compaction and dropped
/// watches gets 410, relists, and sees changes made while it was disconnected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_410_and_sees_changes() -> Result<()> {
    let env = Env::start(&["east", "west"]).await?;
    let west = env.cluster("west")?;
    west.apply_json(lb_service("a", "default", 80))?;
    let api: Api<Service> = Api::all(client(&env, "west").await?);
    let (reader, writer) = reflector::store();
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let errs = errors.clone();
    let task = tokio::spawn(async move {
        let stream = reflector(writer, watcher(api, watcher::Config::default()));
        futures::pin_mut!(stream);
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                errs.lock().push(format!("{e:?}"));
            }
        }
    });
    let names = |r: &reflector::Store<Service>| {
        let mut n: Vec<String> = r.state().iter().filter_map(|s| s.metadata.name.clone()).collect();
        n.sort();
        n
    };
    // `kubernetes` is the API server's own Service in `default`.
    eventually_sync(WAIT, "a in the store", || (names(&reader) == ["a", "kubernetes"]).then_some(())).await?;

    // A change while watching arrives through the watch.
    west.apply_json(lb_service("b", "default", 80))?;
    eventually_sync(WAIT, "b in the store", || (names(&reader) == ["a", "b", "kubernetes"]).then_some(())).await?;

    west.compact_history();
    west.drop_watches();
    west.delete_json("v1", "Service", Some("default"), "a")?;
    west.apply_json(lb_service("c", "default", 80))?;
    eventually_sync(WAIT, "relisted store", || (names(&reader) == ["b", "c", "kubernetes"]).then_some(())).await?;
    let errors = errors.lock().clone();
    assert!(
        errors.iter().any(|e| e.contains("410") || e.contains("Expired") || e.contains("too old")),
        "no 410 seen: {errors:?}"
    );
    task.abort();
    Ok(())
}

/// `limit`/`continue` pages through a list; a continue token older than history is 410.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pagination_and_expired_continue_tokens() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let east = env.cluster("east")?;
    let api: Api<ConfigMap> = Api::namespaced(client(&env, "east").await?, "default");
    for i in 0..5 {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm{i}")}, "data": {"i": i.to_string()}}))?;
        api.create(&PostParams::default(), &cm).await?;
    }
    let first = api.list(&ListParams::default().limit(2)).await?;
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().context("no continue token")?;
    let second = api.list(&ListParams::default().limit(2).continue_token(&token)).await?;
    let third = api
        .list(&ListParams::default().limit(2).continue_token(second.metadata.continue_.as_deref().context("token 2")?))
        .await?;
    let all: Vec<String> =
        first.items.iter().chain(&second.items).chain(&third.items).filter_map(|c| c.metadata.name.clone()).collect();
    // Every namespace holds the root CA bundle ConfigMap too.
    assert_eq!(all, ["cm0", "cm1", "cm2", "cm3", "cm4", "kube-root-ca.crt"]);
    assert!(third.metadata.continue_.as_deref().unwrap_or("").is_empty());

    let labelled = api.list(&ListParams::default().fields("metadata.name=cm3")).await?;
    assert_eq!(labelled.items.len(), 1);

    east.compact_history();
    let err =
        api.list(&ListParams::default().limit(2).continue_token(&token)).await.err().context("old token accepted")?;
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 410), "{err:?}");

    // Optimistic concurrency: replacing with a stale resourceVersion conflicts.
    let mut stale = api.get("cm0").await?;
    let mut fresh = stale.clone();
    fresh.data = Some([("i".to_string(), "y".to_string())].into());
    api.replace("cm0", &PostParams::default(), &fresh).await?;
    stale.data = Some([("i".to_string(), "x".to_string())].into());
    let err = api.replace("cm0", &PostParams::default(), &stale).await.err().context("stale write accepted")?;
    assert!(matches!(err, kube::Error::Api(ref s) if s.code == 409), "{err:?}");
    Ok(())
}

/// `stop` makes the API unreachable; `start` serves the same data on the same port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_start_keep_port_and_data() -> Result<()> {
    let env = Env::start(&["east"]).await?;
    let east = env.cluster("east")?;
    east.apply_json(lb_service("kept", "default", 80))?;
    let port = east.port();
    let api: Api<Service> = Api::namespaced(client(&env, "east").await?, "default");
    assert!(api.get("kept").await.is_ok());
    east.stop().await;
    let refused = tokio::net::TcpStream::connect(("127.0.0.1", port)).await;
    assert!(refused.is_err(), "API still reachable after stop");
    east.start().await?;
    assert_eq!(east.port(), port);
    let svc = api.get("kept").await?;
    assert!(svc.status.and_then(|s| s.load_balancer).and_then(|l| l.ingress).is_some_and(|i| !i.is_empty()));
    Ok(())
}
