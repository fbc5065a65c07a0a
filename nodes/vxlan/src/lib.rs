//! vpg's VXLAN nodes (RFC 7348): the overlay between nodes, interoperable with the Linux
//! kernel's `vxlan` device.
//!
//! **Design note.** A tunnel is an interface: it has an interface index, a MAC, an MTU and
//! addresses in the IPv4 tables like any port, routes to a remote node's pod network point at it,
//! and what comes out of it enters `ethernet-input` with the tunnel as the receive interface, so
//! features (ACLs) and interface counters see it. Only its transmit side differs: it has no
//! device, and `interface-output` hands its frames to `vxlan4-encap` (its *TX node*, set up with
//! [`vpg_graph::TxNodes`]).
//!
//! ```text
//! ip4-rewrite (inner: far end's MAC) → interface-output ─(tunnel if)→ vxlan4-encap → ip4-lookup
//!     → ip4-rewrite (outer: underlay neighbor) → interface-output → uplink
//! uplink → ethernet-input → ip4-input → ip4-lookup → ip4-local ─(UDP 4789)→ vxlan4-decap
//!     → ethernet-input (rx if = tunnel) → ip4-input → …
//! ```
//!
//! | node | does | errors |
//! |---|---|---|
//! | `vxlan4-encap` | prepends the precomputed outer IPv4/UDP/VXLAN header, fixes lengths and the IPv4 checksum incrementally, UDP source port from a hash of the inner flow (49152–65535), UDP checksum zero | no-tunnel, no-headroom |
//! | `vxlan4-decap` | checks the outer headers and the I flag, finds the tunnel (one-entry cache per vector), strips the outer headers, learns the far end's MAC | too-short, bad-udp-length, bad-flags, no-such-vni, no-such-tunnel, learn-queue-full |
//!
//! Tables: [`tunnel::VxlanTables`] (per tunnel a 64-byte record with the header template and
//! the interface; interface → tunnel; a perfect hash from decap key to a 32-byte entry with
//! what decapsulation needs), one immutable snapshot per configuration built by
//! [`control::VxlanControl`].
//!
//! MTU: the tunnel interface's MTU (1450 on a 1500-byte underlay, [`tunnel::OVERHEAD`] less)
//! is enforced by `ip4-rewrite` like any interface's, answering DF packets that do not fit with
//! ICMP fragmentation-needed. The inner Ethernet header's destination is the far end's MAC, set
//! as the interface's point-to-point peer in the IPv4 tables (configured, or learned by
//! `vxlan4-decap`), or a neighbor resolved by ARP through the tunnel.
//!
//! Multi-thread: one instance of each node per worker; the nodes only read the snapshot, and
//! learned MACs travel to the control side over a bounded channel (a full queue is counted).

pub mod control;
pub mod decap;
pub mod encap;
pub mod tunnel;

pub use control::{TunnelEntry, VxlanControl, VxlanError};
pub use decap::{LearnedPeer, VxlanDecap};
pub use encap::VxlanEncap;
pub use tunnel::{TunnelKey, VxlanTables};
pub use vpg_graph::wire::VXLAN_PORT;

use vpg_graph::{GraphSpec, INTERFACE_OUTPUT};

/// Name of the encapsulation node.
pub const ENCAP_NODE: &str = "vxlan4-encap";
/// Name of the decapsulation node.
pub const DECAP_NODE: &str = "vxlan4-decap";

/// Registers both nodes, makes `vxlan4-encap` a possible TX node of `interface-output` and
/// `vxlan4-decap` a next node of `ip4-local` (which the IPv4 nodes register).
pub fn register(g: &mut GraphSpec) {
    g.node(VxlanEncap::default)
        .node(VxlanDecap::default)
        .add_next(INTERFACE_OUTPUT, ENCAP_NODE)
        .add_next("ip4-local", DECAP_NODE);
}
