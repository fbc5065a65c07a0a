//! The renderer's input model: namespaces, pods and (in [`crate::policy`]) NetworkPolicies.
//!
//! These are the small normalized records the reflector will store; [`crate::kube`] builds them
//! from `kubectl get -o json` output.

use std::fmt;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::policy::NetworkPolicy;
use crate::rule::Protocol;
use crate::selector::Labels;

/// `namespace/name` of a pod or policy.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectKey {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// Key of a pod.
pub type PodKey = ObjectKey;
/// Key of a NetworkPolicy.
pub type PolicyKey = ObjectKey;

impl ObjectKey {
    /// The key `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> ObjectKey {
        ObjectKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A namespace and its labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Namespace {
    /// Name.
    pub name: String,
    /// Labels (namespace selectors match on them).
    #[serde(default)]
    pub labels: Labels,
}

/// A container port a pod declares (named ports resolve against these).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ContainerPort {
    /// Port name, if any.
    #[serde(default)]
    pub name: Option<String>,
    /// Port number.
    pub port: u16,
    /// TCP, UDP or SCTP.
    pub protocol: Protocol,
}

/// A pod as the renderer needs it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: Labels,
    /// Pod IP; a pod without one is ignored until it has one.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// Node the pod runs on.
    pub node: String,
    /// Container ports.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
}

impl Pod {
    /// `namespace/name`.
    pub fn key(&self) -> PodKey {
        ObjectKey::new(&self.namespace, &self.name)
    }

    /// The port numbers named `name` for `proto`.
    pub fn named_port(&self, name: &str, proto: Protocol) -> impl Iterator<Item = u16> + '_ {
        let name = name.to_string();
        self.ports
            .iter()
            .filter(move |p| p.protocol == proto && p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.port)
    }
}

impl NetworkPolicy {
    /// `namespace/name`.
    pub fn key(&self) -> PolicyKey {
        ObjectKey::new(&self.namespace, &self.name)
    }
}

/// A whole cluster snapshot (what resync and the CLI start from).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cluster {
    /// Namespaces.
    pub namespaces: Vec<Namespace>,
    /// Pods.
    pub pods: Vec<Pod>,
    /// NetworkPolicies.
    pub policies: Vec<NetworkPolicy>,
}
