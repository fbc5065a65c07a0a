//! The desired vpgd configuration as a pure function of (cluster records, local pod records,
//! node configuration): [`compute`]. No I/O, no clock: unit tests call it directly.
//!
//! What the node gets, and why (each object's reason is kept in [`Computed::why`]):
//!
//! | object | from |
//! |---|---|
//! | uplink (AF_PACKET), node IP, default route, NAT44 outside | node configuration |
//! | pod interface (AF_PACKET on the host veth), admin up, MTU of the veth | CNI pod record |
//! | the pods' gateway as a /32 address on every pod interface (vpg answers ARP for it and sends from it) | node configuration |
//! | the pod's MAC as a static neighbor, a `/32` route to the pod, NAT44 inside | CNI pod record |
//! | proxy ARP for the pod's subnet when the pod's prefix is shorter than /32 | CNI pod record |
//! | a drop route for this node's pod CIDR (unassigned addresses do not leak to the uplink) | node configuration |
//! | a VXLAN tunnel to every other node, a route to each of its pod CIDRs, NAT44 inside | node records |
//! | NAT44 pool = the uplink's address; never-NAT = cluster networks, node network, pod CIDRs | node configuration, node records |
//! | NAT44 identity for the node IP's VXLAN port, and with encryption for ESP (protocol 50) | node configuration |
//! | with encryption: ESP features on the uplink, per other node SAs both ways (keys derived from the cluster's IPsec key) and a protect rule for all traffic to its node IP, the tunnels' MTU | node configuration, the IPsec key secret, node records |
//! | a load-balanced NAT44 mapping per ClusterIP service port with ready endpoints; the same on the node IP for NodePorts | service and endpoints records |
//! | ACLs: local tables on pod outputs, the global table on uplink and tunnel outputs, reflect on their inputs | policies (the renderer) |
//!
//! Interface names tell the agent's interfaces from others: the uplink's configured name, pod
//! interfaces named as vpg-cni names host veths (`vpg` + 12 hex digits) and tunnels `vx` + the
//! far VTEP in 8 hex digits. Tunnel MACs are derived from both VTEPs, so each end configures
//! the other's MAC and nothing has to be learned.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use vpg_acl::{Action as AclAction, Rule as AclRuleN};
use vpg_api::acl::{AclRule, Range};
use vpg_api::nat44::{Nat44Local, Nat44Mapping};
use vpg_api::{Mac, Prefix};
use vpg_ksr::kinds::service::ServiceType;
use vpg_ksr::model::Protocol;
use vpg_renderer::{Action, Rule};

use crate::cluster::ClusterState;
use crate::config::NodeConfig;
use crate::ipsec::{derive, MasterKey};
use crate::model::{
    canonical, AclContent, AclSlot, Desired, DesiredIf, DesiredSa, IfKind, MapKey, PathByName,
    PoolName, SaName,
};
use crate::podrec::LocalPod;

/// Tag of the reflective permit-all ACL (the renderer's ACL backend uses the same).
pub const REFLECT_TAG: &str = vpg_renderer::acl_backend::REFLECT_TAG;

