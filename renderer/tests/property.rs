//! Differential properties: rendered tables against the reference evaluator of Kubernetes
//! semantics, incremental rendering against a from-scratch render, the ordering invariant, and
//! `except` splitting.
//!
//! `PROPTEST_CASES` raises the number of random clusters (default 1000 per property here).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use vpg_renderer::reference::Reference;
use vpg_renderer::{subtract, Cluster, Ipv4Net, NodeTables, Renderer, Rule};

use common::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn dump(c: &Cluster, t: &std::collections::HashMap<String, NodeTables>) -> String {
    let mut s = serde_json::to_string_pretty(c).unwrap();
    for n in NODES {
        s.push_str(&format!("\n{}", t[n]));
    }
    s
}

/// Checks every connection between the cluster's addresses; returns how many were allowed.
fn check_cluster(c: &Cluster) -> usize {
    let tables = render_all(c);
    let reference = Reference::new(c);
    let addrs = addresses(c);
    let external: Vec<Ipv4Addr> = EXTERNAL.iter().map(|s| s.parse().unwrap()).collect();
    let mut allowed = 0;
    for &src in &addrs {
        for &dst in &addrs {
            if src == dst || (external.contains(&src) && external.contains(&dst)) {
                continue;
            }
            for proto in [6u8, 17, 132, 1] {
                let ports: &[u16] = if proto == 1 { &[0] } else { &PROBE_PORTS };
                for &dport in ports {
                    let want = reference.allowed(src, dst, proto, dport);
                    let got = tables_allow(c, &tables, src, dst, proto, dport);
                    assert_eq!(
                        got,
                        want,
                        "{src} -> {dst} proto {proto} port {dport}: tables say {got}, reference {want}\n{}",
                        dump(c, &tables)
                    );
                    allowed += usize::from(want);
                }
            }
        }
    }
    for t in tables.values() {
        for lt in &t.local_tables {
            check_order(&lt.rules);
        }
        check_order(&t.global_table.rules);
    }
    allowed
}

/// A rule that matches a subset of another never comes after it.
fn check_order(rules: &[Rule]) {
    for (i, a) in rules.iter().enumerate() {
        for b in &rules[i + 1..] {
            assert!(
                !b.is_subset_of(a),
                "rule `{b}` comes after `{a}`, which matches a superset of it"
            );
        }
    }
    assert!(!rules.is_empty(), "a table is never empty");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// The property the issue asks for: for random clusters using every policy feature, the
    /// rendered tables admit exactly the connections the reference admits.
    #[test]
    fn tables_agree_with_reference(seed in any::<u64>()) {
        check_cluster(&cluster(seed));
    }

    /// Any sequence of events ends in exactly the tables a from-scratch render gives, and the
    /// reported changes, applied to a copy of the data plane, reproduce those tables.
    #[test]
    fn incremental_equals_full(seed in any::<u64>()) {
        incremental(seed);
    }

    /// Aggregation is exact: for random packets between pods, addresses beside them that no
    /// pod holds (where a widened prefix would wrongly match) and outside addresses, the
    /// tables with peers aggregated into prefixes decide exactly as the tables with one rule
    /// per peer and as the reference; they are never bigger, and keep the order invariant.
    #[test]
    fn aggregation_is_exact(seed in any::<u64>()) {
        aggregation_exact(seed);
    }

    /// `except` splitting: disjoint pieces whose union is the CIDR minus the exceptions.
    #[test]
    fn except_pieces(base in any::<u32>(), len in 0u8..=28, ex in proptest::collection::vec((any::<u32>(), 0u8..=32), 0..4)) {
        let cidr = Ipv4Net::new(Ipv4Addr::from(base), len).unwrap();
        let except: Vec<Ipv4Net> = ex.iter().map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(*a), *l).unwrap()).collect();
        let pieces = subtract(cidr, &except);
        for (i, a) in pieces.iter().enumerate() {
            for b in &pieces[i + 1..] {
                prop_assert!(!a.covers(*b) && !b.covers(*a), "{a} and {b} overlap");
            }
        }
        // Probe addresses: the edges of every prefix involved, and random ones inside the CIDR.
        let mut probes = Vec::new();
        for n in std::iter::once(&cidr).chain(except.iter()).chain(pieces.iter()) {
            let lo = u32::from(n.addr());
            let hi = lo | if n.prefix_len() == 0 { u32::MAX } else { (1u32 << (32 - n.prefix_len())) - 1 };
            for x in [lo.wrapping_sub(1), lo, lo.wrapping_add(1), hi.wrapping_sub(1), hi, hi.wrapping_add(1)] {
                probes.push(Ipv4Addr::from(x));
            }
        }
        let mut rng = SmallRng::seed_from_u64(u64::from(base));
        let span = if len == 0 { u32::MAX } else { (1u32 << (32 - len)) - 1 };
        for _ in 0..64 {
            probes.push(Ipv4Addr::from(u32::from(cidr.addr()) | (rng.gen::<u32>() & span)));
        }
        for ip in probes {
            let want = cidr.contains(ip) && !except.iter().any(|e| e.contains(ip));
            let got = pieces.iter().filter(|p| p.contains(ip)).count();
            prop_assert_eq!(got, usize::from(want), "{} in {} minus {:?}: {:?}", ip, cidr, except, pieces);
        }
    }
}

