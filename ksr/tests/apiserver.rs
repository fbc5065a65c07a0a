//! The reflector driven through the real kube-rs client against a local HTTP server that
//! speaks the Kubernetes list/watch protocol: real Pod JSON, resourceVersion, BOOKMARK events
//! (when the client asks for them) and an ERROR 410 Gone mid-watch that forces a relist in
//! which some objects vanished.

mod common;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::converge;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use vpg_ksr::kinds::item;
use vpg_ksr::reflector::Backoff;
use vpg_ksr::run::{Reflectors, RunConfig};
use vpg_ksr::source::kube_stream;
use vpg_ksr::store::{EmbeddedStore, Instrumented};
use vpg_ksr::Kind;

#[derive(Default)]
struct ApiState {
    rv: u64,
    pods: BTreeMap<String, Value>,
    /// (resourceVersion, watch event line) for watches that resume from an older version.
    history: Vec<(u64, String)>,
    /// Watches from a version below this get 410 Gone.
    compacted: u64,
    watchers: Vec<mpsc::UnboundedSender<String>>,
    requests: Vec<String>,
}

fn pod_json(name: &str, ip: &str, rv: u64) -> Value {
    json!({
      "apiVersion": "v1", "kind": "Pod",
      "metadata": {
        "creationTimestamp": "2024-05-01T10:02:11Z",
        "labels": {"app": "web", "pod-template-hash": "7d4b9c8f6d"},
        "name": name, "namespace": "prod",
        "ownerReferences": [{"apiVersion": "apps/v1", "blockOwnerDeletion": true, "controller": true,
          "kind": "ReplicaSet", "name": "web-7d4b9c8f6d", "uid": "0b6e1f2c-9a9e-4d35-8a2b-2f7c6d1e9b10"}],
        "resourceVersion": rv.to_string(), "uid": format!("uid-{name}")
      },
      "spec": {
        "containers": [{"image": "nginx:1.25", "imagePullPolicy": "IfNotPresent", "name": "nginx",
          "ports": [{"containerPort": 80, "name": "http", "protocol": "TCP"}],
          "resources": {}, "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}],
        "dnsPolicy": "ClusterFirst", "nodeName": "node-a", "restartPolicy": "Always",
        "schedulerName": "default-scheduler", "serviceAccountName": "default", "terminationGracePeriodSeconds": 30
      },
      "status": {"hostIP": "192.168.10.11", "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
        "qosClass": "BestEffort", "startTime": "2024-05-01T10:02:11Z"}
    })
}

impl ApiState {
    fn broadcast(&mut self, line: String) {
        self.watchers.retain(|w| w.send(line.clone()).is_ok());
    }

    fn event(&mut self, kind: &str, obj: Value) {
        let line = json!({"type": kind, "object": obj}).to_string();
        self.history.push((self.rv, line.clone()));
        self.broadcast(line);
    }

    fn upsert(&mut self, name: &str, ip: &str, quiet: bool) {
        self.rv += 1;
        let obj = pod_json(name, ip, self.rv);
        let kind = if self.pods.contains_key(name) {
            "MODIFIED"
        } else {
            "ADDED"
        };
        self.pods.insert(name.to_string(), obj.clone());
        if !quiet {
            self.event(kind, obj);
        }
    }

    fn delete(&mut self, name: &str, quiet: bool) {
        self.rv += 1;
        if let Some(mut obj) = self.pods.remove(name) {
            obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            if !quiet {
                self.event("DELETED", obj);
            }
        }
    }

    fn bookmark(&mut self) {
        let line = json!({"type": "BOOKMARK", "object": {"kind": "Pod", "apiVersion": "v1",
            "metadata": {"resourceVersion": self.rv.to_string(),
                         "annotations": {"k8s.io/initial-events-end": "false"}}}})
        .to_string();
        self.broadcast(line);
    }

    /// The watch history is lost: open watches get ERROR 410 and close; resuming fails.
    fn gone(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
        let line = gone_line(self.rv);
        self.broadcast(line);
        self.watchers.clear();
    }
}

fn gone_line(rv: u64) -> String {
    json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
        "status": "Failure", "message": format!("too old resource version: 1 ({rv})"),
        "reason": "Expired", "code": 410}})
    .to_string()
}

type Body = BoxBody<Bytes, Infallible>;

fn json_response(status: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(v.to_string())).boxed())
        .unwrap()
}

