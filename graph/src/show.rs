//! Rendering of `show runtime`, `show errors`, `show trace` and `show buffers`, as rows (for
//! `--json`) and as aligned text a person reads at a glance.

use crate::buffer::PoolStats;
use crate::counters::WorkerStats;
use crate::stats_segment::CounterNames;
use crate::trace::TraceLine;
use std::fmt::Write;

/// One node on one worker.
#[derive(Clone, Debug, PartialEq)]
pub struct RuntimeRow {
    /// Worker index.
    pub worker: usize,
    /// Node name.
    pub node: String,
    /// Calls.
    pub calls: u64,
    /// Packets.
    pub vectors: u64,
    /// TSC clocks.
    pub clocks: u64,
}

impl RuntimeRow {
    /// Clocks per packet.
    pub fn clocks_per_vector(&self) -> f64 {
        if self.vectors == 0 {
            0.0
        } else {
            self.clocks as f64 / self.vectors as f64
        }
    }

    /// Packets per call.
    pub fn vectors_per_call(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.vectors as f64 / self.calls as f64
        }
    }
}

/// Node runtime rows of every worker, nodes that never ran left out.
pub fn runtime_rows<S: AsRef<WorkerStats>>(
    names: &(impl CounterNames + ?Sized),
    stats: &[S],
) -> Vec<RuntimeRow> {
    let mut rows = Vec::new();
    for (w, s) in stats.iter().enumerate() {
        let s = s.as_ref();
        for i in 0..names.node_count().min(s.nodes.len()) {
            let name = names.node_name(i);
            let c = &s.nodes[i];
            if c.calls.get() == 0 {
                continue;
            }
            rows.push(RuntimeRow {
                worker: w,
                node: name.to_string(),
                calls: c.calls.get(),
                vectors: c.vectors.get(),
                clocks: c.clocks.get(),
            });
        }
    }
    rows
}

/// `show runtime` text.
pub fn runtime_text<S: AsRef<WorkerStats>>(
    names: &(impl CounterNames + ?Sized),
    stats: &[S],
) -> String {
    let rows = runtime_rows(names, stats);
    let mut out = String::new();
    for (w, s) in stats.iter().enumerate() {
        let _ = writeln!(
            out,
            "Thread {w} vpg_wk_{w}: {} dispatch loops",
            s.as_ref().misc().loops.get()
        );
        let _ = writeln!(
            out,
            "{:<28} {:>12} {:>14} {:>14} {:>12} {:>12}",
            "Name", "Calls", "Vectors", "Clocks", "Clocks/Pkt", "Vectors/Call"
        );
        let (mut calls, mut vectors, mut clocks) = (0u64, 0u64, 0u64);
        for r in rows.iter().filter(|r| r.worker == w) {
            let _ = writeln!(
                out,
                "{:<28} {:>12} {:>14} {:>14} {:>12.2} {:>12.2}",
                r.node,
                r.calls,
                r.vectors,
                r.clocks,
                r.clocks_per_vector(),
                r.vectors_per_call()
            );
            calls += r.calls;
            vectors += r.vectors;
            clocks += r.clocks;
        }
        let _ = writeln!(
            out,
            "{:<28} {:>12} {:>14} {:>14}",
            "total", calls, vectors, clocks
        );
    }
    out
}

/// One error counter (summed over workers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorRow {
    /// Count.
    pub count: u64,
    /// Node.
    pub node: String,
    /// Short name.
    pub name: String,
    /// Description.
    pub description: String,
}

/// Non-zero error counters, summed over workers, plus the runtime's own drop counters.
pub fn error_rows<S: AsRef<WorkerStats>>(
    names: &(impl CounterNames + ?Sized),
    stats: &[S],
) -> Vec<ErrorRow> {
    let mut rows = Vec::new();
    for e in 0..names.error_count() {
        let count: u64 = stats
            .iter()
            .map(|s| s.as_ref().errors.get(e).map_or(0, |c| c.get()))
            .sum();
        if count == 0 {
            continue;
        }
        if let Some((node, name, description)) = names.error_names(e) {
            rows.push(ErrorRow {
                count,
                node: node.to_string(),
                name: name.to_string(),
                description: description.to_string(),
            });
        }
    }
    let handoff: u64 = stats
        .iter()
        .map(|s| s.as_ref().misc().handoff_drops.get())
        .sum();
    if handoff > 0 {
        rows.push(ErrorRow {
            count: handoff,
            node: "handoff".into(),
            name: "congestion-drop".into(),
            description: "handoff queue to another worker full".into(),
        });
    }
    let frames: u64 = stats
        .iter()
        .map(|s| s.as_ref().misc().frame_drops.get())
        .sum();
    if frames > 0 {
        rows.push(ErrorRow {
            count: frames,
            node: "dispatch".into(),
            name: "frame-drop".into(),
            description: "no free frame or bad next slot (a bug; report it)".into(),
        });
    }
    rows
}

/// `show errors` text.
pub fn errors_text<S: AsRef<WorkerStats>>(
    names: &(impl CounterNames + ?Sized),
    stats: &[S],
) -> String {
    let rows = error_rows(names, stats);
    let mut out = format!(
        "{:>12}  {:<24} {:<24} {}\n",
        "Count", "Node", "Error", "Reason"
    );
    for r in &rows {
        let _ = writeln!(
            out,
            "{:>12}  {:<24} {:<24} {}",
            r.count, r.node, r.name, r.description
        );
    }
    if rows.is_empty() {
        out.push_str("(no errors)\n");
    }
    out
}

/// `show trace` text for one worker's records.
pub fn trace_text(worker: usize, packets: &[(u32, Vec<(String, TraceLine)>)]) -> String {
    let mut out = format!(
        "------------------- Start of thread {worker} vpg_wk_{worker} -------------------\n"
    );
    if packets.is_empty() {
        out.push_str("No packets in trace buffer\n");
    }
    for (id, lines) in packets {
        let _ = writeln!(out, "Packet {}\n", id + 1);
        for (node, l) in lines {
            let _ = writeln!(out, "{}: {}\n  {}", l.time, node, l.text);
        }
        out.push('\n');
    }
    out
}

/// `show buffers` text.
pub fn buffers_text(
    pools: &[PoolStats],
    backing: crate::sys::PageBacking,
    mapped_bytes: usize,
) -> String {
    let mut out = format!(
        "buffer memory: {} MiB mapped, {}\n{:<8} {:>10} {:>10} {:>10} {:>14} {:>12}\n",
        mapped_bytes >> 20,
        backing,
        "Worker",
        "Total",
        "Free",
        "In use",
        "Alloc-fail",
        "Double-free"
    );
    for (w, p) in pools.iter().enumerate() {
        let _ = writeln!(
            out,
            "{:<8} {:>10} {:>10} {:>10} {:>14} {:>12}",
            w,
            p.total,
            p.free,
            p.total - p.free,
            p.alloc_failures,
            p.double_frees
        );
    }
    out
}
