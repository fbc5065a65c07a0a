//! The renderer's output vocabulary: IPv4 prefixes, protocols, port ranges and rules.
//!
//! A [`Rule`] is a plain value (no references into the renderer) so the agent can hand it to
//! the ACL API as is. Its JSON form is the one `docs/renderer.md` documents:
//! `{"action":"permit","src":"10.1.0.0/16","dst":"0.0.0.0/0","protocol":"tcp","src_ports":[0,65535],"dst_ports":[80,80]}`.

use std::cmp::Ordering;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::ParseError;

/// An IPv4 prefix with its host bits cleared.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Net {
    addr: u32,
    len: u8,
}

impl Ipv4Net {
    /// `0.0.0.0/0`.
    pub const ANY: Ipv4Net = Ipv4Net { addr: 0, len: 0 };

    /// The prefix `addr/len`; host bits are cleared (Kubernetes accepts `10.0.0.1/24` and means
    /// `10.0.0.0/24`). `None` when `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Option<Ipv4Net> {
        (len <= 32).then(|| Ipv4Net {
            addr: u32::from(addr) & mask(len),
            len,
        })
    }

    /// The host prefix `addr/32`.
    pub fn host(addr: Ipv4Addr) -> Ipv4Net {
        Ipv4Net {
            addr: u32::from(addr),
            len: 32,
        }
    }

    /// The network address.
    pub fn addr(self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// The prefix length.
    pub fn prefix_len(self) -> u8 {
        self.len
    }

    /// True for `0.0.0.0/0`.
    pub fn is_any(self) -> bool {
        self.len == 0
    }

    /// Whether `ip` is inside the prefix.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & mask(self.len) == self.addr
    }

    /// Whether every address of `other` is inside `self`.
    pub fn covers(self, other: Ipv4Net) -> bool {
        self.len <= other.len && other.addr & mask(self.len) == self.addr
    }

    /// The two halves of the prefix; `None` for a /32.
    fn halves(self) -> Option<(Ipv4Net, Ipv4Net)> {
        (self.len < 32).then(|| {
            let len = self.len + 1;
            let low = Ipv4Net {
                addr: self.addr,
                len,
            };
            let high = Ipv4Net {
                addr: self.addr | (1u32 << (32 - len)),
                len,
            };
            (low, high)
        })
    }
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Debug for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Ipv4Net {
    type Err = ParseError;

    /// Parses `a.b.c.d/len` (or a bare address, meaning /32).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ParseError::Cidr(s.to_string());
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
            None => (s, 32),
        };
        let addr: Ipv4Addr = addr.parse().map_err(|_| bad())?;
        Ipv4Net::new(addr, len).ok_or_else(bad)
    }
}

impl Serialize for Ipv4Net {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ipv4Net {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

/// `cidr` minus every prefix in `except`, as disjoint prefixes in address order.
///
/// The pieces are disjoint and their union is exactly the addresses of `cidr` not in any
/// exception (the `ipBlock.except` rule). At most 32 pieces are added per exception.
pub fn subtract(cidr: Ipv4Net, except: &[Ipv4Net]) -> Vec<Ipv4Net> {
    let mut pieces = vec![cidr];
    for &e in except {
        let mut next = Vec::with_capacity(pieces.len() + 32);
        for p in pieces {
            if e.covers(p) {
                continue;
            }
            if !p.covers(e) {
                next.push(p);
                continue;
            }
            // Walk down from p towards e, keeping the sibling half at every level.
            let mut cur = p;
            while cur != e {
                let Some((low, high)) = cur.halves() else {
                    break;
                };
                if low.covers(e) {
                    next.push(high);
                    cur = low;
                } else {
                    next.push(low);
                    cur = high;
                }
            }
        }
        pieces = next;
    }
    pieces.sort();
    pieces
}

/// An IP protocol as rules name it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum Protocol {
    /// Any protocol (ports are then always the full range).
    Any,
    /// TCP (6).
    Tcp,
    /// UDP (17).
    Udp,
    /// SCTP (132).
    Sctp,
    /// Another protocol by number.
    Other(u8),
}

impl Protocol {
    /// The protocol for an IP protocol number.
    pub fn from_number(n: u8) -> Protocol {
        match n {
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            132 => Protocol::Sctp,
            n => Protocol::Other(n),
        }
    }

