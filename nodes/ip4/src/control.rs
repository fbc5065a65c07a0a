//! The control side of the IPv4 tables: interfaces, addresses, routes and neighbors. Every
//! change is validated first and applied whole; [`Ip4Control::tables`] then yields the immutable
//! snapshot the workers swap in between frames. The API handlers and the CLI call only these
//! functions.

use crate::fib::{AdjIndex, Fib, FibError};
use crate::tables::{Adjacency, Ip4Interface, Ip4Tables, ADJ_DROP, ADJ_LOCAL};
use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};

/// Why a control request was refused (nothing was changed).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Ip4Error {
    /// No such interface.
    #[error("interface {0} does not exist")]
    NoInterface(u32),
    /// The interface index is taken.
    #[error("interface {0} already exists")]
    InterfaceExists(u32),
    /// The address is on the interface already.
    #[error("address {addr} is already on interface {sw_if}")]
    AddressExists {
        /// Interface.
        sw_if: u32,
        /// Address.
        addr: Ipv4Cidr,
    },
    /// The address is not on the interface.
    #[error("address {addr} is not on interface {sw_if}")]
    NoAddress {
        /// Interface.
        sw_if: u32,
        /// Address.
        addr: Ipv4Cidr,
    },
    /// A route with this prefix exists.
    #[error("route {0} already exists")]
    RouteExists(Ipv4Cidr),
    /// No route with this prefix.
    #[error("route {0} does not exist")]
    NoRoute(Ipv4Cidr),
    /// No neighbor with this address on the interface.
    #[error("neighbor {ip} on interface {sw_if} does not exist")]
    NoNeighbor {
        /// Interface.
        sw_if: u32,
        /// Address.
        ip: Ipv4Addr,
    },
    /// The prefix has host bits set or a bad length.
    #[error("bad prefix: {0}")]
    BadPrefix(#[from] FibError),
    /// The MTU is out of range.
    #[error("MTU {0} is out of range (68..=9000)")]
    BadMtu(u16),
}

/// Where a route sends traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RoutePath {
    /// Via a next hop on an interface.
    Via {
        /// Next hop.
        next_hop: Ipv4Addr,
        /// Interface.
        sw_if: u32,
    },
    /// Out an interface, the destination itself being on link (a pod's /32, a connected subnet).
    Attached {
        /// Interface.
        sw_if: u32,
    },
    /// Drop.
    Drop,
    /// Deliver locally.
    Local,
}

/// Where a route came from (connected and local routes follow interface addresses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RouteSource {
    /// Added by the API.
    Api,
    /// The subnet of an interface address.
    Connected,
    /// An interface address itself (/32).
    Local,
    /// A neighbor's host route (VPP's adj-fib).
    Neighbor,
}

/// One route as dumped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    /// Prefix.
    pub prefix: Ipv4Cidr,
    /// Path.
    pub path: RoutePath,
    /// Source.
    pub source: RouteSource,
    /// Adjacency now used.
    pub adj: AdjIndex,
}

/// One neighbor as dumped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NeighborEntry {
    /// Interface.
    pub sw_if: u32,
    /// Address.
    pub ip: Ipv4Addr,
    /// MAC.
    pub mac: EthernetAddress,
}

/// The IPv4 control state. Cloning is cheap enough for transactions: apply to a clone, keep it
/// only when every item succeeded.
#[derive(Clone)]
pub struct Ip4Control {
    interfaces: BTreeMap<u32, Ip4Interface>,
    /// (prefix, len) → (path, source)
    routes: BTreeMap<(u32, u8), (RoutePath, RouteSource)>,
    neighbors: BTreeMap<(u32, Ipv4Addr), EthernetAddress>,
    /// The one MAC behind a point-to-point interface (a VXLAN tunnel's far end).
    peers: BTreeMap<u32, EthernetAddress>,
    fib: Fib,
    adjacencies: Vec<Adjacency>,
    adj_by_key: HashMap<AdjKey, AdjIndex>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AdjKey {
    Glean(u32),
    Nbr(u32, Ipv4Addr),
}

impl Default for Ip4Control {
    fn default() -> Self {
        Self::new()
    }
}

impl Ip4Control {
    /// Empty tables.
    pub fn new() -> Self {
        Self {
            interfaces: BTreeMap::new(),
            routes: BTreeMap::new(),
            neighbors: BTreeMap::new(),
            peers: BTreeMap::new(),
            fib: Fib::new(ADJ_DROP),
            adjacencies: vec![Adjacency::Drop, Adjacency::Local],
            adj_by_key: HashMap::new(),
        }
    }

