//! NAT44 control state: the address pool, interface roles, static, load-balanced and identity
//! mappings, never-NAT prefixes, timeouts and limits. Every change is validated whole before
//! it is applied (a refused change leaves the state as it was), and [`Nat44Control::tables`]
//! builds the immutable snapshot the workers use.

use crate::session::Timeouts;
use crate::tables::Nat44Tables;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::ArcId;

/// A pool entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PoolEntry {
    /// A fixed address.
    Address(Ipv4Addr),
    /// Whatever address the interface has (followed when it changes).
    Interface(u32),
}

/// Where a static mapping sends traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Address.
    pub addr: Ipv4Addr,
    /// Port (0 for an address-only mapping).
    pub port: u16,
    /// Share of new connections, relative to the other endpoints (at least 1).
    pub weight: u32,
}

/// A static mapping: 1:1 address, address and port, or load-balanced (a service).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticMapping {
    /// External address (a service VIP, a node address for a NodePort).
    pub external: Ipv4Addr,
    /// Protocol; `None` maps the whole address.
    pub proto: Option<u8>,
    /// External port (0 for an address-only mapping).
    pub external_port: u16,
    /// Local endpoints: one for a 1:1 mapping, several for load balancing.
    pub locals: Vec<Endpoint>,
    /// Only connections towards the external side are translated; a local endpoint's own
    /// connections are not (required for more than one endpoint).
    pub out2in_only: bool,
    /// Free text for operators (the service it came from).
    pub tag: String,
}

impl StaticMapping {
    /// The key mappings are told apart by.
    pub fn key(&self) -> MappingKey {
        MappingKey {
            external: self.external,
            proto: self.proto,
            port: self.external_port,
        }
    }
}

/// A mapping's identity: external address, protocol and port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MappingKey {
    /// External address.
    pub external: Ipv4Addr,
    /// Protocol (`None`: address only).
    pub proto: Option<u8>,
    /// External port.
    pub port: u16,
}

/// Traffic never translated: an address, optionally one protocol and port (node address with
/// UDP 4789 for VXLAN, protocol 50 for ESP).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct IdentityMapping {
    /// Address.
    pub addr: Ipv4Addr,
    /// Protocol (`None`: every protocol).
    pub proto: Option<u8>,
    /// Port (0: every port).
    pub port: u16,
    /// Free text for operators.
    pub tag: String,
}

/// An interface's NAT role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// Inside: its traffic may be SNATed when it leaves through an outside interface, and
    /// service mappings apply to what it sends.
    pub inside: bool,
    /// Outside (output-feature mode): SNAT after routing on output, return traffic and
    /// mappings on input.
    pub outside: bool,
}

/// Limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Sessions per worker.
    pub sessions_per_worker: usize,
    /// SNAT sessions per inside address and worker (0: only the worker limit).
    pub sessions_per_address: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            sessions_per_worker: 131_072,
            sessions_per_address: 0,
        }
    }
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Nat44Error {
    /// The address is in the pool already.
    #[error("{0:?} is already in the address pool")]
    PoolDuplicate(PoolEntry),
    /// Not in the pool.
    #[error("{0:?} is not in the address pool")]
    PoolMissing(PoolEntry),
    /// No such interface.
    #[error("interface {0} does not exist")]
    UnknownInterface(u32),
    /// A bad port range.
    #[error("port range {lo}-{hi} is invalid: {why}")]
    PortRange {
        /// First port.
        lo: u16,
        /// Last port.
        hi: u16,
        /// Why.
        why: &'static str,
    },
    /// A malformed mapping.
    #[error("mapping {key}: {why}")]
    BadMapping {
        /// Which.
        key: String,
        /// Why.
        why: String,
    },
    /// Two mappings overlap.
    #[error("mapping {new} overlaps mapping {old}")]
    Overlap {
        /// The one refused.
        new: String,
        /// The one in place.
        old: String,
    },
    /// No such mapping.
    #[error("no mapping {0}")]
    NoMapping(String),
    /// No such identity mapping.
    #[error("no identity mapping {0}")]
    NoIdentity(String),
    /// A bad prefix.
    #[error("never-NAT prefix {0}: host bits set or length over 32")]
    BadPrefix(String),
    /// A bad limit or timeout.
    #[error("{0}")]
    BadSetting(&'static str),
}

fn show_key(k: &MappingKey) -> String {
    match k.proto {
        None => format!("{}", k.external),
        Some(p) => format!("{}:{} proto {}", k.external, k.port, p),
    }
}

/// The NAT44 control state.
#[derive(Clone, Debug)]
pub struct Nat44Control {
    workers: usize,
    pool: Vec<PoolEntry>,
    port_range: (u16, u16),
    interfaces: BTreeMap<u32, Role>,
    mappings: BTreeMap<MappingKey, StaticMapping>,
    identities: Vec<IdentityMapping>,
    never_nat: Vec<(Ipv4Addr, u8)>,
    loopback: Option<Ipv4Addr>,
    timeouts: Timeouts,
    limits: Limits,
}

/// The default port range for dynamic translations.
pub const DEFAULT_PORT_RANGE: (u16, u16) = (1024, 65535);

impl Nat44Control {
    /// Empty state for `workers` workers.
    pub fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            pool: Vec::new(),
            port_range: DEFAULT_PORT_RANGE,
            interfaces: BTreeMap::new(),
            mappings: BTreeMap::new(),
            identities: Vec::new(),
            never_nat: Vec::new(),
            loopback: None,
            timeouts: Timeouts::default(),
            limits: Limits::default(),
        }
    }

    /// Workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// Adds a pool entry.
    pub fn add_pool(
        &mut self,
        e: PoolEntry,
        known: impl Fn(u32) -> bool,
    ) -> Result<(), Nat44Error> {
        if let PoolEntry::Interface(i) = e {
            if !known(i) {
                return Err(Nat44Error::UnknownInterface(i));
            }
        }
        if self.pool.contains(&e) {
            return Err(Nat44Error::PoolDuplicate(e));
        }
        self.pool.push(e);
        Ok(())
    }

    /// Removes a pool entry (its sessions go with it).
    pub fn del_pool(&mut self, e: PoolEntry) -> Result<(), Nat44Error> {
        let n = self.pool.len();
        self.pool.retain(|x| *x != e);
        if self.pool.len() == n {
            return Err(Nat44Error::PoolMissing(e));
        }
        Ok(())
    }

    /// The pool entries.
    pub fn pool(&self) -> &[PoolEntry] {
        &self.pool
    }

    /// Sets the port range for dynamic translations.
    pub fn set_port_range(&mut self, lo: u16, hi: u16) -> Result<(), Nat44Error> {
        let bad = |why| Err(Nat44Error::PortRange { lo, hi, why });
        if lo == 0 || lo > hi {
            return bad("the first port must be at least 1 and at most the last");
        }
        if ((hi - lo) as usize + 1) < self.workers {
            return bad("fewer ports than workers");
        }
        self.port_range = (lo, hi);
        Ok(())
    }

    /// The port range.
    pub fn port_range(&self) -> (u16, u16) {
        self.port_range
    }

    /// Sets an interface's role (both false: NAT off on it).
    pub fn set_interface(
        &mut self,
        sw_if: u32,
        role: Role,
        known: impl Fn(u32) -> bool,
    ) -> Result<(), Nat44Error> {
        if !known(sw_if) {
            return Err(Nat44Error::UnknownInterface(sw_if));
        }
        if role == Role::default() {
            self.interfaces.remove(&sw_if);
        } else {
            self.interfaces.insert(sw_if, role);
        }
        Ok(())
    }

    /// Forgets an interface (it was deleted): its role and pool entry go.
    pub fn del_interface(&mut self, sw_if: u32) {
        self.interfaces.remove(&sw_if);
        self.pool.retain(|e| *e != PoolEntry::Interface(sw_if));
    }

    /// Interface roles.
    pub fn interfaces(&self) -> impl Iterator<Item = (u32, Role)> + '_ {
        self.interfaces.iter().map(|(&i, &r)| (i, r))
    }

    /// The features `role` needs, each as (arc, node, on).
    pub fn features_for(&self, role: Role) -> Vec<(ArcId, &'static str, bool)> {
        let multi = self.workers > 1;
        let input = role.inside || role.outside;
        vec![
            (ArcId::Ip4Unicast, crate::OUT2IN_HANDOFF, input && multi),
            (ArcId::Ip4Unicast, crate::OUT2IN, input),
            (
                ArcId::Ip4Output,
                crate::IN2OUT_HANDOFF,
                role.outside && multi,
            ),
            (ArcId::Ip4Output, crate::IN2OUT, role.outside),
        ]
    }

    /// Checks a mapping on its own and against the others (except the one it replaces).
    fn check_mapping(&self, m: &StaticMapping) -> Result<(), Nat44Error> {
        let key = show_key(&m.key());
        let bad = |why: &str| {
            Err(Nat44Error::BadMapping {
                key: key.clone(),
                why: why.into(),
            })
        };
        match m.proto {
            None => {
                if m.external_port != 0 || m.locals.iter().any(|l| l.port != 0) {
                    return bad("an address-only mapping has no ports");
                }
                if m.locals.len() != 1 {
                    return bad("an address-only mapping has exactly one local address");
                }
            }
            Some(p) => {
                if p != crate::flow::proto::TCP && p != crate::flow::proto::UDP {
                    return bad("port mappings are for TCP or UDP");
                }
                if m.external_port == 0 || m.locals.iter().any(|l| l.port == 0) {
                    return bad("port 0 in a port mapping");
                }
            }
        }
        if m.locals.is_empty() {
            return bad("no local endpoint");
        }
        if m.locals.iter().any(|l| l.weight == 0) {
            return bad("an endpoint has weight 0");
        }
        if m.locals.iter().any(|l| l.weight > 1_000_000) {
            return bad("an endpoint weight over 1000000");
        }
        for (k, l) in m.locals.iter().enumerate() {
            if m.locals[..k]
                .iter()
                .any(|x| x.addr == l.addr && x.port == l.port)
            {
                return bad("an endpoint is listed twice");
            }
            if l.addr.is_unspecified() || l.addr.is_broadcast() || l.addr.is_multicast() {
                return bad("an endpoint address is not a unicast address");
            }
        }
        if m.external.is_unspecified() || m.external.is_broadcast() || m.external.is_multicast() {
            return bad("the external address is not a unicast address");
        }
        if m.locals.len() > 1 && !m.out2in_only {
            return bad("a load-balanced mapping must be out2in-only");
        }
        let my = m.key();
        for (k, o) in &self.mappings {
            if *k == my {
                continue;
            }
            let same_addr = o.external == m.external;
            let clash = same_addr
                && (o.proto.is_none()
                    || m.proto.is_none()
                    || (o.proto == m.proto && o.external_port == m.external_port));
            // Two mappings that translate a local endpoint's own traffic must not claim it
            // twice.
            let local_clash = !m.out2in_only
                && !o.out2in_only
                && m.locals.iter().any(|l| {
                    o.locals.iter().any(|x| {
                        x.addr == l.addr
                            && (m.proto.is_none()
                                || o.proto.is_none()
                                || (o.proto == m.proto && x.port == l.port))
                    })
                });
            if clash || local_clash {
                return Err(Nat44Error::Overlap {
                    new: key,
                    old: show_key(k),
                });
            }
        }
        if m.proto.is_none() {
            if let Some(e) = self
                .pool
                .iter()
                .find(|e| **e == PoolEntry::Address(m.external))
            {
                return Err(Nat44Error::Overlap {
                    new: key,
                    old: format!("pool address {e:?}"),
                });
            }
        }
        Ok(())
    }

    /// Adds or replaces (same external address, protocol and port) a static mapping.
    pub fn add_mapping(&mut self, m: StaticMapping) -> Result<(), Nat44Error> {
        self.check_mapping(&m)?;
        self.mappings.insert(m.key(), m);
        Ok(())
    }

    /// Deletes a static mapping.
    pub fn del_mapping(&mut self, k: &MappingKey) -> Result<(), Nat44Error> {
        self.mappings
            .remove(k)
            .map(|_| ())
            .ok_or_else(|| Nat44Error::NoMapping(show_key(k)))
    }

    /// The static mappings.
    pub fn mappings(&self) -> impl Iterator<Item = &StaticMapping> {
        self.mappings.values()
    }

    /// Adds an identity mapping (adding one that exists changes only its tag).
    pub fn add_identity(&mut self, m: IdentityMapping) -> Result<(), Nat44Error> {
        if m.port != 0 && !matches!(m.proto, Some(6) | Some(17)) {
            return Err(Nat44Error::BadMapping {
                key: format!("identity {}", m.addr),
                why: "a port needs protocol TCP or UDP".into(),
            });
        }
        self.identities
            .retain(|x| (x.addr, x.proto, x.port) != (m.addr, m.proto, m.port));
        self.identities.push(m);
        self.identities.sort();
        Ok(())
    }

    /// Deletes an identity mapping.
    pub fn del_identity(
        &mut self,
        addr: Ipv4Addr,
        proto: Option<u8>,
        port: u16,
    ) -> Result<(), Nat44Error> {
        let n = self.identities.len();
        self.identities
            .retain(|x| (x.addr, x.proto, x.port) != (addr, proto, port));
        if n == self.identities.len() {
            return Err(Nat44Error::NoIdentity(format!(
                "{addr} proto {proto:?} port {port}"
            )));
        }
        Ok(())
    }

    /// The identity mappings.
    pub fn identities(&self) -> &[IdentityMapping] {
        &self.identities
    }

    /// Replaces the never-NAT destination prefixes.
    pub fn set_never_nat(&mut self, prefixes: Vec<(Ipv4Addr, u8)>) -> Result<(), Nat44Error> {
        for &(a, len) in &prefixes {
            let host = if len >= 32 { 0 } else { u32::MAX >> len };
            if len > 32 || a.to_bits() & host != 0 {
                return Err(Nat44Error::BadPrefix(format!("{a}/{len}")));
            }
        }
        let mut p = prefixes;
        p.sort();
        p.dedup();
        self.never_nat = p;
        Ok(())
    }

    /// Never-NAT destination prefixes.
    pub fn never_nat(&self) -> &[(Ipv4Addr, u8)] {
        &self.never_nat
    }

    /// Sets the NAT loopback address (the source a pod sees when a service sends it its own
    /// connection; default: the service's external address).
    pub fn set_loopback(&mut self, a: Option<Ipv4Addr>) {
        self.loopback = a;
    }

    /// The NAT loopback address.
    pub fn loopback(&self) -> Option<Ipv4Addr> {
        self.loopback
    }

    /// Sets the timeouts (each at least one second).
    pub fn set_timeouts(&mut self, t: Timeouts) -> Result<(), Nat44Error> {
        if [t.udp, t.tcp_established, t.tcp_transitory, t.icmp]
            .iter()
            .any(|d| d.as_secs() == 0)
        {
            return Err(Nat44Error::BadSetting("timeouts must be at least 1 s"));
        }
        self.timeouts = t;
        Ok(())
    }

    /// Timeouts.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// Sets the limits.
    pub fn set_limits(&mut self, l: Limits) -> Result<(), Nat44Error> {
        // The message names the bound: keep the two in step.
        const _: () = assert!(crate::session::MAX_SESSIONS == 4_194_304);
        if l.sessions_per_worker == 0 || l.sessions_per_worker > crate::session::MAX_SESSIONS {
            return Err(Nat44Error::BadSetting(
                "sessions per worker must be 1 to 4194304",
            ));
        }
        self.limits = l;
        Ok(())
    }

    /// Limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The snapshot for the workers; `addr_of` gives an interface's first address (pool
    /// entries that follow an interface).
    pub fn tables(&self, addr_of: &dyn Fn(u32) -> Option<Ipv4Addr>) -> Arc<Nat44Tables> {
        let mut pool: Vec<u32> = self
            .pool
            .iter()
            .filter_map(|e| match *e {
                PoolEntry::Address(a) => Some(a.to_bits()),
                PoolEntry::Interface(i) => addr_of(i).map(Ipv4Addr::to_bits),
            })
            .collect();
        pool.sort_unstable();
        pool.dedup();
        Arc::new(Nat44Tables::build(
            pool,
            self.port_range,
            self.workers,
            &self.interfaces,
            self.mappings.values(),
            &self.identities,
            &self.never_nat,
            self.loopback,
            self.timeouts,
            self.limits,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(a: &str, port: u16, weight: u32) -> Endpoint {
        Endpoint {
            addr: a.parse().unwrap(),
            port,
            weight,
        }
    }

    fn svc(vip: &str, port: u16, locals: Vec<Endpoint>) -> StaticMapping {
        StaticMapping {
            external: vip.parse().unwrap(),
            proto: Some(6),
            external_port: port,
            locals,
            out2in_only: true,
            tag: "svc".into(),
        }
    }

    #[test]
    fn bad_mappings_are_refused_whole() {
        let mut c = Nat44Control::new(1);
        c.add_mapping(svc("10.96.0.10", 80, vec![ep("10.1.1.2", 8080, 1)]))
            .unwrap();
        let before = c.clone().mappings().cloned().collect::<Vec<_>>();
        let e = c
            .add_mapping(svc("10.96.0.11", 80, vec![ep("10.1.1.2", 8080, 0)]))
            .unwrap_err();
        assert!(e.to_string().contains("weight 0"), "{e}");
        let mut m = svc("10.96.0.10", 0, vec![ep("10.1.1.2", 8080, 1)]);
        assert!(c.add_mapping(m.clone()).is_err(), "port 0");
        m.proto = None;
        m.external_port = 0;
        m.locals[0].port = 0;
        let e = c.add_mapping(m).unwrap_err();
        assert!(matches!(e, Nat44Error::Overlap { .. }), "{e}");
        let mut two = svc(
            "10.96.0.12",
            80,
            vec![ep("10.1.1.2", 80, 1), ep("10.1.1.3", 80, 1)],
        );
        two.out2in_only = false;
        assert!(c.add_mapping(two).is_err(), "LB must be out2in-only");
        assert!(c
            .add_mapping(svc(
                "10.96.0.13",
                80,
                vec![ep("10.1.1.2", 80, 1), ep("10.1.1.2", 80, 2)]
            ))
            .is_err());
        assert_eq!(c.mappings().cloned().collect::<Vec<_>>(), before);
    }

    #[test]
    fn pool_interfaces_ranges_and_prefixes() {
        let mut c = Nat44Control::new(2);
        let known = |i| i < 3;
        c.add_pool(PoolEntry::Interface(1), known).unwrap();
        assert_eq!(
            c.add_pool(PoolEntry::Interface(1), known),
            Err(Nat44Error::PoolDuplicate(PoolEntry::Interface(1)))
        );
        assert_eq!(
            c.add_pool(PoolEntry::Interface(9), known),
            Err(Nat44Error::UnknownInterface(9))
        );
        assert!(c.set_port_range(2000, 1999).is_err());
        assert!(
            c.set_port_range(2000, 2000).is_err(),
            "fewer ports than workers"
        );
        c.set_port_range(2000, 2001).unwrap();
        assert!(c
            .set_never_nat(vec![("10.1.0.1".parse().unwrap(), 16)])
            .is_err());
        c.set_never_nat(vec![("10.1.0.0".parse().unwrap(), 16)])
            .unwrap();
        let t = c.tables(&|i| (i == 1).then(|| "192.0.2.1".parse().unwrap()));
        assert_eq!(t.pool, vec![u32::from_be_bytes([192, 0, 2, 1])]);
        assert!(t.never_nat(u32::from_be_bytes([10, 1, 200, 3])));
        assert!(!t.never_nat(u32::from_be_bytes([10, 2, 0, 3])));
        let out = c.features_for(Role {
            inside: false,
            outside: true,
        });
        assert!(out.iter().all(|f| f.2), "two workers: handoff too");
    }
}
