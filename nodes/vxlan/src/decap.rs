//! `vxlan4-decap`: VXLAN packets `ip4-local` hands over (UDP to a tunnel port on one of our
//! addresses). Checks the outer UDP and VXLAN headers, finds the tunnel by (outer destination,
//! outer source, VNI, UDP port) with a one-entry cache per vector, strips the outer headers and
//! sends the inner frame to `ethernet-input` as received on the tunnel's interface. Frames whose
//! source MAC differs from the far end's known one are reported for learning when the tunnel has
//! no configured MAC.

use crate::tunnel::{DecapEntry, VxlanTables};
use crate::DECAP_NODE;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::buffer::FLAG_TRACED;
use vpg_graph::counters::NodeErrors;
use vpg_graph::trace::Tracer;
use vpg_graph::wire::EthernetAddress;
use vpg_graph::{Buffer, ConfigSet, Ctx, Node, NodeRegistration, Vector, FRAME_SIZE};

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
    /// When the worker saw it: the control side ignores a report older than the tunnel (its
    /// interface index may have been reused since).
    pub seen: vpg_graph::Time,
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

/// Set in [`Parsed::b`] when pass 1 found the packet bad; the low bits are the error code.
/// (A real `b` has 40 bits.)
const PARSE_ERROR: u64 = 1 << 63;
/// [`Parsed::slot`]: the key is the previous good packet's (pass 2 reuses its tunnel).
const SAME: u32 = u32::MAX;
/// [`Parsed::slot`]: the packet is bad (`b` says why).
const BAD: u32 = u32::MAX - 1;

/// A packet as pass 1 of `process` found it.
#[derive(Clone, Copy, Debug, Default)]
struct Parsed {
    /// Decap key, or `a` = 0 and `b` = [`PARSE_ERROR`] | error code.
    a: u64,
    b: u64,
    /// The decap table slot of the key, or [`SAME`] or [`BAD`].
    slot: u32,
    /// Outer bytes to strip: IPv4 header, UDP and VXLAN.
    strip: u32,
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
}

/// Reports the inner source MAC of `b` (just decapsulated) as tunnel `e`'s far end, unless it
/// is the known one or this worker already reported it.
#[cold]
#[inline(never)]
fn learn(
    learn: &Option<crossbeam_channel::Sender<LearnedPeer>>,
    reported: &mut [[u8; 6]],
    errors: &NodeErrors<'_>,
    e: &DecapEntry,
    b: &Buffer,
    now: vpg_graph::Time,
) {
    let Some(&[_, _, _, _, _, _, m0, m1, m2, m3, m4, m5]) = b.head::<12>() else {
        return;
    };
    let mac = [m0, m1, m2, m3, m4, m5];
    let (Some(tx), Some(last)) = (learn, reported.get_mut(e.tunnel as usize)) else {
        return;
    };
    if mac == e.peer_mac || *last == mac || mac[0] & 1 != 0 {
        return;
    }
    let peer = LearnedPeer {
        sw_if: e.sw_if,
        mac: EthernetAddress(mac),
        seen: now,
    };
    if tx.try_send(peer).is_ok() {
        *last = mac;
        errors.count(VxlanDecapError::Learned, 1);
    } else {
        errors.count(VxlanDecapError::LearnQueueFull, 1);
    }
}

/// The common case: an outer IPv4 header without options, then UDP and VXLAN, checked with
/// one branch on a fixed-size view (no per-field bounds checks). `len` is the packet's length,
/// `h` its start. `None` sends the packet to [`parse`], which handles options and names the
/// fault.
#[inline(always)]
fn parse_fast(h: &[u8; OUTER_MIN + 14], len: usize) -> Option<(u64, u64)> {
    let udp_len = usize::from(u16::from_be_bytes([h[24], h[25]]));
    // ip4-input trimmed the packet to the IPv4 total length; see `parse` for the I flag.
    if (h[0] != 0x45) | (udp_len + 20 != len) | (h[28] & 0x08 == 0) {
        return None;
    }
    let a = u64::from_be_bytes([h[12], h[13], h[14], h[15], h[16], h[17], h[18], h[19]]);
    let vni = u32::from_be_bytes([h[32], h[33], h[34], h[35]]) >> 8;
    let port = u16::from_be_bytes([h[22], h[23]]);
    Some((a, u64::from(vni) << 16 | u64::from(port)))
}

