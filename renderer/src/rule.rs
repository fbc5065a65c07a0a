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

/// The fewest prefixes whose union is exactly the union of `nets`: disjoint, in address order.
///
/// No address outside the inputs is added (a peer list never widens to a pod CIDR, where an
/// unselected pod may hold an address). Overlapping and adjacent inputs merge into ranges;
/// each range is cut from its low end into the largest aligned block that fits. The result is
/// the set of maximal prefixes inside the union, which is the minimum: prefixes are nested or
/// disjoint, so every prefix of an exact cover lies inside one maximal prefix, and each maximal
/// prefix needs one of its own.
pub fn cover(nets: impl IntoIterator<Item = Ipv4Net>) -> Vec<Ipv4Net> {
    let mut v: Vec<Ipv4Net> = nets.into_iter().collect();
    v.sort_unstable();
    let mut out = Vec::new();
    cover_sorted(&v, |n| out.push(n));
    out
}

/// [`cover`] of prefixes sorted by address, each output prefix handed to `emit`.
fn cover_sorted(nets: &[Ipv4Net], mut emit: impl FnMut(Ipv4Net)) {
    // Inclusive ranges in u64 so the end of 255.255.255.255 does not wrap.
    let range = |n: &Ipv4Net| {
        let lo = u64::from(n.addr);
        (lo, lo + (1u64 << (32 - u32::from(n.len))) - 1)
    };
    let mut i = 0;
    while i < nets.len() {
        let (lo, mut hi) = range(&nets[i]);
        i += 1;
        while i < nets.len() && range(&nets[i]).0 <= hi + 1 {
            hi = hi.max(range(&nets[i]).1);
            i += 1;
        }
        let mut at = lo;
        while at <= hi {
            // The largest block aligned at `at` (address 0 aligns to everything) that fits.
            let mut size = if at == 0 {
                1u64 << 32
            } else {
                at & at.wrapping_neg()
            };
            while at + size - 1 > hi {
                size >>= 1;
            }
            emit(Ipv4Net {
                addr: at as u32,
                len: (32 - size.trailing_zeros()) as u8,
            });
            at += size;
        }
    }
}

/// The address of a rule that aggregation merges; the other fields are the group's key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    /// Sources (ingress sections: `peer -> any`).
    Src,
    /// Destinations (global-table sections: `pod/32 -> peer`).
    Dst,
}

impl Field {
    pub(crate) fn get(self, r: &Rule) -> Ipv4Net {
        match self {
            Field::Src => r.src,
            Field::Dst => r.dst,
        }
    }

    pub(crate) fn with(self, r: &Rule, n: Ipv4Net) -> Rule {
        match self {
            Field::Src => Rule { src: n, ..*r },
            Field::Dst => Rule { dst: n, ..*r },
        }
    }

    /// Everything of the rule but this field, packed (rules with equal keys differ only in
    /// it), then the field: one integer comparison per step of the sort.
    fn key(self, r: &Rule) -> (u128, u64) {
        let (other, this) = match self {
            Field::Src => (r.dst, r.src),
            Field::Dst => (r.src, r.dst),
        };
        let proto = match r.protocol {
            Protocol::Any => 0u128,
            p => 1 + u128::from(p.number().unwrap_or(0)),
        };
        let action = u128::from(r.action == Action::Deny);
        let group = action << 127
            | u128::from(other.addr) << 95
            | u128::from(other.len) << 89
            | proto << 80
            | u128::from(r.src_ports.lo) << 64
            | u128::from(r.src_ports.hi) << 48
            | u128::from(r.dst_ports.lo) << 32
            | u128::from(r.dst_ports.hi) << 16;
        (group, u64::from(this.addr) << 8 | u64::from(this.len))
    }
}

