//! `ethernet-input`: checks the Ethernet header, keeps frames addressed to the interface (or
//! broadcast/multicast), strips the header and dispatches by ethertype.

use crate::tables::Ip4Tables;
use std::fmt;
use std::sync::Arc;
use vpg_graph::wire::{EtherType, EthernetAddress};
use vpg_graph::{ConfigSet, Ctx, Node, NodeRegistration, Vector};

vpg_graph::error_counters! {
    /// ethernet-input errors.
    pub enum EthernetInputError {
        /// Shorter than 14 bytes.
        TooShort = "too-short": "frame shorter than an Ethernet header",
        /// Neither IPv4 nor ARP.
        UnknownEthertype = "unknown-ethertype": "ethertype not handled (not IPv4 or ARP)",
        /// Unicast to another MAC.
        MacMismatch = "l3-mac-mismatch": "unicast destination MAC is not the interface's",
        /// Interface down or unknown.
        InterfaceDown = "interface-down": "received on an interface that is down or unknown",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_IP4: u16 = 1;
const NEXT_ARP: u16 = 2;

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct EthernetTrace {
    src: EthernetAddress,
    dst: EthernetAddress,
    ethertype: u16,
    rx_if: u32,
}

impl fmt::Display for EthernetTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} -> {} rx interface {}",
            EtherType::from(self.ethertype),
            self.src,
            self.dst,
            self.rx_if
        )
    }
}

/// The node.
#[derive(Default)]
pub struct EthernetInput {
    tables: Arc<Ip4Tables>,
}

impl Node for EthernetInput {
    type Trace = EthernetTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            "ethernet-input",
            &[vpg_graph::ERROR_DROP, "ip4-input", "arp-input"],
            EthernetInputError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<Ip4Tables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, EthernetTrace>, v: &mut Vector) {
        let tables = &*self.tables;
        // The MAC of the interface of the previous packet: vectors usually come from one interface.
        let mut last_if = u32::MAX;
        let mut last_mac = [0u8; 6];
        let mut last_up = false;
        for k in 0..v.len {
            if k + 2 < v.len {
                cx.buffers.prefetch(v.buffers[k + 2]);
            }
            let b = cx.buffers.get_mut(v.buffers[k]);
            let rx_if = b.hdr.rx_if;
            if rx_if != last_if {
                last_if = rx_if;
                match tables.interface(rx_if) {
                    Some(i) => {
                        last_mac = i.mac.0;
                        last_up = i.admin_up;
                    }
                    None => last_up = false,
                }
            }
            let d = b.data();
            let (next, err) = if d.len() < 14 {
                (NEXT_DROP, Some(EthernetInputError::TooShort))
            } else if !last_up {
                (NEXT_DROP, Some(EthernetInputError::InterfaceDown))
            } else {
                let dst: [u8; 6] = [d[0], d[1], d[2], d[3], d[4], d[5]];
                let ethertype = u16::from_be_bytes([d[12], d[13]]);
                if b.is_traced() {
                    let src = EthernetAddress([d[6], d[7], d[8], d[9], d[10], d[11]]);
                    let t = EthernetTrace {
                        src,
                        dst: EthernetAddress(dst),
                        ethertype,
                        rx_if,
                    };
                    cx.tracer.add(&b.hdr, t);
                }
                // Group bit set: broadcast or multicast, accepted.
                if dst != last_mac && dst[0] & 1 == 0 {
                    (NEXT_DROP, Some(EthernetInputError::MacMismatch))
                } else {
                    match ethertype {
                        0x0800 => (NEXT_IP4, None),
                        0x0806 => (NEXT_ARP, None),
                        _ => (NEXT_DROP, Some(EthernetInputError::UnknownEthertype)),
                    }
                }
            };
            match err {
                Some(e) => b.hdr.error = cx.errors.index(e),
                None => {
                    b.advance(14);
                }
            }
            v.nexts[k] = next;
        }
    }
}
