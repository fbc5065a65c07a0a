//! `networking.k8s.io/v1` NetworkPolicy `spec` as serde types, and their compilation into the
//! renderer's checked form.
//!
//! The serde types take the JSON/YAML of a real NetworkPolicy `spec` (camelCase) as the API
//! server returns it. They are deliberately permissive (protocols and ports as written) so a
//! malformed field is reported by [`validate`] (and by the renderer) with the policy's namespace/name instead of
//! failing the whole document.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::rule::{subtract, Ipv4Net, PortRange, Protocol};
use crate::selector::Selector;

/// A Kubernetes label selector (`metav1.LabelSelector`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Further requirements, all of which must hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One `matchExpressions` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The label key.
    pub key: String,
    /// `In`, `NotIn`, `Exists` or `DoesNotExist`.
    pub operator: String,
    /// Values for `In` / `NotIn`; empty for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
}

/// `spec` of a NetworkPolicy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Pods of the policy's namespace the policy applies to; empty selects all of them.
    #[serde(default)]
    pub pod_selector: LabelSelector,
    /// `Ingress` and/or `Egress`; when absent, defaulted (see [`NetworkPolicySpec::types`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_types: Option<Vec<String>>,
    /// Allowed incoming connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<Vec<IngressRule>>,
    /// Allowed outgoing connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<EgressRule>>,
}

/// One `ingress` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    /// Sources; empty or absent means every source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Vec<PolicyPeer>>,
    /// Destination ports; empty or absent means every port and protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PolicyPort>>,
}

/// One `egress` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EgressRule {
    /// Destinations; empty or absent means every destination.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<Vec<PolicyPeer>>,
    /// Destination ports; empty or absent means every port and protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ports: Option<Vec<PolicyPort>>,
}

/// A `NetworkPolicyPeer`: selectors (both present means their intersection) or an `ipBlock`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPeer {
    /// Pods (in the policy's namespace unless `namespace_selector` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_selector: Option<LabelSelector>,
    /// Namespaces whose pods are selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// An address block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_block: Option<IpBlock>,
}

/// An `ipBlock`: a CIDR minus exceptions.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IpBlock {
    /// The block.
    pub cidr: String,
    /// Sub-blocks excluded from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub except: Option<Vec<String>>,
}

/// A port as Kubernetes writes it: a number or a container port name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    /// A port number.
    Int(i64),
    /// A named container port.
    String(String),
}

/// A `NetworkPolicyPort`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyPort {
    /// `TCP` (the default), `UDP` or `SCTP`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Port number or name; absent means every port of the protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<IntOrString>,
    /// Last port of a range starting at the numeric `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
}

/// Which directions a policy isolates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyTypes {
    /// Pods it selects are isolated for ingress.
    pub ingress: bool,
    /// Pods it selects are isolated for egress.
    pub egress: bool,
}

impl NetworkPolicySpec {
    /// `policyTypes` after the API server's defaulting: when absent or empty, `Ingress` always,
    /// plus `Egress` when the policy has at least one egress rule.
    pub fn types(&self) -> Result<PolicyTypes, String> {
        match &self.policy_types {
            Some(t) if !t.is_empty() => {
                let mut out = PolicyTypes {
                    ingress: false,
                    egress: false,
                };
                for v in t {
                    match v.as_str() {
                        "Ingress" => out.ingress = true,
                        "Egress" => out.egress = true,
                        other => return Err(format!("unknown policyType {other:?}")),
                    }
                }
                Ok(out)
            }
            _ => Ok(PolicyTypes {
                ingress: true,
                egress: self.egress.as_ref().is_some_and(|e| !e.is_empty()),
            }),
        }
    }
}

/// A NetworkPolicy: where it lives and its spec.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkPolicy {
    /// Namespace of the policy (and of the pods it selects).
    pub namespace: String,
    /// Name of the policy.
    pub name: String,
    /// The spec.
    pub spec: NetworkPolicySpec,
}

