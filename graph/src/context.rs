//! The dispatch context a node gets in `process`: injected time, the worker's buffer pool, the
//! node's error counters, trace, feature arcs and handoff. Fields are public so a node can borrow
//! the pool mutably while counting an error.

use crate::arc::{ArcCursor, FeatureConfig, NodeArcSlots, N_ARCS};
use crate::buffer::BufferPool;
use crate::counters::{IfStats, NodeErrors};
use crate::handoff::HandoffOut;
use crate::local::WorkerLocals;
use crate::time::Time;
use crate::trace::{TraceBuf, TraceState, Tracer};

/// What the runtime lends a node for one call (type-erased part of [`Ctx`]).
pub(crate) struct CtxParts<'a> {
    pub(crate) now: Time,
    pub(crate) worker: usize,
    pub(crate) buffers: &'a mut BufferPool,
    pub(crate) errors: NodeErrors<'a>,
    pub(crate) interfaces: IfStats<'a>,
    pub(crate) trace_state: &'a mut TraceState,
    pub(crate) trace_budget: &'a mut u32,
    pub(crate) node_arcs: &'a [Option<NodeArcSlots>; N_ARCS],
    pub(crate) features: &'a FeatureConfig,
    pub(crate) handoff: HandoffOut<'a>,
    pub(crate) locals: &'a mut WorkerLocals,
}

/// The dispatch context of one node call.
pub struct Ctx<'a, T> {
    /// Now, as the worker loop read it before this dispatch (nodes never read a clock).
    pub now: Time,
    /// This worker's index.
    pub worker: usize,
    /// This worker's buffers.
    pub buffers: &'a mut BufferPool,
    /// This node's error counters.
    pub errors: NodeErrors<'a>,
    /// Interface counters.
    pub interfaces: IfStats<'a>,
    /// Packet trace.
    pub tracer: Tracer<'a, T>,
    /// Feature arcs.
    pub arcs: ArcCursor<'a>,
    /// Handoff to other workers.
    pub handoff: HandoffOut<'a>,
    /// State this worker's nodes share (session tables).
    pub locals: &'a mut WorkerLocals,
}

impl<'a, T> Ctx<'a, T> {
    pub(crate) fn new(p: CtxParts<'a>, trace: &'a mut TraceBuf<T>) -> Self {
        Ctx {
            now: p.now,
            worker: p.worker,
            buffers: p.buffers,
            errors: p.errors,
            interfaces: p.interfaces,
            tracer: Tracer {
                buf: trace,
                state: p.trace_state,
                budget: p.trace_budget,
                now: p.now,
            },
            arcs: ArcCursor {
                node_arcs: p.node_arcs,
                features: p.features,
            },
            handoff: p.handoff,
            locals: p.locals,
        }
    }
}
