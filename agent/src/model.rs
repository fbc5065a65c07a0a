//! vpgd's configuration as the agent compares it: [`Current`] is what vpgd holds (read from its
//! dumps, keyed by interface index as vpgd keys it), [`Desired`] is what the agent wants (keyed
//! by interface *name*, since indices of interfaces not created yet are unknown, with "don't
//! care" where the agent leaves a value alone).
//!
//! [`Current::apply`] replays configuration items with vpgd's semantics (the same refusals:
//! duplicates, unknown interfaces, an ACL in use; the same side effects: deleting an interface
//! takes its routes, ACL lists, NAT role and pool entry with it). The diff's property tests run
//! its output through it, so an ordering mistake in a transaction shows as a refusal there
//! rather than as a refused transaction on a node. [`Current::view`] projects what vpgd holds
//! back into the desired form, the independent oracle those tests compare against, and
//! [`satisfies_esp`] checks the ESP SAs and protect rules against the desired ones directly.
//!
//! ESP SAs are matched by content, not by id: an SA's key never changes in place (vpgd
//! cannot, and a changed key is a new SA with a new SPI), so an SA is either exactly right or
//! replaced. The agent's SAs and protect rules have ids from [`Ownership::esp_base`] up.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use serde::Serialize;
use vpg_api::acl::{AclRule, Direction};
use vpg_api::esp::{EspCrypto, EspDirection, EspMode};
use vpg_api::nat44::{Nat44Mapping, Nat44PoolEntry};
use vpg_api::{ConfigItem, Mac, Prefix, RoutePath};
use vpg_esp::KeyMaterial;

/// What an interface is; an interface whose kind must change is deleted and created again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum IfKind {
    /// A Linux interface attached with AF_PACKET.
    AfPacket {
        /// The Linux interface.
        host_if: String,
    },
    /// A VXLAN tunnel.
    Vxlan {
        /// Local VTEP.
        local: Ipv4Addr,
        /// Remote VTEP.
        remote: Ipv4Addr,
        /// VNI.
        vni: u32,
        /// UDP port.
        port: u16,
        /// The tunnel interface's MAC.
        mac: Mac,
        /// The far end's inner MAC when configured (`None`: learned or unknown).
        remote_mac: Option<Mac>,
    },
}

/// An ACL of the agent, named by its role rather than its id (ids are chosen when diffing).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AclSlot {
    /// The reflective permit-all (id `base`).
    Reflect,
    /// The node's global table (id `base + 1`, replaced in place).
    Global,
    /// A local table, by its content id (`lt-…`); ids from `base + 2`.
    Local(String),
    /// An ACL outside the agent's range, by id (only in [`Current::view`]).
    Foreign(u32),
}

impl fmt::Display for AclSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AclSlot::Reflect => f.write_str("reflect"),
            AclSlot::Global => f.write_str("global"),
            AclSlot::Local(t) => f.write_str(t),
            AclSlot::Foreign(id) => write!(f, "acl {id}"),
        }
    }
}

/// An ACL's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AclContent {
    /// Tag (the table id, or `vpg-reflect`).
    pub tag: String,
    /// Rules.
    pub rules: Vec<AclRule>,
}

/// A route's path with interfaces by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PathByName {
    /// Via a next hop on an interface.
    Via {
        /// Next hop.
        next_hop: Ipv4Addr,
        /// Interface name.
        interface: String,
    },
    /// Directly attached on an interface.
    Attached {
        /// Interface name.
        interface: String,
    },
    /// Dropped.
    Drop,
    /// Delivered to vpgd itself.
    Local,
}

/// A NAT44 pool entry with interfaces by name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PoolName {
    /// A fixed address.
    Address(Ipv4Addr),
    /// The address of an interface.
    Interface(String),
}

/// Which static mapping: external address, protocol, port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct MapKey {
    /// External address.
    pub external: Ipv4Addr,
    /// Protocol (none: address-only).
    pub proto: Option<u8>,
    /// External port.
    pub port: u16,
}

impl MapKey {
    /// The key of a mapping.
    pub fn of(m: &Nat44Mapping) -> MapKey {
        MapKey {
            external: m.external,
            proto: m.proto,
            port: m.external_port,
        }
    }
}

impl fmt::Display for MapKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.proto {
            Some(6) => write!(f, "{}:{}/tcp", self.external, self.port),
            Some(17) => write!(f, "{}:{}/udp", self.external, self.port),
            Some(p) if self.port == 0 => write!(f, "{}/{p}", self.external),
            Some(p) => write!(f, "{}:{}/{p}", self.external, self.port),
            None => write!(f, "{}", self.external),
        }
    }
}