/// Whether `name` is a pod interface: vpg-cni's host veth name, `vpg` + 12 hex digits.
pub fn is_pod_ifname(name: &str) -> bool {
    name.len() == 15
        && name.starts_with("vpg")
        && name[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The name of the tunnel to `remote`: `vx` + its address in 8 hex digits.
pub fn tunnel_ifname(remote: Ipv4Addr) -> String {
    format!("vx{:08x}", u32::from(remote))
}

/// Whether `name` is a tunnel name of the agent.
pub fn is_tunnel_ifname(name: &str) -> bool {
    name.len() == 10
        && name.starts_with("vx")
        && name[2..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The MAC of the tunnel interface on the node at `local` towards `remote`: locally
/// administered, unicast, from a hash of both VTEPs and the VNI. The far end computes the
/// same value for its `remote_mac`, so frames through the tunnel are addressed correctly from
/// the first packet.
pub fn tunnel_mac(local: Ipv4Addr, remote: Ipv4Addr, vni: u32) -> Mac {
    // FNV-1a, 64 bit: stable across builds and platforms.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in local
        .octets()
        .into_iter()
        .chain(remote.octets())
        .chain(vni.to_be_bytes())
    {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    let b = h.to_be_bytes();
    Mac([0x02, b[0], b[1], b[2], b[3], b[4]])
}

/// The anti-replay window of the agent's inbound SAs: wide enough for the reordering of
/// several workers handing packets to an SA's owner (vpgd's cost does not grow with it).
pub const ESP_REPLAY_WINDOW: u32 = 1024;

/// The IPsec keys in use at this moment (the sync loop's key ring decides, by time).
#[derive(Clone, Copy, Debug)]
pub struct EspKeys<'a> {
    /// The cluster's current key (the secret's).
    pub current: &'a MasterKey,
    /// The key before it, during a rotation (its SAs stay until outbound has switched).
    pub previous: Option<&'a MasterKey>,
    /// Outbound still uses the previous key: the other nodes may not have the current key's
    /// inbound SAs yet.
    pub outbound_previous: bool,
}

/// What the desired state is computed from.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The node configuration.
    pub cfg: &'a NodeConfig,
    /// The cluster records.
    pub cluster: &'a ClusterState,
    /// The local pods (CNI records).
    pub pods: &'a [LocalPod],
    /// Pod interfaces (host interface names) left out because vpgd refused them (the host
    /// interface is gone, for instance); retried when their record changes or at the next
    /// periodic resync.
    pub excluded: &'a BTreeSet<String>,
    /// With encryption on: the keys (`None`: no key in the store yet).
    pub keys: Option<EspKeys<'a>>,
    /// vpgd's worker threads (per-peer SA `i` is owned by worker `i mod workers`).
    pub workers: u32,
}

/// The desired state and its explanations.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Computed {
    /// The configuration.
    pub desired: Desired,
    /// Object → why it is there (`route 10.1.2.0/24` → `pod CIDR of node node2`).
    pub why: BTreeMap<String, String>,
    /// What was left out, and why (bad records, conflicts, invalid policies).
    pub notes: Vec<String>,
    /// Local pods configured.
    pub pods: usize,
    /// Tunnels configured.
    pub tunnels: usize,
    /// Service mappings configured.
    pub services: usize,
    /// Local ACL tables.
    pub local_tables: usize,
    /// ESP SAs configured.
    pub esp_sas: usize,
}

/// One renderer rule as an API ACL rule (the conversion of the renderer's ACL backend, in the
/// API's form).
pub fn api_rule(r: &Rule) -> AclRule {
    acl_to_api(&vpg_renderer::acl_backend::acl_rule(r))
}

fn acl_to_api(r: &AclRuleN) -> AclRule {
    AclRule {
        action: r.action.name().into(),
        src: Prefix {
            addr: r.src.address(),
            len: r.src.prefix_len(),
        },
        dst: Prefix {
            addr: r.dst.address(),
            len: r.dst.prefix_len(),
        },
        proto: r.proto,
        sport: Range {
            lo: r.sport.lo,
            hi: r.sport.hi,
        },
        dport: Range {
            lo: r.dport.lo,
            hi: r.dport.hi,
        },
        tcp_flags_value: r.tcp_flags_value,
        tcp_flags_mask: r.tcp_flags_mask,
    }
}

fn host(ip: Ipv4Addr) -> Prefix {
    Prefix { addr: ip, len: 32 }
}

fn net(addr: Ipv4Addr, len: u8) -> Prefix {
    Prefix { addr, len }.network()
}

fn iface(kind: IfKind) -> DesiredIf {
    DesiredIf {
        kind,
        admin_up: true,
        mtu: None,
        addresses: BTreeSet::new(),
        proxy_arp: Vec::new(),
        neighbors: BTreeMap::new(),
        acl_in: Vec::new(),
        acl_out: Vec::new(),
        nat_inside: false,
        nat_outside: false,
        esp: false,
    }
}

fn overlaps(a: Prefix, b: Prefix) -> bool {
    let len = a.len.min(b.len);
    net(a.addr, len) == net(b.addr, len)
}

/// Computes the node's desired vpgd configuration.
pub fn compute(inp: Inputs<'_>) -> Computed {
    compute_with(inp, &mut crate::policycache::PolicyCache::default())
}

/// [`compute`], rendering the policies with a renderer kept from earlier passes (the result is
/// the same; only the time differs).
pub fn compute_with(inp: Inputs<'_>, policies: &mut crate::policycache::PolicyCache) -> Computed {
    let cfg = inp.cfg;
    let mut c = Computed::default();
    let mut d = Desired::default();
    let node_ip = cfg.node_ip();
    let up = cfg.uplink.name.clone();

    // The uplink: node IP, default route, SNAT to its address.
    let mut upl = iface(IfKind::AfPacket {
        host_if: cfg.uplink.host_if.clone(),
    });
    upl.addresses.insert(cfg.uplink.address);
    upl.nat_outside = true;
    upl.esp = cfg.encryption.is_some();
    d.interfaces.insert(up.clone(), upl);
    c.why.insert(
        format!("interface {up}"),
        format!(
            "uplink {} with the node IP {} (node configuration)",
            cfg.uplink.host_if, cfg.uplink.address
        ),
    );
    d.routes.insert(
        net(Ipv4Addr::UNSPECIFIED, 0),
        PathByName::Via {
            next_hop: cfg.uplink.gateway,
            interface: up.clone(),
        },
    );
    c.why.insert(
        "route 0.0.0.0/0".into(),
        format!(
            "default gateway {} (node configuration)",
            cfg.uplink.gateway
        ),
    );
    d.routes.insert(cfg.pod_cidr, PathByName::Drop);
    c.why.insert(
        format!("route {}", cfg.pod_cidr),
        "this node's pod CIDR: addresses without a pod are dropped, not sent to the gateway".into(),
    );

    // Local pods.
    let mut pod_if: BTreeMap<String, String> = BTreeMap::new(); // "ns/name" -> interface
    for p in inp.pods {
        let who = format!("pod {} (record {})", p.display_name(), p.file);
        if inp.excluded.contains(&p.host_if) {
            c.notes.push(format!(
                "{who}: left out after vpgd refused its interface; retried later"
            ));
            continue;
        }
        if !is_pod_ifname(&p.host_if) {
            c.notes.push(format!(
                "{who}: host interface '{}' is not named like vpg-cni's (vpg + 12 hex digits)",
                p.host_if
            ));
            continue;
        }
        if !cfg.pod_cidr.contains(p.ip) || p.ip == cfg.pod_gateway {
            c.notes.push(format!(
                "{who}: address {} is not a pod address of {}",
                p.ip, cfg.pod_cidr
            ));
            continue;
        }
        let mut i = iface(IfKind::AfPacket {
            host_if: p.host_if.clone(),
        });
        i.mtu = p.mtu;
        i.addresses.insert(host(cfg.pod_gateway));
        if p.prefix_len < 32 {
            i.proxy_arp = vec![net(p.ip, p.prefix_len)];
        }
        i.neighbors.insert(p.ip, p.mac);
        i.nat_inside = true;
        d.interfaces.insert(p.host_if.clone(), i);
        d.routes.insert(
            host(p.ip),
            PathByName::Attached {
                interface: p.host_if.clone(),
            },
        );
        c.why
            .insert(format!("interface {}", p.host_if), who.clone());
        c.why.insert(format!("route {}", host(p.ip)), who.clone());
        if let Some((ns, n)) = &p.key {
            pod_if.insert(format!("{ns}/{n}"), p.host_if.clone());
        }
        c.pods += 1;
    }

    // The overlay: a tunnel to every other node and routes to its pod CIDRs.
    let mut tunnels = Vec::new();
    let mut peers: Vec<(String, Ipv4Addr)> = Vec::new();
    let mut cidrs: Vec<(Prefix, String)> = vec![(cfg.pod_cidr, cfg.node.clone())];
    for peer in inp.cluster.peers(&cfg.node) {
        let Some(ip) = peer.ip else {
            c.notes
                .push(format!("node {}: no IPv4 internal address", peer.name));
            continue;
        };
        if ip == node_ip {
            c.notes
                .push(format!("node {}: has this node's IP {ip}", peer.name));
            continue;
        }
        let name = tunnel_ifname(ip);
        if d.interfaces.contains_key(&name) {
            c.notes.push(format!(
                "node {}: another node already has the address {ip}",
                peer.name
            ));
            continue;
        }
        let mut t = iface(IfKind::Vxlan {
            local: node_ip,
            remote: ip,
            vni: cfg.vni,
            port: cfg.vxlan_port,
            mac: tunnel_mac(node_ip, ip, cfg.vni),
            remote_mac: Some(tunnel_mac(ip, node_ip, cfg.vni)),
        });
        t.nat_inside = true;
        if let Some(e) = &cfg.encryption {
            // ESP adds up to 37 bytes around the VXLAN packet: the inner packets must leave
            // room for it on the underlay.
            t.mtu = Some(e.tunnel_mtu);
        }
        d.interfaces.insert(name.clone(), t);
        peers.push((peer.name.clone(), ip));
        c.why.insert(
            format!("interface {name}"),
            format!("VXLAN tunnel to node {} ({ip}) vni {}", peer.name, cfg.vni),
        );
        for (a, l) in peer.pod_cidrs {
            let p = net(a, l);
            if let Some((_, other)) = cidrs.iter().find(|(q, _)| overlaps(p, *q)) {
                c.notes.push(format!(
                    "node {}: pod CIDR {p} overlaps node {other}'s; not routed",
                    peer.name
                ));
                continue;
            }
            cidrs.push((p, peer.name.clone()));
            d.routes.insert(
                p,
                PathByName::Attached {
                    interface: name.clone(),
                },
            );
            c.why.insert(
                format!("route {p}"),
                format!("pod CIDR of node {} through {name}", peer.name),
            );
        }
        tunnels.push(name);
    }
    c.tunnels = tunnels.len();

    // Policies: the renderer's tables placed as its ACL backend places them.
    let cluster = inp.cluster.renderer_cluster(&cfg.node, inp.pods);
    let r = policies.render(&cfg.node, cluster);
    for e in r.errors() {
        c.notes.push(format!("policy {e}"));
    }
    let tables = r.tables();
    let mut reflect_used = false;
    for t in &tables.local_tables {
        let carriers: Vec<&String> = t.pods.iter().filter(|p| pod_if.contains_key(*p)).collect();
        if carriers.is_empty() {
            continue;
        }
        let slot = AclSlot::Local(t.id.clone());
        d.acls.insert(
            slot.clone(),
            AclContent {
                tag: t.id.clone(),
                rules: t.rules.iter().map(api_rule).collect(),
            },
        );
        c.why.insert(
            format!("acl {}", t.id),
            format!(
                "local table ({} rules) of pods {}",
                t.rules.len(),
                t.pods.join(", ")
            ),
        );
        for p in carriers {
            let i = d
                .interfaces
                .get_mut(&pod_if[p])
                .expect("pod_if only names interfaces inserted above");
            i.acl_in = vec![AclSlot::Reflect];
            i.acl_out = vec![slot.clone()];
            reflect_used = true;
        }
        c.local_tables += 1;
    }
    let global = &tables.global_table;
    let trivial = global.rules.len() == 1 && global.rules[0] == Rule::all(Action::Permit);
    if !trivial {
        // A permit-all global table changes no verdict, and the reflective sessions on
        // uplinks and tunnels only serve to let replies through it: both are left out then,
        // which spares a session per flow crossing the node.
        d.acls.insert(
            AclSlot::Global,
            AclContent {
                tag: global.id.clone(),
                rules: global.rules.iter().map(api_rule).collect(),
            },
        );
        c.why.insert(
            "acl global".into(),
            format!(
                "global table {} ({} rules): egress restrictions of local pods",
                global.id,
                global.rules.len()
            ),
        );
        for n in std::iter::once(&up).chain(&tunnels) {
            let i = d
                .interfaces
                .get_mut(n)
                .expect("uplink and tunnels were inserted above");
            i.acl_in = vec![AclSlot::Reflect];
            i.acl_out = vec![AclSlot::Global];
        }
        reflect_used = true;
    }
    if reflect_used {
        d.acls.insert(
            AclSlot::Reflect,
            AclContent {
                tag: REFLECT_TAG.into(),
                rules: vec![acl_to_api(&AclRuleN::any(AclAction::PermitReflect))],
            },
        );
        c.why.insert(
            "acl reflect".into(),
            "reflective permit-all on the input of isolated pods, uplink and tunnels (replies pass)"
                .into(),
        );
    }

    // NAT44.
    d.pool.insert(PoolName::Interface(up.clone()));
    c.why.insert(
        format!("nat44 pool {up}"),
        "SNAT to the uplink's address (internet traffic of pods)".into(),
    );
    let vxlan = MapKey {
        external: node_ip,
        proto: Some(17),
        port: cfg.vxlan_port,
    };
    d.identities.insert(vxlan, "vxlan".into());
    c.why.insert(
        format!("nat44 identity {vxlan}"),
        "VXLAN from other nodes reaches the node IP untranslated".into(),
    );
    if cfg.encryption.is_some() {
        let esp = MapKey {
            external: node_ip,
            proto: Some(50),
            port: 0,
        };
        d.identities.insert(esp, "esp".into());
        c.why.insert(
            format!("nat44 identity {esp}"),
            "ESP from other nodes reaches the node IP untranslated (encryption)".into(),
        );
        encryption(&inp, &peers, &mut d, &mut c);
    }
    let mut never: Vec<Prefix> = cfg.cluster_networks.clone();
    never.push(cfg.uplink.address.network());
    never.extend(cidrs.iter().map(|(p, _)| *p));
    never.sort();
    never.dedup();
    d.never_nat = never;
    c.why.insert(
        "nat44 never-nat".into(),
        "cluster networks, the node network and every pod CIDR keep their addresses".into(),
    );
    services(&inp, &mut d, &mut c);
    c.desired = d;
    c
}

/// Encryption between nodes: per peer, `sas_per_peer` SAs each way for the current key (and
/// the previous one during a rotation), and a rule that every packet to the peer's node IP
/// leaves encrypted by the outbound SAs of the key outbound uses now. Without a key, the rules
/// have no SA: traffic to other nodes is dropped, never sent in clear.
fn encryption(inp: &Inputs<'_>, peers: &[(String, Ipv4Addr)], d: &mut Desired, c: &mut Computed) {
    let cfg = inp.cfg;
    let Some(enc) = &cfg.encryption else { return };
    d.esp_grace_s = enc.grace.as_secs();
    c.why.insert(
        format!("esp {}", cfg.uplink.name),
        "esp4-encrypt on output, esp4-decrypt on input (encryption between nodes)".into(),
    );
    let Some(keys) = inp.keys else {
        c.notes.push(
            "encryption: no IPsec key in the store (secret kube-system/vpg-ipsec-keys): traffic to other nodes is dropped until one arrives".into(),
        );
        for (name, ip) in peers {
            d.esp_rules.insert(*ip, Vec::new());
            c.why.insert(
                format!("esp rule {ip}"),
                format!("all traffic to node {name}: encryption required, no key yet (dropped)"),
            );
        }
        return;
    };
    let workers = inp.workers.max(1);
    let gens: Vec<(u8, &MasterKey)> = std::iter::once((0, keys.current))
        .chain(keys.previous.map(|k| (1, k)))
        .collect();
    let out_gen = if keys.outbound_previous && keys.previous.is_some() {
        1
    } else {
        0
    };
    // Inbound SPIs must be unique on this node (vpgd finds an SA by its SPI alone).
    let mut in_spis: BTreeMap<u32, String> = BTreeMap::new();
    for (peer, ip) in peers {
        let mut rule = Vec::new();
        for &(generation, key) in &gens {
            for index in 0..enc.sas_per_peer {
                for outbound in [true, false] {
                    let (from, to) = if outbound {
                        (cfg.node.as_str(), peer.as_str())
                    } else {
                        (peer.as_str(), cfg.node.as_str())
                    };
                    let dv = derive(key, from, to, index);
                    let name = SaName {
                        peer: *ip,
                        outbound,
                        generation,
                        index,
                    };
                    if !outbound {
                        if let Some(other) = in_spis.get(&dv.spi) {
                            c.notes.push(format!(
                                "encryption: sa {name} (node {peer}) has the SPI {:#010x} of {other}; left out",
                                dv.spi
                            ));
                            continue;
                        }
                        in_spis.insert(dv.spi, format!("{name} (node {peer})"));
                    }
                    c.why.insert(
                        format!("esp sa {name}"),
                        format!(
                            "node {peer}, key id {} fingerprint {}, spi {:#010x}",
                            key.id,
                            dv.key.fingerprint(),
                            dv.spi
                        ),
                    );
                    d.esp_sas.insert(
                        name,
                        DesiredSa {
                            spi: dv.spi,
                            crypto: key.crypto,
                            key: dv.key,
                            key_id: key.id,
                            worker: Some(u32::from(index) % workers),
                            replay_window: ESP_REPLAY_WINDOW,
                        },
                    );
                    if outbound && generation == out_gen {
                        rule.push(name);
                    }
                }
            }
        }
        c.why.insert(
            format!("esp rule {ip}"),
            format!(
                "all traffic to node {peer} leaves encrypted (key id {}, {} SAs)",
                gens[usize::from(out_gen)].1.id,
                rule.len()
            ),
        );
        d.esp_rules.insert(*ip, rule);
    }
    c.esp_sas = d.esp_sas.len();
}

/// Service ports with ready endpoints → load-balanced mappings (out2in-only: an endpoint's own
/// connections are not translated by them).
fn services(inp: &Inputs<'_>, d: &mut Desired, c: &mut Computed) {
    let node_ip = inp.cfg.node_ip();
    for (key, s) in &inp.cluster.services {
        if s.type_ == ServiceType::ExternalName {
            continue;
        }
        let Some(IpAddr::V4(vip)) = s.cluster_ip else {
            continue;
        };
        let eps = inp.cluster.endpoints.get(key);
        for sp in &s.ports {
            let proto = match sp.protocol {
                Protocol::Tcp => 6,
                Protocol::Udp => 17,
                Protocol::Sctp => {
                    c.notes.push(format!(
                        "service {key} port {}: SCTP services are not translated",
                        sp.port
                    ));
                    continue;
                }
            };
            let mut locals = Vec::new();
            for sub in eps.iter().flat_map(|e| &e.subsets) {
                // Endpoints name their ports as the service does (one unnamed port when the
                // service has one port).
                let Some(ep) = sub
                    .ports
                    .iter()
                    .find(|p| p.name == sp.name && p.protocol == sp.protocol)
                else {
                    continue;
                };
                for a in &sub.addresses {
                    if let IpAddr::V4(ip) = a.ip {
                        locals.push(Nat44Local {
                            address: ip,
                            port: ep.port,
                            weight: 1,
                        });
                    }
                }
            }
            locals.sort_by_key(|l| (u32::from(l.address), l.port));
            locals.dedup();
            let port_name = sp.name.clone().unwrap_or_else(|| sp.port.to_string());
            if locals.is_empty() {
                c.notes.push(format!(
                    "service {key} port {port_name}: no ready endpoints"
                ));
                continue;
            }
            let mut add = |external: Ipv4Addr, port: u16, what: &str| {
                let m = canonical(Nat44Mapping {
                    external,
                    proto: Some(proto),
                    external_port: port,
                    locals: locals.clone(),
                    out2in_only: Some(true),
                    tag: format!("{key}:{port_name}"),
                });
                let k = MapKey::of(&m);
                if d.mappings.contains_key(&k) || d.identities.contains_key(&k) {
                    c.notes.push(format!(
                        "service {key} {what} {k}: taken by another mapping"
                    ));
                    return;
                }
                d.mappings.insert(k, m);
                c.why.insert(
                    format!("nat44 mapping {k}"),
                    format!(
                        "service {key} port {port_name} {what} → {} endpoints",
                        locals.len()
                    ),
                );
                c.services += 1;
            };
            add(vip, sp.port, "cluster IP");
            if let Some(np) = sp.node_port {
                if matches!(s.type_, ServiceType::NodePort | ServiceType::LoadBalancer) {
                    add(node_ip, np, "node port");
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::ipsec::MasterKey;
    use vpg_ksr::kinds::endpoints::{Address, EndpointPort, Subset};
    use vpg_ksr::kinds::service::ServicePort;
    use vpg_ksr::kinds::{
        EndpointsRecord, NamespaceRecord, NodeRecord, PolicyRecord, ServiceRecord,
    };
    use vpg_ksr::model::{Cidr, PortRef, Selector};

    pub fn cfg() -> NodeConfig {
        NodeConfig::parse(
            r#"
node = "n1"
[uplink]
host_if = "eth1"
name = "up0"
address = "192.168.1.1/24"
gateway = "192.168.1.254"
[pods]
cidr = "10.1.1.0/24"
[cluster]
networks = ["10.1.0.0/16", "10.96.0.0/12"]
[overlay]
vni = 7
[store]
embedded = "/tmp/x.redb"
"#,
        )
        .unwrap()
    }

    pub fn pod(n: u8, ns: &str, name: &str) -> LocalPod {
        crate::podrec::parse(
            &format!("c{n}@eth0.json"),
            crate::podrec::tests::record_json(
                &format!("c{n}"),
                ns,
                name,
                &format!("vpg0000000000{n:02x}"),
                &format!("10.1.1.{n}"),
            )
            .as_bytes(),
        )
        .unwrap()
    }

    pub fn cluster() -> ClusterState {
        let mut s = ClusterState::default();
        for (n, ip, cidr) in [
            ("n1", "192.168.1.1", "10.1.1.0/24"),
            ("n2", "192.168.1.2", "10.1.2.0/24"),
            ("n3", "192.168.1.3", "10.1.1.128/25"),
        ] {
            s.nodes.insert(
                n.into(),
                NodeRecord {
                    name: n.into(),
                    internal_ips: vec![ip.parse().unwrap()],
                    external_ips: vec![],
                    pod_cidrs: vec![cidr.parse::<Cidr>().unwrap()],
                },
            );
        }
        s.namespaces.insert(
            "default".into(),
            NamespaceRecord {
                name: "default".into(),
                labels: Default::default(),
            },
        );
        s.services.insert(
            "default/web".into(),
            ServiceRecord {
                namespace: "default".into(),
                name: "web".into(),
                type_: ServiceType::NodePort,
                cluster_ip: Some("10.96.0.10".parse().unwrap()),
                ports: vec![
                    ServicePort {
                        name: Some("http".into()),
                        protocol: Protocol::Tcp,
                        port: 80,
                        target_port: PortRef::Number(8080),
                        node_port: Some(30080),
                    },
                    ServicePort {
                        name: Some("dns".into()),
                        protocol: Protocol::Udp,
                        port: 53,
                        target_port: PortRef::Number(53),
                        node_port: None,
                    },
                ],
                selector: Default::default(),
            },
        );
        let addr = |ip: &str| Address {
            ip: ip.parse().unwrap(),
            node: None,
            pod: None,
        };
        s.endpoints.insert(
            "default/web".into(),
            EndpointsRecord {
                namespace: "default".into(),
                name: "web".into(),
                subsets: vec![Subset {
                    addresses: vec![addr("10.1.2.5"), addr("10.1.1.2")],
                    not_ready: vec![addr("10.1.1.3")],
                    ports: vec![EndpointPort {
                        name: Some("http".into()),
                        port: 8080,
                        protocol: Protocol::Tcp,
                    }],
                }],
            },
        );
        s
    }

    pub fn deny_all(ns: &str) -> PolicyRecord {
        PolicyRecord {
            namespace: ns.into(),
            name: "deny".into(),
            pod_selector: Selector::default(),
            ingress_isolation: true,
            egress_isolation: false,
            ingress: vec![],
            egress: vec![],
        }
    }

    fn run(cluster: &ClusterState, pods: &[LocalPod]) -> Computed {
        compute(Inputs {
            cfg: &cfg(),
            cluster,
            pods,
            excluded: &BTreeSet::new(),
            keys: None,
            workers: 1,
        })
    }

    #[test]
    fn names_and_macs() {
        assert!(is_pod_ifname("vpg0123456789ab"));
        assert!(!is_pod_ifname("vpg0123456789AB"));
        assert!(!is_pod_ifname("vpg0123456789a"));
        let a = "192.168.1.1".parse().unwrap();
        let b = "192.168.1.2".parse().unwrap();
        assert_eq!(tunnel_ifname(b), "vx c0a80102".replace(' ', ""));
        assert!(is_tunnel_ifname(&tunnel_ifname(b)));
        assert_ne!(tunnel_mac(a, b, 7), tunnel_mac(b, a, 7));
        assert_ne!(tunnel_mac(a, b, 7), tunnel_mac(a, b, 8));
        assert!(tunnel_mac(a, b, 7).is_unicast());
        assert_eq!(tunnel_mac(a, b, 7), tunnel_mac(a, b, 7));
    }

    #[test]
    fn the_node_without_pods_or_policies() {
        let c = run(&cluster(), &[]);
        let d = &c.desired;
        assert_eq!(
            d.interfaces.keys().collect::<Vec<_>>(),
            ["up0", "vxc0a80102", "vxc0a80103"],
            "n3's pod CIDR overlaps ours but its tunnel stays: {:?}",
            c.notes
        );
        let up = &d.interfaces["up0"];
        assert!(up.nat_outside && !up.nat_inside && up.acl_out.is_empty());
        let t = &d.interfaces["vxc0a80102"];
        match &t.kind {
            IfKind::Vxlan {
                local,
                remote,
                vni,
                port,
                mac,
                remote_mac,
            } => {
                assert_eq!(
                    (local.to_string(), remote.to_string(), *vni, *port),
                    ("192.168.1.1".into(), "192.168.1.2".into(), 7, 4789)
                );
                // The far end computes the mirror image.
                assert_eq!(*remote_mac, Some(tunnel_mac(*remote, *local, 7)));
                assert_eq!(*mac, tunnel_mac(*local, *remote, 7));
            }
            k => panic!("{k:?}"),
        }
        assert!(t.nat_inside);
        let routes: Vec<String> = d.routes.iter().map(|(p, r)| format!("{p} {r:?}")).collect();
        assert_eq!(
            routes,
            [
                "0.0.0.0/0 Via { next_hop: 192.168.1.254, interface: \"up0\" }",
                "10.1.1.0/24 Drop",
                "10.1.2.0/24 Attached { interface: \"vxc0a80102\" }",
            ]
        );
        assert!(
            c.notes
                .iter()
                .any(|n| n.contains("node n3: pod CIDR 10.1.1.128/25 overlaps node n1")),
            "{:?}",
            c.notes
        );
        assert!(d.acls.is_empty(), "no policy, no ACL");
        let nn: Vec<String> = d.never_nat.iter().map(|p| p.to_string()).collect();
        assert_eq!(
            nn,
            [
                "10.1.0.0/16",
                "10.1.1.0/24",
                "10.1.2.0/24",
                "10.96.0.0/12",
                "192.168.1.0/24"
            ]
        );
        assert_eq!(
            d.pool.iter().collect::<Vec<_>>(),
            [&PoolName::Interface("up0".into())]
        );
        let ids: Vec<String> = d.identities.keys().map(|k| k.to_string()).collect();
        assert_eq!(ids, ["192.168.1.1:4789/udp"]);
        // Services: the TCP port with two ready endpoints, on the VIP and the node port; the
        // UDP port has no endpoints.
        let maps: Vec<String> = d
            .mappings
            .values()
            .map(|m| {
                format!(
                    "{} -> {:?} {}",
                    MapKey::of(m),
                    m.locals
                        .iter()
                        .map(|l| format!("{}:{}", l.address, l.port))
                        .collect::<Vec<_>>(),
                    m.tag
                )
            })
            .collect();
        assert_eq!(
            maps,
            [
                "10.96.0.10:80/tcp -> [\"10.1.1.2:8080\", \"10.1.2.5:8080\"] default/web:http",
                "192.168.1.1:30080/tcp -> [\"10.1.1.2:8080\", \"10.1.2.5:8080\"] default/web:http",
            ]
        );
        assert!(c
            .notes
            .iter()
            .any(|n| n.contains("port dns: no ready endpoints")));
        assert!(c.why.contains_key("route 10.1.2.0/24"));
        assert!(d.mappings.values().all(|m| m.out2in_only == Some(true)));
    }

    #[test]
    fn pods_get_interfaces_routes_and_policies() {
        let mut s = cluster();
        let pods = [
            pod(2, "default", "a"),
            pod(3, "default", "b"),
            pod(4, "other", "c"),
        ];
        let c = run(&s, &pods);
        let p = &c.desired.interfaces["vpg000000000002"];
        assert_eq!(
            p.kind,
            IfKind::AfPacket {
                host_if: "vpg000000000002".into()
            }
        );
        assert_eq!(p.mtu, Some(1450));
        assert_eq!(
            p.addresses
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>(),
            ["10.1.1.1/32"]
        );
        assert!(
            p.proxy_arp.is_empty(),
            "a /32 pod only asks for its gateway"
        );
        assert_eq!(p.neighbors.len(), 1);
        assert!(p.nat_inside && p.acl_out.is_empty());
        assert_eq!(
            c.desired.routes[&"10.1.1.2/32".parse().unwrap()],
            PathByName::Attached {
                interface: "vpg000000000002".into()
            }
        );
        assert_eq!(c.pods, 3);
        // A deny-all policy in "default" isolates a and b (one shared table), not c.
        s.policies
            .insert("default/deny".into(), deny_all("default"));
        let c = run(&s, &pods);
        let d = &c.desired;
        let a = &d.interfaces["vpg000000000002"];
        let b = &d.interfaces["vpg000000000003"];
        let o = &d.interfaces["vpg000000000004"];
        assert_eq!(a.acl_in, [AclSlot::Reflect]);
        assert_eq!(a.acl_out, b.acl_out);
        assert!(matches!(&a.acl_out[0], AclSlot::Local(t) if t.starts_with("lt-")));
        assert!(o.acl_in.is_empty() && o.acl_out.is_empty());
        assert_eq!(c.local_tables, 1);
        assert!(d.acls.contains_key(&AclSlot::Reflect));
        assert!(
            !d.acls.contains_key(&AclSlot::Global),
            "ingress only: global stays permit-all"
        );
        assert!(d.interfaces["up0"].acl_out.is_empty());
        // An egress policy makes the global table matter: uplink and tunnels carry it.
        let mut eg = deny_all("default");
        eg.name = "no-egress".into();
        eg.ingress_isolation = false;
        eg.egress_isolation = true;
        s.policies.insert("default/no-egress".into(), eg);
        let d = run(&s, &pods).desired;
        assert_eq!(d.interfaces["up0"].acl_out, [AclSlot::Global]);
        assert_eq!(d.interfaces["vxc0a80102"].acl_in, [AclSlot::Reflect]);
        assert!(d.acls[&AclSlot::Global].rules.len() > 1);
    }

    #[test]
    fn bad_pods_are_left_out_with_a_note() {
        let mut wrong_net = pod(5, "default", "x");
        wrong_net.ip = "10.9.9.9".parse().unwrap();
        let mut wrong_name = pod(6, "default", "y");
        wrong_name.host_if = "veth123".into();
        let excluded: BTreeSet<String> = ["vpg000000000007".to_string()].into();
        let c = compute(Inputs {
            cfg: &cfg(),
            cluster: &cluster(),
            pods: &[
                wrong_net,
                wrong_name,
                pod(7, "default", "z"),
                pod(8, "default", "ok"),
            ],
            excluded: &excluded,
            keys: None,
            workers: 1,
        });
        assert_eq!(c.pods, 1);
        assert_eq!(
            c.notes.iter().filter(|n| n.starts_with("pod ")).count(),
            3,
            "{:?}",
            c.notes
        );
    }

    /// Node `node` (address 192.168.1.`n`) with encryption, two SAs per peer.
    fn enc_cfg(node: &str, n: u8) -> NodeConfig {
        NodeConfig::parse(&format!(
            r#"
node = "{node}"
[uplink]
host_if = "eth1"
name = "up0"
address = "192.168.1.{n}/24"
gateway = "192.168.1.254"
[pods]
cidr = "10.1.{n}.0/24"
[overlay]
vni = 7
[store]
embedded = "/tmp/x.redb"
[encryption]
enabled = true
sas_per_peer = 2
"#
        ))
        .unwrap()
    }

    fn enc_run(cfg: &NodeConfig, keys: Option<EspKeys<'_>>) -> Computed {
        compute(Inputs {
            cfg,
            cluster: &cluster(),
            pods: &[],
            excluded: &BTreeSet::new(),
            keys,
            workers: 2,
        })
    }

    fn keys(k: &MasterKey) -> Option<EspKeys<'_>> {
        Some(EspKeys {
            current: k,
            previous: None,
            outbound_previous: false,
        })
    }

    #[test]
    fn encryption_gives_sas_both_ways_a_rule_per_peer_the_esp_identity_and_mtu() {
        let k = MasterKey::for_test(3, 9, 20);
        let c1 = enc_run(&enc_cfg("n1", 1), keys(&k));
        let d = &c1.desired;
        assert!(d.interfaces["up0"].esp);
        assert!(!d.interfaces["vxc0a80102"].esp);
        assert_eq!(d.interfaces["vxc0a80102"].mtu, Some(1400));
        let ids: Vec<String> = d.identities.keys().map(|k| k.to_string()).collect();
        assert_eq!(ids, ["192.168.1.1:4789/udp", "192.168.1.1/50"]);
        // Peers n2 and n3: 2 SAs each way each.
        assert_eq!(d.esp_sas.len(), 8, "{:?}", c1.notes);
        assert_eq!(c1.esp_sas, 8);
        let n2: Ipv4Addr = "192.168.1.2".parse().unwrap();
        let rule = &d.esp_rules[&n2];
        assert_eq!(rule.len(), 2);
        assert!(rule
            .iter()
            .all(|n| n.outbound && n.peer == n2 && n.generation == 0));
        let workers: Vec<Option<u32>> = rule.iter().map(|n| d.esp_sas[n].worker).collect();
        assert_eq!(workers, [Some(0), Some(1)]);
        assert!(d
            .esp_sas
            .values()
            .all(|s| s.key_id == 3 && s.replay_window == ESP_REPLAY_WINDOW));
        // Node n2 computes the mirror image: n1's outbound SA i is n2's inbound SA i.
        let c2 = enc_run(&enc_cfg("n2", 2), keys(&k));
        let n1: Ipv4Addr = "192.168.1.1".parse().unwrap();
        for index in 0..2 {
            for (a, b) in [(&c1, &c2), (&c2, &c1)] {
                let (a_peer, b_peer) = if std::ptr::eq(a, &c1) {
                    (n2, n1)
                } else {
                    (n1, n2)
                };
                let out = &a.desired.esp_sas[&SaName {
                    peer: a_peer,
                    outbound: true,
                    generation: 0,
                    index,
                }];
                let inb = &b.desired.esp_sas[&SaName {
                    peer: b_peer,
                    outbound: false,
                    generation: 0,
                    index,
                }];
                assert_eq!((out.spi, &out.key), (inb.spi, &inb.key));
            }
        }
        // Inbound SPIs are distinct on a node; each direction has its own key.
        let spis: BTreeSet<u32> = d
            .esp_sas
            .iter()
            .filter(|(n, _)| !n.outbound)
            .map(|(_, s)| s.spi)
            .collect();
        assert_eq!(spis.len(), 4);
        let fps: BTreeSet<String> = d.esp_sas.values().map(|s| s.key.fingerprint()).collect();
        assert_eq!(fps.len(), 8);
        // No key in what status shows (reasons, the SAs as JSON and Debug).
        let shown = format!(
            "{:?} {} {:?}",
            c1.why,
            serde_json::to_string(&d.esp_sas).unwrap(),
            d.esp_sas
        );
        let hex = crate::ipsec::key_hex(&d.esp_sas[&rule[0]].key);
        assert!(!shown.contains(&hex[..16]), "a key shows");
        assert!(shown.contains(&d.esp_sas[&rule[0]].key.fingerprint()));
    }

    #[test]
    fn encryption_without_a_key_drops_rather_than_sends_in_clear() {
        let c = enc_run(&enc_cfg("n1", 1), None);
        assert!(c.desired.esp_sas.is_empty());
        assert_eq!(c.desired.esp_rules.len(), 2);
        assert!(c.desired.esp_rules.values().all(Vec::is_empty));
        assert!(
            c.notes.iter().any(|n| n.contains("no IPsec key")),
            "{:?}",
            c.notes
        );
        assert!(c.desired.interfaces["up0"].esp);
        // Encryption off: nothing of it.
        let off = run(&cluster(), &[]);
        assert!(off.desired.esp_rules.is_empty() && !off.desired.interfaces["up0"].esp);
        assert_eq!(off.desired.interfaces["vxc0a80102"].mtu, None);
    }

    #[test]
    fn rotation_keeps_both_generations_and_outbound_on_the_old_key_until_the_switch() {
        let (old, new) = (
            MasterKey::for_test(3, 9, 20),
            MasterKey::for_test(4, 10, 20),
        );
        let cfg = enc_cfg("n1", 1);
        let n2: Ipv4Addr = "192.168.1.2".parse().unwrap();
        let before = enc_run(&cfg, keys(&old));
        let during = enc_run(
            &cfg,
            Some(EspKeys {
                current: &new,
                previous: Some(&old),
                outbound_previous: true,
            }),
        );
        let after = enc_run(&cfg, keys(&new));
        assert_eq!(during.desired.esp_sas.len(), 16);
        // The old key's SAs are exactly those of before (same SPIs and keys, so the diff
        // keeps them); the rule still names old-key SAs.
        let old_sas: Vec<&DesiredSa> = during
            .desired
            .esp_sas
            .iter()
            .filter(|(n, _)| n.generation == 1)
            .map(|(_, s)| s)
            .collect();
        let before_sas: Vec<&DesiredSa> = before.desired.esp_sas.values().collect();
        assert_eq!(old_sas, before_sas);
        let out_keys = |c: &Computed| -> Vec<u8> {
            c.desired.esp_rules[&n2]
                .iter()
                .map(|n| c.desired.esp_sas[n].key_id)
                .collect()
        };
        assert_eq!(out_keys(&before), [3, 3]);
        assert_eq!(out_keys(&during), [3, 3]);
        assert_eq!(out_keys(&after), [4, 4]);
        // The new key changes every SPI.
        let spis =
            |c: &Computed| -> BTreeSet<u32> { c.desired.esp_sas.values().map(|s| s.spi).collect() };
        assert!(spis(&before).is_disjoint(&spis(&after)));
    }

    #[test]
    fn pure_and_deterministic() {
        let mut s = cluster();
        s.policies
            .insert("default/deny".into(), deny_all("default"));
        let pods = [pod(2, "default", "a"), pod(3, "default", "b")];
        assert_eq!(run(&s, &pods), run(&s, &pods));
    }
}
