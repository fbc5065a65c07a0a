//! Rewriting a packet from one flow to another with incremental checksum updates (RFC 1624).
//!
//! The common case (TCP, UDP, ICMP echo) touches the changed fields and the two checksums
//! only: one combined delta for the addresses serves the IP header and the L4 pseudo header. A
//! zero UDP checksum (none) stays zero; a computed zero is sent as 0xffff (RFC 768). ICMP
//! errors rewrite the quoted packet too and then recompute the ICMP checksum over the message:
//! they are rare and short.

use crate::flow::{Flow, Parsed, Shape};
use vpg_graph::wire::checksum;

#[inline(always)]
fn add32(acc: &mut u32, old: u32, new: u32) {
    *acc +=
        u32::from(!(old >> 16) as u16) + u32::from(!(old as u16)) + (new >> 16) + (new & 0xffff);
}

#[inline(always)]
fn add16(acc: &mut u32, old: u16, new: u16) {
    *acc += u32::from(!old) + u32::from(new);
}

#[inline(always)]
fn apply(ck: u16, acc: u32) -> u16 {
    !checksum::fold(u32::from(!ck) + acc)
}

#[inline(always)]
fn get16(d: &[u8], at: usize) -> Option<u16> {
    let b = d.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

#[inline(always)]
fn put16(d: &mut [u8], at: usize, v: u16) {
    if let Some(b) = d.get_mut(at..at + 2) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

#[inline(always)]
fn put32(d: &mut [u8], at: usize, v: u32) {
    if let Some(b) = d.get_mut(at..at + 4) {
        b.copy_from_slice(&v.to_be_bytes());
    }
}

/// Rewrites the IPv4 packet at the start of `d`, parsed as `p`, so that its flow becomes `to`.
/// `d` must be the buffer the packet was parsed from (the parser checked the lengths the
/// rewrite needs; anything missing is left alone rather than panicking).
#[inline]
pub fn rewrite(d: &mut [u8], p: &Parsed, to: &Flow) {
    let from = &p.flow;
    // The common case in one fixed-size view (TCP or UDP without IP options).
    if p.l4 == 20 && matches!(p.shape, Shape::Tcp | Shape::Udp) {
        if let Some(h) = d.first_chunk_mut::<40>() {
            rewrite_l4_fixed(h, p.shape == Shape::Tcp, from, to);
            return;
        }
    }
    if let Shape::IcmpError { inner } = p.shape {
        rewrite_icmp_error(d, p.l4 as usize, inner as usize, from, to);
        return;
    }
    let mut addr = 0u32;
    add32(&mut addr, from.src, to.src);
    add32(&mut addr, from.dst, to.dst);
    put32(d, 12, to.src);
    put32(d, 16, to.dst);
    if let Some(ck) = get16(d, 10) {
        put16(d, 10, apply(ck, addr));
    }
    let l4 = p.l4 as usize;
    match p.shape {
        Shape::Tcp | Shape::Udp => {
            let mut acc = addr;
            add16(&mut acc, from.sport, to.sport);
            add16(&mut acc, from.dport, to.dport);
            put16(d, l4, to.sport);
            put16(d, l4 + 2, to.dport);
            let at = l4 + if p.shape == Shape::Tcp { 16 } else { 6 };
            if let Some(ck) = get16(d, at) {
                if p.shape == Shape::Tcp {
                    put16(d, at, apply(ck, acc));
                } else if ck != 0 {
                    let n = apply(ck, acc);
                    put16(d, at, if n == 0 { 0xffff } else { n });
                }
            }
        }
        Shape::EchoRequest | Shape::EchoReply => {
            let (old, new) = if p.shape == Shape::EchoRequest {
                (from.sport, to.sport)
            } else {
                (from.dport, to.dport)
            };
            if old != new {
                put16(d, l4 + 4, new);
                if let Some(ck) = get16(d, l4 + 2) {
                    let mut acc = 0;
                    add16(&mut acc, old, new);
                    put16(d, l4 + 2, apply(ck, acc));
                }
            }
        }
        Shape::Other | Shape::IcmpError { .. } => {}
    }
}

#[inline(always)]
fn rewrite_l4_fixed(h: &mut [u8; 40], tcp: bool, from: &Flow, to: &Flow) {
    let mut addr = 0u32;
    add32(&mut addr, from.src, to.src);
    add32(&mut addr, from.dst, to.dst);
    h[12..16].copy_from_slice(&to.src.to_be_bytes());
    h[16..20].copy_from_slice(&to.dst.to_be_bytes());
    let ck = u16::from_be_bytes([h[10], h[11]]);
    h[10..12].copy_from_slice(&apply(ck, addr).to_be_bytes());
    let mut acc = addr;
    add16(&mut acc, from.sport, to.sport);
    add16(&mut acc, from.dport, to.dport);
    h[20..22].copy_from_slice(&to.sport.to_be_bytes());
    h[22..24].copy_from_slice(&to.dport.to_be_bytes());
    let at = if tcp { 36 } else { 26 };
    let ck = u16::from_be_bytes([h[at], h[at + 1]]);
    let n = if tcp {
        apply(ck, acc)
    } else if ck == 0 {
        0
    } else {
        match apply(ck, acc) {
            0 => 0xffff,
            n => n,
        }
    };
    h[at..at + 2].copy_from_slice(&n.to_be_bytes());
}

/// An ICMP error: the outer addresses that belong to the flow change as the flow does; the
/// quoted packet (the flow reversed) becomes `to` reversed.
fn rewrite_icmp_error(d: &mut [u8], l4: usize, inner: usize, from: &Flow, to: &Flow) {
    let (osrc, odst) = match (d.get(12..16), d.get(16..20)) {
        (Some(s), Some(t)) => (
            u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
            u32::from_be_bytes([t[0], t[1], t[2], t[3]]),
        ),
        _ => return,
    };
    let nsrc = if osrc == from.src { to.src } else { osrc };
    let ndst = if odst == from.dst { to.dst } else { odst };
    let mut acc = 0;
    add32(&mut acc, osrc, nsrc);
    add32(&mut acc, odst, ndst);
    put32(d, 12, nsrc);
    put32(d, 16, ndst);
    if let Some(ck) = get16(d, 10) {
        put16(d, 10, apply(ck, acc));
    }
    // The quoted packet travelled the other way.
    let (qfrom, qto) = (from.reverse(), to.reverse());
    let qihl = d.get(inner).map_or(20, |v| ((v & 0x0f) as usize) * 4);
    let mut qaddr = 0;
    add32(&mut qaddr, qfrom.src, qto.src);
    add32(&mut qaddr, qfrom.dst, qto.dst);
    put32(d, inner + 12, qto.src);
    put32(d, inner + 16, qto.dst);
    if let Some(ck) = get16(d, inner + 10) {
        put16(d, inner + 10, apply(ck, qaddr));
    }
    let q4 = inner + qihl;
    match qfrom.proto {
        crate::flow::proto::TCP | crate::flow::proto::UDP => {
            let mut acc = qaddr;
            add16(&mut acc, qfrom.sport, qto.sport);
            add16(&mut acc, qfrom.dport, qto.dport);
            put16(d, q4, qto.sport);
            put16(d, q4 + 2, qto.dport);
            // The quoted L4 checksum is there only if the router quoted enough.
            let at = q4
                + if qfrom.proto == crate::flow::proto::TCP {
                    16
                } else {
                    6
                };
            if let Some(ck) = get16(d, at) {
                if qfrom.proto == crate::flow::proto::TCP || ck != 0 {
                    let n = apply(ck, acc);
                    let udp_zero = qfrom.proto == crate::flow::proto::UDP && n == 0;
                    put16(d, at, if udp_zero { 0xffff } else { n });
                }
            }
        }
        crate::flow::proto::ICMP => {
            let request = d.get(q4) == Some(&crate::flow::icmp::ECHO_REQUEST);
            let (old, new) = if request {
                (qfrom.sport, qto.sport)
            } else {
                (qfrom.dport, qto.dport)
            };
            put16(d, q4 + 4, new);
            if let Some(ck) = get16(d, q4 + 2) {
                let mut acc = 0;
                add16(&mut acc, old, new);
                put16(d, q4 + 2, apply(ck, acc));
            }
        }
        _ => {}
    }
    // The ICMP checksum covers the whole message, quoted packet included.
    let total = get16(d, 2).map_or(d.len(), |t| (t as usize).min(d.len()));
    if total >= l4 + 4 {
        put16(d, l4 + 2, 0);
        let ck = checksum::data(&d[l4..total]);
        put16(d, l4 + 2, ck);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::parse;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    fn addr(a: u32) -> [u8; 4] {
        a.to_be_bytes()
    }

    fn packet(kind: u8, f: &Flow, payload: &[u8]) -> Vec<u8> {
        let b = PacketBuilder::ipv4(addr(f.src), addr(f.dst), 64);
        let mut out = Vec::new();
        match kind {
            0 => b
                .tcp(f.sport, f.dport, 7, 1000)
                .syn()
                .write(&mut out, payload)
                .unwrap(),
            1 => b.udp(f.sport, f.dport).write(&mut out, payload).unwrap(),
            _ => b
                .icmpv4_echo_request(f.sport, 3)
                .write(&mut out, payload)
                .unwrap(),
        }
        out
    }

    /// Recomputes every checksum of `d` from scratch with etherparse and returns the packet.
    fn recomputed(d: &[u8]) -> Vec<u8> {
        let s = etherparse::SlicedPacket::from_ip(d).unwrap();
        let ip = match s.net.unwrap() {
            etherparse::NetSlice::Ipv4(ip) => ip,
            _ => unreachable!(),
        };
        let h = ip.header().to_header();
        let payload = ip.payload().payload;
        let mut out = Vec::new();
        let mut h2 = h.clone();
        h2.header_checksum = h2.calc_header_checksum();
        h2.write(&mut out).unwrap();
        match s.transport.unwrap() {
            etherparse::TransportSlice::Tcp(t) => {
                let mut th = t.to_header();
                th.checksum = th
                    .calc_checksum_ipv4(&h2, &payload[t.header_len()..])
                    .unwrap();
                th.write(&mut out).unwrap();
                out.extend_from_slice(&payload[t.header_len()..]);
            }
            etherparse::TransportSlice::Udp(u) => {
                let mut uh = u.to_header();
                uh.checksum = uh.calc_checksum_ipv4(&h2, &payload[8..]).unwrap();
                uh.write(&mut out).unwrap();
                out.extend_from_slice(&payload[8..]);
            }
            etherparse::TransportSlice::Icmpv4(i) => {
                let mut ih = i.header();
                ih.update_checksum(i.payload());
                ih.write(&mut out).unwrap();
                out.extend_from_slice(i.payload());
            }
            _ => unreachable!(),
        }
        out
    }

    fn flow_strategy() -> impl Strategy<Value = Flow> {
        (any::<u32>(), any::<u32>(), any::<u16>(), any::<u16>()).prop_map(|(s, d, sp, dp)| Flow {
            src: s,
            dst: d,
            sport: sp,
            dport: dp,
            proto: 0,
        })
    }

    proptest! {
        /// After a rewrite, every checksum equals the one computed from scratch.
        #[test]
        fn checksums_equal_recomputed(
            kind in 0u8..3,
            a in flow_strategy(),
            b in flow_strategy(),
            payload in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut d = packet(kind, &a, &payload);
            let p = parse(&d).unwrap();
            let mut to = b;
            to.proto = p.flow.proto;
            if kind == 2 {
                to.dport = 0; // an echo request keys its identifier as the source port
            }
            rewrite(&mut d, &p, &to);
            prop_assert_eq!(&d, &recomputed(&d));
            prop_assert_eq!(parse(&d).unwrap().flow, to);
        }

        /// A zero UDP checksum (none) stays zero.
        #[test]
        fn zero_udp_checksum_stays_zero(a in flow_strategy(), b in flow_strategy()) {
            let mut d = packet(1, &a, b"abc");
            d[26] = 0;
            d[27] = 0;
            let p = parse(&d).unwrap();
            let mut to = b;
            to.proto = 17;
            rewrite(&mut d, &p, &to);
            prop_assert_eq!(&d[26..28], &[0, 0]);
            prop_assert_eq!(checksum::data(&d[..20]), 0, "IP header checksum verifies");
        }
    }

    #[test]
    fn icmp_error_rewrites_the_quoted_packet() {
        // We sent UDP 100.64.0.1:40000 -> 8.8.8.8:53 (after SNAT); the router 9.9.9.9 answers
        // port unreachable. out2in turns it back towards the pod 10.1.1.2:5000.
        let sent = Flow {
            src: u32::from_be_bytes([100, 64, 0, 1]),
            dst: u32::from_be_bytes([8, 8, 8, 8]),
            sport: 40000,
            dport: 53,
            proto: 17,
        };
        let quoted = packet(1, &sent, b"query");
        let mut err = Vec::new();
        PacketBuilder::ipv4([9, 9, 9, 9], addr(sent.src), 64)
            .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
                etherparse::icmpv4::DestUnreachableHeader::Port,
            ))
            .write(&mut err, &quoted)
            .unwrap();
        let p = parse(&err).unwrap();
        assert_eq!(p.flow, sent.reverse());
        let pod = Flow {
            src: sent.dst,
            dst: u32::from_be_bytes([10, 1, 1, 2]),
            sport: 53,
            dport: 5000,
            proto: 17,
        };
        rewrite(&mut err, &p, &pod);
        assert_eq!(&err[12..16], &[9, 9, 9, 9], "the router's address stays");
        assert_eq!(&err[16..20], &[10, 1, 1, 2]);
        assert_eq!(checksum::data(&err[..20]), 0);
        assert_eq!(checksum::data(&err[20..]), 0, "ICMP checksum verifies");
        let q = &err[28..];
        assert_eq!(&q[12..16], &[10, 1, 1, 2], "quoted source is the pod");
        assert_eq!(u16::from_be_bytes([q[20], q[21]]), 5000);
        assert_eq!(checksum::data(&q[..20]), 0, "quoted IP checksum verifies");
        assert_eq!(&recomputed(q), q, "quoted UDP checksum verifies");
    }
}
