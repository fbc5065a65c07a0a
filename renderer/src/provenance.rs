//! Provenance: which NetworkPolicy, and which of its rules, each rule of a table comes from.
//!
//! Nothing of it is kept on the update path. The index already holds every input a table was
//! built from (the policies selecting each pod, the pods each peer selects), so
//! [`Renderer::explain`] and [`Renderer::explain_pod`] build the tables' rules again, in the same
//! order and with the same functions, with every emitted rule tagged by the policy rule that
//! emitted it. Transactions cost what they did without provenance; a question costs about one
//! render of the tables it asks about (it runs when an operator asks, not per event).
//!
//! What the origins of a rule mean, by its [`Role`]:
//!
//! - `ingress` (a permit of the destination pod's ingress section): every policy rule that
//!   emits this rule or a piece of it (same protocol and ports, a source inside its prefix:
//!   peers are aggregated into prefixes, `rule::aggregate`). Two policies admitting the same
//!   peer on the same ports are both named; a prefix made of several policies' peers names
//!   them all, each admitting some of its addresses.
//! - `egress` in the global table (a permit of local pod `pod`'s section): likewise, its egress
//!   rules that emit this rule or a piece of it (a destination inside its prefix).
//! - `egress` in a local table (where `pod`'s egress meets the destination's ingress; the rule
//!   admits their intersection): the egress rules of `pod` that admit the destination and the
//!   ingress rules of the destination that admit `pod` whose ports overlap the rule's. Port
//!   ranges of several rules may merge into one rule, so a named rule admits some of its ports,
//!   not necessarily all.
//! - `isolation` (a deny): the policies isolating the pod in that direction (`rule` absent):
//!   for the deny ending a section, `pod`'s egress policies (and the destination's ingress
//!   policies when it is isolated too); for a local table's final deny, the ingress policies of
//!   the pods carrying it.
//! - `default` (a permit-all no policy asked for: the table's pods are not isolated for
//!   ingress, or the global table's end): no origin.
//!
//! A table shared by several pods names the union of their origins; [`Renderer::explain_pod`]
//! gives one pod's own.

use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::cache::Renderer;
use crate::index::{Dir, Index, PodEntry, PodId, PolicyId};
use crate::model::PodKey;
use crate::ports::{section, PortSet};
use crate::rule::{Action, Field, Ipv4Net, Rule};
use crate::tables;

/// Which rule list of a policy, Kubernetes words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `spec.ingress`.
    Ingress,
    /// `spec.egress`.
    Egress,
}

/// A policy (and one of its rules) a table rule comes from.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Origin {
    /// `namespace/name` of the NetworkPolicy.
    pub policy: String,
    /// Which of its rule lists.
    pub direction: Direction,
    /// The rule's index in `spec.ingress` / `spec.egress`; absent for a deny that is there
    /// because the policy isolates the pod in this direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<usize>,
}

/// Why a rule is in its table (the module documentation says what its origins mean).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A permit of the destination pod's ingress rules.
    Ingress,
    /// A permit of a local pod's egress rules.
    Egress,
    /// A deny ending what an isolated pod may do.
    Isolation,
    /// A permit-all no policy asked for.
    Default,
}

impl Role {
    /// The word the JSON uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingress => "ingress",
            Role::Egress => "egress",
            Role::Isolation => "isolation",
            Role::Default => "default",
        }
    }
}

/// A table rule and where it comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainedRule {
    /// Its position in the whole table (the rule index of the ACL in vpgd).
    pub index: usize,
    /// The rule.
    #[serde(flatten)]
    pub rule: Rule,
    /// Why it is there.
    pub role: Role,
    /// For a section's rules: the local egress-isolated pod whose connections it decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// The policies and rules it comes from, sorted; empty for `default`.
    pub origins: Vec<Origin>,
}

/// A table with the provenance of every rule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainedTable {
    /// Table id (`lt-…`, `gt-…`).
    pub id: String,
    /// Pods carrying it (`namespace/name`, sorted; empty for the global table).
    pub pods: Vec<String>,
    /// Its rules in evaluation order (in a pod's view, only those that concern the pod).
    pub rules: Vec<ExplainedRule>,
}

