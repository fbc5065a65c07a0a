//! The API's wire contract: every message round-trips through the codec, the schema golden
//! pins the JSON, validation names what is wrong, and decoding arbitrary bytes never panics.
//! (The socket server is tested in `socket.rs`.)

use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use vpg_api::acl::{
    AclClassifierDetails, AclDetails, AclInterfaceDetails, AclMatchDetails, AclMatchQuery, AclRule,
    AclSessionDetails, AclSessionSettings, AclUse, Direction, Range, SessionFilter,
};
use vpg_api::codec::{decode, encode, read_frame, write_frame};
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
    // Added in API 1.1 (kept out of the 1.0 transaction example so that line stays as it was).
    let acl_items = vec![
        ConfigItem::AclAddReplace {
            acl_id: 7,
            tag: "web".into(),
            rules: vec![
                AclRule {
                    action: "permit+reflect".into(),
                    src: p("10.1.0.0/16"),
                    dst: p("0.0.0.0/0"),
                    proto: 6,
                    sport: Range {
                        lo: 1024,
                        hi: 65535,
                    },
                    dport: Range { lo: 80, hi: 80 },
                    tcp_flags_value: 2,
                    tcp_flags_mask: 18,
                },
                AclRule {
                    action: "deny".into(),
                    src: p("0.0.0.0/0"),
                    dst: p("0.0.0.0/0"),
                    proto: 0,
                    sport: Range::default(),
                    dport: Range::default(),
                    tcp_flags_value: 0,
                    tcp_flags_mask: 0,
                },
            ],
        },
        ConfigItem::AclDelete { acl_id: 7 },
        ConfigItem::AclSetInterface {
            sw_if: 1,
            direction: Direction::Output,
            acls: vec![7, 8],
        },
        ConfigItem::AclSessions(AclSessionSettings {
            max_per_worker: Some(1000),
            tcp_transient_s: Some(60),
            tcp_established_s: Some(3600),
            udp_s: Some(300),
            reclassify: Some(true),
        }),
        ConfigItem::AclSessions(AclSessionSettings::default()),
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
    for it in items.into_iter().chain(acl_items) {
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
        Request::DumpAcls { acl_id: Some(7) },
        Request::DumpAcls { acl_id: None },
        Request::DumpAclInterfaces,
        Request::DumpAclSessions {
            filter: SessionFilter {
                sw_if: Some(1),
                addr: Some(ip),
                port: Some(80),
                proto: Some(6),
            },
        },
        Request::ClearAclSessions {
            filter: SessionFilter::default(),
        },
        Request::DumpAclClassifiers,
        Request::AclMatch(AclMatchQuery {
            sw_if: 1,
            direction: Direction::Input,
            proto: 6,
            src: ip,
            sport: 1000,
            dst: ip,
            dport: 80,
            tcp_flags: 2,
        }),
        Request::ClearAclCounters,
    ] {
        out.push(("request", j(&r)));
    }
    let acl_use = AclUse {
        sw_if: 1,
        direction: Direction::Output,
    };
    let details = vec![
        Details::Acl(AclDetails {
            acl_id: 7,
            tag: "web".into(),
            rules: vec![AclRule {
                action: "permit".into(),
                src: p("10.1.0.0/16"),
                dst: p("0.0.0.0/0"),
                proto: 17,
                sport: Range::default(),
                dport: Range { lo: 53, hi: 53 },
                tcp_flags_value: 0,
                tcp_flags_mask: 0,
            }],
            hits: vec![12],
            used_by: vec![acl_use],
        }),
        Details::AclInterface(AclInterfaceDetails {
            sw_if: 1,
            input: vec![1],
            output: vec![7, 8],
        }),
        Details::AclSession(AclSessionDetails {
            worker: 0,
            sw_if: 1,
            proto: 6,
            src: ip,
            sport: 40000,
            dst: ip,
            dport: 80,
            state: "established".into(),
            packets: 9,
            idle_s: 3,
            expires_in_s: 86397,
        }),
        Details::AclClassifier(AclClassifierDetails {
            acls: vec![7, 8],
            used_by: vec![acl_use],
            rules: 925,
            words: 15,
            addr_intervals: [76, 572],
            classes: [56, 324, 1, 99, 4],
            l4_classes: Some(115),
            bytes: 858930,
        }),
        Details::AclMatch(AclMatchDetails {
            action: "deny".into(),
            acl_id: Some(7),
            tag: Some("web".into()),
            rule_index: Some(1),
            rule: Some("deny 0.0.0.0/0 -> 0.0.0.0/0 any".into()),
            reason: "acl 7 rule 1 matches first".into(),
        }),
        Details::AclMatch(AclMatchDetails {
            action: "deny".into(),
            acl_id: None,
            tag: None,
            rule_index: None,
            rule: None,
            reason: "no rule matched".into(),
        }),
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
            next_sw_if: None,
        }),
    ];
    for d in details {
        out.push(("reply_details", j(&Reply::Details(d))));
    }
    // 1.3: the next interface index.
    out.push((
        "reply_details_version_1_3",
        j(&Reply::Details(Details::Version(VersionDetails {
            server: "vpgd".into(),
            api_major: 1,
            api_minor: 3,
            workers: 1,
            stats_segment: "/run/vpg/stats".into(),
            next_sw_if: Some(4),
        }))),
    ));
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
    // Minimal forms: every optional field absent, so that making one required shows here.
    out.push((
        "request_config_minimal",
        j(&Request::Config {
            item: ConfigItem::CreateAfPacket {
                host_if: "eth1".into(),
                name: None,
                mac: None,
            },
        }),
    ));
    out.push((
        "request_transaction_empty",
        j(&Request::Transaction { items: vec![] }),
    ));
    out.push(("reply_ok_minimal", j(&Reply::Ok { sw_if: None })));
    out.push((
        "reply_error_minimal",
        j(&Reply::Error(ApiError::new(ErrorCode::Failed, "m"))),
    ));
    // Every value of the plain enums.
    out.push((
        "error_codes",
        j(&[
            ErrorCode::BadRequest,
            ErrorCode::Decode,
            ErrorCode::VersionMismatch,
            ErrorCode::NotFound,
            ErrorCode::AlreadyExists,
            ErrorCode::Failed,
            ErrorCode::Unknown,
        ]),
    ));
    out.push((
        "clear_what",
        j(&[
            ClearWhat::Runtime,
            ClearWhat::Errors,
            ClearWhat::Interfaces,
            ClearWhat::Trace,
        ]),
    ));
    out.extend(vxlan_examples());
    out.extend(nat44_examples());
    out.extend(esp_examples());
    out
}