/// Rule counts (aggregated, one per peer) of every table of every node of `c`, after checking
/// that both renderings and the reference decide 3,000 random packets alike.
fn aggregation_exact(seed: u64) -> (usize, usize) {
    let c = cluster(seed);
    let agg = render_all_with(&c, true);
    let flat = render_all_with(&c, false);
    let reference = Reference::new(&c);
    // Pods, every address of the /27 and /28 around them (unheld ones included), outside ones.
    let mut pool: Vec<Ipv4Addr> = addresses(&c);
    pool.extend((0..32).map(|i| Ipv4Addr::new(10, 0, 0, i)));
    pool.extend((0..16).map(|i| Ipv4Addr::new(10, 0, 1, i)));
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..3000 {
        let src = *pool.choose(&mut rng).unwrap();
        let dst = *pool.choose(&mut rng).unwrap();
        if src == dst {
            continue;
        }
        let proto = *[6u8, 17, 132, 1].choose(&mut rng).unwrap();
        let dport = if proto == 1 {
            0
        } else if rng.gen_bool(0.7) {
            *PROBE_PORTS.choose(&mut rng).unwrap()
        } else {
            rng.gen()
        };
        let a = tables_allow(&c, &agg, src, dst, proto, dport);
        let f = tables_allow(&c, &flat, src, dst, proto, dport);
        let want = reference.allowed(src, dst, proto, dport);
        assert_eq!(
            (a, f),
            (want, want),
            "{src} -> {dst} proto {proto} port {dport}: aggregated {a}, one rule per peer {f}, reference {want}\n{}\n{}",
            dump(&c, &agg),
            dump(&c, &flat)
        );
    }
    let count = |t: &std::collections::HashMap<String, NodeTables>| -> usize {
        t.values()
            .map(|n| {
                n.global_table.rules.len()
                    + n.local_tables.iter().map(|l| l.rules.len()).sum::<usize>()
            })
            .sum()
    };
    for n in agg.values() {
        for lt in &n.local_tables {
            check_order(&lt.rules);
        }
        check_order(&n.global_table.rules);
    }
    let (a, f) = (count(&agg), count(&flat));
    assert!(
        a <= f,
        "aggregation added rules: {a} > {f}\n{}",
        dump(&c, &agg)
    );
    (a, f)
}

#[test]
fn aggregation_is_not_trivial() {
    // The generator gives peer sets that aggregate: in a good share of clusters the
    // aggregated tables are smaller, so `aggregation_is_exact` exercises the merging.
    let (mut shrunk, mut a, mut f) = (0, 0, 0);
    for seed in 0..200 {
        let (x, y) = aggregation_exact(seed);
        shrunk += usize::from(x < y);
        a += x;
        f += y;
    }

    assert!(shrunk >= 40, "only {shrunk} of 200 clusters shrink");
    assert!(a * 10 < f * 9, "aggregated {a} rules against {f}");
}

