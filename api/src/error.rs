//! Typed API errors: which object, which field, why — in words a person understands.
//!
//! Every refusal the daemon sends is an [`ApiError`]: a machine-readable [`ErrorCode`], a
//! sentence, and optionally the object (`route 10.0.0.0/8`, `interface 3`), the field (`prefix`,
//! `mtu`) and, in a transaction, the index of the item that was refused. An error reply always
//! means that nothing changed.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Kinds of error. Codes are only ever added; a client that meets a code newer than itself
/// decodes it as [`ErrorCode::Unknown`] and still shows the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or a value is out of range: a bad prefix, MTU, name, MAC,
    /// arc. `field` names the value.
    BadRequest,
    /// The frame could not be decoded (not JSON, not a known message, a missing or unknown
    /// field, too large).
    Decode,
    /// The client's API major version is not the server's.
    VersionMismatch,
    /// The referenced object does not exist (an unknown interface is `NotFound` with the object
    /// `interface 7` and the field `sw_if`).
    NotFound,
    /// The object exists already (a duplicate route, address, interface name).
    AlreadyExists,
    /// The daemon could not do it (a host interface could not be opened, a table is full, the
    /// server gave no answer).
    Failed,
    /// A code this client does not know: sent by a newer server.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it travels (`already_exists`).
    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Decode => "decode",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::NotFound => "not_found",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::Failed => "failed",
            ErrorCode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// Kind.
    pub code: ErrorCode,
    /// The whole explanation.
    pub message: String,
    /// The object concerned (`route 10.0.0.0/8`, `interface 3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<String>,
    /// The field concerned (`prefix`, `mtu`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// In a transaction: the index of the item refused (none of the items was applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<usize>,
}

impl ApiError {
    /// An error with a message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            object: None,
            field: None,
            item: None,
        }
    }

    /// A [`ErrorCode::BadRequest`] about `field`.
    pub fn bad_request(field: &str, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message).field(field)
    }

    /// A [`ErrorCode::NotFound`] about `object` (`interface 7`).
    pub fn not_found(object: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message).object(object)
    }

    /// An [`ErrorCode::AlreadyExists`] about `object` (`route 10.0.0.0/8`).
    pub fn already_exists(object: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AlreadyExists, message).object(object)
    }

    /// A [`ErrorCode::Decode`] error.
    pub fn decode(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Decode, message)
    }

    /// Names the field.
    pub fn field(mut self, f: &str) -> Self {
        self.field = Some(f.into());
        self
    }

    /// Names the object.
    pub fn object(mut self, o: impl Into<String>) -> Self {
        self.object = Some(o.into());
        self
    }

    /// Names the object unless one is named already.
    pub fn or_object(mut self, o: impl FnOnce() -> String) -> Self {
        if self.object.is_none() {
            self.object = Some(o());
        }
        self
    }

    /// Names the transaction item.
    pub fn item(mut self, i: usize) -> Self {
        self.item = Some(i);
        self
    }
}

impl fmt::Display for ApiError {
    /// `item 2: route 10.0.0.0/8: already exists`. The item and the object are named unless the
    /// message already names them; the field too when the value was bad (for a missing or
    /// duplicate object, the object says it all).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.item {
            write!(f, "item {i}: ")?;
        }
        if let Some(o) = self
            .object
            .as_ref()
            .filter(|o| !self.message.contains(o.as_str()))
        {
            write!(f, "{o}: ")?;
        }
        if let Some(fl) = self
            .field
            .as_ref()
            .filter(|fl| self.code == ErrorCode::BadRequest && !self.message.contains(fl.as_str()))
        {
            write!(f, "{fl}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_item_object_and_field_once() {
        let e = ApiError::already_exists("route 10.0.0.0/8", "already exists")
            .field("prefix")
            .item(2);
        assert_eq!(e.to_string(), "item 2: route 10.0.0.0/8: already exists");
        let e = ApiError::bad_request("prefix", "10.0.0.1/8 has host bits set");
        assert_eq!(e.to_string(), "prefix: 10.0.0.1/8 has host bits set");
        let e = ApiError::bad_request("mtu", "mtu 20 is out of range").object("interface 1");
        assert_eq!(e.to_string(), "interface 1: mtu 20 is out of range");
        let e = ApiError::not_found("route 10.8.0.0/16", "route 10.8.0.0/16 does not exist");
        assert_eq!(e.to_string(), "route 10.8.0.0/16 does not exist");
    }

    #[test]
    fn codes_travel_in_snake_case_and_unknown_ones_decode() {
        for c in [
            ErrorCode::BadRequest,
            ErrorCode::Decode,
            ErrorCode::VersionMismatch,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::Failed,
            ErrorCode::Unknown,
        ] {
            let s = serde_json::to_string(&c).unwrap();
            assert_eq!(s, format!("\"{}\"", c.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&s).unwrap(), c);
        }
        let e: ApiError =
            serde_json::from_str(r#"{"code":"quota_exceeded","message":"too many"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::Unknown);
        assert_eq!(e.to_string(), "too many");
    }
}
