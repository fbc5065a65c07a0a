//! ARP for IPv4 over Ethernet (RFC 826).

use core::fmt;
use std::net::Ipv4Addr;

use super::{get_u16, get_u32, set_u16, set_u32, Error, EtherType, EthernetAddress, Result};

enum_with_unknown! {
    /// The ARP operation code.
    pub enum ArpOperation(u16) {
        /// Who has this protocol address?
        Request = 1,
        /// This protocol address is at this hardware address.
        Reply = 2,
    }
}

/// ARP hardware type for Ethernet.
const HTYPE_ETHERNET: u16 = 1;

mod field {
    pub const HTYPE: usize = 0;
    pub const PTYPE: usize = 2;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: usize = 6;
    pub const SHA: usize = 8;
    pub const SPA: usize = 14;
    pub const THA: usize = 18;
    pub const TPA: usize = 24;
    pub const END: usize = 28;
}

/// A view of an ARP packet with Ethernet hardware and IPv4 protocol addresses.
///
/// The address accessors use the fixed Ethernet/IPv4 offsets; [`ArpRepr::parse`] rejects
/// packets whose length fields say otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> ArpPacket<T> {
    /// Length of an Ethernet/IPv4 ARP packet.
    pub const HEADER_LEN: usize = field::END;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        ArpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Fails with `Truncated` if the buffer is shorter than 28 bytes.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::END {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Hardware type (1 for Ethernet).
    pub fn hardware_type(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::HTYPE)
    }

    /// Protocol type (IPv4 for us).
    pub fn protocol_type(&self) -> EtherType {
        get_u16(self.buffer.as_ref(), field::PTYPE).into()
    }

    /// Hardware address length (6 for Ethernet).
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }

    /// Protocol address length (4 for IPv4).
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }

    /// Operation code.
    pub fn operation(&self) -> ArpOperation {
        get_u16(self.buffer.as_ref(), field::OPER).into()
    }

    /// Sender hardware address.
    pub fn source_hardware_addr(&self) -> EthernetAddress {
        mac_at(self.buffer.as_ref(), field::SHA)
    }

    /// Sender protocol address.
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        get_u32(self.buffer.as_ref(), field::SPA).into()
    }

    /// Target hardware address.
    pub fn target_hardware_addr(&self) -> EthernetAddress {
        mac_at(self.buffer.as_ref(), field::THA)
    }

    /// Target protocol address.
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        get_u32(self.buffer.as_ref(), field::TPA).into()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> ArpPacket<T> {
    /// Sets the hardware type.
    pub fn set_hardware_type(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::HTYPE, value);
    }

    /// Sets the protocol type.
    pub fn set_protocol_type(&mut self, value: EtherType) {
        set_u16(self.buffer.as_mut(), field::PTYPE, value.into());
    }

    /// Sets the hardware address length.
    pub fn set_hardware_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::HLEN] = value;
    }

    /// Sets the protocol address length.
    pub fn set_protocol_len(&mut self, value: u8) {
        self.buffer.as_mut()[field::PLEN] = value;
    }

    /// Sets the operation code.
    pub fn set_operation(&mut self, value: ArpOperation) {
        set_u16(self.buffer.as_mut(), field::OPER, value.into());
    }

    /// Sets the sender hardware address.
    pub fn set_source_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::SHA..field::SPA].copy_from_slice(&addr.0);
    }

    /// Sets the sender protocol address.
    pub fn set_source_protocol_addr(&mut self, addr: Ipv4Addr) {
        set_u32(self.buffer.as_mut(), field::SPA, addr.into());
    }

    /// Sets the target hardware address.
    pub fn set_target_hardware_addr(&mut self, addr: EthernetAddress) {
        self.buffer.as_mut()[field::THA..field::TPA].copy_from_slice(&addr.0);
    }

    /// Sets the target protocol address.
    pub fn set_target_protocol_addr(&mut self, addr: Ipv4Addr) {
        set_u32(self.buffer.as_mut(), field::TPA, addr.into());
    }
}

fn mac_at(data: &[u8], at: usize) -> EthernetAddress {
    EthernetAddress([
        data[at],
        data[at + 1],
        data[at + 2],
        data[at + 3],
        data[at + 4],
        data[at + 5],
    ])
}

/// Writes the tcpdump-style line shared by the packet and the repr.
fn fmt_arp(
    f: &mut fmt::Formatter<'_>,
    op: ArpOperation,
    sha: EthernetAddress,
    spa: Ipv4Addr,
    tpa: Ipv4Addr,
) -> fmt::Result {
    match op {
        ArpOperation::Request => write!(f, "ARP who-has {tpa} tell {spa}"),
        ArpOperation::Reply => write!(f, "ARP reply {spa} is-at {sha}"),
        ArpOperation::Unknown(op) => write!(f, "ARP op {op} {spa} > {tpa}"),
    }
}

impl<T: AsRef<[u8]>> fmt::Display for ArpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "ARP ({e})");
        }
        let (sha, spa) = (self.source_hardware_addr(), self.source_protocol_addr());
        fmt_arp(f, self.operation(), sha, spa, self.target_protocol_addr())
    }
}

/// The typed form of an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArpRepr {
    /// ARP for IPv4 addresses over Ethernet.
    EthernetIpv4 {
        /// Operation code.
        operation: ArpOperation,
        /// Sender hardware address.
        source_hardware_addr: EthernetAddress,
        /// Sender protocol address.
        source_protocol_addr: Ipv4Addr,
        /// Target hardware address.
        target_hardware_addr: EthernetAddress,
        /// Target protocol address.
        target_protocol_addr: Ipv4Addr,
    },
}