/// Replaces the rules that differ only in `field` by one rule per prefix of the [`cover`] of
/// their addresses, then sorts by [`Rule::specificity_cmp`] (duplicates disappear).
///
/// For a run of rules of one action (the permits of a section), first match is "some rule
/// matches", so the run decides every packet as before: a packet matches a rule of the group
/// iff its address is in the union, which the cover keeps exactly. The order stays a linear
/// extension of "is a subset of" because the list is sorted again.
pub(crate) fn aggregate(rules: &mut Vec<Rule>, field: Field) {
    // Keys computed once: the sort then compares integers only.
    let mut keyed: Vec<(u128, u64, Rule)> = rules
        .iter()
        .map(|r| {
            let (g, a) = field.key(r);
            (g, a, *r)
        })
        .collect();
    keyed.sort_unstable_by_key(|&(g, a, _)| (g, a));
    rules.clear();
    let mut nets = Vec::new();
    for group in keyed.chunk_by(|a, b| a.0 == b.0) {
        let first = group[0].2;
        if let [_] = group {
            rules.push(first);
            continue;
        }
        nets.clear();
        nets.extend(group.iter().map(|e| field.get(&e.2)));
        cover_sorted(&nets, |n| rules.push(field.with(&first, n)));
    }
    rules.sort_unstable_by(Rule::specificity_cmp);
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

    fn nets(v: &[&str]) -> Vec<Ipv4Net> {
        v.iter().map(|s| net(s)).collect()
    }

    #[test]
    fn cover_merges_sequential_hosts() {
        let hosts = (0..=255u8).map(|i| Ipv4Net::host(Ipv4Addr::new(10, 1, 0, i)));
        assert_eq!(cover(hosts), nets(&["10.1.0.0/24"]));
        // IPAM from .2: the first /31 and /30 stay apart from the aligned blocks after.
        let hosts = (2..10u32).map(|i| Ipv4Net::host(Ipv4Addr::from(0x0a01_0000 + i)));
        assert_eq!(
            cover(hosts),
            nets(&["10.1.0.2/31", "10.1.0.4/30", "10.1.0.8/31"])
        );
        assert_eq!(
            cover(nets(&["10.0.0.1", "10.0.0.3", "10.0.0.2"])),
            nets(&["10.0.0.1/32", "10.0.0.2/31"])
        );
        // Overlaps and nesting; both ends of the address space.
        assert_eq!(
            cover(nets(&[
                "10.0.0.0/25",
                "10.0.0.5",
                "10.0.0.128/25",
                "10.0.0.0/24"
            ])),
            nets(&["10.0.0.0/24"])
        );
        assert_eq!(
            cover(nets(&["0.0.0.0/1", "128.0.0.0/1"])),
            vec![Ipv4Net::ANY]
        );
        assert_eq!(
            cover(nets(&["255.255.255.255", "255.255.255.254", "0.0.0.0"])),
            nets(&["0.0.0.0/32", "255.255.255.254/31"])
        );
        assert!(cover([]).is_empty());
    }

    /// The addresses of a prefix (callers keep them small).
    fn expand(n: Ipv4Net) -> impl Iterator<Item = u32> {
        let lo = u64::from(n.addr);
        (lo..lo + (1u64 << (32 - u32::from(n.len)))).map(|a| a as u32)
    }

    /// The naive model of a minimal cover: for each address, the largest prefix around it
    /// whose addresses are all in the set.
    fn maximal_blocks(set: &std::collections::BTreeSet<u32>) -> Vec<Ipv4Net> {
        let mut out = std::collections::BTreeSet::new();
        for &a in set {
            let best = (0..=32u8)
                .map(|len| Ipv4Net::new(Ipv4Addr::from(a), len).unwrap())
                .find(|n| {
                    (1u64 << (32 - u32::from(n.len))) <= set.len() as u64
                        && expand(*n).all(|x| set.contains(&x))
                })
                .unwrap();
            out.insert(best);
        }
        out.into_iter().collect()
    }

    proptest::proptest! {
        /// Random prefixes in a 256-address window (at either end of the space or anywhere):
        /// the cover holds exactly their addresses, and is the set of maximal blocks.
        #[test]
        fn cover_is_exact_and_minimal(
            window in proptest::prop_oneof![proptest::strategy::Just(0u32), proptest::strategy::Just(0xffff_ff00), proptest::prelude::any::<u32>()],
            parts in proptest::collection::vec((0u32..256, 25u8..=32), 0..12),
        ) {
            let base = window & !0xff;
            let input: Vec<Ipv4Net> = parts
                .iter()
                .map(|&(o, l)| Ipv4Net::new(Ipv4Addr::from(base | o), l).unwrap())
                .collect();
            let want: std::collections::BTreeSet<u32> = input.iter().flat_map(|n| expand(*n)).collect();
            let got = cover(input.iter().copied());
            let addrs: Vec<u32> = got.iter().flat_map(|n| expand(*n)).collect();
            proptest::prop_assert!(addrs.windows(2).all(|w| w[0] < w[1]), "sorted, disjoint: {:?}", got);
            proptest::prop_assert_eq!(addrs.into_iter().collect::<std::collections::BTreeSet<_>>(), want.clone());
            proptest::prop_assert_eq!(got, maximal_blocks(&want));
        }

        /// Sorted runs of hosts (what IPAM hands out): the cover is exact and minimal.
        #[test]
        fn cover_of_ranges_is_minimal(lo in proptest::prelude::any::<u32>(), n in 1u32..300, gap in 0u32..4) {
            let lo = lo.min(u32::MAX - 2 * n - 8);
            let hosts: Vec<u32> = (0..n).map(|i| lo + i).chain((0..n / 2).map(|i| lo + n + gap + i)).collect();
            let want: std::collections::BTreeSet<u32> = hosts.iter().copied().collect();
            let got = cover(hosts.iter().map(|&a| Ipv4Net::host(Ipv4Addr::from(a))));
            proptest::prop_assert_eq!(got.iter().flat_map(|n| expand(*n)).collect::<std::collections::BTreeSet<_>>(), want.clone());
            proptest::prop_assert_eq!(got, maximal_blocks(&want));
        }

        /// Aggregating a run of permits keeps what the run matches, for every probe, and
        /// the order a linear extension of "is a subset of".
        #[test]
        fn aggregate_keeps_every_decision(
            raw in proptest::collection::vec((0u32..40, 28u8..=32, 0usize..3, 0usize..3), 1..40),
            dst in proptest::prelude::any::<bool>(),
        ) {
            let field = if dst { Field::Dst } else { Field::Src };
            let protos = [Protocol::Tcp, Protocol::Udp, Protocol::Any];
            let ports = [PortRange::single(80), PortRange { lo: 80, hi: 90 }, PortRange::ALL];
            let rules: Vec<Rule> = raw
                .iter()
                .map(|&(o, l, p, q)| {
                    let n = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + o), l).unwrap();
                    let protocol = protos[p];
                    let r = Rule {
                        protocol,
                        dst_ports: if protocol == Protocol::Any { PortRange::ALL } else { ports[q] },
                        src: Ipv4Net::host(Ipv4Addr::new(10, 9, 9, 9)),
                        ..Rule::all(Action::Permit)
                    };
                    field.with(&r, n)
                })
                .collect();
            let mut agg = rules.clone();
            aggregate(&mut agg, field);
            proptest::prop_assert!(agg.len() <= rules.len());
            for (i, a) in agg.iter().enumerate() {
                for b in &agg[i + 1..] {
                    proptest::prop_assert!(!b.is_subset_of(a), "{} after {}", b, a);
                }
            }
            for o in 0..50u32 {
                let peer = Ipv4Addr::from(0x0a00_0000 + o);
                let other = Ipv4Addr::new(10, 9, 9, 9);
                let (s, d) = if dst { (other, peer) } else { (peer, other) };
                for proto in [6u8, 17, 1] {
                    for port in [0u16, 79, 80, 85, 90, 91] {
                        let m = |v: &[Rule]| v.iter().any(|r| r.matches(s, d, proto, 40000, port));
                        proptest::prop_assert_eq!(m(&rules), m(&agg), "{} -> {} {} {}", s, d, proto, port);
                    }
                }
            }
        }
    }

    #[test]
    fn aggregate_keeps_groups_apart() {
        let host = |i: u8, port: u16| Rule {
            src: Ipv4Net::host(Ipv4Addr::new(10, 0, 0, i)),
            protocol: Protocol::Tcp,
            dst_ports: PortRange::single(port),
            ..Rule::all(Action::Permit)
        };
        let mut v = vec![
            host(0, 80),
            host(1, 80),
            host(2, 80),
            host(3, 80),
            host(1, 443),
            host(1, 80),
        ];
        aggregate(&mut v, Field::Src);
        assert_eq!(
            v.iter().map(ToString::to_string).collect::<Vec<_>>(),
            [
                "permit 10.0.0.1/32 -> 0.0.0.0/0:443 tcp",
                "permit 10.0.0.0/30 -> 0.0.0.0/0:80 tcp"
            ]
        );
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
