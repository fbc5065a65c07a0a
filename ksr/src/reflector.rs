//! One reflector per kind: it keeps the store's records under the kind's prefix an exact,
//! minimal mirror of the source's objects.
//!
//! State: `desired` (what the source says, translated), `written` (what the store holds under
//! our prefix, as far as we know) and whether the two are known to agree (`in_sync`).
//!
//! - The source's `Init`/`InitApply`/`InitDone` build a fresh `desired` map that replaces the
//!   old one at once (a 410 Gone relist included), the way kube-runtime's `Writer` swaps its
//!   buffer; the sync that follows deletes what vanished meanwhile.
//! - While in sync, each `Apply`/`Delete` writes only if the record's bytes differ from
//!   `written`, so nothing is written twice.
//! - While out of sync (before the first sync, after a failed write, after the store
//!   reconnected or went backwards) events only update `desired`; they are held back and the
//!   next sync writes them.
//! - A sync is mark and sweep: list the store under the prefix (or, when the store is known to
//!   be intact, use `written`), put what differs, delete what is not desired, in batches.
//!   Failures are retried with exponential backoff.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::kinds::{item, Item, Reflect};
use crate::model::{Kind, TranslateError};
use crate::store::{Observation, Op, RevisionMonitor, Store, StoreError};

/// What a source tells a reflector.
#[derive(Debug, Clone)]
pub enum Change {
    /// A full list starts.
    Init,
    /// One object of the full list.
    InitApply(Item),
    /// The full list is complete: replace everything with it.
    InitDone,
    /// An object was added or modified.
    Apply(Item),
    /// An object was deleted (its key, or why it has none).
    Delete(Result<String, TranslateError>),
    /// The source failed (it retries by itself); counted and reported.
    SourceError(String),
}

impl Change {
    /// Converts a kube-runtime watcher event.
    pub fn from_watcher<K: Reflect>(
        ev: Result<kube::runtime::watcher::Event<K>, kube::runtime::watcher::Error>,
    ) -> Change {
        use kube::runtime::watcher::Event;
        match ev {
            Ok(Event::Init) => Change::Init,
            Ok(Event::InitApply(o)) => Change::InitApply(item(&o)),
            Ok(Event::InitDone) => Change::InitDone,
            Ok(Event::Apply(o)) => Change::Apply(item(&o)),
            Ok(Event::Delete(o)) => {
                Change::Delete(crate::kinds::key_of(K::KIND, kube::Resource::meta(&o)))
            }
            Err(e) => Change::SourceError(e.to_string()),
        }
    }
}

/// Per-kind counters and state, shared with status readers.
#[derive(Debug, Default)]
pub struct KindStats {
    /// Records created in the store.
    pub adds: AtomicU64,
    /// Records rewritten with a new value.
    pub updates: AtomicU64,
    /// Records removed.
    pub deletes: AtomicU64,
    /// Syncs completed (mark and sweep passes).
    pub resyncs: AtomicU64,
    /// Full lists received from the source (start and every 410 Gone).
    pub relists: AtomicU64,
    /// Failed store writes or lists and source errors.
    pub errors: AtomicU64,
    /// Objects skipped as invalid.
    pub skipped: AtomicU64,
    /// Records currently desired.
    pub records: AtomicU64,
    /// Whether the store is known to match the source.
    pub in_sync: AtomicBool,
    /// Whether the first full sync has completed.
    pub ready: AtomicBool,
    /// The last store error, cleared by a successful sync.
    pub store_error: Mutex<Option<String>>,
    /// The last source error, cleared by the next full list.
    pub source_error: Mutex<Option<String>>,
    /// The last skipped object and why.
    pub last_skipped: Mutex<Option<String>>,
}

