//! Packet buffers: a 64-byte header, 128 bytes of headroom and 2 KiB of data per slot, in one
//! preallocated mapping, addressed by `u32` index, with a free list per worker.
//!
//! Why this shape (VPP's vlib_buffer_t): an index is 4 bytes, so a 256-packet frame is 1 KiB and
//! fits in L1; the signed `current_data` offset lets VXLAN and ESP prepend headers into headroom
//! without copying; the header is one cache line, so a node that only reads metadata touches one
//! line per packet.

use crate::sys::{self, LargeArray, PageBacking, SharedSlots, Zeroable};
use std::sync::Arc;

/// Bytes of headroom in front of the data area (encapsulation prepends here).
pub const HEADROOM: usize = 128;
/// Bytes of packet data per buffer.
pub const DATA_SIZE: usize = 2048;

/// Index of a buffer in the buffer memory.
#[repr(transparent)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct BufferIndex(pub u32);

/// Buffer flag: this packet is being traced.
pub const FLAG_TRACED: u32 = 1 << 0;
/// Buffer flag: the buffer sits in a free list (catches double frees).
pub const FLAG_FREE: u32 = 1 << 1;
/// Buffer flag: the L4 checksum is known good (set by input nodes or offloads).
pub const FLAG_L4_CSUM_OK: u32 = 1 << 2;

/// Where a packet is on a feature arc (owned by the runtime's arc machinery).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ArcMeta {
    /// Position of the feature now processing the packet (0xff: at the arc's start node).
    pub position: u8,
    /// Reserved.
    pub _pad: [u8; 3],
}

/// IPv4 forwarding metadata (owned by nodes/ip4).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Ip4Meta {
    /// Adjacency chosen by ip4-lookup, used by ip4-rewrite.
    pub adj_index: u32,
    /// Flow hash (for load balancing, handoff, VXLAN source ports).
    pub flow_hash: u32,
}

/// ACL metadata (owned by nodes/acl).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct AclMeta {
    /// Session the packet matched, or `u32::MAX`.
    pub session: u32,
}

/// NAT44 metadata (owned by nodes/nat44).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NatMeta {
    /// Session the packet matched.
    pub session: u32,
    /// `NAT_*` flags.
    pub flags: u32,
}

/// [`NatMeta`] flag: a reply translated back by a DNAT (service) session; SNAT leaves it alone.
pub const NAT_DNAT_REPLY: u32 = 1;

/// Tunnel metadata (owned by nodes/vxlan and nodes/esp).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct TunnelMeta {
    /// VXLAN tunnel index.
    pub tunnel: u32,
    /// ESP SA index.
    pub sa: u32,
}

/// ICMP error to generate (owned by nodes/ip4: set by the node that sends a packet to
/// `ip4-icmp-error`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct IcmpMeta {
    /// ICMP type.
    pub kind: u8,
    /// ICMP code.
    pub code: u8,
    /// Type-specific data (next-hop MTU for fragmentation-needed).
    pub data: u16,
}

/// Typed per-feature metadata: each feature owns its field (no overloaded 32-bit mark).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Meta {
    /// Feature-arc position.
    pub arc: ArcMeta,
    /// IPv4 forwarding.
    pub ip4: Ip4Meta,
    /// ICMP error to send.
    pub icmp: IcmpMeta,
    /// ACL.
    pub acl: AclMeta,
    /// NAT44.
    pub nat: NatMeta,
    /// VXLAN / ESP.
    pub tunnel: TunnelMeta,
}

/// The 64-byte buffer header.
#[repr(C, align(64))]
#[derive(Clone, Copy, Debug, Default)]
pub struct BufferHdr {
    /// Offset of the first valid byte from the start of the data area; negative reaches into
    /// headroom (down to `-HEADROOM`).
    pub current_data: i16,
    /// Valid bytes from `current_data`.
    pub current_length: u16,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// Interface the packet arrived on.
    pub rx_if: u32,
    /// Interface the packet leaves by (set by rewrite).
    pub tx_if: u32,
    /// Global error-counter index, read by `error-drop`.
    pub error: u16,
    /// Reserved.
    pub _pad: u16,
    /// Trace id when `FLAG_TRACED` is set.
    pub trace_id: u32,
    /// Per-feature metadata.
    pub meta: Meta,
}