/// Applies a random event history to an incremental renderer per node, checking after each
/// transaction that its tables (and their provenance) equal a from-scratch render and that the
/// reported changes keep a simulated data plane in step.
fn incremental(seed: u64) {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x9e37_79b9_7f4a_7c15);
    let target = cluster(seed);
    let namespaces: Vec<String> = vec!["ns0".into(), "ns1".into(), "ns2".into()];
    let ips: Vec<Ipv4Addr> = target.pods.iter().filter_map(|p| p.ip).collect();
    let mut cur = Cluster::default();
    let mut renderers: Vec<Renderer> = NODES.iter().map(|n| Renderer::new(n)).collect();
    let mut planes: Vec<Plane> = NODES
        .iter()
        .map(|n| Plane::new(&Renderer::new(n).tables()))
        .collect();

    // Events: the target's objects in random order, interleaved with random churn.
    let mut events: Vec<Ev> = Vec::new();
    events.extend(target.namespaces.iter().cloned().map(Ev::Ns));
    events.extend(target.pods.iter().cloned().map(Ev::Pod));
    events.extend(target.policies.iter().cloned().map(Ev::Pol));
    events.shuffle(&mut rng);
    let mut i = 0;
    let mut steps = 0;
    while i < events.len() && steps < 60 {
        steps += 1;
        let batch = rng.gen_range(1..=3);
        let mut txns: Vec<Ev> = Vec::new();
        let mut next = cur.clone();
        for _ in 0..batch {
            if rng.gen_bool(0.3) {
                // Drawn against the batch so far, so two readdresses never pick one address.
                let ev = churn(&mut rng, &next, &namespaces, &ips);
                ev.apply(&mut next);
                txns.push(ev);
            } else if i < events.len() {
                events[i].apply(&mut next);
                txns.push(events[i].clone());
                i += 1;
            }
        }
        for ev in &txns {
            ev.apply(&mut cur);
        }
        for (r, plane) in renderers.iter_mut().zip(planes.iter_mut()) {
            let mut t = r.txn();
            for ev in &txns {
                ev.txn(&mut t);
            }
            let changes = t.commit();
            plane.apply(&changes);
            let full = Renderer::render(r.node(), &cur);
            let want = full.tables();
            let got = r.tables();
            // Provenance is derived from the index the incremental updates keep: it must
            // equal a from-scratch render's too.
            assert_eq!(
                r.explain(),
                full.explain(),
                "incremental provenance differs after {txns:?}"
            );
            assert_eq!(
                got,
                want,
                "incremental tables differ after {txns:?}\ncluster {}",
                serde_json::to_string(&cur).unwrap()
            );
            assert_eq!(
                plane.tables(),
                want,
                "changes did not reproduce the tables after {txns:?}"
            );
        }
    }
}

/// A data plane fed only with [`vpg_renderer::Changes`].
struct Plane {
    node: String,
    tables: BTreeMap<String, (Vec<Rule>, BTreeSet<String>)>,
    global: vpg_renderer::GlobalTable,
}

impl Plane {
    fn new(t: &NodeTables) -> Plane {
        Plane {
            node: t.node.clone(),
            tables: BTreeMap::new(),
            global: t.global_table.clone(),
        }
    }

    fn apply(&mut self, c: &vpg_renderer::Changes) {
        for t in &c.removed_tables {
            let old = self.tables.remove(&t.id).expect("removed table exists");
            let prev: BTreeSet<String> = t.pods.iter().map(|p| p.to_string()).collect();
            assert_eq!(old.1, prev, "removed table's pods");
        }
        for t in &c.new_tables {
            assert!(
                !self.tables.contains_key(&t.id),
                "new table {} already exists",
                t.id
            );
            self.tables.insert(
                t.id.clone(),
                (
                    t.rules.to_vec(),
                    t.pods.iter().map(|p| p.to_string()).collect(),
                ),
            );
        }
        for t in &c.reassigned_tables {
            let e = self.tables.get_mut(&t.id).expect("reassigned table exists");
            let prev: BTreeSet<String> = t.previous_pods.iter().map(|p| p.to_string()).collect();
            assert_eq!(e.1, prev, "previous pods of a reassigned table");
            e.1 = t.pods.iter().map(|p| p.to_string()).collect();
        }
        if let Some(g) = &c.global_table {
            assert_ne!(
                g.rules, self.global.rules,
                "global reported changed but is the same"
            );
            self.global = g.clone();
        }
    }

    fn tables(&self) -> NodeTables {
        NodeTables {
            node: self.node.clone(),
            local_tables: self
                .tables
                .iter()
                .map(|(id, (rules, pods))| vpg_renderer::LocalTable {
                    id: id.clone(),
                    pods: pods.iter().cloned().collect(),
                    rules: rules.clone(),
                })
                .collect(),
            global_table: self.global.clone(),
        }
    }
}

