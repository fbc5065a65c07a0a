//! Shared test helpers: a real etcd on loopback, a scripted source, convergence checks.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use tokio::sync::mpsc;
use vpg_ksr::kinds::{item, Item};
use vpg_ksr::store::{EtcdStore, Store};
use vpg_ksr::{Change, Kind};

/// A real etcd server on loopback ports with its data in a temporary directory.
pub struct Etcd {
    dir: tempfile::TempDir,
    client_port: u16,
    peer_port: u16,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Etcd {
    /// Starts etcd; `None` (with the reason printed) when the binary is missing.
    pub fn start() -> Option<Etcd> {
        if Command::new("etcd").arg("--version").output().is_err() {
            eprintln!("SKIP: etcd is not installed (scripts/setup.sh installs etcd-server)");
            return None;
        }
        let mut e = Etcd {
            dir: tempfile::tempdir().unwrap(),
            client_port: free_port(),
            peer_port: free_port(),
            child: None,
        };
        e.spawn();
        Some(e)
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn spawn(&mut self) {
        let peer = format!("http://127.0.0.1:{}", self.peer_port);
        let child = Command::new("etcd")
            .args(["--name", "vpg-test"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &self.endpoint()])
            .args(["--advertise-client-urls", &self.endpoint()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("vpg-test={peer}")])
            .args(["--log-level", "error", "--logger", "zap"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("etcd starts");
        self.child = Some(child);
        // Wait until it accepts connections.
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.client_port)).is_err() {
            assert!(Instant::now() < deadline, "etcd did not come up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGKILL: an outage, not a clean shutdown).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Stops it, deletes its data and starts an empty one on the same ports: the store's
    /// revision goes backwards.
    pub fn wipe(&mut self) {
        self.stop();
        std::fs::remove_dir_all(self.data_dir()).unwrap();
        self.spawn();
    }

    pub async fn connect(&self) -> EtcdStore {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match EtcdStore::connect(&[self.endpoint()], Duration::from_secs(2)).await {
                Ok(s) if s.revision().await.is_ok() => return s,
                r => {
                    assert!(Instant::now() < deadline, "etcd client: {:?}", r.err());
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A scripted cluster: the objects it holds, and one change channel per kind.
pub struct Cluster {
    pub objects: BTreeMap<Kind, BTreeMap<String, Item>>,
    txs: BTreeMap<Kind, mpsc::UnboundedSender<Change>>,
}

pub fn pod(ns: &str, name: &str, ip: &str, app: &str) -> Item {
    let p: Pod = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": app}, "resourceVersion": "1"},
        "spec": {"nodeName": "node-a", "containers": [{"name": "c", "image": "nginx",
                 "ports": [{"containerPort": 80, "name": "http"}]}]},
        "status": {"phase": "Running", "podIP": ip}
    }))
    .unwrap();
    item(&p)
}

pub fn namespace(name: &str, team: &str) -> Item {
    let n: Namespace = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": {"team": team}}
    }))
    .unwrap();
    item(&n)
}

impl Cluster {
    pub fn new() -> Cluster {
        Cluster {
            objects: BTreeMap::new(),
            txs: BTreeMap::new(),
        }
    }

    /// Sets an object without telling anyone (a change the reflector did not see).
    pub fn set_quietly(&mut self, kind: Kind, it: Item) {
        let key = match &it {
            Ok((k, _)) => k.clone(),
            Err((k, _)) => k.clone().unwrap(),
        };
        self.objects.entry(kind).or_default().insert(key, it);
    }

    pub fn remove_quietly(&mut self, kind: Kind, key: &str) {
        self.objects.entry(kind).or_default().remove(key);
    }

    /// Sources for a new reflector set: each starts with a full list of the current objects.
    pub fn sources(&mut self, kinds: &[Kind]) -> Vec<(Kind, BoxStream<'static, Change>)> {
        let mut out = Vec::new();
        for &k in kinds {
            let (tx, mut rx) = mpsc::unbounded_channel();
            self.txs.insert(k, tx);
            out.push((
                k,
                futures::stream::poll_fn(move |cx| rx.poll_recv(cx)).boxed(),
            ));
            self.relist(k);
        }
        out
    }

    /// Sends a full list of one kind (as after a 410 Gone).
    pub fn relist(&self, k: Kind) {
        let tx = &self.txs[&k];
        let _ = tx.send(Change::Init);
        for it in self.objects.get(&k).into_iter().flat_map(|m| m.values()) {
            let _ = tx.send(Change::InitApply(it.clone()));
        }
        let _ = tx.send(Change::InitDone);
    }

    pub fn apply(&mut self, kind: Kind, it: Item) {
        self.set_quietly(kind, it.clone());
        let _ = self.txs[&kind].send(Change::Apply(it));
    }

    pub fn delete(&mut self, kind: Kind, key: &str) {
        self.remove_quietly(kind, key);
        let _ = self.txs[&kind].send(Change::Delete(Ok(key.to_string())));
    }

    /// What the store must hold: every valid object's record.
    pub fn expected(&self) -> BTreeMap<String, Vec<u8>> {
        self.objects
            .values()
            .flat_map(|m| m.values())
            .filter_map(|it| it.as_ref().ok().cloned())
            .collect()
    }
}

/// Waits until the store holds exactly `want` under /vpg/v1/ and `in_sync()` is true.
pub async fn converge<S: Store>(
    store: &S,
    want: &BTreeMap<String, Vec<u8>>,
    in_sync: impl Fn() -> bool,
    what: &str,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let have = store.list("/vpg/v1/").await.map(|l| l.items);
        if in_sync() && have.as_ref().ok() == Some(want) {
            return;
        }
        if Instant::now() > deadline {
            let have = have.map(|h| h.into_keys().collect::<Vec<_>>());
            panic!(
                "{what}: did not converge; in_sync={} store keys {:?} want {:?}",
                in_sync(),
                have,
                want.keys().collect::<Vec<_>>()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub type Shared<S> = Arc<S>;
