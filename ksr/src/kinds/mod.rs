//! One module per Kubernetes kind (the contiv layout): each turns the Kubernetes object into the
//! small normalized record the data plane needs, and rejects what it cannot use with a
//! [`TranslateError`] so the reflector counts and skips it.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::model::{encode, Kind, TranslateError};

pub mod endpoints;
pub mod namespace;
pub mod node;
pub mod pod;
pub mod policy;
pub mod secret;
pub mod service;

pub use endpoints::EndpointsRecord;
pub use namespace::NamespaceRecord;
pub use node::NodeRecord;
pub use pod::PodRecord;
pub use policy::PolicyRecord;
pub use secret::IpsecKeysRecord;
pub use service::ServiceRecord;

/// A Kubernetes type the reflector mirrors.
pub trait Reflect:
    kube::Resource<DynamicType = ()>
    + Clone
    + DeserializeOwned
    + std::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// Which kind this is.
    const KIND: Kind;
    /// Its normalized record.
    type Record: Serialize + DeserializeOwned + Clone + PartialEq + std::fmt::Debug + Send;

    /// Translates the object; an error means "skip and count".
    fn translate(&self) -> Result<Self::Record, TranslateError>;
}

/// The store key of an object, from its metadata.
pub fn key_of(kind: Kind, meta: &ObjectMeta) -> Result<String, TranslateError> {
    let name = meta
        .name
        .as_deref()
        .filter(|n| !n.is_empty())
        .ok_or(TranslateError::NoName)?;
    Ok(kind.key(meta.namespace.as_deref(), name))
}

/// An object translated for the store: its key and encoded record, or why it was skipped
/// (with its key when it has one, so a record that turned invalid can be removed).
pub type Item = Result<(String, Vec<u8>), (Option<String>, TranslateError)>;

/// Translates and encodes one object.
pub fn item<K: Reflect>(obj: &K) -> Item {
    let key = key_of(K::KIND, obj.meta()).map_err(|e| (None, e))?;
    match obj.translate() {
        Ok(rec) => Ok((key, encode(&rec))),
        Err(e) => Err((Some(key), e)),
    }
}

/// Namespace and name of a namespaced object (the translation has checked the name already).
pub(crate) fn ns_name(meta: &ObjectMeta) -> (String, String) {
    (
        meta.namespace
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        meta.name.clone().unwrap_or_default(),
    )
}

#[cfg(test)]
pub(crate) mod testutil {
    /// Decodes a Kubernetes JSON object as the API server sends it.
    pub fn obj<K: serde::de::DeserializeOwned>(json: &str) -> K {
        serde_json::from_str(json).expect("fixture decodes")
    }
}
