//! `vxlan4-decap`: VXLAN packets `ip4-local` hands over (UDP to a tunnel port on one of our
//! addresses). Checks the outer UDP and VXLAN headers, finds the tunnel by (outer destination,
//! outer source, VNI, UDP port) with a one-entry cache per vector, strips the outer headers and
//! sends the inner frame to `ethernet-input` as received on the tunnel's interface. Frames whose
//! source MAC differs from the far end's known one are reported for learning when the tunnel has
//! no configured MAC.

use crate::tunnel::{VxlanTables, NO_TUNNEL};
use crate::DECAP_NODE;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::wire::EthernetAddress;
use vpg_graph::{ConfigSet, Ctx, Node, NodeRegistration, Vector, FRAME_SIZE};

vpg_graph::error_counters! {
    /// vxlan4-decap errors and counts.
    pub enum VxlanDecapError {
        /// Too short for IPv4, UDP, VXLAN and an Ethernet header.
        TooShort = "too-short": "shorter than outer headers and an inner Ethernet header",
        /// UDP length disagrees with the IPv4 length.
        BadUdpLength = "bad-udp-length": "UDP length disagrees with the IPv4 total length",
        /// The I flag is clear.
        BadFlags = "bad-flags": "VXLAN I flag clear (no valid VNI)",
        /// No tunnel has this VNI.
        NoSuchVni = "no-such-vni": "no vxlan tunnel has this VNI",
        /// The VNI is known, but not between these VTEPs on this port.
        NoSuchTunnel = "no-such-tunnel": "VNI known, but no tunnel between these VTEPs on this port",
        /// Far-end MACs reported for learning (not an error).
        Learned = "mac-learned": "far-end MACs reported for learning",
        /// The learning queue was full.
        LearnQueueFull = "learn-queue-full": "MAC learning queue full, not learned",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_ETHERNET: u16 = 1;

/// Outer IPv4 (without options), UDP and VXLAN: what a packet needs beyond its inner frame.
const OUTER_MIN: usize = 20 + 8 + 8;

/// A far-end MAC seen in decapsulated traffic, for the control side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LearnedPeer {
    /// The tunnel's interface.
    pub sw_if: u32,
    /// The inner source MAC.
    pub mac: EthernetAddress,
}

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct VxlanDecapTrace {
    remote: Ipv4Addr,
    vni: u32,
    /// The tunnel's interface, or `u32::MAX` with `error` set.
    sw_if: u32,
    error: Option<VxlanDecapError>,
}

impl fmt::Display for VxlanDecapTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VXLAN decap from {} vni {}: ", self.remote, self.vni)?;
        match self.error {
            None => write!(f, "tunnel if {}", self.sw_if),
            Some(e) => write!(f, "{}", VxlanDecapError::DESCRIPTIONS[e as usize].name),
        }
    }
}

/// A packet's outer headers as pass 1 of `process` found them.
#[derive(Clone, Copy, Debug, Default)]
struct Parsed {
    a: u64,
    b: u64,
    ihl: u16,
    error: Option<VxlanDecapError>,
}

/// The node.
pub struct VxlanDecap {
    tables: Arc<VxlanTables>,
    learn: Option<crossbeam_channel::Sender<LearnedPeer>>,
    /// Per tunnel, the MAC this worker last reported (so one change is reported once).
    reported: Vec<[u8; 6]>,
    /// Pass 1's results for the vector.
    parsed: Box<[Parsed; FRAME_SIZE]>,
}

impl Default for VxlanDecap {
    fn default() -> Self {
        Self {
            tables: Arc::default(),
            learn: None,
            reported: Vec::new(),
            parsed: Box::new([Parsed::default(); FRAME_SIZE]),
        }
    }
}

impl VxlanDecap {
    /// Sends far-end MACs to `tx` (a bounded channel; full means not learned, counted).
    pub fn set_learn_sender(&mut self, tx: crossbeam_channel::Sender<LearnedPeer>) {
        self.learn = Some(tx);
    }

