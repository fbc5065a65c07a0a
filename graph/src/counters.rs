//! Counters that workers write and the control side reads without stopping them.
//!
//! Each counter has exactly one writer (its worker), so an increment is a relaxed load and store:
//! a plain `mov` on x86, no locked instruction on the packet path. Readers see a value at most one
//! update old. (The stats segment of vpgd maps the same layout into a file for vpgctl.)

use crate::sys::{SegSlice, SharedRegion};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// A single-writer counter.
#[repr(transparent)]
#[derive(Default, Debug)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n` (only the owning worker calls this).
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// The current value.
    #[inline(always)]
    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    /// Resets to zero (`clear` commands; a racing increment may be lost, which clear accepts).
    pub fn clear(&self) {
        self.0.store(0, Relaxed);
    }
}

/// Runtime counters of one node on one worker (`show runtime`).
#[repr(C)]
#[derive(Default, Debug)]
pub struct NodeCounters {
    /// Times the node was called.
    pub calls: Counter,
    /// Packets (vectors, in VPP's words) it processed.
    pub vectors: Counter,
    /// TSC clocks spent in it, including the bulk enqueue to its next nodes.
    pub clocks: Counter,
}

/// Counters of one interface on one worker.
#[repr(C)]
#[derive(Default, Debug)]
pub struct InterfaceCounters {
    /// Packets received.
    pub rx_packets: Counter,
    /// Bytes received.
    pub rx_bytes: Counter,
    /// Packets transmitted.
    pub tx_packets: Counter,
    /// Bytes transmitted.
    pub tx_bytes: Counter,
    /// Packets dropped that arrived on this interface.
    pub drops: Counter,
}

impl InterfaceCounters {
    /// Zeroes all five.
    pub fn clear(&self) {
        self.rx_packets.clear();
        self.rx_bytes.clear();
        self.tx_packets.clear();
        self.tx_bytes.clear();
        self.drops.clear();
    }
}

/// Per-worker counters of the runtime itself.
#[repr(C)]
#[derive(Default, Debug)]
pub struct MiscCounters {
    /// Dispatch loops run.
    pub loops: Counter,
    /// Buffers handed to other workers.
    pub handoff_sent: Counter,
    /// Buffers received from other workers.
    pub handoff_received: Counter,
    /// Buffers dropped because a handoff queue was full.
    pub handoff_drops: Counter,
    /// Buffers dropped because no frame was free or a node returned a bad next slot (a bug;
    /// expected to stay zero).
    pub frame_drops: Counter,
}

/// Everything one worker counts, in a shared region (the stats segment, or an anonymous mapping
/// for a runtime without one).
pub struct WorkerStats {
    /// Per node, by node index.
    pub nodes: SegSlice<NodeCounters>,
    /// Per error, by global error index (see `Layout::error_info`).
    pub errors: SegSlice<Counter>,
    /// Per interface, by interface index.
    pub interfaces: SegSlice<InterfaceCounters>,
    misc: SegSlice<MiscCounters>,
}

impl AsRef<WorkerStats> for WorkerStats {
    fn as_ref(&self) -> &WorkerStats {
        self
    }
}

/// Bytes of one worker's block for these sizes (see `stats_segment`).
pub(crate) fn block_size(nodes: usize, errors: usize, interfaces: usize) -> usize {
    (nodes * 3 + errors + interfaces * 5 + 5) * 8
}

impl WorkerStats {
    /// Counters laid out in `region` at `offset` (a block of `block_size` bytes).
    pub(crate) fn in_region(
        region: &std::sync::Arc<SharedRegion>,
        offset: usize,
        nodes: usize,
        errors: usize,
        interfaces: usize,
    ) -> Option<Self> {
        let n_off = offset;
        let e_off = n_off + nodes * 24;
        let i_off = e_off + errors * 8;
        let m_off = i_off + interfaces * 40;
        Some(Self {
            nodes: SegSlice::new(region, n_off, nodes)?,
            errors: SegSlice::new(region, e_off, errors)?,
            interfaces: SegSlice::new(region, i_off, interfaces)?,
            misc: SegSlice::new(region, m_off, 1)?,
        })
    }

    /// Counters in their own anonymous region.
    pub(crate) fn new(nodes: usize, errors: usize, interfaces: usize) -> Self {
        let region = SharedRegion::anonymous(block_size(nodes, errors, interfaces))
            .expect("anonymous mapping for counters");
        Self::in_region(&region, 0, nodes, errors, interfaces).expect("block fits its own region")
    }

    /// The runtime's own counters.
    #[inline(always)]
    pub fn misc(&self) -> &MiscCounters {
        &self.misc[0]
    }