/// Which identity mapping (same shape as a mapping key).
pub type IdKey = MapKey;

/// A pool entry as vpgd keys it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum PoolKey {
    /// A fixed address.
    Address(Ipv4Addr),
    /// An interface's address.
    Interface(u32),
}

impl PoolKey {
    /// The API's form.
    pub fn entry(self) -> Nat44PoolEntry {
        match self {
            PoolKey::Address(a) => Nat44PoolEntry {
                address: Some(a),
                sw_if: None,
            },
            PoolKey::Interface(i) => Nat44PoolEntry {
                address: None,
                sw_if: Some(i),
            },
        }
    }
}

/// A mapping with its locals in a canonical order (vpgd keeps the order given; the agent gives
/// them sorted, and compares sorted).
pub fn canonical(mut m: Nat44Mapping) -> Nat44Mapping {
    m.locals
        .sort_by_key(|l| (u32::from(l.address), l.port, l.weight));
    m
}

/// One interface in vpgd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurIf {
    /// vpg's name.
    pub name: String,
    /// What it is.
    pub kind: IfKind,
    /// Admin state.
    pub admin_up: bool,
    /// MTU.
    pub mtu: u16,
    /// Addresses.
    pub addresses: BTreeSet<Prefix>,
    /// Proxy-ARP prefixes, in vpgd's order.
    pub proxy_arp: Vec<Prefix>,
    /// Neighbors on it (configured and learned alike: vpgd does not tell them apart).
    pub neighbors: BTreeMap<Ipv4Addr, Mac>,
    /// Input ACL ids.
    pub acl_in: Vec<u32>,
    /// Output ACL ids.
    pub acl_out: Vec<u32>,
    /// NAT44 inside role.
    pub nat_inside: bool,
    /// NAT44 outside role.
    pub nat_outside: bool,
    /// `esp4-encrypt` enabled on its `ip4-output` arc.
    pub esp_out: bool,
    /// `esp4-decrypt` enabled on its `ip4-unicast` arc.
    pub esp_in: bool,
}

/// The feature arc and node of ESP encryption (output) and decryption (input).
pub const ESP_ENCRYPT: (&str, &str) = ("ip4-output", "esp4-encrypt");
/// See [`ESP_ENCRYPT`].
pub const ESP_DECRYPT: (&str, &str) = ("ip4-unicast", "esp4-decrypt");

impl CurIf {
    /// A new interface as vpgd creates it: AF_PACKET ports admin down with MTU 1500, tunnels
    /// admin up with MTU 1450.
    pub fn created(name: String, kind: IfKind) -> CurIf {
        let tunnel = matches!(kind, IfKind::Vxlan { .. });
        CurIf {
            name,
            kind,
            admin_up: tunnel,
            mtu: if tunnel { 1450 } else { 1500 },
            addresses: BTreeSet::new(),
            proxy_arp: Vec::new(),
            neighbors: BTreeMap::new(),
            acl_in: Vec::new(),
            acl_out: Vec::new(),
            nat_inside: false,
            nat_outside: false,
            esp_out: false,
            esp_in: false,
        }
    }
}

/// Where an SA stands in vpgd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaState {
    /// Usable (also `soft-expired`: still usable).
    Active,
    /// Retired: usable until its grace period ends.
    Retiring,
    /// Unusable (retired past its grace period, or past a hard limit): only worth deleting.
    Expired,
}

/// One ESP SA in vpgd (never its key: the fingerprint identifies it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurSa {
    /// SPI.
    pub spi: u32,
    /// Outbound (else inbound).
    pub outbound: bool,
    /// Transport mode (the agent's SAs are).
    pub transport: bool,
    /// AEAD.
    pub crypto: EspCrypto,
    /// Key id.
    pub key_id: u8,
    /// Key fingerprint.
    pub fingerprint: String,
    /// Extended sequence numbers.
    pub esn: bool,
    /// Anti-replay window.
    pub replay_window: u32,
    /// Owner worker.
    pub worker: u32,
    /// Whether it has lifetime limits (the agent's have none).
    pub lifetime: bool,
    /// State.
    pub state: SaState,
    /// Seconds left before a retiring SA expires.
    pub retire_in_s: Option<u64>,
}

impl CurSa {
    /// Whether this SA is exactly the desired one (an active SA with the same SPI, direction,
    /// key and parameters).
    pub fn is(&self, outbound: bool, want: &DesiredSa, fingerprint: &str) -> bool {
        self.state == SaState::Active
            && self.outbound == outbound
            && self.transport
            && self.spi == want.spi
            && self.crypto == want.crypto
            && self.key_id == want.key_id
            && self.fingerprint == fingerprint
            && self.esn
            && self.replay_window == want.replay_window
            && want.worker.is_none_or(|w| w == self.worker)
            && !self.lifetime
    }
}

