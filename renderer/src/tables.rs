//! Table content, computed from the [`Index`]: per-pod rule lists, ingress sections, the
//! sections of egress-isolated local pods, local tables and the global table.
//!
//! Layout of a local table (applied to connections delivered to pod B):
//!
//! 1. one section per local egress-isolated pod A whose egress restricts what it may open to B:
//!    permits `A/32 -> any` for exactly the (protocol, port) pairs both A's egress and B's
//!    ingress admit, then `deny A/32 -> any`;
//! 2. B's ingress section: permits from the sources B's ingress rules admit, most specific
//!    first, without rules for a source that has a section (those are decided above);
//! 3. the catch-all: deny when B is isolated for ingress, else permit.
//!
//! The global table has one section per local egress-isolated pod (its `from_pod` permits,
//! then `deny A/32 -> any`) followed by `permit any`.
//!
//! Order: sections have disjoint sources (a /32 each) and each ends with its own catch-all;
//! within a section and within the ingress section rules are sorted by
//! [`Rule::specificity_cmp`], so a rule that matches a subset of another never comes later. An
//! ingress rule can only be a subset of a section rule if its source is that /32, and such
//! rules are dropped.

use std::net::Ipv4Addr;

use crate::fast::FastMap;
use crate::index::{Dir, Index, PodEntry, PodId, PolicyId};
use crate::model::{ContainerPort, Pod};
use crate::policy::{CPeer, CPortRef, CRule};
use crate::ports::{section, PortSet};
use crate::rule::{aggregate, Action, Digest, Field, Ipv4Net, PortRange, Protocol, Rule};

/// What B's ingress section depends on: the policies isolating it for ingress and, when any of
/// their rules names a port, B's container ports.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct IngressKey {
    pub policies: Vec<PolicyId>,
    pub ports: Option<Vec<ContainerPort>>,
}

/// What a local table depends on: B's ingress key (None when not isolated for ingress) and the
/// admitted set of each restricted source's section, in section order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct TableKey {
    pub ingress: Option<IngressKey>,
    pub sections: Vec<(Ipv4Addr, PortSet)>,
}

/// The ports of `rule`'s entries as seen by destination `dst`: named ports resolve against its
/// container ports (no pod: names admit nothing).
pub(crate) fn rule_ports(rule: &CRule, dst: Option<&Pod>) -> PortSet {
    let Some(ports) = &rule.ports else {
        return PortSet::All;
    };
    let mut set = PortSet::empty();
    for p in ports {
        match &p.port {
            CPortRef::All => set.add(p.proto, PortRange::ALL),
            CPortRef::Range(r) => set.add(p.proto, *r),
            CPortRef::Named(n) => {
                if let Some(pod) = dst {
                    for port in pod.named_port(n, p.proto) {
                        set.add(p.proto, PortRange::single(port));
                    }
                }
            }
        }
    }
    set
}

/// Whether a peer list (None = every peer) of rule `ri` of policy `q` admits the pod `id` with
/// address `ip` (`id` None for an address that is no pod).
pub(crate) fn peers_admit(
    idx: &Index,
    q: PolicyId,
    dir: Dir,
    ri: usize,
    id: Option<PodId>,
    ip: Ipv4Addr,
) -> bool {
    let pe = &idx.policies[&q];
    let rule = &pe.rules(dir)[ri];
    match &rule.peers {
        None => true,
        Some(peers) => peers.iter().enumerate().any(|(pi, p)| match p {
            CPeer::Block(pieces) => pieces.iter().any(|n| n.contains(ip)),
            CPeer::Pods { .. } => id.is_some_and(|id| pe.matched(dir, ri, pi).contains(&id)),
        }),
    }
}

pub(crate) fn policies_with(idx: &Index, e: &PodEntry, dir: Dir) -> Vec<PolicyId> {
    e.policies
        .iter()
        .copied()
        .filter(|q| match dir {
            Dir::Ingress => idx.policies[q].c.ingress.is_some(),
            Dir::Egress => idx.policies[q].c.egress.is_some(),
        })
        .collect()
}

/// What local pod `a` may open to pod `b` by its egress rules.
pub(crate) fn egress_ports(idx: &Index, a: &PodEntry, b_id: PodId, b: &PodEntry) -> PortSet {
    let mut set = PortSet::empty();
    for q in policies_with(idx, a, Dir::Egress) {
        for (ri, r) in idx.policies[&q].rules(Dir::Egress).iter().enumerate() {
            if peers_admit(idx, q, Dir::Egress, ri, Some(b_id), b.ip) {
                set.union(&rule_ports(r, Some(&b.pod)));
                if set.is_all() {
                    return set;
                }
            }
        }
    }
    set
}

