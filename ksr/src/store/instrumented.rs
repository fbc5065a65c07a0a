//! A [`Store`] wrapper that counts operations and can fail writes on purpose: the tests use it
//! to prove "minimal writes" and "a failed write resyncs that kind", and an operator can use
//! the counts to see what a reflector costs its store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::{Listing, Op, Rev, Store, StoreError, WatchStream};

/// Operation counts of an [`Instrumented`] store.
#[derive(Debug, Default)]
pub struct OpCounts {
    /// Keys written by puts.
    pub puts: AtomicU64,
    /// Keys removed by deletes.
    pub deletes: AtomicU64,
    /// Batches applied.
    pub batches: AtomicU64,
    /// Lists.
    pub lists: AtomicU64,
    /// Writes that failed (injected or real).
    pub failed: AtomicU64,
    /// Writes still to fail on purpose.
    pub fail_next: AtomicU64,
    /// Writes to let through before the injected failures start.
    pub fail_after: AtomicU64,
}

impl OpCounts {
    /// Puts plus deletes.
    pub fn writes(&self) -> u64 {
        self.puts.load(Ordering::SeqCst) + self.deletes.load(Ordering::SeqCst)
    }
}

/// Counts operations on the inner store and injects write failures on request.
pub struct Instrumented<S> {
    inner: S,
    counts: Arc<OpCounts>,
}

impl<S: Store> Instrumented<S> {
    /// Wraps a store.
    pub fn new(inner: S) -> Instrumented<S> {
        Instrumented {
            inner,
            counts: Arc::default(),
        }
    }

    /// The counters (shared, so a test can keep them after handing the store away).
    pub fn counts(&self) -> Arc<OpCounts> {
        self.counts.clone()
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Makes the next `n` write batches fail with [`StoreError::Injected`], after letting
    /// `after` batches through.
    pub fn fail_writes(&self, after: u64, n: u64) {
        self.counts.fail_after.store(after, Ordering::SeqCst);
        self.counts.fail_next.store(n, Ordering::SeqCst);
    }
}

fn take_one(c: &AtomicU64) -> bool {
    c.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

impl<S: Store> Store for Instrumented<S> {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get(key).await
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Rev, StoreError> {
        if self.counts.fail_next.load(Ordering::SeqCst) > 0
            && !take_one(&self.counts.fail_after)
            && take_one(&self.counts.fail_next)
        {
            self.counts.failed.fetch_add(1, Ordering::SeqCst);
            return Err(StoreError::Injected);
        }
        let puts = ops.iter().filter(|o| matches!(o, Op::Put(..))).count() as u64;
        let deletes = ops.len() as u64 - puts;
        match self.inner.apply(ops).await {
            Ok(rev) => {
                self.counts.puts.fetch_add(puts, Ordering::SeqCst);
                self.counts.deletes.fetch_add(deletes, Ordering::SeqCst);
                self.counts.batches.fetch_add(1, Ordering::SeqCst);
                Ok(rev)
            }
            Err(e) => {
                self.counts.failed.fetch_add(1, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        self.counts.lists.fetch_add(1, Ordering::SeqCst);
        self.inner.list(prefix).await
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream, StoreError> {
        self.inner.watch(prefix, from_revision).await
    }

    async fn revision(&self) -> Result<Rev, StoreError> {
        self.inner.revision().await
    }

    fn max_batch(&self) -> usize {
        self.inner.max_batch()
    }
}
