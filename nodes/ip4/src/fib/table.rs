//! The lookup structure: a 16-bit direct root over run-compressed plies (see `docs/fib.md`).
//!
//! Every slot of the structure holds a 32-bit *entry*:
//!
//! * bit 31 clear: a leaf, the adjacency itself (values below 2^31);
//! * bit 31 set: bits 28..=30 give a tag and bits 0..=27 an index into the arena of that tag:
//!   - [`TAG_R8`] / [`TAG_R32`]: a range node of up to 8 / 32 runs over the low 16 address
//!     bits, searched by counting run starts `<=` the key (SSE2 compares after inlining);
//!   - [`TAG_D2`]: a direct 256-slot ply indexed by address bits 8..=15;
//!   - [`TAG_D3`]: a direct 256-slot ply indexed by address bits 0..=7;
//!   - [`TAG_BIG`]: an index into the table of adjacencies `>= 2^31` (terminal).
//!
//! Nodes live in arenas of fixed-size pages, each page behind its own [`Arc`], and the root is
//! split into [`ROOT_CHUNKS`] chunks behind their own [`Arc`]s, so a snapshot is a clone of the
//! page vectors and a write after a snapshot copies only the pages it touches
//! ([`Arc::make_mut`]).

use std::sync::Arc;

/// Entry bit marking a reference (node or big adjacency) rather than a leaf.
pub(super) const NODE: u32 = 1 << 31;
/// Shift of the 3-bit tag inside a reference entry.
const TAG_SHIFT: u32 = 28;
/// Mask of the arena index inside a reference entry.
pub(super) const IDX_MASK: u32 = (1 << TAG_SHIFT) - 1;

/// Range node with up to 8 runs.
pub(super) const TAG_R8: u32 = 0;
/// Range node with up to 32 runs.
pub(super) const TAG_R32: u32 = 1;
/// Direct ply indexed by address bits 8..=15 (under a root slot).
pub(super) const TAG_D2: u32 = 2;
/// Direct ply indexed by address bits 0..=7 (under a [`TAG_D2`] slot).
pub(super) const TAG_D3: u32 = 3;
/// Index into the table of adjacencies that do not fit in a leaf.
pub(super) const TAG_BIG: u32 = 4;

/// Makes a reference entry.
#[inline]
pub(super) const fn reference(tag: u32, idx: u32) -> u32 {
    NODE | (tag << TAG_SHIFT) | (idx & IDX_MASK)
}

/// The tag of a reference entry (meaningless for leaves).
#[inline(always)]
pub(super) const fn tag(e: u32) -> u32 {
    (e >> TAG_SHIFT) & 7
}

/// Root slots per root chunk.
pub(super) const ROOT_CHUNK: usize = 1024;
/// Number of root chunks (65536 slots in all, one per /16).
pub(super) const ROOT_CHUNKS: usize = 65536 / ROOT_CHUNK;

/// Nodes per page, per arena (pages of 12–16 KiB).
pub(super) const R8_PAGE: usize = 256;
/// See [`R8_PAGE`].
pub(super) const R32_PAGE: usize = 64;
/// See [`R8_PAGE`].
pub(super) const PLY_PAGE: usize = 16;

/// Biased run start of padding slots (`0xffff ^ 0x8000`): only the key `0xffff` reaches it,
/// and padding repeats the last run's value, so counting it changes nothing.
pub(super) const PAD: i16 = i16::MAX;
/// Biased run start of slot 0 (address offset 0), `<=` every key.
pub(super) const FIRST: i16 = i16::MIN;

/// Biases a 16-bit run start or key so that a signed compare orders it as unsigned.
#[inline(always)]
pub(super) const fn bias(x: u16) -> i16 {
    (x ^ 0x8000) as i16
}

/// A range node of up to 8 runs in one cache line: run `i` starts at `starts[i]` (biased low
/// 16 address bits, sorted, `starts[0] == FIRST`), has entry `vals[i]`; unused slots hold
/// [`PAD`] and repeat the last value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(super) struct R8 {
    pub starts: [i16; 8],
    pub vals: [u32; 8],
}

/// A range node of up to 32 runs in three cache lines; same layout rules as [`R8`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(super) struct R32 {
    pub starts: [i16; 32],
    pub vals: [u32; 32],
}

/// A direct ply of 256 entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, align(64))]
pub(super) struct Ply {
    pub e: [u32; 256],
}

impl R8 {
    pub(super) const EMPTY: R8 = R8 {
        starts: [PAD; 8],
        vals: [0; 8],
    };
}
impl R32 {
    pub(super) const EMPTY: R32 = R32 {
        starts: [PAD; 32],
        vals: [0; 32],
    };
}
impl Ply {
    pub(super) const EMPTY: Ply = Ply { e: [0; 256] };
}

/// Index of the run holding `key`: the number of biased starts `<= key`, minus one.
/// Written so that LLVM turns it into SSE2 compares, a movemask and a population count.
#[inline(always)]
fn rank<const N: usize>(starts: &[i16; N], key: u16) -> usize {
    let k = bias(key);
    let mut c: u32 = 0;
    for &s in starts {
        c += (s <= k) as u32;
    }
    // starts[0] == FIRST, so c >= 1; N is a power of two, so the mask keeps the index in range.
    (c as usize).wrapping_sub(1) & (N - 1)
}