/// What local pod `b` admits from pod `a` by its ingress rules (everything when not isolated).
pub(crate) fn ingress_ports(idx: &Index, b: &PodEntry, a_id: PodId, a_ip: Ipv4Addr) -> PortSet {
    let qs = policies_with(idx, b, Dir::Ingress);
    if qs.is_empty() {
        return PortSet::All;
    }
    let mut set = PortSet::empty();
    for q in qs {
        for (ri, r) in idx.policies[&q].rules(Dir::Ingress).iter().enumerate() {
            if peers_admit(idx, q, Dir::Ingress, ri, Some(a_id), a_ip) {
                set.union(&rule_ports(r, Some(&b.pod)));
                if set.is_all() {
                    return set;
                }
            }
        }
    }
    set
}

/// B's ingress key, or None when B is not isolated for ingress.
pub(crate) fn ingress_key(idx: &Index, b: &PodEntry) -> Option<IngressKey> {
    let policies = policies_with(idx, b, Dir::Ingress);
    if policies.is_empty() {
        return None;
    }
    let named = policies.iter().any(|q| {
        idx.policies[q]
            .rules(Dir::Ingress)
            .iter()
            .any(CRule::has_named_ports)
    });
    let ports = named.then(|| {
        let mut p = b.pod.ports.clone();
        p.sort();
        p
    });
    Some(IngressKey { policies, ports })
}

/// Where the stretches of an unsorted rule list come from: `(end, policy, rule index)`, each
/// stretch starting where the previous one ended. Provenance asks for them; the renderer's own
/// calls pass `None` and pay one branch per policy rule.
pub(crate) type Spans = Vec<(usize, PolicyId, usize)>;

/// The permits of an ingress section (`src -> any`), sources aggregated, sorted.
pub(crate) fn ingress_section(idx: &Index, key: &IngressKey) -> Vec<Rule> {
    let mut out = Vec::new();
    ingress_permits(idx, key, &mut out, None);
    finish(idx, &mut out, Field::Src);
    out
}

/// The permits of an ingress section in emission order, one stretch per policy rule.
pub(crate) fn ingress_permits(
    idx: &Index,
    key: &IngressKey,
    out: &mut Vec<Rule>,
    mut spans: Option<&mut Spans>,
) {
    // Named ports resolve against the destination's ports, which the key carries.
    let dst = key.ports.as_ref().map(|ports| Pod {
        namespace: String::new(),
        name: String::new(),
        labels: Default::default(),
        ip: None,
        node: String::new(),
        ports: ports.clone(),
    });
    for q in &key.policies {
        let pe = &idx.policies[q];
        for (ri, r) in pe.rules(Dir::Ingress).iter().enumerate() {
            let ports = rule_ports(r, dst.as_ref());
            if ports.is_empty() {
                continue;
            }
            match &r.peers {
                None => ports.permits(Ipv4Net::ANY, Ipv4Net::ANY, out),
                Some(peers) => {
                    for (pi, p) in peers.iter().enumerate() {
                        match p {
                            CPeer::Block(pieces) => {
                                for n in pieces {
                                    ports.permits(*n, Ipv4Net::ANY, out);
                                }
                            }
                            CPeer::Pods { .. } => {
                                for id in pe.matched(Dir::Ingress, ri, pi) {
                                    let ip = idx.pods[id].ip;
                                    ports.permits(Ipv4Net::host(ip), Ipv4Net::ANY, out);
                                }
                            }
                        }
                    }
                }
            }
            if let Some(s) = spans.as_deref_mut() {
                s.push((out.len(), *q, ri));
            }
        }
    }
}

pub(crate) fn sort_dedup(v: &mut Vec<Rule>) {
    v.sort_unstable_by(Rule::specificity_cmp);
    v.dedup();
}

/// Emitted permits (of one section) made a table's: peers that differ only in `field`
/// aggregated into prefixes when the index says so, then sorted and deduplicated.
pub(crate) fn finish(idx: &Index, v: &mut Vec<Rule>, field: Field) {
    if idx.aggregate {
        aggregate(v, field);
    } else {
        sort_dedup(v);
    }
}

