//! The packet generator and capture (VPP's pg): streams of packets built from templates with
//! varying fields, or read from pcap, injected by the `pg-input` node; a capture TX device that
//! records what leaves an interface and can write it as pcap.
//!
//! A stream's packet images are built on the control side when it is added (one per flow, up to a
//! limit), so `pg-input` only copies bytes into fresh buffers: it adds no per-packet computation
//! to what a benchmark measures beyond that copy, and it never allocates.

use crate::buffer::{BufferIndex, BufferPool};
use crate::context::Ctx;
use crate::frame::Vector;
use crate::interface::TxDevice;
use crate::node::{Node, NodeRegistration};
use crate::wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};
use std::fmt;
use std::net::Ipv4Addr;

/// Name of the generator's input node.
pub const PG_INPUT: &str = "pg-input";

/// A stream: packet images sent in a cycle on an interface.
#[derive(Clone, Debug)]
pub struct Stream {
    /// Stream name (shown in trace).
    pub name: String,
    /// Interface the packets appear to arrive on.
    pub rx_if: u32,
    /// Total packets to send; `None` sends forever.
    pub limit: Option<u64>,
    images: Vec<Vec<u8>>,
    /// IPv4 destinations written into each packet in turn (empty: images are sent as they are).
    dsts: Vec<u32>,
    dst_cursor: usize,
    sent: u64,
    cursor: usize,
}

impl Stream {
    /// A stream that cycles through `images`.
    pub fn new(name: &str, rx_if: u32, images: Vec<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            rx_if,
            limit: None,
            images,
            dsts: Vec::new(),
            dst_cursor: 0,
            sent: 0,
            cursor: 0,
        }
    }

    /// Reads the images from a pcap file.
    pub fn from_pcap(
        name: &str,
        rx_if: u32,
        path: &std::path::Path,
    ) -> Result<Self, crate::pcap::PcapError> {
        let recs = crate::pcap::read(std::io::BufReader::new(std::fs::File::open(path)?))?;
        Ok(Self::new(
            name,
            rx_if,
            recs.into_iter().map(|r| r.data).collect(),
        ))
    }

    /// Writes these IPv4 destinations into successive packets (Ethernet/IPv4 images), fixing the
    /// header checksum incrementally and clearing the UDP checksum (optional in IPv4). Many flows
    /// then cost 4 bytes each instead of a whole image, so the generator's own memory does not
    /// crowd what a benchmark measures out of the cache (VPP's pg edits fields the same way).
    pub fn with_destinations(mut self, dsts: Vec<u32>) -> Self {
        for img in &mut self.images {
            if img.len() >= 14 + 28 && img[12..14] == [8, 0] && img[14 + 9] == 17 {
                let ihl = (img[14] & 0x0f) as usize * 4;
                if img.len() >= 14 + ihl + 8 {
                    img[14 + ihl + 6] = 0;
                    img[14 + ihl + 7] = 0;
                }
            }
        }
        self.dsts = dsts;
        self
    }

    /// Stops after `n` packets.
    pub fn with_limit(mut self, n: u64) -> Self {
        self.limit = Some(n);
        self
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The packet images.
    pub fn images(&self) -> &[Vec<u8>] {
        &self.images
    }

    fn remaining(&self) -> u64 {
        if self.images.is_empty() {
            return 0;
        }
        self.limit.map_or(u64::MAX, |l| l.saturating_sub(self.sent))
    }
}

/// How a field varies from one flow to the next.
#[derive(Clone, Debug)]
pub enum Vary {
    /// IPv4 source: `start`, `start+1`, … for `count` values, then again.
    Ip4Src {
        /// First address.
        start: Ipv4Addr,
        /// Number of addresses.
        count: u32,
    },
    /// IPv4 destination, incrementing like `Ip4Src`.
    Ip4Dst {
        /// First address.
        start: Ipv4Addr,
        /// Number of addresses.
        count: u32,
    },
    /// IPv4 destination taken in turn from a list.
    Ip4DstList(Vec<u32>),
    /// UDP/TCP source port, incrementing.
    SrcPort {
        /// First port.
        start: u16,
        /// Number of ports.
        count: u16,
    },
    /// UDP/TCP destination port, incrementing.
    DstPort {
        /// First port.
        start: u16,
        /// Number of ports.
        count: u16,
    },
}

/// Builds a stream's images from an Ethernet/IPv4 template: `flows` images, the varying fields
/// set per flow, sizes cycled, and IPv4 lengths and checksums (and UDP's) fixed.
#[derive(Clone, Debug)]
pub struct StreamTemplate {
    /// The template frame.
    pub template: Vec<u8>,
    /// Number of distinct images (flows).
    pub flows: usize,
    /// Varying fields.
    pub vary: Vec<Vary>,
    /// Frame sizes in bytes (cycled per flow); empty keeps the template's size.
    pub sizes: Vec<usize>,
}