/// One ESP protect rule in vpgd.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurRule {
    /// Destination.
    pub dst: Prefix,
    /// Protocol.
    pub proto: Option<u8>,
    /// Port.
    pub port: Option<u16>,
    /// The VXLAN tunnel it was made for.
    pub tunnel: Option<u32>,
    /// Outbound SA ids.
    pub sas: Vec<u32>,
}

impl CurRule {
    /// The peer a rule of the agent's shape protects: all traffic to one address.
    pub fn peer(&self) -> Option<Ipv4Addr> {
        (self.dst.len == 32 && self.proto.is_none() && self.port.is_none() && self.tunnel.is_none())
            .then_some(self.dst.addr)
    }
}

/// An SA of the desired state, named by what it is for (ids are chosen when diffing).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SaName {
    /// The peer node's IP.
    pub peer: Ipv4Addr,
    /// Outbound (to the peer) or inbound (from it).
    pub outbound: bool,
    /// 0: the current key; 1: the previous key (during a rotation).
    pub generation: u8,
    /// Which of the per-peer SAs.
    pub index: u8,
}

impl fmt::Display for SaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}key #{}",
            if self.outbound { "out to" } else { "in from" },
            self.peer,
            if self.generation == 0 {
                ""
            } else {
                "previous "
            },
            self.index
        )
    }
}

impl Serialize for SaName {
    /// As its text (it keys maps, which JSON wants as strings).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn fingerprint_of<S: serde::Serializer>(k: &KeyMaterial, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&k.fingerprint())
}

/// An SA as the agent wants it (transport mode, ESN, no lifetime).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DesiredSa {
    /// SPI.
    pub spi: u32,
    /// AEAD.
    pub crypto: EspCrypto,
    /// Key material (serialized as its fingerprint; `Debug` shows only that too).
    #[serde(serialize_with = "fingerprint_of")]
    pub key: KeyMaterial,
    /// Key id.
    pub key_id: u8,
    /// Owner worker (`None`: any).
    pub worker: Option<u32>,
    /// Anti-replay window.
    pub replay_window: u32,
}

/// vpgd's configuration, as its dumps show it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Current {
    /// Every interface.
    pub interfaces: BTreeMap<u32, CurIf>,
    /// Routes added through the API (connected, local and neighbor routes are derived).
    pub routes: BTreeMap<Prefix, RoutePath>,
    /// Every ACL: id → content.
    pub acls: BTreeMap<u32, AclContent>,
    /// NAT44 pool.
    pub pool: BTreeSet<PoolKey>,
    /// NAT44 static mappings (canonical locals order).
    pub mappings: BTreeMap<MapKey, Nat44Mapping>,
    /// NAT44 identity mappings → tag.
    pub identities: BTreeMap<IdKey, String>,
    /// NAT44 never-NAT prefixes, sorted.
    pub never_nat: Vec<Prefix>,
    /// vpgd's worker threads (SA owners are below this).
    pub workers: u32,
    /// ESP SAs.
    pub esp_sas: BTreeMap<u32, CurSa>,
    /// ESP protect rules.
    pub esp_rules: BTreeMap<u32, CurRule>,
    /// vpgd's sequence file, when it keeps one: the fingerprints of the outbound keys it has
    /// reserved sequence numbers for (such a key can be installed again: vpgd continues after
    /// its reservation).
    pub esp_sequences: Option<EspSequences>,
}

/// vpgd's sequence file as the agent sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EspSequences {
    /// The file's path.
    pub file: String,
    /// Fingerprints of the keys it records.
    pub keys: BTreeSet<String>,
}

/// An interface as the agent wants it. `None` fields are left as they are.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DesiredIf {
    /// What it is.
    pub kind: IfKind,
    /// Admin state.
    pub admin_up: bool,
    /// MTU, when the agent sets it.
    pub mtu: Option<u16>,
    /// Addresses (exactly these).
    pub addresses: BTreeSet<Prefix>,
    /// Proxy-ARP prefixes (exactly these, in this order).
    pub proxy_arp: Vec<Prefix>,
    /// Neighbors that must be there (others, learned ones, may be too).
    pub neighbors: BTreeMap<Ipv4Addr, Mac>,
    /// Input ACLs.
    pub acl_in: Vec<AclSlot>,
    /// Output ACLs.
    pub acl_out: Vec<AclSlot>,
    /// NAT44 inside role.
    pub nat_inside: bool,
    /// NAT44 outside role.
    pub nat_outside: bool,
    /// ESP: `esp4-encrypt` on output and `esp4-decrypt` on input.
    pub esp: bool,
}

