//! Configuration items and transactions: every change the API can make.
//!
//! A `config` request carries one [`ConfigItem`]; a `transaction` carries many, applied
//! all-or-nothing. The protocol for a transaction: the server validates every item first
//! ([`validate_all`] for what needs no state, then the daemon's own checks against its tables,
//! on a copy), and only when all pass are they swapped into the workers' configuration together,
//! between frames. A refused item is named by its index ([`ApiError::item`]) and nothing
//! changes. This crate owns the items and the stateless half of the checks; vpgd applies.
//!
//! Items are tagged by `op` and refuse unknown fields, so a typo (`"mut": 9000`) is an error
//! that names the field rather than a change that silently does nothing.

use crate::acl::{check_rules, AclRule, AclSessionSettings, Direction};
use crate::feature::check_feature;
use crate::interface::{check_address, check_ifname, check_mac, check_mtu, check_proxy_arp};
use crate::nat44::{
    check_identity, check_mapping, check_pool_entry, check_settings, Nat44Identity, Nat44Mapping,
    Nat44MappingKey, Nat44PoolEntry, Nat44Settings,
};
use crate::neighbor::check_neighbor;
use crate::route::{check_route, check_route_prefix, RoutePath};
use crate::types::{Mac, Prefix};
use crate::vxlan::check_vxlan_tunnel;
use crate::ApiError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

pub use crate::feature::ARCS;

/// One configuration change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfigItem {
    /// Attach a Linux interface with AF_PACKET; the reply carries the new interface index.
    CreateAfPacket {
        /// Linux interface.
        host_if: String,
        /// vpg's name (default: host_if).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// MAC (default: the host interface's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<Mac>,
    },
    /// Detach an interface.
    DeleteInterface {
        /// Interface.
        sw_if: u32,
    },
    /// Admin up or down.
    SetAdminState {
        /// Interface.
        sw_if: u32,
        /// Up.
        up: bool,
    },
    /// MAC address.
    SetMac {
        /// Interface.
        sw_if: u32,
        /// MAC.
        mac: Mac,
    },
    /// MTU (68–9000).
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
        /// Address/length.
        prefix: Prefix,
    },
    /// Remove an address.
    DelAddress {
        /// Interface.
        sw_if: u32,
        /// Address/length.
        prefix: Prefix,
    },
    /// Replace the proxy-ARP prefixes of an interface.
    SetProxyArp {
        /// Interface.
        sw_if: u32,
        /// Prefixes.
        prefixes: Vec<Prefix>,
    },
    /// Add a route.
    AddRoute {
        /// Prefix (no host bits).
        prefix: Prefix,
        /// Path.
        path: RoutePath,
    },
    /// Delete a route.
    DelRoute {
        /// Prefix.
        prefix: Prefix,
    },
    /// Add or replace a neighbor.
    AddNeighbor {
        /// Interface.
        sw_if: u32,
        /// Address.
        ip: Ipv4Addr,
        /// MAC.
        mac: Mac,
    },
    /// Delete a neighbor.
    DelNeighbor {
        /// Interface.
        sw_if: u32,
        /// Address.
        ip: Ipv4Addr,
    },
    /// Enable a feature on an interface's arc.
    EnableFeature {
        /// `ip4-unicast` or `ip4-output`.
        arc: String,
        /// Feature node name.
        feature: String,
        /// Interface.
        sw_if: u32,
    },
    /// Disable a feature.
    DisableFeature {
        /// Arc.
        arc: String,
        /// Feature node name.
        feature: String,
        /// Interface.
        sw_if: u32,
    },
    /// Add an ACL, or replace the rules and tag of an existing one (interfaces using it switch
    /// between frames).
    AclAddReplace {
        /// ACL id.
        acl_id: u32,
        /// Name.
        #[serde(default)]
        tag: String,
        /// Rules, first match wins; no match denies.
        rules: Vec<AclRule>,
    },
    /// Delete an ACL no interface uses.
    AclDelete {
        /// ACL id.
        acl_id: u32,
    },
    /// Set an interface's ordered ACL list in one direction (empty removes ACLs there).
    AclSetInterface {
        /// Interface.
        sw_if: u32,
        /// Direction.
        direction: Direction,
        /// ACL ids, in order.
        acls: Vec<u32>,
    },
    /// Session settings.
    AclSessions(AclSessionSettings),
    /// Create a VXLAN tunnel interface (admin up, MTU 1450); the reply carries its index.
    CreateVxlanTunnel {
        /// This node's VTEP address (one of its own).
        local: Ipv4Addr,
        /// The far VTEP.
        remote: Ipv4Addr,
        /// VXLAN network identifier (0–16777215).
        vni: u32,
        /// UDP destination port (default 4789).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        port: Option<u16>,
        /// Interface name (default `vxlan_tunnel<index>`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
        /// The tunnel interface's MAC (default: derived from the local VTEP and the index).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mac: Option<Mac>,
        /// The far end's inner MAC (default: learned from traffic through the tunnel).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        remote_mac: Option<Mac>,
    },
    /// Delete a VXLAN tunnel interface.
    DeleteVxlanTunnel {
        /// Its interface.
        sw_if: u32,
    },
    /// Add an address (or an interface's address) to the NAT44 pool.
    Nat44AddPool(Nat44PoolEntry),
    /// Remove a pool entry (its sessions go).
    Nat44DelPool(Nat44PoolEntry),
    /// Set an interface's NAT44 role (both false: NAT off on it).
    Nat44SetInterface {
        /// Interface.
        sw_if: u32,
        /// Inside: SNAT applies to what it sends, services to what it sends.
        #[serde(default)]
        inside: bool,
        /// Outside (output-feature mode): SNAT on output, return traffic on input.
        #[serde(default)]
        outside: bool,
    },
    /// Add or replace (same external address, protocol and port) a static mapping.
    Nat44AddMapping(Nat44Mapping),
    /// Delete a static mapping (its sessions go).
    Nat44DelMapping(Nat44MappingKey),
    /// Add an identity mapping.
    Nat44AddIdentity(Nat44Identity),
    /// Delete an identity mapping.
    Nat44DelIdentity(Nat44Identity),
    /// NAT44 settings (absent fields keep their value).
    Nat44Settings(Nat44Settings),
    /// Add an IPsec ESP SA (1.2).
    EspSaAdd(crate::esp::EspSaAdd),
    /// Delete an ESP SA (refused while a protect rule uses it).
    EspSaDel {
        /// The SA.
        sa_id: u32,
    },
    /// Retire an ESP SA: usable for `grace_s` more seconds, then it drops what it sees (key
    /// rotation's last step).
    EspSaRetire {
        /// The SA.
        sa_id: u32,
        /// Grace period in seconds.
        grace_s: u64,
    },
    /// Add (or replace) an ESP protect rule.
    EspProtectAdd(crate::esp::EspProtectAdd),
    /// Delete an ESP protect rule.
    EspProtectDel {
        /// The rule.
        rule_id: u32,
    },
}

