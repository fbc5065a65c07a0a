//! The lookup structure: a 16-bit direct root whose slots point to blocks of cache-line range
//! nodes (see `docs/fib.md`).
//!
//! Every root or ply slot holds a 32-bit *descriptor*:
//!
//! * bit 31 clear: a leaf, the adjacency itself (values below 2^31);
//! * bits 29..=30 = [`N8`], [`N16`] or [`WIDE`]: a block of `n` [`Line`]s (`n - 1` in bits
//!   24..=28, first line index in bits 0..=23) cutting the slot's span (the 16 low address
//!   bits under the root, the 8 low bits under a ply) into `n` equal parts, one line each,
//!   found with a multiply. A line lists the runs (maximal address ranges with one result) of
//!   its part: 21 runs with 8-bit adjacencies, 16 with 16-bit ones, or 8 with 32-bit leaves;
//! * bits 28..=31 = `0xe`: a direct 256-slot ply indexed by address bits 8..=15 (dense /16s);
//! * bits 28..=31 = `0xf`: an index into the table of adjacencies `>= 2^31` (terminal).
//!
//! A lookup therefore reads one root slot (the 256 KiB root stays in L2) and, for most
//! destinations, exactly one cache line. Lines and plies live in arenas of fixed-size pages,
//! each page behind its own [`Arc`], and the root in [`ROOT_CHUNKS`] chunks behind their own
//! [`Arc`]s, so a snapshot shares everything and a write after a snapshot copies only the
//! pages it touches ([`Arc::make_mut`]).

use std::sync::Arc;

use vpg_graph::sys::{gt_mask_i16, prefetch};

/// Descriptor bit marking a reference (lines, ply or big adjacency) rather than a leaf.
pub(super) const NODE: u32 = 1 << 31;
const KIND_SHIFT: u32 = 29;
/// Lines with 8-bit values.
pub(super) const N8: u32 = 0;
/// Lines with 16-bit values.
pub(super) const N16: u32 = 1;
/// Lines with 32-bit leaf values.
pub(super) const WIDE: u32 = 2;
// Kind 3 is a ply or a big adjacency, told apart by bit 28.
/// Top nibble of a ply descriptor.
const PLY_TAG: u32 = 0xe;
/// Top nibble of a big-adjacency descriptor.
const BIG_TAG: u32 = 0xf;
const N_SHIFT: u32 = 24;
/// Most lines in one block.
pub(super) const MAX_PARTS: u32 = 32;
/// Mask of the first line index in a lines descriptor.
pub(super) const LINE_MASK: u32 = (1 << N_SHIFT) - 1;
/// Mask of a ply or big-adjacency index.
pub(super) const IDX_MASK: u32 = (1 << 28) - 1;

/// The kind of a reference descriptor (meaningless for leaves).
#[inline(always)]
pub(super) const fn kind(e: u32) -> u32 {
    (e >> KIND_SHIFT) & 3
}

/// Whether `e` is a ply descriptor.
#[inline(always)]
pub(super) const fn is_ply(e: u32) -> bool {
    e >> 28 == PLY_TAG
}

/// Whether `e` is a lines descriptor: the top three bits are `1` and [`N8`], [`N16`] or
/// [`WIDE`] (one compare).
#[inline(always)]
pub(super) const fn is_lines(e: u32) -> bool {
    (e >> KIND_SHIFT).wrapping_sub(4) < 3
}

/// A ply descriptor.
#[inline]
pub(super) const fn ply_ref(idx: u32) -> u32 {
    (PLY_TAG << 28) | (idx & IDX_MASK)
}

/// A big-adjacency descriptor.
#[inline]
pub(super) const fn big_ref(idx: u32) -> u32 {
    (BIG_TAG << 28) | (idx & IDX_MASK)
}

/// The descriptor of a block of `n` lines (`1..=MAX_PARTS`) of `kind` from `first`: the slot's
/// span is cut into `n` equal parts, part `j` holding the offsets `o` with `o * n / span == j`.
#[inline]
pub(super) const fn lines(kind: u32, n: u32, first: u32) -> u32 {
    NODE | ((kind & 3) << KIND_SHIFT)
        | ((n.wrapping_sub(1) & (MAX_PARTS - 1)) << N_SHIFT)
        | (first & LINE_MASK)
}

/// `(n, first)` of a lines descriptor.
#[inline]
pub(super) const fn lines_of(e: u32) -> (u32, u32) {
    (((e >> N_SHIFT) & (MAX_PARTS - 1)) + 1, e & LINE_MASK)
}

