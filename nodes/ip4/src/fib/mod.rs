//! IPv4 forwarding information base: longest-prefix match from a destination address to an
//! adjacency index.
//!
//! [`Fib`] is the control-side route table. It keeps the routes in an ordered map and, on every
//! change, updates a lookup structure in place: a 65536-slot root indexed by the top 16 address
//! bits whose slots hold either an adjacency or a reference to a *range node* (the address runs
//! of that /16, up to 8 or 32 of them, found with a few SSE2 compares) or, for dense /16s, to a
//! 16-8-8 direct ply. [`Fib::snapshot`] hands the workers an immutable [`FibSnapshot`] that
//! shares the structure's pages through [`Arc`]s; later changes copy only the pages they touch.
//! `docs/fib.md` explains the choice with measurements.
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
    bias, reference, tag, Ply, Tables, FIRST, IDX_MASK, NODE, PAD, PLY_PAGE, R32, R32_PAGE, R8,
    R8_PAGE, ROOT_CHUNK, ROOT_CHUNKS, TAG_BIG, TAG_D2, TAG_D3, TAG_R32, TAG_R8,
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

/// Fills the starts and values of a range node from `runs` (`1 <= runs.len() <= N`).
fn fill_range<const N: usize>(starts: &mut [i16; N], vals: &mut [u32; N], runs: &[(u32, u32)]) {
    let last = runs.last().map_or(0, |r| r.1);
    for i in 0..N {
        match runs.get(i) {
            Some(&(s, v)) => {
                starts[i] = if i == 0 { FIRST } else { bias(s as u16) };
                vals[i] = v;
            }
            None => {
                starts[i] = PAD;
                vals[i] = last;
            }
        }
    }
}

