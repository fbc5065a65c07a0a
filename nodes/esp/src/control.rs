//! The control side of the SA table and the protect rules: add, delete, retire and dump. Every
//! change is checked first and applied whole; [`EspControl::tables`] then yields the immutable
//! snapshot the workers swap in between frames. vpgd's API handlers call only these functions.
//!
//! Keys are expanded once, when an SA is added (the snapshot shares the expanded key), and never
//! leave this module in any dump: an SA shows its key id and a fingerprint.

use crate::crypto::{Backend, CryptoError, KeyMaterial};
use crate::replay::MAX_WINDOW;
use crate::sa::{
    Direction, EspTables, Limits, Mode, RuleData, RuleTable, SaData, SaShared, SpiTable, NONE,
};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use vpg_graph::Time;

/// Why an ESP change was refused (nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EspError {
    /// SPI 0 is reserved (RFC 4303 §2.1).
    #[error("spi 0 is reserved")]
    ReservedSpi,
    /// An SA with this id exists.
    #[error("esp sa {0} already exists")]
    SaExists(u32),
    /// No SA with this id.
    #[error("esp sa {0} does not exist")]
    NoSa(u32),
    /// An inbound SA with this SPI exists.
    #[error("an inbound esp sa with spi {spi:#010x} already exists (sa {sa})")]
    SpiTaken {
        /// The SPI.
        spi: u32,
        /// The SA that has it.
        sa: u32,
    },
    /// The key material or backend is unusable.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The window is out of range.
    #[error("replay window {0} is out of range (0..={MAX_WINDOW}, 0: off)")]
    BadWindow(u32),
    /// The owner worker does not exist.
    #[error("worker {worker} does not exist ({workers} workers)")]
    BadWorker {
        /// The worker asked for.
        worker: u32,
        /// How many there are.
        workers: usize,
    },
    /// A tunnel endpoint that cannot name one host, or both the same.
    #[error("tunnel {field} {addr} {why}")]
    BadEndpoint {
        /// `src` or `dst`.
        field: &'static str,
        /// The address.
        addr: Ipv4Addr,
        /// What is wrong.
        why: &'static str,
    },
    /// A soft limit above its hard limit, or a zero limit.
    #[error("lifetime: {0}")]
    BadLifetime(&'static str),
    /// A protect rule with this id exists.
    #[error("esp protect rule {0} already exists")]
    RuleExists(u32),
    /// No protect rule with this id.
    #[error("esp protect rule {0} does not exist")]
    NoRule(u32),
    /// A protect rule names an SA that is not outbound.
    #[error("esp sa {0} is inbound: a protect rule uses outbound SAs")]
    NotOutbound(u32),
    /// A prefix with host bits set.
    #[error("prefix {addr}/{len} has host bits set")]
    HostBits {
        /// Address.
        addr: Ipv4Addr,
        /// Length.
        len: u8,
    },
    /// Another outbound SA has the same key: both would count sequence numbers (the AES-GCM
    /// nonces) from their own start, and so repeat nonces under one key.
    #[error("outbound esp sa {sa} already uses this key: two outbound SAs under one key would repeat AES-GCM nonces")]
    KeyInUse {
        /// The SA that has the key.
        sa: u32,
    },
    /// A rule still uses the SA.
    #[error("esp sa {sa} is used by protect rule {rule}")]
    InUse {
        /// The SA.
        sa: u32,
        /// The rule.
        rule: u32,
    },
}

/// An SA's lifetime: soft limits report (counted, shown), hard limits end the SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lifetime {
    /// Soft limits.
    pub soft: Limits,
    /// Hard limits.
    pub hard: Limits,
}

/// What an SA is made of (the API's `esp_sa_add`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaConfig {
    /// SPI (the receiver's choice).
    pub spi: u32,
    /// Direction.
    pub direction: Direction,
    /// Mode.
    pub mode: Mode,
    /// Key and salt (RFC 4106 key material).
    pub key: KeyMaterial,
    /// Key id (which rotation generation the key belongs to).
    pub key_id: u8,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Anti-replay window for inbound SAs (packets). 0 turns anti-replay off (RFC 4303
    /// §3.4.3 lets a receiver do so; the API never does, the decrypt benchmark does, since its
    /// generator replays the same packets).
    pub replay_window: u32,
    /// The worker that owns the SA (default: the SPI modulo the number of workers).
    pub worker: Option<u32>,
    /// Lifetime.
    pub lifetime: Lifetime,
    /// AES-GCM implementation (default [`Backend::DEFAULT`]).
    pub backend: Option<Backend>,
}

