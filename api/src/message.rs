//! The envelope: requests, replies and the version handshake.

use crate::config::ConfigItem;
use crate::interface::InterfaceDetails;
use crate::route::{NeighborDetails, RouteDetails};
use crate::stats::{
    BufferDetails, ClearWhat, ErrorDetails, FeatureDetails, RuntimeDetails, VersionDetails,
};
use crate::ApiError;
use serde::{Deserialize, Serialize};

/// API major version: a client with another major is refused.
pub const API_MAJOR: u32 = 1;
/// API minor version: additions only.
pub const API_MINOR: u32 = 0;

/// The first message of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Client's API major version.
    pub api_major: u32,
    /// Client's API minor version.
    pub api_minor: u32,
    /// Who is asking (`vpgctl 0.1.0`).
    pub client: String,
}

/// The answer to [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "hello", rename_all = "snake_case")]
pub enum HelloReply {
    /// Accepted.
    Welcome {
        /// Server's major.
        api_major: u32,
        /// Server's minor.
        api_minor: u32,
        /// Server name and version.
        server: String,
    },
    /// Refused (another major version).
    Refused(ApiError),
}

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
    /// Trace the next `count` packets entering `node` on every worker.
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
}

/// A reply. A dump is answered by zero or more `Details` and then `Done`; everything else by
/// exactly one `Ok`, `Applied` or `Error`.
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