/// Every table of the node with provenance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explained {
    /// The node.
    pub node: String,
    /// Local tables, by id.
    pub local_tables: Vec<ExplainedTable>,
    /// The global table.
    pub global_table: ExplainedTable,
}

/// The tables that apply to one local pod, in both directions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodExplained {
    /// `namespace/name`.
    pub pod: String,
    /// Its address.
    pub ip: Ipv4Addr,
    /// Policies isolating it for ingress.
    pub ingress_policies: Vec<String>,
    /// Policies isolating it for egress.
    pub egress_policies: Vec<String>,
    /// Connections to the pod: its local table, with this pod's own provenance (None: it
    /// accepts everything).
    pub to_pod: Option<ExplainedTable>,
    /// Connections from the pod leaving the node: the global table's rules that can match them.
    pub from_pod_global: ExplainedTable,
    /// Connections from the pod to other local pods: its section in their local tables.
    pub from_pod_local: Vec<ExplainedTable>,
}

/// A policy rule (`Some(index)`) or a policy's isolation (`None`), by the index's numbers.
type Tag = (PolicyId, Dir, Option<usize>);

/// Provenance of one rule, by the index's numbers.
#[derive(Clone, Debug)]
struct Src {
    role: Role,
    pod: Option<PodId>,
    tags: BTreeSet<Tag>,
}

impl Src {
    fn new(role: Role, pod: Option<PodId>, tags: BTreeSet<Tag>) -> Src {
        Src { role, pod, tags }
    }
}

/// The policies isolating `e` in `dir`, as tags.
fn isolating(idx: &Index, e: &PodEntry, dir: Dir) -> BTreeSet<Tag> {
    tables::policies_with(idx, e, dir)
        .into_iter()
        .map(|q| (q, dir, None))
        .collect()
}

/// Per rule of an unsorted list with its stretches, the policy rules that emitted it.
fn tag_map(raw: &[Rule], spans: &tables::Spans, dir: Dir) -> HashMap<Rule, BTreeSet<Tag>> {
    let mut m: HashMap<Rule, BTreeSet<Tag>> = HashMap::new();
    let mut start = 0;
    for &(end, q, ri) in spans {
        for r in &raw[start..end] {
            m.entry(*r).or_default().insert((q, dir, Some(ri)));
        }
        start = end;
    }
    m
}

/// Per rule of a section's permits as `tables::finish` left them, the tags of the emitted
/// rules it took in. Each emitted rule lies in exactly one of them: aggregation keeps every
/// field but `field`, and the prefixes it makes of one group are disjoint and each maximal, so
/// an emitted prefix sits inside exactly one (`rule::cover`); walking up from the emitted
/// prefix finds it. Without aggregation that is the emitted rule itself.
fn fold(rules: &[Rule], tags: &HashMap<Rule, BTreeSet<Tag>>, field: Field) -> Vec<BTreeSet<Tag>> {
    let at: HashMap<Rule, usize> = rules.iter().enumerate().map(|(i, r)| (*r, i)).collect();
    let mut out = vec![BTreeSet::new(); rules.len()];
    for (r, t) in tags {
        let n = field.get(r);
        let hit = (0..=n.prefix_len()).rev().find_map(|len| {
            let p = Ipv4Net::new(n.addr(), len)?;
            at.get(&field.with(r, p))
        });
        if let Some(&i) = hit {
            out[i].extend(t.iter().copied());
        }
    }
    out
}

/// The egress rules of local pod `a` that admit pod `b`, with the ports each admits there
/// (`tables::egress_ports` rule by rule).
fn egress_sets(idx: &Index, a: &PodEntry, b_id: PodId, b: &PodEntry) -> Vec<(Tag, PortSet)> {
    let mut v = Vec::new();
    for q in tables::policies_with(idx, a, Dir::Egress) {
        for (ri, r) in idx.policies[&q].rules(Dir::Egress).iter().enumerate() {
            if tables::peers_admit(idx, q, Dir::Egress, ri, Some(b_id), b.ip) {
                v.push((
                    (q, Dir::Egress, Some(ri)),
                    tables::rule_ports(r, Some(&b.pod)),
                ));
            }
        }
    }
    v
}

