//! A blocking client: connect (with the version handshake), requests, dumps, and typed helpers
//! for the common calls. vpgctl, the agent and tests use it.

use crate::codec::{decode, read_frame, send, write_frame, FrameError};
use crate::config::{validate_all, ConfigItem};
use crate::interface::InterfaceDetails;
use crate::message::{Details, Reply, Request};
use crate::route::{NeighborDetails, RouteDetails, RoutePath};
use crate::stats::{BufferDetails, ClearWhat, ErrorDetails, FeatureDetails, RuntimeDetails};
use crate::types::{Mac, Prefix};
use crate::version::{Hello, HelloReply, VersionDetails};
use crate::ApiError;
use serde::de::DeserializeOwned;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting or talking to the daemon failed.
    #[error("cannot talk to vpgd: {0}")]
    Io(#[from] std::io::Error),
    /// A frame could not be read.
    #[error("cannot talk to vpgd: {0}")]
    Frame(#[from] FrameError),
    /// The daemon refused the request (nothing changed), or refused the handshake.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The daemon answered something this client does not expect (or cannot decode: a newer
    /// server answering a request this client should not have sent).
    #[error("unexpected reply from vpgd: {0}")]
    Unexpected(String),
}

/// What a transaction did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Applied {
    /// Items applied (all of them).
    pub count: usize,
    /// Interfaces created, in item order.
    pub created: Vec<u32>,
}

/// A connection to vpgd. Requests are answered in order; one request at a time.
pub struct Client {
    stream: UnixStream,
    /// The server's name and version.
    pub server: String,
    /// The server's API minor version: messages newer than it must not be sent.
    pub server_minor: u32,
}

impl Client {
    /// Connects and does the version handshake, announcing this crate's API version and the
    /// name `client` (`vpgctl 0.1.0`).
    pub fn connect(path: &Path, client: &str) -> Result<Self, ClientError> {
        Self::handshake(UnixStream::connect(path)?, Hello::new(client))
    }

    /// Connects announcing a given version (tests of the handshake).
    pub fn connect_as(
        path: &Path,
        client: &str,
        major: u32,
        minor: u32,
    ) -> Result<Self, ClientError> {
        let hello = Hello {
            api_major: major,
            api_minor: minor,
            client: client.into(),
        };
        Self::handshake(UnixStream::connect(path)?, hello)
    }

    fn handshake(mut stream: UnixStream, hello: Hello) -> Result<Self, ClientError> {
        send(&mut stream, &hello)?;
        match read_as::<HelloReply>(&mut stream)? {
            HelloReply::Welcome {
                server, api_minor, ..
            } => Ok(Self {
                stream,
                server,
                server_minor: api_minor,
            }),
            HelloReply::Refused(e) => Err(e.into()),
        }
    }

    /// Sets a read and write timeout (`None`: wait forever, the default). A call that times
    /// out fails with an I/O error; the connection should then be dropped, since a late reply
    /// could still arrive.
    pub fn set_timeout(&mut self, t: Option<Duration>) -> Result<(), ClientError> {
        self.stream.set_read_timeout(t)?;
        self.stream.set_write_timeout(t)?;
        Ok(())
    }

    /// Sends a request that has one reply (not a dump: see [`Client::dump`]). An error reply
    /// is returned as [`ClientError::Api`].
    pub fn call(&mut self, req: &Request) -> Result<Reply, ClientError> {
        if req.is_dump() {
            return Err(ClientError::Unexpected(format!(
                "{} is a dump: use dump()",
                req.name()
            )));
        }
        send(&mut self.stream, req)?;
        match read_as::<Reply>(&mut self.stream)? {
            Reply::Error(e) => Err(e.into()),
            r => Ok(r),
        }
    }