impl ArpRepr {
    /// Reads an Ethernet/IPv4 ARP packet; `Malformed` for any other hardware or protocol.
    pub fn parse<T: AsRef<[u8]>>(packet: &ArpPacket<T>) -> Result<Self> {
        packet.check_len()?;
        if packet.hardware_type() != HTYPE_ETHERNET
            || packet.protocol_type() != EtherType::Ipv4
            || packet.hardware_len() != 6
            || packet.protocol_len() != 4
        {
            return Err(Error::Malformed);
        }
        Ok(ArpRepr::EthernetIpv4 {
            operation: packet.operation(),
            source_hardware_addr: packet.source_hardware_addr(),
            source_protocol_addr: packet.source_protocol_addr(),
            target_hardware_addr: packet.target_hardware_addr(),
            target_protocol_addr: packet.target_protocol_addr(),
        })
    }

    /// Number of bytes [`emit`](Self::emit) writes (28).
    pub const fn buffer_len(&self) -> usize {
        field::END
    }

    /// Writes the packet into `packet`, which must hold at least `buffer_len()` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut ArpPacket<T>) {
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_hardware_addr,
            target_protocol_addr,
        } = *self;
        packet.set_hardware_type(HTYPE_ETHERNET);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(operation);
        packet.set_source_hardware_addr(source_hardware_addr);
        packet.set_source_protocol_addr(source_protocol_addr);
        packet.set_target_hardware_addr(target_hardware_addr);
        packet.set_target_protocol_addr(target_protocol_addr);
    }
}

impl fmt::Display for ArpRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        } = *self;
        fmt_arp(
            f,
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;

    static PACKET_BYTES: [u8; 28] = hex!(
        "0001 0800 06 04 0001"
        "020000000001 0a000001"
        "000000000000 0a000002"
    );

    fn repr() -> ArpRepr {
        ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
        }
    }

    #[test]
    fn deconstruct() {
        let packet = ArpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.hardware_type(), 1);
        assert_eq!(packet.protocol_type(), EtherType::Ipv4);
        assert_eq!(packet.hardware_len(), 6);
        assert_eq!(packet.protocol_len(), 4);
        assert_eq!(packet.operation(), ArpOperation::Request);
        assert_eq!(
            packet.source_hardware_addr(),
            EthernetAddress([2, 0, 0, 0, 0, 1])
        );
        assert_eq!(packet.source_protocol_addr(), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(packet.target_hardware_addr(), EthernetAddress([0; 6]));
        assert_eq!(packet.target_protocol_addr(), Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(packet.to_string(), "ARP who-has 10.0.0.2 tell 10.0.0.1");
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 28];
        let mut packet = ArpPacket::new_unchecked(&mut bytes[..]);
        packet.set_hardware_type(1);
        packet.set_protocol_type(EtherType::Ipv4);
        packet.set_hardware_len(6);
        packet.set_protocol_len(4);
        packet.set_operation(ArpOperation::Request);
        packet.set_source_hardware_addr(EthernetAddress([2, 0, 0, 0, 0, 1]));
        packet.set_source_protocol_addr(Ipv4Addr::new(10, 0, 0, 1));
        packet.set_target_hardware_addr(EthernetAddress([0; 6]));
        packet.set_target_protocol_addr(Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn parse() {
        let packet = ArpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(ArpRepr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn parse_rejects_other_address_kinds() {
        for (at, value) in [(1, 6u8), (2, 0x86), (4, 8), (5, 16)] {
            let mut bytes = PACKET_BYTES;
            bytes[at] = value;
            let packet = ArpPacket::new_checked(&bytes[..]).unwrap();
            assert_eq!(ArpRepr::parse(&packet), Err(Error::Malformed));
        }
    }

    #[test]
    fn emit() {
        let mut bytes = [0u8; 28];
        repr().emit(&mut ArpPacket::new_unchecked(&mut bytes[..]));
        assert_eq!(bytes, PACKET_BYTES);
        assert_eq!(repr().buffer_len(), 28);
    }

    #[test]
    fn reply_display() {
        let reply = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Reply,
            source_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 2]),
            source_protocol_addr: Ipv4Addr::new(10, 0, 0, 2),
            target_hardware_addr: EthernetAddress([2, 0, 0, 0, 0, 1]),
            target_protocol_addr: Ipv4Addr::new(10, 0, 0, 1),
        };
        assert_eq!(
            reply.to_string(),
            "ARP reply 10.0.0.2 is-at 02:00:00:00:00:02"
        );
        assert_eq!(repr().to_string(), "ARP who-has 10.0.0.2 tell 10.0.0.1");
    }

    #[test]
    fn overlong() {
        let mut bytes = PACKET_BYTES.to_vec();
        bytes.extend_from_slice(&[0; 18]); // Ethernet minimum-frame padding.
        let packet = ArpPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(ArpRepr::parse(&packet), Ok(repr()));
    }

    #[test]
    fn truncated() {
        for len in 0..28 {
            let packet = ArpPacket::new_unchecked(&PACKET_BYTES[..len]);
            assert_eq!(packet.check_len(), Err(Error::Truncated));
            assert_eq!(ArpRepr::parse(&packet), Err(Error::Truncated));
        }
    }
}
