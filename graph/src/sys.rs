//! The crate's only `unsafe` code: the buffer memory mapping, the TSC, prefetch and CPU pinning.
//!
//! Everything here is small and wrapped in safe functions; the rest of the crate denies `unsafe`.
#![allow(unsafe_code)]

use std::fmt;
use std::ptr::NonNull;

/// How a large mapping is backed by the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageBacking {
    /// Explicit 2 MiB pages from hugetlbfs (`MAP_HUGETLB`).
    Hugetlb2M,
    /// Transparent huge pages requested with `madvise(MADV_HUGEPAGE)`; `huge_kib` says how much of
    /// the mapping the kernel actually backed with huge pages after it was touched.
    Thp {
        /// KiB of the mapping backed by huge pages (from /proc/self/smaps).
        huge_kib: u64,
    },
    /// Ordinary 4 KiB pages (no huge pages offered, or disabled by configuration).
    Small4K,
}

impl fmt::Display for PageBacking {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PageBacking::Hugetlb2M => write!(f, "hugetlbfs 2M pages"),
            PageBacking::Thp { huge_kib } => {
                write!(f, "transparent huge pages ({huge_kib} KiB huge)")
            }
            PageBacking::Small4K => write!(f, "4K pages"),
        }
    }
}

/// Types that are valid when every byte is zero, so a fresh anonymous mapping is a valid array.
///
/// # Safety
/// Implement only for types with no invalid bit patterns at all-zero (plain integers, arrays and
/// `repr(C)` structs of them).
pub unsafe trait Zeroable: Sized {}

// SAFETY: integers and atomics are valid at all-zero.
unsafe impl Zeroable for u8 {}
// SAFETY: as above.
unsafe impl Zeroable for u16 {}
// SAFETY: as above.
unsafe impl Zeroable for u32 {}
// SAFETY: as above.
unsafe impl Zeroable for u64 {}
// SAFETY: as above.
unsafe impl Zeroable for std::sync::atomic::AtomicU64 {}

/// A zero-initialised array of `T` in its own anonymous mapping, on huge pages where possible.
pub struct LargeArray<T: Zeroable> {
    ptr: NonNull<T>,
    len: usize,
    map_len: usize,
    backing: PageBacking,
}

// SAFETY: LargeArray owns its mapping exclusively, like a Box<[T]>.
unsafe impl<T: Zeroable + Send> Send for LargeArray<T> {}
// SAFETY: shared access only hands out &T, like a Box<[T]>.
unsafe impl<T: Zeroable + Sync> Sync for LargeArray<T> {}

const HUGE_2M: usize = 2 << 20;

