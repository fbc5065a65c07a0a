//! AF_PACKET sockets with memory-mapped rings: the crate's only `unsafe` code.
//!
//! An [`AfPacket`] is two sockets bound to one Linux interface:
//!
//! - **RX: a TPACKET_V3 ring.** The kernel packs variable-length frames into large blocks and hands
//!   a whole block to user space at once (when it is full, or `retire_ms` after its first frame
//!   when traffic is light), so one status word covers hundreds of frames. [`AfPacketRx::rx_burst`]
//!   copies each frame into a fresh pool buffer and gives a block back to the kernel as soon as it
//!   has been read; the read position survives between calls, so a burst can stop at any frame.
//! - **TX: a TPACKET_V2 ring on a second socket.** V3 brings nothing to TX (its TX ring is
//!   frame-based like V2's and needs kernel 4.11), and a separate socket lets the RX and TX halves
//!   live in different nodes ([`AfPacket::split`]) with their own descriptors. Frames are filled in
//!   place and one zero-length `sendto` per batch asks the kernel to send them all.
//!
//! Every `unsafe` block is here and says why it is sound. The ring protocol it relies on: a block
//! (RX) or frame (TX) whose status word says it belongs to user space is never written by the
//! kernel until user space hands it back with a release store of the status word.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use vpg_graph::buffer::{Buffer, BufferIndex, BufferPool, DATA_SIZE, HEADROOM};
use vpg_graph::TxDevice;

// Kernel ABI values (linux/if_packet.h, linux/if_ether.h); pinned here so the ring code does not
// depend on how a given libc version spells (or lacks) them.
const SOL_PACKET: i32 = 263;
const PACKET_ADD_MEMBERSHIP: i32 = 1;
const PACKET_RX_RING: i32 = 5;
const PACKET_STATISTICS: i32 = 6;
const PACKET_VERSION: i32 = 10;
const PACKET_TX_RING: i32 = 13;
const PACKET_LOSS: i32 = 14;
const PACKET_FANOUT: i32 = 18;
const PACKET_QDISC_BYPASS: i32 = 20;
const PACKET_IGNORE_OUTGOING: i32 = 23;
const PACKET_FANOUT_HASH: u32 = 0;
const PACKET_MR_PROMISC: u16 = 1;
const PACKET_OUTGOING: u8 = 4;
const TPACKET_V2: i32 = 1;
const TPACKET_V3: i32 = 2;
const ETH_P_ALL: u16 = 0x0003;
const ETH_P_8021Q: u16 = 0x8100;
const TP_STATUS_KERNEL: u32 = 0;
const TP_STATUS_USER: u32 = 1 << 0;
const TP_STATUS_CSUMNOTREADY: u32 = 1 << 3;
const TP_STATUS_VLAN_VALID: u32 = 1 << 4;
const TP_STATUS_VLAN_TPID_VALID: u32 = 1 << 6;
const TP_STATUS_SEND_REQUEST: u32 = 1 << 0;
const TP_STATUS_SENDING: u32 = 1 << 1;

/// Smallest Ethernet frame we accept: the 14-byte header.
pub const MIN_FRAME: usize = 14;

/// Nominal RX frame size given to the kernel. TPACKET_V3 packs frames by their real length, so
/// this only has to satisfy the kernel's checks (at least a header, 16-aligned, dividing the
/// block); a frame is limited by the block size, not by this.
const RX_FRAME_SIZE: u32 = 2048;

// struct tpacket_block_desc with its tpacket_hdr_v1 (RX block header).
const BLOCK_STATUS: usize = 8;
const BLOCK_NUM_PKTS: usize = 12;
const BLOCK_FIRST_PKT: usize = 16;
/// Size of the block descriptor: the first frame starts at or after it.
const BLOCK_HDR: usize = 48;
// struct tpacket3_hdr (RX frame header), followed at TPACKET3_HDR by a struct sockaddr_ll.
const PKT_NEXT: usize = 0;
const PKT_SNAPLEN: usize = 12;
const PKT_LEN: usize = 16;
const PKT_STATUS: usize = 20;
const PKT_MAC: usize = 24;
const PKT_VLAN_TCI: usize = 32;
const PKT_VLAN_TPID: usize = 36;
/// TPACKET_ALIGN(sizeof(struct tpacket3_hdr)): where the sockaddr_ll starts.
const TPACKET3_HDR: usize = 48;
/// sll_pkttype inside the sockaddr_ll.
const SLL_PKTTYPE: usize = TPACKET3_HDR + 10;
/// The frame header plus its sockaddr_ll: a frame's data never starts before this.
const PKT_MIN_MAC: usize = TPACKET3_HDR + 20;

// struct tpacket2_hdr (TX frame header).
const TX_LEN: usize = 4;
const TX_SNAPLEN: usize = 8;
/// Where the kernel reads a V2 TX frame's data: TPACKET_ALIGN(sizeof(struct tpacket2_hdr)).
const TX_DATA_OFFSET: usize = 32;
/// A TX frame holds any buffer, headroom included (a 2 KiB frame that gained VXLAN and ESP
/// headers), so TX never refuses a packet for its size: 32 + 128 + 2048, 16-aligned.
const TX_FRAME_SIZE: usize = (TX_DATA_OFFSET + HEADROOM + DATA_SIZE + 15) & !15;
/// TX ring block: 64 KiB holds 29 frames of 2,208 bytes (2% slack); frames never cross blocks.
const TX_BLOCK_SIZE: usize = 1 << 16;
const TX_FRAMES_PER_BLOCK: usize = TX_BLOCK_SIZE / TX_FRAME_SIZE;

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

