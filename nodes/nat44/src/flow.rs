//! Flows and how a packet maps onto one.
//!
//! A [`Flow`] is the 5-tuple NAT44 keys sessions by (vpg has one FIB, so VPP's sixth field, the
//! FIB index, is always the same and left out). ICMP has no ports: an echo request keys as
//! (source, destination, identifier, 0) and its reply as (source, destination, 0, identifier),
//! so the reply's flow is the request's flow reversed. An ICMP error keys as the flow of the
//! packet it quotes, reversed: the quoted packet went the other way.

use std::fmt;
use std::net::Ipv4Addr;

/// IP protocol numbers NAT44 treats specially.
pub mod proto {
    /// ICMP.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
}

/// A 5-tuple.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct Flow {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port (ICMP echo request: the identifier).
    pub sport: u16,
    /// Destination port (ICMP echo reply: the identifier).
    pub dport: u16,
    /// Protocol.
    pub proto: u8,
}

impl Flow {
    /// The other direction.
    #[inline]
    pub fn reverse(&self) -> Flow {
        Flow {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            proto: self.proto,
        }
    }

    /// Whether `self` and `f` are the same flow (branch-light: two 64-bit compares).
    #[inline(always)]
    pub fn same(&self, f: &Flow) -> bool {
        let a = (self.src as u64) << 32 | self.dst as u64;
        let b = (f.src as u64) << 32 | f.dst as u64;
        let p = (self.sport as u64) << 32 | (self.dport as u64) << 16 | self.proto as u64;
        let q = (f.sport as u64) << 32 | (f.dport as u64) << 16 | f.proto as u64;
        (a ^ b) | (p ^ q) == 0
    }

    /// Whether `self` reversed is `f`.
    #[inline(always)]
    pub fn same_reversed(&self, f: &Flow) -> bool {
        let a = (self.dst as u64) << 32 | self.src as u64;
        let b = (f.src as u64) << 32 | f.dst as u64;
        let p = (self.dport as u64) << 32 | (self.sport as u64) << 16 | self.proto as u64;
        let q = (f.sport as u64) << 32 | (f.dport as u64) << 16 | f.proto as u64;
        (a ^ b) | (p ^ q) == 0
    }

    /// A well-mixed 64-bit hash (index position from the low bits, a tag from the high half).
    #[inline]
    pub fn hash(&self) -> u64 {
        let x = (self.src as u64) << 32 | self.dst as u64;
        let y = (self.sport as u64) << 48 | (self.dport as u64) << 32 | (self.proto as u64) << 24;
        let h = (x ^ y.rotate_left(23)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let h = (h ^ (h >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h ^ (h >> 32)
    }

    /// Whether the protocol has ports (or an ICMP identifier) in its key.
    pub fn has_ports(&self) -> bool {
        matches!(self.proto, proto::TCP | proto::UDP | proto::ICMP)
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self.proto {
            proto::TCP => "tcp",
            proto::UDP => "udp",
            proto::ICMP => "icmp",
            _ => "",
        };
        if name.is_empty() {
            write!(f, "proto {} ", self.proto)?;
        } else {
            write!(f, "{name} ")?;
        }
        write!(
            f,
            "{}:{} -> {}:{}",
            Ipv4Addr::from_bits(self.src),
            self.sport,
            Ipv4Addr::from_bits(self.dst),
            self.dport
        )
    }
}

/// What sort of packet a flow came from (how the translation rewrites it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Shape {
    /// TCP: ports and the checksum over a pseudo header.
    Tcp,
    /// UDP: like TCP, except that a zero checksum stays zero.
    Udp,
    /// ICMP echo request (the identifier is the source port).
    EchoRequest,
    /// ICMP echo reply (the identifier is the destination port).
    EchoReply,
    /// ICMP error quoting a packet of the flow (reversed) at `inner` bytes from the IP header.
    IcmpError {
        /// Offset of the quoted IPv4 header from the outer IPv4 header.
        inner: u16,
    },
    /// Any other protocol: addresses only.
    #[default]
    Other,
}

/// A parsed packet.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// The flow the packet belongs to (the session lookup key).
    pub flow: Flow,
    /// How it is rewritten.
    pub shape: Shape,
    /// TCP flags (0 for other protocols).
    pub tcp_flags: u8,
    /// Offset of the L4 header from the IPv4 header.
    pub l4: u16,
}

/// Why a packet cannot be translated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Too short for its headers (or not IPv4).
    TooShort,
    /// A non-first fragment: no ports to key by (vpg does not reassemble).
    Fragment,
    /// An ICMP type NAT44 does not translate (not echo, not an error).
    UnsupportedIcmp,
    /// An ICMP error whose quoted packet cannot be read.
    BadInner,
}