    /// Sends a dump request and collects its details.
    pub fn dump(&mut self, req: &Request) -> Result<Vec<Details>, ClientError> {
        if !req.is_dump() {
            return Err(ClientError::Unexpected(format!(
                "{} is not a dump: use call()",
                req.name()
            )));
        }
        send(&mut self.stream, req)?;
        let mut out = Vec::new();
        loop {
            match read_as::<Reply>(&mut self.stream)? {
                Reply::Details(d) => out.push(d),
                Reply::Done => return Ok(out),
                Reply::Error(e) => return Err(e.into()),
                r => return Err(ClientError::Unexpected(format!("{r:?}"))),
            }
        }
    }

    /// Sends raw bytes as a frame (tests of bad input) and reads one reply.
    pub fn raw(&mut self, body: &[u8]) -> Result<Reply, ClientError> {
        write_frame(&mut self.stream, body)?;
        read_as::<Reply>(&mut self.stream)
    }

    /// Applies one change, after checking it here first. Returns the interface created, if
    /// any.
    pub fn config(&mut self, item: ConfigItem) -> Result<Option<u32>, ClientError> {
        item.validate()?;
        match self.call(&Request::Config { item })? {
            Reply::Ok { sw_if } => Ok(sw_if),
            r => Err(ClientError::Unexpected(format!("{r:?}"))),
        }
    }

    /// Applies changes all-or-nothing, after checking them here first. An error names the
    /// refused item's index ([`ApiError::item`]) and means nothing changed.
    pub fn transaction(&mut self, items: Vec<ConfigItem>) -> Result<Applied, ClientError> {
        validate_all(&items)?;
        match self.call(&Request::Transaction { items })? {
            Reply::Applied { count, created } => Ok(Applied { count, created }),
            r => Err(ClientError::Unexpected(format!("{r:?}"))),
        }
    }

    /// Attaches Linux interface `host_if` with AF_PACKET, named `name` (default: `host_if`).
    /// Returns its interface index.
    pub fn create_af_packet(
        &mut self,
        host_if: &str,
        name: Option<&str>,
    ) -> Result<u32, ClientError> {
        self.config(ConfigItem::CreateAfPacket {
            host_if: host_if.into(),
            name: name.map(Into::into),
            mac: None,
        })?
        .ok_or_else(|| ClientError::Unexpected("no interface index in the reply".into()))
    }

    /// Sets an interface up or down.
    pub fn set_admin_state(&mut self, sw_if: u32, up: bool) -> Result<(), ClientError> {
        self.config(ConfigItem::SetAdminState { sw_if, up })
            .map(drop)
    }

    /// Sets an interface's MTU.
    pub fn set_mtu(&mut self, sw_if: u32, mtu: u16) -> Result<(), ClientError> {
        self.config(ConfigItem::SetMtu { sw_if, mtu }).map(drop)
    }

    /// Adds an address (`10.0.2.1/24`) to an interface.
    pub fn add_address(&mut self, sw_if: u32, prefix: Prefix) -> Result<(), ClientError> {
        self.config(ConfigItem::AddAddress { sw_if, prefix })
            .map(drop)
    }

    /// Adds a route.
    pub fn add_route(&mut self, prefix: Prefix, path: RoutePath) -> Result<(), ClientError> {
        self.config(ConfigItem::AddRoute { prefix, path }).map(drop)
    }

    /// Deletes a route.
    pub fn del_route(&mut self, prefix: Prefix) -> Result<(), ClientError> {
        self.config(ConfigItem::DelRoute { prefix }).map(drop)
    }

    /// Adds or replaces a neighbor.
    pub fn add_neighbor(&mut self, sw_if: u32, ip: Ipv4Addr, mac: Mac) -> Result<(), ClientError> {
        self.config(ConfigItem::AddNeighbor { sw_if, ip, mac })
            .map(drop)
    }

    /// Deletes a neighbor.
    pub fn del_neighbor(&mut self, sw_if: u32, ip: Ipv4Addr) -> Result<(), ClientError> {
        self.config(ConfigItem::DelNeighbor { sw_if, ip }).map(drop)
    }

