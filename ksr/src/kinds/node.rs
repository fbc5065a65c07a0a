//! core/v1 Node → [`NodeRecord`]: addresses (for VXLAN tunnels) and pod CIDRs (for routes).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Node;
use serde::{Deserialize, Serialize};

use super::Reflect;
use crate::model::{parse_ip, Cidr, Kind, TranslateError};

/// A node as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Its name.
    pub name: String,
    /// Internal IPs (tunnel endpoints).
    pub internal_ips: Vec<IpAddr>,
    /// External IPs.
    pub external_ips: Vec<IpAddr>,
    /// Its pod CIDRs (`spec.podCIDRs`, or `spec.podCIDR` on old clusters). Empty until the
    /// controller manager allocates them.
    pub pod_cidrs: Vec<Cidr>,
}

impl Reflect for Node {
    const KIND: Kind = Kind::Node;
    type Record = NodeRecord;

    fn translate(&self) -> Result<NodeRecord, TranslateError> {
        let name = self.metadata.name.clone().ok_or(TranslateError::NoName)?;
        let mut internal_ips = Vec::new();
        let mut external_ips = Vec::new();
        for a in self
            .status
            .as_ref()
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
        {
            match a.type_.as_str() {
                "InternalIP" => internal_ips.push(parse_ip(&a.address)?),
                "ExternalIP" => external_ips.push(parse_ip(&a.address)?),
                // Hostname and DNS names are not addresses the data plane can use.
                _ => {}
            }
        }
        if internal_ips.is_empty() {
            return Err(TranslateError::Missing("status.addresses InternalIP"));
        }
        let spec = self.spec.as_ref();
        let cidrs: Vec<&String> = match spec.and_then(|s| s.pod_cidrs.as_ref()) {
            Some(list) if !list.is_empty() => list.iter().collect(),
            _ => spec.and_then(|s| s.pod_cidr.as_ref()).into_iter().collect(),
        };
        let pod_cidrs = cidrs
            .into_iter()
            .map(|c| c.parse())
            .collect::<Result<_, _>>()?;
        Ok(NodeRecord {
            name,
            internal_ips,
            external_ips,
            pod_cidrs,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{item, testutil::obj};

    const NODE: &str = r#"{
      "apiVersion": "v1", "kind": "Node",
      "metadata": {"annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        "creationTimestamp": "2024-05-01T09:00:00Z",
        "labels": {"kubernetes.io/arch": "amd64", "kubernetes.io/hostname": "node-a", "kubernetes.io/os": "linux"},
        "name": "node-a", "resourceVersion": "47001", "uid": "e0e0e0e0-1111-4222-8333-444455556666"},
      "spec": {"podCIDR": "10.1.1.0/24", "podCIDRs": ["10.1.1.0/24"]},
      "status": {
        "addresses": [{"address": "192.168.10.11", "type": "InternalIP"},
                      {"address": "203.0.113.7", "type": "ExternalIP"},
                      {"address": "node-a", "type": "Hostname"}],
        "allocatable": {"cpu": "2", "memory": "7901Mi", "pods": "110"},
        "conditions": [{"lastHeartbeatTime": "2024-05-01T11:00:00Z", "lastTransitionTime": "2024-05-01T09:00:30Z",
          "message": "kubelet is posting ready status", "reason": "KubeletReady", "status": "True", "type": "Ready"}],
        "nodeInfo": {"architecture": "amd64", "bootID": "b", "containerRuntimeVersion": "containerd://1.7.13",
          "kernelVersion": "6.1.0", "kubeProxyVersion": "v1.30.0", "kubeletVersion": "v1.30.0",
          "machineID": "m", "operatingSystem": "linux", "osImage": "Debian GNU/Linux 12 (bookworm)", "systemUUID": "s"}
      }
    }"#;

    #[test]
    fn node_from_api_json() {
        let n: Node = obj(NODE);
        let r = n.translate().unwrap();
        assert_eq!(r.internal_ips[0].to_string(), "192.168.10.11");
        assert_eq!(r.external_ips[0].to_string(), "203.0.113.7");
        assert_eq!(r.pod_cidrs, vec!["10.1.1.0/24".parse::<Cidr>().unwrap()]);
        assert_eq!(item(&n).unwrap().0, "/vpg/v1/node/node-a");
    }

    #[test]
    fn bad_nodes() {
        let mut v: serde_json::Value = serde_json::from_str(NODE).unwrap();
        v["spec"]["podCIDRs"][0] = "10.1.1.0/99".into();
        let n: Node = serde_json::from_value(v).unwrap();
        assert!(matches!(n.translate(), Err(TranslateError::BadCidr(_))));
        let n: Node = obj(
            r#"{"metadata":{"name":"n"},"status":{"addresses":[{"address":"n","type":"Hostname"}]}}"#,
        );
        assert_eq!(
            n.translate().unwrap_err(),
            TranslateError::Missing("status.addresses InternalIP")
        );
    }
}
