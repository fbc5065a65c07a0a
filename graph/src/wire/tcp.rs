//! TCP segment headers (RFC 9293).

use core::fmt;
use std::net::Ipv4Addr;

use super::{checksum, get_u16, get_u32, set_u16, set_u32, Error, IpProtocol, Result};

/// TCP flag bits, as found in [`TcpPacket::flags`].
#[derive(Debug, Clone, Copy)]
pub struct TcpFlags;

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: u8 = 0x01;
    /// Synchronize sequence numbers.
    pub const SYN: u8 = 0x02;
    /// Reset the connection.
    pub const RST: u8 = 0x04;
    /// Push function.
    pub const PSH: u8 = 0x08;
    /// Acknowledgment field is significant.
    pub const ACK: u8 = 0x10;
    /// Urgent pointer field is significant.
    pub const URG: u8 = 0x20;
    /// ECN echo.
    pub const ECE: u8 = 0x40;
    /// Congestion window reduced.
    pub const CWR: u8 = 0x80;
}

mod field {
    pub const SRC_PORT: usize = 0;
    pub const DST_PORT: usize = 2;
    pub const SEQ_NUM: usize = 4;
    pub const ACK_NUM: usize = 8;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: usize = 14;
    pub const CHECKSUM: usize = 16;
    pub const URGENT: usize = 18;
    pub const END: usize = 20;
}

/// A view of a TCP segment. The buffer must be exactly the segment (the IPv4 payload): the
/// checksum covers all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Length of a header without options.
    pub const HEADER_LEN: usize = field::END;

    /// Wraps `buffer` without checking its length.
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps `buffer` after [`check_len`](Self::check_len).
    pub fn new_checked(buffer: T) -> Result<Self> {
        let packet = Self::new_unchecked(buffer);
        packet.check_len()?;
        Ok(packet)
    }

    /// `Truncated` if the buffer is under 20 bytes or under the header length; `Malformed` if
    /// the data offset is under 5 words.
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

    /// Sequence number.
    pub fn seq_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::SEQ_NUM)
    }

    /// Acknowledgment number.
    pub fn ack_number(&self) -> u32 {
        get_u32(self.buffer.as_ref(), field::ACK_NUM)
    }

    /// Header length in bytes (data offset × 4).
    pub fn header_len(&self) -> u8 {
        (self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    /// Flag byte (see [`TcpFlags`]).
    pub fn flags(&self) -> u8 {
        self.buffer.as_ref()[field::FLAGS]
    }

    /// FIN flag.
    pub fn fin(&self) -> bool {
        self.flags() & TcpFlags::FIN != 0
    }

    /// SYN flag.
    pub fn syn(&self) -> bool {
        self.flags() & TcpFlags::SYN != 0
    }

    /// RST flag.
    pub fn rst(&self) -> bool {
        self.flags() & TcpFlags::RST != 0
    }

    /// PSH flag.
    pub fn psh(&self) -> bool {
        self.flags() & TcpFlags::PSH != 0
    }

    /// ACK flag.
    pub fn ack(&self) -> bool {
        self.flags() & TcpFlags::ACK != 0
    }

    /// URG flag.
    pub fn urg(&self) -> bool {
        self.flags() & TcpFlags::URG != 0
    }

    /// Window size.
    pub fn window_len(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::WIN_SIZE)
    }

    /// Checksum.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::CHECKSUM)
    }

    /// Urgent pointer.
    pub fn urgent_at(&self) -> u16 {
        get_u16(self.buffer.as_ref(), field::URGENT)
    }

    /// Options bytes between the fixed header and the payload (clamped to the buffer).
    pub fn options(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        let end = usize::from(self.header_len()).min(data.len());
        data.get(field::END..end).unwrap_or(&[])
    }

    /// Payload after the header (clamped to the buffer).
    pub fn payload(&self) -> &[u8] {
        let data = self.buffer.as_ref();
        &data[usize::from(self.header_len()).min(data.len())..]
    }

    /// Whether the checksum is valid for this IPv4 source and destination.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        let data = self.buffer.as_ref();
        let pseudo =
            checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp.into(), data.len() as u32);
        checksum::fold(pseudo + checksum::sum(data)) == 0xffff
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    /// Sets the source port.
    pub fn set_src_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::SRC_PORT, value);
    }

    /// Sets the destination port.
    pub fn set_dst_port(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::DST_PORT, value);
    }

    /// Sets the sequence number.
    pub fn set_seq_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::SEQ_NUM, value);
    }

    /// Sets the acknowledgment number.
    pub fn set_ack_number(&mut self, value: u32) {
        set_u32(self.buffer.as_mut(), field::ACK_NUM, value);
    }

    /// Sets the header length in bytes (a multiple of 4, at most 60); keeps the low nibble.
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::DATA_OFF];
        *b = (*b & 0x0f) | ((len / 4) << 4);
    }

    /// Sets the flag byte.
    pub fn set_flags(&mut self, flags: u8) {
        self.buffer.as_mut()[field::FLAGS] = flags;
    }

    /// Sets the window size.
    pub fn set_window_len(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::WIN_SIZE, value);
    }

    /// Sets the checksum.
    pub fn set_checksum(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::CHECKSUM, value);
    }

    /// Sets the urgent pointer.
    pub fn set_urgent_at(&mut self, value: u16) {
        set_u16(self.buffer.as_mut(), field::URGENT, value);
    }

    /// Payload after the header, mutably (clamped to the buffer).
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = usize::from(self.header_len());
        let data = self.buffer.as_mut();
        let start = header_len.min(data.len());
        &mut data[start..]
    }

    /// Computes the checksum over the whole buffer with the IPv4 pseudo header and stores it.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let data = self.buffer.as_ref();
        let pseudo =
            checksum::pseudo_header_v4(src, dst, IpProtocol::Tcp.into(), data.len() as u32);
        let value = !checksum::fold(pseudo + checksum::sum(data));
        self.set_checksum(value);
    }
}

