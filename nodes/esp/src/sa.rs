//! The tables the workers read: SAs (one immutable record each, keys expanded), inbound SPI →
//! SA, and the protect rules that choose outbound SAs. One [`EspTables`] is part of each
//! configuration snapshot; `control.rs` builds it.
//!
//! What changes per packet (sequence numbers, replay windows, lifetime use, counters) is not
//! here: it lives in the nodes of the worker that owns the SA (see `encrypt.rs`), keyed by the
//! SA's generation number so it survives new snapshots and starts afresh for a new SA.

use crate::crypto::{GcmCipher, SALT_LEN};
use crate::packet::IPPROTO_ESP;
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use vpg_graph::wire::checksum;
use vpg_graph::Time;

/// Index meaning "no SA" / "no rule".
pub const NONE: u32 = u32::MAX;

/// Which way an SA protects traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// Decrypts what arrives (looked up by SPI).
    Inbound,
    /// Encrypts what leaves (chosen by a protect rule).
    Outbound,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Inbound => "in",
            Direction::Outbound => "out",
        })
    }
}

/// ESP mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The IP payload is protected; the IP header stays (node-to-node VXLAN).
    Transport,
    /// The whole IP packet is protected inside a new one between two gateways.
    Tunnel {
        /// Outer source.
        src: Ipv4Addr,
        /// Outer destination.
        dst: Ipv4Addr,
    },
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Transport => f.write_str("transport"),
            Mode::Tunnel { src, dst } => write!(f, "tunnel {src} -> {dst}"),
        }
    }
}

/// Lifetime limits of one kind (soft or hard); `None` is no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Packets.
    pub packets: Option<u64>,
    /// Bytes (of payload protected or recovered).
    pub bytes: Option<u64>,
    /// Seconds since the SA was added.
    pub seconds: Option<u64>,
}

/// What every worker's nodes may learn about an SA and tell the others: whether its owner
/// found it exhausted (hard packet/byte limit or sequence overflow), so other workers stop
/// choosing it; and for an outbound SA, the sequence numbers it may use. Carried from snapshot
/// to snapshot with the SA.
#[derive(Debug)]
pub struct SaShared {
    exhausted: AtomicBool,
    seq: SeqShare,
}

/// An SA's sequence numbers between its owner and the control thread. Outbound: the owner
/// writes `used` (the last number sent) per packet and reads `limit`; the control thread reads
/// `used` now and then and raises `limit` once a reservation is on disk (vpgd's sequence file).
/// Inbound: `used` is the highest number accepted, which the control thread records. Its own
/// cache line: the other workers read `exhausted` per packet and must not see it bounce.
#[derive(Debug)]
#[repr(align(64))]
struct SeqShare {
    used: AtomicU64,
    limit: AtomicU64,
}

impl Default for SaShared {
    /// Not exhausted; sequence numbers from 1 with no reservation limit.
    fn default() -> Self {
        Self::with_sequence(0, u64::MAX)
    }
}

impl SaShared {
    /// An SA whose sequence numbers up to `used` are spent and which may go up to `limit`.
    pub fn with_sequence(used: u64, limit: u64) -> Self {
        Self {
            exhausted: AtomicBool::new(false),
            seq: SeqShare {
                used: AtomicU64::new(used),
                limit: AtomicU64::new(limit),
            },
        }
    }

    /// Set by the owner; read by everyone (a relaxed load: a plain load on x86).
    #[inline(always)]
    pub fn exhausted(&self) -> bool {
        self.exhausted.load(Ordering::Relaxed)
    }

    /// Marks the SA unusable.
    pub fn set_exhausted(&self) {
        self.exhausted.store(true, Ordering::Relaxed);
    }

    /// Outbound: the last sequence number used (or, before the first packet, the one it starts
    /// after). Inbound: the highest accepted (or the one its window starts after).
    #[inline(always)]
    pub fn seq_used(&self) -> u64 {
        self.seq.used.load(Ordering::Relaxed)
    }

    /// The owner records the sequence number it just used.
    #[inline(always)]
    pub fn note_used(&self, seq: u64) {
        self.seq.used.store(seq, Ordering::Relaxed);
    }

