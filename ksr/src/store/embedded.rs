//! The embedded store: one redb file, for a single node without etcd.
//!
//! Why redb: it is a pure-Rust, actively maintained embedded key-value database with ACID
//! transactions, crash safety (copy-on-write B-trees, a commit is durable when it returns) and
//! ordered keys, which is exactly what a prefix-listed, revisioned record store needs. sled is
//! unmaintained, and SQLite would add a C library for a key-value workload.
//!
//! Layout inside the file: `kv` (key → value), `log` ((revision, index) → (key, value or
//! none for a delete)) for watches from a revision, and `meta` (current revision, epoch, the
//! newest compacted revision). The log keeps the last [`LOG_REVISIONS`] revisions; a watch from
//! an older revision gets [`StoreError::Compacted`] and lists again, as with etcd.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use redb::{Database, ReadableTable, TableDefinition};
use tokio::sync::broadcast;

use super::{Listing, Op, Rev, Store, StoreError, StoreEvent, WatchStream};

const KV: TableDefinition<&str, &[u8]> = TableDefinition::new("kv");
/// (revision, index in the batch) → (key, value or none for a delete).
type LogTable<'a> = TableDefinition<'a, (u64, u32), (&'static str, Option<&'static [u8]>)>;
const LOG: LogTable = TableDefinition::new("log");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Revisions of history kept for watches.
pub const LOG_REVISIONS: u64 = 10_000;

/// Changes buffered per watcher before it is told it fell behind.
const WATCH_BUFFER: usize = 4096;

/// An embedded, file-backed [`Store`].
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    path: PathBuf,
    epoch: u64,
    /// Serializes commit + broadcast so watchers see changes in revision order (redb already
    /// allows one writer at a time; this lock extends that to the broadcast after commit).
    write_lock: Mutex<()>,
    events: broadcast::Sender<Arc<Vec<StoreEvent>>>,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl EmbeddedStore {
    /// Opens (or creates) the store file. A new file gets a fresh random epoch, so readers that
    /// knew an older file (deleted and recreated) notice the change.
    pub fn open(path: impl AsRef<Path>) -> Result<EmbeddedStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let db = Database::create(&path)
            .map_err(|e| StoreError::Backend(format!("{}: {e}", path.display())))?;
        let tx = db.begin_write().map_err(backend)?;
        let epoch = {
            tx.open_table(KV).map_err(backend)?;
            tx.open_table(LOG).map_err(backend)?;
            let mut meta = tx.open_table(META).map_err(backend)?;
            let existing = meta.get("epoch").map_err(backend)?.map(|v| v.value());
            match existing {
                Some(e) => e,
                None => {
                    let e = new_epoch();
                    meta.insert("epoch", e).map_err(backend)?;
                    e
                }
            }
        };
        tx.commit().map_err(backend)?;
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                db,
                path,
                epoch,
                write_lock: Mutex::new(()),
                events,
            }),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || f(&inner))
            .await
            .map_err(|e| StoreError::Backend(format!("store task: {e}")))?
    }
}

/// A random-enough, non-zero epoch without a random-number dependency: the clock's nanoseconds
/// mixed with the process id and a stack address.
fn new_epoch() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let local = 0u8;
    let mut x = nanos ^ (u64::from(std::process::id()) << 32) ^ (&local as *const u8 as u64);
    // splitmix64 finalizer
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d049bb133111eb);
    (x ^ (x >> 31)) | 1
}

fn read_meta(t: &impl ReadableTable<&'static str, u64>, k: &str) -> Result<u64, StoreError> {
    Ok(t.get(k).map_err(backend)?.map(|v| v.value()).unwrap_or(0))
}

