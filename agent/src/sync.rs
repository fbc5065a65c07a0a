//! One resync: compute the desired state, read vpgd's, diff, apply the difference as one
//! transaction. Nothing is sent when vpgd already agrees (an agent restart with nothing
//! changed makes only dumps, no configuration call).
//!
//! A refused transaction changes nothing in vpgd (all-or-nothing). When the refused item
//! concerns one pod's interface (its host veth vanished between the CNI record and now, for
//! instance), that pod is left out and the pass tried again at once, so one bad pod never
//! blocks the node; the pod is retried at the next periodic resync or when the records change.
//! Any other refusal is logged with vpgd's error and retried later with backoff.
//!
//! With encryption on, the pass also keeps the key ring (the secret's key, and during a
//! rotation the previous one until outbound has switched: [`Keyring`]) and guards AES-GCM's
//! one rule: a (key, nonce) pair is never used twice. The nonce is the SA's sequence number,
//! which starts again at 1 when an SA is added; so an outbound SA key installed once is never
//! installed again ([`UsedKeys`], kept in a file across agent restarts). A vpgd restart loses
//! its SAs: their keys are withheld (traffic to that node is dropped, never sent in clear, and
//! status says so) until the cluster's key is rotated to a new key id.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use vpg_api::Client;

use crate::cluster::ClusterState;
use crate::config::NodeConfig;
use crate::desired::{compute_with, is_pod_ifname, Computed, EspKeys, Inputs};
use crate::diff::diff;
use crate::ipsec::MasterKey;
use crate::model::{Current, Ownership};
use crate::podrec::LocalPod;
use crate::policycache::PolicyCache;
use crate::status::{rfc3339, EncryptionStatus, Status, SyncState};
use crate::view::{self, Applied};
use crate::vpgd::{self, VpgdError};

/// The IPsec keys over time: the secret's key, and during a rotation the one before it.
///
/// Rotation (Cilium's model, every node on its own clock): when the secret's key changes, the
/// new key's SAs are installed at once both ways, but outbound traffic keeps the old key for
/// `switch_delay`, so every other node has had time to install the new inbound SAs before
/// the first packet sealed with it arrives. Then outbound switches (one protect-rule replace)
/// and the old key's inbound SAs are retired: they accept for the grace period (the other
/// nodes switch at their own time), then are deleted.
#[derive(Debug, Default)]
pub struct Keyring {
    /// The secret's key and when this agent first saw it.
    current: Option<(MasterKey, Instant)>,
    /// The key outbound used before `current` (until the switch).
    previous: Option<MasterKey>,
}

impl Keyring {
    /// Takes the store's key at `now`: a new key (another id or material) becomes current;
    /// the one outbound uses so far stays as the previous key until the switch. No usable key
    /// (the secret deleted, or refused by the reflector for a typo, which removes its record):
    /// the keys in use stay — dropping all traffic between nodes for a bad edit would be worse,
    /// and a key is replaced by rotating to a new one, not by deleting it. Before any key,
    /// there is none (traffic to other nodes is dropped, never sent in clear).
    pub fn observe(&mut self, key: Option<MasterKey>, now: Instant) {
        let Some(k) = key else {
            return;
        };
        if self.current.as_ref().is_some_and(|(c, _)| *c == k) {
            return;
        }
        let old = self.current.take().map(|(c, _)| c);
        // A second change before the switch: outbound still uses the previous key, which
        // stays; the skipped key was never used outbound.
        if self.previous.is_none() {
            self.previous = old;
        }
        if self.previous.as_ref() == Some(&k) {
            self.previous = None;
        }
        self.current = Some((k, now));
    }

    /// The current key.
    pub fn current(&self) -> Option<&MasterKey> {
        self.current.as_ref().map(|(k, _)| k)
    }

    /// The previous key (during a rotation, until the switch).
    pub fn previous(&self) -> Option<&MasterKey> {
        self.previous.as_ref()
    }

    /// When outbound switches to the current key (`None`: no rotation in progress).
    pub fn switch_at(&self, delay: Duration) -> Option<Instant> {
        match (&self.current, &self.previous) {
            (Some((_, seen)), Some(_)) => Some(*seen + delay),
            _ => None,
        }
    }