    /// Traces the next `count` packets entering `node` on every worker.
    pub fn trace_add(&mut self, node: &str, count: u32) -> Result<(), ClientError> {
        let req = Request::TraceAdd {
            node: node.into(),
            count,
        };
        req.validate()?;
        self.call(&req).map(drop)
    }

    /// Resets counters or the trace.
    pub fn clear(&mut self, what: ClearWhat) -> Result<(), ClientError> {
        self.call(&Request::Clear { what }).map(drop)
    }

    /// Dumps and keeps the rows `pick` recognises; any other kind of row is an error.
    fn dump_rows<T>(
        &mut self,
        req: Request,
        pick: fn(Details) -> Result<T, Box<Details>>,
    ) -> Result<Vec<T>, ClientError> {
        self.dump(&req)?
            .into_iter()
            .map(|d| pick(d).map_err(|d| ClientError::Unexpected(format!("{d:?}"))))
            .collect()
    }

    /// The interfaces.
    pub fn interfaces(&mut self) -> Result<Vec<InterfaceDetails>, ClientError> {
        self.dump_rows(Request::DumpInterfaces, |d| match d {
            Details::Interface(i) => Ok(i),
            d => Err(Box::new(d)),
        })
    }

    /// The routes.
    pub fn routes(&mut self) -> Result<Vec<RouteDetails>, ClientError> {
        self.dump_rows(Request::DumpRoutes, |d| match d {
            Details::Route(r) => Ok(r),
            d => Err(Box::new(d)),
        })
    }

    /// The neighbors.
    pub fn neighbors(&mut self) -> Result<Vec<NeighborDetails>, ClientError> {
        self.dump_rows(Request::DumpNeighbors, |d| match d {
            Details::Neighbor(n) => Ok(n),
            d => Err(Box::new(d)),
        })
    }

    /// The enabled features.
    pub fn features(&mut self) -> Result<Vec<FeatureDetails>, ClientError> {
        self.dump_rows(Request::DumpFeatures, |d| match d {
            Details::Feature(f) => Ok(f),
            d => Err(Box::new(d)),
        })
    }

    /// Node runtime per worker.
    pub fn runtime(&mut self) -> Result<Vec<RuntimeDetails>, ClientError> {
        self.dump_rows(Request::DumpRuntime, |d| match d {
            Details::Runtime(r) => Ok(r),
            d => Err(Box::new(d)),
        })
    }

    /// Error counters.
    pub fn errors(&mut self) -> Result<Vec<ErrorDetails>, ClientError> {
        self.dump_rows(Request::DumpErrors, |d| match d {
            Details::Error(e) => Ok(e),
            d => Err(Box::new(d)),
        })
    }

    /// Buffer pools per worker.
    pub fn buffers(&mut self) -> Result<Vec<BufferDetails>, ClientError> {
        self.dump_rows(Request::DumpBuffers, |d| match d {
            Details::Buffers(b) => Ok(b),
            d => Err(Box::new(d)),
        })
    }

    /// The trace text of each worker, as `(worker, text)`.
    pub fn trace(&mut self) -> Result<Vec<(usize, String)>, ClientError> {
        self.dump_rows(Request::DumpTrace, |d| match d {
            Details::Trace { worker, text } => Ok((worker, text)),
            d => Err(Box::new(d)),
        })
    }

    /// The daemon's version.
    pub fn version(&mut self) -> Result<VersionDetails, ClientError> {
        self.dump_rows(Request::ShowVersion, |d| match d {
            Details::Version(v) => Ok(v),
            d => Err(Box::new(d)),
        })?
        .pop()
        .ok_or_else(|| ClientError::Unexpected("no version in the reply".into()))
    }
}

/// Reads one frame and decodes it as a `T`; what does not decode is unexpected, not an error
/// the server sent.
fn read_as<T: DeserializeOwned>(s: &mut UnixStream) -> Result<T, ClientError> {
    decode::<T>(&read_frame(s)?).map_err(|e| ClientError::Unexpected(e.message))
}
