//! vpgd's NAT44 family: API items to operations, applying them to the NAT44 control state (and
//! the NAT features of the interfaces), refusals as API errors, and the NAT44 dumps. Sessions
//! live on the workers, so their dump, clear and summary run on each worker between frames.

use crate::dataplane::DataPlane;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::Duration;
use vpg_api::nat44::{
    Nat44AddressDetails, Nat44Counter, Nat44Flow, Nat44Identity, Nat44InterfaceDetails, Nat44Local,
    Nat44Mapping, Nat44MappingDetails, Nat44PoolEntry, Nat44SessionDetails, Nat44SessionFilter,
    Nat44Settings, Nat44SummaryDetails, Nat44Timeouts, Nat44WorkerSummary,
};
use vpg_api::{ApiError, ConfigItem, ErrorCode, Prefix};
use vpg_graph::{FeatureConfig, Layout};
use vpg_nat44::{
    Endpoint, Flow, IdentityMapping, Kind, Limits, MappingKey, Nat44Control, Nat44Error, PoolEntry,
    Role, Session, SessionTable, StaticMapping, Timeouts,
};

/// One NAT44 change.
#[derive(Clone, Debug, PartialEq)]
pub enum NatOp {
    /// Add a pool entry.
    AddPool(PoolEntry),
    /// Remove a pool entry.
    DelPool(PoolEntry),
    /// Set an interface's role.
    SetInterface(u32, Role),
    /// Add or replace a mapping.
    AddMapping(StaticMapping),
    /// Delete a mapping.
    DelMapping(MappingKey),
    /// Add an identity mapping.
    AddIdentity(IdentityMapping),
    /// Delete an identity mapping.
    DelIdentity(IdentityMapping),
    /// Settings.
    Settings(Nat44Settings),
}

fn pool_entry(e: &Nat44PoolEntry) -> PoolEntry {
    match (e.address, e.sw_if) {
        (Some(a), _) => PoolEntry::Address(a),
        (None, Some(i)) => PoolEntry::Interface(i),
        // validate() refused this already.
        (None, None) => PoolEntry::Address(Ipv4Addr::UNSPECIFIED),
    }
}

fn mapping_in(m: Nat44Mapping) -> StaticMapping {
    StaticMapping {
        external: m.external,
        proto: m.proto,
        external_port: m.external_port,
        out2in_only: m.out2in_only.unwrap_or(m.locals.len() > 1),
        locals: m
            .locals
            .into_iter()
            .map(|l| Endpoint {
                addr: l.address,
                port: l.port,
                weight: l.weight,
            })
            .collect(),
        tag: m.tag,
    }
}

fn mapping_out(m: &StaticMapping) -> Nat44Mapping {
    Nat44Mapping {
        external: m.external,
        proto: m.proto,
        external_port: m.external_port,
        locals: m
            .locals
            .iter()
            .map(|l| Nat44Local {
                address: l.addr,
                port: l.port,
                weight: l.weight,
            })
            .collect(),
        out2in_only: Some(m.out2in_only),
        tag: m.tag.clone(),
    }
}

fn identity_in(m: Nat44Identity) -> IdentityMapping {
    IdentityMapping {
        addr: m.address,
        proto: m.proto,
        port: m.port,
        tag: m.tag,
    }
}

/// The NAT44 operation of a NAT44 item (`None` for other items).
pub fn to_op(item: ConfigItem) -> Option<NatOp> {
    Some(match item {
        ConfigItem::Nat44AddPool(e) => NatOp::AddPool(pool_entry(&e)),
        ConfigItem::Nat44DelPool(e) => NatOp::DelPool(pool_entry(&e)),
        ConfigItem::Nat44SetInterface {
            sw_if,
            inside,
            outside,
        } => NatOp::SetInterface(sw_if, Role { inside, outside }),
        ConfigItem::Nat44AddMapping(m) => NatOp::AddMapping(mapping_in(m)),
        ConfigItem::Nat44DelMapping(k) => NatOp::DelMapping(MappingKey {
            external: k.external,
            proto: k.proto,
            port: k.external_port,
        }),
        ConfigItem::Nat44AddIdentity(m) => NatOp::AddIdentity(identity_in(m)),
        ConfigItem::Nat44DelIdentity(m) => NatOp::DelIdentity(identity_in(m)),
        ConfigItem::Nat44Settings(s) => NatOp::Settings(s),
        _ => return None,
    })
}