impl Inner {
    fn apply(&self, ops: Vec<Op>) -> Result<Rev, StoreError> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let tx = self.db.begin_write().map_err(backend)?;
        let mut events = Vec::with_capacity(ops.len());
        let revision = {
            let mut meta = tx.open_table(META).map_err(backend)?;
            let mut kv = tx.open_table(KV).map_err(backend)?;
            let mut log = tx.open_table(LOG).map_err(backend)?;
            let revision = read_meta(&meta, "revision")? + 1;
            for (i, op) in ops.into_iter().enumerate() {
                let idx = i as u32;
                match op {
                    Op::Put(k, v) => {
                        kv.insert(k.as_str(), v.as_slice()).map_err(backend)?;
                        log.insert((revision, idx), (k.as_str(), Some(v.as_slice())))
                            .map_err(backend)?;
                        events.push(StoreEvent {
                            revision,
                            key: k,
                            value: Some(v),
                        });
                    }
                    Op::Delete(k) => {
                        // Deleting an absent key changes nothing and is not an event (etcd
                        // behaves the same).
                        if kv.remove(k.as_str()).map_err(backend)?.is_some() {
                            log.insert((revision, idx), (k.as_str(), None))
                                .map_err(backend)?;
                            events.push(StoreEvent {
                                revision,
                                key: k,
                                value: None,
                            });
                        }
                    }
                }
            }
            meta.insert("revision", revision).map_err(backend)?;
            if revision > LOG_REVISIONS {
                let compacted = revision - LOG_REVISIONS;
                log.retain_in(..(compacted + 1, 0), |_, _| false)
                    .map_err(backend)?;
                meta.insert("compacted", compacted).map_err(backend)?;
            }
            revision
        };
        tx.commit().map_err(backend)?;
        if !events.is_empty() {
            // No receivers is fine: nobody watches.
            let _ = self.events.send(Arc::new(events));
        }
        Ok(Rev {
            epoch: self.epoch,
            revision,
        })
    }
}

