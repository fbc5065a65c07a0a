//! The ACL backend: turns the renderer's tables and each transaction's [`Changes`] into ACL
//! objects of the ACL crate (`vpg-acl`) and interface ACL lists, one [`AclChangeSet`] per
//! transaction.
//!
//! Placement (`docs/renderer.md`, DESIGN.md §3):
//!
//! | interface | input list | output list |
//! |---|---|---|
//! | pod carrying a local table | reflective permit-all | its local table |
//! | pod without a local table | empty | empty |
//! | uplinks | reflective permit-all | the global table |
//! | tunnels | reflective permit-all | the global table |
//!
//! Sessions are per interface: the input reflect on a pod creates the session that lets the
//! replies of the pod's own connections through its output table; the input reflect on uplinks
//! and tunnels does the same for the global table, so a reply of a local egress-isolated pod to
//! a connection a remote peer opened is not judged as a new connection by the global table.
//!
//! ACL ids: `base` is the reflective permit-all, `base + 1` the global table (replaced in place
//! when it changes), local tables get ids from `base + 2` up, stable for a table id while the
//! table exists (a freed id is reused only by a later change set). Each ACL's tag is the table id
//! (`lt-…`, `gt-…`), so [`AclBackend::resume`] can rebuild the map from what the data plane
//! reports.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use vpg_acl::{Acl, Action as AclAction, PortRange as AclPorts, Rule as AclRule};
use vpg_graph::wire::Ipv4Cidr;

use crate::cache::{Changes, NodeTables, TableChange};
use crate::model::PodKey;
use crate::rule::{Action, Ipv4Net, PortRange, Rule};

/// Tag of the reflective permit-all ACL.
pub const REFLECT_TAG: &str = "vpg-reflect";

/// An interface (or a class of interfaces) that gets ACL lists.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Interface {
    /// The interface of a local pod.
    Pod(PodKey),
    /// Every uplink of the node.
    Uplinks,
    /// Every tunnel of the node (VXLAN, IPsec).
    Tunnels,
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Interface::Pod(k) => write!(f, "pod {k}"),
            Interface::Uplinks => f.write_str("uplinks"),
            Interface::Tunnels => f.write_str("tunnels"),
        }
    }
}

/// The ACL lists to set on an interface (replacing what it had).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InterfaceAcls {
    /// Where.
    pub interface: Interface,
    /// Input ACL ids, in order.
    pub input: Vec<u32>,
    /// Output ACL ids, in order.
    pub output: Vec<u32>,
}

/// What one transaction asks of the data plane. Apply in this order: add or replace `acls`,
/// set `interfaces`, then delete `delete` (the data plane refuses to delete an ACL still in
/// use, and a deleted table's pods are moved off it by `interfaces`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AclChangeSet {
    /// ACLs to add, or to replace when the id exists.
    pub acls: Vec<Acl>,
    /// Interface lists to set. A pod that no longer exists may appear with empty lists; the
    /// agent ignores pods it has no interface for.
    pub interfaces: Vec<InterfaceAcls>,
    /// ACL ids to delete.
    pub delete: Vec<u32>,
}

impl AclChangeSet {
    /// True when the data plane needs nothing.
    pub fn is_empty(&self) -> bool {
        self.acls.is_empty() && self.interfaces.is_empty() && self.delete.is_empty()
    }
}

impl fmt::Display for AclChangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for a in &self.acls {
            writeln!(f, "acl {} {} ({} rules)", a.id, a.tag, a.rules.len())?;
        }
        for i in &self.interfaces {
            writeln!(
                f,
                "interface {} input {:?} output {:?}",
                i.interface, i.input, i.output
            )?;
        }
        for d in &self.delete {
            writeln!(f, "delete acl {d}")?;
        }
        Ok(())
    }
}

/// Why the backend could not produce a change set.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BackendError {
    /// More live tables than ids above `base`.
    #[error("ACL ids above {base} are exhausted")]
    IdsExhausted {
        /// The backend's base id.
        base: u32,
    },
    /// A change names a table the backend never saw (changes from another renderer, or a
    /// missed change set).
    #[error("change names unknown table {0}")]
    UnknownTable(String),
}

/// Keeps the table id → ACL id map of one node and turns [`Changes`] into [`AclChangeSet`]s.
#[derive(Clone, Debug)]
pub struct AclBackend {
    base: u32,
    ids: BTreeMap<String, u32>,
    free: BTreeSet<u32>,
    next: u32,
    started: bool,
}

