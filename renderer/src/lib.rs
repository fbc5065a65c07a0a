//! vpg's policy renderer: Kubernetes NetworkPolicy → per-pod rules → local tables shared by
//! pods with identical rules, plus exactly one global table per node (the renderer cache
//! Contiv-VPP introduced, in its egress orientation). `docs/renderer.md` explains the algorithm.
//!
//! | module | what |
//! |---|---|
//! | [`model`] | input records: [`Namespace`], [`Pod`], [`Cluster`] |
//! | [`policy`] | `networking.k8s.io/v1` NetworkPolicy `spec` as serde types, and their checks |
//! | [`selector`] | label selectors |
//! | [`rule`] | the output: [`Rule`], [`Ipv4Net`], [`Protocol`], [`PortRange`], `except` splitting, peer aggregation ([`cover`]) |
//! | [`acl_backend`] | [`AclBackend`]: tables and [`Changes`] → `vpg-acl` ACLs and interface lists, one change set per transaction |
//! | [`cache`] | [`Renderer`]: transactions, shared local tables, the global table, [`Changes`], resync |
//! | [`provenance`] | which policy (and rule) each table rule comes from, derived on demand: [`Renderer::explain`], [`Renderer::explain_pod`] |
//! | [`synth`] | a synthetic cluster at scale, for the benchmarks |
//! | [`kube`] | reading `kubectl get namespaces,pods,networkpolicies -A -o json` (or YAML) |
//! | [`reference`](mod@reference) | a direct evaluator of NetworkPolicy semantics, the model the tests check against |
//!
//! Meaning of the tables: a connection from A to B is allowed iff (when A and B are on
//! different nodes, or B is no pod) the first matching rule of A's node's global table permits
//! it, and the first matching rule of B's local table permits it; no local table means allowed,
//! a table with no matching rule denies. Replies are let through by reflective sessions on the
//! input side, so only connection set-up meets the tables.

#![forbid(unsafe_code)]

pub mod acl_backend;
pub mod cache;
pub mod error;
mod fast;
mod index;
pub mod kube;
pub mod model;
pub mod policy;
mod ports;
pub mod provenance;
pub mod reference;
pub mod rule;
pub mod selector;
pub mod synth;
mod tables;

pub use acl_backend::{AclBackend, AclChangeSet, BackendError, Interface, InterfaceAcls};
pub use cache::{
    labels, Changes, GlobalTable, LocalTable, NodeTables, Reassigned, Renderer, TableChange, Txn,
};
pub use error::{LoadError, ParseError, PolicyError};
pub use model::{Cluster, ContainerPort, Namespace, ObjectKey, Pod, PodKey, PolicyKey};
pub use policy::{NetworkPolicy, NetworkPolicySpec};
pub use provenance::{Explained, ExplainedRule, ExplainedTable, Origin, PodExplained, Role};
pub use rule::{cover, first_match, subtract, Action, Ipv4Net, PortRange, Protocol, Rule};
pub use tables::PodRules;