/// The NAT44 messages (API 1.2).
fn nat44_examples() -> Vec<(&'static str, serde_json::Value)> {
    use vpg_api::nat44::*;
    let j = |v: &dyn erased::Ser| v.json();
    let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
    let mapping = Nat44Mapping {
        external: ip("10.96.0.10"),
        proto: Some(6),
        external_port: 80,
        locals: vec![
            Nat44Local {
                address: ip("10.1.1.2"),
                port: 8080,
                weight: 1,
            },
            Nat44Local {
                address: ip("10.1.2.2"),
                port: 8080,
                weight: 2,
            },
        ],
        out2in_only: Some(true),
        tag: "default/web".into(),
    };
    let identity = Nat44Identity {
        address: ip("192.0.2.1"),
        proto: Some(17),
        port: 4789,
        tag: "vxlan".into(),
    };
    let settings = Nat44Settings {
        never_nat: Some(vec!["10.0.0.0/8".parse().unwrap()]),
        loopback: Some(ip("10.1.1.254")),
        port_range: Some([1024, 65535]),
        timeouts: Some(Nat44Timeouts {
            udp: 300,
            tcp_established: 7440,
            tcp_transitory: 240,
            icmp: 60,
        }),
        sessions_per_worker: Some(131072),
        sessions_per_address: Some(0),
    };
    let address = Nat44AddressDetails {
        address: Some(ip("192.0.2.1")),
        sw_if: Some(1),
        ports_tcp: 3,
        ports_udp: 2,
        ports_icmp: 1,
        sessions: 6,
    };
    let flow = |a: &str, p: u16, b: &str, q: u16| Nat44Flow {
        src: ip(a),
        sport: p,
        dst: ip(b),
        dport: q,
    };
    let session = Nat44SessionDetails {
        worker: 0,
        index: 7,
        kind: "dynamic".into(),
        proto: 6,
        inside: flow("10.1.1.2", 40000, "8.8.8.8", 443),
        outside: flow("192.0.2.1", 40000, "8.8.8.8", 443),
        state: "established".into(),
        packets_fwd: 10,
        packets_rev: 9,
        bytes: 1900,
        idle_s: 1,
        expires_in_s: 7439,
        mapping: None,
    };
    let summary = Nat44SummaryDetails {
        workers: vec![Nat44WorkerSummary {
            worker: 0,
            sessions: 6,
            capacity: 131072,
            tcp: 3,
            udp: 2,
            icmp: 1,
            other: 0,
            ports: [1024, 65535],
        }],
        addresses: vec![address.clone()],
        counters: vec![Nat44Counter {
            node: "nat44-in2out".into(),
            name: "out-of-ports".into(),
            count: 1,
        }],
        settings: settings.clone(),
    };
    let pool = Nat44PoolEntry {
        address: None,
        sw_if: Some(1),
    };
    let cfg = |item| j(&Request::Config { item });
    vec![
        (
            "request_config",
            cfg(ConfigItem::Nat44AddPool(pool.clone())),
        ),
        ("request_config", cfg(ConfigItem::Nat44DelPool(pool))),
        (
            "request_config",
            cfg(ConfigItem::Nat44SetInterface {
                sw_if: 1,
                inside: false,
                outside: true,
            }),
        ),
        (
            "request_config",
            cfg(ConfigItem::Nat44AddMapping(mapping.clone())),
        ),
        (
            "request_config",
            cfg(ConfigItem::Nat44DelMapping(Nat44MappingKey {
                external: ip("10.96.0.10"),
                proto: Some(6),
                external_port: 80,
            })),
        ),
        (
            "request_config",
            cfg(ConfigItem::Nat44AddIdentity(identity.clone())),
        ),
        (
            "request_config",
            cfg(ConfigItem::Nat44DelIdentity(identity.clone())),
        ),
        ("request_config", cfg(ConfigItem::Nat44Settings(settings))),
        ("request", j(&Request::DumpNat44Addresses)),
        ("request", j(&Request::DumpNat44Interfaces)),
        ("request", j(&Request::DumpNat44Mappings)),
        (
            "request",
            j(&Request::DumpNat44Sessions {
                filter: Nat44SessionFilter {
                    addr: Some(ip("10.1.1.2")),
                    port: Some(443),
                    proto: Some(6),
                    kind: Some("dynamic".into()),
                    worker: Some(0),
                },
            }),
        ),
        (
            "request",
            j(&Request::ClearNat44Sessions {
                filter: Nat44SessionFilter::default(),
            }),
        ),
        ("request", j(&Request::DumpNat44Summary)),
        (
            "reply_details",
            j(&Reply::Details(Details::Nat44Address(address))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::Nat44Interface(
                Nat44InterfaceDetails {
                    sw_if: 0,
                    inside: true,
                    outside: false,
                },
            ))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::Nat44Mapping(
                Nat44MappingDetails {
                    mapping,
                    sessions: 2,
                },
            ))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::Nat44Identity(identity))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::Nat44Session(session))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::Nat44Summary(summary))),
        ),
    ]
}

