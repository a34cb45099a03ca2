//! Runs simulated clusters until Ctrl-C: `cargo run -p meridian-sim --example standalone -- /tmp/kubeconfig c1 c2`.

use std::path::PathBuf;

use meridian_sim::{ClusterSpec, SimOptions, run_standalone};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    let mut args = std::env::args().skip(1);
    let kubeconfig = PathBuf::from(args.next().unwrap_or_else(|| "/tmp/meridian-sim.kubeconfig".into()));
    let mut names: Vec<String> = args.collect();
    if names.is_empty() {
        names = vec!["east".into(), "west".into()];
    }
    let specs = names.into_iter().map(ClusterSpec::new).collect();
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    run_standalone(specs, SimOptions::default(), &kubeconfig, shutdown).await?;
    Ok(())
}
