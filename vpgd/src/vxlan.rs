//! VXLAN tunnels in the daemon: a tunnel is an interface in the IPv4 tables (MAC, MTU 1450,
//! admin up, the far end's MAC as its point-to-point peer) plus an entry in the tunnel table;
//! the snapshot tells `interface-output` to hand its frames to `vxlan4-encap` and `ip4-local`
//! to hand the tunnels' UDP ports to `vxlan4-decap`. Called by `DataPlane::apply` on its
//! working copy of the state, so a tunnel is created or removed whole or not at all.

use crate::dataplane::{DpError, OpResult, State};
use std::sync::Arc;
use vpg_graph::wire::EthernetAddress;
use vpg_graph::{ConfigSet, Layout, TxNodes};
use vpg_ip4::ip4_local::LocalUdpPorts;
use vpg_vxlan::tunnel::OVERHEAD;
use vpg_vxlan::{TunnelEntry, TunnelKey};

/// A tunnel interface's MTU on a 1500-byte underlay.
pub const DEFAULT_MTU: u16 = 1500 - OVERHEAD;

/// A locally administered MAC from the local VTEP and the interface index: distinct from the
/// far end's (whose VTEP differs), so the two ends of a tunnel never share one.
pub fn default_mac(key: &TunnelKey, sw_if: u32) -> [u8; 6] {
    let l = key.local.octets();
    [0x02, l[0], l[1], l[2], l[3], sw_if as u8]
}

/// Creates a tunnel at interface index `sw_if` (a free one).
pub(crate) fn create_tunnel(
    s: &mut State,
    sw_if: u32,
    key: TunnelKey,
    name: Option<String>,
    mac: Option<[u8; 6]>,
    remote_mac: Option<[u8; 6]>,
) -> Result<OpResult, DpError> {
    let remote = remote_mac.map(EthernetAddress);
    // The tunnel first: a repeated create says the tunnel exists rather than its name.
    s.vxlan.add_tunnel(sw_if, key, remote)?;
    let name = name.unwrap_or_else(|| format!("vxlan_tunnel{sw_if}"));
    if s.ip4.interfaces().any(|i| i.name == name) {
        return Err(DpError::NameTaken(name));
    }
    let mac = EthernetAddress(mac.unwrap_or_else(|| default_mac(&key, sw_if)));
    s.ip4.add_interface(sw_if, &name, mac)?;
    s.ip4.set_mtu(sw_if, DEFAULT_MTU)?;
    s.ip4.set_admin_up(sw_if, true)?;
    s.ip4.set_peer_mac(sw_if, remote)?;
    Ok(OpResult::Interface(sw_if))
}

pub(crate) fn delete_tunnel(
    s: &mut State,
    layout: &Layout,
    sw_if: u32,
) -> Result<OpResult, DpError> {
    s.vxlan.del_tunnel(sw_if)?;
    // Everything that names it goes with it, as with a port.
    crate::dataplane::forget_interface(s, layout, sw_if)?;
    Ok(OpResult::Done)
}

pub(crate) fn learn_peer(s: &mut State, sw_if: u32, mac: [u8; 6]) -> Result<OpResult, DpError> {
    if let Some(m) = s.vxlan.learn_mac(sw_if, EthernetAddress(mac))? {
        s.ip4.set_peer_mac(sw_if, Some(m))?;
    }
    Ok(OpResult::Done)
}

/// Adds the tunnel table, the tunnels' TX node and the UDP ports to a snapshot (nothing when
/// the graph was built without the VXLAN nodes, as some tests' graphs are).
pub(crate) fn publish(vx: &vpg_vxlan::VxlanControl, layout: &Layout, cfg: ConfigSet) -> ConfigSet {
    let Some(tx) = vx.tx_nodes(layout, TxNodes::default()) else {
        return cfg;
    };
    let udp = LocalUdpPorts::new(layout, vx.local_udp_ports()).unwrap_or_default();
    cfg.with(vx.tables()).with(Arc::new(tx)).with(Arc::new(udp))
}

pub(crate) fn tunnels(s: &State) -> Vec<(TunnelEntry, vpg_ip4::Ip4Interface)> {
    s.vxlan
        .tunnels()
        .into_iter()
        .filter_map(|t| {
            let itf = s.ip4.interfaces().find(|i| i.sw_if == t.sw_if)?.clone();
            Some((t, itf))
        })
        .collect()
}

/// The API's tunnel items as operations.
pub fn to_op(item: vpg_api::ConfigItem) -> Option<crate::dataplane::Op> {
    use crate::dataplane::Op;
    Some(match item {
        vpg_api::ConfigItem::CreateVxlanTunnel {
            local,
            remote,
            vni,
            port,
            name,
            mac,
            remote_mac,
        } => Op::CreateVxlanTunnel {
            key: TunnelKey {
                local,
                remote,
                vni,
                port: port.unwrap_or(vpg_api::vxlan::DEFAULT_VXLAN_PORT),
            },
            name,
            mac: mac.map(|m| m.0),
            remote_mac: remote_mac.map(|m| m.0),
        },
        vpg_api::ConfigItem::DeleteVxlanTunnel { sw_if } => Op::DeleteVxlanTunnel { sw_if },
        _ => return None,
    })
}