impl<T: Zeroable> LargeArray<T> {
    /// Maps `len` zeroed elements. With `huge_pages`, tries hugetlbfs first, then transparent huge
    /// pages, and falls back to 4 KiB pages; [`LargeArray::backing`] says which it got.
    pub fn new(len: usize, huge_pages: bool) -> std::io::Result<Self> {
        let bytes = len
            .max(1)
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "mapping size overflows")
            })?;
        let map_len = bytes.div_ceil(HUGE_2M) * HUGE_2M;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        if huge_pages {
            // SAFETY: anonymous mapping with no address hint; the result is checked.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    map_len,
                    prot,
                    flags | libc::MAP_HUGETLB,
                    -1,
                    0,
                )
            };
            if p != libc::MAP_FAILED {
                return Ok(Self::from_raw(p, len, map_len, PageBacking::Hugetlb2M));
            }
        }
        // SAFETY: as above.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), map_len, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mut backing = PageBacking::Small4K;
        if huge_pages {
            // SAFETY: p..p+map_len is the mapping just made; madvise only changes paging policy.
            let rc = unsafe { libc::madvise(p, map_len, libc::MADV_HUGEPAGE) };
            if rc == 0 {
                // Touch every page now so the pool is resident before the packet path runs
                // (no page faults in the data path) and so we can report what the kernel gave us.
                // SAFETY: writing zeroes into our own fresh mapping.
                unsafe { std::ptr::write_bytes(p as *mut u8, 0, map_len) };
                backing = PageBacking::Thp {
                    huge_kib: anon_huge_kib(p as usize),
                };
            }
        }
        if backing == PageBacking::Small4K {
            // SAFETY: as above: prefault our own mapping.
            unsafe { std::ptr::write_bytes(p as *mut u8, 0, map_len) };
        }
        Ok(Self::from_raw(p, len, map_len, backing))
    }

    fn from_raw(p: *mut libc::c_void, len: usize, map_len: usize, backing: PageBacking) -> Self {
        let ptr = NonNull::new(p as *mut T).expect("mmap never returns null on success");
        Self {
            ptr,
            len,
            map_len,
            backing,
        }
    }

    /// What backs the mapping.
    pub fn backing(&self) -> PageBacking {
        self.backing
    }

    /// Size of the mapping in bytes (rounded up to 2 MiB).
    pub fn mapped_bytes(&self) -> usize {
        self.map_len
    }

    /// The elements.
    pub fn as_slice(&self) -> &[T] {
        // SAFETY: ptr points to len zero-initialised (valid, by Zeroable) T's that we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The elements, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T: Zeroable> Drop for LargeArray<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping we created; no references outlive self.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.map_len) };
    }
}

/// Reads `AnonHugePages` of the mapping that starts at `addr` from /proc/self/smaps.
fn anon_huge_kib(addr: usize) -> u64 {
    let Ok(smaps) = std::fs::read_to_string("/proc/self/smaps") else {
        return 0;
    };
    let mut in_map = false;
    for line in smaps.lines() {
        if let Some((range, _)) = line.split_once(' ') {
            if let Some((start, _)) = range.split_once('-') {
                if let Ok(s) = usize::from_str_radix(start, 16) {
                    if !line.starts_with(|c: char| c.is_ascii_uppercase()) {
                        in_map = s == addr;
                        continue;
                    }
                }
            }
        }
        if in_map {
            if let Some(v) = line.strip_prefix("AnonHugePages:") {
                return v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            }
        }
    }
    0
}

/// Buffer memory shared by the per-worker pools: one mapping, slots addressed by index.
///
/// Ownership contract: a slot index is owned by exactly one pool handle at a time (from `alloc`
/// until `free`, or until it is handed to another worker through a handoff queue together with its
/// index). Handles only create references to slots they own, so no two threads ever reference the
/// same slot at once. This is VPP's model (buffers are global, ownership travels with the index).
pub(crate) struct SharedSlots<T: Zeroable> {
    mem: std::sync::Arc<LargeArray<T>>,
}

// SAFETY: see the ownership contract above: every slot is accessed by at most one thread at a time.
unsafe impl<T: Zeroable + Send> Send for SharedSlots<T> {}

impl<T: Zeroable> SharedSlots<T> {
    pub(crate) fn new(mem: std::sync::Arc<LargeArray<T>>) -> Self {
        Self { mem }
    }

    pub(crate) fn len(&self) -> usize {
        self.mem.len
    }

    pub(crate) fn backing(&self) -> PageBacking {
        self.mem.backing
    }

    pub(crate) fn mapped_bytes(&self) -> usize {
        self.mem.map_len
    }

