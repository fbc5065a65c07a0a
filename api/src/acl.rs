//! The ACL family: ACLs (add/replace, delete, dump with hit counters), interface lists,
//! session settings, session dump and clear, classifier shapes, and `acl_match` (which ACL and
//! rule decide a packet). The daemon checks rules fully (inverted ranges, ports on a protocol
//! without ports, TCP flags on another protocol) and names the ACL and rule it refuses; what
//! needs no state is checked here.

use crate::types::Prefix;
use crate::ApiError;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// An inclusive range (ports; ICMP type or code when the rule's protocol is ICMP).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Range {
    /// First.
    pub lo: u16,
    /// Last.
    pub hi: u16,
}

impl Default for Range {
    fn default() -> Self {
        Range { lo: 0, hi: 65535 }
    }
}

fn any_prefix() -> Prefix {
    Prefix {
        addr: Ipv4Addr::UNSPECIFIED,
        len: 0,
    }
}

fn is_any_prefix(p: &Prefix) -> bool {
    *p == any_prefix()
}

fn is_any_range(r: &Range) -> bool {
    *r == Range::default()
}

fn is_zero(v: &u8) -> bool {
    *v == 0
}

/// One rule. Absent fields match anything.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRule {
    /// `deny`, `permit` or `permit+reflect`.
    pub action: String,
    /// Source prefix.
    #[serde(default = "any_prefix", skip_serializing_if = "is_any_prefix")]
    pub src: Prefix,
    /// Destination prefix.
    #[serde(default = "any_prefix", skip_serializing_if = "is_any_prefix")]
    pub dst: Prefix,
    /// IP protocol number, 0 for any.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub proto: u8,
    /// Source ports, or ICMP types.
    #[serde(default, skip_serializing_if = "is_any_range")]
    pub sport: Range,
    /// Destination ports, or ICMP codes.
    #[serde(default, skip_serializing_if = "is_any_range")]
    pub dport: Range,
    /// TCP flags value.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tcp_flags_value: u8,
    /// TCP flags mask.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tcp_flags_mask: u8,
}

/// Which side of an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Packets received on the interface (`ip4-unicast` arc).
    Input,
    /// Packets sent on the interface (`ip4-output` arc).
    Output,
}

impl Direction {
    /// `input` or `output`.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Input => "input",
            Direction::Output => "output",
        }
    }
}

/// Checks a rule's action word and prefixes (the stateless part).
pub fn check_rules(rules: &[AclRule]) -> Result<(), ApiError> {
    for (i, r) in rules.iter().enumerate() {
        if !matches!(r.action.as_str(), "deny" | "permit" | "permit+reflect") {
            return Err(ApiError::bad_request(
                "action",
                format!(
                    "rule {i}: action '{}' is not deny, permit or permit+reflect",
                    r.action
                ),
            ));
        }
        for (f, p) in [("src", r.src), ("dst", r.dst)] {
            if p.len > 32 {
                return Err(ApiError::bad_request(
                    f,
                    format!("rule {i}: {f} prefix length {} is more than 32", p.len),
                ));
            }
        }
    }
    Ok(())
}

/// An ACL with its hit counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclDetails {
    /// Id.
    pub acl_id: u32,
    /// Tag.
    pub tag: String,
    /// Rules.
    pub rules: Vec<AclRule>,
    /// Hits per rule.
    pub hits: Vec<u64>,
    /// Interfaces using it.
    pub used_by: Vec<AclUse>,
}

/// An interface using an ACL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclUse {
    /// Interface.
    pub sw_if: u32,
    /// Direction.
    pub direction: Direction,
}

/// An interface's ACL lists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclInterfaceDetails {
    /// Interface.
    pub sw_if: u32,
    /// Input list.
    pub input: Vec<u32>,
    /// Output list.
    pub output: Vec<u32>,
}

/// A session filter for dump and clear (absent fields match all).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionFilter {
    /// Interface.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sw_if: Option<u32>,
    /// Either endpoint's address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<Ipv4Addr>,
    /// Either endpoint's port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Protocol.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<u8>,
}

/// One session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclSessionDetails {
    /// Worker holding it.
    pub worker: usize,
    /// Interface.
    pub sw_if: u32,
    /// Protocol.
    pub proto: u8,
    /// Initiator address.
    pub src: Ipv4Addr,
    /// Initiator port (ICMP: type).
    pub sport: u16,
    /// Responder address.
    pub dst: Ipv4Addr,
    /// Responder port.
    pub dport: u16,
    /// `established`, `transient` or `active`.
    pub state: String,
    /// Packets seen.
    pub packets: u64,
    /// Seconds since the last packet.
    pub idle_s: u64,
    /// Seconds until it expires if idle.
    pub expires_in_s: u64,
}

/// Session settings; absent fields keep their value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclSessionSettings {
    /// Sessions per worker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_worker: Option<u32>,
    /// TCP transient timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_transient_s: Option<u32>,
    /// TCP established timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_established_s: Option<u32>,
    /// UDP (and other protocols) timeout, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub udp_s: Option<u32>,
    /// Reclassify sessions after their ACLs change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reclassify: Option<bool>,
}

/// A compiled classifier (one per distinct interface list).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclClassifierDetails {
    /// The ACL list.
    pub acls: Vec<u32>,
    /// Interfaces sharing it.
    pub used_by: Vec<AclUse>,
    /// Rules.
    pub rules: usize,
    /// 64-rule words per bitmap.
    pub words: usize,
    /// Elementary intervals: source, destination address.
    pub addr_intervals: [usize; 2],
    /// Equivalence classes: source, destination, source port, destination port, protocol.
    pub classes: [usize; 5],
    /// Crossed L4 classes (absent when the ports were not crossed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub l4_classes: Option<usize>,
    /// Bytes held.
    pub bytes: usize,
}

/// The packet `acl_match` asks about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclMatchQuery {
    /// Interface.
    pub sw_if: u32,
    /// Direction.
    pub direction: Direction,
    /// Protocol.
    pub proto: u8,
    /// Source.
    pub src: Ipv4Addr,
    /// Source port (ICMP: type).
    #[serde(default)]
    pub sport: u16,
    /// Destination.
    pub dst: Ipv4Addr,
    /// Destination port (ICMP: code).
    #[serde(default)]
    pub dport: u16,
    /// TCP flags.
    #[serde(default)]
    pub tcp_flags: u8,
}

/// The answer to `acl_match`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclMatchDetails {
    /// `permit`, `deny` (for a session-creating rule: `permit+reflect`).
    pub action: String,
    /// The deciding ACL (absent when none decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acl_id: Option<u32>,
    /// Its tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    /// The deciding rule's index in the ACL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_index: Option<u32>,
    /// The rule, as text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// Why, in a sentence.
    pub reason: String,
}
