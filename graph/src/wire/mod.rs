//! Packet views: zero-copy, typed access to protocol headers inside a byte buffer.
//!
//! # The contract (after smoltcp's `wire`)
//!
//! Each format has a `Packet<T>` (or `Frame<T>`) wrapper around any `T: AsRef<[u8]>`:
//! a `&[u8]`, a `&mut [u8]` or an owned `Vec<u8>`. The wrapper holds no state but the buffer.
//!
//! - `new_unchecked(buffer)` wraps without looking. Field accessors may then panic if the
//!   buffer is too short. It is meant for emit paths, where the node has just sized the buffer.
//! - `check_len()` validates, once, that every fixed field and every length field points inside
//!   the buffer. It returns [`Error::Truncated`] or [`Error::Malformed`], never panics.
//! - `new_checked(buffer)` is `new_unchecked` followed by `check_len`. After it succeeds, no
//!   getter on that view panics, whatever the bytes say.
//! - `into_inner()` gives the buffer back.
//! - Getters live in the `impl<T: AsRef<[u8]>>` block, setters in the
//!   `impl<T: AsRef<[u8]> + AsMut<[u8]>>` block. Neither allocates.
//!
//! Nodes call `new_checked` on what they receive and count a failure; they call
//! `new_unchecked` on what they emit. A `Repr` (where one exists) is the typed, owned form of a
//! header: `parse` reads it from a view, `buffer_len` says how many header bytes `emit` writes.
//!
//! Protocol numbers are enums with an `Unknown(raw)` variant, so every value converts both ways.
//! Every view and repr has a one-line tcpdump-style `Display`, which trace output reuses.
//!
//! [`walk`] parses arbitrary bytes as an Ethernet frame and descends through every header it
//! knows; property tests and the `fuzz/` target feed it arbitrary input.

#![forbid(unsafe_code)]

use core::fmt;
use std::net::Ipv4Addr;

/// Why a buffer could not be viewed as a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header, or than a length field says it must be.
    #[error("truncated packet")]
    Truncated,
    /// A field holds a value the format does not allow (bad length, flag or type).
    #[error("malformed packet")]
    Malformed,
}

/// Result type of the packet views.
pub type Result<T> = core::result::Result<T, Error>;