/// A tunnel-table refusal as (code, object, field) of an API error.
pub fn api_error(
    e: &vpg_vxlan::VxlanError,
) -> (vpg_api::ErrorCode, Option<String>, Option<&'static str>) {
    use vpg_api::ErrorCode::*;
    use vpg_vxlan::VxlanError as E;
    match e {
        E::BadVni(_) => (BadRequest, None, Some("vni")),
        E::BadPort => (BadRequest, None, Some("port")),
        E::BadEndpoint { field, .. } => (BadRequest, None, Some(field)),
        E::BadMac(_) => (BadRequest, None, Some("remote_mac")),
        E::TunnelExists(k) => (AlreadyExists, Some(format!("vxlan tunnel {k}")), None),
        E::InterfaceTaken(i) => (AlreadyExists, Some(format!("interface {i}")), None),
        E::NoTunnel(i) => (NotFound, Some(format!("vxlan tunnel {i}")), Some("sw_if")),
    }
}

/// `dump_vxlan_tunnels` rows, counters summed over the workers.
pub fn details(dp: &crate::dataplane::DataPlane) -> Vec<vpg_api::vxlan::VxlanTunnelDetails> {
    let stats = dp.workers().stats();
    dp.vxlan_tunnels()
        .into_iter()
        .map(|(t, itf)| vpg_api::vxlan::VxlanTunnelDetails {
            sw_if: t.sw_if,
            name: itf.name,
            local: t.key.local,
            remote: t.key.remote,
            vni: t.key.vni,
            port: t.key.port,
            mac: vpg_api::Mac(itf.mac.0),
            remote_mac: t.remote_mac.map(|m| vpg_api::Mac(m.0)),
            remote_mac_learned: t.learned,
            admin_up: itf.admin_up,
            mtu: itf.mtu,
            counters: crate::service::if_counters(&stats, t.sw_if),
        })
        .collect()
}

/// Takes the far-end MACs `vxlan4-decap` reports on every worker off a bounded queue and
/// applies the new ones (the packet path never waits).
pub fn start_learning(svc: &crate::service::Service) {
    let (tx, rx) = crossbeam_channel::bounded::<vpg_vxlan::LearnedPeer>(256);
    svc.with(|dp| {
        for w in 0..dp.workers().len() {
            let tx = tx.clone();
            dp.workers().exec(w, move |rt| {
                if let Some(d) = rt.node_mut::<vpg_vxlan::VxlanDecap>(vpg_vxlan::DECAP_NODE) {
                    d.set_learn_sender(tx);
                }
            });
        }
    });
    let svc = svc.clone();
    std::thread::Builder::new()
        .name("vpgd-vxlan-learn".into())
        .spawn(move || {
            for l in rx.iter() {
                svc.with(|dp| {
                    // Seen before the tunnel at this index was created: about an earlier one.
                    if !dp.is_current(l.sw_if, l.seen) {
                        return;
                    }
                    let known = dp
                        .vxlan_tunnels()
                        .iter()
                        .any(|(t, _)| t.sw_if == l.sw_if && t.remote_mac == Some(l.mac));
                    if !known {
                        // Refused only when the tunnel is gone meanwhile: nothing to learn.
                        let _ = dp.apply(vec![crate::dataplane::Op::LearnVxlanPeer {
                            sw_if: l.sw_if,
                            mac: l.mac.0,
                        }]);
                    }
                });
            }
        })
        .ok();
}

/// `[[vxlan_tunnel]]` in vpgd's configuration file: tunnels created at start, after the
/// `[[interface]]`s (so their indices follow the interfaces', in file order).
///
/// ```toml
/// [[vxlan_tunnel]]
/// local = "192.168.1.1"
/// remote = "192.168.1.2"
/// vni = 42
/// addresses = ["10.255.0.1/24"]
/// ```
#[derive(Debug, Clone, serde::Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TunnelConfig {
    /// This node's VTEP (one of its addresses).
    pub local: std::net::Ipv4Addr,
    /// The far VTEP.
    pub remote: std::net::Ipv4Addr,
    /// VXLAN network identifier.
    pub vni: u32,
    /// UDP port (default 4789).
    pub port: Option<u16>,
    /// Interface name (default `vxlan_tunnel<index>`).
    pub name: Option<String>,
    /// The tunnel interface's MAC.
    pub mac: Option<String>,
    /// The far end's inner MAC (default: learned).
    pub remote_mac: Option<String>,
    /// Addresses on the tunnel interface.
    #[serde(default)]
    pub addresses: Vec<String>,
    /// MTU (default 1450).
    pub mtu: Option<u16>,
    /// Admin up (default true).
    #[serde(default = "yes")]
    pub up: bool,
}

