//! `ip4-local`: packets for one of the node's own addresses. Answers ICMP echo requests in place;
//! hands UDP to the node registered for its destination port ([`LocalUdpPorts`]: VXLAN's 4789 to
//! `vxlan4-decap`); everything else is dropped and counted until a later node (ESP) claims its
//! protocol.

use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::wire::checksum;
use vpg_graph::{ConfigSet, Ctx, Layout, Node, NodeRegistration, Vector};

/// Name of the node.
pub const IP4_LOCAL: &str = "ip4-local";

/// UDP destination ports that other nodes take from `ip4-local` (VPP's `udp_register_dst_port`):
/// port → slot among ip4-local's next nodes. The node is added to ip4-local with
/// `GraphSpec::add_next`; this table, part of the configuration snapshot, says which ports go
/// to it. A handful of entries, searched in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalUdpPorts {
    ports: Vec<(u16, u16)>,
}

/// A node named in [`LocalUdpPorts::new`] is not one of ip4-local's next nodes.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("node '{0}' is not a next node of ip4-local (add it with GraphSpec::add_next)")]
pub struct NotANextNode(pub String);

impl LocalUdpPorts {
    /// Resolves `(port, node)` pairs against `layout`.
    pub fn new<'a>(
        layout: &Layout,
        ports: impl IntoIterator<Item = (u16, &'a str)>,
    ) -> Result<Self, NotANextNode> {
        let mut out = Vec::new();
        for (port, node) in ports {
            let slot = layout
                .next_slot(IP4_LOCAL, node)
                .ok_or_else(|| NotANextNode(node.into()))?;
            if !out.iter().any(|&(p, _)| p == port) {
                out.push((port, slot));
            }
        }
        Ok(Self { ports: out })
    }

    /// The next slot for UDP destination port `port`.
    #[inline(always)]
    fn slot(&self, port: u16) -> Option<u16> {
        self.ports
            .iter()
            .find(|&&(p, _)| p == port)
            .map(|&(_, s)| s)
    }
}

vpg_graph::error_counters! {
    /// ip4-local errors and counts.
    pub enum Ip4LocalError {
        /// Echo replies sent (not an error).
        EchoReplies = "echo-replies": "ICMP echo replies sent",
        /// ICMP too short or with a bad checksum.
        BadIcmp = "bad-icmp": "ICMP message too short or with a bad checksum",
        /// ICMP other than echo request.
        IcmpIgnored = "icmp-ignored": "ICMP message type not handled",
        /// No local handler for the protocol.
        UnknownProtocol = "unknown-protocol": "no local handler for the IP protocol",
        /// A fragment for us (vpg does not reassemble).
        Fragment = "fragment": "fragmented packet for a local address (no reassembly)",
        /// UDP handed to the node registered for its port (not an error).
        UdpHandedOn = "udp-handed-on": "UDP packets handed to the node of their port (VXLAN)",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_LOOKUP: u16 = 1;

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct Ip4LocalTrace {
    src: Ipv4Addr,
    proto: u8,
    replied: bool,
    /// UDP destination port handed to another node (0: none).
    port: u16,
}

impl fmt::Display for Ip4LocalTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = vpg_graph::wire::IpProtocol::from(self.proto);
        if self.port != 0 {
            return write!(f, "{} from {}: port {} handed on", p, self.src, self.port);
        }
        let what = if self.replied {
            "echo reply sent"
        } else {
            "not handled"
        };
        write!(f, "{} from {}: {}", p, self.src, what)
    }
}

/// The node.
#[derive(Default)]
pub struct Ip4Local {
    udp: Arc<LocalUdpPorts>,
}

/// The UDP destination port of a whole (unfragmented) UDP packet.
#[inline(always)]
fn udp_dst_port(d: &[u8]) -> Option<u16> {
    if d.len() < 28 || d[9] != 17 || u16::from_be_bytes([d[6], d[7]]) & 0x3fff != 0 {
        return None;
    }
    let ihl = (d[0] & 0x0f) as usize * 4;
    let p = d.get(ihl + 2..ihl + 4)?;
    Some(u16::from_be_bytes([p[0], p[1]]))
}

