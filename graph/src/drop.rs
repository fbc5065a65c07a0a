//! `error-drop`: frees dropped packets and counts each against the error that dropped it.

use crate::context::Ctx;
use crate::frame::{Vector, NEXT_CONSUMED};
use crate::node::ErrorDesc;
use crate::node::{Node, NodeRegistration};
use std::fmt;

/// Name of the drop node.
pub const ERROR_DROP: &str = "error-drop";

/// The drop node.
#[derive(Default)]
pub struct ErrorDrop;

/// Trace of a dropped packet: why, and where it came from.
#[derive(Clone, Copy, Debug)]
pub struct DropTrace {
    /// The error that dropped it (None: a node dropped without setting one).
    pub error: Option<&'static ErrorDesc>,
    /// Interface it arrived on.
    pub rx_if: u32,
}

impl fmt::Display for DropTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.error {
            Some(e) => write!(
                f,
                "drop: {} ({}), rx interface {}",
                e.name, e.description, self.rx_if
            ),
            None => write!(f, "drop: unknown error, rx interface {}", self.rx_if),
        }
    }
}

impl Node for ErrorDrop {
    type Trace = DropTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(ERROR_DROP, &[], &[])
    }

    fn process(&mut self, cx: &mut Ctx<'_, DropTrace>, v: &mut Vector) {
        for k in 0..v.len {
            let bi = v.buffers[k];
            let hdr = cx.buffers.get(bi).hdr;
            // The error index is global; count it against the node that set it.
            cx.errors.count_global(hdr.error);
            cx.interfaces.drop(hdr.rx_if);
            cx.tracer.add(
                &hdr,
                DropTrace {
                    error: cx.errors.describe(hdr.error),
                    rx_if: hdr.rx_if,
                },
            );
            cx.buffers.free(bi);
            v.nexts[k] = NEXT_CONSUMED;
        }
    }
}
