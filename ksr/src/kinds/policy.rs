//! networking.k8s.io/v1 NetworkPolicy → [`PolicyRecord`]: the spec, typed and validated.
//!
//! The record keeps Kubernetes' words (ingress/egress) because it is the edge of the system;
//! the renderer turns them into to-pod/from-pod rules. Validation here (CIDRs, protocols, ports,
//! selector operators) means the renderer never sees a malformed policy.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use serde::{Deserialize, Serialize};

use super::{ns_name, Reflect};
use crate::model::{Cidr, Kind, PortRef, Protocol, Selector, TranslateError};

/// A network policy as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyRecord {
    /// Its namespace (the pods it selects live there).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The pods it applies to; empty selects every pod of the namespace.
    pub pod_selector: Selector,
    /// Whether it restricts traffic into the selected pods.
    pub ingress_isolation: bool,
    /// Whether it restricts traffic out of the selected pods.
    pub egress_isolation: bool,
    /// Allowed incoming traffic (peers are sources).
    pub ingress: Vec<Rule>,
    /// Allowed outgoing traffic (peers are destinations).
    pub egress: Vec<Rule>,
}

/// One allow rule. An empty peer list means any peer, an empty port list any port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rule {
    /// Who may be talked to.
    pub peers: Vec<Peer>,
    /// On which ports.
    pub ports: Vec<PolicyPort>,
}

/// A rule's peer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Peer {
    /// Pods chosen by selectors. With both selectors, pods matching the pod selector in the
    /// namespaces matching the namespace selector (their intersection); with only a pod
    /// selector, pods of the policy's own namespace.
    Pods {
        /// Pod labels, if given.
        pod_selector: Option<Selector>,
        /// Namespace labels, if given.
        namespace_selector: Option<Selector>,
    },
    /// An address block, minus exceptions.
    IpBlock {
        /// The block.
        cidr: Cidr,
        /// Addresses inside it that are not allowed.
        except: Vec<Cidr>,
    },
}

/// A port (or port range) of a rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyPort {
    /// The protocol.
    pub protocol: Protocol,
    /// The port, by number or name; `None` means every port of the protocol.
    pub port: Option<PortRef>,
    /// The last port of a range starting at `port` (numeric ports only).
    pub end_port: Option<u16>,
}

fn peer(p: &NetworkPolicyPeer) -> Result<Peer, TranslateError> {
    if let Some(b) = &p.ip_block {
        if p.pod_selector.is_some() || p.namespace_selector.is_some() {
            return Err(TranslateError::Invalid {
                field: "peer",
                value: "ipBlock combined with a selector".into(),
            });
        }
        let cidr: Cidr = b.cidr.parse()?;
        let mut except = Vec::new();
        for e in b.except.iter().flatten() {
            let e: Cidr = e.parse()?;
            let inside = e.len >= cidr.len
                && format!("{}/{}", e.addr, cidr.len).parse::<Cidr>().ok() == Some(cidr);
            if !inside {
                return Err(TranslateError::BadCidr(format!(
                    "except {e} not inside {cidr}"
                )));
            }
            except.push(e);
        }
        return Ok(Peer::IpBlock { cidr, except });
    }
    if p.pod_selector.is_none() && p.namespace_selector.is_none() {
        return Err(TranslateError::Invalid {
            field: "peer",
            value: "empty".into(),
        });
    }
    Ok(Peer::Pods {
        pod_selector: p
            .pod_selector
            .as_ref()
            .map(Selector::from_k8s)
            .transpose()?,
        namespace_selector: p
            .namespace_selector
            .as_ref()
            .map(Selector::from_k8s)
            .transpose()?,
    })
}

fn policy_port(p: &NetworkPolicyPort) -> Result<PolicyPort, TranslateError> {
    let protocol = Protocol::parse(p.protocol.as_deref())?;
    let port = p.port.as_ref().map(PortRef::from_k8s).transpose()?;
    let end_port = match (p.end_port, &port) {
        (None, _) => None,
        (Some(end), Some(PortRef::Number(start))) => {
            let end = crate::model::port(end)?;
            if end < *start {
                return Err(TranslateError::BadPort(format!("range {start}-{end}")));
            }
            Some(end)
        }
        (Some(end), _) => {
            return Err(TranslateError::BadPort(format!(
                "endPort {end} without a numeric port"
            )))
        }
    };
    Ok(PolicyPort {
        protocol,
        port,
        end_port,
    })
}

fn rule<'a>(
    peers: Option<&'a Vec<NetworkPolicyPeer>>,
    ports: Option<&'a Vec<NetworkPolicyPort>>,
) -> Result<Rule, TranslateError> {
    Ok(Rule {
        peers: peers
            .into_iter()
            .flatten()
            .map(peer)
            .collect::<Result<_, _>>()?,
        ports: ports
            .into_iter()
            .flatten()
            .map(policy_port)
            .collect::<Result<_, _>>()?,
    })
}

impl Reflect for NetworkPolicy {
    const KIND: Kind = Kind::Policy;
    type Record = PolicyRecord;

