//! The store the reflector writes and every agent watches: a small key-value interface with
//! revisions, implemented by an embedded database ([`EmbeddedStore`]) and by etcd
//! ([`EtcdStore`]).
//!
//! Revisions follow etcd's model: every committed write batch increases the store's revision by
//! one, and a watch from revision `r` sees every change at `r` or later. Each answer also
//! carries an *epoch* that identifies the store's data (etcd's cluster id, or a random id
//! chosen when the embedded file is created), so a reader can tell a store that lost its data
//! from one that merely reconnected: see [`RevisionMonitor`].

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use futures::stream::BoxStream;

pub mod embedded;
pub mod etcd;
pub mod instrumented;

pub use embedded::EmbeddedStore;
pub use etcd::EtcdStore;
pub use instrumented::Instrumented;

/// Where the store's data stands after an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Rev {
    /// Identifies the data set (changes when the store is replaced by an empty one).
    pub epoch: u64,
    /// The store revision after the operation.
    pub revision: u64,
}

/// One write of a batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Set a key.
    Put(String, Vec<u8>),
    /// Remove a key (no error if it is absent).
    Delete(String),
}

impl Op {
    /// The key the operation writes.
    pub fn key(&self) -> &str {
        match self {
            Op::Put(k, _) | Op::Delete(k) => k,
        }
    }
}

/// The records under a prefix, read at one revision.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// Where the store stood when it was read.
    pub rev: Rev,
    /// Key → value.
    pub items: BTreeMap<String, Vec<u8>>,
}

/// One change seen by a watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreEvent {
    /// The revision that made the change.
    pub revision: u64,
    /// The key.
    pub key: String,
    /// The new value, or `None` for a delete.
    pub value: Option<Vec<u8>>,
}

/// A stream of changes; it ends (or yields an error) when the watch cannot continue, and the
/// watcher then lists and watches again.
pub type WatchStream = BoxStream<'static, Result<StoreEvent, StoreError>>;

/// Store failures. All but [`StoreError::Compacted`] mean "retry later".
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached or did not answer in time.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A watch asked for history the store no longer keeps; list again.
    #[error("revision {requested} is compacted (history starts after {compacted})")]
    Compacted {
        /// The revision asked for.
        requested: u64,
        /// The newest revision no longer available.
        compacted: u64,
    },
    /// The store refused or failed the operation.
    #[error("store error: {0}")]
    Backend(String),
    /// A failure injected by [`Instrumented`] (tests and fault drills).
    #[error("injected write failure")]
    Injected,
}

/// A key-value store with revisions and prefix watches.
///
/// Futures are `Send` so that reflectors can run on any runtime thread.
pub trait Store: Send + Sync + 'static {
    /// A one-line description for status output (`etcd http://..`, `embedded /path`).
    fn describe(&self) -> String;

    /// Reads one key.
    fn get(&self, key: &str) -> impl Future<Output = Result<Option<Vec<u8>>, StoreError>> + Send;

    /// Applies a batch of writes atomically (one revision).
    fn apply(&self, ops: Vec<Op>) -> impl Future<Output = Result<Rev, StoreError>> + Send;

    /// Lists every key under a prefix, at one revision.
    fn list(&self, prefix: &str) -> impl Future<Output = Result<Listing, StoreError>> + Send;

    /// Watches a prefix from a revision (inclusive).
    fn watch(
        &self,
        prefix: &str,
        from_revision: u64,
    ) -> impl Future<Output = Result<WatchStream, StoreError>> + Send;

    /// The current revision and epoch (a cheap liveness probe).
    fn revision(&self) -> impl Future<Output = Result<Rev, StoreError>> + Send;

    /// The largest batch [`Store::apply`] accepts (etcd's `--max-txn-ops` defaults to 128).
    fn max_batch(&self) -> usize;

    /// Sets one key.
    fn put(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<Rev, StoreError>> + Send {
        self.apply(vec![Op::Put(key.to_string(), value.to_vec())])
    }

    /// Removes one key.
    fn delete(&self, key: &str) -> impl Future<Output = Result<Rev, StoreError>> + Send {
        self.apply(vec![Op::Delete(key.to_string())])
    }
}

/// Watches the store's revisions for signs that it lost data.
///
/// A linearizable store never answers an operation with a revision lower than one observed
/// before the operation started. Concurrent operations may finish out of order, so the check
/// compares against the highest revision seen *before* the operation began (its floor), not the
/// highest seen so far. An epoch change (a different etcd cluster, a recreated embedded file)
/// counts the same. Each detection bumps [`RevisionMonitor::generation`]; reflectors that see
/// a new generation resync in full.
#[derive(Debug)]
pub struct RevisionMonitor {
    state: Mutex<Rev>,
    generation: AtomicU64,
    resets: AtomicU64,
    /// Wakes reflectors when the generation changes.
    notify: tokio::sync::watch::Sender<u64>,
}

impl Default for RevisionMonitor {
    fn default() -> Self {
        RevisionMonitor {
            state: Mutex::default(),
            generation: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            notify: tokio::sync::watch::channel(0).0,
        }
    }
}

