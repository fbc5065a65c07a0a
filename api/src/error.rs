//! Typed API errors: which object, which field, why — in words a person understands.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Kinds of error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed or a value is out of range.
    BadRequest,
    /// The frame could not be decoded (not JSON, not a known message, too large).
    Decode,
    /// The client's API version is not supported.
    VersionMismatch,
    /// The referenced object does not exist.
    NotFound,
    /// The object exists already.
    AlreadyExists,
    /// The daemon could not do it (a host interface could not be opened, ...).
    Failed,
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

    /// Names the transaction item.
    pub fn item(mut self, i: usize) -> Self {
        self.item = Some(i);
        self
    }
}

impl fmt::Display for ApiError {
    /// `item 2: route 10.0.0.0/8: already exists` — the object and field are named unless the
    /// message already names them.
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
            .filter(|fl| !self.message.contains(fl.as_str()))
        {
            write!(f, "{fl}: ")?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}
