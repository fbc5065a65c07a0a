//! The running agent: follows the store and the CNI pod records, and resyncs vpgd.
//!
//! ```text
//!  manifests ─► reflector (in-process, embedded store only)
//!  store ─list+watch─► store task (async) ─┐ items in memory, wake
//!  pod records ─inotify, poll─────────────┤
//!  vpgd ─probe────────────────────────────┴─► sync thread: debounce → compute → dump → diff → 1 transaction
//!  status socket ◄── a request line: status (counters, state, objects and why), policy,
//!                    pod NS/NAME, node (views of the last applied state, built when asked)
//! ```
//!
//! - **Store.** One list of `/vpg/v1/`, then a watch from the next revision; every event
//!   updates the in-memory copy and wakes the sync thread. A failed list or a broken watch marks
//!   the store down and lists again with backoff: meanwhile the last copy, and so the last
//!   applied state, stays in force. Nothing is applied before the first full list (an empty
//!   copy would delete every policy). With the embedded store and a manifest directory, the
//!   reflector runs here and the first list waits until it has reflected the manifests once,
//!   so changes made while the agent was down are in the first desired state.
//! - **Pod records** are watched (inotify: a record renamed into place, rewritten or removed
//!   wakes the sync thread at once) and polled as a safety net (a directory listing per
//!   `timing.pod_poll_ms`); the records are reread only when names, sizes or times change.
//! - **Debounce.** A change starts a quiet period (`timing.debounce_ms`); changes meanwhile join
//!   the same resync.
//! - **vpgd.** Probed every `timing.probe_ms`; a lost connection (vpgd restarted or stopped) is
//!   retried with backoff, and the first pass after reconnecting replays the whole state
//!   (vpgd's dumps come back empty after a restart, so the diff is everything).
//! - **Periodic resync** every `timing.resync_s` repairs changes made behind the agent's back
//!   and retries pods left out.
//! - **Failures** back off from 100 ms doubling to `timing.max_backoff_ms`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use vpg_ksr::model::KEY_ROOT;
use vpg_ksr::run::{Reflectors, RunConfig};
use vpg_ksr::store::{AnyStore, EmbeddedStore, EtcdStore, Store};

use crate::cluster::ClusterState;
use crate::config::{NodeConfig, StoreConfig};
use crate::podrec::{self, LocalPod};
use crate::status::{Status, StoreStatus, SyncState};
use crate::sync::Syncer;
use crate::view::{self, Applied};
use vpg_api::agent::{AgentError, AgentRequest};

/// What wakes the sync thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The store's copy changed.
    Store,
    /// A pod record was written or removed: look at the records now.
    Pods,
    /// Stop.
    Shutdown,
}

/// The store's records as last seen.
#[derive(Debug, Default)]
pub struct StoreCopy {
    /// Key → value under `/vpg/v1/`.
    pub items: BTreeMap<String, Vec<u8>>,
    /// Its state.
    pub status: StoreStatus,
}

