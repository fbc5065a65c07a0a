//! The control side of the tunnel table: add, delete, learn and dump. Every change is checked
//! first and applied whole; [`VxlanControl::tables`] then yields the immutable snapshot the
//! workers swap in between frames. vpgd's API handlers call only these functions.
//!
//! A tunnel here is the VXLAN half of an interface: the daemon also creates the interface in the
//! IPv4 tables (its MAC, MTU, addresses, the far end's MAC as a point-to-point peer) and tells
//! `interface-output` to send its packets to `vxlan4-encap` ([`VxlanControl::tx_nodes`]).

use crate::tunnel::{DecapEntry, DecapTable, TunnelData, TunnelKey, VxlanTables, NO_TUNNEL};
use crate::{DECAP_NODE, ENCAP_NODE};
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::wire::EthernetAddress;
use vpg_graph::{Layout, TxNodes, INTERFACE_OUTPUT};

/// Why a tunnel change was refused (nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum VxlanError {
    /// The VNI does not fit in 24 bits.
    #[error("vni {0} is out of range (0..=16777215)")]
    BadVni(u32),
    /// UDP port 0.
    #[error("udp port 0 is not a port")]
    BadPort,
    /// A VTEP address that cannot name one host, or both ends the same.
    #[error("{field} {addr} {why}")]
    BadEndpoint {
        /// `local` or `remote`.
        field: &'static str,
        /// The address.
        addr: Ipv4Addr,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A tunnel with the same (local, remote, VNI, port) exists.
    #[error("vxlan tunnel {0} already exists")]
    TunnelExists(TunnelKey),
    /// The interface already has a tunnel.
    #[error("interface {0} is already a vxlan tunnel")]
    InterfaceTaken(u32),
    /// No tunnel on this interface.
    #[error("interface {0} is not a vxlan tunnel")]
    NoTunnel(u32),
    /// The far end's MAC must be a unicast address.
    #[error("remote mac {0} is not a unicast address")]
    BadMac(EthernetAddress),
}

/// One tunnel as dumped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TunnelEntry {
    /// Its interface.
    pub sw_if: u32,
    /// Its identity.
    pub key: TunnelKey,
    /// The far end's inner MAC now in use (configured or learned).
    pub remote_mac: Option<EthernetAddress>,
    /// Whether `remote_mac` was learned from decapsulated traffic (false: configured or none).
    pub learned: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Tunnel {
    key: TunnelKey,
    configured_mac: Option<EthernetAddress>,
    learned_mac: Option<EthernetAddress>,
}

impl Tunnel {
    fn remote_mac(&self) -> Option<EthernetAddress> {
        self.configured_mac.or(self.learned_mac)
    }
}

/// The tunnels, by interface. Cloning is cheap enough for transactions.
#[derive(Clone, Debug, Default)]
pub struct VxlanControl {
    tunnels: BTreeMap<u32, Tunnel>,
}

fn check_host(field: &'static str, addr: Ipv4Addr) -> Result<(), VxlanError> {
    let why = if addr.is_unspecified() {
        "is unspecified"
    } else if addr.is_multicast() {
        "is multicast (multicast VTEP groups are not supported)"
    } else if addr.is_broadcast() {
        "is the broadcast address"
    } else {
        return Ok(());
    };
    Err(VxlanError::BadEndpoint { field, addr, why })
}

fn unicast(mac: EthernetAddress) -> bool {
    mac.0[0] & 1 == 0 && mac.0 != [0; 6]
}

impl VxlanControl {
    /// No tunnels.
    pub fn new() -> Self {
        Self::default()
    }

    /// Checks a tunnel's key on its own (no state needed).
    pub fn check_key(key: &TunnelKey) -> Result<(), VxlanError> {
        //= https://www.rfc-editor.org/rfc/rfc7348#section-5
        //# VXLAN Segment ID/VXLAN Network Identifier (VNI): this is a
        //# 24-bit value used to designate the individual VXLAN overlay
        //# network on which the communicating VMs are situated.
        if key.vni >= 1 << 24 {
            return Err(VxlanError::BadVni(key.vni));
        }
        if key.port == 0 {
            return Err(VxlanError::BadPort);
        }
        check_host("local", key.local)?;
        check_host("remote", key.remote)?;
        if key.local == key.remote {
            return Err(VxlanError::BadEndpoint {
                field: "remote",
                addr: key.remote,
                why: "is the local address",
            });
        }
        Ok(())
    }

