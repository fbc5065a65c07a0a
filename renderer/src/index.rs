//! The policy processor's state: pods, namespaces and compiled policies, with the derived sets
//! kept up to date per event (which pods each peer selects, which local pods each policy
//! selects). Every update records in [`Dirty`] what it may have changed, so the renderer cache
//! recomputes only that.
//!
//! Cost of one event: a pod event evaluates the peers that can see its namespace (cached per
//! namespace) and the policies of its namespace; a namespace relabel re-evaluates that
//! namespace's pods; a policy event evaluates that policy against the pods of the namespaces it
//! can see. Nothing iterates all pods × all policies.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::Ipv4Addr;

use crate::error::PolicyError;
use crate::fast::{FastMap, FastSet};
use crate::model::{Pod, PodKey, PolicyKey};
use crate::policy::{compile, CPeer, Compiled, NetworkPolicy, NsSel};
use crate::rule::Protocol;
use crate::selector::Labels;

/// A pod, numbered for the life of its key (a removed and re-added pod gets a new number).
pub(crate) type PodId = u32;
/// A policy version: every update of a policy gets a new number, so caches keyed by it never
/// see stale content.
pub(crate) type PolicyId = u32;

/// Direction of a rule, Kubernetes words.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) enum Dir {
    Ingress,
    Egress,
}

/// One pod peer of one rule of one policy.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct PeerRef {
    pub policy: PolicyId,
    pub dir: Dir,
    pub rule: u16,
    pub peer: u16,
}

/// A pod with an IP (pods without one wait in `Index::pending`).
#[derive(Clone, Debug)]
pub(crate) struct PodEntry {
    pub pod: Pod,
    pub ip: Ipv4Addr,
    pub local: bool,
    /// Pod peers whose selection contains this pod.
    pub peers: Vec<PeerRef>,
    /// Local pods only: policies selecting this pod, ascending.
    pub policies: Vec<PolicyId>,
}

/// A compiled policy and what it selects.
#[derive(Clone, Debug)]
pub(crate) struct PolicyEntry {
    pub key: PolicyKey,
    pub c: Compiled,
    /// Selected pods per rule and peer (`[dir][rule][peer]`; empty for ipBlock peers).
    pub matched: [Vec<Vec<FastSet<PodId>>>; 2],
    /// Local pods this policy applies to.
    pub selected_local: FastSet<PodId>,
}

impl PolicyEntry {
    pub(crate) fn rules(&self, dir: Dir) -> &[crate::policy::CRule] {
        match dir {
            Dir::Ingress => self.c.ingress.as_deref().unwrap_or(&[]),
            Dir::Egress => self.c.egress.as_deref().unwrap_or(&[]),
        }
    }

    pub(crate) fn matched(&self, dir: Dir, rule: usize, peer: usize) -> &FastSet<PodId> {
        &self.matched[dir as usize][rule][peer]
    }
}

/// What an update may have changed, for the renderer cache.
#[derive(Default, Debug)]
pub(crate) struct Dirty {
    /// Local pods (or formerly local pods) whose local table must be recomputed.
    pub pods: FastSet<PodId>,
    /// Every local pod's table (a local pod's egress restrictions changed).
    pub all_local: bool,
    /// Local pods whose egress section of the global table must be recomputed.
    pub egress: FastSet<PodId>,
    /// Policies whose ingress sections are stale.
    pub ingress_policies: FastSet<PolicyId>,
}

impl Dirty {
    pub(crate) fn is_empty(&self) -> bool {
        self.pods.is_empty()
            && !self.all_local
            && self.egress.is_empty()
            && self.ingress_policies.is_empty()
    }
}