    fn translate(&self) -> Result<PolicyRecord, TranslateError> {
        let (namespace, name) = ns_name(&self.metadata);
        let spec = self.spec.as_ref().ok_or(TranslateError::Missing("spec"))?;
        // The API's defaulting: without policyTypes a policy isolates ingress, and egress
        // only if it has egress rules.
        let (ingress_isolation, egress_isolation) = match &spec.policy_types {
            Some(types) => {
                for t in types {
                    if t != "Ingress" && t != "Egress" {
                        return Err(TranslateError::Invalid {
                            field: "policyTypes",
                            value: t.clone(),
                        });
                    }
                }
                (
                    types.iter().any(|t| t == "Ingress"),
                    types.iter().any(|t| t == "Egress"),
                )
            }
            None => (true, spec.egress.is_some()),
        };
        Ok(PolicyRecord {
            namespace,
            name,
            pod_selector: spec
                .pod_selector
                .as_ref()
                .map(Selector::from_k8s)
                .transpose()?
                .unwrap_or_default(),
            ingress_isolation,
            egress_isolation,
            ingress: spec
                .ingress
                .iter()
                .flatten()
                .map(|r| rule(r.from.as_ref(), r.ports.as_ref()))
                .collect::<Result<_, _>>()?,
            egress: spec
                .egress
                .iter()
                .flatten()
                .map(|r| rule(r.to.as_ref(), r.ports.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{item, testutil::obj};
    use crate::model::Operator;

    const POLICY: &str = r#"{
      "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
      "metadata": {"creationTimestamp": "2024-05-01T11:00:00Z", "generation": 1,
        "name": "db-access", "namespace": "prod", "resourceVersion": "50102",
        "uid": "a1b2c3d4-0000-4000-8000-000000000001"},
      "spec": {
        "podSelector": {"matchLabels": {"role": "db"}},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{
          "from": [
            {"ipBlock": {"cidr": "172.17.0.0/16", "except": ["172.17.1.0/24"]}},
            {"namespaceSelector": {"matchLabels": {"project": "myproject"}},
             "podSelector": {"matchExpressions": [{"key": "role", "operator": "In", "values": ["frontend", "api"]}]}},
            {"podSelector": {"matchLabels": {"role": "frontend"}}}
          ],
          "ports": [{"protocol": "TCP", "port": 6379}, {"port": "metrics"}]
        }],
        "egress": [{
          "to": [{"ipBlock": {"cidr": "10.0.0.0/24"}}],
          "ports": [{"protocol": "TCP", "port": 32000, "endPort": 32768}]
        }]
      }
    }"#;

    #[test]
    fn policy_from_api_json() {
        let p: NetworkPolicy = obj(POLICY);
        let r = p.translate().unwrap();
        assert_eq!(
            (r.namespace.as_str(), r.name.as_str()),
            ("prod", "db-access")
        );
        assert_eq!(r.pod_selector.match_labels["role"], "db");
        assert!(r.ingress_isolation && r.egress_isolation);
        assert_eq!(r.ingress.len(), 1);
        let rule = &r.ingress[0];
        assert_eq!(
            rule.peers[0],
            Peer::IpBlock {
                cidr: "172.17.0.0/16".parse().unwrap(),
                except: vec!["172.17.1.0/24".parse().unwrap()]
            }
        );
        match &rule.peers[1] {
            Peer::Pods {
                pod_selector: Some(ps),
                namespace_selector: Some(ns),
            } => {
                assert_eq!(ps.match_expressions[0].operator, Operator::In);
                assert_eq!(ns.match_labels["project"], "myproject");
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(rule.ports[1].port, Some(PortRef::Name("metrics".into())));
        assert_eq!(rule.ports[1].protocol, Protocol::Tcp);
        assert_eq!(r.egress[0].ports[0].end_port, Some(32768));
        assert_eq!(item(&p).unwrap().0, "/vpg/v1/policy/prod/db-access");
    }

    #[test]
    fn default_policy_types() {
        let p: NetworkPolicy =
            obj(r#"{"metadata":{"name":"deny","namespace":"a"},"spec":{"podSelector":{}}}"#);
        let r = p.translate().unwrap();
        assert!(r.ingress_isolation && !r.egress_isolation);
        assert!(r.ingress.is_empty() && r.pod_selector == Selector::default());
        let p: NetworkPolicy = obj(
            r#"{"metadata":{"name":"e","namespace":"a"},"spec":{"podSelector":{},"egress":[{}]}}"#,
        );
        let r = p.translate().unwrap();
        assert!(r.egress_isolation);
        assert_eq!(
            r.egress,
            vec![Rule {
                peers: vec![],
                ports: vec![]
            }]
        );
    }

    #[test]
    fn malformed_policies_are_rejected() {
        let base: serde_json::Value = serde_json::from_str(POLICY).unwrap();
        type Case = (fn(&mut serde_json::Value), &'static str);
        let cases: [Case; 7] = [
            (
                |v| v["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"] = "172.17.0.0/40".into(),
                "cidr",
            ),
            (
                |v| {
                    v["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"][0] =
                        "10.9.0.0/24".into()
                },
                "except outside",
            ),
            (
                |v| v["spec"]["ingress"][0]["ports"][0]["protocol"] = "GRE".into(),
                "protocol",
            ),
            (
                |v| v["spec"]["egress"][0]["ports"][0]["endPort"] = 100.into(),
                "range backwards",
            ),
            (
                |v| {
                    v["spec"]["ingress"][0]["from"][1]["podSelector"]["matchExpressions"][0]
                        ["operator"] = "Near".into()
                },
                "operator",
            ),
            (
                |v| v["spec"]["policyTypes"][0] = "Sideways".into(),
                "policy type",
            ),
            (
                |v| v["spec"]["ingress"][0]["from"][2] = serde_json::json!({}),
                "empty peer",
            ),
        ];
        for (f, what) in cases {
            let mut v = base.clone();
            f(&mut v);
            let p: NetworkPolicy = serde_json::from_value(v).unwrap();
            let (key, _) = item(&p).unwrap_err();
            assert_eq!(
                key.as_deref(),
                Some("/vpg/v1/policy/prod/db-access"),
                "{what}"
            );
        }
    }
}