/// The line of the lines descriptor `e` holding the address whose offset in the slot's span,
/// scaled to 16 bits, is `key` (`dst & 0xffff` under the root, `(dst & 0xff) << 8` under a
/// ply): a multiply and a shift.
#[inline(always)]
pub(super) const fn line_index(e: u32, key: u32) -> u32 {
    let (n, first) = lines_of(e);
    first.wrapping_add(((key & 0xffff) * n) >> 16)
}

/// The scaled key of `dst` under the root.
#[inline(always)]
const fn root_key(dst: u32) -> u32 {
    dst & 0xffff
}

/// The scaled key of `dst` under a ply.
#[inline(always)]
const fn ply_key(dst: u32) -> u32 {
    (dst & 0xff) << 8
}

/// Root slots per root chunk.
pub(super) const ROOT_CHUNK: usize = 1024;
/// Number of root chunks (65536 slots in all, one per /16).
pub(super) const ROOT_CHUNKS: usize = 65536 / ROOT_CHUNK;
/// Lines per page (16 KiB).
pub(super) const LINE_PAGE: usize = 256;
/// Plies per page (16 KiB).
pub(super) const PLY_PAGE: usize = 16;

/// Biased start of padding slots (`0xffff ^ 0x8000`): only the key `0xffff` reaches it, and
/// padding repeats the last run's value, so counting it changes nothing.
const PAD: u16 = 0x7fff;
/// Biased start of slot 0, `<=` every key.
const FIRST: u16 = 0x8000;

/// Runs per line of each kind.
pub(super) const fn capacity(kind: u32) -> usize {
    match kind {
        N8 => 21,
        N16 => 16,
        _ => 8,
    }
}

/// One cache line listing the runs of a part of the address space, as 64 bytes.
///
/// Run `i` starts at the little-endian word at bytes `2i..2i + 2`: the low 16 address bits with
/// the top bit flipped, so that comparing the words as `i16` orders them as addresses; sorted,
/// the first is [`FIRST`]. Values:
/// * [`N8`]: 21 runs, value `i` in byte `42 + i`;
/// * [`N16`]: 16 runs, value `i` in the word at byte `32 + 2i`;
/// * [`WIDE`]: 8 runs, value `i` in the 32-bit word at byte `32 + 4i`.
///
/// Unused start slots hold [`PAD`] and their values repeat the last run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(super) struct Line {
    b: [u8; 64],
}

impl Line {
    pub(super) const EMPTY: Line = Line {
        b: {
            let mut b = [0u8; 64];
            let mut i = 0;
            while i < 32 {
                b[2 * i] = PAD as u8;
                b[2 * i + 1] = (PAD >> 8) as u8;
                i += 1;
            }
            b
        },
    };

    /// The (biased) start of run `i`.
    #[inline(always)]
    fn start(&self, i: usize) -> u16 {
        let o = (2 * i) & 62;
        u16::from_le_bytes([self.b[o], self.b[o | 1]])
    }

    /// Value `i` of a line of `kind`.
    #[inline(always)]
    fn value(&self, kind: u32, i: usize) -> u32 {
        match kind {
            N8 => u32::from(self.b[(42 + i) & 63]),
            N16 => {
                let o = (32 + 2 * i) & 62;
                u32::from(u16::from_le_bytes([self.b[o], self.b[o | 1]]))
            }
            _ => {
                let o = (32 + 4 * i) & 60;
                u32::from_le_bytes([self.b[o], self.b[o | 1], self.b[o | 2], self.b[o | 3]])
            }
        }
    }

    /// The value of the run holding the address with low bits `key`, in a line of `kind`.
    ///
    /// The starts are compared with the key all at once (SSE2, [`gt_mask_i16`]): those above
    /// it form a suffix, so the run is the one before the first of them (the first start is
    /// `<=` every key; the bit set above the starts stops the count there). No data-dependent
    /// branch and no dependent load: the binary search this replaces took five dependent steps,
    /// whose `cmov`s LLVM turned into mispredicted branches when inlined in a loop.
    #[inline(always)]
    fn get(&self, kind: u32, key: u16) -> u32 {
        let k = (key ^ 0x8000) as i16;
        match kind {
            N8 => {
                let m = gt_mask_i16::<24>(&self.b, k) | 1 << 21;
                let r = (m.trailing_zeros() as usize).wrapping_sub(1);
                u32::from(self.b[(42 + r) & 63])
            }
            N16 => {
                let m = gt_mask_i16::<16>(&self.b, k) | 1 << 16;
                self.value(N16, (m.trailing_zeros() as usize).wrapping_sub(1))
            }
            _ => {
                let m = gt_mask_i16::<8>(&self.b, k) | 1 << 8;
                self.value(WIDE, (m.trailing_zeros() as usize).wrapping_sub(1))
            }
        }
    }

