//! AF_PACKET sockets with memory-mapped rings.
//!
//! RX uses TPACKET_V3: the kernel fills variable-length packets into large blocks and hands a
//! whole block to user space at once (or after `retire_ms` when traffic is light), so one status
//! check covers many packets. TX uses a TPACKET_V2 ring on a second socket (the V3 TX ring is
//! frame-based anyway and needs a newer kernel): frames are filled in place and one `sendto` kicks
//! the whole batch out.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use vpg_graph::buffer::{BufferIndex, BufferPool};
use vpg_graph::TxDevice;

// Kernel ABI values (linux/if_packet.h, linux/if_ether.h); pinned here so the ring code does not
// depend on how a libc version spells them.
const SOL_PACKET: i32 = 263;
const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_RX_RING: i32 = 5;
const PACKET_VERSION: i32 = 10;
const PACKET_TX_RING: i32 = 13;
const PACKET_FANOUT: i32 = 18;
const PACKET_QDISC_BYPASS: i32 = 20;
const PACKET_IGNORE_OUTGOING: i32 = 23;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_MR_PROMISC: u16 = 1;
const TPACKET_V2: i32 = 1;
const TPACKET_V3: i32 = 2;
const ETH_P_ALL: u16 = 0x0003;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_AVAILABLE: u32 = 0;
const TP_STATUS_SEND_REQUEST: u32 = 1;
const TP_STATUS_WRONG_FORMAT: u32 = 4;
/// Offset of packet data in a TPACKET_V2 TX frame: TPACKET_ALIGN(sizeof(tpacket2_hdr)).
const TX_DATA_OFFSET: usize = 32;

#[repr(C)]
struct TpacketReq3 {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
    retire_blk_tov: u32,
    sizeof_priv: u32,
    feature_req_word: u32,
}

#[repr(C)]
struct TpacketReq {
    block_size: u32,
    block_nr: u32,
    frame_size: u32,
    frame_nr: u32,
}

#[repr(C)]
struct PacketMreq {
    ifindex: i32,
    kind: u16,
    alen: u16,
    address: [u8; 8],
}

/// Ring sizes and options of one AF_PACKET interface.
#[derive(Clone, Debug)]
pub struct RingOptions {
    /// RX block size in bytes (a power of two, a multiple of the page size).
    pub block_size: u32,
    /// RX blocks.
    pub block_count: u32,
    /// Milliseconds after which the kernel hands over a partly filled block: bounds the latency
    /// a lightly loaded ring adds.
    pub retire_ms: u32,
    /// TX frames (2 KiB each).
    pub tx_frames: u32,
    /// Join this PACKET_FANOUT group (hash) so several workers share the interface.
    pub fanout_group: Option<u16>,
}

impl Default for RingOptions {
    fn default() -> Self {
        // 16 blocks of 256 KiB: 4 MiB per ring, ~2,000 full-size frames in flight, and a block
        // small enough to stay in L2 while the worker copies out of it.
        Self {
            block_size: 1 << 18,
            block_count: 16,
            retire_ms: 1,
            tx_frames: 1024,
            fanout_group: None,
        }
    }
}

