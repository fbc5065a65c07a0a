//! Provenance against the reference evaluator: for random clusters (the generator of
//! `property.rs`, every policy feature), every rule of every table names the policies it comes
//! from, and only those.
//!
//! - **Consistency**: `explain` gives exactly the tables' rules, in order.
//! - **Denies**: an `isolation` rule names exactly the policies isolating its pods (the
//!   section's pod for egress; the carriers for ingress), a `default` rule names none.
//! - **Soundness**, per probed connection, on the first rule that matches it: an `ingress`
//!   rule's and a global `egress` rule's peers are aggregated into prefixes, so some origin
//!   admits the connection by itself and each origin admits it from (ingress) or to (egress)
//!   some address of the rule's prefix, on its protocol and port; a local `egress` (section)
//!   rule's origins each admit the connection on some port of the rule.
//! - **Completeness**, per probed connection: every policy rule the reference says admits it
//!   is named by some rule of the table that matches it (local tables for the destination's
//!   ingress; the global table, or the destination's table where the source has a section, for
//!   the source's egress), whenever the table decides it.
//!
//! `PROPTEST_CASES` raises the number of random clusters (default 500).

mod common;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use proptest::prelude::*;
use vpg_renderer::policy::IntOrString;
use vpg_renderer::provenance::Direction;
use vpg_renderer::reference::Reference;
use vpg_renderer::{
    Action, Cluster, ExplainedRule, ExplainedTable, Ipv4Net, Origin, Renderer, Role,
};

use common::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

fn origins(pairs: &[(String, usize)], dir: Direction) -> BTreeSet<Origin> {
    pairs
        .iter()
        .map(|(p, n)| Origin {
            policy: p.clone(),
            direction: dir,
            rule: Some(*n),
        })
        .collect()
}

fn isolation(policies: &[String], dir: Direction) -> BTreeSet<Origin> {
    policies
        .iter()
        .map(|p| Origin {
            policy: p.clone(),
            direction: dir,
            rule: None,
        })
        .collect()
}

/// Ports where a rule's admission can change: every number the policies and pods name, with
/// its neighbours. Checking these inside a range tells whether some port of it is admitted.
fn breakpoints(c: &Cluster) -> Vec<u16> {
    let mut v = BTreeSet::new();
    let mut add = |n: i64| {
        for x in [n - 1, n, n + 1] {
            if let Ok(p) = u16::try_from(x) {
                v.insert(p);
            }
        }
    };
    for p in &c.policies {
        let ports = p
            .spec
            .ingress
            .iter()
            .flatten()
            .flat_map(|r| r.ports.iter().flatten())
            .chain(
                p.spec
                    .egress
                    .iter()
                    .flatten()
                    .flat_map(|r| r.ports.iter().flatten()),
            );
        for port in ports {
            if let Some(IntOrString::Int(n)) = &port.port {
                add(*n);
            }
            if let Some(e) = port.end_port {
                add(e);
            }
        }
    }
    for pod in &c.pods {
        for cp in &pod.ports {
            add(i64::from(cp.port));
        }
    }
    v.into_iter().collect()
}

/// Addresses where whether a policy rule admits a peer address can change: every pod
/// address, the external probes, and the edges of every ipBlock and exception with their
/// neighbours. Admission of the addresses between two of these is the same, so a prefix holds
/// an admitted address iff one of these inside it (or its first or last address) is.
fn addr_breaks(c: &Cluster) -> Vec<Ipv4Addr> {
    let mut v: BTreeSet<u32> = addresses(c).into_iter().map(u32::from).collect();
    let blocks = c.policies.iter().flat_map(|p| {
        let from = p
            .spec
            .ingress
            .iter()
            .flatten()
            .flat_map(|r| r.from.iter().flatten());
        let to = p
            .spec
            .egress
            .iter()
            .flatten()
            .flat_map(|r| r.to.iter().flatten());
        from.chain(to).filter_map(|peer| peer.ip_block.clone())
    });
    for b in blocks {
        for s in std::iter::once(b.cidr).chain(b.except.into_iter().flatten()) {
            if let Ok(n) = s.parse::<Ipv4Net>() {
                let (lo, hi) = span(n);
                for a in [lo.wrapping_sub(1), lo, hi, hi.wrapping_add(1)] {
                    v.insert(a);
                }
            }
        }
    }
    v.into_iter().map(Ipv4Addr::from).collect()
}

