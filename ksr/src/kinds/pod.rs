//! core/v1 Pod → [`PodRecord`]: IP, node, labels and container ports.
//!
//! A pod without an IP (not scheduled or sandbox not up yet), a terminated pod (its IP may
//! already belong to another pod) and a host-network pod (it has the node's IP, no interface
//! of ours) have no place in the data plane: they are skipped, and a record that existed for
//! them is removed.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;
use serde::{Deserialize, Serialize};

use super::{ns_name, Reflect};
use crate::model::{parse_ip, port, Kind, Protocol, TranslateError};

/// A pod as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodRecord {
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// Its primary IP address.
    pub ip: IpAddr,
    /// The node it runs on.
    pub node: String,
    /// Its labels (what policies select on).
    pub labels: BTreeMap<String, String>,
    /// Its containers' declared ports, for named ports in policies and services.
    pub ports: Vec<ContainerPort>,
}

/// One container port.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerPort {
    /// The port's name, if it has one.
    pub name: Option<String>,
    /// The port number.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
}

impl Reflect for Pod {
    const KIND: Kind = Kind::Pod;
    type Record = PodRecord;

    fn translate(&self) -> Result<PodRecord, TranslateError> {
        let (namespace, name) = ns_name(&self.metadata);
        let spec = self.spec.as_ref().ok_or(TranslateError::Missing("spec"))?;
        if spec.host_network == Some(true) {
            return Err(TranslateError::Invalid {
                field: "hostNetwork",
                value: "true".into(),
            });
        }
        let status = self.status.as_ref();
        if let Some(phase @ ("Succeeded" | "Failed")) = status.and_then(|s| s.phase.as_deref()) {
            return Err(TranslateError::Invalid {
                field: "phase",
                value: phase.into(),
            });
        }
        let ip = status
            .and_then(|s| s.pod_ip.as_deref())
            .filter(|s| !s.is_empty())
            .ok_or(TranslateError::Missing("status.podIP"))?;
        let ip = parse_ip(ip)?;
        let node = spec
            .node_name
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or(TranslateError::Missing("spec.nodeName"))?;
        let mut ports = Vec::new();
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                ports.push(ContainerPort {
                    name: p.name.clone(),
                    port: port(p.container_port)?,
                    protocol: Protocol::parse(p.protocol.as_deref())?,
                });
            }
        }
        Ok(PodRecord {
            namespace,
            name,
            ip,
            node,
            labels: self.metadata.labels.clone().unwrap_or_default(),
            ports,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{item, testutil::obj};

    /// A running pod as `kubectl get pod -o json` prints it (trimmed of managedFields).
    pub const RUNNING: &str = r#"{
      "apiVersion": "v1", "kind": "Pod",
      "metadata": {
        "creationTimestamp": "2024-05-01T10:02:11Z",
        "generateName": "web-7d4b9c8f6d-",
        "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6d"},
        "name": "web-7d4b9c8f6d-x2k9p", "namespace": "prod",
        "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true,
          "kind": "ReplicaSet", "name": "web-7d4b9c8f6d", "uid": "0b6e1f2c-9a9e-4d35-8a2b-2f7c6d1e9b10"}],
        "resourceVersion": "48211", "uid": "f3a8c2d4-1b7e-4c9a-9e2d-5a6b7c8d9e0f"
      },
      "spec": {
        "containers": [{
          "image": "nginx:1.25", "imagePullPolicy": "IfNotPresent", "name": "nginx",
          "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"},
                    {"containerPort": 9113, "protocol": "TCP"}],
          "resources": {}, "terminationMessagePath": "/dev/termination-log",
          "terminationMessagePolicy": "File"
        }, {
          "image": "coredns/coredns:1.11.1", "name": "dns",
          "ports": [{"containerPort": 53, "name": "dns", "protocol": "UDP"}]
        }],
        "dnsPolicy": "ClusterFirst", "enableServiceLinks": true, "nodeName": "node-a",
        "preemptionPolicy": "PreemptLowerPriority", "priority": 0, "restartPolicy": "Always",
        "schedulerName": "default-scheduler", "securityContext": {}, "serviceAccountName": "default",
        "terminationGracePeriodSeconds": 30
      },
      "status": {
        "conditions": [{"lastProbeTime": null, "lastTransitionTime": "2024-05-01T10:02:13Z", "status": "True", "type": "Ready"}],
        "hostIP": "192.168.10.11", "hostIPs": [{"ip": "192.168.10.11"}],
        "phase": "Running", "podIP": "10.1.1.17", "podIPs": [{"ip": "10.1.1.17"}],
        "qosClass": "BestEffort", "startTime": "2024-05-01T10:02:11Z"
      }
    }"#;

    #[test]
    fn running_pod() {
        let pod: Pod = obj(RUNNING);
        let r = pod.translate().unwrap();
        assert_eq!(r.namespace, "prod");
        assert_eq!(r.name, "web-7d4b9c8f6d-x2k9p");
        assert_eq!(r.ip.to_string(), "10.1.1.17");
        assert_eq!(r.node, "node-a");
        assert_eq!(r.labels["app"], "web");
        assert_eq!(
            r.ports,
            vec![
                ContainerPort {
                    name: Some("http".into()),
                    port: 80,
                    protocol: Protocol::Tcp
                },
                ContainerPort {
                    name: None,
                    port: 9113,
                    protocol: Protocol::Tcp
                },
                ContainerPort {
                    name: Some("dns".into()),
                    port: 53,
                    protocol: Protocol::Udp
                },
            ]
        );
        assert_eq!(
            item(&pod).unwrap().0,
            "/vpg/v1/pod/prod/web-7d4b9c8f6d-x2k9p"
        );
    }

    fn edit(f: impl FnOnce(&mut serde_json::Value)) -> Pod {
        let mut v: serde_json::Value = serde_json::from_str(RUNNING).unwrap();
        f(&mut v);
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn pending_pod_without_ip_is_skipped_with_its_key() {
        let pod = edit(|v| {
            v["status"] = serde_json::json!({"phase": "Pending", "qosClass": "BestEffort"});
        });
        let (key, err) = item(&pod).unwrap_err();
        assert_eq!(
            key.as_deref(),
            Some("/vpg/v1/pod/prod/web-7d4b9c8f6d-x2k9p")
        );
        assert_eq!(err, TranslateError::Missing("status.podIP"));
    }

    #[test]
    fn malformed_pods_are_rejected() {
        type Case = (fn(&mut serde_json::Value), &'static str);
        let cases: [Case; 5] = [
            (|v| v["status"]["podIP"] = "10.1.1.300".into(), "bad IP"),
            (
                |v| v["spec"]["containers"][0]["ports"][0]["protocol"] = "ICMP".into(),
                "protocol",
            ),
            (
                |v| v["spec"]["containers"][0]["ports"][0]["containerPort"] = 70000.into(),
                "port",
            ),
            (|v| v["status"]["phase"] = "Succeeded".into(), "phase"),
            (|v| v["spec"]["hostNetwork"] = true.into(), "hostNetwork"),
        ];
        for (f, what) in cases {
            let pod = edit(f);
            assert!(pod.translate().is_err(), "{what} accepted");
        }
        let unscheduled = edit(|v| {
            v["spec"].as_object_mut().unwrap().remove("nodeName");
        });
        assert_eq!(
            unscheduled.translate().unwrap_err(),
            TranslateError::Missing("spec.nodeName")
        );
    }
}