    /// The highest sequence number the owner may use (`u64::MAX`: no reservation needed).
    #[inline(always)]
    pub fn seq_limit(&self) -> u64 {
        self.seq.limit.load(Ordering::Relaxed)
    }

    /// Sets where the SA starts and how far it may go: before the SA is in any snapshot.
    pub fn start_sequence(&self, used: u64, limit: u64) {
        self.seq.used.store(used, Ordering::Relaxed);
        self.seq.limit.store(limit, Ordering::Relaxed);
    }

    /// Raises the limit (never lowers it), once the reservation up to it is durable.
    pub fn raise_limit(&self, limit: u64) {
        self.seq.limit.fetch_max(limit, Ordering::Relaxed);
    }
}

/// One SA as the workers see it.
pub struct SaData {
    /// The control plane's id.
    pub id: u32,
    /// Unique per SA added (never reused): keys the per-worker state.
    pub gen: u64,
    /// SPI.
    pub spi: u32,
    /// Direction.
    pub direction: Direction,
    /// Mode.
    pub mode: Mode,
    /// The expanded key.
    pub cipher: Arc<dyn GcmCipher>,
    /// RFC 4106 salt.
    pub salt: [u8; SALT_LEN],
    /// Extended (64-bit) sequence numbers.
    pub esn: bool,
    /// Anti-replay window (inbound).
    pub window: u32,
    /// The worker that owns the SA's sequence number or window.
    pub owner: u32,
    /// Key id (rotation generation), for trace and audit.
    pub key_id: u8,
    /// Soft packet limit (`u64::MAX`: none).
    pub soft_packets: u64,
    /// Soft byte limit.
    pub soft_bytes: u64,
    /// Soft expiry time (`Time(u64::MAX)`: none).
    pub soft_deadline: Time,
    /// Hard packet limit.
    pub hard_packets: u64,
    /// Hard byte limit.
    pub hard_bytes: u64,
    /// Hard expiry time, including a retirement deadline (rotation's grace period).
    pub hard_deadline: Time,
    /// Outer IPv4 header for tunnel mode (length, id and checksum to fill; checksum summed with
    /// those zero).
    pub outer: [u8; 20],
    /// Shared across workers.
    pub shared: Arc<SaShared>,
}

impl fmt::Debug for SaData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaData")
            .field("id", &self.id)
            .field("gen", &self.gen)
            .field("spi", &format_args!("{:#x}", self.spi))
            .field("direction", &self.direction)
            .field("mode", &self.mode)
            .field("owner", &self.owner)
            .finish_non_exhaustive()
    }
}

impl SaData {
    /// Whether an outbound SA may be chosen at `now` (not past its hard deadline nor exhausted).
    #[inline(always)]
    pub fn usable(&self, now: Time) -> bool {
        now < self.hard_deadline && !self.shared.exhausted()
    }

    /// The tunnel-mode outer header template.
    pub fn outer_template(mode: Mode) -> [u8; 20] {
        let mut h = [0u8; 20];
        if let Mode::Tunnel { src, dst } = mode {
            h[0] = 0x45;
            h[8] = 64;
            h[9] = IPPROTO_ESP;
            h[12..16].copy_from_slice(&src.octets());
            h[16..20].copy_from_slice(&dst.octets());
            let c = checksum::data(&h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        h
    }
}

/// One protect rule as the workers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleData {
    /// The control plane's id.
    pub id: u32,
    /// Destination network (host order) and prefix length.
    pub dst: u32,
    /// Prefix length.
    pub len: u8,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Destination port (TCP, UDP, SCTP), 0 for any.
    pub port: u16,
    /// The outbound SAs (table indices) it spreads traffic over; empty: drop everything.
    pub sas: Box<[u32]>,
}

impl RuleData {
    #[inline(always)]
    fn matches(&self, dst: u32, proto: u8, port: u16) -> bool {
        let mask = if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - self.len)
        };
        dst & mask == self.dst
            && (self.proto == 0 || self.proto == proto)
            && (self.port == 0 || self.port == port)
    }

    /// Specific rules first: longer prefix, then with protocol and port.
    fn rank(&self) -> (u8, bool, bool) {
        (self.len, self.proto != 0, self.port != 0)
    }
}

