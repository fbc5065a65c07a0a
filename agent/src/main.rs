//! `vpg-agent`: vpg's per-node agent (`docs/agent.md`). Its first subcommand, `render`, renders
//! one node's NetworkPolicy tables from a cluster dump; the running agent of issue 10 (reflector
//! → renderer → ACL backend → vpgd) joins as further subcommands.
//!
//! ```text
//! kubectl get namespaces,pods,networkpolicies -A -o json > cluster.json
//! vpg-agent render --cluster cluster.json --node worker-1 --json
//! ```

mod render;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// vpg's per-node agent.
#[derive(Parser, Debug)]
#[command(name = "vpg-agent", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Render a node's NetworkPolicy tables (local tables and the global table) from a dump of
    /// `kubectl get namespaces,pods,networkpolicies -A -o json` (JSON or YAML).
    Render(render::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Render(a) => render::run(a),
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