    /// A shared reference to slot `i`, or `None` when out of range.
    #[inline(always)]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        if i < self.mem.len {
            // SAFETY: in range; by the ownership contract this handle owns slot i, and &self
            // prevents a simultaneous &mut from this handle.
            Some(unsafe { &*self.mem.ptr.as_ptr().add(i) })
        } else {
            None
        }
    }

    /// An exclusive reference to slot `i`, or `None` when out of range.
    #[inline(always)]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        if i < self.mem.len {
            // SAFETY: in range; this handle owns slot i (ownership contract) and &mut self makes
            // the reference unique within the handle.
            Some(unsafe { &mut *self.mem.ptr.as_ptr().add(i) })
        } else {
            None
        }
    }

    /// Two distinct slots mutably at once (copying between buffers).
    pub(crate) fn get2_mut(&mut self, a: usize, b: usize) -> Option<(&mut T, &mut T)> {
        if a == b || a >= self.mem.len || b >= self.mem.len {
            return None;
        }
        let base = self.mem.ptr.as_ptr();
        // SAFETY: a != b, both in range and owned by this handle: two disjoint references.
        Some(unsafe { (&mut *base.add(a), &mut *base.add(b)) })
    }

    /// Up to `N` distinct slots mutably at once (a node handing several packets to one batch
    /// call): `None` when there are more than `N` indices, one is out of range or one repeats.
    pub(crate) fn get_many_mut<const N: usize>(
        &mut self,
        idx: &[usize],
    ) -> Option<[Option<&mut T>; N]> {
        if idx.len() > N {
            return None;
        }
        for (i, &a) in idx.iter().enumerate() {
            if a >= self.mem.len || idx[..i].contains(&a) {
                return None;
            }
        }
        let base = self.mem.ptr.as_ptr();
        let mut out: [Option<&mut T>; N] = [const { None }; N];
        for (o, &a) in out.iter_mut().zip(idx) {
            // SAFETY: every index is in range, distinct from the others (checked above) and
            // owned by this handle: disjoint references, unique for the &mut self borrow.
            *o = Some(unsafe { &mut *base.add(a) });
        }
        Some(out)
    }

    /// Address of slot `i` for prefetching (no reference is created).
    #[inline(always)]
    pub(crate) fn addr(&self, i: usize) -> *const u8 {
        self.mem.ptr.as_ptr().wrapping_add(i) as *const u8
    }
}

/// A shared memory region: anonymous, or a file that other processes (vpgctl) map to read
/// counters without asking the workers (VPP's stats segment).
pub struct SharedRegion {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the region is only accessed through atomics (counters) or written once before it is
// shared (header); see `SegSlice`.
unsafe impl Send for SharedRegion {}
// SAFETY: as above.
unsafe impl Sync for SharedRegion {}

impl SharedRegion {
    /// A zeroed anonymous region of `len` bytes.
    pub fn anonymous(len: usize) -> std::io::Result<std::sync::Arc<Self>> {
        Self::map(
            len.max(8),
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            libc::PROT_READ | libc::PROT_WRITE,
        )
    }

    /// A zeroed region backed by a new file at `path` (replacing an old one), mode 0644.
    pub fn create_file(
        path: &std::path::Path,
        len: usize,
    ) -> std::io::Result<std::sync::Arc<Self>> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        let _ = std::fs::remove_file(path);
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(path)?;
        f.set_len(len.max(8) as u64)?;
        Self::map(
            len.max(8),
            libc::MAP_SHARED,
            f.as_raw_fd(),
            libc::PROT_READ | libc::PROT_WRITE,
        )
    }