/// The configuration the agent wants vpgd to hold, for the objects it owns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// Interfaces by name.
    pub interfaces: BTreeMap<String, DesiredIf>,
    /// Routes (exactly these API routes).
    pub routes: BTreeMap<Prefix, PathByName>,
    /// The agent's ACLs.
    pub acls: BTreeMap<AclSlot, AclContent>,
    /// NAT44 pool.
    pub pool: BTreeSet<PoolName>,
    /// NAT44 static mappings (canonical).
    pub mappings: BTreeMap<MapKey, Nat44Mapping>,
    /// NAT44 identity mappings → tag.
    pub identities: BTreeMap<IdKey, String>,
    /// NAT44 never-NAT prefixes, sorted, deduplicated.
    pub never_nat: Vec<Prefix>,
    /// ESP SAs.
    pub esp_sas: BTreeMap<SaName, DesiredSa>,
    /// ESP protect rules: all traffic to this peer node IP leaves encrypted by these outbound
    /// SAs (empty: encryption required and no key: dropped).
    pub esp_rules: BTreeMap<Ipv4Addr, Vec<SaName>>,
    /// Grace period given to inbound SAs no longer wanted (retired, then deleted).
    pub esp_grace_s: u64,
}

/// Which of vpgd's objects belong to the agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ownership {
    /// The uplink's name.
    pub uplink: String,
    /// ACL ids from here up.
    pub acl_base: u32,
    /// ESP SA and protect-rule ids from here up.
    pub esp_base: u32,
}

impl Ownership {
    /// Whether the agent manages the interface named `name`: the uplink, pod interfaces
    /// (vpg-cni's host veth names) and tunnels (`vx` + the far VTEP in hex). Others, made by an
    /// operator or vpgd's own configuration file, are left alone.
    pub fn owns_interface(&self, name: &str) -> bool {
        name == self.uplink
            || crate::desired::is_pod_ifname(name)
            || crate::desired::is_tunnel_ifname(name)
    }

    /// Whether ESP SA or protect rule `id` is in the agent's range.
    pub fn owns_esp(&self, id: u32) -> bool {
        id >= self.esp_base
    }

    /// Whether ACL `id` is in the agent's range.
    pub fn owns_acl(&self, id: u32) -> bool {
        id >= self.acl_base
    }

    /// The ACL id of a fixed slot.
    pub fn fixed_id(&self, slot: &AclSlot) -> Option<u32> {
        match slot {
            AclSlot::Reflect => Some(self.acl_base),
            AclSlot::Global => Some(self.acl_base.saturating_add(1)),
            AclSlot::Foreign(id) => Some(*id),
            AclSlot::Local(_) => None,
        }
    }
}

fn err(item: &ConfigItem, why: impl fmt::Display) -> String {
    format!("{}: {why}", item.object())
}

/// The lowest index not in `used` (ascending): the one vpgd (API 1.4) gives the next interface
/// it creates.
pub fn lowest_free(used: impl IntoIterator<Item = u32>) -> u32 {
    let mut free = 0;
    for sw in used {
        if sw != free {
            break;
        }
        free += 1;
    }
    free
}

impl Current {
    /// The index the next created interface gets (vpgd reuses deleted interfaces' indices).
    pub fn free_sw_if(&self) -> u32 {
        lowest_free(self.interfaces.keys().copied())
    }

    /// The interface named `name`.
    pub fn by_name(&self, name: &str) -> Option<(u32, &CurIf)> {
        self.interfaces
            .iter()
            .find(|(_, i)| i.name == name)
            .map(|(s, i)| (*s, i))
    }

    fn itf(&mut self, item: &ConfigItem, sw_if: u32) -> Result<&mut CurIf, String> {
        match self.interfaces.get_mut(&sw_if) {
            Some(i) => Ok(i),
            None => Err(err(item, format!("no interface {sw_if}"))),
        }
    }

    /// Applies a transaction all-or-nothing, as vpgd does.
    pub fn apply_all(&mut self, items: &[ConfigItem]) -> Result<(), (usize, String)> {
        let mut next = self.clone();
        for (i, it) in items.iter().enumerate() {
            next.apply(it).map_err(|e| (i, e))?;
        }
        *self = next;
        Ok(())
    }

