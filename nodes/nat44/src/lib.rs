//! vpg's NAT44: endpoint-dependent SNAT for the internet gateway and static, load-balanced and
//! identity mappings for Kubernetes services, with VPP nat44-ed semantics.
//!
//! | node | arc | does |
//! |---|---|---|
//! | `nat44-out2in-handoff` | `ip4-unicast` | hands packets to the worker owning their session (more than one worker) |
//! | `nat44-out2in` | `ip4-unicast` | before routing: return traffic of SNAT, service DNAT (creates sessions from mappings), replies of DNAT sessions |
//! | `nat44-in2out-handoff` | `ip4-output` | as above, on output |
//! | `nat44-in2out` | `ip4-output` | after routing, on outside interfaces: SNAT of traffic from inside interfaces (creates dynamic and static sessions) |
//!
//! A session ([`session::Session`]) is two flows: `i` as the initiator sent it and `o` what it
//! becomes. SNAT sessions translate forward on output and back on input; DNAT sessions (made by
//! mappings) translate both ways on input, before routing, so routing sees the endpoint.
//! Policies on the output arc (ACLs) therefore see pod addresses: after DNAT, before SNAT.
//!
//! Control: [`control::Nat44Control`] validates every change and builds the immutable
//! [`tables::Nat44Tables`] snapshot. Sessions are per worker ([`session::SessionTable`]),
//! shared by the worker's NAT nodes through worker-local state; dynamic sessions take outside
//! ports from the worker's slice of the port range so the port of a return packet names its
//! worker, and static/service sessions belong to the worker a hash of the endpoint both
//! directions share names.

pub mod control;
pub mod flow;
pub mod handoff;
pub mod in2out;
pub mod out2in;
pub mod ports;
pub mod session;
pub mod tables;
pub mod translate;

pub use control::{
    Endpoint, IdentityMapping, Limits, MappingKey, Nat44Control, Nat44Error, PoolEntry, Role,
    StaticMapping,
};
pub use flow::Flow;
pub use session::{Kind, Session, SessionTable, Timeouts};
pub use tables::Nat44Tables;

use std::fmt;
use vpg_graph::{ArcId, FeatureRegistration, GraphSpec};

/// `nat44-out2in`.
pub const OUT2IN: &str = "nat44-out2in";
/// `nat44-in2out`.
pub const IN2OUT: &str = "nat44-in2out";
/// `nat44-out2in-handoff`.
pub const OUT2IN_HANDOFF: &str = "nat44-out2in-handoff";
/// `nat44-in2out-handoff`.
pub const IN2OUT_HANDOFF: &str = "nat44-in2out-handoff";

/// Sessions the timer wheel may check per frame and node (bounds the work added to a frame).
pub(crate) const EXPIRE_BUDGET: usize = 256;
/// How many packets ahead `nat44-out2in` prefetches a reverse-index slot.
pub(crate) const PREFETCH_INDEX: usize = 24;
/// How many packets ahead both NAT nodes prefetch the session itself.
pub(crate) const PREFETCH_SESSION: usize = 12;

/// Registers the NAT44 nodes and features: after the ACLs on both arcs (policies see pod
/// addresses), SNAT before ESP on output.
pub fn register(g: &mut GraphSpec) {
    g.node(out2in::Out2In::default)
        .node(in2out::In2Out::default)
        .node(handoff::Out2InHandoff::default)
        .node(handoff::In2OutHandoff::default)
        .feature(
            FeatureRegistration::new(ArcId::Ip4Unicast, OUT2IN_HANDOFF)
                .after("acl-in-ip4")
                .before(OUT2IN),
        )
        .feature(FeatureRegistration::new(ArcId::Ip4Unicast, OUT2IN).after("acl-in-ip4"))
        .feature(
            FeatureRegistration::new(ArcId::Ip4Output, IN2OUT_HANDOFF)
                .after("acl-out-ip4")
                .before(IN2OUT),
        )
        .feature(
            FeatureRegistration::new(ArcId::Ip4Output, IN2OUT)
                .after("acl-out-ip4")
                .before("esp4-encrypt"),
        );
}

/// What happened to a traced packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Translated by an existing session.
    Hit {
        /// Session.
        session: u32,
        /// Its kind.
        kind: Kind,
        /// Reverse direction.
        reverse: bool,
    },
    /// A new session translated it.
    Created {
        /// Session.
        session: u32,
        /// Its kind.
        kind: Kind,
    },
    /// Passed untranslated, and why.
    Pass(&'static str),
    /// Dropped, and why.
    Drop(&'static str),
}

/// Trace record of both NAT nodes.
#[derive(Clone, Copy, Debug)]
pub struct NatTrace {
    /// Interface (receive for out2in, transmit for in2out).
    pub sw_if: u32,
    /// The packet's flow on arrival.
    pub before: Flow,
    /// Its flow on leaving.
    pub after: Flow,
    /// What happened.
    pub outcome: Outcome,
}

impl fmt::Display for NatTrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "interface {} {}", self.sw_if, self.before)?;
        match self.outcome {
            Outcome::Hit {
                session,
                kind,
                reverse,
            } => write!(
                f,
                " => {}: session {session} ({}, {})",
                self.after,
                kind.name(),
                if reverse { "reverse" } else { "forward" }
            ),
            Outcome::Created { session, kind } => write!(
                f,
                " => {}: new session {session} ({})",
                self.after,
                kind.name()
            ),
            Outcome::Pass(why) => write!(f, ": not translated ({why})"),
            Outcome::Drop(why) => write!(f, ": drop ({why})"),
        }
    }
}
