//! Ethernet II frames.

use core::fmt;

use super::{get_u16, set_u16, Error, Result};

/// A 48-bit Ethernet (MAC) address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EthernetAddress(pub [u8; 6]);

impl EthernetAddress {
    /// The broadcast address `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: EthernetAddress = EthernetAddress([0xff; 6]);

    /// The six address bytes.
    pub const fn as_bytes(&self) -> &[u8; 6] {
        &self.0
    }

    /// Whether this is the broadcast address.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }

    /// Whether the group bit is set (broadcast included).
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 0x01 != 0
    }

    /// Whether the group bit is clear.
    pub const fn is_unicast(&self) -> bool {
        !self.is_multicast()
    }
}

impl From<[u8; 6]> for EthernetAddress {
    fn from(bytes: [u8; 6]) -> Self {
        EthernetAddress(bytes)
    }
}

impl fmt::Display for EthernetAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

enum_with_unknown! {
    /// The EtherType field of an Ethernet II frame.
    pub enum EtherType(u16) {
        /// IPv4 (0x0800).
        Ipv4 = 0x0800,
        /// ARP (0x0806).
        Arp = 0x0806,
        /// IPv6 (0x86dd).
        Ipv6 = 0x86dd,
        /// An 802.1Q VLAN tag follows (0x8100).
        Vlan = 0x8100,
    }
}

impl fmt::Display for EtherType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EtherType::Ipv4 => f.write_str("IPv4"),
            EtherType::Arp => f.write_str("ARP"),
            EtherType::Ipv6 => f.write_str("IPv6"),
            EtherType::Vlan => f.write_str("802.1Q"),
            EtherType::Unknown(raw) => write!(f, "0x{raw:04x}"),
        }
    }
}

mod field {
    pub const DST: usize = 0;
    pub const SRC: usize = 6;
    pub const ETHERTYPE: usize = 12;
    pub const PAYLOAD: usize = 14;
}

/// A view of an Ethernet II frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetFrame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Length of the Ethernet II header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        EthernetFrame { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let frame = Self::new_unchecked(buffer);
        frame.check_len()?;
        Ok(frame)
    }

    /// Fails with `Truncated` if the buffer cannot hold the header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < Self::HEADER_LEN {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Destination address.
    pub fn dst_addr(&self) -> EthernetAddress {
        EthernetAddress(read_addr(self.buffer.as_ref(), field::DST))
    }

    /// Source address.
    pub fn src_addr(&self) -> EthernetAddress {
        EthernetAddress(read_addr(self.buffer.as_ref(), field::SRC))
    }

    /// EtherType.
    pub fn ethertype(&self) -> EtherType {
        get_u16(self.buffer.as_ref(), field::ETHERTYPE).into()
    }

    /// Everything after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EthernetFrame<T> {
    /// Sets the destination address.
    pub fn set_dst_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::DST..field::DST + 6].copy_from_slice(&addr.0);
    }

    /// Sets the source address.
    pub fn set_src_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SRC..field::SRC + 6].copy_from_slice(&addr.0);
    }

    /// Sets the EtherType.
    pub fn set_ethertype(&mut self, ethertype: EtherType) {
        set_u16(self.buffer.as_mut(), field::ETHERTYPE, ethertype.into());
    }

    /// Everything after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

fn read_addr(data: &[u8], at: usize) -> [u8; 6] {
    [
        data[at],
        data[at + 1],
        data[at + 2],
        data[at + 3],
        data[at + 4],
        data[at + 5],
    ]
}

impl<T: AsRef<[u8]>> fmt::Display for EthernetFrame<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(
                f,
                "Ethernet {} > {} type {}",
                self.src_addr(),
                self.dst_addr(),
                self.ethertype()
            ),
            Err(e) => write!(f, "Ethernet ({e})"),
        }
    }
}

/// The typed form of an Ethernet II header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EthernetRepr {
    /// Source address.
    pub src_addr: EthernetAddress,
    /// Destination address.
    pub dst_addr: EthernetAddress,
    /// EtherType of the payload.
    pub ethertype: EtherType,
}

impl EthernetRepr {
    /// Reads the header of a frame (checking its length first).
    pub fn parse<T: AsRef<[u8]>>(frame: &EthernetFrame<T>) -> Result<Self> {
        frame.check_len()?;
        Ok(EthernetRepr {
            src_addr: frame.src_addr(),
            dst_addr: frame.dst_addr(),
            ethertype: frame.ethertype(),
        })
    }

    /// Number of header bytes [`emit`](Self::emit) writes.
    pub const fn buffer_len(&self) -> usize {
        field::PAYLOAD
    }

    /// Writes the header into `frame`, which must hold at least `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, frame: &mut EthernetFrame<T>) {
        frame.set_dst_addr(self.dst_addr);
        frame.set_src_addr(self.src_addr);
        frame.set_ethertype(self.ethertype);
    }
}