/// Cluster state as this node's renderer sees it.
#[derive(Debug)]
pub(crate) struct Index {
    pub node: String,
    pub namespaces: HashMap<String, Labels>,
    pub pod_ids: HashMap<PodKey, PodId>,
    pub pods: FastMap<PodId, PodEntry>,
    pub pending: FastMap<PodId, Pod>,
    next_pod: PodId,
    pub policy_ids: HashMap<PolicyKey, PolicyId>,
    pub policies: FastMap<PolicyId, PolicyEntry>,
    next_policy: PolicyId,
    /// Policies skipped because they are invalid, with why.
    pub errors: BTreeMap<PolicyKey, PolicyError>,
    ns_pods: HashMap<String, FastSet<PodId>>,
    ns_policies: HashMap<String, BTreeSet<PolicyId>>,
    /// Peers that can select pods of a namespace; rebuilt lazily.
    ns_peer_cache: HashMap<String, Vec<PeerRef>>,
    /// Pods carrying each (port name, protocol).
    pub named_ports: HashMap<(String, Protocol), FastSet<PodId>>,
    /// Policies with an egress rule that has named ports and destinations that are not pod
    /// selectors (every destination or an ipBlock): their rules depend on every pod carrying
    /// that port name.
    open_named: FastSet<PolicyId>,
    /// Pods on this node (with an IP).
    pub local_pods: FastSet<PodId>,
    /// Whether peer addresses are aggregated into prefixes (`rule::aggregate`); a rendering
    /// option kept here because every table function reads the index.
    pub aggregate: bool,
}

fn empty_labels() -> &'static Labels {
    static EMPTY: std::sync::OnceLock<Labels> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Labels::new)
}

impl Index {
    pub(crate) fn new(node: &str) -> Index {
        Index {
            node: node.to_string(),
            namespaces: Default::default(),
            pod_ids: Default::default(),
            pods: Default::default(),
            pending: Default::default(),
            next_pod: 0,
            policy_ids: Default::default(),
            policies: Default::default(),
            next_policy: 0,
            errors: BTreeMap::new(),
            ns_pods: Default::default(),
            ns_policies: Default::default(),
            ns_peer_cache: Default::default(),
            named_ports: Default::default(),
            open_named: Default::default(),
            local_pods: Default::default(),
            aggregate: true,
        }
    }

    /// Labels of a namespace (a namespace we have not seen has none).
    pub(crate) fn ns_labels(&self, ns: &str) -> &Labels {
        self.namespaces.get(ns).unwrap_or_else(|| empty_labels())
    }

    /// Whether a local pod is isolated for egress.
    pub(crate) fn egress_isolated(&self, e: &PodEntry) -> bool {
        e.policies
            .iter()
            .any(|q| self.policies[q].c.egress.is_some())
    }

    // ----- pods ------------------------------------------------------------------------------

    pub(crate) fn upsert_pod(&mut self, pod: Pod, d: &mut Dirty) {
        let key = pod.key();
        let id = match self.pod_ids.get(&key) {
            Some(id) => *id,
            None => {
                self.next_pod += 1;
                self.pod_ids.insert(key, self.next_pod);
                self.next_pod
            }
        };
        self.pending.remove(&id);
        self.reindex(id, Some(pod), d);
    }

    pub(crate) fn remove_pod(&mut self, key: &PodKey, d: &mut Dirty) {
        if let Some(id) = self.pod_ids.remove(key) {
            self.pending.remove(&id);
            self.reindex(id, None, d);
        }
    }

