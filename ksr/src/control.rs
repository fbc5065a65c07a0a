//! The control socket of a running `vpg-ksr`: one request line, one JSON answer, then close.
//!
//! Requests: `status` → [`Status`]; `dump` or `dump <kind>` → the store's records as
//! [`DumpEntry`] rows, read through the running reflector's store handle (an embedded store's
//! file is locked by its one writer, so this is how it is read while the reflector runs).

use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};

use crate::model::{Kind, KEY_ROOT};
use crate::run::{Reflectors, Status};
use crate::store::{Store, StoreError};

/// One record of a dump.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DumpEntry {
    /// The key.
    pub key: String,
    /// The value, decoded as JSON (the envelope with its version), or the raw text if it is
    /// not JSON.
    pub value: serde_json::Value,
}

/// Reads every record (of one kind, or all) from a store. The IPsec key secret's key material
/// is replaced by `<redacted>`: a dump never shows a key.
pub async fn dump<S: Store>(store: &S, kind: Option<Kind>) -> Result<Vec<DumpEntry>, StoreError> {
    let prefix = kind.map_or_else(|| KEY_ROOT.to_string(), Kind::prefix);
    let listing = store.list(&prefix).await?;
    Ok(listing
        .items
        .into_iter()
        .map(|(key, v)| {
            let secret = Kind::of_key(&key) == Some(Kind::Secret);
            let mut value = serde_json::from_slice(&v).unwrap_or_else(|_| {
                serde_json::Value::String(if secret {
                    "<redacted>".into()
                } else {
                    String::from_utf8_lossy(&v).into_owned()
                })
            });
            if secret {
                if let Some(k) = value.pointer_mut("/record/key") {
                    *k = serde_json::Value::String("<redacted>".into());
                }
            }
            DumpEntry { key, value }
        })
        .collect())
}

/// Renders dump rows one per line: `key value-json`.
pub fn render_dump(rows: &[DumpEntry]) -> String {
    rows.iter()
        .map(|r| format!("{} {}\n", r.key, r.value))
        .collect()
}

/// Serves the control socket until the task is dropped.
pub async fn serve<S: Store>(listener: UnixListener, reflectors: std::sync::Arc<Reflectors<S>>) {
    loop {
        let Ok((conn, _)) = listener.accept().await else {
            continue;
        };
        let r = reflectors.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(conn, &r).await {
                tracing::debug!("control connection: {e}");
            }
        });
    }
}

async fn answer<S: Store>(conn: UnixStream, r: &Reflectors<S>) -> std::io::Result<()> {
    let (rd, mut wr) = conn.into_split();
    let mut line = String::new();
    // Requests are one short line; anything longer is not ours.
    BufReader::new(rd.take(256)).read_line(&mut line).await?;
    let mut words = line.split_whitespace();
    let reply = match (words.next(), words.next()) {
        (Some("status"), None) => serde_json::to_vec(&Ok::<_, String>(r.status())),
        (Some("dump"), kind) => {
            let res = match kind.map(str::parse::<Kind>).transpose() {
                Ok(kind) => dump(r.store().as_ref(), kind)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e),
            };
            serde_json::to_vec(&res)
        }
        _ => serde_json::to_vec(&Err::<(), _>(format!("unknown request {:?}", line.trim()))),
    }
    .map_err(std::io::Error::other)?;
    wr.write_all(&reply).await?;
    wr.shutdown().await
}

/// Failures of a control request.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// The socket could not be reached or the connection failed.
    #[error("{0} (is vpg-ksr running?)")]
    Io(#[from] std::io::Error),
    /// The answer was not what the protocol says.
    #[error("malformed answer: {0}")]
    Malformed(#[from] serde_json::Error),
    /// The reflector answered with an error.
    #[error("{0}")]
    Refused(String),
}

/// Sends one request to a running reflector.
pub async fn request<T: for<'de> Deserialize<'de>>(
    socket: &Path,
    req: &str,
) -> Result<T, ControlError> {
    let mut conn = UnixStream::connect(socket).await?;
    conn.write_all(format!("{req}\n").as_bytes()).await?;
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).await?;
    let res: Result<T, String> = serde_json::from_slice(&buf)?;
    res.map_err(ControlError::Refused)
}

/// `status` through the socket.
pub async fn status(socket: &Path) -> Result<Status, ControlError> {
    request(socket, "status").await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::secret::parse_keys_line;
    use crate::model::encode;
    use crate::store::EmbeddedStore;

    #[tokio::test]
    async fn dumps_never_show_the_ipsec_key() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path().join("s.redb")).unwrap();
        let key = "00112233445566778899aabbccddeeff01020304";
        let rec = parse_keys_line(&format!("4 rfc4106(gcm(aes)) {key} 128")).unwrap();
        store
            .put(
                &Kind::Secret.key(Some("kube-system"), "vpg-ipsec-keys"),
                &encode(&rec),
            )
            .await
            .unwrap();
        for kind in [None, Some(Kind::Secret)] {
            let rows = dump(&store, kind).await.unwrap();
            assert_eq!(rows.len(), 1);
            let text = render_dump(&rows);
            assert!(!text.contains("00112233"), "{text}");
            assert_eq!(rows[0].value["record"]["key_id"], 4);
            assert_eq!(rows[0].value["record"]["key"], "<redacted>");
        }
    }
}
