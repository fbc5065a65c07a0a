//! Frames: up to 256 buffer indices moving between nodes, and the vector a node works on.

use crate::buffer::BufferIndex;

/// Most buffers in one frame (VPP's VLIB_FRAME_SIZE).
pub const FRAME_SIZE: usize = 256;

/// Next-node value meaning "the node kept or freed this buffer itself; do not enqueue it".
pub const NEXT_CONSUMED: u16 = u16::MAX;

/// A frame of buffer indices queued for a node.
#[derive(Clone)]
pub struct Frame {
    len: u16,
    buffers: [BufferIndex; FRAME_SIZE],
}

impl Default for Frame {
    fn default() -> Self {
        Self {
            len: 0,
            buffers: [BufferIndex(0); FRAME_SIZE],
        }
    }
}

impl Frame {
    /// Buffers in the frame.
    #[inline(always)]
    pub fn buffers(&self) -> &[BufferIndex] {
        &self.buffers[..self.len as usize]
    }

    /// Number of buffers.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// True when empty.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when full.
    #[inline(always)]
    pub fn is_full(&self) -> bool {
        self.len as usize == FRAME_SIZE
    }

    /// Appends a buffer; returns false when the frame is full.
    #[inline(always)]
    pub fn push(&mut self, bi: BufferIndex) -> bool {
        if let Some(slot) = self.buffers.get_mut(self.len as usize) {
            *slot = bi;
            self.len += 1;
            true
        } else {
            false
        }
    }

    /// Appends as many of `bis` as fit; returns how many.
    #[inline(always)]
    pub fn extend_from_slice(&mut self, bis: &[BufferIndex]) -> usize {
        let at = self.len as usize;
        let n = bis.len().min(FRAME_SIZE - at);
        self.buffers[at..at + n].copy_from_slice(&bis[..n]);
        self.len += n as u16;
        n
    }

    /// Empties the frame.
    #[inline(always)]
    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// The vector a node processes in one call: the buffers and, filled in by the node, the next-node
/// slot of each one. The runtime then enqueues them in bulk (VPP's `vlib_buffer_enqueue_to_next`).
///
/// For an internal node `len` buffers are present on entry and the node sets `nexts[i]` for each.
/// An input node is called with an empty vector and [`Vector::push`]es what it received.
pub struct Vector {
    /// Number of valid entries.
    pub len: usize,
    /// Buffer indices.
    pub buffers: [BufferIndex; FRAME_SIZE],
    /// Next-node slot per buffer (an index into the node's `next_nodes`, or [`NEXT_CONSUMED`]).
    pub nexts: [u16; FRAME_SIZE],
}

impl Default for Vector {
    fn default() -> Self {
        Self {
            len: 0,
            buffers: [BufferIndex(0); FRAME_SIZE],
            nexts: [0; FRAME_SIZE],
        }
    }
}

impl Vector {
    /// The buffers of this call.
    #[inline(always)]
    pub fn buffers(&self) -> &[BufferIndex] {
        &self.buffers[..self.len]
    }

    /// Appends a buffer with its next slot (input nodes); false when the vector is full.
    #[inline(always)]
    pub fn push(&mut self, bi: BufferIndex, next: u16) -> bool {
        if self.len < FRAME_SIZE {
            self.buffers[self.len] = bi;
            self.nexts[self.len] = next;
            self.len += 1;
            true
        } else {
            false
        }
    }

    /// Room left (input nodes stop receiving when it is zero).
    #[inline(always)]
    pub fn room(&self) -> usize {
        FRAME_SIZE - self.len
    }

    /// Sets every next slot to `next` (a node that sends everything one way).
    #[inline(always)]
    pub fn set_all_nexts(&mut self, next: u16) {
        self.nexts[..self.len].fill(next);
    }
}