    /// Adds an interface (admin down, no addresses, MTU 1500).
    pub fn add_interface(
        &mut self,
        sw_if: u32,
        name: &str,
        mac: EthernetAddress,
    ) -> Result<(), Ip4Error> {
        if self.interfaces.contains_key(&sw_if) {
            return Err(Ip4Error::InterfaceExists(sw_if));
        }
        self.interfaces.insert(
            sw_if,
            Ip4Interface {
                sw_if,
                name: name.into(),
                mac,
                admin_up: false,
                addresses: Vec::new(),
                mtu: 1500,
                proxy_arp: Vec::new(),
            },
        );
        Ok(())
    }

    /// Removes an interface with its addresses, routes through it and neighbors on it.
    pub fn del_interface(&mut self, sw_if: u32) -> Result<(), Ip4Error> {
        let itf = self
            .interfaces
            .remove(&sw_if)
            .ok_or(Ip4Error::NoInterface(sw_if))?;
        self.routes.retain(|_, (p, _)| !path_uses(p, sw_if));
        self.neighbors.retain(|(s, _), _| *s != sw_if);
        self.peers.remove(&sw_if);
        drop(itf);
        self.rebuild_fib()
    }

    fn itf_mut(&mut self, sw_if: u32) -> Result<&mut Ip4Interface, Ip4Error> {
        self.interfaces
            .get_mut(&sw_if)
            .ok_or(Ip4Error::NoInterface(sw_if))
    }

    /// Sets the admin state.
    pub fn set_admin_up(&mut self, sw_if: u32, up: bool) -> Result<(), Ip4Error> {
        self.itf_mut(sw_if)?.admin_up = up;
        Ok(())
    }

    /// Sets the MAC address (neighbors' rewrites follow).
    pub fn set_mac(&mut self, sw_if: u32, mac: EthernetAddress) -> Result<(), Ip4Error> {
        self.itf_mut(sw_if)?.mac = mac;
        self.refresh_adjacencies();
        Ok(())
    }

    /// Sets the MTU.
    pub fn set_mtu(&mut self, sw_if: u32, mtu: u16) -> Result<(), Ip4Error> {
        if !(68..=9000).contains(&mtu) {
            return Err(Ip4Error::BadMtu(mtu));
        }
        self.itf_mut(sw_if)?.mtu = mtu;
        self.refresh_adjacencies();
        Ok(())
    }

    /// Adds an address: its subnet becomes a connected route, the address a local /32.
    pub fn add_address(&mut self, sw_if: u32, addr: Ipv4Cidr) -> Result<(), Ip4Error> {
        let itf = self.itf_mut(sw_if)?;
        if itf.addresses.contains(&addr) {
            return Err(Ip4Error::AddressExists { sw_if, addr });
        }
        itf.addresses.push(addr);
        self.rebuild_fib()
    }

    /// Removes an address and its connected and local routes.
    pub fn del_address(&mut self, sw_if: u32, addr: Ipv4Cidr) -> Result<(), Ip4Error> {
        let itf = self.itf_mut(sw_if)?;
        let Some(p) = itf.addresses.iter().position(|a| *a == addr) else {
            return Err(Ip4Error::NoAddress { sw_if, addr });
        };
        itf.addresses.remove(p);
        self.rebuild_fib()
    }

    /// Makes `sw_if` point-to-point with `mac` as the only station behind it (`None`: an ordinary
    /// multi-access interface again). Routes out of it then rewrite to `mac` without ARP: an
    /// attached route (`10.2.0.0/16 dev vxlan0`) and a next hop not yet resolved both use it,
    /// while a neighbor learned or added for a next hop still wins.
    pub fn set_peer_mac(
        &mut self,
        sw_if: u32,
        mac: Option<EthernetAddress>,
    ) -> Result<(), Ip4Error> {
        self.itf_mut(sw_if)?;
        match mac {
            Some(m) => self.peers.insert(sw_if, m),
            None => self.peers.remove(&sw_if),
        };
        self.refresh_adjacencies();
        Ok(())
    }

    /// The peer MAC of a point-to-point interface.
    pub fn peer_mac(&self, sw_if: u32) -> Option<EthernetAddress> {
        self.peers.get(&sw_if).copied()
    }

