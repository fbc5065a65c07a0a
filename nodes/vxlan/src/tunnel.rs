//! The tunnel table the workers read: per tunnel a precomputed outer header (encap) and a hash
//! table from (local VTEP, remote VTEP, VNI, UDP port) to the tunnel (decap). One immutable
//! [`VxlanTables`] is part of each configuration snapshot; `control.rs` builds it.

use std::fmt;
use std::net::Ipv4Addr;
use vpg_graph::wire::checksum;

/// Bytes the encapsulation prepends in front of the inner Ethernet frame: outer IPv4 (20), UDP
/// (8) and VXLAN (8). The outer Ethernet header is the underlay's, added by `ip4-rewrite`.
pub const ENCAP_LEN: usize = 36;
/// Outer bytes a tunnel adds to an inner IP packet: [`ENCAP_LEN`] and the inner Ethernet header.
/// A tunnel over a 1500-byte underlay carries inner packets of up to 1450 bytes.
pub const OVERHEAD: u16 = ENCAP_LEN as u16 + 14;
/// Index meaning "no tunnel".
pub const NO_TUNNEL: u32 = u32::MAX;

//= https://www.rfc-editor.org/rfc/rfc7348#section-5
//# Source Port: It is recommended that the UDP source port number
//# be calculated using a hash of fields from the inner packet -- one
//# example being a hash of the inner Ethernet frame's headers.  This
//# is to enable a level of entropy for the ECMP/load-balancing of the
//# VM-to-VM traffic across the VXLAN overlay.  When calculating the
//# UDP source port number in this manner, it is RECOMMENDED that the
//# value be in the dynamic/private port range 49152-65535 [RFC6335].

/// First outer UDP source port (RFC 6335's dynamic range, as RFC 7348 recommends).
pub const SRC_PORT_MIN: u16 = 49152;

/// A tunnel's identity: the pair of VTEPs, the VXLAN network identifier and the UDP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TunnelKey {
    /// This node's VTEP address (outer source on encap, destination on decap).
    pub local: Ipv4Addr,
    /// The far VTEP.
    pub remote: Ipv4Addr,
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
    /// UDP destination port (4789 by default).
    pub port: u16,
}

impl fmt::Display for TunnelKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} -> {} vni {} port {}",
            self.local, self.remote, self.vni, self.port
        )
    }
}

