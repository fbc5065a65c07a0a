//! IPv4 forwarding information base: longest-prefix match from a destination address to an
//! adjacency index.
//!
//! [`Fib`] is the control-side route table. It keeps the routes in an ordered map and, on every
//! change, updates a lookup structure in place: a 65536-slot root indexed by the top 16 address
//! bits whose slots hold either an adjacency or a reference to a block of cache lines, each
//! listing the *runs* (address ranges with one result) of an equal part of that /16, searched
//! by comparing the key with all run starts at once (SSE2); dense /16s get a 256-slot ply in
//! between. A lookup reads one root slot and, for most destinations, one cache line;
//! [`FibSnapshot::lookup_batch`] prefetches those lines a few dozen destinations ahead. [`Fib::snapshot`] hands the workers
//! an immutable [`FibSnapshot`] that shares the structure's pages through [`Arc`]s; later
//! changes copy only the pages they touch. `docs/fib.md` explains the choice with
//! measurements.
//!
//! ```
//! use std::net::Ipv4Addr;
//! use vpg_ip4::fib::Fib;
//!
//! let mut fib = Fib::new(0);
//! fib.insert(Ipv4Addr::new(10, 0, 0, 0), 8, 1).unwrap();
//! fib.insert(Ipv4Addr::new(10, 1, 2, 0), 24, 2).unwrap();
//! let snap = fib.snapshot();
//! assert_eq!(snap.lookup(u32::from(Ipv4Addr::new(10, 1, 2, 3))), 2);
//! assert_eq!(snap.lookup(u32::from(Ipv4Addr::new(10, 9, 9, 9))), 1);
//! assert_eq!(snap.lookup(u32::from(Ipv4Addr::new(192, 0, 2, 1))), 0);
//! let mut out = [0; 2];
//! snap.lookup_batch(&[0x0a01_0203, 0xc000_0201], &mut out);
//! assert_eq!(out, [2, 0]);
//! ```

mod table;
pub mod testgen;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use table::{
    big_ref, capacity, is_lines, is_ply, lines, lines_of, ply_ref, Line, Ply, Tables, IDX_MASK,
    LINE_MASK, LINE_PAGE, MAX_PARTS, N16, N8, NODE, PLY_PAGE, ROOT_CHUNK, ROOT_CHUNKS, WIDE,
};

/// Index into the adjacency table. The FIB stores and returns it without interpreting it.
pub type AdjIndex = u32;

/// Why a route could not be inserted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FibError {
    /// The prefix length is above 32.
    #[error("prefix length {len} is longer than 32")]
    InvalidLength {
        /// The rejected length.
        len: u8,
    },
    /// The prefix has bits set beyond its length (e.g. `10.0.0.1/8`).
    #[error("{prefix}/{len} has host bits set")]
    HostBitsSet {
        /// The rejected prefix.
        prefix: Ipv4Addr,
        /// Its length.
        len: u8,
    },
    /// More than 2^28 distinct adjacency indices `>= 2^31` are in use at once (such indices
    /// do not fit in a lookup leaf and go through a side table).
    #[error("too many distinct adjacency indices >= 2^31")]
    TooManyLargeAdjacencies,
    /// The lookup structure has used up its index space (about 14 million cache lines, i.e.
    /// 900 MiB: on the order of a hundred million routes).
    #[error("the FIB lookup structure is full")]
    Full,
}

/// Network mask of a prefix length (`len <= 32`).
#[inline]
fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len.min(32)))
    }
}

/// Checks a prefix and returns it as a `u32`.
fn check(prefix: Ipv4Addr, len: u8) -> Result<u32, FibError> {
    if len > 32 {
        return Err(FibError::InvalidLength { len });
    }
    let p = u32::from(prefix);
    if p & !mask(len) != 0 {
        return Err(FibError::HostBitsSet { prefix, len });
    }
    Ok(p)
}

/// Appends a run unless it continues the previous one.
#[inline]
fn push_run(out: &mut Vec<(u32, u32)>, start: u32, val: u32) {
    if out.last().map(|r| r.1) != Some(val) {
        out.push((start, val));
    }
}

/// Offset of part `l` of `n` equal parts of a span of `bits` bits: the first offset `o` with
/// `(o << (16 - bits)) * n >> 16 == l`, as [`table::line_index`] computes.
fn part_start(l: u32, n: u32, bits: u32) -> u32 {
    let span = 1u64 << bits;
    ((u64::from(l) * span).div_ceil(u64::from(n.max(1)))) as u32
}