impl SaConfig {
    /// A transport-mode SA with defaults (window 64, no ESN, no lifetime).
    pub fn transport(spi: u32, direction: Direction, key: KeyMaterial, key_id: u8) -> Self {
        Self {
            spi,
            direction,
            mode: Mode::Transport,
            key,
            key_id,
            esn: false,
            replay_window: crate::replay::DEFAULT_WINDOW,
            worker: None,
            lifetime: Lifetime::default(),
            backend: None,
        }
    }
}

/// A protect rule (the API's `esp_protect_add`): traffic to `dst` (optionally only protocol
/// `proto` to port `port`) must leave encrypted by one of `sas`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtectRule {
    /// Destination network.
    pub dst: Ipv4Addr,
    /// Prefix length.
    pub len: u8,
    /// IP protocol (None: any).
    pub proto: Option<u8>,
    /// Destination port (None: any).
    pub port: Option<u16>,
    /// Outbound SAs, spread over workers: worker w starts with `sas[w % n]`. Empty means
    /// "encryption required, no key yet": everything matching is dropped and counted.
    pub sas: Vec<u32>,
}

/// One SA as dumped: its configuration without the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SaEntry {
    /// Id.
    pub id: u32,
    /// Generation (keys the workers' counters).
    pub gen: u64,
    /// SPI.
    pub spi: u32,
    /// Direction.
    pub direction: Direction,
    /// Mode.
    pub mode: Mode,
    /// Key id.
    pub key_id: u8,
    /// Key fingerprint (never the key).
    pub fingerprint: String,
    /// AES key size.
    pub key_bits: u16,
    /// ESN.
    pub esn: bool,
    /// Replay window.
    pub replay_window: u32,
    /// Owner worker.
    pub worker: u32,
    /// Lifetime.
    pub lifetime: Lifetime,
    /// Backend.
    pub backend: Backend,
    /// When it was added (workers' time).
    pub created: Time,
    /// When it stops being usable after a retirement, if retired.
    pub retire_at: Option<Time>,
}

#[derive(Clone)]
struct Sa {
    cfg: SaConfig,
    data: Arc<SaData>,
    created: Time,
    retire_at: Option<Time>,
}

/// The SAs and protect rules. Cloning is cheap enough for transactions (expanded keys are
/// shared).
#[derive(Clone)]
pub struct EspControl {
    workers: usize,
    sas: BTreeMap<u32, Sa>,
    rules: BTreeMap<u32, ProtectRule>,
    next_gen: u64,
    mtu: Vec<u16>,
    /// New outbound SAs send nothing until the control side reserves sequence numbers for them
    /// ([`SaShared::start_sequence`]); vpgd does so when it keeps a sequence file.
    reserve_sequences: bool,
}

/// An SA's sequence state, for the control side that keeps sequence numbers across restarts.
#[derive(Clone, Debug)]
pub struct SaSequence {
    /// The SA's id.
    pub id: u32,
    /// Its generation (unique per SA added).
    pub gen: u64,
    /// Its key's fingerprint.
    pub fingerprint: String,
    /// Outbound (else inbound).
    pub outbound: bool,
    /// Where the owner reads its limit and writes what it used or accepted.
    pub shared: Arc<SaShared>,
}

impl std::fmt::Debug for EspControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EspControl")
            .field("workers", &self.workers)
            .field("sas", &self.sas.len())
            .field("rules", &self.rules)
            .finish()
    }
}

fn deadline(base: Time, secs: Option<u64>) -> Time {
    secs.map_or(Time(u64::MAX), |s| base + Duration::from_secs(s))
}

fn check_host(field: &'static str, addr: Ipv4Addr) -> Result<(), EspError> {
    let why = if addr.is_unspecified() {
        "is unspecified"
    } else if addr.is_multicast() {
        "is multicast"
    } else if addr.is_broadcast() {
        "is the broadcast address"
    } else {
        return Ok(());
    };
    Err(EspError::BadEndpoint { field, addr, why })
}

