//! IPv4 headers (RFC 791) and CIDR prefixes.

use core::{fmt, str::FromStr};
use std::net::Ipv4Addr;

use super::{checksum, get_u16, get_u32, set_u16, set_u32, Error, Result};

enum_with_unknown! {
    /// The IPv4 protocol number (IPv6 next header).
    pub enum IpProtocol(u8) {
        /// ICMP (1).
        Icmp = 1,
        /// IGMP (2).
        Igmp = 2,
        /// TCP (6).
        Tcp = 6,
        /// UDP (17).
        Udp = 17,
        /// IPv6 encapsulation (41).
        Ipv6 = 41,
        /// GRE (47).
        Gre = 47,
        /// IPsec ESP (50).
        Esp = 50,
        /// IPsec AH (51).
        Ah = 51,
        /// SCTP (132).
        Sctp = 132,
    }
}

impl fmt::Display for IpProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            IpProtocol::Icmp => "ICMP",
            IpProtocol::Igmp => "IGMP",
            IpProtocol::Tcp => "TCP",
            IpProtocol::Udp => "UDP",
            IpProtocol::Ipv6 => "IPv6",
            IpProtocol::Gre => "GRE",
            IpProtocol::Esp => "ESP",
            IpProtocol::Ah => "AH",
            IpProtocol::Sctp => "SCTP",
            IpProtocol::Unknown(raw) => return write!(f, "{raw}"),
        };
        f.write_str(name)
    }
}

mod field {
    pub const VER_IHL: usize = 0;
    pub const TOS: usize = 1;
    pub const LENGTH: usize = 2;
    pub const IDENT: usize = 4;
    pub const FLG_OFF: usize = 6;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: usize = 10;
    pub const SRC: usize = 12;
    pub const DST: usize = 16;
    pub const END: usize = 20;
}

/// Don't Fragment flag in the flags/offset word.
const FLAG_DF: u16 = 0x4000;
/// More Fragments flag in the flags/offset word.
const FLAG_MF: u16 = 0x2000;
/// Fragment offset bits (in 8-byte units) of the flags/offset word.
const OFFSET_MASK: u16 = 0x1fff;

/// A view of an IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Length of a header without options.
    pub const HEADER_LEN: usize = field::END;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Checks that the header and `total_len` fit the buffer; the version is not checked.
    ///
    /// `Truncated` if the buffer is under 20 bytes or shorter than the header or total length
    /// say; `Malformed` if the header length is under 20 or the total length under the header.
    /// The buffer may be longer than `total_len` (Ethernet padding).
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::END {
            return Err(Error::Truncated);
        }
        let header_len = usize::from(self.header_len());
        if header_len < field::END {
            return Err(Error::Malformed);
        }
        if header_len > len {
            return Err(Error::Truncated);
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Error::Malformed);
        }
        if total_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Version field (4 for a valid packet).
    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    /// Type-of-service byte: DSCP in the upper six bits, ECN in the lower two.
    pub fn tos(&self) -> u8 {
        self.buffer.as_ref()[field::TOS]
    }

    /// Differentiated services code point.
    pub fn dscp(&self) -> u8 {
        self.tos() >> 2
    }

    /// Explicit congestion notification bits.
    pub fn ecn(&self) -> u8 {
        self.tos() & 0x03
    }

    /// Total length of header and payload in bytes.
    pub fn total_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::IDENT)
    }

    /// Don't Fragment flag.
    pub fn dont_frag(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_DF != 0
    }

    /// More Fragments flag.
    pub fn more_frags(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & FLAG_MF != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (get_u16(self.buffer.as_ref(), field::FLG_OFF) & OFFSET_MASK) * 8
    }

    /// Whether this is a fragment (MF set or a non-zero offset).
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buffer.as_ref(), field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    /// Protocol of the payload.
    pub fn protocol(&self) -> IpProtocol {
        self.protocol_raw().into()
    }

    /// Protocol number as on the wire.
    pub fn protocol_raw(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    /// Header checksum.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Source address.
    pub fn src_addr(&self) -> Ipv4Addr {
        self.src_u32().into()
    }

    /// Destination address.
    pub fn dst_addr(&self) -> Ipv4Addr {
        self.dst_u32().into()
    }

    /// Source address as a host-order `u32` (the big-endian value), for table lookups.
    pub fn src_u32(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SRC)
    }

    /// Destination address as a host-order `u32` (the big-endian value), for table lookups.
    pub fn dst_u32(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::DST)
    }

    /// Whether the header checksum is valid (options included).
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.header()) == 0
    }

    /// Header bytes, options included (clamped to the buffer).
    pub fn header(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..usize::from(self.header_len()).min(data.len())]
    }

    /// Options bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        self.header().get(field::END..).unwrap_or(&[])
    }

    /// Payload: from the header length to the total length (clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let (start, end) = payload_range(data, self.header_len(), self.total_len());
        &data[start..end]
    }
}