// ---------------------------------------------------------------------------------------------
// The checked form.

/// A policy after validation: selectors parsed, CIDRs split, ports resolved as far as they can
/// be without a pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Compiled {
    pub pod_selector: Selector,
    /// `Some` when the policy isolates selected pods for ingress.
    pub ingress: Option<Vec<CRule>>,
    /// `Some` when the policy isolates selected pods for egress.
    pub egress: Option<Vec<CRule>>,
}

/// One rule: peers (`None` = every peer) and ports (`None` = every port and protocol).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CRule {
    pub peers: Option<Vec<CPeer>>,
    pub ports: Option<Vec<CPort>>,
}

/// A peer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CPeer {
    /// Pods matching `pods` in the namespaces `ns` selects.
    Pods { ns: NsSel, pods: Selector },
    /// Disjoint prefixes (an IPv6 block compiles to none: it matches no IPv4 packet).
    Block(Vec<Ipv4Net>),
}

/// Which namespaces a pod peer draws from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NsSel {
    /// The policy's own namespace.
    Own,
    /// Namespaces whose labels match.
    Match(Selector),
}

/// A port entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CPort {
    pub proto: Protocol,
    pub port: CPortRef,
}

/// The port part of a port entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CPortRef {
    /// Every port of the protocol.
    All,
    /// A number or `port..=endPort`.
    Range(PortRange),
    /// A container port name, resolved against the destination pod.
    Named(String),
}

impl CRule {
    /// Whether any port entry is named (then the rule's ports depend on the destination pod).
    pub fn has_named_ports(&self) -> bool {
        self.ports
            .iter()
            .flatten()
            .any(|p| matches!(p.port, CPortRef::Named(_)))
    }
}

/// Checks and compiles a policy. Errors name the policy.
pub(crate) fn compile(p: &NetworkPolicy) -> Result<Compiled, PolicyError> {
    let id = format!("{}/{}", p.namespace, p.name);
    let sel = |s: &LabelSelector| {
        Selector::compile(s).map_err(|reason| PolicyError::Selector {
            policy: id.clone(),
            reason,
        })
    };
    let types = p.spec.types().map_err(|reason| PolicyError::Spec {
        policy: id.clone(),
        reason,
    })?;
    let pod_selector = sel(&p.spec.pod_selector)?;
    let mut ingress = None;
    if types.ingress {
        let mut rules = Vec::new();
        for r in p.spec.ingress.iter().flatten() {
            rules.push(compile_rule(&id, r.from.as_deref(), r.ports.as_deref())?);
        }
        ingress = Some(rules);
    }
    let mut egress = None;
    if types.egress {
        let mut rules = Vec::new();
        for r in p.spec.egress.iter().flatten() {
            rules.push(compile_rule(&id, r.to.as_deref(), r.ports.as_deref())?);
        }
        egress = Some(rules);
    }
    Ok(Compiled {
        pod_selector,
        ingress,
        egress,
    })
}

