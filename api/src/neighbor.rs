//! Neighbor (ARP) messages: the `add_neighbor` / `del_neighbor` checks and the
//! `dump_neighbors` row. vpgd also learns neighbors from ARP; the dump shows both.

use crate::interface::{check_host_ip, check_mac};
use crate::types::Mac;
use crate::ApiError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Checks a neighbor: a host address and, when adding, a unicast MAC.
pub fn check_neighbor(ip: Ipv4Addr, mac: Option<Mac>) -> Result<(), ApiError> {
    check_host_ip("ip", ip)?;
    if let Some(m) = mac {
        check_mac("mac", m)?;
    }
    Ok(())
}

/// One neighbor, as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighborDetails {
    /// Interface.
    pub sw_if: u32,
    /// Address.
    pub ip: Ipv4Addr,
    /// MAC.
    pub mac: Mac,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn neighbors_name_one_host() {
        let mac = Mac([2, 0, 0, 0, 0, 1]);
        check_neighbor(Ipv4Addr::new(10, 0, 2, 2), Some(mac)).unwrap();
        check_neighbor(Ipv4Addr::new(10, 0, 2, 2), None).unwrap();
        let e = check_neighbor(Ipv4Addr::BROADCAST, Some(mac)).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("ip"));
        let e = check_neighbor(Ipv4Addr::new(10, 0, 2, 2), Some(Mac::BROADCAST)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "mac ff:ff:ff:ff:ff:ff is not a unicast MAC address"
        );
    }
}
