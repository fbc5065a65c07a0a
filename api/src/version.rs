//! The version handshake and `show version`.
//!
//! The first frame a client sends is a [`Hello`] with its API version; the server answers
//! [`HelloReply::Welcome`] or, when the major versions differ, [`HelloReply::Refused`] with an
//! [`ErrorCode::VersionMismatch`] error, and closes. The rule that keeps this simple (VPP's
//! `.api` rule): a message is never changed incompatibly. New behaviour is a new message (a
//! `_v2` variant beside the old one) and bumps [`API_MINOR`]; only removing old messages bumps
//! [`API_MAJOR`]. So a client works with every server of its major version, as long as it sends
//! only messages that the server's minor version knows.

use crate::{ApiError, ErrorCode};
use serde::{Deserialize, Serialize};

/// API major version: a client with another major is refused.
pub const API_MAJOR: u32 = 1;
/// API minor version: bumped for additions (new messages, new optional reply fields) and for
/// behaviour a client must know of (1.4: interface indices are reused; ESP sequence numbers kept across restarts).
pub const API_MINOR: u32 = 4;

/// The first message of every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Client's API major version.
    pub api_major: u32,
    /// Client's API minor version.
    pub api_minor: u32,
    /// Who is asking (`vpgctl 0.1.0`), for the server's messages.
    pub client: String,
}

impl Hello {
    /// A hello announcing this crate's version.
    pub fn new(client: impl Into<String>) -> Self {
        Hello {
            api_major: API_MAJOR,
            api_minor: API_MINOR,
            client: client.into(),
        }
    }

    /// The server's verdict: `Ok` when the major versions agree, else a
    /// [`ErrorCode::VersionMismatch`] error that names both versions.
    pub fn check(&self) -> Result<(), ApiError> {
        if self.api_major == API_MAJOR {
            return Ok(());
        }
        // The name is only for the message; keep a hostile one from bloating the reply.
        let client: String = self.client.chars().take(64).collect();
        Err(ApiError::new(
            ErrorCode::VersionMismatch,
            format!(
                "client '{client}' speaks API {}.{}, this server {API_MAJOR}.{API_MINOR} \
                 (the major versions must agree)",
                self.api_major, self.api_minor
            ),
        ))
    }
}

/// The answer to [`Hello`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "hello", rename_all = "snake_case")]
pub enum HelloReply {
    /// Accepted: requests may follow.
    Welcome {
        /// Server's major.
        api_major: u32,
        /// Server's minor: a client must not send messages newer than this.
        api_minor: u32,
        /// Server name and version (`vpgd 0.1.0`).
        server: String,
    },
    /// Refused (another major version, or the first frame was not a hello); the server closes
    /// the connection.
    Refused(ApiError),
}

/// `show version`: the answer to [`Request::ShowVersion`](crate::Request::ShowVersion).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDetails {
    /// Daemon name and version.
    pub server: String,
    /// API major version.
    pub api_major: u32,
    /// API minor version.
    pub api_minor: u32,
    /// Workers.
    pub workers: usize,
    /// Stats segment path.
    pub stats_segment: String,
    /// The index the next interface created will get (1.3): the lowest index no interface
    /// holds. From 1.4 indices are reused: each interface a transaction creates takes the
    /// lowest index free at that point of the transaction (those of interfaces deleted earlier
    /// in it included), so a client that creates interfaces and configures them in one
    /// transaction can name them from the interface dump. (Servers before 1.4 never reused an
    /// index: the *n*th created got `next_sw_if + n`.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sw_if: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_major_version_must_agree() {
        assert!(Hello::new("t").check().is_ok());
        let newer_minor = Hello {
            api_minor: API_MINOR + 7,
            ..Hello::new("t")
        };
        assert!(newer_minor.check().is_ok());
        let e = Hello {
            api_major: API_MAJOR + 1,
            api_minor: 0,
            client: "x".repeat(1000),
        }
        .check()
        .unwrap_err();
        assert_eq!(e.code, ErrorCode::VersionMismatch);
        assert!(e.message.len() < 200, "{e}");
        assert!(
            e.message.contains(&format!("API {}.0", API_MAJOR + 1)),
            "{e}"
        );
    }
}