/// The ingress rules of local pod `b` that admit pod `a` (`tables::ingress_ports` rule by rule).
fn ingress_sets(idx: &Index, b: &PodEntry, a_id: PodId, a_ip: Ipv4Addr) -> Vec<(Tag, PortSet)> {
    let mut v = Vec::new();
    for q in tables::policies_with(idx, b, Dir::Ingress) {
        for (ri, r) in idx.policies[&q].rules(Dir::Ingress).iter().enumerate() {
            if tables::peers_admit(idx, q, Dir::Ingress, ri, Some(a_id), a_ip) {
                v.push((
                    (q, Dir::Ingress, Some(ri)),
                    tables::rule_ports(r, Some(&b.pod)),
                ));
            }
        }
    }
    v
}

struct Ctx<'a> {
    r: &'a Renderer,
    /// Local egress-isolated pods in section order.
    egress_local: Vec<(Ipv4Addr, PodId)>,
}

impl<'a> Ctx<'a> {
    fn new(r: &'a Renderer) -> Ctx<'a> {
        Ctx {
            r,
            egress_local: r
                .egress_local
                .iter()
                .map(|(ip, _, id)| (*ip, *id))
                .collect(),
        }
    }

    fn idx(&self) -> &'a Index {
        &self.r.idx
    }

    /// Pod `b_id`'s local table built again as `tables::local_table` builds it, every rule
    /// with its provenance.
    fn local(&self, b_id: PodId) -> Vec<(Rule, Src)> {
        let idx = self.idx();
        let Some(b) = idx.pods.get(&b_id) else {
            return Vec::new();
        };
        let ingress = tables::ingress_key(idx, b);
        let isolated = ingress.is_some();
        let mut out = Vec::new();
        let mut decided = Vec::new();
        for &(a_ip, a_id) in &self.egress_local {
            let Some(set) = tables::pair(idx, a_id, b_id, b, isolated) else {
                continue;
            };
            let a = &idx.pods[&a_id];
            let mut sets = egress_sets(idx, a, b_id, b);
            if isolated {
                sets.extend(ingress_sets(idx, b, a_id, a_ip));
            }
            let mut rules = Vec::new();
            section(a_ip, &set, &mut rules);
            for r in rules {
                let src = if r.action == Action::Permit {
                    let tags = sets
                        .iter()
                        .filter(|(_, s)| s.overlaps(r.protocol, r.dst_ports))
                        .map(|(t, _)| *t)
                        .collect();
                    Src::new(Role::Egress, Some(a_id), tags)
                } else {
                    let mut tags = isolating(idx, a, Dir::Egress);
                    if isolated {
                        tags.extend(isolating(idx, b, Dir::Ingress));
                    }
                    Src::new(Role::Isolation, Some(a_id), tags)
                };
                out.push((r, src));
            }
            decided.push(a_ip);
        }
        decided.sort_unstable();
        decided.dedup();
        if let Some(k) = &ingress {
            let mut raw = Vec::new();
            let mut spans = Vec::new();
            tables::ingress_permits(idx, k, &mut raw, Some(&mut spans));
            let tags = tag_map(&raw, &spans, Dir::Ingress);
            tables::finish(idx, &mut raw, Field::Src);
            let folded = fold(&raw, &tags, Field::Src);
            for (r, t) in raw.into_iter().zip(folded) {
                if !tables::shadowed(r.src, &decided) {
                    out.push((r, Src::new(Role::Ingress, None, t)));
                }
            }
        }
        if !out.last().is_some_and(|(r, _)| r.is_catch_all()) {
            out.push(if isolated {
                (
                    Rule::all(Action::Deny),
                    Src::new(Role::Isolation, None, isolating(idx, b, Dir::Ingress)),
                )
            } else {
                (
                    Rule::all(Action::Permit),
                    Src::new(Role::Default, None, BTreeSet::new()),
                )
            });
        }
        out
    }

