//! vpg's control API, our equivalent of VPP's binary API: messages, framing, the version
//! handshake, a blocking client and the server loop. vpgd serves it on a unix socket (mode
//! 0600); vpgctl and the agent are its clients. `docs/api.md` documents every message.
//!
//! Versioning follows VPP's `.api` rule: a message is never changed incompatibly; a new
//! behaviour gets a new message (`_v2`). `api/schema.golden` pins the JSON of every message and
//! a test fails when it changes.

pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod interface;
pub mod message;
pub mod route;
pub mod server;
pub mod stats;
pub mod types;

pub use client::{Client, ClientError};
pub use config::ConfigItem;
pub use error::{ApiError, ErrorCode};
pub use message::{Details, Hello, HelloReply, Reply, Request, API_MAJOR, API_MINOR};
pub use route::RoutePath;
pub use types::{Mac, Prefix};
