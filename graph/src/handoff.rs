//! Handoff between workers: a node sends a buffer to a node on another worker (the one that owns
//! the state for that flow) through a bounded crossbeam channel of whole frames. A full channel
//! drops and counts; nothing blocks.

use crate::buffer::{BufferIndex, BufferPool};
use crate::counters::WorkerStats;
use crate::frame::FRAME_SIZE;
use crossbeam_channel::{Receiver, Sender, TrySendError};

/// A frame travelling to another worker, for one target node.
pub(crate) struct HandoffFrame {
    pub(crate) target: u32,
    pub(crate) len: u16,
    pub(crate) buffers: [BufferIndex; FRAME_SIZE],
}

/// Frames per handoff queue.
pub const HANDOFF_QUEUE_FRAMES: usize = 64;

/// One worker's handoff channels.
pub(crate) struct HandoffPorts {
    pub(crate) senders: Vec<Sender<HandoffFrame>>,
    pub(crate) receiver: Option<Receiver<HandoffFrame>>,
    /// One frame being filled per destination worker.
    pub(crate) out: Vec<HandoffFrame>,
}

impl HandoffPorts {
    pub(crate) fn none() -> Self {
        Self {
            senders: Vec::new(),
            receiver: None,
            out: Vec::new(),
        }
    }

    /// Creates the channels for `n` workers: element `w` is worker w's ports.
    pub(crate) fn mesh(n: usize) -> Vec<Self> {
        let chans: Vec<_> = (0..n)
            .map(|_| crossbeam_channel::bounded(HANDOFF_QUEUE_FRAMES))
            .collect();
        (0..n)
            .map(|w| HandoffPorts {
                senders: chans.iter().map(|(s, _)| s.clone()).collect(),
                receiver: Some(chans[w].1.clone()),
                out: (0..n)
                    .map(|_| HandoffFrame {
                        target: 0,
                        len: 0,
                        buffers: [BufferIndex(0); FRAME_SIZE],
                    })
                    .collect(),
            })
            .collect()
    }

    /// Sends every partly filled frame.
    pub(crate) fn flush(&mut self, pool: &mut BufferPool, stats: &WorkerStats) {
        for w in 0..self.out.len() {
            flush_one(&self.senders, &mut self.out, w, pool, stats);
        }
    }
}

fn flush_one(
    senders: &[Sender<HandoffFrame>],
    out: &mut [HandoffFrame],
    w: usize,
    pool: &mut BufferPool,
    stats: &WorkerStats,
) {
    let Some(f) = out.get_mut(w) else { return };
    if f.len == 0 {
        return;
    }
    let n = f.len as usize;
    let frame = HandoffFrame {
        target: f.target,
        len: f.len,
        buffers: f.buffers,
    };
    f.len = 0;
    let Some(tx) = senders.get(w) else { return };
    // The frame travels by value through a preallocated channel slot: no allocation.
    match tx.try_send(frame) {
        Ok(()) => stats.misc().handoff_sent.add(n as u64),
        Err(TrySendError::Full(fr) | TrySendError::Disconnected(fr)) => {
            pool.free_many(&fr.buffers[..n]);
            stats.misc().handoff_drops.add(n as u64);
        }
    }
}

/// A node's handle on handoff inside `process`.
pub struct HandoffOut<'a> {
    pub(crate) ports: &'a mut HandoffPorts,
    pub(crate) next_targets: &'a [u32],
    pub(crate) pool_stats: &'a WorkerStats,
}

impl HandoffOut<'_> {
    /// Number of workers reachable (0 when the runtime runs alone).
    pub fn workers(&self) -> usize {
        self.ports.senders.len()
    }

    /// Hands `bi` to worker `worker`, to be processed there by this node's next node `next`.
    /// The node must then mark the buffer consumed. Returns false when `worker` or `next` does not
    /// exist; the caller still owns the buffer then.
    ///
    /// A full queue drops the frame being flushed (counted in `handoff_drops`).
    #[inline]
    pub fn send(
        &mut self,
        pool: &mut BufferPool,
        worker: usize,
        next: u16,
        bi: BufferIndex,
    ) -> bool {
        let Some(&target) = self.next_targets.get(next as usize) else {
            return false;
        };
        if worker >= self.ports.out.len() {
            return false;
        }
        let needs_flush = {
            let f = &self.ports.out[worker];
            f.len > 0 && (f.target != target || f.len as usize == FRAME_SIZE)
        };
        if needs_flush {
            flush_one(
                &self.ports.senders,
                &mut self.ports.out,
                worker,
                pool,
                self.pool_stats,
            );
        }
        let f = &mut self.ports.out[worker];
        f.target = target;
        f.buffers[f.len as usize] = bi;
        f.len += 1;
        true
    }
}