const _: () = assert!(std::mem::size_of::<BufferHdr>() == 64);

/// One buffer: header, headroom and data, cache-line aligned.
#[repr(C, align(64))]
pub struct Buffer {
    /// The header.
    pub hdr: BufferHdr,
    bytes: [u8; HEADROOM + DATA_SIZE],
}

const _: () = assert!(std::mem::size_of::<Buffer>() == 64 + HEADROOM + DATA_SIZE);

// SAFETY: Buffer is repr(C) plain integers and byte arrays: all-zero is valid.
#[allow(unsafe_code)]
unsafe impl Zeroable for Buffer {}

impl Buffer {
    #[inline(always)]
    fn start(&self) -> usize {
        (HEADROOM as isize + self.hdr.current_data as isize) as usize
    }

    /// The packet's valid bytes.
    #[inline(always)]
    pub fn data(&self) -> &[u8] {
        let s = self.start();
        self.bytes
            .get(s..s + self.hdr.current_length as usize)
            .unwrap_or(&[])
    }

    /// The packet's first `N` bytes, when it has that many: a fixed-size view that a node
    /// indexes without further bounds checks (and cheaper to get than [`Buffer::data`]).
    #[inline(always)]
    pub fn head<const N: usize>(&self) -> Option<&[u8; N]> {
        if usize::from(self.hdr.current_length) < N {
            return None;
        }
        self.bytes.get(self.start()..)?.first_chunk()
    }

    /// The packet's valid bytes, mutably.
    #[inline(always)]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let s = self.start();
        let e = s + self.hdr.current_length as usize;
        self.bytes.get_mut(s..e).unwrap_or(&mut [])
    }

    /// Replaces the contents with `bytes` at offset 0 of the data area. Returns false (and leaves
    /// the buffer empty) when `bytes` does not fit.
    pub fn set_data(&mut self, bytes: &[u8]) -> bool {
        self.hdr.current_data = 0;
        if bytes.len() > DATA_SIZE {
            self.hdr.current_length = 0;
            return false;
        }
        self.bytes[HEADROOM..HEADROOM + bytes.len()].copy_from_slice(bytes);
        self.hdr.current_length = bytes.len() as u16;
        true
    }

    /// Moves the start of the packet by `n` bytes (positive: strip a header; negative: expose
    /// headroom to prepend one). Returns false and changes nothing when out of range.
    #[inline(always)]
    pub fn advance(&mut self, n: isize) -> bool {
        let new_data = self.hdr.current_data as isize + n;
        let new_len = self.hdr.current_length as isize - n;
        if new_data < -(HEADROOM as isize) || new_len < 0 {
            return false;
        }
        self.hdr.current_data = new_data as i16;
        self.hdr.current_length = new_len as u16;
        true
    }

    /// Exposes `n` bytes of headroom in front of the packet and returns them.
    #[inline(always)]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        if !self.advance(-(n as isize)) {
            return None;
        }
        let s = self.start();
        self.bytes.get_mut(s..s + n)
    }

    /// Sets the packet length, keeping the start. Returns false when it would not fit.
    #[inline(always)]
    pub fn set_len(&mut self, len: usize) -> bool {
        if self.start() + len > HEADROOM + DATA_SIZE {
            return false;
        }
        self.hdr.current_length = len as u16;
        true
    }

    /// Bytes that can still be appended after the packet.
    pub fn tailroom(&self) -> usize {
        HEADROOM + DATA_SIZE - self.start() - self.hdr.current_length as usize
    }

    /// Bytes of headroom left in front of the packet.
    pub fn headroom(&self) -> usize {
        self.start()
    }

    /// True when this packet is being traced.
    #[inline(always)]
    pub fn is_traced(&self) -> bool {
        self.hdr.flags & FLAG_TRACED != 0
    }
}