impl Node for Ip4Local {
    type Trace = Ip4LocalTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            IP4_LOCAL,
            &[vpg_graph::ERROR_DROP, "ip4-lookup"],
            Ip4LocalError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(u) = c.get::<LocalUdpPorts>() {
            self.udp = u;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, Ip4LocalTrace>, v: &mut Vector) {
        let mut handed_on = 0;
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
            if !self.udp.ports.is_empty() {
                let hit = udp_dst_port(b.data()).and_then(|p| Some((p, self.udp.slot(p)?)));
                if let Some((port, slot)) = hit {
                    if b.is_traced() {
                        let d = b.data();
                        let t = Ip4LocalTrace {
                            src: Ipv4Addr::new(d[12], d[13], d[14], d[15]),
                            proto: 17,
                            replied: false,
                            port,
                        };
                        cx.tracer.add(&b.hdr, t);
                    }
                    handed_on += 1;
                    v.nexts[k] = slot;
                    continue;
                }
            }
            let result = echo_reply(b.data_mut());
            let d = b.data();
            let (src, proto) = match d.get(9..16) {
                Some(h) => (Ipv4Addr::new(h[3], h[4], h[5], h[6]), h[0]),
                None => (Ipv4Addr::UNSPECIFIED, 0),
            };
            cx.tracer.add(
                &b.hdr,
                Ip4LocalTrace {
                    src,
                    proto,
                    replied: result.is_ok(),
                    port: 0,
                },
            );
            v.nexts[k] = match result {
                Ok(()) => {
                    cx.errors.count(Ip4LocalError::EchoReplies, 1);
                    NEXT_LOOKUP
                }
                Err(e) => {
                    b.hdr.error = cx.errors.index(e);
                    NEXT_DROP
                }
            };
        }
        if handed_on > 0 {
            cx.errors.count(Ip4LocalError::UdpHandedOn, handed_on);
        }
    }
}

/// Turns an echo request into its reply in place: addresses swapped, type 0, TTL 64, both
/// checksums fixed.
fn echo_reply(d: &mut [u8]) -> Result<(), Ip4LocalError> {
    let ihl = (d.first().copied().unwrap_or(0) & 0x0f) as usize * 4;
    if d.len() < ihl + 8 || ihl < 20 {
        return Err(if d.get(9) == Some(&1) {
            Ip4LocalError::BadIcmp
        } else {
            Ip4LocalError::UnknownProtocol
        });
    }
    if d[9] != 1 {
        return Err(Ip4LocalError::UnknownProtocol);
    }
    if d[6] & 0x3f != 0 || d[7] != 0 {
        return Err(Ip4LocalError::Fragment);
    }
    let (ip, icmp) = d.split_at_mut(ihl);
    if checksum::data(icmp) != 0 {
        return Err(Ip4LocalError::BadIcmp);
    }
    if icmp[0] != 8 {
        return Err(Ip4LocalError::IcmpIgnored);
    }
    // Type 8 → 0 changes the first 16-bit word from 0x08cc to 0x00cc.
    let old = u16::from_be_bytes([icmp[0], icmp[1]]);
    icmp[0] = 0;
    let csum = u16::from_be_bytes([icmp[2], icmp[3]]);
    let new_csum = checksum::update_u16(csum, old, u16::from_be_bytes([icmp[0], icmp[1]]));
    icmp[2..4].copy_from_slice(&new_csum.to_be_bytes());
    let mut src = [0u8; 4];
    src.copy_from_slice(&ip[12..16]);
    ip.copy_within(16..20, 12);
    ip[16..20].copy_from_slice(&src);
    ip[8] = 64;
    ip[10] = 0;
    ip[11] = 0;
    let c = checksum::data(ip);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udp_ports_resolve_against_the_layout() {
        let mut g = vpg_graph::GraphSpec::new();
        crate::register(&mut g);
        g.add_next(IP4_LOCAL, "ip4-glean");
        let l = g.build().unwrap();
        let u = LocalUdpPorts::new(&l, [(4789, "ip4-glean"), (4789, "ip4-glean")]).unwrap();
        assert_eq!(u.ports.len(), 1);
        assert_eq!(u.slot(4789), l.next_slot(IP4_LOCAL, "ip4-glean"));
        assert_eq!(u.slot(53), None);
        assert_eq!(
            LocalUdpPorts::new(&l, [(1, "arp-input")]),
            Err(NotANextNode("arp-input".into()))
        );
    }

    #[test]
    fn only_whole_udp_packets_have_a_port() {
        let mut d = [0u8; 28];
        d[0] = 0x45;
        d[9] = 17;
        d[22..24].copy_from_slice(&4789u16.to_be_bytes());
        assert_eq!(udp_dst_port(&d), Some(4789));
        d[6] = 0x20; // more fragments
        assert_eq!(udp_dst_port(&d), None);
        d[6] = 0x40; // DF is fine
        assert_eq!(udp_dst_port(&d), Some(4789));
        d[9] = 6;
        assert_eq!(udp_dst_port(&d), None);
        assert_eq!(udp_dst_port(&d[..27]), None);
    }
}
