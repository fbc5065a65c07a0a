//! Reading a cluster dump: what `kubectl get namespaces,pods,networkpolicies -A -o json` prints
//! (a `List`), or the same as YAML, or YAML documents separated by `---`.
//!
//! Objects of other kinds are ignored. A pod is skipped when it uses the host network (policies
//! do not apply to it) or has finished (`Succeeded`/`Failed`: its IP may belong to another pod);
//! a pod without an IPv4 `status.podIP` is kept without IP (the renderer ignores it until it
//! has one). An object that cannot be read is reported in the warnings and skipped.

use std::net::Ipv4Addr;

use serde_json::Value;

use crate::error::LoadError;
use crate::model::{Cluster, ContainerPort, Namespace, Pod};
use crate::policy::{NetworkPolicy, NetworkPolicySpec};
use crate::rule::Protocol;
use crate::selector::Labels;

/// A cluster and what was skipped while reading it.
#[derive(Clone, Debug, Default)]
pub struct Loaded {
    /// The cluster.
    pub cluster: Cluster,
    /// One line per skipped object.
    pub warnings: Vec<String>,
}

/// Reads a cluster dump (JSON or YAML).
pub fn load_cluster(text: &str) -> Result<Loaded, LoadError> {
    let docs: Vec<Value> = match serde_json::from_str::<Value>(text) {
        Ok(v) => vec![v],
        Err(json_err) => {
            let mut docs = Vec::new();
            for d in serde_yaml::Deserializer::from_str(text) {
                let v = <Value as serde::Deserialize>::deserialize(d)
                    .map_err(|e| LoadError::Format(format!("JSON: {json_err}; YAML: {e}")))?;
                if !v.is_null() {
                    docs.push(v);
                }
            }
            docs
        }
    };
    let mut out = Loaded::default();
    for d in docs {
        add_object(&d, &mut out)?;
    }
    Ok(out)
}

fn add_object(v: &Value, out: &mut Loaded) -> Result<(), LoadError> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    match kind {
        "List" | "NamespaceList" | "PodList" | "NetworkPolicyList" => {
            let items = v
                .get("items")
                .and_then(Value::as_array)
                .ok_or_else(|| LoadError::Format(format!("{kind} without items")))?;
            for i in items {
                add_object(i, out)?;
            }
        }
        "Namespace" => match namespace(v) {
            Ok(n) => out.cluster.namespaces.push(n),
            Err(e) => out.warnings.push(format!("namespace: {e}")),
        },
        "Pod" => match pod(v) {
            Ok(Some(p)) => out.cluster.pods.push(p),
            Ok(None) => {}
            Err(e) => out.warnings.push(format!("pod {}: {e}", name_of(v))),
        },
        "NetworkPolicy" => match policy(v) {
            Ok(p) => out.cluster.policies.push(p),
            Err(e) => out
                .warnings
                .push(format!("networkpolicy {}: {e}", name_of(v))),
        },
        "" if v.as_object().is_some_and(|o| o.is_empty()) => {}
        _ => {}
    }
    Ok(())
}

fn meta_str<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get("metadata")?.get(field)?.as_str()
}

fn name_of(v: &Value) -> String {
    format!(
        "{}/{}",
        meta_str(v, "namespace").unwrap_or("default"),
        meta_str(v, "name").unwrap_or("?")
    )
}

fn labels(v: &Value) -> Result<Labels, String> {
    match v.get("metadata").and_then(|m| m.get("labels")) {
        None | Some(Value::Null) => Ok(Labels::new()),
        Some(l) => serde_json::from_value(l.clone()).map_err(|e| format!("labels: {e}")),
    }
}

fn namespace(v: &Value) -> Result<Namespace, String> {
    Ok(Namespace {
        name: meta_str(v, "name").ok_or("no metadata.name")?.to_string(),
        labels: labels(v)?,
    })
}