/// The ESP messages (API 1.2), full and minimal.
fn esp_examples() -> Vec<(&'static str, serde_json::Value)> {
    use vpg_api::esp::*;
    let j = |v: &dyn erased::Ser| v.json();
    let lifetime = EspLifetime {
        soft_packets: Some(1 << 30),
        soft_bytes: Some(1 << 40),
        soft_seconds: Some(3000),
        hard_packets: Some(1 << 31),
        hard_bytes: Some(1 << 41),
        hard_seconds: Some(3600),
    };
    let sa = EspSaAdd {
        sa_id: 11,
        spi: 0x2001,
        direction: EspDirection::Out,
        mode: EspMode::Tunnel,
        tunnel_src: Some(Ipv4Addr::new(192, 168, 1, 1)),
        tunnel_dst: Some(Ipv4Addr::new(192, 168, 1, 2)),
        crypto: EspCrypto::AesGcm256,
        key: "0x".to_string() + &"ab".repeat(36),
        key_id: 1,
        esn: true,
        replay_window: Some(4096),
        worker: Some(1),
        lifetime: Some(lifetime),
    };
    let minimal_sa = EspSaAdd {
        sa_id: 12,
        spi: 0x1001,
        direction: EspDirection::In,
        mode: EspMode::Transport,
        tunnel_src: None,
        tunnel_dst: None,
        crypto: EspCrypto::AesGcm128,
        key: "cd".repeat(20),
        key_id: 1,
        esn: false,
        replay_window: None,
        worker: None,
        lifetime: None,
    };
    let rule = EspProtectAdd {
        rule_id: 1,
        dst: Some("192.168.1.2/32".parse().unwrap()),
        tunnel: None,
        proto: Some(17),
        port: Some(4789),
        sas: vec![11],
        replace: true,
    };
    let minimal_rule = EspProtectAdd {
        rule_id: 2,
        dst: None,
        tunnel: Some(2),
        proto: None,
        port: None,
        sas: vec![],
        replace: false,
    };
    let counters = EspSaCounters {
        packets: 10,
        bytes: 3000,
        auth_failures: 1,
        replays: 2,
        drops: 3,
        seq: 10,
    };
    let details = EspSaDetails {
        sa_id: 11,
        spi: 0x2001,
        direction: EspDirection::Out,
        mode: EspMode::Tunnel,
        tunnel_src: Some(Ipv4Addr::new(192, 168, 1, 1)),
        tunnel_dst: Some(Ipv4Addr::new(192, 168, 1, 2)),
        crypto: EspCrypto::AesGcm256,
        key_id: 1,
        fingerprint: "0123456789abcdef".into(),
        esn: true,
        replay_window: 4096,
        worker: 1,
        backend: "auto".into(),
        state: "retiring".into(),
        age_s: 30,
        retire_in_s: Some(10),
        lifetime,
        counters,
        seq_reserved: None,
    };
    let reserved_details = EspSaDetails {
        seq_reserved: Some(1 << 22),
        ..details.clone()
    };
    let minimal_details = EspSaDetails {
        tunnel_src: None,
        tunnel_dst: None,
        mode: EspMode::Transport,
        retire_in_s: None,
        lifetime: EspLifetime::default(),
        state: "active".into(),
        ..details.clone()
    };
    let protect = EspProtectDetails {
        rule_id: 2,
        dst: "192.168.1.2/32".parse().unwrap(),
        tunnel: Some(2),
        proto: Some(17),
        port: Some(4789),
        sas: vec![11, 13],
        protected: 100,
        no_sa_drops: 1,
    };
    let minimal_protect = EspProtectDetails {
        tunnel: None,
        proto: None,
        port: None,
        sas: vec![],
        ..protect.clone()
    };
    let summary = EspSummaryDetails {
        sas_in: 2,
        sas_out: 2,
        rules: 1,
        encrypt_interfaces: vec![1],
        decrypt_interfaces: vec![1],
        encrypted: 100,
        decrypted: 99,
        would_have_left_in_clear: 3,
        auth_failures: 1,
        replays: 2,
        backend: "auto".into(),
        sequences: None,
    };
    let summary_with_sequences = EspSummaryDetails {
        sequences: Some(EspSequenceSummary {
            file: "/var/lib/vpg/esp-sequences.json".into(),
            keys: 4,
            unreserved_drops: 0,
        }),
        ..summary.clone()
    };
    let sequence = EspSequenceDetails {
        fingerprint: "0123456789abcdef".into(),
        direction: EspDirection::Out,
        seq: 1 << 23,
        sa_id: Some(11),
    };
    let minimal_sequence = EspSequenceDetails {
        sa_id: None,
        ..sequence.clone()
    };
    let cfg = |item| j(&Request::Config { item });
    vec![
        ("request_config", cfg(ConfigItem::EspSaAdd(sa))),
        (
            "request_config_minimal",
            cfg(ConfigItem::EspSaAdd(minimal_sa)),
        ),
        ("request_config", cfg(ConfigItem::EspSaDel { sa_id: 11 })),
        (
            "request_config",
            cfg(ConfigItem::EspSaRetire {
                sa_id: 11,
                grace_s: 30,
            }),
        ),
        ("request_config", cfg(ConfigItem::EspProtectAdd(rule))),
        (
            "request_config_minimal",
            cfg(ConfigItem::EspProtectAdd(minimal_rule)),
        ),
        (
            "request_config",
            cfg(ConfigItem::EspProtectDel { rule_id: 1 }),
        ),
        ("request", j(&Request::DumpEspSas)),
        ("request", j(&Request::DumpEspProtect)),
        ("request", j(&Request::DumpEspSummary)),
        ("reply_details", j(&Reply::Details(Details::EspSa(details)))),
        (
            "reply_details_minimal",
            j(&Reply::Details(Details::EspSa(minimal_details))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::EspProtect(protect))),
        ),
        (
            "reply_details_minimal",
            j(&Reply::Details(Details::EspProtect(minimal_protect))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::EspSummary(summary))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::EspSummary(summary_with_sequences))),
        ),
        (
            "reply_details",
            j(&Reply::Details(Details::EspSa(reserved_details))),
        ),
        ("request", j(&Request::DumpEspSequences)),
        (
            "reply_details",
            j(&Reply::Details(Details::EspSequence(sequence))),
        ),
        (
            "reply_details_minimal",
            j(&Reply::Details(Details::EspSequence(minimal_sequence))),
        ),
        (
            "esp_enums",
            j(&(
                [EspDirection::In, EspDirection::Out],
                [EspMode::Transport, EspMode::Tunnel],
                [EspCrypto::AesGcm128, EspCrypto::AesGcm256],
            )),
        ),
    ]
}

