//! Server side: the listening socket (mode 0600), a [`Connection`] that reads requests and
//! writes replies, and [`serve_connection`], the per-connection loop vpgd's control threads run:
//! handshake, then each request decoded, validated and handed to a [`RequestHandler`].
//!
//! Bad input never ends a connection that can go on: a frame that is not a known message, or a
//! request that fails validation, gets an [`ErrorCode::Decode`] or [`ErrorCode::BadRequest`]
//! reply, the handler never sees it, and the next request is read. Only a frame whose length
//! exceeds [`MAX_FRAME`](crate::codec::MAX_FRAME) ends the connection (after an error reply),
//! since the stream cannot be resynchronised past it.

use crate::codec::{decode, read_frame, send, FrameError};
use crate::message::{Reply, Request};
use crate::version::{Hello, HelloReply, API_MAJOR, API_MINOR};
use crate::{ApiError, ErrorCode};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

/// Longest path a unix socket can be bound to (`sun_path` is 108 bytes with the NUL).
const MAX_SOCKET_PATH: usize = 107;

/// Binds the API socket at `path` so that it is never reachable by anyone but its owner.
///
/// - The parent directory is created if missing.
/// - An existing socket file is replaced only when it is stale (nothing accepts on it); a live
///   one is an [`io::ErrorKind::AddrInUse`] error (another vpgd serves there), and a file that
///   is not a socket is an [`io::ErrorKind::AlreadyExists`] error (a mistyped path never
///   deletes a file).
/// - The socket is bound inside a fresh private directory (mode 0700), set to mode 0600, then
///   renamed into place: there is no moment at which it exists at `path` with the umask's
///   looser mode. Should that temporary path be too long for a socket, the socket is bound at
///   `path` directly and restricted right after `bind` (the umask, 022 for a daemon, already
///   keeps others from connecting in that moment).
///
/// The listener's `local_addr` names the temporary path; clients use `path`.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    check_stale(path)?;
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let private = dir.join(format!(
        ".vpg{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = private.join("s");
    if tmp.as_os_str().len() > MAX_SOCKET_PATH {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        return Ok(l);
    }
    // Left over by an earlier process that had our pid and crashed in this window.
    if private.exists() {
        std::fs::remove_dir_all(&private)?;
    }
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let bound = (|| {
        let l = UnixListener::bind(&tmp)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        std::fs::rename(&tmp, path)?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&tmp);
    let _ = std::fs::remove_dir(&private);
    bound
}

/// Refuses to replace anything at `path` but a stale socket.
fn check_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a socket; not replacing it",
                path.display()
            ),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!("another server is listening on {}", path.display()),
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
        Err(e) => Err(e),
    }
}

/// One client connection, server side. [`serve_connection`] drives it; a daemon that wants
/// its own loop (a poll set, timeouts) uses these calls directly, in this order:
/// [`handshake`](Self::handshake), then [`read_request`](Self::read_request) /
/// [`write_reply`](Self::write_reply) until the client leaves.
pub struct Connection {
    stream: UnixStream,
    /// The client's hello, once accepted.
    hello: Option<Hello>,
}

impl Connection {
    /// Wraps an accepted stream (which must be in blocking mode).
    pub fn new(stream: UnixStream) -> Self {
        Connection {
            stream,
            hello: None,
        }
    }

    /// The socket, for timeouts and peer credentials.
    pub fn stream(&self) -> &UnixStream {
        &self.stream
    }

    /// The client's hello, once [`handshake`](Self::handshake) accepted it.
    pub fn hello(&self) -> Option<&Hello> {
        self.hello.as_ref()
    }