fn pod(v: &Value) -> Result<Option<Pod>, String> {
    let spec = v.get("spec").cloned().unwrap_or(Value::Null);
    let status = v.get("status").cloned().unwrap_or(Value::Null);
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Ok(None);
    }
    if matches!(
        status.get("phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    ) {
        return Ok(None);
    }
    // The first IPv4 address among podIP and podIPs.
    let mut ips: Vec<&str> = status
        .get("podIP")
        .and_then(Value::as_str)
        .into_iter()
        .collect();
    for i in status
        .get("podIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(s) = i.get("ip").and_then(Value::as_str) {
            ips.push(s);
        }
    }
    let ip = ips.iter().find_map(|s| s.parse::<Ipv4Addr>().ok());
    let mut ports = Vec::new();
    for c in spec
        .get("containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        for p in c
            .get("ports")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let port = p
                .get("containerPort")
                .and_then(Value::as_u64)
                .and_then(|n| u16::try_from(n).ok())
                .ok_or("containerPort missing or out of range")?;
            let protocol = match p.get("protocol").and_then(Value::as_str) {
                None | Some("TCP") => Protocol::Tcp,
                Some("UDP") => Protocol::Udp,
                Some("SCTP") => Protocol::Sctp,
                Some(other) => return Err(format!("container port protocol {other:?}")),
            };
            ports.push(ContainerPort {
                name: p.get("name").and_then(Value::as_str).map(str::to_string),
                port,
                protocol,
            });
        }
    }
    Ok(Some(Pod {
        namespace: meta_str(v, "namespace").unwrap_or("default").to_string(),
        name: meta_str(v, "name").ok_or("no metadata.name")?.to_string(),
        labels: labels(v)?,
        ip,
        node: spec
            .get("nodeName")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string(),
        ports,
    }))
}

fn policy(v: &Value) -> Result<NetworkPolicy, String> {
    let spec: NetworkPolicySpec =
        serde_json::from_value(v.get("spec").cloned().unwrap_or(Value::Null))
            .map_err(|e| format!("spec: {e}"))?;
    Ok(NetworkPolicy {
        namespace: meta_str(v, "namespace").unwrap_or("default").to_string(),
        name: meta_str(v, "name").ok_or("no metadata.name")?.to_string(),
        spec,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: prod, labels: {app: web}}
spec:
  nodeName: n1
  containers:
  - name: c
    ports: [{name: http, containerPort: 8080}, {containerPort: 53, protocol: UDP}]
status: {podIP: 10.0.0.2, phase: Running}
---
kind: Pod
metadata: {name: host, namespace: prod}
spec: {nodeName: n1, hostNetwork: true}
status: {podIP: 192.168.1.1}
---
kind: Pod
metadata: {name: pending, namespace: prod}
spec: {nodeName: n1}
---
kind: NetworkPolicy
metadata: {name: p, namespace: prod}
spec: {podSelector: {}, ingress: [{ports: [{port: http}]}]}
---
kind: NetworkPolicy
metadata: {name: broken, namespace: prod}
spec: {podSelector: 7}
"#;

    #[test]
    fn reads_yaml_documents() {
        let l = load_cluster(YAML).unwrap();
        assert_eq!(l.cluster.namespaces.len(), 1);
        assert_eq!(l.cluster.pods.len(), 2);
        let web = &l.cluster.pods[0];
        assert_eq!(web.ip, Some("10.0.0.2".parse().unwrap()));
        assert_eq!(web.ports[0].name.as_deref(), Some("http"));
        assert_eq!(web.ports[1].protocol, Protocol::Udp);
        assert_eq!(l.cluster.pods[1].ip, None);
        assert_eq!(l.cluster.policies.len(), 1);
        assert_eq!(l.warnings.len(), 1);
        assert!(l.warnings[0].starts_with("networkpolicy prod/broken"));
    }

    #[test]
    fn reads_json_list() {
        let j = r#"{"apiVersion":"v1","kind":"List","items":[
          {"kind":"Pod","metadata":{"name":"a","namespace":"x"},"spec":{"nodeName":"n"},
           "status":{"podIP":"fd00::1","podIPs":[{"ip":"fd00::1"},{"ip":"10.1.1.1"}]}}]}"#;
        let l = load_cluster(j).unwrap();
        assert_eq!(l.cluster.pods[0].ip, Some("10.1.1.1".parse().unwrap()));
        assert!(load_cluster("{not json: [").is_err());
    }
}
