//! The cluster as the store holds it: the reflector's records decoded by kind, and the
//! conversions the desired state needs (the renderer's input model).
//!
//! The agent keeps the store's contents in memory as raw key → value bytes (one list plus the
//! watch events after it), and decodes them here whenever it recomputes. A record that does not
//! decode (a newer record version, a corrupt value) is reported and skipped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use vpg_ksr::kinds::policy::{Peer, PolicyPort, Rule as KRule};
use vpg_ksr::kinds::secret::{IPSEC_SECRET_NAME, IPSEC_SECRET_NAMESPACE};
use vpg_ksr::kinds::{
    EndpointsRecord, IpsecKeysRecord, NamespaceRecord, NodeRecord, PodRecord, PolicyRecord,
    ServiceRecord,
};
use vpg_ksr::model::{self, Kind, PortRef, Protocol, Selector};
use vpg_renderer::policy::{
    EgressRule, IngressRule, IntOrString, IpBlock, LabelSelector, LabelSelectorRequirement,
    NetworkPolicySpec, PolicyPeer, PolicyPort as RPort,
};
use vpg_renderer::{Cluster, ContainerPort, Namespace, NetworkPolicy, Pod};

use crate::podrec::LocalPod;

/// Every record of the store, decoded, keyed by `namespace/name` (or `name`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClusterState {
    /// Pods.
    pub pods: BTreeMap<String, PodRecord>,
    /// Namespaces.
    pub namespaces: BTreeMap<String, NamespaceRecord>,
    /// NetworkPolicies.
    pub policies: BTreeMap<String, PolicyRecord>,
    /// Services.
    pub services: BTreeMap<String, ServiceRecord>,
    /// Endpoints (same keys as their services).
    pub endpoints: BTreeMap<String, EndpointsRecord>,
    /// Nodes.
    pub nodes: BTreeMap<String, NodeRecord>,
    /// The IPsec key (`kube-system/vpg-ipsec-keys`), when the cluster has one.
    pub ipsec_keys: Option<IpsecKeysRecord>,
}

fn insert<T: serde::de::DeserializeOwned>(
    map: &mut BTreeMap<String, T>,
    key: &str,
    value: &[u8],
    errors: &mut Vec<String>,
) {
    let short = key
        .strip_prefix(model::KEY_ROOT)
        .and_then(|r| r.split_once('/'))
        .map_or(key, |(_, rest)| rest);
    match model::decode::<T>(value) {
        Ok(r) => {
            map.insert(short.to_string(), r);
        }
        Err(e) => errors.push(format!("{key}: {e}")),
    }
}

impl ClusterState {
    /// Decodes the store's items (keys under `/vpg/v1/`); returns the state and the records
    /// that were skipped, with why.
    pub fn decode<'a>(
        items: impl IntoIterator<Item = (&'a String, &'a Vec<u8>)>,
    ) -> (ClusterState, Vec<String>) {
        let mut s = ClusterState::default();
        let mut errors = Vec::new();
        for (k, v) in items {
            match Kind::of_key(k) {
                Some(Kind::Pod) => insert(&mut s.pods, k, v, &mut errors),
                Some(Kind::Namespace) => insert(&mut s.namespaces, k, v, &mut errors),
                Some(Kind::Policy) => insert(&mut s.policies, k, v, &mut errors),
                Some(Kind::Service) => insert(&mut s.services, k, v, &mut errors),
                Some(Kind::Endpoints) => insert(&mut s.endpoints, k, v, &mut errors),
                Some(Kind::Node) => insert(&mut s.nodes, k, v, &mut errors),
                Some(Kind::Secret)
                    if *k == Kind::Secret.key(Some(IPSEC_SECRET_NAMESPACE), IPSEC_SECRET_NAME) =>
                {
                    match model::decode::<IpsecKeysRecord>(v) {
                        Ok(r) => s.ipsec_keys = Some(r),
                        // The record, never the decoder's message (which may quote content).
                        Err(_) => errors.push(format!("{k}: the record does not decode")),
                    }
                }
                Some(Kind::Secret) | None => {}
            }
        }
        (s, errors)
    }

    /// The renderer's input for node `node`. Local pods come from the CNI records, which are
    /// authoritative for their address (the store may lag behind a new pod); their labels and
    /// ports come from the store's record of the same `namespace/name` when there is one (a
    /// pod not in the store yet has no labels, so only label-free selectors see it).
    pub fn renderer_cluster(&self, node: &str, local: &[LocalPod]) -> Cluster {
        let mut pods: BTreeMap<(String, String), Pod> = BTreeMap::new();
        for p in self.pods.values() {
            let IpAddr::V4(ip) = p.ip else { continue };
            // A pod the store places on this node but without a CNI record has no interface:
            // it is left to the CNI records below.
            if p.node == node {
                continue;
            }
            pods.insert((p.namespace.clone(), p.name.clone()), renderer_pod(p, ip));
        }
        for lp in local {
            let Some((ns, name)) = &lp.key else { continue };
            let store = self.pods.get(&format!("{ns}/{name}"));
            let mut pod = match store {
                Some(rec) => renderer_pod(rec, lp.ip),
                None => Pod {
                    namespace: ns.clone(),
                    name: name.clone(),
                    labels: Default::default(),
                    ip: Some(lp.ip),
                    node: node.to_string(),
                    ports: Vec::new(),
                },
            };
            pod.node = node.to_string();
            pods.insert((ns.clone(), name.clone()), pod);
        }
        Cluster {
            namespaces: self
                .namespaces
                .values()
                .map(|n| Namespace {
                    name: n.name.clone(),
                    labels: n.labels.clone(),
                })
                .collect(),
            pods: pods.into_values().collect(),
            policies: self.policies.values().filter_map(renderer_policy).collect(),
        }
    }

    /// The first IPv4 internal address and IPv4 pod CIDRs of every other node.
    pub fn peers(&self, me: &str) -> Vec<Peer4> {
        let mut out = Vec::new();
        for n in self.nodes.values().filter(|n| n.name != me) {
            let ip = n.internal_ips.iter().find_map(|ip| match ip {
                IpAddr::V4(v) => Some(*v),
                IpAddr::V6(_) => None,
            });
            let cidrs: Vec<(Ipv4Addr, u8)> = n
                .pod_cidrs
                .iter()
                .filter_map(|c| match c.addr {
                    IpAddr::V4(v) => Some((v, c.len)),
                    IpAddr::V6(_) => None,
                })
                .collect();
            out.push(Peer4 {
                name: n.name.clone(),
                ip,
                pod_cidrs: cidrs,
            });
        }
        out
    }
}