    /// Reads the client's [`Hello`] and answers it: `Ok(true)` when accepted, `Ok(false)`
    /// when the client left or was refused (another major version, or a first frame that is
    /// not a hello) — the caller then drops the connection.
    pub fn handshake(&mut self, server: &str) -> io::Result<bool> {
        let hello = match read_frame(&mut self.stream) {
            Ok(body) => decode::<Hello>(&body).map_err(|e| {
                ApiError::decode(format!(
                    "the first message must be a hello ({{\"api_major\":{API_MAJOR},\"api_minor\":{API_MINOR},\"client\":\"...\"}}): {}",
                    e.message
                ))
            }),
            Err(FrameError::Closed | FrameError::Truncated { .. }) => return Ok(false),
            Err(e @ FrameError::TooLarge(_)) => Err(ApiError::decode(e.to_string())),
            Err(FrameError::Io(e)) => return Err(e),
        };
        match hello.and_then(|h| h.check().map(|()| h)) {
            Ok(h) => {
                send(
                    &mut self.stream,
                    &HelloReply::Welcome {
                        api_major: API_MAJOR,
                        api_minor: API_MINOR,
                        server: server.into(),
                    },
                )?;
                self.hello = Some(h);
                Ok(true)
            }
            Err(e) => {
                send(&mut self.stream, &HelloReply::Refused(e))?;
                Ok(false)
            }
        }
    }

    /// Reads the next request.
    ///
    /// - `Ok(None)`: the client left.
    /// - `Ok(Some(Ok(request)))`: a decoded request that passed [`Request::validate`].
    /// - `Ok(Some(Err(error)))`: a frame that is not a valid request; answer it with
    ///   `Reply::Error(error)` and read on.
    /// - `Err(_)`: the connection cannot go on (I/O error, the client left inside a frame, or
    ///   an oversized frame, which has already been answered with an error).
    pub fn read_request(&mut self) -> io::Result<Option<Result<Request, ApiError>>> {
        let body = match read_frame(&mut self.stream) {
            Ok(b) => b,
            Err(FrameError::Closed) => return Ok(None),
            Err(e @ FrameError::Truncated { .. }) => {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, e))
            }
            Err(e @ FrameError::TooLarge(_)) => {
                let err = ApiError::decode(format!("{e}; closing the connection"));
                let _ = send(&mut self.stream, &Reply::Error(err));
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            Err(FrameError::Io(e)) => return Err(e),
        };
        Ok(Some(
            decode::<Request>(&body).and_then(|r| r.validate().map(|()| r)),
        ))
    }

    /// Writes one reply.
    pub fn write_reply(&mut self, reply: &Reply) -> io::Result<()> {
        send(&mut self.stream, reply)
    }
}

/// Answers one request: calls its output once with a reply, or for a dump once per detail and
/// then with `Reply::Done`. vpgd passes a closure over its service.
pub type RequestHandler<'a> = dyn FnMut(Request, &mut dyn FnMut(Reply)) + 'a;

/// Serves one connection until the client leaves: the handshake, then every request decoded,
/// validated and answered by `handler`.
///
/// The loop keeps the reply contract whatever the handler does: replies after the final one
/// are dropped; a dump the handler did not end gets its `Done`; a request it did not answer
/// gets an [`ErrorCode::Failed`] error. Undecodable or invalid requests are answered here with
/// an error, without calling `handler`, and the connection goes on.
pub fn serve_connection(
    s: UnixStream,
    server: &str,
    handler: &mut RequestHandler<'_>,
) -> io::Result<()> {
    let mut conn = Connection::new(s);
    if !conn.handshake(server)? {
        return Ok(());
    }
    while let Some(next) = conn.read_request()? {
        let req = match next {
            Ok(r) => r,
            Err(e) => {
                conn.write_reply(&Reply::Error(e))?;
                continue;
            }
        };
        let (name, dump) = (req.name(), req.is_dump());
        let mut finished = false;
        let mut failed = None;
        handler(req, &mut |r| {
            if finished || failed.is_some() {
                return;
            }
            finished = r.is_final();
            if let Err(e) = conn.write_reply(&r) {
                failed = Some(e);
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        if !finished {
            conn.write_reply(&if dump {
                Reply::Done
            } else {
                Reply::Error(ApiError::new(
                    ErrorCode::Failed,
                    format!("the server gave no answer to {name}"),
                ))
            })?;
        }
    }
    Ok(())
}