/// Payload bounds that stay inside `data` whatever the length fields say.
fn payload_range(data: &[u8], header_len: u8, total_len: u16) -> (usize, usize) {
    let end = usize::from(total_len).min(data.len());
    (usize::from(header_len).min(end), end)
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the version field.
    pub fn set_version(&mut self, version: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (version << 4);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60).
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }

    /// Sets the type-of-service byte.
    pub fn set_tos(&mut self, tos: u8) {
        self.buffer.as_mut()[field::TOS] = tos;
    }

    /// Sets the DSCP, keeping the ECN bits.
    pub fn set_dscp(&mut self, dscp: u8) {
        let ecn = self.ecn();
        self.set_tos((dscp << 2) | ecn);
    }

    /// Sets the ECN bits, keeping the DSCP.
    pub fn set_ecn(&mut self, ecn: u8) {
        let tos = (self.tos() & !0x03) | (ecn & 0x03);
        self.set_tos(tos);
    }

    /// Sets the total length.
    pub fn set_total_len(&mut self, len: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, len);
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, ident: u16) {
        set_u16(self.buffer.as_mut(), field::IDENT, ident);
    }

    /// Sets or clears Don't Fragment.
    pub fn set_dont_frag(&mut self, on: bool) {
        self.set_flag(FLAG_DF, on);
    }

    /// Sets or clears More Fragments.
    pub fn set_more_frags(&mut self, on: bool) {
        self.set_flag(FLAG_MF, on);
    }

    /// Sets the fragment offset in bytes (rounded down to a multiple of 8).
    pub fn set_frag_offset(&mut self, offset: u16) {
        let word = get_u16(self.buffer.as_ref(), field::FLG_OFF);
        set_u16(
            self.buffer.as_mut(),
            field::FLG_OFF,
            (word & !OFFSET_MASK) | (offset / 8),
        );
    }

    fn set_flag(&mut self, flag: u16, on: bool) {
        let word = get_u16(self.buffer.as_ref(), field::FLG_OFF);
        let word = if on { word | flag } else { word & !flag };
        set_u16(self.buffer.as_mut(), field::FLG_OFF, word);
    }

    /// Sets the time to live.
    pub fn set_ttl(&mut self, ttl: u8) {
        self.buffer.as_mut()[field::TTL] = ttl;
    }

    /// Sets the protocol.
    pub fn set_protocol(&mut self, protocol: IpProtocol) {
        self.buffer.as_mut()[field::PROTOCOL] = protocol.into();
    }

    /// Sets the header checksum.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        set_u32(self.buffer.as_mut(), field::SRC, addr.into());
    }

    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        set_u32(self.buffer.as_mut(), field::DST, addr.into());
    }

    /// Computes the header checksum over the header (options included) and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::data(self.header());
        self.set_checksum(value);
    }

    //= https://www.rfc-editor.org/rfc/rfc1624#section-1
    //# Incremental checksum update is useful in speeding up several
    //# types of operations routinely performed on IP packets, such as
    //# TTL update, IP fragmentation, and source route update.

    /// Decrements the TTL and patches the checksum (RFC 1624); returns the new TTL.
    ///
    /// A TTL of 0 is left alone (and 0 returned): the caller drops such packets.
    pub fn decrement_ttl(&mut self) -> u8 {
        let ttl = self.ttl();
        if ttl == 0 {
            return 0;
        }
        let protocol = self.protocol_raw();
        let old = u16::from_be_bytes([ttl, protocol]);
        let new = u16::from_be_bytes([ttl - 1, protocol]);
        self.set_ttl(ttl - 1);
        let value = checksum::update_u16(self.checksum(), old, new);
        self.set_checksum(value);
        ttl - 1
    }

    /// Payload, mutably (same bounds as [`payload`](Self::payload)).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (header_len, total_len) = (self.header_len(), self.total_len());
        let data = self.buffer.as_mut();
        let (start, end) = payload_range(data, header_len, total_len);
        &mut data[start..end]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Ipv4Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "IPv4 ({e})");
        }
        write!(
            f,
            "IPv4 {} > {} ttl {} proto {} len {}",
            self.src_addr(),
            self.dst_addr(),
            self.ttl(),
            self.protocol(),
            self.total_len()
        )
    }
}