    /// Applies one item with vpgd's semantics (refusals and side effects); items the agent
    /// never sends are refused.
    pub fn apply(&mut self, item: &ConfigItem) -> Result<(), String> {
        use ConfigItem as C;
        item.validate().map_err(|e| e.to_string())?;
        match item {
            C::CreateAfPacket { host_if, name, .. } => {
                let name = name.clone().unwrap_or_else(|| host_if.clone());
                if self.by_name(&name).is_some() {
                    return Err(err(item, format!("name {name} is taken")));
                }
                if self.interfaces.values().any(|i| {
                    i.kind
                        == IfKind::AfPacket {
                            host_if: host_if.clone(),
                        }
                }) {
                    return Err(err(item, "already attached"));
                }
                let kind = IfKind::AfPacket {
                    host_if: host_if.clone(),
                };
                self.interfaces
                    .insert(self.free_sw_if(), CurIf::created(name, kind));
            }
            C::CreateVxlanTunnel {
                local,
                remote,
                vni,
                port,
                name,
                mac,
                remote_mac,
            } => {
                let sw_if = self.free_sw_if();
                let name = name
                    .clone()
                    .unwrap_or_else(|| format!("vxlan_tunnel{sw_if}"));
                if self.by_name(&name).is_some() {
                    return Err(err(item, format!("name {name} is taken")));
                }
                let port = port.unwrap_or(4789);
                let same_key = self.interfaces.values().any(|i| {
                    matches!(&i.kind, IfKind::Vxlan { local: l, remote: r, vni: v, port: p, .. }
                        if (l, r, v, p) == (local, remote, vni, &port))
                });
                if same_key {
                    return Err(err(item, "tunnel exists"));
                }
                let mac = mac.unwrap_or_else(|| {
                    let o = local.octets();
                    Mac([2, o[0], o[1], o[2], o[3], sw_if as u8])
                });
                let kind = IfKind::Vxlan {
                    local: *local,
                    remote: *remote,
                    vni: *vni,
                    port,
                    mac,
                    remote_mac: *remote_mac,
                };
                self.interfaces.insert(sw_if, CurIf::created(name, kind));
            }
            C::DeleteInterface { sw_if } | C::DeleteVxlanTunnel { sw_if } => {
                if let Some(r) = self
                    .esp_rules
                    .iter()
                    .find(|(_, r)| r.tunnel == Some(*sw_if))
                {
                    return Err(err(item, format!("esp protect rule {} names it", r.0)));
                }
                let i = self.itf(item, *sw_if)?;
                if matches!(item, C::DeleteVxlanTunnel { .. })
                    && !matches!(i.kind, IfKind::Vxlan { .. })
                {
                    return Err(err(item, "not a tunnel"));
                }
                self.interfaces.remove(sw_if);
                self.routes.retain(|_, p| p.sw_if() != Some(*sw_if));
                self.pool.remove(&PoolKey::Interface(*sw_if));
            }
            C::SetAdminState { sw_if, up } => self.itf(item, *sw_if)?.admin_up = *up,
            C::SetMtu { sw_if, mtu } => self.itf(item, *sw_if)?.mtu = *mtu,
            C::AddAddress { sw_if, prefix } => {
                if !self.itf(item, *sw_if)?.addresses.insert(*prefix) {
                    return Err(err(item, "exists"));
                }
            }
            C::DelAddress { sw_if, prefix } => {
                if !self.itf(item, *sw_if)?.addresses.remove(prefix) {
                    return Err(err(item, "no such address"));
                }
            }
            C::SetProxyArp { sw_if, prefixes } => {
                self.itf(item, *sw_if)?.proxy_arp = prefixes.clone()
            }
            C::AddNeighbor { sw_if, ip, mac } => {
                self.itf(item, *sw_if)?.neighbors.insert(*ip, *mac);
            }
            C::DelNeighbor { sw_if, ip } => {
                if self.itf(item, *sw_if)?.neighbors.remove(ip).is_none() {
                    return Err(err(item, "no such neighbor"));
                }
            }
            C::AddRoute { prefix, path } => {
                if let Some(s) = path.sw_if() {
                    self.itf(item, s)?;
                }
                if self.routes.contains_key(prefix) {
                    return Err(err(item, "exists"));
                }
                self.routes.insert(*prefix, *path);
            }
            C::DelRoute { prefix } => {
                if self.routes.remove(prefix).is_none() {
                    return Err(err(item, "no such route"));
                }
            }
            C::AclAddReplace { acl_id, tag, rules } => {
                self.acls.insert(
                    *acl_id,
                    AclContent {
                        tag: tag.clone(),
                        rules: rules.clone(),
                    },
                );
            }
            C::AclDelete { acl_id } => {
                if !self.acls.contains_key(acl_id) {
                    return Err(err(item, "no such acl"));
                }
                let used = self
                    .interfaces
                    .values()
                    .any(|i| i.acl_in.contains(acl_id) || i.acl_out.contains(acl_id));
                if used {
                    return Err(err(item, "in use"));
                }
                self.acls.remove(acl_id);
            }
            C::AclSetInterface {
                sw_if,
                direction,
                acls,
            } => {
                if let Some(a) = acls.iter().find(|a| !self.acls.contains_key(a)) {
                    return Err(err(item, format!("no acl {a}")));
                }
                let i = self.itf(item, *sw_if)?;
                match direction {
                    Direction::Input => i.acl_in = acls.clone(),
                    Direction::Output => i.acl_out = acls.clone(),
                }
            }
            C::Nat44AddPool(e) | C::Nat44DelPool(e) => {
                let key = match (e.address, e.sw_if) {
                    (Some(a), _) => PoolKey::Address(a),
                    (None, Some(s)) => PoolKey::Interface(s),
                    (None, None) => return Err(err(item, "empty pool entry")),
                };
                if matches!(item, C::Nat44AddPool(_)) {
                    if let PoolKey::Interface(s) = key {
                        self.itf(item, s)?;
                    }
                    if !self.pool.insert(key) {
                        return Err(err(item, "exists"));
                    }
                } else if !self.pool.remove(&key) {
                    return Err(err(item, "no such pool entry"));
                }
            }
            C::Nat44SetInterface {
                sw_if,
                inside,
                outside,
            } => {
                let i = self.itf(item, *sw_if)?;
                i.nat_inside = *inside;
                i.nat_outside = *outside;
            }
            C::Nat44AddMapping(m) => {
                self.mappings.insert(MapKey::of(m), canonical(m.clone()));
            }
            C::Nat44DelMapping(k) => {
                let key = MapKey {
                    external: k.external,
                    proto: k.proto,
                    port: k.external_port,
                };
                if self.mappings.remove(&key).is_none() {
                    return Err(err(item, "no such mapping"));
                }
            }
            C::Nat44AddIdentity(m) => {
                let key = MapKey {
                    external: m.address,
                    proto: m.proto,
                    port: m.port,
                };
                self.identities.insert(key, m.tag.clone());
            }
            C::Nat44DelIdentity(m) => {
                let key = MapKey {
                    external: m.address,
                    proto: m.proto,
                    port: m.port,
                };
                if self.identities.remove(&key).is_none() {
                    return Err(err(item, "no such identity"));
                }
            }
            C::Nat44Settings(s) => {
                if let Some(p) = &s.never_nat {
                    let mut p = p.clone();
                    p.sort();
                    p.dedup();
                    self.never_nat = p;
                }
            }
            C::EnableFeature {
                arc,
                feature,
                sw_if,
            }
            | C::DisableFeature {
                arc,
                feature,
                sw_if,
            } => {
                let on = matches!(item, C::EnableFeature { .. });
                let which = (arc.as_str(), feature.as_str());
                let i = self.itf(item, *sw_if)?;
                if which == ESP_ENCRYPT {
                    i.esp_out = on;
                } else if which == ESP_DECRYPT {
                    i.esp_in = on;
                } else {
                    return Err(err(item, "not modelled"));
                }
            }
            C::EspSaAdd(a) => {
                if self.esp_sas.contains_key(&a.sa_id) {
                    return Err(err(item, "sa exists"));
                }
                let inbound = a.direction == EspDirection::In;
                if inbound && self.esp_sas.values().any(|s| !s.outbound && s.spi == a.spi) {
                    return Err(err(item, format!("spi {:#x} taken", a.spi)));
                }
                let workers = self.workers.max(1);
                let worker = a.worker.unwrap_or(a.spi % workers);
                if worker >= workers {
                    return Err(err(item, format!("no worker {worker}")));
                }
                let key = KeyMaterial::from_hex(&a.key).map_err(|e| err(item, e))?;
                self.esp_sas.insert(
                    a.sa_id,
                    CurSa {
                        spi: a.spi,
                        outbound: !inbound,
                        transport: a.mode == EspMode::Transport,
                        crypto: a.crypto,
                        key_id: a.key_id,
                        fingerprint: key.fingerprint(),
                        esn: a.esn,
                        replay_window: a.replay_window.unwrap_or(64),
                        worker,
                        lifetime: a.lifetime.is_some_and(|l| l != Default::default()),
                        state: SaState::Active,
                        retire_in_s: None,
                    },
                );
            }
            C::EspSaDel { sa_id } => {
                if !self.esp_sas.contains_key(sa_id) {
                    return Err(err(item, "no such sa"));
                }
                if self.esp_rules.values().any(|r| r.sas.contains(sa_id)) {
                    return Err(err(item, "in use by a rule"));
                }
                self.esp_sas.remove(sa_id);
            }
            C::EspSaRetire { sa_id, grace_s } => {
                let sa = self
                    .esp_sas
                    .get_mut(sa_id)
                    .ok_or_else(|| err(item, "no such sa"))?;
                sa.state = SaState::Retiring;
                sa.retire_in_s = Some(*grace_s);
            }
            C::EspProtectAdd(r) => {
                if self.esp_rules.contains_key(&r.rule_id) && !r.replace {
                    return Err(err(item, "rule exists"));
                }
                let Some(dst) = r.dst else {
                    return Err(err(item, "not modelled (tunnel rule)"));
                };
                for sa in &r.sas {
                    match self.esp_sas.get(sa) {
                        Some(s) if s.outbound => {}
                        Some(_) => return Err(err(item, format!("sa {sa} is not outbound"))),
                        None => return Err(err(item, format!("no sa {sa}"))),
                    }
                }
                self.esp_rules.insert(
                    r.rule_id,
                    CurRule {
                        dst,
                        proto: r.proto,
                        port: r.port,
                        tunnel: None,
                        sas: r.sas.clone(),
                    },
                );
            }
            C::EspProtectDel { rule_id } => {
                if self.esp_rules.remove(rule_id).is_none() {
                    return Err(err(item, "no such rule"));
                }
            }
            other => return Err(err(other, "not modelled")),
        }
        Ok(())
    }

