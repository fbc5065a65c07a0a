//! Reflector benchmarks (issue 9): initial reflection of 10k pods, 1k policies and 1k services
//! into the embedded store and into etcd; steady-state latency from a watch event to the
//! store write; a restart with no changes (its time, and its write count, which must be 0).
//!
//! etcd runs from the `etcd` binary on loopback with its data in a temporary directory; when
//! it is missing the etcd cases are skipped with a message. Run with
//! `cargo bench -p vpg-ksr --bench reflect`.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use serde_json::json;
use vpg_ksr::kinds::{item, Item};
use vpg_ksr::reflector::{Backoff, KindReflector};
use vpg_ksr::store::{EmbeddedStore, EtcdStore, Instrumented, Store};
use vpg_ksr::{Change, Kind};

fn pods(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("web-{i}"), "namespace": format!("ns-{}", i % 50),
                             "labels": {"app": format!("app-{}", i % 100), "tier": "web"}},
                "spec": {"nodeName": format!("node-{}", i % 100), "containers": [{"name": "c", "image": "nginx",
                         "ports": [{"containerPort": 8080, "name": "http"}]}]},
                "status": {"phase": "Running", "podIP": format!("10.{}.{}.{}", 1 + i / 65536, (i / 256) % 256, i % 256)}
            }))
            .unwrap();
            item(&p)
        })
        .collect()
}

fn policies(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let p: NetworkPolicy = serde_json::from_value(json!({
                "metadata": {"name": format!("pol-{i}"), "namespace": format!("ns-{}", i % 50)},
                "spec": {"podSelector": {"matchLabels": {"app": format!("app-{}", i % 100)}},
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "web"}}},
                                               {"ipBlock": {"cidr": "172.16.0.0/12", "except": ["172.16.1.0/24"]}}],
                                      "ports": [{"port": 8080}, {"port": "http", "protocol": "TCP"}]}]}
            }))
            .unwrap();
            item(&p)
        })
        .collect()
}

