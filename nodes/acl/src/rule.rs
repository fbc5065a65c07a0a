//! Rules and ACLs with VPP ACL semantics: an ACL is an ordered rule list, first match wins, no
//! match denies. Rules are validated here, once, so that the classifier and the nodes can trust
//! them.

use std::fmt;
use std::net::Ipv4Addr;
use vpg_graph::wire::Ipv4Cidr;

/// IP protocol numbers the ACL treats specially.
pub mod proto {
    /// ICMP: the port ranges hold the ICMP type (source) and code (destination).
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// SCTP.
    pub const SCTP: u8 = 132;
}

/// What a matching rule does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Drop the packet.
    Deny,
    /// Let it pass.
    Permit,
    /// Let it pass and create a session so that the flow's replies pass without classification.
    PermitReflect,
}

impl Action {
    /// The API/CLI word.
    pub fn name(self) -> &'static str {
        match self {
            Action::Deny => "deny",
            Action::Permit => "permit",
            Action::PermitReflect => "permit+reflect",
        }
    }

    /// Parses `deny`, `permit`, `permit+reflect` (also `reflect`).
    pub fn from_name(s: &str) -> Option<Self> {
        match s {
            "deny" => Some(Action::Deny),
            "permit" => Some(Action::Permit),
            "permit+reflect" | "reflect" => Some(Action::PermitReflect),
            _ => None,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An inclusive range of ports (or of ICMP types or codes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PortRange {
    /// First value.
    pub lo: u16,
    /// Last value.
    pub hi: u16,
}

impl PortRange {
    /// Every port.
    pub const ANY: PortRange = PortRange { lo: 0, hi: 65535 };
    /// Every ICMP type or code.
    pub const ANY_ICMP: PortRange = PortRange { lo: 0, hi: 255 };

    /// One port.
    pub const fn one(p: u16) -> Self {
        PortRange { lo: p, hi: p }
    }

    /// Whether `p` is inside.
    pub const fn contains(&self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.lo == self.hi {
            write!(f, "{}", self.lo)
        } else {
            write!(f, "{}-{}", self.lo, self.hi)
        }
    }
}

/// One ACL rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Rule {
    /// What a match does.
    pub action: Action,
    /// Source prefix (host bits must be clear).
    pub src: Ipv4Cidr,
    /// Destination prefix.
    pub dst: Ipv4Cidr,
    /// IP protocol, 0 for any.
    pub proto: u8,
    /// Source ports (TCP, UDP, SCTP) or ICMP types.
    pub sport: PortRange,
    /// Destination ports (TCP, UDP, SCTP) or ICMP codes.
    pub dport: PortRange,
    /// TCP flags that must be set among `tcp_flags_mask` (TCP only).
    pub tcp_flags_value: u8,
    /// TCP flags the rule looks at; 0 for none.
    pub tcp_flags_mask: u8,
}

impl Rule {
    /// A rule matching every packet.
    pub fn any(action: Action) -> Self {
        let all = Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).unwrap_or_else(|_| unreachable!());
        Rule {
            action,
            src: all,
            dst: all,
            proto: 0,
            sport: PortRange::ANY,
            dport: PortRange::ANY,
            tcp_flags_value: 0,
            tcp_flags_mask: 0,
        }
    }

    /// Checks the rule; a rule that passes is safe to compile.
    pub fn validate(&self) -> Result<(), RuleError> {
        for (field, c) in [("src", self.src), ("dst", self.dst)] {
            if c.network() != c {
                return Err(RuleError::HostBits { field, prefix: c });
            }
        }
        for (field, r) in [("sport", self.sport), ("dport", self.dport)] {
            if r.lo > r.hi {
                return Err(RuleError::InvertedRange {
                    field,
                    lo: r.lo,
                    hi: r.hi,
                });
            }
        }
        match self.proto {
            proto::TCP | proto::UDP | proto::SCTP => {}
            proto::ICMP => {
                for (field, r) in [
                    ("sport (icmp type)", self.sport),
                    ("dport (icmp code)", self.dport),
                ] {
                    // An ICMP rule's ranges are types and codes: "any" may be written as the port
                    // wildcard, anything else must fit in a byte.
                    if r != PortRange::ANY && r.hi > 255 {
                        return Err(RuleError::IcmpRange { field, hi: r.hi });
                    }
                }
            }
            p => {
                if self.sport != PortRange::ANY || self.dport != PortRange::ANY {
                    return Err(RuleError::PortsWithoutPorts { proto: p });
                }
            }
        }
        if self.tcp_flags_mask != 0 && self.proto != proto::TCP {
            return Err(RuleError::FlagsWithoutTcp { proto: self.proto });
        }
        if self.tcp_flags_value & !self.tcp_flags_mask != 0 {
            return Err(RuleError::FlagsOutsideMask {
                value: self.tcp_flags_value,
                mask: self.tcp_flags_mask,
            });
        }
        Ok(())
    }

    /// The rule's match fields as ranges, for the classifier.
    pub fn key(&self) -> RuleKey {
        let range = |c: Ipv4Cidr| {
            let lo = c.network().address().to_bits();
            let host = if c.prefix_len() == 0 {
                u32::MAX
            } else {
                (1u32 << (32 - c.prefix_len())) - 1
            };
            (lo, lo | host)
        };
        let icmp = self.proto == proto::ICMP;
        let narrow = |r: PortRange| {
            if icmp && r == PortRange::ANY {
                PortRange::ANY_ICMP
            } else {
                r
            }
        };
        let sport = narrow(self.sport);
        let dport = narrow(self.dport);
        RuleKey {
            src: range(self.src),
            dst: range(self.dst),
            sport: (sport.lo, sport.hi),
            dport: (dport.lo, dport.hi),
            proto: if self.proto == 0 {
                None
            } else {
                Some(self.proto)
            },
            tcp_flags: (self.tcp_flags_value, self.tcp_flags_mask),
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} -> {}", self.action, self.src, self.dst)?;
        match self.proto {
            0 => f.write_str(" any")?,
            proto::TCP => f.write_str(" tcp")?,
            proto::UDP => f.write_str(" udp")?,
            proto::SCTP => f.write_str(" sctp")?,
            proto::ICMP => f.write_str(" icmp")?,
            p => write!(f, " proto {p}")?,
        }
        let (sn, dn) = if self.proto == proto::ICMP {
            ("type", "code")
        } else {
            ("sport", "dport")
        };
        if self.sport != PortRange::ANY {
            write!(f, " {sn} {}", self.sport)?;
        }
        if self.dport != PortRange::ANY {
            write!(f, " {dn} {}", self.dport)?;
        }
        if self.tcp_flags_mask != 0 {
            write!(
                f,
                " flags 0x{:02x}/0x{:02x}",
                self.tcp_flags_value, self.tcp_flags_mask
            )?;
        }
        Ok(())
    }
}

/// Why a rule is refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// A prefix with host bits set (10.0.0.1/8).
    #[error("{field} prefix {prefix} has host bits set (did you mean {}?)", prefix.network())]
    HostBits {
        /// Which prefix.
        field: &'static str,
        /// The prefix given.
        prefix: Ipv4Cidr,
    },
    /// A range whose first value exceeds its last.
    #[error("{field} range {lo}-{hi} is inverted")]
    InvertedRange {
        /// Which range.
        field: &'static str,
        /// First value.
        lo: u16,
        /// Last value.
        hi: u16,
    },
    /// Port ranges on a protocol without ports.
    #[error("protocol {proto} has no ports: source and destination port ranges must be any")]
    PortsWithoutPorts {
        /// The protocol.
        proto: u8,
    },
    /// An ICMP type or code above 255.
    #[error("{field} range ends at {hi}, above 255")]
    IcmpRange {
        /// Which range.
        field: &'static str,
        /// Last value.
        hi: u16,
    },
    /// TCP flags on another protocol.
    #[error("TCP flags on protocol {proto}: flags need protocol tcp (6)")]
    FlagsWithoutTcp {
        /// The protocol.
        proto: u8,
    },
    /// Flag bits in the value that the mask does not select.
    #[error("TCP flags value 0x{value:02x} has bits outside mask 0x{mask:02x}")]
    FlagsOutsideMask {
        /// Value.
        value: u8,
        /// Mask.
        mask: u8,
    },
}