/// The VXLAN messages (API 1.1), full and minimal.
fn vxlan_examples() -> Vec<(&'static str, serde_json::Value)> {
    let j = |v: &dyn erased::Ser| v.json();
    let create = ConfigItem::CreateVxlanTunnel {
        local: Ipv4Addr::new(192, 168, 1, 1),
        remote: Ipv4Addr::new(192, 168, 1, 2),
        vni: 42,
        port: Some(4789),
        name: Some("vx0".into()),
        mac: Some(mac()),
        remote_mac: Some("02:00:00:00:00:02".parse().unwrap()),
    };
    let minimal = ConfigItem::CreateVxlanTunnel {
        local: Ipv4Addr::new(192, 168, 1, 1),
        remote: Ipv4Addr::new(192, 168, 1, 2),
        vni: 42,
        port: None,
        name: None,
        mac: None,
        remote_mac: None,
    };
    let details = vpg_api::vxlan::VxlanTunnelDetails {
        sw_if: 2,
        name: "vx0".into(),
        local: Ipv4Addr::new(192, 168, 1, 1),
        remote: Ipv4Addr::new(192, 168, 1, 2),
        vni: 42,
        port: 4789,
        mac: mac(),
        remote_mac: Some("02:00:00:00:00:02".parse().unwrap()),
        remote_mac_learned: true,
        admin_up: true,
        mtu: 1450,
        counters: InterfaceCounters::default(),
    };
    let unknown_peer = vpg_api::vxlan::VxlanTunnelDetails {
        remote_mac: None,
        remote_mac_learned: false,
        ..details.clone()
    };
    vec![
        ("request_config", j(&Request::Config { item: create })),
        (
            "request_config_minimal",
            j(&Request::Config { item: minimal }),
        ),
        (
            "request_config",
            j(&Request::Config {
                item: ConfigItem::DeleteVxlanTunnel { sw_if: 2 },
            }),
        ),
        ("request", j(&Request::DumpVxlanTunnels)),
        (
            "reply_details",
            j(&Reply::Details(Details::VxlanTunnel(details))),
        ),
        (
            "reply_details_minimal",
            j(&Reply::Details(Details::VxlanTunnel(unknown_peer))),
        ),
    ]
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
    if std::env::var_os("VPG_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let golden = std::fs::read_to_string(&path).unwrap_or_default();
    if golden == text {
        return;
    }
    let (old, new): (Vec<&str>, Vec<&str>) = (golden.lines().collect(), text.lines().collect());
    let mut diff = String::new();
    for l in old.iter().filter(|l| !new.contains(l)) {
        diff.push_str(&format!("- {l}\n"));
    }
    for l in new.iter().filter(|l| !old.contains(l)) {
        diff.push_str(&format!("+ {l}\n"));
    }
    panic!(
        "the API's messages changed (api/schema.golden).\n\
         An incompatible change (a removed, renamed or retyped field or message, an optional field \
         made required) must not be made: add a new message (`..._v2`) beside the old one instead.\n\
         A compatible addition (a new message, a new optional reply field) bumps API_MINOR; then \
         regenerate the golden with `VPG_UPDATE_GOLDEN=1 cargo test -p vpg-api` and commit it.\n{diff}"
    );
}

#[test]
fn every_message_round_trips() {
    let mut stream = Vec::new();
    for (_, v) in examples() {
        write_frame(&mut stream, &encode(&v)).unwrap();
    }
    let mut r = &stream[..];
    for (name, v) in examples() {
        let bytes = read_frame(&mut r).unwrap();
        let back: serde_json::Value = match name {
            "error_codes" => {
                serde_json::to_value(decode::<Vec<ErrorCode>>(&bytes).unwrap()).unwrap()
            }
            "clear_what" => {
                serde_json::to_value(decode::<Vec<ClearWhat>>(&bytes).unwrap()).unwrap()
            }
            "esp_enums" => {
                use vpg_api::esp::{EspCrypto, EspDirection, EspMode};
                type Enums = ([EspDirection; 2], [EspMode; 2], [EspCrypto; 2]);
                serde_json::to_value(decode::<Enums>(&bytes).unwrap()).unwrap()
            }
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
    assert!(matches!(
        read_frame(&mut r),
        Err(vpg_api::codec::FrameError::Closed)
    ));
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
    assert_eq!(
        e.to_string(),
        "interface 0: mtu 20 is out of range 68..=9000"
    );
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

/// Every way a request can be wrong without daemon state gets a typed error naming the field,
/// and a request from the examples that is right passes.
#[test]
fn validation_covers_every_family() {
    let bad: Vec<(Request, &str)> = vec![
        (
            Request::Config {
                item: ConfigItem::CreateAfPacket {
                    host_if: "".into(),
                    name: None,
                    mac: None,
                },
            },
            "host_if",
        ),
        (
            Request::Config {
                item: ConfigItem::CreateAfPacket {
                    host_if: "eth1".into(),
                    name: Some("has space".into()),
                    mac: None,
                },
            },
            "name",
        ),
        (
            Request::Config {
                item: ConfigItem::CreateAfPacket {
                    host_if: "eth1".into(),
                    name: None,
                    mac: Some(Mac::BROADCAST),
                },
            },
            "mac",
        ),
        (
            Request::Config {
                item: ConfigItem::SetMac {
                    sw_if: 1,
                    mac: Mac([0; 6]),
                },
            },
            "mac",
        ),
        (
            Request::Config {
                item: ConfigItem::SetMtu {
                    sw_if: 1,
                    mtu: 9001,
                },
            },
            "mtu",
        ),
        (
            Request::Config {
                item: ConfigItem::AddAddress {
                    sw_if: 1,
                    prefix: p("0.0.0.0/0"),
                },
            },
            "prefix",
        ),
        (
            Request::Config {
                item: ConfigItem::SetProxyArp {
                    sw_if: 1,
                    prefixes: vec![p("10.1.2.3/16")],
                },
            },
            "prefixes",
        ),
        (
            Request::Config {
                item: ConfigItem::DelRoute {
                    prefix: p("10.1.2.3/16"),
                },
            },
            "prefix",
        ),
        (
            Request::Config {
                item: ConfigItem::AddRoute {
                    prefix: p("10.1.0.0/16"),
                    path: RoutePath::Via {
                        next_hop: Ipv4Addr::UNSPECIFIED,
                        sw_if: 1,
                    },
                },
            },
            "next_hop",
        ),
        (
            Request::Config {
                item: ConfigItem::AddNeighbor {
                    sw_if: 1,
                    ip: Ipv4Addr::new(224, 0, 0, 1),
                    mac: mac(),
                },
            },
            "ip",
        ),
        (
            Request::Config {
                item: ConfigItem::DisableFeature {
                    arc: "ip4-output".into(),
                    feature: "".into(),
                    sw_if: 1,
                },
            },
            "feature",
        ),
        (
            Request::TraceAdd {
                node: "af-packet-input".into(),
                count: 0,
            },
            "count",
        ),
        (
            Request::Config {
                item: ConfigItem::CreateVxlanTunnel {
                    local: Ipv4Addr::new(192, 168, 1, 1),
                    remote: Ipv4Addr::new(192, 168, 1, 2),
                    vni: 1 << 24,
                    port: None,
                    name: None,
                    mac: None,
                    remote_mac: None,
                },
            },
            "vni",
        ),
        (
            Request::TraceAdd {
                node: "no such node".into(),
                count: 1,
            },
            "node",
        ),
    ];
    for (req, field) in bad {
        let e = req.validate().unwrap_err();
        assert_eq!(e.code, ErrorCode::BadRequest, "{req:?}");
        assert_eq!(e.field.as_deref(), Some(field), "{req:?}: {e}");
        assert!(e.item.is_none());
    }
    // In a transaction the error names the item; every example item is valid.
    let Request::Transaction { items } = decode::<Request>(
        examples()
            .iter()
            .find(|(n, _)| *n == "request_transaction")
            .unwrap()
            .1
            .to_string()
            .as_bytes(),
    )
    .unwrap() else {
        panic!()
    };
    assert!(vpg_api::config::validate_all(&items).is_ok());
    let mut items = items;
    items.insert(3, ConfigItem::SetMtu { sw_if: 1, mtu: 20 });
    let e = Request::Transaction { items }.validate().unwrap_err();
    assert_eq!(e.item, Some(3));
    assert_eq!(
        e.to_string(),
        "item 3: interface 1: mtu 20 is out of range 68..=9000"
    );
    for (name, v) in examples() {
        if name.starts_with("request") {
            let r: Request = serde_json::from_value(v).unwrap();
            assert!(r.validate().is_ok(), "{name}: {r:?}");
        }
    }
}

/// Values for the JSON-tree generator: real tags, field names and interesting values, so that
/// a fair share of the generated documents decode and reach validation.
const KEYS: &[&str] = &[
    "request", "item", "items", "op", "sw_if", "host_if", "name", "mac", "up", "mtu", "prefix",
    "prefixes", "path", "kind", "next_hop", "ip", "arc", "feature", "node", "count", "what",
];
const STRINGS: &[&str] = &[
    "config",
    "transaction",
    "dump_routes",
    "trace_add",
    "clear",
    "create_af_packet",
    "set_mtu",
    "add_route",
    "del_route",
    "add_address",
    "set_proxy_arp",
    "add_neighbor",
    "enable_feature",
    "via",
    "attached",
    "drop",
    "local",
    "runtime",
    "trace",
    "ip4-output",
    "ip4-unicast",
    "eth0",
    "",
    "a-name-that-is-too-long",
    "10.0.0.0/8",
    "10.0.0.1/8",
    "0.0.0.0/0",
    "1.2.3.4/33",
    "10.0.2.2",
    "255.255.255.255",
    "02:00:00:00:00:01",
    "ff:ff:ff:ff:ff:ff",
    "zz",
    "\u{0}",
    "é",
];

fn json_tree() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(67),
            Just(1500),
            Just(9001),
            Just(u64::MAX),
            any::<u64>()
        ]
        .prop_map(Value::from),
        (-5i64..5).prop_map(Value::from),
        Just(Value::from(1.5)),
        proptest::sample::select(STRINGS).prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(proptest::sample::select(KEYS), inner, 0..6).prop_map(
                |m| serde_json::Value::Object(
                    m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
                )
            ),
        ]
    })
}