/// A snapshot of one kind's [`KindStats`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KindStatus {
    /// The kind.
    pub kind: Kind,
    /// Whether the first full sync has completed.
    pub ready: bool,
    /// Whether the store is known to match the source.
    pub in_sync: bool,
    /// Records currently desired.
    pub records: u64,
    /// Records created.
    pub adds: u64,
    /// Records rewritten.
    pub updates: u64,
    /// Records removed.
    pub deletes: u64,
    /// Syncs completed.
    pub resyncs: u64,
    /// Full lists from the source.
    pub relists: u64,
    /// Errors.
    pub errors: u64,
    /// Invalid objects skipped.
    pub skipped: u64,
    /// The last store error, if not yet recovered.
    pub store_error: Option<String>,
    /// The last source error, if not yet recovered.
    pub source_error: Option<String>,
    /// The last skipped object and why.
    pub last_skipped: Option<String>,
}

fn lock<T: Clone>(m: &Mutex<T>) -> T {
    m.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn set<T>(m: &Mutex<T>, v: T) {
    *m.lock().unwrap_or_else(|e| e.into_inner()) = v;
}

impl KindStats {
    /// A consistent-enough snapshot (each counter is read once).
    pub fn snapshot(&self, kind: Kind) -> KindStatus {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        KindStatus {
            kind,
            ready: self.ready.load(Ordering::Relaxed),
            in_sync: self.in_sync.load(Ordering::Relaxed),
            records: l(&self.records),
            adds: l(&self.adds),
            updates: l(&self.updates),
            deletes: l(&self.deletes),
            resyncs: l(&self.resyncs),
            relists: l(&self.relists),
            errors: l(&self.errors),
            skipped: l(&self.skipped),
            store_error: lock(&self.store_error),
            source_error: lock(&self.source_error),
            last_skipped: lock(&self.last_skipped),
        }
    }

    /// Store writes this kind has made.
    pub fn writes(&self) -> u64 {
        self.adds.load(Ordering::Relaxed)
            + self.updates.load(Ordering::Relaxed)
            + self.deletes.load(Ordering::Relaxed)
    }
}

/// Retry timing of a reflector.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First retry delay.
    pub min: Duration,
    /// Longest retry delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            min: Duration::from_millis(100),
            max: Duration::from_secs(10),
        }
    }
}

/// The reflector of one kind.
pub struct KindReflector<S> {
    kind: Kind,
    prefix: String,
    store: Arc<S>,
    monitor: Arc<RevisionMonitor>,
    stats: Arc<KindStats>,
    ready_tx: watch::Sender<bool>,
    backoff: Backoff,
    desired: BTreeMap<String, Vec<u8>>,
    written: BTreeMap<String, Vec<u8>>,
    /// A full list in progress.
    init: Option<BTreeMap<String, Vec<u8>>>,
    /// Whether the source has delivered a full list (before that, the store is not touched:
    /// an empty `desired` would sweep every record away).
    listed: bool,
    in_sync: bool,
    /// The next sync must list the store rather than trust `written`.
    need_full: bool,
    /// The store generation the last sync was made against.
    generation: u64,
    retry_at: Option<Instant>,
    delay: Duration,
}

impl<S: Store> KindReflector<S> {
    /// A reflector for `kind` writing to `store`.
    pub fn new(
        kind: Kind,
        store: Arc<S>,
        monitor: Arc<RevisionMonitor>,
        stats: Arc<KindStats>,
        ready_tx: watch::Sender<bool>,
        backoff: Backoff,
    ) -> Self {
        KindReflector {
            kind,
            prefix: kind.prefix(),
            store,
            generation: monitor.generation(),
            monitor,
            stats,
            ready_tx,
            backoff,
            desired: BTreeMap::new(),
            written: BTreeMap::new(),
            init: None,
            listed: false,
            in_sync: false,
            need_full: true,
            retry_at: None,
            delay: backoff.min,
        }
    }

    /// The records the source currently describes (key → encoded record).
    pub fn desired(&self) -> &BTreeMap<String, Vec<u8>> {
        &self.desired
    }

