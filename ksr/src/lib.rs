//! vpg-ksr: the Kubernetes state reflector.
//!
//! It turns the Kubernetes API (or a directory of manifests) into small normalized records in
//! a store that every node's agent watches: pods, namespaces, network policies, services,
//! endpoints, nodes and the one secret the data plane needs (the IPsec key), under
//! `/vpg/v1/<kind>/<namespace>/<name>`. The store is an embedded redb file on a single machine
//! and etcd in a cluster.
//!
//! - [`kinds`]: one module per kind, pure translation from the Kubernetes object to a record.
//! - [`store`]: the [`store::Store`] trait and its two implementations.
//! - [`reflector`]: one reflector per kind, mark-and-sweep resync, per-kind counters.
//! - [`source`]: kube-runtime watchers, or a manifest directory.
//! - [`run`]: the set of reflectors, the store probe and the status report.
//! - [`control`]: the unix-socket protocol of `vpg-ksr status` and `vpg-ksr dump`.
//!
//! See docs/ksr.md for the key layout, record versions and the resync algorithm.

pub mod control;
pub mod kinds;
pub mod model;
pub mod reflector;
pub mod run;
pub mod source;
pub mod store;

pub use model::{Kind, TranslateError};
pub use reflector::{Change, KindStats, KindStatus};
pub use run::{Reflectors, RunConfig, Status};
pub use store::{AnyStore, EmbeddedStore, EtcdStore, Store, StoreError};