/// The runs of `runs` (sorted, covering) that intersect `[lo, hi)`.
fn slice_runs(runs: &[(u32, u32)], lo: u32, hi: u64) -> &[(u32, u32)] {
    let i0 = runs.partition_point(|r| r.0 <= lo).saturating_sub(1);
    let i1 = runs.partition_point(|r| u64::from(r.0) < hi).max(i0);
    runs.get(i0..i1).unwrap_or(&[])
}

/// The runs of `cur` (covering a span ending at `end`) with `[lo, hi)` replaced by `new`
/// (which covers exactly `[lo, hi)`).
fn splice(cur: &[(u32, u32)], new: &[(u32, u32)], lo: u32, hi: u64, end: u64) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(cur.len() + new.len() + 1);
    for &(s, v) in cur.iter().take_while(|r| r.0 < lo) {
        push_run(&mut out, s, v);
    }
    for &(s, v) in new {
        push_run(&mut out, s, v);
    }
    if hi < end {
        // The run of `cur` holding `hi` resumes there, then the later ones follow.
        let after = cur.partition_point(|r| u64::from(r.0) <= hi);
        if let Some(&(_, v)) = after.checked_sub(1).and_then(|i| cur.get(i)) {
            push_run(&mut out, hi as u32, v);
        }
        for &(s, v) in cur.get(after..).unwrap_or(&[]) {
            push_run(&mut out, s, v);
        }
    }
    out
}

/// Line indices handed out before [`Fib::insert`] reports [`FibError::Full`] (the margin covers
/// the largest single update).
const LINE_LIMIT: u32 = LINE_MASK - (1 << 21);

/// The control-side IPv4 route table, kept together with its lookup structure.
///
/// Every change updates the lookup structure incrementally (in O(log n + routes under the
/// changed prefix)); [`Fib::snapshot`] then publishes it to the workers in O(1). Cloning shares
/// the lookup pages (copy on write), so a transaction can work on a clone and drop it.
#[derive(Clone)]
pub struct Fib {
    routes: BTreeMap<(u32, u8), AdjIndex>,
    per_len: [usize; 33],
    default_adj: AdjIndex,
    t: Arc<Tables>,
    /// Free blocks of `n` lines, at `n - 1`.
    free_lines: [Vec<u32>; MAX_PARTS as usize],
    next_line: u32,
    free_ply: Vec<u32>,
    next_ply: u32,
    /// Adjacencies `>= 2^31`: index in `t.big` and number of routes (plus the default) using it.
    big_map: HashMap<AdjIndex, (u32, usize)>,
    big_free: Vec<u32>,
    scratch: Vec<(u32, u32)>,
}

impl fmt::Debug for Fib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fib")
            .field("routes", &self.routes.len())
            .field("default_adj", &self.default_adj)
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

/// An immutable lookup structure taken from a [`Fib`] by [`Fib::snapshot`].
///
/// Cloning it is an [`Arc`] clone. Lookups never allocate, lock or panic.
#[derive(Clone)]
pub struct FibSnapshot {
    t: Arc<Tables>,
}

impl fmt::Debug for FibSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FibSnapshot")
            .field("memory_bytes", &self.memory_bytes())
            .finish()
    }
}

impl FibSnapshot {
    /// The adjacency of the longest prefix matching `dst` (the address as a big-endian value,
    /// `u32::from(Ipv4Addr)`), or the FIB's default adjacency when none matches.
    #[inline]
    pub fn lookup(&self, dst: u32) -> AdjIndex {
        self.t.lookup(dst)
    }

    /// [`lookup`](Self::lookup) of every `dst[i]` into `out[i]`, for `i` below the shorter of
    /// the two lengths (the rest of `out` is left alone).
    ///
    /// Destinations are processed in blocks of 256: all root slots first, then each
    /// destination's cache line is prefetched 64 destinations before it is searched, so that
    /// the memory accesses of different destinations overlap. It does not allocate.
    #[inline]
    pub fn lookup_batch(&self, dst: &[u32], out: &mut [AdjIndex]) {
        self.t.lookup_batch(dst, out);
    }

    /// Bytes of the lookup structure (shared with the [`Fib`] and other snapshots).
    pub fn memory_bytes(&self) -> usize {
        self.t.memory_bytes()
    }
}

