//! vpgd's ACL family: API items to operations, applying them to the ACL control state (and the
//! ACL features of the interfaces), refusals as API errors, and the ACL dumps. Sessions live on
//! the workers, so their dump and clear run on each worker between frames.

use crate::dataplane::DataPlane;
use std::net::Ipv4Addr;
use std::time::Duration;
use vpg_acl::control::{AclControl, AclError};
use vpg_acl::session::SessionTable;
use vpg_acl::{Acl, Action, PacketKey, PortRange, Rule, Verdict};
use vpg_api::acl::{
    AclClassifierDetails, AclDetails, AclInterfaceDetails, AclMatchDetails, AclMatchQuery, AclRule,
    AclSessionDetails, AclSessionSettings, AclUse, Direction, Range, SessionFilter,
};
use vpg_api::{ApiError, ErrorCode, Prefix};
use vpg_graph::wire::Ipv4Cidr;
use vpg_graph::{ArcId, FeatureConfig, Layout};

/// One ACL change.
#[derive(Clone, Debug, PartialEq)]
pub enum AclOp {
    /// Add or replace.
    AddReplace(Acl),
    /// Delete.
    Delete(u32),
    /// Set an interface list.
    SetInterface {
        /// Interface.
        sw_if: u32,
        /// Input (else output).
        input: bool,
        /// ACL ids.
        acls: Vec<u32>,
    },
    /// Session settings (absent fields keep their value).
    Sessions(AclSessionSettings),
}

fn cidr(p: Prefix, field: &str, i: usize) -> Result<Ipv4Cidr, ApiError> {
    Ipv4Cidr::new(p.addr, p.len).map_err(|_| {
        ApiError::bad_request(field, format!("rule {i}: {field} prefix {p} is not valid"))
    })
}

/// An API rule as an ACL rule (the full check happens in [`AclControl::add_replace`]).
pub fn rule_in(r: &AclRule, i: usize) -> Result<Rule, ApiError> {
    let action = Action::from_name(&r.action).ok_or_else(|| {
        ApiError::bad_request(
            "action",
            format!("rule {i}: action '{}' is unknown", r.action),
        )
    })?;
    Ok(Rule {
        action,
        src: cidr(r.src, "src", i)?,
        dst: cidr(r.dst, "dst", i)?,
        proto: r.proto,
        sport: PortRange {
            lo: r.sport.lo,
            hi: r.sport.hi,
        },
        dport: PortRange {
            lo: r.dport.lo,
            hi: r.dport.hi,
        },
        tcp_flags_value: r.tcp_flags_value,
        tcp_flags_mask: r.tcp_flags_mask,
    })
}

/// An ACL rule as the API shows it.
pub fn rule_out(r: &Rule) -> AclRule {
    AclRule {
        action: r.action.name().into(),
        src: Prefix {
            addr: r.src.address(),
            len: r.src.prefix_len(),
        },
        dst: Prefix {
            addr: r.dst.address(),
            len: r.dst.prefix_len(),
        },
        proto: r.proto,
        sport: Range {
            lo: r.sport.lo,
            hi: r.sport.hi,
        },
        dport: Range {
            lo: r.dport.lo,
            hi: r.dport.hi,
        },
        tcp_flags_value: r.tcp_flags_value,
        tcp_flags_mask: r.tcp_flags_mask,
    }
}

/// Builds the add/replace operation.
pub fn add_replace(acl_id: u32, tag: String, rules: &[AclRule]) -> Result<AclOp, ApiError> {
    let rules = rules
        .iter()
        .enumerate()
        .map(|(i, r)| rule_in(r, i))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AclOp::AddReplace(Acl {
        id: acl_id,
        tag,
        rules,
    }))
}

/// The feature node of a direction.
pub fn feature(input: bool) -> (ArcId, &'static str) {
    if input {
        (ArcId::Ip4Unicast, vpg_acl::AclIn::NAME)
    } else {
        (ArcId::Ip4Output, vpg_acl::AclOut::NAME)
    }
}

