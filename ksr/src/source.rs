//! Where objects come from: a Kubernetes API server (kube-runtime watchers) or a directory of
//! manifests (a single machine without a cluster).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Namespace, Node, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::kinds::{item, Item, Reflect};
use crate::model::{Kind, TranslateError};
use crate::reflector::Change;

/// One change stream per kind.
pub type Sources = Vec<(Kind, BoxStream<'static, Change>)>;

/// Watches one kind on a Kubernetes API server.
pub fn kube_stream<K: Reflect>(
    client: Client,
    cfg: watcher::Config,
) -> (Kind, BoxStream<'static, Change>) {
    let api: Api<K> = Api::all(client);
    // default_backoff: errors are yielded (counted by the reflector), then the watcher waits
    // before retrying; a 410 Gone makes the watcher relist, which arrives as Init..InitDone.
    let s = watcher(api, cfg)
        .default_backoff()
        .map(Change::from_watcher::<K>)
        .boxed();
    (K::KIND, s)
}

/// Watches every kind on a Kubernetes API server (bookmarks on, kube-runtime's defaults).
pub fn kubernetes(client: Client) -> Sources {
    let cfg = watcher::Config::default();
    vec![
        kube_stream::<Namespace>(client.clone(), cfg.clone()),
        kube_stream::<Pod>(client.clone(), cfg.clone()),
        kube_stream::<NetworkPolicy>(client.clone(), cfg.clone()),
        kube_stream::<Service>(client.clone(), cfg.clone()),
        kube_stream::<Endpoints>(client.clone(), cfg.clone()),
        kube_stream::<Node>(client.clone(), cfg),
        ipsec_secret_stream(client),
    ]
}

/// Watches the one secret the data plane needs (`kube-system/vpg-ipsec-keys`, by a field
/// selector on its name): no other secret ever reaches the reflector or the store.
pub fn ipsec_secret_stream(client: Client) -> (Kind, BoxStream<'static, Change>) {
    use crate::kinds::secret::{IPSEC_SECRET_NAME, IPSEC_SECRET_NAMESPACE};
    let api: Api<Secret> = Api::namespaced(client, IPSEC_SECRET_NAMESPACE);
    let cfg = watcher::Config::default().fields(&format!("metadata.name={IPSEC_SECRET_NAME}"));
    let s = watcher(api, cfg)
        .default_backoff()
        .map(Change::from_watcher::<Secret>)
        .boxed();
    (Kind::Secret, s)
}

/// What one scan of a manifest directory found.
#[derive(Debug, Default)]
pub struct ManifestScan {
    /// Translated objects per kind.
    pub items: BTreeMap<Kind, Vec<Item>>,
    /// Documents of kinds the reflector does not mirror.
    pub ignored: usize,
}

fn decode<K: Reflect>(v: serde_json::Value) -> Item {
    match serde_json::from_value::<K>(v.clone()) {
        Ok(obj) => item(&obj),
        Err(e) => {
            let meta = &v["metadata"];
            let key = meta["name"]
                .as_str()
                .map(|n| K::KIND.key(meta["namespace"].as_str(), n));
            Err((key, TranslateError::Decode(e.to_string())))
        }
    }
}

fn add_doc(scan: &mut ManifestScan, v: serde_json::Value) {
    let api = v["apiVersion"].as_str().unwrap_or_default().to_string();
    let kind = v["kind"].as_str().unwrap_or_default().to_string();
    let (k, it) = match (api.as_str(), kind.as_str()) {
        (_, "List") | (_, "PodList") | (_, "ServiceList") => {
            if let Some(items) = v.get("items").and_then(|i| i.as_array()).cloned() {
                for i in items {
                    add_doc(scan, i);
                }
            }
            return;
        }
        ("v1", "Pod") => (Kind::Pod, decode::<Pod>(v)),
        ("v1", "Namespace") => (Kind::Namespace, decode::<Namespace>(v)),
        ("v1", "Service") => (Kind::Service, decode::<Service>(v)),
        ("v1", "Endpoints") => (Kind::Endpoints, decode::<Endpoints>(v)),
        ("v1", "Node") => (Kind::Node, decode::<Node>(v)),
        ("networking.k8s.io/v1", "NetworkPolicy") => (Kind::Policy, decode::<NetworkPolicy>(v)),
        // Only the IPsec key secret; other secrets are none of the data plane's business.
        ("v1", "Secret")
            if crate::kinds::secret::is_ipsec_secret(
                v["metadata"]["namespace"].as_str(),
                v["metadata"]["name"].as_str(),
            ) =>
        {
            (Kind::Secret, decode::<Secret>(v))
        }
        _ => {
            scan.ignored += 1;
            return;
        }
    };
    scan.items.entry(k).or_default().push(it);
}

/// Reads every `*.yaml`, `*.yml` and `*.json` file of `dir` (not recursively), in name order.
/// A file that does not parse fails the whole scan, so a half-written file never makes its
/// objects vanish from the store.
pub fn scan_manifests(dir: &Path) -> Result<ManifestScan, String> {
    let mut scan = ManifestScan::default();
    for path in manifest_files(dir)? {
        let text =
            std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let is_json = path.extension().is_some_and(|e| e == "json");
        if is_json {
            let v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            add_doc(&mut scan, v);
        } else {
            for doc in serde_yaml::Deserializer::from_str(&text) {
                let v: serde_json::Value = serde::Deserialize::deserialize(doc)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                if !v.is_null() {
                    add_doc(&mut scan, v);
                }
            }
        }
    }
    Ok(scan)
}

fn manifest_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut files: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Names, sizes and modification times: a cheap "did anything change" check.
fn fingerprint(dir: &Path) -> Result<Vec<(PathBuf, u64, Option<SystemTime>)>, String> {
    Ok(manifest_files(dir)?
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let len = m.as_ref().map_or(0, |m| m.len());
            let t = m.and_then(|m| m.modified().ok());
            (p, len, t)
        })
        .collect())
}

