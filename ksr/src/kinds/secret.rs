//! core/v1 Secret → [`IpsecKeysRecord`]: the one secret the data plane needs, the IPsec key of
//! the node-to-node encryption (`kube-system/vpg-ipsec-keys`, the role Cilium's
//! `cilium-ipsec-keys` plays). No other secret is reflected: the Kubernetes source watches only
//! this name, and the manifest source ignores other secrets like any kind it does not mirror.
//!
//! The secret holds one entry, `keys`, in Cilium's format:
//!
//! ```text
//! <key id>[+] rfc4106(gcm(aes)) <hex: AES key ‖ 4-byte salt> 128
//! ```
//!
//! for instance `3+ rfc4106(gcm(aes)) 0a1b…(40 hex digits) 128`. The key id (1–255) names the
//! rotation generation: changing the secret to a new id and key rotates every node's SAs. The
//! `+` (Cilium's "derive per node pair") is accepted and implied: vpg always derives a key per
//! node pair and direction from this material. A 16-byte AES key (20 bytes with the salt)
//! selects AES-GCM-128, a 32-byte one (36) AES-GCM-256; the ICV is 128 bits.
//!
//! The record carries the key material (the agents need it), so the store holds it as the API
//! server does: `Debug`, errors and `vpg-ksr dump` never show it.

use std::fmt;

use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Serialize};

use super::Reflect;
use crate::model::{Kind, TranslateError};

/// The namespace of the IPsec key secret.
pub const IPSEC_SECRET_NAMESPACE: &str = "kube-system";
/// The name of the IPsec key secret.
pub const IPSEC_SECRET_NAME: &str = "vpg-ipsec-keys";
/// The entry of the secret that holds the key line.
pub const IPSEC_SECRET_ENTRY: &str = "keys";
/// The only algorithm accepted (AES-GCM with a 16-byte ICV, RFC 4106).
pub const IPSEC_ALGORITHM: &str = "rfc4106(gcm(aes))";

/// Whether a secret of this namespace and name is the one the reflector mirrors.
pub fn is_ipsec_secret(namespace: Option<&str>, name: Option<&str>) -> bool {
    namespace == Some(IPSEC_SECRET_NAMESPACE) && name == Some(IPSEC_SECRET_NAME)
}

/// The IPsec key as the agents read it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpsecKeysRecord {
    /// The key id: the rotation generation (1–255).
    pub key_id: u8,
    /// Whether the line asked for per-node-pair keys (`+`; vpg derives them either way).
    pub per_pair: bool,
    /// `rfc4106(gcm(aes))`.
    pub algorithm: String,
    /// Key material in lowercase hex: the AES key then the 4-byte salt (20 or 36 bytes).
    pub key: String,
    /// ICV length in bits (128).
    pub icv_bits: u16,
}

impl fmt::Debug for IpsecKeysRecord {
    /// Everything but the key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IpsecKeysRecord")
            .field("key_id", &self.key_id)
            .field("per_pair", &self.per_pair)
            .field("algorithm", &self.algorithm)
            .field("key", &format_args!("<{} bytes>", self.key.len() / 2))
            .field("icv_bits", &self.icv_bits)
            .finish()
    }
}

fn invalid(why: &str) -> TranslateError {
    TranslateError::Invalid {
        field: "data.keys",
        // The reason only: never the line, which holds the key.
        value: why.to_string(),
    }
}

/// Parses a key line (`<id>[+] rfc4106(gcm(aes)) <hex> 128`). Errors never quote the key.
pub fn parse_keys_line(line: &str) -> Result<IpsecKeysRecord, TranslateError> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let [id, algorithm, key, icv] = words[..] else {
        return Err(invalid(&format!(
            "expected 4 words '<key id>[+] {IPSEC_ALGORITHM} <hex key> 128', found {}",
            words.len()
        )));
    };
    let (id, per_pair) = match id.strip_suffix('+') {
        Some(i) => (i, true),
        None => (id, false),
    };
    let key_id = match id.parse::<u8>() {
        Ok(0) | Err(_) => return Err(invalid("the key id must be a number from 1 to 255")),
        Ok(n) => n,
    };
    if algorithm != IPSEC_ALGORITHM {
        return Err(invalid(&format!(
            "algorithm '{}' is not supported (only {IPSEC_ALGORITHM})",
            algorithm.escape_debug()
        )));
    }
    let hex = key.strip_prefix("0x").unwrap_or(key);
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) || hex.len() % 2 != 0 {
        return Err(invalid("the key is not an even number of hex digits"));
    }
    if !matches!(hex.len() / 2, 20 | 36) {
        return Err(invalid(&format!(
            "the key has {} bytes; AES-GCM needs 20 (128-bit key and 4-byte salt) or 36 (256-bit)",
            hex.len() / 2
        )));
    }
    if icv != "128" {
        return Err(invalid("the ICV length must be 128"));
    }
    Ok(IpsecKeysRecord {
        key_id,
        per_pair,
        algorithm: IPSEC_ALGORITHM.to_string(),
        key: hex.to_ascii_lowercase(),
        icv_bits: 128,
    })
}

impl Reflect for Secret {
    const KIND: Kind = Kind::Secret;
    type Record = IpsecKeysRecord;

