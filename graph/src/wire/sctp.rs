//! SCTP common headers (RFC 9260). The CRC32c checksum is exposed raw, not computed.

use core::fmt;

use super::{get_u16, get_u32, set_u16, set_u32, Error, Result};

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const VERIFICATION_TAG: usize = 4;
    pub const CHECKSUM: usize = 8;
    pub const CHUNKS: usize = 12;
}

/// A view of an SCTP packet: the 12-byte common header and the chunks after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SctpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> SctpPacket<T> {
    /// Length of the common header.
    pub const HEADER_LEN: usize = field::CHUNKS;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        SctpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// Fails with `Truncated` if the buffer cannot hold the common header.
    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < field::CHUNKS {
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

    /// Verification tag.
    pub fn verification_tag(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::VERIFICATION_TAG)
    }

    /// CRC32c checksum as on the wire (not verified here).
    pub fn checksum(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Chunks after the common header.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::CHUNKS..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SctpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the verification tag.
    pub fn set_verification_tag(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::VERIFICATION_TAG, value);
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Chunks after the common header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::CHUNKS..]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for SctpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "SCTP ({e})");
        }
        let (src, dst, tag) = (self.src_port(), self.dst_port(), self.verification_tag());
        write!(
            f,
            "SCTP {src} > {dst} vtag 0x{tag:08x} len {}",
            self.payload().len()
        )
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;

    static PACKET_BYTES: [u8; 16] = hex!("0b59 0b5a deadbeef 12345678 aabbccdd");
    static PAYLOAD_BYTES: [u8; 4] = hex!("aabbccdd");

    #[test]
    fn deconstruct() {
        let packet = SctpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 2905);
        assert_eq!(packet.dst_port(), 2906);
        assert_eq!(packet.verification_tag(), 0xdead_beef);
        assert_eq!(packet.checksum(), 0x1234_5678);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(packet.to_string(), "SCTP 2905 > 2906 vtag 0xdeadbeef len 4");
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 16];
        let mut packet = SctpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(2905);
        packet.set_dst_port(2906);
        packet.set_verification_tag(0xdead_beef);
        packet.set_checksum(0x1234_5678);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn overlong() {
        let mut bytes = PACKET_BYTES.to_vec();
        bytes.extend_from_slice(&[0; 4]);
        assert_eq!(
            SctpPacket::new_checked(&bytes[..]).unwrap().payload().len(),
            8
        );
    }

    #[test]
    fn truncated() {
        for len in 0..12 {
            assert_eq!(
                SctpPacket::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated)
            );
        }
        assert!(SctpPacket::new_checked(&PACKET_BYTES[..12])
            .unwrap()
            .payload()
            .is_empty());
    }
}