fn number() -> BoxedStrategy<serde_json::Value> {
    prop_oneof![
        Just(0u64),
        Just(1),
        Just(67),
        Just(68),
        Just(1500),
        Just(9000),
        Just(9001),
        Just(70000),
        Just(10_001),
        Just(u64::from(u32::MAX) + 1)
    ]
    .prop_map(serde_json::Value::from)
    .boxed()
}

/// A value for field `name`: of the right type, from a pool of good and bad ones.
fn typed(name: &str) -> BoxedStrategy<serde_json::Value> {
    use serde_json::{json, Value};
    fn pick(xs: &'static [&'static str]) -> BoxedStrategy<Value> {
        proptest::sample::select(xs).prop_map(Value::from).boxed()
    }
    const NAMES: &[&str] = &[
        "eth0",
        "up0",
        "",
        "sixteen-bytes-xx",
        "a b",
        "ip4-output",
        "ip4-unicast",
        "acl-out-ip4",
        "ip6",
    ];
    const PREFIXES: &[&str] = &[
        "10.0.0.0/8",
        "10.0.0.1/8",
        "0.0.0.0/0",
        "10.0.2.1/24",
        "224.0.0.0/4",
        "1.2.3.4/33",
        "x",
    ];
    const IPS: &[&str] = &[
        "10.0.2.2",
        "0.0.0.0",
        "255.255.255.255",
        "224.0.0.1",
        "10.0.2",
    ];
    const MACS: &[&str] = &[
        "02:00:00:00:00:01",
        "ff:ff:ff:ff:ff:ff",
        "00:00:00:00:00:00",
        "01:00:5e:00:00:01",
        "02:00",
    ];
    match name {
        "sw_if" | "mtu" | "count" => number(),
        "host_if" | "name" | "arc" | "feature" | "node" => pick(NAMES),
        "prefix" => pick(PREFIXES),
        "prefixes" => proptest::collection::vec(pick(PREFIXES), 0..3)
            .prop_map(Value::Array)
            .boxed(),
        "ip" | "next_hop" => pick(IPS),
        "mac" => pick(MACS),
        "up" => any::<bool>().prop_map(Value::from).boxed(),
        "what" => pick(&["runtime", "errors", "interfaces", "trace", "all"]),
        "path" => (
            proptest::sample::select(&["via", "attached", "drop", "local", "x"][..]),
            pick(IPS),
            number(),
        )
            .prop_map(|(k, nh, i)| json!({"kind": k, "next_hop": nh, "sw_if": i}))
            .boxed(),
        _ => json_tree().boxed(),
    }
}