impl Store for EmbeddedStore {
    fn describe(&self) -> String {
        format!("embedded {}", self.inner.path.display())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = key.to_string();
        self.blocking(move |inner| {
            let tx = inner.db.begin_read().map_err(backend)?;
            let kv = tx.open_table(KV).map_err(backend)?;
            Ok(kv
                .get(key.as_str())
                .map_err(backend)?
                .map(|v| v.value().to_vec()))
        })
        .await
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Rev, StoreError> {
        self.blocking(move |inner| inner.apply(ops)).await
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let prefix = prefix.to_string();
        self.blocking(move |inner| {
            let tx = inner.db.begin_read().map_err(backend)?;
            let kv = tx.open_table(KV).map_err(backend)?;
            let meta = tx.open_table(META).map_err(backend)?;
            let mut listing = Listing {
                rev: Rev {
                    epoch: inner.epoch,
                    revision: read_meta(&meta, "revision")?,
                },
                ..Listing::default()
            };
            for entry in kv.range(prefix.as_str()..).map_err(backend)? {
                let (k, v) = entry.map_err(backend)?;
                if !k.value().starts_with(prefix.as_str()) {
                    break;
                }
                listing
                    .items
                    .insert(k.value().to_string(), v.value().to_vec());
            }
            Ok(listing)
        })
        .await
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream, StoreError> {
        // Subscribe before reading history so that nothing committed in between is missed;
        // duplicates are dropped by revision below.
        let rx = self.inner.events.subscribe();
        let p = prefix.to_string();
        let history = self
            .blocking(move |inner| {
                let tx = inner.db.begin_read().map_err(backend)?;
                let meta = tx.open_table(META).map_err(backend)?;
                let compacted = read_meta(&meta, "compacted")?;
                if from_revision <= compacted {
                    return Err(StoreError::Compacted {
                        requested: from_revision,
                        compacted,
                    });
                }
                let log = tx.open_table(LOG).map_err(backend)?;
                let mut out = Vec::new();
                for entry in log.range((from_revision, 0)..).map_err(backend)? {
                    let (k, v) = entry.map_err(backend)?;
                    let (revision, _) = k.value();
                    let (key, value) = v.value();
                    if key.starts_with(p.as_str()) {
                        out.push(StoreEvent {
                            revision,
                            key: key.to_string(),
                            value: value.map(<[u8]>::to_vec),
                        });
                    }
                }
                Ok(out)
            })
            .await?;
        // Live changes strictly after what history covered (history may be empty: then from
        // the requested revision on).
        let mut next = history.last().map_or(from_revision, |e| e.revision + 1);
        let prefix = prefix.to_string();
        let live = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(batch) => Some((Ok(batch), rx)),
                Err(broadcast::error::RecvError::Lagged(n)) => Some((
                    Err(StoreError::Unavailable(format!(
                        "watch fell behind by {n} batches"
                    ))),
                    rx,
                )),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        })
        .flat_map(move |batch| {
            let items: Vec<Result<StoreEvent, StoreError>> = match batch {
                Ok(batch) => batch
                    .iter()
                    .filter(|e| e.revision >= next && e.key.starts_with(prefix.as_str()))
                    .cloned()
                    .map(Ok)
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            if let Some(Ok(last)) = items.last() {
                next = last.revision + 1;
            }
            futures::stream::iter(items)
        });
        Ok(futures::stream::iter(history.into_iter().map(Ok))
            .chain(live)
            .boxed())
    }

    async fn revision(&self) -> Result<Rev, StoreError> {
        self.blocking(|inner| {
            let tx = inner.db.begin_read().map_err(backend)?;
            let meta = tx.open_table(META).map_err(backend)?;
            Ok(Rev {
                epoch: inner.epoch,
                revision: read_meta(&meta, "revision")?,
            })
        })
        .await
    }

    fn max_batch(&self) -> usize {
        // One fsync per batch; large batches make the initial sync fast.
        4096
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_list_delete_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ksr.redb");
        let epoch;
        {
            let s = EmbeddedStore::open(&path).unwrap();
            let r1 = s.put("/vpg/v1/pod/a/x", b"1").await.unwrap();
            let r2 = s.put("/vpg/v1/pod/b/y", b"2").await.unwrap();
            s.put("/vpg/v1/podx/c", b"3").await.unwrap();
            assert_eq!(r2.revision, r1.revision + 1);
            epoch = r1.epoch;
            let l = s.list("/vpg/v1/pod/").await.unwrap();
            assert_eq!(l.items.len(), 2);
            assert_eq!(l.rev.revision, 3);
            s.delete("/vpg/v1/pod/a/x").await.unwrap();
            assert_eq!(s.get("/vpg/v1/pod/a/x").await.unwrap(), None);
        }
        let s = EmbeddedStore::open(&path).unwrap();
        let rev = s.revision().await.unwrap();
        assert_eq!(rev, Rev { epoch, revision: 4 });
        assert_eq!(
            s.get("/vpg/v1/pod/b/y").await.unwrap().as_deref(),
            Some(&b"2"[..])
        );
        // A recreated file is a different data set.
        drop(s);
        std::fs::remove_file(&path).unwrap();
        let s = EmbeddedStore::open(&path).unwrap();
        assert_ne!(s.revision().await.unwrap().epoch, epoch);
    }

    #[tokio::test]
    async fn watch_replays_history_then_follows() {
        let dir = tempfile::tempdir().unwrap();
        let s = EmbeddedStore::open(dir.path().join("w.redb")).unwrap();
        s.put("/p/a", b"1").await.unwrap(); // rev 1
        s.put("/q/a", b"x").await.unwrap(); // rev 2, other prefix
        s.put("/p/b", b"2").await.unwrap(); // rev 3
        let mut w = s.watch("/p/", 2).await.unwrap();
        let e = w.next().await.unwrap().unwrap();
        assert_eq!((e.revision, e.key.as_str()), (3, "/p/b"));
        s.delete("/p/a").await.unwrap(); // rev 4
        let e = w.next().await.unwrap().unwrap();
        assert_eq!((e.revision, e.key.as_str(), e.value), (4, "/p/a", None));
        s.apply(vec![
            Op::Put("/p/c".into(), b"3".to_vec()),
            Op::Put("/q/z".into(), vec![]),
        ])
        .await
        .unwrap();
        let e = w.next().await.unwrap().unwrap();
        assert_eq!((e.revision, e.key.as_str()), (5, "/p/c"));
    }
}
