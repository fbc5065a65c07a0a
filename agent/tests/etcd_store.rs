//! The agent's store follower against a real etcd (on loopback ports, in a temporary
//! directory): the first list, a watched change, an outage (etcd killed) during which the last
//! copy stays in force while the cluster changes, the resync after etcd returns, and a wiped
//! etcd (revisions starting over) replacing the copy whole. Skipped,
//! with the reason printed, when etcd is not installed (scripts/setup.sh installs it).

#[path = "../../ksr/tests/common/mod.rs"]
mod common;

use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use vpg_agent::run::{follow_store, Shared, StoreCopy};
use vpg_ksr::store::Store;

async fn until(shared: &Shared, what: &str, f: impl Fn(&StoreCopy) -> bool) {
    let t0 = Instant::now();
    loop {
        if f(&shared.store.lock().unwrap()) {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}: {:?}",
            shared.store.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_outage_keeps_the_last_copy_and_resyncs_on_return() {
    let Some(mut etcd) = common::Etcd::start() else {
        return;
    };
    let writer = etcd.connect().await;
    writer.put("/vpg/v1/node/a", b"1").await.unwrap();
    let store = Arc::new(etcd.connect().await);
    let shared = Arc::new(Shared::default());
    let (wake_tx, _wake_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = watch::channel(false);
    let task = tokio::spawn(follow_store(
        store,
        None,
        shared.clone(),
        wake_tx,
        Duration::from_millis(200),
        Duration::from_millis(100),
        stop_rx,
    ));
    until(&shared, "the first list", |c| {
        c.status.ready && c.items.len() == 1
    })
    .await;
    writer.put("/vpg/v1/node/b", b"2").await.unwrap();
    until(&shared, "the watched change", |c| c.items.len() == 2).await;
    etcd.stop();
    until(&shared, "the outage", |c| !c.status.up).await;
    assert_eq!(
        shared.store.lock().unwrap().items.len(),
        2,
        "the last copy stays"
    );
    etcd.restart();
    let writer = etcd.connect().await;
    writer.put("/vpg/v1/node/c", b"3").await.unwrap();
    writer.delete("/vpg/v1/node/a").await.unwrap();
    until(&shared, "the resync after the outage", |c| {
        c.status.up
            && c.items
                .keys()
                .map(String::as_str)
                .eq(["/vpg/v1/node/b", "/vpg/v1/node/c"])
    })
    .await;
    // etcd's data wiped (a new cluster, revisions start over): the copy is replaced whole.
    etcd.wipe();
    let writer = etcd.connect().await;
    writer.put("/vpg/v1/node/z", b"9").await.unwrap();
    until(&shared, "the resync after the wipe", |c| {
        c.status.up && c.items.keys().map(String::as_str).eq(["/vpg/v1/node/z"])
    })
    .await;
    assert!(shared.store.lock().unwrap().status.lists >= 3);
    stop_tx.send_replace(true);
    task.await.unwrap();
}
