//! UDP datagrams (RFC 768).

use core::fmt;
use std::net::Ipv4Addr;

use super::{checksum, get_u16, set_u16, Error, IpProtocol, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const LENGTH: usize = 4;
    pub const CHECKSUM: usize = 6;
    pub const PAYLOAD: usize = 8;
}

/// A view of a UDP datagram.
///
/// A checksum field of 0 means the sender computed none (IPv4 only); a NAT that patches the
/// checksum incrementally must leave such a datagram's checksum at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> UdpPacket<T> {
    /// Length of the UDP header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        UdpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is under 8 bytes or under the length field; `Malformed` if
    /// the length field is under 8.
    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < field::PAYLOAD {
            return Err(Error::Truncated);
        }
        let udp_len = usize::from(self.len());
        if udp_len < field::PAYLOAD {
            return Err(Error::Malformed);
        }
        if udp_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::SRC_PORT)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::DST_PORT)
    }

    /// Length field: header plus payload, in bytes.
    #[allow(clippy::len_without_is_empty, reason = "a header field, never empty")]
    pub fn len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::LENGTH)
    }

    /// Checksum (0: none was computed).
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Header and payload as the length field bounds them (clamped to the buffer).
    fn datagram(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[..usize::from(self.len()).min(data.len())]
    }

    /// Payload: from the header to the length field (clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        self.datagram().get(field::PAYLOAD..).unwrap_or(&[])
    }

    /// Whether the checksum is valid for this IPv4 source and destination (or absent).
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let datagram = self.datagram();
        let pseudo =
            checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), datagram.len() as u32);
        checksum::fold(pseudo + checksum::sum(datagram)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the length field.
    pub fn set_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::LENGTH, value);
    }

    /// Sets the checksum.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Payload, mutably (same bounds as [`payload`](Self::payload)).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        let data = self.buffer.as_mut();
        let end = len.min(data.len());
        &mut data[field::PAYLOAD.min(end)..end]
    }

    /// Computes the checksum with the IPv4 pseudo header; a computed 0 is sent as 0xffff.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let datagram = self.datagram();
        let pseudo =
            checksum::pseudo_header_v4(src, dst, IpProtocol::Udp.into(), datagram.len() as u32);
        let value = !checksum::fold(pseudo + checksum::sum(datagram));
        self.set_checksum(if value == 0 { 0xffff } else { value });
    }
}

impl<T: AsRef<[u8]>> fmt::Display for UdpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(
                f,
                "UDP {} > {} len {}",
                self.src_port(),
                self.dst_port(),
                self.len()
            ),
            Err(e) => write!(f, "UDP ({e})"),
        }
    }
}

/// The typed form of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UdpRepr {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Payload length in bytes.
    pub payload_len: usize,
}

impl UdpRepr {
    /// Reads a header (checking lengths first); the checksum needs the addresses, see
    /// [`UdpPacket::verify_checksum`].
    pub fn parse<T: AsRef<[u8]>>(packet: &UdpPacket<T>) -> Result<Self> {
        packet.check_len()?;
        Ok(UdpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            payload_len: packet.payload().len(),
        })
    }

    /// Number of header bytes [`emit`](Self::emit) writes (8).
    pub const fn buffer_len(&self) -> usize {
        field::PAYLOAD
    }

    /// Writes the header with a zero checksum; call `fill_checksum` once the payload is in.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut UdpPacket<T>) {
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_len((field::PAYLOAD + self.payload_len) as u16);
        packet.set_checksum(0);
    }
}

