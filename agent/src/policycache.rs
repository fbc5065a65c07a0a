//! The policy renderer kept between passes.
//!
//! A pass computes the node's desired state from the whole cluster, which is what makes the agent
//! restart-safe; but rendering every NetworkPolicy from scratch costs seconds on a node with a
//! thousand pods. The renderer is incremental (its tests check that any history equals a render
//! from scratch), so the agent keeps one and feeds it the difference between the cluster it saw
//! last and the one it sees now: a policy change re-renders what it touches.

use std::collections::BTreeMap;

use vpg_renderer::{Cluster, Namespace, NetworkPolicy, Pod, Renderer};

/// The renderer and the cluster it holds.
#[derive(Default)]
pub struct PolicyCache {
    held: Option<(String, Cluster, Renderer)>,
    /// Passes that rendered from scratch / incrementally (for tests and logs).
    pub full: u64,
    /// Incremental updates.
    pub incremental: u64,
}

fn by_key<T, K: Ord>(xs: &[T], key: impl Fn(&T) -> K) -> BTreeMap<K, &T> {
    xs.iter().map(|x| (key(x), x)).collect()
}

impl PolicyCache {
    /// The renderer holding `cluster` for `node`.
    pub fn render(&mut self, node: &str, cluster: Cluster) -> &Renderer {
        let fresh = !matches!(&self.held, Some((n, _, _)) if n == node);
        if fresh {
            self.full += 1;
            let r = Renderer::render(node, &cluster);
            self.held = Some((node.to_string(), cluster, r));
        } else if let Some((_, old, r)) = &mut self.held {
            if *old != cluster {
                self.incremental += 1;
                apply_difference(r, old, &cluster);
                *old = cluster;
            }
        }
        match &self.held {
            Some((_, _, r)) => r,
            None => unreachable!("set above"),
        }
    }
}

/// Updates `r` from `old` to `new` in one transaction.
fn apply_difference(r: &mut Renderer, old: &Cluster, new: &Cluster) {
    let mut txn = r.txn();
    let (on, nn) = (
        by_key(&old.namespaces, |n: &Namespace| n.name.clone()),
        by_key(&new.namespaces, |n: &Namespace| n.name.clone()),
    );
    for (k, n) in &nn {
        if on.get(k) != Some(n) {
            txn.update_namespace((*n).clone());
        }
    }
    let (op, np) = (by_key(&old.pods, Pod::key), by_key(&new.pods, Pod::key));
    for (k, p) in &np {
        if op.get(k) != Some(p) {
            txn.update_pod((*p).clone());
        }
    }
    for k in op.keys().filter(|k| !np.contains_key(*k)) {
        txn.remove_pod(k);
    }
    let (oq, nq) = (
        by_key(&old.policies, NetworkPolicy::key),
        by_key(&new.policies, NetworkPolicy::key),
    );
    for (k, p) in &nq {
        if oq.get(k) != Some(p) {
            txn.update_policy((*p).clone());
        }
    }
    for k in oq.keys().filter(|k| !nq.contains_key(*k)) {
        txn.remove_policy(k);
    }
    for k in on.keys().filter(|k| !nn.contains_key(*k)) {
        txn.remove_namespace(k);
    }
    let _ = txn.commit();
}

#[cfg(test)]
mod tests {
    use crate::cluster::ClusterState;
    use crate::desired::tests::{cfg, cluster, deny_all, pod};
    use crate::desired::{compute, compute_with, Inputs};
    use crate::podrec::LocalPod;
    use std::collections::BTreeSet;
    use vpg_ksr::kinds::policy::{Peer, Rule};
    use vpg_ksr::kinds::NamespaceRecord;
    use vpg_ksr::model::Selector;

    /// Ingress to `default` from the namespaces labelled `team=a`.
    fn from_team_a() -> vpg_ksr::kinds::PolicyRecord {
        let mut p = deny_all("default");
        p.name = "from-team-a".into();
        let mut sel = Selector::default();
        sel.match_labels.insert("team".into(), "a".into());
        p.ingress = vec![Rule {
            peers: vec![Peer::Pods {
                pod_selector: None,
                namespace_selector: Some(sel),
            }],
            ports: vec![],
        }];
        p
    }

    #[test]
    fn a_kept_renderer_computes_what_a_fresh_one_does_through_a_history() {
        let cfg = cfg();
        let mut steps: Vec<(ClusterState, Vec<LocalPod>)> = Vec::new();
        let mut c = cluster();
        let mut pods = vec![pod(2, "default", "a"), pod(3, "default", "b")];
        steps.push((c.clone(), pods.clone()));
        c.policies
            .insert("default/deny".into(), deny_all("default"));
        steps.push((c.clone(), pods.clone()));
        pods.push(pod(4, "other", "c"));
        c.namespaces.insert(
            "other".into(),
            NamespaceRecord {
                name: "other".into(),
                labels: Default::default(),
            },
        );
        steps.push((c.clone(), pods.clone()));
        c.policies
            .insert("default/from-team-a".into(), from_team_a());
        steps.push((c.clone(), pods.clone()));
        // A relabelled namespace: its pods become peers of the policy above.
        c.namespaces
            .get_mut("other")
            .unwrap()
            .labels
            .insert("team".into(), "a".into());
        steps.push((c.clone(), pods.clone()));
        c.policies.remove("default/deny");
        steps.push((c.clone(), pods.clone()));
        pods.remove(0);
        steps.push((c.clone(), pods.clone()));
        c.namespaces.remove("other");
        pods.retain(|p| p.key.as_ref().is_some_and(|(ns, _)| ns != "other"));
        steps.push((c.clone(), pods.clone()));
        c.policies.remove("default/from-team-a");
        steps.push((c.clone(), pods.clone()));
        steps.push((c.clone(), pods.clone())); // nothing changed

        let mut cache = super::PolicyCache::default();
        let mut acl_contents = BTreeSet::new();
        let none = BTreeSet::new();
        for (i, (c, pods)) in steps.iter().enumerate() {
            let inputs = || Inputs {
                cfg: &cfg,
                cluster: c,
                pods,
                excluded: &none,
                keys: None,
                workers: 1,
            };
            let kept = compute_with(inputs(), &mut cache);
            let fresh = compute(inputs());
            assert_eq!(kept, fresh, "step {i}");
            acl_contents.insert(format!("{:?}", fresh.desired.acls));
        }
        assert_eq!(cache.full, 1, "rendered from scratch once");
        assert_eq!(cache.incremental, 8, "then only what changed");
        assert!(
            acl_contents.len() >= 3,
            "the history changes the tables: {acl_contents:#?}"
        );
    }
}
