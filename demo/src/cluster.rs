//! The demo's cluster state: the manifests of `examples/demo/`, plus what a real cluster's
//! controllers would add once pods run — each pod's `status.podIP` (the kubelet reports the
//! address the CNI plugin returned) and each selector service's `Endpoints` (the endpoints
//! controller). The result is written as one `List` into the manifest directory both agents
//! reflect, atomically, so a reader never sees pods without their endpoints.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

/// A pod of the manifests, as the demo creates it.
#[derive(Clone, Debug)]
pub struct Pod {
    /// Kubernetes namespace.
    pub namespace: String,
    /// Pod name.
    pub name: String,
    /// `spec.nodeName`.
    pub node: String,
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// TCP ports of its containers (the demo's server listens on them).
    pub ports: Vec<u16>,
}

/// Reads every `*.yaml` / `*.yml` of `dir` (multi-document), in name order.
pub fn load(dir: &Path) -> Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut docs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| f.display().to_string())?;
        for d in serde_yaml::Deserializer::from_str(&text) {
            let v = <Value as serde::Deserialize>::deserialize(d)
                .with_context(|| f.display().to_string())?;
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    if docs.is_empty() {
        bail!("no manifests in {}", dir.display());
    }
    Ok(docs)
}

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

fn labels(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), s(v))).collect())
        .unwrap_or_default()
}

/// The pods of the manifests; each needs a namespace, a name and a node.
pub fn pods(docs: &[Value]) -> Result<Vec<Pod>> {
    let mut out = Vec::new();
    for d in docs.iter().filter(|d| d["kind"] == "Pod") {
        let p = Pod {
            namespace: s(&d["metadata"]["namespace"]),
            name: s(&d["metadata"]["name"]),
            node: s(&d["spec"]["nodeName"]),
            labels: labels(&d["metadata"]["labels"]),
            ports: d["spec"]["containers"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                .filter_map(|p| p["containerPort"].as_u64())
                .filter_map(|p| u16::try_from(p).ok())
                .collect(),
        };
        if p.namespace.is_empty() || p.name.is_empty() || p.node.is_empty() {
            bail!("a Pod needs metadata.namespace, metadata.name and spec.nodeName: {d}");
        }
        out.push(p);
    }
    Ok(out)
}

/// The manifests with each pod's address (from `ips`, keyed `namespace/name`) and phase
/// Running, plus the `Endpoints` of every service with a selector.
pub fn with_pods(docs: &[Value], ips: &BTreeMap<String, String>) -> Vec<Value> {
    let mut out: Vec<Value> = docs
        .iter()
        .map(|d| {
            let mut d = d.clone();
            if d["kind"] == "Pod" {
                let key = format!(
                    "{}/{}",
                    s(&d["metadata"]["namespace"]),
                    s(&d["metadata"]["name"])
                );
                if let Some(ip) = ips.get(&key) {
                    d["status"] = json!({"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]});
                }
            }
            d
        })
        .collect();
    let eps: Vec<Value> = out
        .iter()
        .filter(|d| d["kind"] == "Service")
        .filter_map(|svc| endpoints(svc, &out))
        .collect();
    out.extend(eps);
    out
}

/// What the endpoints controller makes of a service: the addressed pods of its namespace whose
/// labels include the selector, and its ports resolved to the pods' ports (a number, or a
/// container port's name).
fn endpoints(svc: &Value, docs: &[Value]) -> Option<Value> {
    let ns = s(&svc["metadata"]["namespace"]);
    let sel = labels(&svc["spec"]["selector"]);
    if sel.is_empty() {
        return None;
    }
    let pods: Vec<&Value> = docs
        .iter()
        .filter(|d| d["kind"] == "Pod" && s(&d["metadata"]["namespace"]) == ns)
        .filter(|d| d["status"]["podIP"].is_string())
        .filter(|d| {
            let l = labels(&d["metadata"]["labels"]);
            sel.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .collect();
    let addresses: Vec<Value> = pods
        .iter()
        .map(|p| {
            json!({"ip": p["status"]["podIP"], "nodeName": p["spec"]["nodeName"],
                   "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"]}})
        })
        .collect();
    let ports: Vec<Value> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|sp| {
            let target = match &sp["targetPort"] {
                Value::Number(n) => n.as_u64(),
                Value::String(name) => pods.first().and_then(|p| {
                    p["spec"]["containers"]
                        .as_array()?
                        .iter()
                        .flat_map(|c| c["ports"].as_array().into_iter().flatten())
                        .find(|cp| cp["name"] == name.as_str())?["containerPort"]
                        .as_u64()
                }),
                _ => sp["port"].as_u64(),
            }?;
            Some(json!({"name": sp["name"], "port": target,
                        "protocol": sp["protocol"].as_str().unwrap_or("TCP")}))
        })
        .collect();
    Some(json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": svc["metadata"]["name"], "namespace": ns},
        "subsets": [{"addresses": addresses, "ports": ports}]
    }))
}

/// Writes `items` as one `List` to `path`, atomically (a hidden temporary file the reflector
/// does not read, then a rename).
pub fn write_list(path: &Path, items: &[Value]) -> Result<()> {
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let tmp = path.with_file_name(".cluster.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(&list)?)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_docs() -> Vec<Value> {
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo")).unwrap()
    }

    #[test]
    fn the_example_manifests_load() {
        let docs = demo_docs();
        let pods = pods(&docs).unwrap();
        assert_eq!(pods.len(), 6);
        assert_eq!(pods.iter().filter(|p| p.node == "n1").count(), 3);
        let web1 = pods.iter().find(|p| p.name == "web-1").unwrap();
        assert_eq!(web1.ports, vec![8080]);
        assert_eq!(web1.labels["app"], "web");
    }

    #[test]
    fn endpoints_follow_the_selector_and_the_addresses() {
        let docs = demo_docs();
        let mut ips = BTreeMap::new();
        ips.insert("shop/web-1".to_string(), "10.1.1.3".to_string());
        ips.insert("shop/web-2".to_string(), "10.1.2.3".to_string());
        ips.insert("shop/client-1".to_string(), "10.1.1.2".to_string());
        let all = with_pods(&docs, &ips);
        let ep = all.iter().find(|d| d["kind"] == "Endpoints").unwrap();
        let addrs: Vec<&str> = ep["subsets"][0]["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["ip"].as_str().unwrap())
            .collect();
        assert_eq!(addrs, ["10.1.1.3", "10.1.2.3"], "web pods only, addressed");
        assert_eq!(ep["subsets"][0]["ports"][0]["port"], 8080);
        let c1 = all
            .iter()
            .find(|d| d["metadata"]["name"] == "client-1")
            .unwrap();
        assert_eq!(c1["status"]["podIP"], "10.1.1.2");
        let db1 = all
            .iter()
            .find(|d| d["metadata"]["name"] == "db-1")
            .unwrap();
        assert!(db1["status"].is_null(), "no address, no status");
    }

    #[test]
    fn a_pod_without_a_node_is_refused() {
        let docs = vec![json!({"kind": "Pod", "metadata": {"name": "p", "namespace": "x"}})];
        assert!(pods(&docs).unwrap_err().to_string().contains("nodeName"));
    }
}