/// State shared by the tasks, the sync thread and the status socket.
#[derive(Debug, Default)]
pub struct Shared {
    /// The store copy.
    pub store: Mutex<StoreCopy>,
    /// The status.
    pub status: Mutex<Status>,
    /// What the last successful pass applied (the policy and node views are built from it
    /// when asked).
    pub applied: Mutex<Option<Arc<Applied>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the agent until `shutdown` completes.
pub async fn run(cfg: NodeConfig, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
    let shared = Arc::new(Shared::default());
    {
        let mut st = lock(&shared.status);
        st.node = cfg.node.clone();
        st.vpgd_socket = cfg.vpgd_socket.display().to_string();
    }
    let (wake_tx, wake_rx) = mpsc::channel::<Wake>();
    let (stop_tx, stop_rx) = watch::channel(false);

    let listener = bind_status(&cfg.status_socket)?;
    let status_task = tokio::spawn(serve_status(
        listener,
        shared.clone(),
        Arc::new(cfg.clone()),
        stop_rx.clone(),
    ));

    // The store, and the reflector when the agent runs it.
    let mut reflectors = None;
    let store_task = match &cfg.store {
        StoreConfig::Embedded {
            path,
            manifests,
            scan_interval,
        } => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let store = Arc::new(AnyStore::Embedded(
                EmbeddedStore::open(path).with_context(|| format!("{}", path.display()))?,
            ));
            lock(&shared.store).status.describe = store.describe();
            if let Some(dir) = manifests {
                let sources = vpg_ksr::source::manifests(dir.clone(), *scan_interval);
                reflectors = Some(Arc::new(Reflectors::start(
                    store.clone(),
                    format!("manifests {}", dir.display()),
                    sources,
                    RunConfig::default(),
                )));
            }
            tokio::spawn(follow_store(
                store,
                reflectors.clone(),
                shared.clone(),
                wake_tx.clone(),
                cfg.timing.max_backoff,
                cfg.timing.probe,
                stop_rx.clone(),
            ))
        }
        StoreConfig::Etcd { endpoints, timeout } => {
            lock(&shared.store).status.describe = format!("etcd {}", endpoints.join(","));
            let (endpoints, timeout) = (endpoints.clone(), *timeout);
            let (shared2, wake2, stop2, max, probe) = (
                shared.clone(),
                wake_tx.clone(),
                stop_rx.clone(),
                cfg.timing.max_backoff,
                cfg.timing.probe,
            );
            tokio::spawn(async move {
                // An unreachable etcd at start is retried, never fatal.
                let mut delay = Duration::from_millis(100);
                let store = loop {
                    match EtcdStore::connect(&endpoints, timeout).await {
                        Ok(s) => break s,
                        Err(e) => {
                            lock(&shared2.store).status.last_error = Some(e.to_string());
                            tracing::warn!(
                                "etcd {}: {e}; retrying in {delay:?}",
                                endpoints.join(",")
                            );
                            if sleep_or_stop(delay, &stop2).await {
                                return;
                            }
                            delay = (delay * 2).min(max);
                        }
                    }
                };
                let store = Arc::new(AnyStore::Etcd(Box::new(store)));
                follow_store(store, None, shared2, wake2, max, probe, stop2).await
            })
        }
    };

    if let Err(e) = crate::podwatch::spawn(cfg.pods_dir(), wake_tx.clone()) {
        tracing::warn!("pod records: cannot start the watcher ({e}); polling only");
    }
    let sync_shared = shared.clone();
    let sync_cfg = cfg.clone();
    let sync_thread = std::thread::Builder::new()
        .name("vpg-agent-sync".into())
        .spawn(move || sync_loop(sync_cfg, sync_shared, wake_rx))
        .context("starting the sync thread")?;

    shutdown.await;
    tracing::info!("shutting down");
    let _ = wake_tx.send(Wake::Shutdown);
    stop_tx.send_replace(true);
    let _ = tokio::task::spawn_blocking(move || sync_thread.join()).await;
    let _ = store_task.await;
    if let Some(r) = reflectors {
        r.stop();
    }
    let _ = status_task.await;
    let _ = std::fs::remove_file(&cfg.status_socket);
    Ok(())
}

