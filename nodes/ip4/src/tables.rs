//! The IPv4 tables the workers read: interfaces, adjacencies and the FIB snapshot. One immutable
//! [`Ip4Tables`] is part of each configuration snapshot; `control.rs` builds it.

use crate::fib::{AdjIndex, FibSnapshot};
use std::fmt;
use std::net::Ipv4Addr;
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};

/// Adjacency 0: drop (no route).
pub const ADJ_DROP: AdjIndex = 0;
/// Adjacency 1: local delivery (`ip4-local`).
pub const ADJ_LOCAL: AdjIndex = 1;

/// What to do with a packet whose route resolved to this adjacency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adjacency {
    /// Drop and count `no-route`.
    Drop,
    /// For this node (`ip4-local`).
    Local,
    /// On a connected subnet with no known neighbor: send an ARP request (`ip4-glean`) for the
    /// packet's destination, or for `next_hop` when it is set.
    Glean {
        /// Interface.
        sw_if: u32,
        /// Next hop to resolve (None: the packet's own destination).
        next_hop: Option<Ipv4Addr>,
    },
    /// A known neighbor: rewrite the Ethernet header and transmit.
    Rewrite {
        /// Interface.
        sw_if: u32,
        /// Precomputed Ethernet header: destination MAC, source MAC, ethertype 0x0800.
        rewrite: [u8; 14],
        /// Interface MTU (IP bytes).
        mtu: u16,
        /// The neighbor's address (for display).
        next_hop: Ipv4Addr,
    },
}

impl fmt::Display for Adjacency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Adjacency::Drop => write!(f, "drop"),
            Adjacency::Local => write!(f, "local"),
            Adjacency::Glean {
                sw_if,
                next_hop: None,
            } => write!(f, "glean if {sw_if}"),
            Adjacency::Glean {
                sw_if,
                next_hop: Some(nh),
            } => write!(f, "incomplete {nh} if {sw_if}"),
            Adjacency::Rewrite {
                sw_if,
                rewrite,
                next_hop,
                ..
            } => {
                let mac = EthernetAddress([
                    rewrite[0], rewrite[1], rewrite[2], rewrite[3], rewrite[4], rewrite[5],
                ]);
                if next_hop.is_unspecified() {
                    // An attached route out of a point-to-point interface: no next hop.
                    return write!(f, "rewrite peer {mac} if {sw_if}");
                }
                write!(f, "rewrite {next_hop} {mac} if {sw_if}")
            }
        }
    }
}

/// An interface as the IPv4 nodes see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ip4Interface {
    /// Interface index.
    pub sw_if: u32,
    /// Name.
    pub name: String,
    /// MAC address.
    pub mac: EthernetAddress,
    /// Admin state: a down interface neither receives nor transmits.
    pub admin_up: bool,
    /// Addresses with their subnet.
    pub addresses: Vec<Ipv4Cidr>,
    /// MTU in IP bytes.
    pub mtu: u16,
    /// Answer ARP requests for any address in these prefixes (a pod gateway answers for every
    /// address, since pods route everything to it).
    pub proxy_arp: Vec<Ipv4Cidr>,
}

impl Ip4Interface {
    /// The first address (the source of ICMP errors and ARP requests).
    pub fn primary_address(&self) -> Option<Ipv4Addr> {
        self.addresses.first().map(|c| c.address())
    }

    /// True when `addr` is one of ours.
    pub fn owns(&self, addr: Ipv4Addr) -> bool {
        self.addresses.iter().any(|c| c.address() == addr)
    }
}

/// Everything the IPv4 nodes read, as one immutable snapshot.
#[derive(Clone)]
pub struct Ip4Tables {
    /// Interfaces by index (gaps are `None`).
    pub interfaces: Vec<Option<Ip4Interface>>,
    /// Adjacencies by index.
    pub adjacencies: Vec<Adjacency>,
    /// The FIB.
    pub fib: FibSnapshot,
}

impl Ip4Tables {
    /// Interface `sw_if`.
    #[inline(always)]
    pub fn interface(&self, sw_if: u32) -> Option<&Ip4Interface> {
        self.interfaces.get(sw_if as usize).and_then(|i| i.as_ref())
    }

    /// Adjacency `adj` (an unknown index reads as drop).
    #[inline(always)]
    pub fn adjacency(&self, adj: AdjIndex) -> &Adjacency {
        self.adjacencies
            .get(adj as usize)
            .unwrap_or(&Adjacency::Drop)
    }
}

impl Default for Ip4Tables {
    fn default() -> Self {
        Self {
            interfaces: Vec::new(),
            adjacencies: vec![Adjacency::Drop, Adjacency::Local],
            fib: crate::fib::Fib::new(ADJ_DROP).snapshot(),
        }
    }
}