    /// Moves pod `id` from its current state to `new` (None = gone, or kept pending when it has
    /// no IP), updating every derived set and marking what changed.
    fn reindex(&mut self, id: PodId, new: Option<Pod>, d: &mut Dirty) {
        let old = self.pods.remove(&id);
        let new = match new {
            Some(p) if p.ip.is_none() => {
                self.pending.insert(id, p);
                None
            }
            other => other,
        };
        let new_local = new.as_ref().is_some_and(|p| p.node == self.node);

        // Which pod peers select the new state.
        let mut new_peers = Vec::new();
        if let Some(p) = &new {
            let cands = self.candidate_peers(&p.namespace);
            for pr in cands.iter() {
                let CPeer::Pods { pods, .. } = self.peer(pr) else {
                    continue;
                };
                if pods.matches(&p.labels) {
                    new_peers.push(*pr);
                }
            }
            self.ns_peer_cache.insert(p.namespace.clone(), cands);
        }
        // Which policies select it (local pods only: remote pods' own policies are enforced
        // by their node).
        let mut new_pols = Vec::new();
        if let (Some(p), true) = (&new, new_local) {
            if let Some(qs) = self.ns_policies.get(&p.namespace) {
                for q in qs {
                    if self.policies[q].c.pod_selector.matches(&p.labels) {
                        new_pols.push(*q);
                    }
                }
            }
        }

        let old_peers = old.as_ref().map(|e| e.peers.clone()).unwrap_or_default();
        let same_identity = match (&old, &new) {
            (Some(o), Some(n)) => {
                o.pod.ip == n.ip && o.pod.ports == n.ports && o.local == new_local
            }
            _ => false,
        };
        // Peers whose rendered addresses change: membership changes, or all of them when the
        // pod's address, ports or node changed.
        let changed: Vec<PeerRef> = if same_identity {
            let o: HashSet<_> = old_peers.iter().copied().collect();
            let n: HashSet<_> = new_peers.iter().copied().collect();
            o.symmetric_difference(&n).copied().collect()
        } else {
            old_peers.iter().chain(new_peers.iter()).copied().collect()
        };
        for pr in &old_peers {
            if let Some(q) = self.policies.get_mut(&pr.policy) {
                q.matched[pr.dir as usize][pr.rule as usize][pr.peer as usize].remove(&id);
            }
        }
        for pr in &new_peers {
            if let Some(q) = self.policies.get_mut(&pr.policy) {
                q.matched[pr.dir as usize][pr.rule as usize][pr.peer as usize].insert(id);
            }
        }
        for pr in &changed {
            self.mark_peer(pr, d);
        }

        // Selection by policies.
        let old_pols = old.as_ref().map(|e| e.policies.clone()).unwrap_or_default();
        for q in &old_pols {
            if let Some(q) = self.policies.get_mut(q) {
                q.selected_local.remove(&id);
            }
        }
        for q in &new_pols {
            if let Some(q) = self.policies.get_mut(q) {
                q.selected_local.insert(id);
            }
        }

        // Local pods: their own table, and when their egress restrictions change, every local
        // table (egress orientation folds them into the destinations' tables).
        let old_local = old.as_ref().is_some_and(|e| e.local);
        if old_local || new_local {
            d.pods.insert(id);
            let eg = |pols: &[PolicyId]| -> Vec<PolicyId> {
                pols.iter()
                    .copied()
                    .filter(|q| self.policies[q].c.egress.is_some())
                    .collect()
            };
            let old_eg = eg(&old_pols);
            let new_eg = eg(&new_pols);
            let had = old_local && !old_eg.is_empty();
            let has = new_local && !new_eg.is_empty();
            if (had || has) && (old_eg != new_eg || !same_identity) {
                d.all_local = true;
                d.egress.insert(id);
            }
        }

        // Named ports: egress rules open to every destination resolve names against all pods.
        let named = |p: Option<&Pod>| -> Vec<(String, Protocol)> {
            p.map(|p| {
                p.ports
                    .iter()
                    .filter_map(|c| c.name.clone().map(|n| (n, c.protocol)))
                    .collect()
            })
            .unwrap_or_default()
        };
        let old_named = named(old.as_ref().map(|e| &e.pod));
        let new_named = named(new.as_ref());
        for k in &old_named {
            if let Some(s) = self.named_ports.get_mut(k) {
                s.remove(&id);
                if s.is_empty() {
                    self.named_ports.remove(k);
                }
            }
        }
        for k in &new_named {
            self.named_ports.entry(k.clone()).or_default().insert(id);
        }
        if (!old_named.is_empty() || !new_named.is_empty()) && !same_identity {
            for q in &self.open_named {
                d.egress
                    .extend(self.policies[q].selected_local.iter().copied());
            }
        }

        if new_local {
            self.local_pods.insert(id);
        } else {
            self.local_pods.remove(&id);
        }

        // Namespace membership.
        if let Some(o) = &old {
            if let Some(s) = self.ns_pods.get_mut(&o.pod.namespace) {
                s.remove(&id);
                if s.is_empty() {
                    self.ns_pods.remove(&o.pod.namespace);
                }
            }
        }
        if let Some(p) = new {
            self.ns_pods
                .entry(p.namespace.clone())
                .or_default()
                .insert(id);
            let ip = p.ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
            self.pods.insert(
                id,
                PodEntry {
                    pod: p,
                    ip,
                    local: new_local,
                    peers: new_peers,
                    policies: new_pols,
                },
            );
        }
    }

