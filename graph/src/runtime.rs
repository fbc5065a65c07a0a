//! One worker's runtime: its node instances, pending frames, buffer pool, counters and trace, and
//! the dispatch loop.
//!
//! Frames are queued per target node: every node a vector's buffers go to gets them appended to
//! its open frame, and a full frame is queued whole. Merging by target keeps vectors large when
//! several nodes feed one (VPP keeps one frame per edge instead). Frames come from a pool sized
//! from the buffer count, so the packet path never allocates.

use crate::arc::FeatureConfig;
use crate::buffer::{BufferIndex, BufferPool, PoolStats};
use crate::config::ConfigSet;
use crate::context::CtxParts;
use crate::counters::{IfStats, NodeErrors, WorkerStats};
use crate::frame::{Frame, Vector, NEXT_CONSUMED};
use crate::graph::Layout;
use crate::handoff::HandoffPorts;
use crate::local::WorkerLocals;
use crate::node::{DynNode, NodeKind};
use crate::sys::rdtsc;
use crate::time::Time;
use crate::trace::{self, TraceLine, TraceState, MAX_TRACE};
use std::collections::VecDeque;
use std::sync::Arc;

const NO_FRAME: u32 = u32::MAX;
/// Passes over the node order per dispatch before yielding back to the input nodes (bounds the
/// work done for packets that loop back, e.g. ip4-local replies).
const MAX_PASSES: usize = 8;

/// Sizing of a runtime.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// Interfaces the counters have room for.
    pub max_interfaces: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            max_interfaces: 1024,
        }
    }
}

/// Frames queued per target node.
struct Queues {
    frames: Vec<Frame>,
    free_frames: Vec<u32>,
    /// The partly filled frame of each node.
    open: Vec<u32>,
    /// Full frames of each node, oldest first.
    ready: Vec<VecDeque<u32>>,
    /// Buffers queued in all frames.
    pending: usize,
}

impl Queues {
    /// Appends a run of buffers to node `t`'s frames, in bulk.
    #[inline(always)]
    fn enqueue_run(
        &mut self,
        t: usize,
        mut run: &[BufferIndex],
        pool: &mut BufferPool,
        stats: &WorkerStats,
    ) {
        while !run.is_empty() {
            let mut fi = self.open[t];
            if fi == NO_FRAME {
                match self.free_frames.pop() {
                    Some(f) => {
                        fi = f;
                        self.open[t] = f;
                    }
                    None => {
                        stats.misc().frame_drops.add(run.len() as u64);
                        pool.free_many(run);
                        return;
                    }
                }
            }
            let f = &mut self.frames[fi as usize];
            let took = f.extend_from_slice(run);
            self.pending += took;
            run = &run[took..];
            if f.is_full() {
                self.ready[t].push_back(fi);
                self.open[t] = NO_FRAME;
            }
        }
    }
}

/// One worker's graph instance.
pub struct Runtime {
    layout: Arc<Layout>,
    worker: usize,
    nodes: Vec<Box<dyn DynNode>>,
    pool: BufferPool,
    queues: Queues,
    vector: Box<Vector>,
    stats: Arc<WorkerStats>,
    trace_state: TraceState,
    trace_budget: Vec<u32>,
    features: Arc<FeatureConfig>,
    config: Arc<ConfigSet>,
    handoff: HandoffPorts,
    inputs: Vec<u32>,
    locals: WorkerLocals,
}

impl Runtime {
    /// Instantiates `layout`'s nodes for worker `worker`, with its buffer pool.
    pub fn new(layout: &Arc<Layout>, worker: usize, pool: BufferPool, cfg: &RuntimeConfig) -> Self {
        Self::with_handoff(layout, worker, pool, cfg, HandoffPorts::none(), None)
    }

    pub(crate) fn with_handoff(
        layout: &Arc<Layout>,
        worker: usize,
        pool: BufferPool,
        cfg: &RuntimeConfig,
        handoff: HandoffPorts,
        stats: Option<WorkerStats>,
    ) -> Self {
        let n = layout.node_count();
        // Every frame holds at least one buffer and at most one per node is partly filled, so
        // this many frames can never run out.
        let n_frames = pool.stats().total as usize / crate::FRAME_SIZE + 2 * n + 8;
        let stats = Arc::new(
            stats.unwrap_or_else(|| WorkerStats::new(n, layout.n_errors, cfg.max_interfaces)),
        );
        let inputs = (0..n as u32)
            .filter(|&i| layout.regs[i as usize].kind == NodeKind::Input)
            .collect();
        Self {
            layout: layout.clone(),
            worker,
            nodes: layout.instantiate(),
            pool,
            queues: Queues {
                frames: vec![Frame::default(); n_frames],
                free_frames: (0..n_frames as u32).rev().collect(),
                open: vec![NO_FRAME; n],
                ready: (0..n).map(|_| VecDeque::with_capacity(n_frames)).collect(),
                pending: 0,
            },
            vector: Box::default(),
            stats,
            trace_state: TraceState::default(),
            trace_budget: vec![0; n],
            features: Arc::new(FeatureConfig::default()),
            config: Arc::new(ConfigSet::new()),
            handoff,
            inputs,
            locals: WorkerLocals::default(),
        }
    }