impl ConfigItem {
    /// `enable_feature` (`on`) or `disable_feature` of `feature` on `arc` of `sw_if`.
    pub fn feature(
        on: bool,
        arc: impl Into<String>,
        feature: impl Into<String>,
        sw_if: u32,
    ) -> Self {
        let (arc, feature) = (arc.into(), feature.into());
        if on {
            ConfigItem::EnableFeature {
                arc,
                feature,
                sw_if,
            }
        } else {
            ConfigItem::DisableFeature {
                arc,
                feature,
                sw_if,
            }
        }
    }

    /// The item's tag (`add_route`), for messages.
    pub fn op(&self) -> &'static str {
        match self {
            ConfigItem::CreateAfPacket { .. } => "create_af_packet",
            ConfigItem::DeleteInterface { .. } => "delete_interface",
            ConfigItem::SetAdminState { .. } => "set_admin_state",
            ConfigItem::SetMac { .. } => "set_mac",
            ConfigItem::SetMtu { .. } => "set_mtu",
            ConfigItem::AddAddress { .. } => "add_address",
            ConfigItem::DelAddress { .. } => "del_address",
            ConfigItem::SetProxyArp { .. } => "set_proxy_arp",
            ConfigItem::AddRoute { .. } => "add_route",
            ConfigItem::DelRoute { .. } => "del_route",
            ConfigItem::AddNeighbor { .. } => "add_neighbor",
            ConfigItem::DelNeighbor { .. } => "del_neighbor",
            ConfigItem::EnableFeature { .. } => "enable_feature",
            ConfigItem::DisableFeature { .. } => "disable_feature",
            ConfigItem::AclAddReplace { .. } => "acl_add_replace",
            ConfigItem::AclDelete { .. } => "acl_delete",
            ConfigItem::AclSetInterface { .. } => "acl_set_interface",
            ConfigItem::AclSessions(_) => "acl_sessions",
            ConfigItem::CreateVxlanTunnel { .. } => "create_vxlan_tunnel",
            ConfigItem::DeleteVxlanTunnel { .. } => "delete_vxlan_tunnel",
            ConfigItem::Nat44AddPool(_) => "nat44_add_pool",
            ConfigItem::Nat44DelPool(_) => "nat44_del_pool",
            ConfigItem::Nat44SetInterface { .. } => "nat44_set_interface",
            ConfigItem::Nat44AddMapping(_) => "nat44_add_mapping",
            ConfigItem::Nat44DelMapping(_) => "nat44_del_mapping",
            ConfigItem::Nat44AddIdentity(_) => "nat44_add_identity",
            ConfigItem::Nat44DelIdentity(_) => "nat44_del_identity",
            ConfigItem::Nat44Settings(_) => "nat44_settings",
            ConfigItem::EspSaAdd(_) => "esp_sa_add",
            ConfigItem::EspSaDel { .. } => "esp_sa_del",
            ConfigItem::EspSaRetire { .. } => "esp_sa_retire",
            ConfigItem::EspProtectAdd(_) => "esp_protect_add",
            ConfigItem::EspProtectDel { .. } => "esp_protect_del",
        }
    }

    /// The object the item changes, as errors name it (`interface 3`, `route 10.0.0.0/8`,
    /// `address 10.0.2.1/24 on interface 1`).
    pub fn object(&self) -> String {
        match self {
            ConfigItem::CreateAfPacket { host_if, .. } => format!("host interface {host_if}"),
            ConfigItem::DeleteInterface { sw_if }
            | ConfigItem::SetAdminState { sw_if, .. }
            | ConfigItem::SetMac { sw_if, .. }
            | ConfigItem::SetMtu { sw_if, .. }
            | ConfigItem::SetProxyArp { sw_if, .. } => format!("interface {sw_if}"),
            ConfigItem::AddAddress { sw_if, prefix } | ConfigItem::DelAddress { sw_if, prefix } => {
                format!("address {prefix} on interface {sw_if}")
            }
            ConfigItem::AddRoute { prefix, .. } | ConfigItem::DelRoute { prefix } => {
                format!("route {prefix}")
            }
            ConfigItem::AddNeighbor { sw_if, ip, .. } | ConfigItem::DelNeighbor { sw_if, ip } => {
                format!("neighbor {ip} on interface {sw_if}")
            }
            ConfigItem::EnableFeature {
                arc,
                feature,
                sw_if,
            }
            | ConfigItem::DisableFeature {
                arc,
                feature,
                sw_if,
            } => format!("feature {feature} on arc {arc} of interface {sw_if}"),
            ConfigItem::AclAddReplace { acl_id, .. } | ConfigItem::AclDelete { acl_id } => {
                format!("acl {acl_id}")
            }
            ConfigItem::AclSetInterface {
                sw_if, direction, ..
            } => format!("{} acls of interface {sw_if}", direction.as_str()),
            ConfigItem::AclSessions(_) => "acl sessions".into(),
            ConfigItem::CreateVxlanTunnel {
                local,
                remote,
                vni,
                port,
                ..
            } => format!(
                "vxlan tunnel {local} -> {remote} vni {vni} port {}",
                port.unwrap_or(crate::vxlan::DEFAULT_VXLAN_PORT)
            ),
            ConfigItem::DeleteVxlanTunnel { sw_if } => format!("vxlan tunnel {sw_if}"),
            ConfigItem::Nat44AddPool(e) | ConfigItem::Nat44DelPool(e) => match (e.address, e.sw_if)
            {
                (Some(a), _) => format!("nat44 pool address {a}"),
                (None, Some(i)) => format!("nat44 pool address of interface {i}"),
                (None, None) => "nat44 pool entry".into(),
            },
            ConfigItem::Nat44SetInterface { sw_if, .. } => format!("nat44 interface {sw_if}"),
            ConfigItem::Nat44AddMapping(m) => {
                crate::nat44::mapping_name(m.external, m.proto, m.external_port)
            }
            ConfigItem::Nat44DelMapping(k) => {
                crate::nat44::mapping_name(k.external, k.proto, k.external_port)
            }
            ConfigItem::Nat44AddIdentity(m) | ConfigItem::Nat44DelIdentity(m) => format!(
                "nat44 identity {}",
                crate::nat44::mapping_name(m.address, m.proto, m.port)
            ),
            ConfigItem::Nat44Settings(_) => "nat44 settings".into(),
            ConfigItem::EspSaAdd(sa) => format!("esp sa {}", sa.sa_id),
            ConfigItem::EspSaDel { sa_id } | ConfigItem::EspSaRetire { sa_id, .. } => {
                format!("esp sa {sa_id}")
            }
            ConfigItem::EspProtectAdd(r) => format!("esp protect rule {}", r.rule_id),
            ConfigItem::EspProtectDel { rule_id } => format!("esp protect rule {rule_id}"),
        }
    }

    /// Checks what can be checked without the daemon's state: names (1 to 15 bytes, as Linux
    /// wants), MTU (68..=9000), route and proxy-ARP prefixes without host bits, unicast MACs,
    /// host addresses, known arcs. The error names the object and the field.
    pub fn validate(&self) -> Result<(), ApiError> {
        let r = match self {
            ConfigItem::CreateAfPacket { host_if, name, mac } => check_ifname("host_if", host_if)
                .and_then(|()| name.as_deref().map_or(Ok(()), |n| check_ifname("name", n)))
                .and_then(|()| mac.map_or(Ok(()), |m| check_mac("mac", m))),
            ConfigItem::DeleteInterface { .. } | ConfigItem::SetAdminState { .. } => Ok(()),
            ConfigItem::SetMac { mac, .. } => check_mac("mac", *mac),
            ConfigItem::SetMtu { mtu, .. } => check_mtu(*mtu),
            ConfigItem::AddAddress { prefix, .. } | ConfigItem::DelAddress { prefix, .. } => {
                check_address(*prefix)
            }
            ConfigItem::SetProxyArp { prefixes, .. } => check_proxy_arp(prefixes),
            ConfigItem::AddRoute { prefix, path } => check_route(*prefix, path),
            ConfigItem::DelRoute { prefix } => check_route_prefix(*prefix),
            ConfigItem::AddNeighbor { ip, mac, .. } => check_neighbor(*ip, Some(*mac)),
            ConfigItem::DelNeighbor { ip, .. } => check_neighbor(*ip, None),
            ConfigItem::EnableFeature { arc, feature, .. }
            | ConfigItem::DisableFeature { arc, feature, .. } => check_feature(arc, feature),
            ConfigItem::AclAddReplace { rules, .. } => check_rules(rules),
            ConfigItem::AclDelete { .. }
            | ConfigItem::AclSetInterface { .. }
            | ConfigItem::AclSessions(_) => Ok(()),
            ConfigItem::CreateVxlanTunnel {
                local,
                remote,
                vni,
                port,
                name,
                mac,
                remote_mac,
            } => check_vxlan_tunnel(
                *local,
                *remote,
                *vni,
                *port,
                name.as_deref(),
                [
                    mac.map(|m| ("mac", m)),
                    remote_mac.map(|m| ("remote_mac", m)),
                ],
            ),
            ConfigItem::DeleteVxlanTunnel { .. } => Ok(()),
            ConfigItem::Nat44AddPool(e) | ConfigItem::Nat44DelPool(e) => check_pool_entry(e),
            ConfigItem::Nat44SetInterface { .. } => Ok(()),
            ConfigItem::Nat44AddMapping(m) => check_mapping(m),
            ConfigItem::Nat44DelMapping(k) => {
                crate::interface::check_host_ip("external", k.external)
            }
            ConfigItem::Nat44AddIdentity(m) | ConfigItem::Nat44DelIdentity(m) => check_identity(m),
            ConfigItem::Nat44Settings(s) => check_settings(s),
            ConfigItem::EspSaAdd(sa) => sa.check(),
            ConfigItem::EspProtectAdd(r) => r.check(),
            ConfigItem::EspSaDel { .. }
            | ConfigItem::EspSaRetire { .. }
            | ConfigItem::EspProtectDel { .. } => Ok(()),
        };
        r.map_err(|e| e.or_object(|| self.object()))
    }
}

