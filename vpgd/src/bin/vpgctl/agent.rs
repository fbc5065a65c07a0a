//! `vpgctl show policy tables|pod NS/NAME` and `vpgctl show node`: what vpg-agent configured and
//! why, asked from the agent's status socket (`--agent-socket`), not from vpgd: only the agent
//! knows which NetworkPolicy a rule came from and why an object exists.

use crate::Cli;
use anyhow::bail;
use std::fmt::Write as _;
use vpg_api::acl::{AclRule, Range};
use vpg_api::agent::{
    query, AgentRequest, NodeView, PodPolicyView, PolicyTable, PolicyView, RuleRole, TableKind,
    TableRule,
};

/// `show policy [tables | pod NAMESPACE/NAME]`.
pub(crate) fn show_policy(cli: &Cli, args: &[String]) -> anyhow::Result<()> {
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    match words.as_slice() {
        [] | ["tables"] => {
            let v: PolicyView = query(&cli.agent_socket, &AgentRequest::Policy)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", policy_text(&v));
            }
        }
        ["pod", pod] => {
            if !pod.contains('/') {
                bail!("show policy pod: '{pod}' is not NAMESPACE/NAME");
            }
            let v: PodPolicyView = query(&cli.agent_socket, &AgentRequest::Pod(pod.to_string()))?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print!("{}", pod_text(&v));
            }
        }
        _ => bail!("show policy tables | show policy pod NAMESPACE/NAME"),
    }
    Ok(())
}

/// `show node`.
pub(crate) fn show_node(cli: &Cli, args: &[String]) -> anyhow::Result<()> {
    if let Some(a) = args.first() {
        bail!("show node: unexpected '{a}' (it takes no arguments)");
    }
    let v: NodeView = query(&cli.agent_socket, &AgentRequest::Node)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", node_text(&v));
    }
    Ok(())
}