    /// Whether the store is known to match.
    pub fn in_sync(&self) -> bool {
        self.in_sync
    }

    fn skip(&self, key: Option<&str>, e: &TranslateError) {
        self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        let what = format!("{}: {e}", key.unwrap_or("(no name)"));
        tracing::debug!(kind = %self.kind, "skipped {what}");
        set(&self.stats.last_skipped, Some(what));
    }

    fn store_failed(&mut self, e: &StoreError) {
        tracing::warn!(kind = %self.kind, "store: {e}; resync scheduled");
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        set(&self.stats.store_error, Some(e.to_string()));
        self.in_sync = false;
        self.need_full = true;
        self.stats.in_sync.store(false, Ordering::Relaxed);
        self.retry_at = Some(Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(self.backoff.max);
    }

    /// Applies one change from the source.
    pub async fn handle(&mut self, change: Change) {
        match change {
            Change::Init => {
                self.init = Some(BTreeMap::new());
            }
            Change::InitApply(it) => {
                let init = self.init.get_or_insert_with(BTreeMap::new);
                match it {
                    Ok((k, v)) => {
                        init.insert(k, v);
                    }
                    Err((k, e)) => self.skip(k.as_deref(), &e),
                }
            }
            Change::InitDone => {
                self.desired = self.init.take().unwrap_or_default();
                self.listed = true;
                self.stats.relists.fetch_add(1, Ordering::Relaxed);
                self.stats
                    .records
                    .store(self.desired.len() as u64, Ordering::Relaxed);
                set(&self.stats.source_error, None);
                self.sync().await;
            }
            Change::Apply(it) => {
                let key = match it {
                    Ok((k, v)) => {
                        self.desired.insert(k.clone(), v);
                        k
                    }
                    Err((Some(k), e)) => {
                        // An object that became unusable (a pod that finished) leaves the store.
                        self.skip(Some(&k), &e);
                        self.desired.remove(&k);
                        k
                    }
                    Err((None, e)) => {
                        self.skip(None, &e);
                        return;
                    }
                };
                self.stats
                    .records
                    .store(self.desired.len() as u64, Ordering::Relaxed);
                self.write_key(&key).await;
            }
            Change::Delete(k) => match k {
                Ok(k) => {
                    self.desired.remove(&k);
                    self.stats
                        .records
                        .store(self.desired.len() as u64, Ordering::Relaxed);
                    self.write_key(&k).await;
                }
                Err(e) => self.skip(None, &e),
            },
            Change::SourceError(msg) => {
                tracing::warn!(kind = %self.kind, "source: {msg}");
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                set(&self.stats.source_error, Some(msg));
            }
        }
    }

    /// Writes one key if the store's copy differs from the desired one.
    async fn write_key(&mut self, key: &str) {
        if !self.listed || !self.in_sync || self.monitor.generation() != self.generation {
            // Held back: the next sync writes it.
            return;
        }
        let want = self.desired.get(key);
        let have = self.written.get(key);
        if want == have {
            return;
        }
        let op = match want {
            Some(v) => Op::Put(key.to_string(), v.clone()),
            None => Op::Delete(key.to_string()),
        };
        let floor = self.monitor.floor();
        match self.store.apply(vec![op]).await {
            Ok(rev) => {
                match want {
                    Some(v) => {
                        let c = if have.is_some() {
                            &self.stats.updates
                        } else {
                            &self.stats.adds
                        };
                        c.fetch_add(1, Ordering::Relaxed);
                        self.written.insert(key.to_string(), v.clone());
                    }
                    None => {
                        self.stats.deletes.fetch_add(1, Ordering::Relaxed);
                        self.written.remove(key);
                    }
                }
                // A reset bumps the generation; the run loop resyncs on it.
                self.monitor.observe(floor, rev);
            }
            Err(e) => self.store_failed(&e),
        }
    }

    /// Whether a sync is due now or later.
    fn needs_sync(&self) -> bool {
        self.listed && (!self.in_sync || self.monitor.generation() != self.generation)
    }

    /// Mark and sweep: brings the store's records under our prefix to exactly `desired`.
    pub async fn sync(&mut self) {
        if !self.listed {
            return;
        }
        match self.try_sync().await {
            Ok(()) => {
                self.retry_at = None;
                self.delay = self.backoff.min;
            }
            Err(e) => self.store_failed(&e),
        }
    }

    async fn try_sync(&mut self) -> Result<(), StoreError> {
        let mut generation = self.monitor.generation();
        let full = self.need_full || !self.in_sync || generation != self.generation;
        let listed;
        let base = if full {
            let floor = self.monitor.floor();
            let listing = self.store.list(&self.prefix).await?;
            if self.monitor.observe(floor, listing.rev) == Observation::Reset {
                // Our own listing revealed the reset, and it is of the new data: it counts.
                generation = self.monitor.generation();
            }
            listed = listing.items;
            &listed
        } else {
            &self.written
        };
        let mut ops = Vec::new();
        let (mut adds, mut updates, mut deletes) = (0u64, 0u64, 0u64);
        for (k, v) in &self.desired {
            match base.get(k) {
                Some(have) if have == v => {}
                Some(_) => {
                    updates += 1;
                    ops.push(Op::Put(k.clone(), v.clone()));
                }
                None => {
                    adds += 1;
                    ops.push(Op::Put(k.clone(), v.clone()));
                }
            }
        }
        for k in base.keys() {
            if !self.desired.contains_key(k) {
                deletes += 1;
                ops.push(Op::Delete(k.clone()));
            }
        }
        let batch = self.store.max_batch().max(1);
        let mut rest = ops;
        while !rest.is_empty() {
            let tail = rest.split_off(rest.len().min(batch));
            let chunk = std::mem::replace(&mut rest, tail);
            let floor = self.monitor.floor();
            let rev = self.store.apply(chunk).await?;
            self.monitor.observe(floor, rev);
        }
        if full {
            tracing::info!(kind = %self.kind, adds, updates, deletes, "resynced with the store");
        }
        self.stats.adds.fetch_add(adds, Ordering::Relaxed);
        self.stats.updates.fetch_add(updates, Ordering::Relaxed);
        self.stats.deletes.fetch_add(deletes, Ordering::Relaxed);
        self.stats.resyncs.fetch_add(1, Ordering::Relaxed);
        self.written = self.desired.clone();
        self.in_sync = true;
        self.need_full = false;
        self.generation = generation;
        self.stats.in_sync.store(true, Ordering::Relaxed);
        self.stats.ready.store(true, Ordering::Relaxed);
        set(&self.stats.store_error, None);
        self.ready_tx.send_replace(true);
        Ok(())
    }

    /// Runs until the source ends or `shutdown` turns true.
    pub async fn run(
        mut self,
        changes: impl Stream<Item = Change> + Send,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut changes = std::pin::pin!(changes);
        let mut generation = self.monitor.subscribe();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let due = if self.needs_sync() {
                Some(self.retry_at.unwrap_or_else(Instant::now))
            } else {
                None
            };
            tokio::select! {
                biased;
                _ = shutdown.changed() => {}
                _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                    self.sync().await;
                }
                c = changes.next() => match c {
                    Some(c) => self.handle(c).await,
                    None => return,
                },
                // A new store generation makes `needs_sync` true; waking is all this does.
                r = generation.changed() => {
                    if r.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::encode;
    use crate::store::{EmbeddedStore, Instrumented};

    fn rec(k: &str, v: &str) -> Item {
        Ok((format!("/vpg/v1/pod/ns/{k}"), encode(&v)))
    }

    fn reflector(
        store: Arc<Instrumented<EmbeddedStore>>,
    ) -> KindReflector<Instrumented<EmbeddedStore>> {
        KindReflector::new(
            Kind::Pod,
            store,
            Arc::default(),
            Arc::default(),
            watch::channel(false).0,
            Backoff {
                min: Duration::from_millis(1),
                max: Duration::from_millis(10),
            },
        )
    }

    async fn full_list(r: &mut KindReflector<Instrumented<EmbeddedStore>>, items: &[(&str, &str)]) {
        r.handle(Change::Init).await;
        for (k, v) in items {
            r.handle(Change::InitApply(rec(k, v))).await;
        }
        r.handle(Change::InitDone).await;
    }

    #[tokio::test]
    async fn nothing_written_before_the_first_list_and_nothing_twice() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Instrumented::new(
            EmbeddedStore::open(dir.path().join("s")).unwrap(),
        ));
        store
            .inner()
            .put("/vpg/v1/pod/ns/stale", b"x")
            .await
            .unwrap();
        let counts = store.counts();
        let mut r = reflector(store.clone());
        // Events before the first full list are held back.
        r.handle(Change::Apply(rec("a", "1"))).await;
        assert_eq!(counts.writes(), 0);
        full_list(&mut r, &[("a", "1"), ("b", "2")]).await;
        // a, b added, stale swept.
        assert_eq!(counts.puts.load(Ordering::SeqCst), 2);
        assert_eq!(counts.deletes.load(Ordering::SeqCst), 1);
        // The same record again, and a relist with nothing new: no writes.
        r.handle(Change::Apply(rec("a", "1"))).await;
        full_list(&mut r, &[("a", "1"), ("b", "2")]).await;
        assert_eq!(counts.writes(), 3);
        // A relist where b vanished: one delete, and no store list needed (in sync).
        let lists = counts.lists.load(Ordering::SeqCst);
        full_list(&mut r, &[("a", "1")]).await;
        assert_eq!(counts.writes(), 4);
        assert_eq!(counts.lists.load(Ordering::SeqCst), lists);
        assert_eq!(store.list("/vpg/v1/pod/").await.unwrap().items.len(), 1);
    }

    #[tokio::test]
    async fn failed_write_holds_events_and_resyncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Instrumented::new(
            EmbeddedStore::open(dir.path().join("s")).unwrap(),
        ));
        let counts = store.counts();
        let mut r = reflector(store.clone());
        full_list(&mut r, &[("a", "1")]).await;
        store.fail_writes(0, 1);
        r.handle(Change::Apply(rec("b", "2"))).await;
        assert!(!r.in_sync());
        assert_eq!(r.stats.errors.load(Ordering::SeqCst), 1);
        // Held back while out of sync.
        r.handle(Change::Apply(rec("c", "3"))).await;
        r.handle(Change::Delete(Ok("/vpg/v1/pod/ns/a".into())))
            .await;
        assert_eq!(counts.writes(), 1);
        r.sync().await;
        assert!(r.in_sync());
        let keys: Vec<String> = store
            .list("/vpg/v1/pod/")
            .await
            .unwrap()
            .items
            .into_keys()
            .collect();
        assert_eq!(keys, ["/vpg/v1/pod/ns/b", "/vpg/v1/pod/ns/c"]);
        // a put, then b+c put and a deleted in one resync.
        assert_eq!(counts.writes(), 4);
    }

    #[tokio::test]
    async fn invalid_object_removes_its_record_and_is_counted() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Instrumented::new(
            EmbeddedStore::open(dir.path().join("s")).unwrap(),
        ));
        let mut r = reflector(store.clone());
        full_list(&mut r, &[("a", "1")]).await;
        r.handle(Change::Apply(Err((
            Some("/vpg/v1/pod/ns/a".into()),
            TranslateError::Missing("status.podIP"),
        ))))
        .await;
        r.handle(Change::Apply(Err((None, TranslateError::NoName))))
            .await;
        assert_eq!(r.stats.skipped.load(Ordering::SeqCst), 2);
        assert!(store.list("/vpg/v1/pod/").await.unwrap().items.is_empty());
    }
}