/// The protect rules, ordered for lookup: host (/32) rules by address (binary search), then the
/// others from the longest prefix.
#[derive(Debug, Default)]
pub struct RuleTable {
    /// Every rule; lookups return an index here.
    pub rules: Vec<RuleData>,
    /// (address, first rule, count) for /32 rules, sorted by address.
    hosts: Vec<(u32, u32, u32)>,
    /// Indices of the other rules, most specific first.
    others: Vec<u32>,
}

impl RuleTable {
    /// Orders `rules`.
    pub fn new(mut rules: Vec<RuleData>) -> Self {
        // Hosts grouped by address, each group most specific first; then the rest.
        rules.sort_by(|a, b| {
            (b.len == 32)
                .cmp(&(a.len == 32))
                .then(if a.len == 32 {
                    a.dst.cmp(&b.dst)
                } else {
                    std::cmp::Ordering::Equal
                })
                .then(b.rank().cmp(&a.rank()))
                .then(a.id.cmp(&b.id))
        });
        let mut hosts: Vec<(u32, u32, u32)> = Vec::new();
        let mut others = Vec::new();
        for (i, r) in rules.iter().enumerate() {
            if r.len == 32 {
                match hosts.last_mut() {
                    Some(h) if h.0 == r.dst => h.2 += 1,
                    _ => hosts.push((r.dst, i as u32, 1)),
                }
            } else {
                others.push(i as u32);
            }
        }
        Self {
            rules,
            hosts,
            others,
        }
    }

    /// The rule for a packet to `dst` with `proto` and destination `port` (0 when it has none).
    #[inline]
    pub fn lookup(&self, dst: u32, proto: u8, port: u16) -> u32 {
        if let Ok(h) = self.hosts.binary_search_by_key(&dst, |h| h.0) {
            let (_, first, n) = self.hosts[h];
            for i in first..first + n {
                if self.rules[i as usize].matches(dst, proto, port) {
                    return i;
                }
            }
        }
        for &i in &self.others {
            if self.rules[i as usize].matches(dst, proto, port) {
                return i;
            }
        }
        NONE
    }

    /// Whether there are no rules (the encrypt node then passes everything at once).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

/// Inbound SPI → SA table index: open addressing, at most half full, one multiply per lookup.
#[derive(Debug, Default)]
pub struct SpiTable {
    slots: Vec<(u32, u32)>,
    shift: u32,
}

impl SpiTable {
    /// Builds the table from (SPI, index) pairs (SPIs unique, non-zero).
    pub fn build(entries: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let entries: Vec<_> = entries.into_iter().collect();
        let size = (entries.len() * 2).next_power_of_two().max(16);
        let mut t = Self {
            slots: vec![(0, NONE); size],
            shift: 64 - size.trailing_zeros(),
        };
        let mask = size - 1;
        for (spi, idx) in entries {
            let mut h = t.hash(spi);
            while t.slots[h].0 != 0 {
                h = (h + 1) & mask;
            }
            t.slots[h] = (spi, idx);
        }
        t
    }

    #[inline(always)]
    fn hash(&self, spi: u32) -> usize {
        (u64::from(spi).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> self.shift) as usize
    }

