//! core/v1 Service → [`ServiceRecord`]: cluster IP, type, ports and selector.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use serde::{Deserialize, Serialize};

use super::{ns_name, Reflect};
use crate::model::{parse_ip, port, Kind, PortRef, Protocol, TranslateError};

/// A service as the data plane sees it (the NAT44 static mappings come from it and its endpoints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceRecord {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its type.
    #[serde(rename = "type")]
    pub type_: ServiceType,
    /// Its cluster IP; `None` for headless and ExternalName services.
    pub cluster_ip: Option<IpAddr>,
    /// Its ports.
    pub ports: Vec<ServicePort>,
    /// The pod selector (informational; endpoints carry the resolved addresses).
    pub selector: BTreeMap<String, String>,
}

/// A service type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    /// Reachable inside the cluster on the cluster IP.
    ClusterIP,
    /// Also on every node's IP at the node port.
    NodePort,
    /// Also through an external load balancer (node ports underneath).
    LoadBalancer,
    /// A DNS alias; nothing for the data plane to map.
    ExternalName,
}

/// One service port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServicePort {
    /// Its name (needed to match endpoints' ports when there are several).
    pub name: Option<String>,
    /// The protocol.
    pub protocol: Protocol,
    /// The port on the cluster IP.
    pub port: u16,
    /// The pods' port, by number or container port name (defaults to `port`).
    pub target_port: PortRef,
    /// The node port, for NodePort and LoadBalancer services.
    pub node_port: Option<u16>,
}

impl Reflect for Service {
    const KIND: Kind = Kind::Service;
    type Record = ServiceRecord;

    fn translate(&self) -> Result<ServiceRecord, TranslateError> {
        let (namespace, name) = ns_name(&self.metadata);
        let spec = self.spec.as_ref().ok_or(TranslateError::Missing("spec"))?;
        let type_ = match spec.type_.as_deref() {
            None | Some("ClusterIP") => ServiceType::ClusterIP,
            Some("NodePort") => ServiceType::NodePort,
            Some("LoadBalancer") => ServiceType::LoadBalancer,
            Some("ExternalName") => ServiceType::ExternalName,
            Some(other) => {
                return Err(TranslateError::Invalid {
                    field: "spec.type",
                    value: other.to_string(),
                })
            }
        };
        let cluster_ip = match spec.cluster_ip.as_deref() {
            None | Some("") | Some("None") => None,
            Some(ip) => Some(parse_ip(ip)?),
        };
        if cluster_ip.is_none()
            && matches!(type_, ServiceType::NodePort | ServiceType::LoadBalancer)
        {
            return Err(TranslateError::Missing("spec.clusterIP"));
        }
        let mut ports = Vec::new();
        for p in spec.ports.iter().flatten() {
            let number = port(p.port)?;
            ports.push(ServicePort {
                name: p.name.clone().filter(|n| !n.is_empty()),
                protocol: Protocol::parse(p.protocol.as_deref())?,
                port: number,
                target_port: match &p.target_port {
                    Some(t) => PortRef::from_k8s(t)?,
                    None => PortRef::Number(number),
                },
                node_port: p.node_port.map(port).transpose()?,
            });
        }
        Ok(ServiceRecord {
            namespace,
            name,
            type_,
            cluster_ip,
            ports,
            selector: spec.selector.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::testutil::obj;

    const NODEPORT: &str = r#"{
      "apiVersion": "v1", "kind": "Service",
      "metadata": {"creationTimestamp": "2024-05-01T10:05:00Z", "labels": {"app": "web"},
        "name": "web", "namespace": "prod", "resourceVersion": "48300",
        "uid": "c0ffee00-1111-4222-8333-444455556666"},
      "spec": {
        "clusterIP": "10.96.12.34", "clusterIPs": ["10.96.12.34"],
        "externalTrafficPolicy": "Cluster", "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
        "ports": [
          {"name": "http", "nodePort": 30080, "port": 80, "protocol": "TCP", "targetPort": "http"},
          {"name": "metrics", "nodePort": 30913, "port": 9113, "protocol": "TCP", "targetPort": 9113}
        ],
        "selector": {"app": "web"}, "sessionAffinity": "None", "type": "NodePort"
      },
      "status": {"loadBalancer": {}}
    }"#;

    #[test]
    fn nodeport_service() {
        let s: Service = obj(NODEPORT);
        let r = s.translate().unwrap();
        assert_eq!(r.type_, ServiceType::NodePort);
        assert_eq!(r.cluster_ip.unwrap().to_string(), "10.96.12.34");
        assert_eq!(r.ports[0].target_port, PortRef::Name("http".into()));
        assert_eq!(r.ports[0].node_port, Some(30080));
        assert_eq!(r.ports[1].target_port, PortRef::Number(9113));
        assert_eq!(r.selector["app"], "web");
    }

    #[test]
    fn headless_service_has_no_ip() {
        let s: Service = obj(
            r#"{"metadata":{"name":"db","namespace":"prod"},"spec":{"clusterIP":"None","ports":[{"port":5432}],"selector":{"app":"db"},"type":"ClusterIP"}}"#,
        );
        let r = s.translate().unwrap();
        assert_eq!(r.cluster_ip, None);
        assert_eq!(r.ports[0].target_port, PortRef::Number(5432));
        assert_eq!(r.ports[0].protocol, Protocol::Tcp);
    }

    #[test]
    fn malformed_services_are_rejected() {
        let base: serde_json::Value = serde_json::from_str(NODEPORT).unwrap();
        let cases: [fn(&mut serde_json::Value); 4] = [
            |v| v["spec"]["clusterIP"] = "10.96.12".into(),
            |v| v["spec"]["type"] = "Magic".into(),
            |v| v["spec"]["ports"][0]["protocol"] = "QUIC".into(),
            |v| v["spec"]["ports"][1]["nodePort"] = 0.into(),
        ];
        for f in cases {
            let mut v = base.clone();
            f(&mut v);
            let s: Service = serde_json::from_value(v.clone()).unwrap();
            assert!(s.translate().is_err(), "{v}");
        }
    }
}
