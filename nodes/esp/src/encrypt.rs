//! `esp4-encrypt`: a feature on the `ip4-output` arc (after ACLs and SNAT). For each packet
//! leaving an interface where it is enabled (the uplink), the protect rules decide: no rule,
//! the packet continues in clear; a rule, the packet leaves encrypted by one of the rule's
//! outbound SAs, or is dropped and counted (`no-sa`) — never sent in clear.
//!
//! Transport mode (node-to-node VXLAN) inserts the ESP header and IV after the IPv4 header and
//! continues on the arc; tunnel mode wraps the packet in a new IPv4 header to the tunnel's far
//! end and sends it to `ip4-lookup`, which routes the outer packet (the arc then sees an ESP
//! packet, which is never encrypted again).
//!
//! An outbound SA belongs to one worker, which alone advances its sequence number (the IV):
//! a packet another worker chose the SA for is handed to the owner. A rule spreads traffic over
//! several SAs by worker (worker w starts with the rule's SA w mod n), so with one SA per worker
//! per peer, no packet crosses workers and encryption scales with them.
//!
//! Work per frame: pass 1 classifies, chooses SAs, assigns sequence numbers and lays out each
//! packet (header moves, trailer room); pass 2 hands the prepared packets to the AES-GCM
//! backend in batches (a run of one SA's packets, eight at a time). Nothing allocates.

use crate::packet::{
    self, SealPacket, SealParams, ESP_FRONT, IPPROTO_ESP, NEXT_IPV4, TUNNEL_FRONT,
};
use crate::sa::{EspTables, SaData, NONE};
use crate::ENCRYPT_NODE;
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use vpg_graph::wire::checksum;
use vpg_graph::{
    ArcId, BufferIndex, ConfigSet, Ctx, Node, NodeRegistration, Time, Vector, FRAME_SIZE,
};

vpg_graph::error_counters! {
    /// esp4-encrypt errors and counts.
    pub enum EncryptError {
        /// Packets encrypted (not an error).
        Encrypted = "encrypted": "packets encrypted",
        /// A rule requires encryption and no SA is usable: dropped, never sent in clear.
        NoSa = "no-sa": "encryption required and no valid SA: dropped (would have left in clear)",
        /// Handed to the worker that owns the chosen SA (not an error).
        HandedOff = "handed-off": "packets handed to the worker owning their SA",
        /// The owner's SA changed while the packet travelled to it.
        HandoffStale = "handoff-stale": "SA no longer usable on the owner after a handoff",
        /// An SA's soft lifetime was reached (an event, not a drop).
        SoftExpired = "sa-soft-expired": "SA soft lifetime reached (rekey due)",
        /// An SA's hard lifetime or sequence space was used up (an event, not a drop).
        HardExpired = "sa-hard-expired": "SA hard lifetime or sequence numbers used up",
        /// The next sequence number is beyond what vpgd has reserved on disk (the sequence
        /// file could not be written in time): dropped, since a restart could send it again.
        SeqUnreserved = "seq-unreserved": "sequence number not yet reserved on disk: dropped",
        /// Not enough headroom or tailroom for ESP.
        NoRoom = "no-room": "no buffer room for the ESP header or trailer",
        /// The encrypted packet would exceed the interface MTU.
        MtuExceeded = "mtu-exceeded": "encrypted packet larger than the interface MTU",
        /// Too short to be IPv4 behind Ethernet.
        Malformed = "malformed": "not an IPv4 packet behind an Ethernet header",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_LOOKUP: u16 = 1;
const NEXT_SELF: u16 = 2;

/// Marks a packet handed to its SA's owner: the low bits carry the SA's table index.
pub(crate) const HANDOFF_MARK: u32 = 1 << 31;
/// Ethernet header in front of the IPv4 header on the output arc (`ip4-rewrite` wrote it).
const L2: usize = 14;

/// What an outbound SA's owner keeps: the sequence number (the IV) and the lifetime used.
/// Written per packet by one worker: aligned to a cache line (64 bytes, and a size that is a
/// multiple of it), so no other worker's data ever shares its lines, wherever the allocator put
/// the two workers' tables.
#[derive(Clone, Debug, Default)]
#[repr(align(64))]
struct OutState {
    gen: u64,
    seq: u64,
    counters: SaCounters,
    ip_id: u16,
}

/// Per-SA counters one worker kept (summed over workers by the control side).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SaCounters {
    /// Packets encrypted or decrypted.
    pub packets: u64,
    /// Payload bytes protected or recovered.
    pub bytes: u64,
    /// Inbound: packets whose ICV did not verify.
    pub auth_failures: u64,
    /// Inbound: replayed or too old.
    pub replays: u64,
    /// Other drops charged to the SA (expired, no room, MTU, bad trailer, mode mismatch).
    pub drops: u64,
    /// Outbound: the last sequence number sent; inbound: the highest accepted.
    pub seq: u64,
    /// The soft lifetime was reached.
    pub soft_expired: bool,
    /// The hard lifetime or the sequence numbers were used up.
    pub hard_expired: bool,
}

impl SaCounters {
    /// Adds another worker's counters.
    pub fn merge(&mut self, o: &SaCounters) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.auth_failures += o.auth_failures;
        self.replays += o.replays;
        self.drops += o.drops;
        self.seq = self.seq.max(o.seq);
        self.soft_expired |= o.soft_expired;
        self.hard_expired |= o.hard_expired;
    }
}

