//! Interface messages: what can be checked about an interface change without the daemon's
//! state, and the dump's row.
//!
//! The changes themselves are [`ConfigItem`](crate::ConfigItem) variants
//! (`create_af_packet`, `delete_interface`, `set_admin_state`, `set_mac`, `set_mtu`,
//! `add_address`, `del_address`, `set_proxy_arp`); `dump_interfaces` answers with one
//! [`InterfaceDetails`] per interface.

use crate::types::{Mac, Prefix};
use crate::ApiError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Longest interface name: Linux's `IFNAMSIZ` (16) less the terminating NUL.
pub const MAX_IFNAME: usize = 15;
/// Smallest MTU accepted (IPv4's minimum, RFC 791).
pub const MIN_MTU: u16 = 68;
/// Largest MTU accepted (a jumbo frame).
pub const MAX_MTU: u16 = 9000;

/// Checks an interface name the way Linux does (`dev_valid_name`): 1 to 15 bytes, not `.` or
/// `..`, no `/`, `:`, white space or control character.
pub fn check_ifname(field: &str, name: &str) -> Result<(), ApiError> {
    let why = if name.is_empty() {
        "is empty"
    } else if name.len() > MAX_IFNAME {
        "is longer than 15 bytes"
    } else if name == "." || name == ".." {
        "is reserved"
    } else if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        "contains '/', ':', a space or a control character"
    } else {
        return Ok(());
    };
    Err(ApiError::bad_request(
        field,
        format!("{field} '{}' {why}", name.escape_debug()),
    ))
}

/// Checks an MTU: [`MIN_MTU`]..=[`MAX_MTU`].
pub fn check_mtu(mtu: u16) -> Result<(), ApiError> {
    if !(MIN_MTU..=MAX_MTU).contains(&mtu) {
        return Err(ApiError::bad_request(
            "mtu",
            format!("mtu {mtu} is out of range {MIN_MTU}..={MAX_MTU}"),
        ));
    }
    Ok(())
}

/// Checks a MAC that names an interface or a neighbor: not a group address, not zero.
pub fn check_mac(field: &str, mac: Mac) -> Result<(), ApiError> {
    if !mac.is_unicast() {
        return Err(ApiError::bad_request(
            field,
            format!("{field} {mac} is not a unicast MAC address"),
        ));
    }
    Ok(())
}

/// Checks an IPv4 address that must name one host: not 0.0.0.0, not multicast, not
/// 255.255.255.255.
pub fn check_host_ip(field: &str, ip: Ipv4Addr) -> Result<(), ApiError> {
    let why = if ip.is_unspecified() {
        "is unspecified"
    } else if ip.is_multicast() {
        "is multicast"
    } else if ip.is_broadcast() {
        "is the broadcast address"
    } else {
        return Ok(());
    };
    Err(ApiError::bad_request(field, format!("{field} {ip} {why}")))
}

/// Checks an interface address: a host address with a length of 1 to 32 (host bits are
/// expected: `10.0.2.1/24`).
pub fn check_address(prefix: Prefix) -> Result<(), ApiError> {
    if prefix.len == 0 {
        return Err(ApiError::bad_request(
            "prefix",
            format!("prefix {prefix} has length 0: an interface address needs a subnet"),
        ));
    }
    check_host_ip("prefix", prefix.addr)
}

/// Checks proxy-ARP ranges: networks without host bits.
pub fn check_proxy_arp(prefixes: &[Prefix]) -> Result<(), ApiError> {
    for (i, p) in prefixes.iter().enumerate() {
        if !p.is_network() {
            return Err(ApiError::bad_request(
                "prefixes",
                format!(
                    "prefixes[{i}] {p} has host bits set (did you mean {}?)",
                    p.network()
                ),
            ));
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_linux_rules() {
        for ok in ["eth0", "veth-pod1", "a", "fifteen-bytes-x", "up0.100"] {
            check_ifname("host_if", ok).unwrap();
        }
        for bad in [
            "",
            "sixteen-bytes-xx",
            ".",
            "..",
            "a/b",
            "eth0:1",
            "a b",
            "a\tb",
            "a\0b",
        ] {
            let e = check_ifname("host_if", bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("host_if"), "{bad}");
        }
        let e = check_ifname("name", "").unwrap_err();
        assert_eq!(e.to_string(), "name '' is empty");
    }

    #[test]
    fn mtu_bounds_are_inclusive() {
        assert!(check_mtu(67).is_err());
        assert!(check_mtu(68).is_ok());
        assert!(check_mtu(9000).is_ok());
        let e = check_mtu(9001).unwrap_err();
        assert_eq!(e.to_string(), "mtu 9001 is out of range 68..=9000");
    }

    #[test]
    fn addresses_and_macs() {
        check_address("10.0.2.1/24".parse().unwrap()).unwrap();
        check_address("10.0.2.1/32".parse().unwrap()).unwrap();
        assert!(check_address("10.0.2.1/0".parse().unwrap()).is_err());
        assert!(check_address("0.0.0.0/8".parse().unwrap()).is_err());
        assert!(check_address("224.0.0.1/4".parse().unwrap()).is_err());
        assert!(check_mac("mac", Mac::BROADCAST).is_err());
        assert!(check_mac("mac", Mac([0; 6])).is_err());
        check_mac("mac", Mac([2, 0, 0, 0, 0, 1])).unwrap();
        let e = check_proxy_arp(&[
            "10.1.0.0/16".parse().unwrap(),
            "10.2.0.1/16".parse().unwrap(),
        ])
        .unwrap_err();
        assert!(
            e.message.contains("prefixes[1]") && e.message.contains("10.2.0.0/16"),
            "{e}"
        );
    }
}
