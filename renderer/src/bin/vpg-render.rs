//! `vpg-render`: renders one node's policy tables from a cluster dump. The same core is meant
//! to back `vpg-agent render` when the agent exists.
//!
//! ```text
//! kubectl get namespaces,pods,networkpolicies -A -o json > cluster.json
//! vpg-render --cluster cluster.json --node worker-1 --json
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use vpg_renderer::{kube, Renderer};

/// Render a node's NetworkPolicy tables (local tables and the global table).
#[derive(Parser, Debug)]
#[command(name = "vpg-render", version)]
struct Args {
    /// Output of `kubectl get namespaces,pods,networkpolicies -A -o json` (JSON or YAML).
    #[arg(long)]
    cluster: PathBuf,
    /// The node to render.
    #[arg(long)]
    node: String,
    /// Print JSON: {"node", "local_tables": [{"id", "pods", "rules"}], "global_table": {"id", "rules"}}.
    #[arg(long)]
    json: bool,
}

fn run(args: &Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.cluster)
        .with_context(|| format!("reading {}", args.cluster.display()))?;
    let loaded = kube::load_cluster(&text)?;
    for w in &loaded.warnings {
        eprintln!("warning: skipped {w}");
    }
    let r = Renderer::render(&args.node, &loaded.cluster);
    for e in r.errors() {
        eprintln!("warning: skipped policy {e}");
    }
    let tables = r.tables();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&tables)?);
    } else {
        print!("{tables}");
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vpg-render: {e:#}");
            ExitCode::from(2)
        }
    }
}
