//! VXLAN headers (RFC 7348).

use core::fmt;

use super::{get_u32, set_u32, Error, Result};

//= https://www.rfc-editor.org/rfc/rfc7348#section-5
//# Destination Port: IANA has assigned the value 4789 for the
//# VXLAN UDP port, and this value SHOULD be used by default as the
//# destination UDP port.

/// The IANA-assigned VXLAN UDP destination port.
pub const VXLAN_PORT: u16 = 4789;

mod field {
    pub const FLAGS: usize = 0;
    pub const VNI: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// The I flag: the VNI is valid.
const FLAG_I: u8 = 0x08;

/// A view of a VXLAN header and the inner Ethernet frame after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VxlanPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> VxlanPacket<T> {
    /// Length of the VXLAN header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        VxlanPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Fails with `Truncated` if the buffer cannot hold the 8-byte header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::PAYLOAD {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    /// Returns the underlying buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }

    /// Flags byte.
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// Whether the I flag (0x08) is set, i.e. the VNI is valid.
    pub fn has_vni_flag(&self) -> bool {
        self.flags() & FLAG_I != 0
    }

    /// VXLAN network identifier (24 bits).
    pub fn vni(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VNI) >> 8
    }

    /// The inner Ethernet frame.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> VxlanPacket<T> {
    /// Sets the flags byte.
    pub fn set_flags(&mut self, value: u8) {
        self.buffer.as_mut()[field::FLAGS] = value;
    }

    /// Sets the VNI (low 24 bits of `vni`), keeping the reserved byte after it.
    pub fn set_vni(&mut self, vni: u32) {
        let reserved = self.buffer.as_ref()[field::VNI + 3];
        set_u32(
            self.buffer.as_mut(),
            field::VNI,
            (vni << 8) | u32::from(reserved),
        );
    }

    /// The inner Ethernet frame, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for VxlanPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.check_len() {
            Ok(()) => write!(f, "VXLAN flags 0x{:02x} vni {}", self.flags(), self.vni()),
            Err(e) => write!(f, "VXLAN ({e})"),
        }
    }
}

/// The typed form of a VXLAN header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VxlanRepr {
    /// VXLAN network identifier (24 bits).
    pub vni: u32,
}

impl VxlanRepr {
    //= https://www.rfc-editor.org/rfc/rfc7348#section-5
    //# Flags (8 bits): where the I flag MUST be set to 1 for a valid
    //# VXLAN Network ID (VNI).  The other 7 bits (designated "R") are
    //# reserved fields and MUST be set to zero on transmission and
    //# ignored on receipt.

    /// Reads a header; `Malformed` if the I flag is clear. Reserved bits are ignored.
    pub fn parse<T: AsRef<[u8]>>(packet: &VxlanPacket<T>) -> Result<Self> {
        packet.check_len()?;
        if !packet.has_vni_flag() {
            return Err(Error::Malformed);
        }
        Ok(VxlanRepr { vni: packet.vni() })
    }

    /// Number of header bytes [`emit`](Self::emit) writes (8).
    pub const fn buffer_len(&self) -> usize {
        field::PAYLOAD
    }

    //= https://www.rfc-editor.org/rfc/rfc7348#section-5
    //# Reserved fields (24 bits and 8 bits): MUST be set to zero on
    //# transmission and ignored on receipt.

    /// Writes the header: I flag set, reserved fields zero, VNI (low 24 bits).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut VxlanPacket<T>) {
        packet.buffer.as_mut()[..field::PAYLOAD].fill(0);
        packet.set_flags(FLAG_I);
        packet.set_vni(self.vni);
    }
}

impl fmt::Display for VxlanRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VXLAN flags 0x{FLAG_I:02x} vni {}", self.vni)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    static PACKET_BYTES: [u8; 12] = hex!("08 000000 123456 00 aabbccdd");
    static PAYLOAD_BYTES: [u8; 4] = hex!("aabbccdd");

    #[test]
    fn deconstruct() {
        let packet = VxlanPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.flags(), 0x08);
        assert!(packet.has_vni_flag());
        assert_eq!(packet.vni(), 0x12_3456);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(packet.to_string(), "VXLAN flags 0x08 vni 1193046");
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 12];
        let mut packet = VxlanPacket::new_unchecked(&mut bytes[..]);
        packet.set_flags(0x08);
        packet.set_vni(0x12_3456);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
        packet = VxlanPacket::new_unchecked(&mut bytes[..]);
        packet.set_vni(0xff00_0001); // only 24 bits fit
        assert_eq!(packet.vni(), 1);
    }

    #[test]
    fn parse() {
        let packet = VxlanPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&packet), Ok(VxlanRepr { vni: 0x12_3456 }));
    }

    //= https://www.rfc-editor.org/rfc/rfc7348#section-5
    //# where the I flag MUST be set to 1 for a valid
    //# VXLAN Network ID (VNI).  The other 7 bits (designated "R") are
    //# reserved fields and MUST be set to zero on transmission and
    //# ignored on receipt.
    #[test]
    fn parse_checks_i_flag_and_ignores_reserved() {
        let mut bytes = PACKET_BYTES;
        bytes[0] = 0xf7; // every R bit, no I
        let packet = VxlanPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&packet), Err(Error::Malformed));
        let bytes = hex!("ff ffffff 123456 ff");
        let packet = VxlanPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(VxlanRepr::parse(&packet), Ok(VxlanRepr { vni: 0x12_3456 }));
    }

    #[test]
    fn emit() {
        let mut bytes = [0xffu8; 12];
        let mut packet = VxlanPacket::new_unchecked(&mut bytes[..]);
        let repr = VxlanRepr { vni: 0x12_3456 };
        repr.emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
        assert_eq!(repr.buffer_len(), 8);
        assert_eq!(repr.to_string(), "VXLAN flags 0x08 vni 1193046");
    }

    #[test]
    fn overlong() {
        let mut bytes = PACKET_BYTES.to_vec();
        bytes.extend_from_slice(&[0; 60]);
        assert_eq!(
            VxlanPacket::new_checked(&bytes[..])
                .unwrap()
                .payload()
                .len(),
            64
        );
    }

    #[test]
    fn truncated() {
        for len in 0..8 {
            let packet = VxlanPacket::new_unchecked(&PACKET_BYTES[..len]);
            assert_eq!(packet.check_len(), Err(Error::Truncated));
            assert_eq!(VxlanRepr::parse(&packet), Err(Error::Truncated));
        }
    }

    proptest! {
        #[test]
        fn repr_round_trip(vni in 0u32..1 << 24) {
            let mut bytes = [0u8; 8];
            VxlanRepr { vni }.emit(&mut VxlanPacket::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(VxlanRepr::parse(&VxlanPacket::new_checked(&bytes[..]).unwrap()), Ok(VxlanRepr { vni }));
        }
    }
}
