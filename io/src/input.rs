//! `af-packet-input`: polls the AF_PACKET RX rings this worker owns and copies received frames
//! into pool buffers.
//!
//! Why copy instead of pointing buffers into the ring: the ring belongs to the kernel and is
//! recycled a whole block at a time, while a buffer may live on (queued for TX, handed to another
//! worker, held by a feature), so one slow packet would pin a block of hundreds. Copying a
//! 64–1,500 byte frame into a buffer that is already in cache is cheaper than tracking block
//! lifetimes, and every input then produces the same kind of buffer, with headroom for
//! encapsulation.
//!
//! | counter | meaning |
//! |---|---|
//! | `oversized` | frame longer than a buffer (2,048 bytes), dropped whole |
//! | `runt` | frame shorter than an Ethernet header, dropped |
//! | `truncated` | the ring captured only part of the frame, dropped |
//! | `bad-descriptor` | ring descriptor outside its block, rest of the block skipped |
//! | `no-buffers` | buffer pool empty, frame dropped |
//! | `checksum-completed` | TCP/UDP checksum the sender left to offload, computed (not an error) |
//!
//! Multi-thread: one instance per worker, each with its own rings (one socket per worker per
//! interface, joined in a fanout group when several workers serve one interface).

use crate::afpacket::{AfPacketRx, RxCounts};
use std::fmt;
use std::os::fd::AsRawFd;
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
        /// A ring descriptor pointed outside its block.
        BadDescriptor = "bad-descriptor": "ring descriptor outside its block, rest of block skipped",
        /// No buffer left in the pool.
        NoBuffers = "no-buffers": "buffer pool empty, frame dropped",
        /// L4 checksum completed in software (the sender offloaded it; not an error).
        ChecksumCompleted = "checksum-completed": "TCP/UDP checksum left to offload by the sender, computed",
    }
}

/// Trace record of a received frame: where it came from and where it sat in the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AfPacketTrace {
    /// Interface.
    pub sw_if: u32,
    /// Bytes in the buffer.
    pub len: u32,
    /// Ring block.
    pub block: u32,
    /// Position in the block.
    pub frame: u32,
    /// A VLAN tag the kernel had stripped was put back.
    pub vlan_restored: bool,
}

impl fmt::Display for AfPacketTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "af_packet: rx interface {} len {} ring block {} frame {}",
            self.sw_if, self.len, self.block, self.frame
        )?;
        if self.vlan_restored {
            f.write_str(" vlan tag restored")?;
        }
        Ok(())
    }
}

/// One polled interface.
struct Port {
    sw_if: u32,
    rx: AfPacketRx,
    /// Took its whole share in the first pass of the last call (may have more).
    more: bool,
}

/// The input node: the RX rings of this worker.
pub struct AfPacketInput {
    next: String,
    ports: Vec<Port>,
    /// Port that goes first in the next call (rotates, so no port always has first pick).
    first: usize,
}

impl AfPacketInput {
    /// An input node whose packets go to `next` (`ethernet-input`).
    pub fn new(next: &str) -> Self {
        Self {
            next: next.into(),
            ports: Vec::new(),
            first: 0,
        }
    }

    /// Starts polling `rx` as interface `sw_if`, replacing (and closing) a previous ring of that
    /// interface. Control path.
    pub fn add_interface(&mut self, sw_if: u32, rx: AfPacketRx) {
        self.remove_interface(sw_if);
        self.ports.push(Port {
            sw_if,
            rx,
            more: false,
        });
    }

    /// Stops polling interface `sw_if` and closes its ring; returns whether it was polled.
    pub fn remove_interface(&mut self, sw_if: u32) -> bool {
        self.take_interface(sw_if).is_some()
    }

    /// Stops polling `sw_if` and hands its ring back instead of closing it. Closing an
    /// AF_PACKET socket waits for RCU grace periods in the kernel (tens of milliseconds on a
    /// small VM), which a worker must not spend: the caller closes it elsewhere.
    pub fn take_interface(&mut self, sw_if: u32) -> Option<AfPacketRx> {
        let i = self.ports.iter().position(|p| p.sw_if == sw_if)?;
        self.first = 0;
        Some(self.ports.remove(i).rx)
    }

    /// Interfaces polled, in polling order.
    pub fn interfaces(&self) -> Vec<u32> {
        self.ports.iter().map(|p| p.sw_if).collect()
    }

    /// What the rings of `sw_if` counted since they were opened.
    pub fn counts(&self, sw_if: u32) -> Option<RxCounts> {
        self.ports
            .iter()
            .find(|p| p.sw_if == sw_if)
            .map(|p| p.rx.totals())
    }

    /// Polls port `k` for at most `max` frames.
    #[inline(always)]
    fn poll_port(
        &mut self,
        k: usize,
        max: usize,
        cx: &mut Ctx<'_, AfPacketTrace>,
        v: &mut Vector,
    ) -> usize {
        let Some(port) = self.ports.get_mut(k) else {
            return 0;
        };
        let sw_if = port.sw_if;
        let mut completed = 0u64;
        let c = port.rx.rx_burst(cx.buffers, max, |b, bi, m| {
            b.hdr.rx_if = sw_if;
            if m.csum_not_ready && complete_l4_checksum(b.data_mut()) {
                completed += 1;
            }
            let len = b.hdr.current_length as usize;
            if cx.tracer.start(&mut b.hdr) {
                cx.tracer.add(
                    &b.hdr,
                    AfPacketTrace {
                        sw_if,
                        len: len as u32,
                        block: m.block,
                        frame: m.frame,
                        vlan_restored: m.vlan_restored,
                    },
                );
            }
            cx.interfaces.rx(sw_if, len);
            // Cannot fail: rx_burst delivers at most `max` <= room frames.
            v.push(bi, 0);
        });
        if completed > 0 {
            cx.errors
                .count(AfPacketInputError::ChecksumCompleted, completed);
        }
        if c.dropped() > 0 {
            count_drops(cx, sw_if, &c);
        }
        (c.delivered + c.dropped() + c.outgoing) as usize
    }
}

