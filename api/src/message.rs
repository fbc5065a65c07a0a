//! The envelope: requests, replies and dump details.
//!
//! A connection is a conversation in order: the client sends one [`Request`] and reads its
//! replies before sending the next. A configuration request, a transaction, `trace_add` and
//! `clear` get exactly one reply ([`Reply::Ok`], [`Reply::Applied`] or [`Reply::Error`]); a dump
//! (and `show_version`) gets zero or more [`Reply::Details`] and then [`Reply::Done`] (or an
//! `Error`). Because replies come in order there is no request id: a client that wants
//! requests in flight at once opens more connections.

use crate::acl::{
    AclClassifierDetails, AclDetails, AclInterfaceDetails, AclMatchDetails, AclMatchQuery,
    AclSessionDetails, SessionFilter,
};
use crate::config::{validate_all, ConfigItem};
use crate::interface::InterfaceDetails;
use crate::nat44::{
    Nat44AddressDetails, Nat44Identity, Nat44InterfaceDetails, Nat44MappingDetails,
    Nat44SessionDetails, Nat44SessionFilter, Nat44SummaryDetails,
};
use crate::route::{NeighborDetails, RouteDetails};
use crate::stats::{BufferDetails, ClearWhat, ErrorDetails, FeatureDetails, RuntimeDetails};
use crate::trace::check_trace_add;
use crate::version::VersionDetails;
use crate::vxlan::VxlanTunnelDetails;
use crate::ApiError;
use serde::{Deserialize, Serialize};

pub use crate::version::{Hello, HelloReply, API_MAJOR, API_MINOR};

/// A request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// One configuration change.
    Config {
        /// The change.
        item: ConfigItem,
    },
    /// Many changes, all or nothing.
    Transaction {
        /// The changes, in order.
        items: Vec<ConfigItem>,
    },
    /// Interfaces → `Details::Interface`*.
    DumpInterfaces,
    /// Routes → `Details::Route`*.
    DumpRoutes,
    /// Neighbors → `Details::Neighbor`*.
    DumpNeighbors,
    /// Enabled features → `Details::Feature`*.
    DumpFeatures,
    /// Node runtime → `Details::Runtime`*.
    DumpRuntime,
    /// Error counters → `Details::Error`*.
    DumpErrors,
    /// Buffer pools → `Details::Buffers`*.
    DumpBuffers,
    /// Trace text per worker → `Details::Trace`*.
    DumpTrace,
    /// Version → `Details::Version`.
    ShowVersion,
    /// Trace the next `count` packets (1 to 10 000) entering `node` on every worker.
    TraceAdd {
        /// Node name.
        node: String,
        /// Packets.
        count: u32,
    },
    /// Reset counters or trace.
    Clear {
        /// What.
        what: ClearWhat,
    },
    /// ACLs with hit counters → `Details::Acl`* (one when `acl_id` is given).
    DumpAcls {
        /// Only this ACL.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        acl_id: Option<u32>,
    },
    /// Interface ACL lists → `Details::AclInterface`*.
    DumpAclInterfaces,
    /// Reflective sessions → `Details::AclSession`*.
    DumpAclSessions {
        /// Which.
        #[serde(default)]
        filter: SessionFilter,
    },
    /// Deletes the sessions the filter selects → `Ok`.
    ClearAclSessions {
        /// Which.
        #[serde(default)]
        filter: SessionFilter,
    },
    /// Compiled classifiers → `Details::AclClassifier`*.
    DumpAclClassifiers,
    /// Which ACL and rule decide a packet → one `Details::AclMatch`.
    AclMatch(AclMatchQuery),
    /// Zeroes every ACL hit counter → `Ok`.
    ClearAclCounters,
    /// VXLAN tunnels with their counters → `Details::VxlanTunnel`*.
    DumpVxlanTunnels,
    /// NAT44 pool addresses → `Details::Nat44Address`*.
    DumpNat44Addresses,
    /// NAT44 interface roles → `Details::Nat44Interface`*.
    DumpNat44Interfaces,
    /// NAT44 static and identity mappings → `Details::Nat44Mapping`*, `Details::Nat44Identity`*.
    DumpNat44Mappings,
    /// NAT44 sessions → `Details::Nat44Session`*.
    DumpNat44Sessions {
        /// Which.
        #[serde(default)]
        filter: Nat44SessionFilter,
    },
    /// Deletes the NAT44 sessions the filter selects → `Ok`.
    ClearNat44Sessions {
        /// Which.
        #[serde(default)]
        filter: Nat44SessionFilter,
    },
    /// Sessions per worker and protocol, ports per address, counters → one
    /// `Details::Nat44Summary`.
    DumpNat44Summary,
    /// ESP SAs with their counters, never their keys → `Details::EspSa`* (1.2).
    DumpEspSas,
    /// ESP protect rules with their counters → `Details::EspProtect`* (1.2).
    DumpEspProtect,
    /// ESP in one row → one `Details::EspSummary` (1.2).
    DumpEspSummary,
    /// The outbound keys of the sequence file → `Details::EspSequence`* (1.4).
    DumpEspSequences,
}