fn compile_rule(
    id: &str,
    peers: Option<&[PolicyPeer]>,
    ports: Option<&[PolicyPort]>,
) -> Result<CRule, PolicyError> {
    let peers = match peers {
        None | Some([]) => None,
        Some(list) => Some(
            list.iter()
                .map(|p| compile_peer(id, p))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    let ports = match ports {
        None | Some([]) => None,
        Some(list) => Some(
            list.iter()
                .map(|p| compile_port(id, p))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    Ok(CRule { peers, ports })
}

fn compile_peer(id: &str, p: &PolicyPeer) -> Result<CPeer, PolicyError> {
    let sel = |s: &LabelSelector| {
        Selector::compile(s).map_err(|reason| PolicyError::Selector {
            policy: id.to_string(),
            reason,
        })
    };
    match (&p.pod_selector, &p.namespace_selector, &p.ip_block) {
        (None, None, Some(b)) => compile_block(id, b),
        (None, None, None) => Err(PolicyError::Spec {
            policy: id.to_string(),
            reason: "a peer needs podSelector, namespaceSelector or ipBlock".into(),
        }),
        (_, _, Some(_)) => Err(PolicyError::Spec {
            policy: id.to_string(),
            reason: "a peer with ipBlock may not have selectors".into(),
        }),
        (pods, ns, None) => Ok(CPeer::Pods {
            ns: match ns {
                None => NsSel::Own,
                Some(s) => NsSel::Match(sel(s)?),
            },
            pods: match pods {
                None => Selector::everything(),
                Some(s) => sel(s)?,
            },
        }),
    }
}

fn is_ipv6(s: &str) -> bool {
    s.contains(':')
}

fn compile_block(id: &str, b: &IpBlock) -> Result<CPeer, PolicyError> {
    let bad = |reason: String| PolicyError::IpBlock {
        policy: id.to_string(),
        reason,
    };
    if is_ipv6(&b.cidr) {
        // Still validate the form so a typo is reported rather than silently matching nothing.
        let (a, l) = b
            .cidr
            .split_once('/')
            .ok_or_else(|| bad(format!("{:?} is not a CIDR", b.cidr)))?;
        let ok = a.parse::<std::net::Ipv6Addr>().is_ok() && l.parse::<u8>().is_ok_and(|l| l <= 128);
        return if ok {
            Ok(CPeer::Block(Vec::new()))
        } else {
            Err(bad(format!("{:?} is not a CIDR", b.cidr)))
        };
    }
    if !b.cidr.contains('/') {
        return Err(bad(format!("{:?} is not a CIDR", b.cidr)));
    }
    let cidr: Ipv4Net = b.cidr.parse().map_err(|e| bad(format!("{e}")))?;
    let mut except = Vec::new();
    for e in b.except.iter().flatten() {
        if !e.contains('/') {
            return Err(bad(format!("except {e:?} is not a CIDR")));
        }
        let n: Ipv4Net = e.parse().map_err(|err| bad(format!("{err}")))?;
        // The API server rejects an exception that is not strictly inside the block.
        if !cidr.covers(n) || n == cidr {
            return Err(bad(format!("except {n} is not strictly inside {cidr}")));
        }
        except.push(n);
    }
    Ok(CPeer::Block(subtract(cidr, &except)))
}

fn compile_port(id: &str, p: &PolicyPort) -> Result<CPort, PolicyError> {
    let bad = |reason: String| PolicyError::Port {
        policy: id.to_string(),
        reason,
    };
    let proto = match p.protocol.as_deref() {
        None | Some("TCP") => Protocol::Tcp,
        Some("UDP") => Protocol::Udp,
        Some("SCTP") => Protocol::Sctp,
        Some(other) => {
            return Err(PolicyError::Protocol {
                policy: id.to_string(),
                protocol: other.to_string(),
            })
        }
    };
    let num = |v: i64| -> Result<u16, PolicyError> {
        u16::try_from(v)
            .ok()
            .filter(|&v| v != 0)
            .ok_or_else(|| bad(format!("{v} is not in 1..=65535")))
    };
    let port = match (&p.port, p.end_port) {
        (None, None) => CPortRef::All,
        (None, Some(_)) => return Err(bad("endPort without port".into())),
        (Some(IntOrString::Int(v)), end) => {
            let lo = num(*v)?;
            let hi = match end {
                None => lo,
                Some(e) => {
                    let hi = num(e)?;
                    if hi < lo {
                        return Err(bad(format!("endPort {hi} is below port {lo}")));
                    }
                    hi
                }
            };
            CPortRef::Range(PortRange { lo, hi })
        }
        (Some(IntOrString::String(name)), None) => {
            if !valid_port_name(name) {
                return Err(bad(format!("{name:?} is not a valid port name")));
            }
            CPortRef::Named(name.clone())
        }
        (Some(IntOrString::String(name)), Some(_)) => {
            return Err(bad(format!("endPort with named port {name:?}")))
        }
    };
    Ok(CPort { proto, port })
}

/// An IANA service name as Kubernetes checks it: 1-15 lowercase letters, digits and inner
/// single hyphens, with at least one letter.
pub(crate) fn valid_port_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// Checks a policy as the renderer would, without rendering it.
pub fn validate(p: &NetworkPolicy) -> Result<(), PolicyError> {
    compile(p).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> NetworkPolicySpec {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn pol(yaml: &str) -> NetworkPolicy {
        NetworkPolicy {
            namespace: "ns".into(),
            name: "p".into(),
            spec: spec(yaml),
        }
    }

    #[test]
    fn policy_types_defaulting() {
        let t = spec("podSelector: {}").types().unwrap();
        assert_eq!((t.ingress, t.egress), (true, false));
        let t = spec("podSelector: {}\negress: [{}]").types().unwrap();
        assert_eq!((t.ingress, t.egress), (true, true));
        // An empty egress list is no egress rule: not egress-isolating when defaulted.
        let t = spec("podSelector: {}\negress: []").types().unwrap();
        assert_eq!((t.ingress, t.egress), (true, false));
        let t = spec("podSelector: {}\npolicyTypes: [Egress]")
            .types()
            .unwrap();
        assert_eq!((t.ingress, t.egress), (false, true));
        let t = spec("podSelector: {}\npolicyTypes: []\negress: [{}]")
            .types()
            .unwrap();
        assert_eq!((t.ingress, t.egress), (true, true));
        assert!(spec("policyTypes: [Sideways]").types().is_err());
    }

    #[test]
    fn compiles_real_policy_json() {
        // The spec of a policy as `kubectl get networkpolicy -o json` prints it.
        let json = r#"{
          "podSelector": {"matchLabels": {"role": "db"}},
          "policyTypes": ["Ingress", "Egress"],
          "ingress": [{
            "from": [
              {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
              {"namespaceSelector": {"matchLabels": {"project": "myproject"}}},
              {"podSelector": {"matchLabels": {"role": "frontend"}}},
              {"namespaceSelector": {"matchLabels": {"a": "b"}}, "podSelector": {"matchExpressions": [{"key": "x", "operator": "Exists"}]}}
            ],
            "ports": [{"protocol": "TCP", "port": 6379}, {"port": "http"}, {"protocol": "UDP", "port": 32000, "endPort": 32768}]
          }],
          "egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}], "ports": [{"protocol": "SCTP"}]}]
        }"#;
        let p = NetworkPolicy {
            namespace: "default".into(),
            name: "test-network-policy".into(),
            spec: serde_json::from_str(json).unwrap(),
        };
        let c = compile(&p).unwrap();
        let ing = c.ingress.unwrap();
        let peers = ing[0].peers.as_ref().unwrap();
        assert_eq!(peers.len(), 4);
        match &peers[0] {
            CPeer::Block(pieces) => assert_eq!(pieces.len(), 8),
            other => panic!("{other:?}"),
        }
        assert!(matches!(&peers[2], CPeer::Pods { ns: NsSel::Own, .. }));
        assert!(matches!(
            &peers[3],
            CPeer::Pods {
                ns: NsSel::Match(_),
                ..
            }
        ));
        let ports = ing[0].ports.as_ref().unwrap();
        assert_eq!(ports[0].port, CPortRef::Range(PortRange::single(6379)));
        assert_eq!(ports[0].proto, Protocol::Tcp);
        assert_eq!(ports[1].port, CPortRef::Named("http".into()));
        assert_eq!(ports[1].proto, Protocol::Tcp);
        assert_eq!(
            ports[2].port,
            CPortRef::Range(PortRange {
                lo: 32000,
                hi: 32768
            })
        );
        assert_eq!(ports[2].proto, Protocol::Udp);
        let eg = c.egress.unwrap();
        assert_eq!(eg[0].ports.as_ref().unwrap()[0].port, CPortRef::All);
        assert_eq!(eg[0].ports.as_ref().unwrap()[0].proto, Protocol::Sctp);
    }

    #[test]
    fn empty_lists_mean_everything() {
        let c = compile(&pol("ingress: [{from: [], ports: []}]")).unwrap();
        let r = &c.ingress.unwrap()[0];
        assert!(r.peers.is_none() && r.ports.is_none());
        // No ingress rules at all: isolated, nothing allowed.
        let c = compile(&pol("podSelector: {}")).unwrap();
        assert_eq!(c.ingress, Some(vec![]));
        assert_eq!(c.egress, None);
    }

    #[test]
    fn bad_input_names_the_policy() {
        let e = compile(&pol("ingress: [{ports: [{port: 70000}]}]")).unwrap_err();
        assert!(e.to_string().starts_with("ns/p: invalid port"), "{e}");
        let e = compile(&pol("ingress: [{ports: [{port: 0}]}]")).unwrap_err();
        assert!(matches!(e, PolicyError::Port { .. }));
        let e = compile(&pol("ingress: [{ports: [{port: 90, endPort: 80}]}]")).unwrap_err();
        assert!(matches!(e, PolicyError::Port { .. }));
        let e = compile(&pol("ingress: [{ports: [{port: http, endPort: 80}]}]")).unwrap_err();
        assert!(matches!(e, PolicyError::Port { .. }));
        let e = compile(&pol("ingress: [{ports: [{endPort: 80}]}]")).unwrap_err();
        assert!(matches!(e, PolicyError::Port { .. }));
        let e = compile(&pol("ingress: [{ports: [{port: Http_2}]}]")).unwrap_err();
        assert!(matches!(e, PolicyError::Port { .. }));
        let e = compile(&pol("ingress: [{ports: [{protocol: ICMP}]}]")).unwrap_err();
        assert_eq!(e.to_string(), "ns/p: invalid protocol \"ICMP\"");
        let e = compile(&pol("ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]")).unwrap_err();
        assert!(matches!(e, PolicyError::IpBlock { .. }));
        let e = compile(&pol("ingress: [{from: [{ipBlock: {cidr: 10.0.0.1}}]}]")).unwrap_err();
        assert!(matches!(e, PolicyError::IpBlock { .. }));
        let e = compile(&pol(
            "ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/24, except: [10.1.0.0/24]}}]}]",
        ))
        .unwrap_err();
        assert!(matches!(e, PolicyError::IpBlock { .. }));
        let e = compile(&pol("ingress: [{from: [{}]}]")).unwrap_err();
        assert!(matches!(e, PolicyError::Spec { .. }));
        let e = compile(&pol(
            "ingress: [{from: [{podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]}]",
        ))
        .unwrap_err();
        assert!(matches!(e, PolicyError::Spec { .. }));
        let e = compile(&pol(
            "podSelector: {matchExpressions: [{key: a, operator: In, values: []}]}",
        ))
        .unwrap_err();
        assert!(matches!(e, PolicyError::Selector { .. }));
        // An IPv6 block is valid and matches no IPv4 address; a bad one is reported.
        let c = compile(&pol("ingress: [{from: [{ipBlock: {cidr: 'fd00::/8'}}]}]")).unwrap();
        assert_eq!(
            c.ingress.unwrap()[0].peers,
            Some(vec![CPeer::Block(vec![])])
        );
        assert!(compile(&pol("ingress: [{from: [{ipBlock: {cidr: 'fd00::/300'}}]}]")).is_err());
    }

    #[test]
    fn port_names() {
        assert!(valid_port_name("http"));
        assert!(valid_port_name("dns-tcp"));
        assert!(valid_port_name("h2"));
        assert!(!valid_port_name("80"));
        assert!(!valid_port_name("-a"));
        assert!(!valid_port_name("a--b"));
        assert!(!valid_port_name("abcdefghijklmnop"));
        assert!(!valid_port_name("HTTP"));
    }
}
