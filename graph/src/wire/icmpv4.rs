//! ICMPv4 messages (RFC 792), with the next-hop MTU of RFC 1191.

use core::fmt;

use super::{checksum, get_u16, set_u16, Error, Result};

enum_with_unknown! {
    /// The ICMPv4 message type.
    pub enum Icmpv4Message(u8) {
        /// Echo reply (0).
        EchoReply = 0,
        /// Destination unreachable (3).
        DstUnreachable = 3,
        /// Redirect (5).
        Redirect = 5,
        /// Echo request (8).
        EchoRequest = 8,
        /// Time exceeded (11).
        TimeExceeded = 11,
        /// Parameter problem (12).
        ParamProblem = 12,
    }
}

impl fmt::Display for Icmpv4Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Icmpv4Message::EchoReply => f.write_str("echo reply"),
            Icmpv4Message::DstUnreachable => f.write_str("unreachable"),
            Icmpv4Message::Redirect => f.write_str("redirect"),
            Icmpv4Message::EchoRequest => f.write_str("echo request"),
            Icmpv4Message::TimeExceeded => f.write_str("time exceeded"),
            Icmpv4Message::ParamProblem => f.write_str("parameter problem"),
            Icmpv4Message::Unknown(raw) => write!(f, "type {raw}"),
        }
    }
}

mod field {
    pub const TYPE: usize = 0;
    pub const CODE: usize = 1;
    pub const CHECKSUM: usize = 2;
    pub const ECHO_IDENT: usize = 4;
    pub const ECHO_SEQNO: usize = 6;
    pub const MTU: usize = 6;
    pub const DATA: usize = 8;
}

/// Code of a destination-unreachable message meaning "fragmentation needed and DF set".
const CODE_FRAG_NEEDED: u8 = 4;

/// A view of an ICMPv4 message: the 8-byte header and the data after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Icmpv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Icmpv4Packet<T> {
    /// Length of the header (type, code, checksum and the 4-byte rest-of-header).
    pub const HEADER_LEN: usize = field::DATA;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        Icmpv4Packet { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Fails with `Truncated` if the buffer cannot hold the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::DATA {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Message type.
    pub fn msg_type(&self) -> Icmpv4Message {
        self.buffer.as_ref()[field::TYPE].into()
    }

    /// Message code.
    pub fn msg_code(&self) -> u8 {
        self.buffer.as_ref()[field::CODE]
    }

    /// Checksum.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Echo identifier (echo request/reply).
    pub fn echo_ident(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_IDENT)
    }

    /// Echo sequence number (echo request/reply).
    pub fn echo_seq_no(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::ECHO_SEQNO)
    }

    /// Next-hop MTU of a "fragmentation needed" message (RFC 1191).
    pub fn next_hop_mtu(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::MTU)
    }

    /// Data after the 8-byte header (for errors: the offending IPv4 header and more).
    pub fn data(&self) -> &[u8] {
        &self.buffer.as_ref()[field::DATA..]
    }

    /// Whether the checksum over the whole buffer is valid.
    pub fn verify_checksum(&self) -> bool {
        checksum::data(self.buffer.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Icmpv4Packet<T> {
    /// Sets the message type.
    pub fn set_msg_type(&mut self, value: Icmpv4Message) {
        self.buffer.as_mut()[field::TYPE] = value.into();
    }

    /// Sets the message code.
    pub fn set_msg_code(&mut self, value: u8) {
        self.buffer.as_mut()[field::CODE] = value;
    }

    /// Sets the checksum.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the echo identifier.
    pub fn set_echo_ident(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_IDENT, value);
    }

    /// Sets the echo sequence number.
    pub fn set_echo_seq_no(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_SEQNO, value);
    }

    /// Sets the next-hop MTU and clears the unused word before it (RFC 1191).
    pub fn set_next_hop_mtu(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::ECHO_IDENT, 0);
        set_u16(self.buffer.as_mut(), field::MTU, value);
    }

    /// Data after the header, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::DATA..]
    }

    /// Computes the checksum over the whole buffer and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let value = checksum::data(self.buffer.as_ref());
        self.set_checksum(value);
    }
}