#[repr(C)]
#[derive(Default)]
struct TpacketStatsV3 {
    packets: u32,
    drops: u32,
    freeze_q_cnt: u32,
}

/// Ring sizes and options of one AF_PACKET interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingOptions {
    /// RX block size in bytes: a power of two, at least 4 KiB. A block is the unit the kernel
    /// hands over, so it bounds how many frames one status check covers.
    pub block_size: u32,
    /// RX blocks in the ring.
    pub block_count: u32,
    /// Milliseconds after which the kernel hands over a partly filled block: bounds the latency
    /// a lightly loaded ring adds (the kernel rounds it up to its timer tick). 0 lets the kernel
    /// choose from the link speed (8 ms or more).
    pub retire_ms: u32,
    /// TX frames in the ring (each holds one packet of up to a full buffer); rounded up to whole
    /// 64 KiB blocks.
    pub tx_frames: u32,
    /// Join this PACKET_FANOUT group (hash mode) so several workers share the interface: one
    /// socket per worker per interface, all with the same group id, and the kernel spreads flows
    /// across them. Group ids are per network namespace.
    pub fanout_group: Option<u16>,
}

impl Default for RingOptions {
    fn default() -> Self {
        // 16 blocks of 256 KiB (4 MiB per ring). A 256 KiB block holds ~170 full-size or ~1,800
        // minimum-size frames, about one to seven vectors, so a handover matches the graph's unit
        // of work; a bigger block would only add memory, since under light load `retire_ms`, not
        // the block size, decides when a block is handed over. 16 blocks give ~2,700 full-size or
        // ~29,000 small frames of slack while a worker is busy elsewhere. A block is also small
        // enough to stay in L2 while the worker copies out of it.
        Self {
            block_size: 1 << 18,
            block_count: 16,
            retire_ms: 1,
            tx_frames: 1024,
            fanout_group: None,
        }
    }
}

impl RingOptions {
    /// Checks the sizes before the kernel sees them, so a mistake is reported by name instead of
    /// as a bare EINVAL from setsockopt.
    fn check(&self, ifname: &str) -> io::Result<()> {
        let bad = |what: String| Err(invalid(format!("{ifname}: ring options: {what}")));
        if !self.block_size.is_power_of_two() || self.block_size < 4096 {
            return bad(format!(
                "block_size {} is not a power of two of at least 4096",
                self.block_size
            ));
        }
        if self.block_count == 0 {
            return bad("block_count is 0".into());
        }
        if self.block_size as u64 * self.block_count as u64 > 1 << 30 {
            return bad("RX ring larger than 1 GiB".into());
        }
        if self.tx_frames == 0 || self.tx_frames > 1 << 20 {
            return bad(format!("tx_frames {} not in 1..=1048576", self.tx_frames));
        }
        Ok(())
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `err` with `ifname: what: ` in front, keeping its kind.
fn context(err: io::Error, ifname: &str, what: &str) -> io::Error {
    io::Error::new(err.kind(), format!("{ifname}: {what}: {err}"))
}

/// A memory-mapped packet ring, unmapped on drop.
struct Ring {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the ring is plain shared memory owned by one AfPacketRx/AfPacketTx; moving it to
// another thread moves that ownership (no thread-local state is involved).
unsafe impl Send for Ring {}

impl Ring {
    /// Maps the ring the kernel set up on `fd`.
    fn map(fd: &OwnedFd, len: usize) -> io::Result<Self> {
        // SAFETY: a fresh shared mapping of the socket's ring; no existing memory is affected and
        // the result is checked before use.
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
        Self::from_mmap(p, len)
    }

    /// Anonymous zeroed memory with the same accessors, for tests that play the kernel's part.
    #[cfg(test)]
    fn anonymous(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh private anonymous mapping; result checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        Self::from_mmap(p, len)
    }

    fn from_mmap(p: *mut libc::c_void, len: usize) -> io::Result<Self> {
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        match NonNull::new(p as *mut u8) {
            Some(base) => Ok(Self { base, len }),
            None => Err(io::Error::other("mmap returned null")),
        }
    }

    /// The status word at `off` as an atomic, or None when `off` is outside the ring or not
    /// 4-aligned (never for offsets derived from the ring geometry).
    #[inline(always)]
    fn word(&self, off: usize) -> Option<&AtomicU32> {
        if !off.is_multiple_of(4) || off.checked_add(4)? > self.len {
            return None;
        }
        // SAFETY: off + 4 <= len and the base is page-aligned, so the pointer is in the mapping
        // and 4-aligned; the mapping lives as long as &self. The kernel accesses the same word
        // concurrently, which is why it is only ever touched through an atomic.
        Some(unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off) as *mut u32) })
    }

    /// Reads a status word with acquire ordering: after seeing a block or frame owned by user
    /// space, everything the kernel wrote into it before publishing is visible. Out of range
    /// reads as 0 (TP_STATUS_KERNEL: nothing to take).
    #[inline(always)]
    fn load_status(&self, off: usize) -> u32 {
        self.word(off).map_or(0, |w| w.load(Ordering::Acquire))
    }

    /// Writes a status word with release ordering: everything we wrote into the block or frame
    /// before is visible to the kernel once it sees the new status.
    #[inline(always)]
    fn store_status(&self, off: usize, v: u32) {
        if let Some(w) = self.word(off) {
            w.store(v, Ordering::Release);
        }
    }

    /// Reads `N` bytes at `off`, or None when outside the ring.
    #[inline(always)]
    fn read<const N: usize>(&self, off: usize) -> Option<[u8; N]> {
        if off.checked_add(N)? > self.len {
            return None;
        }
        // SAFETY: in range; read_unaligned has no alignment requirement. Callers read only
        // inside blocks owned by user space (after an acquire load of their status), so the
        // kernel is not writing these bytes.
        Some(unsafe { std::ptr::read_unaligned(self.base.as_ptr().add(off) as *const [u8; N]) })
    }

