//! The daemon's data-plane state and the one place that changes it: [`DataPlane::apply`] runs a
//! batch of operations all-or-nothing. Operations apply to a clone of the control state; ports
//! they open are held aside; only when every operation succeeded is the clone kept, the ports
//! installed on the workers and one new configuration snapshot published, which the workers swap
//! in between frames. A failed batch drops the clone and the ports: nothing changed.
//!
//! Interface indices are reused, as VPP reuses `sw_if_index` values: a new interface (an
//! AF_PACKET port or a VXLAN tunnel) takes the lowest index no interface holds, so at most
//! `max_interfaces` exist at once, however many came and went before. A reused index starts
//! clean: deleting an interface takes along everything that names it (addresses, routes,
//! neighbors, ACL lists, NAT44 role and pool entry, features) or is refused (an ESP protect
//! rule bound to a tunnel); each worker drops its ACL sessions and rings, and zeroes the
//! index's counters before the new interface is installed; reports that workers queued for the
//! old interface (learned neighbors and tunnel peers) are recognised by their time and ignored.

use crate::espseq::SequenceFile;
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use vpg_acl::AclControl;
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};
use vpg_graph::{ArcId, ConfigSet, FeatureConfig, Layout, Runtime, Time, Workers};
use vpg_ip4::control::{NeighborEntry, RouteEntry};
use vpg_ip4::{Ip4Control, Ip4Error, RoutePath};
use vpg_vxlan::{TunnelKey, VxlanControl, VxlanError};

/// One configuration change.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Attach a host interface (AF_PACKET); the result is the new interface index.
    CreatePort {
        /// Linux interface.
        host_if: String,
        /// vpg's name (default: host_if).
        name: Option<String>,
        /// MAC (default: the host interface's).
        mac: Option<[u8; 6]>,
    },
    /// Detach and forget an interface.
    DeleteInterface {
        /// Interface.
        sw_if: u32,
    },
    /// Admin state.
    SetAdmin {
        /// Interface.
        sw_if: u32,
        /// Up or down.
        up: bool,
    },
    /// MAC address.
    SetMac {
        /// Interface.
        sw_if: u32,
        /// MAC.
        mac: [u8; 6],
    },
    /// MTU.
    SetMtu {
        /// Interface.
        sw_if: u32,
        /// MTU.
        mtu: u16,
    },
    /// Add an address.
    AddAddress {
        /// Interface.
        sw_if: u32,
        /// Address with prefix length.
        prefix: Ipv4Cidr,
    },
    /// Remove an address.
    DelAddress {
        /// Interface.
        sw_if: u32,
        /// Address with prefix length.
        prefix: Ipv4Cidr,
    },
    /// Proxy-ARP prefixes of an interface (replaces the list).
    SetProxyArp {
        /// Interface.
        sw_if: u32,
        /// Prefixes.
        prefixes: Vec<Ipv4Cidr>,
    },
    /// Add a route.
    AddRoute {
        /// Prefix.
        prefix: Ipv4Cidr,
        /// Path.
        path: RoutePath,
    },
    /// Delete a route.
    DelRoute {
        /// Prefix.
        prefix: Ipv4Cidr,
    },
    /// Add or replace a neighbor.
    AddNeighbor {
        /// Interface.
        sw_if: u32,
        /// Address.
        ip: Ipv4Addr,
        /// MAC.
        mac: [u8; 6],
    },
    /// Delete a neighbor.
    DelNeighbor {
        /// Interface.
        sw_if: u32,
        /// Address.
        ip: Ipv4Addr,
    },
    /// Enable a feature on an interface.
    EnableFeature {
        /// Arc.
        arc: ArcId,
        /// Feature node name.
        feature: String,
        /// Interface.
        sw_if: u32,
    },
    /// Disable a feature on an interface.
    DisableFeature {
        /// Arc.
        arc: ArcId,
        /// Feature node name.
        feature: String,
        /// Interface.
        sw_if: u32,
    },
    /// An ACL change.
    Acl(crate::acl::AclOp),
    /// Create a VXLAN tunnel interface (see `crate::vxlan`); the result is its index.
    CreateVxlanTunnel {
        /// Its identity.
        key: TunnelKey,
        /// Interface name (default `vxlan_tunnel<index>`).
        name: Option<String>,
        /// Its MAC (default derived from the local VTEP and the index).
        mac: Option<[u8; 6]>,
        /// The far end's inner MAC (default: learned).
        remote_mac: Option<[u8; 6]>,
    },
    /// Delete a VXLAN tunnel interface.
    DeleteVxlanTunnel {
        /// Its interface.
        sw_if: u32,
    },
    /// A NAT44 change.
    Nat(crate::nat44::NatOp),
    /// An ESP change (see `crate::esp`).
    Esp(crate::esp::EspOp),
    /// The far end's MAC seen by vxlan4-decap (not an API item: the daemon's learning).
    LearnVxlanPeer {
        /// The tunnel's interface.
        sw_if: u32,
        /// The MAC.
        mac: [u8; 6],
    },
}