/// A mapped ring, unmapped on drop.
struct Ring {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the ring is owned by one AfPacketRx/Tx, which a single worker uses at a time.
unsafe impl Send for Ring {}

impl Ring {
    fn map(fd: &OwnedFd, len: usize) -> io::Result<Self> {
        // SAFETY: maps the ring the kernel set up on fd; result checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            base: NonNull::new(p as *mut u8).expect("mmap never returns null"),
            len,
        })
    }

    /// Reads the u32 at `off` (a status word the kernel writes), with acquire ordering.
    #[inline(always)]
    fn load_u32(&self, off: usize) -> u32 {
        debug_assert!(off + 4 <= self.len);
        // SAFETY: off + 4 <= len (callers derive offsets from the ring geometry); the word is
        // aligned; volatile because the kernel writes it concurrently.
        let v = unsafe { std::ptr::read_volatile(self.base.as_ptr().add(off) as *const u32) };
        fence(Ordering::Acquire);
        v
    }

    /// Writes the u32 at `off` with release ordering (hands memory back to the kernel).
    #[inline(always)]
    fn store_u32(&self, off: usize, v: u32) {
        debug_assert!(off + 4 <= self.len);
        fence(Ordering::Release);
        // SAFETY: as in load_u32.
        unsafe { std::ptr::write_volatile(self.base.as_ptr().add(off) as *mut u32, v) };
    }

    #[inline(always)]
    fn load_u16(&self, off: usize) -> u16 {
        // SAFETY: as in load_u32; the kernel wrote these fields before publishing the block.
        unsafe { std::ptr::read_volatile(self.base.as_ptr().add(off) as *const u16) }
    }

    /// The bytes at `off..off+len`, or None when out of the ring.
    #[inline(always)]
    fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in range; the block is owned by user space (status USER) until we release it,
        // so the kernel does not write these bytes while the slice lives.
        Some(unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(off), len) })
    }

    /// Copies `data` into the ring at `off` (a TX frame we own).
    #[inline(always)]
    fn write(&self, off: usize, data: &[u8]) -> bool {
        if off.checked_add(data.len()).is_none_or(|e| e > self.len) {
            return false;
        }
        // SAFETY: in range; the frame's status is AVAILABLE, so the kernel does not read it now.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.as_ptr().add(off), data.len())
        };
        true
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly our mapping.
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.len) };
    }
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    val: &T,
    what: &str,
    host_if: &str,
) -> io::Result<()> {
    // SAFETY: val points to a valid T of the size we pass.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(
            e.kind(),
            format!("{host_if}: setsockopt {what}: {e}"),
        ))
    }
}

fn packet_socket(protocol: u16, host_if: &str) -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; result checked.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            protocol.to_be() as i32,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("{host_if}: AF_PACKET socket: {e}"),
        ));
    }
    // SAFETY: a fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, ifindex: i32, protocol: u16, host_if: &str) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; zeroed is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{host_if}: bind: {e}")))
    }
}

/// The index of a Linux interface.
pub fn ifindex(host_if: &str) -> io::Result<i32> {
    let name = std::ffi::CString::new(host_if).map_err(|_| {
        io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL byte")
    })?;
    // SAFETY: name is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no interface named '{host_if}'"),
        ));
    }
    Ok(i as i32)
}

/// Opens `host_if`: an RX socket with a TPACKET_V3 ring (promiscuous, ignoring our own
/// transmissions, optionally in a fanout group) and a TX socket with a TPACKET_V2 ring.
pub fn open(host_if: &str, opts: &RingOptions) -> io::Result<(AfPacketRx, AfPacketTx)> {
    let idx = ifindex(host_if)?;
    // RX.
    let rx = packet_socket(ETH_P_ALL, host_if)?;
    setsockopt(
        &rx,
        SOL_PACKET,
        PACKET_VERSION,
        &TPACKET_V3,
        "PACKET_VERSION v3",
        host_if,
    )?;
    let frame_size = 2048u32;
    let req = TpacketReq3 {
        block_size: opts.block_size,
        block_nr: opts.block_count,
        frame_size,
        frame_nr: opts.block_size / frame_size * opts.block_count,
        retire_blk_tov: opts.retire_ms,
        sizeof_priv: 0,
        feature_req_word: 0,
    };
    setsockopt(
        &rx,
        SOL_PACKET,
        PACKET_RX_RING,
        &req,
        "PACKET_RX_RING",
        host_if,
    )?;
    let rx_ring = Ring::map(&rx, (opts.block_size * opts.block_count) as usize)?;
    // Our own transmissions would otherwise come back to the RX socket (kernel >= 4.20).
    let _ = setsockopt(
        &rx,
        SOL_PACKET,
        PACKET_IGNORE_OUTGOING,
        &1i32,
        "PACKET_IGNORE_OUTGOING",
        host_if,
    );
    bind(&rx, idx, ETH_P_ALL, host_if)?;
    let mreq = PacketMreq {
        ifindex: idx,
        kind: PACKET_MR_PROMISC,
        alen: 0,
        address: [0; 8],
    };
    setsockopt(
        &rx,
        SOL_PACKET,
        PACKET_ADD_MEMBERSHIP,
        &mreq,
        "PACKET_MR_PROMISC",
        host_if,
    )?;
    if let Some(g) = opts.fanout_group {
        let arg: u32 = g as u32 | (PACKET_FANOUT_HASH << 16);
        setsockopt(
            &rx,
            SOL_PACKET,
            PACKET_FANOUT,
            &arg,
            "PACKET_FANOUT",
            host_if,
        )?;
    }
    // TX: protocol 0 so this socket receives nothing.
    let tx = packet_socket(0, host_if)?;
    setsockopt(
        &tx,
        SOL_PACKET,
        PACKET_VERSION,
        &TPACKET_V2,
        "PACKET_VERSION v2",
        host_if,
    )?;
    let tx_frame = 2048u32;
    let per_block = 4096 / tx_frame * 8; // 32 KiB blocks of 16 frames
    let blocks = opts.tx_frames.div_ceil(per_block).max(1);
    let treq = TpacketReq {
        block_size: per_block * tx_frame,
        block_nr: blocks,
        frame_size: tx_frame,
        frame_nr: blocks * per_block,
    };
    setsockopt(
        &tx,
        SOL_PACKET,
        PACKET_TX_RING,
        &treq,
        "PACKET_TX_RING",
        host_if,
    )?;
    let tx_ring = Ring::map(&tx, (treq.block_size * treq.block_nr) as usize)?;
    // Skip the qdisc layer: we batch ourselves (best effort: older kernels refuse it).
    let _ = setsockopt(
        &tx,
        SOL_PACKET,
        PACKET_QDISC_BYPASS,
        &1i32,
        "PACKET_QDISC_BYPASS",
        host_if,
    );
    bind(&tx, idx, 0, host_if)?;
    Ok((
        AfPacketRx {
            fd: rx,
            ring: rx_ring,
            block_size: opts.block_size as usize,
            blocks: opts.block_count as usize,
            block: 0,
            left: 0,
            pkt_off: 0,
            host_if: host_if.to_string(),
        },
        AfPacketTx {
            fd: tx,
            ring: tx_ring,
            frame_size: tx_frame as usize,
            frames: (blocks * per_block) as usize,
            next: 0,
            ring_full: 0,
            too_big: 0,
            host_if: host_if.to_string(),
        },
    ))
}

