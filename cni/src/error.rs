//! CNI errors: the spec's well-known codes, ours from 100 up, and the error JSON a runtime reads
//! on stdout (libcni parses stdout, not stderr, when a plugin exits non-zero).

use serde_json::json;
use std::fmt;

/// An error code of the CNI error result. 1–99 are the specification's; 100 and up are vpg-cni's
/// own (listed in docs/cni.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// 1: the configuration's `cniVersion` is not one this plugin speaks (or the command does not
    /// exist in that version, e.g. CHECK before 0.4.0).
    IncompatibleVersion = 1,
    /// 2: a field of the network configuration is not supported (message names key and value).
    UnsupportedField = 2,
    /// 3: the container (its network namespace) does not exist; the runtime need not clean up.
    UnknownContainer = 3,
    /// 4: a `CNI_*` environment variable is missing or malformed (message names it).
    InvalidEnv = 4,
    /// 5: an I/O failure (stdin, the data directory).
    Io = 5,
    /// 6: the configuration is not JSON, or a field has the wrong JSON type.
    Decode = 6,
    /// 7: the configuration is JSON but invalid (a required field missing, a bad value).
    InvalidConfig = 7,
    /// 11: a transient condition (the state lock is held too long); the runtime should retry.
    TryAgainLater = 11,
    /// 50: STATUS: the plugin cannot serve ADD now (no free address, state not writable, tools
    /// missing).
    NotAvailable = 50,
    /// 100: the pod CIDR has no free address left.
    IpamExhausted = 100,
    /// 101: creating, configuring or removing an interface failed (iproute2 or ethtool reported
    /// an error, or is not installed).
    Link = 101,
    /// 102: ADD for an attachment (container id, interface) that already exists.
    AlreadyAttached = 102,
    /// 103: CHECK found the attachment differing from what ADD made (message says how).
    CheckFailed = 103,
}

impl Code {
    /// The number written into the error JSON.
    pub fn number(self) -> u32 {
        self as u32
    }
}

/// A CNI error: a code, a short message and details (the underlying cause).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CniError {
    /// The error code.
    pub code: Code,
    /// What failed, naming the field or variable at fault.
    pub msg: String,
    /// The cause in more detail (may be empty).
    pub details: String,
}

impl CniError {
    /// An error with a message and no details.
    pub fn new(code: Code, msg: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// An error with a message and details.
    pub fn with_details(code: Code, msg: impl Into<String>, details: impl Into<String>) -> Self {
        Self {
            code,
            msg: msg.into(),
            details: details.into(),
        }
    }

    /// The error result of the specification, for `cni_version`:
    /// `{"cniVersion", "code", "msg", "details"}` (`details` omitted when empty).
    pub fn to_json(&self, cni_version: &str) -> String {
        let mut v = json!({
            "cniVersion": cni_version,
            "code": self.code.number(),
            "msg": self.msg,
        });
        if !self.details.is_empty() {
            v["details"] = json!(self.details);
        }
        v.to_string()
    }
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (code {})", self.msg, self.code.number())?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl std::error::Error for CniError {}

/// Shorthand for results of this crate.
pub type Result<T> = std::result::Result<T, CniError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_json_has_the_spec_keys_and_omits_empty_details() {
        let e = CniError::new(Code::InvalidConfig, "podCIDR: missing");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.0.0")).unwrap();
        assert_eq!(v["cniVersion"], "1.0.0");
        assert_eq!(v["code"], 7);
        assert_eq!(v["msg"], "podCIDR: missing");
        assert!(v.get("details").is_none());
        let e = CniError::with_details(Code::Link, "veth", "RTNETLINK answers: File exists");
        let v: serde_json::Value = serde_json::from_str(&e.to_json("1.1.0")).unwrap();
        assert_eq!(v["code"], 101);
        assert_eq!(v["details"], "RTNETLINK answers: File exists");
        assert_eq!(
            e.to_string(),
            "veth (code 101): RTNETLINK answers: File exists"
        );
    }
}