/// Whether every address of `src` has a section in the table (`decided`: the sections'
/// sources, sorted): a rule from it after the sections can never match first.
pub(crate) fn shadowed(src: Ipv4Net, decided: &[Ipv4Addr]) -> bool {
    // Most sources are pod /32s: one search, as before aggregation.
    if src.prefix_len() == 32 {
        return decided.binary_search(&src.addr()).is_ok();
    }
    let lo = u32::from(src.addr());
    let size = 1u64 << (32 - u32::from(src.prefix_len()));
    if size > decided.len() as u64 {
        return false;
    }
    let hi = Ipv4Addr::from((u64::from(lo) + size - 1) as u32);
    let lo = Ipv4Addr::from(lo);
    let n = decided.partition_point(|a| *a <= hi) - decided.partition_point(|a| *a < lo);
    n as u64 == size
}

/// What local egress-isolated pod A may open to local pod B where both restrictions meet:
/// None when A's egress does not restrict B (B's own rules decide), else the admitted set.
pub(crate) fn pair(
    idx: &Index,
    a_id: PodId,
    b_id: PodId,
    b: &PodEntry,
    isolated: bool,
) -> Option<PortSet> {
    let a = &idx.pods[&a_id];
    let e = egress_ports(idx, a, b_id, b);
    if e.is_all() {
        return None;
    }
    Some(if isolated {
        e.intersect(&ingress_ports(idx, b, a_id, a.ip))
    } else {
        e
    })
}

/// The key of B's local table; `egress_local` lists the local egress-isolated pods by address
/// and `pairs` caches [`pair`] results for B by A (the caller drops stale entries).
pub(crate) fn table_key(
    idx: &Index,
    b_id: PodId,
    b: &PodEntry,
    egress_local: &[(Ipv4Addr, PodId)],
    pairs: &mut FastMap<PodId, Option<PortSet>>,
) -> TableKey {
    let ingress = ingress_key(idx, b);
    let isolated = ingress.is_some();
    let mut sections = Vec::new();
    for &(a_ip, a_id) in egress_local {
        let p = pairs
            .entry(a_id)
            .or_insert_with(|| pair(idx, a_id, b_id, b, isolated));
        if let Some(set) = p {
            sections.push((a_ip, set.clone()));
        }
    }
    TableKey { ingress, sections }
}

/// Materializes a local table from its key and B's ingress section (None: no table).
pub(crate) fn local_table(key: &TableKey, ingress: Option<&[Rule]>) -> Option<Vec<Rule>> {
    if key.ingress.is_none() && key.sections.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(ingress.map_or(0, <[Rule]>::len) + 2 * key.sections.len() + 1);
    let mut decided: Vec<Ipv4Addr> = Vec::with_capacity(key.sections.len());
    for (ip, set) in &key.sections {
        section(*ip, set, &mut out);
        decided.push(*ip);
    }
    decided.sort_unstable();
    decided.dedup();
    // An aggregated ingress rule may cover a sectioned address too: that address's section
    // ends in `deny A/32 -> any` (or permits all of it), so the rule never decides A.
    for r in ingress.unwrap_or(&[]) {
        if !shadowed(r.src, &decided) {
            out.push(*r);
        }
    }
    // An ingress rule admitting everything already ends the table (it sorts last).
    if !out.last().is_some_and(Rule::is_catch_all) {
        out.push(Rule::all(if key.ingress.is_some() {
            Action::Deny
        } else {
            Action::Permit
        }));
    }
    Some(out)
}

/// The `from_pod` permits of local pod `a` (source `a/32`), destinations aggregated, sorted;
/// None when its egress is not restricted (its permits admit everything).
pub(crate) fn egress_permits(idx: &Index, a: &PodEntry) -> Option<Vec<Rule>> {
    let qs = policies_with(idx, a, Dir::Egress);
    if qs.is_empty() {
        return None;
    }
    let mut out = Vec::new();
    egress_permits_raw(idx, a, &qs, &mut out, None);
    finish(idx, &mut out, Field::Dst);
    // Aggregated, blocks that together cover every address become `0.0.0.0/0` too.
    if out
        .last()
        .is_some_and(|r| r.dst.is_any() && r.protocol == Protocol::Any)
    {
        return None;
    }
    Some(out)
}

