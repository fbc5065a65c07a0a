//! `vpg-bench`: runs named scenarios on one pinned core and prints a table or JSON lines.

use clap::Parser;
use vpg_bench::{scenarios, RunOptions, ScenarioReport};

/// vpg benchmark harness.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// List the scenarios and exit.
    #[arg(long)]
    list: bool,
    /// Print one JSON object per scenario instead of a table.
    #[arg(long)]
    json: bool,
    /// Packets measured per scenario.
    #[arg(long, default_value_t = 20_000_000)]
    packets: u64,
    /// Packets sent before measuring.
    #[arg(long, default_value_t = 2_000_000)]
    warmup: u64,
    /// CPU to pin the benchmark thread to.
    #[arg(long, default_value_t = 1)]
    cpu: usize,
    /// Distinct destinations per ip4-forward scenario (cache pressure on the FIB grows with it).
    #[arg(long, default_value_t = vpg_bench::forward::FLOWS)]
    flows: usize,
    /// Keep buffers on 4 KiB pages (compare with the default huge pages).
    #[arg(long)]
    no_huge_pages: bool,
    /// Scenarios to run (all when none is named).
    names: Vec<String>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let all = scenarios();
    if cli.list {
        for s in &all {
            println!("{:<26} {}", s.name, s.about);
        }
        return Ok(());
    }
    for n in &cli.names {
        if !all.iter().any(|s| s.name == n) {
            anyhow::bail!("unknown scenario '{n}' (vpg-bench --list names them)");
        }
    }
    let opts = RunOptions {
        warmup_packets: cli.warmup,
        packets: cli.packets,
        cpu: cli.cpu,
        huge_pages: !cli.no_huge_pages,
        flows: cli.flows.max(1),
    };
    if !cli.json {
        println!("{}", ScenarioReport::table_header());
    }
    for s in all
        .iter()
        .filter(|s| cli.names.is_empty() || cli.names.iter().any(|n| n == s.name))
    {
        let r = (s.run)(&opts)?;
        if cli.json {
            println!("{}", serde_json::to_string(&r)?);
        } else {
            println!("{}", r.table_row());
            println!(
                "{:26} buffers: {}; {}",
                "",
                r.buffer_pages,
                r.details
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    Ok(())
}