impl EspControl {
    /// No SAs, for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            sas: BTreeMap::new(),
            rules: BTreeMap::new(),
            next_gen: 1,
            mtu: Vec::new(),
            reserve_sequences: false,
        }
    }

    /// Whether new outbound SAs wait for a sequence reservation before sending (see
    /// [`EspControl::sequences`]).
    pub fn set_sequence_reservation(&mut self, on: bool) {
        self.reserve_sequences = on;
    }

    /// Every SA's sequence state.
    pub fn sequences(&self) -> Vec<SaSequence> {
        self.sas
            .iter()
            .map(|(&id, s)| SaSequence {
                id,
                gen: s.data.gen,
                fingerprint: s.cfg.key.fingerprint(),
                outbound: s.cfg.direction == Direction::Outbound,
                shared: s.data.shared.clone(),
            })
            .collect()
    }

    /// Checks what needs no state.
    pub fn check_sa(cfg: &SaConfig) -> Result<(), EspError> {
        //= https://www.rfc-editor.org/rfc/rfc4303#section-2.1
        //# The SPI value of zero (0) is reserved for local, implementation-
        //# specific use and MUST NOT be sent on the wire.
        if cfg.spi == 0 {
            return Err(EspError::ReservedSpi);
        }
        if cfg.replay_window > MAX_WINDOW {
            return Err(EspError::BadWindow(cfg.replay_window));
        }
        if let Mode::Tunnel { src, dst } = cfg.mode {
            check_host("src", src)?;
            check_host("dst", dst)?;
            if src == dst {
                return Err(EspError::BadEndpoint {
                    field: "dst",
                    addr: dst,
                    why: "is the source",
                });
            }
        }
        let (s, h) = (cfg.lifetime.soft, cfg.lifetime.hard);
        for (soft, hard) in [
            (s.packets, h.packets),
            (s.bytes, h.bytes),
            (s.seconds, h.seconds),
        ] {
            if soft == Some(0) || hard == Some(0) {
                return Err(EspError::BadLifetime("a limit of 0"));
            }
            if let (Some(a), Some(b)) = (soft, hard) {
                if a > b {
                    return Err(EspError::BadLifetime("a soft limit above its hard limit"));
                }
            }
        }
        Ok(())
    }

    /// Adds SA `id` at `now` (the workers' time: lifetimes in seconds count from it).
    pub fn add_sa(&mut self, id: u32, cfg: SaConfig, now: Time) -> Result<(), EspError> {
        Self::check_sa(&cfg)?;
        if self.sas.contains_key(&id) {
            return Err(EspError::SaExists(id));
        }
        if cfg.direction == Direction::Inbound {
            if let Some((&sa, _)) = self
                .sas
                .iter()
                .find(|(_, s)| s.cfg.direction == Direction::Inbound && s.cfg.spi == cfg.spi)
            {
                return Err(EspError::SpiTaken { spi: cfg.spi, sa });
            }
        }
        if cfg.direction == Direction::Outbound {
            if let Some((&sa, _)) = self
                .sas
                .iter()
                .find(|(_, s)| s.cfg.direction == Direction::Outbound && s.cfg.key == cfg.key)
            {
                return Err(EspError::KeyInUse { sa });
            }
        }
        let owner = match cfg.worker {
            Some(w) if w as usize >= self.workers => {
                return Err(EspError::BadWorker {
                    worker: w,
                    workers: self.workers,
                })
            }
            Some(w) => w,
            None => cfg.spi % self.workers as u32,
        };
        let cipher: Arc<dyn crate::crypto::GcmCipher> = cfg
            .key
            .cipher(cfg.backend.unwrap_or(Backend::DEFAULT))?
            .into();
        let gen = self.next_gen;
        self.next_gen += 1;
        let shared = if cfg.direction == Direction::Outbound && self.reserve_sequences {
            Arc::new(SaShared::with_sequence(0, 0))
        } else {
            Arc::default()
        };
        let data = Self::data(id, gen, &cfg, owner, cipher, shared, now, None);
        self.sas.insert(
            id,
            Sa {
                cfg,
                data,
                created: now,
                retire_at: None,
            },
        );
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn data(
        id: u32,
        gen: u64,
        cfg: &SaConfig,
        owner: u32,
        cipher: Arc<dyn crate::crypto::GcmCipher>,
        shared: Arc<SaShared>,
        created: Time,
        retire_at: Option<Time>,
    ) -> Arc<SaData> {
        let (s, h) = (cfg.lifetime.soft, cfg.lifetime.hard);
        let hard_deadline = deadline(created, h.seconds).min(retire_at.unwrap_or(Time(u64::MAX)));
        Arc::new(SaData {
            id,
            gen,
            spi: cfg.spi,
            direction: cfg.direction,
            mode: cfg.mode,
            cipher,
            salt: cfg.key.salt(),
            esn: cfg.esn,
            window: cfg.replay_window,
            owner,
            key_id: cfg.key_id,
            soft_packets: s.packets.unwrap_or(u64::MAX),
            soft_bytes: s.bytes.unwrap_or(u64::MAX),
            soft_deadline: deadline(created, s.seconds),
            hard_packets: h.packets.unwrap_or(u64::MAX),
            hard_bytes: h.bytes.unwrap_or(u64::MAX),
            hard_deadline,
            outer: SaData::outer_template(cfg.mode),
            shared,
        })
    }

    /// Deletes SA `id` (refused while a protect rule uses it: replace the rule first).
    pub fn del_sa(&mut self, id: u32) -> Result<(), EspError> {
        if !self.sas.contains_key(&id) {
            return Err(EspError::NoSa(id));
        }
        if let Some((&rule, _)) = self.rules.iter().find(|(_, r)| r.sas.contains(&id)) {
            return Err(EspError::InUse { sa: id, rule });
        }
        self.sas.remove(&id);
        Ok(())
    }

    /// Retires SA `id`: it stays usable for `grace` from `now` (inbound: so packets sealed with
    /// the old key still open while the far end switches), then drops what it sees. Key
    /// rotation: add the new SAs, point the rules at the new outbound ones, retire the old.
    pub fn retire_sa(&mut self, id: u32, grace: Duration, now: Time) -> Result<(), EspError> {
        let sa = self.sas.get_mut(&id).ok_or(EspError::NoSa(id))?;
        let at = now + grace;
        sa.retire_at = Some(sa.retire_at.map_or(at, |t| t.min(at)));
        let d = &sa.data;
        sa.data = Self::data(
            id,
            d.gen,
            &sa.cfg,
            d.owner,
            d.cipher.clone(),
            d.shared.clone(),
            sa.created,
            sa.retire_at,
        );
        Ok(())
    }

    /// Adds (or with `replace`, replaces) protect rule `id`. Replacing is how outbound traffic
    /// switches to new SAs in one snapshot.
    pub fn set_rule(&mut self, id: u32, rule: ProtectRule, replace: bool) -> Result<(), EspError> {
        if !replace && self.rules.contains_key(&id) {
            return Err(EspError::RuleExists(id));
        }
        if rule.len > 32 {
            return Err(EspError::HostBits {
                addr: rule.dst,
                len: rule.len,
            });
        }
        let mask = if rule.len == 0 {
            0
        } else {
            u32::MAX << (32 - rule.len)
        };
        if u32::from(rule.dst) & !mask != 0 {
            return Err(EspError::HostBits {
                addr: rule.dst,
                len: rule.len,
            });
        }
        for &sa in &rule.sas {
            match self.sas.get(&sa) {
                None => return Err(EspError::NoSa(sa)),
                Some(s) if s.cfg.direction != Direction::Outbound => {
                    return Err(EspError::NotOutbound(sa))
                }
                Some(_) => {}
            }
        }
        self.rules.insert(id, rule);
        Ok(())
    }

    /// Deletes protect rule `id`.
    pub fn del_rule(&mut self, id: u32) -> Result<ProtectRule, EspError> {
        self.rules.remove(&id).ok_or(EspError::NoRule(id))
    }

    /// Sets the interfaces' MTUs (transport mode drops what would not fit).
    pub fn set_mtus(&mut self, mtu: Vec<u16>) {
        self.mtu = mtu;
    }

    /// Every SA, by id, without keys.
    pub fn sas(&self) -> Vec<SaEntry> {
        self.sas
            .iter()
            .map(|(&id, s)| SaEntry {
                id,
                gen: s.data.gen,
                spi: s.cfg.spi,
                direction: s.cfg.direction,
                mode: s.cfg.mode,
                key_id: s.cfg.key_id,
                fingerprint: s.cfg.key.fingerprint(),
                key_bits: s.cfg.key.bits(),
                esn: s.cfg.esn,
                replay_window: s.cfg.replay_window,
                worker: s.data.owner,
                lifetime: s.cfg.lifetime,
                backend: s.data.cipher.backend(),
                created: s.created,
                retire_at: s.retire_at,
            })
            .collect()
    }

    /// Every protect rule, by id.
    pub fn rules(&self) -> Vec<(u32, ProtectRule)> {
        self.rules.iter().map(|(&i, r)| (i, r.clone())).collect()
    }

    /// Whether there is anything at all (vpgd leaves the nodes' snapshot empty otherwise).
    pub fn is_empty(&self) -> bool {
        self.sas.is_empty() && self.rules.is_empty()
    }

    /// The snapshot for the workers.
    pub fn tables(&self) -> Arc<EspTables> {
        let sas: Vec<Arc<SaData>> = self.sas.values().map(|s| s.data.clone()).collect();
        let index: BTreeMap<u32, u32> = self
            .sas
            .keys()
            .enumerate()
            .map(|(i, &id)| (id, i as u32))
            .collect();
        let spi_in = SpiTable::build(
            sas.iter()
                .enumerate()
                .filter(|(_, s)| s.direction == Direction::Inbound)
                .map(|(i, s)| (s.spi, i as u32)),
        );
        let rules = self
            .rules
            .iter()
            .map(|(&id, r)| RuleData {
                id,
                dst: u32::from(r.dst),
                len: r.len,
                proto: r.proto.unwrap_or(0),
                port: r.port.unwrap_or(0),
                sas: r
                    .sas
                    .iter()
                    .map(|sa| index.get(sa).copied().unwrap_or(NONE))
                    .collect(),
            })
            .collect();
        Arc::new(EspTables {
            sas,
            spi_in,
            rules: RuleTable::new(rules),
            mtu: self.mtu.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> KeyMaterial {
        KeyMaterial::new(vec![b; 20]).unwrap()
    }

    fn out(spi: u32) -> SaConfig {
        SaConfig::transport(spi, Direction::Outbound, key(1), 1)
    }

    #[test]
    fn add_checks_everything_and_changes_nothing_on_refusal() {
        let mut c = EspControl::new(2);
        let now = Time::from_secs(5);
        c.add_sa(
            1,
            SaConfig::transport(0x100, Direction::Inbound, key(1), 1),
            now,
        )
        .unwrap();
        let before = c.sas();
        let tunnel = |src, dst| SaConfig {
            mode: Mode::Tunnel { src, dst },
            ..out(9)
        };
        let bad: Vec<(u32, SaConfig, &str)> = vec![
            (2, out(0), "reserved"),
            (1, out(5), "already exists"),
            (
                2,
                SaConfig::transport(0x100, Direction::Inbound, key(2), 1),
                "spi 0x00000100",
            ),
            (
                2,
                SaConfig {
                    replay_window: MAX_WINDOW + 1,
                    ..out(5)
                },
                "out of range",
            ),
            (
                2,
                SaConfig {
                    worker: Some(2),
                    ..out(5)
                },
                "worker 2 does not exist",
            ),
            (
                2,
                tunnel(Ipv4Addr::UNSPECIFIED, Ipv4Addr::new(1, 1, 1, 1)),
                "unspecified",
            ),
            (
                2,
                tunnel(Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(1, 1, 1, 1)),
                "is the source",
            ),
            (
                2,
                tunnel(Ipv4Addr::new(1, 1, 1, 1), Ipv4Addr::new(224, 1, 1, 1)),
                "multicast",
            ),
            (
                2,
                SaConfig {
                    lifetime: Lifetime {
                        soft: Limits {
                            packets: Some(10),
                            ..Limits::default()
                        },
                        hard: Limits {
                            packets: Some(5),
                            ..Limits::default()
                        },
                    },
                    ..out(5)
                },
                "soft limit above",
            ),
            (
                2,
                SaConfig {
                    lifetime: Lifetime {
                        hard: Limits {
                            seconds: Some(0),
                            ..Limits::default()
                        },
                        ..Lifetime::default()
                    },
                    ..out(5)
                },
                "limit of 0",
            ),
        ];
        for (id, cfg, why) in bad {
            let e = c.add_sa(id, cfg, now).unwrap_err();
            assert!(e.to_string().contains(why), "{e} (wanted {why})");
        }
        assert_eq!(c.sas(), before);
        // An outbound SA may share an inbound one's SPI (the far end chose it).
        c.add_sa(2, out(0x100), now).unwrap();
        let t = c.tables();
        assert_eq!(t.spi_in.get(0x100), 0);
        assert_eq!(t.sas[1].owner, 0, "0x100 % 2");
        assert_eq!(t.sas[1].direction, Direction::Outbound);
    }

    #[test]
    fn rules_check_their_sas_and_sas_in_use_stay() {
        let mut c = EspControl::new(1);
        let now = Time::ZERO;
        c.add_sa(1, out(0x10), now).unwrap();
        c.add_sa(
            2,
            SaConfig::transport(0x20, Direction::Inbound, key(1), 1),
            now,
        )
        .unwrap();
        let r = |sas: Vec<u32>| ProtectRule {
            dst: Ipv4Addr::new(10, 0, 0, 2),
            len: 32,
            proto: Some(17),
            port: Some(4789),
            sas,
        };
        assert_eq!(c.set_rule(7, r(vec![3]), false), Err(EspError::NoSa(3)));
        assert_eq!(
            c.set_rule(7, r(vec![2]), false),
            Err(EspError::NotOutbound(2))
        );
        let host_bits = ProtectRule {
            len: 24,
            ..r(vec![1])
        };
        assert!(matches!(
            c.set_rule(7, host_bits, false),
            Err(EspError::HostBits { .. })
        ));
        c.set_rule(7, r(vec![1]), false).unwrap();
        assert_eq!(
            c.set_rule(7, r(vec![]), false),
            Err(EspError::RuleExists(7))
        );
        assert_eq!(c.del_sa(1), Err(EspError::InUse { sa: 1, rule: 7 }));
        c.set_rule(7, r(vec![]), true).unwrap();
        c.del_sa(1).unwrap();
        assert_eq!(c.del_sa(1), Err(EspError::NoSa(1)));
        let t = c.tables();
        assert_eq!(t.rules.rules[0].sas.len(), 0);
        assert_eq!(c.del_rule(7).unwrap().sas, Vec::<u32>::new());
        assert_eq!(c.del_rule(7), Err(EspError::NoRule(7)));
    }

    #[test]
    fn retire_keeps_the_generation_and_sets_a_deadline() {
        let mut c = EspControl::new(1);
        let hard = Lifetime {
            hard: Limits {
                seconds: Some(100),
                ..Limits::default()
            },
            ..Lifetime::default()
        };
        c.add_sa(
            1,
            SaConfig {
                lifetime: hard,
                ..out(0x10)
            },
            Time::from_secs(10),
        )
        .unwrap();
        let before = c.tables().sas[0].clone();
        assert_eq!(before.hard_deadline, Time::from_secs(110));
        c.retire_sa(1, Duration::from_secs(30), Time::from_secs(20))
            .unwrap();
        let after = c.tables().sas[0].clone();
        assert_eq!(after.gen, before.gen);
        assert_eq!(after.hard_deadline, Time::from_secs(50));
        assert!(Arc::ptr_eq(&after.shared, &before.shared));
        assert!(after.usable(Time::from_secs(49)) && !after.usable(Time::from_secs(50)));
        // A later retirement never extends an earlier one.
        c.retire_sa(1, Duration::from_secs(300), Time::from_secs(21))
            .unwrap();
        assert_eq!(c.tables().sas[0].hard_deadline, Time::from_secs(50));
        assert_eq!(
            c.retire_sa(9, Duration::ZERO, Time::ZERO),
            Err(EspError::NoSa(9))
        );
        // Dumps never carry the key.
        let e = &c.sas()[0];
        assert_eq!(e.fingerprint, key(1).fingerprint());
        assert!(!format!("{e:?}").contains("[1, 1, 1"));
    }
}