/// Per-rule counters one worker kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RuleCounters {
    /// Packets the rule matched and that left encrypted (or were handed off to be).
    pub protected: u64,
    /// Packets it matched that had no usable SA: dropped, never sent in clear.
    pub no_sa: u64,
}

/// What happened to a traced packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncryptAction {
    /// No rule: left in clear.
    Clear,
    /// Already ESP: not encrypted again.
    AlreadyEsp,
    /// Encrypted.
    Encrypted,
    /// Handed to the owner worker.
    HandedOff(u32),
    /// Dropped.
    Dropped(EncryptError),
}

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct EncryptTrace {
    rule: u32,
    sa: u32,
    spi: u32,
    key_id: u8,
    seq: u64,
    tunnel: bool,
    action: EncryptAction,
}

impl fmt::Display for EncryptTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.action {
            EncryptAction::Clear => f.write_str("esp: no protect rule, clear"),
            EncryptAction::AlreadyEsp => f.write_str("esp: already ESP, passed"),
            EncryptAction::Encrypted => write!(
                f,
                "esp: rule {} sa {} spi {:#010x} key {} seq {} {}",
                self.rule,
                self.sa,
                self.spi,
                self.key_id,
                self.seq,
                if self.tunnel { "tunnel" } else { "transport" }
            ),
            EncryptAction::HandedOff(w) => {
                write!(
                    f,
                    "esp: rule {} sa {} handed to worker {w}",
                    self.rule, self.sa
                )
            }
            EncryptAction::Dropped(e) => write!(
                f,
                "esp: rule {} dropped: {}",
                self.rule,
                EncryptError::DESCRIPTIONS[e as usize].name
            ),
        }
    }
}

/// One seal prepared by pass 1.
#[derive(Clone, Copy, Default)]
struct SealOp {
    /// Position in the vector.
    k: u16,
    /// SA table index.
    sa: u32,
    seq: u64,
    /// Offset of the ESP header in the packet's data.
    off: u16,
    /// Payload length.
    len: u16,
    next_header: u8,
}

/// The node.
pub struct EspEncrypt {
    tables: Arc<EspTables>,
    state: Vec<OutState>,
    rules: Vec<(u32, RuleCounters)>,
    ops: Box<[SealOp; FRAME_SIZE]>,
}

impl Default for EspEncrypt {
    fn default() -> Self {
        Self {
            tables: Arc::default(),
            state: Vec::new(),
            rules: Vec::new(),
            ops: Box::new([SealOp::default(); FRAME_SIZE]),
        }
    }
}