/// Hash of the inner flow: IPv4 addresses, protocol and (for unfragmented TCP, UDP and SCTP)
/// ports; for other frames the Ethernet addresses and type. Stable per flow, so one flow keeps
/// one outer source port and stays on one underlay path.
#[inline(always)]
pub fn flow_hash(frame: &[u8]) -> u32 {
    let (a, b) = match frame.get(..34) {
        Some(h) if h[12] == 0x08 && h[13] == 0x00 => {
            let src = u32::from_be_bytes([h[26], h[27], h[28], h[29]]);
            let dst = u32::from_be_bytes([h[30], h[31], h[32], h[33]]);
            let proto = h[23];
            let ihl = (h[14] & 0x0f) as usize * 4;
            // Fragments hash without ports, so all pieces of a packet take one path.
            let whole = h[20] & 0x3f == 0 && h[21] == 0;
            let ports = match frame.get(14 + ihl..18 + ihl) {
                Some(p) if whole && matches!(proto, 6 | 17 | 132) => {
                    u32::from_be_bytes([p[0], p[1], p[2], p[3]])
                }
                _ => 0,
            };
            (
                u64::from(src) << 32 | u64::from(dst),
                u64::from(ports) << 8 | u64::from(proto),
            )
        }
        _ => match frame.get(..14) {
            Some(h) => (
                u64::from_be_bytes([0, 0, h[0], h[1], h[2], h[3], h[4], h[5]]),
                u64::from_be_bytes([0, 0, h[6], h[7], h[8], h[9], h[10], h[11]]) << 16
                    | u64::from(u16::from_be_bytes([h[12], h[13]])),
            ),
            None => (0, 0),
        },
    };
    // Multiplicative mixing: the high half depends on every input bit.
    let h = (a ^ b.rotate_left(29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let h = h ^ (h >> 29);
    (h.wrapping_mul(0xbf58_476d_1ce4_e5b9) >> 32) as u32
}

/// The outer UDP source port for a flow hash: its top 14 bits in 49152–65535.
#[inline(always)]
pub fn src_port(hash: u32) -> u16 {
    SRC_PORT_MIN | (hash >> 18) as u16
}

/// One tunnel as the workers see it: the outer header template (lengths and source port zero,
/// IPv4 checksum over the template) and what decapsulation needs. One cache line.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug)]
pub struct TunnelData {
    /// Outer IPv4, UDP and VXLAN headers with zero lengths and source port.
    pub header: [u8; ENCAP_LEN],
    /// The tunnel's interface.
    pub sw_if: u32,
    /// The MAC now used for the far end (configured or learned; zero when unknown).
    pub peer_mac: [u8; 6],
    /// Learn the far end's MAC from decapsulated frames (none was configured).
    pub learn: bool,
}

impl TunnelData {
    /// The template for `key` on interface `sw_if`.
    pub fn new(key: &TunnelKey, sw_if: u32, peer_mac: Option<[u8; 6]>, learn: bool) -> Self {
        let mut h = [0u8; ENCAP_LEN];
        h[0] = 0x45;
        //= https://www.rfc-editor.org/rfc/rfc7348#section-4.3
        //# VTEPs MUST NOT fragment VXLAN packets.
        // The outer DF bit stays clear, as in Linux's default (`df unset`): a packet too large
        // for the underlay is dropped and counted by ip4-rewrite (`mtu-exceeded`) rather than
        // answered with an ICMP error addressed to ourselves.
        h[8] = 64;
        h[9] = 17;
        h[12..16].copy_from_slice(&key.local.octets());
        h[16..20].copy_from_slice(&key.remote.octets());
        let c = checksum::data(&h[..20]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h[22..24].copy_from_slice(&key.port.to_be_bytes());
        //= https://www.rfc-editor.org/rfc/rfc7348#section-5
        //# UDP Checksum: It SHOULD be transmitted as zero.
        // (bytes 26..28 stay zero)
        //= https://www.rfc-editor.org/rfc/rfc7348#section-5
        //# Flags (8 bits): where the I flag MUST be set to 1 for a valid
        //# VXLAN Network ID (VNI).
        h[28] = 0x08;
        h[32..35].copy_from_slice(&key.vni.to_be_bytes()[1..]);
        Self {
            header: h,
            sw_if,
            peer_mac: peer_mac.unwrap_or_default(),
            learn,
        }
    }

    /// Writes the outer headers for an inner frame of `inner_len` bytes into `out`: the
    /// template, then the two lengths, the IPv4 checksum updated for the length alone (RFC 1624:
    /// the template was summed with a zero length) and the source port.
    #[inline(always)]
    pub fn write(&self, out: &mut [u8; ENCAP_LEN], inner_len: u16, src_port: u16) {
        *out = self.header;
        let total = inner_len + ENCAP_LEN as u16;
        out[2..4].copy_from_slice(&total.to_be_bytes());
        //= https://www.rfc-editor.org/rfc/rfc1624#section-3
        //# HC' = ~(~HC + ~m + m')
        // m = 0, so ~m is negative zero and drops out.
        let c = u16::from_be_bytes([self.header[10], self.header[11]]);
        let s = u32::from(!c) + u32::from(total);
        let s = (s & 0xffff) + (s >> 16);
        out[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
        out[20..22].copy_from_slice(&src_port.to_be_bytes());
        out[24..26].copy_from_slice(&(total - 20).to_be_bytes());
    }
}

/// A decap key as read from a packet: `a` = local (outer destination) << 32 | remote (outer
/// source), `b` = VNI << 16 | UDP destination port.
#[inline(always)]
pub fn decap_key(key: &TunnelKey) -> (u64, u64) {
    (
        u64::from(u32::from(key.local)) << 32 | u64::from(u32::from(key.remote)),
        u64::from(key.vni) << 16 | u64::from(key.port),
    )
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    a: u64,
    b: u64,
    tunnel: u32,
}

const EMPTY: Slot = Slot {
    a: 0,
    b: 0,
    tunnel: NO_TUNNEL,
};

/// Open-addressing hash table from a decap key to a tunnel index, at most half full, built on
/// the control side: a lookup is one multiply and usually one slot.
#[derive(Clone, Debug)]
pub struct DecapTable {
    slots: Vec<Slot>,
    shift: u32,
}

impl Default for DecapTable {
    fn default() -> Self {
        Self::build(std::iter::empty())
    }
}

impl DecapTable {
    #[inline(always)]
    fn home(&self, a: u64, b: u64) -> usize {
        ((a ^ b.rotate_left(23)).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// A table holding `entries` (keys are unique: the control side refuses duplicates).
    pub fn build(entries: impl Iterator<Item = ((u64, u64), u32)> + Clone) -> Self {
        let n = entries.clone().count();
        let bits = (2 * n).max(16).next_power_of_two().trailing_zeros();
        let mut t = Self {
            slots: vec![EMPTY; 1 << bits],
            shift: 64 - bits,
        };
        let mask = t.slots.len() - 1;
        for ((a, b), tunnel) in entries {
            let mut i = t.home(a, b);
            while t.slots[i].tunnel != NO_TUNNEL {
                i = (i + 1) & mask;
            }
            t.slots[i] = Slot { a, b, tunnel };
        }
        t
    }

    /// Prefetches the slot where the lookup of (`a`, `b`) starts.
    #[inline(always)]
    pub fn prefetch(&self, a: u64, b: u64) {
        if let Some(s) = self.slots.get(self.home(a, b)) {
            vpg_graph::sys::prefetch(s as *const Slot);
        }
    }

    /// The tunnel of key (`a`, `b`), or [`NO_TUNNEL`].
    #[inline(always)]
    pub fn get(&self, a: u64, b: u64) -> u32 {
        let mask = self.slots.len() - 1;
        let mut i = self.home(a, b);
        loop {
            let s = &self.slots[i];
            if s.a == a && s.b == b || s.tunnel == NO_TUNNEL {
                return s.tunnel;
            }
            i = (i + 1) & mask;
        }
    }
}

/// Everything the VXLAN nodes read, as one immutable snapshot.
#[derive(Clone, Debug, Default)]
pub struct VxlanTables {
    /// Tunnels by dense index.
    pub tunnels: Vec<TunnelData>,
    /// Interface index → tunnel index (or [`NO_TUNNEL`]).
    pub by_sw_if: Vec<u32>,
    /// Decap key → tunnel index.
    pub decap: DecapTable,
    /// VNIs in use, sorted (tells an unknown VNI from an unknown tunnel on the drop path).
    pub vnis: Vec<u32>,
}

impl VxlanTables {
    /// The tunnel of interface `sw_if`.
    #[inline(always)]
    pub fn tunnel_of(&self, sw_if: u32) -> u32 {
        self.by_sw_if
            .get(sw_if as usize)
            .copied()
            .unwrap_or(NO_TUNNEL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(i: u32) -> TunnelKey {
        TunnelKey {
            local: Ipv4Addr::new(192, 168, 0, 1),
            remote: Ipv4Addr::from(0x0a00_0000 + i),
            vni: i % 7,
            port: 4789,
        }
    }

    #[test]
    fn decap_table_finds_every_key_and_nothing_else() {
        for n in [0u32, 1, 5, 1000] {
            let keys: Vec<_> = (0..n).map(|i| decap_key(&key(i))).collect();
            let t = DecapTable::build(keys.iter().copied().zip(0..));
            for (i, (a, b)) in keys.iter().enumerate() {
                assert_eq!(t.get(*a, *b), i as u32);
            }
            let (a, b) = decap_key(&key(n + 1));
            assert_eq!(t.get(a, b), NO_TUNNEL);
            assert_eq!(t.get(a, b ^ 1), NO_TUNNEL);
        }
    }

    #[test]
    fn template_and_write_give_a_valid_header() {
        let k = TunnelKey {
            local: Ipv4Addr::new(192, 168, 1, 1),
            remote: Ipv4Addr::new(192, 168, 1, 2),
            vni: 0x12_3456,
            port: 4789,
        };
        let t = TunnelData::new(&k, 3, None, true);
        let mut out = [0u8; ENCAP_LEN];
        for len in [14u16, 64, 1464, 2000] {
            t.write(&mut out, len, 50000);
            assert_eq!(
                checksum::data(&out[..20]),
                0,
                "IPv4 checksum valid for {len}"
            );
            assert_eq!(u16::from_be_bytes([out[2], out[3]]), len + 36);
            assert_eq!(u16::from_be_bytes([out[24], out[25]]), len + 16);
            assert_eq!(u16::from_be_bytes([out[20], out[21]]), 50000);
            assert_eq!(&out[26..28], &[0, 0], "UDP checksum zero");
            assert_eq!(&out[28..36], &[0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0]);
        }
    }

    #[test]
    fn source_ports_spread_over_the_dynamic_range() {
        let mut seen = std::collections::HashSet::new();
        let mut f = vec![0u8; 60];
        f[12] = 8;
        f[14] = 0x45;
        f[23] = 17;
        for i in 0..65536u32 {
            f[30..34].copy_from_slice(&(0x0a02_0000 + i).to_be_bytes());
            let p = src_port(flow_hash(&f));
            assert!(p >= SRC_PORT_MIN);
            seen.insert(p);
        }
        // 65536 flows into 16384 ports: a uniform hash fills about 98% of them.
        assert!(seen.len() > 15_500, "{} distinct ports", seen.len());
    }

    proptest! {
        #[test]
        fn flow_hash_depends_on_the_flow_only(
            src in any::<u32>(), dst in any::<u32>(), sport in any::<u16>(), dport in any::<u16>(),
            ttl in any::<u8>(), payload in any::<u8>(),
        ) {
            let frame = |ttl: u8, payload: u8| {
                let mut f = vec![0u8; 64];
                f[12] = 8;
                f[14] = 0x45;
                f[22] = ttl;
                f[23] = 6;
                f[26..30].copy_from_slice(&src.to_be_bytes());
                f[30..34].copy_from_slice(&dst.to_be_bytes());
                f[34..36].copy_from_slice(&sport.to_be_bytes());
                f[36..38].copy_from_slice(&dport.to_be_bytes());
                f[60] = payload;
                f
            };
            prop_assert_eq!(flow_hash(&frame(64, 0)), flow_hash(&frame(ttl, payload)));
            prop_assert!(src_port(flow_hash(&frame(ttl, payload))) >= SRC_PORT_MIN);
        }

        #[test]
        fn flow_hash_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = flow_hash(&bytes);
        }
    }
}
