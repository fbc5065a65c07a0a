//! The API's wire contract: every message round-trips, the schema golden pins the JSON, decoding
//! arbitrary bytes never panics, and the socket server does the handshake, refuses other major
//! versions and survives garbage.

use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use vpg_api::codec::{decode, read_frame, write_frame};
use vpg_api::interface::{InterfaceCounters, InterfaceDetails};
use vpg_api::route::{NeighborDetails, RouteDetails};
use vpg_api::stats::*;
use vpg_api::*;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}
fn mac() -> Mac {
    "02:00:00:00:00:01".parse().unwrap()
}

/// One example of every message variant.
fn examples() -> Vec<(&'static str, serde_json::Value)> {
    let ip = Ipv4Addr::new(10, 0, 2, 2);
    let items = vec![
        ConfigItem::CreateAfPacket {
            host_if: "eth1".into(),
            name: Some("up0".into()),
            mac: Some(mac()),
        },
        ConfigItem::DeleteInterface { sw_if: 1 },
        ConfigItem::SetAdminState { sw_if: 1, up: true },
        ConfigItem::SetMac {
            sw_if: 1,
            mac: mac(),
        },
        ConfigItem::SetMtu {
            sw_if: 1,
            mtu: 1500,
        },
        ConfigItem::AddAddress {
            sw_if: 1,
            prefix: p("10.0.2.1/24"),
        },
        ConfigItem::DelAddress {
            sw_if: 1,
            prefix: p("10.0.2.1/24"),
        },
        ConfigItem::SetProxyArp {
            sw_if: 1,
            prefixes: vec![p("10.1.0.0/16")],
        },
        ConfigItem::AddRoute {
            prefix: p("10.9.0.0/16"),
            path: RoutePath::Via {
                next_hop: ip,
                sw_if: 1,
            },
        },
        ConfigItem::AddRoute {
            prefix: p("10.8.0.0/16"),
            path: RoutePath::Attached { sw_if: 1 },
        },
        ConfigItem::AddRoute {
            prefix: p("10.7.0.0/16"),
            path: RoutePath::Drop,
        },
        ConfigItem::AddRoute {
            prefix: p("10.6.0.1/32"),
            path: RoutePath::Local,
        },
        ConfigItem::DelRoute {
            prefix: p("10.9.0.0/16"),
        },
        ConfigItem::AddNeighbor {
            sw_if: 1,
            ip,
            mac: mac(),
        },
        ConfigItem::DelNeighbor { sw_if: 1, ip },
        ConfigItem::EnableFeature {
            arc: "ip4-output".into(),
            feature: "acl-out-ip4".into(),
            sw_if: 1,
        },
        ConfigItem::DisableFeature {
            arc: "ip4-output".into(),
            feature: "acl-out-ip4".into(),
            sw_if: 1,
        },
    ];
    let mut out: Vec<(&str, serde_json::Value)> = Vec::new();
    let j = |v: &dyn erased::Ser| v.json();
    out.push((
        "hello",
        j(&Hello {
            api_major: 1,
            api_minor: 0,
            client: "vpgctl".into(),
        }),
    ));
    out.push((
        "hello_welcome",
        j(&HelloReply::Welcome {
            api_major: 1,
            api_minor: 0,
            server: "vpgd".into(),
        }),
    ));
    out.push((
        "hello_refused",
        j(&HelloReply::Refused(ApiError::new(
            ErrorCode::VersionMismatch,
            "x",
        ))),
    ));
    out.push((
        "request_transaction",
        j(&Request::Transaction {
            items: items.clone(),
        }),
    ));
    for it in items {
        out.push(("request_config", j(&Request::Config { item: it })));
    }
    for r in [
        Request::DumpInterfaces,
        Request::DumpRoutes,
        Request::DumpNeighbors,
        Request::DumpFeatures,
        Request::DumpRuntime,
        Request::DumpErrors,
        Request::DumpBuffers,
        Request::DumpTrace,
        Request::ShowVersion,
        Request::TraceAdd {
            node: "af-packet-input".into(),
            count: 10,
        },
        Request::Clear {
            what: ClearWhat::Runtime,
        },
    ] {
        out.push(("request", j(&r)));
    }
    let details = vec![
        Details::Interface(InterfaceDetails {
            sw_if: 1,
            name: "up0".into(),
            host_if: "eth1".into(),
            mac: mac(),
            admin_up: true,
            mtu: 1500,
            addresses: vec![p("10.0.2.1/24")],
            proxy_arp: vec![],
            counters: InterfaceCounters::default(),
        }),
        Details::Route(RouteDetails {
            prefix: p("10.9.0.0/16"),
            path: RoutePath::Via {
                next_hop: ip,
                sw_if: 1,
            },
            source: "api".into(),
            adj: 4,
            adjacency: "rewrite".into(),
        }),
        Details::Neighbor(NeighborDetails {
            sw_if: 1,
            ip,
            mac: mac(),
        }),
        Details::Feature(FeatureDetails {
            arc: "ip4-output".into(),
            feature: "f".into(),
            sw_if: 1,
        }),
        Details::Runtime(RuntimeDetails {
            worker: 0,
            node: "ip4-input".into(),
            calls: 1,
            vectors: 2,
            clocks: 3,
        }),
        Details::Error(ErrorDetails {
            count: 1,
            node: "ip4-input".into(),
            name: "bad-checksum".into(),
            description: "d".into(),
        }),
        Details::Buffers(BufferDetails {
            worker: 0,
            total: 1,
            free: 1,
            alloc_failures: 0,
            double_frees: 0,
            pages: "4K pages".into(),
        }),
        Details::Trace {
            worker: 0,
            text: "t".into(),
        },
        Details::Version(VersionDetails {
            server: "vpgd".into(),
            api_major: 1,
            api_minor: 0,
            workers: 1,
            stats_segment: "/run/vpg/stats".into(),
        }),
    ];
    for d in details {
        out.push(("reply_details", j(&Reply::Details(d))));
    }
    out.push(("reply_ok", j(&Reply::Ok { sw_if: Some(3) })));
    out.push((
        "reply_applied",
        j(&Reply::Applied {
            count: 2,
            created: vec![0],
        }),
    ));
    out.push((
        "reply_error",
        j(&Reply::Error(
            ApiError::new(ErrorCode::NotFound, "m")
                .object("route 10.0.0.0/8")
                .field("prefix")
                .item(2),
        )),
    ));
    out.push(("reply_done", j(&Reply::Done)));
    out
}