/// Buffer memory shared by all workers' pools (one mapping).
pub struct BufferMemory {
    mem: Arc<LargeArray<Buffer>>,
}

impl BufferMemory {
    /// Maps `count` buffers, on huge pages when `huge_pages` and the system offers them.
    pub fn new(count: u32, huge_pages: bool) -> std::io::Result<Self> {
        Ok(Self {
            mem: Arc::new(LargeArray::new(count as usize, huge_pages)?),
        })
    }

    /// Number of buffers.
    pub fn count(&self) -> u32 {
        self.mem.as_slice().len() as u32
    }

    /// Splits the memory into `n` pools of equal share, one per worker. Each pool owns a
    /// contiguous index range; a buffer freed by another worker (after a handoff) travels back
    /// to its owner in batches over a channel, so no pool drains into another.
    pub fn split(&self, n: usize) -> Vec<BufferPool> {
        let total = self.count() as usize;
        let n = n.max(1);
        let ranges: Vec<std::ops::Range<u32>> = (0..n)
            .map(|w| (total * w / n) as u32..(total * (w + 1) / n) as u32)
            .collect();
        // Every batch in flight holds at least one buffer of the owner's range, and each other
        // pool has at most one partial batch per owner: this capacity can never fill.
        let chans: Vec<_> = ranges
            .iter()
            .map(|r| crossbeam_channel::bounded::<ReturnBatch>(r.len() / RETURN_BATCH + n + 1))
            .collect();
        ranges
            .iter()
            .enumerate()
            .map(|(w, r)| {
                let mut p = BufferPool::new(SharedSlots::new(self.mem.clone()), r.clone());
                p.owners = ranges.iter().map(|r| r.start).collect();
                p.returns_rx = Some(chans[w].1.clone());
                p.returns_tx = chans.iter().map(|(tx, _)| tx.clone()).collect();
                p.staged = (0..n).map(|_| ReturnBatch::default()).collect();
                p.me = w;
                p
            })
            .collect()
    }
}

/// Counters of one pool (read by `show buffers`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Buffers this pool was given.
    pub total: u32,
    /// Buffers in its free list now.
    pub free: u32,
    /// Allocation requests that found the pool empty.
    pub alloc_failures: u64,
    /// Frees of a buffer already free (a bug elsewhere, counted rather than corrupting the list).
    pub double_frees: u64,
}

/// Buffers per batch returned to their owning pool.
const RETURN_BATCH: usize = 256;

/// A batch of buffers on their way back to the pool that owns them.
struct ReturnBatch {
    len: usize,
    buffers: [u32; RETURN_BATCH],
}

impl Default for ReturnBatch {
    fn default() -> Self {
        Self {
            len: 0,
            buffers: [0; RETURN_BATCH],
        }
    }
}

/// One worker's buffer pool: a free list of indices into the shared buffer memory.
pub struct BufferPool {
    slots: SharedSlots<Buffer>,
    free: Vec<u32>,
    range: std::ops::Range<u32>,
    total: u32,
    alloc_failures: u64,
    double_frees: u64,
    /// This pool's index among its siblings.
    me: usize,
    /// First index owned by each sibling pool (sorted).
    owners: Vec<u32>,
    /// Foreign buffers freed here, staged per owner.
    staged: Vec<ReturnBatch>,
    returns_tx: Vec<crossbeam_channel::Sender<ReturnBatch>>,
    returns_rx: Option<crossbeam_channel::Receiver<ReturnBatch>>,
}