    /// A line of `kind` listing `runs` (at most [`capacity`]`(kind)`; run 0 may start before
    /// the line's part, only the low 16 bits of the others' starts are kept).
    pub(super) fn new(kind: u32, runs: &[(u32, u32)]) -> Line {
        let mut l = Line::EMPTY;
        let last = runs.last().map_or(0, |r| r.1);
        for i in 0..capacity(kind) {
            let (s, v) = match runs.get(i) {
                Some(&(_, v)) if i == 0 => (FIRST, v),
                Some(&(s, v)) => ((s as u16) ^ 0x8000, v),
                None => (PAD, last),
            };
            l.b[2 * i..2 * i + 2].copy_from_slice(&s.to_le_bytes());
            match kind {
                N8 => l.b[42 + i] = v as u8,
                N16 => l.b[32 + 2 * i..34 + 2 * i].copy_from_slice(&(v as u16).to_le_bytes()),
                _ => l.b[32 + 4 * i..36 + 4 * i].copy_from_slice(&v.to_le_bytes()),
            }
        }
        l
    }

    /// Run `i` (`< capacity(kind)`): its start (low 16 address bits; 0 for run 0) and value.
    pub(super) fn run(&self, kind: u32, i: usize) -> (u16, u32) {
        let start = if i == 0 { 0 } else { self.start(i) ^ 0x8000 };
        (start, self.value(kind, i))
    }
}

/// A direct ply of 256 descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(super) struct Ply {
    pub e: [u32; 256],
}

impl Ply {
    pub(super) const EMPTY: Ply = Ply { e: [0; 256] };
}

pub(super) type RootChunk = [u32; ROOT_CHUNK];
pub(super) type LinePage = [Line; LINE_PAGE];
pub(super) type PlyPage = [Ply; PLY_PAGE];

/// The lookup structure shared (through [`Arc`]s) between the control side and snapshots.
#[derive(Clone)]
pub(super) struct Tables {
    pub root: [Arc<RootChunk>; ROOT_CHUNKS],
    pub lines: Vec<Arc<LinePage>>,
    pub ply: Vec<Arc<PlyPage>>,
    pub big: Arc<Vec<u32>>,
    /// Root slots holding a reference rather than a leaf (kept by `Fib::set_root`): picks the
    /// batch lookup's shape, see [`Tables::lookup_block`].
    pub refs: u32,
}

/// Batch size of the staged lookup (indices of pending lanes fit in a `u8`).
const BLOCK: usize = 256;
/// Lines prefetched ahead of the search in [`Tables::lookup_batch`]. Measured at 1M routes:
/// 16 or less leaves misses exposed, 32 to 96 are close (64 is best in the forwarding
/// pipeline, where the L3 is shared with packet data), and 256 — prefetching the whole batch
/// before searching — is 2x slower because the miss buffers overflow and prefetches are dropped.
const DISTANCE: usize = 64;

/// Ring size of [`LineQueue`] (a power of two above [`DISTANCE`]).
const RING: usize = 128;

/// The lines a batch has prefetched and not yet searched: per entry the line, its kind and key
/// (`kind << 16 | low 16 bits of the destination`) and the lane to answer.
struct LineQueue<'a> {
    line: [&'a Line; RING],
    kk: [u32; RING],
    lane: [u8; RING],
    /// Entries pushed, entries searched.
    head: usize,
    tail: usize,
}

impl<'a> LineQueue<'a> {
    #[inline(always)]
    fn new() -> Self {
        LineQueue {
            line: [&EMPTY_LINE; RING],
            kk: [0; RING],
            lane: [0; RING],
            head: 0,
            tail: 0,
        }
    }