mod erased {
    pub trait Ser {
        fn json(&self) -> serde_json::Value;
    }
    impl<T: serde::Serialize> Ser for T {
        fn json(&self) -> serde_json::Value {
            serde_json::to_value(self).unwrap()
        }
    }
}

#[test]
fn schema_matches_the_golden_snapshot() {
    let mut text = String::new();
    for (name, v) in examples() {
        text.push_str(&format!("{name} {v}\n"));
    }
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("schema.golden");
    if std::env::var("VPG_UPDATE_GOLDEN").is_ok() {
        std::fs::write(&path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        golden == text,
        "the API's messages changed.\nAn incompatible change needs a new message (`_v2`) instead; a compatible addition \
         needs API_MINOR bumped and the golden regenerated with VPG_UPDATE_GOLDEN=1 cargo test -p vpg-api.\n--- golden\n{golden}\n+++ now\n{text}"
    );
}

#[test]
fn every_message_round_trips() {
    for (name, v) in examples() {
        let bytes = serde_json::to_vec(&v).unwrap();
        let back: serde_json::Value = match name {
            "hello" => serde_json::to_value(decode::<Hello>(&bytes).unwrap()).unwrap(),
            n if n.starts_with("hello_") => {
                serde_json::to_value(decode::<HelloReply>(&bytes).unwrap()).unwrap()
            }
            n if n.starts_with("request") => {
                serde_json::to_value(decode::<Request>(&bytes).unwrap()).unwrap()
            }
            _ => serde_json::to_value(decode::<Reply>(&bytes).unwrap()).unwrap(),
        };
        assert_eq!(back, v, "{name}");
    }
}

#[test]
fn validation_names_the_field() {
    let e = ConfigItem::AddRoute {
        prefix: p("10.0.0.1/8"),
        path: RoutePath::Drop,
    }
    .validate()
    .unwrap_err();
    assert_eq!(e.field.as_deref(), Some("prefix"));
    assert!(
        e.to_string().contains("host bits") && e.to_string().contains("10.0.0.0/8"),
        "{e}"
    );
    let e = ConfigItem::SetMtu { sw_if: 0, mtu: 20 }
        .validate()
        .unwrap_err();
    assert_eq!(e.to_string(), "mtu: 20 is out of range 68..=9000");
    assert!(ConfigItem::CreateAfPacket {
        host_if: "a-very-long-interface-name".into(),
        name: None,
        mac: None
    }
    .validate()
    .is_err());
    assert!(ConfigItem::EnableFeature {
        arc: "ip6".into(),
        feature: "x".into(),
        sw_if: 0
    }
    .validate()
    .is_err());
    assert!(decode::<Request>(br#"{"request":"config","item":{"op":"add_route","prefix":"10.0.0.0/33","path":{"kind":"drop"}}}"#).is_err());
    let typo = br#"{"request":"config","item":{"op":"set_mtu","sw_if":1,"mtu":1500,"mut":9000}}"#;
    assert!(
        decode::<Request>(typo).unwrap_err().message.contains("mut"),
        "unknown fields in changes are refused, by name"
    );
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Request>(&bytes);
        let _ = decode::<Reply>(&bytes);
        let _ = decode::<Hello>(&bytes);
        let mut r = &bytes[..];
        while let Ok(b) = read_frame(&mut r) {
            let _ = decode::<Request>(&b);
        }
    }

    #[test]
    fn json_shaped_garbage_never_panics(s in r#"\{"request":"[a-z_]{0,20}"(,"[a-z_]{1,8}":("[0-9./a-z:]{0,20}"|[0-9]{1,12}|\[\]|null))*\}"#) {
        let _ = decode::<Request>(s.as_bytes());
    }
}

#[test]
fn oversized_frames_are_refused_before_allocation() {
    let mut bytes = (u32::MAX).to_be_bytes().to_vec();
    bytes.extend_from_slice(b"xx");
    assert!(matches!(
        read_frame(&mut &bytes[..]),
        Err(vpg_api::codec::FrameError::TooLarge(_))
    ));
    let mut buf = Vec::new();
    write_frame(&mut buf, b"{}").unwrap();
    assert_eq!(read_frame(&mut &buf[..]).unwrap(), b"{}");
}

#[test]
fn socket_server_handshake_versions_and_garbage() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("vpg-api-{}", std::process::id()));
    let path = dir.join("api.sock");
    let listener = vpg_api::server::bind(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::thread::spawn(move || {
        for s in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let _ =
                    vpg_api::server::serve_connection(
                        s,
                        "test-server",
                        &mut |req, out| match req {
                            Request::DumpRoutes => {
                                out(Reply::Details(Details::Neighbor(NeighborDetails {
                                    sw_if: 0,
                                    ip: Ipv4Addr::LOCALHOST,
                                    mac: mac(),
                                })));
                                out(Reply::Done);
                            }
                            _ => out(Reply::Ok { sw_if: None }),
                        },
                    );
            });
        }
    });
    let mut c = Client::connect(&path, "test").unwrap();
    assert_eq!(c.server, "test-server");
    assert_eq!(
        c.call(&Request::ShowVersion).unwrap(),
        Reply::Ok { sw_if: None }
    );
    assert_eq!(c.dump(&Request::DumpRoutes).unwrap().len(), 1);
    // Garbage gets an error reply, and the connection keeps working.
    match c.raw(b"\x00\xffnot json").unwrap() {
        Reply::Error(e) => assert_eq!(e.code, ErrorCode::Decode),
        r => panic!("{r:?}"),
    }
    match c.raw(br#"{"request":"teleport"}"#).unwrap() {
        Reply::Error(e) => assert_eq!(e.code, ErrorCode::Decode),
        r => panic!("{r:?}"),
    }
    assert_eq!(
        c.call(&Request::ShowVersion).unwrap(),
        Reply::Ok { sw_if: None }
    );
    // Another major version is refused with a reason.
    match Client::connect_as(&path, "old", API_MAJOR + 1, 0) {
        Err(ClientError::Api(e)) => {
            assert_eq!(e.code, ErrorCode::VersionMismatch);
            assert!(e.message.contains("API 2.0"), "{e}");
        }
        other => panic!("{:?}", other.map(|c| c.server)),
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
