//! Interface messages.

use crate::types::{Mac, Prefix};
use crate::ApiError;
use serde::{Deserialize, Serialize};

/// Checks a Linux interface name.
pub fn check_ifname(field: &str, name: &str) -> Result<(), ApiError> {
    if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
        return Err(ApiError::new(
            crate::ErrorCode::BadRequest,
            format!("'{name}' is not an interface name (1 to 15 bytes, no '/' or space)"),
        )
        .field(field));
    }
    Ok(())
}

/// Checks an MTU.
pub fn check_mtu(mtu: u16) -> Result<(), ApiError> {
    if !(68..=9000).contains(&mtu) {
        return Err(ApiError::new(
            crate::ErrorCode::BadRequest,
            format!("{mtu} is out of range 68..=9000"),
        )
        .field("mtu"));
    }
    Ok(())
}

/// Counters of an interface (summed over workers).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceCounters {
    /// Packets received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets dropped that arrived on it.
    pub drops: u64,
}

/// One interface, as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceDetails {
    /// Index.
    pub sw_if: u32,
    /// vpg's name.
    pub name: String,
    /// Linux interface it is attached to.
    pub host_if: String,
    /// MAC.
    pub mac: Mac,
    /// Admin state.
    pub admin_up: bool,
    /// MTU.
    pub mtu: u16,
    /// Addresses.
    pub addresses: Vec<Prefix>,
    /// Proxy-ARP prefixes.
    pub proxy_arp: Vec<Prefix>,
    /// Counters.
    pub counters: InterfaceCounters,
}
