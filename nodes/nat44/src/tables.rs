//! The immutable NAT44 snapshot the workers read: pool, port slices, interface roles, mappings
//! indexed by external and by local endpoint, identity mappings, never-NAT prefixes, timeouts
//! and limits. Lookups hash with a multiply hash (no SipHash on the packet path).

use crate::control::{IdentityMapping, Limits, MappingKey, Role, StaticMapping};
use crate::flow::Flow;
use crate::ports::PortSlices;
use crate::session::{Kind, Session, Timeouts};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::net::Ipv4Addr;

/// A multiply-rotate hasher for small integer keys.
#[derive(Default, Clone, Copy)]
pub struct FastHasher(u64);

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(v as u64)
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(v as u64)
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64)
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;
type FastSet<K> = HashSet<K, BuildHasherDefault<FastHasher>>;

/// A mapping with its load-balancing table.
#[derive(Clone, Debug)]
pub struct MappingEntry {
    /// The mapping.
    pub m: StaticMapping,
    /// Running sums of the endpoints' weights.
    cumulative: Vec<u32>,
}

impl MappingEntry {
    /// The endpoint for a new connection with flow hash `h` (weighted; the session then sticks
    /// to it).
    #[inline]
    pub fn choose(&self, h: u64) -> (u32, u16) {
        let total = self.cumulative.last().copied().unwrap_or(1).max(1);
        let x = (h % total as u64) as u32;
        let k = self.cumulative.partition_point(|&c| c <= x);
        let l = &self.m.locals[k.min(self.m.locals.len() - 1)];
        (l.addr.to_bits(), l.port)
    }

    /// Whether `(addr, port)` is one of its endpoints.
    pub fn has_local(&self, addr: u32, port: u16) -> bool {
        self.m
            .locals
            .iter()
            .any(|l| l.addr.to_bits() == addr && (self.m.proto.is_none() || l.port == port))
    }
}

type Key3 = (u32, u16, u8);

/// The snapshot.
#[derive(Debug)]
pub struct Nat44Tables {
    /// Changes whenever the pool, the port range or a mapping changes (workers then drop the
    /// sessions that lost their address or mapping).
    pub generation: u64,
    /// Pool addresses (sorted).
    pub pool: Vec<u32>,
    /// Port slices per worker.
    pub slices: PortSlices,
    inside: Vec<bool>,
    outside: Vec<bool>,
    mappings: Vec<MappingEntry>,
    by_external: FastMap<Key3, u32>,
    by_local: FastMap<Key3, u32>,
    endpoints: FastSet<Key3>,
    nat_addrs: FastSet<u32>,
    local_addrs: FastSet<u32>,
    identities: FastSet<Key3>,
    never_nat: Vec<(u32, u32)>,
    loopback: Option<u32>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Limits.
    pub limits: Limits,
}

impl Default for Nat44Tables {
    fn default() -> Self {
        Nat44Tables::build(
            Vec::new(),
            crate::control::DEFAULT_PORT_RANGE,
            1,
            &BTreeMap::new(),
            std::iter::empty(),
            &[],
            &[],
            None,
            Timeouts::default(),
            Limits::default(),
        )
    }
}

/// A stable hash of what decides which sessions stay valid.
fn generation_of(pool: &[u32], range: (u16, u16), workers: usize, maps: &[MappingEntry]) -> u64 {
    let mut h = FastHasher(0x1234_5678);
    for &a in pool {
        h.write_u32(a);
    }
    h.write_u16(range.0);
    h.write_u16(range.1);
    h.write_u64(workers as u64);
    for e in maps {
        let m = &e.m;
        h.write_u32(m.external.to_bits());
        h.write_u16(m.external_port);
        h.write_u8(m.proto.unwrap_or(0));
        h.write_u8(m.out2in_only as u8);
        for l in &m.locals {
            h.write_u32(l.addr.to_bits());
            h.write_u16(l.port);
        }
    }
    h.finish()
}

