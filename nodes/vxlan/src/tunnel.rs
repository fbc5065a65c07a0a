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

/// One tunnel as `vxlan4-encap` sees it: the outer header template (lengths and source port
/// zero, IPv4 checksum over the template). One cache line. (What decapsulation needs is in the
/// tunnel's [`DecapEntry`].)
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug)]
pub struct TunnelData {
    /// Outer IPv4, UDP and VXLAN headers with zero lengths and source port.
    pub header: [u8; ENCAP_LEN],
    /// The tunnel's interface.
    pub sw_if: u32,
}

impl TunnelData {
    /// The template for `key` on interface `sw_if`.
    pub fn new(key: &TunnelKey, sw_if: u32) -> Self {
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
        Self { header: h, sw_if }
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

/// A decap key as read from a packet: `a` = the outer source (remote) and destination (local)
/// addresses as one big-endian word (bytes 12..20 of the IPv4 header), `b` = VNI << 16 | UDP
/// destination port (40 bits).
#[inline(always)]
pub fn decap_key(key: &TunnelKey) -> (u64, u64) {
    (
        u64::from(u32::from(key.remote)) << 32 | u64::from(u32::from(key.local)),
        u64::from(key.vni) << 16 | u64::from(key.port),
    )
}

/// One tunnel in the decap table: its key and everything `vxlan4-decap` needs of it, so the
/// common case reads this one 32-byte slot (never split across cache lines) and not the
/// tunnel's 64-byte record.
#[repr(C, align(32))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecapEntry {
    /// Key, first word (see [`decap_key`]).
    pub a: u64,
    /// Key, second word; `u64::MAX` (more than 40 bits, no packet has it) in an empty slot.
    pub b: u64,
    /// Tunnel index ([`NO_TUNNEL`] in an empty slot).
    pub tunnel: u32,
    /// The tunnel's interface.
    pub sw_if: u32,
    /// The far end's MAC now in use (zero when unknown).
    pub peer_mac: [u8; 6],
    /// Learn the far end's MAC from decapsulated frames (none was configured).
    pub learn: bool,
}

const _: () = assert!(std::mem::size_of::<DecapEntry>() == 32);

impl DecapEntry {
    /// The entry for tunnel `tunnel` (key `key`, interface `sw_if`).
    pub fn new(key: &TunnelKey, tunnel: u32, sw_if: u32, peer_mac: [u8; 6], learn: bool) -> Self {
        let (a, b) = decap_key(key);
        Self {
            a,
            b,
            tunnel,
            sw_if,
            peer_mac,
            learn,
        }
    }

    /// True when this entry's key is (`a`, `b`).
    #[inline(always)]
    pub fn is(&self, a: u64, b: u64) -> bool {
        (self.a ^ a) | (self.b ^ b) == 0
    }
}

const EMPTY: DecapEntry = DecapEntry {
    a: 0,
    b: u64::MAX,
    tunnel: NO_TUNNEL,
    sw_if: u32::MAX,
    peer_mac: [0; 6],
    learn: false,
};

/// Keys per displacement bucket on average (CHD's λ).
const KEYS_PER_BUCKET: usize = 4;
/// Seeds tried (and table growths, every fourth seed) before keys go to the overflow list.
const BUILD_ATTEMPTS: u32 = 16;
/// Multipliers of the hash (odd, so multiplying is a bijection).
const K1: u64 = 0x9e37_79b9_7f4a_7c15;
const K2: u64 = 0xbf58_476d_1ce4_e5b9;
const K3: u64 = 0xd6e8_feb8_6659_fd93;
const K4: u64 = 0x94d0_49bb_1331_11eb;

/// A perfect hash from decap key to tunnel, built on the control side (compress, hash and
/// displace: Belazzougui, Botelho and Dietzfelbinger, 2009). The key's hash picks a bucket; the
/// bucket's displacement, chosen when the table is built, sends each of its keys to a slot no
/// other key uses. A lookup is three multiplies, one small load (the displacements: eight bytes
/// per four tunnels, in L1) and exactly one slot, compared once: no probing, so no branch
/// depends on where a key landed, and the slot index can be computed (and the slot
/// prefetched) well before it is read. At most 80 % of the slots are used.
///
/// Keys the construction could not place (only possible when two keys' 64-bit hashes collide
/// under every seed) go to a short overflow list read only when the slot does not match.
#[derive(Clone, Debug)]
pub struct DecapTable {
    slots: Vec<DecapEntry>,
    /// Per bucket, the displacement `d` as `d * K3` (the multiply done at build time).
    disp: Vec<u64>,
    seed: u64,
    slot_shift: u32,
    bucket_shift: u32,
    overflow: Vec<DecapEntry>,
}

/// What a lookup reads of a [`DecapTable`], copied out so that a node's loop keeps it in
/// registers (the compiler cannot tell that the packet stores of the loop leave the table alone).
#[derive(Clone, Copy, Debug)]
pub struct DecapLookup<'a> {
    slots: &'a [DecapEntry],
    disp: &'a [u64],
    seed: u64,
    slot_shift: u32,
    bucket_shift: u32,
}

