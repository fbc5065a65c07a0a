//! vpg's ACL plugin: stateless and reflective ACLs with VPP ACL semantics.
//!
//! | node | arc | does |
//! |---|---|---|
//! | `acl-in-ip4` | `ip4-unicast` | input ACLs of the receive interface; session hits pass |
//! | `acl-out-ip4` | `ip4-output` | output ACLs of the transmit interface; session hits pass |
//!
//! Counters (both nodes): session-hit, permit, session-created, deny, no-match, session-limit,
//! too-short, session-expired, reclassified; per-rule hit counters per ACL.
//!
//! Tables: [`control::AclControl`] (ACLs, interface lists, session settings) builds the immutable
//! [`tables::AclTables`] snapshot: per interface and direction a compiled [`classify::Classifier`]
//! over the concatenated rules of its list. Sessions ([`session::SessionTable`]) are per worker,
//! shared by the worker's two ACL nodes through the runtime's worker-local state, and expire
//! through a [`wheel::TimerWheel`] driven by the injected clock. Multi-thread note: a flow's
//! packets must reach the worker that holds its session; AF_PACKET fanout hashes flows
//! symmetrically, so both directions of a flow land on one worker when every interface has the
//! same workers.

pub mod acl_node;
pub mod classbench;
pub mod classify;
pub mod control;
pub mod rule;
pub mod session;
pub mod tables;
pub use vpg_graph::timer_wheel as wheel;

pub use acl_node::{AclIn, AclNode, AclOut};
pub use control::{AclControl, AclError as AclControlError, Verdict};
pub use rule::{Acl, Action, PacketKey, PortRange, Rule, RuleError};

use vpg_graph::{ArcId, FeatureRegistration, GraphSpec};

/// Registers the two ACL nodes as features: input ACLs run first on `ip4-unicast` (before NAT's
/// out2in, so policies see the addresses as they arrived), output ACLs first on `ip4-output`
/// (after service DNAT, before SNAT and ESP: policies see real pod addresses).
pub fn register(g: &mut GraphSpec) {
    g.node(AclIn::default)
        .node(AclOut::default)
        .feature(FeatureRegistration::new(ArcId::Ip4Unicast, AclIn::NAME).before("nat44-out2in"))
        .feature(
            FeatureRegistration::new(ArcId::Ip4Output, AclOut::NAME)
                .before("nat44-in2out")
                .before("esp4-encrypt"),
        );
}
