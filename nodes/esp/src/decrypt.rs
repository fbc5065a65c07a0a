//! `esp4-decrypt`: a feature on the `ip4-unicast` arc of the interfaces ESP arrives on (the
//! uplink), ahead of the input ACLs. An ESP packet whose SPI names an inbound SA is checked
//! against the SA's replay window, authenticated and decrypted, and what it carried goes back
//! to `ip4-input` as received on the same interface: the inner packet (tunnel mode) or the
//! original IPv4 packet (transport mode: the VXLAN packet, which then reaches `ip4-local` and
//! `vxlan4-decap`). Other packets, and ESP with an unknown SPI (transit IPsec), continue on the
//! arc.
//!
//! An inbound SA belongs to one worker, which alone updates its replay window: a packet that
//! arrives on another worker is handed to the owner first, so the window stays exact however
//! the uplink's packets are spread over workers.
//!
//! Work per frame: pass 1 parses, finds the SA, hands off, checks the window (before any
//! crypto, RFC 4303 §3.4.3); pass 2 hands the packets to the AES-GCM backend in batches (a run
//! of one SA's packets, eight at a time); pass 3 updates the window
//! (only for authenticated packets, checking again so two copies in one frame count once),
//! the counters and lifetimes, and strips ESP.

use crate::packet::{self, OpenError, OpenPacket, ESP_FRONT, IPPROTO_ESP, NEXT_DUMMY, NEXT_IPV4};
use crate::replay::{Replay, ReplayWindow};
use crate::sa::{EspTables, Mode, NONE};
use crate::{SaCounters, DECRYPT_NODE};
use std::fmt;
use std::sync::Arc;
use vpg_graph::wire::checksum;
use vpg_graph::{ArcId, BufferIndex, ConfigSet, Ctx, Node, NodeRegistration, Vector, FRAME_SIZE};

vpg_graph::error_counters! {
    /// esp4-decrypt errors and counts.
    pub enum DecryptError {
        /// Packets decrypted (not an error).
        Decrypted = "decrypted": "packets decrypted",
        /// ESP whose SPI no inbound SA has: passed on (transit, or dropped by ip4-local).
        UnknownSpi = "unknown-spi": "ESP with no inbound SA for its SPI (passed on)",
        /// Handed to the worker that owns the SA (not an error).
        HandedOff = "handed-off": "packets handed to the worker owning their SA",
        /// Replayed, or older than the window.
        Replay = "replay": "replayed or older than the anti-replay window",
        /// The ICV did not verify.
        AuthFailed = "auth-failed": "integrity check failed (ICV)",
        /// Too short for ESP with AES-GCM.
        TooShort = "too-short": "too short for ESP header, IV, trailer and ICV",
        /// Pad length or padding wrong after authentication.
        BadTrailer = "bad-trailer": "bad ESP padding or pad length",
        /// The SA's hard lifetime is over.
        SaExpired = "sa-expired": "SA hard lifetime over (or retired)",
        /// What the packet carried does not fit the SA's mode.
        ModeMismatch = "mode-mismatch": "next header does not fit the SA's mode",
        /// A dummy packet (next header 59), discarded as RFC 4303 says.
        Dummy = "dummy": "dummy packets (next header 59) discarded",
        /// An SA's soft lifetime was reached (an event, not a drop).
        SoftExpired = "sa-soft-expired": "SA soft lifetime reached (rekey due)",
        /// The owner worker could not be reached.
        HandoffFailed = "handoff-failed": "could not hand the packet to the SA's owner worker",
    }
}

const NEXT_DROP: u16 = 0;
const NEXT_IP4_INPUT: u16 = 1;
const NEXT_SELF: u16 = 2;

/// What an inbound SA's owner keeps. Aligned to a cache line, as `encrypt::OutState`.
#[derive(Clone, Debug)]
#[repr(align(64))]
struct InState {
    gen: u64,
    window: ReplayWindow,
    counters: SaCounters,
    /// The highest number pass 1 let through in frame `frame` (accepted only in pass 3).
    pending: u64,
    frame: u64,
}