    /// The IP protocol number; `None` for [`Protocol::Any`].
    pub fn number(self) -> Option<u8> {
        match self {
            Protocol::Any => None,
            Protocol::Tcp => Some(6),
            Protocol::Udp => Some(17),
            Protocol::Sctp => Some(132),
            Protocol::Other(n) => Some(n),
        }
    }

    /// Whether a packet of protocol number `proto` matches.
    pub fn matches(self, proto: u8) -> bool {
        match self.number() {
            None => true,
            Some(n) => n == proto,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Any => f.write_str("any"),
            Protocol::Tcp => f.write_str("tcp"),
            Protocol::Udp => f.write_str("udp"),
            Protocol::Sctp => f.write_str("sctp"),
            Protocol::Other(n) => write!(f, "{n}"),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Other(n) => s.serialize_u8(*n),
            p => s.collect_str(p),
        }
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Protocol;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"any\", \"tcp\", \"udp\", \"sctp\" or a protocol number")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Protocol, E> {
                u8::try_from(v)
                    .map(Protocol::from_number)
                    .map_err(|_| E::custom(format!("protocol {v} out of range")))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Protocol, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom(format!("protocol {v} out of range")))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Protocol, E> {
                match v.to_ascii_lowercase().as_str() {
                    "any" => Ok(Protocol::Any),
                    "tcp" => Ok(Protocol::Tcp),
                    "udp" => Ok(Protocol::Udp),
                    "sctp" => Ok(Protocol::Sctp),
                    other => other
                        .parse::<u8>()
                        .map(Protocol::from_number)
                        .map_err(|_| E::custom(format!("unknown protocol {v:?}"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// An inclusive port range `lo..=hi`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PortRange {
    /// First port.
    pub lo: u16,
    /// Last port (inclusive).
    pub hi: u16,
}

impl PortRange {
    /// Every port.
    pub const ALL: PortRange = PortRange { lo: 0, hi: 65535 };

    /// One port.
    pub fn single(p: u16) -> PortRange {
        PortRange { lo: p, hi: p }
    }

    /// Whether `p` is in the range.
    pub fn contains(self, p: u16) -> bool {
        self.lo <= p && p <= self.hi
    }

    /// Whether `other` is inside `self`.
    pub fn covers(self, other: PortRange) -> bool {
        self.lo <= other.lo && other.hi <= self.hi
    }

    /// Number of ports in the range.
    pub fn width(self) -> u32 {
        u32::from(self.hi) - u32::from(self.lo) + 1
    }

    /// True for `0..=65535`.
    pub fn is_all(self) -> bool {
        self == PortRange::ALL
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

impl Serialize for PortRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        [self.lo, self.hi].serialize(s)
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let [lo, hi] = <[u16; 2]>::deserialize(d)?;
        if lo > hi {
            return Err(de::Error::custom(format!(
                "port range [{lo}, {hi}] is empty"
            )));
        }
        Ok(PortRange { lo, hi })
    }
}

/// What a rule does with a matching connection.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Let it through.
    Permit,
    /// Drop it.
    Deny,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Permit => "permit",
            Action::Deny => "deny",
        })
    }
}

/// One rule of a table: a 5-tuple match and an action.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Rule {
    /// Permit or deny.
    pub action: Action,
    /// Source prefix.
    pub src: Ipv4Net,
    /// Destination prefix.
    pub dst: Ipv4Net,
    /// Protocol.
    pub protocol: Protocol,
    /// Source ports.
    pub src_ports: PortRange,
    /// Destination ports.
    pub dst_ports: PortRange,
}

impl Rule {
    /// A rule matching everything.
    pub fn all(action: Action) -> Rule {
        Rule {
            action,
            src: Ipv4Net::ANY,
            dst: Ipv4Net::ANY,
            protocol: Protocol::Any,
            src_ports: PortRange::ALL,
            dst_ports: PortRange::ALL,
        }
    }

    /// Whether the rule matches every packet (a catch-all).
    pub fn is_catch_all(&self) -> bool {
        self.src.is_any()
            && self.dst.is_any()
            && self.protocol == Protocol::Any
            && self.src_ports.is_all()
            && self.dst_ports.is_all()
    }