/// Validates every item of a transaction, in order; the first refusal carries its index.
pub fn validate_all(items: &[ConfigItem]) -> Result<(), ApiError> {
    for (i, it) in items.iter().enumerate() {
        it.validate().map_err(|e| e.item(i))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_object_field_and_item() {
        let e = ConfigItem::SetMtu { sw_if: 1, mtu: 20 }
            .validate()
            .unwrap_err();
        assert_eq!(e.object.as_deref(), Some("interface 1"));
        assert_eq!(e.field.as_deref(), Some("mtu"));
        assert_eq!(
            e.to_string(),
            "interface 1: mtu 20 is out of range 68..=9000"
        );
        let items = vec![
            ConfigItem::AddRoute {
                prefix: "10.5.0.0/16".parse().unwrap(),
                path: RoutePath::Drop,
            },
            ConfigItem::AddRoute {
                prefix: "10.6.0.1/16".parse().unwrap(),
                path: RoutePath::Drop,
            },
        ];
        let e = validate_all(&items).unwrap_err();
        assert_eq!(e.item, Some(1));
        assert_eq!(
            e.to_string(),
            "item 1: route 10.6.0.1/16: prefix 10.6.0.1/16 has host bits set (did you mean 10.6.0.0/16?)"
        );
        assert!(validate_all(&items[..1]).is_ok());
    }
}
