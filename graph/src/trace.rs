//! Packet trace: the next N packets entering a node are marked, and every node they pass records a
//! small `Copy` struct. Records are formatted only when `show trace` asks.

use crate::buffer::{BufferHdr, FLAG_TRACED};
use crate::node::TraceRecord;
use crate::time::Time;

/// Most packets one `trace add` may ask for.
pub const MAX_TRACE: u32 = 10_000;

struct Entry<T> {
    id: u32,
    seq: u32,
    time: Time,
    record: T,
}

/// One node's trace records on one worker, preallocated when tracing is enabled.
pub struct TraceBuf<T> {
    entries: Vec<Entry<T>>,
}

impl<T> Default for TraceBuf<T> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

/// One rendered trace line (for `show trace`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceLine {
    /// The packet's trace id.
    pub id: u32,
    /// Order within the worker.
    pub seq: u32,
    /// When the node ran.
    pub time: Time,
    /// The record, formatted.
    pub text: String,
}

/// Type-erased access to a node's trace buffer (control path).
pub(crate) trait DynTraceBuf {
    fn clear(&mut self);
    fn reserve(&mut self, n: usize);
    fn render(&self) -> Vec<TraceLine>;
}

impl<T: TraceRecord> DynTraceBuf for TraceBuf<T> {
    fn clear(&mut self) {
        self.entries.clear();
    }

    fn reserve(&mut self, n: usize) {
        let want = n.saturating_sub(self.entries.len());
        self.entries.reserve_exact(want);
    }

    fn render(&self) -> Vec<TraceLine> {
        self.entries
            .iter()
            .map(|e| TraceLine {
                id: e.id,
                seq: e.seq,
                time: e.time,
                text: e.record.to_string(),
            })
            .collect()
    }
}

/// Per-worker trace state.
#[derive(Default)]
pub(crate) struct TraceState {
    pub(crate) next_id: u32,
    pub(crate) seq: u32,
}

/// A node's handle on tracing inside `process`.
pub struct Tracer<'a, T> {
    pub(crate) buf: &'a mut TraceBuf<T>,
    pub(crate) state: &'a mut TraceState,
    pub(crate) budget: &'a mut u32,
    pub(crate) now: Time,
}

impl<T: TraceRecord> Tracer<'_, T> {
    /// Records `record` for a traced packet; does nothing for others. Never allocates: when the
    /// preallocated space is used up, further records are not kept.
    #[inline(always)]
    pub fn add(&mut self, hdr: &BufferHdr, record: T) {
        if hdr.flags & FLAG_TRACED != 0 {
            self.push(hdr.trace_id, record);
        }
    }

    #[cold]
    fn push(&mut self, id: u32, record: T) {
        if self.buf.entries.len() < self.buf.entries.capacity() {
            let seq = self.state.seq;
            self.state.seq = seq.wrapping_add(1);
            self.buf.entries.push(Entry {
                id,
                seq,
                time: self.now,
                record,
            });
        }
    }

    /// For input nodes: marks a newly received packet as traced while this node's trace budget
    /// lasts. Returns whether the packet is traced.
    #[inline(always)]
    pub fn start(&mut self, hdr: &mut BufferHdr) -> bool {
        if *self.budget == 0 {
            return hdr.flags & FLAG_TRACED != 0;
        }
        mark(hdr, self.state, self.budget)
    }
}

/// Marks `hdr` traced if it is not yet, spending budget.
#[cold]
pub(crate) fn mark(hdr: &mut BufferHdr, state: &mut TraceState, budget: &mut u32) -> bool {
    if hdr.flags & FLAG_TRACED == 0 && *budget > 0 {
        *budget -= 1;
        hdr.flags |= FLAG_TRACED;
        hdr.trace_id = state.next_id;
        state.next_id = state.next_id.wrapping_add(1);
    }
    hdr.flags & FLAG_TRACED != 0
}