/// Trace record.
#[derive(Clone, Copy, Debug)]
pub struct DecryptTrace {
    spi: u32,
    seq: u64,
    sa: u32,
    key_id: u8,
    /// 0: decrypted; else the drop or pass reason.
    outcome: Option<DecryptError>,
    next_header: u8,
}

impl fmt::Display for DecryptTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "esp: spi {:#010x} seq {}", self.spi, self.seq)?;
        if self.sa != NONE {
            write!(f, " sa {} key {}", self.sa, self.key_id)?;
        }
        match self.outcome {
            None => write!(f, ": decrypted, next header {}", self.next_header),
            Some(e) => write!(f, ": {}", DecryptError::DESCRIPTIONS[e as usize].name),
        }
    }
}

/// One open prepared by pass 1.
#[derive(Clone, Copy, Default)]
struct OpenOp {
    k: u16,
    sa: u32,
    seq: u64,
    ihl: u16,
    /// Pass 2's result: payload length and next header, or why not.
    result: Option<Result<(u16, u8), OpenError>>,
}

/// The node.
pub struct EspDecrypt {
    tables: Arc<EspTables>,
    state: Vec<InState>,
    ops: Box<[OpenOp; FRAME_SIZE]>,
    /// Counts calls, so per-SA pending numbers from an earlier frame are ignored.
    frame: u64,
}

impl Default for EspDecrypt {
    fn default() -> Self {
        Self {
            tables: Arc::default(),
            state: Vec::new(),
            ops: Box::new([OpenOp::default(); FRAME_SIZE]),
            frame: 0,
        }
    }
}

impl EspDecrypt {
    /// This worker's counters per SA generation (inbound SAs it owns).
    pub fn sa_counters(&self) -> Vec<(u64, SaCounters)> {
        self.state
            .iter()
            .filter(|s| s.gen != 0 && s.counters != SaCounters::default())
            .map(|s| (s.gen, s.counters))
            .collect()
    }
}

impl Node for EspDecrypt {
    type Trace = DecryptTrace;

    fn registration(&self) -> NodeRegistration {
        NodeRegistration::internal(
            DECRYPT_NODE,
            &[vpg_graph::ERROR_DROP, "ip4-input", DECRYPT_NODE],
            DecryptError::DESCRIPTIONS,
        )
    }

    fn reconfigure(&mut self, c: &ConfigSet) {
        let Some(t) = c.get::<EspTables>() else {
            return;
        };
        // Windows survive new snapshots (a reset window would accept replays); a new SA gets
        // a fresh one, or one past what a previous vpgd recorded it had accepted.
        self.state = crate::sa::carry_per_sa(
            &mut self.state,
            &t.sas,
            |s| s.gen,
            |sa| InState {
                gen: sa.gen,
                window: match sa.shared.seq_used() {
                    0 => ReplayWindow::new(sa.window, sa.esn),
                    seq => ReplayWindow::after(sa.window, sa.esn, seq),
                },
                counters: SaCounters::default(),
                pending: 0,
                frame: 0,
            },
        );
        self.tables = t;
    }