/// Watches a manifest directory by polling it every `interval`; every change delivers a full
/// list of every kind (the reflectors write only what differs).
pub fn manifests(dir: PathBuf, interval: Duration) -> Sources {
    let mut txs = HashMap::new();
    let mut out: Sources = Vec::new();
    for k in Kind::ALL {
        let (tx, rx) = mpsc::channel::<Change>(1024);
        txs.insert(k, tx);
        out.push((k, tokio_stream_from(rx)));
    }
    tokio::spawn(async move {
        let mut last = None;
        let mut last_error: Option<String> = None;
        loop {
            let fp = fingerprint(&dir);
            let changed = match (&fp, &last) {
                (Ok(fp), Some(l)) => fp != l,
                _ => true,
            };
            if changed {
                match fp.and_then(|fp| scan_manifests(&dir).map(|s| (fp, s))) {
                    Ok((fp, mut scan)) => {
                        last_error = None;
                        last = Some(fp);
                        for k in Kind::ALL {
                            let tx = &txs[&k];
                            let items = scan.items.remove(&k).unwrap_or_default();
                            let mut msgs = vec![Change::Init];
                            msgs.extend(items.into_iter().map(Change::InitApply));
                            msgs.push(Change::InitDone);
                            for m in msgs {
                                if tx.send(m).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        // Reported once per distinct error; the previous state stays.
                        if last_error.as_ref() != Some(&e) {
                            for tx in txs.values() {
                                if tx.send(Change::SourceError(e.clone())).await.is_err() {
                                    return;
                                }
                            }
                            last_error = Some(e);
                        }
                        last = None;
                    }
                }
            }
            tokio::time::sleep(interval).await;
        }
    });
    out
}

fn tokio_stream_from(mut rx: mpsc::Receiver<Change>) -> BoxStream<'static, Change> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_yaml_json_lists_and_bad_objects() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("a.yaml"),
            r#"
apiVersion: v1
kind: Namespace
metadata: {name: demo, labels: {team: a}}
---
apiVersion: v1
kind: Pod
metadata: {name: p1, namespace: demo, labels: {app: web}}
spec:
  nodeName: node-a
  containers: [{name: c, image: nginx, ports: [{containerPort: 80, name: http}]}]
status: {phase: Running, podIP: 10.1.1.5}
---
apiVersion: v1
kind: Pod
metadata: {name: pending, namespace: demo}
spec: {containers: [{name: c, image: nginx}]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: ignored}
---
apiVersion: v1
kind: Secret
metadata: {name: vpg-ipsec-keys, namespace: kube-system}
stringData: {keys: "2+ rfc4106(gcm(aes)) 00112233445566778899aabbccddeeff01020304 128"}
---
apiVersion: v1
kind: Secret
metadata: {name: db-password, namespace: kube-system}
stringData: {password: hunter2}
"#,
        )
        .unwrap();
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Node","metadata":{"name":"node-a"},"spec":{"podCIDR":"10.1.1.0/24"},"status":{"addresses":[{"type":"InternalIP","address":"192.168.1.1"}]}},{"apiVersion":"v1","kind":"Service","metadata":{"name":"s","namespace":"demo"},"spec":{"ports":"not-a-list"}}]}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
        let scan = scan_manifests(dir.path()).unwrap();
        // The Deployment and the unrelated secret.
        assert_eq!(scan.ignored, 2);
        let secrets = &scan.items[&Kind::Secret];
        assert_eq!(secrets.len(), 1);
        assert_eq!(
            secrets[0].as_ref().unwrap().0,
            "/vpg/v1/secret/kube-system/vpg-ipsec-keys"
        );
        assert_eq!(scan.items[&Kind::Namespace].len(), 1);
        let pods = &scan.items[&Kind::Pod];
        assert!(pods[0].is_ok());
        assert_eq!(
            pods[1].as_ref().unwrap_err().1,
            TranslateError::Missing("status.podIP")
        );
        assert!(scan.items[&Kind::Node][0].is_ok());
        let svc = scan.items[&Kind::Service][0].as_ref().unwrap_err();
        assert_eq!(svc.0.as_deref(), Some("/vpg/v1/service/demo/s"));
        assert!(matches!(svc.1, TranslateError::Decode(_)));
        // A file that does not parse fails the scan.
        std::fs::write(dir.path().join("c.yaml"), "kind: [unclosed").unwrap();
        assert!(scan_manifests(dir.path()).is_err());
    }
}