impl Request {
    /// The request's tag (`dump_routes`), for messages and logs.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Config { .. } => "config",
            Request::Transaction { .. } => "transaction",
            Request::DumpInterfaces => "dump_interfaces",
            Request::DumpRoutes => "dump_routes",
            Request::DumpNeighbors => "dump_neighbors",
            Request::DumpFeatures => "dump_features",
            Request::DumpRuntime => "dump_runtime",
            Request::DumpErrors => "dump_errors",
            Request::DumpBuffers => "dump_buffers",
            Request::DumpTrace => "dump_trace",
            Request::ShowVersion => "show_version",
            Request::TraceAdd { .. } => "trace_add",
            Request::Clear { .. } => "clear",
            Request::DumpAcls { .. } => "dump_acls",
            Request::DumpAclInterfaces => "dump_acl_interfaces",
            Request::DumpAclSessions { .. } => "dump_acl_sessions",
            Request::ClearAclSessions { .. } => "clear_acl_sessions",
            Request::DumpAclClassifiers => "dump_acl_classifiers",
            Request::AclMatch(_) => "acl_match",
            Request::ClearAclCounters => "clear_acl_counters",
            Request::DumpVxlanTunnels => "dump_vxlan_tunnels",
            Request::DumpNat44Addresses => "dump_nat44_addresses",
            Request::DumpNat44Interfaces => "dump_nat44_interfaces",
            Request::DumpNat44Mappings => "dump_nat44_mappings",
            Request::DumpNat44Sessions { .. } => "dump_nat44_sessions",
            Request::ClearNat44Sessions { .. } => "clear_nat44_sessions",
            Request::DumpNat44Summary => "dump_nat44_summary",
            Request::DumpEspSas => "dump_esp_sas",
            Request::DumpEspProtect => "dump_esp_protect",
            Request::DumpEspSummary => "dump_esp_summary",
            Request::DumpEspSequences => "dump_esp_sequences",
        }
    }

    /// True when the answer is a stream of details ended by [`Reply::Done`].
    pub fn is_dump(&self) -> bool {
        matches!(
            self,
            Request::DumpInterfaces
                | Request::DumpRoutes
                | Request::DumpNeighbors
                | Request::DumpFeatures
                | Request::DumpRuntime
                | Request::DumpErrors
                | Request::DumpBuffers
                | Request::DumpTrace
                | Request::ShowVersion
                | Request::DumpAcls { .. }
                | Request::DumpAclInterfaces
                | Request::DumpAclSessions { .. }
                | Request::DumpAclClassifiers
                | Request::AclMatch(_)
                | Request::DumpVxlanTunnels
                | Request::DumpNat44Addresses
                | Request::DumpNat44Interfaces
                | Request::DumpNat44Mappings
                | Request::DumpNat44Sessions { .. }
                | Request::DumpNat44Summary
                | Request::DumpEspSas
                | Request::DumpEspProtect
                | Request::DumpEspSummary
                | Request::DumpEspSequences
        )
    }

    /// Checks what can be checked without the daemon's state (see
    /// [`ConfigItem::validate`]); in a transaction the error names the item's index. The server
    /// loop calls this before the handler sees the request.
    pub fn validate(&self) -> Result<(), ApiError> {
        match self {
            Request::Config { item } => item.validate(),
            Request::Transaction { items } => validate_all(items),
            Request::TraceAdd { node, count } => check_trace_add(node, *count),
            _ => Ok(()),
        }
    }
}

/// One item of a dump stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "details", rename_all = "snake_case")]
pub enum Details {
    /// An interface.
    Interface(InterfaceDetails),
    /// A route.
    Route(RouteDetails),
    /// A neighbor.
    Neighbor(NeighborDetails),
    /// An enabled feature.
    Feature(FeatureDetails),
    /// A node on a worker.
    Runtime(RuntimeDetails),
    /// An error counter.
    Error(ErrorDetails),
    /// A buffer pool.
    Buffers(BufferDetails),
    /// One worker's trace.
    Trace {
        /// Worker.
        worker: usize,
        /// The trace, as `show trace` prints it.
        text: String,
    },
    /// The version.
    Version(VersionDetails),
    /// An ACL.
    Acl(AclDetails),
    /// An interface's ACL lists.
    AclInterface(AclInterfaceDetails),
    /// A reflective session.
    AclSession(AclSessionDetails),
    /// A compiled classifier.
    AclClassifier(AclClassifierDetails),
    /// The answer to `acl_match`.
    AclMatch(AclMatchDetails),
    /// A VXLAN tunnel.
    VxlanTunnel(VxlanTunnelDetails),
    /// A NAT44 pool address.
    Nat44Address(Nat44AddressDetails),
    /// A NAT44 interface role.
    Nat44Interface(Nat44InterfaceDetails),
    /// A NAT44 static mapping.
    Nat44Mapping(Nat44MappingDetails),
    /// A NAT44 identity mapping.
    Nat44Identity(Nat44Identity),
    /// A NAT44 session.
    Nat44Session(Nat44SessionDetails),
    /// The NAT44 summary.
    Nat44Summary(Nat44SummaryDetails),
    /// An ESP SA (1.2).
    EspSa(crate::esp::EspSaDetails),
    /// An ESP protect rule (1.2).
    EspProtect(crate::esp::EspProtectDetails),
    /// The ESP summary (1.2).
    EspSummary(crate::esp::EspSummaryDetails),
    /// An outbound key's sequence reservation (1.4).
    EspSequence(crate::esp::EspSequenceDetails),
}

/// A reply. A dump is answered by zero or more `Details` and then `Done`; everything else by
/// exactly one `Ok`, `Applied` or `Error`. An `Error` always means nothing changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Done; `sw_if` when an interface was created.
    Ok {
        /// The interface created.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sw_if: Option<u32>,
    },
    /// A transaction was applied whole; the interfaces it created, in order.
    Applied {
        /// Items applied.
        count: usize,
        /// Interfaces created.
        created: Vec<u32>,
    },
    /// Refused; nothing changed.
    Error(ApiError),
    /// One dump item.
    Details(Details),
    /// End of a dump.
    Done,
}

impl Reply {
    /// True for a reply that ends the answer to a request (everything but `Details`).
    pub fn is_final(&self) -> bool {
        !matches!(self, Reply::Details(_))
    }
}
