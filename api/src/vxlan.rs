//! VXLAN tunnel messages: the stateless checks of `create_vxlan_tunnel` and the
//! `dump_vxlan_tunnels` row.
//!
//! A tunnel is an interface: `create_vxlan_tunnel` answers with its interface index, and the
//! interface items (`set_mtu`, `add_address`, `set_admin_state`, routes with `sw_if`) apply to
//! it as to a port. `delete_vxlan_tunnel` (or `delete_interface`) removes it.

use crate::interface::{check_host_ip, check_ifname, check_mac, InterfaceCounters};
use crate::types::Mac;
use crate::ApiError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// The IANA-assigned VXLAN port, used when a tunnel names none.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Largest VXLAN network identifier (24 bits).
pub const MAX_VNI: u32 = (1 << 24) - 1;

/// Checks a tunnel to create: host addresses at both ends and not the same, a 24-bit VNI, a
/// non-zero port, a valid name and unicast MACs.
pub fn check_vxlan_tunnel(
    local: Ipv4Addr,
    remote: Ipv4Addr,
    vni: u32,
    port: Option<u16>,
    name: Option<&str>,
    macs: [Option<(&str, Mac)>; 2],
) -> Result<(), ApiError> {
    check_host_ip("local", local)?;
    check_host_ip("remote", remote)?;
    if local == remote {
        return Err(ApiError::bad_request(
            "remote",
            format!("remote {remote} is the local address"),
        ));
    }
    if vni > MAX_VNI {
        return Err(ApiError::bad_request(
            "vni",
            format!("vni {vni} is out of range 0..={MAX_VNI}"),
        ));
    }
    if port == Some(0) {
        return Err(ApiError::bad_request("port", "port 0 is not a UDP port"));
    }
    if let Some(n) = name {
        check_ifname("name", n)?;
    }
    for (field, mac) in macs.into_iter().flatten() {
        check_mac(field, mac)?;
    }
    Ok(())
}

/// One tunnel, as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VxlanTunnelDetails {
    /// Its interface index.
    pub sw_if: u32,
    /// Interface name.
    pub name: String,
    /// This node's VTEP.
    pub local: Ipv4Addr,
    /// The far VTEP.
    pub remote: Ipv4Addr,
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP destination port.
    pub port: u16,
    /// The tunnel interface's MAC (inner source).
    pub mac: Mac,
    /// The far end's inner MAC, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_mac: Option<Mac>,
    /// True when `remote_mac` was learned from decapsulated traffic.
    pub remote_mac_learned: bool,
    /// Admin state.
    pub admin_up: bool,
    /// MTU of the inner IP packets it carries.
    pub mtu: u16,
    /// Counters: rx = decapsulated, tx = encapsulated (inner frame bytes), drops = frames that
    /// arrived through it or were to leave by it and were dropped.
    pub counters: InterfaceCounters,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tunnel_checks_name_the_field() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        let (l, r) = (ip("192.168.1.1"), ip("192.168.1.2"));
        check_vxlan_tunnel(l, r, 42, None, Some("vx0"), [None, None]).unwrap();
        let cases = [
            (ip("0.0.0.0"), r, 1, None, "local"),
            (l, ip("224.0.0.1"), 1, None, "remote"),
            (l, l, 1, None, "remote"),
            (l, r, 1 << 24, None, "vni"),
            (l, r, 1, Some(0), "port"),
        ];
        for (l, r, vni, port, field) in cases {
            let e = check_vxlan_tunnel(l, r, vni, port, None, [None, None]).unwrap_err();
            assert_eq!(e.field.as_deref(), Some(field), "{e}");
        }
        let e = check_vxlan_tunnel(
            l,
            r,
            1,
            None,
            None,
            [None, Some(("remote_mac", Mac::BROADCAST))],
        )
        .unwrap_err();
        assert_eq!(e.field.as_deref(), Some("remote_mac"));
        let e = check_vxlan_tunnel(l, r, 1, None, Some("a/b"), [None, None]).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("name"));
    }
}