/// A received frame as the ring holds it.
pub struct RxFrame<'a> {
    /// The bytes captured (all of them unless the frame exceeds the ring's block).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
    /// The sender left the L4 checksum to offload (a local sender on a veth with TX checksum
    /// offload): it is not filled in yet.
    pub csum_not_ready: bool,
}

/// The RX half: a TPACKET_V3 ring.
pub struct AfPacketRx {
    fd: OwnedFd,
    ring: Ring,
    block_size: usize,
    blocks: usize,
    /// Block being read.
    block: usize,
    /// Packets left in it (0: not started).
    left: u32,
    /// Offset of the next packet within the block.
    pkt_off: usize,
    host_if: String,
}

// Block descriptor fields (struct tpacket_block_desc / tpacket_hdr_v1).
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
// Packet header fields (struct tpacket3_hdr).
const PKT_NEXT: usize = 0;
const PKT_STATUS: usize = 20;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_MAC: usize = 24;

impl AfPacketRx {
    /// The Linux interface.
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// True when the kernel has handed a block to user space (cheap: one status word).
    pub fn has_packets(&self) -> bool {
        self.left > 0
            || self
                .ring
                .load_u32(self.block * self.block_size + BLOCK_STATUS)
                & TP_STATUS_USER
                != 0
    }