    /// Maps an existing file read-only.
    pub fn open_read(path: &std::path::Path) -> std::io::Result<std::sync::Arc<Self>> {
        use std::os::unix::io::AsRawFd;
        let f = std::fs::File::open(path)?;
        let len = f.metadata()?.len() as usize;
        if len < 8 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "stats segment too small",
            ));
        }
        Self::map(len, libc::MAP_SHARED, f.as_raw_fd(), libc::PROT_READ)
    }

    fn map(len: usize, flags: i32, fd: i32, prot: i32) -> std::io::Result<std::sync::Arc<Self>> {
        // SAFETY: a fresh mapping with no address hint; the result is checked. The fd may be
        // closed after mmap returns: the mapping keeps the file.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, 0) };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let ptr = NonNull::new(p as *mut u8).expect("mmap never returns null on success");
        Ok(std::sync::Arc::new(Self { ptr, len }))
    }

    /// Size in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty (never: regions are at least 8 bytes).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Copies `data` in at `offset` (setup only, before the region is shared with workers or
    /// readers). False when out of range or the region is read-only is the caller's bug.
    pub fn write_at(&self, offset: usize, data: &[u8]) -> bool {
        if offset.checked_add(data.len()).is_none_or(|e| e > self.len) {
            return false;
        }
        // SAFETY: in range; called during setup while no other reference reads these bytes.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.ptr.as_ptr().add(offset), data.len())
        };
        true
    }

    /// Copies `len` bytes out from `offset` (headers and directories, which never change after
    /// setup).
    pub fn read_at(&self, offset: usize, len: usize) -> Option<Vec<u8>> {
        if offset.checked_add(len).is_none_or(|e| e > self.len) {
            return None;
        }
        let mut v = vec![0u8; len];
        // SAFETY: in range; these bytes are written once at setup, before readers map the file.
        unsafe {
            std::ptr::copy_nonoverlapping(self.ptr.as_ptr().add(offset), v.as_mut_ptr(), len)
        };
        Some(v)
    }
}

impl Drop for SharedRegion {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly our mapping; every SegSlice holds an Arc to us, so none
        // outlives it.
        unsafe { libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.len) };
    }
}

/// A typed slice inside a shared region, kept alive by an `Arc` to it.
pub struct SegSlice<T> {
    region: std::sync::Arc<SharedRegion>,
    ptr: *const T,
    len: usize,
}

// SAFETY: T is only ever counters made of atomics (Sync); the region outlives the slice.
unsafe impl<T: Sync> Send for SegSlice<T> {}
// SAFETY: as above.
unsafe impl<T: Sync> Sync for SegSlice<T> {}

impl<T: Zeroable + Sync> SegSlice<T> {
    /// `len` elements at `offset`, or None when misaligned or out of range.
    pub fn new(region: &std::sync::Arc<SharedRegion>, offset: usize, len: usize) -> Option<Self> {
        let bytes = len.checked_mul(std::mem::size_of::<T>())?;
        if !offset.is_multiple_of(std::mem::align_of::<T>())
            || offset.checked_add(bytes)? > region.len
        {
            return None;
        }
        // Page-aligned base plus an aligned offset: aligned for T.
        let ptr = region.ptr.as_ptr().wrapping_add(offset) as *const T;
        Some(Self {
            region: region.clone(),
            ptr,
            len,
        })
    }

    /// The region.
    pub fn region(&self) -> &std::sync::Arc<SharedRegion> {
        &self.region
    }
}

impl<T> std::ops::Deref for SegSlice<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: checked in range and aligned at construction; the region is mapped while we hold
        // its Arc; T is Zeroable so any bytes (zeroed or written by atomics) are a valid T.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }
}

// SAFETY: counters are transparent/repr(C) wrappers of AtomicU64, valid at all-zero.
unsafe impl Zeroable for crate::counters::Counter {}
// SAFETY: repr(C) struct of Counters.
unsafe impl Zeroable for crate::counters::NodeCounters {}
// SAFETY: repr(C) struct of Counters.
unsafe impl Zeroable for crate::counters::InterfaceCounters {}
// SAFETY: repr(C) struct of Counters.
unsafe impl Zeroable for crate::counters::MiscCounters {}

/// An eventfd that wakes a worker blocked in [`poll_fds`] when a control message arrives.
pub struct WakeFd(std::os::fd::OwnedFd);