impl AclBackend {
    /// A backend whose ACLs use ids from `base` up (so the agent can keep other ACLs apart).
    pub fn new(base: u32) -> AclBackend {
        AclBackend {
            base,
            ids: BTreeMap::new(),
            free: BTreeSet::new(),
            next: base.saturating_add(2),
            started: false,
        }
    }

    /// A backend continuing from ACLs the data plane reports (`(id, tag)`): ids tagged with a
    /// local table id are kept for that table. Follow with the changes of
    /// [`crate::Renderer::resync`] against the tables these ACLs hold.
    pub fn resume<'a>(base: u32, acls: impl IntoIterator<Item = (u32, &'a str)>) -> AclBackend {
        let mut b = AclBackend::new(base);
        b.started = true;
        for (id, tag) in acls {
            if tag.starts_with("lt-") && id >= b.next {
                b.ids.insert(tag.to_string(), id);
            }
        }
        let top = b.ids.values().max().map_or(b.next, |m| m.saturating_add(1));
        b.free = (b.next..top)
            .filter(|i| !b.ids.values().any(|v| v == i))
            .collect();
        b.next = top;
        b
    }

    /// Id of the reflective permit-all ACL.
    pub fn reflect_id(&self) -> u32 {
        self.base
    }

    /// Id of the global table's ACL.
    pub fn global_id(&self) -> u32 {
        self.base.saturating_add(1)
    }

    /// The ACL id of a local table.
    pub fn acl_id(&self, table: &str) -> Option<u32> {
        self.ids.get(table).copied()
    }

    /// The change set installing a whole node's tables from nothing (after
    /// [`crate::Renderer::render`]); the backend must be fresh.
    pub fn snapshot(&mut self, t: &NodeTables) -> Result<AclChangeSet, BackendError> {
        let changes = Changes {
            new_tables: t
                .local_tables
                .iter()
                .map(|lt| TableChange {
                    id: lt.id.clone(),
                    pods: lt.pods.iter().filter_map(|p| parse_key(p)).collect(),
                    rules: lt.rules.clone().into(),
                })
                .collect(),
            global_table: Some(t.global_table.clone()),
            ..Changes::default()
        };
        self.apply(&changes)
    }

    /// The change set of one committed transaction. The first call also installs the
    /// reflective ACL, the global table and the uplink and tunnel lists (a renderer starts with
    /// the global table `permit any`, which a first commit reports only if it changed).
    pub fn apply(&mut self, c: &Changes) -> Result<AclChangeSet, BackendError> {
        let mut out = AclChangeSet::default();
        if !self.started {
            out.acls.push(Acl {
                id: self.reflect_id(),
                tag: REFLECT_TAG.into(),
                rules: vec![AclRule::any(AclAction::PermitReflect)],
            });
            if c.global_table.is_none() {
                let permit = [Rule::all(Action::Permit)];
                out.acls.push(Acl {
                    id: self.global_id(),
                    tag: crate::tables::content_id("gt-", &permit),
                    rules: permit.iter().map(acl_rule).collect(),
                });
            }
        }
        if let Some(g) = &c.global_table {
            out.acls.push(Acl {
                id: self.global_id(),
                tag: g.id.clone(),
                rules: g.rules.iter().map(acl_rule).collect(),
            });
        }
        if !self.started {
            for i in [Interface::Uplinks, Interface::Tunnels] {
                out.interfaces.push(InterfaceAcls {
                    interface: i,
                    input: vec![self.reflect_id()],
                    output: vec![self.global_id()],
                });
            }
        }

        // Freed ids join the free list only after this set, so no id is deleted and re-added
        // in one change set.
        let mut freed = Vec::new();
        for t in &c.removed_tables {
            let id = self
                .ids
                .remove(&t.id)
                .ok_or_else(|| BackendError::UnknownTable(t.id.clone()))?;
            out.delete.push(id);
            freed.push(id);
        }
        // Where each touched pod ends up: Some(acl) or none.
        let mut pods: BTreeMap<&PodKey, Option<u32>> = BTreeMap::new();
        for t in &c.removed_tables {
            for p in &t.pods {
                pods.entry(p).or_insert(None);
            }
        }
        for t in &c.new_tables {
            let id = self.allocate()?;
            self.ids.insert(t.id.clone(), id);
            out.acls.push(Acl {
                id,
                tag: t.id.clone(),
                rules: t.rules.iter().map(acl_rule).collect(),
            });
            for p in &t.pods {
                pods.insert(p, Some(id));
            }
        }
        for t in &c.reassigned_tables {
            let id = self
                .acl_id(&t.id)
                .ok_or_else(|| BackendError::UnknownTable(t.id.clone()))?;
            for p in &t.previous_pods {
                pods.entry(p).or_insert(None);
            }
            for p in &t.pods {
                pods.insert(p, Some(id));
            }
        }
        // A pod that stays on its table appears in both `pods` and `previous_pods` of a
        // reassignment; setting its lists again is harmless but noisy, so skip it.
        let unchanged: BTreeSet<&PodKey> = c
            .reassigned_tables
            .iter()
            .flat_map(|t| t.pods.intersection(&t.previous_pods))
            .collect();
        for (p, acl) in pods {
            if unchanged.contains(p) {
                continue;
            }
            out.interfaces.push(match acl {
                Some(id) => InterfaceAcls {
                    interface: Interface::Pod(p.clone()),
                    input: vec![self.reflect_id()],
                    output: vec![id],
                },
                None => InterfaceAcls {
                    interface: Interface::Pod(p.clone()),
                    input: vec![],
                    output: vec![],
                },
            });
        }
        self.free.extend(freed);
        self.started = true;
        Ok(out)
    }

    fn allocate(&mut self) -> Result<u32, BackendError> {
        if let Some(id) = self.free.pop_first() {
            return Ok(id);
        }
        let id = self.next;
        self.next = id
            .checked_add(1)
            .ok_or(BackendError::IdsExhausted { base: self.base })?;
        Ok(id)
    }
}

