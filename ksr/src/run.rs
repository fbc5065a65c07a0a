//! Runs one reflector per kind against one store, probes the store, and reports status.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::model::Kind;
use crate::reflector::{Backoff, KindReflector, KindStats, KindStatus};
use crate::source::Sources;
use crate::store::{Rev, RevisionMonitor, Store};

/// Timing of a reflector set.
#[derive(Debug, Clone, Copy)]
pub struct RunConfig {
    /// How often the store is probed (liveness and revision).
    pub probe_interval: Duration,
    /// Retry backoff of syncs.
    pub backoff: Backoff,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            probe_interval: Duration::from_secs(1),
            backoff: Backoff::default(),
        }
    }
}

/// What `vpg-ksr status` shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Status {
    /// The store's description.
    pub store: String,
    /// Whether the last probe of the store succeeded.
    pub store_up: bool,
    /// The last probe error.
    pub store_error: Option<String>,
    /// The store's revision and epoch as last seen.
    pub revision: Rev,
    /// How many times the store went backwards or changed identity.
    pub store_resets: u64,
    /// The source's description.
    pub source: String,
    /// Whether every kind has completed its first sync.
    pub ready: bool,
    /// Per-kind state.
    pub kinds: Vec<KindStatus>,
}

impl Status {
    /// The status as the text table `vpg-ksr status` prints.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let _ = writeln!(
            s,
            "store:  {} ({}) revision {} epoch {:x} resets {}",
            self.store,
            if self.store_up { "up" } else { "DOWN" },
            self.revision.revision,
            self.revision.epoch,
            self.store_resets
        );
        if let Some(e) = &self.store_error {
            let _ = writeln!(s, "        last error: {e}");
        }
        let _ = writeln!(s, "source: {}", self.source);
        let _ = writeln!(s, "ready:  {}", if self.ready { "yes" } else { "no" });
        let _ = writeln!(
            s,
            "{:<10} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6} {:>7}",
            "kind",
            "sync",
            "records",
            "adds",
            "updates",
            "deletes",
            "resyncs",
            "relists",
            "errors",
            "skip",
            ""
        );
        for k in &self.kinds {
            let _ = writeln!(
                s,
                "{:<10} {:>5} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7} {:>6}",
                k.kind.as_str(),
                if k.in_sync {
                    "yes"
                } else if k.ready {
                    "stale"
                } else {
                    "no"
                },
                k.records,
                k.adds,
                k.updates,
                k.deletes,
                k.resyncs,
                k.relists,
                k.errors,
                k.skipped
            );
        }
        for k in &self.kinds {
            for (what, e) in [
                ("store", &k.store_error),
                ("source", &k.source_error),
                ("skipped", &k.last_skipped),
            ] {
                if let Some(e) = e {
                    let _ = writeln!(s, "{} {what}: {e}", k.kind);
                }
            }
        }
        s
    }
}

#[derive(Debug, Default)]
struct StoreHealth {
    up: AtomicBool,
    error: Mutex<Option<String>>,
}

/// A running reflector set.
pub struct Reflectors<S> {
    store: Arc<S>,
    source: String,
    monitor: Arc<RevisionMonitor>,
    stats: BTreeMap<Kind, Arc<KindStats>>,
    ready: Vec<watch::Receiver<bool>>,
    health: Arc<StoreHealth>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl<S: Store> Reflectors<S> {
    /// Starts one reflector per source stream and the store probe.
    pub fn start(store: Arc<S>, source: String, sources: Sources, cfg: RunConfig) -> Reflectors<S> {
        let monitor = Arc::new(RevisionMonitor::default());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let health = Arc::new(StoreHealth::default());
        let mut stats = BTreeMap::new();
        let mut ready = Vec::new();
        let mut tasks = Vec::new();
        for (kind, changes) in sources {
            let st = Arc::new(KindStats::default());
            let (rtx, rrx) = watch::channel(false);
            let r = KindReflector::new(
                kind,
                store.clone(),
                monitor.clone(),
                st.clone(),
                rtx,
                cfg.backoff,
            );
            tasks.push(tokio::spawn(r.run(changes, shutdown_rx.clone())));
            stats.insert(kind, st);
            ready.push(rrx);
        }
        tasks.push(tokio::spawn(probe(
            store.clone(),
            monitor.clone(),
            health.clone(),
            cfg.probe_interval,
            shutdown_rx,
        )));
        Reflectors {
            store,
            source,
            monitor,
            stats,
            ready,
            health,
            shutdown,
            tasks,
        }
    }

    /// Waits until every kind has completed its first full sync (the agent must not render
    /// before that).
    pub async fn wait_until_ready(&self) {
        for r in &self.ready {
            let mut r = r.clone();
            // An error means the reflector ended; there is nothing more to wait for.
            let _ = r.wait_for(|ready| *ready).await;
        }
    }

    /// Whether every kind has completed its first full sync.
    pub fn is_ready(&self) -> bool {
        self.ready.iter().all(|r| *r.borrow())
    }

    /// Whether every kind is in sync right now.
    pub fn in_sync(&self) -> bool {
        self.stats
            .values()
            .all(|s| s.in_sync.load(Ordering::SeqCst))
    }

    /// The store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The revision monitor (store resets and generations).
    pub fn monitor(&self) -> &Arc<RevisionMonitor> {
        &self.monitor
    }

    /// One kind's live counters.
    pub fn stats(&self, kind: Kind) -> Option<&Arc<KindStats>> {
        self.stats.get(&kind)
    }

    /// Store writes made by all kinds.
    pub fn writes(&self) -> u64 {
        self.stats.values().map(|s| s.writes()).sum()
    }

    /// A status snapshot.
    pub fn status(&self) -> Status {
        Status {
            store: self.store.describe(),
            store_up: self.health.up.load(Ordering::Relaxed),
            store_error: self
                .health
                .error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            revision: self.monitor.last(),
            store_resets: self.monitor.resets(),
            source: self.source.clone(),
            ready: self.is_ready(),
            kinds: self.stats.iter().map(|(k, s)| s.snapshot(*k)).collect(),
        }
    }

    /// Tells every task to stop (without waiting).
    pub fn stop(&self) {
        self.shutdown.send_replace(true);
    }

    /// Stops every task and waits for them.
    pub async fn shutdown(self) {
        self.shutdown.send_replace(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

/// Probes the store: a failure marks it down; the first success after that is a reconnection,
/// after which every kind resyncs (writes may have been lost or half-applied meanwhile). The
/// probe's revision also reveals a store that went backwards while nothing was written.
async fn probe<S: Store>(
    store: Arc<S>,
    monitor: Arc<RevisionMonitor>,
    health: Arc<StoreHealth>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut was_down = false;
    loop {
        let floor = monitor.floor();
        match store.revision().await {
            Ok(rev) => {
                monitor.observe(floor, rev);
                if was_down {
                    tracing::info!("store reachable again; resyncing every kind");
                    monitor.bump();
                }
                was_down = false;
                health.up.store(true, Ordering::Relaxed);
                *health.error.lock().unwrap_or_else(|e| e.into_inner()) = None;
            }
            Err(e) => {
                if !was_down {
                    tracing::warn!("store unreachable: {e}");
                }
                was_down = true;
                health.up.store(false, Ordering::Relaxed);
                *health.error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.to_string());
            }
        }
        tokio::select! {
            _ = shutdown.changed() => return,
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