#[derive(Clone, Debug)]
enum Ev {
    Ns(vpg_renderer::Namespace),
    RmNs(String),
    Pod(vpg_renderer::Pod),
    RmPod(vpg_renderer::PodKey),
    Pol(vpg_renderer::NetworkPolicy),
    RmPol(vpg_renderer::PolicyKey),
}

impl Ev {
    fn apply(&self, c: &mut Cluster) {
        match self {
            Ev::Ns(n) => {
                c.namespaces.retain(|x| x.name != n.name);
                c.namespaces.push(n.clone());
            }
            Ev::RmNs(n) => c.namespaces.retain(|x| &x.name != n),
            Ev::Pod(p) => {
                c.pods.retain(|x| x.key() != p.key());
                c.pods.push(p.clone());
            }
            Ev::RmPod(k) => c.pods.retain(|x| &x.key() != k),
            Ev::Pol(p) => {
                c.policies.retain(|x| x.key() != p.key());
                c.policies.push(p.clone());
            }
            Ev::RmPol(k) => c.policies.retain(|x| &x.key() != k),
        }
    }

    fn txn(&self, t: &mut vpg_renderer::Txn<'_>) {
        match self {
            Ev::Ns(n) => t.update_namespace(n.clone()),
            Ev::RmNs(n) => t.remove_namespace(n),
            Ev::Pod(p) => t.update_pod(p.clone()),
            Ev::RmPod(k) => t.remove_pod(k),
            Ev::Pol(p) => t.update_policy(p.clone()),
            Ev::RmPol(k) => t.remove_policy(k),
        };
    }
}

/// A random change to the current cluster: relabel, move, readdress or remove a pod, change or
/// remove a policy, relabel or remove a namespace.
fn churn(rng: &mut SmallRng, cur: &Cluster, namespaces: &[String], ips: &[Ipv4Addr]) -> Ev {
    let mut r2 = SmallRng::seed_from_u64(rng.gen());
    match rng.gen_range(0..8) {
        0 | 1 if !cur.pods.is_empty() => {
            let mut p = cur.pods.choose(rng).unwrap().clone();
            let fresh = pod(&mut r2, 0, namespaces, None);
            match rng.gen_range(0..4) {
                0 => p.labels = fresh.labels,
                1 => p.ports = fresh.ports,
                2 => p.node = fresh.node,
                _ => {
                    // Readdress to an unused address, or lose the address.
                    let used: Vec<_> = cur.pods.iter().filter_map(|p| p.ip).collect();
                    p.ip = ips
                        .iter()
                        .copied()
                        .find(|ip| !used.contains(ip))
                        .filter(|_| rng.gen_bool(0.7));
                }
            }
            Ev::Pod(p)
        }
        2 if !cur.pods.is_empty() => Ev::RmPod(cur.pods.choose(rng).unwrap().key()),
        3 if !cur.policies.is_empty() => {
            let old = cur.policies.choose(rng).unwrap();
            let mut p = policy(&mut r2, old.name.clone(), namespaces, ips);
            p.namespace = old.namespace.clone();
            Ev::Pol(p)
        }
        4 if !cur.policies.is_empty() => Ev::RmPol(cur.policies.choose(rng).unwrap().key()),
        5 => {
            let c = cluster(rng.gen());
            Ev::Ns(vpg_renderer::Namespace {
                name: namespaces.choose(rng).unwrap().clone(),
                labels: c.namespaces[0].labels.clone(),
            })
        }
        6 => Ev::RmNs(namespaces.choose(rng).unwrap().clone()),
        _ => Ev::Pol(policy(
            &mut r2,
            format!("churn{}", rng.gen_range(0..3)),
            namespaces,
            ips,
        )),
    }
}

#[test]
fn reference_is_not_trivial() {
    // Guard against a generator that makes the differential test vacuous: across clusters, a
    // good share of connections is allowed and a good share denied.
    let (mut allowed, mut total) = (0usize, 0usize);
    for seed in 0..200 {
        let c = cluster(seed);
        let n = addresses(&c).len();
        allowed += check_cluster(&c);
        total += n * (n - 1) * (PROBE_PORTS.len() * 3 + 1);
    }
    let share = allowed as f64 / total as f64;
    assert!((0.15..0.85).contains(&share), "allowed share {share}");
}
