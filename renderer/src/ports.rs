//! Sets of (protocol, destination port) a rule admits, with union and intersection. Used where
//! an ingress and an egress restriction meet in one local table.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use crate::rule::{Action, Ipv4Net, PortRange, Protocol, Rule};

/// Admitted (protocol, destination port) pairs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum PortSet {
    /// Every protocol and port (including protocols without ports).
    All,
    /// Only these protocols and ranges; ranges sorted, disjoint and not adjacent.
    Some(BTreeMap<Protocol, Vec<PortRange>>),
}

impl PortSet {
    pub(crate) fn empty() -> PortSet {
        PortSet::Some(BTreeMap::new())
    }

    pub(crate) fn is_all(&self) -> bool {
        matches!(self, PortSet::All)
    }

    pub(crate) fn is_empty(&self) -> bool {
        matches!(self, PortSet::Some(m) if m.is_empty())
    }

    /// Adds `range` of `proto` (`Protocol::Any` makes the set `All`).
    pub(crate) fn add(&mut self, proto: Protocol, range: PortRange) {
        let PortSet::Some(m) = self else { return };
        if proto == Protocol::Any {
            *self = PortSet::All;
            return;
        }
        let v = m.entry(proto).or_default();
        v.push(range);
        normalize(v);
    }

    /// Adds every member of `other`.
    pub(crate) fn union(&mut self, other: &PortSet) {
        match other {
            PortSet::All => *self = PortSet::All,
            PortSet::Some(m) => {
                for (p, rs) in m {
                    for r in rs {
                        self.add(*p, *r);
                    }
                }
            }
        }
    }

    /// The members in both sets.
    pub(crate) fn intersect(&self, other: &PortSet) -> PortSet {
        match (self, other) {
            (PortSet::All, x) | (x, PortSet::All) => x.clone(),
            (PortSet::Some(a), PortSet::Some(b)) => {
                let mut out = BTreeMap::new();
                for (p, ra) in a {
                    let Some(rb) = b.get(p) else { continue };
                    let mut v = Vec::new();
                    for x in ra {
                        for y in rb {
                            let lo = x.lo.max(y.lo);
                            let hi = x.hi.min(y.hi);
                            if lo <= hi {
                                v.push(PortRange { lo, hi });
                            }
                        }
                    }
                    if !v.is_empty() {
                        normalize(&mut v);
                        out.insert(*p, v);
                    }
                }
                PortSet::Some(out)
            }
        }
    }

    /// Whether some member has protocol `proto` (any: some protocol) and a port in `range`.
    pub(crate) fn overlaps(&self, proto: Protocol, range: PortRange) -> bool {
        match self {
            PortSet::All => true,
            PortSet::Some(m) if proto == Protocol::Any => !m.is_empty(),
            PortSet::Some(m) => m
                .get(&proto)
                .is_some_and(|v| v.iter().any(|r| r.lo <= range.hi && range.lo <= r.hi)),
        }
    }

    /// Whether a packet of protocol `proto` to port `port` is a member.
    #[cfg(test)]
    pub(crate) fn contains(&self, proto: u8, port: u16) -> bool {
        match self {
            PortSet::All => true,
            PortSet::Some(m) => m
                .get(&Protocol::from_number(proto))
                .is_some_and(|v| v.iter().any(|r| r.contains(port))),
        }
    }

    /// Permit rules `src -> dst` for every member.
    pub(crate) fn permits(&self, src: Ipv4Net, dst: Ipv4Net, out: &mut Vec<Rule>) {
        let rule = |protocol, dst_ports| Rule {
            action: Action::Permit,
            src,
            dst,
            protocol,
            src_ports: PortRange::ALL,
            dst_ports,
        };
        match self {
            PortSet::All => out.push(rule(Protocol::Any, PortRange::ALL)),
            PortSet::Some(m) => {
                for (p, rs) in m {
                    for r in rs {
                        out.push(rule(*p, *r));
                    }
                }
            }
        }
    }
}

/// Sorts and merges overlapping or adjacent ranges.
fn normalize(v: &mut Vec<PortRange>) {
    v.sort();
    let mut out: Vec<PortRange> = Vec::with_capacity(v.len());
    for r in v.drain(..) {
        match out.last_mut() {
            Some(last) if u32::from(r.lo) <= u32::from(last.hi) + 1 => {
                last.hi = last.hi.max(r.hi);
            }
            _ => out.push(r),
        }
    }
    *v = out;
}

/// The rules of one source's section: permits for `set`, then a deny for everything else from
/// `src` (omitted when the set is everything).
pub(crate) fn section(src: Ipv4Addr, set: &PortSet, out: &mut Vec<Rule>) {
    let src = Ipv4Net::host(src);
    set.permits(src, Ipv4Net::ANY, out);
    if !set.is_all() {
        out.push(Rule {
            src,
            ..Rule::all(Action::Deny)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(lo: u16, hi: u16) -> PortRange {
        PortRange { lo, hi }
    }

    #[test]
    fn union_merges_adjacent() {
        let mut s = PortSet::empty();
        s.add(Protocol::Tcp, r(80, 80));
        s.add(Protocol::Tcp, r(81, 90));
        s.add(Protocol::Tcp, r(85, 100));
        s.add(Protocol::Udp, r(53, 53));
        let PortSet::Some(m) = &s else { panic!() };
        assert_eq!(m[&Protocol::Tcp], vec![r(80, 100)]);
        assert!(s.contains(17, 53) && !s.contains(6, 53) && !s.contains(1, 0));
        s.add(Protocol::Any, PortRange::ALL);
        assert!(s.is_all());
    }

    #[test]
    fn intersection() {
        let mut a = PortSet::empty();
        a.add(Protocol::Tcp, r(80, 100));
        a.add(Protocol::Udp, r(53, 53));
        let mut b = PortSet::empty();
        b.add(Protocol::Tcp, r(90, 200));
        b.add(Protocol::Sctp, r(53, 53));
        let i = a.intersect(&b);
        let PortSet::Some(m) = &i else { panic!() };
        assert_eq!(m.len(), 1);
        assert_eq!(m[&Protocol::Tcp], vec![r(90, 100)]);
        assert_eq!(a.intersect(&PortSet::All), a);
        assert!(a.intersect(&PortSet::empty()).is_empty());
    }

    #[test]
    fn overlap() {
        let mut a = PortSet::empty();
        a.add(Protocol::Tcp, r(80, 100));
        assert!(a.overlaps(Protocol::Tcp, r(100, 200)));
        assert!(a.overlaps(Protocol::Tcp, r(0, 80)));
        assert!(!a.overlaps(Protocol::Tcp, r(101, 200)));
        assert!(!a.overlaps(Protocol::Udp, r(80, 80)));
        assert!(a.overlaps(Protocol::Any, PortRange::ALL));
        assert!(!PortSet::empty().overlaps(Protocol::Any, PortRange::ALL));
        assert!(PortSet::All.overlaps(Protocol::Udp, r(1, 1)));
    }
}