/// First and last address of a prefix.
fn span(n: Ipv4Net) -> (u32, u32) {
    let lo = u32::from(n.addr());
    let size = 1u64 << (32 - u32::from(n.prefix_len()));
    (lo, (u64::from(lo) + size - 1) as u32)
}

struct Check<'a> {
    c: &'a Cluster,
    reference: Reference<'a>,
    node: &'a str,
    breaks: Vec<u16>,
    addr_breaks: Vec<Ipv4Addr>,
    dump: String,
}

impl Check<'_> {
    fn pod_key(&self, ip: Ipv4Addr) -> Option<String> {
        self.c
            .pods
            .iter()
            .find(|p| p.ip == Some(ip))
            .map(|p| format!("{}/{}", p.namespace, p.name))
    }

    fn ip_of(&self, key: &str) -> Ipv4Addr {
        self.c
            .pods
            .iter()
            .find(|p| format!("{}/{}", p.namespace, p.name) == key)
            .and_then(|p| p.ip)
            .expect("a table names pods with addresses")
    }

    fn local(&self, ip: Ipv4Addr) -> bool {
        self.c
            .pods
            .iter()
            .any(|p| p.ip == Some(ip) && p.node == self.node)
    }

    fn fail(&self, what: String) -> ! {
        panic!("node {}: {what}\n{}", self.node, self.dump)
    }

    /// Isolation and default rules name exactly what they should.
    fn denies(&self, t: &ExplainedTable, global: bool) {
        let carriers_in: BTreeSet<Origin> = t
            .pods
            .iter()
            .flat_map(|p| {
                isolation(
                    &self.reference.isolating(self.ip_of(p)).0,
                    Direction::Ingress,
                )
            })
            .collect();
        for r in &t.rules {
            let got: BTreeSet<Origin> = r.origins.iter().cloned().collect();
            let want = match (r.role, &r.pod) {
                (Role::Default, _) => {
                    if r.rule.action != Action::Permit || !r.rule.is_catch_all() {
                        self.fail(format!("{}: a default rule is a permit-all", t.id));
                    }
                    BTreeSet::new()
                }
                (Role::Isolation, Some(a)) => {
                    let mut w = isolation(
                        &self.reference.isolating(self.ip_of(a)).1,
                        Direction::Egress,
                    );
                    if !global {
                        w.extend(carriers_in.iter().cloned());
                    }
                    w
                }
                (Role::Isolation, None) if !global => carriers_in.clone(),
                (Role::Ingress | Role::Egress, _) => continue,
                (role, pod) => self.fail(format!("{}: unexpected {role:?} of {pod:?}", t.id)),
            };
            if r.role == Role::Isolation && r.rule.action != Action::Deny {
                self.fail(format!("{}: rule {} is an isolation permit", t.id, r.index));
            }
            if got != want {
                self.fail(format!(
                    "{} rule {} `{}`: origins {got:?}, expected {want:?}",
                    t.id, r.index, r.rule
                ));
            }
        }
    }

    /// Whether `o` admits `src -> dst` on some port of `r`'s range.
    fn admits_somewhere(
        &self,
        o: &Origin,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        proto: u8,
        r: &ExplainedRule,
    ) -> bool {
        let (lo, hi) = (r.rule.dst_ports.lo, r.rule.dst_ports.hi);
        let ports = [lo, hi].into_iter().chain(
            self.breaks
                .iter()
                .copied()
                .filter(|p| (lo..=hi).contains(p)),
        );
        ports.into_iter().any(|p| {
            let (i, e) = self.reference.admitting(src, dst, proto, p);
            let set = match o.direction {
                Direction::Ingress => origins(&i, Direction::Ingress),
                Direction::Egress => origins(&e, Direction::Egress),
            };
            set.contains(o)
        })
    }

    /// Whether `o` admits the connection from (`ingress`) or to (global egress) some address
    /// of the rule's source (destination) prefix, on the connection's protocol and port.
    fn admits_in_prefix(
        &self,
        o: &Origin,
        conn: (Ipv4Addr, Ipv4Addr, u8, u16),
        r: &ExplainedRule,
        ingress: bool,
    ) -> bool {
        let (src, dst, proto, dport) = conn;
        let n = if ingress { r.rule.src } else { r.rule.dst };
        let (lo, hi) = span(n);
        let conn_peer = if ingress { src } else { dst };
        let candidates = [conn_peer, Ipv4Addr::from(lo), Ipv4Addr::from(hi)]
            .into_iter()
            .chain(self.addr_breaks.iter().copied().filter(|a| n.contains(*a)));
        candidates.into_iter().any(|a| {
            let (i, e) = if ingress {
                self.reference.admitting(a, dst, proto, dport)
            } else {
                self.reference.admitting(src, a, proto, dport)
            };
            if ingress {
                origins(&i, Direction::Ingress).contains(o)
            } else {
                origins(&e, Direction::Egress).contains(o)
            }
        })
    }

    /// One probed connection against one table.
    fn probe(&self, t: &ExplainedTable, global: bool, conn: (Ipv4Addr, Ipv4Addr, u8, u16)) {
        let (src, dst, proto, dport) = conn;
        let matching: Vec<&ExplainedRule> = t
            .rules
            .iter()
            .filter(|r| r.rule.matches(src, dst, proto, 40000, dport))
            .collect();
        let Some(first) = matching.first() else {
            self.fail(format!("{}: no rule matches {conn:?}", t.id));
        };
        let (ing, eg) = self.reference.admitting(src, dst, proto, dport);
        let (ing, eg) = (
            origins(&ing, Direction::Ingress),
            origins(&eg, Direction::Egress),
        );
        // Soundness of the deciding rule.
        if first.rule.action == Action::Permit {
            let direct = match (first.role, global) {
                (Role::Ingress, false) => Some(&ing),
                (Role::Egress, true) => Some(&eg),
                _ => None,
            };
            if direct.is_some_and(|d| !first.origins.iter().any(|o| d.contains(o))) {
                self.fail(format!(
                    "{} rule {} `{}` ({:?}) decides {conn:?} but none of its origins admits it",
                    t.id, first.index, first.rule, first.role
                ));
            }
            for o in &first.origins {
                let ok = match (first.role, global) {
                    (Role::Ingress, false) => self.admits_in_prefix(o, conn, first, true),
                    (Role::Egress, true) => self.admits_in_prefix(o, conn, first, false),
                    (Role::Egress, false) => self.admits_somewhere(o, src, dst, proto, first),
                    _ => false,
                };
                if !ok {
                    self.fail(format!(
                        "{} rule {} `{}` ({:?}) decides {conn:?} but names {o:?}, which does not admit it",
                        t.id, first.index, first.rule, first.role
                    ));
                }
            }
        }
        // Completeness, where this table decides the direction.
        let named: BTreeSet<&Origin> = matching.iter().flat_map(|r| &r.origins).collect();
        let src_key = self.pod_key(src);
        let sectioned = |key: &Option<String>| {
            key.is_some()
                && t.rules
                    .iter()
                    .any(|r| r.pod == *key && r.role != Role::Default)
        };
        let allowed = self.reference.allowed(src, dst, proto, dport);
        let mut want: BTreeSet<&Origin> = BTreeSet::new();
        if global {
            if sectioned(&src_key) {
                want.extend(&eg);
            }
        } else {
            // A source with a section here is decided by its section (where both sides
            // meet): it names the ingress rules only for what the source may open.
            if !sectioned(&src_key) || allowed {
                want.extend(&ing);
            }
            if sectioned(&src_key) && allowed {
                want.extend(&eg);
            }
        }
        let missing: Vec<&&Origin> = want.iter().filter(|o| !named.contains(**o)).collect();
        if !missing.is_empty() {
            self.fail(format!(
                "{}: {conn:?} is admitted by {missing:?}, which no matching rule names",
                t.id
            ));
        }
    }
}

