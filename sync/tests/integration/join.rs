//! `meridian join` / `unjoin` edit the configuration file; a reload picks the change up.

use std::time::Duration;

use anyhow::{Result, bail};
use meridian_config::Config;
use meridian_sim::ClusterSpec;

use crate::support::{Env, MEMBERS, config_text, wait_for};

/// Joining validates, checks reachability and keeps the file's comments; the running
/// sync propagates to the new member after a reload; unjoin removes it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_and_unjoin_edit_the_config_and_reload_picks_them_up() -> Result<()> {
    let env = Env::start().await?;
    env.apply("host", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: everywhere}\ndata: {k: v}\n").await?;
    let m4 = env.sim.add_cluster(ClusterSpec::new("m4")).await?;
    env.sim.write_kubeconfig(&env.kubeconfig)?;
    let path = env.dir.path().join("meridian.toml");
    std::fs::write(&path, config_text(MEMBERS))?;

    meridian_sync::join(&path, "m4", &env.kubeconfig, Some("m4"), Some("us-west1"), Some("us-west1-a")).await?;
    let text = std::fs::read_to_string(&path)?;
    assert!(text.starts_with("# test federation"), "comments kept: {text}");
    let config = Config::load(&path)?;
    let c = config.cluster("m4").ok_or_else(|| anyhow::anyhow!("m4 missing"))?;
    assert_eq!((c.context.as_deref(), c.region.as_deref()), (Some("m4"), Some("us-west1")));

    // Duplicates, invalid names and unreachable clusters are refused; the file is unchanged.
    let before = std::fs::read_to_string(&path)?;
    let dup = meridian_sync::join(&path, "m4", &env.kubeconfig, Some("m4"), None, None).await;
    assert!(matches!(dup, Err(meridian_sync::Error::AlreadyJoined(_))), "{dup:?}");
    let bad = meridian_sync::join(&path, "Bad_Name", &env.kubeconfig, Some("m4"), None, None).await;
    assert!(matches!(bad, Err(meridian_sync::Error::Invalid { .. })), "{bad:?}");
    m4.stop().await;
    let down = meridian_sync::join(&path, "m5", &env.kubeconfig, Some("m4"), None, None).await;
    match down {
        Err(e) if e.is_retryable() => {}
        other => bail!("joining an unreachable cluster: {other:?}"),
    }
    m4.start().await?;
    assert_eq!(std::fs::read_to_string(&path)?, before);

    // A running server reloads: discovery gains the member, sync propagates to it.
    let errors = env.discovery.apply(&config).await;
    assert!(errors.is_empty(), "{errors:?}");
    env.sync()?.reload(&config);
    wait_for("m4 copy", Duration::from_secs(10), || env.get("m4", "configmap", "everywhere"), Option::is_some).await?;

    meridian_sync::unjoin(&path, "m4")?;
    let config = Config::load(&path)?;
    assert!(config.cluster("m4").is_none());
    assert!(std::fs::read_to_string(&path)?.starts_with("# test federation"));
    assert!(matches!(meridian_sync::unjoin(&path, "m4"), Err(meridian_sync::Error::NotJoined(_))));

    // The reload releases m4's copies: left in place, no longer marked as managed.
    let errors = env.discovery.apply(&config).await;
    assert!(errors.is_empty(), "{errors:?}");
    env.sync()?.reload(&config);
    let marked = |o: &Option<serde_json::Value>| {
        let meta = o.as_ref().and_then(|o| o.get("metadata"));
        let label = meta.and_then(|m| m.pointer("/labels/meridian.io~1managed-by"));
        let origin = meta.and_then(|m| m.pointer("/annotations/meridian.io~1origin-uid"));
        label.is_some() || origin.is_some()
    };
    let released = |o: &Option<serde_json::Value>| o.is_some() && !marked(o);
    wait_for("m4 copy released", Duration::from_secs(10), || env.get("m4", "configmap", "everywhere"), released)
        .await?;
    for ns in ["default"] {
        let copy = env.get("m4", "namespace", ns).await?;
        assert!(!marked(&copy), "{ns}: {copy:?}");
    }
    // The members that stay keep theirs.
    assert!(marked(&env.get("m1", "configmap", "everywhere").await?));
    env.shutdown().await;
    Ok(())
}
