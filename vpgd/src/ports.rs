//! AF_PACKET ports: one RX ring and one TX ring per worker per interface; with several workers the
//! RX sockets join a PACKET_FANOUT hash group so each flow stays on one worker.

use crate::dataplane::{Installer, PortBackend};
use vpg_graph::{InterfaceOutput, Runtime, INTERFACE_OUTPUT};
use vpg_io::{AfPacketInput, RingOptions, AF_PACKET_INPUT};

/// The daemon's port backend.
pub struct AfPacketPorts {
    opts: RingOptions,
    next_group: u16,
}

impl AfPacketPorts {
    /// With the given ring sizes.
    pub fn new(opts: RingOptions) -> Self {
        // Fanout group ids are per network namespace; start from the pid so two daemons in one
        // namespace (tests) do not join each other's groups.
        Self {
            opts,
            next_group: (std::process::id() & 0x7fff) as u16,
        }
    }
}

/// A Linux interface's MAC, asked of the kernel in this thread's network namespace.
pub fn host_mac(host_if: &str) -> Option<[u8; 6]> {
    vpg_io::afpacket::hw_addr(host_if).ok()
}

impl PortBackend for AfPacketPorts {
    fn host_mac(&self, host_if: &str) -> Option<[u8; 6]> {
        host_mac(host_if)
    }

    fn attach(&mut self, host_if: &str, workers: usize) -> Result<Vec<Installer>, String> {
        let mut opts = self.opts.clone();
        if workers > 1 {
            opts.fanout_group = Some(self.next_group);
            self.next_group = self.next_group.wrapping_add(1);
        }
        let mut out: Vec<Installer> = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (rx, tx) = vpg_io::open(host_if, &opts).map_err(|e| e.to_string())?;
            out.push(Box::new(move |rt: &mut Runtime, sw_if| {
                if let Some(n) = rt.node_mut::<AfPacketInput>(AF_PACKET_INPUT) {
                    n.add_interface(sw_if, rx);
                }
                if let Some(o) = rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT) {
                    o.set_device(sw_if, Some(Box::new(tx)));
                }
            }));
        }
        Ok(out)
    }

    fn detach(&self) -> Installer {
        Box::new(|rt: &mut Runtime, sw_if| {
            if let Some(n) = rt.node_mut::<AfPacketInput>(AF_PACKET_INPUT) {
                n.remove_interface(sw_if);
            }
            if let Some(o) = rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT) {
                o.set_device(sw_if, None);
            }
        })
    }
}
