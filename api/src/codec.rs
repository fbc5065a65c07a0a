//! Framing: a 4-byte big-endian length, then a JSON body.
//!
//! The length is checked against [`MAX_FRAME`] before anything is allocated, and the body buffer
//! grows only as bytes actually arrive, so a peer that announces 16 MiB and sends five bytes
//! costs five bytes. Whatever the input — garbage, a truncated frame, an oversized length, JSON
//! that is not a known message — the result is a typed error, never a panic (property-tested in
//! `tests/api.rs`, fuzzed by `fuzz/fuzz_targets/api_decode.rs`).

use crate::ApiError;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};

/// Largest frame accepted (a transaction of many thousand items fits easily).
pub const MAX_FRAME: usize = 16 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection cleanly, between frames.
    #[error("connection closed")]
    Closed,
    /// The stream ended inside a frame: `got` of `expected` bytes of the length prefix or of
    /// the body arrived.
    #[error("connection closed inside a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes the length prefix or the body should have had.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The length prefix exceeds [`MAX_FRAME`]: the stream cannot be resynchronised.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    /// I/O failed (including a timeout set on the socket).
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// Reads until `buf` is full or the stream ends; returns how much was read. Retries
/// interrupted reads.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Reads one frame's body.
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    match read_full(r, &mut len)? {
        0 => return Err(FrameError::Closed),
        4 => {}
        got => return Err(FrameError::Truncated { expected: 4, got }),
    }
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    // Grow with the data rather than trusting the announced length up front.
    let mut body = Vec::with_capacity(n.min(64 << 10));
    loop {
        let want = (n - body.len()) as u64;
        match r.by_ref().take(want).read_to_end(&mut body) {
            Ok(_) => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    if body.len() < n {
        return Err(FrameError::Truncated {
            expected: n,
            got: body.len(),
        });
    }
    Ok(body)
}

/// Writes one frame (length and body in one write, then flushes).
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                body.len()
            ),
        ));
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

/// Encodes a message as JSON.
pub fn encode<T: Serialize>(m: &T) -> Vec<u8> {
    // The API's types always serialize: every map key is a string and the custom serializers
    // (Prefix, Mac) cannot fail.
    serde_json::to_vec(m).unwrap_or_default()
}

/// Decodes a message, or says why not in words (``unknown variant `teleport` ``,
/// ``missing field `prefix` ``, `'40' is not a prefix length`).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::decode(format!("cannot decode message: {e}")))
}

/// Sends a message as a frame.
pub fn send<T: Serialize>(w: &mut impl Write, m: &T) -> io::Result<()> {
    write_frame(w, &encode(m))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out one byte per call, with an interruption before each.
    struct Trickle<'a> {
        data: &'a [u8],
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            if self.data.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.data[0];
            self.data = &self.data[1..];
            Ok(1)
        }
    }

    #[test]
    fn frames_survive_short_and_interrupted_reads() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"{\"a\":1}").unwrap();
        write_frame(&mut buf, b"").unwrap();
        let mut r = Trickle {
            data: &buf,
            interrupt: false,
        };
        assert_eq!(read_frame(&mut r).unwrap(), b"{\"a\":1}");
        assert_eq!(read_frame(&mut r).unwrap(), b"");
        assert!(matches!(read_frame(&mut r), Err(FrameError::Closed)));
    }

    #[test]
    fn truncation_and_oversize_are_typed() {
        assert!(matches!(
            read_frame(&mut &[0u8, 0][..]),
            Err(FrameError::Truncated {
                expected: 4,
                got: 2
            })
        ));
        assert!(matches!(
            read_frame(&mut &[0u8, 0, 0, 10, b'{'][..]),
            Err(FrameError::Truncated {
                expected: 10,
                got: 1
            })
        ));
        let big = ((MAX_FRAME + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame(&mut &big[..]),
            Err(FrameError::TooLarge(n)) if n == MAX_FRAME + 1
        ));
        // Exactly the limit is allowed; only 3 bytes arrive: truncated, and not allocated.
        let mut bytes = (MAX_FRAME as u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(b"abc");
        assert!(matches!(
            read_frame(&mut &bytes[..]),
            Err(FrameError::Truncated { got: 3, .. })
        ));
        assert!(write_frame(&mut Vec::new(), &vec![0; MAX_FRAME + 1]).is_err());
    }
}