/// Checks the outer headers of `d` (an IPv4 packet); returns the IPv4 header length and the
/// decap key, or the reason to drop. Agrees with [`parse_fast`] where that one answers.
#[inline(never)]
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
    let a = u64::from_be_bytes([d[12], d[13], d[14], d[15], d[16], d[17], d[18], d[19]]);
    let vni = u32::from_be_bytes([0, h[12], h[13], h[14]]);
    let port = u16::from_be_bytes([h[2], h[3]]);
    Ok((ihl, a, u64::from(vni) << 16 | u64::from(port)))
}

/// Pass 1's slow path: options or a fault. (Writes in place: a 24-byte return value would go
/// through the stack on the fast path too.)
#[cold]
#[inline(never)]
fn parse_slow(d: &[u8], p: &mut Parsed) {
    (p.a, p.b, p.strip) = match parse(d) {
        Ok((ihl, a, b)) => (a, b, (ihl + 16) as u32),
        Err(e) => (0, PARSE_ERROR | e as u64, 0),
    };
}

/// A packet that does not decapsulate: names the fault, traces, sends it to the drop node.
#[cold]
#[inline(never)]
fn drop_packet(
    errors: &NodeErrors<'_>,
    tracer: &mut Tracer<'_, VxlanDecapTrace>,
    tables: &VxlanTables,
    b: &mut Buffer,
    p: &Parsed,
) {
    let vni = (p.b >> 16) as u32;
    let e = if p.b & PARSE_ERROR != 0 {
        use VxlanDecapError::{BadFlags, BadUdpLength, TooShort};
        [TooShort, BadUdpLength, BadFlags]
            .into_iter()
            .find(|&e| p.b == PARSE_ERROR | e as u64)
            .unwrap_or(TooShort)
    } else if tables.vnis.binary_search(&vni).is_ok() {
        VxlanDecapError::NoSuchTunnel
    } else {
        VxlanDecapError::NoSuchVni
    };
    b.hdr.error = errors.index(e);
    if b.is_traced() {
        let remote = match b.data().get(12..16) {
            Some(s) => Ipv4Addr::new(s[0], s[1], s[2], s[3]),
            None => Ipv4Addr::UNSPECIFIED,
        };
        let vni = if p.b & PARSE_ERROR != 0 { 0 } else { vni };
        let tr = VxlanDecapTrace {
            remote,
            vni,
            sw_if: u32::MAX,
            error: Some(e),
        };
        tracer.add(&b.hdr, tr);
    }
}