fn yes() -> bool {
    true
}

/// Checks `[[vxlan_tunnel]]` number `i`; errors name the field (`vxlan_tunnel[0].vni`).
pub fn validate_config(i: usize, t: &TunnelConfig) -> Result<(), crate::config::ConfigError> {
    use crate::config::{parse_mac, ConfigError};
    let invalid = |f: &str, why: String| ConfigError::Invalid {
        field: format!("vxlan_tunnel[{i}].{f}"),
        why,
    };
    let mac = |f: &str, m: &Option<String>| match m {
        None => Ok(None),
        Some(s) => parse_mac(s)
            .map(|m| Some((f.to_string(), vpg_api::Mac(m))))
            .ok_or_else(|| {
                invalid(
                    f,
                    format!("'{s}' is not a MAC address like 02:00:00:00:00:01"),
                )
            }),
    };
    let (m, rm) = (mac("mac", &t.mac)?, mac("remote_mac", &t.remote_mac)?);
    vpg_api::vxlan::check_vxlan_tunnel(
        t.local,
        t.remote,
        t.vni,
        t.port,
        t.name.as_deref(),
        [
            m.as_ref().map(|(f, m)| (f.as_str(), *m)),
            rm.as_ref().map(|(f, m)| (f.as_str(), *m)),
        ],
    )
    .map_err(|e| invalid(e.field.as_deref().unwrap_or("?"), e.message.clone()))?;
    for (j, a) in t.addresses.iter().enumerate() {
        a.parse::<vpg_graph::wire::Ipv4Cidr>().map_err(|_| {
            invalid(
                &format!("addresses[{j}]"),
                format!("'{a}' is not an IPv4 address with prefix length"),
            )
        })?;
    }
    if let Some(m) = t.mtu.filter(|m| !(68..=9000).contains(m)) {
        return Err(invalid("mtu", format!("{m} is out of range 68..=9000")));
    }
    Ok(())
}

/// The operations that create the configured tunnels; the first gets index `first_sw_if`.
pub fn startup_ops(tunnels: &[TunnelConfig], first_sw_if: u32) -> Vec<crate::dataplane::Op> {
    use crate::dataplane::Op;
    let mut ops = Vec::new();
    for (j, t) in tunnels.iter().enumerate() {
        let sw_if = first_sw_if + j as u32;
        ops.push(Op::CreateVxlanTunnel {
            key: TunnelKey {
                local: t.local,
                remote: t.remote,
                vni: t.vni,
                port: t.port.unwrap_or(vpg_api::vxlan::DEFAULT_VXLAN_PORT),
            },
            name: t.name.clone(),
            mac: t.mac.as_deref().and_then(crate::config::parse_mac),
            remote_mac: t.remote_mac.as_deref().and_then(crate::config::parse_mac),
        });
        if let Some(mtu) = t.mtu {
            ops.push(Op::SetMtu { sw_if, mtu });
        }
        for a in &t.addresses {
            if let Ok(prefix) = a.parse() {
                ops.push(Op::AddAddress { sw_if, prefix });
            }
        }
        ops.push(Op::SetAdmin { sw_if, up: t.up });
    }
    ops
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn tunnels_in_the_config_file() {
        let c = Config::parse(
            "[[interface]]\nhost_if = \"eth1\"\n[[vxlan_tunnel]]\nlocal = \"192.168.1.1\"\nremote = \"192.168.1.2\"\nvni = 42\naddresses = [\"10.255.0.1/24\"]\nremote_mac = \"02:00:00:00:00:02\"\n",
        )
        .unwrap();
        let ops = super::startup_ops(&c.vxlan_tunnels, 1);
        assert_eq!(ops.len(), 3, "{ops:?}");
        for (text, field) in [
            ("vni = 16777216", "vxlan_tunnel[0].vni"),
            ("vni = 1\nport = 0", "vxlan_tunnel[0].port"),
            (
                "vni = 1\nremote_mac = \"ff:ff:ff:ff:ff:ff\"",
                "vxlan_tunnel[0].remote_mac",
            ),
            ("vni = 1\nmac = \"x\"", "vxlan_tunnel[0].mac"),
            (
                "vni = 1\naddresses = [\"1.2.3.4\"]",
                "vxlan_tunnel[0].addresses[0]",
            ),
            ("vni = 1\nmtu = 10", "vxlan_tunnel[0].mtu"),
        ] {
            let t = format!(
                "[[vxlan_tunnel]]\nlocal = \"192.168.1.1\"\nremote = \"192.168.1.2\"\n{text}\n"
            );
            let e = Config::parse(&t).unwrap_err().to_string();
            assert!(e.starts_with(field), "{text}: {e}");
        }
        let e = Config::parse("[[vxlan_tunnel]]\nlocal = \"192.168.1.1\"\nremote = \"192.168.1.2\"\nvni = 1\nvnii = 2\n")
            .unwrap_err();
        assert!(e.to_string().contains("vnii"), "{e}");
    }
}