    #[inline(always)]
    fn read_u32(&self, off: usize) -> Option<u32> {
        self.read::<4>(off).map(u32::from_ne_bytes)
    }

    #[inline(always)]
    fn read_u16(&self, off: usize) -> Option<u16> {
        self.read::<2>(off).map(u16::from_ne_bytes)
    }

    /// The bytes at `off..off+len`, or None when outside the ring.
    #[inline(always)]
    fn bytes(&self, off: usize, len: usize) -> Option<&[u8]> {
        if off.checked_add(len)? > self.len {
            return None;
        }
        // SAFETY: in range of the live mapping. Callers take slices only inside a block owned by
        // user space, which the kernel does not write until we release it; the release needs
        // `&self` too but happens only after the slice is dropped (rx_burst's flow).
        Some(unsafe { std::slice::from_raw_parts(self.base.as_ptr().add(off), len) })
    }

    /// Copies `data` to `off`. False (nothing written) when it does not fit the ring.
    #[inline(always)]
    fn write(&mut self, off: usize, data: &[u8]) -> bool {
        if off.checked_add(data.len()).is_none_or(|e| e > self.len) {
            return false;
        }
        // SAFETY: in range of the live mapping; `&mut self` means no slice from `bytes` is alive.
        // Callers write only into TX frames whose status says the kernel is done with them (or,
        // in tests, into anonymous memory), so the kernel does not read them concurrently.
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.as_ptr().add(off), data.len())
        };
        true
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping this Ring owns; no reference into it outlives self.
        unsafe { libc::munmap(self.base.as_ptr() as *mut libc::c_void, self.len) };
    }
}

fn setsockopt<T>(fd: &OwnedFd, name: i32, val: &T, what: &str, ifname: &str) -> io::Result<()> {
    setsockopt_at(fd, SOL_PACKET, name, val, what, ifname)
}

fn setsockopt_at<T>(
    fd: &OwnedFd,
    level: i32,
    name: i32,
    val: &T,
    what: &str,
    ifname: &str,
) -> io::Result<()> {
    // SAFETY: val points to a live T and we pass its exact size; the kernel only reads it.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            val as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(context(
            io::Error::last_os_error(),
            ifname,
            &format!("setsockopt {what}"),
        ))
    }
}

/// A raw AF_PACKET socket that receives nothing until it is bound with a protocol: the RX socket
/// must not see other interfaces' traffic in the window before `bind`, so it is created with
/// protocol 0 and given ETH_P_ALL only by `bind`, once its ring is ready.
fn packet_socket(ifname: &str) -> io::Result<OwnedFd> {
    // SAFETY: plain socket call; the result is checked.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(context(
            io::Error::last_os_error(),
            ifname,
            "AF_PACKET socket",
        ));
    }
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, ifindex: i32, protocol: u16, ifname: &str) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain integers; all-zero is a valid value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    // SAFETY: sll is a live sockaddr_ll and we pass its exact size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(context(io::Error::last_os_error(), ifname, "bind"))
    }
}

/// The index of a Linux interface in the calling thread's network namespace.
pub fn ifindex(ifname: &str) -> io::Result<i32> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ {
        return Err(invalid(format!(
            "interface name '{ifname}' is empty or longer than 15 bytes"
        )));
    }
    let name = CString::new(ifname)
        .map_err(|_| invalid(format!("interface name '{ifname}' has a NUL byte")))?;
    // SAFETY: name is a valid NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if i == 0 {
        return Err(context(
            io::Error::last_os_error(),
            ifname,
            "if_nametoindex",
        ));
    }
    Ok(i as i32)
}

/// Opens `ifname` (shorthand for [`AfPacket::open`] followed by [`AfPacket::split`]).
pub fn open(ifname: &str, opts: &RingOptions) -> io::Result<(AfPacketRx, AfPacketTx)> {
    AfPacket::open(ifname, opts).map(AfPacket::split)
}

/// One AF_PACKET interface: an RX socket with a TPACKET_V3 ring and a TX socket with a
/// TPACKET_V2 ring, both bound to the same Linux interface. Dropping it unmaps the rings and
/// closes the sockets.
pub struct AfPacket {
    rx: AfPacketRx,
    tx: AfPacketTx,
}

impl AfPacket {
    /// Opens `ifname` in the calling thread's network namespace: a promiscuous RX socket that
    /// ignores our own transmissions (in `opts.fanout_group` if set) and a TX socket that
    /// bypasses the qdisc layer where the kernel allows. Needs CAP_NET_RAW.
    ///
    /// Errors name the interface and the step that failed (`veth0: setsockopt PACKET_RX_RING:
    /// Invalid argument`).
    pub fn open(ifname: &str, opts: &RingOptions) -> io::Result<Self> {
        opts.check(ifname)?;
        let idx = ifindex(ifname)?;
        Ok(Self {
            rx: AfPacketRx::open(ifname, idx, opts)?,
            tx: AfPacketTx::open(ifname, idx, opts)?,
        })
    }

    /// Separates the halves: the RX half goes to `af-packet-input`, the TX half to
    /// `interface-output` (both on the same worker, or not: each owns its socket).
    pub fn split(self) -> (AfPacketRx, AfPacketTx) {
        (self.rx, self.tx)
    }

    /// The RX half.
    pub fn rx(&mut self) -> &mut AfPacketRx {
        &mut self.rx
    }

    /// The TX half.
    pub fn tx(&mut self) -> &mut AfPacketTx {
        &mut self.tx
    }

