//! The socket side: `server::bind` makes a mode-0600 socket and never replaces a live socket or
//! a file that is not one; `serve_connection` does the handshake, refuses other major versions,
//! answers garbage and invalid requests with errors without calling the handler, keeps the
//! reply contract whatever the handler does, and the client's typed helpers work against it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use vpg_api::codec::{decode, read_frame, send, write_frame};
use vpg_api::route::RouteDetails;
use vpg_api::server::{bind, serve_connection};
use vpg_api::*;

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "vpg-api-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

/// Serves every connection of `l` on its own thread with a handler made by `make`.
fn serve<F>(l: UnixListener, make: impl Fn() -> F + Send + 'static)
where
    F: FnMut(Request, &mut dyn FnMut(Reply)) + Send + 'static,
{
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut h = make();
            std::thread::spawn(move || {
                let _ = serve_connection(s, "test-server 1", &mut h);
            });
        }
    });
}

#[test]
fn bind_makes_an_owner_only_socket_and_replaces_only_stale_ones() {
    let dir = TempDir::new("bind");
    let path = dir.0.join("run").join("api.sock");
    let l = bind(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    // Nothing is left behind of the private directory the socket was bound in.
    let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("api.sock")]);
    // The socket accepts at its final path.
    let c = UnixStream::connect(&path).unwrap();
    drop(c);
    // A live socket is not taken over.
    let e = bind(&path).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    // Once its server is gone the socket is stale and is replaced.
    drop(l);
    let l2 = bind(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    drop(l2);
    // A file that is not a socket is never removed.
    let file = dir.0.join("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    let e = bind(&file).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn bind_near_the_socket_path_limit_still_restricts_the_mode() {
    let dir = TempDir::new("long");
    // A final path of 100 bytes: the private temporary path would not fit in sun_path.
    let base = dir.0.to_str().unwrap().len();
    let pad = "d".repeat(100 - base - 3);
    let sub = dir.0.join(pad);
    let path = sub.join("a");
    assert_eq!(path.as_os_str().len(), 100);
    let _l = bind(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    UnixStream::connect(&path).unwrap();
}

#[test]
fn handshake_refuses_other_majors_and_non_hellos() {
    let dir = TempDir::new("hello");
    let path = dir.0.join("api.sock");
    serve(bind(&path).unwrap(), || {
        |_: Request, out: &mut dyn FnMut(Reply)| out(Reply::Ok { sw_if: None })
    });
    let c = Client::connect(&path, "test").unwrap();
    assert_eq!(c.server, "test-server 1");
    assert_eq!(c.server_minor, API_MINOR);
    match Client::connect_as(&path, "old", API_MAJOR + 1, 0) {
        Err(ClientError::Api(e)) => {
            assert_eq!(e.code, ErrorCode::VersionMismatch);
            assert!(
                e.message.contains(&format!("API {}.0", API_MAJOR + 1)),
                "{e}"
            );
        }
        other => panic!("{:?}", other.map(|c| c.server)),
    }
    // A newer minor version is welcome.
    Client::connect_as(&path, "newer", API_MAJOR, API_MINOR + 3).unwrap();
    // A first frame that is not a hello is refused with a decode error, and the server closes.
    let mut s = UnixStream::connect(&path).unwrap();
    send(&mut s, &Request::DumpRoutes).unwrap();
    match decode::<HelloReply>(&read_frame(&mut s).unwrap()).unwrap() {
        HelloReply::Refused(e) => {
            assert_eq!(e.code, ErrorCode::Decode);
            assert!(e.message.contains("hello"), "{e}");
        }
        r => panic!("{r:?}"),
    }
    assert!(read_frame(&mut s).is_err(), "closed after a refusal");
}

#[test]
fn bad_input_gets_an_error_reply_reaches_no_handler_and_the_connection_goes_on() {
    let dir = TempDir::new("bad");
    let path = dir.0.join("api.sock");
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    serve(bind(&path).unwrap(), move || {
        let calls = seen.clone();
        move |req: Request, out: &mut dyn FnMut(Reply)| {
            calls.fetch_add(1, Ordering::SeqCst);
            match req {
                Request::Transaction { items } => out(Reply::Applied {
                    count: items.len(),
                    created: vec![],
                }),
                _ => out(Reply::Ok { sw_if: None }),
            }
        }
    });
    let mut c = Client::connect(&path, "test").unwrap();
    let expect_error = |r: Result<Reply, ClientError>, code: ErrorCode| match r {
        Ok(Reply::Error(e)) | Err(ClientError::Api(e)) => {
            assert_eq!(e.code, code, "{e}");
            e
        }
        other => panic!("{other:?}"),
    };
    // Garbage bytes, JSON that is no message, an unknown request, a field typo.
    for body in [
        &b"\x00\xffnot json"[..],
        b"",
        b"[1,2,3]",
        br#"{"request":"teleport"}"#,
        br#"{"request":"config","item":{"op":"set_mtu","sw_if":1,"mtu":1500,"mut":9000}}"#,
        br#"{"request":"config","item":{"op":"add_route","prefix":"10.0.0.0/33","path":{"kind":"drop"}}}"#,
    ] {
        let e = expect_error(c.raw(body), ErrorCode::Decode);
        assert!(!e.message.is_empty());
    }
    // Requests that decode but are invalid: a bad prefix, a transaction with one bad item.
    let e = expect_error(
        c.call(&Request::Config {
            item: ConfigItem::AddRoute {
                prefix: p("10.9.0.1/16"),
                path: RoutePath::Drop,
            },
        }),
        ErrorCode::BadRequest,
    );
    assert_eq!(e.field.as_deref(), Some("prefix"));
    assert!(e.to_string().contains("host bits"), "{e}");
    let e = expect_error(
        c.call(&Request::Transaction {
            items: vec![
                ConfigItem::AddRoute {
                    prefix: p("10.5.0.0/16"),
                    path: RoutePath::Drop,
                },
                ConfigItem::SetMtu { sw_if: 0, mtu: 20 },
            ],
        }),
        ErrorCode::BadRequest,
    );
    assert_eq!(e.item, Some(1));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "no bad request reached the handler"
    );
    // The same connection still works.
    assert_eq!(
        c.call(&Request::Clear {
            what: vpg_api::stats::ClearWhat::Trace
        })
        .unwrap(),
        Reply::Ok { sw_if: None }
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[test]
fn an_oversized_frame_is_answered_then_the_connection_closes() {
    let dir = TempDir::new("big");
    let path = dir.0.join("api.sock");
    serve(bind(&path).unwrap(), || {
        |_: Request, out: &mut dyn FnMut(Reply)| out(Reply::Ok { sw_if: None })
    });
    let _ = Client::connect(&path, "t").unwrap();
    let mut s = UnixStream::connect(&path).unwrap();
    send(&mut s, &Hello::new("t")).unwrap();
    read_frame(&mut s).unwrap();
    s.write_all(&u32::MAX.to_be_bytes()).unwrap();
    match decode::<Reply>(&read_frame(&mut s).unwrap()).unwrap() {
        Reply::Error(e) => assert_eq!(e.code, ErrorCode::Decode),
        r => panic!("{r:?}"),
    }
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // A truncated frame followed by the client leaving ends the connection quietly.
    let mut s = UnixStream::connect(&path).unwrap();
    send(&mut s, &Hello::new("t")).unwrap();
    read_frame(&mut s).unwrap();
    s.write_all(&[0, 0, 0, 50, b'{']).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(matches!(
        read_frame(&mut s),
        Err(vpg_api::codec::FrameError::Closed)
    ));
}

#[test]
fn the_reply_contract_holds_whatever_the_handler_does() {
    let dir = TempDir::new("contract");
    let path = dir.0.join("api.sock");
    serve(bind(&path).unwrap(), || {
        |req: Request, out: &mut dyn FnMut(Reply)| match req {
            // Forgets Done.
            Request::DumpNeighbors => out(Reply::Details(Details::Trace {
                worker: 0,
                text: "x".into(),
            })),
            // Answers nothing.
            Request::Clear { .. } => {}
            // Answers twice.
            Request::TraceAdd { .. } => {
                out(Reply::Ok { sw_if: None });
                out(Reply::Ok { sw_if: Some(9) });
            }
            _ => out(Reply::Ok { sw_if: None }),
        }
    });
    let mut c = Client::connect(&path, "t").unwrap();
    assert_eq!(c.dump(&Request::DumpNeighbors).unwrap().len(), 1);
    match c.clear(vpg_api::stats::ClearWhat::Errors) {
        Err(ClientError::Api(e)) => {
            assert_eq!(e.code, ErrorCode::Failed);
            assert!(e.message.contains("clear"), "{e}");
        }
        r => panic!("{r:?}"),
    }
    c.trace_add("ip4-input", 5).unwrap();
    // The second answer was dropped: the next reply belongs to the next request.
    assert_eq!(
        c.call(&Request::Config {
            item: ConfigItem::DeleteInterface { sw_if: 1 }
        })
        .unwrap(),
        Reply::Ok { sw_if: None }
    );
    // The client refuses to mix up one-reply calls and dumps.
    assert!(matches!(
        c.call(&Request::DumpRoutes),
        Err(ClientError::Unexpected(_))
    ));
    assert!(matches!(
        c.dump(&Request::Clear {
            what: vpg_api::stats::ClearWhat::Trace
        }),
        Err(ClientError::Unexpected(_))
    ));
}

/// A toy daemon: a route table behind the API, enough to drive the typed helpers.
#[derive(Default)]
struct Toy {
    routes: BTreeMap<Prefix, RoutePath>,
    next_if: u32,
}

impl Toy {
    fn apply(&mut self, item: ConfigItem) -> Result<Option<u32>, ApiError> {
        match item {
            ConfigItem::AddRoute { prefix, path } => {
                if self.routes.contains_key(&prefix) {
                    return Err(ApiError::already_exists(
                        format!("route {prefix}"),
                        "already exists",
                    )
                    .field("prefix"));
                }
                self.routes.insert(prefix, path);
                Ok(None)
            }
            ConfigItem::DelRoute { prefix } => match self.routes.remove(&prefix) {
                Some(_) => Ok(None),
                None => Err(ApiError::not_found(
                    format!("route {prefix}"),
                    "does not exist",
                )),
            },
            ConfigItem::CreateAfPacket { .. } => {
                self.next_if += 1;
                Ok(Some(self.next_if - 1))
            }
            _ => Ok(None),
        }
    }

    fn handle(&mut self, req: Request, out: &mut dyn FnMut(Reply)) {
        match req {
            Request::Config { item } => out(match self.apply(item) {
                Ok(sw_if) => Reply::Ok { sw_if },
                Err(e) => Reply::Error(e),
            }),
            Request::Transaction { items } => {
                // All or nothing: work on a copy, keep it only when every item applied.
                let mut copy = Toy {
                    routes: self.routes.clone(),
                    next_if: self.next_if,
                };
                let mut created = vec![];
                for (i, it) in items.iter().enumerate() {
                    match copy.apply(it.clone()) {
                        Ok(c) => created.extend(c),
                        Err(e) => return out(Reply::Error(e.item(i))),
                    }
                }
                *self = copy;
                out(Reply::Applied {
                    count: items.len(),
                    created,
                })
            }
            Request::DumpRoutes => {
                for (prefix, path) in &self.routes {
                    out(Reply::Details(Details::Route(RouteDetails {
                        prefix: *prefix,
                        path: *path,
                        source: "api".into(),
                        adj: 0,
                        adjacency: "drop".into(),
                    })));
                }
                out(Reply::Done)
            }
            Request::ShowVersion => {
                out(Reply::Details(Details::Version(
                    vpg_api::version::VersionDetails {
                        server: "toy".into(),
                        api_major: API_MAJOR,
                        api_minor: API_MINOR,
                        workers: 1,
                        stats_segment: "/dev/null".into(),
                        next_sw_if: None,
                    },
                )));
                out(Reply::Done)
            }
            r if r.is_dump() => out(Reply::Done),
            _ => out(Reply::Ok { sw_if: None }),
        }
    }
}

#[test]
fn typed_client_helpers_against_a_toy_daemon() {
    let dir = TempDir::new("toy");
    let path = dir.0.join("api.sock");
    let toy = Arc::new(Mutex::new(Toy::default()));
    let shared = toy.clone();
    serve(bind(&path).unwrap(), move || {
        let toy = shared.clone();
        move |req: Request, out: &mut dyn FnMut(Reply)| toy.lock().unwrap().handle(req, out)
    });
    let mut c = Client::connect(&path, "t").unwrap();
    assert_eq!(c.create_af_packet("eth1", Some("up0")).unwrap(), 0);
    c.add_route(p("10.8.0.0/16"), RoutePath::Drop).unwrap();
    match c.add_route(p("10.8.0.0/16"), RoutePath::Drop) {
        Err(ClientError::Api(e)) => {
            assert_eq!(e.code, ErrorCode::AlreadyExists);
            assert_eq!(e.to_string(), "route 10.8.0.0/16: already exists");
        }
        r => panic!("{r:?}"),
    }
    // Invalid input is refused by the client before it is sent.
    let e = c.add_route(p("10.8.0.1/16"), RoutePath::Drop).unwrap_err();
    assert!(e.to_string().contains("host bits"), "{e}");
    // A transaction with a duplicate applies nothing.
    let via = RoutePath::Via {
        next_hop: Ipv4Addr::new(10, 0, 2, 2),
        sw_if: 0,
    };
    let r = c.transaction(vec![
        ConfigItem::AddRoute {
            prefix: p("10.9.0.0/16"),
            path: via,
        },
        ConfigItem::AddRoute {
            prefix: p("10.8.0.0/16"),
            path: RoutePath::Drop,
        },
    ]);
    match r {
        Err(ClientError::Api(e)) => assert_eq!(e.item, Some(1)),
        r => panic!("{r:?}"),
    }
    assert_eq!(c.routes().unwrap().len(), 1);
    let applied = c
        .transaction(vec![
            ConfigItem::CreateAfPacket {
                host_if: "eth2".into(),
                name: None,
                mac: None,
            },
            ConfigItem::AddRoute {
                prefix: p("10.9.0.0/16"),
                path: via,
            },
        ])
        .unwrap();
    assert_eq!(
        applied,
        Applied {
            count: 2,
            created: vec![1]
        }
    );
    let routes = c.routes().unwrap();
    assert_eq!(
        routes.iter().map(|r| r.prefix).collect::<Vec<_>>(),
        vec![p("10.8.0.0/16"), p("10.9.0.0/16")]
    );
    c.del_route(p("10.8.0.0/16")).unwrap();
    assert!(matches!(
        c.del_route(p("10.8.0.0/16")),
        Err(ClientError::Api(ApiError {
            code: ErrorCode::NotFound,
            ..
        }))
    ));
    assert_eq!(c.version().unwrap().server, "toy");
    assert!(c.interfaces().unwrap().is_empty());
    assert!(c.neighbors().unwrap().is_empty());
    c.set_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    c.set_admin_state(0, true).unwrap();
    c.set_mtu(0, 1500).unwrap();
    c.add_address(0, p("10.0.2.1/24")).unwrap();
    c.add_neighbor(
        0,
        Ipv4Addr::new(10, 0, 2, 2),
        "02:00:00:00:00:02".parse().unwrap(),
    )
    .unwrap();
    c.del_neighbor(0, Ipv4Addr::new(10, 0, 2, 2)).unwrap();
    assert!(c.trace().unwrap().is_empty());
}

#[test]
fn raw_frames_written_by_hand_interoperate() {
    // The framing is simple enough to speak without this crate: a 4-byte big-endian length and
    // JSON.
    let dir = TempDir::new("raw");
    let path = dir.0.join("api.sock");
    serve(bind(&path).unwrap(), || {
        |_: Request, out: &mut dyn FnMut(Reply)| out(Reply::Ok { sw_if: None })
    });
    let mut s = UnixStream::connect(&path).unwrap();
    let hello = br#"{"api_major":1,"api_minor":0,"client":"by hand"}"#;
    write_frame(&mut s, hello).unwrap();
    let welcome: serde_json::Value = serde_json::from_slice(&read_frame(&mut s).unwrap()).unwrap();
    assert_eq!(welcome["hello"], "welcome");
    let req = br#"{"request":"config","item":{"op":"set_admin_state","sw_if":0,"up":true}}"#;
    let mut frame = (req.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(req);
    s.write_all(&frame).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    assert_eq!(body, br#"{"reply":"ok"}"#);
}
