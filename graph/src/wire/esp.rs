//! ESP headers (RFC 4303): the cleartext SPI and sequence number before the ciphertext.

use core::fmt;

use super::{get_u32, set_u32, Error, Result};

mod field {
    pub const SPI: usize = 0;
    pub const SEQUENCE_NUMBER: usize = 4;
    pub const PAYLOAD: usize = 8;
}

/// A view of an ESP packet: SPI, sequence number, then IV, ciphertext, trailer and ICV.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EspPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> EspPacket<T> {
    /// Length of the cleartext header.
    pub const HEADER_LEN: usize = field::PAYLOAD;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        EspPacket { buffer }
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

    //= https://www.rfc-editor.org/rfc/rfc4303#section-2.1
    //# The SPI is an arbitrary 32-bit value that is used by a receiver to
    //# identify the SA to which an incoming packet is bound.

    /// Security parameters index.
    pub fn spi(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SPI)
    }

    //= https://www.rfc-editor.org/rfc/rfc4303#section-2.2
    //# This unsigned 32-bit field contains a counter value that increases by
    //# one for each packet sent, i.e., a per-SA packet sequence number.

    /// Sequence number (low 32 bits of the ESN, if in use).
    pub fn sequence_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQUENCE_NUMBER)
    }

    /// Everything after the header: IV, ciphertext, padding, trailer and ICV.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> EspPacket<T> {
    /// Sets the SPI.
    pub fn set_spi(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::SPI, value);
    }

    /// Sets the sequence number.
    pub fn set_sequence_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::SEQUENCE_NUMBER, value);
    }

    /// Everything after the header, mutably.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buffer.as_mut()[field::PAYLOAD..]
    }
}

impl<T: AsRef<[u8]>> fmt::Display for EspPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "ESP ({e})");
        }
        let (spi, seq) = (self.spi(), self.sequence_number());
        write!(
            f,
            "ESP spi 0x{spi:08x} seq {seq} len {}",
            self.payload().len()
        )
    }
}

/// The typed form of an ESP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EspRepr {
    /// Security parameters index.
    pub spi: u32,
    /// Sequence number.
    pub sequence_number: u32,
}

impl EspRepr {
    //= https://www.rfc-editor.org/rfc/rfc4303#section-2.1
    //# The SPI value of zero (0) is reserved for local, implementation-
    //# specific use and MUST NOT be sent on the wire.

    /// Reads a header; `Malformed` if the SPI is zero.
    pub fn parse<T: AsRef<[u8]>>(packet: &EspPacket<T>) -> Result<Self> {
        packet.check_len()?;
        if packet.spi() == 0 {
            return Err(Error::Malformed);
        }
        Ok(EspRepr {
            spi: packet.spi(),
            sequence_number: packet.sequence_number(),
        })
    }

    /// Number of header bytes [`emit`](Self::emit) writes (8).
    pub const fn buffer_len(&self) -> usize {
        field::PAYLOAD
    }

    /// Writes the header.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, packet: &mut EspPacket<T>) {
        packet.set_spi(self.spi);
        packet.set_sequence_number(self.sequence_number);
    }
}

impl fmt::Display for EspRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ESP spi 0x{:08x} seq {}", self.spi, self.sequence_number)
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    static PACKET_BYTES: [u8; 12] = hex!("00001000 00000001 aabbccdd");
    static PAYLOAD_BYTES: [u8; 4] = hex!("aabbccdd");

    fn repr() -> EspRepr {
        EspRepr {
            spi: 0x1000,
            sequence_number: 1,
        }
    }

    #[test]
    fn deconstruct() {
        let packet = EspPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.spi(), 0x1000);
        assert_eq!(packet.sequence_number(), 1);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(packet.to_string(), "ESP spi 0x00001000 seq 1 len 4");
    }

    #[test]
    fn construct() {
        let mut bytes = [0xa5u8; 12];
        let mut packet = EspPacket::new_unchecked(&mut bytes[..]);
        packet.set_spi(0x1000);
        packet.set_sequence_number(1);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn parse() {
        let packet = EspPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(EspRepr::parse(&packet), Ok(repr()));
    }

    //= https://www.rfc-editor.org/rfc/rfc4303#section-2.1
    //# The SPI value of zero (0) is reserved for local, implementation-
    //# specific use and MUST NOT be sent on the wire.
    #[test]
    fn parse_rejects_spi_zero() {
        let bytes = hex!("00000000 00000001");
        let packet = EspPacket::new_checked(&bytes[..]).unwrap();
        assert_eq!(EspRepr::parse(&packet), Err(Error::Malformed));
    }

    #[test]
    fn emit() {
        let mut bytes = [0u8; 12];
        let mut packet = EspPacket::new_unchecked(&mut bytes[..]);
        repr().emit(&mut packet);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
        assert_eq!(repr().buffer_len(), 8);
        assert_eq!(repr().to_string(), "ESP spi 0x00001000 seq 1");
    }

    #[test]
    fn overlong() {
        let mut bytes = PACKET_BYTES.to_vec();
        bytes.extend_from_slice(&[0; 16]);
        assert_eq!(
            EspPacket::new_checked(&bytes[..]).unwrap().payload().len(),
            20
        );
    }

    #[test]
    fn truncated() {
        for len in 0..8 {
            let packet = EspPacket::new_unchecked(&PACKET_BYTES[..len]);
            assert_eq!(packet.check_len(), Err(Error::Truncated));
            assert_eq!(EspRepr::parse(&packet), Err(Error::Truncated));
        }
    }

    proptest! {
        #[test]
        fn repr_round_trip(spi in 1u32..=u32::MAX, sequence_number in any::<u32>()) {
            let repr = EspRepr { spi, sequence_number };
            let mut bytes = [0u8; 8];
            repr.emit(&mut EspPacket::new_unchecked(&mut bytes[..]));
            prop_assert_eq!(EspRepr::parse(&EspPacket::new_checked(&bytes[..]).unwrap()), Ok(repr));
        }
    }
}
