//! The `meridian` binary: wires configuration, simulator, discovery, DNS and the admin
//! endpoint together, and hosts the command-line interface.
//!
//! Layout:
//! - `main.rs`: command-line parsing and logging.
//! - `server`: the running server (`serve` and `demo`): start-up, reloads, shutdown.
//! - `demo`: the embedded demo's objects.
//! - `admin`: the admin HTTP endpoint.
//! - `status`: `meridian status`.
//! - `explain`: `/api/v1/explain` and `meridian explain`.
//! - `check`: `meridian check`.
//! - `web`: the status page on the admin endpoint's `/`.

mod admin;
mod check;
mod demo;
mod explain;
mod server;
mod status;
mod web;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use meridian_config::LogFormat;

/// mimalloc rather than glibc's allocator: Meridian allocates many small objects per
/// change (the table at start-up, the DNS index, the proxy's HTTP/2 path), where glibc's
/// `malloc`/`free` dominated the scale benchmark's profile (bench/README).
#[cfg(not(feature = "system-alloc"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "meridian",
    version,
    about = "Global DNS and load-balancing discovery for services in many Kubernetes clusters"
)]
struct Cli {
    /// Log format (overrides the config file's `[log]` format).
    #[arg(long, global = true, value_enum)]
    log_format: Option<CliLogFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CliLogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server from a configuration file (reloaded on change and on SIGHUP).
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Where simulated clusters keep their kubeconfig and objects.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Validate a configuration file; prints every error with its field and line.
    Check {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
        /// Do not try to reach the clusters; check the file and kubeconfigs only.
        #[arg(long)]
        offline: bool,
    },
    /// Run simulated clusters only, and print the kubeconfig that reaches them.
    Sim {
        /// Cluster names (default: the demo's clusters).
        #[arg(long, value_delimiter = ',')]
        clusters: Vec<String>,
        /// Where the clusters' kubeconfig is written and their objects kept.
        #[arg(long)]
        state_dir: Option<PathBuf>,
    },
    /// Run the embedded demo: three simulated member clusters, a control plane, DNS, admin.
    Demo(demo::DemoArgs),
    /// Add a member cluster to a configuration file (checked valid and reachable first);
    /// a running server picks it up by reload.
    Join {
        /// Cluster name (a DNS label).
        name: String,
        /// The configuration file to add it to.
        #[arg(long, short)]
        config: PathBuf,
        /// The kubeconfig that reaches the cluster.
        #[arg(long)]
        kubeconfig: PathBuf,
        /// The kubeconfig context (default: its current context).
        #[arg(long)]
        context: Option<String>,
        /// The cluster's region, for geo ranking and failover order.
        #[arg(long)]
        region: Option<String>,
        /// The cluster's zone.
        #[arg(long)]
        zone: Option<String>,
    },
    /// Remove a member cluster from a configuration file.
    Unjoin {
        /// Cluster name.
        name: String,
        /// The configuration file to remove it from.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Show clusters, services and DNS names of a running server.
    Status {
        /// Admin endpoint of the server.
        #[arg(long, default_value = "127.0.0.1:9480")]
        admin: SocketAddr,
        /// Print the raw JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Show the answer a client would get now for a name, and why (or, with --http, the
    /// backend a request through the proxy would go to).
    Explain {
        /// The name to ask about (omit with --http).
        #[arg(required_unless_present = "http")]
        name: Option<String>,
        /// Record type.
        #[arg(long = "type", default_value = "A")]
        qtype: String,
        /// The client's (or its resolver's) address.
        #[arg(long)]
        client: Option<IpAddr>,
        /// An EDNS Client Subnet the query carries, e.g. 192.0.2.0/24.
        #[arg(long)]
        subnet: Option<String>,
        /// A location to answer for, LAT,LON (e.g. 48.86,2.35 for Paris).
        #[arg(long, allow_hyphen_values = true)]
        at: Option<String>,
        /// Explain a request through the proxy: HOST[/path].
        #[arg(long, conflicts_with = "name")]
        http: Option<String>,
        /// Admin endpoint of the server.
        #[arg(long, default_value = "127.0.0.1:9480")]
        admin: SocketAddr,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Sets up `tracing`; `RUST_LOG` overrides the level.
fn init_logging(format: LogFormat, level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!("{level},kube_client=warn,kube_runtime=warn,hyper=warn"))
    });
    // Colour only for a person at a terminal: escape codes in a log file or a journal
    // are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_override = cli.log_format.map(|f| match f {
        CliLogFormat::Text => LogFormat::Text,
        CliLogFormat::Json => LogFormat::Json,
    });
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { config, state_dir } => server::serve(config, state_dir, log_override).await,
            Command::Check { config, offline } => check::run(&config, offline).await,
            Command::Sim { clusters, state_dir } => {
                init_logging(log_override.unwrap_or_default(), "info");
                server::sim_only(clusters, state_dir).await
            }
            Command::Demo(args) => demo::run(args, log_override).await,
            Command::Status { admin, json } => status::run(admin, json).await,
            Command::Explain { name, qtype, client, subnet, at, http, admin, json } => {
                let client = client.map(|c| c.to_string());
                let params = explain::Params { name, qtype: Some(qtype), client, subnet, at, http };
                explain::run(admin, params, json).await
            }
            Command::Join { name, config, kubeconfig, context, region, zone } => {
                meridian_sync::join(
                    &config,
                    &name,
                    &kubeconfig,
                    context.as_deref(),
                    region.as_deref(),
                    zone.as_deref(),
                )
                .await?;
                println!("joined {name}: added to {}", config.display());
                Ok(())
            }
            Command::Unjoin { name, config } => {
                meridian_sync::unjoin(&config, &name)?;
                println!("unjoined {name}: removed from {}", config.display());
                println!(
                    "a running `meridian serve` on this file reloads it and releases {name}'s copies (unmarked, left in place)"
                );
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
