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
        /// L4 checksum completed in software (the sender offloaded it; not an error).
        ChecksumCompleted = "checksum-completed": "TCP/UDP checksum left to offload by the sender, computed",
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
                if f.csum_not_ready && complete_l4_checksum(b.data_mut()) {
                    cx.errors.count(AfPacketInputError::ChecksumCompleted, 1);
                }
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

/// Fills in the TCP or UDP checksum of an Ethernet/IPv4 frame whose sender left it to offload.
/// Returns whether it did. Frames of other kinds are left alone (forwarded as they are).
pub fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    use vpg_graph::wire::checksum;
    if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
        return false;
    }
    let ip = &mut frame[14..];
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let total = (u16::from_be_bytes([ip[2], ip[3]]) as usize).min(ip.len());
    if ihl < 20 || total < ihl || u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff != 0 {
        return false;
    }
    let csum_at = match ip[9] {
        6 => 16,
        17 => 6,
        _ => return false,
    };
    let src = std::net::Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]);
    let dst = std::net::Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
    let proto = ip[9];
    let l4 = &mut ip[ihl..total];
    if l4.len() < csum_at + 2 {
        return false;
    }
    l4[csum_at] = 0;
    l4[csum_at + 1] = 0;
    let sum = checksum::pseudo_header_v4(src, dst, proto, l4.len() as u32) + checksum::sum(l4);
    let mut c = !checksum::fold(sum);
    if proto == 17 && c == 0 {
        c = 0xffff; // RFC 768: a computed zero is sent as all ones.
    }
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::complete_l4_checksum;

    #[test]
    fn completes_tcp_and_udp_checksums() {
        for proto in [6u8, 17] {
            let b = etherparse::PacketBuilder::ethernet2([1; 6], [2; 6]).ipv4(
                [10, 0, 0, 1],
                [10, 0, 0, 2],
                64,
            );
            let mut f = Vec::new();
            if proto == 6 {
                b.tcp(1, 2, 3, 4).write(&mut f, b"hello world").unwrap();
            } else {
                b.udp(1, 2).write(&mut f, b"hello world").unwrap();
            }
            let good = f.clone();
            let at = 14 + 20 + if proto == 6 { 16 } else { 6 };
            f[at] ^= 0x5a;
            f[at + 1] ^= 0xa5;
            assert!(complete_l4_checksum(&mut f));
            assert_eq!(f, good, "proto {proto}");
        }
        let mut arp = vec![0u8; 60];
        arp[12] = 8;
        arp[13] = 6;
        assert!(!complete_l4_checksum(&mut arp));
        assert!(!complete_l4_checksum(&mut [0u8; 10]));
    }
}
