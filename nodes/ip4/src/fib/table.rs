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

use vpg_graph::sys::prefetch;

/// Descriptor bit marking a reference (lines, ply or big adjacency) rather than a leaf.
pub(super) const NODE: u32 = 1 << 31;
const KIND_SHIFT: u32 = 29;
/// Lines with 8-bit values.
pub(super) const N8: u32 = 0;
/// Lines with 16-bit values.
pub(super) const N16: u32 = 1;
/// Lines with 32-bit leaf values.
pub(super) const WIDE: u32 = 2;
/// Ply or big adjacency, told apart by bit 28.
pub(super) const OTHER: u32 = 3;
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

/// Whether `e` is a lines descriptor.
#[inline(always)]
pub(super) const fn is_lines(e: u32) -> bool {
    e & NODE != 0 && kind(e) != OTHER
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

/// One cache line listing the runs of a part of the address space, as 32 words.
///
/// Run `i` starts at `w[i]`: the low 16 address bits with the top bit flipped, so that
/// comparing the words as `i16` orders them as addresses; sorted, `w[0]` is [`FIRST`]. Values:
/// * [`N8`]: 21 runs, value `i` in byte `i` of `w[21..32]`;
/// * [`N16`]: 16 runs, value `i` in `w[16 + i]`;
/// * [`WIDE`]: 8 runs, value `i` in `w[16 + 2i] | w[17 + 2i] << 16`.
///
/// Unused start slots hold [`PAD`] and their values repeat the last run's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(super) struct Line {
    w: [u16; 32],
}

/// The last `i < L` (`L` a power of two up to 32) with `w[i] <= k` as `i16`: a branchless
/// binary search over the sorted starts (`w[0]` is `<=` every key), unrolled into `log2 L`
/// compare-and-add steps that compile to `cmov`s (see [`Line::get`]). It beats counting the
/// starts `<= k` with SSE2 compares, a movemask and a (software, no POPCNT in the baseline
/// target) population count by 35% at 10k routes.
#[inline(always)]
fn rank<const L: usize>(w: &[u16; 32], k: i16) -> usize {
    let mut i = 0usize;
    let mut step = L / 2;
    while step > 0 {
        if (w[(i + step) & 31] as i16) <= k {
            i += step;
        }
        step /= 2;
    }
    i
}

/// [`rank`] over 21 starts: a first step decides between the windows `0..16` and `5..21`,
/// then four steps search the window.
#[inline(always)]
fn rank21(w: &[u16; 32], k: i16) -> usize {
    let mut i = 0usize;
    if (w[5] as i16) <= k {
        i = 5;
    }
    let mut step = 8;
    while step > 0 {
        if (w[(i + step) & 31] as i16) <= k {
            i += step;
        }
        step /= 2;
    }
    i
}

impl Line {
    pub(super) const EMPTY: Line = Line { w: [PAD; 32] };