#[inline(always)]
fn key_hash(seed: u64, a: u64, b: u64) -> u64 {
    // `a` is mixed before the xor so that keys differing in a few bits of each word do not
    // cancel out; the top bits of a product depend on every lower bit of its factors.
    ((a ^ seed).wrapping_mul(K1) ^ b).wrapping_mul(K2)
}

#[inline(always)]
fn slot_of(h: u64, disp: u64, shift: u32) -> usize {
    ((h ^ disp).wrapping_mul(K4) >> shift) as usize
}

impl<'a> DecapLookup<'a> {
    /// The slot where key (`a`, `b`) is, if anywhere but the overflow list.
    #[inline(always)]
    pub fn slot(&self, a: u64, b: u64) -> u32 {
        let h = key_hash(self.seed, a, b);
        let d = self
            .disp
            .get((h >> self.bucket_shift) as usize)
            .copied()
            .unwrap_or(0);
        slot_of(h, d, self.slot_shift) as u32
    }

    /// Prefetches slot `s`.
    #[inline(always)]
    pub fn prefetch(&self, s: u32) {
        vpg_graph::sys::prefetch(self.slots.as_ptr().wrapping_add(s as usize));
    }

    /// The entry in slot `s` (an empty one when out of range): it is key (`a`, `b`)'s when
    /// [`DecapEntry::is`] says so, otherwise see [`DecapTable::overflow_get`].
    #[inline(always)]
    pub fn entry(&self, s: u32) -> &'a DecapEntry {
        self.slots.get(s as usize).unwrap_or(&EMPTY)
    }
}

impl Default for DecapTable {
    fn default() -> Self {
        Self::build(&[])
    }
}

impl DecapTable {
    /// A table holding `entries` (keys are unique: the control side refuses duplicates; a
    /// duplicate here would be placed in the overflow list and never found by its second copy).
    pub fn build(entries: &[DecapEntry]) -> Self {
        let n = entries.len();
        let base_bits = (n + n / 4).max(8).next_power_of_two().trailing_zeros();
        let bucket_bits = (n / KEYS_PER_BUCKET)
            .max(2)
            .next_power_of_two()
            .trailing_zeros();
        let mut best: Option<Self> = None;
        for attempt in 0..BUILD_ATTEMPTS {
            let t = Self::try_build(
                entries,
                base_bits + attempt / 4,
                bucket_bits,
                u64::from(attempt).wrapping_mul(0x2545_f491_4f6c_dd1d),
            );
            if t.overflow.is_empty() {
                return t;
            }
            if best
                .as_ref()
                .is_none_or(|b| t.overflow.len() < b.overflow.len())
            {
                best = Some(t);
            }
        }
        best.unwrap_or_else(|| Self::try_build(entries, base_bits, bucket_bits, 0))
    }

    fn try_build(entries: &[DecapEntry], slot_bits: u32, bucket_bits: u32, seed: u64) -> Self {
        let mut t = Self {
            slots: vec![EMPTY; 1 << slot_bits],
            disp: vec![0; 1 << bucket_bits],
            seed,
            slot_shift: 64 - slot_bits,
            bucket_shift: 64 - bucket_bits,
            overflow: Vec::new(),
        };
        let mut buckets: Vec<Vec<(u64, &DecapEntry)>> = vec![Vec::new(); t.disp.len()];
        for e in entries {
            let h = key_hash(seed, e.a, e.b);
            buckets[(h >> t.bucket_shift) as usize].push((h, e));
        }
        // Largest buckets first, while most slots are free (ties in bucket order: deterministic).
        let mut order: Vec<usize> = (0..buckets.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(buckets[i].len()));
        let mut used = vec![false; t.slots.len()];
        let mut picked = Vec::with_capacity(KEYS_PER_BUCKET * 4);
        for i in order {
            let keys = &buckets[i];
            if keys.is_empty() {
                break;
            }
            let found = (0..=u64::from(u16::MAX))
                .map(|d| d.wrapping_mul(K3))
                .find(|&d| {
                    picked.clear();
                    keys.iter().all(|&(h, _)| {
                        let s = slot_of(h, d, t.slot_shift);
                        let free = !used[s] && !picked.contains(&s);
                        picked.push(s);
                        free
                    })
                });
            match found {
                Some(d) => {
                    t.disp[i] = d;
                    for &(h, e) in keys {
                        let s = slot_of(h, d, t.slot_shift);
                        used[s] = true;
                        t.slots[s] = *e;
                    }
                }
                None => t.overflow.extend(keys.iter().map(|&(_, e)| *e)),
            }
        }
        t
    }

