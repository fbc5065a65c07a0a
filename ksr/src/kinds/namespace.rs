//! core/v1 Namespace → [`NamespaceRecord`]: the labels namespace selectors match on.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use serde::{Deserialize, Serialize};

use super::Reflect;
use crate::model::{Kind, TranslateError};

/// A namespace as the data plane sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamespaceRecord {
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
}

impl Reflect for Namespace {
    const KIND: Kind = Kind::Namespace;
    type Record = NamespaceRecord;

    fn translate(&self) -> Result<NamespaceRecord, TranslateError> {
        Ok(NamespaceRecord {
            name: self.metadata.name.clone().ok_or(TranslateError::NoName)?,
            labels: self.metadata.labels.clone().unwrap_or_default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::{item, testutil::obj};

    #[test]
    fn namespace_from_api_json() {
        let ns: Namespace = obj(
            r#"{"apiVersion":"v1","kind":"Namespace","metadata":{"creationTimestamp":"2024-05-01T10:00:00Z","labels":{"kubernetes.io/metadata.name":"prod","team":"a"},"name":"prod","resourceVersion":"311","uid":"7c1e0d1a-5b1f-4b8e-9d57-1c2f0f1e0a11"},"spec":{"finalizers":["kubernetes"]},"status":{"phase":"Active"}}"#,
        );
        let r = ns.translate().unwrap();
        assert_eq!(r.name, "prod");
        assert_eq!(r.labels.get("team").map(String::as_str), Some("a"));
        let (key, _) = item(&ns).unwrap();
        assert_eq!(key, "/vpg/v1/namespace/prod");
    }

    #[test]
    fn nameless_namespace_is_skipped() {
        let ns: Namespace = obj(r#"{"metadata":{}}"#);
        assert_eq!(item(&ns).unwrap_err(), (None, TranslateError::NoName));
    }
}