    /// The value of the run holding the address with low bits `key`, in a line of `kind`.
    ///
    /// Deliberately out of line: LLVM's x86 cmov-conversion pass, which looks at loop bodies,
    /// turns the search's `cmov`s into branches once this is inlined into the batch loop, and
    /// those mispredict on every other step (measured: 2x slower at 1M routes). A call costs
    /// far less.
    #[inline(never)]
    fn get(&self, kind: u32, key: u16) -> u32 {
        let k = (key ^ 0x8000) as i16;
        match kind {
            N8 => {
                let r = rank21(&self.w, k);
                u32::from(self.w[(21 + r / 2) & 31] >> (8 * (r & 1))) & 0xff
            }
            N16 => u32::from(self.w[(16 + rank::<16>(&self.w, k)) & 31]),
            _ => {
                let r = rank::<8>(&self.w, k);
                u32::from(self.w[(16 + 2 * r) & 31]) | u32::from(self.w[(17 + 2 * r) & 31]) << 16
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
            l.w[i] = s;
            match kind {
                N8 => {
                    let w = &mut l.w[21 + i / 2];
                    let sh = 8 * (i & 1);
                    *w = (*w & !(0xff << sh)) | (((v & 0xff) as u16) << sh);
                }
                N16 => l.w[16 + i] = v as u16,
                _ => {
                    l.w[16 + 2 * i] = v as u16;
                    l.w[17 + 2 * i] = (v >> 16) as u16;
                }
            }
        }
        l
    }

    /// Run `i` (`< capacity(kind)`): its start (low 16 address bits; 0 for run 0) and value.
    pub(super) fn run(&self, kind: u32, i: usize) -> (u16, u32) {
        let start = if i == 0 { 0 } else { self.w[i & 31] ^ 0x8000 };
        let v = match kind {
            N8 => u32::from(self.w[(21 + i / 2) & 31] >> (8 * (i & 1))) & 0xff,
            N16 => u32::from(self.w[(16 + i) & 31]),
            _ => u32::from(self.w[(16 + 2 * i) & 31]) | u32::from(self.w[(17 + 2 * i) & 31]) << 16,
        };
        (start, v)
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
}

/// Batch size of the staged lookup (indices of pending lanes fit in a `u8`).
const BLOCK: usize = 256;
/// Lines prefetched ahead of the search in [`Tables::lookup_batch`]. Measured at 1M routes:
/// 16 or less leaves misses exposed, 32 to 96 are close (64 is best in the forwarding
/// pipeline, where the L3 is shared with packet data), and 256 — prefetching the whole batch
/// before searching — is 2x slower because the miss buffers overflow and prefetches are dropped.
const DISTANCE: usize = 64;

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

    /// The final value of the lines descriptor `e` for `dst`, whose line is `line`.
    #[inline(always)]
    fn search(&self, line: &Line, e: u32, dst: u32) -> u32 {
        let v = line.get(kind(e), dst as u16);
        if v & NODE == 0 {
            v
        } else {
            self.big(v)
        }
    }

    /// The final value of a descriptor that is not a ply; `key` as for [`line_index`].
    #[inline(always)]
    fn resolve(&self, e: u32, dst: u32, key: u32) -> u32 {
        if e & NODE == 0 {
            e
        } else if is_lines(e) {
            self.search(self.line(line_index(e, key)), e, dst)
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

    /// Staged lookup of up to [`BLOCK`] destinations. Stage 1 reads every root slot; stage 2
    /// turns each reference into its line (reading a ply slot for dense /16s) and prefetches
    /// it; stage 3 searches the lines, which by then are in flight or in L1. Each stage only
    /// handles the lanes still pending, so a table of short routes costs one pass.
    #[inline]
    fn lookup_block(&self, dst: &[u32], out: &mut [u32]) {
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
            pending[np] = i as u8;
            np += (e >> 31) as usize;
        }
        if np == 0 {
            return;
        }
        // Stages 2 and 3, software-pipelined: lane `pending[j]` gets its line computed and
        // prefetched while the lane DISTANCE line-lanes earlier is searched, so that about
        // DISTANCE lines are in flight (many more would overflow the miss buffers).
        let mut line: [&Line; BLOCK] = [&EMPTY_LINE; BLOCK];
        let mut nq = 0usize;
        let mut t = 0usize;
        for j in 0..np {
            let i = pending[j] as usize;
            if let (Some(&d), Some(o)) = (dst.get(i), out.get_mut(i)) {
                let mut e = *o;
                let mut key = root_key(d);
                if is_ply(e) {
                    e = self.ply(e & IDX_MASK).e[((d >> 8) & 0xff) as usize];
                    key = ply_key(d);
                }
                if is_lines(e) {
                    let l = self.line(line_index(e, key));
                    prefetch(l);
                    line[i] = l;
                    *o = e;
                    pending[nq] = i as u8;
                    nq += 1;
                } else {
                    *o = self.resolve(e, d, key);
                }
            }
            if nq > t + DISTANCE {
                self.search_lane(pending[t], &line, dst, out);
                t += 1;
            }
        }
        for &i in pending.get(t..nq).unwrap_or(&[]) {
            self.search_lane(i, &line, dst, out);
        }
    }

    #[inline(always)]
    fn search_lane(&self, i: u8, line: &[&Line; BLOCK], dst: &[u32], out: &mut [u32]) {
        let i = i as usize;
        if let (Some(&d), Some(o)) = (dst.get(i), out.get_mut(i)) {
            *o = self.search(line[i], *o, d);
        }
    }

    /// Batched lookup; see [`super::FibSnapshot::lookup_batch`].
    pub(super) fn lookup_batch(&self, dst: &[u32], out: &mut [u32]) {
        for (d, o) in dst.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            self.lookup_block(d, o);
        }
    }
}