    /// Adds a tunnel on interface `sw_if` (which the caller creates), with the far end's MAC if
    /// known (otherwise it is learned from the first frames that arrive through the tunnel).
    pub fn add_tunnel(
        &mut self,
        sw_if: u32,
        key: TunnelKey,
        remote_mac: Option<EthernetAddress>,
    ) -> Result<(), VxlanError> {
        Self::check_key(&key)?;
        if let Some(m) = remote_mac.filter(|m| !unicast(*m)) {
            return Err(VxlanError::BadMac(m));
        }
        if self.tunnels.contains_key(&sw_if) {
            return Err(VxlanError::InterfaceTaken(sw_if));
        }
        if self.tunnels.values().any(|t| t.key == key) {
            return Err(VxlanError::TunnelExists(key));
        }
        self.tunnels.insert(
            sw_if,
            Tunnel {
                key,
                configured_mac: remote_mac,
                learned_mac: None,
            },
        );
        Ok(())
    }

    /// Deletes the tunnel of `sw_if`; returns its key.
    pub fn del_tunnel(&mut self, sw_if: u32) -> Result<TunnelKey, VxlanError> {
        self.tunnels
            .remove(&sw_if)
            .map(|t| t.key)
            .ok_or(VxlanError::NoTunnel(sw_if))
    }

    /// Records the far end's MAC seen in decapsulated traffic. Returns the MAC to use from now
    /// on when it changed (a configured MAC is never replaced by a learned one).
    pub fn learn_mac(
        &mut self,
        sw_if: u32,
        mac: EthernetAddress,
    ) -> Result<Option<EthernetAddress>, VxlanError> {
        let t = self
            .tunnels
            .get_mut(&sw_if)
            .ok_or(VxlanError::NoTunnel(sw_if))?;
        if t.configured_mac.is_some() || !unicast(mac) || t.learned_mac == Some(mac) {
            return Ok(None);
        }
        t.learned_mac = Some(mac);
        Ok(Some(mac))
    }

    /// The far end's MAC of `sw_if`'s tunnel (configured, else learned).
    pub fn remote_mac(&self, sw_if: u32) -> Option<EthernetAddress> {
        self.tunnels.get(&sw_if).and_then(Tunnel::remote_mac)
    }

    /// Whether `sw_if` is a tunnel.
    pub fn contains(&self, sw_if: u32) -> bool {
        self.tunnels.contains_key(&sw_if)
    }

    /// Number of tunnels.
    pub fn len(&self) -> usize {
        self.tunnels.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.tunnels.is_empty()
    }

    /// Every tunnel, by interface.
    pub fn tunnels(&self) -> Vec<TunnelEntry> {
        self.tunnels
            .iter()
            .map(|(&sw_if, t)| TunnelEntry {
                sw_if,
                key: t.key,
                remote_mac: t.remote_mac(),
                learned: t.configured_mac.is_none() && t.learned_mac.is_some(),
            })
            .collect()
    }

    /// The UDP ports the tunnels listen on (for `ip4-local`'s port table).
    pub fn ports(&self) -> BTreeSet<u16> {
        self.tunnels.values().map(|t| t.key.port).collect()
    }

    /// The UDP ports paired with the decap node's name, as `ip4-local`'s port table wants them.
    pub fn local_udp_ports(&self) -> Vec<(u16, &'static str)> {
        self.ports().into_iter().map(|p| (p, DECAP_NODE)).collect()
    }

    /// `tx` with every tunnel interface sending to `vxlan4-encap`: `None` when the graph was
    /// built without the VXLAN nodes (see [`crate::register`]).
    pub fn tx_nodes(&self, layout: &Layout, mut tx: TxNodes) -> Option<TxNodes> {
        let slot = layout.next_slot(INTERFACE_OUTPUT, ENCAP_NODE)?;
        for &sw_if in self.tunnels.keys() {
            tx.set(sw_if, Some(slot));
        }
        Some(tx)
    }