impl EspEncrypt {
    /// This worker's counters per SA generation (outbound SAs it owns or used).
    pub fn sa_counters(&self) -> Vec<(u64, SaCounters)> {
        self.state
            .iter()
            .filter(|s| s.gen != 0)
            .map(|s| (s.gen, s.counters))
            .collect()
    }

    /// Sets the last sequence number SA generation `gen` used on this worker (tests reach the
    /// end of the sequence space with it). False when this worker has no such SA.
    pub fn set_sequence(&mut self, gen: u64, seq: u64) -> bool {
        match self.state.iter_mut().find(|s| s.gen == gen) {
            Some(s) => {
                s.seq = seq;
                true
            }
            None => false,
        }
    }

    /// This worker's counters per protect rule id.
    pub fn rule_counters(&self) -> Vec<(u32, RuleCounters)> {
        self.rules.clone()
    }
}

/// Where a packet's selectors are: destination, protocol, destination port (0 for none).
#[inline(always)]
fn selectors(ip: &[u8]) -> (u32, u8, u16) {
    let dst = u32::from_be_bytes([ip[16], ip[17], ip[18], ip[19]]);
    let proto = ip[9];
    let ihl = (ip[0] & 0x0f) as usize * 4;
    let whole = u16::from_be_bytes([ip[6], ip[7]]) & 0x3fff == 0;
    let port = match ip.get(ihl + 2..ihl + 4) {
        Some(p) if whole && matches!(proto, 6 | 17 | 132) => u16::from_be_bytes([p[0], p[1]]),
        _ => 0,
    };
    (dst, proto, port)
}

/// Chooses the SA for a packet of rule `rule` on worker `me`: the rule's SAs from position
/// `me mod n`, the first usable one (owned here, or by another worker when `may_hand_off`).
#[inline]
fn choose(tables: &EspTables, rule: u32, me: u32, now: Time, may_hand_off: bool) -> u32 {
    let sas = &tables.rules.rules[rule as usize].sas;
    let n = sas.len();
    for j in 0..n {
        let i = sas[(me as usize + j) % n];
        let Some(sa) = tables.sas.get(i as usize) else {
            continue;
        };
        if sa.usable(now) && (sa.owner == me || may_hand_off) {
            return i;
        }
    }
    NONE
}