    /// The SA of `spi`, or [`NONE`].
    #[inline]
    pub fn get(&self, spi: u32) -> u32 {
        if spi == 0 || self.slots.is_empty() {
            return NONE;
        }
        let mask = self.slots.len() - 1;
        let mut h = self.hash(spi);
        loop {
            let (s, i) = self.slots[h];
            if s == spi {
                return i;
            }
            if s == 0 {
                return NONE;
            }
            h = (h + 1) & mask;
        }
    }
}

/// A node's per-SA state for the SAs of a new snapshot, in its order: the state an SA already
/// had (matched by generation: a sequence number or replay window must never go back), or
/// `fresh` for a new SA. Runs between frames, so it may allocate.
pub fn carry_per_sa<S>(
    old: &mut Vec<S>,
    sas: &[Arc<SaData>],
    gen_of: impl Fn(&S) -> u64,
    fresh: impl Fn(&SaData) -> S,
) -> Vec<S> {
    let mut by_gen: std::collections::HashMap<u64, S> =
        old.drain(..).map(|s| (gen_of(&s), s)).collect();
    sas.iter()
        .map(|sa| by_gen.remove(&sa.gen).unwrap_or_else(|| fresh(sa)))
        .collect()
}

/// Everything the ESP nodes read, one immutable snapshot per configuration.
#[derive(Debug, Default)]
pub struct EspTables {
    /// The SAs.
    pub sas: Vec<Arc<SaData>>,
    /// Inbound SPI → SA.
    pub spi_in: SpiTable,
    /// Outbound selection.
    pub rules: RuleTable,
    /// MTU by interface (0: unknown), so transport mode never sends what the link would drop.
    pub mtu: Vec<u16>,
}

impl EspTables {
    /// The MTU of `sw_if` (0 when unknown).
    #[inline(always)]
    pub fn mtu(&self, sw_if: u32) -> u16 {
        self.mtu.get(sw_if as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(id: u32, dst: [u8; 4], len: u8, proto: u8, port: u16) -> RuleData {
        RuleData {
            id,
            dst: u32::from_be_bytes(dst) & if len == 0 { 0 } else { u32::MAX << (32 - len) },
            len,
            proto,
            port,
            sas: Box::new([id]),
        }
    }

    #[test]
    fn spi_table_finds_every_spi_and_nothing_else() {
        let t = SpiTable::build((1..=1000u32).map(|i| (i * 7919, i)));
        for i in 1..=1000u32 {
            assert_eq!(t.get(i * 7919), i);
        }
        assert_eq!(t.get(7918), NONE);
        assert_eq!(t.get(0), NONE);
        assert_eq!(SpiTable::default().get(5), NONE);
    }

    #[test]
    fn outer_template_checksums() {
        let h = SaData::outer_template(Mode::Tunnel {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(10, 0, 0, 2),
        });
        assert_eq!(checksum::data(&h), 0);
        assert_eq!(h[9], 50);
    }

    /// The reference: the most specific matching rule by a linear scan.
    fn naive(rules: &[RuleData], dst: u32, proto: u8, port: u16) -> Option<u32> {
        rules
            .iter()
            .filter(|r| r.matches(dst, proto, port))
            .max_by(|a, b| a.rank().cmp(&b.rank()).then(b.id.cmp(&a.id)))
            .map(|r| r.id)
    }

    #[test]
    fn specific_rules_win() {
        let t = RuleTable::new(vec![
            rule(1, [10, 0, 0, 0], 8, 0, 0),
            rule(2, [10, 1, 2, 3], 32, 0, 0),
            rule(3, [10, 1, 2, 3], 32, 17, 4789),
            rule(4, [10, 1, 0, 0], 16, 17, 0),
        ]);
        let id = |d: [u8; 4], p, port| {
            let i = t.lookup(u32::from_be_bytes(d), p, port);
            (i != NONE).then(|| t.rules[i as usize].id)
        };
        assert_eq!(id([10, 1, 2, 3], 17, 4789), Some(3));
        assert_eq!(id([10, 1, 2, 3], 17, 53), Some(2));
        assert_eq!(id([10, 1, 9, 9], 17, 53), Some(4));
        assert_eq!(id([10, 1, 9, 9], 6, 53), Some(1));
        assert_eq!(id([11, 1, 9, 9], 6, 53), None);
    }

    proptest! {
        #[test]
        fn lookup_equals_a_linear_scan(
            specs in prop::collection::vec((0u8..4, 0u8..4, prop::sample::select(vec![0u8, 8, 16, 24, 31, 32]), prop::sample::select(vec![0u8, 6, 17]), prop::sample::select(vec![0u16, 53, 4789])), 0..30),
            probes in prop::collection::vec((0u8..4, 0u8..4, prop::sample::select(vec![6u8, 17, 1]), prop::sample::select(vec![0u16, 53, 4789])), 1..50),
        ) {
            let rules: Vec<RuleData> = specs
                .iter()
                .enumerate()
                .map(|(i, &(a, b, len, proto, port))| rule(i as u32, [10, a, b, 1], len, proto, port))
                .collect();
            let t = RuleTable::new(rules.clone());
            for (a, b, proto, port) in probes {
                let dst = u32::from_be_bytes([10, a, b, 1]);
                let i = t.lookup(dst, proto, port);
                let got = (i != NONE).then(|| t.rules[i as usize].id);
                prop_assert_eq!(got, naive(&rules, dst, proto, port));
            }
        }
    }
}