    /// Zeroes the node runtime counters (`clear runtime`).
    pub fn clear_runtime(&self) {
        for n in self.nodes.iter() {
            n.calls.clear();
            n.vectors.clear();
            n.clocks.clear();
        }
        self.misc().loops.clear();
    }

    /// Zeroes the error counters (`clear errors`).
    pub fn clear_errors(&self) {
        self.errors.iter().for_each(Counter::clear);
        self.misc().handoff_drops.clear();
        self.misc().frame_drops.clear();
    }

    /// Zeroes interface counters (`clear interfaces`).
    pub fn clear_interfaces(&self) {
        self.interfaces.iter().for_each(InterfaceCounters::clear);
    }

    /// Zeroes the counters of interface `sw_if` (an index handed to a new interface starts at
    /// zero, as in VPP). Called on the owning worker, between frames, nothing is lost to a
    /// racing increment; an index beyond the counters is ignored.
    pub fn clear_interface(&self, sw_if: u32) {
        if let Some(i) = self.interfaces.get(sw_if as usize) {
            i.clear();
        }
    }
}

/// A node's error counters inside `process`.
pub struct NodeErrors<'a> {
    pub(crate) all: &'a [Counter],
    pub(crate) descs: &'a [&'static crate::ErrorDesc],
    pub(crate) base: u16,
    pub(crate) len: u16,
}

impl NodeErrors<'_> {
    /// Counts `n` occurrences of error `code` (for errors that do not drop the packet).
    #[inline(always)]
    pub fn count(&self, code: impl Into<u16>, n: u64) {
        let code = code.into();
        if code < self.len {
            if let Some(c) = self.all.get((self.base + code) as usize) {
                c.add(n);
            }
        }
    }

    /// Counts one occurrence of the error with global index `index` (used by `error-drop`).
    #[inline(always)]
    pub fn count_global(&self, index: u16) {
        if let Some(c) = self.all.get(index as usize) {
            c.add(1);
        }
    }

    /// Name and description of the error with global index `index`.
    pub fn describe(&self, index: u16) -> Option<&'static crate::ErrorDesc> {
        self.descs.get(index as usize).copied()
    }

    /// The global error index of `code`, to store in `BufferHdr::error` before sending the
    /// packet to `error-drop`, which counts it.
    #[inline(always)]
    pub fn index(&self, code: impl Into<u16>) -> u16 {
        self.base + code.into()
    }
}

/// Interface counters inside `process`.
pub struct IfStats<'a> {
    pub(crate) counters: &'a [InterfaceCounters],
}

impl IfStats<'_> {
    /// Counts a received packet.
    #[inline(always)]
    pub fn rx(&self, sw_if: u32, bytes: usize) {
        if let Some(c) = self.counters.get(sw_if as usize) {
            c.rx_packets.add(1);
            c.rx_bytes.add(bytes as u64);
        }
    }

    /// Counts `packets` received packets of `bytes` in all (a node counting a run at once).
    #[inline(always)]
    pub fn rx_many(&self, sw_if: u32, packets: u64, bytes: u64) {
        if let Some(c) = self.counters.get(sw_if as usize) {
            c.rx_packets.add(packets);
            c.rx_bytes.add(bytes);
        }
    }

    /// Counts a transmitted packet.
    #[inline(always)]
    pub fn tx(&self, sw_if: u32, bytes: usize) {
        if let Some(c) = self.counters.get(sw_if as usize) {
            c.tx_packets.add(1);
            c.tx_bytes.add(bytes as u64);
        }
    }

    /// Counts a dropped packet against the interface it arrived on.
    #[inline(always)]
    pub fn drop(&self, sw_if: u32) {
        if let Some(c) = self.counters.get(sw_if as usize) {
            c.drops.add(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearing_one_interface_leaves_the_others() {
        let s = WorkerStats::new(1, 1, 4);
        let ifs = IfStats {
            counters: &s.interfaces,
        };
        for i in 0..4 {
            ifs.rx(i, 100);
            ifs.tx(i, 60);
            ifs.drop(i);
        }
        s.clear_interface(2);
        s.clear_interface(99); // beyond the counters: ignored
        let c = &s.interfaces;
        assert_eq!(
            (
                c[2].rx_packets.get(),
                c[2].rx_bytes.get(),
                c[2].tx_bytes.get(),
                c[2].drops.get()
            ),
            (0, 0, 0, 0)
        );
        for i in [0, 1, 3] {
            assert_eq!((c[i].rx_bytes.get(), c[i].tx_bytes.get()), (100, 60));
        }
    }
}