    /// What vpgd holds, in the desired form, for the objects `own` covers: the oracle the
    /// diff's tests check against.
    pub fn view(&self, own: &Ownership) -> Desired {
        let name = |s: u32| {
            self.interfaces
                .get(&s)
                .map_or_else(|| format!("#{s}"), |i| i.name.clone())
        };
        let slot = |id: u32| -> AclSlot {
            if !own.owns_acl(id) {
                AclSlot::Foreign(id)
            } else if id == own.acl_base {
                AclSlot::Reflect
            } else if id == own.acl_base.saturating_add(1) {
                AclSlot::Global
            } else {
                AclSlot::Local(
                    self.acls
                        .get(&id)
                        .map_or_else(String::new, |a| a.tag.clone()),
                )
            }
        };
        let mut d = Desired::default();
        for i in self
            .interfaces
            .values()
            .filter(|i| own.owns_interface(&i.name))
        {
            d.interfaces.insert(
                i.name.clone(),
                DesiredIf {
                    kind: i.kind.clone(),
                    admin_up: i.admin_up,
                    mtu: Some(i.mtu),
                    addresses: i.addresses.clone(),
                    proxy_arp: i.proxy_arp.clone(),
                    neighbors: i.neighbors.clone(),
                    acl_in: i.acl_in.iter().map(|a| slot(*a)).collect(),
                    acl_out: i.acl_out.iter().map(|a| slot(*a)).collect(),
                    nat_inside: i.nat_inside,
                    nat_outside: i.nat_outside,
                    esp: i.esp_out && i.esp_in,
                },
            );
        }
        for (p, path) in &self.routes {
            let by_name = match *path {
                RoutePath::Via { next_hop, sw_if } => PathByName::Via {
                    next_hop,
                    interface: name(sw_if),
                },
                RoutePath::Attached { sw_if } => PathByName::Attached {
                    interface: name(sw_if),
                },
                RoutePath::Drop => PathByName::Drop,
                RoutePath::Local => PathByName::Local,
            };
            d.routes.insert(*p, by_name);
        }
        // Two ACLs with one tag: the lowest id stands for the slot (as in the diff).
        for (id, a) in self.acls.iter().filter(|(id, _)| own.owns_acl(**id)) {
            d.acls.entry(slot(*id)).or_insert_with(|| a.clone());
        }
        d.pool = self
            .pool
            .iter()
            .map(|k| match *k {
                PoolKey::Address(a) => PoolName::Address(a),
                PoolKey::Interface(s) => PoolName::Interface(name(s)),
            })
            .collect();
        d.mappings = self.mappings.clone();
        d.identities = self.identities.clone();
        d.never_nat = self.never_nat.clone();
        // ESP SAs are not named in vpgd (the agent names them by peer and key generation):
        // the view leaves them out and [`satisfies_esp`] checks them against the desired
        // state directly.
        d
    }
}