/// Applies `op` to the ACL state and the features (on the transaction's copy).
pub fn apply(
    acl: &mut AclControl,
    features: &mut FeatureConfig,
    layout: &Layout,
    known_interface: impl Fn(u32) -> bool,
    op: AclOp,
) -> Result<(), AclDpError> {
    match op {
        AclOp::AddReplace(a) => acl.add_replace(a)?,
        AclOp::Delete(id) => acl.delete(id)?,
        AclOp::SetInterface { sw_if, input, acls } => {
            if !known_interface(sw_if) {
                return Err(AclDpError::NoInterface(sw_if));
            }
            let on = acl.set_interface(sw_if, input, acls)?;
            let (arc, node) = feature(input);
            let p = layout
                .feature_position(arc, node)
                .ok_or(AclDpError::NotInGraph)?;
            if on {
                features.enable(arc, sw_if, p);
            } else {
                features.disable(arc, sw_if, p);
            }
        }
        AclOp::Sessions(s) => {
            let mut c = acl.session_config();
            let secs = |v: Option<u32>, d: Duration| v.map_or(d, |s| Duration::from_secs(s as u64));
            c.max_per_worker = s.max_per_worker.map_or(c.max_per_worker, |m| m as usize);
            c.timeouts.tcp_transient = secs(s.tcp_transient_s, c.timeouts.tcp_transient);
            c.timeouts.tcp_established = secs(s.tcp_established_s, c.timeouts.tcp_established);
            c.timeouts.udp = secs(s.udp_s, c.timeouts.udp);
            c.reclassify = s.reclassify.unwrap_or(c.reclassify);
            acl.set_sessions(c)?;
        }
    }
    Ok(())
}

/// Why an ACL operation was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AclDpError {
    /// The ACL state refused it.
    #[error(transparent)]
    Acl(#[from] AclError),
    /// No such interface.
    #[error("interface {0} does not exist")]
    NoInterface(u32),
    /// The graph has no ACL nodes.
    #[error("this graph has no ACL nodes")]
    NotInGraph,
}

/// An ACL refusal as an API error.
pub fn api_error(e: &AclDpError) -> ApiError {
    let msg = e.to_string();
    match e {
        AclDpError::Acl(AclError::Rule { acl, index, source }) => {
            let field = match source {
                vpg_acl::RuleError::HostBits { field, .. }
                | vpg_acl::RuleError::InvertedRange { field, .. }
                | vpg_acl::RuleError::IcmpRange { field, .. } => {
                    field.split(' ').next().unwrap_or(field)
                }
                vpg_acl::RuleError::PortsWithoutPorts { .. } => "dport",
                vpg_acl::RuleError::FlagsWithoutTcp { .. }
                | vpg_acl::RuleError::FlagsOutsideMask { .. } => "tcp_flags_mask",
            };
            ApiError::new(ErrorCode::BadRequest, msg)
                .object(format!("acl {acl} rule {index}"))
                .field(field)
        }
        AclDpError::Acl(AclError::NoAcl(id)) => {
            ApiError::not_found(format!("acl {id}"), msg).field("acl_id")
        }
        AclDpError::Acl(AclError::InUse { id, .. }) => {
            ApiError::new(ErrorCode::Failed, msg).object(format!("acl {id}"))
        }
        AclDpError::Acl(AclError::Duplicate(id)) => {
            ApiError::bad_request("acls", msg).object(format!("acl {id}"))
        }
        AclDpError::Acl(AclError::TooMany { .. }) | AclDpError::Acl(AclError::Sessions(_)) => {
            ApiError::new(ErrorCode::BadRequest, msg)
        }
        AclDpError::NoInterface(i) => {
            ApiError::not_found(format!("interface {i}"), msg).field("sw_if")
        }
        AclDpError::NotInGraph => ApiError::new(ErrorCode::Failed, msg),
    }
}

fn dir(input: bool) -> Direction {
    if input {
        Direction::Input
    } else {
        Direction::Output
    }
}

/// `dump_acls`.
pub fn dump(dp: &DataPlane, only: Option<u32>) -> Vec<AclDetails> {
    dp.acl()
        .dump()
        .into_iter()
        .filter(|d| only.is_none_or(|id| id == d.acl.id))
        .map(|d| AclDetails {
            acl_id: d.acl.id,
            tag: d.acl.tag,
            rules: d.acl.rules.iter().map(rule_out).collect(),
            hits: d.hits,
            used_by: d
                .used_by
                .into_iter()
                .map(|(sw_if, input)| AclUse {
                    sw_if,
                    direction: dir(input),
                })
                .collect(),
        })
        .collect()
}

/// `dump_acl_interfaces`.
pub fn interfaces(dp: &DataPlane) -> Vec<AclInterfaceDetails> {
    dp.acl()
        .interfaces()
        .into_iter()
        .map(|(sw_if, input, output)| AclInterfaceDetails {
            sw_if,
            input,
            output,
        })
        .collect()
}