pub(super) type RootChunk = [u32; ROOT_CHUNK];
pub(super) type R8Page = [R8; R8_PAGE];
pub(super) type R32Page = [R32; R32_PAGE];
pub(super) type PlyPage = [Ply; PLY_PAGE];

/// The lookup structure shared (through [`Arc`]s) between the control side and snapshots.
#[derive(Clone)]
pub(super) struct Tables {
    pub root: [Arc<RootChunk>; ROOT_CHUNKS],
    pub r8: Vec<Arc<R8Page>>,
    pub r32: Vec<Arc<R32Page>>,
    pub ply: Vec<Arc<PlyPage>>,
    pub big: Arc<Vec<u32>>,
}

/// Batch size of the staged lookup (indices of pending lanes fit in a `u8`).
const BLOCK: usize = 256;

static EMPTY_R8: R8 = R8::EMPTY;
static EMPTY_R32: R32 = R32::EMPTY;
static EMPTY_PLY: Ply = Ply::EMPTY;

impl Tables {
    /// A structure whose every address maps to the leaf entry `leaf`.
    pub(super) fn new(leaf: u32) -> Self {
        Tables {
            root: std::array::from_fn(|_| Arc::new([leaf; ROOT_CHUNK])),
            r8: Vec::new(),
            r32: Vec::new(),
            ply: Vec::new(),
            big: Arc::new(Vec::new()),
        }
    }

    /// Bytes held by the lookup structure (root, arena pages, big-adjacency table).
    pub(super) fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        ROOT_CHUNKS * size_of::<RootChunk>()
            + self.r8.len() * size_of::<R8Page>()
            + self.r32.len() * size_of::<R32Page>()
            + self.ply.len() * size_of::<PlyPage>()
            + self.big.capacity() * size_of::<u32>()
    }

    #[inline(always)]
    pub(super) fn root_entry(&self, slot: usize) -> u32 {
        self.root[(slot / ROOT_CHUNK) % ROOT_CHUNKS][slot % ROOT_CHUNK]
    }

    #[inline(always)]
    pub(super) fn r8(&self, idx: u32) -> &R8 {
        let i = idx as usize;
        match self.r8.get(i / R8_PAGE) {
            Some(p) => &p[i % R8_PAGE],
            None => &EMPTY_R8,
        }
    }

    #[inline(always)]
    pub(super) fn r32(&self, idx: u32) -> &R32 {
        let i = idx as usize;
        match self.r32.get(i / R32_PAGE) {
            Some(p) => &p[i % R32_PAGE],
            None => &EMPTY_R32,
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

    /// One step down from the reference entry `e` for destination `dst`: the next entry, and
    /// whether it still has to be followed.
    #[inline(always)]
    fn step(&self, e: u32, dst: u32) -> (u32, bool) {
        let idx = e & IDX_MASK;
        let next = match tag(e) {
            TAG_R8 => {
                let n = self.r8(idx);
                n.vals[rank(&n.starts, dst as u16)]
            }
            TAG_R32 => {
                let n = self.r32(idx);
                n.vals[rank(&n.starts, dst as u16)]
            }
            TAG_D2 => self.ply(idx).e[((dst >> 8) & 0xff) as usize],
            TAG_D3 => self.ply(idx).e[(dst & 0xff) as usize],
            _ => return (self.big.get(idx as usize).copied().unwrap_or(0), false),
        };
        (next, next & NODE != 0)
    }

    /// Longest-prefix match of one destination.
    #[inline]
    pub(super) fn lookup(&self, dst: u32) -> u32 {
        let mut e = self.root_entry((dst >> 16) as usize);
        // The structure is at most three levels deep; the bound only guards the loop.
        for _ in 0..4 {
            if e & NODE == 0 {
                return e;
            }
            let (next, more) = self.step(e, dst);
            e = next;
            if !more {
                return e;
            }
        }
        e
    }

    /// Staged lookup of up to [`BLOCK`] destinations: each stage walks one level for every lane
    /// still pending, so the loads of a stage are independent and overlap in the out-of-order
    /// window instead of serialising on each lane's pointer chain.
    #[inline]
    fn lookup_block(&self, dst: &[u32], out: &mut [u32]) {
        let n = dst.len().min(out.len()).min(BLOCK);
        let (dst, out) = (&dst[..n], &mut out[..n]);
        let mut pending = [0u8; BLOCK];
        let mut np = 0usize;
        for (i, (&d, o)) in dst.iter().zip(out.iter_mut()).enumerate() {
            let e = self.root_entry((d >> 16) as usize);
            *o = e;
            pending[np] = i as u8;
            np += (e >> 31) as usize;
        }
        for _ in 0..4 {
            if np == 0 {
                break;
            }
            let mut nq = 0usize;
            for j in 0..np {
                let i = pending[j] as usize;
                let (Some(&d), Some(o)) = (dst.get(i), out.get_mut(i)) else {
                    continue;
                };
                let (e, more) = self.step(*o, d);
                *o = e;
                pending[nq] = i as u8;
                nq += more as usize;
            }
            np = nq;
        }
    }

    /// Batched lookup; see [`super::FibSnapshot::lookup_batch`].
    pub(super) fn lookup_batch(&self, dst: &[u32], out: &mut [u32]) {
        for (d, o) in dst.chunks(BLOCK).zip(out.chunks_mut(BLOCK)) {
            self.lookup_block(d, o);
        }
    }
}
