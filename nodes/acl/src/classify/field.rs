//! One field of the classifier: the field's value space cut into elementary intervals at every
//! rule boundary, intervals with the same set of matching rules merged into one equivalence
//! class (RFC's phase-0 idea), and per class a bitmap of the rules that match it plus an
//! aggregate bitmap with one bit per 64-rule word (Aggregated Bit Vector).

use std::collections::HashMap;

/// Bit vectors of one field: `classes × words` rule bits and `classes × aggs` aggregate bits.
#[derive(Clone, Debug, Default)]
pub(crate) struct FieldBits {
    pub(crate) bits: Vec<u64>,
    pub(crate) agg: Vec<u64>,
    pub(crate) classes: usize,
}

impl FieldBits {
    /// Memory held, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        (self.bits.len() + self.agg.len()) * 8
    }
}

/// Builds equivalence classes and their bitmaps. `zobrist[r]` is a random word per rule so the
/// running set's hash is updated in O(1) per boundary.
pub(crate) struct ClassBuilder<'a> {
    words: usize,
    aggs: usize,
    zobrist: &'a [u64],
    out: FieldBits,
    by_hash: HashMap<u64, Vec<u32>>,
}

impl<'a> ClassBuilder<'a> {
    pub(crate) fn new(words: usize, aggs: usize, zobrist: &'a [u64]) -> Self {
        Self {
            words,
            aggs,
            zobrist,
            out: FieldBits::default(),
            by_hash: HashMap::new(),
        }
    }

    /// The class of the rule set `bits` (hash `h`), created if new.
    pub(crate) fn class_of(&mut self, bits: &[u64], h: u64) -> u32 {
        let w = self.words;
        if let Some(cands) = self.by_hash.get(&h) {
            for &c in cands {
                let c0 = c as usize * w;
                if self.out.bits[c0..c0 + w] == *bits {
                    return c;
                }
            }
        }
        let c = self.out.classes as u32;
        self.out.bits.extend_from_slice(bits);
        let base = self.out.agg.len();
        self.out.agg.resize(base + self.aggs, 0);
        for (i, &x) in bits.iter().enumerate() {
            if x != 0 {
                self.out.agg[base + i / 64] |= 1 << (i % 64);
            }
        }
        self.out.classes += 1;
        self.by_hash.entry(h).or_default().push(c);
        c
    }

    /// Hash of an arbitrary bit set (for sets not built incrementally).
    pub(crate) fn hash_of(&self, bits: &[u64]) -> u64 {
        let mut h = 0u64;
        for (i, &x) in bits.iter().enumerate() {
            let mut x = x;
            while x != 0 {
                h ^= self.zobrist[i * 64 + x.trailing_zeros() as usize];
                x &= x - 1;
            }
        }
        h
    }

    pub(crate) fn finish(self) -> FieldBits {
        self.out
    }
}

/// The elementary intervals of a field of width `max` cut by `ranges` (one inclusive range per
/// rule), each with its class: returns (interval starts, class per interval, bitmaps).
pub(crate) fn sweep(
    ranges: &[(u32, u32)],
    max: u32,
    words: usize,
    aggs: usize,
    zobrist: &[u64],
) -> (Vec<u32>, Vec<u32>, FieldBits) {
    // Events: a rule enters at its low end and leaves after its high end.
    let mut events: Vec<(u32, u32)> = Vec::with_capacity(ranges.len() * 2);
    for (r, &(lo, hi)) in ranges.iter().enumerate() {
        events.push((lo, r as u32));
        if hi < max {
            events.push((hi + 1, r as u32));
        }
    }
    events.sort_unstable();
    let mut b = ClassBuilder::new(words, aggs, zobrist);
    let mut cur = vec![0u64; words];
    let mut h = 0u64;
    let (mut starts, mut classes) = (Vec::new(), Vec::new());
    let mut i = 0;
    let mut at = 0u32;
    loop {
        // Toggle every rule with an event at `at`: entering rules are off, leaving rules on.
        while i < events.len() && events[i].0 == at {
            let r = events[i].1 as usize;
            cur[r / 64] ^= 1 << (r % 64);
            h ^= zobrist[r];
            i += 1;
        }
        starts.push(at);
        classes.push(b.class_of(&cur, h));
        match events.get(i) {
            Some(&(next, _)) => at = next,
            None => break,
        }
    }
    // Merge neighbours of the same class: fewer intervals to search.
    let mut ms: Vec<u32> = Vec::with_capacity(starts.len());
    let mut mc: Vec<u32> = Vec::with_capacity(starts.len());
    for (s, c) in starts.into_iter().zip(classes) {
        if mc.last() != Some(&c) {
            ms.push(s);
            mc.push(c);
        }
    }
    (ms, mc, b.finish())
}

/// Intervals up to which an address field uses the trie (its plies grow with the intervals that
/// split /16s and /24s: past a few thousand the memory and the build time outgrow the gain).
const TRIE_MAX_INTERVALS: usize = 8192;