/// `dump_acl_classifiers`.
pub fn classifiers(dp: &DataPlane) -> Vec<AclClassifierDetails> {
    dp.acl()
        .classifiers()
        .into_iter()
        .map(|(acls, users, s)| AclClassifierDetails {
            acls,
            used_by: users
                .into_iter()
                .map(|(sw_if, input)| AclUse {
                    sw_if,
                    direction: dir(input),
                })
                .collect(),
            rules: s.rules,
            words: s.words,
            addr_intervals: [s.addr_intervals.0, s.addr_intervals.1],
            classes: s.classes,
            l4_classes: s.l4_classes,
            bytes: s.bytes,
        })
        .collect()
}

/// `acl_match`.
pub fn explain(dp: &DataPlane, q: &AclMatchQuery) -> AclMatchDetails {
    let input = q.direction == Direction::Input;
    let key = PacketKey {
        src: q.src.to_bits(),
        dst: q.dst.to_bits(),
        sport: q.sport,
        dport: q.dport,
        proto: q.proto,
        tcp_flags: q.tcp_flags,
        icmp_id: 0,
    };
    let none = |action: &str, reason: String| AclMatchDetails {
        action: action.into(),
        acl_id: None,
        tag: None,
        rule_index: None,
        rule: None,
        reason,
    };
    match dp.acl().explain(q.sw_if, input, &key) {
        Verdict::NoAcls => none(
            "permit",
            format!(
                "interface {} has no {} ACLs: not filtered",
                q.sw_if,
                q.direction.as_str()
            ),
        ),
        Verdict::NoMatch { acls } => none(
            "deny",
            format!("no rule of acls {acls:?} matches: denied by the implicit deny at the end"),
        ),
        Verdict::Matched {
            acl,
            tag,
            rule,
            text,
        } => AclMatchDetails {
            action: text.action.name().into(),
            acl_id: Some(acl),
            reason: format!(
                "acl {acl} ('{tag}') rule {rule} is the first matching rule of the first ACL in the list with a match"
            ),
            tag: Some(tag),
            rule_index: Some(rule),
            rule: Some(text.to_string()),
        },
    }
}

fn selected(f: &SessionFilter, s: &vpg_acl::session::Session) -> bool {
    let k = &s.key;
    f.sw_if.is_none_or(|i| i == k.sw_if)
        && f.proto.is_none_or(|p| p == k.proto)
        && f.addr
            .is_none_or(|a| a.to_bits() == k.a || a.to_bits() == k.b)
        && f.port.is_none_or(|p| p == k.a_port || p == k.b_port)
}

/// `dump_acl_sessions`: runs on every worker.
pub fn sessions(dp: &DataPlane, f: &SessionFilter) -> Vec<AclSessionDetails> {
    let mut out = Vec::new();
    let workers = dp.workers();
    let now = workers.now().as_nanos();
    for w in 0..workers.len() {
        let f = f.clone();
        let rows = workers.exec(w, move |rt| {
            let Some(t) = rt.locals_mut().get_mut::<SessionTable>() else {
                return Vec::new();
            };
            let timeouts = t.timeouts;
            t.iter()
                .filter(|(_, s)| selected(&f, s))
                .map(|(_, s)| {
                    let k = &s.key;
                    let (src, sp, dst, dpt) = if s.initiator_is_a {
                        (k.a, k.a_port, k.b, k.b_port)
                    } else {
                        (k.b, k.b_port, k.a, k.a_port)
                    };
                    let idle = now.saturating_sub(s.last);
                    let timeout = s.timeout(&timeouts).as_nanos() as u64;
                    AclSessionDetails {
                        worker: w,
                        sw_if: k.sw_if,
                        proto: k.proto,
                        src: Ipv4Addr::from_bits(src),
                        sport: sp,
                        dst: Ipv4Addr::from_bits(dst),
                        dport: dpt,
                        state: s.state().into(),
                        packets: s.packets,
                        idle_s: idle / 1_000_000_000,
                        expires_in_s: timeout.saturating_sub(idle) / 1_000_000_000,
                    }
                })
                .collect::<Vec<_>>()
        });
        out.extend(rows.unwrap_or_default());
    }
    out
}

/// `clear_acl_sessions`: runs on every worker; returns how many were deleted.
pub fn clear_sessions(dp: &DataPlane, f: &SessionFilter) -> usize {
    let workers = dp.workers();
    (0..workers.len())
        .filter_map(|w| {
            let f = f.clone();
            workers.exec(w, move |rt| {
                rt.locals_mut()
                    .get_mut::<SessionTable>()
                    .map_or(0, |t| t.clear(|s| selected(&f, s)))
            })
        })
        .sum()
}