fn check(c: &Cluster) {
    let addrs = addresses(c);
    let external: Vec<Ipv4Addr> = EXTERNAL.iter().map(|s| s.parse().unwrap()).collect();
    for node in NODES {
        let r = Renderer::render(node, c);
        let x = r.explain();
        let tables = r.tables();
        let ck = Check {
            c,
            reference: Reference::new(c),
            node,
            breaks: breakpoints(c),
            addr_breaks: addr_breaks(c),
            dump: format!(
                "{}\n{}",
                serde_json::to_string(c).unwrap(),
                serde_json::to_string_pretty(&x).unwrap()
            ),
        };
        // Consistency with the tables.
        assert_eq!(x.local_tables.len(), tables.local_tables.len());
        for (e, t) in x.local_tables.iter().zip(&tables.local_tables) {
            assert_eq!((&e.id, &e.pods), (&t.id, &t.pods));
            let rules: Vec<_> = e.rules.iter().map(|r| r.rule).collect();
            assert_eq!(rules, t.rules, "{}", ck.dump);
        }
        let g: Vec<_> = x.global_table.rules.iter().map(|r| r.rule).collect();
        assert_eq!(g, tables.global_table.rules);
        for t in &x.local_tables {
            ck.denies(t, false);
        }
        ck.denies(&x.global_table, true);
        // Each pod's own view: the same rules; a shared table names the union of its
        // carriers' origins, rule by rule.
        let mut views = std::collections::HashMap::new();
        for p in c.pods.iter().filter(|p| p.node == node && p.ip.is_some()) {
            let v = r
                .explain_pod(&p.key())
                .expect("a local pod with an address");
            let ip = p.ip.unwrap();
            assert!(v
                .from_pod_global
                .rules
                .iter()
                .all(|r| r.rule.src.contains(ip)));
            views.insert(ip, v);
        }
        for t in &x.local_tables {
            let mut union: Vec<BTreeSet<Origin>> = vec![BTreeSet::new(); t.rules.len()];
            for p in &t.pods {
                let own = views[&ck.ip_of(p)]
                    .to_pod
                    .clone()
                    .expect("a carrier has its table");
                assert_eq!(own.id, t.id);
                for ((u, a), b) in union.iter_mut().zip(&own.rules).zip(&t.rules) {
                    assert_eq!(a.rule, b.rule);
                    u.extend(a.origins.iter().cloned());
                }
            }
            for (u, r) in union.iter().zip(&t.rules) {
                let got: BTreeSet<Origin> = r.origins.iter().cloned().collect();
                assert_eq!(&got, u, "{} rule {}: {}", t.id, r.index, ck.dump);
            }
        }
        // Probed connections, against the destination pod's own view of its table.
        for &src in &addrs {
            for &dst in &addrs {
                if src == dst || (external.contains(&src) && external.contains(&dst)) {
                    continue;
                }
                for proto in [6u8, 17, 132, 1] {
                    let ports: &[u16] = if proto == 1 { &[0] } else { &PROBE_PORTS };
                    for &dport in ports {
                        let conn = (src, dst, proto, dport);
                        if ck.local(dst) {
                            if let Some(t) = views.get(&dst).and_then(|v| v.to_pod.as_ref()) {
                                ck.probe(t, false, conn);
                            }
                        } else if ck.local(src) {
                            ck.probe(&x.global_table, true, conn);
                        }
                    }
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// Every table rule names the policies it comes from, and only those.
    #[test]
    fn provenance_agrees_with_reference(seed in any::<u64>()) {
        check(&cluster(seed));
    }
}

/// The checks are not vacuous: over some clusters, rules of every role appear and most
/// permits name a policy.
#[test]
fn provenance_is_not_trivial() {
    let mut roles = BTreeSet::new();
    let (mut permits, mut named) = (0, 0);
    for seed in 0..200 {
        let c = cluster(seed);
        for node in NODES {
            let x = Renderer::render(node, &c).explain();
            for r in x
                .local_tables
                .iter()
                .chain([&x.global_table])
                .flat_map(|t| &t.rules)
            {
                roles.insert((r.role, r.pod.is_some()));
                if r.rule.action == Action::Permit && r.role != Role::Default {
                    permits += 1;
                    named += usize::from(!r.origins.is_empty());
                }
            }
        }
    }
    assert_eq!(roles.len(), 5, "{roles:?}");
    assert!(permits > 100 && named == permits, "{named}/{permits}");
}
