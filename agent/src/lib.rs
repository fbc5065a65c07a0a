//! vpg-agent: the per-node agent (DESIGN.md §1, docs/agent.md).
//!
//! It reads the cluster from the store the reflector fills and the local pods from the CNI
//! plugin's records, computes the vpgd configuration the node needs, diffs it against what
//! vpgd reports, and applies the difference in one transaction.
//!
//! | module | what |
//! |---|---|
//! | [`config`] | the node configuration (TOML), checked, errors naming the field |
//! | [`podrec`] | the CNI plugin's pod records |
//! | [`cluster`] | the store's records decoded; the renderer's input |
//! | [`model`] | vpgd's configuration as current (dumped) and desired (named) state; a model of vpgd's transaction semantics |
//! | [`desired`] | the desired state: a pure function of records and configuration |
//! | [`diff`] | the minimal transaction from current to desired |
//! | [`ipsec`] | the cluster's IPsec key; per node pair and direction SA keys and SPIs derived from it |
//! | [`vpgd`] | reading the current state from vpgd's dumps, applying a plan |
//! | [`sync`] | one resync: dump, diff, one transaction; counters |
//! | [`run`] | the loop: store watch, pod records, debounce, retries, vpgd restarts |
//! | [`status`] | the status socket and `vpg-agent status` |
//! | [`view`] | the status socket's policy and node views (`vpgctl show policy`, `show node`) |

#![forbid(unsafe_code)]

pub mod cluster;
pub mod config;
pub mod desired;
pub mod diff;
pub mod ipsec;
pub mod model;
pub mod podrec;
pub mod podwatch;
pub mod policycache;
pub mod run;
pub mod status;
pub mod sync;
pub mod view;
pub mod vpgd;
