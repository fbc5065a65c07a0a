//! The cluster-state model shared by the reflector, the stores and the agent: kinds, the key
//! layout, the versioned value envelope and the small typed values (CIDRs, protocols, selectors)
//! that the per-kind records are made of.
//!
//! Key layout (see docs/ksr.md): `/vpg/v1/<kind>/<namespace>/<name>` for namespaced kinds and
//! `/vpg/v1/<kind>/<name>` for cluster-scoped ones (namespaces and nodes). The `v1` segment is the
//! layout's major version; the value is `{"v":1,"record":{..}}` where `v` is the record version.
//! Adding an optional field keeps both versions; a change that old readers would misread bumps
//! `v`, and a change of the key layout bumps the prefix to `/vpg/v2/`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// Root of every key the reflector writes.
pub const KEY_ROOT: &str = "/vpg/v1/";

/// Version of the record encoding inside each value (the `v` field of the envelope).
pub const RECORD_VERSION: u32 = 1;

/// The Kubernetes kinds the reflector mirrors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// core/v1 Pod.
    Pod,
    /// core/v1 Namespace (cluster-scoped).
    Namespace,
    /// networking.k8s.io/v1 NetworkPolicy.
    Policy,
    /// core/v1 Service.
    Service,
    /// core/v1 Endpoints.
    Endpoints,
    /// core/v1 Node (cluster-scoped).
    Node,
    /// core/v1 Secret: only the IPsec key secret (`kube-system/vpg-ipsec-keys`).
    Secret,
}

impl Kind {
    /// Every kind, in the order status and dumps list them.
    pub const ALL: [Kind; 7] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::Policy,
        Kind::Service,
        Kind::Endpoints,
        Kind::Node,
        Kind::Secret,
    ];

    /// The kind's key segment.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pod => "pod",
            Kind::Namespace => "namespace",
            Kind::Policy => "policy",
            Kind::Service => "service",
            Kind::Endpoints => "endpoints",
            Kind::Node => "node",
            Kind::Secret => "secret",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace | Kind::Node)
    }

    /// The prefix under which all records of this kind live (ends in `/`).
    pub fn prefix(self) -> String {
        format!("{KEY_ROOT}{}/", self.as_str())
    }

    /// The key of one object. For cluster-scoped kinds the namespace is ignored.
    pub fn key(self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced(), namespace) {
            (true, Some(ns)) => format!("{KEY_ROOT}{}/{ns}/{name}", self.as_str()),
            // A namespaced object without a namespace lives in "default", as the API server
            // would have put it.
            (true, None) => format!("{KEY_ROOT}{}/default/{name}", self.as_str()),
            (false, _) => format!("{KEY_ROOT}{}/{name}", self.as_str()),
        }
    }

    /// The kind of a key, if it is one of ours.
    pub fn of_key(key: &str) -> Option<Kind> {
        let rest = key.strip_prefix(KEY_ROOT)?;
        let seg = rest.split('/').next()?;
        Kind::ALL.into_iter().find(|k| k.as_str() == seg)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown kind {s:?} (expected one of pod, namespace, policy, service, endpoints, node, secret)"))
    }
}