/// The `from_pod` permits of local pod `a` by the egress policies `qs`, in emission order, one
/// stretch per policy rule.
pub(crate) fn egress_permits_raw(
    idx: &Index,
    a: &PodEntry,
    qs: &[PolicyId],
    out: &mut Vec<Rule>,
    mut spans: Option<&mut Spans>,
) {
    let src = Ipv4Net::host(a.ip);
    for &q in qs {
        let pe = &idx.policies[&q];
        for (ri, r) in pe.rules(Dir::Egress).iter().enumerate() {
            // Numeric ports apply to every destination; named ones to pods only.
            let fixed = rule_ports(r, None);
            let named: Vec<(&str, Protocol)> = r
                .ports
                .iter()
                .flatten()
                .filter_map(|p| match &p.port {
                    CPortRef::Named(n) => Some((n.as_str(), p.proto)),
                    _ => None,
                })
                .collect();
            // A selected pod: every entry, names resolved against it.
            let to_pod = |id: PodId, out: &mut Vec<Rule>| {
                let d = &idx.pods[&id];
                rule_ports(r, Some(&d.pod)).permits(src, Ipv4Net::host(d.ip), out);
            };
            // A pod reached through an open destination: only its named ports (the numeric
            // entries are already emitted for the whole destination).
            let named_to_pod = |id: PodId, out: &mut Vec<Rule>| {
                let d = &idx.pods[&id];
                let mut set = PortSet::empty();
                for (n, p) in &named {
                    for port in d.pod.named_port(n, *p) {
                        set.add(*p, PortRange::single(port));
                    }
                }
                set.permits(src, Ipv4Net::host(d.ip), out);
            };
            // Pods that carry one of the names (for destinations that are not selectors).
            let named_pods = || -> Vec<PodId> {
                let mut v: Vec<PodId> = named
                    .iter()
                    .filter_map(|(n, p)| idx.named_ports.get(&(n.to_string(), *p)))
                    .flatten()
                    .copied()
                    .collect();
                v.sort_unstable();
                v.dedup();
                v
            };
            match &r.peers {
                None => {
                    fixed.permits(src, Ipv4Net::ANY, out);
                    for id in named_pods() {
                        named_to_pod(id, out);
                    }
                }
                Some(peers) => {
                    for (pi, p) in peers.iter().enumerate() {
                        match p {
                            CPeer::Block(pieces) => {
                                for n in pieces {
                                    fixed.permits(src, *n, out);
                                }
                                if !named.is_empty() {
                                    for id in named_pods() {
                                        if pieces.iter().any(|n| n.contains(idx.pods[&id].ip)) {
                                            named_to_pod(id, out);
                                        }
                                    }
                                }
                            }
                            CPeer::Pods { .. } => {
                                for id in pe.matched(Dir::Egress, ri, pi) {
                                    to_pod(*id, out);
                                }
                            }
                        }
                    }
                }
            }
            if let Some(s) = spans.as_deref_mut() {
                s.push((out.len(), q, ri));
            }
        }
    }
}

/// The global-table section of local pod `a`: its permits then `deny a/32 -> any`.
pub(crate) fn egress_section(idx: &Index, a: &PodEntry) -> Option<Vec<Rule>> {
    let mut v = egress_permits(idx, a)?;
    v.push(Rule {
        src: Ipv4Net::host(a.ip),
        ..Rule::all(Action::Deny)
    });
    Some(v)
}

/// Per-pod rules as the policy processor defines them (Kubernetes semantics, nothing folded).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodRules {
    /// Connections to the pod: permits `src -> pod/32`, then `deny any -> pod/32`; empty when
    /// the pod is not isolated for ingress.
    pub to_pod: Vec<Rule>,
    /// Connections from the pod: permits `pod/32 -> dst`, then `deny pod/32 -> any`; empty
    /// when the pod is not isolated for egress.
    pub from_pod: Vec<Rule>,
}

pub(crate) fn pod_rules(idx: &Index, b: &PodEntry) -> PodRules {
    let host = Ipv4Net::host(b.ip);
    let mut to_pod = Vec::new();
    if let Some(key) = ingress_key(idx, b) {
        to_pod = ingress_section(idx, &key)
            .into_iter()
            .map(|r| Rule { dst: host, ..r })
            .collect();
        sort_dedup(&mut to_pod);
        to_pod.push(Rule {
            dst: host,
            ..Rule::all(Action::Deny)
        });
    }
    let from_pod = if policies_with(idx, b, Dir::Egress).is_empty() {
        Vec::new()
    } else {
        match egress_section(idx, b) {
            Some(v) => v,
            None => vec![Rule {
                src: host,
                ..Rule::all(Action::Permit)
            }],
        }
    };
    PodRules { to_pod, from_pod }
}

/// Stable content id of a rule list.
pub(crate) fn content_id(prefix: &str, rules: &[Rule]) -> String {
    let mut h = Digest::new();
    h.write(rules.len() as u64);
    for r in rules {
        r.digest(&mut h);
    }
    format!("{prefix}{:016x}", h.finish())
}