fn handle(req: Request<hyper::body::Incoming>, st: &Mutex<ApiState>) -> Response<Body> {
    let uri = req.uri().to_string();
    let query: BTreeMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut s = st.lock().unwrap();
    s.requests.push(uri);
    if req.uri().path() != "/api/v1/pods" {
        return json_response(
            404,
            &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
            "reason": "NotFound", "code": 404, "message": "not found"}),
        );
    }
    if query.get("watch").map(String::as_str) != Some("true") {
        let items: Vec<Value> = s.pods.values().cloned().collect();
        return json_response(
            200,
            &json!({"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
        );
    }
    let from: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    if from < s.compacted {
        let _ = tx.send(gone_line(s.rv));
        drop(tx);
    } else {
        for (rv, line) in &s.history {
            if *rv > from {
                let _ = tx.send(line.clone());
            }
        }
        s.watchers.push(tx);
    }
    let body = StreamBody::new(futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx)
            .map(|o| o.map(|line| Ok::<_, Infallible>(Frame::data(Bytes::from(line + "\n")))))
    }));
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(BodyExt::boxed(body))
        .unwrap()
}

async fn serve(st: Arc<Mutex<ApiState>>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let st = st.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req| {
                    let r = handle(req, &st);
                    async move { Ok::<_, Infallible>(r) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

fn expected(st: &Mutex<ApiState>) -> BTreeMap<String, Vec<u8>> {
    st.lock()
        .unwrap()
        .pods
        .values()
        .filter_map(|v| item(&serde_json::from_value::<Pod>(v.clone()).unwrap()).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_watch_bookmarks_and_410_relist_through_kube_client() {
    let st = Arc::new(Mutex::new(ApiState::default()));
    {
        let mut s = st.lock().unwrap();
        for (n, ip) in [("a", "10.1.1.1"), ("b", "10.1.1.2"), ("c", "10.1.1.3")] {
            s.upsert(n, ip, false);
        }
    }
    let addr = serve(st.clone()).await;
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Instrumented::new(
        EmbeddedStore::open(dir.path().join("k.redb")).unwrap(),
    ));
    let counts = store.counts();
    let sources = vec![kube_stream::<Pod>(client, watcher::Config::default())];
    let cfg = RunConfig {
        probe_interval: Duration::from_millis(100),
        backoff: Backoff {
            min: Duration::from_millis(20),
            max: Duration::from_millis(200),
        },
    };
    let r = Reflectors::start(store, "fake apiserver".into(), sources, cfg);

    // Initial sync.
    tokio::time::timeout(Duration::from_secs(30), r.wait_until_ready())
        .await
        .expect("ready");
    converge(r.store(), &expected(&st), || r.in_sync(), "initial list").await;
    assert_eq!(counts.writes(), 3);

    // Wait for the watch to be open, then add, update, delete, and a bookmark.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while st.lock().unwrap().watchers.is_empty() {
        assert!(std::time::Instant::now() < deadline, "no watch");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let mut s = st.lock().unwrap();
        s.upsert("d", "10.1.1.4", false);
        s.upsert("a", "10.1.1.11", false);
        s.delete("b", false);
        s.bookmark();
        // A pod whose IP is garbage: counted, skipped, no effect on the others.
        s.upsert("bad", "10.1.1.999", false);
    }
    converge(r.store(), &expected(&st), || r.in_sync(), "watch events").await;
    let pods = r.stats(Kind::Pod).unwrap();
    assert_eq!(counts.writes(), 6, "d added, a updated, b deleted");
    assert!(pods.skipped.load(Ordering::SeqCst) >= 1);
    {
        let s = st.lock().unwrap();
        let watch = s
            .requests
            .iter()
            .find(|u| u.contains("watch=true"))
            .expect("a watch request");
        assert!(watch.contains("allowWatchBookmarks=true"), "{watch}");
        assert!(watch.contains("resourceVersion="), "{watch}");
    }

    // Events are lost (history compacted) while objects change, then the watch gets 410.
    let lists_before = st
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|u| !u.contains("watch=true"))
        .count();
    {
        let mut s = st.lock().unwrap();
        s.delete("c", true);
        s.upsert("e", "10.1.1.5", true);
        s.upsert("d", "10.1.1.44", true);
        s.gone();
    }
    converge(
        r.store(),
        &expected(&st),
        || r.in_sync(),
        "relist after 410",
    )
    .await;
    let keys: Vec<String> = vpg_ksr::control::dump(r.store().as_ref(), Some(Kind::Pod))
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.key)
        .collect();
    assert_eq!(
        keys,
        [
            "/vpg/v1/pod/prod/a",
            "/vpg/v1/pod/prod/d",
            "/vpg/v1/pod/prod/e"
        ]
    );
    let snap = pods.snapshot(Kind::Pod);
    assert!(snap.relists >= 2, "{snap:?}");
    assert!(snap.errors >= 1, "the 410 is counted: {snap:?}");
    assert_eq!(
        counts.writes(),
        9,
        "c deleted, e added, d updated: {snap:?}"
    );
    let lists_after = st
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|u| !u.contains("watch=true"))
        .count();
    assert!(lists_after > lists_before, "410 made the client list again");
    r.shutdown().await;
}