impl<T: AsRef<[u8]>> fmt::Display for Icmpv4Packet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "ICMP ({e})");
        }
        let (ty, code) = (self.msg_type(), self.msg_code());
        match ty {
            Icmpv4Message::EchoRequest | Icmpv4Message::EchoReply => write!(
                f,
                "ICMP {ty} id {} seq {}",
                self.echo_ident(),
                self.echo_seq_no()
            )?,
            Icmpv4Message::DstUnreachable if code == CODE_FRAG_NEEDED => {
                write!(f, "ICMP {ty} code {code} mtu {}", self.next_hop_mtu())?
            }
            _ => write!(f, "ICMP {ty} code {code}")?,
        }
        write!(f, " len {}", self.data().len())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;

    static PACKET_BYTES: [u8; 12] = hex!("08 00 c264 1234 abcd aabbccdd");
    static DATA_BYTES: [u8; 4] = hex!("aabbccdd");

    #[test]
    fn deconstruct() {
        let packet = Icmpv4Packet::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!(packet.msg_code(), 0);
        assert_eq!(packet.checksum(), 0xc264);
        assert_eq!(packet.echo_ident(), 0x1234);
        assert_eq!(packet.echo_seq_no(), 0xabcd);
        assert_eq!(packet.data(), &DATA_BYTES[..]);
        assert!(packet.verify_checksum());
        assert_eq!(
            packet.to_string(),
            "ICMP echo request id 4660 seq 43981 len 4"
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Icmpv4Message::EchoRequest);
        packet.set_msg_code(0);
        packet.set_echo_ident(0x1234);
        packet.set_echo_seq_no(0xabcd);
        packet.data_mut().copy_from_slice(&DATA_BYTES);
        packet.fill_checksum();
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn frag_needed() {
        let mut bytes = [0xa5u8; 8 + 28];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Icmpv4Message::DstUnreachable);
        packet.set_msg_code(CODE_FRAG_NEEDED);
        packet.set_next_hop_mtu(1400);
        packet.fill_checksum();
        assert_eq!(&bytes[4..8], &[0, 0, 0x05, 0x78]);
        let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.next_hop_mtu(), 1400);
        assert!(packet.verify_checksum());
        assert_eq!(
            packet.to_string(),
            "ICMP unreachable code 4 mtu 1400 len 28"
        );
        let (theirs, _) = etherparse::Icmpv4Header::from_slice(&bytes).unwrap();
        use etherparse::icmpv4::DestUnreachableHeader::FragmentationNeeded;
        assert_eq!(
            theirs.icmp_type,
            etherparse::Icmpv4Type::DestinationUnreachable(FragmentationNeeded {
                next_hop_mtu: 1400
            })
        );
    }

    #[test]
    fn overlong() {
        // An ICMP view covers exactly the IPv4 payload; extra bytes are data.
        let mut bytes = PACKET_BYTES.to_vec();
        bytes.extend_from_slice(&[0; 4]);
        let packet = Icmpv4Packet::new_checked(&bytes[..]).unwrap();
        assert_eq!(packet.data().len(), 8);
        assert!(packet.verify_checksum()); // Zero bytes do not change the sum.
    }

    #[test]
    fn truncated() {
        for len in 0..8 {
            assert_eq!(
                Icmpv4Packet::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated)
            );
        }
        assert!(Icmpv4Packet::new_checked(&PACKET_BYTES[..8])
            .unwrap()
            .data()
            .is_empty());
        assert_eq!(
            Icmpv4Packet::new_unchecked(&PACKET_BYTES[..3]).to_string(),
            "ICMP (truncated packet)"
        );
    }

    #[test]
    fn message_round_trip() {
        for raw in 0..=255u8 {
            assert_eq!(u8::from(Icmpv4Message::from(raw)), raw);
        }
        assert_eq!(Icmpv4Message::from(13).to_string(), "type 13");
    }

    #[test]
    fn etherparse_builds_we_parse() {
        let builder = etherparse::PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .icmpv4_echo_request(7, 9);
        let mut bytes = Vec::new();
        builder.write(&mut bytes, b"hello").unwrap();
        let (ip, rest) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
        let (theirs, _) = etherparse::Icmpv4Header::from_slice(rest).unwrap();
        assert_eq!(ip.protocol, etherparse::IpNumber::ICMP);
        let packet = Icmpv4Packet::new_checked(rest).unwrap();
        assert_eq!(packet.msg_type(), Icmpv4Message::EchoRequest);
        assert_eq!((packet.echo_ident(), packet.echo_seq_no()), (7, 9));
        assert_eq!(packet.checksum(), theirs.checksum);
        assert!(packet.verify_checksum());
        assert_eq!(packet.data(), b"hello");
    }

    #[test]
    fn we_build_etherparse_parses() {
        let mut bytes = [0u8; 8 + 5];
        let mut packet = Icmpv4Packet::new_unchecked(&mut bytes[..]);
        packet.set_msg_type(Icmpv4Message::EchoReply);
        packet.set_echo_ident(7);
        packet.set_echo_seq_no(9);
        packet.data_mut().copy_from_slice(b"hello");
        packet.fill_checksum();
        let (theirs, data) = etherparse::Icmpv4Header::from_slice(&bytes).unwrap();
        let echo = etherparse::IcmpEchoHeader { id: 7, seq: 9 };
        assert_eq!(theirs.icmp_type, etherparse::Icmpv4Type::EchoReply(echo));
        assert_eq!(theirs.checksum, theirs.icmp_type.calc_checksum(data));
        assert_eq!(data, b"hello");
    }
}
