//! The renderer cache: transactions over the cluster state, the local tables shared by pods
//! with identical rules, the node's one global table, and the changes each commit reports.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::error::PolicyError;
use crate::fast::FastMap;
use crate::index::{Dirty, Index, PodId};
use crate::model::{Cluster, Namespace, Pod, PodKey, PolicyKey};
use crate::policy::NetworkPolicy;
use crate::ports::PortSet;
use crate::rule::{Action, Rule};
use crate::selector::Labels;
use crate::tables::{self, IngressKey, PodRules, TableKey};

/// A local table as the data plane sees it: the rules and the pods whose interfaces carry it.
/// This is also the JSON shape of `vpg-agent render --json` (`pods` as `namespace/name`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalTable {
    /// Content hash of `rules`.
    pub id: String,
    /// Pods sharing the table, `namespace/name`, sorted.
    pub pods: Vec<String>,
    /// Rules in evaluation order.
    pub rules: Vec<Rule>,
}

/// The node's global table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GlobalTable {
    /// Content hash of `rules`.
    pub id: String,
    /// Rules in evaluation order; the last is `permit any`.
    pub rules: Vec<Rule>,
}

/// Every table of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeTables {
    /// The node.
    pub node: String,
    /// Local tables, by id.
    pub local_tables: Vec<LocalTable>,
    /// The global table.
    pub global_table: GlobalTable,
}

impl NodeTables {
    /// The local table carried by `pod` (`namespace/name`), if any.
    pub fn table_of(&self, pod: &str) -> Option<&LocalTable> {
        self.local_tables
            .iter()
            .find(|t| t.pods.iter().any(|p| p == pod))
    }
}

impl fmt::Display for NodeTables {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "node {}", self.node)?;
        for t in &self.local_tables {
            writeln!(f, "local table {} pods {}", t.id, t.pods.join(" "))?;
            for (i, r) in t.rules.iter().enumerate() {
                writeln!(f, "  {i:>4} {r}")?;
            }
        }
        writeln!(f, "global table {}", self.global_table.id)?;
        for (i, r) in self.global_table.rules.iter().enumerate() {
            writeln!(f, "  {i:>4} {r}")?;
        }
        Ok(())
    }
}

/// A table that appeared or disappeared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableChange {
    /// Table id.
    pub id: String,
    /// Pods carrying it (for a removed table: the pods that carried it).
    pub pods: BTreeSet<PodKey>,
    /// Its rules.
    pub rules: Arc<[Rule]>,
}

/// A table whose content is unchanged but whose pods changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reassigned {
    /// Table id.
    pub id: String,
    /// Pods carrying it now.
    pub pods: BTreeSet<PodKey>,
    /// Pods that carried it before.
    pub previous_pods: BTreeSet<PodKey>,
}

/// What a commit changed, for the agent to apply to the data plane (nothing else changed).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Tables to create (and attach to their pods).
    pub new_tables: Vec<TableChange>,
    /// Tables to delete (their pods now carry another table or none).
    pub removed_tables: Vec<TableChange>,
    /// Tables to re-attach.
    pub reassigned_tables: Vec<Reassigned>,
    /// The new global table, when it changed.
    pub global_table: Option<GlobalTable>,
    /// Policies skipped in this transaction because they are invalid.
    pub errors: Vec<PolicyError>,
}

impl Changes {
    /// True when the data plane needs nothing.
    pub fn is_empty(&self) -> bool {
        self.new_tables.is_empty()
            && self.removed_tables.is_empty()
            && self.reassigned_tables.is_empty()
            && self.global_table.is_none()
    }
}