    fn translate(&self) -> Result<IpsecKeysRecord, TranslateError> {
        let m = &self.metadata;
        if m.name.as_deref().is_none_or(str::is_empty) {
            return Err(TranslateError::NoName);
        }
        if !is_ipsec_secret(m.namespace.as_deref(), m.name.as_deref()) {
            return Err(TranslateError::Invalid {
                field: "metadata.name",
                value: format!(
                    "only {IPSEC_SECRET_NAMESPACE}/{IPSEC_SECRET_NAME} is reflected, not {}/{}",
                    m.namespace.as_deref().unwrap_or("default"),
                    m.name.as_deref().unwrap_or_default()
                ),
            });
        }
        // `data` as the API server returns it; `stringData` as a manifest may write it.
        let from_data = self
            .data
            .as_ref()
            .and_then(|d| d.get(IPSEC_SECRET_ENTRY))
            .map(|b| String::from_utf8(b.0.clone()));
        let line = match from_data {
            Some(Ok(s)) => s,
            Some(Err(_)) => return Err(invalid("data.keys is not UTF-8 text")),
            None => self
                .string_data
                .as_ref()
                .and_then(|d| d.get(IPSEC_SECRET_ENTRY))
                .cloned()
                .ok_or(TranslateError::Missing("data.keys"))?,
        };
        parse_keys_line(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{item, testutil::obj};

    const KEY: &str = "0123456789abcdef0123456789abcdef01234567";

    fn secret(ns: &str, name: &str, data: &str) -> Secret {
        obj(&format!(
            r#"{{"apiVersion":"v1","kind":"Secret","metadata":{{"name":"{name}","namespace":"{ns}","resourceVersion":"5"}},"type":"Opaque","data":{{"keys":"{data}"}}}}"#
        ))
    }

    fn b64(s: &str) -> String {
        // A small encoder for the fixtures (the API server sends data base64-encoded).
        const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for c in s.as_bytes().chunks(3) {
            let n = c.iter().fold(0u32, |a, b| a << 8 | u32::from(*b)) << (8 * (3 - c.len()));
            for i in 0..4 {
                if i <= c.len() {
                    out.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    #[test]
    fn the_key_secret_from_api_json() {
        let s = secret(
            "kube-system",
            "vpg-ipsec-keys",
            &b64(&format!("3+ rfc4106(gcm(aes)) {KEY} 128\n")),
        );
        let r = s.translate().unwrap();
        assert_eq!((r.key_id, r.per_pair, r.icv_bits), (3, true, 128));
        assert_eq!(r.key, KEY);
        let (key, _) = item(&s).unwrap();
        assert_eq!(key, "/vpg/v1/secret/kube-system/vpg-ipsec-keys");
        assert!(!format!("{r:?}").contains("0123456789"), "{r:?}");
        // stringData, as a manifest may carry it; 256-bit key, no `+`, 0x prefix.
        let k256 = "AB".repeat(36);
        let s: Secret = obj(&format!(
            r#"{{"metadata":{{"name":"vpg-ipsec-keys","namespace":"kube-system"}},"stringData":{{"keys":"7 rfc4106(gcm(aes)) 0x{k256} 128"}}}}"#
        ));
        let r = s.translate().unwrap();
        assert_eq!((r.key_id, r.per_pair), (7, false));
        assert_eq!(r.key, k256.to_lowercase());
    }

    #[test]
    fn bad_lines_are_refused_without_quoting_the_key() {
        for (line, want) in [
            (format!("rfc4106(gcm(aes)) {KEY} 128"), "4 words"),
            (format!("0 rfc4106(gcm(aes)) {KEY} 128"), "key id"),
            (format!("256 rfc4106(gcm(aes)) {KEY} 128"), "key id"),
            (format!("1 cbc(aes) {KEY} 128"), "not supported"),
            (format!("1 rfc4106(gcm(aes)) {KEY}0 128"), "hex digits"),
            (format!("1 rfc4106(gcm(aes)) {KEY}zz 128"), "hex digits"),
            (format!("1 rfc4106(gcm(aes)) {KEY}00 128"), "21 bytes"),
            (format!("1 rfc4106(gcm(aes)) {KEY} 96"), "ICV"),
        ] {
            let e = parse_keys_line(&line).unwrap_err().to_string();
            assert!(e.contains(want), "{line}: {e}");
            assert!(e.contains("data.keys"), "{e}");
            assert!(!e.contains("0123456789"), "the key leaked: {e}");
        }
        let other = secret("kube-system", "other", &b64("x"));
        assert!(matches!(
            other.translate(),
            Err(TranslateError::Invalid {
                field: "metadata.name",
                ..
            })
        ));
        let empty: Secret =
            obj(r#"{"metadata":{"name":"vpg-ipsec-keys","namespace":"kube-system"}}"#);
        assert_eq!(
            empty.translate().unwrap_err(),
            TranslateError::Missing("data.keys")
        );
        assert!(is_ipsec_secret(Some("kube-system"), Some("vpg-ipsec-keys")));
        assert!(!is_ipsec_secret(None, Some("vpg-ipsec-keys")));
    }
}