    /// Reports `mac` as tunnel `t`'s far end unless this worker already did.
    #[cold]
    fn report(&mut self, cx: &Ctx<'_, VxlanDecapTrace>, t: u32, sw_if: u32, mac: [u8; 6]) {
        let (Some(tx), Some(last)) = (&self.learn, self.reported.get_mut(t as usize)) else {
            return;
        };
        if *last == mac || mac[0] & 1 != 0 {
            return;
        }
        let peer = LearnedPeer {
            sw_if,
            mac: EthernetAddress(mac),
        };
        if tx.try_send(peer).is_ok() {
            *last = mac;
            cx.errors.count(VxlanDecapError::Learned, 1);
        } else {
            cx.errors.count(VxlanDecapError::LearnQueueFull, 1);
        }
    }
}

/// Checks the outer headers of `d` (an IPv4 packet); returns the IPv4 header length and the
/// decap key, or the reason to drop.
#[inline(always)]
fn parse(d: &[u8]) -> Result<(usize, u64, u64), VxlanDecapError> {
    if d.len() < OUTER_MIN + 14 {
        return Err(VxlanDecapError::TooShort);
    }
    let ihl = (d[0] & 0x0f) as usize * 4;
    let Some(h) = d.get(ihl..ihl + 16) else {
        return Err(VxlanDecapError::TooShort);
    };
    if d.len() < ihl + 16 + 14 {
        return Err(VxlanDecapError::TooShort);
    }
    // ip4-input trimmed the packet to the IPv4 total length.
    if u16::from_be_bytes([h[4], h[5]]) as usize != d.len() - ihl {
        return Err(VxlanDecapError::BadUdpLength);
    }
    //= https://www.rfc-editor.org/rfc/rfc7348#section-5
    //# Flags (8 bits): where the I flag MUST be set to 1 for a valid
    //# VXLAN Network ID (VNI).  The other 7 bits (designated "R") are
    //# reserved fields and MUST be set to zero on transmission and
    //# ignored on receipt.
    if h[8] & 0x08 == 0 {
        return Err(VxlanDecapError::BadFlags);
    }
    //= https://www.rfc-editor.org/rfc/rfc7348#section-5
    //# When a packet is received with a UDP checksum of zero,
    //# it MUST be accepted for decapsulation.
    // A non-zero checksum MAY be verified; like the Linux kernel by default, we do not: the inner
    // frame's own checksums still protect what the far end delivers.
    let local = u32::from_be_bytes([d[16], d[17], d[18], d[19]]);
    let remote = u32::from_be_bytes([d[12], d[13], d[14], d[15]]);
    let vni = u32::from_be_bytes([0, h[12], h[13], h[14]]);
    let port = u16::from_be_bytes([h[2], h[3]]);
    Ok((
        ihl,
        u64::from(local) << 32 | u64::from(remote),
        u64::from(vni) << 16 | u64::from(port),
    ))
}

