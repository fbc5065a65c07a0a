//! The status socket's policy and node views ([`vpg_api::agent`]): what `vpgctl show policy
//! tables|pod` and `vpgctl show node` print, built from the state the agent last applied.
//!
//! After every successful pass the sync thread keeps an [`Applied`]: the inputs (the store's
//! records as decoded, the CNI pod records), the desired state with each object's reason, and
//! vpgd's state after the transaction as the agent's model of vpgd has it (which gives ACL ids
//! and interface indices). The views are built from it only when asked:
//!
//! - the policy views render the node again from the same inputs (the renderer is a pure
//!   function of them, so the tables are the ones applied) and ask it for provenance
//!   ([`vpg_renderer::provenance`]); nothing of it is paid on the sync path;
//! - the node view walks the desired state and its reasons, grouped (uplink, pods, tunnels,
//!   routes, NAT44, services, ACLs, ESP, other), each object with its configuration in one line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use vpg_api::agent::{
    NodeObject, NodeView, Origin, PodPolicyView, PolicyDirection, PolicyTable, PolicyView,
    RuleRole, TableKind, TableRule,
};
use vpg_api::ConfigItem;
use vpg_renderer::provenance::{Direction, ExplainedTable, Role};
use vpg_renderer::{PodKey, Renderer};

use crate::cluster::ClusterState;
use crate::config::NodeConfig;
use crate::desired::{api_rule, is_pod_ifname, is_tunnel_ifname, Computed};
use crate::model::{AclSlot, Current, IfKind, MapKey, PathByName, PoolName};
use crate::podrec::LocalPod;

/// What the agent last applied, and from what.
#[derive(Clone, Debug)]
pub struct Applied {
    /// The store's records the pass computed from.
    pub cluster: ClusterState,
    /// The CNI pod records.
    pub pods: Vec<LocalPod>,
    /// The desired state and the reasons.
    pub computed: Computed,
    /// vpgd's state after the pass (by the agent's model of vpgd).
    pub current: Current,
    /// When the pass completed (RFC 3339 UTC).
    pub at: String,
}

/// vpgd's state after `items` were applied to `cur`. An item the model does not know is
/// skipped: the views then miss at most that item's effect, never the rest.
pub fn after(mut cur: Current, items: &[ConfigItem]) -> Current {
    for it in items {
        let _ = cur.apply(it);
    }
    cur
}

impl Applied {
    /// ACL id → tag, for the agent's ACLs.
    fn acl_by_tag(&self, cfg: &NodeConfig) -> BTreeMap<&str, u32> {
        let mut m = BTreeMap::new();
        for (id, a) in self.current.acls.range(cfg.acl_base..) {
            m.entry(a.tag.as_str()).or_insert(*id);
        }
        m
    }

    /// Interfaces whose output list holds ACL `id`, by name.
    fn users(&self, id: u32) -> Vec<String> {
        self.current
            .interfaces
            .values()
            .filter(|i| i.acl_out.contains(&id))
            .map(|i| i.name.clone())
            .collect()
    }

    fn renderer(&self, cfg: &NodeConfig) -> Renderer {
        Renderer::render(
            &cfg.node,
            &self.cluster.renderer_cluster(&cfg.node, &self.pods),
        )
    }

    fn slot_installed(&self, slot: &AclSlot) -> bool {
        self.computed.desired.acls.contains_key(slot)
    }

    fn table(&self, cfg: &NodeConfig, t: ExplainedTable, kind: TableKind) -> PolicyTable {
        let slot = match kind {
            TableKind::Local => AclSlot::Local(t.id.clone()),
            TableKind::Global => AclSlot::Global,
        };
        let acl_id = self
            .slot_installed(&slot)
            .then(|| self.acl_by_tag(cfg).get(t.id.as_str()).copied())
            .flatten();
        PolicyTable {
            interfaces: acl_id.map(|id| self.users(id)).unwrap_or_default(),
            id: t.id,
            kind,
            acl_id,
            pods: t.pods,
            rules: t
                .rules
                .into_iter()
                .map(|r| TableRule {
                    index: u32::try_from(r.index).unwrap_or(u32::MAX),
                    rule: api_rule(&r.rule),
                    role: match r.role {
                        Role::Ingress => RuleRole::Ingress,
                        Role::Egress => RuleRole::Egress,
                        Role::Isolation => RuleRole::Isolation,
                        Role::Default => RuleRole::Default,
                    },
                    pod: r.pod,
                    origins: r
                        .origins
                        .into_iter()
                        .map(|o| Origin {
                            policy: o.policy,
                            direction: match o.direction {
                                Direction::Ingress => PolicyDirection::Ingress,
                                Direction::Egress => PolicyDirection::Egress,
                            },
                            rule: o.rule.and_then(|i| u32::try_from(i).ok()),
                        })
                        .collect(),
                })
                .collect(),
        }
    }
}