/// The typed form of an IPv4 header without options: what tests and the control plane need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Ipv4Repr {
    /// Source address.
    pub src_addr: Ipv4Addr,
    /// Destination address.
    pub dst_addr: Ipv4Addr,
    /// Protocol of the payload.
    pub protocol: IpProtocol,
    /// Payload length in bytes.
    pub payload_len: usize,
    /// Time to live.
    pub ttl: u8,
}

impl Ipv4Repr {
    /// Reads a header; `Malformed` if the version is not 4 or the checksum is wrong.
    ///
    /// Options, ToS, identification and fragment fields are not kept.
    ///
    /// ```
    /// use std::net::Ipv4Addr;
    /// use vpg_graph::wire::{IpProtocol, Ipv4Packet, Ipv4Repr};
    ///
    /// let repr = Ipv4Repr {
    ///     src_addr: Ipv4Addr::new(10, 0, 0, 1),
    ///     dst_addr: Ipv4Addr::new(10, 0, 0, 2),
    ///     protocol: IpProtocol::Udp,
    ///     payload_len: 8,
    ///     ttl: 64,
    /// };
    /// let mut buf = vec![0u8; repr.buffer_len() + repr.payload_len];
    /// repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]));
    ///
    /// let packet = Ipv4Packet::new_checked(&buf[..]).unwrap();
    /// assert!(packet.verify_checksum());
    /// assert_eq!(Ipv4Repr::parse(&packet), Ok(repr));
    /// assert_eq!(packet.to_string(), "IPv4 10.0.0.1 > 10.0.0.2 ttl 64 proto UDP len 28");
    /// ```
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv4Packet<T>) -> Result<Self> {
        packet.check_len()?;
        if packet.version() != 4 || !packet.verify_checksum() {
            return Err(Error::Malformed);
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: packet.payload().len(),
            ttl: packet.ttl(),
        })
    }

    /// Number of header bytes [`emit`](Self::emit) writes (20).
    pub const fn buffer_len(&self) -> usize {
        field::END
    }

    /// Writes a 20-byte header with a valid checksum; `payload_len` must fit in `total_len`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut Ipv4Packet<T>) {
        packet.set_version(4);
        packet.set_header_len(field::END as u8);
        packet.set_tos(0);
        packet.set_total_len((field::END + self.payload_len) as u16);
        packet.set_ident(0);
        set_u16(packet.buffer.as_mut(), field::FLG_OFF, 0);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        packet.fill_checksum();
    }
}

impl fmt::Display for Ipv4Repr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IPv4 {} > {} ttl {} proto {} len {}",
            self.src_addr,
            self.dst_addr,
            self.ttl,
            self.protocol,
            field::END + self.payload_len
        )
    }
}

/// An IPv4 address with a prefix length, e.g. `10.0.0.0/8`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    address: Ipv4Addr,
    prefix_len: u8,
}

impl Ipv4Cidr {
    /// Makes a CIDR; `Malformed` if `prefix_len` exceeds 32. Host bits are kept.
    pub const fn new(address: Ipv4Addr, prefix_len: u8) -> Result<Self> {
        if prefix_len > 32 {
            return Err(Error::Malformed);
        }
        Ok(Ipv4Cidr {
            address,
            prefix_len,
        })
    }

    /// The address as given (host bits included).
    pub const fn address(&self) -> Ipv4Addr {
        self.address
    }

    /// The prefix length, 0 to 32.
    pub const fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The netmask, e.g. 255.0.0.0 for /8.
    pub const fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from_bits(self.mask())
    }

    /// The prefix with host bits cleared, e.g. 10.0.0.0/8 for 10.1.2.3/8.
    pub const fn network(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            address: Ipv4Addr::from_bits(self.address.to_bits() & self.mask()),
            prefix_len: self.prefix_len,
        }
    }

    /// Whether `addr` lies inside the prefix.
    pub const fn contains(&self, addr: Ipv4Addr) -> bool {
        (addr.to_bits() ^ self.address.to_bits()) & self.mask() == 0
    }

    const fn mask(&self) -> u32 {
        match u32::MAX.checked_shl(32 - self.prefix_len as u32) {
            Some(mask) => mask,
            None => 0,
        }
    }
}