impl BufferPool {
    fn new(mut slots: SharedSlots<Buffer>, range: std::ops::Range<u32>) -> Self {
        let mut free = Vec::with_capacity(slots.len());
        // Push in reverse so the lowest indices are allocated first (denser working set).
        for i in range.clone().rev() {
            if let Some(b) = slots.get_mut(i as usize) {
                b.hdr.flags = FLAG_FREE;
            }
            free.push(i);
        }
        Self {
            slots,
            free,
            total: range.len() as u32,
            range,
            alloc_failures: 0,
            double_frees: 0,
            me: 0,
            owners: Vec::new(),
            staged: Vec::new(),
            returns_tx: Vec::new(),
            returns_rx: None,
        }
    }

    /// Takes back buffers other workers freed (called by the runtime every dispatch loop and
    /// when the free list runs dry).
    pub fn reclaim(&mut self) -> usize {
        let Some(rx) = &self.returns_rx else { return 0 };
        let mut n = 0;
        while let Ok(b) = rx.try_recv() {
            self.free.extend_from_slice(&b.buffers[..b.len]);
            n += b.len;
        }
        n
    }

    /// Sends partly filled return batches to their owners (end of a dispatch loop).
    pub fn flush_returns(&mut self) {
        for w in 0..self.staged.len() {
            if self.staged[w].len > 0 {
                self.send_returns(w);
            }
        }
    }

    fn send_returns(&mut self, owner: usize) {
        let batch = std::mem::take(&mut self.staged[owner]);
        if let Some(tx) = self.returns_tx.get(owner) {
            // Cannot be full (see `split`); if the owner is gone the buffers are simply lost.
            let _ = tx.try_send(batch);
        }
    }

    /// A standalone pool of `count` buffers (tests, tools).
    pub fn with_count(count: u32, huge_pages: bool) -> std::io::Result<Self> {
        let mem = BufferMemory::new(count, huge_pages)?;
        Ok(mem.split(1).pop().expect("split(1) yields one pool"))
    }

    /// What backs the buffer memory.
    pub fn backing(&self) -> PageBacking {
        self.slots.backing()
    }

    /// Bytes mapped for all buffers (all pools).
    pub fn mapped_bytes(&self) -> usize {
        self.slots.mapped_bytes()
    }