    /// The global table built again from the cached sections, every rule with its provenance.
    fn global(&self) -> Vec<(Rule, Src)> {
        let idx = self.idx();
        let mut out = Vec::new();
        for &(_, a_id) in &self.egress_local {
            let (Some(sec), Some(a)) = (self.r.egress_sections.get(&a_id), idx.pods.get(&a_id))
            else {
                continue;
            };
            let qs = tables::policies_with(idx, a, Dir::Egress);
            let mut raw = Vec::new();
            let mut spans = Vec::new();
            tables::egress_permits_raw(idx, a, &qs, &mut raw, Some(&mut spans));
            let tags = fold(sec, &tag_map(&raw, &spans, Dir::Egress), Field::Dst);
            for (r, t) in sec.iter().zip(tags) {
                let src = if r.action == Action::Permit {
                    Src::new(Role::Egress, Some(a_id), t)
                } else {
                    Src::new(Role::Isolation, Some(a_id), isolating(idx, a, Dir::Egress))
                };
                out.push((*r, src));
            }
        }
        out.push((
            Rule::all(Action::Permit),
            Src::new(Role::Default, None, BTreeSet::new()),
        ));
        out
    }

    /// The provenance of `rules` from a rebuilt list. They agree by construction (the tables
    /// are built from the same index by the same functions; the property tests check it); were
    /// they ever to differ, rules are matched by content and an unmatched one shows no origin
    /// rather than a wrong one.
    fn aligned(&self, rules: &[Rule], built: Vec<(Rule, Src)>) -> Vec<Src> {
        if built.len() == rules.len() && built.iter().zip(rules).all(|((a, _), b)| a == b) {
            return built.into_iter().map(|(_, s)| s).collect();
        }
        debug_assert!(false, "provenance: rebuilt rules differ from the table");
        let by_rule: HashMap<Rule, Src> = built.into_iter().collect();
        rules
            .iter()
            .map(|r| {
                by_rule
                    .get(r)
                    .cloned()
                    .unwrap_or_else(|| Src::new(Role::Default, None, BTreeSet::new()))
            })
            .collect()
    }

    fn table(&self, id: &str, pods: Vec<String>, rules: &[Rule], srcs: &[Src]) -> ExplainedTable {
        let idx = self.idx();
        let rules = rules
            .iter()
            .zip(srcs)
            .enumerate()
            .map(|(index, (rule, s))| ExplainedRule {
                index,
                rule: *rule,
                role: s.role,
                pod: s
                    .pod
                    .and_then(|p| idx.pods.get(&p))
                    .map(|e| e.pod.key().to_string()),
                origins: s
                    .tags
                    .iter()
                    .filter_map(|&(q, dir, rule)| {
                        Some(Origin {
                            policy: idx.policies.get(&q)?.key.to_string(),
                            direction: match dir {
                                Dir::Ingress => Direction::Ingress,
                                Dir::Egress => Direction::Egress,
                            },
                            rule,
                        })
                    })
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            })
            .collect();
        ExplainedTable {
            id: id.to_string(),
            pods,
            rules,
        }
    }

    /// A local table's provenance: the union over the pods carrying it.
    fn local_table(&self, id: &str) -> Option<ExplainedTable> {
        let t = self.r.tables.get(id)?;
        let mut merged: Option<Vec<Src>> = None;
        for key in &t.pods {
            let Some(&b_id) = self.idx().pod_ids.get(key) else {
                continue;
            };
            let srcs = self.aligned(&t.rules, self.local(b_id));
            match &mut merged {
                None => merged = Some(srcs),
                Some(m) => {
                    for (a, b) in m.iter_mut().zip(srcs) {
                        // Equal contents may be built differently (a permit-all that one pod's
                        // ingress asks for and another's lack of isolation leaves): the role
                        // some policy asked for wins.
                        if a.role == Role::Default {
                            a.role = b.role;
                            a.pod = b.pod;
                        }
                        a.tags.extend(b.tags);
                    }
                }
            }
        }
        let srcs = merged
            .unwrap_or_else(|| vec![Src::new(Role::Default, None, BTreeSet::new()); t.rules.len()]);
        let pods = t.pods.iter().map(|p| p.to_string()).collect();
        Some(self.table(id, pods, &t.rules, &srcs))
    }