    /// Sets the proxy-ARP prefixes of an interface.
    pub fn set_proxy_arp(&mut self, sw_if: u32, prefixes: Vec<Ipv4Cidr>) -> Result<(), Ip4Error> {
        self.itf_mut(sw_if)?.proxy_arp = prefixes;
        Ok(())
    }

    /// Adds a route.
    pub fn add_route(&mut self, prefix: Ipv4Cidr, path: RoutePath) -> Result<(), Ip4Error> {
        let key = route_key(prefix)?;
        if let RoutePath::Via { sw_if, .. } | RoutePath::Attached { sw_if } = path {
            if !self.interfaces.contains_key(&sw_if) {
                return Err(Ip4Error::NoInterface(sw_if));
            }
        }
        if matches!(self.routes.get(&key), Some((_, RouteSource::Api))) {
            return Err(Ip4Error::RouteExists(prefix));
        }
        self.routes.insert(key, (path, RouteSource::Api));
        self.rebuild_fib()
    }

    /// Deletes a route added by the API.
    pub fn del_route(&mut self, prefix: Ipv4Cidr) -> Result<(), Ip4Error> {
        let key = route_key(prefix)?;
        match self.routes.get(&key) {
            Some((_, RouteSource::Api)) => {
                self.routes.remove(&key);
                self.rebuild_fib()
            }
            _ => Err(Ip4Error::NoRoute(prefix)),
        }
    }

    /// Adds or updates a neighbor (static, or learned from ARP).
    pub fn add_neighbor(
        &mut self,
        sw_if: u32,
        ip: Ipv4Addr,
        mac: EthernetAddress,
    ) -> Result<(), Ip4Error> {
        if !self.interfaces.contains_key(&sw_if) {
            return Err(Ip4Error::NoInterface(sw_if));
        }
        self.neighbors.insert((sw_if, ip), mac);
        self.rebuild_fib()
    }

    /// Deletes a neighbor.
    pub fn del_neighbor(&mut self, sw_if: u32, ip: Ipv4Addr) -> Result<(), Ip4Error> {
        if self.neighbors.remove(&(sw_if, ip)).is_none() {
            return Err(Ip4Error::NoNeighbor { sw_if, ip });
        }
        self.rebuild_fib()
    }

    /// The interfaces.
    pub fn interfaces(&self) -> impl Iterator<Item = &Ip4Interface> {
        self.interfaces.values()
    }

    /// Every route, API and derived, sorted by prefix.
    pub fn routes(&self) -> Vec<RouteEntry> {
        self.routes
            .iter()
            .map(|(&(p, l), &(path, source))| RouteEntry {
                prefix: cidr(p, l),
                path,
                source,
                adj: self.fib.get(Ipv4Addr::from(p), l).unwrap_or(ADJ_DROP),
            })
            .collect()
    }

    /// Every neighbor.
    pub fn neighbors(&self) -> Vec<NeighborEntry> {
        self.neighbors
            .iter()
            .map(|(&(sw_if, ip), &mac)| NeighborEntry { sw_if, ip, mac })
            .collect()
    }

    /// The adjacency table.
    pub fn adjacencies(&self) -> &[Adjacency] {
        &self.adjacencies
    }

    /// The snapshot for the workers.
    pub fn tables(&self) -> Arc<Ip4Tables> {
        let max = self
            .interfaces
            .keys()
            .next_back()
            .map_or(0, |&m| m as usize + 1);
        let mut interfaces = vec![None; max];
        for (&i, itf) in &self.interfaces {
            interfaces[i as usize] = Some(itf.clone());
        }
        Arc::new(Ip4Tables {
            interfaces,
            adjacencies: self.adjacencies.clone(),
            fib: self.fib.snapshot(),
        })
    }

    /// Adds many routes with one FIB update (a table load); all-or-nothing: the first bad or
    /// duplicate prefix refuses the whole batch.
    pub fn add_routes(
        &mut self,
        routes: impl IntoIterator<Item = (Ipv4Cidr, RoutePath)>,
    ) -> Result<usize, Ip4Error> {
        let mut batch = BTreeMap::new();
        for (prefix, path) in routes {
            let key = route_key(prefix)?;
            if let RoutePath::Via { sw_if, .. } | RoutePath::Attached { sw_if } = path {
                if !self.interfaces.contains_key(&sw_if) {
                    return Err(Ip4Error::NoInterface(sw_if));
                }
            }
            let dup = matches!(self.routes.get(&key), Some((_, RouteSource::Api)));
            if dup || batch.insert(key, path).is_some() {
                return Err(Ip4Error::RouteExists(prefix));
            }
        }
        let n = batch.len();
        for (k, path) in batch {
            self.routes.insert(k, (path, RouteSource::Api));
        }
        self.rebuild_fib()?;
        Ok(n)
    }