/// Appends the runs of a range node whose span starts at `base`.
fn decode_range(starts: &[i16], vals: &[u32], base: u32, out: &mut Vec<(u32, u32)>) {
    for (i, (&s, &v)) in starts.iter().zip(vals).enumerate() {
        let start = if i == 0 {
            base
        } else {
            (base & 0xffff_0000) | u32::from((s as u16) ^ 0x8000)
        };
        push_run(out, start, v);
    }
}

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
    free_r8: Vec<u32>,
    next_r8: u32,
    free_r32: Vec<u32>,
    next_r32: u32,
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
    /// Destinations are processed in blocks of 256, level by level, so that the memory accesses
    /// of different destinations overlap; it does not allocate.
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
            reference(TAG_BIG, 0)
        };
        let mut t = Tables::new(leaf);
        t.big = Arc::new(big);
        Fib {
            routes: BTreeMap::new(),
            per_len: [0; 33],
            default_adj,
            t: Arc::new(t),
            free_r8: Vec::new(),
            next_r8: 0,
            free_r32: Vec::new(),
            next_r32: 0,
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
    /// bits set beyond `len`, [`FibError::TooManyLargeAdjacencies`] (see there). The table is
    /// unchanged on error.
    pub fn insert(
        &mut self,
        prefix: Ipv4Addr,
        len: u8,
        adj: AdjIndex,
    ) -> Result<Option<AdjIndex>, FibError> {
        let p = check(prefix, len)?;
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
    /// The first change after it copies the page tables (one `Arc` per 12–16 KiB page) and
    /// then each page it writes to, as long as the snapshot is alive.
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
            + (self.free_r8.capacity() + self.free_r32.capacity() + self.free_ply.capacity()) * 4
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
            return Ok(reference(TAG_BIG, *idx));
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
        Ok(reference(TAG_BIG, idx))
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
            self.big_map
                .get(&adj)
                .map_or(0, |&(idx, _)| reference(TAG_BIG, idx))
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
        if old & NODE != 0 && tag(old) == TAG_D2 {
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
                // Fold a thinned-out dense /16 back into a range node.
                if let Some(all) = self.decode(old, cbase, 16, 32) {
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
        } else {
            let idx = e & IDX_MASK;
            match tag(e) {
                TAG_R8 => {
                    let n = self.t.r8(idx);
                    decode_range(&n.starts, &n.vals, base, out);
                }
                TAG_R32 => {
                    let n = self.t.r32(idx);
                    decode_range(&n.starts, &n.vals, base, out);
                }
                TAG_D2 if bits == 16 => {
                    let ply = self.t.ply(idx);
                    for (b, &sub) in ply.e.iter().enumerate() {
                        self.decode_into(sub, base | (b as u32) << 8, 8, limit, out)?;
                        if out.len() > limit {
                            return None;
                        }
                    }
                }
                TAG_D3 => {
                    let ply = self.t.ply(idx);
                    for (x, &v) in ply.e.iter().enumerate() {
                        push_run(out, base | x as u32, v);
                    }
                }
                _ => push_run(out, base, e),
            }
        }
        (out.len() <= limit).then_some(())
    }

    /// Builds the subtree for `runs` (sorted, covering `[base, base + 2^bits)`, the first may
    /// start before `base`) and returns its entry.
    fn build(&mut self, base: u32, bits: u32, runs: &[(u32, u32)]) -> u32 {
        match runs.len() {
            0 => self.leaf(self.default_adj),
            1 => runs[0].1,
            2..=8 => {
                let mut n = R8::EMPTY;
                fill_range(&mut n.starts, &mut n.vals, runs);
                reference(TAG_R8, self.alloc_r8(n))
            }
            9..=32 => {
                let mut n = R32::EMPTY;
                fill_range(&mut n.starts, &mut n.vals, runs);
                reference(TAG_R32, self.alloc_r32(n))
            }
            _ if bits == 16 => {
                let mut ply = Ply::EMPTY;
                for (b, slot) in ply.e.iter_mut().enumerate() {
                    let sb = base | (b as u32) << 8;
                    let sub = slice_runs(runs, sb, u64::from(sb) + 0x100);
                    *slot = self.build(sb, 8, sub);
                }
                reference(TAG_D2, self.alloc_ply(ply))
            }
            _ => {
                let mut ply = Ply::EMPTY;
                for (i, &(s, v)) in runs.iter().enumerate() {
                    let from = (s.saturating_sub(base) as usize).min(256);
                    let to = runs
                        .get(i + 1)
                        .map_or(256, |r| (r.0.saturating_sub(base) as usize).min(256));
                    if let Some(slots) = ply.e.get_mut(from..to) {
                        slots.fill(v);
                    }
                }
                reference(TAG_D3, self.alloc_ply(ply))
            }
        }
    }

    /// Returns the nodes of the subtree `e` to the free lists.
    fn free_tree(&mut self, e: u32) {
        if e & NODE == 0 {
            return;
        }
        let idx = e & IDX_MASK;
        match tag(e) {
            TAG_R8 => self.free_r8.push(idx),
            TAG_R32 => self.free_r32.push(idx),
            TAG_D2 => {
                let children = self.t.ply(idx).e;
                for c in children {
                    self.free_tree(c);
                }
                self.free_ply.push(idx);
            }
            TAG_D3 => self.free_ply.push(idx),
            _ => {}
        }
    }

    fn set_root(&mut self, c: usize, e: u32) {
        let t = Arc::make_mut(&mut self.t);
        Arc::make_mut(&mut t.root[(c / ROOT_CHUNK) % ROOT_CHUNKS])[c % ROOT_CHUNK] = e;
    }

    fn set_ply(&mut self, idx: u32, slot: usize, e: u32) {
        let t = Arc::make_mut(&mut self.t);
        let i = idx as usize;
        if let Some(page) = t.ply.get_mut(i / PLY_PAGE) {
            Arc::make_mut(page)[i % PLY_PAGE].e[slot & 0xff] = e;
        }
    }

    // Arena allocation. Index space: at most 2^16 level-2 and 2^24 level-3 nodes are live, and
    // freed nodes are reused before new ones, so indices stay far below 2^28.

    fn alloc_r8(&mut self, n: R8) -> u32 {
        let idx = self.free_r8.pop().unwrap_or_else(|| {
            self.next_r8 += 1;
            self.next_r8 - 1
        });
        let t = Arc::make_mut(&mut self.t);
        put(&mut t.r8, idx, n, R8::EMPTY);
        idx
    }

    fn alloc_r32(&mut self, n: R32) -> u32 {
        let idx = self.free_r32.pop().unwrap_or_else(|| {
            self.next_r32 += 1;
            self.next_r32 - 1
        });
        let t = Arc::make_mut(&mut self.t);
        put(&mut t.r32, idx, n, R32::EMPTY);
        idx
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
const _: () = assert!(R8_PAGE.is_power_of_two() && R32_PAGE.is_power_of_two());
const _: () = assert!(PLY_PAGE.is_power_of_two() && ROOT_CHUNK.is_power_of_two());