    /// Forgets the previous key once outbound has switched (its inbound SAs are then retired
    /// by the diff, since nothing wants them).
    pub fn tidy(&mut self, now: Instant, delay: Duration) {
        if self.switch_at(delay).is_some_and(|t| now >= t) {
            self.previous = None;
        }
    }

    /// The keys of the desired state at `now`.
    pub fn keys(&self, now: Instant, delay: Duration) -> Option<EspKeys<'_>> {
        let (current, _) = self.current.as_ref()?;
        let rotating = self.switch_at(delay).is_some_and(|t| now < t);
        Some(EspKeys {
            current,
            previous: self.previous.as_ref().filter(|_| rotating),
            outbound_previous: rotating,
        })
    }
}

/// Fingerprints of every outbound SA key this node has installed, kept in a file: installing
/// one again would restart its sequence numbers, and so repeat AES-GCM nonces under one key.
#[derive(Debug)]
pub struct UsedKeys {
    path: PathBuf,
    set: BTreeSet<String>,
    /// The file could not be read: which keys were used is unknown, so no new outbound key is
    /// installed (fail closed) until it is repaired or removed by an operator.
    broken: Option<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct UsedFile {
    version: u32,
    /// Key fingerprints (never keys).
    fingerprints: BTreeSet<String>,
}

impl UsedKeys {
    /// Reads the file (none yet: nothing used).
    pub fn load(path: &Path) -> UsedKeys {
        let (set, broken) = match std::fs::read(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (BTreeSet::new(), None),
            Err(e) => (BTreeSet::new(), Some(format!("{}: {e}", path.display()))),
            Ok(b) => match serde_json::from_slice::<UsedFile>(&b) {
                Ok(f) if f.version == 1 => (f.fingerprints, None),
                Ok(f) => (
                    BTreeSet::new(),
                    Some(format!("{}: version {} unknown", path.display(), f.version)),
                ),
                Err(e) => (BTreeSet::new(), Some(format!("{}: {e}", path.display()))),
            },
        };
        UsedKeys {
            path: path.to_path_buf(),
            set,
            broken,
        }
    }

    /// Whether the key with this fingerprint may not be installed (again).
    pub fn refused(&self, fingerprint: &str) -> bool {
        self.broken.is_some() || self.set.contains(fingerprint)
    }

    /// Why no key may be installed, when the file is unusable.
    pub fn broken(&self) -> Option<&str> {
        self.broken.as_deref()
    }

    /// Records fingerprints; writes the file (atomically, synced) when something is new.
    pub fn record<'a>(&mut self, fps: impl IntoIterator<Item = &'a String>) -> std::io::Result<()> {
        let before = self.set.len();
        self.set.extend(fps.into_iter().cloned());
        if self.set.len() == before || self.broken.is_some() {
            return Ok(());
        }
        self.save()
    }

    /// Forgets fingerprints whose SAs vpgd refused (nothing of that transaction was applied).
    pub fn forget(&mut self, fps: &BTreeSet<String>) -> std::io::Result<()> {
        let before = self.set.len();
        self.set.retain(|f| !fps.contains(f));
        if self.set.len() == before {
            return Ok(());
        }
        self.save()
    }

    fn save(&self) -> std::io::Result<()> {
        use std::io::Write;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = self.path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(&UsedFile {
            version: 1,
            fingerprints: self.set.clone(),
        })
        .map_err(std::io::Error::other)?;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&body)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)
    }
}

/// What [`withhold_reused`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Reused {
    /// Outbound SAs left out: their key was used before and vpgd cannot continue its sequence.
    pub withheld: usize,
    /// Outbound SAs whose key was used before and that vpgd's sequence file records: installed
    /// again, and vpgd continues them after the numbers already reserved.
    pub continued: usize,
}

