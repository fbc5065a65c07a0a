//! A direct evaluator of Kubernetes NetworkPolicy semantics, written from the Kubernetes
//! documentation ("Network Policies" and the `networking.k8s.io/v1` API reference) and sharing
//! nothing with the renderer but the input types and the validity check. The tests compare the
//! rendered tables against it.
//!
//! The model, for a new connection from address S to address D (protocol, destination port):
//!
//! - A pod is isolated for ingress if any policy in its namespace selects it (`podSelector`)
//!   and has `Ingress` in its (defaulted) `policyTypes`; likewise for egress.
//! - The connection is allowed iff (D is no pod, or D is not isolated for ingress, or some
//!   ingress rule of a policy selecting D admits S and the port) and (S is no pod, or S is not
//!   isolated for egress, or some egress rule of a policy selecting S admits D and the port).
//! - A rule admits a peer when its peer list is empty or absent, or one peer matches: an
//!   `ipBlock` by address (CIDR and not in an `except`); selectors only match pods, a
//!   `namespaceSelector` choosing namespaces by labels (absent: the policy's namespace) and a
//!   `podSelector` choosing pods by labels (absent: all), both present meaning both must hold.
//! - A rule admits a port when its port list is empty or absent, or one entry matches: the
//!   protocol (TCP when absent) and `port` (absent: all; a number, or `port..=endPort`; a name
//!   is the port number of the destination pod's container port of that name and protocol).
//! - Pods without an IP, and invalid policies, are ignored.

use std::net::Ipv4Addr;

use crate::model::{Cluster, Namespace, Pod};
use crate::policy::{validate, IntOrString, LabelSelector, NetworkPolicy, PolicyPeer, PolicyPort};
use crate::selector::Labels;

/// A policy rule: `namespace/name` and the rule's index in its list.
pub type RuleRef = (String, usize);

/// Evaluates connections against a cluster snapshot.
pub struct Reference<'a> {
    namespaces: &'a [Namespace],
    pods: Vec<&'a Pod>,
    policies: Vec<&'a NetworkPolicy>,
}

impl<'a> Reference<'a> {
    /// A reference evaluator over `cluster`.
    pub fn new(cluster: &'a Cluster) -> Reference<'a> {
        Reference {
            namespaces: &cluster.namespaces,
            pods: cluster.pods.iter().filter(|p| p.ip.is_some()).collect(),
            policies: cluster
                .policies
                .iter()
                .filter(|p| validate(p).is_ok())
                .collect(),
        }
    }

    fn pod_at(&self, ip: Ipv4Addr) -> Option<&'a Pod> {
        self.pods.iter().copied().find(|p| p.ip == Some(ip))
    }

    fn ns_labels(&self, ns: &str) -> Labels {
        self.namespaces
            .iter()
            .find(|n| n.name == ns)
            .map(|n| n.labels.clone())
            .unwrap_or_default()
    }

    /// Whether a new connection `src -> dst` of IP protocol `proto` to `dport` is allowed.
    pub fn allowed(&self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, dport: u16) -> bool {
        let sp = self.pod_at(src);
        let dp = self.pod_at(dst);
        let ingress_ok = match dp {
            None => true,
            Some(b) => {
                let pols: Vec<_> = self
                    .policies
                    .iter()
                    .filter(|p| selects(p, b) && types(p).0)
                    .collect();
                pols.is_empty()
                    || pols.iter().any(|p| {
                        p.spec.ingress.iter().flatten().any(|r| {
                            self.peers_admit(p, r.from.as_deref(), sp, src)
                                && ports_admit(r.ports.as_deref(), Some(b), proto, dport)
                        })
                    })
            }
        };
        let egress_ok = match sp {
            None => true,
            Some(a) => {
                let pols: Vec<_> = self
                    .policies
                    .iter()
                    .filter(|p| selects(p, a) && types(p).1)
                    .collect();
                pols.is_empty()
                    || pols.iter().any(|p| {
                        p.spec.egress.iter().flatten().any(|r| {
                            self.peers_admit(p, r.to.as_deref(), dp, dst)
                                && ports_admit(r.ports.as_deref(), dp, proto, dport)
                        })
                    })
            }
        };
        ingress_ok && egress_ok
    }

    /// Per direction, the policy rules (`namespace/name`, index in `spec.ingress` /
    /// `spec.egress`) that admit the connection by themselves: ingress rules of policies
    /// isolating `dst` for ingress, egress rules of policies isolating `src` for egress.
    pub fn admitting(
        &self,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        dport: u16,
    ) -> (Vec<RuleRef>, Vec<RuleRef>) {
        let sp = self.pod_at(src);
        let dp = self.pod_at(dst);
        let mut ingress = Vec::new();
        let mut egress = Vec::new();
        for p in &self.policies {
            let key = format!("{}/{}", p.namespace, p.name);
            let (i, e) = types(p);
            if let Some(b) = dp.filter(|b| i && selects(p, b)) {
                for (n, r) in p.spec.ingress.iter().flatten().enumerate() {
                    if self.peers_admit(p, r.from.as_deref(), sp, src)
                        && ports_admit(r.ports.as_deref(), Some(b), proto, dport)
                    {
                        ingress.push((key.clone(), n));
                    }
                }
            }
            if sp.is_some_and(|a| e && selects(p, a)) {
                for (n, r) in p.spec.egress.iter().flatten().enumerate() {
                    if self.peers_admit(p, r.to.as_deref(), dp, dst)
                        && ports_admit(r.ports.as_deref(), dp, proto, dport)
                    {
                        egress.push((key.clone(), n));
                    }
                }
            }
        }
        (ingress, egress)
    }

