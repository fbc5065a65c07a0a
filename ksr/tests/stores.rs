//! Reflector scenarios against a real etcd (started on loopback by the test) and against the
//! embedded store: restart with minimal writes, a failed write, store outage, data loss.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use common::{converge, namespace, pod, Cluster, Etcd};
use vpg_ksr::reflector::Backoff;
use vpg_ksr::run::{Reflectors, RunConfig};
use vpg_ksr::store::{EmbeddedStore, Instrumented, Store};
use vpg_ksr::Kind;

const KINDS: [Kind; 2] = [Kind::Namespace, Kind::Pod];

fn cfg() -> RunConfig {
    RunConfig {
        probe_interval: Duration::from_millis(100),
        backoff: Backoff {
            min: Duration::from_millis(20),
            max: Duration::from_millis(400),
        },
    }
}

fn start<S: Store>(
    store: S,
    cluster: &mut Cluster,
) -> (
    Reflectors<Instrumented<S>>,
    Arc<vpg_ksr::store::instrumented::OpCounts>,
) {
    let store = Arc::new(Instrumented::new(store));
    let counts = store.counts();
    let r = Reflectors::start(store, "test".into(), cluster.sources(&KINDS), cfg());
    (r, counts)
}

fn populate(c: &mut Cluster) {
    c.set_quietly(Kind::Namespace, namespace("a", "x"));
    c.set_quietly(Kind::Namespace, namespace("b", "y"));
    for i in 1..=5 {
        c.set_quietly(
            Kind::Pod,
            pod("a", &format!("p{i}"), &format!("10.1.1.{i}"), "web"),
        );
    }
    // Invalid: no IP yet. Counted, never written.
    c.set_quietly(
        Kind::Pod,
        Err((
            Some("/vpg/v1/pod/a/pending".into()),
            vpg_ksr::TranslateError::Missing("status.podIP"),
        )),
    );
}

/// Restart with no change writes nothing; restart after changes writes exactly the changes.
async fn restart_minimal<S: Store, F: Fn() -> S>(open: F) {
    let mut c = Cluster::new();
    populate(&mut c);
    let (r, counts) = start(open(), &mut c);
    r.wait_until_ready().await;
    converge(r.store(), &c.expected(), || r.in_sync(), "initial").await;
    assert_eq!(counts.writes(), 7);
    assert_eq!(
        r.stats(Kind::Pod).unwrap().skipped.load(Ordering::SeqCst),
        1
    );
    r.shutdown().await;

    let (r, counts) = start(open(), &mut c);
    r.wait_until_ready().await;
    converge(
        r.store(),
        &c.expected(),
        || r.in_sync(),
        "unchanged restart",
    )
    .await;
    assert_eq!(
        counts.writes(),
        0,
        "a restart with no changes writes nothing"
    );
    r.shutdown().await;

    // The cluster changed while the reflector was down.
    c.set_quietly(Kind::Pod, pod("a", "p6", "10.1.1.6", "web"));
    c.set_quietly(Kind::Pod, pod("a", "p1", "10.1.1.99", "web"));
    c.remove_quietly(Kind::Pod, "/vpg/v1/pod/a/p2");
    c.remove_quietly(Kind::Namespace, "/vpg/v1/namespace/b");
    let (r, counts) = start(open(), &mut c);
    r.wait_until_ready().await;
    converge(r.store(), &c.expected(), || r.in_sync(), "changed restart").await;
    assert_eq!(
        counts.puts.load(Ordering::SeqCst),
        2,
        "p6 added, p1 updated"
    );
    assert_eq!(
        counts.deletes.load(Ordering::SeqCst),
        2,
        "p2 and namespace b deleted"
    );
    let pods = r.stats(Kind::Pod).unwrap().snapshot(Kind::Pod);
    assert_eq!((pods.adds, pods.updates, pods.deletes), (1, 1, 1));
    r.shutdown().await;
}

