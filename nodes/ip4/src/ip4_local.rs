//! `ip4-local`: packets for one of the node's own addresses. Answers ICMP echo requests in place;
//! everything else is dropped and counted until a later node (VXLAN, ESP) claims its protocol.

use std::fmt;
use std::net::Ipv4Addr;
use vpg_graph::wire::checksum;
use vpg_graph::{Ctx, Node, NodeRegistration, Vector};

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
}

impl fmt::Display for Ip4LocalTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = vpg_graph::wire::IpProtocol::from(self.proto);
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
pub struct Ip4Local;

impl Node for Ip4Local {
    type Trace = Ip4LocalTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            "ip4-local",
            &[vpg_graph::ERROR_DROP, "ip4-lookup"],
            Ip4LocalError::DESCRIPTIONS,
        )
    }

    fn process(&mut self, cx: &mut Ctx<'_, Ip4LocalTrace>, v: &mut Vector) {
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
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