impl Fib {
    /// An empty table; lookups that match no prefix return `default_adj` (typically a drop
    /// adjacency).
    pub fn new(default_adj: AdjIndex) -> Self {
        let mut big_map = HashMap::new();
        let mut big = Vec::new();
        let leaf = if default_adj & NODE == 0 {
            default_adj
        } else {
            big_map.insert(default_adj, (0, 1));
            big.push(default_adj);
            big_ref(0)
        };
        let mut t = Tables::new(leaf);
        t.big = Arc::new(big);
        Fib {
            routes: BTreeMap::new(),
            per_len: [0; 33],
            default_adj,
            t: Arc::new(t),
            free_lines: Default::default(),
            next_line: 0,
            free_ply: Vec::new(),
            next_ply: 0,
            big_map,
            big_free: Vec::new(),
            scratch: Vec::new(),
        }
    }

    /// Adds the route `prefix/len → adj`, or replaces the adjacency of an existing one, which
    /// is returned.
    ///
    /// # Errors
    ///
    /// [`FibError::InvalidLength`] if `len > 32`, [`FibError::HostBitsSet`] if `prefix` has
    /// bits set beyond `len`; [`FibError::TooManyLargeAdjacencies`] and [`FibError::Full`] (see
    /// there). The table is unchanged on error.
    pub fn insert(
        &mut self,
        prefix: Ipv4Addr,
        len: u8,
        adj: AdjIndex,
    ) -> Result<Option<AdjIndex>, FibError> {
        let p = check(prefix, len)?;
        if self.next_line > LINE_LIMIT {
            return Err(FibError::Full);
        }
        let leaf = self.acquire(adj)?;
        let old = self.routes.insert((p, len), adj);
        match old {
            None => self.per_len[usize::from(len)] += 1,
            Some(o) if o == adj => {
                self.release(o);
                return Ok(old);
            }
            Some(_) => {}
        }
        self.update(p, len, leaf, false);
        if let Some(o) = old {
            self.release(o);
        }
        Ok(old)
    }

    /// Removes the route `prefix/len` and returns its adjacency; `None` if there is no such
    /// route (or the prefix is invalid). Addresses it covered fall back to the next shorter
    /// matching route.
    pub fn remove(&mut self, prefix: Ipv4Addr, len: u8) -> Option<AdjIndex> {
        let p = check(prefix, len).ok()?;
        let old = self.routes.remove(&(p, len))?;
        self.per_len[usize::from(len)] -= 1;
        let cover = self.cover(p, len);
        self.update(p, len, cover, true);
        self.release(old);
        Some(old)
    }

    /// The adjacency of exactly the route `prefix/len`, if present.
    pub fn get(&self, prefix: Ipv4Addr, len: u8) -> Option<AdjIndex> {
        let p = check(prefix, len).ok()?;
        self.routes.get(&(p, len)).copied()
    }

    /// Number of routes.
    pub fn len(&self) -> usize {
        self.routes.len()
    }

    /// Whether there are no routes.
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// The adjacency returned when no route matches.
    pub fn default_adj(&self) -> AdjIndex {
        self.default_adj
    }