    /// The Linux interface.
    pub fn ifname(&self) -> &str {
        &self.rx.ifname
    }
}

/// Where a received frame sat in the ring and what the kernel said about it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxMeta {
    /// Ring block it was read from.
    pub block: u32,
    /// Its position in that block (0 = first frame).
    pub frame: u32,
    /// Its length on the wire as the kernel saw it (without a VLAN tag the NIC or the stack
    /// stripped; the buffer holds the tag again).
    pub wire_len: u32,
    /// The sender left the L4 checksum to offload (a local sender on a veth with TX checksum
    /// offload): the checksum field is not filled in yet.
    pub csum_not_ready: bool,
    /// The kernel had taken an 802.1Q/802.1ad tag out of the frame; it was put back in the copy.
    pub vlan_restored: bool,
}

/// What one or more RX bursts did, by outcome. Every frame taken from the ring is counted in
/// exactly one field.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxCounts {
    /// Frames copied into buffers and handed to the caller.
    pub delivered: u64,
    /// Frames longer than a buffer (DATA_SIZE bytes, VLAN tag included): dropped, never truncated.
    pub oversized: u64,
    /// Frames shorter than an Ethernet header: dropped.
    pub runt: u64,
    /// Frames the ring captured only in part (longer than a block): dropped.
    pub truncated: u64,
    /// Frames dropped because the buffer pool was empty.
    pub no_buffers: u64,
    /// Our own transmissions, skipped (only on kernels without PACKET_IGNORE_OUTGOING, < 4.20).
    pub outgoing: u64,
    /// Ring descriptors that pointed outside their block (never expected: a kernel ABI mismatch);
    /// the rest of such a block is skipped.
    pub bad_descriptor: u64,
}

impl RxCounts {
    /// Frames dropped for any reason (outgoing frames are skipped, not dropped).
    pub fn dropped(&self) -> u64 {
        self.oversized + self.runt + self.truncated + self.no_buffers + self.bad_descriptor
    }

    fn add(&mut self, o: &RxCounts) {
        self.delivered += o.delivered;
        self.oversized += o.oversized;
        self.runt += o.runt;
        self.truncated += o.truncated;
        self.no_buffers += o.no_buffers;
        self.outgoing += o.outgoing;
        self.bad_descriptor += o.bad_descriptor;
    }
}

/// The kernel's own RX counters for a socket (PACKET_STATISTICS).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelRxStats {
    /// Frames the socket accepted (including the dropped ones).
    pub packets: u32,
    /// Frames dropped because the ring had no free block (the worker fell behind).
    pub drops: u32,
    /// Times the ring froze because every block was owned by user space.
    pub freeze_count: u32,
}

/// Why a frame is not delivered (pure classification, see [`classify`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reject {
    Oversized,
    Runt,
    Truncated,
}

/// Decides a frame's fate from its captured and wire lengths: the length of the buffer copy, or
/// why there is none. A frame that does not fit a buffer is rejected whole, never cut.
#[inline(always)]
fn classify(snaplen: u32, wire_len: u32, vlan: bool) -> Result<usize, Reject> {
    let tag = if vlan { 4 } else { 0 };
    let wire = wire_len as usize + tag;
    if wire > DATA_SIZE {
        Err(Reject::Oversized)
    } else if (wire_len as usize) < MIN_FRAME {
        Err(Reject::Runt)
    } else if snaplen < wire_len {
        Err(Reject::Truncated)
    } else {
        // snaplen > wire_len never happens; copying wire_len bytes keeps the buffer exact.
        Ok(wire)
    }
}

/// Copies `frame` into `out` (exactly `frame.len() + 4` bytes when `tag` is set), putting the
/// VLAN tag `(tpid, tci)` back after the MAC addresses where the kernel took it out.
#[inline(always)]
fn copy_frame(out: &mut [u8], frame: &[u8], tag: Option<(u16, u16)>) {
    match tag {
        None => out.copy_from_slice(frame),
        Some((tpid, tci)) => {
            out[..12].copy_from_slice(&frame[..12]);
            out[12..14].copy_from_slice(&tpid.to_be_bytes());
            out[14..16].copy_from_slice(&tci.to_be_bytes());
            out[16..].copy_from_slice(&frame[12..]);
        }
    }
}

/// The RX half: a TPACKET_V3 ring on its own socket.
pub struct AfPacketRx {
    // Field order matters for Drop: unmap the ring before closing the socket.
    ring: Ring,
    fd: OwnedFd,
    block_size: usize,
    blocks: usize,
    /// Block being read (or waited for).
    block: usize,
    /// Frames left in it; 0 when the block has not been started.
    left: u32,
    /// Offset of the next frame within the block.
    pkt_off: usize,
    /// Position of the next frame within the block.
    frame_in_block: u32,
    totals: RxCounts,
    ifname: String,
}