/// One renderer rule as an ACL rule. Permits stay plain permits: replies are let through by the
/// reflective ACL on the input side, not by these tables.
pub fn acl_rule(r: &Rule) -> AclRule {
    AclRule {
        action: match r.action {
            Action::Permit => AclAction::Permit,
            Action::Deny => AclAction::Deny,
        },
        src: cidr(r.src),
        dst: cidr(r.dst),
        proto: r.protocol.number().unwrap_or(0),
        sport: ports(r.src_ports),
        dport: ports(r.dst_ports),
        tcp_flags_value: 0,
        tcp_flags_mask: 0,
    }
}

fn cidr(n: Ipv4Net) -> Ipv4Cidr {
    // An Ipv4Net's length is at most 32, which is all `Ipv4Cidr::new` checks.
    Ipv4Cidr::new(n.addr(), n.prefix_len()).unwrap_or_else(|_| {
        Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).unwrap_or_else(|_| unreachable!())
    })
}

fn ports(p: PortRange) -> AclPorts {
    AclPorts { lo: p.lo, hi: p.hi }
}

fn parse_key(s: &str) -> Option<PodKey> {
    let (ns, name) = s.split_once('/')?;
    Some(PodKey::new(ns, name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::labels;
    use crate::model::Pod;
    use crate::policy::NetworkPolicy;
    use crate::Renderer;

    fn pod(name: &str, app: &str, ip: &str) -> Pod {
        Pod {
            namespace: "default".into(),
            name: name.into(),
            labels: labels([("app", app)]),
            ip: Some(ip.parse().unwrap()),
            node: "n1".into(),
            ports: vec![],
        }
    }

    fn deny_app(app: &str) -> NetworkPolicy {
        NetworkPolicy {
            namespace: "default".into(),
            name: format!("deny-{app}"),
            spec: serde_json::from_str(&format!(
                r#"{{"podSelector": {{"matchLabels": {{"app": "{app}"}}}}}}"#
            ))
            .unwrap(),
        }
    }

    #[test]
    fn rules_convert_and_validate() {
        let r: Rule = serde_json::from_str(
            r#"{"action": "permit", "src": "10.1.0.0/16", "dst": "0.0.0.0/0", "protocol": "sctp", "src_ports": [0, 65535], "dst_ports": [80, 90]}"#,
        )
        .unwrap();
        let a = acl_rule(&r);
        assert_eq!(a.validate(), Ok(()));
        assert_eq!(
            a.to_string(),
            "permit 10.1.0.0/16 -> 0.0.0.0/0 sctp dport 80-90"
        );
        assert_eq!(
            acl_rule(&Rule::all(Action::Deny)),
            AclRule::any(AclAction::Deny)
        );
    }

    #[test]
    fn first_set_installs_fixed_acls_then_tables_follow_pods() {
        let mut r = Renderer::new("n1");
        let mut b = AclBackend::new(100);
        let mut t = r.txn();
        t.update_pod(pod("a", "x", "10.1.1.1"))
            .update_pod(pod("b", "x", "10.1.1.2"))
            .update_policy(deny_app("x"));
        let s = b.apply(&t.commit()).unwrap();
        let ids: Vec<u32> = s.acls.iter().map(|a| a.id).collect();
        assert_eq!(
            ids,
            vec![100, 101, 102],
            "reflect, global, the shared table"
        );
        assert_eq!(
            s.acls[0].rules,
            vec![AclRule::any(AclAction::PermitReflect)]
        );
        assert_eq!(s.acls[2].rules, vec![AclRule::any(AclAction::Deny)]);
        let lists: Vec<String> = s
            .interfaces
            .iter()
            .map(|i| format!("{} {:?} {:?}", i.interface, i.input, i.output))
            .collect();
        assert_eq!(
            lists,
            [
                "uplinks [100] [101]",
                "tunnels [100] [101]",
                "pod default/a [100] [102]",
                "pod default/b [100] [102]"
            ]
        );
        assert!(s.delete.is_empty());
        let tid = r
            .table_of(&PodKey::new("default", "a"))
            .unwrap()
            .to_string();
        assert_eq!(b.acl_id(&tid), Some(102));

        // A third pod joins the table: only its lists change.
        let mut t = r.txn();
        t.update_pod(pod("c", "x", "10.1.1.3"));
        let s = b.apply(&t.commit()).unwrap();
        assert!(s.acls.is_empty() && s.delete.is_empty());
        assert_eq!(s.interfaces.len(), 1);
        assert_eq!(
            s.interfaces[0].interface,
            Interface::Pod(PodKey::new("default", "c"))
        );
        assert_eq!(s.interfaces[0].output, vec![102]);

        // Policy gone: the table is deleted after its pods are cleared; its id is reused later.
        let mut t = r.txn();
        t.remove_policy(&deny_app("x").key());
        let s = b.apply(&t.commit()).unwrap();
        assert_eq!(s.delete, vec![102]);
        assert_eq!(s.interfaces.len(), 3);
        assert!(s
            .interfaces
            .iter()
            .all(|i| i.input.is_empty() && i.output.is_empty()));
        let mut t = r.txn();
        t.update_policy(deny_app("x"));
        let s = b.apply(&t.commit()).unwrap();
        assert_eq!(s.acls.iter().map(|a| a.id).collect::<Vec<_>>(), vec![102]);
    }

    #[test]
    fn content_change_adds_before_it_deletes() {
        let mut r = Renderer::new("n1");
        let mut b = AclBackend::new(0);
        let mut t = r.txn();
        t.update_pod(pod("a", "x", "10.1.1.1"))
            .update_policy(deny_app("x"));
        b.apply(&t.commit()).unwrap();
        // An allow-from-everything policy changes a's table content: new id, old one deleted.
        let mut t = r.txn();
        t.update_policy(NetworkPolicy {
            namespace: "default".into(),
            name: "open".into(),
            spec: serde_json::from_str(
                r#"{"podSelector": {}, "ingress": [{"ports": [{"port": 80}]}]}"#,
            )
            .unwrap(),
        });
        let s = b.apply(&t.commit()).unwrap();
        assert_eq!(s.acls.len(), 1);
        assert_eq!(s.acls[0].id, 3, "the old id is not reused in the same set");
        assert_eq!(s.delete, vec![2]);
        assert_eq!(s.interfaces[0].output, vec![3]);
    }

    #[test]
    fn resume_keeps_reported_ids_and_rejects_unknown_tables() {
        let b = AclBackend::resume(
            10,
            [
                (10, REFLECT_TAG),
                (11, "gt-1"),
                (12, "lt-a"),
                (15, "lt-b"),
                (40, "other"),
            ],
        );
        assert_eq!(b.acl_id("lt-a"), Some(12));
        assert_eq!(b.acl_id("lt-b"), Some(15));
        let mut b2 = b.clone();
        assert_eq!(b2.allocate(), Ok(13));
        assert_eq!(b2.allocate(), Ok(14));
        assert_eq!(b2.allocate(), Ok(16));
        let mut b3 = b;
        let bad = Changes {
            reassigned_tables: vec![crate::cache::Reassigned {
                id: "lt-zz".into(),
                pods: BTreeSet::new(),
                previous_pods: BTreeSet::new(),
            }],
            ..Changes::default()
        };
        assert_eq!(
            b3.apply(&bad),
            Err(BackendError::UnknownTable("lt-zz".into()))
        );
    }
}