/// The desired outbound SAs whose key was installed before but that vpgd no longer holds (in
/// any state, after a vpgd restart): installing them again from sequence number 1 would repeat
/// nonces. Where vpgd keeps a sequence file that records the key, the SA is installed again:
/// vpgd starts it after the reservation. (The record cannot vanish between the dump that shows
/// it and the transaction: both go over one connection, and a vpgd restart breaks it.)
/// Otherwise it is left out, and its rules keep the other SAs (none left: traffic to that node
/// is dropped, not sent in clear).
pub fn withhold_reused(
    c: &mut Computed,
    cur: &Current,
    own: &Ownership,
    used: &UsedKeys,
) -> Reused {
    let held: BTreeSet<&str> = cur
        .esp_sas
        .iter()
        .filter(|(id, s)| own.owns_esp(**id) && s.outbound)
        .map(|(_, s)| s.fingerprint.as_str())
        .collect();
    let recorded = |fp: &str| {
        cur.esp_sequences
            .as_ref()
            .is_some_and(|q| q.keys.contains(fp))
    };
    let d = &mut c.desired;
    let mut withheld = Vec::new();
    let mut continued = 0;
    for (n, s) in d.esp_sas.iter().filter(|(n, _)| n.outbound) {
        let fp = s.key.fingerprint();
        if held.contains(fp.as_str()) || !used.refused(&fp) {
            continue;
        }
        if recorded(&fp) {
            continued += 1;
        } else {
            withheld.push(*n);
        }
    }
    for n in &withheld {
        d.esp_sas.remove(n);
        for r in d.esp_rules.values_mut() {
            r.retain(|x| x != n);
        }
        c.notes.push(match (used.broken(), &cur.esp_sequences) {
            (Some(why), _) => format!(
                "encryption: sa {n} withheld: the record of used keys is unusable ({why}); fix or remove it"
            ),
            (None, Some(q)) => format!(
                "encryption: sa {n} withheld: its key was used before by a vpgd that lost it (restart) and vpgd's sequence file {} has no record of it; reusing it would repeat AES-GCM nonces — rotate the cluster's key (new key id in kube-system/vpg-ipsec-keys)",
                q.file
            ),
            (None, None) => format!(
                "encryption: sa {n} withheld: its key was used before by a vpgd that lost it (restart); reusing it would repeat AES-GCM nonces — rotate the cluster's key (new key id in kube-system/vpg-ipsec-keys), and give vpgd a sequence file ([esp] sequence_file) so that a restart continues instead"
            ),
        });
    }
    c.esp_sas = d.esp_sas.len();
    Reused {
        withheld: withheld.len(),
        continued,
    }
}

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
    /// The policy renderer, kept between passes so a change re-renders only what it touches.
    policies: PolicyCache,
    /// The IPsec keys (encryption on).
    keyring: Keyring,
    /// Outbound keys installed so far (encryption on).
    used: Option<UsedKeys>,
    /// vpgd's workers, as last seen.
    workers: u32,
    /// When a pass is due for the encryption's timers (the outbound switch of a rotation, the
    /// end of a retired SA's grace period).
    esp_wake: Option<Instant>,
}

impl Syncer {
    /// A syncer for this node; it connects on the first pass.
    pub fn new(cfg: NodeConfig) -> Syncer {
        Syncer {
            own: Ownership {
                uplink: cfg.uplink.name.clone(),
                acl_base: cfg.acl_base,
                esp_base: cfg
                    .encryption
                    .as_ref()
                    .map_or(crate::config::Encryption::default().id_base, |e| e.id_base),
            },
            socket: cfg.vpgd_socket.clone(),
            used: cfg
                .encryption
                .as_ref()
                .map(|e| UsedKeys::load(&e.used_keys)),
            cfg,
            client: None,
            excluded: BTreeSet::new(),
            applied: None,
            policies: PolicyCache::default(),
            keyring: Keyring::default(),
            workers: 1,
            esp_wake: None,
        }
    }

    /// When the next pass is due for the encryption's timers.
    pub fn esp_wake(&self) -> Option<Instant> {
        self.esp_wake
    }