    /// The snapshot for the workers.
    pub fn tables(&self) -> Arc<VxlanTables> {
        let tunnels: Vec<TunnelData> = self
            .tunnels
            .iter()
            .map(|(&sw_if, t)| TunnelData::new(&t.key, sw_if))
            .collect();
        let max = self
            .tunnels
            .keys()
            .next_back()
            .map_or(0, |&m| m as usize + 1);
        let mut by_sw_if = vec![NO_TUNNEL; max];
        for (i, &sw_if) in self.tunnels.keys().enumerate() {
            by_sw_if[sw_if as usize] = i as u32;
        }
        let entries: Vec<DecapEntry> = self
            .tunnels
            .iter()
            .zip(0u32..)
            .map(|((&sw_if, t), i)| {
                let mac = t.remote_mac().map(|m| m.0).unwrap_or_default();
                DecapEntry::new(&t.key, i, sw_if, mac, t.configured_mac.is_none())
            })
            .collect();
        let decap = DecapTable::build(&entries);
        let vnis: BTreeSet<u32> = self.tunnels.values().map(|t| t.key.vni).collect();
        Arc::new(VxlanTables {
            tunnels,
            by_sw_if,
            decap,
            vnis: vnis.into_iter().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(remote: u8, vni: u32) -> TunnelKey {
        TunnelKey {
            local: Ipv4Addr::new(192, 168, 0, 1),
            remote: Ipv4Addr::new(192, 168, 0, remote),
            vni,
            port: 4789,
        }
    }

    #[test]
    fn add_checks_everything_and_changes_nothing_on_refusal() {
        let mut c = VxlanControl::new();
        c.add_tunnel(3, key(2, 42), None).unwrap();
        let before = c.tunnels();
        let bad = [
            (3, key(9, 1), None, VxlanError::InterfaceTaken(3)),
            (4, key(2, 42), None, VxlanError::TunnelExists(key(2, 42))),
            (4, key(2, 1 << 24), None, VxlanError::BadVni(1 << 24)),
            (
                4,
                TunnelKey {
                    port: 0,
                    ..key(2, 1)
                },
                None,
                VxlanError::BadPort,
            ),
            (
                4,
                key(2, 1),
                Some(EthernetAddress([1, 0, 0, 0, 0, 1])),
                VxlanError::BadMac(EthernetAddress([1, 0, 0, 0, 0, 1])),
            ),
        ];
        for (sw_if, k, mac, e) in bad {
            assert_eq!(c.add_tunnel(sw_if, k, mac), Err(e));
        }
        for (remote, why) in [
            (Ipv4Addr::new(224, 0, 0, 1), "multicast"),
            (Ipv4Addr::BROADCAST, "broadcast"),
            (Ipv4Addr::UNSPECIFIED, "unspecified"),
            (Ipv4Addr::new(192, 168, 0, 1), "local"),
        ] {
            let e = c
                .add_tunnel(
                    4,
                    TunnelKey {
                        remote,
                        ..key(2, 1)
                    },
                    None,
                )
                .unwrap_err();
            assert!(e.to_string().contains(why), "{e}");
        }
        assert_eq!(c.tunnels(), before);
        // Same endpoints, other VNI or port: a different tunnel.
        c.add_tunnel(4, key(2, 43), None).unwrap();
        c.add_tunnel(
            5,
            TunnelKey {
                port: 8472,
                ..key(2, 42)
            },
            None,
        )
        .unwrap();
        assert_eq!(c.ports().into_iter().collect::<Vec<_>>(), vec![4789, 8472]);
        assert_eq!(c.del_tunnel(4), Ok(key(2, 43)));
        assert_eq!(c.del_tunnel(4), Err(VxlanError::NoTunnel(4)));
    }

    #[test]
    fn learning_never_replaces_a_configured_mac() {
        let mut c = VxlanControl::new();
        let m1 = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let m2 = EthernetAddress([2, 0, 0, 0, 0, 2]);
        c.add_tunnel(3, key(2, 1), None).unwrap();
        c.add_tunnel(4, key(3, 1), Some(m1)).unwrap();
        assert_eq!(c.learn_mac(3, m2), Ok(Some(m2)));
        assert_eq!(c.learn_mac(3, m2), Ok(None), "no change");
        assert_eq!(c.learn_mac(3, EthernetAddress([0xff; 6])), Ok(None));
        assert_eq!(c.learn_mac(4, m2), Ok(None));
        assert_eq!(c.remote_mac(4), Some(m1));
        assert_eq!(c.learn_mac(9, m2), Err(VxlanError::NoTunnel(9)));
        let t = c.tunnels();
        assert!(t[0].learned && !t[1].learned);
        let tables = c.tables();
        let entry = |k: &TunnelKey| {
            let (a, b) = crate::tunnel::decap_key(k);
            *tables.decap.get(a, b).expect("in the decap table")
        };
        let (e3, e4) = (entry(&key(2, 1)), entry(&key(3, 1)));
        assert!(e3.learn && !e4.learn);
        assert_eq!((e3.peer_mac, e4.peer_mac), (m2.0, m1.0));
        assert_eq!((e3.tunnel, e3.sw_if, e4.tunnel, e4.sw_if), (0, 3, 1, 4));
        assert_eq!(tables.tunnel_of(4), 1);
        assert_eq!(tables.tunnel_of(2), NO_TUNNEL);
        assert_eq!(tables.tunnel_of(99), NO_TUNNEL);
        assert_eq!(tables.vnis, vec![1]);
    }
}