#[cold]
#[inline(never)]
fn trace_decap(tracer: &mut Tracer<'_, VxlanDecapTrace>, b: &Buffer, p: &Parsed, sw_if: u32) {
    let tr = VxlanDecapTrace {
        remote: Ipv4Addr::from((p.a >> 32) as u32),
        vni: (p.b >> 16) as u32,
        sw_if,
        error: None,
    };
    tracer.add(&b.hdr, tr);
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
        let tables = &*self.tables;
        let decap = tables.decap.lookup();
        let parsed = &mut *self.parsed;
        let n = v.len.min(FRAME_SIZE);
        // Pass 1: check every packet's outer headers and compute its key. When the key differs
        // from the previous good packet's, find the decap table slot it maps to and prefetch
        // it, so that pass 2 finds its lines in cache even with many tunnels; a vector from one
        // tunnel hashes once.
        let (mut pa, mut pb) = (u64::MAX, u64::MAX);
        let pool: &vpg_graph::BufferPool = cx.buffers;
        for (p, &bi) in parsed[..n].iter_mut().zip(&v.buffers[..n]) {
            let buf = pool.get(bi);
            let fast = match buf.head() {
                Some(h) => parse_fast(h, usize::from(buf.hdr.current_length)),
                None => None,
            };
            match fast {
                Some((a, b)) => (p.a, p.b, p.strip) = (a, b, OUTER_MIN as u32),
                None => parse_slow(buf.data(), p),
            }
            p.slot = if p.b & PARSE_ERROR != 0 {
                BAD
            } else if (p.a ^ pa) | (p.b ^ pb) == 0 {
                SAME
            } else {
                (pa, pb) = (p.a, p.b);
                let s = decap.slot(p.a, p.b);
                decap.prefetch(s);
                s
            };
        }
        // Pass 2: look each new key up (one slot: the last-tunnel cache is the `SAME` marks of
        // pass 1), strip, hand on. Receive counters are added once per run of one tunnel.
        let mut tun: Option<&DecapEntry> = None;
        let (mut run_if, mut run_pkts, mut run_bytes) = (u32::MAX, 0u64, 0u64);
        for (k, p) in parsed[..n].iter().enumerate() {
            let b = cx.buffers.get_mut(v.buffers[k]);
            if p.slot != SAME {
                if p.slot == BAD {
                    drop_packet(&cx.errors, &mut cx.tracer, tables, b, p);
                    v.nexts[k] = NEXT_DROP;
                    continue;
                }
                let e = decap.entry(p.slot);
                tun = if e.is(p.a, p.b) {
                    Some(e)
                } else {
                    tables.decap.overflow_get(p.a, p.b)
                };
                if let Some(e) = tun {
                    if e.sw_if != run_if {
                        cx.interfaces.rx_many(run_if, run_pkts, run_bytes);
                        (run_if, run_pkts, run_bytes) = (e.sw_if, 0, 0);
                    }
                }
            }
            let Some(e) = tun else {
                drop_packet(&cx.errors, &mut cx.tracer, tables, b, p);
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            // parse checked that the packet holds the outer headers and an inner Ethernet
            // header, so this strip leaves at least 14 bytes.
            let h = &mut b.hdr;
            h.current_data = h.current_data.wrapping_add(p.strip as i16);
            h.current_length = h.current_length.wrapping_sub(p.strip as u16);
            h.rx_if = e.sw_if;
            h.meta.tunnel.tunnel = e.tunnel;
            run_pkts += 1;
            run_bytes += u64::from(h.current_length);
            v.nexts[k] = NEXT_ETHERNET;
            if h.flags & FLAG_TRACED != 0 {
                trace_decap(&mut cx.tracer, b, p, e.sw_if);
            }
            if e.learn {
                learn(&self.learn, &mut self.reported, &cx.errors, e, b, cx.now);
            }
        }
        cx.interfaces.rx_many(run_if, run_pkts, run_bytes);
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
        assert_eq!(fast(&q), parse(&q).ok().map(|(_, a, b)| (a, b)));
    }

    fn fast(d: &[u8]) -> Option<(u64, u64)> {
        parse_fast(d.first_chunk()?, d.len())
    }

    fn valid_packet(payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; OUTER_MIN + payload];
        p[0] = 0x45;
        p[12..20].copy_from_slice(&[10, 0, 0, 2, 10, 0, 0, 1]);
        p[22..24].copy_from_slice(&4789u16.to_be_bytes());
        p[24..26].copy_from_slice(&((payload + 16) as u16).to_be_bytes());
        p[28] = 0x08;
        p[32..35].copy_from_slice(&[0x12, 0x34, 0x56]);
        p
    }

    proptest::proptest! {
        /// The fast path never accepts what the full check refuses, and agrees on the key.
        #[test]
        fn fast_parse_agrees_with_parse(
            payload in 0usize..40,
            edits in proptest::collection::vec((0usize..80, proptest::prelude::any::<u8>()), 0..4),
        ) {
            let mut p = valid_packet(payload);
            for (i, x) in edits {
                if let Some(b) = p.get_mut(i) {
                    *b = x;
                }
            }
            if let Some((a, b)) = fast(&p) {
                proptest::prop_assert_eq!(parse(&p), Ok((20, a, b)));
            } else if p[0] == 0x45 {
                proptest::prop_assert!(parse(&p).is_err());
            }
        }
    }
}