/// Applies `op` to the NAT44 state and the features (on the transaction's copy).
pub fn apply(
    nat: &mut Nat44Control,
    features: &mut FeatureConfig,
    layout: &Layout,
    known_interface: impl Fn(u32) -> bool,
    op: NatOp,
) -> Result<(), Nat44Error> {
    match op {
        NatOp::AddPool(e) => nat.add_pool(e, known_interface)?,
        NatOp::DelPool(e) => nat.del_pool(e)?,
        NatOp::SetInterface(sw_if, role) => {
            nat.set_interface(sw_if, role, known_interface)?;
            for (arc, node, on) in nat.features_for(role) {
                // Every NAT node is in vpgd's graph (registered with the others).
                if let Some(p) = layout.feature_position(arc, node) {
                    if on {
                        features.enable(arc, sw_if, p);
                    } else {
                        features.disable(arc, sw_if, p);
                    }
                }
            }
        }
        NatOp::AddMapping(m) => nat.add_mapping(m)?,
        NatOp::DelMapping(k) => nat.del_mapping(&k)?,
        NatOp::AddIdentity(m) => nat.add_identity(m)?,
        NatOp::DelIdentity(m) => nat.del_identity(m.addr, m.proto, m.port)?,
        NatOp::Settings(s) => {
            // Each setting is checked before any is kept: a refusal changes nothing.
            let mut next = nat.clone();
            if let Some(p) = s.never_nat {
                next.set_never_nat(p.into_iter().map(|p| (p.addr, p.len)).collect())?;
            }
            if let Some(a) = s.loopback {
                next.set_loopback((!a.is_unspecified()).then_some(a));
            }
            if let Some([lo, hi]) = s.port_range {
                next.set_port_range(lo, hi)?;
            }
            if let Some(t) = s.timeouts {
                let d = |v: u32| Duration::from_secs(v as u64);
                next.set_timeouts(Timeouts {
                    udp: d(t.udp),
                    tcp_established: d(t.tcp_established),
                    tcp_transitory: d(t.tcp_transitory),
                    icmp: d(t.icmp),
                })?;
            }
            if s.sessions_per_worker.is_some() || s.sessions_per_address.is_some() {
                let l = next.limits();
                next.set_limits(Limits {
                    sessions_per_worker: s
                        .sessions_per_worker
                        .map_or(l.sessions_per_worker, |v| v as usize),
                    sessions_per_address: s.sessions_per_address.unwrap_or(l.sessions_per_address),
                })?;
            }
            *nat = next;
        }
    }
    Ok(())
}

/// A NAT44 refusal as an API error.
pub fn api_error(e: &Nat44Error) -> ApiError {
    let msg = e.to_string();
    let (code, field) = match e {
        Nat44Error::PoolDuplicate(_) => (ErrorCode::AlreadyExists, "address"),
        Nat44Error::PoolMissing(_) => (ErrorCode::NotFound, "address"),
        Nat44Error::UnknownInterface(_) => (ErrorCode::NotFound, "sw_if"),
        Nat44Error::PortRange { .. } => (ErrorCode::BadRequest, "port_range"),
        Nat44Error::BadMapping { .. } => (ErrorCode::BadRequest, "locals"),
        Nat44Error::Overlap { .. } => (ErrorCode::AlreadyExists, "external"),
        Nat44Error::NoMapping(_) | Nat44Error::NoIdentity(_) => (ErrorCode::NotFound, "external"),
        Nat44Error::BadPrefix(_) => (ErrorCode::BadRequest, "never_nat"),
        Nat44Error::BadSetting(_) => (ErrorCode::BadRequest, "settings"),
    };
    ApiError::new(code, msg).field(field)
}

/// The settings in force, as the API shows them.
pub fn settings(nat: &Nat44Control) -> Nat44Settings {
    let t = nat.timeouts();
    let s = |d: Duration| d.as_secs().min(u32::MAX as u64) as u32;
    let (lo, hi) = nat.port_range();
    Nat44Settings {
        never_nat: Some(
            nat.never_nat()
                .iter()
                .map(|&(addr, len)| Prefix { addr, len })
                .collect(),
        ),
        loopback: nat.loopback(),
        port_range: Some([lo, hi]),
        timeouts: Some(Nat44Timeouts {
            udp: s(t.udp),
            tcp_established: s(t.tcp_established),
            tcp_transitory: s(t.tcp_transitory),
            icmp: s(t.icmp),
        }),
        sessions_per_worker: Some(nat.limits().sessions_per_worker as u32),
        sessions_per_address: Some(nat.limits().sessions_per_address),
    }
}