/// Every policy table of the node with provenance, ACL ids and interfaces.
pub fn policy_view(cfg: &NodeConfig, a: &Applied) -> PolicyView {
    let r = a.renderer(cfg);
    let x = r.explain();
    let mut tables: Vec<PolicyTable> = x
        .local_tables
        .into_iter()
        .map(|t| a.table(cfg, t, TableKind::Local))
        .collect();
    tables.push(a.table(cfg, x.global_table, TableKind::Global));
    PolicyView {
        node: cfg.node.clone(),
        reflect_acl_id: a.slot_installed(&AclSlot::Reflect).then_some(cfg.acl_base),
        tables,
        errors: r.errors().map(|e| e.to_string()).collect(),
    }
}

/// The tables that apply to local pod `key` (`namespace/name`).
pub fn pod_view(cfg: &NodeConfig, a: &Applied, key: &str) -> Result<PodPolicyView, String> {
    let (ns, name) = key
        .split_once('/')
        .ok_or_else(|| format!("'{key}' is not NAMESPACE/NAME"))?;
    let r = a.renderer(cfg);
    let Some(p) = r.explain_pod(&PodKey::new(ns, name)) else {
        let local: Vec<String> = a.pods.iter().map(LocalPod::display_name).collect();
        return Err(match a.cluster.pods.get(key) {
            Some(rec) if rec.node != cfg.node => {
                format!("pod {key} runs on node {}, not on {}", rec.node, cfg.node)
            }
            _ if local.is_empty() => format!("no pod {key} on node {} (it has none)", cfg.node),
            _ => format!(
                "no pod {key} on node {}; its pods: {}",
                cfg.node,
                local.join(", ")
            ),
        });
    };
    let interface = a
        .pods
        .iter()
        .find(|lp| lp.key.as_ref().is_some_and(|(n, m)| n == ns && m == name))
        .map(|lp| lp.host_if.clone())
        .filter(|i| a.computed.desired.interfaces.contains_key(i));
    let mut from_pod = vec![a.table(cfg, p.from_pod_global, TableKind::Global)];
    from_pod.extend(
        p.from_pod_local
            .into_iter()
            .map(|t| a.table(cfg, t, TableKind::Local)),
    );
    Ok(PodPolicyView {
        node: cfg.node.clone(),
        pod: p.pod,
        ip: p.ip,
        interface,
        ingress_policies: p.ingress_policies,
        egress_policies: p.egress_policies,
        to_pod: p.to_pod.map(|t| a.table(cfg, t, TableKind::Local)),
        from_pod,
    })
}

fn ids(v: &[AclSlot], id: &dyn Fn(&AclSlot) -> Option<u32>) -> String {
    let s: Vec<String> = v
        .iter()
        .map(|s| id(s).map_or_else(|| s.to_string(), |i| i.to_string()))
        .collect();
    s.join(",")
}