    fn global_table(&self) -> ExplainedTable {
        let g = &self.r.global;
        let srcs = self.aligned(&g.rules, self.global());
        self.table(&g.id, Vec::new(), &g.rules, &srcs)
    }
}

impl Renderer {
    /// Every table of the node with the provenance of each rule (see [`crate::provenance`]).
    pub fn explain(&self) -> Explained {
        let cx = Ctx::new(self);
        Explained {
            node: self.idx.node.clone(),
            local_tables: self
                .tables
                .keys()
                .filter_map(|id| cx.local_table(id))
                .collect(),
            global_table: cx.global_table(),
        }
    }

    /// The tables that apply to local pod `pod` in both directions, with provenance; `None`
    /// when it is not a local pod with an address.
    pub fn explain_pod(&self, pod: &PodKey) -> Option<PodExplained> {
        let id = *self.idx.pod_ids.get(pod)?;
        let e = self.idx.pods.get(&id).filter(|e| e.local)?;
        let cx = Ctx::new(self);
        let keys = |dir| -> Vec<String> {
            tables::policies_with(&self.idx, e, dir)
                .iter()
                .map(|q| self.idx.policies[q].key.to_string())
                .collect()
        };
        let to_pod = self.assignment.get(&id).and_then(|(_, tid)| {
            let t = self.tables.get(tid)?;
            let srcs = cx.aligned(&t.rules, cx.local(id));
            let pods = t.pods.iter().map(|p| p.to_string()).collect();
            Some(cx.table(tid, pods, &t.rules, &srcs))
        });
        let mut from_pod_global = cx.global_table();
        from_pod_global.rules.retain(|r| r.rule.src.contains(e.ip));
        // Its sections: only an egress-isolated pod has them, and only tables with a rule
        // from its address can hold one.
        let mut from_pod_local = Vec::new();
        let me = e.pod.key().to_string();
        if self.egress_addr.contains_key(&id) {
            let host = Ipv4Net::host(e.ip);
            for (tid, t) in &self.tables {
                if !t.rules.iter().any(|r| r.src == host) {
                    continue;
                }
                if let Some(mut x) = cx.local_table(tid) {
                    x.rules.retain(|r| r.pod.as_deref() == Some(me.as_str()));
                    if !x.rules.is_empty() {
                        from_pod_local.push(x);
                    }
                }
            }
        }
        Some(PodExplained {
            pod: me,
            ip: e.ip,
            ingress_policies: keys(Dir::Ingress),
            egress_policies: keys(Dir::Egress),
            to_pod,
            from_pod_global,
            from_pod_local,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::labels;
    use crate::model::{Cluster, Namespace, Pod};
    use crate::policy::NetworkPolicy;

    fn pod(name: &str, app: &str, ip: &str, node: &str) -> Pod {
        Pod {
            namespace: "default".into(),
            name: name.into(),
            labels: labels([("app", app)]),
            ip: Some(ip.parse().unwrap()),
            node: node.into(),
            ports: vec![],
        }
    }

    fn pol(name: &str, spec: &str) -> NetworkPolicy {
        NetworkPolicy {
            namespace: "default".into(),
            name: name.into(),
            spec: serde_json::from_str(spec).unwrap(),
        }
    }

    fn cluster(policies: Vec<NetworkPolicy>) -> Cluster {
        Cluster {
            namespaces: vec![Namespace {
                name: "default".into(),
                labels: Default::default(),
            }],
            pods: vec![
                pod("web1", "web", "10.1.1.2", "n1"),
                pod("web2", "web2", "10.1.1.3", "n1"),
                pod("cli", "cli", "10.1.1.4", "n1"),
                pod("db", "db", "10.1.2.5", "n2"),
            ],
            policies,
        }
    }

    const FROM_CLI_80: &str = r#"{"podSelector": {"matchLabels": {"app": "web"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "cli"}}}],
                     "ports": [{"port": 80}]}]}"#;

    fn names(r: &ExplainedRule) -> Vec<String> {
        r.origins
            .iter()
            .map(|o| match o.rule {
                Some(i) => format!("{} {:?}[{i}]", o.policy, o.direction),
                None => format!("{} {:?}", o.policy, o.direction),
            })
            .collect()
    }