fn services(n: usize) -> Vec<Item> {
    (0..n)
        .map(|i| {
            let s: Service = serde_json::from_value(json!({
                "metadata": {"name": format!("svc-{i}"), "namespace": format!("ns-{}", i % 50)},
                "spec": {"clusterIP": format!("10.96.{}.{}", i / 256, i % 256), "type": "ClusterIP",
                         "selector": {"app": format!("app-{}", i % 100)},
                         "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]}
            }))
            .unwrap();
            item(&s)
        })
        .collect()
}

fn reflector<S: Store>(kind: Kind, store: Arc<S>) -> KindReflector<S> {
    KindReflector::new(
        kind,
        store,
        Arc::default(),
        Arc::default(),
        tokio::sync::watch::channel(false).0,
        Backoff::default(),
    )
}

/// Reflects every kind's full list; returns the reflectors, in sync.
async fn initial<S: Store>(
    store: &Arc<S>,
    data: &BTreeMap<Kind, Vec<Item>>,
) -> Vec<KindReflector<S>> {
    let mut out = Vec::new();
    for (kind, items) in data {
        let mut r = reflector(*kind, store.clone());
        r.handle(Change::Init).await;
        for it in items {
            r.handle(Change::InitApply(it.clone())).await;
        }
        r.handle(Change::InitDone).await;
        assert!(r.in_sync());
        out.push(r);
    }
    out
}

struct Etcd {
    _dir: tempfile::TempDir,
    child: Child,
    endpoint: String,
}

impl Drop for Etcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_etcd() -> Option<Etcd> {
    let port = || {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (cp, pp) = (port(), port());
    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{cp}");
    let peer = format!("http://127.0.0.1:{pp}");
    let child = Command::new("etcd")
        .args(["--name", "bench", "--log-level", "error", "--logger", "zap"])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args([
            "--listen-client-urls",
            &endpoint,
            "--advertise-client-urls",
            &endpoint,
        ])
        .args([
            "--listen-peer-urls",
            &peer,
            "--initial-advertise-peer-urls",
            &peer,
        ])
        .args(["--initial-cluster", &format!("bench={peer}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", cp)).is_err() {
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(Etcd {
        _dir: dir,
        child,
        endpoint,
    })
}

async fn clear<S: Store>(store: &S) {
    let keys: Vec<String> = store
        .list("/vpg/v1/")
        .await
        .unwrap()
        .items
        .into_keys()
        .collect();
    for chunk in keys.chunks(store.max_batch()) {
        store
            .apply(
                chunk
                    .iter()
                    .map(|k| vpg_ksr::store::Op::Delete(k.clone()))
                    .collect(),
            )
            .await
            .unwrap();
    }
}

fn bench_store<S: Store>(
    c: &mut Criterion,
    name: &str,
    rt: &tokio::runtime::Runtime,
    store: Arc<Instrumented<S>>,
) {
    let data: BTreeMap<Kind, Vec<Item>> = [
        (Kind::Pod, pods(10_000)),
        (Kind::Policy, policies(1_000)),
        (Kind::Service, services(1_000)),
    ]
    .into();
    let mut g = c.benchmark_group(format!("ksr-{name}"));
    g.sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(20));
    g.bench_function("initial-10k-pods-1k-policies-1k-services", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    clear(store.as_ref()).await;
                    let t = Instant::now();
                    let rs = initial(&store, &data).await;
                    total += t.elapsed();
                    drop(rs);
                }
                total
            })
        })
    });
    // Steady state: everything reflected, one pod changes per event.
    let mut rs = rt.block_on(async {
        clear(store.as_ref()).await;
        initial(&store, &data).await
    });
    let pod_r = rs
        .iter_mut()
        .find(|r| {
            r.desired()
                .keys()
                .next()
                .is_some_and(|k| k.starts_with("/vpg/v1/pod/"))
        })
        .unwrap();
    let mut flip = 0u32;
    let key = pods(1).pop().unwrap().unwrap().0;
    g.bench_function("event-to-store-write", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let before = store.counts().writes();
                let t = Instant::now();
                for _ in 0..iters {
                    flip += 1;
                    let it = Ok((key.clone(), vpg_ksr::model::encode(&flip)));
                    pod_r.handle(Change::Apply(it)).await;
                }
                let el = t.elapsed();
                assert_eq!(
                    store.counts().writes() - before,
                    iters,
                    "one write per event"
                );
                el
            })
        })
    });
    // Restart with no changes: a new reflector set lists the store and writes nothing.
    // Put back the record the events changed, so the restarts below see an unchanged cluster.
    rt.block_on(initial(&store, &data));
    let mut restart_writes = 0;
    g.bench_function("restart-no-change", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let before = store.counts().writes();
                    let t = Instant::now();
                    let _ = initial(&store, &data).await;
                    total += t.elapsed();
                    restart_writes = store.counts().writes() - before;
                }
                total
            })
        })
    });
    g.finish();
    println!("ksr-{name}: writes during the last restart with no changes: {restart_writes}");
    drop(rs);
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let embedded = Arc::new(Instrumented::new(
        EmbeddedStore::open(dir.path().join("bench.redb")).unwrap(),
    ));
    bench_store(c, "embedded", &rt, embedded);
    match start_etcd() {
        Some(etcd) => {
            let store = rt.block_on(async {
                loop {
                    if let Ok(s) = EtcdStore::connect(
                        std::slice::from_ref(&etcd.endpoint),
                        Duration::from_secs(5),
                    )
                    .await
                    {
                        if s.revision().await.is_ok() {
                            break s;
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
            bench_store(c, "etcd", &rt, Arc::new(Instrumented::new(store)));
        }
        None => {
            println!("ksr-etcd: skipped (no etcd binary; scripts/setup.sh installs etcd-server)")
        }
    }
}

criterion_group!(reflect, benches);
criterion_main!(reflect);