/// What one worker reports for dumps.
#[derive(Default)]
struct WorkerView {
    sessions: Vec<(u32, Session)>,
    by_proto: [usize; 4],
    capacity: usize,
    ports: Vec<(u32, [u32; 3])>,
    slice: (u32, u32),
    timeouts: [u64; 4],
}

fn view(dp: &DataPlane, w: usize, keep: impl Fn(&Session) -> bool + Send + 'static) -> WorkerView {
    dp.workers()
        .exec(w, move |rt| {
            let Some(t) = rt.locals_mut().get::<SessionTable>() else {
                return WorkerView::default();
            };
            let sl = t.ports.slice();
            WorkerView {
                sessions: t
                    .iter()
                    .filter(|(_, s)| keep(s))
                    .map(|(i, s)| (i, *s))
                    .collect(),
                by_proto: t.by_proto(),
                capacity: t.capacity(),
                ports: t.ports.usage(),
                slice: (sl.start, sl.end),
                timeouts: t.timeouts().as_nanos(),
            }
        })
        .unwrap_or_default()
}

fn flow_out(f: &Flow) -> Nat44Flow {
    Nat44Flow {
        src: Ipv4Addr::from_bits(f.src),
        sport: f.sport,
        dst: Ipv4Addr::from_bits(f.dst),
        dport: f.dport,
    }
}

fn selected(f: &Nat44SessionFilter, s: &Session) -> bool {
    let addrs = [s.i.src, s.i.dst, s.o.src, s.o.dst];
    let ports = [s.i.sport, s.i.dport, s.o.sport, s.o.dport];
    f.addr.is_none_or(|a| addrs.contains(&a.to_bits()))
        && f.port.is_none_or(|p| ports.contains(&p))
        && f.proto.is_none_or(|p| s.i.proto == p)
        && f.kind.as_deref().is_none_or(|k| s.kind.name() == k)
}

/// `dump_nat44_sessions`: live sessions (not timed out) the filter selects.
pub fn sessions(dp: &DataPlane, f: &Nat44SessionFilter) -> Vec<Nat44SessionDetails> {
    let now = dp.workers().now().as_nanos();
    let mut out = Vec::new();
    for w in 0..dp.workers().len() {
        if f.worker.is_some_and(|x| x != w) {
            continue;
        }
        let fc = f.clone();
        let v = view(dp, w, move |s| selected(&fc, s));
        for (index, s) in v.sessions {
            if s.expired_ns(&v.timeouts, now) {
                // Timed out, not yet reclaimed: no longer a session for any packet.
                continue;
            }
            let timeout = v.timeouts[s.timeout_class()];
            let idle = now.saturating_sub(s.last);
            let mapping = matches!(s.kind, Kind::Dnat | Kind::Loopback)
                .then(|| format!("{}:{}", Ipv4Addr::from_bits(s.i.dst), s.i.dport));
            out.push(Nat44SessionDetails {
                worker: w,
                index,
                kind: s.kind.name().into(),
                proto: s.i.proto,
                inside: flow_out(&s.i),
                outside: flow_out(&s.o),
                state: s.state().into(),
                packets_fwd: s.packets[0] as u64,
                packets_rev: s.packets[1] as u64,
                bytes: s.bytes,
                idle_s: idle / 1_000_000_000,
                expires_in_s: timeout.saturating_sub(idle) / 1_000_000_000,
                mapping,
            });
        }
    }
    out
}

/// `clear_nat44_sessions`: deletes the sessions the filter selects; returns how many.
pub fn clear_sessions(dp: &DataPlane, f: &Nat44SessionFilter) -> usize {
    (0..dp.workers().len())
        .filter(|w| f.worker.is_none_or(|x| x == *w))
        .map(|w| {
            let f = f.clone();
            dp.workers()
                .exec(w, move |rt| {
                    rt.locals_mut()
                        .get_mut::<SessionTable>()
                        .map_or(0, |t| t.purge(|s| selected(&f, s)))
                })
                .unwrap_or(0)
        })
        .sum()
}