/// A rule's match fields as ranges: what the classifier compiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RuleKey {
    /// Source addresses, inclusive.
    pub src: (u32, u32),
    /// Destination addresses, inclusive.
    pub dst: (u32, u32),
    /// Source ports (ICMP type), inclusive.
    pub sport: (u16, u16),
    /// Destination ports (ICMP code), inclusive.
    pub dport: (u16, u16),
    /// Protocol, `None` for any.
    pub proto: Option<u8>,
    /// TCP flags (value, mask).
    pub tcp_flags: (u8, u8),
}

impl RuleKey {
    /// Whether the rule matches `k` (the reference semantics the classifier must reproduce).
    #[inline]
    pub fn matches(&self, k: &PacketKey) -> bool {
        self.src.0 <= k.src
            && k.src <= self.src.1
            && self.dst.0 <= k.dst
            && k.dst <= self.dst.1
            && self.sport.0 <= k.sport
            && k.sport <= self.sport.1
            && self.dport.0 <= k.dport
            && k.dport <= self.dport.1
            && self.proto.is_none_or(|p| p == k.proto)
            && k.tcp_flags & self.tcp_flags.1 == self.tcp_flags.0
    }
}

/// The fields of a packet the ACL looks at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PacketKey {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port, or ICMP type.
    pub sport: u16,
    /// Destination port, or ICMP code.
    pub dport: u16,
    /// IP protocol.
    pub proto: u8,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// ICMP echo identifier (sessions only; rules do not match on it).
    pub icmp_id: u16,
}

