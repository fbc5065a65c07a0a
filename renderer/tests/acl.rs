//! The ACL backend against the renderer's own table evaluation: random clusters are rendered
//! through transactions, each change set is applied to a simulated `vpg-acl` data plane (ACLs by
//! id, interface lists, vpgd's refusals), and every connection is judged by `vpg-acl`'s
//! classifier over the interface lists (first match, no match denies). The verdicts must equal
//! `tables_allow` on the rendered tables.
//!
//! `PROPTEST_CASES` raises the number of random clusters (default 300 here).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;

use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use vpg_acl::classify::{Classifier, NO_MATCH};
use vpg_acl::{Acl, Action as AclAction, PacketKey, Rule as AclRule};
use vpg_renderer::acl_backend::REFLECT_TAG;
use vpg_renderer::{AclBackend, AclChangeSet, Cluster, Interface, PodKey, Renderer};

use common::*;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// A node's ACL state as vpgd keeps it, fed only with change sets.
#[derive(Default)]
struct AclPlane {
    acls: BTreeMap<u32, Acl>,
    lists: BTreeMap<Interface, (Vec<u32>, Vec<u32>)>,
    compiled: HashMap<Vec<u32>, (Classifier, Vec<AclRule>)>,
}

impl AclPlane {
    fn apply(&mut self, s: &AclChangeSet) {
        self.compiled.clear();
        for a in &s.acls {
            for (i, r) in a.rules.iter().enumerate() {
                assert_eq!(r.validate(), Ok(()), "acl {} rule {i}: {r}", a.id);
            }
            self.acls.insert(a.id, a.clone());
        }
        for i in &s.interfaces {
            for id in i.input.iter().chain(&i.output) {
                assert!(
                    self.acls.contains_key(id),
                    "{} uses missing acl {id}",
                    i.interface
                );
            }
            if i.input.is_empty() && i.output.is_empty() {
                self.lists.remove(&i.interface);
            } else {
                self.lists
                    .insert(i.interface.clone(), (i.input.clone(), i.output.clone()));
            }
        }
        for id in &s.delete {
            assert!(self.acls.remove(id).is_some(), "delete of missing acl {id}");
            for (i, (inp, outp)) in &self.lists {
                assert!(
                    !inp.contains(id) && !outp.contains(id),
                    "acl {id} deleted while {i} uses it"
                );
            }
        }
    }

    /// First-match verdict of an interface's output list; no list = allowed.
    fn output_allows(&mut self, i: &Interface, k: &PacketKey) -> bool {
        let Some((_, out)) = self.lists.get(i) else {
            return true;
        };
        let acls = &self.acls;
        let (c, rules) = self.compiled.entry(out.clone()).or_insert_with(|| {
            let rules: Vec<AclRule> = out
                .iter()
                .flat_map(|id| acls[id].rules.iter().copied())
                .collect();
            let keys: Vec<_> = rules.iter().map(AclRule::key).collect();
            (Classifier::compile(&keys), rules)
        });
        match c.classify(k) {
            NO_MATCH => false,
            n => rules[n as usize].action != AclAction::Deny,
        }
    }
}

/// Renders `c` on `node` through random transactions (objects in random order, then the
/// removal and re-addition of a few), feeding each commit's change set to a plane.
fn render_through_backend(c: &Cluster, node: &str, seed: u64) -> (Renderer, AclBackend, AclPlane) {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut r = Renderer::new(node);
    let mut b = AclBackend::new(1000);
    let mut plane = AclPlane::default();
    #[derive(Clone)]
    enum Ev {
        Ns(usize),
        Pod(usize),
        Pol(usize),
    }
    let mut evs: Vec<Ev> = (0..c.namespaces.len()).map(Ev::Ns).collect();
    evs.extend((0..c.pods.len()).map(Ev::Pod));
    evs.extend((0..c.policies.len()).map(Ev::Pol));
    evs.shuffle(&mut rng);
    // Churn at the end: remove some objects, then put them back.
    let again: Vec<Ev> = evs.iter().filter(|_| rng.gen_bool(0.2)).cloned().collect();
    let mut ops: Vec<(bool, Ev)> = evs.into_iter().map(|e| (true, e)).collect();
    ops.extend(again.iter().cloned().map(|e| (false, e)));
    ops.extend(again.into_iter().map(|e| (true, e)));
    for batch in ops.chunks(rng.gen_range(1..=3)) {
        let mut t = r.txn();
        for (add, e) in batch {
            match (add, e) {
                (true, Ev::Ns(i)) => t.update_namespace(c.namespaces[*i].clone()),
                (false, Ev::Ns(i)) => t.remove_namespace(&c.namespaces[*i].name),
                (true, Ev::Pod(i)) => t.update_pod(c.pods[*i].clone()),
                (false, Ev::Pod(i)) => t.remove_pod(&c.pods[*i].key()),
                (true, Ev::Pol(i)) => t.update_policy(c.policies[*i].clone()),
                (false, Ev::Pol(i)) => t.remove_policy(&c.policies[*i].key()),
            };
        }
        let changes = t.commit();
        plane.apply(
            &b.apply(&changes)
                .expect("backend accepts the renderer's changes"),
        );
    }
    if plane.acls.is_empty() {
        // A cluster with no object commits nothing; install the fixed ACLs.
        plane.apply(&b.apply(&Default::default()).unwrap());
    }
    (r, b, plane)
}