/// Whether vpgd's ESP state is what `want` asks for, for the agent's SAs and rules: every
/// desired SA exactly once among the agent's active SAs, no other active SA of the agent, no
/// outbound or expired leftover (retiring inbound SAs may remain until they expire), every
/// desired rule with exactly its SAs in order and no other rule of the agent; and the ESP
/// features on exactly the interfaces that want them.
pub fn satisfies_esp(want: &Desired, cur: &Current, own: &Ownership) -> Result<(), String> {
    let mine: BTreeMap<u32, &CurSa> = cur
        .esp_sas
        .iter()
        .filter(|(id, _)| own.owns_esp(**id))
        .map(|(id, s)| (*id, s))
        .collect();
    let mut ids: BTreeMap<SaName, u32> = BTreeMap::new();
    for (name, w) in &want.esp_sas {
        let fp = w.key.fingerprint();
        let found: Vec<u32> = mine
            .iter()
            .filter(|(_, s)| s.is(name.outbound, w, &fp))
            .map(|(id, _)| *id)
            .collect();
        match found[..] {
            [id] => {
                ids.insert(*name, id);
            }
            _ => return Err(format!("sa {name}: {} matches ({found:?})", found.len())),
        }
    }
    let wanted: BTreeSet<u32> = ids.values().copied().collect();
    for (id, s) in &mine {
        if wanted.contains(id) {
            continue;
        }
        let leftover_ok = !s.outbound && s.state == SaState::Retiring;
        if !leftover_ok {
            return Err(format!("sa {id} ({s:?}) should not be there"));
        }
    }
    let mut rules: BTreeMap<Ipv4Addr, Vec<u32>> = BTreeMap::new();
    for (id, r) in cur.esp_rules.iter().filter(|(id, _)| own.owns_esp(**id)) {
        let Some(peer) = r.peer() else {
            return Err(format!("rule {id} ({r:?}) is not the agent's shape"));
        };
        if rules.insert(peer, r.sas.clone()).is_some() {
            return Err(format!("two rules for {peer}"));
        }
    }
    let want_rules: BTreeMap<Ipv4Addr, Vec<u32>> = want
        .esp_rules
        .iter()
        .map(|(p, names)| {
            (
                *p,
                names.iter().filter_map(|n| ids.get(n).copied()).collect(),
            )
        })
        .collect();
    if rules != want_rules {
        return Err(format!("rules {rules:?} != {want_rules:?}"));
    }
    for i in cur.interfaces.values() {
        if let Some(w) = want.interfaces.get(&i.name) {
            if (i.esp_out, i.esp_in) != (w.esp, w.esp) {
                return Err(format!(
                    "interface {}: esp out {} in {}, want {}",
                    i.name, i.esp_out, i.esp_in, w.esp
                ));
            }
        }
    }
    Ok(())
}