/// Why an object could not be turned into a record. Such objects are counted as skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The object has no `metadata.name`.
    #[error("object has no name")]
    NoName,
    /// A field the data plane needs is absent (a pod without an IP yet, a node without addresses).
    #[error("missing {0}")]
    Missing(&'static str),
    /// An IP address did not parse.
    #[error("bad IP address {0:?}")]
    BadIp(String),
    /// A CIDR did not parse or has a prefix length out of range.
    #[error("bad CIDR {0:?}")]
    BadCidr(String),
    /// A protocol other than TCP, UDP or SCTP.
    #[error("unknown protocol {0:?}")]
    UnknownProtocol(String),
    /// A port outside 1..=65535, or a port range that ends before it starts.
    #[error("bad port {0}")]
    BadPort(String),
    /// Any other malformed value (an unknown selector operator, service type, ...).
    #[error("invalid {field}: {value:?}")]
    Invalid {
        /// The field that is wrong.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// The object does not decode as its Kubernetes type (manifest source).
    #[error("does not decode: {0}")]
    Decode(String),
}

/// Encodes a record as the store value: `{"v":RECORD_VERSION,"record":..}`.
///
/// serde_json writes struct fields in declaration order and maps are `BTreeMap`s, so equal
/// records always give equal bytes; the reflector relies on that to skip unchanged writes.
pub fn encode<T: Serialize>(record: &T) -> Vec<u8> {
    #[derive(Serialize)]
    struct Envelope<'a, T> {
        v: u32,
        record: &'a T,
    }
    // Serializing plain structs of strings, numbers and maps cannot fail.
    serde_json::to_vec(&Envelope {
        v: RECORD_VERSION,
        record,
    })
    .unwrap_or_default()
}

/// Why a stored value could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The value is not JSON of the expected shape.
    #[error("malformed record: {0}")]
    Json(#[from] serde_json::Error),
    /// The record was written by a newer, incompatible reflector.
    #[error("record version {0} is not supported (this build reads {RECORD_VERSION})")]
    Version(u32),
}

/// Decodes a store value written by [`encode`].
pub fn decode<T: DeserializeOwned>(value: &[u8]) -> Result<T, DecodeError> {
    #[derive(Deserialize)]
    struct Envelope<T> {
        record: T,
    }
    #[derive(Deserialize)]
    struct Version {
        v: u32,
    }
    let v: Version = serde_json::from_slice(value)?;
    if v.v != RECORD_VERSION {
        return Err(DecodeError::Version(v.v));
    }
    let env: Envelope<T> = serde_json::from_slice(value)?;
    Ok(env.record)
}

/// An IP prefix, kept in canonical form (host bits cleared). Serialized as `"10.1.0.0/16"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    /// The network address.
    pub addr: IpAddr,
    /// The prefix length.
    pub len: u8,
}

impl FromStr for Cidr {
    type Err = TranslateError;
    fn from_str(s: &str) -> Result<Self, TranslateError> {
        let bad = || TranslateError::BadCidr(s.to_string());
        let (a, l) = s.split_once('/').ok_or_else(bad)?;
        let addr: IpAddr = a.parse().map_err(|_| bad())?;
        let len: u8 = l.parse().map_err(|_| bad())?;
        let addr = match addr {
            IpAddr::V4(v4) if len <= 32 => {
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                IpAddr::V4((u32::from(v4) & mask).into())
            }
            IpAddr::V6(v6) if len <= 128 => {
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            _ => return Err(bad()),
        };
        Ok(Cidr { addr, len })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Parses an IP address field.
pub fn parse_ip(s: &str) -> Result<IpAddr, TranslateError> {
    s.parse().map_err(|_| TranslateError::BadIp(s.to_string()))
}

/// A transport protocol as Kubernetes names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Protocol {
    /// TCP (the Kubernetes default).
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// Parses an optional protocol field; absent means TCP as in the Kubernetes API.
    pub fn parse(p: Option<&str>) -> Result<Protocol, TranslateError> {
        match p {
            None | Some("TCP") => Ok(Protocol::Tcp),
            Some("UDP") => Ok(Protocol::Udp),
            Some("SCTP") => Ok(Protocol::Sctp),
            Some(other) => Err(TranslateError::UnknownProtocol(other.to_string())),
        }
    }
}

/// Checks that a Kubernetes `int32` port is a valid port number.
pub fn port(p: i32) -> Result<u16, TranslateError> {
    u16::try_from(p)
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| TranslateError::BadPort(p.to_string()))
}

/// A port given by number or by a container port's name (`IntOrString`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PortRef {
    /// A port number.
    Number(u16),
    /// A named container port.
    Name(String),
}