    /// Queues lane `i` (destination `d`, lines descriptor `e`, scaled key `key`): finds and
    /// prefetches its line, then searches the oldest entry if [`DISTANCE`] lines are in flight.
    #[inline(always)]
    fn push(&mut self, t: &'a Tables, e: u32, d: u32, key: u32, i: usize, out: &mut [u32; BLOCK]) {
        let l = t.line(line_index(e, key));
        prefetch(l);
        let h = self.head & (RING - 1);
        self.line[h] = l;
        self.kk[h] = kind(e) << 16 | (d & 0xffff);
        self.lane[h] = i as u8;
        self.head += 1;
        if self.head > self.tail + DISTANCE {
            self.pop(t, out);
        }
    }

    /// Searches the oldest entry.
    #[inline(always)]
    fn pop(&mut self, t: &Tables, out: &mut [u32; BLOCK]) {
        let k = self.tail & (RING - 1);
        out[self.lane[k] as usize] = t.search(self.line[k], self.kk[k]);
        self.tail += 1;
    }

    /// Searches every entry left.
    #[inline(always)]
    fn drain(&mut self, t: &Tables, out: &mut [u32; BLOCK]) {
        while self.tail < self.head {
            self.pop(t, out);
        }
    }
}

/// Root slots referring further (of 65,536) from which the batch lookup takes its one-pass
/// shape: 3/4 of them. Unicast space is 87 % of the /16s, and a table with longer routes in
/// most of it sends most lanes to lines; below, lanes that stop at the root are common enough
/// that the one-pass shape's branch on them costs more (a misprediction, ~15 clocks, for a
/// quarter of the lanes) than the staged shape's extra dozen instructions per lane.
pub(super) const DENSE_REFS: u32 = 65536 / 4 * 3;
/// Lanes ahead whose root slot the one-pass lookup prefetches. Measured at 1M routes, FIB
/// alone: 1.5–2 clocks per lookup saved.
const ROOT_AHEAD: usize = 16;

static EMPTY_LINE: Line = Line::EMPTY;
static EMPTY_PLY: Ply = Ply::EMPTY;

impl Tables {
    /// A structure whose every address maps to the leaf `leaf`.
    pub(super) fn new(leaf: u32) -> Self {
        Tables {
            root: std::array::from_fn(|_| Arc::new([leaf; ROOT_CHUNK])),
            lines: Vec::new(),
            ply: Vec::new(),
            big: Arc::new(Vec::new()),
            refs: if leaf & NODE != 0 { 65536 } else { 0 },
        }
    }