/// Sleeps `d`; true when stopped meanwhile.
async fn sleep_or_stop(d: Duration, stop: &watch::Receiver<bool>) -> bool {
    let mut stop = stop.clone();
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = stop.changed() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Lists the store, then follows its watch; lists again after any failure. Runs until `stop`
/// turns true; `reflectors` (the in-process reflector) is waited for before the first list.
pub async fn follow_store<S: Store>(
    store: Arc<S>,
    reflectors: Option<Arc<Reflectors<S>>>,
    shared: Arc<Shared>,
    wake: mpsc::Sender<Wake>,
    max_backoff: Duration,
    probe: Duration,
    stop: watch::Receiver<bool>,
) {
    // The reflector reflects the manifests once before the first list: changes made while
    // the agent was down are then part of the first desired state.
    if let Some(r) = reflectors {
        let mut s = stop.clone();
        tokio::select! {
            _ = r.wait_until_ready() => {}
            _ = s.changed() => return,
        }
    }
    let mut delay = Duration::from_millis(100);
    loop {
        let listed = store.list(KEY_ROOT).await;
        let listing = match listed {
            Ok(l) => l,
            Err(e) => {
                fail(&shared, &e.to_string());
                if sleep_or_stop(delay, &stop).await {
                    return;
                }
                delay = (delay * 2).min(max_backoff);
                continue;
            }
        };
        let rev = listing.rev.revision;
        {
            let mut c = lock(&shared.store);
            let changed = c.items != listing.items || !c.status.ready;
            c.items = listing.items;
            let records = c.items.len();
            let s = &mut c.status;
            s.up = true;
            s.ready = true;
            s.revision = rev;
            s.lists += 1;
            s.last_error = None;
            s.records = records;
            if changed {
                let _ = wake.send(Wake::Store);
            }
        }
        let mut events = match store.watch(KEY_ROOT, rev + 1).await {
            Ok(w) => w,
            Err(e) => {
                fail(&shared, &e.to_string());
                if sleep_or_stop(delay, &stop).await {
                    return;
                }
                delay = (delay * 2).min(max_backoff);
                continue;
            }
        };
        delay = Duration::from_millis(100);
        let mut s = stop.clone();
        // A watch may stay silent through an outage (a broken connection is not always
        // reported on the stream): a probe of the revision notices it, and a store that went
        // backwards or changed identity (etcd's data wiped) is listed again whole.
        let mut tick = tokio::time::interval(probe);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = listing.rev;
        loop {
            let ev = tokio::select! {
                ev = events.next() => ev,
                _ = tick.tick() => {
                    match store.revision().await {
                        Ok(r) if r.epoch != last.epoch || r.revision < last.revision => {
                            fail(&shared, "the store went backwards or was replaced");
                            break;
                        }
                        Ok(r) => {
                            last = r;
                            continue;
                        }
                        Err(e) => {
                            fail(&shared, &e.to_string());
                            break;
                        }
                    }
                }
                _ = s.changed() => return,
            };
            match ev {
                Some(Ok(ev)) => {
                    last.revision = last.revision.max(ev.revision);
                    let mut c = lock(&shared.store);
                    match ev.value {
                        Some(v) => c.items.insert(ev.key, v),
                        None => c.items.remove(&ev.key),
                    };
                    c.status.revision = ev.revision;
                    c.status.records = c.items.len();
                    let _ = wake.send(Wake::Store);
                }
                Some(Err(e)) => {
                    fail(&shared, &e.to_string());
                    break;
                }
                None => {
                    fail(&shared, "watch ended");
                    break;
                }
            }
        }
        if sleep_or_stop(delay, &stop).await {
            return;
        }
    }
}

fn fail(shared: &Shared, e: &str) {
    let mut c = lock(&shared.store);
    if c.status.up || c.status.last_error.as_deref() != Some(e) {
        tracing::warn!("store: {e}; keeping the last state and retrying");
    }
    c.status.up = false;
    c.status.last_error = Some(e.to_string());
}

/// The sync thread: waits for changes, debounces, resyncs, retries.
pub fn sync_loop(cfg: NodeConfig, shared: Arc<Shared>, wake: mpsc::Receiver<Wake>) {
    let t = cfg.timing;
    let pods_dir = cfg.pods_dir();
    let mut syncer = Syncer::new(cfg);
    let mut pods: Vec<LocalPod> = Vec::new();
    let mut pods_sig = None;
    let now = Instant::now();
    // Start dirty: the first pass happens as soon as the store is ready.
    let mut dirty: Option<Instant> = Some(now);
    let mut retry_at: Option<Instant> = None;
    let mut backoff = Duration::from_millis(100);
    let mut next_poll = now;
    let mut next_probe = now + t.probe;
    let mut next_full = now + t.resync;
    loop {
        let now = Instant::now();
        let mut deadline = next_poll.min(next_probe).min(next_full);
        if let Some(d) = dirty {
            deadline = deadline.min(d + t.debounce);
        }
        if let Some(r) = retry_at {
            deadline = deadline.min(r);
        }
        if let Some(w) = syncer.esp_wake() {
            deadline = deadline.min(w);
        }
        let mut stop = false;
        match wake.recv_timeout(deadline.saturating_duration_since(now)) {
            Ok(Wake::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => stop = true,
            Ok(Wake::Store) => {
                dirty.get_or_insert(Instant::now());
            }
            Ok(Wake::Pods) => next_poll = Instant::now(),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        while let Ok(w) = wake.try_recv() {
            match w {
                Wake::Shutdown => stop = true,
                Wake::Store => {
                    dirty.get_or_insert(Instant::now());
                }
                Wake::Pods => next_poll = Instant::now(),
            }
        }
        if stop {
            return;
        }
        let now = Instant::now();
        if now >= next_poll {
            next_poll = now + t.pod_poll;
            match podrec::signature(&pods_dir) {
                Ok(sig) if Some(&sig) != pods_sig.as_ref() => match podrec::scan(&pods_dir) {
                    Ok(scan) => {
                        for (f, why) in &scan.errors {
                            tracing::warn!("pod record {f}: {why}");
                        }
                        pods = scan.pods;
                        pods_sig = Some(sig);
                        // Changed records may fix what made vpgd refuse a pod.
                        syncer.excluded.clear();
                        dirty.get_or_insert(now);
                    }
                    Err(e) => tracing::warn!("{}: {e}", pods_dir.display()),
                },
                Ok(_) => {}
                Err(e) => tracing::warn!("{}: {e}", pods_dir.display()),
            }
        }
        if now >= next_probe {
            next_probe = now + t.probe;
            if syncer.connected() && !syncer.probe() {
                tracing::warn!("lost vpgd; reconnecting and replaying the configuration");
                let mut st = lock(&shared.status);
                st.vpgd_connected = false;
                st.state = SyncState::VpgdDown;
                drop(st);
                // No debounce: the data plane is missing its configuration.
                dirty = Some(now - t.debounce);
                retry_at = None;
            }
        }
        let mut due = false;
        if now >= next_full {
            next_full = now + t.resync;
            syncer.excluded.clear();
            due = true;
        }
        due |= dirty.is_some_and(|d| now >= d + t.debounce);
        due |= retry_at.is_some_and(|r| now >= r);
        // The encryption's timers: a rotation's outbound switch, a retired SA's expiry.
        due |= syncer.esp_wake().is_some_and(|w| now >= w);
        if !due {
            continue;
        }
        let (items, ready) = {
            let c = lock(&shared.store);
            let st = &mut lock(&shared.status);
            st.store = c.status.clone();
            (c.status.ready.then(|| c.items.clone()), c.status.ready)
        };
        let Some(items) = items.filter(|_| ready) else {
            // The first list wakes the thread again; until then there is nothing to do.
            lock(&shared.status).state = SyncState::WaitingForStore;
            dirty = None;
            retry_at = None;
            continue;
        };
        let (cluster, errors) = ClusterState::decode(&items);
        for e in errors {
            tracing::warn!("store record skipped: {e}");
        }
        dirty = None;
        match syncer.pass(&cluster, &pods, &shared.status) {
            Ok(_) => {
                lock(&shared.applied).clone_from(&syncer.applied);
                retry_at = None;
                backoff = Duration::from_millis(100);
            }
            Err(e) => {
                tracing::warn!("resync failed: {e}; retrying in {backoff:?}");
                let mut st = lock(&shared.status);
                st.failures += 1;
                st.last_error = Some(e.to_string());
                st.state = match e {
                    crate::vpgd::VpgdError::Unreachable(_) => SyncState::VpgdDown,
                    _ => SyncState::Refused,
                };
                st.vpgd_connected = syncer.connected();
                retry_at = Some(Instant::now() + backoff);
                backoff = (backoff * 2).min(t.max_backoff);
            }
        }
    }
}

/// Binds the status socket, replacing a stale one (nothing listening) but never a live one.
fn bind_status(path: &Path) -> anyhow::Result<tokio::net::UnixListener> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            anyhow::bail!(
                "{}: another vpg-agent is running (its status socket answers)",
                path.display()
            );
        }
        std::fs::remove_file(path).with_context(|| format!("removing stale {}", path.display()))?;
    }
    tokio::net::UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))
}

