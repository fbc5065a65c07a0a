//! Error types of the renderer.

use thiserror::Error;

/// A value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ParseError {
    /// Not an IPv4 `a.b.c.d/len` prefix.
    #[error("invalid IPv4 CIDR {0:?}")]
    Cidr(String),
}

/// Why a NetworkPolicy was skipped. Each is reported with the policy's namespace/name and does
/// not affect other policies.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyError {
    /// A label selector requirement is malformed.
    #[error("{policy}: invalid selector: {reason}")]
    Selector {
        /// `namespace/name` of the policy.
        policy: String,
        /// What is wrong.
        reason: String,
    },
    /// An `ipBlock` CIDR or `except` entry is malformed.
    #[error("{policy}: invalid ipBlock: {reason}")]
    IpBlock {
        /// `namespace/name` of the policy.
        policy: String,
        /// What is wrong.
        reason: String,
    },
    /// A port, port name or `endPort` is malformed.
    #[error("{policy}: invalid port: {reason}")]
    Port {
        /// `namespace/name` of the policy.
        policy: String,
        /// What is wrong.
        reason: String,
    },
    /// A protocol other than TCP, UDP or SCTP.
    #[error("{policy}: invalid protocol {protocol:?}")]
    Protocol {
        /// `namespace/name` of the policy.
        policy: String,
        /// The protocol as written.
        protocol: String,
    },
    /// A peer with none or several of its alternatives, or an unknown policy type.
    #[error("{policy}: {reason}")]
    Spec {
        /// `namespace/name` of the policy.
        policy: String,
        /// What is wrong.
        reason: String,
    },
}

/// A cluster dump (`kubectl get ... -o json`) that cannot be read.
#[derive(Debug, Error)]
pub enum LoadError {
    /// Neither JSON nor YAML of a Kubernetes `List`.
    #[error("cluster file is neither a JSON nor a YAML Kubernetes List: {0}")]
    Format(String),
}