impl fmt::Display for Changes {
    /// One line per change, then the rules of new tables; used by logs and golden tests.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pods = |p: &BTreeSet<PodKey>| {
            p.iter()
                .map(|k| k.to_string())
                .collect::<Vec<_>>()
                .join(" ")
        };
        for t in &self.new_tables {
            writeln!(f, "new {} pods [{}]", t.id, pods(&t.pods))?;
            for r in t.rules.iter() {
                writeln!(f, "    {r}")?;
            }
        }
        for t in &self.removed_tables {
            writeln!(f, "removed {} pods [{}]", t.id, pods(&t.pods))?;
        }
        for t in &self.reassigned_tables {
            writeln!(
                f,
                "reassigned {} pods [{}] was [{}]",
                t.id,
                pods(&t.pods),
                pods(&t.previous_pods)
            )?;
        }
        if let Some(g) = &self.global_table {
            writeln!(f, "global {}", g.id)?;
            for r in &g.rules {
                writeln!(f, "    {r}")?;
            }
        }
        for e in &self.errors {
            writeln!(f, "error {e}")?;
        }
        if self.is_empty() && self.errors.is_empty() {
            writeln!(f, "no changes")?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub(crate) struct TableEntry {
    pub(crate) rules: Arc<[Rule]>,
    pub(crate) pods: BTreeSet<PodKey>,
}

/// One update inside a transaction.
#[derive(Clone, Debug)]
enum Op {
    Namespace(Namespace),
    RemoveNamespace(String),
    Pod(Pod),
    RemovePod(PodKey),
    Policy(NetworkPolicy),
    RemovePolicy(PolicyKey),
    Flush,
}

/// Renders one node's tables and keeps them up to date.
///
/// ```
/// use vpg_renderer::{Renderer, Pod, NetworkPolicy};
///
/// let mut r = Renderer::new("n1");
/// let pod = Pod {
///     namespace: "default".into(), name: "web".into(),
///     labels: [("app".to_string(), "web".to_string())].into(),
///     ip: Some("10.1.1.2".parse().unwrap()), node: "n1".into(), ports: vec![],
/// };
/// let deny_all = NetworkPolicy {
///     namespace: "default".into(), name: "deny".into(),
///     spec: serde_json::from_str(r#"{"podSelector": {}}"#).unwrap(),
/// };
/// let mut txn = r.txn();
/// txn.update_pod(pod).update_policy(deny_all);
/// let changes = txn.commit();
/// assert_eq!(changes.new_tables.len(), 1);
/// assert_eq!(changes.new_tables[0].rules.len(), 1); // deny any
/// ```
#[derive(Debug)]
pub struct Renderer {
    pub(crate) idx: Index,
    /// Ingress sections by key, shared by every pod (and table) with that key.
    ingress_cache: FastMap<IngressKey, Arc<[Rule]>>,
    /// Local egress-isolated pods, by address: the sources with sections.
    /// (The pod key breaks ties between pods that briefly share an address, so the order
    /// does not depend on the history.)
    pub(crate) egress_local: BTreeSet<(Ipv4Addr, PodKey, PodId)>,
    pub(crate) egress_addr: FastMap<PodId, (Ipv4Addr, PodKey)>,
    /// Global-table sections of restricted local pods.
    pub(crate) egress_sections: FastMap<PodId, Arc<[Rule]>>,
    /// Per local pod B, per restricting local pod A: the meeting of A's egress and B's ingress
    /// (see `tables::pair`). Dropped for B when B is marked, for A when A's egress is.
    pairs: FastMap<PodId, FastMap<PodId, Option<PortSet>>>,
    /// The key each local pod's table was last built from.
    keys: FastMap<PodId, TableKey>,
    pub(crate) assignment: FastMap<PodId, (PodKey, String)>,
    pub(crate) tables: BTreeMap<String, TableEntry>,
    pub(crate) global: GlobalTable,
}

/// A batch of updates; nothing is visible until [`Txn::commit`].
#[must_use = "a transaction does nothing until committed"]
pub struct Txn<'a> {
    r: &'a mut Renderer,
    ops: Vec<Op>,
}

