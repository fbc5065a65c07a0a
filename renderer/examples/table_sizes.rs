//! Table sizes of one node with peers aggregated into prefixes and with one rule per peer, and
//! the render time of each (median of `RUNS`, default 5; `MODE=aggregated` or `MODE=flat` renders
//! only one way, for instruction counts under callgrind).
//!
//! `cargo run --release -p vpg-renderer --example table_sizes -- CLUSTER.json NODE`
//! (a `kubectl get namespaces,pods,networkpolicies -A -o json` dump, or any List the agent's
//! manifest directory takes; other kinds are skipped). `synth:N` stands for the benchmarks'
//! `synth::cluster(N)` and `egress-all` for `synth::egress_all(1000, 100)`.

use std::time::Instant;

use vpg_renderer::{kube, synth, Renderer};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, path, node] = &args[..] else {
        eprintln!("usage: table_sizes CLUSTER.json NODE");
        std::process::exit(2);
    };
    let cluster = if let Some(n) = path.strip_prefix("synth:").and_then(|n| n.parse().ok()) {
        synth::cluster(n)
    } else if path == "egress-all" {
        synth::egress_all(1000, 100)
    } else {
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
            eprintln!("{path}: {e}");
            std::process::exit(2);
        });
        match kube::load_cluster(&text) {
            Ok(l) => l.cluster,
            Err(e) => {
                eprintln!("{path}: {e}");
                std::process::exit(2);
            }
        }
    };
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mode = std::env::var("MODE").ok();
    for aggregate in [false, true] {
        let name = if aggregate { "aggregated" } else { "flat" };
        if mode.as_deref().is_some_and(|m| m != name) {
            continue;
        }
        let mut times = Vec::new();
        let mut r = None;
        for _ in 0..runs.max(1) {
            let t0 = Instant::now();
            r = Some(Renderer::render_with_aggregation(node, &cluster, aggregate));
            times.push(t0.elapsed());
        }
        times.sort_unstable();
        let t = r.expect("rendered at least once").tables();
        let local: usize = t.local_tables.iter().map(|t| t.rules.len()).sum();
        let global = t.global_table.rules.len();
        println!(
            "{}: {} local tables ({local} rules), global table {global} rules, {} rules in all, {} bytes of JSON; render median {:.1} ms",
            if aggregate { "aggregated" } else { "flat (one rule per peer)" },
            t.local_tables.len(),
            local + global,
            serde_json::to_string(&t).map_or(0, |s| s.len()),
            times[times.len() / 2].as_secs_f64() * 1e3,
        );
    }
}
