//! A blocking client: connect, handshake, request, dump.

use crate::codec::{decode, read_frame, send, FrameError};
use crate::message::{Details, Hello, HelloReply, Reply, Request, API_MAJOR, API_MINOR};
use crate::ApiError;
use std::os::unix::net::UnixStream;
use std::path::Path;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or talking to the daemon failed.
    #[error("cannot talk to vpgd: {0}")]
    Io(#[from] std::io::Error),
    /// A frame could not be read.
    #[error("cannot talk to vpgd: {0}")]
    Frame(#[from] FrameError),
    /// The daemon refused the request (nothing changed).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The daemon answered something this client does not expect.
    #[error("unexpected reply from vpgd: {0}")]
    Unexpected(String),
}

/// A connection to vpgd.
pub struct Client {
    stream: UnixStream,
    /// The server's name and version.
    pub server: String,
}

impl Client {
    /// Connects and does the version handshake.
    pub fn connect(path: &Path, client: &str) -> Result<Self, ClientError> {
        Self::connect_as(path, client, API_MAJOR, API_MINOR)
    }

    /// Connects announcing a given version (tests of the handshake).
    pub fn connect_as(
        path: &Path,
        client: &str,
        major: u32,
        minor: u32,
    ) -> Result<Self, ClientError> {
        let mut stream = UnixStream::connect(path)?;
        send(
            &mut stream,
            &Hello {
                api_major: major,
                api_minor: minor,
                client: client.into(),
            },
        )?;
        match decode::<HelloReply>(&read_frame(&mut stream)?)? {
            HelloReply::Welcome { server, .. } => Ok(Self { stream, server }),
            HelloReply::Refused(e) => Err(e.into()),
        }
    }

    /// Sends a request that has one reply.
    pub fn call(&mut self, req: &Request) -> Result<Reply, ClientError> {
        send(&mut self.stream, req)?;
        match decode::<Reply>(&read_frame(&mut self.stream)?)? {
            Reply::Error(e) => Err(e.into()),
            r => Ok(r),
        }
    }

    /// Sends a dump request and collects its details.
    pub fn dump(&mut self, req: &Request) -> Result<Vec<Details>, ClientError> {
        send(&mut self.stream, req)?;
        let mut out = Vec::new();
        loop {
            match decode::<Reply>(&read_frame(&mut self.stream)?)? {
                Reply::Details(d) => out.push(d),
                Reply::Done => return Ok(out),
                Reply::Error(e) => return Err(e.into()),
                r => return Err(ClientError::Unexpected(format!("{r:?}"))),
            }
        }
    }

    /// Sends raw bytes as a frame (tests of bad input) and reads one reply.
    pub fn raw(&mut self, body: &[u8]) -> Result<Reply, ClientError> {
        crate::codec::write_frame(&mut self.stream, body)?;
        Ok(decode::<Reply>(&read_frame(&mut self.stream)?)?)
    }
}