impl StreamTemplate {
    /// A UDP/IPv4 template frame of `size` bytes from `src` to `dst`.
    pub fn udp4(
        src_mac: [u8; 6],
        dst_mac: [u8; 6],
        src: Ipv4Addr,
        dst: Ipv4Addr,
        size: usize,
    ) -> Self {
        let size = size.max(14 + 20 + 8);
        let mut f = vec![0u8; size];
        f[0..6].copy_from_slice(&dst_mac);
        f[6..12].copy_from_slice(&src_mac);
        f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = &mut f[14..];
        ip[0] = 0x45;
        ip[8] = 64;
        ip[9] = 17;
        ip[12..16].copy_from_slice(&src.octets());
        ip[16..20].copy_from_slice(&dst.octets());
        ip[20..22].copy_from_slice(&1234u16.to_be_bytes());
        ip[22..24].copy_from_slice(&5678u16.to_be_bytes());
        Self {
            template: f,
            flows: 1,
            vary: Vec::new(),
            sizes: Vec::new(),
        }
    }

    /// Sets the number of flows.
    pub fn flows(mut self, n: usize) -> Self {
        self.flows = n.max(1);
        self
    }

    /// Adds a varying field.
    pub fn vary(mut self, v: Vary) -> Self {
        self.vary.push(v);
        self
    }

    /// Builds the images.
    pub fn build(&self) -> Vec<Vec<u8>> {
        (0..self.flows).map(|i| self.image(i)).collect()
    }

    fn image(&self, i: usize) -> Vec<u8> {
        let mut f = self.template.clone();
        if let Some(&s) = self.sizes.get(i % self.sizes.len().max(1)) {
            f.resize(s.max(14), 0);
        }
        let ip4 = matches!(
            EthernetFrame::new_checked(&f[..]).map(|e| e.ethertype()),
            Ok(EtherType::Ipv4)
        );
        if !ip4 || f.len() < 34 {
            return f;
        }
        let l3 = &mut f[14..];
        let ihl = ((l3[0] & 0x0f) as usize * 4).clamp(20, l3.len());
        let total = l3.len() as u16;
        l3[2..4].copy_from_slice(&total.to_be_bytes());
        for v in &self.vary {
            match v {
                Vary::Ip4Src { start, count } => {
                    let a = u32::from(*start).wrapping_add(i as u32 % (*count).max(1));
                    l3[12..16].copy_from_slice(&a.to_be_bytes());
                }
                Vary::Ip4Dst { start, count } => {
                    let a = u32::from(*start).wrapping_add(i as u32 % (*count).max(1));
                    l3[16..20].copy_from_slice(&a.to_be_bytes());
                }
                Vary::Ip4DstList(list) if !list.is_empty() => {
                    l3[16..20].copy_from_slice(&list[i % list.len()].to_be_bytes());
                }
                Vary::Ip4DstList(_) => {}
                Vary::SrcPort { start, count } if l3.len() >= ihl + 4 => {
                    let p = start.wrapping_add((i % (*count).max(1) as usize) as u16);
                    l3[ihl..ihl + 2].copy_from_slice(&p.to_be_bytes());
                }
                Vary::DstPort { start, count } if l3.len() >= ihl + 4 => {
                    let p = start.wrapping_add((i % (*count).max(1) as usize) as u16);
                    l3[ihl + 2..ihl + 4].copy_from_slice(&p.to_be_bytes());
                }
                Vary::SrcPort { .. } | Vary::DstPort { .. } => {}
            }
        }
        if let Ok(mut ip) = Ipv4Packet::new_checked(&mut *l3) {
            ip.fill_checksum();
            let (src, dst, proto) = (ip.src_addr(), ip.dst_addr(), ip.protocol());
            if proto == IpProtocol::Udp {
                let l4 = &mut l3[ihl..];
                let n = l4.len() as u16;
                if n >= 8 {
                    l4[4..6].copy_from_slice(&n.to_be_bytes());
                    if let Ok(mut udp) = UdpPacket::new_checked(&mut *l4) {
                        udp.fill_checksum(src, dst);
                    }
                }
            }
        }
        f
    }
}