impl PortRef {
    /// Converts an `IntOrString`, checking numeric ports and rejecting empty names.
    pub fn from_k8s(
        v: &k8s_openapi::apimachinery::pkg::util::intstr::IntOrString,
    ) -> Result<PortRef, TranslateError> {
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        match v {
            IntOrString::Int(n) => port(*n).map(PortRef::Number),
            IntOrString::String(s) if s.is_empty() => Err(TranslateError::BadPort(String::new())),
            // A numeric string is a number (the API server treats "80" as 80 for target ports).
            IntOrString::String(s) => match s.parse::<i32>() {
                Ok(n) => port(n).map(PortRef::Number),
                Err(_) => Ok(PortRef::Name(s.clone())),
            },
        }
    }
}

/// A label selector (`matchLabels` and `matchExpressions`); empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Selector {
    /// Labels that must be equal.
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements, all of which must hold.
    pub match_expressions: Vec<Requirement>,
}

/// One set-based selector requirement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values (empty for `Exists`/`DoesNotExist`).
    pub values: Vec<String>,
}

/// A selector requirement operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Operator {
    /// The label's value is one of the values.
    In,
    /// The label is absent or its value is none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

impl Selector {
    /// Converts a Kubernetes `LabelSelector`, validating operators and their values.
    pub fn from_k8s(
        s: &k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector,
    ) -> Result<Selector, TranslateError> {
        let mut out = Selector {
            match_labels: s.match_labels.clone().unwrap_or_default(),
            match_expressions: Vec::new(),
        };
        for r in s.match_expressions.iter().flatten() {
            let operator = match r.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(TranslateError::Invalid {
                        field: "selector operator",
                        value: other.to_string(),
                    })
                }
            };
            let values = r.values.clone().unwrap_or_default();
            let needs_values = matches!(operator, Operator::In | Operator::NotIn);
            if needs_values == values.is_empty() {
                return Err(TranslateError::Invalid {
                    field: "selector values",
                    value: format!("{} {:?} {:?}", r.key, r.operator, values),
                });
            }
            out.match_expressions.push(Requirement {
                key: r.key.clone(),
                operator,
                values,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys() {
        assert_eq!(Kind::Pod.key(Some("ns"), "a"), "/vpg/v1/pod/ns/a");
        assert_eq!(Kind::Node.key(Some("ignored"), "n1"), "/vpg/v1/node/n1");
        assert_eq!(Kind::of_key("/vpg/v1/endpoints/x/y"), Some(Kind::Endpoints));
        assert_eq!(Kind::of_key("/other/pod/x"), None);
        assert!(Kind::Pod
            .key(Some("ns"), "a")
            .starts_with(&Kind::Pod.prefix()));
    }

    #[test]
    fn cidr_canonical_and_bad() {
        let c: Cidr = "10.1.2.3/16".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.0.0/16");
        assert_eq!("0.0.0.0/0".parse::<Cidr>().unwrap().len, 0);
        assert_eq!(
            "fd00::1/64".parse::<Cidr>().unwrap().to_string(),
            "fd00::/64"
        );
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0",
            "10.0.0/8",
            "x/1",
            "10.0.0.0/-1",
            "::/129",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn envelope_round_trip_and_version() {
        let v = encode(&vec![1u16, 2]);
        assert_eq!(v, br#"{"v":1,"record":[1,2]}"#);
        assert_eq!(decode::<Vec<u16>>(&v).unwrap(), vec![1, 2]);
        assert!(matches!(
            decode::<Vec<u16>>(br#"{"v":2,"record":[]}"#),
            Err(DecodeError::Version(2))
        ));
        assert!(decode::<Vec<u16>>(b"nope").is_err());
    }

    #[test]
    fn protocols_and_ports() {
        assert_eq!(Protocol::parse(None).unwrap(), Protocol::Tcp);
        assert_eq!(Protocol::parse(Some("SCTP")).unwrap(), Protocol::Sctp);
        assert!(Protocol::parse(Some("ICMP")).is_err());
        assert!(port(0).is_err());
        assert!(port(65536).is_err());
        assert_eq!(port(443).unwrap(), 443);
    }
}