impl AfPacketRx {
    fn open(ifname: &str, idx: i32, opts: &RingOptions) -> io::Result<Self> {
        let fd = packet_socket(ifname)?;
        setsockopt(
            &fd,
            PACKET_VERSION,
            &TPACKET_V3,
            "PACKET_VERSION V3",
            ifname,
        )?;
        let req = TpacketReq3 {
            block_size: opts.block_size,
            block_nr: opts.block_count,
            frame_size: RX_FRAME_SIZE,
            frame_nr: opts.block_size / RX_FRAME_SIZE * opts.block_count,
            retire_blk_tov: opts.retire_ms,
            sizeof_priv: 0,
            feature_req_word: 0,
        };
        setsockopt(&fd, PACKET_RX_RING, &req, "PACKET_RX_RING", ifname)?;
        let len = opts.block_size as usize * opts.block_count as usize;
        let ring = Ring::map(&fd, len).map_err(|e| context(e, ifname, "mmap RX ring"))?;
        // Our own transmissions would otherwise come back on this socket (the kernel loops
        // outgoing frames to packet sockets). Kernels before 4.20 refuse the option; rx_burst
        // then skips frames marked PACKET_OUTGOING instead.
        let _ = setsockopt(
            &fd,
            PACKET_IGNORE_OUTGOING,
            &1i32,
            "PACKET_IGNORE_OUTGOING",
            ifname,
        );
        bind(&fd, idx, ETH_P_ALL, ifname)?;
        let mreq = PacketMreq {
            ifindex: idx,
            kind: PACKET_MR_PROMISC,
            alen: 0,
            address: [0; 8],
        };
        // The socket's membership, not a flag we set on the device: the kernel drops it (and
        // promiscuous mode with it, unless someone else holds it) when the socket closes.
        setsockopt(
            &fd,
            PACKET_ADD_MEMBERSHIP,
            &mreq,
            "PACKET_ADD_MEMBERSHIP PROMISC",
            ifname,
        )?;
        if let Some(group) = opts.fanout_group {
            // Hash mode keeps a flow on one socket (one worker); the kernel needs the socket
            // bound before it may join. No DEFRAG flag: it would hand us reassembled datagrams
            // larger than a buffer, and the flow hash of a fragment uses only the addresses, so
            // all fragments of a datagram land on one worker anyway.
            let arg: u32 = group as u32 | (PACKET_FANOUT_HASH << 16);
            setsockopt(&fd, PACKET_FANOUT, &arg, "PACKET_FANOUT", ifname)?;
        }
        Ok(Self::with_ring(
            fd,
            ring,
            opts.block_size as usize,
            opts.block_count as usize,
            ifname,
        ))
    }

    fn with_ring(fd: OwnedFd, ring: Ring, block_size: usize, blocks: usize, ifname: &str) -> Self {
        Self {
            ring,
            fd,
            block_size,
            blocks,
            block: 0,
            left: 0,
            pkt_off: 0,
            frame_in_block: 0,
            totals: RxCounts::default(),
            ifname: ifname.to_string(),
        }
    }

    /// The Linux interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// True when a frame is ready: the block being read has frames left, or the kernel has
    /// handed the next one over. Cheap (one status word), so an idle worker can ask every loop.
    #[inline]
    pub fn has_packets(&self) -> bool {
        self.left > 0 || self.block_ready()
    }

    /// Whether the kernel has handed the current block to user space.
    #[inline(always)]
    fn block_ready(&self) -> bool {
        let status = self
            .ring
            .load_status(self.block * self.block_size + BLOCK_STATUS);
        status & TP_STATUS_USER != 0
    }

    /// Everything this ring's bursts have counted since it was opened.
    pub fn totals(&self) -> RxCounts {
        self.totals
    }