impl WakeFd {
    /// A non-blocking eventfd.
    pub fn new() -> std::io::Result<Self> {
        // SAFETY: eventfd takes no pointers; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh descriptor we own.
        Ok(Self(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    /// Wakes the waiter (never blocks; an overflowing counter is already a pending wake-up).
    pub fn notify(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a valid u64 to our eventfd.
        unsafe {
            libc::write(
                std::os::fd::AsRawFd::as_raw_fd(&self.0),
                &one as *const u64 as *const libc::c_void,
                8,
            )
        };
    }

    /// Clears pending wake-ups.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a valid u64; non-blocking, so an empty counter returns EAGAIN.
        unsafe {
            libc::read(
                std::os::fd::AsRawFd::as_raw_fd(&self.0),
                &mut v as *mut u64 as *mut libc::c_void,
                8,
            )
        };
    }

    /// The descriptor, for poll.
    pub fn raw_fd(&self) -> i32 {
        std::os::fd::AsRawFd::as_raw_fd(&self.0)
    }
}

/// Waits until one of `fds` is readable or `timeout` passes; returns how many are ready.
pub fn poll_fds(fds: &[i32], timeout: std::time::Duration) -> std::io::Result<usize> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|&fd| libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: pfds is a valid array of pfds.len() pollfd structs for the duration of the call.
    let rc = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if rc < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::Interrupted {
            return Ok(0);
        }
        return Err(e);
    }
    Ok(rc as usize)
}

/// Reads the CPU's time-stamp counter (clocks for `show runtime`).
#[inline(always)]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: rdtsc has no preconditions on x86_64.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        use std::sync::OnceLock;
        static T0: OnceLock<std::time::Instant> = OnceLock::new();
        T0.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }
}

/// A fixed-length array of `T` in its own anonymous mapping, backed by transparent huge pages
/// where the kernel offers them (large per-worker tables such as NAT sessions: with 4 KiB pages
/// their random accesses cost a TLB miss each). Unlike [`LargeArray`] it holds any `Clone` type:
/// every element is written before the array is handed out.
pub struct HugeArray<T> {
    ptr: NonNull<T>,
    len: usize,
    map_len: usize,
}

// SAFETY: HugeArray owns its elements exclusively, like a Box<[T]>.
unsafe impl<T: Send> Send for HugeArray<T> {}
// SAFETY: shared access only hands out &T, like a Box<[T]>.
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T: Clone> HugeArray<T> {
    /// `len` copies of `value`.
    pub fn new(len: usize, value: T) -> std::io::Result<Self> {
        let bytes = len
            .max(1)
            .checked_mul(std::mem::size_of::<T>().max(1))
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "mapping size overflows")
            })?;
        let map_len = bytes.div_ceil(HUGE_2M) * HUGE_2M;
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        // SAFETY: anonymous mapping with no address hint; the result is checked.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), map_len, prot, flags, -1, 0) };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: p..p+map_len is the mapping just made, not yet touched; madvise only changes
        // its paging policy (a refusal leaves 4 KiB pages).
        unsafe { libc::madvise(p, map_len, libc::MADV_HUGEPAGE) };
        let ptr = NonNull::new(p as *mut T).expect("mmap never returns null on success");
        debug_assert!(ptr.as_ptr().is_aligned(), "page-aligned");
        for k in 0..len {
            // SAFETY: k < len and the mapping holds len elements; each slot is written once
            // before any read.
            unsafe { ptr.as_ptr().add(k).write(value.clone()) };
        }
        Ok(Self { ptr, len, map_len })
    }
}

impl<T> std::ops::Deref for HugeArray<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: ptr points to len initialised T's that we own.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for HugeArray<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as above, and &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeArray<T> {
    fn drop(&mut self) {
        // SAFETY: the elements are initialised and ours; dropped once, then the mapping we
        // created is unmapped and never used again.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(
                self.ptr.as_ptr(),
                self.len,
            ));
            libc::munmap(self.ptr.as_ptr() as *mut libc::c_void, self.map_len);
        }
    }
}

