//! The classifier: first-match over an ordered rule list, with a cost that does not grow with
//! the rule count the way a linear scan does.
//!
//! Structure (chosen after measuring, see docs/acl.md): each field's value space is cut into
//! equivalence classes (intervals that the same rules match); the source and destination
//! addresses are looked up through a /16 index over interval starts; the ports and protocol
//! through direct tables whose class ids are then crossed into one "L4" class (RFC's phase 1) when
//! the cross product is small, as it is for real rule sets. Each class carries a bitmap of the
//! rules it matches and an aggregate bitmap with one bit per 64-rule word. A lookup ANDs the
//! aggregates of its 3 (or 5) classes to find the candidate words in priority order and stops at
//! the first word whose AND is non-zero: its lowest bit is the first matching rule.
//!
//! The compiled structure is immutable; a change compiles a new one, which the workers swap in
//! between frames.

mod field;
pub mod linear;

use crate::rule::{PacketKey, RuleKey};
use field::{direct_table, sweep, AddrLookup, ClassBuilder, FieldBits};

/// No rule matched.
pub const NO_MATCH: u32 = u32::MAX;

/// Largest ports × protocol cross product folded into one L4 class table (entries).
const MAX_L4_PRODUCT: usize = 1 << 21;

/// A direct table for a port or protocol field, as narrow as its class count allows (a field
/// with one class reads no memory; up to 256 classes take one byte per value).
#[derive(Clone, Debug)]
enum Direct {
    One,
    U8(Vec<u8>),
    U16(Vec<u16>),
}

impl Direct {
    fn new(t: Vec<u16>, classes: usize) -> Self {
        match classes {
            0 | 1 => Direct::One,
            2..=256 => Direct::U8(t.into_iter().map(|c| c as u8).collect()),
            _ => Direct::U16(t),
        }
    }

    #[inline(always)]
    fn get(&self, v: usize) -> usize {
        match self {
            Direct::One => 0,
            Direct::U8(t) => t.get(v).copied().unwrap_or(0) as usize,
            Direct::U16(t) => t.get(v).copied().unwrap_or(0) as usize,
        }
    }

    #[inline(always)]
    fn prefetch(&self, v: usize) {
        match self {
            Direct::One => {}
            Direct::U8(t) => {
                if let Some(p) = t.get(v) {
                    vpg_graph::sys::prefetch(p)
                }
            }
            Direct::U16(t) => {
                if let Some(p) = t.get(v) {
                    vpg_graph::sys::prefetch(p)
                }
            }
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Direct::One => 0,
            Direct::U8(t) => t.len(),
            Direct::U16(t) => t.len() * 2,
        }
    }
}

/// How the L4 fields are looked up.
#[derive(Clone, Debug)]
enum L4 {
    /// sport, dport and protocol classes crossed into one class: 3 bitmaps per lookup.
    Crossed { table: Vec<u32>, bits: FieldBits },
    /// Too many classes to cross: 5 bitmaps per lookup.
    Separate {
        sport: FieldBits,
        dport: FieldBits,
        proto: FieldBits,
    },
}

/// A compiled rule list.
#[derive(Clone, Debug)]
pub struct Classifier {
    rules: usize,
    words: usize,
    aggs: usize,
    src: AddrLookup,
    dst: AddrLookup,
    src_bits: FieldBits,
    dst_bits: FieldBits,
    sport: Direct,
    dport: Direct,
    proto: Direct,
    n_sport: usize,
    n_dport: usize,
    n_proto: usize,
    l4: L4,
    /// Per rule: TCP flags (value, mask) checked after the bitmaps, for the rare rules with a mask.
    flags: Vec<(u8, u8)>,
    has_flags: bool,
}

/// The shape and size of a compiled classifier (`show acl classifier`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Rules compiled.
    pub rules: usize,
    /// 64-rule words per bitmap.
    pub words: usize,
    /// Elementary intervals of the source and destination addresses.
    pub addr_intervals: (usize, usize),
    /// Equivalence classes: source, destination, source port, destination port, protocol.
    pub classes: [usize; 5],
    /// Crossed L4 classes, when the ports and protocol were crossed.
    pub l4_classes: Option<usize>,
    /// Bytes held.
    pub bytes: usize,
}

/// splitmix64: a fixed-seed stream for the per-rule hash words (deterministic builds).
fn zobrist(n: usize) -> Vec<u64> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        })
        .collect()
}