/// Documents shaped like requests: a real tag and the op's own field names, each present most
/// of the time with a value of the right type (good or bad), sometimes with a value of any
/// shape or an extra field. About half decode; validation meets good and bad values.
fn request_like() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::{json, Map, Value};
    const OPS: &[(&str, &[&str])] = &[
        ("create_af_packet", &["host_if", "name", "mac"]),
        ("delete_interface", &["sw_if"]),
        ("set_admin_state", &["sw_if", "up"]),
        ("set_mac", &["sw_if", "mac"]),
        ("set_mtu", &["sw_if", "mtu"]),
        ("add_address", &["sw_if", "prefix"]),
        ("del_address", &["sw_if", "prefix"]),
        ("set_proxy_arp", &["sw_if", "prefixes"]),
        ("add_route", &["prefix", "path"]),
        ("del_route", &["prefix"]),
        ("add_neighbor", &["sw_if", "ip", "mac"]),
        ("del_neighbor", &["sw_if", "ip"]),
        ("enable_feature", &["arc", "feature", "sw_if"]),
        ("disable_feature", &["arc", "feature", "sw_if"]),
    ];
    let field = |name: &'static str| {
        (typed(name), json_tree(), 0..20u8).prop_map(move |(t, v, roll)| match roll {
            0 => None,
            1 => Some((name, v)),
            _ => Some((name, t)),
        })
    };
    let item = proptest::sample::select(OPS).prop_flat_map(move |(op, names)| {
        let fields: Vec<_> = names.iter().map(|n| field(n)).collect();
        (
            Just(op),
            fields,
            proptest::option::weighted(0.05, proptest::sample::select(KEYS)),
        )
            .prop_map(|(op, fields, extra)| {
                let mut m = Map::new();
                m.insert("op".into(), op.into());
                for (k, v) in fields.into_iter().flatten() {
                    m.insert(k.to_string(), v);
                }
                if let Some(k) = extra {
                    m.insert(k.to_string(), Value::Null);
                }
                Value::Object(m)
            })
    });
    prop_oneof![
        item.clone()
            .prop_map(|i| json!({"request": "config", "item": i})),
        proptest::collection::vec(item, 0..4)
            .prop_map(|v| json!({"request": "transaction", "items": v})),
        (typed("node"), typed("count"))
            .prop_map(|(n, c)| json!({"request": "trace_add", "node": n, "count": c})),
        typed("what").prop_map(|w| json!({"request": "clear", "what": w})),
    ]
}

proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<Request>(&bytes);
        let _ = decode::<Reply>(&bytes);
        let _ = decode::<Hello>(&bytes);
        let _ = decode::<HelloReply>(&bytes);
        let mut r = &bytes[..];
        while let Ok(b) = read_frame(&mut r) {
            if let Ok(req) = decode::<Request>(&b) {
                let _ = req.validate();
            }
        }
    }

    #[test]
    fn json_shaped_garbage_never_panics(s in r#"\{"request":"[a-z_]{0,20}"(,"[a-z_]{1,8}":("[0-9./a-z:]{0,20}"|[0-9]{1,12}|\[\]|null))*\}"#) {
        let _ = decode::<Request>(s.as_bytes());
    }

    /// Documents built from the API's own vocabulary: decoding and validating never panic, and
    /// whatever decodes re-encodes to something that decodes to the same message.
    #[test]
    fn decoded_messages_validate_and_round_trip(v in prop_oneof![json_tree(), request_like()]) {
        let bytes = serde_json::to_vec(&v).unwrap();
        if let Ok(req) = decode::<Request>(&bytes) {
            let _ = req.validate();
            prop_assert_eq!(decode::<Request>(&encode(&req)).unwrap(), req);
        }
        if let Ok(item) = decode::<ConfigItem>(&bytes) {
            let _ = item.validate();
            let _ = item.object();
            prop_assert_eq!(decode::<ConfigItem>(&encode(&item)).unwrap(), item);
        }
        if let Ok(rep) = decode::<Reply>(&bytes) {
            prop_assert_eq!(decode::<Reply>(&encode(&rep)).unwrap(), rep);
        }
    }

    #[test]
    fn prefixes_and_macs_round_trip(a in any::<u32>(), len in 0u8..=32, m in any::<[u8; 6]>()) {
        let p = Prefix { addr: Ipv4Addr::from(a), len };
        prop_assert_eq!(p.to_string().parse::<Prefix>().unwrap(), p);
        prop_assert_eq!(decode::<Prefix>(&encode(&p)).unwrap(), p);
        prop_assert!(p.network().is_network());
        prop_assert!(p.network().contains(p.addr));
        let mac = Mac(m);
        prop_assert_eq!(mac.to_string().parse::<Mac>().unwrap(), mac);
        prop_assert_eq!(decode::<Mac>(&encode(&mac)).unwrap(), mac);
    }

    #[test]
    fn prefix_and_mac_parsers_never_panic(s in "\\PC{0,24}") {
        let _ = s.parse::<Prefix>();
        let _ = s.parse::<Mac>();
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