impl Node for EspEncrypt {
    type Trace = EncryptTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            ENCRYPT_NODE,
            &[vpg_graph::ERROR_DROP, "ip4-lookup", ENCRYPT_NODE],
            EncryptError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        let Some(t) = c.get::<EspTables>() else {
            return;
        };
        // Keep each SA's state across snapshots (its sequence number must never go back);
        // a new SA (new generation) starts where the control side says: after 0, or after the
        // sequence numbers a previous vpgd reserved for its key.
        self.state = crate::sa::carry_per_sa(
            &mut self.state,
            &t.sas,
            |s| s.gen,
            |sa| OutState {
                gen: sa.gen,
                seq: sa.shared.seq_used(),
                ..OutState::default()
            },
        );
        for (s, sa) in self.state.iter().zip(&t.sas) {
            if s.counters.hard_expired {
                sa.shared.set_exhausted();
            }
        }
        let old: HashMap<u32, RuleCounters> = self.rules.drain(..).collect();
        self.rules = t
            .rules
            .rules
            .iter()
            .map(|r| (r.id, old.get(&r.id).copied().unwrap_or_default()))
            .collect();
        self.tables = t;
    }

    fn process(&mut self, cx: &mut Ctx<'_, EncryptTrace>, v: &mut Vector) {
        let tables = self.tables.clone();
        let me = cx.worker as u32;
        let workers = cx.handoff.workers();
        let now = cx.now;
        let mut n_ops = 0usize;
        let (mut c_dst, mut c_proto, mut c_port, mut c_rule) = (u32::MAX, 0u8, 0u16, NONE);
        // The SA chosen for the last rule (and whether a handoff was allowed): `now` is fixed
        // for the frame, so the choice only changes when an SA ends inside it (then cleared).
        let (mut c_sa_rule, mut c_sa_may, mut c_sa) = (NONE, false, NONE);
        let (mut last_if, mut last_next) = (u32::MAX, 0u16);
        let (mut handed, mut soft, mut hard) = (0u64, 0u64, 0u64);
        for k in 0..v.len {
            if k + 2 < v.len {
                cx.buffers.prefetch(v.buffers[k + 2]);
            }
            let bi = v.buffers[k];
            let b = cx.buffers.get_mut(bi);
            let tx_if = b.hdr.tx_if;
            let mark = b.hdr.meta.tunnel.sa;
            let d = b.data();
            if d.len() < L2 + 20 || d[L2] >> 4 != 4 {
                b.hdr.error = cx.errors.index(EncryptError::Malformed);
                v.nexts[k] = NEXT_DROP;
                continue;
            }
            let ip = &d[L2..];
            let mut tr = EncryptTrace {
                rule: NONE,
                sa: NONE,
                spi: 0,
                key_id: 0,
                seq: 0,
                tunnel: false,
                action: EncryptAction::Clear,
            };
            let (dst, proto, port) = selectors(ip);
            let rule = if proto == IPPROTO_ESP || tables.rules.is_empty() {
                NONE
            } else if (dst, proto, port) == (c_dst, c_proto, c_port) {
                c_rule
            } else {
                (c_dst, c_proto, c_port) = (dst, proto, port);
                c_rule = tables.rules.lookup(dst, proto, port);
                c_rule
            };
            if rule == NONE {
                if proto == IPPROTO_ESP {
                    tr.action = EncryptAction::AlreadyEsp;
                }
                if b.is_traced() {
                    cx.tracer.add(&b.hdr, tr);
                }
                if tx_if != last_if {
                    (last_if, last_next) = (tx_if, cx.arcs.next(ArcId::Ip4Output, tx_if));
                }
                v.nexts[k] = last_next;
                continue;
            }
            tr.rule = tables.rules.rules[rule as usize].id;
            // A packet handed here by another worker comes with its SA; it is never handed on
            // again (so two workers can never pass a packet back and forth).
            let handed_here = mark & HANDOFF_MARK != 0 && workers > 1;
            let mut sa_i = NONE;
            if handed_here {
                let i = mark & !HANDOFF_MARK;
                if tables
                    .sas
                    .get(i as usize)
                    .is_some_and(|s| s.owner == me && s.usable(now))
                {
                    sa_i = i;
                }
            }
            if sa_i == NONE {
                let may = workers > 1 && !handed_here;
                if (rule, may) != (c_sa_rule, c_sa_may) {
                    (c_sa_rule, c_sa_may) = (rule, may);
                    c_sa = choose(&tables, rule, me, now, may);
                }
                sa_i = c_sa;
            }
            let Some(sa) = tables.sas.get(sa_i as usize) else {
                let e = if handed_here {
                    EncryptError::HandoffStale
                } else {
                    EncryptError::NoSa
                };
                if let Some(r) = self.rules.get_mut(rule as usize) {
                    r.1.no_sa += 1;
                }
                b.hdr.error = cx.errors.index(e);
                tr.action = EncryptAction::Dropped(e);
                if b.is_traced() {
                    cx.tracer.add(&b.hdr, tr);
                }
                v.nexts[k] = NEXT_DROP;
                continue;
            };
            (tr.sa, tr.spi, tr.key_id) = (sa.id, sa.spi, sa.key_id);
            if let Some(r) = self.rules.get_mut(rule as usize) {
                r.1.protected += 1;
            }
            if sa.owner != me && workers > 1 {
                b.hdr.meta.tunnel.sa = sa_i | HANDOFF_MARK;
                tr.action = EncryptAction::HandedOff(sa.owner);
                if b.is_traced() {
                    cx.tracer.add(&b.hdr, tr);
                }
                if cx
                    .handoff
                    .send(cx.buffers, sa.owner as usize, NEXT_SELF, bi)
                {
                    v.nexts[k] = vpg_graph::NEXT_CONSUMED;
                    handed += 1;
                } else {
                    let b = cx.buffers.get_mut(bi);
                    b.hdr.error = cx.errors.index(EncryptError::HandoffStale);
                    v.nexts[k] = NEXT_DROP;
                }
                continue;
            }
            let st = &mut self.state[sa_i as usize];
            let ihl = (ip[0] & 0x0f) as usize * 4;
            let len_field = u16::from_be_bytes([ip[2], ip[3]]);
            // Read now: after the header moves, a load from it would wait on the move's stores.
            let ttl_proto = u16::from_be_bytes([ip[8], ip[9]]);
            let csum_field = u16::from_be_bytes([ip[10], ip[11]]);
            let ip_len = (len_field as usize).min(ip.len());
            let tunnel = matches!(sa.mode, crate::sa::Mode::Tunnel { .. });
            let (len, next_header, grow) = if tunnel {
                (ip_len, NEXT_IPV4, TUNNEL_FRONT)
            } else {
                (ip_len.saturating_sub(ihl), ip[9], ESP_FRONT)
            };
            let out_len = if tunnel { 0 } else { ihl } + grow + len + packet::tail_len(len);
            let fits = b.headroom() >= grow
                && b.tailroom() + (d.len() - L2 - ip_len) >= packet::MAX_TAIL
                && ihl >= 20
                && ihl <= ip_len;
            let mtu = tables.mtu(tx_if);
            let err = if !fits {
                Some(EncryptError::NoRoom)
            } else if !tunnel && mtu != 0 && out_len > mtu as usize {
                Some(EncryptError::MtuExceeded)
            } else {
                None
            };
            if let Some(e) = err {
                st.counters.drops += 1;
                b.hdr.error = cx.errors.index(e);
                tr.action = EncryptAction::Dropped(e);
                if b.is_traced() {
                    cx.tracer.add(&b.hdr, tr);
                }
                v.nexts[k] = NEXT_DROP;
                continue;
            }
            // The sequence number: never repeats, and the SA ends at the last one.
            let seq = st.seq + 1;
            if seq > sa.shared.seq_limit() {
                // Not durable yet: a vpgd restarted now would use it again under this key.
                st.counters.drops += 1;
                b.hdr.error = cx.errors.index(EncryptError::SeqUnreserved);
                tr.action = EncryptAction::Dropped(EncryptError::SeqUnreserved);
                if b.is_traced() {
                    cx.tracer.add(&b.hdr, tr);
                }
                v.nexts[k] = NEXT_DROP;
                continue;
            }
            let last = if sa.esn {
                u64::MAX
            } else {
                u64::from(u32::MAX)
            };
            st.seq = seq;
            sa.shared.note_used(seq);
            st.counters.seq = seq;
            st.counters.packets += 1;
            st.counters.bytes += len as u64;
            let c = &mut st.counters;
            if !c.soft_expired
                && (c.packets >= sa.soft_packets
                    || c.bytes >= sa.soft_bytes
                    || now >= sa.soft_deadline)
            {
                c.soft_expired = true;
                soft += 1;
            }
            if !c.hard_expired
                && (seq == last || c.packets >= sa.hard_packets || c.bytes >= sa.hard_bytes)
            {
                // This packet is the last: later ones choose another SA or are dropped.
                c.hard_expired = true;
                sa.shared.set_exhausted();
                hard += 1;
                c_sa_rule = NONE;
            }
            (tr.seq, tr.tunnel) = (seq, tunnel);
            let off = if tunnel {
                // Drop the Ethernet header (ip4-rewrite adds the outer one), put the outer
                // IPv4 header, ESP header and IV in front.
                b.advance(L2 as isize);
                b.set_len(ip_len + packet::tail_len(len));
                b.prepend(TUNNEL_FRONT);
                let total = (TUNNEL_FRONT + len + packet::tail_len(len)) as u16;
                st.ip_id = st.ip_id.wrapping_add(1);
                let h = &mut b.data_mut()[..20];
                h.copy_from_slice(&sa.outer);
                h[2..4].copy_from_slice(&total.to_be_bytes());
                h[4..6].copy_from_slice(&st.ip_id.to_be_bytes());
                // The template was summed with length and id zero (RFC 1624).
                let mut csum = u16::from_be_bytes([h[10], h[11]]);
                csum = checksum::update_u16(csum, 0, total);
                csum = checksum::update_u16(csum, 0, st.ip_id);
                h[10..12].copy_from_slice(&csum.to_be_bytes());
                20
            } else {
                // Move Ethernet and IPv4 headers forward over the room for ESP header and IV.
                b.set_len(L2 + ip_len + packet::tail_len(len));
                b.prepend(ESP_FRONT);
                let d = b.data_mut();
                if ihl == 20 {
                    // The usual header: a fixed-size move the compiler does in registers.
                    d.copy_within(ESP_FRONT..ESP_FRONT + L2 + 20, 0);
                } else {
                    d.copy_within(ESP_FRONT..ESP_FRONT + L2 + ihl, 0);
                }
                let ip = &mut d[L2..L2 + ihl];
                let total = (ihl + ESP_FRONT + len + packet::tail_len(len)) as u16;
                // Length and protocol change: update the checksum for those words
                // (RFC 1624), rather than sum the header again.
                ip[2..4].copy_from_slice(&total.to_be_bytes());
                ip[9] = IPPROTO_ESP;
                let mut csum = checksum::update_u16(csum_field, len_field, total);
                csum = checksum::update_u16(
                    csum,
                    ttl_proto,
                    (ttl_proto & 0xff00) | u16::from(IPPROTO_ESP),
                );
                ip[10..12].copy_from_slice(&csum.to_be_bytes());
                L2 + ihl
            };
            b.hdr.meta.tunnel.sa = sa_i;
            if b.is_traced() {
                tr.action = EncryptAction::Encrypted;
                cx.tracer.add(&b.hdr, tr);
            }
            self.ops[n_ops] = SealOp {
                k: k as u16,
                sa: sa_i,
                seq,
                off: off as u16,
                len: len as u16,
                next_header,
            };
            n_ops += 1;
            v.nexts[k] = if tunnel {
                NEXT_LOOKUP
            } else {
                if tx_if != last_if {
                    (last_if, last_next) = (tx_if, cx.arcs.next(ArcId::Ip4Output, tx_if));
                }
                last_next
            };
        }
        // Pass 2: the seals, a run of one SA's packets per batch call (the native engine
        // interleaves a batch's AES blocks).
        let mut i = 0;
        while i < n_ops {
            let sa_i = self.ops[i].sa;
            let n = packet::batch_len(i, n_ops, |j| self.ops[j].sa);
            let ops = &self.ops[i..i + n];
            i += n;
            let sa: &SaData = &tables.sas[sa_i as usize];
            let params = SealParams {
                cipher: &*sa.cipher,
                salt: sa.salt,
                spi: sa.spi,
                esn: sa.esn,
            };
            let mut bis = [BufferIndex(0); packet::BATCH];
            for (b, op) in bis.iter_mut().zip(ops) {
                *b = v.buffers[op.k as usize];
            }
            // A frame never holds a buffer twice, so this always succeeds.
            let Some(bufs) = cx.buffers.get_many_mut::<{ packet::BATCH }>(&bis[..n]) else {
                continue;
            };
            let mut pkts: [SealPacket<'_>; packet::BATCH] = Default::default();
            for ((pk, b), op) in pkts.iter_mut().zip(bufs.into_iter().flatten()).zip(ops) {
                *pk = SealPacket {
                    seq: op.seq,
                    p: &mut b.data_mut()[op.off as usize..],
                    len: op.len as usize,
                    next_header: op.next_header,
                };
            }
            packet::seal_batch(&params, &mut pkts[..n]);
        }
        cx.errors.count(EncryptError::Encrypted, n_ops as u64);
        cx.errors.count(EncryptError::HandedOff, handed);
        cx.errors.count(EncryptError::SoftExpired, soft);
        cx.errors.count(EncryptError::HardExpired, hard);
    }
}
