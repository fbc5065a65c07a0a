//! One resync: compute the desired state, read vpgd's, diff, apply the difference as one
//! transaction. Nothing is sent when vpgd already agrees (an agent restart with nothing
//! changed makes only dumps, no configuration call).
//!
//! A refused transaction changes nothing in vpgd (all-or-nothing). When the refused item
//! concerns one pod's interface (its host veth vanished between the CNI record and now, for
//! instance), that pod is left out and the pass tried again at once, so one bad pod never
//! blocks the node; the pod is retried at the next periodic resync or when the records change.
//! Any other refusal is logged with vpgd's error and retried later with backoff.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use vpg_api::Client;

use crate::cluster::ClusterState;
use crate::config::NodeConfig;
use crate::desired::{compute, is_pod_ifname, Computed, Inputs};
use crate::diff::diff;
use crate::model::Ownership;
use crate::podrec::LocalPod;
use crate::status::{rfc3339, Status, SyncState};
use crate::view::{self, Applied};
use crate::vpgd::{self, VpgdError};

/// How many pods one pass may leave out before giving up (each exclusion is one more try).
pub const MAX_EXCLUSIONS: usize = 16;

/// What a successful pass did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PassOutcome {
    /// Items applied (0: vpgd already agreed).
    pub applied: usize,
    /// Pods left out during this pass.
    pub newly_excluded: Vec<String>,
}

/// The sync engine: the vpgd connection and what it left out.
pub struct Syncer {
    cfg: NodeConfig,
    own: Ownership,
    socket: PathBuf,
    client: Option<Client>,
    /// Pod interfaces left out after vpgd refused them.
    pub excluded: BTreeSet<String>,
    /// What the last successful pass applied (the status socket's policy and node views).
    pub applied: Option<Arc<Applied>>,
}

impl Syncer {
    /// A syncer for this node; it connects on the first pass.
    pub fn new(cfg: NodeConfig) -> Syncer {
        Syncer {
            own: Ownership {
                uplink: cfg.uplink.name.clone(),
                acl_base: cfg.acl_base,
            },
            socket: cfg.vpgd_socket.clone(),
            cfg,
            client: None,
            excluded: BTreeSet::new(),
            applied: None,
        }
    }

    /// Whether a connection is held.
    pub fn connected(&self) -> bool {
        self.client.is_some()
    }

    /// Checks the connection (`show_version`); a failure drops it (the next pass reconnects
    /// and, vpgd having restarted, replays everything).
    pub fn probe(&mut self) -> bool {
        let ok = match &mut self.client {
            Some(c) => c.version().is_ok(),
            None => false,
        };
        if !ok {
            self.client = None;
        }
        ok
    }

    /// The desired state for these inputs (what the pass will apply).
    pub fn compute(&self, cluster: &ClusterState, pods: &[LocalPod]) -> Computed {
        compute(Inputs {
            cfg: &self.cfg,
            cluster,
            pods,
            excluded: &self.excluded,
        })
    }

    /// One resync; `status` gets the desired state's summary and the counters.
    pub fn pass(
        &mut self,
        cluster: &ClusterState,
        pods: &[LocalPod],
        status: &std::sync::Mutex<Status>,
    ) -> Result<PassOutcome, VpgdError> {
        let mut newly_excluded = Vec::new();
        for _ in 0..=MAX_EXCLUSIONS {
            let t0 = std::time::Instant::now();
            let computed = self.compute(cluster, pods);
            let compute_time = t0.elapsed();
            {
                let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                st.pods = computed.pods;
                st.tunnels = computed.tunnels;
                st.services = computed.services;
                st.local_tables = computed.local_tables;
                st.notes = computed.notes.clone();
                st.objects = computed.why.clone();
                st.excluded = self.excluded.iter().cloned().collect();
            }
            if self.client.is_none() {
                let c = vpgd::connect(&self.socket)?;
                self.client = Some(c);
                let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                st.vpgd_connects += 1;
                st.vpgd_connected = true;
            }
            let client = self.client.as_mut().expect("connected just above");
            let t1 = std::time::Instant::now();
            let mut phases = (std::time::Duration::ZERO, std::time::Duration::ZERO);
            let result = vpgd::read_current(client).and_then(|cur| {
                phases.0 = t1.elapsed();
                let plan = diff(&computed.desired, &cur, &self.own);
                phases.1 = t1.elapsed() - phases.0;
                if plan.is_empty() {
                    return Ok((plan, 0, cur));
                }
                match vpgd::apply(client, &plan) {
                    Ok(a) => Ok((plan, a.count, cur)),
                    // Name the interface the refused item concerns.
                    Err(VpgdError::Refused(e)) => {
                        let subject = e.item.and_then(|i| plan.subjects.get(i).cloned().flatten());
                        Err(VpgdError::RefusedAt(e, subject))
                    }
                    Err(e) => Err(e),
                }
            });
            match result {
                Ok((plan, count, cur)) => {
                    let now = rfc3339(SystemTime::now());
                    self.applied = Some(Arc::new(Applied {
                        cluster: cluster.clone(),
                        pods: pods.to_vec(),
                        current: view::after(cur, &plan.items),
                        computed,
                        at: now.clone(),
                    }));
                    let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                    st.resyncs += 1;
                    st.state = SyncState::InSync;
                    st.last_resync = Some(now.clone());
                    st.last_error = None;
                    if count == 0 && st.resyncs == 1 {
                        // The first pass after a start: what a restart cost.
                        tracing::info!(
                            compute_ms = compute_time.as_millis() as u64,
                            dump_ms = phases.0.as_millis() as u64,
                            diff_ms = phases.1.as_millis() as u64,
                            "in sync with nothing to change"
                        );
                    }
                    if count > 0 {
                        st.transactions += 1;
                        st.changes_applied += count as u64;
                        st.last_change = Some(now);
                        let mut ops: BTreeMap<String, usize> = BTreeMap::new();
                        for i in &plan.items {
                            *ops.entry(i.op().to_string()).or_default() += 1;
                        }
                        // Where a pass spends its time, for operators sizing big nodes.
                        tracing::info!(
                            items = count,
                            ?ops,
                            compute_ms = compute_time.as_millis() as u64,
                            dump_ms = phases.0.as_millis() as u64,
                            diff_ms = phases.1.as_millis() as u64,
                            apply_ms = (t1.elapsed() - phases.0 - phases.1).as_millis() as u64,
                            "applied one transaction"
                        );
                        st.last_transaction = ops;
                    }
                    return Ok(PassOutcome {
                        applied: count,
                        newly_excluded,
                    });
                }
                Err(VpgdError::RefusedAt(e, Some(s)))
                    if is_pod_ifname(&s) && !self.excluded.contains(&s) =>
                {
                    tracing::warn!(
                        interface = %s,
                        "vpgd refused the pod's configuration ({e}); leaving the pod out and retrying"
                    );
                    self.excluded.insert(s.clone());
                    newly_excluded.push(s);
                }
                Err(VpgdError::RefusedAt(e, _)) => return Err(VpgdError::Refused(e)),
                Err(e @ VpgdError::Unreachable(_)) => {
                    self.client = None;
                    let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                    st.vpgd_connected = false;
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(VpgdError::Unusable(format!(
            "more than {MAX_EXCLUSIONS} pods refused in one pass"
        )))
    }
}