/// Everything the agent configured, grouped, each object with its reason.
pub fn node_view(cfg: &NodeConfig, a: &Applied, state: &str, excluded: &[String]) -> NodeView {
    let d = &a.computed.desired;
    let by_tag = a.acl_by_tag(cfg);
    let slot_id = |s: &AclSlot| -> Option<u32> {
        match s {
            AclSlot::Reflect => Some(cfg.acl_base),
            AclSlot::Global => Some(cfg.acl_base.saturating_add(1)),
            AclSlot::Local(t) => by_tag.get(t.as_str()).copied(),
            AclSlot::Foreign(i) => Some(*i),
        }
    };
    let sw_if: BTreeMap<&str, u32> = a
        .current
        .interfaces
        .iter()
        .map(|(s, i)| (i.name.as_str(), *s))
        .collect();
    // One line per object, under the keys the reasons use.
    let mut detail: BTreeMap<String, String> = BTreeMap::new();
    for (name, i) in &d.interfaces {
        let mut s = match &i.kind {
            IfKind::AfPacket { host_if } => format!("af-packet {host_if}"),
            IfKind::Vxlan {
                local,
                remote,
                vni,
                port,
                ..
            } => format!("vxlan {local} -> {remote} vni {vni} port {port}"),
        };
        if let Some(n) = sw_if.get(name.as_str()) {
            let _ = write!(s, ", sw_if {n}");
        }
        let _ = write!(s, ", {}", if i.admin_up { "up" } else { "down" });
        if let Some(m) = i.mtu {
            let _ = write!(s, ", mtu {m}");
        }
        if !i.addresses.is_empty() {
            let v: Vec<String> = i.addresses.iter().map(ToString::to_string).collect();
            let _ = write!(s, ", address {}", v.join(" "));
        }
        for (ip, mac) in &i.neighbors {
            let _ = write!(s, ", neighbor {ip} {mac}");
        }
        if !i.proxy_arp.is_empty() {
            let v: Vec<String> = i.proxy_arp.iter().map(ToString::to_string).collect();
            let _ = write!(s, ", proxy-arp {}", v.join(" "));
        }
        match (i.nat_inside, i.nat_outside) {
            (true, true) => s += ", nat44 inside+outside",
            (true, false) => s += ", nat44 inside",
            (false, true) => s += ", nat44 outside",
            (false, false) => {}
        }
        if !i.acl_in.is_empty() || !i.acl_out.is_empty() {
            let _ = write!(
                s,
                ", acl in [{}] out [{}]",
                ids(&i.acl_in, &slot_id),
                ids(&i.acl_out, &slot_id)
            );
        }
        detail.insert(format!("interface {name}"), s);
    }
    for (p, path) in &d.routes {
        let s = match path {
            PathByName::Via {
                next_hop,
                interface,
            } => format!("via {next_hop} {interface}"),
            PathByName::Attached { interface } => format!("dev {interface}"),
            PathByName::Drop => "drop".into(),
            PathByName::Local => "local".into(),
        };
        detail.insert(format!("route {p}"), s);
    }
    for (slot, acl) in &d.acls {
        let key = match slot {
            AclSlot::Reflect => "acl reflect".to_string(),
            AclSlot::Global => "acl global".to_string(),
            AclSlot::Local(t) => format!("acl {t}"),
            AclSlot::Foreign(_) => continue,
        };
        let mut s = match slot_id(slot) {
            Some(id) => format!("acl {id}"),
            None => "acl (id unknown)".into(),
        };
        let _ = write!(s, " tag {}, {} rules", acl.tag, acl.rules.len());
        let on = |dir_in: bool| -> Vec<&str> {
            d.interfaces
                .iter()
                .filter(|(_, i)| {
                    if dir_in {
                        i.acl_in.contains(slot)
                    } else {
                        i.acl_out.contains(slot)
                    }
                })
                .map(|(n, _)| n.as_str())
                .collect()
        };
        let (i, o) = (on(true), on(false));
        if !i.is_empty() {
            let _ = write!(s, ", input of {}", i.join(" "));
        }
        if !o.is_empty() {
            let _ = write!(s, ", output of {}", o.join(" "));
        }
        detail.insert(key, s);
    }
    for p in &d.pool {
        match p {
            PoolName::Interface(n) => {
                detail.insert(format!("nat44 pool {n}"), format!("address of {n}"));
            }
            PoolName::Address(ip) => {
                detail.insert(format!("nat44 pool {ip}"), ip.to_string());
            }
        }
    }
    for (k, tag) in &d.identities {
        detail.insert(format!("nat44 identity {k}"), format!("tag {tag}"));
    }
    let nn: Vec<String> = d.never_nat.iter().map(ToString::to_string).collect();
    detail.insert("nat44 never-nat".into(), nn.join(" "));
    for m in d.mappings.values() {
        let locals: Vec<String> = m
            .locals
            .iter()
            .map(|l| format!("{}:{}", l.address, l.port))
            .collect();
        let mut s = format!("-> {}", locals.join(" "));
        if m.out2in_only == Some(true) {
            s += ", out2in-only";
        }
        let _ = write!(s, ", tag {}", m.tag);
        detail.insert(format!("nat44 mapping {}", MapKey::of(m)), s);
    }

    let mut v = NodeView {
        node: cfg.node.clone(),
        state: state.to_string(),
        applied_at: Some(a.at.clone()),
        notes: a.computed.notes.clone(),
        excluded: excluded.to_vec(),
        ..NodeView::default()
    };
    for (key, reason) in &a.computed.why {
        let obj = NodeObject {
            name: key.clone(),
            detail: detail.get(key).cloned().unwrap_or_default(),
            reason: reason.clone(),
        };
        let group = match key.split_once(' ') {
            Some(("interface", n)) if n == cfg.uplink.name => &mut v.uplink,
            Some(("interface", n)) if is_pod_ifname(n) => &mut v.pods,
            Some(("interface", n)) if is_tunnel_ifname(n) => &mut v.tunnels,
            Some(("route", "0.0.0.0/0")) => &mut v.uplink,
            Some(("route", _)) => &mut v.routes,
            Some(("acl", _)) => &mut v.acls,
            Some(("nat44", m)) if m.starts_with("mapping ") => &mut v.services,
            Some(("nat44", _)) => &mut v.nat44,
            Some(("esp", _)) => &mut v.esp,
            _ => &mut v.other,
        };
        group.push(obj);
    }
    v
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::desired::tests::{cfg, cluster, deny_all, pod};
    use crate::desired::{compute, Inputs};
    use crate::diff::diff;
    use crate::model::Ownership;
    use std::collections::BTreeSet;
    use vpg_api::agent::PolicyDirection;

    /// What a pass leaves: computed, diffed against an empty vpgd, applied to the model.
    pub(crate) fn applied(cluster: ClusterState, pods: Vec<LocalPod>) -> Applied {
        let cfg = cfg();
        let computed = compute(Inputs {
            cfg: &cfg,
            cluster: &cluster,
            pods: &pods,
            excluded: &BTreeSet::new(),
            keys: None,
            workers: 1,
        });
        let own = Ownership {
            uplink: cfg.uplink.name.clone(),
            acl_base: cfg.acl_base,
            esp_base: crate::config::Encryption::default().id_base,
        };
        let cur = Current::default();
        let plan = diff(&computed.desired, &cur, &own);
        Applied {
            current: after(cur, &plan.items),
            cluster,
            pods,
            computed,
            at: "2026-01-01T00:00:00Z".into(),
        }
    }

    /// Three local pods, a deny-all ingress and a deny-all egress policy in `default`.
    pub(crate) fn with_policies() -> (ClusterState, Vec<LocalPod>) {
        let mut s = cluster();
        s.policies
            .insert("default/deny".into(), deny_all("default"));
        let mut eg = deny_all("default");
        eg.name = "no-egress".into();
        eg.ingress_isolation = false;
        eg.egress_isolation = true;
        s.policies.insert("default/no-egress".into(), eg);
        let pods = vec![
            pod(2, "default", "a"),
            pod(3, "default", "b"),
            pod(4, "other", "c"),
        ];
        (s, pods)
    }

    #[test]
    fn policy_view_names_tables_acls_pods_and_policies() {
        let (s, pods) = with_policies();
        let a = applied(s, pods);
        let c = cfg();
        let v = policy_view(&c, &a);
        assert_eq!(v.node, "n1");
        assert_eq!(v.reflect_acl_id, Some(c.acl_base));
        // a and b (isolated both ways) share one table; c (not isolated) carries a and b's
        // sections only; then the global table.
        assert_eq!(v.tables.len(), 3, "{v:#?}");
        let local = v
            .tables
            .iter()
            .find(|t| t.pods == ["default/a", "default/b"])
            .unwrap();
        assert_eq!(local.kind, TableKind::Local);
        assert!(local.acl_id.is_some_and(|id| id >= c.acl_base + 2));
        assert_eq!(local.interfaces, ["vpg000000000002", "vpg000000000003"]);
        let other = v.tables.iter().find(|t| t.pods == ["other/c"]).unwrap();
        assert_eq!(other.interfaces, ["vpg000000000004"]);
        assert_ne!(other.acl_id, local.acl_id);
        assert_eq!(other.rules.last().unwrap().role, RuleRole::Default);
        // Each pod's section (its egress denied, deny-all ingress), then the final deny.
        let last = local.rules.last().unwrap();
        assert_eq!(last.role, RuleRole::Isolation);
        assert_eq!(last.origins.len(), 1);
        assert_eq!(last.origins[0].policy, "default/deny");
        assert_eq!(last.origins[0].direction, PolicyDirection::Ingress);
        assert!(local
            .rules
            .iter()
            .any(|r| r.pod.as_deref() == Some("default/a")
                && r.origins.iter().any(|o| o.policy == "default/no-egress")));
        let global = &v.tables[2];
        assert_eq!(global.kind, TableKind::Global);
        assert_eq!(global.acl_id, Some(c.acl_base + 1));
        assert_eq!(global.interfaces, ["up0", "vxc0a80102", "vxc0a80103"]);
        assert_eq!(global.rules.last().unwrap().role, RuleRole::Default);
        assert!(v.errors.is_empty());
    }

    #[test]
    fn pod_view_and_unknown_pods() {
        let (s, pods) = with_policies();
        let a = applied(s, pods);
        let c = cfg();
        let p = pod_view(&c, &a, "default/a").unwrap();
        assert_eq!(p.interface.as_deref(), Some("vpg000000000002"));
        assert_eq!(p.ingress_policies, ["default/deny"]);
        assert_eq!(p.egress_policies, ["default/no-egress"]);
        let own = p.to_pod.as_ref().unwrap();
        assert_eq!(own.pods, ["default/a", "default/b"]);
        assert!(own.acl_id.is_some());
        // Leaving the node: its section of the global table and the final permit; then its
        // sections in the local tables (one, shared by a and b).
        assert_eq!(p.from_pod[0].kind, TableKind::Global);
        assert!(p.from_pod[0]
            .rules
            .iter()
            .all(|r| r.pod.as_deref() == Some("default/a") || r.role == RuleRole::Default));
        assert_eq!(
            p.from_pod.len(),
            3,
            "the global table, then two local tables"
        );
        let e = pod_view(&c, &a, "default/nope").unwrap_err();
        assert!(
            e.contains("no pod default/nope on node n1; its pods: default/a"),
            "{e}"
        );
        assert!(pod_view(&c, &a, "nope")
            .unwrap_err()
            .contains("NAMESPACE/NAME"));
    }

    #[test]
    fn node_view_groups_every_object_with_its_reason() {
        let (s, pods) = with_policies();
        let a = applied(s, pods);
        let c = cfg();
        let v = node_view(&c, &a, "in-sync", &[]);
        let names = |g: &[NodeObject]| g.iter().map(|o| o.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&v.uplink), ["interface up0", "route 0.0.0.0/0"]);
        assert_eq!(v.pods.len(), 3);
        assert_eq!(v.tunnels.len(), 2);
        assert_eq!(v.acls.len(), 4, "global, reflect, two local tables");
        assert!(v.acls.iter().any(|o| o.name == "acl reflect"));
        assert_eq!(v.services.len(), 2);
        assert!(v.other.is_empty() && v.esp.is_empty(), "{:?}", v.other);
        let total: usize = v.groups().iter().map(|(_, g)| g.len()).sum();
        assert_eq!(total, a.computed.why.len(), "every object once");
        let up = &v.uplink[0];
        assert!(
            up.detail
                .starts_with("af-packet eth1, sw_if 0, up, address 192.168.1.1/24")
                && up
                    .detail
                    .contains("nat44 outside, acl in [1000] out [1001]"),
            "{}",
            up.detail
        );
        assert!(up.reason.contains("uplink eth1"));
        let pod = &v.pods[0];
        assert!(pod.detail.contains("neighbor 10.1.1.2"), "{}", pod.detail);
        assert!(pod.reason.contains("default/a"));
        let g = v.acls.iter().find(|o| o.name == "acl global").unwrap();
        assert!(
            g.detail.starts_with("acl 1001 tag gt-")
                && g.detail.contains("output of up0 vxc0a80102 vxc0a80103"),
            "{}",
            g.detail
        );
        let m = &v.services[0];
        assert_eq!(m.name, "nat44 mapping 10.96.0.10:80/tcp");
        assert_eq!(
            m.detail,
            "-> 10.1.1.2:8080 10.1.2.5:8080, out2in-only, tag default/web:http"
        );
        assert!(v
            .nat44
            .iter()
            .any(|o| o.name == "nat44 never-nat" && o.detail.contains("10.1.0.0/16")));
        assert_eq!(v.state, "in-sync");
    }
}
