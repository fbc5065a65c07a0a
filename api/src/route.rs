//! Route messages: the `add_route` / `del_route` checks, the path of a route, and the
//! `dump_routes` row.

use crate::interface::check_host_ip;
use crate::types::Prefix;
use crate::ApiError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

pub use crate::neighbor::NeighborDetails;

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

impl RoutePath {
    /// The interface the path leaves by, if any.
    pub fn sw_if(&self) -> Option<u32> {
        match self {
            RoutePath::Via { sw_if, .. } | RoutePath::Attached { sw_if } => Some(*sw_if),
            RoutePath::Drop | RoutePath::Local => None,
        }
    }
}

/// Checks a route prefix: no host bits (`10.0.0.1/8` is refused with a suggestion).
pub fn check_route_prefix(prefix: Prefix) -> Result<(), ApiError> {
    if !prefix.is_network() {
        return Err(ApiError::bad_request(
            "prefix",
            format!(
                "prefix {prefix} has host bits set (did you mean {}?)",
                prefix.network()
            ),
        ));
    }
    Ok(())
}

/// Checks a route to add: its prefix and, for a `via` path, a next hop that names a host.
pub fn check_route(prefix: Prefix, path: &RoutePath) -> Result<(), ApiError> {
    check_route_prefix(prefix)?;
    if let RoutePath::Via { next_hop, .. } = path {
        check_host_ip("next_hop", *next_hop)?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_checks() {
        let p = |s: &str| s.parse::<Prefix>().unwrap();
        check_route(p("0.0.0.0/0"), &RoutePath::Drop).unwrap();
        let e = check_route(p("10.0.0.1/8"), &RoutePath::Local).unwrap_err();
        assert_eq!(
            e.to_string(),
            "prefix 10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)"
        );
        let via = |ip: [u8; 4]| RoutePath::Via {
            next_hop: ip.into(),
            sw_if: 1,
        };
        check_route(p("10.0.0.0/8"), &via([10, 0, 2, 2])).unwrap();
        for bad in [[0, 0, 0, 0], [224, 0, 0, 5], [255, 255, 255, 255]] {
            let e = check_route(p("10.0.0.0/8"), &via(bad)).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("next_hop"));
        }
        assert_eq!(via([1, 1, 1, 1]).sw_if(), Some(1));
        assert_eq!(RoutePath::Drop.sw_if(), None);
    }
}
