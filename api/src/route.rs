//! Route and neighbor messages.

use crate::types::{Mac, Prefix};
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Where a route sends traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RoutePath {
    /// Via a next hop on an interface.
    Via {
        /// Next hop.
        next_hop: Ipv4Addr,
        /// Interface.
        sw_if: u32,
    },
    /// Directly out an interface (the destination is on link).
    Attached {
        /// Interface.
        sw_if: u32,
    },
    /// Drop.
    Drop,
    /// Deliver to the node.
    Local,
}

/// One route, as dumped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteDetails {
    /// Prefix.
    pub prefix: Prefix,
    /// Path.
    pub path: RoutePath,
    /// `api`, `connected`, `local` or `neighbor`.
    pub source: String,
    /// Adjacency index.
    pub adj: u32,
    /// The adjacency, described (`rewrite 10.0.2.2 02:..:02 if 1`).
    pub adjacency: String,
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