impl Txn<'_> {
    /// Adds or replaces a namespace.
    pub fn update_namespace(&mut self, ns: Namespace) -> &mut Self {
        self.ops.push(Op::Namespace(ns));
        self
    }

    /// Removes a namespace (its pods, if any remain, see it without labels).
    pub fn remove_namespace(&mut self, name: &str) -> &mut Self {
        self.ops.push(Op::RemoveNamespace(name.to_string()));
        self
    }

    /// Adds or replaces a pod (relabel, IP assigned, moved).
    pub fn update_pod(&mut self, pod: Pod) -> &mut Self {
        self.ops.push(Op::Pod(pod));
        self
    }

    /// Removes a pod.
    pub fn remove_pod(&mut self, key: &PodKey) -> &mut Self {
        self.ops.push(Op::RemovePod(key.clone()));
        self
    }

    /// Adds or replaces a policy. An invalid one is reported in [`Changes::errors`] and treated
    /// as absent.
    pub fn update_policy(&mut self, p: NetworkPolicy) -> &mut Self {
        self.ops.push(Op::Policy(p));
        self
    }

    /// Removes a policy.
    pub fn remove_policy(&mut self, key: &PolicyKey) -> &mut Self {
        self.ops.push(Op::RemovePolicy(key.clone()));
        self
    }

    /// Removes everything (as if every object were deleted).
    pub fn flush(&mut self) -> &mut Self {
        self.ops.push(Op::Flush);
        self
    }

    /// Applies the updates and returns what changed.
    pub fn commit(self) -> Changes {
        self.r.apply(self.ops)
    }
}

impl Renderer {
    /// A renderer for `node`, with nothing in it (the global table is `permit any`).
    pub fn new(node: &str) -> Renderer {
        let rules = vec![Rule::all(Action::Permit)];
        Renderer {
            idx: Index::new(node),
            ingress_cache: Default::default(),
            egress_local: BTreeSet::new(),
            egress_addr: Default::default(),
            egress_sections: Default::default(),
            pairs: Default::default(),
            keys: Default::default(),
            assignment: Default::default(),
            tables: BTreeMap::new(),
            global: GlobalTable {
                id: tables::content_id("gt-", &rules),
                rules,
            },
        }
    }

    /// A renderer for `node` that keeps every peer as the /32 (or ipBlock piece) it was
    /// emitted as, instead of aggregating peers into prefixes (`aggregate: true` is
    /// [`Renderer::new`]). The tables decide every packet the same either way; this is for
    /// comparisons and measurements.
    pub fn with_aggregation(node: &str, aggregate: bool) -> Renderer {
        let mut r = Renderer::new(node);
        r.idx.aggregate = aggregate;
        r
    }

    /// [`Renderer::render`] with the aggregation choice of [`Renderer::with_aggregation`].
    pub fn render_with_aggregation(node: &str, cluster: &Cluster, aggregate: bool) -> Renderer {
        let mut r = Renderer::with_aggregation(node, aggregate);
        let _ = r.apply(snapshot_ops(cluster));
        r
    }

    /// The node this renderer renders.
    pub fn node(&self) -> &str {
        &self.idx.node
    }