impl Nat44Tables {
    /// Builds the snapshot (the control state validated everything).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn build<'a>(
        pool: Vec<u32>,
        port_range: (u16, u16),
        workers: usize,
        interfaces: &BTreeMap<u32, Role>,
        mappings: impl Iterator<Item = &'a StaticMapping>,
        identities: &[IdentityMapping],
        never_nat: &[(Ipv4Addr, u8)],
        loopback: Option<Ipv4Addr>,
        timeouts: Timeouts,
        limits: Limits,
    ) -> Self {
        let n_if = interfaces.keys().next_back().map_or(0, |&i| i as usize + 1);
        let mut inside = vec![false; n_if];
        let mut outside = vec![false; n_if];
        for (&i, r) in interfaces {
            inside[i as usize] = r.inside;
            outside[i as usize] = r.outside;
        }
        let mut t = Nat44Tables {
            generation: 0,
            slices: PortSlices::new(port_range.0, port_range.1, workers),
            inside,
            outside,
            mappings: Vec::new(),
            by_external: FastMap::default(),
            by_local: FastMap::default(),
            endpoints: FastSet::default(),
            nat_addrs: pool.iter().copied().collect(),
            local_addrs: FastSet::default(),
            identities: identities
                .iter()
                .map(|m| (m.addr.to_bits(), m.port, m.proto.unwrap_or(0)))
                .collect(),
            never_nat: never_nat
                .iter()
                .map(|&(a, len)| {
                    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                    (a.to_bits(), mask)
                })
                .collect(),
            loopback: loopback.map(Ipv4Addr::to_bits),
            pool,
            timeouts,
            limits,
        };
        if let Some(l) = t.loopback {
            t.nat_addrs.insert(l);
        }
        for m in mappings {
            let idx = t.mappings.len() as u32;
            let proto = m.proto.unwrap_or(0);
            t.by_external
                .insert((m.external.to_bits(), m.external_port, proto), idx);
            t.nat_addrs.insert(m.external.to_bits());
            for l in &m.locals {
                t.local_addrs.insert(l.addr.to_bits());
                t.endpoints.insert((l.addr.to_bits(), l.port, proto));
                if !m.out2in_only {
                    t.by_local.insert((l.addr.to_bits(), l.port, proto), idx);
                }
            }
            let mut sum = 0;
            let cumulative = m
                .locals
                .iter()
                .map(|l| {
                    sum += l.weight;
                    sum
                })
                .collect();
            t.mappings.push(MappingEntry {
                m: m.clone(),
                cumulative,
            });
        }
        t.generation = generation_of(&t.pool, port_range, workers, &t.mappings);
        t
    }

    /// Whether `sw_if` is an inside interface.
    #[inline]
    pub fn is_inside(&self, sw_if: u32) -> bool {
        self.inside.get(sw_if as usize).copied().unwrap_or(false)
    }

    /// Whether `sw_if` is an outside interface.
    #[inline]
    pub fn is_outside(&self, sw_if: u32) -> bool {
        self.outside.get(sw_if as usize).copied().unwrap_or(false)
    }

    /// Whether `a` is a pool, external or loopback address (return traffic and mappings go
    /// there).
    #[inline]
    pub fn is_nat_addr(&self, a: u32) -> bool {
        !self.nat_addrs.is_empty() && self.nat_addrs.contains(&a)
    }

    /// Whether `a` is a local endpoint of some mapping (its replies may need translating back).
    #[inline]
    pub fn is_local_addr(&self, a: u32) -> bool {
        !self.local_addrs.is_empty() && self.local_addrs.contains(&a)
    }

    /// Whether `a` is a pool address.
    #[inline]
    pub fn in_pool(&self, a: u32) -> bool {
        self.pool.binary_search(&a).is_ok()
    }

    /// The mapping whose external side is `f`'s destination.
    #[inline]
    pub fn by_external(&self, f: &Flow) -> Option<(u32, &MappingEntry)> {
        let i = self
            .by_external
            .get(&(f.dst, f.dport, f.proto))
            .or_else(|| self.by_external.get(&(f.dst, 0, 0)))?;
        Some((*i, self.mappings.get(*i as usize)?))
    }

    /// The two-way mapping whose local side is `f`'s source.
    #[inline]
    pub fn by_local(&self, f: &Flow) -> Option<(u32, &MappingEntry)> {
        if self.by_local.is_empty() {
            return None;
        }
        let i = self
            .by_local
            .get(&(f.src, f.sport, f.proto))
            .or_else(|| self.by_local.get(&(f.src, 0, 0)))?;
        Some((*i, self.mappings.get(*i as usize)?))
    }

    /// Mapping `i`.
    pub fn mapping(&self, i: u32) -> Option<&MappingEntry> {
        self.mappings.get(i as usize)
    }

    /// Every mapping.
    pub fn mappings(&self) -> &[MappingEntry] {
        &self.mappings
    }

    /// Whether `(addr, port, proto)` is a mapping's local endpoint (where service replies
    /// come from).
    #[inline]
    pub fn is_endpoint(&self, addr: u32, port: u16, proto: u8) -> bool {
        self.endpoints.contains(&(addr, port, proto)) || self.endpoints.contains(&(addr, 0, 0))
    }

    /// Whether traffic of `addr`/`port`/`proto` is never translated.
    #[inline]
    pub fn identity(&self, addr: u32, port: u16, proto: u8) -> bool {
        !self.identities.is_empty()
            && (self.identities.contains(&(addr, 0, 0))
                || self.identities.contains(&(addr, 0, proto))
                || self.identities.contains(&(addr, port, proto)))
    }

    /// Whether `dst` is in a never-NAT prefix.
    #[inline]
    pub fn never_nat(&self, dst: u32) -> bool {
        self.never_nat.iter().any(|&(net, mask)| dst & mask == net)
    }

    /// Whether the pool may not hand out `port` of `addr` (a mapping or identity owns it).
    #[inline]
    pub fn reserved(&self, addr: u32, port: u16, proto: u8) -> bool {
        self.by_external.contains_key(&(addr, port, proto)) || self.identity(addr, port, proto)
    }

    /// The source a service's connection from its own endpoint gets.
    #[inline]
    pub fn loopback_for(&self, m: &MappingEntry) -> u32 {
        self.loopback.unwrap_or(m.m.external.to_bits())
    }

    /// Whether session `x` survives this configuration (its address or mapping still exists).
    pub fn session_valid(&self, x: &Session) -> bool {
        match x.kind {
            Kind::Free => true,
            Kind::Dynamic => self.in_pool(x.o.src),
            Kind::Static => self
                .by_local(&x.i)
                .is_some_and(|(_, m)| m.m.external.to_bits() == x.o.src),
            Kind::Dnat | Kind::Loopback => self
                .by_external(&x.i)
                .is_some_and(|(_, m)| m.has_local(x.o.dst, x.o.dport)),
        }
    }

    /// The worker that owns the session of a packet with flow `f` arriving on input
    /// (`nat44-out2in`), or `None` when no session can concern it.
    #[inline]
    pub fn owner_out2in(&self, f: &Flow, workers: usize) -> Option<usize> {
        if self.in_pool(f.dst) && f.has_ports() {
            // Return traffic of dynamic SNAT: the port names the owner.
            return self.slices.owner(f.dport).or(Some(0));
        }
        if self.by_external(f).is_some() {
            return Some(flow_owner(f.src, f.sport, workers));
        }
        if self.is_endpoint(f.src, f.sport, f.proto) || self.loopback == Some(f.dst) {
            return Some(flow_owner(f.dst, f.dport, workers));
        }
        None
    }

    /// The worker that owns the session of a packet with flow `f` leaving through an outside
    /// interface (`nat44-in2out`): `this` for dynamic SNAT (its port slice names it), else the
    /// remote endpoint's worker.
    #[inline]
    pub fn owner_in2out(&self, f: &Flow, this: usize, workers: usize) -> usize {
        if self.by_local(f).is_some() {
            flow_owner(f.dst, f.dport, workers)
        } else {
            this
        }
    }
}

/// The worker for sessions keyed by an endpoint both directions share (the remote side of a
/// static SNAT, the client of a service): a hash of it.
#[inline]
pub fn flow_owner(addr: u32, port: u16, workers: usize) -> usize {
    let h = ((addr as u64) << 16 | port as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    ((h >> 32) % workers.max(1) as u64) as usize
}

/// A key for dumps: a mapping's key from its entry.
pub fn key_of(e: &MappingEntry) -> MappingKey {
    e.m.key()
}