    /// The kernel's counters since the previous call (reading them resets them). Control path.
    pub fn kernel_stats(&self) -> io::Result<KernelRxStats> {
        let mut s = TpacketStatsV3::default();
        let mut len = std::mem::size_of::<TpacketStatsV3>() as libc::socklen_t;
        // SAFETY: s is a live tpacket_stats_v3 and len its size; the kernel writes at most len
        // bytes into it and updates len.
        let rc = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_STATISTICS,
                &mut s as *mut TpacketStatsV3 as *mut libc::c_void,
                &mut len,
            )
        };
        if rc != 0 {
            return Err(context(
                io::Error::last_os_error(),
                &self.ifname,
                "getsockopt PACKET_STATISTICS",
            ));
        }
        Ok(KernelRxStats {
            packets: s.packets,
            drops: s.drops,
            freeze_count: s.freeze_q_cnt,
        })
    }

    /// Takes up to `max` frames from the ring. Each good frame is copied into a fresh buffer
    /// from `pool` (data at offset 0, header reset) and given to `f` with its ring position;
    /// bad ones are counted and dropped. Blocks go back to the kernel as soon as they are read;
    /// the position inside a block is kept, so the next call continues where this one stopped.
    ///
    /// `max` counts every frame taken, delivered or not, so `f` runs at most `max` times and the
    /// work per call is bounded. Never allocates and never panics on anything in the ring.
    #[inline]
    pub fn rx_burst(
        &mut self,
        pool: &mut BufferPool,
        max: usize,
        mut f: impl FnMut(&mut Buffer, BufferIndex, RxMeta),
    ) -> RxCounts {
        let mut c = RxCounts::default();
        let mut taken = 0;
        while taken < max {
            let base = self.block * self.block_size;
            if self.left == 0 {
                if !self.block_ready() {
                    break;
                }
                let num = self.ring.read_u32(base + BLOCK_NUM_PKTS).unwrap_or(0);
                let first = self.ring.read_u32(base + BLOCK_FIRST_PKT).unwrap_or(0) as usize;
                if num == 0 {
                    // Never handed over by the kernel, but harmless: give it back. Counting it as
                    // taken bounds the loop even if every block were like this.
                    self.release_block();
                    taken += 1;
                    continue;
                }
                if first < BLOCK_HDR || !self.header_fits(first) {
                    c.bad_descriptor += 1;
                    self.release_block();
                    taken += 1;
                    continue;
                }
                self.left = num;
                self.pkt_off = first;
                self.frame_in_block = 0;
            }
            taken += 1;
            let next = self.take_frame(base, pool, &mut f, &mut c);
            self.left -= 1;
            self.frame_in_block += 1;
            if self.left == 0 {
                self.release_block();
            } else if next < PKT_MIN_MAC || !self.header_fits(self.pkt_off.saturating_add(next)) {
                // A next offset that stays in place or leaves the block: cannot walk on.
                c.bad_descriptor += 1;
                self.release_block();
            } else {
                self.pkt_off += next;
            }
        }
        self.totals.add(&c);
        c
    }

    /// True when a frame header (and its sockaddr_ll) at `off` lies inside the block.
    #[inline(always)]
    fn header_fits(&self, off: usize) -> bool {
        off.checked_add(PKT_MIN_MAC)
            .is_some_and(|e| e <= self.block_size)
    }

    /// Handles the frame at `self.pkt_off` of the block at `base` (its header is known to fit);
    /// returns its next_offset.
    #[inline(always)]
    fn take_frame(
        &self,
        base: usize,
        pool: &mut BufferPool,
        f: &mut impl FnMut(&mut Buffer, BufferIndex, RxMeta),
        c: &mut RxCounts,
    ) -> usize {
        let p = base + self.pkt_off;
        let r = &self.ring;
        let next = r.read_u32(p + PKT_NEXT).unwrap_or(0) as usize;
        if r.read::<1>(p + SLL_PKTTYPE).map(|b| b[0]) == Some(PACKET_OUTGOING) {
            c.outgoing += 1;
            return next;
        }
        let snaplen = r.read_u32(p + PKT_SNAPLEN).unwrap_or(0);
        let wire_len = r.read_u32(p + PKT_LEN).unwrap_or(0);
        let status = r.read_u32(p + PKT_STATUS).unwrap_or(0);
        let mac = r.read_u16(p + PKT_MAC).unwrap_or(0) as usize;
        let vlan = status & TP_STATUS_VLAN_VALID != 0;
        let len = match classify(snaplen, wire_len, vlan) {
            Ok(len) => len,
            Err(Reject::Oversized) => {
                c.oversized += 1;
                return next;
            }
            Err(Reject::Runt) => {
                c.runt += 1;
                return next;
            }
            Err(Reject::Truncated) => {
                c.truncated += 1;
                return next;
            }
        };
        // The frame's bytes must lie after its header and inside the block.
        let data_len = wire_len as usize;
        let in_block = mac >= PKT_MIN_MAC
            && self
                .pkt_off
                .checked_add(mac + data_len)
                .is_some_and(|e| e <= self.block_size);
        // Checked before taking the slice: bytes beyond this block may belong to the kernel.
        let data = if in_block {
            r.bytes(p + mac, data_len)
        } else {
            None
        };
        let Some(data) = data else {
            c.bad_descriptor += 1;
            return next;
        };
        let tag = if vlan {
            let tci = r.read_u32(p + PKT_VLAN_TCI).unwrap_or(0) as u16;
            let tpid = match status & TP_STATUS_VLAN_TPID_VALID {
                0 => ETH_P_8021Q,
                _ => r.read_u16(p + PKT_VLAN_TPID).unwrap_or(ETH_P_8021Q),
            };
            Some((tpid, tci))
        } else {
            None
        };
        let Some(bi) = pool.alloc() else {
            c.no_buffers += 1;
            return next;
        };
        let b = pool.get_mut(bi);
        // A fresh buffer starts at data offset 0 with DATA_SIZE bytes of room, and classify
        // guaranteed len <= DATA_SIZE.
        if !b.set_len(len) {
            pool.free(bi);
            c.oversized += 1;
            return next;
        }
        copy_frame(b.data_mut(), data, tag);
        c.delivered += 1;
        f(
            b,
            bi,
            RxMeta {
                block: self.block as u32,
                frame: self.frame_in_block,
                wire_len,
                csum_not_ready: status & TP_STATUS_CSUMNOTREADY != 0,
                vlan_restored: vlan,
            },
        );
        next
    }

    /// Gives the current block back to the kernel and moves to the next one.
    fn release_block(&mut self) {
        self.ring.store_status(
            self.block * self.block_size + BLOCK_STATUS,
            TP_STATUS_KERNEL,
        );
        self.left = 0;
        self.pkt_off = 0;
        self.frame_in_block = 0;
        self.block = (self.block + 1) % self.blocks;
    }
}

impl AsRawFd for AfPacketRx {
    /// The RX socket: poll(2) reports POLLIN when the kernel has handed a block over, so an idle
    /// worker can block on it.
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Why [`AfPacketTx::queue`] did not take a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TxRefused {
    /// Every TX frame is still owned by the kernel (queued or in flight).
    RingFull,
    /// Longer than a TX frame (more than a whole buffer with its headroom).
    TooBig,
    /// Shorter than an Ethernet header; the kernel would refuse it.
    Runt,
}

/// What the TX half did since it was opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxCounts {
    /// Frames placed in the ring for sending.
    pub queued: u64,
    /// Kicks (one `sendto` per batch).
    pub kicks: u64,
    /// Kicks the kernel refused (EAGAIN, ENOBUFS: the frames stay queued for the next kick).
    pub kick_errors: u64,
    /// Frames dropped because the ring was full.
    pub ring_full: u64,
    /// Frames dropped because they were longer than a TX frame.
    pub too_big: u64,
    /// Frames dropped because they were shorter than an Ethernet header.
    pub runt: u64,
}

/// The TX half: a TPACKET_V2 ring on its own socket; one kick per batch.
pub struct AfPacketTx {
    // Field order matters for Drop: unmap the ring before closing the socket.
    ring: Ring,
    fd: OwnedFd,
    frames: usize,
    /// Next frame to fill, and its offset in the ring.
    next: usize,
    next_off: usize,
    counts: TxCounts,
    qdisc_bypass: bool,
    ifname: String,
}