/// Declares a protocol-number enum with an `Unknown(raw)` catch-all and `From` both ways.
///
/// Build values with `From<raw>`, which never puts a named value in `Unknown`; a hand-written
/// `Unknown(0x0800)` would compare unequal to `EtherType::Ipv4`.
macro_rules! enum_with_unknown {
    (
        $(#[$attr:meta])*
        pub enum $name:ident($raw:ty) {
            $( $(#[$vattr:meta])* $variant:ident = $value:literal ),+ $(,)?
        }
    ) => {
        $(#[$attr])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $( $(#[$vattr])* $variant, )+
            /// Any value without a variant of its own.
            Unknown($raw),
        }

        impl From<$raw> for $name {
            fn from(raw: $raw) -> Self {
                match raw {
                    $( $value => $name::$variant, )+
                    other => $name::Unknown(other),
                }
            }
        }

        impl From<$name> for $raw {
            fn from(value: $name) -> Self {
                match value {
                    $( $name::$variant => $value, )+
                    $name::Unknown(other) => other,
                }
            }
        }
    };
}

mod arp;
pub mod checksum;
mod esp;
mod ethernet;
mod icmpv4;
mod ipv4;
mod sctp;
mod tcp;
mod udp;
mod vxlan;

pub use self::arp::{ArpOperation, ArpPacket, ArpRepr};
pub use self::esp::{EspPacket, EspRepr};
pub use self::ethernet::{EtherType, EthernetAddress, EthernetFrame, EthernetRepr};
pub use self::icmpv4::{Icmpv4Message, Icmpv4Packet};
pub use self::ipv4::{IpProtocol, Ipv4Cidr, Ipv4Packet, Ipv4Repr};
pub use self::sctp::SctpPacket;
pub use self::tcp::{TcpFlags, TcpPacket};
pub use self::udp::{UdpPacket, UdpRepr};
pub use self::vxlan::{VxlanPacket, VxlanRepr, VXLAN_PORT};

/// Reads a big-endian `u16` at `at`.
#[inline]
fn get_u16(data: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([data[at], data[at + 1]])
}

/// Writes a big-endian `u16` at `at`.
#[inline]
fn set_u16(data: &mut [u8], at: usize, value: u16) {
    data[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

/// Reads a big-endian `u32` at `at`.
#[inline]
fn get_u32(data: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]])
}

/// Writes a big-endian `u32` at `at`.
#[inline]
fn set_u32(data: &mut [u8], at: usize, value: u32) {
    data[at..at + 4].copy_from_slice(&value.to_be_bytes());
}

/// Deepest VXLAN nesting [`walk`] follows; bounds its recursion on hostile input.
const MAX_ENCAP_DEPTH: usize = 8;

/// Parses `bytes` as an Ethernet frame and walks every header it recognises.
///
/// Ethernet → 802.1Q tags → ARP | IPv4 → ICMP (and the quoted IPv4 header of an error) | UDP
/// (→ VXLAN on port 4789 → inner Ethernet …) | TCP | SCTP | ESP. Along the way it reads every
/// field through `Display` and verifies checksums, so it exercises all getters. Returns the
/// number of headers parsed (each VLAN tag counts as one); it never panics, whatever the input.
pub fn walk(bytes: &[u8]) -> usize {
    walk_ethernet(bytes, 0)
}

/// A `fmt::Write` that discards its input: lets `walk` run every `Display` without allocating.
struct Sink;

impl fmt::Write for Sink {
    fn write_str(&mut self, _: &str) -> fmt::Result {
        Ok(())
    }
}

/// Formats `value` into the void.
fn touch(value: &dyn fmt::Display) {
    let _ = fmt::write(&mut Sink, format_args!("{value}"));
}

fn walk_ethernet(bytes: &[u8], depth: usize) -> usize {
    let Ok(frame) = EthernetFrame::new_checked(bytes) else {
        return 0;
    };
    touch(&frame);
    let _ = EthernetRepr::parse(&frame);
    let mut headers = 1;
    let mut ethertype = frame.ethertype();
    let mut payload = frame.payload();
    // 802.1Q tags: TCI (2 bytes) then the inner ethertype (2 bytes).
    while ethertype == EtherType::Vlan {
        let Some(tag) = payload.get(..4) else {
            return headers;
        };
        ethertype = get_u16(tag, 2).into();
        payload = &payload[4..];
        headers += 1;
    }
    headers
        + match ethertype {
            EtherType::Arp => walk_arp(payload),
            EtherType::Ipv4 => walk_ipv4(payload, depth),
            _ => 0,
        }
}

fn walk_arp(bytes: &[u8]) -> usize {
    let Ok(packet) = ArpPacket::new_checked(bytes) else {
        return 0;
    };
    touch(&packet);
    if let Ok(repr) = ArpRepr::parse(&packet) {
        touch(&repr);
    }
    1
}

fn walk_ipv4(bytes: &[u8], depth: usize) -> usize {
    let Ok(ip) = Ipv4Packet::new_checked(bytes) else {
        return 0;
    };
    touch(&ip);
    let _ = ip.verify_checksum();
    if let Ok(repr) = Ipv4Repr::parse(&ip) {
        touch(&repr);
    }
    if ip.frag_offset() != 0 {
        return 1; // Later fragments carry no transport header.
    }
    let (src, dst, payload) = (ip.src_addr(), ip.dst_addr(), ip.payload());
    1 + match ip.protocol() {
        IpProtocol::Icmp => walk_icmpv4(payload, depth),
        IpProtocol::Udp => walk_udp(payload, src, dst, depth),
        IpProtocol::Tcp => TcpPacket::new_checked(payload).map_or(0, |tcp| {
            touch(&tcp);
            let _ = tcp.verify_checksum(src, dst);
            1
        }),
        IpProtocol::Sctp => SctpPacket::new_checked(payload).map_or(0, |sctp| {
            touch(&sctp);
            1
        }),
        IpProtocol::Esp => EspPacket::new_checked(payload).map_or(0, |esp| {
            touch(&esp);
            let _ = EspRepr::parse(&esp);
            1
        }),
        _ => 0,
    }
}

fn walk_icmpv4(bytes: &[u8], depth: usize) -> usize {
    let Ok(icmp) = Icmpv4Packet::new_checked(bytes) else {
        return 0;
    };
    touch(&icmp);
    let _ = icmp.verify_checksum();
    let quoted = match icmp.msg_type() {
        Icmpv4Message::DstUnreachable
        | Icmpv4Message::TimeExceeded
        | Icmpv4Message::ParamProblem
        | Icmpv4Message::Redirect
            if depth < MAX_ENCAP_DEPTH =>
        {
            walk_ipv4(icmp.data(), depth + 1)
        }
        _ => 0,
    };
    1 + quoted
}

fn walk_udp(bytes: &[u8], src: Ipv4Addr, dst: Ipv4Addr, depth: usize) -> usize {
    let Ok(udp) = UdpPacket::new_checked(bytes) else {
        return 0;
    };
    touch(&udp);
    let _ = udp.verify_checksum(src, dst);
    if udp.dst_port() != VXLAN_PORT {
        return 1;
    }
    let Ok(vxlan) = VxlanPacket::new_checked(udp.payload()) else {
        return 1;
    };
    touch(&vxlan);
    match VxlanRepr::parse(&vxlan) {
        Ok(_) if depth < MAX_ENCAP_DEPTH => 2 + walk_ethernet(vxlan.payload(), depth + 1),
        _ => 2,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use proptest::prelude::*;

    /// Ethernet / IPv4 / UDP:4789 / VXLAN vni 100 / Ethernet / IPv4 / ICMP echo request.
    fn vxlan_icmp() -> Vec<u8> {
        let inner_icmp_len = 8 + 4;
        let inner_ip_len = 20 + inner_icmp_len;
        let inner_len = 14 + inner_ip_len;
        let udp_len = 8 + 8 + inner_len;
        let mut buf = vec![0u8; 14 + 20 + udp_len];
        let a = Ipv4Addr::new(192, 0, 2, 1);
        let b = Ipv4Addr::new(192, 0, 2, 2);
        let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut eth);
        let mut ip = Ipv4Packet::new_unchecked(eth.payload_mut());
        Ipv4Repr {
            src_addr: a,
            dst_addr: b,
            protocol: IpProtocol::Udp,
            payload_len: udp_len,
            ttl: 64,
        }
        .emit(&mut ip);
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        UdpRepr {
            src_port: 49152,
            dst_port: VXLAN_PORT,
            payload_len: udp_len - 8,
        }
        .emit(&mut udp);
        let mut vx = VxlanPacket::new_unchecked(udp.payload_mut());
        VxlanRepr { vni: 100 }.emit(&mut vx);
        let mut inner = EthernetFrame::new_unchecked(vx.payload_mut());
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 1, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 1, 2]),
            ethertype: EtherType::Ipv4,
        }
        .emit(&mut inner);
        let mut ip2 = Ipv4Packet::new_unchecked(inner.payload_mut());
        let (c, d) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
        Ipv4Repr {
            src_addr: c,
            dst_addr: d,
            protocol: IpProtocol::Icmp,
            payload_len: inner_icmp_len,
            ttl: 64,
        }
        .emit(&mut ip2);
        let mut icmp = Icmpv4Packet::new_unchecked(ip2.payload_mut());
        icmp.set_msg_type(Icmpv4Message::EchoRequest);
        icmp.set_echo_ident(1);
        icmp.set_echo_seq_no(1);
        icmp.data_mut().copy_from_slice(b"ping");
        icmp.fill_checksum();
        let mut ip = Ipv4Packet::new_unchecked(&mut buf[14..]);
        let mut udp = UdpPacket::new_unchecked(ip.payload_mut());
        udp.fill_checksum(a, b);
        buf
    }

    #[test]
    fn walk_counts_every_header() {
        let buf = vxlan_icmp();
        // eth, ip, udp, vxlan, eth, ip, icmp
        assert_eq!(walk(&buf), 7);
        for cut in 0..buf.len() {
            assert!(walk(&buf[..cut]) < 7);
        }
        assert_eq!(walk(&[]), 0);
    }

    #[test]
    fn walk_vlan_tag() {
        let mut buf = vec![0u8; 18 + 28];
        buf[12..14].copy_from_slice(&0x8100u16.to_be_bytes());
        buf[16..18].copy_from_slice(&0x0806u16.to_be_bytes());
        let mut arp = ArpPacket::new_unchecked(&mut buf[18..]);
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
        .emit(&mut arp);
        assert_eq!(walk(&buf), 3);
    }

    #[test]
    fn error_display() {
        assert_eq!(Error::Truncated.to_string(), "truncated packet");
        assert_eq!(Error::Malformed.to_string(), "malformed packet");
    }

    proptest! {
        #[test]
        fn walk_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            walk(&bytes);
        }

        #[test]
        fn walk_never_panics_on_mutated_packets(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut buf = vxlan_icmp();
            for (at, byte) in edits {
                let i = at.index(buf.len());
                buf[i] = byte;
            }
            let len = cut.index(buf.len() + 1);
            walk(&buf[..len]);
        }
    }
}