    /// The graph layout.
    pub fn layout(&self) -> &Arc<Layout> {
        &self.layout
    }

    /// This worker's index.
    pub fn worker(&self) -> usize {
        self.worker
    }

    /// This worker's counters (shared with readers).
    pub fn stats(&self) -> &Arc<WorkerStats> {
        &self.stats
    }

    /// The buffer pool.
    pub fn pool(&mut self) -> &mut BufferPool {
        &mut self.pool
    }

    /// Pool counters.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// Installs a new configuration snapshot: every node takes what it needs (between frames).
    pub fn reconfigure(&mut self, config: Arc<ConfigSet>) {
        if let Some(f) = config.get::<FeatureConfig>() {
            self.features = f;
        }
        for n in &mut self.nodes {
            n.reconfigure(&config);
        }
        self.config = config;
    }

    /// The configuration now in force.
    pub fn config(&self) -> &Arc<ConfigSet> {
        &self.config
    }

    /// State this worker's nodes share (session tables), for dumps and clears on the worker.
    pub fn locals_mut(&mut self) -> &mut WorkerLocals {
        &mut self.locals
    }

    /// The instance of node `name` on this worker, if it has type `N` (for control actions such
    /// as adding a pg stream or a TX device).
    pub fn node_mut<N: 'static>(&mut self, name: &str) -> Option<&mut N> {
        let i = self.layout.node_index(name)?;
        self.nodes[i as usize].as_any_mut().downcast_mut::<N>()
    }

    /// Traces the next `count` packets that enter `node` (VPP's `trace add`). Preallocates room
    /// for their records in every node.
    pub fn trace_add(&mut self, node: &str, count: u32) -> Option<()> {
        let i = self.layout.node_index(node)? as usize;
        let b = &mut self.trace_budget[i];
        *b = b.saturating_add(count).min(MAX_TRACE);
        let want =
            self.trace_budget.iter().sum::<u32>() as usize + self.trace_state.next_id as usize;
        for n in &mut self.nodes {
            n.trace_mut().reserve(want.min(2 * MAX_TRACE as usize));
        }
        Some(())
    }

    /// Drops all trace records and budgets (`clear trace`).
    pub fn trace_clear(&mut self) {
        for n in &mut self.nodes {
            n.trace_mut().clear();
        }
        self.trace_budget.fill(0);
    }

    /// Trace records grouped per packet, in the order nodes saw them: (packet id, [(node, line)]).
    pub fn trace_lines(&self) -> Vec<(u32, Vec<(String, TraceLine)>)> {
        let mut all: Vec<(String, TraceLine)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            for l in n.trace().render() {
                all.push((self.layout.regs[i].name.clone(), l));
            }
        }
        all.sort_by_key(|(_, l)| (l.id, l.seq));
        let mut out: Vec<(u32, Vec<(String, TraceLine)>)> = Vec::new();
        for (node, l) in all {
            match out.last_mut() {
                Some((id, v)) if *id == l.id => v.push((node, l)),
                _ => out.push((l.id, vec![(node, l)])),
            }
        }
        out
    }

    /// Queues `buffers` for node `node` (tests and tools inject packets this way; input nodes
    /// are the normal source).
    pub fn inject(&mut self, node: u32, buffers: &[BufferIndex]) {
        if (node as usize) < self.queues.open.len() {
            self.queues
                .enqueue_run(node as usize, buffers, &mut self.pool, &self.stats);
        }
    }

    /// Takes the next frame queued for node `t` into the vector; false when none.
    fn load_vector(&mut self, t: usize) -> bool {
        let q = &mut self.queues;
        let fi = match q.ready[t].pop_front() {
            Some(f) => f,
            None if q.open[t] != NO_FRAME => std::mem::replace(&mut q.open[t], NO_FRAME),
            None => return false,
        };
        let f = &mut q.frames[fi as usize];
        let n = f.len();
        self.vector.buffers[..n].copy_from_slice(f.buffers());
        self.vector.len = n;
        q.pending -= n;
        f.clear();
        q.free_frames.push(fi);
        true
    }

    /// Runs node `i` on the vector and enqueues the results.
    fn run_node(&mut self, i: usize, now: Time) {
        let t0 = rdtsc();
        let n_in = self.vector.len;
        if self.trace_budget[i] > 0 {
            for k in 0..n_in {
                let bi = self.vector.buffers[k];
                let hdr = &mut self.pool.get_mut(bi).hdr;
                trace::mark(hdr, &mut self.trace_state, &mut self.trace_budget[i]);
            }
        }
        let base = self.layout.error_bases[i] as usize;
        let n_err = self.layout.regs[i].errors.len();
        let next_targets = &self.layout.next_targets[i];
        let parts = CtxParts {
            now,
            worker: self.worker,
            buffers: &mut self.pool,
            errors: NodeErrors {
                all: &self.stats.errors,
                descs: &self.layout.error_descs,
                base: base as u16,
                len: n_err as u16,
            },
            interfaces: IfStats {
                counters: &self.stats.interfaces,
            },
            trace_state: &mut self.trace_state,
            trace_budget: &mut self.trace_budget[i],
            node_arcs: &self.layout.node_arcs[i],
            features: &self.features,
            handoff: crate::handoff::HandoffOut {
                ports: &mut self.handoff,
                next_targets,
                pool_stats: &self.stats,
            },
            locals: &mut self.locals,
        };
        self.nodes[i].run(parts, &mut self.vector);
        // Bulk enqueue: runs of buffers with the same next node are copied in one go (most
        // vectors go one way).
        let n = self.vector.len;
        let targets = &self.layout.next_targets[i];
        let (nexts, buffers) = (&self.vector.nexts[..n], &self.vector.buffers[..n]);
        let mut k = 0;
        while k < n {
            let next = nexts[k];
            let mut e = k + 1;
            while e < n && nexts[e] == next {
                e += 1;
            }
            if next != NEXT_CONSUMED {
                match targets.get(next as usize) {
                    Some(&t) => self.queues.enqueue_run(
                        t as usize,
                        &buffers[k..e],
                        &mut self.pool,
                        &self.stats,
                    ),
                    None => {
                        // A node returned a slot it does not have: drop rather than misroute.
                        self.stats.misc().frame_drops.add((e - k) as u64);
                        self.pool.free_many(&buffers[k..e]);
                    }
                }
            }
            k = e;
        }
        let c = &self.stats.nodes[i];
        c.calls.add(1);
        c.vectors.add(n.max(n_in) as u64);
        c.clocks.add(rdtsc().wrapping_sub(t0));
    }

    /// One dispatch loop: receive handed-off frames, poll the input nodes, then run every node
    /// with pending frames until none are left (or a pass limit for looping packets). Returns the
    /// number of packets the input nodes produced.
    pub fn dispatch(&mut self, now: Time) -> usize {
        self.stats.misc().loops.add(1);
        self.pool.reclaim();
        self.receive_handoff();
        let mut produced = 0;
        for k in 0..self.inputs.len() {
            let i = self.inputs[k] as usize;
            self.vector.len = 0;
            self.run_node(i, now);
            produced += self.vector.len;
        }
        self.run_pending(now);
        if !self.handoff.out.is_empty() {
            self.handoff.flush(&mut self.pool, &self.stats);
            self.pool.flush_returns();
        }
        produced
    }

    /// Runs queued frames without polling inputs (tests that inject packets use this).
    pub fn run_pending(&mut self, now: Time) {
        let layout = self.layout.clone();
        for _ in 0..MAX_PASSES {
            if self.queues.pending == 0 {
                break;
            }
            for &i in &layout.order {
                let i = i as usize;
                if layout.regs[i].kind == NodeKind::Input {
                    continue;
                }
                while self.load_vector(i) {
                    self.run_node(i, now);
                }
            }
        }
    }

    fn receive_handoff(&mut self) {
        let Some(rx) = self.handoff.receiver.clone() else {
            return;
        };
        for _ in 0..crate::handoff::HANDOFF_QUEUE_FRAMES {
            let Ok(f) = rx.try_recv() else { break };
            let n = f.len as usize;
            self.stats.misc().handoff_received.add(n as u64);
            if (f.target as usize) < self.queues.open.len() {
                self.queues.enqueue_run(
                    f.target as usize,
                    &f.buffers[..n],
                    &mut self.pool,
                    &self.stats,
                );
            }
        }
    }

    /// True when every input node says it is idle (the worker may sleep).
    pub fn inputs_idle(&self) -> bool {
        self.inputs
            .iter()
            .all(|&i| self.nodes[i as usize].is_idle())
    }

    /// Descriptors the input nodes can be woken by (see `Node::wait_fds`).
    pub fn wait_fds(&self, fds: &mut Vec<i32>) {
        for &i in &self.inputs {
            self.nodes[i as usize].wait_fds(fds);
        }
    }

    /// Packets queued but not yet processed.
    pub fn pending(&self) -> usize {
        self.queues.pending
    }
}