impl AfPacketTx {
    fn open(ifname: &str, idx: i32, opts: &RingOptions) -> io::Result<Self> {
        let fd = packet_socket(ifname)?;
        setsockopt(
            &fd,
            PACKET_VERSION,
            &TPACKET_V2,
            "PACKET_VERSION V2",
            ifname,
        )?;
        // Without PACKET_LOSS a frame the kernel refuses (longer than the MTU) is marked
        // WRONG_FORMAT and the kernel stops at it without advancing: every later frame would
        // wait until we wrapped around and overwrote it. With it, the bad frame is discarded and
        // the rest go out. Must be set before the ring exists.
        setsockopt(&fd, PACKET_LOSS, &1i32, "PACKET_LOSS", ifname)?;
        let blocks = (opts.tx_frames as usize).div_ceil(TX_FRAMES_PER_BLOCK);
        let frames = blocks * TX_FRAMES_PER_BLOCK;
        let req = TpacketReq {
            block_size: TX_BLOCK_SIZE as u32,
            block_nr: blocks as u32,
            frame_size: TX_FRAME_SIZE as u32,
            frame_nr: frames as u32,
        };
        setsockopt(&fd, PACKET_TX_RING, &req, "PACKET_TX_RING", ifname)?;
        let ring = Ring::map(&fd, blocks * TX_BLOCK_SIZE)
            .map_err(|e| context(e, ifname, "mmap TX ring"))?;
        // We batch ourselves; the qdisc would only add a lock and a queue per packet. Older
        // kernels (< 3.14) refuse it, which costs speed, not correctness.
        let qdisc_bypass = setsockopt(
            &fd,
            PACKET_QDISC_BYPASS,
            &1i32,
            "PACKET_QDISC_BYPASS",
            ifname,
        )
        .is_ok();
        // Every frame in flight is charged to the socket's send buffer (about its length plus
        // 1 KiB of skb) until the device is done with it. The default (~200 KiB) would make the
        // kernel stop part-way through a 256-frame kick on a NIC that completes TX late, leaving
        // the rest queued until the next kick; size it for the whole ring. FORCE goes beyond
        // net.core.wmem_max (needs CAP_NET_ADMIN); without it we keep what SO_SNDBUF allows.
        let sndbuf = (frames * (TX_FRAME_SIZE + 1024)).min(i32::MAX as usize / 2) as i32;
        if setsockopt_at(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            &sndbuf,
            "",
            ifname,
        )
        .is_err()
        {
            let _ = setsockopt_at(&fd, libc::SOL_SOCKET, libc::SO_SNDBUF, &sndbuf, "", ifname);
        }
        // Protocol 0: this socket never receives.
        bind(&fd, idx, 0, ifname)?;
        Ok(Self::with_ring(fd, ring, frames, qdisc_bypass, ifname))
    }

    fn with_ring(fd: OwnedFd, ring: Ring, frames: usize, qdisc_bypass: bool, ifname: &str) -> Self {
        Self {
            ring,
            fd,
            frames,
            next: 0,
            next_off: 0,
            counts: TxCounts::default(),
            qdisc_bypass,
            ifname: ifname.to_string(),
        }
    }

    /// The Linux interface.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Frames in the ring.
    pub fn capacity(&self) -> usize {
        self.frames
    }

    /// Whether the kernel accepted PACKET_QDISC_BYPASS.
    pub fn qdisc_bypass(&self) -> bool {
        self.qdisc_bypass
    }

    /// Counters since the ring was opened.
    pub fn counts(&self) -> TxCounts {
        self.counts
    }

    /// Places one frame in the ring, marked for sending; nothing leaves until [`Self::kick`].
    /// Refusals are counted.
    #[inline]
    pub fn queue(&mut self, data: &[u8]) -> Result<(), TxRefused> {
        if data.len() < MIN_FRAME {
            self.counts.runt += 1;
            return Err(TxRefused::Runt);
        }
        if data.len() > TX_FRAME_SIZE - TX_DATA_OFFSET {
            self.counts.too_big += 1;
            return Err(TxRefused::TooBig);
        }
        let off = self.next_off;
        // Free once the kernel has sent it (AVAILABLE, maybe with timestamp bits) or refused it
        // (WRONG_FORMAT): anything but queued or in flight.
        if self.ring.load_status(off) & (TP_STATUS_SEND_REQUEST | TP_STATUS_SENDING) != 0 {
            self.counts.ring_full += 1;
            return Err(TxRefused::RingFull);
        }
        let len = (data.len() as u32).to_ne_bytes();
        self.ring.write(off + TX_DATA_OFFSET, data);
        self.ring.write(off + TX_LEN, &len);
        self.ring.write(off + TX_SNAPLEN, &len);
        self.ring.store_status(off, TP_STATUS_SEND_REQUEST);
        self.counts.queued += 1;
        self.next += 1;
        if self.next == self.frames {
            self.next = 0;
            self.next_off = 0;
        } else if self.next.is_multiple_of(TX_FRAMES_PER_BLOCK) {
            self.next_off = (self.next / TX_FRAMES_PER_BLOCK) * TX_BLOCK_SIZE;
        } else {
            self.next_off += TX_FRAME_SIZE;
        }
        Ok(())
    }

