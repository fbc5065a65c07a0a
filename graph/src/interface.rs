//! Interfaces as the graph sees them, and `interface-output`, which hands each packet to the TX
//! device of its `tx_if`.
//!
//! Devices (AF_PACKET rings, pg capture) are per-worker objects installed into the node instance
//! by a control action, so adding an interface never rebuilds the graph.
//!
//! A virtual interface (a VXLAN tunnel) has no device: its packets go on to a graph node, its
//! *TX node* (VPP's per-interface tx function), which encapsulates them and sends the result on
//! through the graph. Which interfaces have one is part of the configuration snapshot
//! ([`TxNodes`]), so a tunnel and the routes through it appear in the same swap.

use crate::buffer::{BufferIndex, BufferPool};
use crate::config::ConfigSet;
use crate::context::Ctx;
use crate::frame::{Vector, FRAME_SIZE, NEXT_CONSUMED};
use crate::node::{Node, NodeRegistration};
use std::fmt;

/// Name of the output node.
pub const INTERFACE_OUTPUT: &str = "interface-output";

/// A transmit device owned by one worker.
pub trait TxDevice: Send {
    /// Transmits `buffers` (all for this device) and frees every one of them, sent or not.
    /// Returns how many were sent; the rest count as TX drops.
    fn tx(&mut self, pool: &mut BufferPool, buffers: &[BufferIndex]) -> usize;
}

crate::error_counters! {
    /// interface-output errors.
    pub enum InterfaceOutputError {
        /// No TX device on this worker for the interface.
        NoDevice = "no-device": "interface has no transmit device on this worker",
        /// The device could not take the packet (ring full).
        TxFull = "tx-full": "transmit ring full, packet dropped",
    }
}

/// Trace of a transmitted packet.
#[derive(Clone, Copy, Debug)]
pub struct OutputTrace {
    /// Interface.
    pub tx_if: u32,
    /// Bytes.
    pub len: u16,
}

impl fmt::Display for OutputTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx interface {} len {}", self.tx_if, self.len)
    }
}

/// Interfaces whose packets go to a graph node instead of a device: interface index → the
/// node's slot among `interface-output`'s next nodes (added with `GraphSpec::add_next`, found
/// with `Layout::next_slot`). Part of the configuration snapshot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxNodes {
    slots: Vec<u16>,
}

impl TxNodes {
    const NONE: u16 = u16::MAX;

    /// Sends `sw_if`'s packets to next slot `slot` (`None`: back to its device, if any).
    pub fn set(&mut self, sw_if: u32, slot: Option<u16>) {
        let i = sw_if as usize;
        if self.slots.len() <= i {
            self.slots.resize(i + 1, Self::NONE);
        }
        self.slots[i] = slot.unwrap_or(Self::NONE);
    }

    /// The TX node slot of `sw_if`, if it has one.
    #[inline(always)]
    pub fn get(&self, sw_if: u32) -> Option<u16> {
        self.slots
            .get(sw_if as usize)
            .copied()
            .filter(|&s| s != Self::NONE)
    }
}

/// The output node: groups a vector by TX interface and calls each device once per group.
#[derive(Default)]
pub struct InterfaceOutput {
    devices: Vec<Option<Box<dyn TxDevice>>>,
    tx_nodes: std::sync::Arc<TxNodes>,
    /// Scratch: buffers per device of the current vector.
    batch: Vec<BufferIndex>,
}

impl InterfaceOutput {
    /// Installs (or with `None` removes) the device of interface `sw_if` on this worker.
    pub fn set_device(&mut self, sw_if: u32, dev: Option<Box<dyn TxDevice>>) {
        let i = sw_if as usize;
        if self.devices.len() <= i {
            self.devices.resize_with(i + 1, || None);
        }
        self.devices[i] = dev;
        self.batch.reserve(FRAME_SIZE);
    }

    /// Removes and returns the device of `sw_if`, so the caller decides where it is dropped
    /// (closing a device may block, which a worker must not).
    pub fn take_device(&mut self, sw_if: u32) -> Option<Box<dyn TxDevice>> {
        self.devices.get_mut(sw_if as usize).and_then(Option::take)
    }

    /// The device of `sw_if`, for control actions that inspect it.
    pub fn device_mut(&mut self, sw_if: u32) -> Option<&mut (dyn TxDevice + 'static)> {
        self.devices
            .get_mut(sw_if as usize)
            .and_then(|d| d.as_deref_mut())
    }
}

impl Node for InterfaceOutput {
    type Trace = OutputTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            INTERFACE_OUTPUT,
            &[crate::drop::ERROR_DROP],
            InterfaceOutputError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<TxNodes>() {
            self.tx_nodes = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, OutputTrace>, v: &mut Vector) {
        if self.batch.capacity() < FRAME_SIZE {
            // First use on this worker without a device installed: control-path sized once.
            self.batch.reserve(FRAME_SIZE);
        }
        let n = v.len;
        // Group by interface: most vectors go to one or two interfaces, so sweep once per
        // distinct interface, marking what has been taken.
        let mut done = [false; FRAME_SIZE];
        for k in 0..n {
            if done[k] {
                continue;
            }
            let tx_if = cx.buffers.get(v.buffers[k]).hdr.tx_if;
            // A virtual interface's packets go on to its TX node rather than to a device, one by
            // one: no grouping scan, so a vector spread over a thousand tunnels stays linear.
            if let Some(slot) = self.tx_nodes.get(tx_if) {
                let b = cx.buffers.get(v.buffers[k]);
                let len = b.hdr.current_length;
                cx.tracer.add(&b.hdr, OutputTrace { tx_if, len });
                cx.interfaces.tx(tx_if, len as usize);
                v.nexts[k] = slot;
                continue;
            }
            self.batch.clear();
            for (j, taken) in done.iter_mut().enumerate().take(n).skip(k) {
                if *taken {
                    continue;
                }
                let b = cx.buffers.get(v.buffers[j]);
                if b.hdr.tx_if == tx_if {
                    *taken = true;
                    cx.tracer.add(
                        &b.hdr,
                        OutputTrace {
                            tx_if,
                            len: b.hdr.current_length,
                        },
                    );
                    cx.interfaces.tx(tx_if, b.hdr.current_length as usize);
                    self.batch.push(v.buffers[j]);
                    v.nexts[j] = NEXT_CONSUMED;
                }
            }
            match self
                .devices
                .get_mut(tx_if as usize)
                .and_then(|d| d.as_mut())
            {
                Some(dev) => {
                    let sent = dev.tx(cx.buffers, &self.batch);
                    let failed = self.batch.len() - sent.min(self.batch.len());
                    if failed > 0 {
                        cx.errors.count(InterfaceOutputError::TxFull, failed as u64);
                    }
                }
                None => {
                    cx.errors
                        .count(InterfaceOutputError::NoDevice, self.batch.len() as u64);
                    cx.buffers.free_many(&self.batch);
                }
            }
        }
    }
}

/// A device that frees what it is given and counts it (benchmarks' sink).
#[derive(Default)]
pub struct NullDevice {
    /// Packets taken.
    pub packets: u64,
}

impl TxDevice for NullDevice {
    fn tx(&mut self, pool: &mut BufferPool, buffers: &[BufferIndex]) -> usize {
        self.packets += buffers.len() as u64;
        pool.free_many(buffers);
        buffers.len()
    }
}