    /// The policies (`namespace/name`) isolating the pod at `ip` for ingress and for egress.
    pub fn isolating(&self, ip: Ipv4Addr) -> (Vec<String>, Vec<String>) {
        let mut v = (Vec::new(), Vec::new());
        if let Some(pod) = self.pod_at(ip) {
            for p in self.policies.iter().filter(|p| selects(p, pod)) {
                let key = format!("{}/{}", p.namespace, p.name);
                let (i, e) = types(p);
                if i {
                    v.0.push(key.clone());
                }
                if e {
                    v.1.push(key);
                }
            }
        }
        v
    }

    fn peers_admit(
        &self,
        policy: &NetworkPolicy,
        peers: Option<&[PolicyPeer]>,
        pod: Option<&Pod>,
        ip: Ipv4Addr,
    ) -> bool {
        let Some(peers) = peers.filter(|p| !p.is_empty()) else {
            return true;
        };
        peers.iter().any(|peer| {
            if let Some(b) = &peer.ip_block {
                return in_cidr(&b.cidr, ip) && !b.except.iter().flatten().any(|e| in_cidr(e, ip));
            }
            let Some(pod) = pod else { return false };
            let ns_ok = match &peer.namespace_selector {
                None => pod.namespace == policy.namespace,
                Some(s) => label_match(s, &self.ns_labels(&pod.namespace)),
            };
            let pod_ok = match &peer.pod_selector {
                None => true,
                Some(s) => label_match(s, &pod.labels),
            };
            ns_ok && pod_ok
        })
    }
}

/// `(ingress, egress)` after defaulting: no `policyTypes` means Ingress, plus Egress when the
/// policy has egress rules.
fn types(p: &NetworkPolicy) -> (bool, bool) {
    match &p.spec.policy_types {
        Some(t) if !t.is_empty() => (
            t.iter().any(|t| t == "Ingress"),
            t.iter().any(|t| t == "Egress"),
        ),
        _ => (true, p.spec.egress.as_ref().is_some_and(|e| !e.is_empty())),
    }
}

fn selects(p: &NetworkPolicy, pod: &Pod) -> bool {
    p.namespace == pod.namespace && label_match(&p.spec.pod_selector, &pod.labels)
}

fn label_match(s: &LabelSelector, labels: &Labels) -> bool {
    let labels_ok = s
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let exprs_ok = s.match_expressions.iter().flatten().all(|e| {
        let vals = e.values.clone().unwrap_or_default();
        let got = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => got.is_some_and(|v| vals.contains(v)),
            "NotIn" => !got.is_some_and(|v| vals.contains(v)),
            "Exists" => got.is_some(),
            "DoesNotExist" => got.is_none(),
            _ => false,
        }
    });
    labels_ok && exprs_ok
}

fn in_cidr(cidr: &str, ip: Ipv4Addr) -> bool {
    let Some((addr, len)) = cidr.split_once('/') else {
        return false;
    };
    let (Ok(addr), Ok(len)) = (addr.parse::<Ipv4Addr>(), len.parse::<u32>()) else {
        return false; // IPv6 blocks never contain an IPv4 address
    };
    let shift = 32 - len.min(32);
    let net = if shift == 32 {
        0
    } else {
        u32::from(addr) >> shift
    };
    let host = if shift == 32 {
        0
    } else {
        u32::from(ip) >> shift
    };
    net == host
}

fn proto_number(p: Option<&str>) -> u8 {
    match p {
        None | Some("TCP") => 6,
        Some("UDP") => 17,
        Some("SCTP") => 132,
        _ => 0,
    }
}

fn ports_admit(ports: Option<&[PolicyPort]>, dst: Option<&Pod>, proto: u8, dport: u16) -> bool {
    let Some(ports) = ports.filter(|p| !p.is_empty()) else {
        return true;
    };
    ports.iter().any(|p| {
        let pr = proto_number(p.protocol.as_deref());
        if pr != proto {
            return false;
        }
        match (&p.port, p.end_port) {
            (None, _) => true,
            (Some(IntOrString::Int(n)), None) => i64::from(dport) == *n,
            (Some(IntOrString::Int(n)), Some(e)) => *n <= i64::from(dport) && i64::from(dport) <= e,
            (Some(IntOrString::String(name)), _) => dst.is_some_and(|d| {
                d.ports.iter().any(|c| {
                    c.name.as_deref() == Some(name.as_str())
                        && c.port == dport
                        && c.protocol.number() == Some(proto)
                })
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_membership() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert!(in_cidr("10.0.0.0/8", ip("10.9.9.9")));
        assert!(!in_cidr("10.0.0.0/8", ip("11.0.0.0")));
        assert!(in_cidr("0.0.0.0/0", ip("1.2.3.4")));
        assert!(in_cidr("1.2.3.4/32", ip("1.2.3.4")));
        assert!(!in_cidr("fd00::/8", ip("1.2.3.4")));
    }
}