fn proto(p: u8) -> String {
    match p {
        0 => "any".into(),
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

fn range(r: &Range) -> String {
    if *r == Range::default() {
        "any".into()
    } else if r.lo == r.hi {
        r.lo.to_string()
    } else {
        format!("{}-{}", r.lo, r.hi)
    }
}

/// The match of a rule in columns: source, destination, protocol, destination ports (the
/// renderer never restricts source ports; they are shown only when a rule does).
fn match_cols(r: &AclRule) -> String {
    let mut dport = range(&r.dport);
    if r.sport != Range::default() {
        dport = format!("{dport} sport {}", range(&r.sport));
    }
    format!(
        "{:<18} {:<18} {:<5} {:<11}",
        r.src.to_string(),
        r.dst.to_string(),
        proto(r.proto),
        dport
    )
}

fn role(r: &TableRule) -> String {
    match &r.pod {
        Some(p) => format!("{} of {p}", r.role.as_str()),
        None => r.role.as_str().to_string(),
    }
}

fn origins(r: &TableRule) -> String {
    if r.origins.is_empty() {
        return match r.role {
            RuleRole::Default => "(no policy: default)".into(),
            _ => "-".into(),
        };
    }
    let v: Vec<String> = r.origins.iter().map(ToString::to_string).collect();
    v.join(", ")
}

const RULE_HEADER: &str = "     #  action  src                dst                proto dport       role                          from policy\n";

fn rules_text(out: &mut String, t: &PolicyTable) {
    out.push_str(RULE_HEADER);
    for r in &t.rules {
        let _ = writeln!(
            out,
            "  {:>4}  {:<7} {} {:<29} {}",
            r.index,
            r.rule.action,
            match_cols(&r.rule),
            role(r),
            origins(r)
        );
    }
}

fn table_title(t: &PolicyTable) -> String {
    let kind = match t.kind {
        TableKind::Local => "local table",
        TableKind::Global => "global table",
    };
    let acl = match t.acl_id {
        Some(id) => format!("acl {id}"),
        None => "not installed".into(),
    };
    format!("{kind} {} ({acl})", t.id)
}

/// `show policy tables` as text.
pub(crate) fn policy_text(v: &PolicyView) -> String {
    let mut out = String::new();
    let locals = v
        .tables
        .iter()
        .filter(|t| t.kind == TableKind::Local)
        .count();
    let _ = write!(out, "node {}: {locals} local tables", v.node);
    match v.reflect_acl_id {
        Some(id) => {
            let _ = writeln!(
                out,
                "; reflect acl {id} on the input of isolated pods, uplink and tunnels"
            );
        }
        None => out.push_str("; no isolated pod, no reflect acl\n"),
    }
    for t in &v.tables {
        let _ = writeln!(out, "\n{}, {} rules", table_title(t), t.rules.len());
        if t.kind == TableKind::Local {
            let _ = writeln!(out, "  pods:       {}", t.pods.join(" "));
        }
        let on = if t.interfaces.is_empty() {
            "(none)".to_string()
        } else {
            t.interfaces.join(" ")
        };
        let _ = writeln!(out, "  output of:  {on}");
        rules_text(&mut out, t);
    }
    for e in &v.errors {
        let _ = writeln!(out, "invalid policy left out: {e}");
    }
    out
}

/// `show policy pod NS/NAME` as text.
pub(crate) fn pod_text(v: &PodPolicyView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pod {} {} on node {}, interface {}",
        v.pod,
        v.ip,
        v.node,
        v.interface.as_deref().unwrap_or("(none)")
    );
    let list = |l: &[String]| {
        if l.is_empty() {
            "(none)".to_string()
        } else {
            l.join(", ")
        }
    };
    let _ = writeln!(
        out,
        "isolated for ingress by: {}",
        list(&v.ingress_policies)
    );
    let _ = writeln!(out, "isolated for egress by:  {}", list(&v.egress_policies));
    match &v.to_pod {
        None => out.push_str("\nto the pod: no local table (every connection is accepted)\n"),
        Some(t) => {
            let others: Vec<&String> = t.pods.iter().filter(|p| **p != v.pod).collect();
            let shared = if others.is_empty() {
                String::new()
            } else {
                let o: Vec<&str> = others.iter().map(|s| s.as_str()).collect();
                format!(", shared with {}", o.join(" "))
            };
            let _ = writeln!(out, "\nto the pod: {}{shared}", table_title(t));
            rules_text(&mut out, t);
        }
    }
    for t in &v.from_pod {
        let what = match t.kind {
            TableKind::Global => "from the pod, leaving the node".to_string(),
            TableKind::Local => format!("from the pod to {}", t.pods.join(" ")),
        };
        let _ = writeln!(out, "\n{what}: {}", table_title(t));
        rules_text(&mut out, t);
    }
    out
}

/// `show node` as text.
pub(crate) fn node_text(v: &NodeView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "node {}: {}, configuration applied {}",
        v.node,
        v.state,
        v.applied_at.as_deref().unwrap_or("never")
    );
    for (title, objs) in v.groups() {
        if objs.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{title} ({})", objs.len());
        for o in objs {
            let _ = writeln!(out, "  {:<34} {}", o.name, o.detail);
            let _ = writeln!(out, "  {:<34} why: {}", "", o.reason);
        }
    }
    if !v.excluded.is_empty() {
        let _ = writeln!(out, "\nexcluded (vpgd refused): {}", v.excluded.join(", "));
    }
    if !v.notes.is_empty() {
        out.push_str("\nnotes (left out of the configuration)\n");
        for n in &v.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpg_api::agent::{NodeObject, Origin, PolicyDirection};

    fn rule(action: &str, src: &str, proto: u8, port: Option<u16>) -> AclRule {
        let mut r = crate::acl::parse_rule(&format!("{action} src {src}")).unwrap();
        r.proto = proto;
        if let Some(p) = port {
            r.dport = Range { lo: p, hi: p };
        }
        r
    }

    fn origin(p: &str, d: PolicyDirection, rule: Option<u32>) -> Origin {
        Origin {
            policy: p.into(),
            direction: d,
            rule,
        }
    }

    fn view() -> PolicyView {
        PolicyView {
            node: "n1".into(),
            reflect_acl_id: Some(1000),
            tables: vec![
                PolicyTable {
                    id: "lt-1".into(),
                    kind: TableKind::Local,
                    acl_id: Some(1002),
                    pods: vec!["default/web".into(), "default/web2".into()],
                    interfaces: vec!["vpg000000000002".into(), "vpg000000000003".into()],
                    rules: vec![
                        TableRule {
                            index: 0,
                            rule: rule("permit", "10.1.1.4/32", 6, Some(80)),
                            role: RuleRole::Ingress,
                            pod: None,
                            origins: vec![
                                origin("default/a", PolicyDirection::Ingress, Some(0)),
                                origin("default/b", PolicyDirection::Ingress, Some(1)),
                            ],
                        },
                        TableRule {
                            index: 1,
                            rule: rule("deny", "0.0.0.0/0", 0, None),
                            role: RuleRole::Isolation,
                            pod: None,
                            origins: vec![origin("default/a", PolicyDirection::Ingress, None)],
                        },
                    ],
                },
                PolicyTable {
                    id: "gt-2".into(),
                    kind: TableKind::Global,
                    acl_id: None,
                    pods: vec![],
                    interfaces: vec![],
                    rules: vec![TableRule {
                        index: 0,
                        rule: rule("permit", "0.0.0.0/0", 0, None),
                        role: RuleRole::Default,
                        pod: None,
                        origins: vec![],
                    }],
                },
            ],
            errors: vec!["default/bad: port 0".into()],
        }
    }

    #[test]
    fn policy_tables_text() {
        let t = policy_text(&view());
        let want = "\
node n1: 1 local tables; reflect acl 1000 on the input of isolated pods, uplink and tunnels

local table lt-1 (acl 1002), 2 rules
  pods:       default/web default/web2
  output of:  vpg000000000002 vpg000000000003
     #  action  src                dst                proto dport       role                          from policy
     0  permit  10.1.1.4/32        0.0.0.0/0          tcp   80          ingress                       default/a ingress[0], default/b ingress[1]
     1  deny    0.0.0.0/0          0.0.0.0/0          any   any         isolation                     default/a ingress

global table gt-2 (not installed), 1 rules
  output of:  (none)
     #  action  src                dst                proto dport       role                          from policy
     0  permit  0.0.0.0/0          0.0.0.0/0          any   any         default                       (no policy: default)
invalid policy left out: default/bad: port 0
";
        assert_eq!(t, want, "\n{t}");
    }

    #[test]
    fn pod_text_names_directions_and_sharing() {
        let v = view();
        let mut section = v.tables[0].clone();
        section.pods = vec!["other/c".into()];
        section.rules = vec![TableRule {
            index: 3,
            rule: rule("deny", "10.1.1.2/32", 0, None),
            role: RuleRole::Isolation,
            pod: Some("default/web".into()),
            origins: vec![origin("default/no-egress", PolicyDirection::Egress, None)],
        }];
        let p = PodPolicyView {
            node: "n1".into(),
            pod: "default/web".into(),
            ip: "10.1.1.2".parse().unwrap(),
            interface: Some("vpg000000000002".into()),
            ingress_policies: vec!["default/a".into()],
            egress_policies: vec![],
            to_pod: Some(v.tables[0].clone()),
            from_pod: vec![v.tables[1].clone(), section],
        };
        let t = pod_text(&p);
        assert!(
            t.starts_with(
                "pod default/web 10.1.1.2 on node n1, interface vpg000000000002\n\
             isolated for ingress by: default/a\n\
             isolated for egress by:  (none)\n\
             \nto the pod: local table lt-1 (acl 1002), shared with default/web2\n"
            ),
            "{t}"
        );
        assert!(t.contains("\nfrom the pod, leaving the node: global table gt-2 (not installed)\n"));
        assert!(t.contains("\nfrom the pod to other/c: local table lt-1 (acl 1002)\n"));
        assert!(t.contains(
            "     3  deny    10.1.1.2/32        0.0.0.0/0          any   any         isolation of default/web      default/no-egress egress\n"
        ), "{t}");
        let lone = PodPolicyView { to_pod: None, ..p };
        assert!(
            pod_text(&lone).contains("to the pod: no local table (every connection is accepted)")
        );
    }

    #[test]
    fn node_text_groups() {
        let v = NodeView {
            node: "n1".into(),
            state: "in-sync".into(),
            applied_at: Some("2026-01-01T00:00:00Z".into()),
            uplink: vec![NodeObject {
                name: "interface up0".into(),
                detail: "af-packet eth1, sw_if 0".into(),
                reason: "uplink eth1 (node configuration)".into(),
            }],
            notes: vec!["service default/x port 53: no ready endpoints".into()],
            excluded: vec!["vpg0000000000ff".into()],
            ..NodeView::default()
        };
        let t = node_text(&v);
        assert_eq!(
            t,
            "node n1: in-sync, configuration applied 2026-01-01T00:00:00Z\n\
             \nuplink (1)\n  interface up0                      af-packet eth1, sw_if 0\n  \
             \x20                                  why: uplink eth1 (node configuration)\n\
             \nexcluded (vpgd refused): vpg0000000000ff\n\
             \nnotes (left out of the configuration)\n  service default/x port 53: no ready endpoints\n"
        );
    }
}
