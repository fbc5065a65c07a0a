//! Counters: node runtime, error counters, buffer pools, and what `clear` resets. The feature
//! and version rows live with their families and are re-exported here, where they first were.

use serde::{Deserialize, Serialize};

pub use crate::feature::FeatureDetails;
pub use crate::version::VersionDetails;

/// One node on one worker (`show runtime`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuntimeDetails {
    /// Worker.
    pub worker: usize,
    /// Node.
    pub node: String,
    /// Calls.
    pub calls: u64,
    /// Packets.
    pub vectors: u64,
    /// TSC clocks.
    pub clocks: u64,
}

/// One error counter, summed over workers (`show errors`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetails {
    /// Count.
    pub count: u64,
    /// Node.
    pub node: String,
    /// Short name.
    pub name: String,
    /// Meaning.
    pub description: String,
}

/// What `clear` resets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClearWhat {
    /// Node runtime counters.
    Runtime,
    /// Error counters.
    Errors,
    /// Interface counters.
    Interfaces,
    /// Trace records and budgets.
    Trace,
}

/// Buffers of one worker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferDetails {
    /// Worker.
    pub worker: usize,
    /// Buffers owned.
    pub total: u32,
    /// Free now.
    pub free: u32,
    /// Allocation failures.
    pub alloc_failures: u64,
    /// Double frees caught.
    pub double_frees: u64,
    /// Page backing of the buffer memory.
    pub pages: String,
}