    fn process(&mut self, cx: &mut Ctx<'_, DecryptTrace>, v: &mut Vector) {
        let tables = self.tables.clone();
        let me = cx.worker as u32;
        let workers = cx.handoff.workers();
        let now = cx.now;
        let mut n_ops = 0usize;
        let (mut last_if, mut last_next) = (u32::MAX, 0u16);
        let (mut unknown, mut handed) = (0u64, 0u64);
        self.frame += 1;
        let frame = self.frame;
        // Pass 1: parse, find the SA, hand off, check the window.
        for k in 0..v.len {
            if k + 2 < v.len {
                cx.buffers.prefetch(v.buffers[k + 2]);
            }
            let bi = v.buffers[k];
            let b = cx.buffers.get_mut(bi);
            let d = b.data();
            let is_esp = d.len() >= 20 && d[9] == IPPROTO_ESP && d[6] & 0x3f == 0 && d[7] == 0;
            let ihl = d.first().map_or(0, |&x| (x & 0x0f) as usize * 4);
            let spi = match d.get(ihl..ihl + 8) {
                Some(h) if is_esp => u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
                _ => 0,
            };
            let sa_i = if spi == 0 {
                NONE
            } else {
                tables.spi_in.get(spi)
            };
            let Some(sa) = tables.sas.get(sa_i as usize) else {
                // Not ESP, or not ours: on along the arc (ESP fragments and unknown SPIs end
                // in ip4-local's counters when addressed to us).
                if spi != 0 {
                    unknown += 1;
                }
                let rx = b.hdr.rx_if;
                if rx != last_if {
                    (last_if, last_next) = (rx, cx.arcs.next(ArcId::Ip4Unicast, rx));
                }
                v.nexts[k] = last_next;
                continue;
            };
            if sa.owner != me && workers > 1 {
                if cx
                    .handoff
                    .send(cx.buffers, sa.owner as usize, NEXT_SELF, bi)
                {
                    v.nexts[k] = vpg_graph::NEXT_CONSUMED;
                    handed += 1;
                } else {
                    let b = cx.buffers.get_mut(bi);
                    b.hdr.error = cx.errors.index(DecryptError::HandoffFailed);
                    v.nexts[k] = NEXT_DROP;
                }
                continue;
            }
            let st = &mut self.state[sa_i as usize];
            let lo = u32::from_be_bytes([d[ihl + 4], d[ihl + 5], d[ihl + 6], d[ihl + 7]]);
            if st.frame != frame {
                (st.frame, st.pending) = (frame, 0);
            }
            let seq = st.window.infer_above(lo, st.pending);
            let err = if d.len() < ihl + ESP_FRONT + 2 + crate::crypto::ICV_LEN {
                st.counters.drops += 1;
                Some(DecryptError::TooShort)
            } else if now >= sa.hard_deadline || st.counters.hard_expired {
                st.counters.drops += 1;
                Some(DecryptError::SaExpired)
            } else if sa.window != 0 && st.window.check(seq).is_err() {
                st.counters.replays += 1;
                Some(DecryptError::Replay)
            } else {
                None
            };
            if let Some(e) = err {
                b.hdr.error = cx.errors.index(e);
                if b.is_traced() {
                    let tr = DecryptTrace {
                        spi,
                        seq,
                        sa: sa.id,
                        key_id: sa.key_id,
                        outcome: Some(e),
                        next_header: 0,
                    };
                    cx.tracer.add(&b.hdr, tr);
                }
                v.nexts[k] = NEXT_DROP;
                continue;
            }
            st.pending = st.pending.max(seq);
            self.ops[n_ops] = OpenOp {
                k: k as u16,
                sa: sa_i,
                seq,
                ihl: ihl as u16,
                result: None,
            };
            n_ops += 1;
        }
        // Pass 2: the opens, a run of one SA's packets per batch call.
        let mut i = 0;
        while i < n_ops {
            let sa_i = self.ops[i].sa;
            let n = packet::batch_len(i, n_ops, |j| self.ops[j].sa);
            let ops = &mut self.ops[i..i + n];
            i += n;
            let sa = &tables.sas[sa_i as usize];
            let mut bis = [BufferIndex(0); packet::BATCH];
            for (b, op) in bis.iter_mut().zip(ops.iter()) {
                *b = v.buffers[op.k as usize];
            }
            // A frame never holds a buffer twice, so this always succeeds (else pass 3 drops
            // the packets as too short: `result` stays None).
            let Some(bufs) = cx.buffers.get_many_mut::<{ packet::BATCH }>(&bis[..n]) else {
                continue;
            };
            let mut pkts: [OpenPacket<'_>; packet::BATCH] = Default::default();
            for ((pk, b), op) in pkts
                .iter_mut()
                .zip(bufs.into_iter().flatten())
                .zip(ops.iter())
            {
                *pk = OpenPacket::new(op.seq, &mut b.data_mut()[op.ihl as usize..]);
            }
            packet::open_batch(&*sa.cipher, &sa.salt, sa.esn, &mut pkts[..n]);
            for (op, pk) in ops.iter_mut().zip(&pkts) {
                op.result = Some(pk.result.map(|(len, nh)| (len as u16, nh)));
            }
        }
        // Pass 3: window, counters, lifetimes, strip.
        let (mut done, mut soft) = (0u64, 0u64);
        for op in &self.ops[..n_ops] {
            let k = op.k as usize;
            let sa = &tables.sas[op.sa as usize];
            let st = &mut self.state[op.sa as usize];
            let b = cx.buffers.get_mut(v.buffers[k]);
            let ihl = op.ihl as usize;
            let mut tr = DecryptTrace {
                spi: sa.spi,
                seq: op.seq,
                sa: sa.id,
                key_id: sa.key_id,
                outcome: None,
                next_header: 0,
            };
            let r = match op.result {
                Some(Ok((len, nh))) if sa.window == 0 => Ok((len as usize, nh)),
                Some(Ok((len, nh))) => match st.window.accept(op.seq) {
                    Ok(()) => {
                        // For vpgd's sequence file: how far this SA has accepted.
                        sa.shared.note_used(st.window.top());
                        Ok((len as usize, nh))
                    }
                    Err(Replay::TooOld | Replay::Duplicate | Replay::Invalid) => {
                        st.counters.replays += 1;
                        Err(DecryptError::Replay)
                    }
                },
                Some(Err(OpenError::AuthFailed)) => {
                    st.counters.auth_failures += 1;
                    Err(DecryptError::AuthFailed)
                }
                Some(Err(OpenError::TooShort)) | None => {
                    st.counters.drops += 1;
                    Err(DecryptError::TooShort)
                }
                Some(Err(OpenError::BadTrailer)) => {
                    st.counters.drops += 1;
                    Err(DecryptError::BadTrailer)
                }
            };
            let r = r.and_then(|(len, nh)| {
                // Authenticated and new: it counts against the SA whatever it carries.
                let c = &mut st.counters;
                c.packets += 1;
                c.bytes += len as u64;
                c.seq = st.window.top().max(op.seq);
                if !c.soft_expired
                    && (c.packets >= sa.soft_packets
                        || c.bytes >= sa.soft_bytes
                        || now >= sa.soft_deadline)
                {
                    c.soft_expired = true;
                    soft += 1;
                }
                if c.packets >= sa.hard_packets || c.bytes >= sa.hard_bytes {
                    c.hard_expired = true;
                }
                tr.next_header = nh;
                match (sa.mode, nh) {
                    (_, NEXT_DUMMY) => Err(DecryptError::Dummy),
                    (Mode::Tunnel { .. }, NEXT_IPV4) => {
                        b.advance((ihl + ESP_FRONT) as isize);
                        b.set_len(len);
                        Ok(())
                    }
                    (Mode::Transport, nh) if nh != NEXT_IPV4 => {
                        // Close the gap: the IPv4 header moves up to the payload.
                        let d = b.data_mut();
                        d.copy_within(0..ihl, ESP_FRONT);
                        b.advance(ESP_FRONT as isize);
                        b.set_len(ihl + len);
                        let ip = &mut b.data_mut()[..ihl];
                        ip[2..4].copy_from_slice(&((ihl + len) as u16).to_be_bytes());
                        ip[9] = nh;
                        ip[10] = 0;
                        ip[11] = 0;
                        let c = checksum::data(ip);
                        ip[10..12].copy_from_slice(&c.to_be_bytes());
                        Ok(())
                    }
                    _ => {
                        st.counters.drops += 1;
                        Err(DecryptError::ModeMismatch)
                    }
                }
            });
            match r {
                Ok(()) => {
                    done += 1;
                    b.hdr.meta.tunnel.sa = op.sa;
                    v.nexts[k] = NEXT_IP4_INPUT;
                }
                Err(e) => {
                    tr.outcome = Some(e);
                    b.hdr.error = cx.errors.index(e);
                    v.nexts[k] = NEXT_DROP;
                }
            }
            if b.is_traced() {
                cx.tracer.add(&b.hdr, tr);
            }
        }
        cx.errors.count(DecryptError::Decrypted, done);
        cx.errors.count(DecryptError::UnknownSpi, unknown);
        cx.errors.count(DecryptError::HandedOff, handed);
        cx.errors.count(DecryptError::SoftExpired, soft);
    }
}