    /// All routes as `(prefix, len, adj)`, sorted by prefix, then length.
    pub fn routes(&self) -> impl Iterator<Item = (Ipv4Addr, u8, AdjIndex)> + '_ {
        self.routes
            .iter()
            .map(|(&(p, len), &adj)| (Ipv4Addr::from(p), len, adj))
    }

    /// An immutable lookup structure reflecting the routes now; O(1) (an [`Arc`] clone).
    /// While it is alive, the first change after it clones the page tables (one `Arc` per
    /// 16 KiB page: about 10 µs at 1M routes) and each change copies the pages it writes to.
    pub fn snapshot(&self) -> FibSnapshot {
        FibSnapshot {
            t: Arc::clone(&self.t),
        }
    }

    /// Approximate bytes held: the lookup structure plus the route map and free lists (the
    /// route map is estimated at 24 bytes per route, its B-tree's typical footprint).
    pub fn memory_bytes(&self) -> usize {
        self.t.memory_bytes()
            + self.routes.len() * 24
            + (self.free_lines.iter().map(Vec::capacity).sum::<usize>() + self.free_ply.capacity())
                * 4
            + self.big_map.capacity() * 24
            + self.scratch.capacity() * 8
    }

    // ----- adjacency encoding -------------------------------------------------------------

    /// The lookup leaf for `adj`, taking a reference on its side-table slot if it needs one.
    fn acquire(&mut self, adj: AdjIndex) -> Result<u32, FibError> {
        if adj & NODE == 0 {
            return Ok(adj);
        }
        if let Some((idx, refs)) = self.big_map.get_mut(&adj) {
            *refs += 1;
            return Ok(big_ref(*idx));
        }
        let idx = match self.big_free.pop() {
            Some(i) => i,
            None => {
                let n = self.t.big.len();
                if n > IDX_MASK as usize {
                    return Err(FibError::TooManyLargeAdjacencies);
                }
                n as u32
            }
        };
        let big = Arc::make_mut(&mut Arc::make_mut(&mut self.t).big);
        match big.get_mut(idx as usize) {
            Some(slot) => *slot = adj,
            None => big.push(adj),
        }
        self.big_map.insert(adj, (idx, 1));
        Ok(big_ref(idx))
    }

    /// Drops a reference taken by [`acquire`](Self::acquire).
    fn release(&mut self, adj: AdjIndex) {
        if adj & NODE == 0 {
            return;
        }
        if let Some((idx, refs)) = self.big_map.get_mut(&adj) {
            *refs -= 1;
            if *refs == 0 {
                let idx = *idx;
                self.big_map.remove(&adj);
                self.big_free.push(idx);
            }
        }
    }

    /// The lookup leaf of an adjacency already in use.
    fn leaf(&self, adj: AdjIndex) -> u32 {
        if adj & NODE == 0 {
            adj
        } else {
            self.big_map.get(&adj).map_or(0, |&(idx, _)| big_ref(idx))
        }
    }

    /// The leaf of the longest route strictly shorter than `len` covering `p`, or the default.
    fn cover(&self, p: u32, len: u8) -> u32 {
        for l in (0..len).rev() {
            if self.per_len[usize::from(l)] == 0 {
                continue;
            }
            if let Some(&adj) = self.routes.get(&(p & mask(l), l)) {
                return self.leaf(adj);
            }
        }
        self.leaf(self.default_adj)
    }

    // ----- incremental maintenance --------------------------------------------------------

    /// Recomputes the lookup structure over `p/len`, whose routes other than the ones strictly
    /// inside it resolve to `base`.
    fn update(&mut self, p: u32, len: u8, base: u32, removal: bool) {
        let mut runs = std::mem::take(&mut self.scratch);
        self.runs_in(p, len, base, &mut runs);
        self.apply(p, len, &runs, removal);
        runs.clear();
        self.scratch = runs;
    }

    /// The lookup runs over `p/len`: `base`, overridden by the routes strictly inside it.
    fn runs_in(&self, p: u32, len: u8, base: u32, out: &mut Vec<(u32, u32)>) {
        out.clear();
        let start = u64::from(p);
        let end = start + (1u64 << (32 - u32::from(len)));
        // Enclosing routes, innermost last; each is strictly inside the previous one.
        let mut stack = [(0u64, 0u32); 34];
        stack[0] = (end, base);
        let mut sp = 1usize;
        let mut pos = start;
        if len < 32 {
            let inside = self.routes.range((p, len + 1)..=(p | !mask(len), 32));
            for (&(q, l), &adj) in inside {
                let q = u64::from(q);
                while sp > 1 && stack[sp - 1].0 <= q {
                    let (e, v) = stack[sp - 1];
                    if pos < e {
                        push_run(out, pos as u32, v);
                        pos = e;
                    }
                    sp -= 1;
                }
                if pos < q {
                    push_run(out, pos as u32, stack[sp - 1].1);
                    pos = q;
                }
                if sp < stack.len() {
                    stack[sp] = (q + (1u64 << (32 - u32::from(l))), self.leaf(adj));
                    sp += 1;
                }
            }
        }
        while sp > 0 {
            let (e, v) = stack[sp - 1];
            if pos < e {
                push_run(out, pos as u32, v);
                pos = e;
            }
            sp -= 1;
        }
    }

    /// Writes `runs` (covering exactly `p/len`) into the lookup structure.
    fn apply(&mut self, p: u32, len: u8, runs: &[(u32, u32)], removal: bool) {
        if len <= 16 {
            let c0 = (p >> 16) as usize;
            for c in c0..c0 + (1usize << (16 - len)) {
                let lo = (c as u32) << 16;
                let sub = slice_runs(runs, lo, u64::from(lo) + 0x1_0000);
                let old = self.t.root_entry(c);
                if sub.len() == 1 && sub[0].1 == old {
                    continue;
                }
                self.free_tree(old);
                let new = self.build(lo, 16, sub);
                self.set_root(c, new);
            }
            return;
        }
        let c = (p >> 16) as usize;
        let cbase = p & 0xffff_0000;
        let hi = u64::from(p) + (1u64 << (32 - u32::from(len)));
        let old = self.t.root_entry(c);
        if is_ply(old) {
            let pi = old & IDX_MASK;
            let b0 = ((p >> 8) & 0xff) as usize;
            if len <= 24 {
                for b in b0..b0 + (1usize << (24 - len)) {
                    let sb = cbase | (b as u32) << 8;
                    let sub = slice_runs(runs, sb, u64::from(sb) + 0x100);
                    let olds = self.t.ply(pi).e[b & 0xff];
                    if sub.len() == 1 && sub[0].1 == olds {
                        continue;
                    }
                    self.free_tree(olds);
                    let new = self.build(sb, 8, sub);
                    self.set_ply(pi, b, new);
                }
            } else {
                let sb = p & 0xffff_ff00;
                let olds = self.t.ply(pi).e[b0];
                let cur = self.decode(olds, sb, 8, usize::MAX).unwrap_or_default();
                let new = splice(&cur, runs, p, hi, u64::from(sb) + 0x100);
                if new != cur {
                    self.free_tree(olds);
                    let n = self.build(sb, 8, &new);
                    self.set_ply(pi, b0, n);
                }
            }
            if removal {
                // Fold a thinned-out dense /16 back into a block of lines.
                if let Some(all) = self.decode(old, cbase, 16, 4 * capacity(N16)) {
                    self.free_tree(old);
                    let n = self.build(cbase, 16, &all);
                    self.set_root(c, n);
                }
            }
        } else {
            let cur = self.decode(old, cbase, 16, usize::MAX).unwrap_or_default();
            let new = splice(&cur, runs, p, hi, u64::from(cbase) + 0x1_0000);
            if new != cur {
                self.free_tree(old);
                let n = self.build(cbase, 16, &new);
                self.set_root(c, n);
            }
        }
    }

    /// The runs of the subtree `e` spanning `[base, base + 2^bits)`, or `None` if there are
    /// more than `limit`.
    fn decode(&self, e: u32, base: u32, bits: u32, limit: usize) -> Option<Vec<(u32, u32)>> {
        let mut out = Vec::new();
        self.decode_into(e, base, bits, limit, &mut out)?;
        Some(out)
    }

    fn decode_into(
        &self,
        e: u32,
        base: u32,
        bits: u32,
        limit: usize,
        out: &mut Vec<(u32, u32)>,
    ) -> Option<()> {
        if e & NODE == 0 {
            push_run(out, base, e);
            return Some(());
        }
        match e {
            _ if is_lines(e) => {
                let (n, first) = lines_of(e);
                let kind = table::kind(e);
                for l in 0..n {
                    let line = self.t.line(first.wrapping_add(l));
                    let part = base + part_start(l, n, bits);
                    for r in 0..capacity(kind) {
                        let (s, v) = line.run(kind, r);
                        let start = if r == 0 {
                            part
                        } else {
                            (base & 0xffff_0000) | u32::from(s)
                        };
                        push_run(out, start, v);
                    }
                    if out.len() > limit {
                        return None;
                    }
                }
            }
            _ if is_ply(e) && bits == 16 => {
                let ply = self.t.ply(e & IDX_MASK);
                for (b, &sub) in ply.e.iter().enumerate() {
                    self.decode_into(sub, base | (b as u32) << 8, 8, limit, out)?;
                }
            }
            _ => push_run(out, base, e),
        }
        (out.len() <= limit).then_some(())
    }

    /// Builds the subtree for `runs` (sorted, covering `[base, base + 2^bits)`, the first may
    /// start before `base`) and returns its descriptor: a leaf, the smallest block of lines
    /// whose equal parts each fit in a line, or (for a /16 needing more than [`MAX_PARTS`]
    /// lines) a ply.
    fn build(&mut self, base: u32, bits: u32, runs: &[(u32, u32)]) -> u32 {
        if runs.len() <= 1 {
            return match runs.first() {
                Some(r) => r.1,
                None => self.leaf(self.default_adj),
            };
        }
        let max = runs.iter().map(|r| r.1).max().unwrap_or(0);
        let kind = match max {
            0..=0xff => N8,
            0x100..=0xffff => N16,
            _ => WIDE,
        };
        let cap = capacity(kind);
        let part = |l: u32, n: u32| {
            let lo = u64::from(base) + u64::from(part_start(l, n, bits));
            let hi = u64::from(base) + u64::from(part_start(l + 1, n, bits));
            slice_runs(runs, lo as u32, hi)
        };
        // Parts of a span of 8 bits have at most 8 addresses from n = 32 on, so always fit.
        let n_min = (runs.len().div_ceil(cap) as u32).clamp(1, MAX_PARTS);
        for n in n_min..=MAX_PARTS {
            if (0..n).all(|l| part(l, n).len() <= cap) {
                let first = self.alloc_lines(n);
                for l in 0..n {
                    let line = Line::new(kind, part(l, n));
                    self.put_line(first.wrapping_add(l), line);
                }
                return lines(kind, n, first);
            }
        }
        let mut ply = Ply::EMPTY;
        for (b, slot) in ply.e.iter_mut().enumerate() {
            let sb = base | (b as u32) << 8;
            *slot = self.build(sb, 8, slice_runs(runs, sb, u64::from(sb) + 0x100));
        }
        ply_ref(self.alloc_ply(ply))
    }

    /// Returns the lines and plies of the subtree `e` to the free lists.
    fn free_tree(&mut self, e: u32) {
        if is_lines(e) {
            let (n, first) = lines_of(e);
            if let Some(list) = self.free_lines.get_mut(n as usize - 1) {
                list.push(first);
            }
        } else if is_ply(e) {
            let children = self.t.ply(e & IDX_MASK).e;
            for c in children {
                self.free_tree(c);
            }
            self.free_ply.push(e & IDX_MASK);
        }
    }

    fn set_root(&mut self, c: usize, e: u32) {
        let t = Arc::make_mut(&mut self.t);
        let slot = &mut Arc::make_mut(&mut t.root[(c / ROOT_CHUNK) % ROOT_CHUNKS])[c % ROOT_CHUNK];
        let was = *slot;
        *slot = e;
        t.refs = t.refs + (e >> 31) - (was >> 31);
    }

    fn set_ply(&mut self, idx: u32, slot: usize, e: u32) {
        let t = Arc::make_mut(&mut self.t);
        let i = idx as usize;
        if let Some(page) = t.ply.get_mut(i / PLY_PAGE) {
            Arc::make_mut(page)[i % PLY_PAGE].e[slot & 0xff] = e;
        }
    }

    // Arena allocation. Freed blocks are reused (per size) before new indices are handed out.

    /// A block of `n` (`1..=MAX_PARTS`) consecutive line indices.
    fn alloc_lines(&mut self, n: u32) -> u32 {
        let n = n.clamp(1, MAX_PARTS);
        if let Some(first) = self.free_lines.get_mut(n as usize - 1).and_then(Vec::pop) {
            return first;
        }
        let first = self.next_line;
        self.next_line = self.next_line.saturating_add(n);
        first
    }

    fn put_line(&mut self, idx: u32, line: Line) {
        let t = Arc::make_mut(&mut self.t);
        put(&mut t.lines, idx, line, Line::EMPTY);
    }

    fn alloc_ply(&mut self, n: Ply) -> u32 {
        let idx = self.free_ply.pop().unwrap_or_else(|| {
            self.next_ply += 1;
            self.next_ply - 1
        });
        let t = Arc::make_mut(&mut self.t);
        put(&mut t.ply, idx, n, Ply::EMPTY);
        idx
    }
}

/// Stores `v` at `idx` of a paged arena, growing it by whole pages.
fn put<T: Copy, const N: usize>(pages: &mut Vec<Arc<[T; N]>>, idx: u32, v: T, empty: T) {
    let i = idx as usize;
    while pages.len() <= i / N {
        pages.push(Arc::new([empty; N]));
    }
    if let Some(page) = pages.get_mut(i / N) {
        Arc::make_mut(page)[i % N] = v;
    }
}

// Page sizes are powers of two so that the lookup's `/` and `%` are shifts and masks.
const _: () = assert!(LINE_PAGE.is_power_of_two());
const _: () = assert!(PLY_PAGE.is_power_of_two() && ROOT_CHUNK.is_power_of_two());