/// Another node, as the overlay needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peer4 {
    /// Its name.
    pub name: String,
    /// Its first IPv4 internal address (the far VTEP), if it has one.
    pub ip: Option<Ipv4Addr>,
    /// Its IPv4 pod CIDRs.
    pub pod_cidrs: Vec<(Ipv4Addr, u8)>,
}

fn protocol(p: Protocol) -> vpg_renderer::Protocol {
    match p {
        Protocol::Tcp => vpg_renderer::Protocol::Tcp,
        Protocol::Udp => vpg_renderer::Protocol::Udp,
        Protocol::Sctp => vpg_renderer::Protocol::Sctp,
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Sctp => "SCTP",
    }
}

fn renderer_pod(p: &PodRecord, ip: Ipv4Addr) -> Pod {
    Pod {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        labels: p.labels.clone(),
        ip: Some(ip),
        node: p.node.clone(),
        ports: p
            .ports
            .iter()
            .map(|c| ContainerPort {
                name: c.name.clone(),
                port: c.port,
                protocol: protocol(c.protocol),
            })
            .collect(),
    }
}

fn selector(s: &Selector) -> LabelSelector {
    LabelSelector {
        match_labels: (!s.match_labels.is_empty()).then(|| s.match_labels.clone()),
        match_expressions: (!s.match_expressions.is_empty()).then(|| {
            s.match_expressions
                .iter()
                .map(|r| LabelSelectorRequirement {
                    key: r.key.clone(),
                    operator: format!("{:?}", r.operator),
                    values: (!r.values.is_empty()).then(|| r.values.clone()),
                })
                .collect()
        }),
    }
}

fn peers(ps: &[Peer]) -> Option<Vec<PolicyPeer>> {
    // An empty peer list means every peer, as an absent `from`/`to` does.
    (!ps.is_empty()).then(|| {
        ps.iter()
            .map(|p| match p {
                Peer::Pods {
                    pod_selector,
                    namespace_selector,
                } => PolicyPeer {
                    pod_selector: pod_selector.as_ref().map(selector),
                    namespace_selector: namespace_selector.as_ref().map(selector),
                    ip_block: None,
                },
                Peer::IpBlock { cidr, except } => PolicyPeer {
                    pod_selector: None,
                    namespace_selector: None,
                    ip_block: Some(IpBlock {
                        cidr: cidr.to_string(),
                        except: (!except.is_empty())
                            .then(|| except.iter().map(|e| e.to_string()).collect()),
                    }),
                },
            })
            .collect()
    })
}

fn ports(ps: &[PolicyPort]) -> Option<Vec<RPort>> {
    (!ps.is_empty()).then(|| {
        ps.iter()
            .map(|p| RPort {
                protocol: Some(protocol_name(p.protocol).to_string()),
                port: p.port.as_ref().map(|r| match r {
                    PortRef::Number(n) => IntOrString::Int(i64::from(*n)),
                    PortRef::Name(s) => IntOrString::String(s.clone()),
                }),
                end_port: p.end_port.map(i64::from),
            })
            .collect()
    })
}

fn ingress(r: &KRule) -> IngressRule {
    IngressRule {
        from: peers(&r.peers),
        ports: ports(&r.ports),
    }
}

fn egress(r: &KRule) -> EgressRule {
    EgressRule {
        to: peers(&r.peers),
        ports: ports(&r.ports),
    }
}

