//! `ip4-input`: validates the IPv4 header (version, header length, total length, checksum, TTL),
//! trims Ethernet padding and puts the packet on the `ip4-unicast` feature arc.

use std::fmt;
use std::net::Ipv4Addr;
use vpg_graph::wire::checksum;
use vpg_graph::{ArcId, Ctx, Node, NodeRegistration, Vector};

vpg_graph::error_counters! {
    /// ip4-input errors.
    pub enum Ip4InputError {
        /// Shorter than a minimal IPv4 header.
        TooShort = "too-short": "packet shorter than an IPv4 header",
        /// Version is not 4.
        BadVersion = "bad-version": "IP version is not 4",
        /// IHL below 5 or beyond the packet.
        BadHeaderLength = "bad-header-length": "IPv4 header length below 20 bytes or beyond the packet",
        /// Total length below the header or beyond the packet.
        BadLength = "bad-length": "IPv4 total length inconsistent with the packet",
        /// Checksum mismatch.
        BadChecksum = "bad-checksum": "IPv4 header checksum is wrong",
        /// TTL is zero.
        TimeExpired = "time-expired": "IPv4 TTL is zero",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_ICMP_ERROR: u16 = 1;

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct Ip4InputTrace {
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    ttl: u8,
    len: u16,
}

impl fmt::Display for Ip4InputTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = vpg_graph::wire::IpProtocol::from(self.proto);
        write!(
            f,
            "{}: {} -> {} ttl {} len {}",
            p, self.src, self.dst, self.ttl, self.len
        )
    }
}

/// The node.
#[derive(Default)]
pub struct Ip4Input;

impl Node for Ip4Input {
    type Trace = Ip4InputTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            "ip4-input",
            &[vpg_graph::ERROR_DROP, "ip4-icmp-error"],
            Ip4InputError::DESCRIPTIONS,
        )
    }

    fn process(&mut self, cx: &mut Ctx<'_, Ip4InputTrace>, v: &mut Vector) {
        // The arc's next node depends only on the interface, and a vector usually comes from one.
        let (mut last_if, mut last_next) = (u32::MAX, 0u16);
        for k in 0..v.len {
            if k + 2 < v.len {
                cx.buffers.prefetch(v.buffers[k + 2]);
            }
            let b = cx.buffers.get_mut(v.buffers[k]);
            let d = b.data();
            let n = d.len();
            if n >= 20 && b.is_traced() {
                let t = Ip4InputTrace {
                    src: Ipv4Addr::new(d[12], d[13], d[14], d[15]),
                    dst: Ipv4Addr::new(d[16], d[17], d[18], d[19]),
                    proto: d[9],
                    ttl: d[8],
                    len: u16::from_be_bytes([d[2], d[3]]),
                };
                cx.tracer.add(&b.hdr, t);
            }
            let err = if n < 20 {
                Some(Ip4InputError::TooShort)
            } else if d[0] >> 4 != 4 {
                Some(Ip4InputError::BadVersion)
            } else {
                let ihl = (d[0] & 0x0f) as usize * 4;
                let total = u16::from_be_bytes([d[2], d[3]]) as usize;
                if ihl < 20 || ihl > n {
                    Some(Ip4InputError::BadHeaderLength)
                } else if total < ihl || total > n {
                    Some(Ip4InputError::BadLength)
                } else if !header_checksum_ok(&d[..ihl]) {
                    Some(Ip4InputError::BadChecksum)
                } else if d[8] == 0 {
                    Some(Ip4InputError::TimeExpired)
                } else {
                    // Ethernet pads short frames to 60 bytes: the IP packet ends at total length.
                    b.set_len(total);
                    None
                }
            };
            v.nexts[k] = match err {
                None => {
                    if b.hdr.rx_if != last_if {
                        last_if = b.hdr.rx_if;
                        last_next = cx.arcs.next(ArcId::Ip4Unicast, last_if);
                    }
                    last_next
                }
                Some(Ip4InputError::TimeExpired) => {
                    b.hdr.meta.icmp = vpg_graph::buffer::IcmpMeta {
                        kind: 11,
                        code: 0,
                        data: 0,
                    };
                    cx.errors.count(Ip4InputError::TimeExpired, 1);
                    NEXT_ICMP_ERROR
                }
                Some(e) => {
                    b.hdr.error = cx.errors.index(e);
                    NEXT_DROP
                }
            };
        }
    }
}

/// True when the header's ones-complement sum is 0xffff. The common 20-byte header is summed as
/// five 32-bit words, which the compiler turns into a few adds.
#[inline(always)]
fn header_checksum_ok(h: &[u8]) -> bool {
    if let Ok(w) = <&[u8; 20]>::try_from(h) {
        let mut s: u64 = 0;
        for i in 0..5 {
            s += u32::from_be_bytes([w[4 * i], w[4 * i + 1], w[4 * i + 2], w[4 * i + 3]]) as u64;
        }
        let s = (s & 0xffff_ffff) + (s >> 32);
        let s = (s & 0xffff) + (s >> 16);
        let s = (s & 0xffff) + (s >> 16);
        let s = (s & 0xffff) + (s >> 16);
        s == 0xffff
    } else {
        checksum::data(h) == 0
    }
}
