//! vpg's graph runtime, in the style of FD.io VPP's vlib.
//!
//! Packets live in preallocated [`buffer`]s addressed by index; they move through [`node`]s in
//! [`frame`]s of up to 256; feature [`arc`]s give each interface an ordered list of optional
//! features; every worker owns a [`runtime`] with its own pool, counters and trace; configuration
//! arrives as immutable [`config`] snapshots swapped between frames; time is injected.
//! [`wire`] holds the packet views, [`pg`] the packet generator and capture.

pub mod arc;
pub mod buffer;
pub mod config;
pub mod context;
pub mod counters;
pub mod drop;
pub mod frame;
pub mod graph;
pub mod handoff;
pub mod interface;
pub mod local;
pub mod node;
pub mod pcap;
pub mod pg;
pub mod runtime;
pub mod show;
pub mod stats_segment;
pub mod sys;
pub mod time;
pub mod timer_wheel;
pub mod trace;
pub mod wire;
pub mod worker;

pub use arc::{ArcId, FeatureConfig, FeatureRegistration};
pub use buffer::{Buffer, BufferHdr, BufferIndex, BufferMemory, BufferPool};
pub use config::ConfigSet;
pub use context::Ctx;
pub use drop::ERROR_DROP;
pub use frame::{Frame, Vector, FRAME_SIZE, NEXT_CONSUMED};
pub use graph::{BuildError, GraphSpec, Layout};
pub use interface::{InterfaceOutput, NullDevice, TxDevice, TxNodes, INTERFACE_OUTPUT};
pub use local::WorkerLocals;
pub use node::{ErrorDesc, Node, NodeKind, NodeRegistration};
pub use runtime::{Runtime, RuntimeConfig};
pub use time::Time;
pub use worker::{WorkerOptions, Workers};
