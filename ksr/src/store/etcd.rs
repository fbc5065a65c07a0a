//! The etcd store, through the `etcd-client` crate (etcd's v3 gRPC API).
//!
//! Batches are etcd transactions (one revision each), at most [`MAX_TXN_OPS`] operations, which
//! is etcd's default `--max-txn-ops`. Reads are linearizable (etcd's default), which the
//! revision check of [`super::RevisionMonitor`] relies on. The epoch is etcd's cluster id.
//! A lost connection is re-established by the client's channel; until then operations fail
//! with [`StoreError::Unavailable`] after the request timeout.

use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, DeleteOptions, EventType, GetOptions, Txn, TxnOp, WatchOptions,
};
use futures::StreamExt;

use super::{Listing, Op, Rev, Store, StoreError, StoreEvent, WatchStream};

/// etcd's default limit of operations per transaction.
pub const MAX_TXN_OPS: usize = 128;

/// An etcd-backed [`Store`].
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    endpoints: Vec<String>,
}

fn classify(e: etcd_client::Error) -> StoreError {
    // gRPC codes that mean "not reachable right now": Cancelled (1), Unknown (2, what a
    // dropped connection often surfaces as), DeadlineExceeded (4), Unavailable (14).
    match e {
        etcd_client::Error::GRpcStatus(s) if matches!(s.code() as i32, 1 | 2 | 4 | 14) => {
            StoreError::Unavailable(s.message().to_string())
        }
        etcd_client::Error::TransportError(t) => StoreError::Unavailable(t.to_string()),
        etcd_client::Error::IoError(t) => StoreError::Unavailable(t.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

fn rev_of(h: Option<&etcd_client::ResponseHeader>) -> Rev {
    h.map_or(Rev::default(), |h| Rev {
        epoch: h.cluster_id(),
        revision: u64::try_from(h.revision()).unwrap_or(0),
    })
}

impl EtcdStore {
    /// Connects to etcd. `timeout` bounds each request, so an unreachable etcd fails
    /// operations quickly instead of hanging the reflector.
    pub async fn connect(endpoints: &[String], timeout: Duration) -> Result<EtcdStore, StoreError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(timeout)
            .with_timeout(timeout)
            .with_keep_alive(Duration::from_secs(5), timeout);
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(classify)?;
        Ok(EtcdStore {
            client,
            endpoints: endpoints.to_vec(),
        })
    }
}

impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd {}", self.endpoints.join(","))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let mut kv = self.client.kv_client();
        let r = kv.get(key, None).await.map_err(classify)?;
        Ok(r.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn apply(&self, ops: Vec<Op>) -> Result<Rev, StoreError> {
        if ops.len() > MAX_TXN_OPS {
            return Err(StoreError::Backend(format!(
                "batch of {} exceeds {MAX_TXN_OPS} operations",
                ops.len()
            )));
        }
        let txn_ops: Vec<TxnOp> = ops
            .into_iter()
            .map(|op| match op {
                Op::Put(k, v) => TxnOp::put(k, v, None),
                Op::Delete(k) => TxnOp::delete(k, None::<DeleteOptions>),
            })
            .collect();
        let mut kv = self.client.kv_client();
        let r = kv
            .txn(Txn::new().and_then(txn_ops))
            .await
            .map_err(classify)?;
        Ok(rev_of(r.header()))
    }

    async fn list(&self, prefix: &str) -> Result<Listing, StoreError> {
        let mut kv = self.client.kv_client();
        let r = kv
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(classify)?;
        let mut listing = Listing {
            rev: rev_of(r.header()),
            ..Listing::default()
        };
        for item in r.kvs() {
            let key = String::from_utf8_lossy(item.key()).into_owned();
            listing.items.insert(key, item.value().to_vec());
        }
        Ok(listing)
    }

    async fn watch(&self, prefix: &str, from_revision: u64) -> Result<WatchStream, StoreError> {
        let mut w = self.client.watch_client();
        let opts = WatchOptions::new()
            .with_prefix()
            .with_start_revision(i64::try_from(from_revision).unwrap_or(i64::MAX));
        let stream = w.watch(prefix, Some(opts)).await.map_err(classify)?;
        let events = stream.flat_map(move |resp| {
            let items: Vec<Result<StoreEvent, StoreError>> = match resp {
                Err(e) => vec![Err(classify(e))],
                Ok(r) if r.canceled() && r.compact_revision() > 0 => {
                    vec![Err(StoreError::Compacted {
                        requested: from_revision,
                        compacted: u64::try_from(r.compact_revision()).unwrap_or(0),
                    })]
                }
                Ok(r) if r.canceled() => {
                    vec![Err(StoreError::Unavailable(format!(
                        "watch canceled: {}",
                        r.cancel_reason()
                    )))]
                }
                Ok(r) => r
                    .events()
                    .iter()
                    .filter_map(|ev| {
                        let kv = ev.kv()?;
                        Some(Ok(StoreEvent {
                            revision: u64::try_from(kv.mod_revision()).unwrap_or(0),
                            key: String::from_utf8_lossy(kv.key()).into_owned(),
                            value: match ev.event_type() {
                                EventType::Put => Some(kv.value().to_vec()),
                                EventType::Delete => None,
                            },
                        }))
                    })
                    .collect(),
            };
            futures::stream::iter(items)
        });
        Ok(events.boxed())
    }

    async fn revision(&self) -> Result<Rev, StoreError> {
        let mut kv = self.client.kv_client();
        let r = kv
            .get(
                "/vpg/",
                Some(GetOptions::new().with_prefix().with_count_only()),
            )
            .await
            .map_err(classify)?;
        Ok(rev_of(r.header()))
    }

    fn max_batch(&self) -> usize {
        MAX_TXN_OPS
    }
}
