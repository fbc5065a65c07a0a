//! Configuration items: every change the API can make. A single request carries one; a
//! transaction carries many, applied all-or-nothing.

use crate::interface::{check_ifname, check_mtu};
use crate::route::RoutePath;
use crate::types::{Mac, Prefix};
use crate::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The feature arcs.
pub const ARCS: [&str; 2] = ["ip4-unicast", "ip4-output"];

/// One configuration change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum ConfigItem {
    /// Attach a Linux interface with AF_PACKET; replies with the new interface index.
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
}

fn bad(field: &str, msg: String) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, msg).field(field)
}

impl ConfigItem {
    /// Checks what can be checked without the daemon's state.
    pub fn validate(&self) -> Result<(), ApiError> {
        match self {
            ConfigItem::CreateAfPacket { host_if, name, .. } => {
                check_ifname("host_if", host_if)?;
                if let Some(n) = name {
                    check_ifname("name", n)?;
                }
            }
            ConfigItem::SetMtu { mtu, .. } => check_mtu(*mtu)?,
            ConfigItem::AddRoute { prefix, .. } | ConfigItem::DelRoute { prefix }
                if !prefix.is_network() =>
            {
                return Err(bad(
                    "prefix",
                    format!(
                        "{prefix} has host bits set (did you mean {}?)",
                        network(*prefix)
                    ),
                )
                .object(format!("route {prefix}")));
            }
            ConfigItem::SetProxyArp { prefixes, .. } => {
                if let Some(p) = prefixes.iter().find(|p| !p.is_network()) {
                    return Err(bad("prefixes", format!("{p} has host bits set")));
                }
            }
            ConfigItem::EnableFeature { arc, .. } | ConfigItem::DisableFeature { arc, .. }
                if !ARCS.contains(&arc.as_str()) =>
            {
                return Err(bad(
                    "arc",
                    format!("'{arc}' is not an arc (ip4-unicast or ip4-output)"),
                ));
            }
            _ => {}
        }
        Ok(())
    }
}

fn network(p: Prefix) -> Prefix {
    let mask = if p.len == 0 {
        0
    } else {
        u32::MAX << (32 - p.len as u32)
    };
    Prefix {
        addr: Ipv4Addr::from(u32::from(p.addr) & mask),
        len: p.len,
    }
}