/// What [`RevisionMonitor::observe`] concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observation {
    /// Consistent with what was seen before.
    Ok,
    /// The store went backwards or changed identity: everything must be resynced.
    Reset,
}

impl RevisionMonitor {
    /// The floor for an operation about to start.
    pub fn floor(&self) -> Rev {
        *self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records an operation's answer given the floor taken before it started.
    pub fn observe(&self, floor: Rev, rev: Rev) -> Observation {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let known = floor.epoch != 0 || floor.revision != 0;
        let reset = known && (rev.epoch != floor.epoch || rev.revision < floor.revision);
        if reset {
            // Start over from the new store's view.
            *st = rev;
            let g = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
            self.resets.fetch_add(1, Ordering::Relaxed);
            self.notify.send_replace(g);
            return Observation::Reset;
        }
        if st.epoch == rev.epoch && rev.revision > st.revision || st.epoch == 0 {
            *st = rev;
        }
        Observation::Ok
    }

    /// The last revision seen.
    pub fn last(&self) -> Rev {
        self.floor()
    }

    /// Bumps the generation without a revision anomaly (store reconnected).
    pub fn bump(&self) {
        let g = self.generation.fetch_add(1, Ordering::SeqCst) + 1;
        self.notify.send_replace(g);
    }

    /// A receiver that wakes on every generation change.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.notify.subscribe()
    }

    /// How many full resyncs the store has demanded so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// How many times the store went backwards or changed identity.
    pub fn resets(&self) -> u64 {
        self.resets.load(Ordering::Relaxed)
    }
}

/// The store chosen at run time (the binary's `--store`).
#[derive(Clone)]
pub enum AnyStore {
    /// The embedded file store.
    Embedded(EmbeddedStore),
    // Boxed: the etcd client is large and the enum is held once per process.
    /// etcd.
    Etcd(Box<EtcdStore>),
}

macro_rules! delegate {
    ($self:ident, $s:ident => $e:expr) => {
        match $self {
            AnyStore::Embedded($s) => $e,
            AnyStore::Etcd($s) => $e,
        }
    };
}

impl Store for AnyStore {
    fn describe(&self) -> String {
        delegate!(self, s => s.describe())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        delegate!(self, s => s.get(key).await)
    }
    async fn apply(&self, ops: Vec<Op>) -> Result<Rev, StoreError> {
        delegate!(self, s => s.apply(ops).await)
    }
    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        delegate!(self, s => s.list(prefix).await)
    }
    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream, StoreError> {
        delegate!(self, s => s.watch(prefix, from_revision).await)
    }
    async fn revision(&self) -> Result<Rev, StoreError> {
        delegate!(self, s => s.revision().await)
    }
    fn max_batch(&self) -> usize {
        delegate!(self, s => s.max_batch())
    }
}

impl<S: Store> Store for std::sync::Arc<S> {
    fn describe(&self) -> String {
        (**self).describe()
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).get(key).await
    }
    async fn apply(&self, ops: Vec<Op>) -> Result<Rev, StoreError> {
        (**self).apply(ops).await
    }
    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        (**self).list(prefix).await
    }
    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream, StoreError> {
        (**self).watch(prefix, from_revision).await
    }
    async fn revision(&self) -> Result<Rev, StoreError> {
        (**self).revision().await
    }
    fn max_batch(&self) -> usize {
        (**self).max_batch()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn monitor_tolerates_out_of_order_answers() {
        let m = RevisionMonitor::default();
        let f0 = m.floor();
        assert_eq!(
            m.observe(
                f0,
                Rev {
                    epoch: 7,
                    revision: 10
                }
            ),
            Observation::Ok
        );
        // Two operations start at floor 10 and finish out of order.
        let fa = m.floor();
        let fb = m.floor();
        assert_eq!(
            m.observe(
                fb,
                Rev {
                    epoch: 7,
                    revision: 12
                }
            ),
            Observation::Ok
        );
        assert_eq!(
            m.observe(
                fa,
                Rev {
                    epoch: 7,
                    revision: 11
                }
            ),
            Observation::Ok
        );
        assert_eq!(m.last().revision, 12);
        assert_eq!(m.generation(), 0);
    }

    #[test]
    fn monitor_detects_backwards_and_new_epoch() {
        let m = RevisionMonitor::default();
        m.observe(
            m.floor(),
            Rev {
                epoch: 7,
                revision: 100,
            },
        );
        assert_eq!(
            m.observe(
                m.floor(),
                Rev {
                    epoch: 7,
                    revision: 3
                }
            ),
            Observation::Reset
        );
        assert_eq!(m.generation(), 1);
        assert_eq!(m.last().revision, 3);
        assert_eq!(
            m.observe(
                m.floor(),
                Rev {
                    epoch: 7,
                    revision: 4
                }
            ),
            Observation::Ok
        );
        assert_eq!(
            m.observe(
                m.floor(),
                Rev {
                    epoch: 8,
                    revision: 50
                }
            ),
            Observation::Reset
        );
        assert_eq!(m.generation(), 2);
        assert_eq!(m.resets(), 2);
    }
}