    /// Number of FIB entries (API and derived routes).
    pub fn fib_len(&self) -> usize {
        self.fib.len()
    }

    /// Bytes the FIB uses.
    pub fn fib_memory_bytes(&self) -> usize {
        self.fib.memory_bytes()
    }

    fn adj(&mut self, key: AdjKey) -> AdjIndex {
        if let Some(&a) = self.adj_by_key.get(&key) {
            return a;
        }
        let a = self.adjacencies.len() as AdjIndex;
        self.adjacencies.push(Adjacency::Drop);
        self.adj_by_key.insert(key, a);
        self.adjacencies[a as usize] = self.adj_content(key);
        a
    }

    fn adj_content(&self, key: AdjKey) -> Adjacency {
        let rewrite_to = |itf: &Ip4Interface, mac: &EthernetAddress, next_hop| {
            let mut rewrite = [0u8; 14];
            rewrite[0..6].copy_from_slice(&mac.0);
            rewrite[6..12].copy_from_slice(&itf.mac.0);
            rewrite[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            Adjacency::Rewrite {
                sw_if: itf.sw_if,
                rewrite,
                mtu: itf.mtu,
                next_hop,
            }
        };
        match key {
            AdjKey::Glean(sw_if) => match (self.interfaces.get(&sw_if), self.peers.get(&sw_if)) {
                (Some(itf), Some(peer)) => rewrite_to(itf, peer, Ipv4Addr::UNSPECIFIED),
                _ => Adjacency::Glean {
                    sw_if,
                    next_hop: None,
                },
            },
            AdjKey::Nbr(sw_if, ip) => {
                let itf = self.interfaces.get(&sw_if);
                let mac = self
                    .neighbors
                    .get(&(sw_if, ip))
                    .or_else(|| self.peers.get(&sw_if));
                match (itf, mac) {
                    (Some(itf), Some(mac)) => rewrite_to(itf, mac, ip),
                    (Some(_), None) => Adjacency::Glean {
                        sw_if,
                        next_hop: Some(ip),
                    },
                    (None, _) => Adjacency::Drop,
                }
            }
        }
    }

    /// Recomputes every adjacency's content in place (indices stay, so FIB entries stay valid).
    fn refresh_adjacencies(&mut self) {
        let keys: Vec<_> = self.adj_by_key.iter().map(|(&k, &a)| (k, a)).collect();
        for (k, a) in keys {
            self.adjacencies[a as usize] = self.adj_content(k);
        }
    }

    /// Recomputes derived routes (connected, local, neighbor host routes) and the FIB entries
    /// that changed.
    fn rebuild_fib(&mut self) -> Result<(), Ip4Error> {
        self.routes.retain(|_, (_, s)| *s == RouteSource::Api);
        let mut derived = Vec::new();
        for itf in self.interfaces.values() {
            for a in &itf.addresses {
                let net = a.network();
                derived.push((
                    (u32::from(net.address()), net.prefix_len()),
                    (
                        RoutePath::Attached { sw_if: itf.sw_if },
                        RouteSource::Connected,
                    ),
                ));
                derived.push((
                    (u32::from(a.address()), 32),
                    (RoutePath::Local, RouteSource::Local),
                ));
            }
        }
        for &(sw_if, ip) in self.neighbors.keys() {
            derived.push((
                (u32::from(ip), 32),
                (RoutePath::Attached { sw_if }, RouteSource::Neighbor),
            ));
        }
        for (k, v) in derived {
            // API routes win over derived ones; local wins over a neighbor with our own address.
            match self.routes.get(&k) {
                Some((_, s)) if *s <= v.1 && *s != RouteSource::Connected => {}
                _ => {
                    self.routes.insert(k, v);
                }
            }
        }
        self.refresh_adjacencies();
        let wanted: Vec<((u32, u8), AdjIndex)> = self
            .routes
            .clone()
            .into_iter()
            .map(|(k, (path, source))| (k, self.path_adj(k, path, source)))
            .collect();
        let stale: Vec<(u32, u8)> = self
            .fib
            .routes()
            .map(|(p, l, _)| (u32::from(p), l))
            .filter(|k| !self.routes.contains_key(k))
            .collect();
        for (p, l) in stale {
            self.fib.remove(Ipv4Addr::from(p), l);
        }
        for ((p, l), adj) in wanted {
            if self.fib.get(Ipv4Addr::from(p), l) != Some(adj) {
                self.fib.insert(Ipv4Addr::from(p), l, adj)?;
            }
        }
        Ok(())
    }

    fn path_adj(&mut self, (p, l): (u32, u8), path: RoutePath, source: RouteSource) -> AdjIndex {
        match path {
            RoutePath::Drop => ADJ_DROP,
            RoutePath::Local => ADJ_LOCAL,
            RoutePath::Via { next_hop, sw_if } => self.adj(AdjKey::Nbr(sw_if, next_hop)),
            RoutePath::Attached { sw_if } if l == 32 && source != RouteSource::Connected => {
                self.adj(AdjKey::Nbr(sw_if, Ipv4Addr::from(p)))
            }
            RoutePath::Attached { sw_if } => self.adj(AdjKey::Glean(sw_if)),
        }
    }
}

fn path_uses(p: &RoutePath, sw_if: u32) -> bool {
    matches!(p, RoutePath::Via { sw_if: s, .. } | RoutePath::Attached { sw_if: s } if *s == sw_if)
}

fn route_key(c: Ipv4Cidr) -> Result<(u32, u8), Ip4Error> {
    let p = u32::from(c.address());
    let l = c.prefix_len();
    if l > 32 || (l < 32 && p & (u32::MAX >> l) != 0) {
        return Err(Ip4Error::BadPrefix(FibError::HostBitsSet {
            prefix: c.address(),
            len: l,
        }));
    }
    Ok((p, l))
}

fn cidr(p: u32, l: u8) -> Ipv4Cidr {
    Ipv4Cidr::new(Ipv4Addr::from(p), l).expect("prefix lengths in the table are <= 32")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_point_to_point_peer_resolves_attached_routes_and_unknown_next_hops() {
        let mut c = Ip4Control::new();
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let peer = EthernetAddress([2, 0, 0, 0, 0, 9]);
        c.add_interface(3, "vxlan0", mac).unwrap();
        c.add_address(3, "10.255.0.1/24".parse().unwrap()).unwrap();
        let net: Ipv4Cidr = "10.2.0.0/16".parse().unwrap();
        c.add_route(net, RoutePath::Attached { sw_if: 3 }).unwrap();
        c.add_route(
            "10.3.0.0/16".parse().unwrap(),
            RoutePath::Via {
                next_hop: Ipv4Addr::new(10, 255, 0, 2),
                sw_if: 3,
            },
        )
        .unwrap();
        let adj_of = |c: &Ip4Control, p: &str| {
            let p: Ipv4Cidr = p.parse().unwrap();
            let r = c.routes().into_iter().find(|r| r.prefix == p).unwrap();
            c.adjacencies()[r.adj as usize]
        };
        assert!(matches!(adj_of(&c, "10.2.0.0/16"), Adjacency::Glean { .. }));
        assert!(matches!(adj_of(&c, "10.3.0.0/16"), Adjacency::Glean { .. }));
        c.set_peer_mac(3, Some(peer)).unwrap();
        for p in ["10.2.0.0/16", "10.3.0.0/16", "10.255.0.0/24"] {
            let Adjacency::Rewrite { rewrite, sw_if, .. } = adj_of(&c, p) else {
                panic!("{p}: {}", adj_of(&c, p))
            };
            assert_eq!(
                (&rewrite[0..6], &rewrite[6..12], sw_if),
                (&peer.0[..], &mac.0[..], 3)
            );
        }
        assert_eq!(
            adj_of(&c, "10.2.0.0/16").to_string(),
            "rewrite peer 02:00:00:00:00:09 if 3"
        );
        // A neighbor for the next hop wins over the peer.
        let nbr = EthernetAddress([2, 0, 0, 0, 0, 7]);
        c.add_neighbor(3, Ipv4Addr::new(10, 255, 0, 2), nbr)
            .unwrap();
        let Adjacency::Rewrite { rewrite, .. } = adj_of(&c, "10.3.0.0/16") else {
            panic!()
        };
        assert_eq!(&rewrite[0..6], &nbr.0);
        c.set_peer_mac(3, None).unwrap();
        assert!(matches!(adj_of(&c, "10.2.0.0/16"), Adjacency::Glean { .. }));
        assert_eq!(c.peer_mac(3), None);
        assert_eq!(c.set_peer_mac(4, Some(peer)), Err(Ip4Error::NoInterface(4)));
    }
}
