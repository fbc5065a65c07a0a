//! Nodes as declarative records: a name, next nodes named by string, error counters with a
//! description each, a trace record type and `process`.
//!
//! Next nodes are names resolved when the graph is built, so node crates never depend on each
//! other (VPP's `.next_nodes`), and an unknown name is a build error naming both nodes.

use crate::context::Ctx;
use crate::frame::Vector;
use std::any::Any;
use std::fmt::Display;

/// Whether the runtime polls a node or feeds it frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// Called every dispatch loop with an empty vector; pushes what it received.
    Input,
    /// Called with frames enqueued by other nodes.
    Internal,
}

/// One error counter: its name and what it means to an operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorDesc {
    /// Short identifier (`bad-checksum`).
    pub name: &'static str,
    /// What happened, for `show errors` (`ip4 header checksum is wrong`).
    pub description: &'static str,
}

/// What a node declares about itself.
#[derive(Clone, Debug)]
pub struct NodeRegistration {
    /// Unique node name (`ip4-input`).
    pub name: String,
    /// Input or internal.
    pub kind: NodeKind,
    /// Next nodes by name; the slot of a next node is its position in this list.
    pub next_nodes: Vec<String>,
    /// The node's error counters; a counter's code is its position in this list.
    pub errors: &'static [ErrorDesc],
}

impl NodeRegistration {
    /// An internal node.
    pub fn internal(name: &str, next_nodes: &[&str], errors: &'static [ErrorDesc]) -> Self {
        Self {
            name: name.to_string(),
            kind: NodeKind::Internal,
            next_nodes: next_nodes.iter().map(|s| s.to_string()).collect(),
            errors,
        }
    }

    /// An input node.
    pub fn input(name: &str, next_nodes: &[&str], errors: &'static [ErrorDesc]) -> Self {
        Self {
            kind: NodeKind::Input,
            ..Self::internal(name, next_nodes, errors)
        }
    }
}

/// A trace record: small, `Copy`, formatted only when `show trace` asks.
pub trait TraceRecord: Copy + Display + Send + 'static {}
impl<T: Copy + Display + Send + 'static> TraceRecord for T {}

/// A graph node.
pub trait Node: Send + 'static {
    /// What the node records for a traced packet.
    type Trace: TraceRecord;

    /// The node's declaration.
    fn registration(&self) -> NodeRegistration;

    /// Processes one vector of at most 256 buffers: set `v.nexts[i]` for every buffer (or
    /// [`crate::NEXT_CONSUMED`]); input nodes push received buffers instead.
    fn process(&mut self, cx: &mut Ctx<'_, Self::Trace>, v: &mut Vector);

    /// Takes what the node needs from a new configuration snapshot (called between frames).
    fn reconfigure(&mut self, _config: &crate::config::ConfigSet) {}

    /// Whether an input node has work soon (adaptive polling may sleep when none has).
    fn is_idle(&self) -> bool {
        true
    }

    /// Descriptors an idle worker may block on until this input node has packets (AF_PACKET
    /// sockets); nodes without any are simply polled again when the worker wakes.
    fn wait_fds(&self, _fds: &mut Vec<i32>) {}
}

/// Declares a node's error counters: an enum whose variants are the codes, and the descriptions.
///
/// ```
/// vpg_graph::error_counters! {
///     /// ip4-input errors.
///     pub enum Ip4InputError {
///         /// Version field is not 4.
///         BadVersion = "bad-version": "ip4 version is not 4",
///         /// Checksum mismatch.
///         BadChecksum = "bad-checksum": "ip4 header checksum is wrong",
///     }
/// }
/// assert_eq!(Ip4InputError::DESCRIPTIONS[1].name, "bad-checksum");
/// assert_eq!(Ip4InputError::BadChecksum as u16, 1);
/// ```
#[macro_export]
macro_rules! error_counters {
    ($(#[$m:meta])* $vis:vis enum $name:ident { $($(#[$vm:meta])* $variant:ident = $short:literal : $desc:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        #[repr(u16)]
        $vis enum $name { $($(#[$vm])* $variant),* }
        impl $name {
            /// Names and descriptions, indexed by code.
            pub const DESCRIPTIONS: &'static [$crate::ErrorDesc] = &[
                $($crate::ErrorDesc { name: $short, description: $desc }),*
            ];
        }
        impl From<$name> for u16 {
            fn from(e: $name) -> u16 { e as u16 }
        }
    };
}

/// Object-safe view of a node with its per-node runtime state (trace buffer), used by the runtime.
pub(crate) trait DynNode: Send {
    fn registration(&self) -> NodeRegistration;
    fn run(&mut self, parts: crate::context::CtxParts<'_>, v: &mut Vector);
    fn reconfigure(&mut self, config: &crate::config::ConfigSet);
    fn is_idle(&self) -> bool;
    fn wait_fds(&self, fds: &mut Vec<i32>);
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn trace(&self) -> &dyn crate::trace::DynTraceBuf;
    fn trace_mut(&mut self) -> &mut dyn crate::trace::DynTraceBuf;
}

/// A node together with its trace buffer.
pub(crate) struct NodeCell<N: Node> {
    pub(crate) node: N,
    pub(crate) trace: crate::trace::TraceBuf<N::Trace>,
}

impl<N: Node> DynNode for NodeCell<N> {
    fn registration(&self) -> NodeRegistration {
        self.node.registration()
    }

    #[inline]
    fn run(&mut self, parts: crate::context::CtxParts<'_>, v: &mut Vector) {
        let mut cx = Ctx::new(parts, &mut self.trace);
        self.node.process(&mut cx, v);
    }

    fn reconfigure(&mut self, config: &crate::config::ConfigSet) {
        self.node.reconfigure(config)
    }

    fn is_idle(&self) -> bool {
        self.node.is_idle()
    }

    fn wait_fds(&self, fds: &mut Vec<i32>) {
        self.node.wait_fds(fds)
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        &mut self.node
    }

    fn trace(&self) -> &dyn crate::trace::DynTraceBuf {
        &self.trace
    }

    fn trace_mut(&mut self) -> &mut dyn crate::trace::DynTraceBuf {
        &mut self.trace
    }
}