    fn peer(&self, pr: &PeerRef) -> &CPeer {
        let q = &self.policies[&pr.policy];
        let rules = q.rules(pr.dir);
        &rules[pr.rule as usize]
            .peers
            .as_ref()
            .expect("peer refs exist only for peer lists")[pr.peer as usize]
    }

    /// Records that the pods a peer stands for changed.
    fn mark_peer(&self, pr: &PeerRef, d: &mut Dirty) {
        let Some(q) = self.policies.get(&pr.policy) else {
            return;
        };
        match pr.dir {
            Dir::Ingress => {
                d.pods.extend(q.selected_local.iter().copied());
                d.ingress_policies.insert(pr.policy);
            }
            Dir::Egress => {
                // The global sections of the restricted pods; the destination's own local
                // table is marked by the caller when it is local.
                d.egress.extend(q.selected_local.iter().copied());
            }
        }
    }

    /// Pod peers that can select pods of namespace `ns` (taken from the cache or rebuilt; the
    /// caller puts it back).
    fn candidate_peers(&mut self, ns: &str) -> Vec<PeerRef> {
        if let Some(v) = self.ns_peer_cache.remove(ns) {
            return v;
        }
        let labels = self.ns_labels(ns).clone();
        let mut out = Vec::new();
        for (qid, q) in &self.policies {
            for dir in [Dir::Ingress, Dir::Egress] {
                for (ri, r) in q.rules(dir).iter().enumerate() {
                    for (pi, p) in r.peers.iter().flatten().enumerate() {
                        let ok = match p {
                            CPeer::Block(_) => false,
                            CPeer::Pods { ns: NsSel::Own, .. } => q.key.namespace == ns,
                            CPeer::Pods {
                                ns: NsSel::Match(s),
                                ..
                            } => s.matches(&labels),
                        };
                        if ok {
                            out.push(PeerRef {
                                policy: *qid,
                                dir,
                                rule: ri as u16,
                                peer: pi as u16,
                            });
                        }
                    }
                }
            }
        }
        out
    }

    // ----- namespaces ------------------------------------------------------------------------

    pub(crate) fn upsert_namespace(&mut self, name: &str, labels: Labels, d: &mut Dirty) {
        if self.namespaces.get(name) == Some(&labels) {
            return;
        }
        self.namespaces.insert(name.to_string(), labels);
        self.relabel_namespace(name, d);
    }

    pub(crate) fn remove_namespace(&mut self, name: &str, d: &mut Dirty) {
        if self.namespaces.remove(name).is_some() {
            self.relabel_namespace(name, d);
        }
    }

    /// Re-evaluates the pods of a namespace whose labels changed.
    fn relabel_namespace(&mut self, name: &str, d: &mut Dirty) {
        self.ns_peer_cache.remove(name);
        let ids: Vec<PodId> = self
            .ns_pods
            .get(name)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        for id in ids {
            let pod = self.pods[&id].pod.clone();
            self.reindex(id, Some(pod), d);
        }
    }

    // ----- policies --------------------------------------------------------------------------