    /// Whether the rule matches a packet. Ports are compared as given; callers pass 0 for
    /// protocols without ports.
    pub fn matches(&self, src: Ipv4Addr, dst: Ipv4Addr, proto: u8, sport: u16, dport: u16) -> bool {
        self.src.contains(src)
            && self.dst.contains(dst)
            && self.protocol.matches(proto)
            && self.src_ports.contains(sport)
            && self.dst_ports.contains(dport)
    }

    /// Whether every packet this rule matches is matched by `other` too.
    pub fn is_subset_of(&self, other: &Rule) -> bool {
        other.src.covers(self.src)
            && other.dst.covers(self.dst)
            && (other.protocol == Protocol::Any || other.protocol == self.protocol)
            && other.src_ports.covers(self.src_ports)
            && other.dst_ports.covers(self.dst_ports)
    }

    /// The specificity order: a linear extension of "is a subset of" (more specific first),
    /// with the full content as tie-break so the order is total.
    ///
    /// If `a` matches a strict subset of `b`, every field of `a` is at least as narrow as `b`'s
    /// and one is strictly narrower (a prefix or range of equal size that it covers is equal),
    /// so the lexicographic comparison below puts `a` first.
    pub fn specificity_cmp(&self, other: &Rule) -> Ordering {
        other
            .src
            .len
            .cmp(&self.src.len)
            .then(other.dst.len.cmp(&self.dst.len))
            .then((self.protocol == Protocol::Any).cmp(&(other.protocol == Protocol::Any)))
            .then(self.src_ports.width().cmp(&other.src_ports.width()))
            .then(self.dst_ports.width().cmp(&other.dst_ports.width()))
            .then(self.src.cmp(&other.src))
            .then(self.dst.cmp(&other.dst))
            .then(self.protocol.cmp(&other.protocol))
            .then(self.src_ports.cmp(&other.src_ports))
            .then(self.dst_ports.cmp(&other.dst_ports))
            .then(self.action.cmp(&other.action))
    }

    /// Feeds the rule into a content digest (for table ids): three words, a fixed layout.
    pub(crate) fn digest(&self, h: &mut Digest) {
        let (tag, n) = match self.protocol {
            Protocol::Any => (0u64, 0u64),
            p => (1, u64::from(p.number().unwrap_or(0))),
        };
        let action = match self.action {
            Action::Permit => 1u64,
            Action::Deny => 2,
        };
        h.write(u64::from(self.src.addr) << 32 | u64::from(self.dst.addr));
        h.write(
            action
                | u64::from(self.src.len) << 8
                | u64::from(self.dst.len) << 16
                | tag << 24
                | n << 32,
        );
        h.write(
            u64::from(self.src_ports.lo) << 48
                | u64::from(self.src_ports.hi) << 32
                | u64::from(self.dst_ports.lo) << 16
                | u64::from(self.dst_ports.hi),
        );
    }
}

impl fmt::Display for Rule {
    /// `permit 10.1.0.0/16:any -> 0.0.0.0/0:80 tcp`, ports omitted when they are the full range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.action, self.src)?;
        if !self.src_ports.is_all() {
            write!(f, ":{}", self.src_ports)?;
        }
        write!(f, " -> {}", self.dst)?;
        if !self.dst_ports.is_all() {
            write!(f, ":{}", self.dst_ports)?;
        }
        write!(f, " {}", self.protocol)
    }
}

/// A 64-bit word hash with fixed constants: stable across builds and platforms (std's hasher
/// is not promised to be), and a word at a time because table ids hash every rule.
#[derive(Clone, Copy)]
pub(crate) struct Digest(u64);

impl Digest {
    pub(crate) fn new() -> Digest {
        Digest(0x243f_6a88_85a3_08d3)
    }

    pub(crate) fn write(&mut self, w: u64) {
        self.0 = (self.0 ^ w).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        self.0 ^= self.0 >> 32;
    }

