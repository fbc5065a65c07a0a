//! `vxlan4-encap`: the TX node of tunnel interfaces. `interface-output` hands it the inner
//! Ethernet frames leaving a tunnel (IP rewritten by `ip4-rewrite` with the far end's MAC, ARP
//! from `arp-input` and `ip4-glean`); it prepends the tunnel's precomputed outer IPv4, UDP and
//! VXLAN headers, fixes the two lengths and the IPv4 checksum, picks the UDP source port from a
//! hash of the inner flow, and sends the result to `ip4-lookup`, which routes it to the far VTEP
//! like any other packet of this node.

use crate::tunnel::{flow_hash, src_port, VxlanTables, ENCAP_LEN, NO_TUNNEL};
use crate::ENCAP_NODE;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::{ConfigSet, Ctx, Node, NodeRegistration, Vector};

vpg_graph::error_counters! {
    /// vxlan4-encap errors.
    pub enum VxlanEncapError {
        /// The interface is not (or no longer) a tunnel.
        NoTunnel = "no-tunnel": "transmit interface is not a vxlan tunnel (deleted?)",
        /// Not enough headroom for the outer headers.
        NoHeadroom = "no-headroom": "no headroom for the vxlan outer headers",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_LOOKUP: u16 = 1;

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct VxlanEncapTrace {
    sw_if: u32,
    vni: u32,
    remote: Ipv4Addr,
    src_port: u16,
    len: u16,
}

impl fmt::Display for VxlanEncapTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VXLAN encap tunnel if {} vni {} to {} sport {} len {}",
            self.sw_if, self.vni, self.remote, self.src_port, self.len
        )
    }
}

/// The node.
#[derive(Default)]
pub struct VxlanEncap {
    tables: Arc<VxlanTables>,
}

impl Node for VxlanEncap {
    type Trace = VxlanEncapTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            ENCAP_NODE,
            &[vpg_graph::ERROR_DROP, "ip4-lookup"],
            VxlanEncapError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<VxlanTables>() {
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, VxlanEncapTrace>, v: &mut Vector) {
        let tables = &*self.tables;
        // Vectors from interface-output come grouped by interface: look the tunnel up once per
        // run of one interface.
        let (mut last_if, mut last_t) = (u32::MAX, NO_TUNNEL);
        for k in 0..v.len {
            if k + 2 < v.len {
                cx.buffers.prefetch(v.buffers[k + 2]);
            }
            // The outer headers go into the headroom line before the packet, which no node has
            // touched yet: fetch it one packet ahead (its header line came two ahead).
            if let Some(&next) = v.buffers[..v.len].get(k + 1) {
                let p = cx.buffers.get(next).data().as_ptr();
                vpg_graph::sys::prefetch(p.wrapping_sub(ENCAP_LEN));
            }
            let b = cx.buffers.get_mut(v.buffers[k]);
            let tx_if = b.hdr.tx_if;
            if tx_if != last_if {
                last_if = tx_if;
                last_t = tables.tunnel_of(tx_if);
            }
            let Some(t) = tables.tunnels.get(last_t as usize) else {
                b.hdr.error = cx.errors.index(VxlanEncapError::NoTunnel);
                cx.interfaces.drop(tx_if);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            let inner_len = b.hdr.current_length;
            let hash = flow_hash(b.data());
            let sport = src_port(hash);
            let Some(Ok(h)) = b.prepend(ENCAP_LEN).map(<&mut [u8; ENCAP_LEN]>::try_from) else {
                b.hdr.error = cx.errors.index(VxlanEncapError::NoHeadroom);
                cx.interfaces.drop(tx_if);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            t.write(h, inner_len, sport);
            b.hdr.meta.tunnel.tunnel = last_t;
            b.hdr.meta.ip4.flow_hash = hash;
            if b.is_traced() {
                let h = &t.header;
                cx.tracer.add(
                    &b.hdr,
                    VxlanEncapTrace {
                        sw_if: tx_if,
                        vni: u32::from_be_bytes([0, h[32], h[33], h[34]]),
                        remote: Ipv4Addr::new(h[16], h[17], h[18], h[19]),
                        src_port: sport,
                        len: inner_len,
                    },
                );
            }
            v.nexts[k] = NEXT_LOOKUP;
        }
    }
}