    /// The lookup's view of the table.
    #[inline(always)]
    pub fn lookup(&self) -> DecapLookup<'_> {
        DecapLookup {
            slots: &self.slots,
            disp: &self.disp,
            seed: self.seed,
            slot_shift: self.slot_shift,
            bucket_shift: self.bucket_shift,
        }
    }

    /// Key (`a`, `b`)'s entry from the overflow list (empty unless the build met a hash
    /// collision it could not resolve).
    #[inline]
    pub fn overflow_get(&self, a: u64, b: u64) -> Option<&DecapEntry> {
        self.overflow.iter().find(|e| e.is(a, b))
    }

    /// The entry of key (`a`, `b`).
    #[inline]
    pub fn get(&self, a: u64, b: u64) -> Option<&DecapEntry> {
        let l = self.lookup();
        let e = l.entry(l.slot(a, b));
        if e.is(a, b) && e.tunnel != NO_TUNNEL {
            Some(e)
        } else {
            self.overflow_get(a, b)
        }
    }

    /// Slots, and keys that ended in the overflow list (for tests and `memory` figures).
    pub fn stats(&self) -> (usize, usize) {
        (self.slots.len(), self.overflow.len())
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

    fn entries(n: u32) -> Vec<DecapEntry> {
        (0..n)
            .map(|i| DecapEntry::new(&key(i), i, 100 + i, [2, 0, 0, 0, 0, i as u8], i % 2 == 0))
            .collect()
    }

    #[test]
    fn decap_table_finds_every_key_and_nothing_else() {
        for n in [0u32, 1, 5, 1000, 20_000] {
            let es = entries(n);
            let t = DecapTable::build(&es);
            let (slots, overflow) = t.stats();
            assert_eq!(overflow, 0, "{n} keys placed");
            assert!(slots >= n as usize + n as usize / 4 && slots <= 4 * n.max(8) as usize);
            for e in &es {
                assert_eq!(t.get(e.a, e.b), Some(e));
                let l = t.lookup();
                assert!(
                    l.entry(l.slot(e.a, e.b)).is(e.a, e.b),
                    "one slot, no probing"
                );
            }
            let (a, b) = decap_key(&key(n + 1));
            assert_eq!(t.get(a, b), None);
            assert_eq!(t.get(a, b ^ 1), None);
            assert_eq!(
                t.get(0, u64::MAX),
                None,
                "an empty slot's key finds nothing"
            );
        }
    }

    #[test]
    fn decap_table_survives_colliding_hashes() {
        // Keys that differ only in bits a weak hash would cancel out (remote and VNI changed by
        // the same bits) and a table with the same key twice: every key is still found.
        let mut es = Vec::new();
        for i in 0..64u32 {
            let k = TunnelKey {
                local: Ipv4Addr::new(10, 0, 0, 1),
                remote: Ipv4Addr::from(0x0a00_0000 | i << 7),
                vni: i << 7,
                port: 4789,
            };
            es.push(DecapEntry::new(&k, i, i, [0; 6], true));
        }
        let t = DecapTable::build(&es);
        for e in &es {
            assert_eq!(t.get(e.a, e.b), Some(e));
        }
        let dup = vec![es[0], es[0]];
        let t = DecapTable::build(&dup);
        assert_eq!(t.stats().1, 2, "keys with one hash go to the overflow list");
        assert_eq!(t.get(es[0].a, es[0].b), Some(&es[0]));
    }

    #[test]
    fn template_and_write_give_a_valid_header() {
        let k = TunnelKey {
            local: Ipv4Addr::new(192, 168, 1, 1),
            remote: Ipv4Addr::new(192, 168, 1, 2),
            vni: 0x12_3456,
            port: 4789,
        };
        let t = TunnelData::new(&k, 3);
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
        fn decap_table_is_a_map(
            keys in proptest::collection::btree_set((any::<u32>(), any::<u32>(), 0u32..1 << 24, 1u16..), 0..300),
            probes in proptest::collection::vec((any::<u32>(), any::<u32>(), 0u32..1 << 24, 1u16..), 0..50),
        ) {
            let key = |&(l, r, vni, port): &(u32, u32, u32, u16)| TunnelKey {
                local: Ipv4Addr::from(l),
                remote: Ipv4Addr::from(r),
                vni,
                port,
            };
            let es: Vec<DecapEntry> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| DecapEntry::new(&key(k), i as u32, i as u32 + 7, [0; 6], false))
                .collect();
            let t = DecapTable::build(&es);
            for e in &es {
                prop_assert_eq!(t.get(e.a, e.b), Some(e));
            }
            for p in &probes {
                let (a, b) = decap_key(&key(p));
                let want = es.iter().find(|e| e.is(a, b));
                prop_assert_eq!(t.get(a, b), want);
            }
        }

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