/// Hints the CPU to bring the cache line at `p` into L1. Never faults, even for a bad address.
#[inline(always)]
pub fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: prefetch is a hint and never dereferences architecturally; any address is allowed.
        unsafe { core::arch::x86_64::_mm_prefetch(p as *const i8, core::arch::x86_64::_MM_HINT_T0) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Bit `i` set when lane `i < N` of `w` (little-endian `i16`s) is greater than `k`; `N` is 8,
/// 16, 24 or 32: `N / 8` SSE2 compares and one or two movemasks (a scalar loop on other
/// targets). For searching sorted keys without branches: the lanes above `k` form a suffix, so
/// the answer's trailing zeros count the keys `<= k` (no population count needed, which the
/// baseline x86-64 target lacks).
#[inline(always)]
pub fn gt_mask_i16<const N: usize>(w: &[u8; 64], k: i16) -> u32 {
    const { assert!(N == 8 || N == 16 || N == 24 || N == 32) };
    #[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
    {
        use core::arch::x86_64::*;
        let p = w.as_ptr() as *const __m128i;
        // SAFETY: SSE2 is enabled (cfg above); the unaligned loads read `N / 8` of the four
        // 16-byte blocks of `w`.
        unsafe {
            let kv = _mm_set1_epi16(k);
            let a = _mm_cmpgt_epi16(_mm_loadu_si128(p), kv);
            let b = if N > 8 {
                _mm_cmpgt_epi16(_mm_loadu_si128(p.add(1)), kv)
            } else {
                _mm_setzero_si128()
            };
            let lo = _mm_movemask_epi8(_mm_packs_epi16(a, b)) as u32;
            if N <= 16 {
                return lo;
            }
            let c = _mm_cmpgt_epi16(_mm_loadu_si128(p.add(2)), kv);
            let d = if N > 24 {
                _mm_cmpgt_epi16(_mm_loadu_si128(p.add(3)), kv)
            } else {
                _mm_setzero_si128()
            };
            lo | (_mm_movemask_epi8(_mm_packs_epi16(c, d)) as u32) << 16
        }
    }
    #[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
    {
        let mut m = 0u32;
        for (i, x) in w.chunks_exact(2).take(N).enumerate() {
            m |= u32::from(i16::from_le_bytes([x[0], x[1]]) > k) << i;
        }
        m
    }
}

/// Pins the calling thread to one CPU. Errors are returned, not fatal: benches report them.
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if cpu >= libc::CPU_SETSIZE as usize {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "cpu out of range",
        ));
    }
    // SAFETY: cpu < CPU_SETSIZE, checked above.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: valid set pointer and size; pid 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_array_is_zeroed_and_reports_backing() {
        let mut a = LargeArray::<u64>::new(1 << 20, true).unwrap();
        assert!(a.as_slice().iter().all(|&x| x == 0));
        a.as_mut_slice()[12345] = 7;
        assert_eq!(a.as_slice()[12345], 7);
        assert!(a.mapped_bytes() >= 8 << 20);
        let small = LargeArray::<u64>::new(10, false).unwrap();
        assert_eq!(small.backing(), PageBacking::Small4K);
    }

    #[test]
    fn gt_mask_matches_a_scalar_comparison() {
        let mut w = [0u8; 64];
        let mut x = 0x9e37_79b9u32;
        let lane = |w: &[u8; 64], i: usize| i16::from_le_bytes([w[2 * i], w[2 * i + 1]]);
        for _ in 0..200 {
            for v in w.iter_mut() {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                *v = x as u8;
            }
            for k in [
                i16::MIN,
                -1,
                0,
                1,
                i16::MAX,
                lane(&w, 3),
                lane(&w, 31),
                x as i16,
            ] {
                let want = |n: usize| (0..n).fold(0u32, |m, i| m | u32::from(lane(&w, i) > k) << i);
                assert_eq!(gt_mask_i16::<32>(&w, k), want(32), "{w:?} {k}");
                assert_eq!(gt_mask_i16::<24>(&w, k), want(24), "{w:?} {k}");
                assert_eq!(gt_mask_i16::<16>(&w, k), want(16), "{w:?} {k}");
                assert_eq!(gt_mask_i16::<8>(&w, k), want(8), "{w:?} {k}");
            }
        }
    }

    #[test]
    fn tsc_moves_forward() {
        let a = rdtsc();
        let b = rdtsc();
        assert!(b >= a);
    }
}