    /// Starts a transaction.
    pub fn txn(&mut self) -> Txn<'_> {
        Txn {
            r: self,
            ops: Vec::new(),
        }
    }

    /// Renders a whole cluster snapshot from scratch.
    pub fn render(node: &str, cluster: &Cluster) -> Renderer {
        let mut r = Renderer::new(node);
        let _ = r.apply(snapshot_ops(cluster));
        r
    }

    /// Replaces the state with `cluster` and returns the changes that turn what the data plane
    /// reports (`dataplane`) into the desired tables. Tables are matched by content, so nothing
    /// is reported when the data plane already agrees. Later transactions continue from the
    /// desired state, exactly as after an uninterrupted history.
    pub fn resync(&mut self, cluster: &Cluster, dataplane: &NodeTables) -> Changes {
        let node = self.idx.node.clone();
        *self = Renderer::with_aggregation(&node, self.idx.aggregate);
        let c = self.apply(snapshot_ops(cluster));
        let desired = self.tables();
        let mut changes = Changes {
            errors: c.errors,
            ..Changes::default()
        };
        let reported: HashMap<String, &LocalTable> = dataplane
            .local_tables
            .iter()
            .map(|t| (tables::content_id("lt-", &t.rules), t))
            .collect();
        let keys =
            |v: &[String]| -> BTreeSet<PodKey> { v.iter().filter_map(|p| parse_key(p)).collect() };
        for t in &desired.local_tables {
            match reported.get(&t.id) {
                None => changes.new_tables.push(TableChange {
                    id: t.id.clone(),
                    pods: keys(&t.pods),
                    rules: t.rules.clone().into(),
                }),
                Some(old) => {
                    let (now, before) = (keys(&t.pods), keys(&old.pods));
                    if now != before {
                        changes.reassigned_tables.push(Reassigned {
                            id: t.id.clone(),
                            pods: now,
                            previous_pods: before,
                        });
                    }
                }
            }
        }
        let wanted: HashSet<&String> = desired.local_tables.iter().map(|t| &t.id).collect();
        for (cid, t) in &reported {
            if !wanted.contains(cid) {
                changes.removed_tables.push(TableChange {
                    id: t.id.clone(),
                    pods: keys(&t.pods),
                    rules: t.rules.clone().into(),
                });
            }
        }
        changes.removed_tables.sort_by(|a, b| a.id.cmp(&b.id));
        if dataplane.global_table.rules != desired.global_table.rules {
            changes.global_table = Some(desired.global_table);
        }
        changes
    }

    /// The committed tables of the node.
    pub fn tables(&self) -> NodeTables {
        NodeTables {
            node: self.idx.node.clone(),
            local_tables: self
                .tables
                .iter()
                .map(|(id, t)| LocalTable {
                    id: id.clone(),
                    pods: t.pods.iter().map(|p| p.to_string()).collect(),
                    rules: t.rules.to_vec(),
                })
                .collect(),
            global_table: self.global.clone(),
        }
    }

    /// The global table.
    pub fn global_table(&self) -> &GlobalTable {
        &self.global
    }

    /// The id of the local table a pod carries, if any.
    pub fn table_of(&self, pod: &PodKey) -> Option<&str> {
        let id = self.idx.pod_ids.get(pod)?;
        self.assignment.get(id).map(|(_, t)| t.as_str())
    }

    /// The rules of a local table.
    pub fn table_rules(&self, id: &str) -> Option<&[Rule]> {
        self.tables.get(id).map(|t| &*t.rules)
    }

    /// Number of local tables.
    pub fn table_count(&self) -> usize {
        self.tables.len()
    }

    /// `to_pod` / `from_pod` rules of a local pod with an IP (Kubernetes semantics before any
    /// folding into tables).
    pub fn pod_rules(&self, pod: &PodKey) -> Option<PodRules> {
        let id = self.idx.pod_ids.get(pod)?;
        let e = self.idx.pods.get(id)?;
        e.local.then(|| tables::pod_rules(&self.idx, e))
    }

    /// Policies currently skipped because they are invalid.
    pub fn errors(&self) -> impl Iterator<Item = &PolicyError> {
        self.idx.errors.values()
    }

    fn apply(&mut self, ops: Vec<Op>) -> Changes {
        let mut d = Dirty::default();
        let mut errors = Vec::new();
        for op in ops {
            match op {
                Op::Namespace(ns) => self.idx.upsert_namespace(&ns.name, ns.labels, &mut d),
                Op::RemoveNamespace(n) => self.idx.remove_namespace(&n, &mut d),
                Op::Pod(p) => self.idx.upsert_pod(p, &mut d),
                Op::RemovePod(k) => self.idx.remove_pod(&k, &mut d),
                Op::Policy(p) => {
                    let key = p.key();
                    self.idx.upsert_policy(&p, &mut d);
                    if let Some(e) = self.idx.errors.get(&key) {
                        errors.push(e.clone());
                    }
                }
                Op::RemovePolicy(k) => self.idx.remove_policy(&k, &mut d),
                Op::Flush => {
                    let pods: Vec<PodKey> = self.idx.pod_ids.keys().cloned().collect();
                    for k in pods {
                        self.idx.remove_pod(&k, &mut d);
                    }
                    let pols: Vec<PolicyKey> = self.idx.policy_ids.keys().cloned().collect();
                    for k in pols {
                        self.idx.remove_policy(&k, &mut d);
                    }
                    self.idx.errors.clear();
                    let nss: Vec<String> = self.idx.namespaces.keys().cloned().collect();
                    for n in nss {
                        self.idx.remove_namespace(&n, &mut d);
                    }
                }
            }
        }
        let mut changes = self.recompute(d);
        changes.errors = errors;
        changes
    }

    /// Brings tables up to date with the index for what `d` marks.
    fn recompute(&mut self, d: Dirty) -> Changes {
        let mut changes = Changes::default();
        if d.is_empty() {
            return changes;
        }
        if !d.ingress_policies.is_empty() {
            self.ingress_cache
                .retain(|k, _| !k.policies.iter().any(|q| d.ingress_policies.contains(q)));
        }

        // Sources with sections, and the global table's sections.
        let mut global_dirty = false;
        for id in &d.egress {
            if let Some((ip, key)) = self.egress_addr.remove(id) {
                self.egress_local.remove(&(ip, key, *id));
            }
            let restricted = self
                .idx
                .pods
                .get(id)
                .filter(|e| e.local && self.idx.egress_isolated(e));
            if let Some(e) = restricted {
                self.egress_local.insert((e.ip, e.pod.key(), *id));
                self.egress_addr.insert(*id, (e.ip, e.pod.key()));
            }
            let section = restricted.and_then(|e| tables::egress_section(&self.idx, e));
            let changed = match (&section, self.egress_sections.get(id)) {
                (None, None) => false,
                (Some(a), Some(b)) => **a != **b,
                _ => true,
            };
            if changed {
                global_dirty = true;
                match section {
                    Some(s) => {
                        self.egress_sections.insert(*id, s.into());
                    }
                    None => {
                        self.egress_sections.remove(id);
                    }
                }
            }
        }

        // Cached meetings of egress and ingress that the marks make stale.
        for b in &d.pods {
            self.pairs.remove(b);
        }
        if !d.egress.is_empty() {
            for col in self.pairs.values_mut() {
                col.retain(|a, _| !d.egress.contains(a));
            }
        }

        // Local tables of the marked pods.
        let mut targets: Vec<PodId> = if d.all_local {
            self.idx
                .local_pods
                .iter()
                .chain(self.assignment.keys())
                .copied()
                .collect()
        } else {
            d.pods.iter().copied().collect()
        };
        targets.sort_unstable();
        targets.dedup();
        let egress_local: Vec<(Ipv4Addr, PodId)> = self
            .egress_local
            .iter()
            .map(|(ip, _, id)| (*ip, *id))
            .collect();
        let mut memo: FastMap<TableKey, Option<Interned>> = FastMap::default();
        let mut before: BTreeMap<String, Option<TableEntry>> = BTreeMap::new();
        for id in targets {
            let new = match self.idx.pods.get(&id).filter(|e| e.local) {
                None => {
                    self.keys.remove(&id);
                    self.pairs.remove(&id);
                    None
                }
                Some(e) => {
                    let pairs = self.pairs.entry(id).or_default();
                    let key = tables::table_key(&self.idx, id, e, &egress_local, pairs);
                    // Marked only because some local pod's egress changed, and that did not
                    // change this pod's key: its ingress section is untouched too (a change
                    // there marks the pod), so the table is the same.
                    if !d.pods.contains(&id) && self.keys.get(&id) == Some(&key) {
                        continue;
                    }
                    self.keys.insert(id, key.clone());
                    match memo.get(&key) {
                        Some(t) => t.clone(),
                        None => {
                            let ingress = key.ingress.as_ref().map(|k| {
                                self.ingress_cache
                                    .entry(k.clone())
                                    .or_insert_with(|| tables::ingress_section(&self.idx, k).into())
                                    .clone()
                            });
                            let t = tables::local_table(&key, ingress.as_deref())
                                .map(|rules| self.intern(rules));
                            memo.insert(key, t.clone());
                            t
                        }
                    }
                }
            };
            let old_id = self.assignment.get(&id).map(|(_, t)| t.clone());
            let new_id = new.as_ref().map(|(t, _)| t.clone());
            if old_id == new_id {
                continue;
            }
            let key = match self.assignment.remove(&id) {
                Some((k, _)) => k,
                None => self.idx.pods[&id].pod.key(),
            };
            if let Some(old) = old_id {
                before
                    .entry(old.clone())
                    .or_insert_with(|| self.tables.get(&old).cloned());
                let t = self.tables.get_mut(&old).expect("assigned table exists");
                t.pods.remove(&key);
                if t.pods.is_empty() {
                    self.tables.remove(&old);
                }
            }
            if let Some((tid, rules)) = new {
                before
                    .entry(tid.clone())
                    .or_insert_with(|| self.tables.get(&tid).cloned());
                self.tables
                    .entry(tid.clone())
                    .or_insert_with(|| TableEntry {
                        rules,
                        pods: BTreeSet::new(),
                    })
                    .pods
                    .insert(key.clone());
                self.assignment.insert(id, (key, tid));
            }
        }
        for (tid, prev) in before {
            match (prev, self.tables.get(&tid)) {
                (None, Some(now)) => changes.new_tables.push(TableChange {
                    id: tid,
                    pods: now.pods.clone(),
                    rules: now.rules.clone(),
                }),
                (Some(prev), None) => changes.removed_tables.push(TableChange {
                    id: tid,
                    pods: prev.pods,
                    rules: prev.rules,
                }),
                (Some(prev), Some(now)) if prev.pods != now.pods => {
                    changes.reassigned_tables.push(Reassigned {
                        id: tid,
                        pods: now.pods.clone(),
                        previous_pods: prev.pods,
                    })
                }
                _ => {}
            }
        }

        if global_dirty {
            let mut rules = Vec::new();
            for (_, _, id) in &self.egress_local {
                if let Some(s) = self.egress_sections.get(id) {
                    rules.extend_from_slice(s);
                }
            }
            rules.push(Rule::all(Action::Permit));
            let id = tables::content_id("gt-", &rules);
            if id != self.global.id || rules != self.global.rules {
                self.global = GlobalTable { id, rules };
                changes.global_table = Some(self.global.clone());
            }
        }
        changes
    }

    /// The id of a rule list, reusing the stored copy when that content is already a table.
    fn intern(&self, rules: Vec<Rule>) -> (String, Arc<[Rule]>) {
        let mut id = tables::content_id("lt-", &rules);
        let mut salt = 0u32;
        loop {
            match self.tables.get(&id) {
                Some(t) if *t.rules == *rules => return (id, t.rules.clone()),
                // A 64-bit collision between different contents: derive another id.
                Some(_) => {
                    salt += 1;
                    id = format!("{}-{salt}", tables::content_id("lt-", &rules));
                }
                None => return (id, rules.into()),
            }
        }
    }
}

/// A table id and its shared rules.
type Interned = (String, Arc<[Rule]>);

fn snapshot_ops(c: &Cluster) -> Vec<Op> {
    // Namespaces and policies first so pods are indexed against them once.
    let mut ops = Vec::with_capacity(c.namespaces.len() + c.pods.len() + c.policies.len());
    ops.extend(c.namespaces.iter().cloned().map(Op::Namespace));
    ops.extend(c.policies.iter().cloned().map(Op::Policy));
    ops.extend(c.pods.iter().cloned().map(Op::Pod));
    ops
}

fn parse_key(s: &str) -> Option<PodKey> {
    let (ns, name) = s.split_once('/')?;
    Some(PodKey::new(ns, name))
}

/// Labels helper for callers building [`Namespace`]s and [`Pod`]s by hand.
pub fn labels<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Labels {
    pairs
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
