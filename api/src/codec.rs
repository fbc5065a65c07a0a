//! Framing: a 4-byte big-endian length, then a JSON body. The length is checked against
//! [`MAX_FRAME`] before anything is allocated; any bytes that are not a known message decode to
//! an error, never a panic.

use crate::{ApiError, ErrorCode};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{self, Read, Write};

/// Largest frame accepted (a transaction of many thousand items fits easily).
pub const MAX_FRAME: usize = 16 << 20;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection (cleanly, between frames).
    #[error("connection closed")]
    Closed,
    /// I/O failed or the stream ended inside a frame.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
    /// The length prefix exceeds [`MAX_FRAME`]: the stream cannot be resynchronised.
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
}

/// Reads one frame's body.
pub fn read_frame(r: &mut impl Read) -> Result<Vec<u8>, FrameError> {
    let mut len = [0u8; 4];
    match r.read(&mut len[..1]) {
        Ok(0) => return Err(FrameError::Closed),
        Ok(_) => {}
        Err(e) => return Err(e.into()),
    }
    r.read_exact(&mut len[1..])?;
    let n = u32::from_be_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(FrameError::TooLarge(n));
    }
    let mut body = vec![0u8; n];
    r.read_exact(&mut body)?;
    Ok(body)
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    if body.len() > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame too large",
        ));
    }
    let mut buf = Vec::with_capacity(4 + body.len());
    buf.extend_from_slice(&(body.len() as u32).to_be_bytes());
    buf.extend_from_slice(body);
    w.write_all(&buf)?;
    w.flush()
}

/// Encodes a message.
pub fn encode<T: Serialize>(m: &T) -> Vec<u8> {
    // Our message types always serialize (no maps with non-string keys).
    serde_json::to_vec(m).unwrap_or_default()
}

/// Decodes a message, or says why not in words.
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(ErrorCode::Decode, format!("cannot decode message: {e}")))
}

/// Sends a message as a frame.
pub fn send<T: Serialize>(w: &mut impl Write, m: &T) -> io::Result<()> {
    write_frame(w, &encode(m))
}