    /// Calls `f` for up to `max` received frames, returning blocks to the kernel as they are
    /// emptied. Returns the number of frames delivered.
    #[inline]
    pub fn rx_burst(&mut self, max: usize, mut f: impl FnMut(RxFrame<'_>)) -> usize {
        let mut n = 0;
        while n < max {
            let base = self.block * self.block_size;
            if self.left == 0 {
                if self.ring.load_u32(base + BLOCK_STATUS) & TP_STATUS_USER == 0 {
                    break;
                }
                self.left = self.ring.load_u32(base + BLOCK_NUM_PKTS);
                self.pkt_off = self.ring.load_u32(base + BLOCK_FIRST_PKT) as usize;
                if self.left == 0 {
                    self.release_block();
                    continue;
                }
            }
            let p = base + self.pkt_off;
            let snap = self.ring.load_u32(p + PKT_SNAPLEN) as usize;
            let wire_len = self.ring.load_u32(p + PKT_LEN);
            let mac = self.ring.load_u16(p + PKT_MAC) as usize;
            let next = self.ring.load_u32(p + PKT_NEXT) as usize;
            let csum_not_ready = self.ring.load_u32(p + PKT_STATUS) & TP_STATUS_CSUMNOTREADY != 0;
            // A corrupt header (never expected) must not walk us out of the block.
            let in_block = self.pkt_off + mac + snap <= self.block_size;
            if let (true, Some(data)) = (in_block, self.ring.bytes(p + mac, snap)) {
                f(RxFrame {
                    data,
                    wire_len,
                    csum_not_ready,
                });
            }
            n += 1;
            self.left -= 1;
            if self.left == 0 || next == 0 || self.pkt_off + next >= self.block_size {
                self.release_block();
            } else {
                self.pkt_off += next;
            }
        }
        n
    }

    fn release_block(&mut self) {
        self.ring.store_u32(
            self.block * self.block_size + BLOCK_STATUS,
            TP_STATUS_KERNEL,
        );
        self.left = 0;
        self.pkt_off = 0;
        self.block = (self.block + 1) % self.blocks;
    }
}

impl AsRawFd for AfPacketRx {
    fn as_raw_fd(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// The TX half: a TPACKET_V2 ring; one kick per batch.
pub struct AfPacketTx {
    fd: OwnedFd,
    ring: Ring,
    frame_size: usize,
    frames: usize,
    next: usize,
    /// Packets not sent because every frame was still owned by the kernel.
    pub ring_full: u64,
    /// Packets longer than a TX frame.
    pub too_big: u64,
    host_if: String,
}

impl AfPacketTx {
    /// The Linux interface.
    pub fn host_if(&self) -> &str {
        &self.host_if
    }

    /// Queues one frame in the ring (no kick). False when the ring is full or it is too long.
    #[inline]
    pub fn queue(&mut self, data: &[u8]) -> bool {
        let off = self.next * self.frame_size;
        let status = self.ring.load_u32(off);
        if status != TP_STATUS_AVAILABLE && status != TP_STATUS_WRONG_FORMAT {
            self.ring_full += 1;
            return false;
        }
        if data.len() > self.frame_size - TX_DATA_OFFSET {
            self.too_big += 1;
            return false;
        }
        self.ring.write(off + TX_DATA_OFFSET, data);
        // tp_len and tp_snaplen (offsets 4 and 8 of tpacket2_hdr).
        self.ring.store_u32(off + 4, data.len() as u32);
        self.ring.store_u32(off + 8, data.len() as u32);
        self.ring.store_u32(off, TP_STATUS_SEND_REQUEST);
        self.next = (self.next + 1) % self.frames;
        true
    }

    /// Asks the kernel to send every queued frame (one system call per batch).
    pub fn kick(&self) {
        // SAFETY: a zero-length send with null buffers is the documented TX-ring kick.
        unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
    }
}

impl TxDevice for AfPacketTx {
    fn tx(&mut self, pool: &mut BufferPool, buffers: &[BufferIndex]) -> usize {
        let mut sent = 0;
        for &bi in buffers {
            if self.queue(pool.get(bi).data()) {
                sent += 1;
            }
            pool.free(bi);
        }
        if sent > 0 {
            self.kick();
        }
        sent
    }
}

/// The MAC address of a Linux interface in the calling thread's network namespace
/// (`SIOCGIFHWADDR`; unlike /sys/class/net this follows `setns`).
pub fn hw_addr(host_if: &str) -> io::Result<[u8; 6]> {
    if host_if.len() >= libc::IFNAMSIZ || host_if.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name '{host_if}'"),
        ));
    }
    // SAFETY: plain socket call; result checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; zeroed is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(host_if.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: ifr is a valid ifreq with a NUL-terminated name (checked length, zeroed rest).
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("{host_if}: SIOCGIFHWADDR: {e}"),
        ));
    }
    // SAFETY: SIOCGIFHWADDR filled the ifru_hwaddr member of the union.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(mac)
}

/// Moves the calling thread into network namespace `name` (`/var/run/netns/NAME`). Only this
/// thread changes namespace; sockets it opens stay bound to that namespace.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let f = std::fs::File::open(format!("/var/run/netns/{name}"))?;
    // SAFETY: setns with a valid namespace fd; affects only the calling thread.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