    /// Pool counters.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            total: self.total,
            free: self.free.len() as u32,
            alloc_failures: self.alloc_failures,
            double_frees: self.double_frees,
        }
    }

    /// Allocates one buffer with a reset header, or `None` when the pool is empty (counted).
    #[inline]
    pub fn alloc(&mut self) -> Option<BufferIndex> {
        if self.free.is_empty() {
            self.reclaim();
        }
        match self.free.pop() {
            Some(i) => {
                if let Some(b) = self.slots.get_mut(i as usize) {
                    b.hdr = BufferHdr::default();
                }
                Some(BufferIndex(i))
            }
            None => {
                self.alloc_failures += 1;
                None
            }
        }
    }

    /// Allocates up to `out.len()` buffers; returns how many were allocated.
    pub fn alloc_many(&mut self, out: &mut [BufferIndex]) -> usize {
        let mut n = 0;
        for o in out.iter_mut() {
            match self.alloc() {
                Some(b) => {
                    *o = b;
                    n += 1;
                }
                None => break,
            }
        }
        n
    }

    /// Returns a buffer to this pool. A buffer already free, or an index out of range, is counted
    /// as a double free and ignored.
    #[inline]
    pub fn free(&mut self, bi: BufferIndex) {
        match self.slots.get_mut(bi.0 as usize) {
            Some(b) if b.hdr.flags & FLAG_FREE == 0 => {
                b.hdr.flags = FLAG_FREE;
                if self.range.contains(&bi.0) || self.owners.is_empty() {
                    self.free.push(bi.0);
                } else {
                    let owner = self
                        .owners
                        .partition_point(|&s| s <= bi.0)
                        .saturating_sub(1);
                    let st = &mut self.staged[owner];
                    st.buffers[st.len] = bi.0;
                    st.len += 1;
                    if st.len == RETURN_BATCH {
                        self.send_returns(owner);
                    }
                }
            }
            _ => self.double_frees += 1,
        }
    }

    /// Returns many buffers.
    pub fn free_many(&mut self, bis: &[BufferIndex]) {
        for &b in bis {
            self.free(b);
        }
    }

    /// The buffer at `bi`.
    ///
    /// # Panics
    /// When `bi` is not a buffer index of this memory: indices come from `alloc`, so that is a bug
    /// in the caller, not a property of the traffic.
    #[inline(always)]
    pub fn get(&self, bi: BufferIndex) -> &Buffer {
        self.slots
            .get(bi.0 as usize)
            .expect("buffer index out of range")
    }

    /// The buffer at `bi`, mutably. Panics like [`BufferPool::get`].
    #[inline(always)]
    pub fn get_mut(&mut self, bi: BufferIndex) -> &mut Buffer {
        self.slots
            .get_mut(bi.0 as usize)
            .expect("buffer index out of range")
    }

    /// Two distinct buffers mutably, or `None` when they are the same or out of range.
    pub fn get2_mut(
        &mut self,
        a: BufferIndex,
        b: BufferIndex,
    ) -> Option<(&mut Buffer, &mut Buffer)> {
        self.slots.get2_mut(a.0 as usize, b.0 as usize)
    }

    /// Up to `N` distinct buffers mutably at once, in the order of `bis` (the rest `None`):
    /// what a node needs to hand several packets to one batch call (ESP's AES-GCM). `None`
    /// when `bis` has more than `N` indices, or one repeats or is out of range.
    #[inline]
    pub fn get_many_mut<const N: usize>(
        &mut self,
        bis: &[BufferIndex],
    ) -> Option<[Option<&mut Buffer>; N]> {
        let mut idx = [0usize; N];
        if bis.len() > N {
            return None;
        }
        for (i, b) in idx.iter_mut().zip(bis) {
            *i = b.0 as usize;
        }
        self.slots.get_many_mut::<N>(&idx[..bis.len()])
    }

    /// Prefetches the header and first data line of `bi`.
    #[inline(always)]
    pub fn prefetch(&self, bi: BufferIndex) {
        let p = self.slots.addr(bi.0 as usize);
        sys::prefetch(p);
        sys::prefetch(p.wrapping_add(64 + HEADROOM));
    }

    /// Copies `bi`'s header and packet into a fresh buffer (for a node that must keep the original).
    pub fn clone_buffer(&mut self, bi: BufferIndex) -> Option<BufferIndex> {
        let n = self.alloc()?;
        match self.slots.get2_mut(bi.0 as usize, n.0 as usize) {
            Some((src, dst)) => {
                dst.hdr = src.hdr;
                dst.hdr.flags &= !FLAG_FREE;
                dst.bytes.copy_from_slice(&src.bytes);
                Some(n)
            }
            None => {
                self.free(n);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_free_and_double_free() {
        let mut p = BufferPool::with_count(8, false).unwrap();
        let a = p.alloc().unwrap();
        assert_eq!(a, BufferIndex(0));
        assert_eq!(p.stats().free, 7);
        p.free(a);
        p.free(a);
        assert_eq!(p.stats().double_frees, 1);
        assert_eq!(p.stats().free, 8);
        let mut out = [BufferIndex(0); 10];
        assert_eq!(p.alloc_many(&mut out), 8);
        assert!(p.alloc().is_none());
        assert_eq!(p.stats().alloc_failures, 2);
    }

    #[test]
    fn headroom_prepend_and_advance() {
        let mut p = BufferPool::with_count(2, false).unwrap();
        let bi = p.alloc().unwrap();
        let b = p.get_mut(bi);
        assert!(b.set_data(&[1, 2, 3, 4]));
        assert_eq!(b.headroom(), HEADROOM);
        b.prepend(14).unwrap().fill(0xee);
        assert_eq!(b.data().len(), 18);
        assert_eq!(&b.data()[14..], &[1, 2, 3, 4]);
        assert!(b.advance(14));
        assert_eq!(b.data(), &[1, 2, 3, 4]);
        assert!(b.prepend(HEADROOM + 1).is_none(), "beyond headroom");
        assert!(!b.advance(5), "beyond the packet");
        assert_eq!(b.data(), &[1, 2, 3, 4], "failed moves change nothing");
        assert!(!b.set_data(&[0; DATA_SIZE + 1]));
    }

    #[test]
    fn head_is_the_start_of_data_or_none() {
        let mut p = BufferPool::with_count(1, false).unwrap();
        let b = p.get_mut(BufferIndex(0));
        assert!(b.set_data(&[1, 2, 3, 4, 5]));
        assert_eq!(b.head::<5>(), Some(&[1, 2, 3, 4, 5]));
        assert_eq!(b.head::<2>(), Some(&[1, 2]));
        assert_eq!(b.head::<6>(), None, "longer than the packet");
        b.prepend(3).unwrap().fill(9);
        assert_eq!(b.head::<4>(), Some(&[9, 9, 9, 1]));
        assert_eq!(b.head::<0>(), Some(&[]));
        // A header pointing past the data area (corrupt) gives None, not a panic.
        b.hdr.current_data = i16::MAX;
        b.hdr.current_length = u16::MAX;
        assert_eq!(b.head::<4>(), None);
        b.hdr.current_data = i16::MIN;
        assert_eq!(b.head::<4>(), None);
    }

    #[test]
    fn many_distinct_buffers_at_once() {
        let mut p = BufferPool::with_count(4, false).unwrap();
        let bis = [BufferIndex(2), BufferIndex(0), BufferIndex(3)];
        let got = p.get_many_mut::<4>(&bis).unwrap();
        let mut n = 0u8;
        for b in got.into_iter().flatten() {
            n += 1;
            assert!(b.set_data(&[n]));
        }
        assert_eq!(n, 3);
        assert_eq!(p.get(BufferIndex(2)).data(), &[1]);
        assert_eq!(p.get(BufferIndex(0)).data(), &[2]);
        assert_eq!(p.get(BufferIndex(3)).data(), &[3]);
        assert!(p
            .get_many_mut::<4>(&[])
            .unwrap()
            .iter()
            .all(Option::is_none));
        let dup = [BufferIndex(1), BufferIndex(2), BufferIndex(1)];
        assert!(p.get_many_mut::<4>(&dup).is_none(), "repeated index");
        assert!(
            p.get_many_mut::<4>(&[BufferIndex(4)]).is_none(),
            "out of range"
        );
        assert!(p.get_many_mut::<2>(&bis).is_none(), "more than N");
    }

    #[test]
    fn split_gives_disjoint_pools() {
        let mem = BufferMemory::new(100, false).unwrap();
        let mut pools = mem.split(3);
        let a: Vec<_> = std::iter::from_fn(|| pools[0].alloc()).collect();
        let b: Vec<_> = std::iter::from_fn(|| pools[1].alloc()).collect();
        let c: Vec<_> = std::iter::from_fn(|| pools[2].alloc()).collect();
        assert_eq!(a.len() + b.len() + c.len(), 100);
        assert!(a.iter().all(|x| !b.contains(x) && !c.contains(x)));
        // A buffer handed to another worker and freed there goes home to its owner.
        pools[1].free(a[0]);
        assert_eq!(pools[1].stats().free, 0);
        pools[1].flush_returns();
        assert_eq!(pools[0].reclaim(), 1);
        assert_eq!(pools[0].alloc(), Some(a[0]));
        pools[2].free(a[0]);
        pools[2].free(a[0]);
        assert_eq!(
            pools[2].stats().double_frees,
            1,
            "double free caught on a foreign pool too"
        );
    }
}