impl fmt::Display for UdpRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "UDP {} > {} len {}",
            self.src_port,
            self.dst_port,
            field::PAYLOAD + self.payload_len
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    static PACKET_BYTES: [u8; 12] = hex!("bf00 0035 000c 0000 aabbccdd");
    static PAYLOAD_BYTES: [u8; 4] = hex!("aabbccdd");

    fn repr() -> UdpRepr {
        UdpRepr {
            src_port: 48896,
            dst_port: 53,
            payload_len: 4,
        }
    }

    fn filled() -> [u8; 12] {
        let mut bytes = PACKET_BYTES;
        UdpPacket::new_unchecked(&mut bytes[..]).fill_checksum(SRC, DST);
        bytes
    }

    #[test]
    fn deconstruct() {
        let packet = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 48896);
        assert_eq!(packet.dst_port(), 53);
        assert_eq!(packet.len(), 12);
        assert_eq!(packet.checksum(), 0);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert!(packet.verify_checksum(SRC, DST)); // 0: no checksum
        assert_eq!(packet.to_string(), "UDP 48896 > 53 len 12");
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(48896);
        packet.set_dst_port(53);
        packet.set_len(12);
        packet.set_checksum(0);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn checksum() {
        let bytes = filled();
        let packet = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_ne!(packet.checksum(), 0);
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(SRC, Ipv4Addr::new(192, 168, 1, 3)));
    }

    #[test]
    fn computed_zero_is_sent_as_ffff() {
        // Pick a payload word that makes the ones-complement sum come out at 0xffff.
        let mut bytes = [0u8; 10];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        UdpRepr {
            src_port: 1,
            dst_port: 2,
            payload_len: 2,
        }
        .emit(&mut packet);
        packet.fill_checksum(SRC, DST);
        let fix = packet.checksum(); // the word that brings the sum to 0xffff
        packet.payload_mut().copy_from_slice(&fix.to_be_bytes());
        packet.fill_checksum(SRC, DST);
        assert_eq!(packet.checksum(), 0xffff);
        assert!(packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn parse() {
        let packet = UdpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(UdpRepr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn emit() {
        let mut bytes = [0u8; 12];
        let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
        assert_eq!(repr().buffer_len(), 8);
        assert_eq!(repr().to_string(), "UDP 48896 > 53 len 12");
    }

    #[test]
    fn overlong() {
        let mut bytes = filled().to_vec();
        bytes.extend_from_slice(&[0xff; 6]);
        let packet = UdpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert!(packet.verify_checksum(SRC, DST));
    }

    #[test]
    fn truncated() {
        for len in 0..12 {
            assert_eq!(
                UdpPacket::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated)
            );
        }
        let mut bytes = PACKET_BYTES;
        bytes[5] = 7;
        assert_eq!(UdpPacket::new_checked(&bytes[..]), Err(Error::Malformed));
        let mut packet = UdpPacket::new_checked(PACKET_BYTES).unwrap();
        packet.set_len(2);
        assert!(packet.payload().is_empty() && packet.payload_mut().is_empty());
    }

    proptest! {
        #[test]
        fn etherparse_builds_we_parse(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sport in any::<u16>(), dport in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let builder = etherparse::PacketBuilder::ipv4(src, dst, 64).udp(sport, dport);
            let mut bytes = Vec::new();
            builder.write(&mut bytes, &payload).unwrap();
            let (_, rest) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
            let (theirs, _) = etherparse::UdpHeader::from_slice(rest).unwrap();
            let packet = UdpPacket::new_checked(rest).unwrap();
            prop_assert_eq!(packet.src_port(), sport);
            prop_assert_eq!(packet.dst_port(), dport);
            prop_assert_eq!(packet.len(), theirs.length);
            prop_assert_eq!(packet.checksum(), theirs.checksum);
            prop_assert!(packet.verify_checksum(src.into(), dst.into()));
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn we_build_etherparse_parses(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sport in any::<u16>(), dport in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let repr = UdpRepr { src_port: sport, dst_port: dport, payload_len: payload.len() };
            let mut bytes = vec![0u8; repr.buffer_len() + payload.len()];
            let mut packet = UdpPacket::new_unchecked(&mut bytes[..]);
            repr.emit(&mut packet);
            packet.payload_mut().copy_from_slice(&payload);
            packet.fill_checksum(src.into(), dst.into());
            let (theirs, rest) = etherparse::UdpHeader::from_slice(&bytes).unwrap();
            prop_assert_eq!((theirs.source_port, theirs.destination_port), (sport, dport));
            prop_assert_eq!(usize::from(theirs.length), 8 + payload.len());
            prop_assert_eq!(theirs.calc_checksum_ipv4_raw(src, dst, rest).unwrap(), theirs.checksum);
            let packet = UdpPacket::new_checked(&bytes[..]).unwrap();
            prop_assert_eq!(UdpRepr::parse(&packet), Ok(repr));
        }
    }
}