/// How long the agent waits for a request line. A client that sends none (the protocol before
/// request lines) gets the status after this wait.
pub const REQUEST_WAIT: Duration = Duration::from_millis(200);

/// Answers every connection: one request line, one JSON document, then close.
async fn serve_status(
    listener: tokio::net::UnixListener,
    shared: Arc<Shared>,
    cfg: Arc<NodeConfig>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let conn = tokio::select! {
            c = listener.accept() => c,
            _ = stop.changed() => return,
        };
        let Ok((s, _)) = conn else { continue };
        let (shared, cfg) = (shared.clone(), cfg.clone());
        tokio::spawn(async move {
            let (rd, mut wr) = s.into_split();
            // A bounded line: a request is a few words.
            let mut rd = tokio::io::BufReader::new(rd.take(4096));
            let mut line = String::new();
            let req = match tokio::time::timeout(REQUEST_WAIT, rd.read_line(&mut line)).await {
                Ok(Ok(_)) => AgentRequest::parse(&line),
                Ok(Err(e)) => Err(format!("reading the request: {e}")),
                Err(_) => Ok(AgentRequest::Status),
            };
            // The views render the node's tables again: off the runtime's threads.
            let body = tokio::task::spawn_blocking(move || respond(&shared, &cfg, req))
                .await
                .unwrap_or_default();
            let _ = wr.write_all(&body).await;
            let _ = wr.shutdown().await;
        });
    }
}

