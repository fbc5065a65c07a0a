//! Server side: a listening socket with mode 0600, and the per-connection loop (handshake, then
//! requests answered by a [`RequestHandler`]).

use crate::codec::{decode, read_frame, send, FrameError};
use crate::message::{Hello, HelloReply, Reply, Request, API_MAJOR, API_MINOR};
use crate::{ApiError, ErrorCode};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

/// Binds the API socket: removes a stale socket file, binds, and restricts it to its owner
/// (mode 0600) before anyone can connect.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Answers one request: calls its output once with a reply, or for a dump once per detail and
/// then with `Reply::Done`.
pub type RequestHandler<'a> = dyn FnMut(Request, &mut dyn FnMut(Reply)) + 'a;

/// Serves one connection until the client leaves. `handler` answers each request: it calls its
/// output once with a reply, or for a dump once per detail and then with `Reply::Done`.
/// Undecodable frames get an error reply and the connection goes on; a frame too large to skip
/// ends it.
pub fn serve_connection(
    mut s: UnixStream,
    server: &str,
    handler: &mut RequestHandler<'_>,
) -> io::Result<()> {
    let hello = match read_frame(&mut s) {
        Ok(b) => decode::<Hello>(&b),
        Err(FrameError::Closed) => return Ok(()),
        Err(FrameError::Io(e)) => return Err(e),
        Err(e @ FrameError::TooLarge(_)) => Err(ApiError::new(ErrorCode::Decode, e.to_string())),
    };
    match hello {
        Ok(h) if h.api_major == API_MAJOR => {
            send(
                &mut s,
                &HelloReply::Welcome {
                    api_major: API_MAJOR,
                    api_minor: API_MINOR,
                    server: server.into(),
                },
            )?;
        }
        Ok(h) => {
            let e = ApiError::new(
                ErrorCode::VersionMismatch,
                format!(
                    "client '{}' speaks API {}.{}, this server {API_MAJOR}.{API_MINOR}",
                    h.client, h.api_major, h.api_minor
                ),
            );
            return send(&mut s, &HelloReply::Refused(e));
        }
        Err(e) => {
            let e = ApiError::new(
                ErrorCode::Decode,
                format!("expected a hello message first: {}", e.message),
            );
            return send(&mut s, &HelloReply::Refused(e));
        }
    }
    loop {
        let body = match read_frame(&mut s) {
            Ok(b) => b,
            Err(FrameError::Closed) => return Ok(()),
            Err(FrameError::TooLarge(n)) => {
                let e = ApiError::new(
                    ErrorCode::Decode,
                    format!("frame of {n} bytes is too large; closing"),
                );
                return send(&mut s, &Reply::Error(e));
            }
            Err(FrameError::Io(e)) => return Err(e),
        };
        match decode::<Request>(&body) {
            Ok(req) => {
                let mut err = None;
                handler(req, &mut |r| {
                    if err.is_none() {
                        if let Err(e) = send(&mut s, &r) {
                            err = Some(e);
                        }
                    }
                });
                if let Some(e) = err {
                    return Err(e);
                }
            }
            Err(e) => send(&mut s, &Reply::Error(e))?,
        }
    }
}
