//! `vpg-agent render`: the renderer's kube loader, a full render of one node, its tables.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use vpg_renderer::{kube, Renderer};

/// Arguments of `vpg-agent render`.
#[derive(clap::Args, Debug)]
pub struct Args {
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

/// Prints the node's tables; skipped objects and invalid policies go to stderr as warnings.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.cluster)
        .with_context(|| format!("reading {}", args.cluster.display()))?;
    let loaded =
        kube::load_cluster(&text).with_context(|| format!("loading {}", args.cluster.display()))?;
    for w in &loaded.warnings {
        eprintln!("warning: skipped {w}");
    }
    let r = Renderer::render(&args.node, &loaded.cluster);
    for e in r.errors() {
        eprintln!("warning: skipped policy {e}");
    }
    let tables = r.tables();
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &tables)?;
        writeln!(out)?;
    } else {
        write!(out, "{tables}")?;
    }
    out.flush()?;
    Ok(())
}