/// A failed write puts that kind out of sync; its later events are held and the resync
/// converges; the other kind is untouched.
async fn failed_write<S: Store>(store: S) {
    let mut c = Cluster::new();
    populate(&mut c);
    let store = Arc::new(Instrumented::new(store));
    let counts = store.counts();
    let r = Reflectors::start(store.clone(), "test".into(), c.sources(&KINDS), cfg());
    converge(r.store(), &c.expected(), || r.in_sync(), "initial").await;
    let ns_before = r.stats(Kind::Namespace).unwrap().snapshot(Kind::Namespace);
    let writes_before = counts.writes();
    // The event's write and the first retry fail.
    store.fail_writes(0, 2);
    c.apply(Kind::Pod, pod("a", "p7", "10.1.1.7", "web"));
    c.apply(Kind::Pod, pod("a", "p3", "10.1.1.33", "web"));
    c.delete(Kind::Pod, "/vpg/v1/pod/a/p4");
    converge(
        r.store(),
        &c.expected(),
        || r.in_sync(),
        "after failed write",
    )
    .await;
    let pods = r.stats(Kind::Pod).unwrap().snapshot(Kind::Pod);
    assert!(pods.errors >= 1, "{pods:?}");
    assert_eq!(counts.failed.load(Ordering::SeqCst), 2);
    // Each change written once: p7 and p3 put, p4 deleted.
    assert_eq!(counts.writes() - writes_before, 3);
    let ns_after = r.stats(Kind::Namespace).unwrap().snapshot(Kind::Namespace);
    assert_eq!(ns_after.errors, ns_before.errors);
    assert_eq!(
        ns_after.adds + ns_after.updates + ns_after.deletes,
        ns_before.adds
    );
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_restart_reopens_file_with_minimal_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ksr.redb");
    restart_minimal(|| EmbeddedStore::open(&path).unwrap()).await;
    // The file holds the last state after the last run.
    let s = EmbeddedStore::open(&path).unwrap();
    assert_eq!(s.list("/vpg/v1/pod/").await.unwrap().items.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_failed_write_resyncs_that_kind() {
    let dir = tempfile::tempdir().unwrap();
    failed_write(EmbeddedStore::open(dir.path().join("ksr.redb")).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_recreated_file_is_fully_resynced() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ksr.redb");
    let mut c = Cluster::new();
    populate(&mut c);
    let (r, _) = start(EmbeddedStore::open(&path).unwrap(), &mut c);
    converge(r.store(), &c.expected(), || r.in_sync(), "first").await;
    r.shutdown().await;
    // The file is lost between runs: the next run writes everything again.
    std::fs::remove_file(&path).unwrap();
    let (r, counts) = start(EmbeddedStore::open(&path).unwrap(), &mut c);
    converge(r.store(), &c.expected(), || r.in_sync(), "recreated").await;
    assert_eq!(counts.writes(), 7);
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_restart_converges_with_minimal_writes() {
    let Some(etcd) = Etcd::start() else { return };
    let s = etcd.connect().await;
    restart_minimal(|| s.clone()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_failed_write_resyncs_that_kind() {
    let Some(etcd) = Etcd::start() else { return };
    failed_write(etcd.connect().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_during_changes_converges_after_restart() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let mut c = Cluster::new();
    populate(&mut c);
    let (r, counts) = start(etcd.connect().await, &mut c);
    converge(r.store(), &c.expected(), || r.in_sync(), "initial").await;
    etcd.stop();
    // Changes and a relist while etcd is down: writes fail, the kinds go out of sync.
    c.apply(Kind::Pod, pod("a", "p8", "10.1.1.8", "web"));
    c.delete(Kind::Pod, "/vpg/v1/pod/a/p1");
    c.remove_quietly(Kind::Pod, "/vpg/v1/pod/a/p5");
    c.relist(Kind::Pod);
    c.apply(Kind::Namespace, namespace("c", "z"));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while r.status().store_up || r.in_sync() {
        assert!(std::time::Instant::now() < deadline, "outage not noticed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let writes_during = counts.writes();
    etcd.restart();
    converge(r.store(), &c.expected(), || r.in_sync(), "after outage").await;
    let st = r.status();
    assert!(st.store_up);
    assert!(st.kinds.iter().any(|k| k.errors > 0));
    // Exactly the three changes reached the store (p8, namespace c, p1 + p5 deleted): 4 writes.
    assert_eq!(counts.writes() - writes_during, 4, "{}", st.render());
    r.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_wiped_data_triggers_full_resync() {
    let Some(mut etcd) = Etcd::start() else {
        return;
    };
    let mut c = Cluster::new();
    populate(&mut c);
    let (r, counts) = start(etcd.connect().await, &mut c);
    converge(r.store(), &c.expected(), || r.in_sync(), "initial").await;
    // Push the revision well above what a fresh etcd starts at.
    for i in 0..20 {
        c.apply(Kind::Pod, pod("a", "p1", &format!("10.1.2.{i}"), "web"));
    }
    converge(r.store(), &c.expected(), || r.in_sync(), "updates").await;
    let before = counts.writes();
    etcd.wipe();
    // Nothing happens in the cluster; the probe sees the revision go backwards.
    converge(r.store(), &c.expected(), || r.in_sync(), "after wipe").await;
    let st = r.status();
    assert!(st.store_resets >= 1, "{}", st.render());
    assert_eq!(counts.writes() - before, 7, "everything rewritten once");
    r.shutdown().await;
}

async fn next(w: &mut vpg_ksr::store::WatchStream) -> vpg_ksr::store::StoreEvent {
    use futures::StreamExt;
    tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_store_get_put_list_watch() {
    use futures::StreamExt;
    use vpg_ksr::store::{Op, StoreEvent};
    let Some(etcd) = Etcd::start() else { return };
    let s = etcd.connect().await;
    let r1 = s.put("/vpg/v1/pod/a/x", b"1").await.unwrap();
    let r2 = s
        .apply(vec![
            Op::Put("/vpg/v1/pod/a/y".into(), b"2".to_vec()),
            Op::Put("/vpg/v1/node/n".into(), b"3".to_vec()),
        ])
        .await
        .unwrap();
    assert_eq!(r2.revision, r1.revision + 1, "a batch is one revision");
    assert_eq!(r1.epoch, r2.epoch);
    assert_eq!(
        s.get("/vpg/v1/pod/a/y").await.unwrap().as_deref(),
        Some(&b"2"[..])
    );
    let l = s.list("/vpg/v1/pod/").await.unwrap();
    assert_eq!(l.items.len(), 2);
    assert_eq!(l.rev.revision, r2.revision);
    // Watch from the first revision: history first, then live changes, only under the prefix.
    let mut w = s.watch("/vpg/v1/pod/", r1.revision).await.unwrap();
    assert_eq!(
        next(&mut w).await,
        StoreEvent {
            revision: r1.revision,
            key: "/vpg/v1/pod/a/x".into(),
            value: Some(b"1".to_vec())
        }
    );
    assert_eq!(next(&mut w).await.key, "/vpg/v1/pod/a/y");
    let r3 = s.delete("/vpg/v1/pod/a/x").await.unwrap();
    assert_eq!(
        next(&mut w).await,
        StoreEvent {
            revision: r3.revision,
            key: "/vpg/v1/pod/a/x".into(),
            value: None
        }
    );
    // Compaction: a watch from before it is refused.
    let mut c = etcd_client::Client::connect([etcd.endpoint()], None)
        .await
        .unwrap();
    c.compact(r3.revision as i64, None).await.unwrap();
    let mut w = s.watch("/vpg/v1/pod/", r1.revision).await.unwrap();
    let err = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, vpg_ksr::StoreError::Compacted { .. }),
        "{err:?}"
    );
}
