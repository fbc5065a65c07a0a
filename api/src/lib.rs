//! vpg's control API, our equivalent of VPP's binary API: messages, framing, the version
//! handshake, a blocking client and the server loop. vpgd serves it on a unix socket (mode
//! 0600); vpgctl and the agent are its clients. `docs/api.md` documents every message.
//!
//! | module | what |
//! |---|---|
//! | [`codec`] | frames: 4-byte big-endian length + JSON body, 16 MiB limit |
//! | [`version`] | [`Hello`] / [`HelloReply`] handshake, [`API_MAJOR`] / [`API_MINOR`] |
//! | [`message`] | the envelope: [`Request`], [`Reply`], [`Details`] |
//! | [`config`] | [`ConfigItem`]: every change, and transactions ([`config::validate_all`]) |
//! | [`acl`] | ACLs, interface lists, sessions, classifier shapes, `acl_match` |
//! | [`interface`], [`route`], [`neighbor`], [`feature`], [`stats`], [`trace`], [`vxlan`], [`esp`] | one file per family: checks and dump rows |
//! | [`error`] | [`ApiError`] and [`ErrorCode`] |
//! | [`client`], [`server`] | the blocking [`Client`]; [`server::bind`] (mode 0600) and [`server::serve_connection`] |
//! | [`agent`] | not vpgd's: vpg-agent's status socket, its request lines and the policy and node views |
//!
//! Versioning follows VPP's `.api` rule: a message is never changed incompatibly; a new
//! behaviour gets a new message (`_v2`). `api/schema.golden` pins the JSON of every message and
//! a test fails when it changes.
//!
//! ```
//! use vpg_api::{ConfigItem, Request, RoutePath};
//!
//! let req = Request::Transaction {
//!     items: vec![ConfigItem::AddRoute {
//!         prefix: "10.9.0.0/16".parse().unwrap(),
//!         path: RoutePath::Drop,
//!     }],
//! };
//! let json = String::from_utf8(vpg_api::codec::encode(&req)).unwrap();
//! assert_eq!(
//!     json,
//!     r#"{"request":"transaction","items":[{"op":"add_route","prefix":"10.9.0.0/16","path":{"kind":"drop"}}]}"#
//! );
//! assert!(req.validate().is_ok());
//! ```

pub mod acl;
pub mod agent;
pub mod client;
pub mod codec;
pub mod config;
pub mod error;
pub mod esp;
pub mod feature;
pub mod interface;
pub mod message;
pub mod nat44;
pub mod neighbor;
pub mod route;
pub mod server;
pub mod stats;
pub mod trace;
pub mod types;
pub mod version;
pub mod vxlan;

pub use client::{Applied, Client, ClientError};
pub use config::ConfigItem;
pub use error::{ApiError, ErrorCode};
pub use message::{Details, Reply, Request};
pub use route::RoutePath;
pub use types::{Mac, Prefix};
pub use version::{Hello, HelloReply, API_MAJOR, API_MINOR};