/// Whether `have` (a [`Current::view`]) is what `want` asks for: equal, except that `None`
/// MTUs take any value and wanted neighbors need only be present. Returns the first
/// difference.
pub fn satisfies(want: &Desired, have: &Desired) -> Result<(), String> {
    let names = |d: &Desired| d.interfaces.keys().cloned().collect::<Vec<_>>();
    if names(want) != names(have) {
        return Err(format!("interfaces {:?} != {:?}", names(want), names(have)));
    }
    for (n, w) in &want.interfaces {
        let h = &have.interfaces[n];
        let ok = w.kind == h.kind
            && w.admin_up == h.admin_up
            && (w.mtu.is_none() || w.mtu == h.mtu)
            && w.addresses == h.addresses
            && w.proxy_arp == h.proxy_arp
            && w.neighbors
                .iter()
                .all(|(ip, m)| h.neighbors.get(ip) == Some(m))
            && w.acl_in == h.acl_in
            && w.acl_out == h.acl_out
            && (w.nat_inside, w.nat_outside) == (h.nat_inside, h.nat_outside)
            && w.esp == h.esp;
        if !ok {
            return Err(format!("interface {n}: want {w:?}, have {h:?}"));
        }
    }
    if want.routes != have.routes {
        return Err(format!("routes {:?} != {:?}", want.routes, have.routes));
    }
    if want.acls != have.acls {
        return Err(format!("acls {:?} != {:?}", want.acls, have.acls));
    }
    if want.pool != have.pool {
        return Err(format!("pool {:?} != {:?}", want.pool, have.pool));
    }
    if want.mappings != have.mappings {
        return Err(format!(
            "mappings {:?} != {:?}",
            want.mappings, have.mappings
        ));
    }
    if want.identities != have.identities {
        return Err(format!(
            "identities {:?} != {:?}",
            want.identities, have.identities
        ));
    }
    if want.never_nat != have.never_nat {
        return Err(format!(
            "never-nat {:?} != {:?}",
            want.never_nat, have.never_nat
        ));
    }
    Ok(())
}