/// The answer to one request, as the status socket sends it.
pub fn respond(shared: &Shared, cfg: &NodeConfig, req: Result<AgentRequest, String>) -> Vec<u8> {
    let err = |error: String| serde_json::to_vec(&AgentError { error }).unwrap_or_default();
    let req = match req {
        Ok(r) => r,
        Err(e) => return err(e),
    };
    let applied = || {
        lock(&shared.applied).clone().ok_or_else(|| {
            let state = lock(&shared.status).state;
            err(format!(
                "node {}: nothing applied yet (state {})",
                cfg.node,
                state.as_str()
            ))
        })
    };
    let body = match req {
        AgentRequest::Status => {
            let mut st = lock(&shared.status);
            st.store = lock(&shared.store).status.clone();
            serde_json::to_vec(&*st)
        }
        AgentRequest::Policy => match applied() {
            Ok(a) => serde_json::to_vec(&view::policy_view(cfg, &a)),
            Err(e) => return e,
        },
        AgentRequest::Pod(key) => match applied().map(|a| view::pod_view(cfg, &a, &key)) {
            Ok(Ok(v)) => serde_json::to_vec(&v),
            Ok(Err(e)) => return err(e),
            Err(e) => return e,
        },
        AgentRequest::Node => match applied() {
            Ok(a) => {
                let (state, excluded) = {
                    let st = lock(&shared.status);
                    (st.state, st.excluded.clone())
                };
                serde_json::to_vec(&view::node_view(cfg, &a, state.as_str(), &excluded))
            }
            Err(e) => return e,
        },
    };
    body.unwrap_or_else(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use vpg_ksr::store::{Listing, Op, Rev, StoreError, WatchStream};

    /// A store that can be switched off: while down, lists and watches fail and open watches
    /// end, as an etcd outage looks to a client.
    struct Flaky {
        inner: EmbeddedStore,
        down: Arc<AtomicBool>,
        gone: watch::Sender<bool>,
    }

    impl Flaky {
        fn check(&self) -> Result<(), StoreError> {
            if self.down.load(Ordering::SeqCst) {
                Err(StoreError::Unavailable("switched off".into()))
            } else {
                Ok(())
            }
        }
    }

    impl Store for Flaky {
        fn describe(&self) -> String {
            "flaky".into()
        }
        async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            self.check()?;
            self.inner.get(key).await
        }
        async fn apply(&self, ops: Vec<Op>) -> Result<Rev, StoreError> {
            // Writes go through: the test changes the cluster while the agent cannot see it.
            self.inner.apply(ops).await
        }
        async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
            self.check()?;
            self.inner.list(prefix).await
        }
        async fn watch(&self, prefix: &str, from: u64) -> Result<WatchStream, StoreError> {
            self.check()?;
            let inner = self.inner.watch(prefix, from).await?;
            let gone = self.gone.subscribe();
            let s = futures::stream::unfold((inner, false), move |(mut w, ended)| {
                let mut gone = gone.clone();
                async move {
                    if ended {
                        return None;
                    }
                    tokio::select! {
                        ev = w.next() => ev.map(|e| (e, (w, false))),
                        _ = gone.wait_for(|g| *g) => Some((Err(StoreError::Unavailable("lost".into())), (w, true))),
                    }
                }
            });
            Ok(Box::pin(s))
        }
        async fn revision(&self) -> Result<Rev, StoreError> {
            self.check()?;
            self.inner.revision().await
        }
        fn max_batch(&self) -> usize {
            self.inner.max_batch()
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn status_socket_answers_request_lines() {
        use std::io::{Read, Write};
        use vpg_api::agent::{query, NodeView, PodPolicyView, PolicyView, QueryError};

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.sock");
        let cfg = crate::desired::tests::cfg();
        let shared = Arc::new(Shared::default());
        lock(&shared.status).node = "n1".into();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(serve_status(
            bind_status(&path).unwrap(),
            shared.clone(),
            Arc::new(cfg),
            stop_rx,
        ));
        let p = path.clone();
        let sh = shared.clone();
        tokio::task::spawn_blocking(move || {
            // Nothing applied yet: the views say so; the status answers.
            let e = query::<PolicyView>(&p, &AgentRequest::Policy).unwrap_err();
            assert!(
                e.to_string()
                    .contains("node n1: nothing applied yet (state starting)"),
                "{e}"
            );
            assert_eq!(crate::status::query(&p).unwrap().node, "n1");
            let (cluster, pods) = crate::view::tests::with_policies();
            *lock(&sh.applied) = Some(Arc::new(crate::view::tests::applied(cluster, pods)));

            let v: PolicyView = query(&p, &AgentRequest::Policy).unwrap();
            assert_eq!((v.node.as_str(), v.tables.len()), ("n1", 3));
            let v: PodPolicyView = query(&p, &AgentRequest::Pod("default/a".into())).unwrap();
            assert_eq!(v.interface.as_deref(), Some("vpg000000000002"));
            match query::<PodPolicyView>(&p, &AgentRequest::Pod("default/zz".into())) {
                Err(QueryError::Agent(e)) => assert!(e.starts_with("no pod default/zz"), "{e}"),
                r => panic!("{r:?}"),
            }
            let v: NodeView = query(&p, &AgentRequest::Node).unwrap();
            assert_eq!((v.state.as_str(), v.pods.len()), ("starting", 3));

            let raw = |send: &[u8]| {
                let mut c = std::os::unix::net::UnixStream::connect(&p).unwrap();
                c.write_all(send).unwrap();
                let mut body = String::new();
                c.read_to_string(&mut body).unwrap();
                body
            };
            assert!(raw(b"tables\n").contains("unknown request"));
            // A client of the protocol before request lines writes nothing: after the wait,
            // the status.
            let t0 = Instant::now();
            let body = raw(b"");
            assert!(body.contains("\"node\":\"n1\""), "{body}");
            assert!(t0.elapsed() >= REQUEST_WAIT);
        })
        .await
        .unwrap();
        stop_tx.send_replace(true);
        task.await.unwrap();
    }

    async fn until(shared: &Shared, what: &str, f: impl Fn(&StoreCopy) -> bool) {
        let t0 = Instant::now();
        while !f(&lock(&shared.store)) {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_outage_keeps_the_last_copy_and_resyncs_on_return() {
        let dir = tempfile::tempdir().unwrap();
        let (gone, _) = watch::channel(false);
        let down = Arc::new(AtomicBool::new(false));
        let store = Arc::new(Flaky {
            inner: EmbeddedStore::open(dir.path().join("s.redb")).unwrap(),
            down: down.clone(),
            gone,
        });
        store.put("/vpg/v1/node/a", b"1").await.unwrap();
        let shared = Arc::new(Shared::default());
        let (wake_tx, wake_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(follow_store(
            store.clone(),
            None,
            shared.clone(),
            wake_tx,
            Duration::from_millis(50),
            Duration::from_millis(50),
            stop_rx,
        ));
        until(&shared, "the first list", |c| {
            c.status.ready && c.items.len() == 1
        })
        .await;
        assert_eq!(
            wake_rx.recv_timeout(Duration::from_secs(1)),
            Ok(Wake::Store)
        );
        // A change while up arrives through the watch.
        store.put("/vpg/v1/node/b", b"2").await.unwrap();
        until(&shared, "the watched change", |c| c.items.len() == 2).await;
        // Outage: the copy stays as it was, the store shows down.
        down.store(true, Ordering::SeqCst);
        store.gone.send_replace(true);
        until(&shared, "the outage", |c| !c.status.up).await;
        store.put("/vpg/v1/node/c", b"3").await.unwrap();
        store.delete("/vpg/v1/node/a").await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        {
            let c = lock(&shared.store);
            assert_eq!(c.items.len(), 2, "the last copy stays in force");
            assert!(c.status.ready && c.status.last_error.is_some());
        }
        // Return: a full list brings in what changed meanwhile.
        store.gone.send_replace(false);
        down.store(false, Ordering::SeqCst);
        until(&shared, "the resync", |c| {
            c.status.up
                && c.items
                    .keys()
                    .map(String::as_str)
                    .eq(["/vpg/v1/node/b", "/vpg/v1/node/c"])
        })
        .await;
        assert!(lock(&shared.store).status.lists >= 2);
        stop_tx.send_replace(true);
        task.await.unwrap();
    }
}