/// ICMP types.
pub mod icmp {
    /// Echo reply.
    pub const ECHO_REPLY: u8 = 0;
    /// Destination unreachable.
    pub const UNREACHABLE: u8 = 3;
    /// Echo request.
    pub const ECHO_REQUEST: u8 = 8;
    /// Time exceeded.
    pub const TIME_EXCEEDED: u8 = 11;
    /// Parameter problem.
    pub const PARAMETER_PROBLEM: u8 = 12;
}

#[inline(always)]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[inline(always)]
fn be32(d: &[u8], at: usize) -> Option<u32> {
    let b = d.get(at..at + 4)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

/// The addresses, ports and protocol of the IPv4 packet at the start of `d` (its L4 header at
/// `ihl`), as the packet travels.
#[inline(always)]
fn tuple(d: &[u8]) -> Option<(Flow, usize, bool)> {
    let v = *d.first()?;
    if v >> 4 != 4 {
        return None;
    }
    let ihl = ((v & 0x0f) as usize) * 4;
    if ihl < 20 || d.len() < ihl {
        return None;
    }
    let first = be16(d, 6)? & 0x1fff == 0;
    Some((
        Flow {
            src: be32(d, 12)?,
            dst: be32(d, 16)?,
            proto: d[9],
            ..Flow::default()
        },
        ihl,
        first,
    ))
}

/// Parses the IPv4 packet at the start of `d`.
#[inline]
pub fn parse(d: &[u8]) -> Result<Parsed, ParseError> {
    // The common case in one fixed-size view: no options, TCP or UDP, not a fragment, the
    // whole header there (one bounds check instead of one per field).
    if let Some(h) = d.first_chunk::<40>() {
        let proto = h[9];
        let udp = proto == proto::UDP;
        if h[0] == 0x45 && (udp || proto == proto::TCP) && h[6] & 0x3f == 0 && h[7] == 0 {
            return Ok(Parsed {
                flow: Flow {
                    src: u32::from_be_bytes([h[12], h[13], h[14], h[15]]),
                    dst: u32::from_be_bytes([h[16], h[17], h[18], h[19]]),
                    sport: u16::from_be_bytes([h[20], h[21]]),
                    dport: u16::from_be_bytes([h[22], h[23]]),
                    proto,
                },
                shape: if udp { Shape::Udp } else { Shape::Tcp },
                tcp_flags: if udp { 0 } else { h[33] },
                l4: 20,
            });
        }
    }
    parse_slow(d)
}

/// Every other case, field by field.
fn parse_slow(d: &[u8]) -> Result<Parsed, ParseError> {
    let (mut flow, ihl, first) = tuple(d).ok_or(ParseError::TooShort)?;
    let mut p = Parsed {
        l4: ihl as u16,
        ..Parsed::default()
    };
    match flow.proto {
        proto::TCP | proto::UDP => {
            if !first {
                return Err(ParseError::Fragment);
            }
            flow.sport = be16(d, ihl).ok_or(ParseError::TooShort)?;
            flow.dport = be16(d, ihl + 2).ok_or(ParseError::TooShort)?;
            if flow.proto == proto::TCP {
                // Flags and checksum must be there: the translation rewrites the checksum.
                p.tcp_flags = *d.get(ihl + 13).ok_or(ParseError::TooShort)?;
                d.get(ihl + 17).ok_or(ParseError::TooShort)?;
                p.shape = Shape::Tcp;
            } else {
                d.get(ihl + 7).ok_or(ParseError::TooShort)?;
                p.shape = Shape::Udp;
            }
        }
        proto::ICMP => {
            if !first {
                return Err(ParseError::Fragment);
            }
            let kind = *d.get(ihl).ok_or(ParseError::TooShort)?;
            let id = be16(d, ihl + 4).ok_or(ParseError::TooShort)?;
            match kind {
                icmp::ECHO_REQUEST => {
                    flow.sport = id;
                    p.shape = Shape::EchoRequest;
                }
                icmp::ECHO_REPLY => {
                    flow.dport = id;
                    p.shape = Shape::EchoReply;
                }
                icmp::UNREACHABLE | icmp::TIME_EXCEEDED | icmp::PARAMETER_PROBLEM => {
                    let inner = ihl + 8;
                    let q = d.get(inner..).ok_or(ParseError::BadInner)?;
                    let (mut f, qihl, qfirst) = tuple(q).ok_or(ParseError::BadInner)?;
                    if !qfirst {
                        return Err(ParseError::BadInner);
                    }
                    match f.proto {
                        proto::TCP | proto::UDP => {
                            f.sport = be16(q, qihl).ok_or(ParseError::BadInner)?;
                            f.dport = be16(q, qihl + 2).ok_or(ParseError::BadInner)?;
                        }
                        proto::ICMP => match q.get(qihl) {
                            Some(&icmp::ECHO_REQUEST) => {
                                f.sport = be16(q, qihl + 4).ok_or(ParseError::BadInner)?
                            }
                            Some(&icmp::ECHO_REPLY) => {
                                f.dport = be16(q, qihl + 4).ok_or(ParseError::BadInner)?
                            }
                            // Errors about errors are never sent (RFC 1122 3.2.2).
                            _ => return Err(ParseError::BadInner),
                        },
                        _ => {}
                    }
                    flow = f.reverse();
                    p.shape = Shape::IcmpError {
                        inner: inner as u16,
                    };
                }
                _ => return Err(ParseError::UnsupportedIcmp),
            }
        }
        _ => p.shape = Shape::Other,
    }
    p.flow = flow;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ip(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; 20];
        d[0] = 0x45;
        d[9] = proto;
        d[12..16].copy_from_slice(&[10, 0, 0, 1]);
        d[16..20].copy_from_slice(&[8, 8, 8, 8]);
        d.extend_from_slice(l4);
        let n = d.len() as u16;
        d[2..4].copy_from_slice(&n.to_be_bytes());
        d
    }

    #[test]
    fn echo_reply_is_the_request_reversed() {
        let req = ip(1, &[8, 0, 0, 0, 0x12, 0x34, 0, 1]);
        let mut rep = ip(1, &[0, 0, 0, 0, 0x12, 0x34, 0, 1]);
        rep[12..16].copy_from_slice(&[8, 8, 8, 8]);
        rep[16..20].copy_from_slice(&[10, 0, 0, 1]);
        let a = parse(&req).unwrap();
        let b = parse(&rep).unwrap();
        assert_eq!(a.flow.sport, 0x1234);
        assert_eq!(a.flow.reverse(), b.flow);
        assert_eq!(a.shape, Shape::EchoRequest);
        assert_eq!(b.shape, Shape::EchoReply);
    }

    #[test]
    fn icmp_error_keys_as_the_quoted_flow_reversed() {
        // The quoted packet: UDP 10.0.0.1:5000 -> 8.8.8.8:53.
        let mut quoted = ip(17, &[0x13, 0x88, 0, 53, 0, 8, 0, 0]);
        quoted.truncate(28);
        let mut err = ip(1, &[3, 3, 0, 0, 0, 0, 0, 0]);
        err.extend_from_slice(&quoted);
        err[12..16].copy_from_slice(&[8, 8, 8, 8]);
        err[16..20].copy_from_slice(&[10, 0, 0, 1]);
        let p = parse(&err).unwrap();
        assert_eq!(p.shape, Shape::IcmpError { inner: 28 });
        assert_eq!(
            p.flow,
            Flow {
                src: u32::from_be_bytes([8, 8, 8, 8]),
                dst: u32::from_be_bytes([10, 0, 0, 1]),
                sport: 53,
                dport: 5000,
                proto: 17
            }
        );
    }

    #[test]
    fn fragments_short_packets_and_odd_icmp_are_refused() {
        let mut d = ip(17, &[0, 1, 0, 2, 0, 8, 0, 0]);
        d[7] = 1;
        assert_eq!(parse(&d), Err(ParseError::Fragment));
        assert_eq!(
            parse(&ip(6, &[0, 1, 0, 2, 0, 0])),
            Err(ParseError::TooShort)
        );
        assert_eq!(
            parse(&ip(1, &[13, 0, 0, 0, 0, 0, 0, 0])),
            Err(ParseError::UnsupportedIcmp)
        );
        assert_eq!(
            parse(&ip(1, &[3, 0, 0, 0, 0, 0, 0, 0, 0x45])),
            Err(ParseError::BadInner)
        );
        let gre = parse(&ip(47, &[])).unwrap();
        assert_eq!(
            (gre.flow.sport, gre.flow.dport, gre.shape),
            (0, 0, Shape::Other)
        );
    }

    proptest! {
        /// Any bytes parse or fail cleanly; never a panic.
        #[test]
        fn parse_never_panics(d in prop::collection::vec(any::<u8>(), 0..120)) {
            let _ = parse(&d);
        }

        /// The fixed-size fast path agrees with the field-by-field parser.
        #[test]
        fn fast_path_agrees_with_the_slow_one(
            mut d in prop::collection::vec(any::<u8>(), 40..80),
            proto in prop::sample::select(vec![6u8, 17, 1, 47]),
            frag in any::<bool>(),
        ) {
            d[0] = 0x45;
            d[9] = proto;
            if !frag {
                d[6] &= 0x40;
                d[7] = 0;
            }
            prop_assert_eq!(parse(&d), parse_slow(&d));
        }
    }
}