/// Charges a burst's drops to the node's counters and the interface (rare: kept out of line).
#[cold]
fn count_drops(cx: &mut Ctx<'_, AfPacketTrace>, sw_if: u32, c: &RxCounts) {
    let e = &cx.errors;
    e.count(AfPacketInputError::Oversized, c.oversized);
    e.count(AfPacketInputError::Runt, c.runt);
    e.count(AfPacketInputError::Truncated, c.truncated);
    e.count(AfPacketInputError::BadDescriptor, c.bad_descriptor);
    e.count(AfPacketInputError::NoBuffers, c.no_buffers);
    for _ in 0..c.dropped() {
        cx.interfaces.drop(sw_if);
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
        // First pass: every port gets an equal share of the vector, so one busy port cannot
        // starve the others; the starting port rotates so the rounding favours no one.
        let share = (v.room() / n).max(1);
        let first = self.first % n;
        self.first = first + 1;
        for i in 0..n {
            let k = (first + i) % n;
            let max = share.min(v.room());
            let took = self.poll_port(k, max, cx, v);
            self.ports[k].more = max > 0 && took == max;
        }
        // Second pass: room the quiet ports left goes to the busy ones, in the same order.
        for i in 0..n {
            let k = (first + i) % n;
            if v.room() == 0 {
                break;
            }
            if self.ports[k].more {
                let max = v.room();
                self.poll_port(k, max, cx, v);
            }
        }
    }

    fn is_idle(&self) -> bool {
        !self.ports.iter().any(|p| p.rx.has_packets())
    }

    fn wait_fds(&self, fds: &mut Vec<i32>) {
        fds.extend(self.ports.iter().map(|p| p.rx.as_raw_fd()));
    }
}

/// Fills in the TCP or UDP checksum of an Ethernet/IPv4 frame (with at most one VLAN tag) whose
/// sender left it to offload. Returns whether it did. Frames of other kinds, fragments and
/// frames too short for their headers are left alone (forwarded as they are).
pub fn complete_l4_checksum(frame: &mut [u8]) -> bool {
    use vpg_graph::wire::checksum;
    let l3 = match frame.get(12..14) {
        Some([0x81, 0x00] | [0x88, 0xa8]) => 18,
        Some(_) => 14,
        None => return false,
    };
    if frame.len() < l3 + 20 || frame[l3 - 2..l3] != [0x08, 0x00] {
        return false;
    }
    let ip = &mut frame[l3..];
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let total = (u16::from_be_bytes([ip[2], ip[3]]) as usize).min(ip.len());
    if ip[0] >> 4 != 4
        || ihl < 20
        || total < ihl
        || u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff != 0
    {
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
        //= https://www.rfc-editor.org/rfc/rfc768
        //# If the computed checksum is zero, it is transmitted as all ones.
        c = 0xffff;
    }
    l4[csum_at..csum_at + 2].copy_from_slice(&c.to_be_bytes());
    true
}

#[cfg(test)]
mod tests {
    use super::{complete_l4_checksum, AfPacketTrace};

    fn frame(proto: u8, vlan: bool) -> Vec<u8> {
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
        if vlan {
            f.splice(12..12, [0x81, 0x00, 0x00, 0x07]);
        }
        f
    }

    #[test]
    fn completes_tcp_and_udp_checksums_with_and_without_a_vlan_tag() {
        for vlan in [false, true] {
            for proto in [6u8, 17] {
                let good = frame(proto, vlan);
                let mut f = good.clone();
                let l3 = if vlan { 18 } else { 14 };
                let at = l3 + 20 + if proto == 6 { 16 } else { 6 };
                f[at] ^= 0x5a;
                f[at + 1] ^= 0xa5;
                assert!(complete_l4_checksum(&mut f));
                assert_eq!(f, good, "proto {proto} vlan {vlan}");
            }
        }
    }

    #[test]
    fn leaves_everything_else_alone() {
        let mut arp = vec![0u8; 60];
        arp[12] = 8;
        arp[13] = 6;
        assert!(!complete_l4_checksum(&mut arp));
        assert!(!complete_l4_checksum(&mut [0u8; 10]));
        assert!(!complete_l4_checksum(&mut []));
        // A fragment (MF set), a bad IHL, a length field past the frame: untouched, no panic.
        let mut frag = frame(17, false);
        frag[14 + 6] = 0x20;
        let before = frag.clone();
        assert!(!complete_l4_checksum(&mut frag));
        assert_eq!(frag, before);
        let mut bad_ihl = frame(6, false);
        bad_ihl[14] = 0x4f;
        assert!(!complete_l4_checksum(&mut bad_ihl));
        let mut short = frame(6, false);
        short.truncate(14 + 20 + 10);
        assert!(!complete_l4_checksum(&mut short), "TCP header cut");
        for n in 0..70 {
            let mut f = frame(17, true);
            f.truncate(n);
            complete_l4_checksum(&mut f);
        }
    }

    #[test]
    fn trace_line() {
        let t = AfPacketTrace {
            sw_if: 2,
            len: 98,
            block: 3,
            frame: 17,
            vlan_restored: false,
        };
        assert_eq!(
            t.to_string(),
            "af_packet: rx interface 2 len 98 ring block 3 frame 17"
        );
        let t = AfPacketTrace {
            vlan_restored: true,
            ..t
        };
        assert!(t.to_string().ends_with(" vlan tag restored"));
    }
}