    fn line(r: &ExplainedRule) -> String {
        format!("{} {} {:?}", r.rule, r.role.as_str(), names(r))
    }

    #[test]
    fn a_rule_from_two_policies_names_both() {
        // The same admission twice (the second policy as rule 1, after a rule of its own).
        let second = r#"{"podSelector": {"matchLabels": {"app": "web"}},
            "ingress": [{"from": [{"ipBlock": {"cidr": "192.168.0.0/16"}}]},
                        {"from": [{"podSelector": {"matchLabels": {"app": "cli"}}}],
                         "ports": [{"port": 80}]}]}"#;
        let c = cluster(vec![pol("a", FROM_CLI_80), pol("b", second)]);
        let r = Renderer::render("n1", &c);
        let x = r.explain();
        assert_eq!(x.local_tables.len(), 1);
        let t = &x.local_tables[0];
        assert_eq!(t.pods, ["default/web1"]);
        let lines: Vec<String> = t.rules.iter().map(line).collect();
        assert_eq!(
            lines,
            [
                r#"permit 10.1.1.4/32 -> 0.0.0.0/0:80 tcp ingress ["default/a Ingress[0]", "default/b Ingress[1]"]"#,
                r#"permit 192.168.0.0/16 -> 0.0.0.0/0 any ingress ["default/b Ingress[0]"]"#,
                r#"deny 0.0.0.0/0 -> 0.0.0.0/0 any isolation ["default/a Ingress", "default/b Ingress"]"#,
            ]
        );
        assert!(t.rules.iter().enumerate().all(|(i, r)| r.index == i));
        // Nothing restricts egress: the global table is the default permit.
        assert_eq!(x.global_table.rules.len(), 1);
        assert_eq!(x.global_table.rules[0].role, Role::Default);
        assert!(x.global_table.rules[0].origins.is_empty());
    }

    #[test]
    fn a_shared_table_names_every_carrier_s_policies_and_a_pod_only_its_own() {
        let web2 = FROM_CLI_80.replace("\"web\"", "\"web2\"");
        let c = cluster(vec![pol("a", FROM_CLI_80), pol("b", &web2)]);
        let r = Renderer::render("n1", &c);
        let x = r.explain();
        assert_eq!(x.local_tables.len(), 1, "identical rules share one table");
        let t = &x.local_tables[0];
        assert_eq!(t.pods, ["default/web1", "default/web2"]);
        assert_eq!(
            names(&t.rules[0]),
            ["default/a Ingress[0]", "default/b Ingress[0]"]
        );
        assert_eq!(
            names(&t.rules[1]),
            ["default/a Ingress", "default/b Ingress"]
        );
        let p = r.explain_pod(&PodKey::new("default", "web2")).unwrap();
        let own = p.to_pod.unwrap();
        assert_eq!(own.id, t.id);
        assert_eq!(own.pods, t.pods, "the view says who shares the table");
        assert_eq!(names(&own.rules[0]), ["default/b Ingress[0]"]);
        assert_eq!(names(&own.rules[1]), ["default/b Ingress"]);
        assert_eq!(p.ingress_policies, ["default/b"]);
        assert!(p.egress_policies.is_empty() && p.from_pod_local.is_empty());
        assert_eq!(p.from_pod_global.rules.len(), 1, "only the default permit");
    }

    #[test]
    fn egress_sections_name_both_sides() {
        // cli may open only tcp 80-81 to web pods and 5432 to db (remote); web1 admits cli on 80.
        let egress = r#"{"podSelector": {"matchLabels": {"app": "cli"}}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                        "ports": [{"port": 80, "endPort": 81}]},
                       {"to": [{"podSelector": {"matchLabels": {"app": "db"}}}],
                        "ports": [{"port": 5432}]}]}"#;
        let c = cluster(vec![pol("web-in", FROM_CLI_80), pol("cli-out", egress)]);
        let r = Renderer::render("n1", &c);
        let x = r.explain();
        let web = x
            .local_tables
            .iter()
            .find(|t| t.pods == ["default/web1"])
            .unwrap();
        let lines: Vec<String> = web.rules.iter().map(line).collect();
        assert_eq!(
            lines,
            [
                r#"permit 10.1.1.4/32 -> 0.0.0.0/0:80 tcp egress ["default/cli-out Egress[0]", "default/web-in Ingress[0]"]"#,
                r#"deny 10.1.1.4/32 -> 0.0.0.0/0 any isolation ["default/cli-out Egress", "default/web-in Ingress"]"#,
                r#"deny 0.0.0.0/0 -> 0.0.0.0/0 any isolation ["default/web-in Ingress"]"#,
            ]
        );
        assert_eq!(web.rules[0].pod.as_deref(), Some("default/cli"));
        // web2 (and cli itself) are not isolated and cli may open nothing to them: its
        // section is a lone deny, then the default permit.
        let web2 = x
            .local_tables
            .iter()
            .find(|t| t.pods.contains(&"default/web2".to_string()))
            .unwrap();
        assert_eq!(web2.pods, ["default/cli", "default/web2"]);
        let lines: Vec<String> = web2.rules.iter().map(line).collect();
        assert_eq!(
            lines,
            [
                r#"deny 10.1.1.4/32 -> 0.0.0.0/0 any isolation ["default/cli-out Egress"]"#,
                r#"permit 0.0.0.0/0 -> 0.0.0.0/0 any default []"#,
            ]
        );
        let g: Vec<String> = x.global_table.rules.iter().map(line).collect();
        assert_eq!(
            g,
            [
                r#"permit 10.1.1.4/32 -> 10.1.2.5/32:5432 tcp egress ["default/cli-out Egress[1]"]"#,
                r#"permit 10.1.1.4/32 -> 10.1.1.2/32:80-81 tcp egress ["default/cli-out Egress[0]"]"#,
                r#"deny 10.1.1.4/32 -> 0.0.0.0/0 any isolation ["default/cli-out Egress"]"#,
                r#"permit 0.0.0.0/0 -> 0.0.0.0/0 any default []"#,
            ]
        );
        // cli's own view: no table of its own, its sections in both web tables, its part of
        // the global table.
        let p = r.explain_pod(&PodKey::new("default", "cli")).unwrap();
        assert_eq!(p.to_pod.as_ref().map(|t| &t.id), Some(&web2.id));
        assert_eq!(p.egress_policies, ["default/cli-out"]);
        assert_eq!(p.from_pod_global.rules.len(), 4);
        let sections: Vec<(usize, &str)> = p
            .from_pod_local
            .iter()
            .map(|t| (t.rules.len(), t.pods[0].as_str()))
            .collect();
        assert_eq!(sections.len(), 2);
        assert!(sections.contains(&(2, "default/web1")) && sections.contains(&(1, "default/cli")));
        // web1's view of the global table: only the default permit matches its traffic.
        let w = r.explain_pod(&PodKey::new("default", "web1")).unwrap();
        assert_eq!(w.from_pod_global.rules.len(), 1);
        assert_eq!(w.from_pod_global.rules[0].index, 3);
    }

    #[test]
    fn unknown_and_remote_pods_have_no_view() {
        let r = Renderer::render("n1", &cluster(vec![pol("a", FROM_CLI_80)]));
        assert!(r.explain_pod(&PodKey::new("default", "nope")).is_none());
        assert!(r.explain_pod(&PodKey::new("default", "db")).is_none());
    }

    #[test]
    fn json_shape() {
        let r = Renderer::render("n1", &cluster(vec![pol("a", FROM_CLI_80)]));
        let x = r.explain();
        let j = serde_json::to_string(&x.local_tables[0].rules[0]).unwrap();
        assert_eq!(
            j,
            r#"{"index":0,"action":"permit","src":"10.1.1.4/32","dst":"0.0.0.0/0","protocol":"tcp","src_ports":[0,65535],"dst_ports":[80,80],"role":"ingress","origins":[{"policy":"default/a","direction":"ingress","rule":0}]}"#
        );
        let back: Explained = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
        assert_eq!(back, x);
    }
}