impl fmt::Display for EthernetRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Ethernet {} > {} type {}",
            self.src_addr, self.dst_addr, self.ethertype
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;

    static FRAME_BYTES: [u8; 18] = hex!("020000000002 020000000001 0800 aabbccdd");
    static PAYLOAD_BYTES: [u8; 4] = hex!("aabbccdd");

    fn repr() -> EthernetRepr {
        EthernetRepr {
            src_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            dst_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            ethertype: EtherType::Ipv4,
        }
    }

    #[test]
    fn deconstruct() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(frame.dst_addr(), EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(frame.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(
            frame.to_string(),
            "Ethernet 02:00:00:00:00:01 > 02:00:00:00:00:02 type IPv4"
        );
        assert_eq!(frame.into_inner(), &FRAME_BYTES[..]);
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 18];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        frame.set_dst_addr(EthernetAddress([2, 0, 0, 0, 0, 2]));
        frame.set_src_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        frame.set_ethertype(EtherType::Ipv4);
        frame.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, FRAME_BYTES);
    }

    #[test]
    fn parse() {
        let frame = EthernetFrame::new_checked(&FRAME_BYTES[..]).unwrap();
        assert_eq!(EthernetRepr::parse(&frame), Ok(repr()));
    }

    #[test]
    fn emit() {
        let mut bytes = [0u8; 18];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        repr().emit(&mut frame);
        frame.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, FRAME_BYTES);
        assert_eq!(repr().buffer_len(), EthernetFrame::<&[u8]>::HEADER_LEN);
    }

    #[test]
    fn overlong() {
        let mut bytes = FRAME_BYTES.to_vec();
        bytes.extend_from_slice(&[0; 46]);
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.payload().len(), 4 + 46);
    }

    #[test]
    fn truncated() {
        for len in 0..14 {
            assert_eq!(
                EthernetFrame::new_checked(&FRAME_BYTES[..len]),
                Err(Error::Truncated)
            );
        }
        assert_eq!(
            EthernetFrame::new_unchecked(&FRAME_BYTES[..13]).to_string(),
            "Ethernet (truncated packet)"
        );
        assert!(EthernetFrame::new_checked(&FRAME_BYTES[..14])
            .unwrap()
            .payload()
            .is_empty());
    }

    #[test]
    fn address_kinds() {
        assert!(EthernetAddress::BROADCAST.is_broadcast());
        assert!(EthernetAddress::BROADCAST.is_multicast());
        assert!(EthernetAddress([0x01, 0, 0x5e, 0, 0, 1]).is_multicast());
        assert!(EthernetAddress([2, 0, 0, 0, 0, 1]).is_unicast());
        assert!(!EthernetAddress([2, 0, 0, 0, 0, 1]).is_broadcast());
        assert_eq!(EthernetAddress::BROADCAST.to_string(), "ff:ff:ff:ff:ff:ff");
    }

    #[test]
    fn ethertype_round_trip() {
        for raw in [0x0800u16, 0x0806, 0x86dd, 0x8100, 0x88cc] {
            assert_eq!(u16::from(EtherType::from(raw)), raw);
        }
        assert_eq!(EtherType::from(0x88cc), EtherType::Unknown(0x88cc));
        assert_eq!(EtherType::Unknown(0x88cc).to_string(), "0x88cc");
        assert_eq!(EtherType::Vlan.to_string(), "802.1Q");
    }

    #[test]
    fn etherparse_builds_we_parse() {
        let builder = etherparse::PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [0xff; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .udp(1, 2);
        let mut bytes = Vec::new();
        builder.write(&mut bytes, b"hi").unwrap();
        let frame = EthernetFrame::new_checked(&bytes[..]).unwrap();
        assert_eq!(frame.src_addr(), EthernetAddress([2, 0, 0, 0, 0, 1]));
        assert_eq!(frame.dst_addr(), EthernetAddress::BROADCAST);
        assert_eq!(frame.ethertype(), EtherType::Ipv4);
        assert_eq!(frame.payload().len(), 20 + 8 + 2);
    }

    #[test]
    fn we_build_etherparse_parses() {
        let mut bytes = [0u8; 18];
        let mut frame = EthernetFrame::new_unchecked(&mut bytes[..]);
        EthernetRepr {
            ethertype: EtherType::Arp,
            ..repr()
        }
        .emit(&mut frame);
        let (hdr, rest) = etherparse::Ethernet2Header::from_slice(&bytes).unwrap();
        assert_eq!(hdr.source, [2, 0, 0, 0, 0, 1]);
        assert_eq!(hdr.destination, [2, 0, 0, 0, 0, 2]);
        assert_eq!(hdr.ether_type, etherparse::EtherType::ARP);
        assert_eq!(rest.len(), 4);
    }
}
