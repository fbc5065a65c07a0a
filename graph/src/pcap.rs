//! Classic pcap files (libpcap format, Ethernet link type): read as pg input, write as capture.

use std::io::{self, Read, Write};

const MAGIC_US: u32 = 0xa1b2_c3d4;
const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// Ethernet link type.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Largest record we accept (a jumbo frame plus slack); larger is a malformed file.
const MAX_RECORD: u32 = 262_144;

/// Why a pcap file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    /// I/O failed.
    #[error("pcap i/o: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with a pcap magic number.
    #[error("not a pcap file (magic {0:#010x})")]
    BadMagic(u32),
    /// Not Ethernet.
    #[error("unsupported pcap link type {0} (only Ethernet, 1)")]
    LinkType(u32),
    /// A record claims an impossible length.
    #[error("pcap record {index} claims {len} bytes, more than {MAX_RECORD}")]
    BadRecord {
        /// Record number, from 0.
        index: usize,
        /// Claimed captured length.
        len: u32,
    },
    /// The file ends inside a record.
    #[error("pcap file truncated in record {0}")]
    Truncated(usize),
}

/// One captured packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcapRecord {
    /// Capture time in nanoseconds since the Unix epoch.
    pub time_ns: u64,
    /// Bytes captured.
    pub data: Vec<u8>,
}

/// Reads every record of a pcap stream.
pub fn read(mut r: impl Read) -> Result<Vec<PcapRecord>, PcapError> {
    let mut gh = [0u8; 24];
    r.read_exact(&mut gh)?;
    let m_le = u32::from_le_bytes([gh[0], gh[1], gh[2], gh[3]]);
    let m_be = u32::from_be_bytes([gh[0], gh[1], gh[2], gh[3]]);
    let (le, ns) = match (m_le, m_be) {
        (MAGIC_US, _) => (true, false),
        (MAGIC_NS, _) => (true, true),
        (_, MAGIC_US) => (false, false),
        (_, MAGIC_NS) => (false, true),
        _ => return Err(PcapError::BadMagic(m_le)),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = u32_at(&gh, 20);
    if link != LINKTYPE_ETHERNET {
        return Err(PcapError::LinkType(link));
    }
    let mut out = Vec::new();
    loop {
        let mut rh = [0u8; 16];
        match read_full(&mut r, &mut rh)? {
            0 => return Ok(out),
            16 => {}
            _ => return Err(PcapError::Truncated(out.len())),
        }
        let (sec, frac, incl) = (u32_at(&rh, 0), u32_at(&rh, 4), u32_at(&rh, 8));
        if incl > MAX_RECORD {
            return Err(PcapError::BadRecord {
                index: out.len(),
                len: incl,
            });
        }
        let mut data = vec![0u8; incl as usize];
        if read_full(&mut r, &mut data)? != incl as usize {
            return Err(PcapError::Truncated(out.len()));
        }
        let sub = if ns { frac as u64 } else { frac as u64 * 1000 };
        out.push(PcapRecord {
            time_ns: sec as u64 * 1_000_000_000 + sub,
            data,
        });
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Writes a pcap stream (little endian, microseconds, Ethernet).
pub struct PcapWriter<W: Write> {
    w: W,
}

impl<W: Write> PcapWriter<W> {
    /// Writes the file header.
    pub fn new(mut w: W) -> io::Result<Self> {
        let mut gh = Vec::with_capacity(24);
        gh.extend_from_slice(&MAGIC_US.to_le_bytes());
        gh.extend_from_slice(&2u16.to_le_bytes());
        gh.extend_from_slice(&4u16.to_le_bytes());
        gh.extend_from_slice(&0i32.to_le_bytes());
        gh.extend_from_slice(&0u32.to_le_bytes());
        gh.extend_from_slice(&65535u32.to_le_bytes());
        gh.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        w.write_all(&gh)?;
        Ok(Self { w })
    }

    /// Appends one packet.
    pub fn write(&mut self, time_ns: u64, data: &[u8]) -> io::Result<()> {
        let sec = (time_ns / 1_000_000_000) as u32;
        let us = ((time_ns % 1_000_000_000) / 1000) as u32;
        let len = data.len() as u32;
        for v in [sec, us, len, len] {
            self.w.write_all(&v.to_le_bytes())?;
        }
        self.w.write_all(data)
    }

    /// Flushes and returns the writer.
    pub fn into_inner(mut self) -> io::Result<W> {
        self.w.flush()?;
        Ok(self.w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_then_read() {
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(1_500_000_000, &[1, 2, 3]).unwrap();
        w.write(2_000_001_000, &[4; 60]).unwrap();
        let bytes = w.into_inner().unwrap();
        let recs = read(&bytes[..]).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(
            recs[0],
            PcapRecord {
                time_ns: 1_500_000_000,
                data: vec![1, 2, 3]
            }
        );
        assert_eq!(recs[1].time_ns, 2_000_001_000);
        assert_eq!(recs[1].data, vec![4; 60]);
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        assert!(matches!(read(&[0u8; 24][..]), Err(PcapError::BadMagic(_))));
        assert!(read(&[0u8; 3][..]).is_err());
        let mut w = PcapWriter::new(Vec::new()).unwrap();
        w.write(0, &[9; 10]).unwrap();
        let bytes = w.into_inner().unwrap();
        assert!(matches!(
            read(&bytes[..bytes.len() - 1]),
            Err(PcapError::Truncated(0))
        ));
        let mut huge = bytes.clone();
        huge[24 + 8..24 + 12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read(&huge[..]), Err(PcapError::BadRecord { .. })));
        let mut big_endian = bytes[..24].to_vec();
        big_endian[..4].copy_from_slice(&MAGIC_US.to_be_bytes());
        big_endian[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_be_bytes());
        assert_eq!(read(&big_endian[..]).unwrap(), vec![]);
        let mut other_link = bytes[..24].to_vec();
        other_link[20] = 101;
        assert!(matches!(
            read(&other_link[..]),
            Err(PcapError::LinkType(101))
        ));
    }
}