impl Classifier {
    /// Compiles `rules` (first match wins).
    pub fn compile(rules: &[RuleKey]) -> Self {
        let n = rules.len();
        let words = n.div_ceil(64).max(1);
        let aggs = words.div_ceil(64);
        let z = zobrist(words * 64);
        let ranges = |f: &dyn Fn(&RuleKey) -> (u32, u32)| rules.iter().map(f).collect::<Vec<_>>();
        let (ss, sc, src_bits) = sweep(&ranges(&|r| r.src), u32::MAX, words, aggs, &z);
        let (ds, dc, dst_bits) = sweep(&ranges(&|r| r.dst), u32::MAX, words, aggs, &z);
        let (sps, spc, sp_bits) = sweep(
            &ranges(&|r| (r.sport.0 as u32, r.sport.1 as u32)),
            65535,
            words,
            aggs,
            &z,
        );
        let (dps, dpc, dp_bits) = sweep(
            &ranges(&|r| (r.dport.0 as u32, r.dport.1 as u32)),
            65535,
            words,
            aggs,
            &z,
        );
        let (ps, pc, p_bits) = sweep(
            &ranges(&|r| r.proto.map_or((0, 255), |p| (p as u32, p as u32))),
            255,
            words,
            aggs,
            &z,
        );
        let (n_sport, n_dport, n_proto) = (sp_bits.classes, dp_bits.classes, p_bits.classes);
        let product = n_sport * n_dport * n_proto;
        let l4 = if product <= MAX_L4_PRODUCT {
            let mut b = ClassBuilder::new(words, aggs, &z);
            let mut table = Vec::with_capacity(product);
            let mut and = vec![0u64; words];
            for s in 0..n_sport {
                for d in 0..n_dport {
                    for p in 0..n_proto {
                        for (w, a) in and.iter_mut().enumerate() {
                            *a = sp_bits.bits[s * words + w]
                                & dp_bits.bits[d * words + w]
                                & p_bits.bits[p * words + w];
                        }
                        let h = b.hash_of(&and);
                        table.push(b.class_of(&and, h));
                    }
                }
            }
            L4::Crossed {
                table,
                bits: b.finish(),
            }
        } else {
            L4::Separate {
                sport: sp_bits,
                dport: dp_bits,
                proto: p_bits,
            }
        };
        let flags: Vec<(u8, u8)> = rules.iter().map(|r| r.tcp_flags).collect();
        let has_flags = flags.iter().any(|f| f.1 != 0);
        Classifier {
            rules: n,
            words,
            aggs,
            src: AddrLookup::new(ss, sc),
            dst: AddrLookup::new(ds, dc),
            src_bits,
            dst_bits,
            sport: Direct::new(direct_table(&sps, &spc, 65536), n_sport),
            dport: Direct::new(direct_table(&dps, &dpc, 65536), n_dport),
            proto: Direct::new(direct_table(&ps, &pc, 256), n_proto),
            n_sport,
            n_dport,
            n_proto,
            l4,
            flags,
            has_flags,
        }
    }

    /// Number of rules compiled.
    pub fn len(&self) -> usize {
        self.rules
    }

    /// Whether there are no rules (everything is `NO_MATCH`).
    pub fn is_empty(&self) -> bool {
        self.rules == 0
    }

    /// The first rule matching `k`, or [`NO_MATCH`].
    #[inline]
    pub fn classify(&self, k: &PacketKey) -> u32 {
        if self.rules == 0 {
            return NO_MATCH;
        }
        let (s, d) = (
            self.src.lookup(k.src) as usize,
            self.dst.lookup(k.dst) as usize,
        );
        let sp = self.sport.get(k.sport as usize);
        let dp = self.dport.get(k.dport as usize);
        let p = self.proto.get(k.proto as usize);
        match &self.l4 {
            L4::Crossed { table, bits } => {
                let l = self.crossed(table, sp, dp, p);
                self.scan([(&self.src_bits, s), (&self.dst_bits, d), (bits, l)], k)
            }
            L4::Separate {
                sport,
                dport,
                proto,
            } => self.scan(
                [
                    (&self.src_bits, s),
                    (&self.dst_bits, d),
                    (sport, sp),
                    (dport, dp),
                    (proto, p),
                ],
                k,
            ),
        }
    }