/// `dump_nat44_addresses`: pool entries with their ports in use over all workers.
pub fn addresses(dp: &DataPlane) -> Vec<Nat44AddressDetails> {
    let views: Vec<WorkerView> = (0..dp.workers().len())
        .map(|w| view(dp, w, |s| s.kind == Kind::Dynamic))
        .collect();
    let nat = dp.nat();
    nat.pool()
        .iter()
        .map(|e| {
            let (address, sw_if) = match *e {
                PoolEntry::Address(a) => (Some(a), None),
                PoolEntry::Interface(i) => (dp.interface_address(i), Some(i)),
            };
            let mut d = Nat44AddressDetails {
                address,
                sw_if,
                ports_tcp: 0,
                ports_udp: 0,
                ports_icmp: 0,
                sessions: 0,
            };
            if let Some(a) = address.map(Ipv4Addr::to_bits) {
                for v in &views {
                    for (addr, used) in &v.ports {
                        if *addr == a {
                            d.ports_tcp += used[0];
                            d.ports_udp += used[1];
                            d.ports_icmp += used[2];
                        }
                    }
                    d.sessions += v.sessions.iter().filter(|(_, s)| s.o.src == a).count() as u64;
                }
            }
            d
        })
        .collect()
}

/// `dump_nat44_interfaces`.
pub fn interfaces(dp: &DataPlane) -> Vec<Nat44InterfaceDetails> {
    dp.nat()
        .interfaces()
        .map(|(sw_if, r)| Nat44InterfaceDetails {
            sw_if,
            inside: r.inside,
            outside: r.outside,
        })
        .collect()
}

/// `dump_nat44_mappings`: mappings with the sessions each made, and identity mappings.
pub fn mappings(dp: &DataPlane) -> (Vec<Nat44MappingDetails>, Vec<Nat44Identity>) {
    let mut counts: BTreeMap<(u32, u16, u8), u64> = BTreeMap::new();
    for w in 0..dp.workers().len() {
        let v = view(dp, w, |s| {
            matches!(s.kind, Kind::Dnat | Kind::Loopback | Kind::Static)
        });
        for (_, s) in v.sessions {
            let key = if s.kind == Kind::Static {
                (s.o.src, s.o.sport, s.i.proto)
            } else {
                (s.i.dst, s.i.dport, s.i.proto)
            };
            *counts.entry(key).or_default() += 1;
        }
    }
    let nat = dp.nat();
    let maps = nat
        .mappings()
        .map(|m| {
            let key = |port: u16| (m.external.to_bits(), port, m.proto.unwrap_or(0));
            let sessions = match m.proto {
                Some(_) => counts.get(&key(m.external_port)).copied().unwrap_or(0),
                // Address-only: every port and protocol.
                None => counts
                    .iter()
                    .filter(|((a, _, _), _)| *a == m.external.to_bits())
                    .map(|(_, n)| n)
                    .sum(),
            };
            Nat44MappingDetails {
                mapping: mapping_out(m),
                sessions,
            }
        })
        .collect();
    let ids = nat
        .identities()
        .iter()
        .map(|m| Nat44Identity {
            address: m.addr,
            proto: m.proto,
            port: m.port,
            tag: m.tag.clone(),
        })
        .collect();
    (maps, ids)
}

/// `dump_nat44_summary`.
pub fn summary(dp: &DataPlane) -> Nat44SummaryDetails {
    let workers = (0..dp.workers().len())
        .map(|w| {
            let v = view(dp, w, |_| false);
            Nat44WorkerSummary {
                worker: w,
                sessions: v.by_proto.iter().sum::<usize>() as u64,
                capacity: v.capacity as u64,
                tcp: v.by_proto[0] as u64,
                udp: v.by_proto[1] as u64,
                icmp: v.by_proto[2] as u64,
                other: v.by_proto[3] as u64,
                ports: [
                    v.slice.0.min(65535) as u16,
                    v.slice.1.saturating_sub(1).min(65535) as u16,
                ],
            }
        })
        .collect();
    let stats = dp.workers().stats();
    let counters = vpg_graph::show::error_rows(dp.layout(), &stats)
        .into_iter()
        .filter(|r| r.node.starts_with("nat44"))
        .fold(BTreeMap::<(String, String), u64>::new(), |mut m, r| {
            *m.entry((r.node, r.name)).or_default() += r.count;
            m
        })
        .into_iter()
        .map(|((node, name), count)| Nat44Counter { node, name, count })
        .collect();
    Nat44SummaryDetails {
        workers,
        addresses: addresses(dp),
        counters,
        settings: settings(dp.nat()),
    }
}