fn check(seed: u64) {
    let c = cluster(seed);
    let tables = render_all(&c);
    let mut planes: HashMap<String, AclPlane> = HashMap::new();
    for node in NODES {
        let (r, b, plane) = render_through_backend(&c, node, seed ^ 0x5eed);
        assert_eq!(r.tables(), tables[node], "history ends in the full render");
        // Fixed ACLs and lists.
        assert_eq!(plane.acls[&b.reflect_id()].tag, REFLECT_TAG);
        assert_eq!(
            plane.acls[&b.global_id()].tag,
            tables[node].global_table.id,
            "global acl is the global table"
        );
        for i in [Interface::Uplinks, Interface::Tunnels] {
            assert_eq!(plane.lists[&i], (vec![b.reflect_id()], vec![b.global_id()]));
        }
        // Pod lists follow the tables; nothing else is listed.
        let mut pods = 0;
        for lt in &tables[node].local_tables {
            let id = b.acl_id(&lt.id).expect("every table has an acl");
            assert_eq!(plane.acls[&id].tag, lt.id);
            for p in &lt.pods {
                let (ns, name) = p.split_once('/').unwrap();
                let key = Interface::Pod(PodKey::new(ns, name));
                assert_eq!(plane.lists[&key], (vec![b.reflect_id()], vec![id]), "{p}");
                pods += 1;
            }
        }
        assert_eq!(plane.lists.len(), pods + 2, "stale interface lists");
        assert_eq!(
            plane.acls.len(),
            tables[node].local_tables.len() + 2,
            "stale acls"
        );
        // A fresh backend's snapshot yields the same lists (ids may differ only by history).
        let mut fresh = AclPlane::default();
        fresh.apply(&AclBackend::new(1000).snapshot(&tables[node]).unwrap());
        assert_eq!(fresh.lists.len(), plane.lists.len());
        planes.insert(node.to_string(), plane);
    }

    let addrs = addresses(&c);
    let external: Vec<Ipv4Addr> = EXTERNAL.iter().map(|s| s.parse().unwrap()).collect();
    let pod_at = |ip: Ipv4Addr| c.pods.iter().find(|p| p.ip == Some(ip));
    for &src in &addrs {
        for &dst in &addrs {
            if src == dst || (external.contains(&src) && external.contains(&dst)) {
                continue;
            }
            for proto in [6u8, 17, 132, 1] {
                let ports: &[u16] = if proto == 1 { &[0] } else { &PROBE_PORTS };
                for &dport in ports {
                    let want = tables_allow(&c, &tables, src, dst, proto, dport);
                    let k = PacketKey {
                        src: src.to_bits(),
                        dst: dst.to_bits(),
                        // ICMP: type 8 (echo), code 0; otherwise the same source port as
                        // `tables_allow`.
                        sport: if proto == 1 { 8 } else { 40000 },
                        dport,
                        proto,
                        tcp_flags: if proto == 6 { 0x02 } else { 0 },
                        icmp_id: 0,
                    };
                    let (a, b) = (pod_at(src), pod_at(dst));
                    let mut got = true;
                    if let Some(a) = a {
                        if b.is_none_or(|b| b.node != a.node) {
                            // Leaves A's node by an uplink or a tunnel: both carry the global table.
                            let plane = planes.get_mut(&a.node).unwrap();
                            let up = plane.output_allows(&Interface::Uplinks, &k);
                            assert_eq!(up, plane.output_allows(&Interface::Tunnels, &k));
                            got &= up;
                        }
                    }
                    if let Some(b) = b {
                        got &= planes
                            .get_mut(&b.node)
                            .unwrap()
                            .output_allows(&Interface::Pod(b.key()), &k);
                    }
                    assert_eq!(
                        got, want,
                        "{src} -> {dst} proto {proto} port {dport}: acls say {got}, tables {want}\n{}\n{}",
                        tables["n1"], tables["n2"]
                    );
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    /// ACLs built from the change sets judge every connection as the tables do.
    #[test]
    fn acls_agree_with_tables(seed in any::<u64>()) {
        check(seed);
    }
}