/// What an operation returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpResult {
    /// Done.
    Done,
    /// The interface created.
    Interface(u32),
}

/// Why an operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DpError {
    /// An IPv4 table refused it.
    #[error(transparent)]
    Ip4(#[from] Ip4Error),
    /// No such interface.
    #[error("interface {0} does not exist")]
    NoInterface(u32),
    /// The name is taken.
    #[error("interface name '{0}' is already in use")]
    NameTaken(String),
    /// The host interface is attached already.
    #[error("host interface '{0}' is already attached")]
    HostAttached(String),
    /// The host interface could not be attached.
    #[error("cannot attach host interface '{host_if}': {why}")]
    Attach {
        /// Interface.
        host_if: String,
        /// Why.
        why: String,
    },
    /// No such feature on the arc.
    #[error("arc {arc} has no feature '{feature}'")]
    UnknownFeature {
        /// Arc.
        arc: ArcId,
        /// Feature.
        feature: String,
    },
    /// Every interface index is held by an interface.
    #[error("too many interfaces: at most {0} can exist at once (deleting one frees its index)")]
    TooManyInterfaces(usize),
    /// Something else names the interface; it must go first.
    #[error("interface {sw_if} is in use by {by}; remove that first")]
    InterfaceInUse {
        /// Interface.
        sw_if: u32,
        /// What uses it (`esp protect rule 7`).
        by: String,
    },
    /// The ACL state refused it.
    #[error(transparent)]
    Acl(#[from] crate::acl::AclDpError),
    /// The VXLAN tunnel table refused it.
    #[error(transparent)]
    Vxlan(#[from] VxlanError),
    /// The NAT44 state refused it.
    #[error(transparent)]
    Nat(#[from] vpg_nat44::Nat44Error),
    /// The ESP tables refused it.
    #[error(transparent)]
    Esp(#[from] vpg_esp::EspError),
    /// The sequence file could not be written: no new outbound SA can be given numbers.
    #[error(transparent)]
    SequenceFile(#[from] crate::espseq::SequenceError),
}

/// Installs an attached port's halves on one worker (`rt`, interface index).
pub type Installer = Box<dyn FnOnce(&mut Runtime, u32) + Send>;

/// How ports are attached: AF_PACKET in the daemon, the packet generator in tests.
pub trait PortBackend: Send {
    /// The host interface's MAC, if it has one.
    fn host_mac(&self, host_if: &str) -> Option<[u8; 6]>;
    /// Opens `host_if` for `workers` workers and returns one installer per worker. Dropping the
    /// installers without running them releases everything they hold.
    fn attach(&mut self, host_if: &str, workers: usize) -> Result<Vec<Installer>, String>;
    /// Opens several host interfaces, one result per name in order. A backend whose opening is
    /// slow for reasons other than CPU (AF_PACKET waits for the kernel) opens them in parallel.
    /// When any fails, none is kept.
    fn attach_many(
        &mut self,
        host_ifs: &[&str],
        workers: usize,
    ) -> Vec<Result<Vec<Installer>, String>> {
        let mut out = Vec::with_capacity(host_ifs.len());
        for h in host_ifs {
            let r = self.attach(h, workers);
            let failed = r.is_err();
            out.push(r);
            if failed {
                break;
            }
        }
        out
    }
    /// Releases installers that will not run (a refused transaction), where releasing them
    /// cannot block the caller for long.
    fn reap(&self, installers: Vec<Installer>) {
        drop(installers);
    }
    /// Called at shutdown, after every worker stopped: waits until the ports are released.
    fn finish(&self) {}
    /// What removes interface `sw_if`'s halves from a worker.
    fn detach(&self) -> Installer;
}

/// An attached interface.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    /// vpg's name.
    pub name: String,
    /// Linux interface.
    pub host_if: String,
}

#[derive(Clone)]
pub(crate) struct State {
    pub(crate) ip4: Ip4Control,
    pub(crate) acl: AclControl,
    pub(crate) features: FeatureConfig,
    ports: BTreeMap<u32, Port>,
    pub(crate) vxlan: VxlanControl,
    pub(crate) nat: vpg_nat44::Nat44Control,
    pub(crate) esp: vpg_esp::EspControl,
    /// ESP protect rules made for a VXLAN tunnel: (rule, tunnel interface).
    pub(crate) esp_tunnels: Vec<(u32, u32)>,
}

impl State {
    /// Whether interface `sw_if` exists (a port or a tunnel).
    pub(crate) fn has_interface(&self, sw_if: u32) -> bool {
        self.ports.contains_key(&sw_if) || self.vxlan.contains(sw_if)
    }

    /// The lowest interface index no interface holds: what the next created one gets. Every
    /// interface, port or tunnel, is in the IPv4 tables, whose interfaces come in index order.
    pub(crate) fn lowest_free_sw_if(&self) -> u32 {
        let mut free = 0;
        for i in self.ip4.interfaces() {
            if i.sw_if != free {
                break;
            }
            free += 1;
        }
        free
    }
}

/// Removes what names interface `sw_if` from every control table, so that nothing of it applies
/// to a later interface with the same index: its IPv4 state (addresses and their routes,
/// routes through it, neighbors, proxy ARP, peer MAC), ACL lists, NAT44 role and pool entry,
/// and every feature. Refused while an ESP protect rule is bound to it (the rule protects the
/// tunnel's traffic; deleting it is the operator's decision).
pub(crate) fn forget_interface(s: &mut State, layout: &Layout, sw_if: u32) -> Result<(), DpError> {
    if let Some(&(rule, _)) = s.esp_tunnels.iter().find(|&&(_, t)| t == sw_if) {
        return Err(DpError::InterfaceInUse {
            sw_if,
            by: format!("esp protect rule {rule}"),
        });
    }
    s.ip4.del_interface(sw_if)?;
    s.acl.del_interface(sw_if);
    s.nat.del_interface(sw_if);
    for arc in ArcId::ALL {
        for p in 0..layout.features(arc).len() {
            s.features.disable(arc, sw_if, p as u8);
        }
    }
    Ok(())
}

/// The data plane: workers, control state and the port backend.
pub struct DataPlane {
    workers: Workers,
    state: State,
    backend: Box<dyn PortBackend>,
    max_interfaces: usize,
    /// Outbound ESP sequence reservations (`[esp] sequence_file`); its own lock, which the
    /// reservation thread takes without the data plane's.
    sequences: Option<Arc<Mutex<SequenceFile>>>,
    /// When each interface was created, in the workers' time: a report a worker made before
    /// then (a learned neighbor, a tunnel's far-end MAC) was about an earlier interface that
    /// had the same index.
    created_at: HashMap<u32, Time>,
}

impl DataPlane {
    /// A data plane over running workers, with no interfaces.
    pub fn new(workers: Workers, backend: Box<dyn PortBackend>, max_interfaces: usize) -> Self {
        let state = State {
            ip4: Ip4Control::new(),
            acl: AclControl::new(workers.len()),
            features: FeatureConfig::default(),
            ports: BTreeMap::new(),
            vxlan: VxlanControl::new(),
            nat: vpg_nat44::Nat44Control::new(workers.len()),
            esp: vpg_esp::EspControl::new(workers.len()),
            esp_tunnels: Vec::new(),
        };
        let dp = Self {
            workers,
            state,
            backend,
            max_interfaces,
            sequences: None,
            created_at: HashMap::new(),
        };
        dp.publish();
        dp
    }

    /// Keeps outbound ESP sequence numbers in `file` from now on: new outbound SAs send only
    /// numbers reserved there (set before any SA exists).
    pub fn keep_sequences(&mut self, file: SequenceFile) {
        self.state.esp.set_sequence_reservation(true);
        self.sequences = Some(Arc::new(Mutex::new(file)));
    }

    /// The sequence file, if kept.
    pub fn sequences(&self) -> Option<&Arc<Mutex<SequenceFile>>> {
        self.sequences.as_ref()
    }

    /// The workers.
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// The index the next interface created gets: the lowest one no interface holds (deleted
    /// interfaces' indices are reused).
    pub fn next_sw_if(&self) -> u32 {
        self.state.lowest_free_sw_if()
    }

    /// How many interfaces may exist at once.
    pub fn max_interfaces(&self) -> usize {
        self.max_interfaces
    }

    /// Whether a report about interface `sw_if` that a worker made at `seen` concerns the
    /// interface that holds the index now: false when it is gone, or when it was created at or
    /// after `seen` (the report was about an earlier interface with the same index; a report
    /// made in the very tick of creation is dropped too, which costs only a later one).
    pub fn is_current(&self, sw_if: u32, seen: Time) -> bool {
        self.created_at.get(&sw_if).is_some_and(|&c| seen > c)
    }

    /// The graph layout.
    pub fn layout(&self) -> &Arc<Layout> {
        self.workers.layout()
    }

    /// Applies `ops` all-or-nothing. On failure returns the index of the refused operation and
    /// why; nothing changed.
    pub fn apply(&mut self, ops: Vec<Op>) -> Result<Vec<OpResult>, (usize, DpError)> {
        let mut next = self.state.clone();
        // Ports to open once every operation has been checked: (interface, host interface,
        // index of the operation that created it).
        let mut attached: Vec<(u32, String, usize)> = Vec::new();
        let mut detached: Vec<u32> = Vec::new();
        // Indices that interfaces (ports and tunnels) were created at, and deleted from.
        let mut created: Vec<u32> = Vec::new();
        let mut deleted: Vec<u32> = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        let first_sa_add = ops
            .iter()
            .position(|op| matches!(op, Op::Esp(crate::esp::EspOp::AddSa(..))));
        let esp_changed = ops.iter().any(|op| matches!(op, Op::Esp(_)));
        for (i, op) in ops.into_iter().enumerate() {
            let r = self
                .apply_one(&mut next, op, i, &mut attached, &mut detached)
                .map_err(|e| (i, e))?;
            if let OpResult::Interface(sw_if) = r {
                created.push(sw_if);
            }
            results.push(r);
        }
        // Open the new ports together (the backend may do it in parallel); a failure refuses
        // the whole transaction and releases whatever was opened.
        let names: Vec<&str> = attached.iter().map(|(_, h, _)| h.as_str()).collect();
        let opened = self.backend.attach_many(&names, self.workers.len());
        if let Some(k) = opened.iter().position(Result::is_err) {
            let (_, host_if, op) = attached[k].clone();
            let mut why = String::new();
            for r in opened {
                match r {
                    Ok(inst) => self.backend.reap(inst),
                    Err(e) if why.is_empty() => why = e,
                    Err(_) => {}
                }
            }
            return Err((op, DpError::Attach { host_if, why }));
        }
        let attached: Vec<(u32, Vec<Installer>)> = attached
            .into_iter()
            .zip(opened)
            .filter_map(|((sw_if, _, _), r)| r.ok().map(|inst| (sw_if, inst)))
            .collect();
        // New outbound SAs get their sequence numbers reserved on disk before they exist, new
        // inbound ones their recorded windows (only ESP items add or remove SAs).
        if let Some(seq) = self.sequences.as_ref().filter(|_| esp_changed) {
            let sas = next.esp.sequences();
            let r = seq.lock().unwrap_or_else(|p| p.into_inner()).take(&sas);
            if let Err(e) = r {
                for (_, installers) in attached {
                    self.backend.reap(installers);
                }
                return Err((first_sa_add.unwrap_or(0), e.into()));
            }
        }
        // Every interface that was there before and is not now was deleted (some perhaps
        // recreated at the same index in this transaction: then it is in both lists).
        created.sort_unstable();
        created.dedup();
        for &sw_if in self.created_at.keys() {
            if !next.has_interface(sw_if) || created.binary_search(&sw_if).is_ok() {
                deleted.push(sw_if);
            }
        }
        created.retain(|&i| next.has_interface(i));
        // Commit: nothing below can fail.
        self.state = next;
        for &sw_if in &deleted {
            self.created_at.remove(&sw_if);
        }
        let now = self.workers.now();
        for &sw_if in &created {
            self.created_at.insert(sw_if, now);
        }
        // Per worker, in this order (its queue keeps it): the old rings leave, the new
        // interfaces' counters are zeroed, the new rings arrive, the snapshot without the old
        // interfaces is swapped in, and only then the old interfaces' ACL sessions are dropped
        // (from then on no packet can make one for them).
        for sw_if in detached {
            self.detach_port(sw_if);
        }
        if !created.is_empty() {
            for w in 0..self.workers.len() {
                let created = created.clone();
                self.workers.post(w, move |rt| {
                    for &sw_if in &created {
                        rt.stats().clear_interface(sw_if);
                    }
                });
            }
        }
        for (sw_if, installers) in attached {
            for (w, install) in installers.into_iter().enumerate() {
                self.workers.post(w, move |rt| install(rt, sw_if));
            }
        }
        self.publish();
        if !deleted.is_empty() {
            deleted.sort_unstable();
            for w in 0..self.workers.len() {
                let deleted = deleted.clone();
                self.workers.post(w, move |rt| {
                    // One pass over the table (about 0.25 ms for the default 131,072
                    // sessions in a release build), skipped when it is empty.
                    let t = rt.locals_mut().get_mut::<vpg_acl::session::SessionTable>();
                    if let Some(t) = t.filter(|t| !t.is_empty()) {
                        t.clear(|s| deleted.binary_search(&s.key.sw_if).is_ok());
                    }
                });
            }
        }
        Ok(results)
    }

    fn apply_one(
        &mut self,
        s: &mut State,
        op: Op,
        index: usize,
        attached: &mut Vec<(u32, String, usize)>,
        detached: &mut Vec<u32>,
    ) -> Result<OpResult, DpError> {
        let known = |s: &State, sw_if: u32| {
            if s.ports.contains_key(&sw_if) || s.vxlan.contains(sw_if) {
                Ok(())
            } else {
                Err(DpError::NoInterface(sw_if))
            }
        };
        match op {
            Op::CreatePort { host_if, name, mac } => {
                let name = name.unwrap_or_else(|| host_if.clone());
                if s.ip4.interfaces().any(|i| i.name == name) {
                    return Err(DpError::NameTaken(name));
                }
                if s.ports.values().any(|p| p.host_if == host_if) {
                    return Err(DpError::HostAttached(host_if));
                }
                let sw_if = self.free_sw_if(s)?;
                let mac = mac.or_else(|| self.backend.host_mac(&host_if)).unwrap_or([
                    0x02,
                    0,
                    0,
                    0,
                    0,
                    sw_if as u8,
                ]);
                s.ip4.add_interface(sw_if, &name, EthernetAddress(mac))?;
                attached.push((sw_if, host_if.clone(), index));
                s.ports.insert(sw_if, Port { name, host_if });
                Ok(OpResult::Interface(sw_if))
            }
            Op::DeleteInterface { sw_if } if s.vxlan.contains(sw_if) => {
                crate::vxlan::delete_tunnel(s, self.layout(), sw_if)
            }
            Op::DeleteInterface { sw_if } => {
                known(s, sw_if)?;
                forget_interface(s, self.layout(), sw_if)?;
                s.ports.remove(&sw_if);
                attached.retain(|(i, _, _)| *i != sw_if);
                detached.push(sw_if);
                Ok(OpResult::Done)
            }
            Op::SetAdmin { sw_if, up } => {
                Ok(s.ip4.set_admin_up(sw_if, up).map(|_| OpResult::Done)?)
            }
            Op::SetMac { sw_if, mac } => Ok(s
                .ip4
                .set_mac(sw_if, EthernetAddress(mac))
                .map(|_| OpResult::Done)?),
            Op::SetMtu { sw_if, mtu } => Ok(s.ip4.set_mtu(sw_if, mtu).map(|_| OpResult::Done)?),
            Op::AddAddress { sw_if, prefix } => {
                Ok(s.ip4.add_address(sw_if, prefix).map(|_| OpResult::Done)?)
            }
            Op::DelAddress { sw_if, prefix } => {
                Ok(s.ip4.del_address(sw_if, prefix).map(|_| OpResult::Done)?)
            }
            Op::SetProxyArp { sw_if, prefixes } => Ok(s
                .ip4
                .set_proxy_arp(sw_if, prefixes)
                .map(|_| OpResult::Done)?),
            Op::AddRoute { prefix, path } => {
                Ok(s.ip4.add_route(prefix, path).map(|_| OpResult::Done)?)
            }
            Op::DelRoute { prefix } => Ok(s.ip4.del_route(prefix).map(|_| OpResult::Done)?),
            Op::AddNeighbor { sw_if, ip, mac } => Ok(s
                .ip4
                .add_neighbor(sw_if, ip, EthernetAddress(mac))
                .map(|_| OpResult::Done)?),
            Op::DelNeighbor { sw_if, ip } => {
                Ok(s.ip4.del_neighbor(sw_if, ip).map(|_| OpResult::Done)?)
            }
            Op::EnableFeature {
                arc,
                feature,
                sw_if,
            } => self.set_feature(s, arc, feature, sw_if, true),
            Op::DisableFeature {
                arc,
                feature,
                sw_if,
            } => self.set_feature(s, arc, feature, sw_if, false),
            Op::Acl(op) => {
                let State {
                    acl,
                    features,
                    ports,
                    vxlan,
                    ..
                } = s;
                let layout = self.workers.layout().clone();
                // Tunnels are interfaces for ACLs too (the agent puts the node's global
                // table on them, as on the uplink).
                crate::acl::apply(
                    acl,
                    features,
                    &layout,
                    |i| ports.contains_key(&i) || vxlan.contains(i),
                    op,
                )?;
                Ok(OpResult::Done)
            }
            Op::CreateVxlanTunnel {
                key,
                name,
                mac,
                remote_mac,
            } => {
                let sw_if = self.free_sw_if(s)?;
                crate::vxlan::create_tunnel(s, sw_if, key, name, mac, remote_mac)
            }
            Op::DeleteVxlanTunnel { sw_if } => crate::vxlan::delete_tunnel(s, self.layout(), sw_if),
            Op::LearnVxlanPeer { sw_if, mac } => crate::vxlan::learn_peer(s, sw_if, mac),
            Op::Nat(op) => {
                let State {
                    nat,
                    features,
                    ports,
                    vxlan,
                    ..
                } = s;
                let layout = self.workers.layout().clone();
                crate::nat44::apply(
                    nat,
                    features,
                    &layout,
                    |i| ports.contains_key(&i) || vxlan.contains(i),
                    op,
                )?;
                Ok(OpResult::Done)
            }
            Op::Esp(op) => crate::esp::apply(s, op, self.workers.now()),
        }
    }

    /// The index a new interface gets, unless `max_interfaces` exist already.
    fn free_sw_if(&self, s: &State) -> Result<u32, DpError> {
        let sw_if = s.lowest_free_sw_if();
        if sw_if as usize >= self.max_interfaces {
            return Err(DpError::TooManyInterfaces(self.max_interfaces));
        }
        Ok(sw_if)
    }

    /// Removes port `sw_if`'s halves from every worker (the backend releases them).
    fn detach_port(&self, sw_if: u32) {
        for w in 0..self.workers.len() {
            let remove = self.backend.detach();
            self.workers.post(w, move |rt| remove(rt, sw_if));
        }
    }

    fn set_feature(
        &self,
        s: &mut State,
        arc: ArcId,
        feature: String,
        sw_if: u32,
        on: bool,
    ) -> Result<OpResult, DpError> {
        let Some(p) = self.layout().feature_position(arc, &feature) else {
            return Err(DpError::UnknownFeature { arc, feature });
        };
        if !s.ports.contains_key(&sw_if) && !s.vxlan.contains(sw_if) {
            return Err(DpError::NoInterface(sw_if));
        }
        if on {
            s.features.enable(arc, sw_if, p);
        } else {
            s.features.disable(arc, sw_if, p);
        }
        Ok(OpResult::Done)
    }

    fn publish(&self) {
        let addr_of = |i: u32| self.interface_address(i);
        let cfg = ConfigSet::new()
            .with(self.state.ip4.tables())
            .with(self.state.acl.tables())
            .with(self.state.nat.tables(&addr_of))
            .with(Arc::new(self.state.features.clone()));
        let cfg = crate::vxlan::publish(&self.state.vxlan, self.layout(), cfg);
        let cfg = crate::esp::publish(&self.state, cfg);
        self.workers.configure(Arc::new(cfg));
    }

    /// The interfaces with their IPv4 state: attached ports, and tunnels (with an empty
    /// `host_if`).
    pub fn interfaces(&self) -> Vec<(u32, Port, vpg_ip4::Ip4Interface)> {
        self.state
            .ip4
            .interfaces()
            .filter_map(|i| {
                let port = match self.state.ports.get(&i.sw_if) {
                    Some(p) => p.clone(),
                    None if self.state.vxlan.contains(i.sw_if) => Port {
                        name: i.name.clone(),
                        host_if: String::new(),
                    },
                    None => return None,
                };
                Some((i.sw_if, port, i.clone()))
            })
            .collect()
    }

    /// The ACL state.
    pub fn acl(&self) -> &AclControl {
        &self.state.acl
    }

    /// The NAT44 state.
    pub fn nat(&self) -> &vpg_nat44::Nat44Control {
        &self.state.nat
    }

    /// An interface's first address (what a pool entry that follows it uses).
    pub fn interface_address(&self, sw_if: u32) -> Option<Ipv4Addr> {
        self.state
            .ip4
            .interfaces()
            .find(|i| i.sw_if == sw_if)
            .and_then(|i| i.primary_address())
    }

    /// The ESP SAs and protect rules.
    pub fn esp(&self) -> &vpg_esp::EspControl {
        &self.state.esp
    }

    /// ESP protect rules made for VXLAN tunnels: (rule, tunnel interface).
    pub fn esp_tunnels(&self) -> Vec<(u32, u32)> {
        self.state.esp_tunnels.clone()
    }

    /// The VXLAN tunnels with their interfaces.
    pub fn vxlan_tunnels(&self) -> Vec<(vpg_vxlan::TunnelEntry, vpg_ip4::Ip4Interface)> {
        crate::vxlan::tunnels(&self.state)
    }

    /// Every route.
    pub fn routes(&self) -> Vec<RouteEntry> {
        self.state.ip4.routes()
    }

    /// The adjacency a route uses, described.
    pub fn adjacency_text(&self, adj: u32) -> String {
        self.state
            .ip4
            .adjacencies()
            .get(adj as usize)
            .map_or("?".into(), |a| a.to_string())
    }

    /// Every neighbor.
    pub fn neighbors(&self) -> Vec<NeighborEntry> {
        self.state.ip4.neighbors()
    }

    /// Enabled features: (arc, feature, interface).
    pub fn features(&self) -> Vec<(ArcId, String, u32)> {
        let mut out = Vec::new();
        let tunnels = self.state.vxlan.tunnels();
        let mut all: Vec<u32> = self.state.ports.keys().copied().collect();
        all.extend(tunnels.iter().map(|t| t.sw_if));
        all.sort_unstable();
        for sw_if in all {
            for arc in ArcId::ALL {
                let mask = self.state.features.mask(arc, sw_if);
                for (p, f) in self.layout().features(arc).iter().enumerate() {
                    if mask & (1 << p) != 0 {
                        out.push((arc, f.clone(), sw_if));
                    }
                }
            }
        }
        out
    }

    /// Stops the workers.
    pub fn stop(self) {
        self.workers.stop();
    }

    /// Stops the workers in place (shutdown while API threads may still hold the data plane).
    pub fn shutdown(&mut self) {
        // Every port leaves its workers first, so the backend releases them its own way (in
        // parallel for AF_PACKET), then the workers stop.
        for &sw_if in self.state.ports.keys() {
            self.detach_port(sw_if);
        }
        self.workers.shutdown();
        self.backend.finish();
        // The workers are gone: the inbound windows' last numbers are final.
        if let Some(seq) = &self.sequences {
            let r = seq
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .note_accepted();
            if let Err(e) = r {
                eprintln!("vpgd: recording ESP sequence numbers at shutdown: {e}");
            }
        }
    }
}