    pub(crate) fn upsert_policy(&mut self, p: &NetworkPolicy, d: &mut Dirty) {
        let key = p.key();
        self.detach_policy(&key, d);
        self.errors.remove(&key);
        let c = match compile(p) {
            Ok(c) => c,
            Err(e) => {
                self.errors.insert(key, e);
                return;
            }
        };
        self.next_policy += 1;
        let qid = self.next_policy;
        self.ns_peer_cache.clear();

        // Local pods it selects.
        let mut selected_local: FastSet<PodId> = FastSet::default();
        for id in self.ns_pods.get(&p.namespace).into_iter().flatten() {
            let e = &self.pods[id];
            if e.local && c.pod_selector.matches(&e.pod.labels) {
                selected_local.insert(*id);
            }
        }
        // Pods each pod peer selects.
        let mut matched: [Vec<Vec<FastSet<PodId>>>; 2] = [Vec::new(), Vec::new()];
        let mut open_named_egress = false;
        for dir in [Dir::Ingress, Dir::Egress] {
            let rules = match dir {
                Dir::Ingress => c.ingress.as_deref().unwrap_or(&[]),
                Dir::Egress => c.egress.as_deref().unwrap_or(&[]),
            };
            for (ri, r) in rules.iter().enumerate() {
                let mut per_peer = Vec::new();
                if dir == Dir::Egress && r.has_named_ports() {
                    let open = match &r.peers {
                        None => true,
                        Some(ps) => ps.iter().any(|p| matches!(p, CPeer::Block(_))),
                    };
                    open_named_egress |= open;
                }
                for (pi, peer) in r.peers.iter().flatten().enumerate() {
                    let mut set: FastSet<PodId> = FastSet::default();
                    if let CPeer::Pods { ns, pods } = peer {
                        let namespaces: Vec<String> = match ns {
                            NsSel::Own => vec![p.namespace.clone()],
                            NsSel::Match(s) => self
                                .ns_pods
                                .keys()
                                .filter(|n| s.matches(self.ns_labels(n)))
                                .cloned()
                                .collect(),
                        };
                        let pr = PeerRef {
                            policy: qid,
                            dir,
                            rule: ri as u16,
                            peer: pi as u16,
                        };
                        for n in namespaces {
                            for id in self.ns_pods.get(&n).into_iter().flatten() {
                                if pods.matches(&self.pods[id].pod.labels) {
                                    set.insert(*id);
                                }
                            }
                        }
                        for id in &set {
                            self.pods.get_mut(id).expect("indexed pod").peers.push(pr);
                        }
                    }
                    per_peer.push(set);
                }
                matched[dir as usize].push(per_peer);
            }
        }
        for id in &selected_local {
            let e = self.pods.get_mut(id).expect("indexed pod");
            e.policies.push(qid);
            e.policies.sort_unstable();
        }
        d.pods.extend(selected_local.iter().copied());
        d.ingress_policies.insert(qid);
        if c.egress.is_some() && !selected_local.is_empty() {
            d.all_local = true;
            d.egress.extend(selected_local.iter().copied());
        }
        if open_named_egress {
            self.open_named.insert(qid);
        }
        self.ns_policies
            .entry(p.namespace.clone())
            .or_default()
            .insert(qid);
        self.policy_ids.insert(key.clone(), qid);
        self.policies.insert(
            qid,
            PolicyEntry {
                key,
                c,
                matched,
                selected_local,
            },
        );
    }

    pub(crate) fn remove_policy(&mut self, key: &PolicyKey, d: &mut Dirty) {
        self.detach_policy(key, d);
        self.errors.remove(key);
    }

    fn detach_policy(&mut self, key: &PolicyKey, d: &mut Dirty) {
        let Some(qid) = self.policy_ids.remove(key) else {
            return;
        };
        let q = self.policies.remove(&qid).expect("policy id indexed");
        self.ns_peer_cache.clear();
        self.open_named.remove(&qid);
        if let Some(s) = self.ns_policies.get_mut(&key.namespace) {
            s.remove(&qid);
            if s.is_empty() {
                self.ns_policies.remove(&key.namespace);
            }
        }
        for dir in &q.matched {
            for rule in dir {
                for set in rule {
                    for id in set {
                        if let Some(e) = self.pods.get_mut(id) {
                            e.peers.retain(|pr| pr.policy != qid);
                        }
                    }
                }
            }
        }
        for id in &q.selected_local {
            if let Some(e) = self.pods.get_mut(id) {
                e.policies.retain(|p| *p != qid);
            }
        }
        d.pods.extend(q.selected_local.iter().copied());
        d.ingress_policies.insert(qid);
        if q.c.egress.is_some() && !q.selected_local.is_empty() {
            d.all_local = true;
            d.egress.extend(q.selected_local.iter().copied());
        }
    }
}
