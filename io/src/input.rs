//! `af-packet-input`: polls the AF_PACKET RX rings this worker owns and copies received frames
//! into pool buffers.
//!
//! Why copy: the ring belongs to the kernel and is recycled block by block, while a buffer may
//! live on (queued for TX, handed to another worker, held by a feature); a copy of a 64–1500 byte
//! frame into a buffer that is already in cache is cheaper than tracking block lifetimes.

use crate::afpacket::AfPacketRx;
use std::fmt;
use std::os::fd::AsRawFd;
use vpg_graph::buffer::DATA_SIZE;
use vpg_graph::{Ctx, Node, NodeRegistration, Vector};

/// Name of the node.
pub const AF_PACKET_INPUT: &str = "af-packet-input";

vpg_graph::error_counters! {
    /// af-packet-input errors.
    pub enum AfPacketInputError {
        /// Longer than a buffer.
        Oversized = "oversized": "frame longer than a buffer (2048 bytes), dropped",
        /// Shorter than an Ethernet header.
        Runt = "runt": "frame shorter than an Ethernet header, dropped",
        /// The capture was shorter than the frame.
        Truncated = "truncated": "frame truncated by the ring, dropped",
        /// No buffer left in the pool.
        NoBuffers = "no-buffers": "buffer pool empty, frame dropped",
    }
}

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct AfPacketTrace {
    sw_if: u32,
    len: u32,
}

impl fmt::Display for AfPacketTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "af_packet: rx interface {} len {}", self.sw_if, self.len)
    }
}

/// The input node: the RX rings of this worker.
pub struct AfPacketInput {
    next: String,
    ports: Vec<(u32, AfPacketRx)>,
}

impl AfPacketInput {
    /// An input node whose packets go to `next` (`ethernet-input`).
    pub fn new(next: &str) -> Self {
        Self {
            next: next.into(),
            ports: Vec::new(),
        }
    }

    /// Starts polling `rx` as interface `sw_if` (replacing a previous ring of that interface).
    pub fn add_interface(&mut self, sw_if: u32, rx: AfPacketRx) {
        self.remove_interface(sw_if);
        self.ports.push((sw_if, rx));
    }

    /// Stops polling interface `sw_if` and closes its ring.
    pub fn remove_interface(&mut self, sw_if: u32) {
        self.ports.retain(|(s, _)| *s != sw_if);
    }

    /// Interfaces polled.
    pub fn interfaces(&self) -> Vec<u32> {
        self.ports.iter().map(|(s, _)| *s).collect()
    }
}

impl Node for AfPacketInput {
    type Trace = AfPacketTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::input(
            AF_PACKET_INPUT,
            &[self.next.as_str()],
            AfPacketInputError::DESCRIPTIONS,
        )
    }

    fn process(&mut self, cx: &mut Ctx<'_, AfPacketTrace>, v: &mut Vector) {
        let n = self.ports.len();
        if n == 0 {
            return;
        }
        // Share the vector among the interfaces so one busy port cannot starve the others.
        let quota = (v.room() / n).max(1);
        for (sw_if, rx) in self.ports.iter_mut() {
            let sw_if = *sw_if;
            let max = quota.min(v.room());
            rx.rx_burst(max, |f| {
                let len = f.data.len();
                let err = if f.wire_len as usize > DATA_SIZE {
                    Some(AfPacketInputError::Oversized)
                } else if (f.wire_len as usize) > len {
                    Some(AfPacketInputError::Truncated)
                } else if len < 14 {
                    Some(AfPacketInputError::Runt)
                } else {
                    None
                };
                if let Some(e) = err {
                    cx.errors.count(e, 1);
                    cx.interfaces.drop(sw_if);
                    return;
                }
                let Some(bi) = cx.buffers.alloc() else {
                    cx.errors.count(AfPacketInputError::NoBuffers, 1);
                    cx.interfaces.drop(sw_if);
                    return;
                };
                let b = cx.buffers.get_mut(bi);
                b.set_data(f.data);
                b.hdr.rx_if = sw_if;
                if cx.tracer.start(&mut b.hdr) {
                    cx.tracer.add(
                        &b.hdr,
                        AfPacketTrace {
                            sw_if,
                            len: len as u32,
                        },
                    );
                }
                cx.interfaces.rx(sw_if, len);
                v.push(bi, 0);
            });
        }
    }

    fn is_idle(&self) -> bool {
        !self.ports.iter().any(|(_, rx)| rx.has_packets())
    }

    fn wait_fds(&self, fds: &mut Vec<i32>) {
        fds.extend(self.ports.iter().map(|(_, rx)| rx.as_raw_fd()));
    }
}