impl Node for VxlanDecap {
    type Trace = VxlanDecapTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            DECAP_NODE,
            &[vpg_graph::ERROR_DROP, "ethernet-input"],
            VxlanDecapError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        if let Some(t) = c.get::<VxlanTables>() {
            // Sized here, on the control path; a new snapshot may renumber tunnels, so what was
            // reported is forgotten (at worst one more report per tunnel).
            self.reported.clear();
            self.reported.resize(t.tunnels.len(), [0; 6]);
            self.tables = t;
        }
    }

    fn process(&mut self, cx: &mut Ctx<'_, VxlanDecapTrace>, v: &mut Vector) {
        let tables = self.tables.clone();
        let n = v.len;
        // Pass 1: check every packet's outer headers and prefetch the hash slot of its key, so
        // the lookups of pass 2 find their lines in cache even with a thousand tunnels.
        let (mut pa, mut pb) = (u64::MAX, u64::MAX);
        for k in 0..n {
            if k + 2 < n {
                cx.buffers.prefetch(v.buffers[k + 2]);
            }
            self.parsed[k] = match parse(cx.buffers.get(v.buffers[k]).data()) {
                Ok((ihl, a, b)) => {
                    if (a, b) != (pa, pb) {
                        tables.decap.prefetch(a, b);
                        (pa, pb) = (a, b);
                    }
                    Parsed {
                        a,
                        b,
                        ihl: ihl as u16,
                        error: None,
                    }
                }
                Err(e) => Parsed {
                    a: 0,
                    b: 0,
                    ihl: 0,
                    error: Some(e),
                },
            };
        }
        // Pass 2: look up with a one-entry cache (a vector's packets mostly come from one
        // tunnel), strip, hand on. Receive counters are added once per run of one tunnel.
        let (mut ca, mut cb, mut ct) = (u64::MAX, u64::MAX, NO_TUNNEL);
        let (mut run_if, mut run_pkts, mut run_bytes) = (u32::MAX, 0u64, 0u64);
        for k in 0..n {
            let p = self.parsed[k];
            let b = cx.buffers.get_mut(v.buffers[k]);
            if p.error.is_none() && (p.a != ca || p.b != cb) {
                (ca, cb, ct) = (p.a, p.b, tables.decap.get(p.a, p.b));
            }
            let t = if p.error.is_none() { ct } else { NO_TUNNEL };
            let Some(tun) = tables.tunnels.get(t as usize) else {
                let vni = (p.b >> 16) as u32;
                let e = match p.error {
                    Some(e) => e,
                    None if tables.vnis.binary_search(&vni).is_ok() => {
                        VxlanDecapError::NoSuchTunnel
                    }
                    None => VxlanDecapError::NoSuchVni,
                };
                b.hdr.error = cx.errors.index(e);
                if b.is_traced() {
                    let remote = match b.data().get(12..16) {
                        Some(s) => Ipv4Addr::new(s[0], s[1], s[2], s[3]),
                        None => Ipv4Addr::UNSPECIFIED,
                    };
                    let tr = VxlanDecapTrace {
                        remote,
                        vni,
                        sw_if: u32::MAX,
                        error: Some(e),
                    };
                    cx.tracer.add(&b.hdr, tr);
                }
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            if b.is_traced() {
                let tr = VxlanDecapTrace {
                    remote: Ipv4Addr::from(p.a as u32),
                    vni: (p.b >> 16) as u32,
                    sw_if: tun.sw_if,
                    error: None,
                };
                cx.tracer.add(&b.hdr, tr);
            }
            // parse() checked the length, so this cannot fail.
            b.advance(isize::from(p.ihl as i16) + 16);
            b.hdr.rx_if = tun.sw_if;
            b.hdr.meta.tunnel.tunnel = t;
            let d = b.data();
            if tun.sw_if != run_if {
                if run_pkts > 0 {
                    cx.interfaces.rx_many(run_if, run_pkts, run_bytes);
                }
                (run_if, run_pkts, run_bytes) = (tun.sw_if, 0, 0);
            }
            run_pkts += 1;
            run_bytes += d.len() as u64;
            let src = [d[6], d[7], d[8], d[9], d[10], d[11]];
            v.nexts[k] = NEXT_ETHERNET;
            if tun.learn && src != tun.peer_mac {
                let sw_if = tun.sw_if;
                self.report(cx, t, sw_if, src);
            }
        }
        if run_pkts > 0 {
            cx.interfaces.rx_many(run_if, run_pkts, run_bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_names_each_fault() {
        let mut p = vec![0u8; 20 + 16 + 14];
        p[0] = 0x45;
        p[24..26].copy_from_slice(&30u16.to_be_bytes());
        p[22..24].copy_from_slice(&4789u16.to_be_bytes());
        p[28] = 0x08;
        p[32..35].copy_from_slice(&[0, 0, 42]);
        let (ihl, _, b) = parse(&p).unwrap();
        assert_eq!((ihl, b), (20, 42 << 16 | 4789));
        assert_eq!(parse(&p[..49]), Err(VxlanDecapError::TooShort));
        let mut q = p.clone();
        q[0] = 0x4f; // 60-byte header: beyond the packet's UDP
        assert_eq!(parse(&q), Err(VxlanDecapError::TooShort));
        let mut q = p.clone();
        q[25] = 31;
        assert_eq!(parse(&q), Err(VxlanDecapError::BadUdpLength));
        let mut q = p.clone();
        q[28] = 0xf7;
        assert_eq!(parse(&q), Err(VxlanDecapError::BadFlags));
        q[28] = 0xff; // reserved bits are ignored
        assert!(parse(&q).is_ok());
    }
}