/// An address field's lookup: the trie for fields with few intervals (fast, no search), the
/// index over interval starts for the others (compact, quick to build).
#[derive(Clone, Debug)]
pub(crate) enum AddrLookup {
    Trie(AddrTrie),
    Index(AddrIndex),
}

impl AddrLookup {
    pub(crate) fn new(starts: Vec<u32>, class: Vec<u32>) -> Self {
        if starts.len() <= TRIE_MAX_INTERVALS {
            AddrLookup::Trie(AddrTrie::new(starts, class))
        } else {
            AddrLookup::Index(AddrIndex::new(starts, class))
        }
    }

    #[inline(always)]
    pub(crate) fn lookup(&self, a: u32) -> u32 {
        match self {
            AddrLookup::Trie(t) => t.lookup(a),
            AddrLookup::Index(x) => x.lookup(a),
        }
    }

    #[inline(always)]
    pub(crate) fn prefetch(&self, a: u32) {
        match self {
            AddrLookup::Trie(t) => t.prefetch(a),
            AddrLookup::Index(x) => x.prefetch(a),
        }
    }

    pub(crate) fn bytes(&self) -> usize {
        match self {
            AddrLookup::Trie(t) => t.bytes(),
            AddrLookup::Index(x) => x.bytes(),
        }
    }

    pub(crate) fn intervals(&self) -> usize {
        match self {
            AddrLookup::Trie(t) => t.intervals(),
            AddrLookup::Index(x) => x.intervals(),
        }
    }
}

/// Address lookup: a 16-8-8 trie of class ids (the FIB's mtrie shape, holding classes instead of
/// adjacencies). A /16 inside one interval is answered by the root entry; otherwise a 256-entry
/// ply for its /24s, and below that one for the addresses. The root slot depends only on the
/// address, so a batch prefetches it keys ahead; there is no search and no data-dependent branch
/// beyond "is this a ply".
#[derive(Clone, Debug, Default)]
pub(crate) struct AddrTrie {
    /// 65,536 entries: a class, or `PLY | index` of a ply in `plies`.
    root: Vec<u32>,
    /// 256-entry plies, back to back.
    plies: Vec<u32>,
    intervals: usize,
}

const PLY: u32 = 1 << 31;

impl AddrTrie {
    /// Builds the trie from interval starts (sorted, `starts[0] == 0`) and each interval's class.
    pub(crate) fn new(starts: Vec<u32>, class: Vec<u32>) -> Self {
        let mut t = AddrTrie {
            root: Vec::with_capacity(65536),
            plies: Vec::new(),
            intervals: starts.len(),
        };
        // Walk the intervals once, in address order: `i` is the interval holding `a`.
        let mut i = 0usize;
        let end_of = |i: usize| starts.get(i + 1).map_or(u64::MAX, |&s| s as u64);
        for h in 0..65536u64 {
            let lo = h << 16;
            while end_of(i) <= lo {
                i += 1;
            }
            let c = class.get(i).copied().unwrap_or(0);
            if end_of(i) > lo + 0xffff {
                t.root.push(c);
                continue;
            }
            let ply = t.plies.len() / 256;
            t.root.push(PLY | ply as u32);
            t.plies.resize(t.plies.len() + 256, 0);
            for m in 0..256u64 {
                let lo2 = lo | (m << 8);
                while end_of(i) <= lo2 {
                    i += 1;
                }
                let c = class.get(i).copied().unwrap_or(0);
                let entry = if end_of(i) > lo2 + 0xff {
                    c
                } else {
                    let leaf = t.plies.len() / 256;
                    t.plies.resize(t.plies.len() + 256, 0);
                    for a in 0..256u64 {
                        while end_of(i) <= lo2 | a {
                            i += 1;
                        }
                        t.plies[leaf * 256 + a as usize] = class.get(i).copied().unwrap_or(0);
                    }
                    PLY | leaf as u32
                };
                t.plies[ply * 256 + m as usize] = entry;
            }
        }
        t
    }

    /// The class of address `a`.
    #[inline(always)]
    pub(crate) fn lookup(&self, a: u32) -> u32 {
        let e = self.root.get((a >> 16) as usize).copied().unwrap_or(0);
        if e & PLY == 0 {
            return e;
        }
        let e = self
            .plies
            .get(((e & !PLY) as usize) * 256 + ((a >> 8) & 0xff) as usize)
            .copied()
            .unwrap_or(0);
        if e & PLY == 0 {
            return e;
        }
        self.plies
            .get(((e & !PLY) as usize) * 256 + (a & 0xff) as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Memory held, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        (self.root.len() + self.plies.len()) * 4
    }

    /// Number of elementary intervals.
    pub(crate) fn intervals(&self) -> usize {
        self.intervals
    }

    /// Prefetches the root slot of `a`.
    #[inline(always)]
    pub(crate) fn prefetch(&self, a: u32) {
        if let Some(p) = self.root.get((a >> 16) as usize) {
            vpg_graph::sys::prefetch(p);
        }
    }
}

/// Address lookup: sorted interval starts with a direct index on the top bits, so a lookup is one
/// index read and a short search inside one slice of the address space. The index has about four
/// slots per interval (8 to 16 bits): small sets get an index that stays in L1.
#[derive(Clone, Debug, Default)]
pub(crate) struct AddrIndex {
    /// `first[h]`: number of starts below `h << shift` (2^bits + 1 entries).
    first: Vec<u32>,
    shift: u32,
    starts: Vec<u32>,
    class: Vec<u32>,
}

impl AddrIndex {
    pub(crate) fn new(starts: Vec<u32>, class: Vec<u32>) -> Self {
        let bits = (usize::BITS - starts.len().leading_zeros() + 2).clamp(8, 16);
        let shift = 32 - bits;
        let mut first = Vec::with_capacity((1 << bits) + 1);
        let mut j = 0usize;
        for h in 0..=(1u64 << bits) {
            while j < starts.len() && (starts[j] as u64) < (h << shift) {
                j += 1;
            }
            first.push(j as u32);
        }
        Self {
            first,
            shift,
            starts,
            class,
        }
    }