impl FromStr for Ipv4Cidr {
    type Err = Error;

    /// Parses `a.b.c.d/len`; `Malformed` on anything else.
    fn from_str(s: &str) -> Result<Self> {
        let (addr, len) = s.split_once('/').ok_or(Error::Malformed)?;
        let address = addr.parse().map_err(|_| Error::Malformed)?;
        // `u8::from_str` accepts a leading '+'; a prefix length is digits only.
        if len.is_empty() || len.len() > 2 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::Malformed);
        }
        let prefix_len = len.parse().map_err(|_| Error::Malformed)?;
        Ipv4Cidr::new(address, prefix_len)
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix_len)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    // 192.168.1.1 > 192.168.1.2, UDP, TTL 64, DF, ident 0x1c46, 4-byte payload.
    static PACKET_BYTES: [u8; 24] = hex!(
        "45 00 0018 1c46 4000 40 11 9b3b"
        "c0a80101 c0a80102"
        "deadbeef"
    );
    static PAYLOAD_BYTES: [u8; 4] = hex!("deadbeef");

    fn repr() -> Ipv4Repr {
        Ipv4Repr {
            src_addr: Ipv4Addr::new(192, 168, 1, 1),
            dst_addr: Ipv4Addr::new(192, 168, 1, 2),
            protocol: IpProtocol::Udp,
            payload_len: 4,
            ttl: 64,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.version(), 4);
        assert_eq!(packet.header_len(), 20);
        assert_eq!(packet.tos(), 0);
        assert_eq!((packet.dscp(), packet.ecn()), (0, 0));
        assert_eq!(packet.total_len(), 24);
        assert_eq!(packet.ident(), 0x1c46);
        assert!(packet.dont_frag());
        assert!(!packet.more_frags());
        assert_eq!(packet.frag_offset(), 0);
        assert!(!packet.is_fragment());
        assert_eq!(packet.ttl(), 64);
        assert_eq!(packet.protocol(), IpProtocol::Udp);
        assert_eq!(packet.protocol_raw(), 17);
        assert_eq!(packet.checksum(), 0x9b3b);
        assert_eq!(packet.src_addr(), Ipv4Addr::new(192, 168, 1, 1));
        assert_eq!(packet.dst_addr(), Ipv4Addr::new(192, 168, 1, 2));
        assert_eq!(packet.src_u32(), 0xc0a8_0101);
        assert_eq!(packet.dst_u32(), 0xc0a8_0102);
        assert!(packet.verify_checksum());
        assert!(packet.options().is_empty());
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(
            packet.to_string(),
            "IPv4 192.168.1.1 > 192.168.1.2 ttl 64 proto UDP len 24"
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 24];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_version(4);
        packet.set_header_len(20);
        packet.set_tos(0);
        packet.set_total_len(24);
        packet.set_ident(0x1c46);
        packet.set_frag_offset(0);
        packet.set_more_frags(false);
        packet.set_dont_frag(true);
        packet.set_flag(0x8000, false);
        packet.set_ttl(64);
        packet.set_protocol(IpProtocol::Udp);
        packet.set_src_addr(Ipv4Addr::new(192, 168, 1, 1));
        packet.set_dst_addr(Ipv4Addr::new(192, 168, 1, 2));
        packet.fill_checksum();
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn fragment_and_tos_fields() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_frag_offset(1480);
        packet.set_more_frags(true);
        packet.set_dscp(46);
        packet.set_ecn(1);
        assert_eq!(packet.frag_offset(), 1480);
        assert!(packet.more_frags() && packet.dont_frag() && packet.is_fragment());
        assert_eq!((packet.tos(), packet.dscp(), packet.ecn()), (0xb9, 46, 1));
        packet.set_more_frags(false);
        assert!(packet.is_fragment());
        packet.set_frag_offset(0);
        assert!(!packet.is_fragment());
    }

    #[test]
    fn parse() {
        let packet = Ipv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(Ipv4Repr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn parse_rejects_bad_version_and_checksum() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x65;
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.version(), 6);
        assert_eq!(Ipv4Repr::parse(&packet), Err(Error::Malformed));
        let mut bytes = PACKET_BYTES;
        bytes[11] ^= 1;
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(!packet.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&packet), Err(Error::Malformed));
    }

    #[test]
    fn emit() {
        let mut bytes = [0u8; 24];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        // Our emit leaves DF and ident clear; the fixture has both set.
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum());
        assert_eq!(Ipv4Repr::parse(&packet), Ok(repr()));
        assert_eq!(bytes[..4], PACKET_BYTES[..4]);
        assert_eq!(bytes[8..10], PACKET_BYTES[8..10]);
        assert_eq!(bytes[12..], PACKET_BYTES[12..]);
        assert_eq!(
            repr().to_string(),
            "IPv4 192.168.1.1 > 192.168.1.2 ttl 64 proto UDP len 24"
        );
    }

    #[test]
    fn overlong() {
        let mut bytes = PACKET_BYTES.to_vec();
        bytes.extend_from_slice(&[0; 22]); // Ethernet padding after a short packet.
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(Ipv4Repr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn truncated() {
        for len in 0..24 {
            assert_eq!(
                Ipv4Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated),
                "len {len}"
            );
        }
        assert_eq!(
            Ipv4Packet::new_unchecked(&PACKET_BYTES[..10]).to_string(),
            "IPv4 (truncated packet)"
        );
    }

    #[test]
    fn malformed_lengths() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0x44; // IHL 4: a 16-byte header
        assert_eq!(Ipv4Packet::new_checked(&bytes[..]), Err(Error::Malformed));
        bytes[0] = 0x46; // IHL 6: header fills the whole 24 bytes
        assert!(Ipv4Packet::new_checked(&bytes[..])
            .unwrap()
            .payload()
            .is_empty());
        bytes[0] = 0x47; // IHL 7: a 28-byte header, past the buffer
        assert_eq!(Ipv4Packet::new_checked(&bytes[..]), Err(Error::Truncated));
        let mut bytes = PACKET_BYTES;
        bytes[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Ipv4Packet::new_checked(&bytes[..]), Err(Error::Malformed));
        // A checked view whose length fields are then corrupted still never panics.
        let mut packet = Ipv4Packet::new_checked(PACKET_BYTES).unwrap();
        packet.set_header_len(60);
        packet.set_total_len(9000);
        assert!(packet.payload().is_empty() && packet.payload_mut().is_empty());
    }

    #[test]
    fn options() {
        let mut bytes = [0u8; 28];
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.set_header_len(24);
        packet.set_total_len(28);
        packet.fill_checksum();
        let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.options(), &[0; 4]);
        assert_eq!(packet.payload().len(), 4);
        assert!(packet.verify_checksum());
    }

    //= https://www.rfc-editor.org/rfc/rfc1624#section-1
    //# Incremental checksum update is useful in speeding up several
    //# types of operations routinely performed on IP packets, such as
    //# TTL update
    #[test]
    fn decrement_ttl() {
        let mut bytes = PACKET_BYTES;
        let mut packet = Ipv4Packet::new_unchecked(&mut bytes[..]);
        for expected in (0..64).rev() {
            assert_eq!(packet.decrement_ttl(), expected);
            assert!(packet.verify_checksum());
            let incremental = packet.checksum();
            packet.fill_checksum();
            assert_eq!(packet.checksum(), incremental);
        }
        assert_eq!(packet.decrement_ttl(), 0);
        assert_eq!(packet.ttl(), 0);
    }

    #[test]
    fn protocol_round_trip() {
        for raw in 0..=255u8 {
            assert_eq!(u8::from(IpProtocol::from(raw)), raw);
        }
        assert_eq!(IpProtocol::from(253), IpProtocol::Unknown(253));
        assert_eq!(IpProtocol::Unknown(253).to_string(), "253");
        assert_eq!(IpProtocol::Sctp.to_string(), "SCTP");
    }

    #[test]
    fn cidr() {
        let cidr: Ipv4Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(cidr.address(), Ipv4Addr::new(10, 1, 2, 3));
        assert_eq!(cidr.prefix_len(), 8);
        assert_eq!(cidr.netmask(), Ipv4Addr::new(255, 0, 0, 0));
        assert_eq!(
            cidr.network(),
            Ipv4Cidr::new(Ipv4Addr::new(10, 0, 0, 0), 8).unwrap()
        );
        assert_eq!(cidr.network().to_string(), "10.0.0.0/8");
        assert!(cidr.contains(Ipv4Addr::new(10, 255, 0, 1)));
        assert!(!cidr.contains(Ipv4Addr::new(11, 0, 0, 0)));
        let any: Ipv4Cidr = "0.0.0.0/0".parse().unwrap();
        assert_eq!(any.netmask(), Ipv4Addr::UNSPECIFIED);
        assert!(any.contains(Ipv4Addr::BROADCAST));
        let host: Ipv4Cidr = "192.0.2.7/32".parse().unwrap();
        assert!(host.contains(Ipv4Addr::new(192, 0, 2, 7)));
        assert!(!host.contains(Ipv4Addr::new(192, 0, 2, 6)));
        assert_eq!(
            Ipv4Cidr::new(Ipv4Addr::LOCALHOST, 33),
            Err(Error::Malformed)
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "/8",
            "10.0.0.0/8/8",
            "10.0.0.0/008",
        ] {
            assert_eq!(bad.parse::<Ipv4Cidr>(), Err(Error::Malformed), "{bad}");
        }
    }

    fn etherparse_udp(src: [u8; 4], dst: [u8; 4], ttl: u8, payload: &[u8]) -> Vec<u8> {
        let builder = etherparse::PacketBuilder::ipv4(src, dst, ttl).udp(1000, 2000);
        let mut bytes = Vec::with_capacity(builder.size(payload.len()));
        builder.write(&mut bytes, payload).unwrap();
        bytes
    }

    proptest! {
        #[test]
        fn etherparse_builds_we_parse(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in any::<u8>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let bytes = etherparse_udp(src, dst, ttl, &payload);
            let (theirs, _) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
            let packet = Ipv4Packet::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(packet.version(), 4);
            prop_assert!(packet.verify_checksum());
            prop_assert_eq!(packet.checksum(), theirs.header_checksum);
            prop_assert_eq!(packet.total_len(), theirs.total_len);
            prop_assert_eq!(packet.ident(), theirs.identification);
            prop_assert_eq!(packet.dont_frag(), theirs.dont_fragment);
            prop_assert_eq!(packet.protocol_raw(), theirs.protocol.0);
            prop_assert_eq!(packet.payload().len(), 8 + payload.len());
            prop_assert_eq!(
                Ipv4Repr::parse(&packet).unwrap(),
                Ipv4Repr {
                    src_addr: src.into(), dst_addr: dst.into(), protocol: IpProtocol::Udp,
                    payload_len: 8 + payload.len(), ttl,
                }
            );
        }

        #[test]
        fn we_build_etherparse_parses(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in any::<u8>(),
            protocol in any::<u8>(), payload_len in 0usize..100,
        ) {
            let repr = Ipv4Repr {
                src_addr: src.into(), dst_addr: dst.into(), protocol: protocol.into(), payload_len, ttl,
            };
            let mut bytes = vec![0u8; repr.buffer_len() + payload_len];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
            let (theirs, rest) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
            prop_assert_eq!(theirs.source, src);
            prop_assert_eq!(theirs.destination, dst);
            prop_assert_eq!(theirs.time_to_live, ttl);
            prop_assert_eq!(theirs.protocol.0, protocol);
            prop_assert_eq!(rest.len(), payload_len);
            prop_assert_eq!(theirs.calc_header_checksum(), theirs.header_checksum);
        }

        #[test]
        fn decrement_ttl_matches_etherparse(src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in 1u8..=255) {
            let mut bytes = etherparse_udp(src, dst, ttl, b"x");
            Ipv4Packet::new_checked(&mut bytes[..]).unwrap().decrement_ttl();
            let (mut theirs, _) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
            prop_assert_eq!(theirs.time_to_live, ttl - 1);
            let ours = theirs.header_checksum;
            theirs.header_checksum = 0;
            prop_assert_eq!(theirs.calc_header_checksum(), ours);
        }

        #[test]
        fn repr_round_trip(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), ttl in any::<u8>(),
            protocol in any::<u8>(), payload_len in 0usize..1500,
        ) {
            let repr = Ipv4Repr {
                src_addr: src.into(), dst_addr: dst.into(), protocol: protocol.into(), payload_len, ttl,
            };
            let mut bytes = vec![0u8; repr.buffer_len() + payload_len];
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(Ipv4Repr::parse(&Ipv4Packet::new_checked(&bytes[..]).unwrap()), Ok(repr));
        }

        #[test]
        fn cidr_contains_matches_mask(addr in any::<u32>(), net in any::<u32>(), len in 0u8..=32) {
            let cidr = Ipv4Cidr::new(net.into(), len).unwrap();
            let naive = len == 0 || (addr >> (32 - u32::from(len))) == (net >> (32 - u32::from(len)));
            prop_assert_eq!(cidr.contains(addr.into()), naive);
            prop_assert_eq!(cidr.to_string().parse::<Ipv4Cidr>(), Ok(cidr));
        }
    }
}