    fn switch_delay(&self) -> Duration {
        self.cfg
            .encryption
            .as_ref()
            .map_or(Duration::ZERO, |e| e.switch_delay)
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

    /// The desired state for these inputs (what the pass will apply), at `now`.
    pub fn compute(&mut self, cluster: &ClusterState, pods: &[LocalPod], now: Instant) -> Computed {
        let keys = self.keyring.keys(now, self.switch_delay());
        compute_with(
            Inputs {
                cfg: &self.cfg,
                cluster,
                pods,
                excluded: &self.excluded,
                keys,
                workers: self.workers,
            },
            &mut self.policies,
        )
    }

    /// Takes the store's IPsec key into the key ring; a record that cannot be used is noted.
    fn observe_key(&mut self, cluster: &ClusterState, now: Instant) -> Option<String> {
        self.cfg.encryption.as_ref()?;
        let (key, note) = match cluster.ipsec_keys.as_ref().map(MasterKey::from_record) {
            None => (None, None),
            Some(Ok(k)) => (Some(k), None),
            Some(Err(e)) => (None, Some(format!("the IPsec key record is unusable: {e}"))),
        };
        let note = match (&key, self.keyring.current(), note) {
            (None, Some(k), why) => Some(format!(
                "encryption: {}; still using key id {} (fingerprint {}) — rotate to a new key to replace it",
                why.unwrap_or_else(|| "the IPsec key secret (kube-system/vpg-ipsec-keys) is gone".into()),
                k.id,
                k.fingerprint()
            )),
            (_, _, why) => why.map(|w| format!("encryption: {w}")),
        };
        let changed = key.is_some() && self.keyring.current() != key.as_ref();
        self.keyring.observe(key, now);
        if changed {
            match (self.keyring.current(), self.keyring.previous()) {
                (Some(k), Some(p)) => tracing::info!(
                    key_id = k.id,
                    fingerprint = %k.fingerprint(),
                    previous_key_id = p.id,
                    switch_in = ?self.switch_delay(),
                    "new IPsec key: inbound SAs now, outbound switches after the delay"
                ),
                (Some(k), None) => tracing::info!(
                    key_id = k.id,
                    fingerprint = %k.fingerprint(),
                    "IPsec key in use"
                ),
                (None, _) => {}
            }
        }
        self.keyring.tidy(now, self.switch_delay());
        note
    }

    fn encryption_status(
        &self,
        c: &Computed,
        reused: Reused,
        cur: Option<&Current>,
        now: Instant,
    ) -> Option<EncryptionStatus> {
        self.cfg.encryption.as_ref()?;
        let keys = self.keyring.keys(now, self.switch_delay());
        Some(EncryptionStatus {
            key_id: keys.map(|k| k.current.id),
            fingerprint: keys.map(|k| k.current.fingerprint()),
            previous_key_id: keys.and_then(|k| k.previous.map(|p| p.id)),
            outbound_key_id: keys.map(|k| match k.previous {
                Some(p) if k.outbound_previous => p.id,
                _ => k.current.id,
            }),
            switch_in_ms: self
                .keyring
                .switch_at(self.switch_delay())
                .filter(|t| *t > now)
                .map(|t| (t - now).as_millis() as u64),
            sas: c.esp_sas,
            withheld: reused.withheld,
            continued: reused.continued,
            vpgd_sequence_file: cur
                .and_then(|c| c.esp_sequences.as_ref())
                .map(|q| q.file.clone()),
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
        let now = Instant::now();
        let started = now;
        self.esp_wake = None;
        let key_note = self.observe_key(cluster, now);
        let publish =
            |computed: &Computed, enc: Option<EncryptionStatus>, excluded: &BTreeSet<String>| {
                let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                st.pods = computed.pods;
                st.tunnels = computed.tunnels;
                st.services = computed.services;
                st.local_tables = computed.local_tables;
                st.notes = computed.notes.clone();
                st.objects = computed.why.clone();
                st.excluded = excluded.iter().cloned().collect();
                st.encryption = enc;
            };
        for _ in 0..=MAX_EXCLUSIONS {
            let t0 = Instant::now();
            let mut computed = self.compute(cluster, pods, now);
            let compute_time = t0.elapsed();
            computed.notes.extend(key_note.clone());
            publish(
                &computed,
                self.encryption_status(&computed, Reused::default(), None, now),
                &self.excluded,
            );
            if self.client.is_none() {
                let c = vpgd::connect(&self.socket)?;
                self.client = Some(c);
                let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                st.vpgd_connects += 1;
                st.vpgd_connected = true;
            }
            let client = self.client.as_mut().expect("connected just above");
            let t1 = Instant::now();
            let cur = match vpgd::read_current(client, self.cfg.encryption.is_some()) {
                Ok(cur) => cur,
                Err(e) => {
                    if matches!(e, VpgdError::Unreachable(_)) {
                        self.client = None;
                        let mut st = status.lock().unwrap_or_else(|e| e.into_inner());
                        st.vpgd_connected = false;
                    }
                    return Err(e);
                }
            };
            if self.cfg.encryption.is_some() {
                // SA owners depend on vpgd's worker count (known once connected).
                if cur.workers.max(1) != self.workers {
                    self.workers = cur.workers.max(1);
                    computed = self.compute(cluster, pods, now);
                    computed.notes.extend(key_note.clone());
                }
                self.esp_wake = self.esp_timers(&cur, now);
            }
            // Outbound keys: what vpgd holds counts as used; keys used before and lost are
            // withheld; the new ones are recorded before they are installed.
            let mut fresh_out: BTreeSet<String> = BTreeSet::new();
            if let Some(used) = &mut self.used {
                let held: Vec<String> = cur
                    .esp_sas
                    .iter()
                    .filter(|(id, s)| self.own.owns_esp(**id) && s.outbound)
                    .map(|(_, s)| s.fingerprint.clone())
                    .collect();
                if let Err(e) = used.record(&held) {
                    tracing::warn!("recording used keys: {e}");
                }
                let reused = withhold_reused(&mut computed, &cur, &self.own, used);
                fresh_out = computed
                    .desired
                    .esp_sas
                    .iter()
                    .filter(|(n, _)| n.outbound)
                    .map(|(_, s)| s.key.fingerprint())
                    .filter(|fp| !held.contains(fp))
                    .collect();
                if let Err(e) = used.record(&fresh_out) {
                    // Without the record, a later restart could reuse these keys: refuse.
                    return Err(VpgdError::Unusable(format!(
                        "cannot record the outbound keys about to be used: {e}"
                    )));
                }
                publish(
                    &computed,
                    self.encryption_status(&computed, reused, Some(&cur), now),
                    &self.excluded,
                );
            }
            let client = self.client.as_mut().expect("connected above");
            let dump_time = t1.elapsed();
            let result = {
                let plan = diff(&computed.desired, &cur, &self.own);
                if plan.is_empty() {
                    Ok((plan, 0))
                } else {
                    match vpgd::apply(client, &plan) {
                        Ok(a) => Ok((plan, a.count)),
                        // Name the interface the refused item concerns.
                        Err(VpgdError::Refused(e)) => {
                            let subject =
                                e.item.and_then(|i| plan.subjects.get(i).cloned().flatten());
                            Err(VpgdError::RefusedAt(e, subject))
                        }
                        Err(e) => Err(e),
                    }
                }
            };
            if let (Err(VpgdError::RefusedAt(..)), Some(used)) = (&result, &mut self.used) {
                // Nothing of a refused transaction was applied: those keys were not used.
                if let Err(e) = used.forget(&fresh_out) {
                    tracing::warn!("recording used keys: {e}");
                }
            }
            match result {
                Ok((plan, count)) => {
                    // Where a pass spends its time, for operators sizing big nodes (the
                    // diff is negligible next to these).
                    let times = (
                        compute_time.as_millis() as u64,
                        dump_time.as_millis() as u64,
                        (t1.elapsed() - dump_time).as_millis() as u64,
                    );
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
                    // SAs retired now: delete them once their grace period is over.
                    let retired = plan.items.iter().filter_map(|i| match i {
                        vpg_api::ConfigItem::EspSaRetire { grace_s, .. } => Some(
                            started + Duration::from_secs(*grace_s) + Duration::from_millis(1100),
                        ),
                        _ => None,
                    });
                    if let Some(t) = retired.min() {
                        self.esp_wake = Some(self.esp_wake.map_or(t, |w| w.min(t)));
                    }
                    if count == 0 && st.resyncs == 1 {
                        // The first pass after a start: what a restart cost.
                        tracing::info!(
                            compute_ms = times.0,
                            dump_ms = times.1,
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
                        tracing::info!(
                            items = count,
                            ?ops,
                            compute_ms = times.0,
                            dump_ms = times.1,
                            diff_apply_ms = times.2,
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

    /// The next encryption deadline: the rotation's outbound switch, or just after the end of
    /// the grace period of one of the agent's retiring SAs (deleted once expired).
    fn esp_timers(&self, cur: &Current, now: Instant) -> Option<Instant> {
        let switch = self
            .keyring
            .switch_at(self.switch_delay())
            .filter(|t| *t > now);
        let retire = cur
            .esp_sas
            .iter()
            .filter(|(id, s)| self.own.owns_esp(**id) && s.state == crate::model::SaState::Retiring)
            .map(|(_, s)| {
                now + Duration::from_secs(s.retire_in_s.unwrap_or(0)) + Duration::from_millis(1100)
            })
            .min();
        match (switch, retire) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::desired::tests::cluster;
    use crate::model::{CurSa, SaState};

    const D: Duration = Duration::from_secs(2);

    #[test]
    fn keyring_rotates_with_a_switch_delay_and_forgets_the_old_key_after() {
        let (k3, k4, k5) = (
            MasterKey::for_test(3, 1, 20),
            MasterKey::for_test(4, 2, 20),
            MasterKey::for_test(5, 3, 20),
        );
        let t0 = Instant::now();
        let mut r = Keyring::default();
        assert!(r.keys(t0, D).is_none());
        // The first key: used both ways at once (nothing to switch from).
        r.observe(Some(k3.clone()), t0);
        let k = r.keys(t0, D).unwrap();
        assert_eq!(
            (k.current.id, k.previous.is_none(), k.outbound_previous),
            (3, true, false)
        );
        assert_eq!(r.switch_at(D), None);
        r.observe(Some(k3.clone()), t0 + D);
        assert_eq!(r.switch_at(D), None, "the same key again changes nothing");
        // A new key: both during the delay, outbound on the old one.
        let t1 = t0 + Duration::from_secs(10);
        r.observe(Some(k4.clone()), t1);
        assert_eq!(r.switch_at(D), Some(t1 + D));
        let k = r.keys(t1 + D / 2, D).unwrap();
        assert_eq!(
            (k.current.id, k.previous.map(|p| p.id), k.outbound_previous),
            (4, Some(3), true)
        );
        // A third key before the switch: outbound stays on the key it uses (3), 4 is skipped.
        let t2 = t1 + D / 2;
        r.observe(Some(k5.clone()), t2);
        let k = r.keys(t2, D).unwrap();
        assert_eq!((k.current.id, k.previous.map(|p| p.id)), (5, Some(3)));
        assert_eq!(r.switch_at(D), Some(t2 + D), "the delay starts again");
        // After the switch: the current key alone; tidy forgets the old one.
        let k = r.keys(t2 + D, D).unwrap();
        assert_eq!(
            (k.current.id, k.previous.is_none(), k.outbound_previous),
            (5, true, false)
        );
        r.tidy(t2 + D, D);
        assert!(r.previous().is_none() && r.switch_at(D).is_none());
        // Rotating back to the key outbound still uses cancels the rotation.
        r.observe(Some(k3.clone()), t2 + 2 * D);
        r.observe(Some(k5.clone()), t2 + 2 * D);
        assert_eq!(
            r.previous().map(|p| p.id),
            None,
            "back to the key in use: no rotation"
        );
        // The secret deleted (or refused): the key in use stays.
        r.observe(None, t2 + 3 * D);
        assert_eq!(r.keys(t2 + 3 * D, D).map(|k| k.current.id), Some(5));
    }

    fn enc_cfg(used: &Path) -> NodeConfig {
        let mut c = crate::desired::tests::cfg();
        c.encryption = Some(crate::config::Encryption {
            used_keys: used.to_path_buf(),
            ..Default::default()
        });
        c
    }

    #[test]
    fn used_keys_are_remembered_and_never_installed_again_after_vpgd_lost_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("used.json");
        let cfg = enc_cfg(&path);
        let own = Ownership {
            uplink: "up0".into(),
            acl_base: 1000,
            esp_base: 1000,
        };
        let k = MasterKey::for_test(3, 1, 20);
        let computed = || {
            crate::desired::compute(Inputs {
                cfg: &cfg,
                cluster: &cluster(),
                pods: &[],
                excluded: &BTreeSet::new(),
                keys: Some(EspKeys {
                    current: &k,
                    previous: None,
                    outbound_previous: false,
                }),
                workers: 1,
            })
        };
        let c = computed();
        let outs: Vec<String> = c
            .desired
            .esp_sas
            .iter()
            .filter(|(n, _)| n.outbound)
            .map(|(_, s)| s.key.fingerprint())
            .collect();
        assert_eq!(outs.len(), 2, "n2 and n3");
        // Fresh: nothing used, nothing withheld.
        let mut used = UsedKeys::load(&path);
        let mut c1 = computed();
        assert_eq!(
            withhold_reused(&mut c1, &Current::default(), &own, &used),
            Reused::default()
        );
        used.record(&outs).unwrap();
        // vpgd holds them: still fine (the diff keeps them, nothing is re-added).
        let mut cur = Current::default();
        for (i, fp) in outs.iter().enumerate() {
            cur.esp_sas.insert(
                1000 + i as u32,
                CurSa {
                    spi: 1,
                    outbound: true,
                    transport: true,
                    crypto: vpg_api::esp::EspCrypto::AesGcm128,
                    key_id: 3,
                    fingerprint: fp.clone(),
                    esn: true,
                    replay_window: 1024,
                    worker: 0,
                    lifetime: false,
                    state: SaState::Active,
                    retire_in_s: None,
                },
            );
        }
        let mut c2 = computed();
        assert_eq!(
            withhold_reused(&mut c2, &cur, &own, &used),
            Reused::default()
        );
        assert_eq!(c2, c1);
        // A restarted agent reads the file; a restarted vpgd holds nothing: withheld, the
        // rules left without SAs (dropped, not in clear), a note says why and what to do.
        let used = UsedKeys::load(&path);
        let mut c3 = computed();
        let withheld = Reused {
            withheld: 2,
            continued: 0,
        };
        assert_eq!(
            withhold_reused(&mut c3, &Current::default(), &own, &used),
            withheld
        );
        assert!(c3.desired.esp_sas.keys().all(|n| !n.outbound));
        assert!(c3.desired.esp_rules.values().all(Vec::is_empty));
        assert!(
            c3.notes
                .iter()
                .any(|n| n.contains("rotate the cluster's key") && n.contains("sequence_file")),
            "{:?}",
            c3.notes
        );
        // A restarted vpgd whose sequence file records one of the keys: that SA goes in again
        // (vpgd continues after its reservation); the other, which the file does not know, is
        // still withheld.
        let restarted = Current {
            esp_sequences: Some(crate::model::EspSequences {
                file: "/var/lib/vpg/esp-sequences.json".into(),
                keys: [outs[0].clone()].into(),
            }),
            ..Current::default()
        };
        let mut c5 = computed();
        assert_eq!(
            withhold_reused(&mut c5, &restarted, &own, &used),
            Reused {
                withheld: 1,
                continued: 1
            }
        );
        let out: Vec<_> = c5
            .desired
            .esp_sas
            .iter()
            .filter(|(n, _)| n.outbound)
            .collect();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].1.key.fingerprint(), outs[0]);
        assert_eq!(
            c5.desired.esp_rules.values().map(Vec::len).sum::<usize>(),
            1,
            "only the continued SA is in a rule"
        );
        assert!(
            c5.notes.iter().any(|n| n.contains("has no record of it")),
            "{:?}",
            c5.notes
        );
        let plan = crate::diff::diff(&c5.desired, &restarted, &own);
        let adds = plan
            .items
            .iter()
            .filter(|i| {
                matches!(i, vpg_api::ConfigItem::EspSaAdd(a) if a.direction == vpg_api::esp::EspDirection::Out)
            })
            .count();
        assert_eq!(adds, 1, "the recorded key is installed again");
        // A refused transaction's keys are forgotten again.
        let mut used = UsedKeys::load(&path);
        used.forget(&outs.iter().cloned().collect()).unwrap();
        assert!(!UsedKeys::load(&path).refused(&outs[0]));
        // An unreadable record: fail closed.
        std::fs::write(&path, "not json").unwrap();
        let broken = UsedKeys::load(&path);
        assert!(broken.broken().is_some() && broken.refused("anything"));
        let mut c4 = computed();
        assert_eq!(
            withhold_reused(&mut c4, &Current::default(), &own, &broken),
            withheld
        );
        assert!(c4.notes.iter().any(|n| n.contains("unusable")));
        // The file holds fingerprints only.
        let mut fresh = UsedKeys::load(&dir.path().join("u2.json"));
        fresh.record(&outs).unwrap();
        let text = std::fs::read_to_string(dir.path().join("u2.json")).unwrap();
        let hex = crate::ipsec::key_hex(&c.desired.esp_sas.values().next().unwrap().key);
        assert!(text.contains(&outs[0]) && !text.contains(&hex[..12]));
    }
}