    /// The class of address `a`.
    #[inline(always)]
    pub(crate) fn lookup(&self, a: u32) -> u32 {
        let h = (a >> self.shift) as usize;
        let lo = self.first.get(h).copied().unwrap_or(0) as usize;
        let hi = self.first.get(h + 1).copied().unwrap_or(0) as usize;
        // The interval containing h << shift is lo - 1 (starts[0] == 0, so lo >= 1 for h > 0;
        // for h == 0 the search below finds starts[0]).
        let base = lo.wrapping_sub(1);
        let seg = self.starts.get(lo..hi).unwrap_or(&[]);
        let n = if seg.len() <= 8 {
            seg.iter().filter(|&&s| s <= a).count()
        } else {
            seg.partition_point(|&s| s <= a)
        };
        let i = base.wrapping_add(n);
        self.class.get(i).copied().unwrap_or(0)
    }

    /// Memory held, in bytes.
    pub(crate) fn bytes(&self) -> usize {
        (self.first.len() + self.starts.len() + self.class.len()) * 4
    }

    /// Number of elementary intervals.
    pub(crate) fn intervals(&self) -> usize {
        self.starts.len()
    }

    /// Prefetches the index slot of `a`.
    #[inline(always)]
    pub(crate) fn prefetch(&self, a: u32) {
        if let Some(p) = self.first.get((a >> self.shift) as usize) {
            vpg_graph::sys::prefetch(p);
        }
    }
}

/// A direct table for a 16-bit field (ports) or an 8-bit one (protocol).
pub(crate) fn direct_table(starts: &[u32], class: &[u32], size: usize) -> Vec<u16> {
    let mut t = vec![0u16; size];
    for (k, (&s, &c)) in starts.iter().zip(class).enumerate() {
        let end = starts.get(k + 1).map_or(size, |&e| e as usize);
        for v in t.iter_mut().take(end).skip(s as usize) {
            *v = c as u16;
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweep_classes_and_lookup() {
        // Rules: 0: [10, 20], 1: [15, 30], 2: everything.
        let z = [1u64, 2, 4];
        let (s, c, bits) = sweep(&[(10, 20), (15, 30), (0, 100)], 100, 1, 1, &z);
        assert_eq!(s, vec![0, 10, 15, 21, 31]);
        let set = |v: u32| {
            let i = s.partition_point(|&x| x <= v) - 1;
            bits.bits[c[i] as usize]
        };
        assert_eq!(set(0), 0b100);
        assert_eq!(set(12), 0b101);
        assert_eq!(set(20), 0b111);
        assert_eq!(set(25), 0b110);
        assert_eq!(set(100), 0b100);
        assert_eq!(c[0], c[4], "same rule set, same class");
        assert_eq!(bits.classes, 4);
        let trie = AddrTrie::new(
            vec![0, 0x0001_0005, 0x0001_0007, 0x0005_0000],
            vec![0, 1, 2, 3],
        );
        for a in [
            0,
            0x0001_0004,
            0x0001_0005,
            0x0001_0006,
            0x0001_0008,
            0x0004_ffff,
            0x0005_0000,
            u32::MAX,
        ] {
            let ix = AddrIndex::new(
                vec![0, 0x0001_0005, 0x0001_0007, 0x0005_0000],
                vec![0, 1, 2, 3],
            );
            assert_eq!(trie.lookup(a), ix.lookup(a), "address {a:#x}");
        }
        let ix = AddrIndex::new(
            vec![0, 0x0001_0005, 0x0001_0007, 0x0005_0000],
            vec![0, 1, 2, 3],
        );
        assert_eq!(ix.lookup(0), 0);
        assert_eq!(ix.lookup(0x0001_0004), 0);
        assert_eq!(ix.lookup(0x0001_0005), 1);
        assert_eq!(ix.lookup(0x0001_0008), 2);
        assert_eq!(ix.lookup(0x0004_ffff), 2);
        assert_eq!(ix.lookup(0x0005_0000), 3);
        assert_eq!(ix.lookup(u32::MAX), 3);
    }
}
