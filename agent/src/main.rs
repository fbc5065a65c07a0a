//! `vpg-agent`: vpg's per-node agent (`docs/agent.md`).
//!
//! ```text
//! vpg-agent run --config /etc/vpg/node.toml        # the agent
//! vpg-agent run --config /etc/vpg/node.toml --check # only check the configuration
//! vpg-agent status [--socket PATH | --config FILE] [--json]
//! vpg-agent render --cluster cluster.json --node worker-1 [--json]
//! ```

mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use vpg_agent::config::NodeConfig;

/// vpg's per-node agent.
#[derive(Parser, Debug)]
#[command(name = "vpg-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the agent: follow the store and the CNI pod records and keep vpgd configured
    /// (SIGTERM or SIGINT stop it; vpgd keeps its configuration).
    Run {
        /// The node configuration (TOML).
        #[arg(long)]
        config: PathBuf,
        /// Only check the configuration, then exit (0 when good).
        #[arg(long)]
        check: bool,
    },
    /// Print a running agent's sync state, counters and what it configured.
    Status {
        /// The agent's status socket [default: the one in --config, else /run/vpg/agent.sock].
        #[arg(long)]
        socket: Option<PathBuf>,
        /// Read the status socket's path from this node configuration.
        #[arg(long, conflicts_with = "socket")]
        config: Option<PathBuf>,
        /// Print JSON (with every configured object and why it is there).
        #[arg(long)]
        json: bool,
    },
    /// Render a node's NetworkPolicy tables (local tables and the global table) from a dump of
    /// `kubectl get namespaces,pods,networkpolicies -A -o json` (JSON or YAML).
    Render(render::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Render(a) => render::run(&a),
        Command::Run { config, check } => run(config, check),
        Command::Status {
            socket,
            config,
            json,
        } => status(socket, config, json),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpg-agent: {e:#}");
            // 2, like clap's usage errors: the input could not be used at all.
            ExitCode::from(2)
        }
    }
}

fn run(config: PathBuf, check: bool) -> anyhow::Result<()> {
    let cfg =
        NodeConfig::load(&config).map_err(|e| anyhow::anyhow!("{}: {e}", config.display()))?;
    if check {
        println!("{}: ok", config.display());
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(vpg_agent::run::run(cfg, shutdown_signal()))
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        // Without signal handlers, run until killed.
        _ => std::future::pending().await,
    }
}

fn status(socket: Option<PathBuf>, config: Option<PathBuf>, json: bool) -> anyhow::Result<()> {
    let socket = match (socket, config) {
        (Some(s), _) => s,
        (None, Some(c)) => {
            NodeConfig::load(&c)
                .map_err(|e| anyhow::anyhow!("{}: {e}", c.display()))?
                .status_socket
        }
        (None, None) => PathBuf::from("/run/vpg/agent.sock"),
    };
    let st = vpg_agent::status::query(&socket).map_err(anyhow::Error::msg)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&st)?);
    } else {
        print!("{}", st.render());
    }
    Ok(())
}