/// A policy record in the renderer's (Kubernetes-shaped) form. The record's isolation flags
/// are explicit policy types, so the renderer's defaulting never applies; a policy that
/// isolates neither direction has no effect and is left out.
pub fn renderer_policy(p: &PolicyRecord) -> Option<NetworkPolicy> {
    let mut types = Vec::new();
    if p.ingress_isolation {
        types.push("Ingress".to_string());
    }
    if p.egress_isolation {
        types.push("Egress".to_string());
    }
    if types.is_empty() {
        return None;
    }
    Some(NetworkPolicy {
        namespace: p.namespace.clone(),
        name: p.name.clone(),
        spec: NetworkPolicySpec {
            pod_selector: selector(&p.pod_selector),
            policy_types: Some(types),
            ingress: Some(p.ingress.iter().map(ingress).collect()),
            egress: Some(p.egress.iter().map(egress).collect()),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpg_ksr::model::encode;

    fn policy_json() -> serde_json::Value {
        serde_json::json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "web", "namespace": "prod"},
            "spec": {
                "podSelector": {"matchLabels": {"app": "web"},
                    "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["x"]}]},
                "ingress": [
                    {"from": [{"podSelector": {"matchLabels": {"app": "client"}},
                               "namespaceSelector": {}},
                              {"ipBlock": {"cidr": "192.168.0.0/16", "except": ["192.168.1.0/24"]}}],
                     "ports": [{"port": 80}, {"protocol": "UDP", "port": 5000, "endPort": 5010},
                               {"port": "http"}]},
                    {}
                ],
                "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"team": "a"}}}]}],
                "policyTypes": ["Ingress", "Egress"]
            }
        })
    }

    #[test]
    fn policy_records_become_the_same_renderer_policy_as_the_kubernetes_object() {
        use vpg_ksr::kinds::Reflect;
        let k8s: k8s_openapi::api::networking::v1::NetworkPolicy =
            serde_json::from_value(policy_json()).unwrap();
        let rec = k8s.translate().unwrap();
        let ours = renderer_policy(&rec).unwrap();
        // The renderer reading the Kubernetes spec directly is the reference.
        let spec: NetworkPolicySpec =
            serde_json::from_value(policy_json()["spec"].clone()).unwrap();
        let direct = NetworkPolicy {
            namespace: "prod".into(),
            name: "web".into(),
            spec,
        };
        let cluster = |p: NetworkPolicy| {
            let mut c: Cluster = serde_json::from_value(serde_json::json!({
                "namespaces": [{"name": "prod", "labels": {"team": "a"}}],
                "pods": [
                    {"namespace": "prod", "name": "w", "labels": {"app": "web"}, "ip": "10.1.1.2", "node": "n1",
                     "ports": [{"name": "http", "port": 8080, "protocol": "tcp"}]},
                    {"namespace": "prod", "name": "c", "labels": {"app": "client"}, "ip": "10.1.2.2", "node": "n2"}
                ],
                "policies": []
            }))
            .unwrap();
            c.policies.push(p);
            vpg_renderer::Renderer::render("n1", &c).tables()
        };
        assert_eq!(cluster(ours), cluster(direct));
    }

    #[test]
    fn decode_and_local_pods() {
        let pod = |ns: &str, n: &str, ip: &str, node: &str| PodRecord {
            namespace: ns.into(),
            name: n.into(),
            ip: ip.parse().unwrap(),
            node: node.into(),
            labels: [("app".to_string(), n.to_string())].into(),
            ports: vec![],
        };
        let mut items = BTreeMap::new();
        for p in [
            pod("a", "remote", "10.1.2.2", "n2"),
            pod("a", "local", "10.1.1.9", "n1"),
            pod("a", "stale", "10.1.1.7", "n1"),
        ] {
            items.insert(Kind::Pod.key(Some(&p.namespace), &p.name), encode(&p));
        }
        items.insert(
            "/vpg/v1/node/n2".into(),
            b"{\"v\":9,\"record\":{}}".to_vec(),
        );
        let (s, errs) = ClusterState::decode(&items);
        assert_eq!(s.pods.len(), 3);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].contains("/vpg/v1/node/n2"), "{errs:?}");
        let local = crate::podrec::parse(
            "c1@eth0.json",
            crate::podrec::tests::record_json("c1", "a", "local", "vpg000000000001", "10.1.1.3")
                .as_bytes(),
        )
        .unwrap();
        let anon = crate::podrec::parse(
            "c2@eth0.json",
            crate::podrec::tests::record_json("c2", "b", "new", "vpg000000000002", "10.1.1.4")
                .as_bytes(),
        )
        .unwrap();
        let c = s.renderer_cluster("n1", &[local, anon]);
        let got: Vec<_> = c
            .pods
            .iter()
            .map(|p| (p.name.as_str(), p.ip.unwrap().to_string(), p.labels.len()))
            .collect();
        // The CNI address wins; a pod the store has on this node without a record is left
        // out; a record without a store pod gets no labels.
        assert_eq!(
            got,
            [
                ("local", "10.1.1.3".to_string(), 1),
                ("remote", "10.1.2.2".to_string(), 1),
                ("new", "10.1.1.4".to_string(), 0)
            ]
        );
    }
}
