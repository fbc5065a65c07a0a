//! What a scenario reports, as a table row and as one JSON object.

use serde::Serialize;
use std::collections::BTreeMap;
use vpg_graph::show::RuntimeRow;

/// Figures of one scenario run.
#[derive(Clone, Debug, Serialize)]
pub struct ScenarioReport {
    /// Scenario name.
    pub scenario: String,
    /// Packets measured.
    pub packets: u64,
    /// Wall-clock seconds of the measured part.
    pub seconds: f64,
    /// Million packets per second through the whole graph, generator included.
    pub mpps: f64,
    /// TSC clocks per packet summed over the measured nodes (the forwarding path; the
    /// generator and the sink are listed in `nodes` but not summed).
    pub cycles_per_packet: f64,
    /// Average vector size of the measured nodes.
    pub vectors_per_call: f64,
    /// Clocks per packet of every node that ran.
    pub nodes: BTreeMap<String, f64>,
    /// What backs the buffer memory.
    pub buffer_pages: String,
    /// Notes: route count, FIB memory, flows.
    pub details: BTreeMap<String, String>,
    /// The baseline run in the same process, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<String>,
    /// Its clocks per packet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline_cycles_per_packet: Option<f64>,
    /// Ours divided by the baseline.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f64>,
}

impl ScenarioReport {
    /// The table header.
    pub fn table_header() -> String {
        format!(
            "{:<26} {:>11} {:>8} {:>8} {:>11} {:>9} {:>8}  {}",
            "scenario",
            "packets",
            "seconds",
            "Mpps",
            "clocks/pkt",
            "vec/call",
            "ratio",
            "per node (clocks/pkt)"
        )
    }

    /// One table row.
    pub fn table_row(&self) -> String {
        let nodes: Vec<String> = self
            .nodes
            .iter()
            .map(|(n, c)| format!("{n} {c:.1}"))
            .collect();
        let ratio = self.ratio.map_or("-".to_string(), |r| format!("{r:.2}"));
        format!(
            "{:<26} {:>11} {:>8.2} {:>8.2} {:>11.1} {:>9.1} {:>8}  {}",
            self.scenario,
            self.packets,
            self.seconds,
            self.mpps,
            self.cycles_per_packet,
            self.vectors_per_call,
            ratio,
            nodes.join(", ")
        )
    }
}

/// What a scenario reads off the node runtime counters.
pub struct NodeFigures {
    /// Clocks per packet of every node (rows of several workers summed).
    pub nodes: BTreeMap<String, f64>,
    /// Clocks per packet summed over the rows `counted` selects.
    pub cycles_per_packet: f64,
    /// Average vector size of those rows.
    pub vectors_per_call: f64,
}

/// Per-node clocks per packet over `packets`, and the totals of the rows `counted` selects.
pub fn node_figures(
    rows: &[RuntimeRow],
    packets: u64,
    counted: impl Fn(&RuntimeRow) -> bool,
) -> NodeFigures {
    let packets = packets.max(1) as f64;
    let mut nodes = BTreeMap::new();
    let (mut clocks, mut calls, mut vectors) = (0u64, 0u64, 0u64);
    for r in rows {
        *nodes.entry(r.node.clone()).or_insert(0.0) += r.clocks as f64 / packets;
        if counted(r) {
            clocks += r.clocks;
            calls += r.calls;
            vectors += r.vectors;
        }
    }
    let vectors_per_call = if calls == 0 {
        0.0
    } else {
        vectors as f64 / calls as f64
    };
    NodeFigures {
        nodes,
        cycles_per_packet: clocks as f64 / packets,
        vectors_per_call,
    }
}