    /// The splitmix64 finalizer, so every input bit reaches every output bit.
    pub(crate) fn finish(self) -> u64 {
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// First-match evaluation of a table: `Some(action)` of the first matching rule, `None` when
/// no rule matches (the caller decides what that means; for rendered tables it means deny).
pub fn first_match(
    rules: &[Rule],
    src: Ipv4Addr,
    dst: Ipv4Addr,
    proto: u8,
    sport: u16,
    dport: u16,
) -> Option<Action> {
    rules
        .iter()
        .find(|r| r.matches(src, dst, proto, sport, dport))
        .map(|r| r.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn prefix_parse_and_mask() {
        assert_eq!(net("10.1.2.3/16").to_string(), "10.1.0.0/16");
        assert_eq!(net("10.1.2.3").to_string(), "10.1.2.3/32");
        assert_eq!(net("0.0.0.0/0"), Ipv4Net::ANY);
        assert!("10.0.0.0/33".parse::<Ipv4Net>().is_err());
        assert!("10.0.0/8".parse::<Ipv4Net>().is_err());
        assert!("fd00::/8".parse::<Ipv4Net>().is_err());
        assert!(net("10.0.0.0/8").covers(net("10.1.0.0/16")));
        assert!(!net("10.1.0.0/16").covers(net("10.0.0.0/8")));
        assert!(net("10.0.0.0/8").contains("10.255.0.1".parse().unwrap()));
    }

    #[test]
    fn subtract_splits_into_disjoint_pieces() {
        let got = subtract(net("10.0.0.0/24"), &[net("10.0.0.128/25")]);
        assert_eq!(got, vec![net("10.0.0.0/25")]);
        let got = subtract(net("10.0.0.0/30"), &[net("10.0.0.1/32")]);
        assert_eq!(got, vec![net("10.0.0.0/32"), net("10.0.0.2/31")]);
        assert!(subtract(net("10.0.0.0/24"), &[net("10.0.0.0/16")]).is_empty());
        assert_eq!(
            subtract(net("10.0.0.0/24"), &[net("192.168.0.0/16")]),
            vec![net("10.0.0.0/24")]
        );
        let got = subtract(Ipv4Net::ANY, &[net("10.0.0.0/8"), net("10.0.0.0/9")]);
        assert_eq!(got.len(), 8);
    }

    #[test]
    fn protocol_serde() {
        let p: Protocol = serde_json::from_str("\"TCP\"").unwrap();
        assert_eq!(p, Protocol::Tcp);
        let p: Protocol = serde_json::from_str("1").unwrap();
        assert_eq!(p, Protocol::Other(1));
        assert_eq!(serde_json::to_string(&Protocol::Other(47)).unwrap(), "47");
        assert_eq!(serde_json::to_string(&Protocol::Sctp).unwrap(), "\"sctp\"");
        assert!(serde_json::from_str::<Protocol>("\"icmp6x\"").is_err());
        assert!(serde_json::from_str::<Protocol>("300").is_err());
    }

    #[test]
    fn rule_json_shape_and_display() {
        let r = Rule {
            action: Action::Permit,
            src: net("10.1.0.0/16"),
            dst: Ipv4Net::ANY,
            protocol: Protocol::Tcp,
            src_ports: PortRange::ALL,
            dst_ports: PortRange { lo: 80, hi: 90 },
        };
        let j = serde_json::to_string(&r).unwrap();
        assert_eq!(
            j,
            r#"{"action":"permit","src":"10.1.0.0/16","dst":"0.0.0.0/0","protocol":"tcp","src_ports":[0,65535],"dst_ports":[80,90]}"#
        );
        assert_eq!(serde_json::from_str::<Rule>(&j).unwrap(), r);
        assert_eq!(r.to_string(), "permit 10.1.0.0/16 -> 0.0.0.0/0:80-90 tcp");
        assert!(serde_json::from_str::<PortRange>("[9,8]").is_err());
    }

    #[test]
    fn specificity_order_extends_subset() {
        let any = Rule::all(Action::Deny);
        let r = Rule {
            protocol: Protocol::Udp,
            ..Rule::all(Action::Permit)
        };
        assert!(r.is_subset_of(&any));
        assert!(!any.is_subset_of(&r));
        assert_eq!(r.specificity_cmp(&any), Ordering::Less);
        assert!(any.is_catch_all());
    }
}