    /// Classifies a batch: `out[i]` is the first rule matching `keys[i]` or [`NO_MATCH`].
    ///
    /// Two passes per block of 64 keys: the first computes every key's classes (independent
    /// loads, so their cache misses overlap, with the next keys' index slots prefetched), the
    /// second ANDs the bitmaps with the next keys' aggregate rows prefetched.
    pub fn classify_batch(&self, keys: &[PacketKey], out: &mut [u32]) {
        const BLOCK: usize = 64;
        const AHEAD: usize = 8;
        let L4::Crossed { table, bits } = &self.l4 else {
            for (k, o) in keys.iter().zip(out.iter_mut()) {
                *o = self.classify(k);
            }
            return;
        };
        if self.rules == 0 {
            out.iter_mut().for_each(|o| *o = NO_MATCH);
            return;
        }
        let (w, a) = (self.words, self.aggs);
        for (kb, ob) in keys.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            let mut cls = [[0usize; 3]; BLOCK];
            for (i, k) in kb.iter().enumerate() {
                if let Some(n) = kb.get(i + AHEAD) {
                    self.src.prefetch(n.src);
                    self.dst.prefetch(n.dst);
                    self.sport.prefetch(n.sport as usize);
                    self.dport.prefetch(n.dport as usize);
                }
                let l = self.crossed(
                    table,
                    self.sport.get(k.sport as usize),
                    self.dport.get(k.dport as usize),
                    self.proto.get(k.proto as usize),
                );
                cls[i] = [
                    self.src.lookup(k.src) as usize,
                    self.dst.lookup(k.dst) as usize,
                    l,
                ];
            }
            for (i, (k, o)) in kb.iter().zip(ob.iter_mut()).enumerate() {
                if let Some(n) = cls.get(i + 4).filter(|_| i + 4 < kb.len()) {
                    for (b, c) in [(&self.src_bits, n[0]), (&self.dst_bits, n[1]), (bits, n[2])] {
                        if let Some(p) = b.agg.get(c * a) {
                            vpg_graph::sys::prefetch(p);
                        }
                        if let Some(p) = b.bits.get(c * w) {
                            vpg_graph::sys::prefetch(p);
                        }
                    }
                }
                let c = cls[i];
                *o = self.scan(
                    [(&self.src_bits, c[0]), (&self.dst_bits, c[1]), (bits, c[2])],
                    k,
                );
            }
        }
    }

    /// The crossed L4 class of source-port class `sp`, destination-port class `dp` and
    /// protocol class `p`.
    #[inline(always)]
    fn crossed(&self, table: &[u32], sp: usize, dp: usize, p: usize) -> usize {
        table
            .get((sp * self.n_dport + dp) * self.n_proto + p)
            .copied()
            .unwrap_or(0) as usize
    }

    /// ANDs the aggregates of the classes, then the candidate words in priority order.
    #[inline(always)]
    fn scan<const N: usize>(&self, f: [(&FieldBits, usize); N], k: &PacketKey) -> u32 {
        let (w, a) = (self.words, self.aggs);
        for ai in 0..a {
            let mut cand = u64::MAX;
            for (b, c) in f {
                cand &= b.agg.get(c * a + ai).copied().unwrap_or(0);
            }
            while cand != 0 {
                let wi = ai * 64 + cand.trailing_zeros() as usize;
                cand &= cand - 1;
                let mut hit = u64::MAX;
                for (b, c) in f {
                    hit &= b.bits.get(c * w + wi).copied().unwrap_or(0);
                }
                while hit != 0 {
                    let r = wi * 64 + hit.trailing_zeros() as usize;
                    if !self.has_flags || self.flags_match(r, k) {
                        return r as u32;
                    }
                    hit &= hit - 1;
                }
            }
        }
        NO_MATCH
    }

    #[inline]
    fn flags_match(&self, r: usize, k: &PacketKey) -> bool {
        let (v, m) = self.flags.get(r).copied().unwrap_or((0, 0));
        k.tcp_flags & m == v
    }

    /// Shape and size, for `show acl classifier`.
    pub fn shape(&self) -> Shape {
        let (l4_classes, l4_bytes, classes) = match &self.l4 {
            L4::Crossed { table, bits } => (
                Some(bits.classes),
                table.len() * 4 + bits.bytes(),
                [
                    self.src_bits.classes,
                    self.dst_bits.classes,
                    self.n_sport,
                    self.n_dport,
                    self.n_proto,
                ],
            ),
            L4::Separate {
                sport,
                dport,
                proto,
            } => (
                None,
                sport.bytes() + dport.bytes() + proto.bytes(),
                [
                    self.src_bits.classes,
                    self.dst_bits.classes,
                    sport.classes,
                    dport.classes,
                    proto.classes,
                ],
            ),
        };
        Shape {
            rules: self.rules,
            words: self.words,
            addr_intervals: (self.src.intervals(), self.dst.intervals()),
            classes,
            l4_classes,
            bytes: self.src.bytes()
                + self.dst.bytes()
                + self.src_bits.bytes()
                + self.dst_bits.bytes()
                + self.sport.bytes()
                + self.dport.bytes()
                + self.proto.bytes()
                + l4_bytes
                + self.flags.len() * 2,
        }
    }
}

#[cfg(test)]
mod tests;
