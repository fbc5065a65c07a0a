//! core/v1 Endpoints → [`EndpointsRecord`]: the ready and not-ready addresses and ports behind
//! a service (same namespace and name as the service).
//!
//! Endpoints rather than EndpointSlices: one object per service keeps the store key equal to the
//! service's, and the data plane needs nothing slices add (topology hints, dual-stack slices).
//! Addresses are sorted so that an API server reordering them does not rewrite the record.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{EndpointAddress, Endpoints};
use serde::{Deserialize, Serialize};

use super::{ns_name, Reflect};
use crate::model::{parse_ip, port, Kind, Protocol, TranslateError};

/// The endpoints of one service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointsRecord {
    /// Its namespace.
    pub namespace: String,
    /// Its name (the service's).
    pub name: String,
    /// Groups of addresses sharing one set of ports.
    pub subsets: Vec<Subset>,
}

/// Addresses that all serve the same ports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subset {
    /// Ready addresses (load-balancing targets).
    pub addresses: Vec<Address>,
    /// Addresses not ready yet.
    pub not_ready: Vec<Address>,
    /// The ports.
    pub ports: Vec<EndpointPort>,
}

/// One endpoint address.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Address {
    /// The IP.
    pub ip: IpAddr,
    /// The node it lives on, if known.
    pub node: Option<String>,
    /// The pod behind it, if it is a pod.
    pub pod: Option<String>,
}

/// One endpoint port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointPort {
    /// The name (matches the service port's name).
    pub name: Option<String>,
    /// The port number.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
}

fn addresses(list: Option<&Vec<EndpointAddress>>) -> Result<Vec<Address>, TranslateError> {
    let mut out = list
        .into_iter()
        .flatten()
        .map(|a| {
            Ok(Address {
                ip: parse_ip(&a.ip)?,
                node: a.node_name.clone(),
                pod: a
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| r.name.clone()),
            })
        })
        .collect::<Result<Vec<_>, TranslateError>>()?;
    out.sort();
    Ok(out)
}

impl Reflect for Endpoints {
    const KIND: Kind = Kind::Endpoints;
    type Record = EndpointsRecord;

    fn translate(&self) -> Result<EndpointsRecord, TranslateError> {
        let (namespace, name) = ns_name(&self.metadata);
        let mut subsets = Vec::new();
        for s in self.subsets.iter().flatten() {
            subsets.push(Subset {
                addresses: addresses(s.addresses.as_ref())?,
                not_ready: addresses(s.not_ready_addresses.as_ref())?,
                ports: s
                    .ports
                    .iter()
                    .flatten()
                    .map(|p| {
                        Ok(EndpointPort {
                            name: p.name.clone().filter(|n| !n.is_empty()),
                            port: port(p.port)?,
                            protocol: Protocol::parse(p.protocol.as_deref())?,
                        })
                    })
                    .collect::<Result<_, TranslateError>>()?,
            });
        }
        Ok(EndpointsRecord {
            namespace,
            name,
            subsets,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::testutil::obj;

    const EP: &str = r#"{
      "apiVersion": "v1", "kind": "Endpoints",
      "metadata": {"annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2024-05-01T10:05:02Z"},
        "creationTimestamp": "2024-05-01T10:05:00Z", "labels": {"app": "web"},
        "name": "web", "namespace": "prod", "resourceVersion": "48320",
        "uid": "d00d0000-1111-4222-8333-444455556666"},
      "subsets": [{
        "addresses": [
          {"ip": "10.1.2.9", "nodeName": "node-b", "targetRef": {"kind": "Pod", "name": "web-7d4b9c8f6d-q8w7e", "namespace": "prod", "uid": "11111111-2222-4333-8444-555555555555"}},
          {"ip": "10.1.1.17", "nodeName": "node-a", "targetRef": {"kind": "Pod", "name": "web-7d4b9c8f6d-x2k9p", "namespace": "prod", "uid": "f3a8c2d4-1b7e-4c9a-9e2d-5a6b7c8d9e0f"}}
        ],
        "notReadyAddresses": [{"ip": "10.1.3.4", "nodeName": "node-c", "targetRef": {"kind": "Pod", "name": "web-7d4b9c8f6d-zzzzz", "namespace": "prod"}}],
        "ports": [{"name": "http", "port": 80, "protocol": "TCP"}, {"name": "metrics", "port": 9113, "protocol": "TCP"}]
      }]
    }"#;

    #[test]
    fn endpoints_sorted() {
        let e: Endpoints = obj(EP);
        let r = e.translate().unwrap();
        let s = &r.subsets[0];
        assert_eq!(s.addresses[0].ip.to_string(), "10.1.1.17");
        assert_eq!(s.addresses[0].pod.as_deref(), Some("web-7d4b9c8f6d-x2k9p"));
        assert_eq!(s.addresses[1].node.as_deref(), Some("node-b"));
        assert_eq!(s.not_ready.len(), 1);
        assert_eq!(
            s.ports[1],
            EndpointPort {
                name: Some("metrics".into()),
                port: 9113,
                protocol: Protocol::Tcp
            }
        );
    }

    #[test]
    fn empty_endpoints_and_bad_ones() {
        let e: Endpoints = obj(r#"{"metadata":{"name":"x","namespace":"y"}}"#);
        assert!(e.translate().unwrap().subsets.is_empty());
        let mut v: serde_json::Value = serde_json::from_str(EP).unwrap();
        v["subsets"][0]["addresses"][0]["ip"] = "not-an-ip".into();
        let e: Endpoints = serde_json::from_value(v).unwrap();
        assert_eq!(
            e.translate().unwrap_err(),
            TranslateError::BadIp("not-an-ip".into())
        );
    }
}