/// Writes flags the way tcpdump does: `S`, `F`, `R`, `P`, `.` (ACK), `U`, `E`, `W`.
fn fmt_flags(f: &mut fmt::Formatter<'_>, flags: u8) -> fmt::Result {
    const NAMES: [(u8, char); 8] = [
        (TcpFlags::FIN, 'F'),
        (TcpFlags::SYN, 'S'),
        (TcpFlags::RST, 'R'),
        (TcpFlags::PSH, 'P'),
        (TcpFlags::ACK, '.'),
        (TcpFlags::URG, 'U'),
        (TcpFlags::ECE, 'E'),
        (TcpFlags::CWR, 'W'),
    ];
    if flags == 0 {
        return f.write_str("none");
    }
    for (bit, name) in NAMES {
        if flags & bit != 0 {
            fmt::Write::write_char(f, name)?;
        }
    }
    Ok(())
}

impl<T: AsRef<[u8]>> fmt::Display for TcpPacket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Err(e) = self.check_len() {
            return write!(f, "TCP ({e})");
        }
        write!(f, "TCP {} > {} [", self.src_port(), self.dst_port())?;
        fmt_flags(f, self.flags())?;
        write!(f, "] seq {}", self.seq_number())?;
        if self.ack() {
            write!(f, " ack {}", self.ack_number())?;
        }
        write!(f, " win {} len {}", self.window_len(), self.payload().len())
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use hex_literal::hex;
    use proptest::prelude::*;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 168, 1, 2);

    // SYN-ACK 49152 > 80 with a 4-byte MSS option and 4 payload bytes; checksum 0x0000 here,
    // filled by the tests.
    static PACKET_BYTES: [u8; 28] = hex!(
        "c000 0050 01234567 89abcdef 60 12 4000 0000 0000"
        "020405b4"
        "aabbccdd"
    );
    static OPTION_BYTES: [u8; 4] = hex!("020405b4");
    static PAYLOAD_BYTES: [u8; 4] = hex!("aabbccdd");

    #[test]
    fn deconstruct() {
        let packet = TcpPacket::new_checked(&PACKET_BYTES[..]).unwrap();
        assert_eq!(packet.src_port(), 49152);
        assert_eq!(packet.dst_port(), 80);
        assert_eq!(packet.seq_number(), 0x0123_4567);
        assert_eq!(packet.ack_number(), 0x89ab_cdef);
        assert_eq!(packet.header_len(), 24);
        assert_eq!(packet.flags(), TcpFlags::SYN | TcpFlags::ACK);
        assert!(packet.syn() && packet.ack());
        assert!(!packet.fin() && !packet.rst() && !packet.psh() && !packet.urg());
        assert_eq!(packet.window_len(), 0x4000);
        assert_eq!(packet.checksum(), 0);
        assert_eq!(packet.urgent_at(), 0);
        assert_eq!(packet.options(), &OPTION_BYTES[..]);
        assert_eq!(packet.payload(), &PAYLOAD_BYTES[..]);
        assert_eq!(
            packet.to_string(),
            "TCP 49152 > 80 [S.] seq 19088743 ack 2309737967 win 16384 len 4"
        );
    }

    #[test]
    fn construct() {
        let mut bytes = [0u8; 28];
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_src_port(49152);
        packet.set_dst_port(80);
        packet.set_seq_number(0x0123_4567);
        packet.set_ack_number(0x89ab_cdef);
        packet.set_header_len(24);
        packet.set_flags(TcpFlags::SYN | TcpFlags::ACK);
        packet.set_window_len(0x4000);
        packet.set_checksum(0);
        packet.set_urgent_at(0);
        packet.payload_mut().copy_from_slice(&PAYLOAD_BYTES);
        bytes[20..24].copy_from_slice(&OPTION_BYTES);
        assert_eq!(bytes, PACKET_BYTES);
    }

    #[test]
    fn checksum() {
        let mut bytes = PACKET_BYTES;
        TcpPacket::new_unchecked(&mut bytes[..]).fill_checksum(SRC, DST);
        let packet = TcpPacket::new_checked(&bytes[..]).unwrap();
        assert!(packet.verify_checksum(SRC, DST));
        assert!(!packet.verify_checksum(SRC, Ipv4Addr::new(192, 168, 1, 3)));
    }

    #[test]
    fn flags_display() {
        let mut bytes = PACKET_BYTES;
        let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
        packet.set_flags(0);
        assert_eq!(
            packet.to_string(),
            "TCP 49152 > 80 [none] seq 19088743 win 16384 len 4"
        );
        packet.set_flags(0xff);
        assert_eq!(
            packet.to_string(),
            "TCP 49152 > 80 [FSRP.UEW] seq 19088743 ack 2309737967 win 16384 len 4"
        );
    }

    #[test]
    fn overlong() {
        // Extra bytes are payload: a TCP view must be given exactly the segment.
        let mut bytes = PACKET_BYTES.to_vec();
        bytes.push(0xee);
        assert_eq!(
            TcpPacket::new_checked(&bytes[..]).unwrap().payload().len(),
            5
        );
    }

    #[test]
    fn truncated() {
        for len in 0..24 {
            assert_eq!(
                TcpPacket::new_checked(&PACKET_BYTES[..len]),
                Err(Error::Truncated),
                "len {len}"
            );
        }
        let mut bytes = PACKET_BYTES;
        bytes[12] = 0x40;
        assert_eq!(TcpPacket::new_checked(&bytes[..]), Err(Error::Malformed));
        let mut packet = TcpPacket::new_checked(PACKET_BYTES).unwrap();
        packet.set_header_len(60);
        assert!(packet.payload().is_empty() && packet.payload_mut().is_empty());
        assert_eq!(packet.options().len(), 8);
        assert_eq!(
            TcpPacket::new_unchecked(&PACKET_BYTES[..5]).to_string(),
            "TCP (truncated packet)"
        );
    }

    proptest! {
        #[test]
        fn etherparse_builds_we_parse(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sport in any::<u16>(), dport in any::<u16>(),
            seq in any::<u32>(), ack in any::<u32>(), win in any::<u16>(),
            payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let builder = etherparse::PacketBuilder::ipv4(src, dst, 64).tcp(sport, dport, seq, win).syn().ack(ack).psh();
            let mut bytes = Vec::new();
            builder.write(&mut bytes, &payload).unwrap();
            let (_, rest) = etherparse::Ipv4Header::from_slice(&bytes).unwrap();
            let (theirs, _) = etherparse::TcpHeader::from_slice(rest).unwrap();
            let packet = TcpPacket::new_checked(rest).unwrap();
            prop_assert_eq!((packet.src_port(), packet.dst_port()), (sport, dport));
            prop_assert_eq!((packet.seq_number(), packet.ack_number()), (seq, ack));
            prop_assert_eq!(packet.flags(), TcpFlags::SYN | TcpFlags::ACK | TcpFlags::PSH);
            prop_assert_eq!(packet.window_len(), win);
            prop_assert_eq!(usize::from(packet.header_len()), theirs.header_len());
            prop_assert_eq!(packet.checksum(), theirs.checksum);
            prop_assert!(packet.verify_checksum(src.into(), dst.into()));
            prop_assert_eq!(packet.payload(), &payload[..]);
        }

        #[test]
        fn we_build_etherparse_parses(
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>(), sport in any::<u16>(), dport in any::<u16>(),
            seq in any::<u32>(), flags in any::<u8>(), payload in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let mut bytes = vec![0u8; 20 + payload.len()];
            let mut packet = TcpPacket::new_unchecked(&mut bytes[..]);
            packet.set_src_port(sport);
            packet.set_dst_port(dport);
            packet.set_seq_number(seq);
            packet.set_header_len(20);
            packet.set_flags(flags);
            packet.payload_mut().copy_from_slice(&payload);
            packet.fill_checksum(src.into(), dst.into());
            let (theirs, rest) = etherparse::TcpHeader::from_slice(&bytes).unwrap();
            prop_assert_eq!((theirs.source_port, theirs.destination_port), (sport, dport));
            prop_assert_eq!(theirs.sequence_number, seq);
            prop_assert_eq!(
                [theirs.fin, theirs.syn, theirs.rst, theirs.psh, theirs.ack, theirs.urg, theirs.ece, theirs.cwr],
                core::array::from_fn(|i| flags & (1 << i) != 0)
            );
            prop_assert_eq!(theirs.calc_checksum_ipv4_raw(src, dst, rest).unwrap(), theirs.checksum);
        }
    }
}