    /// Asks the kernel to send every queued frame: one system call for the whole batch. With
    /// MSG_DONTWAIT the kernel sends what it can and returns; frames it could not take yet
    /// (EAGAIN, ENOBUFS) stay queued and go with the next kick.
    pub fn kick(&mut self) -> io::Result<()> {
        self.counts.kicks += 1;
        // SAFETY: a zero-length send with no buffer and no address is the documented TX-ring
        // kick; the kernel reads only the ring, which stays mapped.
        let rc = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        if rc < 0 {
            self.counts.kick_errors += 1;
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

impl TxDevice for AfPacketTx {
    /// Copies each buffer into the next free TX frame and frees it; on a full ring stops and
    /// frees the rest. Then one kick for the batch (also when the ring was full, so frames a
    /// previous kick left queued get another chance). Never allocates.
    fn tx(&mut self, pool: &mut BufferPool, buffers: &[BufferIndex]) -> usize {
        let mut sent = 0;
        let mut full = false;
        for (i, &bi) in buffers.iter().enumerate() {
            match self.queue(pool.get(bi).data()) {
                Ok(()) => sent += 1,
                Err(TxRefused::RingFull) => {
                    // queue counted this one; the rest cannot fit either.
                    self.counts.ring_full += (buffers.len() - i - 1) as u64;
                    pool.free_many(&buffers[i..]);
                    full = true;
                    break;
                }
                Err(TxRefused::TooBig | TxRefused::Runt) => {}
            }
            pool.free(bi);
        }
        if sent > 0 || full {
            let _ = self.kick();
        }
        sent
    }
}

impl AsRawFd for AfPacketTx {
    /// The TX socket (POLLOUT when a frame has been sent and its slot is free again).
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A plain (unmapped) AF_PACKET socket bound to one interface: one `send` or `recv` per frame.
/// Too slow for the data path; tests and tools use it to inject and capture frames independently
/// of the rings under test.
pub struct PacketSocket {
    fd: OwnedFd,
    ifname: String,
}

impl PacketSocket {
    /// Opens a socket on `ifname` that receives every frame arriving there (not its own
    /// transmissions) and sends raw Ethernet frames.
    pub fn open(ifname: &str) -> io::Result<Self> {
        let idx = ifindex(ifname)?;
        let fd = packet_socket(ifname)?;
        let _ = setsockopt(
            &fd,
            PACKET_IGNORE_OUTGOING,
            &1i32,
            "PACKET_IGNORE_OUTGOING",
            ifname,
        );
        // Room for a few thousand frames, so a test can send a whole batch before reading:
        // FORCE exceeds net.core.rmem_max (needs CAP_NET_ADMIN, which opening needs anyway).
        let rcvbuf = 16i32 << 20;
        if setsockopt_at(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &rcvbuf,
            "",
            ifname,
        )
        .is_err()
        {
            let _ = setsockopt_at(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &rcvbuf, "", ifname);
        }
        bind(&fd, idx, ETH_P_ALL, ifname)?;
        Ok(Self {
            fd,
            ifname: ifname.to_string(),
        })
    }

    /// Sends one frame as it is (Ethernet header included).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: frame is a live slice of frame.len() bytes that the kernel only reads.
        let rc = unsafe {
            libc::send(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
            )
        };
        if rc < 0 {
            return Err(context(io::Error::last_os_error(), &self.ifname, "send"));
        }
        Ok(())
    }

    /// Receives one frame into `buf` within `timeout`: its length (the frame's full length,
    /// which may exceed `buf.len()` when it was cut), or None on timeout. Skips frames the kernel
    /// marks as outgoing (older kernels without PACKET_IGNORE_OUTGOING).
    pub fn recv(&self, buf: &mut [u8], timeout: Duration) -> io::Result<Option<usize>> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = left.as_millis().min(i32::MAX as u128) as i32;
            // SAFETY: pfd is one live pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(context(e, &self.ifname, "poll"));
            }
            if rc == 0 {
                return Ok(None);
            }
            // SAFETY: sockaddr_ll is plain integers; all-zero is valid.
            let mut from: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut from_len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf is a live writable slice of buf.len() bytes, from a live sockaddr_ll of
            // from_len bytes; MSG_TRUNC makes the kernel return the full length without writing
            // past buf.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                    &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
                    &mut from_len,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(context(e, &self.ifname, "recvfrom"));
            }
            if from.sll_pkttype == PACKET_OUTGOING {
                continue;
            }
            return Ok(Some(n as usize));
        }
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// The MAC address of a Linux interface in the calling thread's network namespace
/// (`SIOCGIFHWADDR`; unlike /sys/class/net this follows `setns`).
pub fn hw_addr(ifname: &str) -> io::Result<[u8; 6]> {
    if ifname.is_empty() || ifname.len() >= libc::IFNAMSIZ || ifname.contains('\0') {
        return Err(invalid(format!("bad interface name '{ifname}'")));
    }
    // SAFETY: plain socket call; the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(context(io::Error::last_os_error(), ifname, "socket"));
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(ifname.bytes()) {
        *d = s as libc::c_char;
    }
    // SAFETY: ifr is a live ifreq with a NUL-terminated name (length checked, rest zeroed); the
    // kernel writes only inside it.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR, &mut ifr) };
    if rc < 0 {
        return Err(context(io::Error::last_os_error(), ifname, "SIOCGIFHWADDR"));
    }
    // SAFETY: SIOCGIFHWADDR succeeded, so it filled the ifru_hwaddr member of the union.
    let sa = unsafe { ifr.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (m, b) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *m = *b as u8;
    }
    Ok(mac)
}

/// Moves the calling thread into network namespace `name` (`/var/run/netns/NAME`, as `ip netns`
/// creates them). Only this thread changes namespace; sockets it opens stay in that namespace
/// wherever they are used later.
pub fn enter_netns(name: &str) -> io::Result<()> {
    let path = format!("/var/run/netns/{name}");
    let f = std::fs::File::open(&path).map_err(|e| context(e, name, &format!("open {path}")))?;
    // SAFETY: setns with a valid namespace descriptor and the matching type; it changes only the
    // calling thread's network namespace, which no Rust invariant depends on.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc == 0 {
        Ok(())
    } else {
        Err(context(io::Error::last_os_error(), name, "setns"))
    }
}

#[cfg(test)]
mod tests;