/// Rewrites the IPv4 destination of an Ethernet/IPv4 frame with an RFC 1624 checksum update.
#[inline]
fn set_ip4_dst(f: &mut [u8], dst: u32) {
    if f.len() < 34 || f[12..14] != [8, 0] {
        return;
    }
    let old = u32::from_be_bytes([f[30], f[31], f[32], f[33]]);
    let csum = u16::from_be_bytes([f[24], f[25]]);
    let c = crate::wire::checksum::update_u32(csum, old, dst);
    f[30..34].copy_from_slice(&dst.to_be_bytes());
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// Trace of a generated packet.
#[derive(Clone, Copy, Debug)]
pub struct PgTrace {
    /// Stream index on this worker.
    pub stream: u16,
    /// Interface.
    pub rx_if: u32,
    /// Bytes.
    pub len: u16,
}

impl fmt::Display for PgTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "pg stream {} rx interface {} len {}",
            self.stream, self.rx_if, self.len
        )
    }
}

/// The generator's input node.
pub struct PgInput {
    next: String,
    streams: Vec<Stream>,
}

impl PgInput {
    /// A generator whose packets go to node `next` (usually `ethernet-input`).
    pub fn new(next: &str) -> Self {
        Self {
            next: next.into(),
            streams: Vec::new(),
        }
    }

    /// Adds a stream (control path).
    pub fn add_stream(&mut self, s: Stream) {
        self.streams.push(s);
    }

    /// Removes every stream.
    pub fn clear(&mut self) {
        self.streams.clear();
    }

    /// The streams.
    pub fn streams(&self) -> &[Stream] {
        &self.streams
    }
}

impl Node for PgInput {
    type Trace = PgTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::input(PG_INPUT, &[self.next.as_str()], &[])
    }

    fn process(&mut self, cx: &mut Ctx<'_, PgTrace>, v: &mut Vector) {
        // Share the vector fairly among the streams that still have packets to send.
        let active = self.streams.iter().filter(|s| s.remaining() > 0).count();
        if active == 0 {
            return;
        }
        let quota = (v.room() / active).max(1) as u64;
        for (si, s) in self.streams.iter_mut().enumerate() {
            let mut n = s.remaining().min(quota).min(v.room() as u64);
            while n > 0 {
                let Some(bi) = cx.buffers.alloc() else { return };
                let b = cx.buffers.get_mut(bi);
                let img = &s.images[s.cursor];
                b.set_data(img);
                if let Some(&dst) = s.dsts.get(s.dst_cursor) {
                    set_ip4_dst(b.data_mut(), dst);
                    s.dst_cursor += 1;
                    if s.dst_cursor == s.dsts.len() {
                        s.dst_cursor = 0;
                    }
                }
                b.hdr.rx_if = s.rx_if;
                let len = b.hdr.current_length;
                if cx.tracer.start(&mut b.hdr) {
                    cx.tracer.add(
                        &b.hdr,
                        PgTrace {
                            stream: si as u16,
                            rx_if: s.rx_if,
                            len,
                        },
                    );
                }
                cx.interfaces.rx(s.rx_if, len as usize);
                v.push(bi, 0);
                s.cursor += 1;
                if s.cursor == s.images.len() {
                    s.cursor = 0;
                }
                s.sent += 1;
                n -= 1;
            }
        }
    }

    fn is_idle(&self) -> bool {
        self.streams.iter().all(|s| s.remaining() == 0)
    }
}

/// A packet recorded by a capture device.
pub type Captured = Vec<u8>;

/// A TX device that records every packet it is given (for tests and `pg capture`). It copies
/// each packet into a new `Vec`, so it is a debugging tool, not a benchmark sink
/// ([`crate::interface::NullDevice`] is).
pub struct PgCapture {
    tx: crossbeam_channel::Sender<Captured>,
}

impl PgCapture {
    /// A capture device and the receiving end its packets arrive at.
    pub fn new() -> (Self, crossbeam_channel::Receiver<Captured>) {
        let (tx, rx) = crossbeam_channel::unbounded();
        (Self { tx }, rx)
    }
}

impl TxDevice for PgCapture {
    fn tx(&mut self, pool: &mut BufferPool, buffers: &[BufferIndex]) -> usize {
        let mut sent = 0;
        for &bi in buffers {
            if self.tx.send(pool.get(bi).data().to_vec()).is_ok() {
                sent += 1;
            }
            pool.free(bi);
        }
        sent
    }
}

/// Writes captured packets to a pcap file.
pub fn write_pcap(path: &std::path::Path, packets: &[Captured]) -> std::io::Result<()> {
    let mut w =
        crate::pcap::PcapWriter::new(std::io::BufWriter::new(std::fs::File::create(path)?))?;
    for (i, p) in packets.iter().enumerate() {
        w.write(i as u64 * 1000, p)?;
    }
    w.into_inner().map(|_| ())
}