impl fmt::Display for PacketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "proto {} {}:{} -> {}:{}",
            self.proto,
            Ipv4Addr::from_bits(self.src),
            self.sport,
            Ipv4Addr::from_bits(self.dst),
            self.dport
        )
    }
}

/// An ACL: an id, a tag and an ordered rule list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Acl {
    /// Identifier.
    pub id: u32,
    /// Name.
    pub tag: String,
    /// Rules, first match wins.
    pub rules: Vec<Rule>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(s: &str, d: &str, proto: u8, sp: (u16, u16), dp: (u16, u16)) -> Rule {
        Rule {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            proto,
            sport: PortRange { lo: sp.0, hi: sp.1 },
            dport: PortRange { lo: dp.0, hi: dp.1 },
            ..Rule::any(Action::Permit)
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = rule("10.0.0.0/8", "0.0.0.0/0", 6, (0, 65535), (80, 80));
        assert_eq!(ok.validate(), Ok(()));
        let e = rule("10.0.0.1/8", "0.0.0.0/0", 6, (0, 65535), (80, 80))
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("10.0.0.0/8"), "{e}");
        let e = rule("10.0.0.0/8", "0.0.0.0/0", 6, (0, 65535), (90, 80))
            .validate()
            .unwrap_err();
        assert_eq!(e.to_string(), "dport range 90-80 is inverted");
        let e = rule("10.0.0.0/8", "0.0.0.0/0", 47, (0, 65535), (80, 80))
            .validate()
            .unwrap_err();
        assert!(matches!(e, RuleError::PortsWithoutPorts { proto: 47 }));
        let e = rule("10.0.0.0/8", "0.0.0.0/0", 1, (8, 300), (0, 65535))
            .validate()
            .unwrap_err();
        assert!(matches!(e, RuleError::IcmpRange { .. }), "{e}");
        let mut f = rule("10.0.0.0/8", "0.0.0.0/0", 17, (0, 65535), (0, 65535));
        f.tcp_flags_mask = 2;
        f.tcp_flags_value = 2;
        assert!(matches!(
            f.validate(),
            Err(RuleError::FlagsWithoutTcp { proto: 17 })
        ));
        f.proto = 6;
        f.tcp_flags_value = 3;
        assert!(matches!(
            f.validate(),
            Err(RuleError::FlagsOutsideMask { .. })
        ));
    }

    #[test]
    fn key_ranges_and_matching() {
        let r = rule("10.1.0.0/16", "0.0.0.0/0", 6, (0, 65535), (80, 90));
        let k = r.key();
        assert_eq!(k.src, (0x0a01_0000, 0x0a01_ffff));
        assert_eq!(k.dst, (0, u32::MAX));
        let p = PacketKey {
            src: 0x0a01_0203,
            dst: 7,
            sport: 999,
            dport: 85,
            proto: 6,
            tcp_flags: 0x02,
            icmp_id: 0,
        };
        assert!(k.matches(&p));
        assert!(!k.matches(&PacketKey { proto: 17, ..p }));
        assert!(!k.matches(&PacketKey { dport: 91, ..p }));
        let icmp = rule("0.0.0.0/0", "0.0.0.0/0", 1, (0, 65535), (0, 65535)).key();
        assert_eq!(icmp.sport, (0, 255), "icmp any narrows to a byte");
        assert_eq!(
            rule("0.0.0.0/0", "1.2.3.4/32", 0, (0, 65535), (0, 65535)).to_string(),
            "permit 0.0.0.0/0 -> 1.2.3.4/32 any"
        );
    }
}
