//! vpg's IPv4 nodes.
//!
//! | node | does | errors |
//! |---|---|---|
//! | `ethernet-input` | checks the Ethernet header and destination MAC, dispatches by ethertype | too-short, unknown-ethertype, l3-mac-mismatch, interface-down |
//! | `arp-input` | answers ARP for own addresses and proxy-ARP prefixes, reports neighbors | malformed, not-for-us, … |
//! | `ip4-input` | validates the IPv4 header, starts the `ip4-unicast` arc | too-short, bad-version, bad-header-length, bad-length, bad-checksum, time-expired |
//! | `ip4-lookup` | batched longest-prefix match in the FIB, dispatch by adjacency | no-route |
//! | `ip4-rewrite` | TTL, incremental checksum, MTU, Ethernet header; starts the `ip4-output` arc | time-expired, fragmentation-needed, mtu-exceeded |
//! | `ip4-local` | ICMP echo for the node's addresses | bad-icmp, unknown-protocol |
//! | `ip4-icmp-error` | time exceeded / fragmentation needed back to the source, rate-limited | rate-limited, not-allowed |
//! | `ip4-glean` | ARP request for an unresolved next hop, throttled | throttled |
//!
//! Arcs: `ip4-unicast` from `ip4-input` to `ip4-lookup`; `ip4-output` from `ip4-rewrite` to
//! `interface-output`. Tables: [`tables::Ip4Tables`] (interfaces, adjacencies, FIB snapshot), one
//! immutable snapshot per configuration, built by [`control::Ip4Control`]. Nodes keep an `Arc` of
//! it from `reconfigure`; nothing on the packet path locks or allocates.

pub mod arp_input;
pub mod control;
pub mod ethernet_input;
pub mod fib;
pub mod icmp_error;
pub mod ip4_glean;
pub mod ip4_input;
pub mod ip4_local;
pub mod ip4_lookup;
pub mod ip4_rewrite;
pub mod tables;

pub use control::{Ip4Control, Ip4Error, RoutePath};
pub use tables::{Adjacency, Ip4Interface, Ip4Tables};

use vpg_graph::{ArcId, GraphSpec, INTERFACE_OUTPUT};

/// Registers the IPv4 nodes and the two IPv4 feature arcs.
pub fn register(g: &mut GraphSpec) {
    g.node(ethernet_input::EthernetInput::default)
        .node(arp_input::ArpInput::default)
        .node(ip4_input::Ip4Input::default)
        .node(ip4_lookup::Ip4Lookup::default)
        .node(ip4_rewrite::Ip4Rewrite::default)
        .node(ip4_local::Ip4Local::default)
        .node(icmp_error::IcmpError::default)
        .node(ip4_glean::Ip4Glean::default)
        .arc(ArcId::Ip4Unicast, &["ip4-input"], "ip4-lookup")
        .arc(ArcId::Ip4Output, &["ip4-rewrite"], INTERFACE_OUTPUT);
}