    /// Bytes held by the lookup structure (root, arena pages, big-adjacency table).
    pub(super) fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        ROOT_CHUNKS * size_of::<RootChunk>()
            + self.lines.len() * size_of::<LinePage>()
            + self.ply.len() * size_of::<PlyPage>()
            + self.big.capacity() * size_of::<u32>()
    }

    #[inline(always)]
    pub(super) fn root_entry(&self, slot: usize) -> u32 {
        self.root[(slot / ROOT_CHUNK) % ROOT_CHUNKS][slot % ROOT_CHUNK]
    }

    #[inline(always)]
    fn root_slot(&self, slot: usize) -> &u32 {
        &self.root[(slot / ROOT_CHUNK) % ROOT_CHUNKS][slot % ROOT_CHUNK]
    }

    #[inline(always)]
    pub(super) fn line(&self, idx: u32) -> &Line {
        let i = idx as usize;
        match self.lines.get(i / LINE_PAGE) {
            Some(p) => &p[i % LINE_PAGE],
            None => &EMPTY_LINE,
        }
    }

    #[inline(always)]
    pub(super) fn ply(&self, idx: u32) -> &Ply {
        let i = idx as usize;
        match self.ply.get(i / PLY_PAGE) {
            Some(p) => &p[i % PLY_PAGE],
            None => &EMPTY_PLY,
        }
    }

    #[inline(always)]
    fn big(&self, e: u32) -> u32 {
        self.big.get((e & IDX_MASK) as usize).copied().unwrap_or(0)
    }

    /// The final value of a descriptor that is not a ply; `key` as for [`line_index`].
    #[inline(always)]
    fn resolve(&self, e: u32, dst: u32, key: u32) -> u32 {
        if e & NODE == 0 {
            e
        } else if is_lines(e) {
            self.search(
                self.line(line_index(e, key)),
                kind(e) << 16 | (dst & 0xffff),
            )
        } else {
            self.big(e)
        }
    }

    /// Longest-prefix match of one destination.
    #[inline]
    pub(super) fn lookup(&self, dst: u32) -> u32 {
        let e = self.root_entry((dst >> 16) as usize);
        if is_ply(e) {
            let e = self.ply(e & IDX_MASK).e[((dst >> 8) & 0xff) as usize];
            return self.resolve(e, dst, ply_key(dst));
        }
        self.resolve(e, dst, root_key(dst))
    }

    /// Batched lookup of up to [`BLOCK`] destinations, in one of two shapes. When nearly every
    /// /16 of the table refers to lines (large tables: at 1M random routes all but a few
    /// hundred), almost every lane needs a line and one pass does it all
    /// ([`Tables::lookup_block_dense`]); otherwise lanes that stop at the root and lanes that go
    /// on are mixed, and a branch per lane on which it is would be mispredicted, so a first
    /// stage sorts them without branches ([`Tables::lookup_block_staged`]). Either way, lines
    /// are prefetched [`DISTANCE`] lanes before they are searched.
    #[inline]
    fn lookup_block(&self, dst: &[u32], out: &mut [u32]) {
        if self.refs >= DENSE_REFS {
            self.lookup_block_dense(dst, out);
        } else {
            self.lookup_block_staged(dst, out);
        }
    }

    /// The one-pass shape: each lane reads its root slot (prefetched [`ROOT_AHEAD`] lanes
    /// earlier: a large table's lines stream through the caches and evict root lines too); a
    /// leaf is the answer; a block of lines gives the lane's line, which is prefetched and
    /// queued, and the lane queued [`DISTANCE`] lines earlier is searched. Ply lanes prefetch
    /// their ply slot and join the queue after the other lanes.
    #[inline]
    fn lookup_block_dense(&self, dst: &[u32], out: &mut [u32]) {
        let n = dst.len().min(out.len()).min(BLOCK);
        let (dst, out) = (&dst[..n], &mut out[..n]);
        // Results by lane, in a full-size array: indexing it with a lane number (a `u8`)
        // needs no bounds check.
        let mut res = [0u32; BLOCK];
        let mut q = LineQueue::new();
        let mut plies = [0u8; BLOCK];
        let mut np = 0usize;
        for (i, &d) in dst.iter().enumerate() {
            if let Some(&a) = dst.get(i + ROOT_AHEAD) {
                prefetch(self.root_slot((a >> 16) as usize));
            }
            let i = i & (BLOCK - 1);
            let e = self.root_entry((d >> 16) as usize);
            if e & NODE == 0 {
                res[i] = e;
            } else if is_lines(e) {
                q.push(self, e, d, root_key(d), i, &mut res);
            } else if is_ply(e) {
                prefetch(&self.ply(e & IDX_MASK).e[((d >> 8) & 0xff) as usize]);
                res[i] = e;
                plies[np & (BLOCK - 1)] = i as u8;
                np += 1;
            } else {
                res[i] = self.big(e);
            }
        }
        for &i in &plies[..np.min(BLOCK)] {
            let i = i as usize;
            let d = dst.get(i).copied().unwrap_or(0);
            let e = self.ply(res[i] & IDX_MASK).e[((d >> 8) & 0xff) as usize];
            if is_lines(e) {
                q.push(self, e, d, ply_key(d), i, &mut res);
            } else {
                res[i] = self.resolve(e, d, ply_key(d));
            }
        }
        q.drain(self, &mut res);
        out.copy_from_slice(&res[..n]);
    }

    /// Staged lookup of up to [`BLOCK`] destinations. Stage 1 reads every root slot, without a
    /// branch on what it finds (a table that mixes leaves and lines would mispredict it), and
    /// keeps the lanes that point further; it also starts the ply slot reads of dense /16s.
    /// Stage 2 turns each such lane's reference into its line (through the ply slot for dense
    /// /16s), prefetches the line and queues it, and searches the lane queued [`DISTANCE`]
    /// lines earlier, whose line has arrived meanwhile. A table of short routes costs stage 1.
    #[inline]
    fn lookup_block_staged(&self, dst: &[u32], out: &mut [u32]) {
        let n = dst.len().min(out.len()).min(BLOCK);
        let (dst, out) = (&dst[..n], &mut out[..n]);
        let mut pending = [0u8; BLOCK];
        let mut np = 0usize;
        for (i, (&d, o)) in dst.iter().zip(out.iter_mut()).enumerate() {
            let e = self.root_entry((d >> 16) as usize);
            if is_ply(e) {
                // Dense /16s take a second dependent read; start it now so that stage 2
                // finds the ply slot in flight rather than missing on it serially.
                prefetch(&self.ply(e & IDX_MASK).e[((d >> 8) & 0xff) as usize]);
            }
            *o = e;
            pending[np & (BLOCK - 1)] = i as u8;
            np += (e >> 31) as usize;
        }
        if np == 0 {
            return;
        }
        // Lane-indexed copies in full-size arrays: indexing them with a lane number (a `u8`)
        // needs no bounds check.
        let mut ds = [0u32; BLOCK];
        let mut res = [0u32; BLOCK];
        ds[..n].copy_from_slice(dst);
        res[..n].copy_from_slice(out);
        let mut q = LineQueue::new();
        for &i in &pending[..np.min(BLOCK)] {
            let i = i as usize;
            let (d, mut e) = (ds[i], res[i]);
            let mut key = root_key(d);
            if is_ply(e) {
                e = self.ply(e & IDX_MASK).e[((d >> 8) & 0xff) as usize];
                key = ply_key(d);
            }
            if is_lines(e) {
                q.push(self, e, d, key, i, &mut res);
            } else {
                res[i] = self.resolve(e, d, key);
            }
        }
        q.drain(self, &mut res);
        out.copy_from_slice(&res[..n]);
    }

    /// The final value for `kk` = kind << 16 | the destination's low 16 bits, in `line`.
    #[inline(always)]
    fn search(&self, line: &Line, kk: u32) -> u32 {
        let v = line.get(kk >> 16, kk as u16);
        if v & NODE == 0 {
            v
        } else {
            self.big(v)
        }
    }

    /// Batched lookup; see [`super::FibSnapshot::lookup_batch`].
    pub(super) fn lookup_batch(&self, dst: &[u32], out: &mut [u32]) {
        for (d, o) in dst.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            self.lookup_block(d, o);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The value of the last run starting at or before `key` (the reference search).
    fn naive(runs: &[(u32, u32)], key: u16) -> u32 {
        runs.iter()
            .rev()
            .find(|r| r.0 as u16 <= key)
            .map_or(runs[0].1, |r| r.1)
    }

    fn check(kind: u32, starts: &std::collections::BTreeSet<u16>, vals: &[u32]) {
        let mut runs: Vec<(u32, u32)> = std::iter::once(0)
            .chain(starts.iter().copied().filter(|&s| s != 0))
            .take(capacity(kind))
            .zip(vals.iter().cycle())
            .map(|(s, &v)| (u32::from(s), v))
            .collect();
        runs.dedup_by_key(|r| r.0);
        let line = Line::new(kind, &runs);
        for (i, r) in runs.iter().enumerate() {
            assert_eq!(line.run(kind, i), (r.0 as u16, r.1));
        }
        let mut keys = vec![0u16, 1, 0x7fff, 0x8000, 0xfffe, 0xffff];
        for r in &runs {
            keys.extend([
                r.0 as u16,
                (r.0 as u16).wrapping_sub(1),
                (r.0 as u16).wrapping_add(1),
            ]);
        }
        for k in keys {
            assert_eq!(
                line.get(kind, k),
                naive(&runs, k),
                "kind {kind} key {k:#x} {runs:x?}"
            );
        }
    }

    proptest! {
        /// A line of every kind, filled up to its capacity or not, finds what a linear scan
        /// of its runs finds, at and around every run start and at the ends.
        #[test]
        fn line_search_matches_a_linear_scan(
            starts in proptest::collection::btree_set(any::<u16>(), 0..40),
            v8 in proptest::collection::vec(0u32..256, 1..30),
            v16 in proptest::collection::vec(0u32..65536, 1..30),
            v32 in proptest::collection::vec(any::<u32>(), 1..30),
        ) {
            check(N8, &starts, &v8);
            check(N16, &starts, &v16);
            check(WIDE, &starts, &v32);
        }
    }

    #[test]
    fn full_lines_reach_their_last_run() {
        for (kind, vals) in [(N8, 255u32), (N16, 65535), (WIDE, u32::MAX)] {
            let runs: Vec<(u32, u32)> = (0..capacity(kind) as u32)
                .map(|i| (i * 1000, vals - i))
                .collect();
            let line = Line::new(kind, &runs);
            let last = runs[runs.len() - 1];
            assert_eq!(line.get(kind, 0xffff), last.1);
            assert_eq!(line.get(kind, last.0 as u16), last.1);
            assert_eq!(line.get(kind, last.0 as u16 - 1), runs[runs.len() - 2].1);
        }
    }
}
