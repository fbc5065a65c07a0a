//! DataPlane transactions: all-or-nothing, ports installed only on commit, traffic through the
//! workers after a commit.

use std::time::Duration;
use vpg_graph::pg::PgInput;
use vpg_graph::GraphSpec;
use vpg_ip4::RoutePath;
use vpgd::dataplane::{DataPlane, DpError, Op, OpResult};

mod pg;
use pg::{send_udp, PgPorts};

fn dataplane() -> (DataPlane, PgPorts) {
    let mut g = GraphSpec::new();
    vpg_ip4::register(&mut g);
    g.node(|| PgInput::new("ethernet-input"));
    pg::dataplane(&g.build().unwrap(), 1, 64)
}

fn setup_ops() -> Vec<Op> {
    vec![
        Op::CreatePort {
            host_if: "a".into(),
            name: None,
            mac: Some([2, 0, 0, 0, 0, 1]),
        },
        Op::CreatePort {
            host_if: "b".into(),
            name: None,
            mac: Some([2, 0, 0, 0, 0, 2]),
        },
        Op::SetAdmin { sw_if: 0, up: true },
        Op::SetAdmin { sw_if: 1, up: true },
        Op::AddAddress {
            sw_if: 0,
            prefix: "10.0.1.1/24".parse().unwrap(),
        },
        Op::AddAddress {
            sw_if: 1,
            prefix: "10.0.2.1/24".parse().unwrap(),
        },
        Op::AddNeighbor {
            sw_if: 1,
            ip: "10.0.2.2".parse().unwrap(),
            mac: [2, 0, 0, 0, 9, 2],
        },
    ]
}

#[test]
fn a_transaction_with_one_bad_item_applies_none() {
    let (mut dp, ports) = dataplane();
    let mut ops = setup_ops();
    ops.push(Op::AddRoute {
        prefix: "10.9.0.0/16".parse().unwrap(),
        path: RoutePath::Via {
            next_hop: "10.0.2.2".parse().unwrap(),
            sw_if: 7,
        },
    });
    let (i, e) = dp.apply(ops).unwrap_err();
    assert_eq!(i, 7);
    assert_eq!(e, DpError::Ip4(vpg_ip4::Ip4Error::NoInterface(7)));
    assert!(dp.interfaces().is_empty(), "no interface was kept");
    assert!(dp.routes().is_empty());
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        ports.attached.lock().unwrap().is_empty(),
        "no port was installed on a worker"
    );

    // A failing attach also rolls back everything before it.
    let mut ops = setup_ops();
    ops.insert(
        2,
        Op::CreatePort {
            host_if: "bad0".into(),
            name: None,
            mac: None,
        },
    );
    let (i, e) = dp.apply(ops).unwrap_err();
    assert_eq!(i, 2);
    assert!(matches!(e, DpError::Attach { .. }), "{e}");
    assert!(dp.interfaces().is_empty());

    // The good batch applies whole.
    let r = dp.apply(setup_ops()).unwrap();
    assert_eq!(r[0], OpResult::Interface(0));
    assert_eq!(r[1], OpResult::Interface(1));
    assert_eq!(dp.interfaces().len(), 2);
    // Duplicate route, duplicate name, unknown feature: refused, state unchanged.
    let via = RoutePath::Via {
        next_hop: "10.0.2.2".parse().unwrap(),
        sw_if: 1,
    };
    dp.apply(vec![Op::AddRoute {
        prefix: "172.16.0.0/12".parse().unwrap(),
        path: via,
    }])
    .unwrap();
    let before = dp.routes();
    assert!(dp
        .apply(vec![Op::AddRoute {
            prefix: "172.16.0.0/12".parse().unwrap(),
            path: via
        }])
        .is_err());
    assert!(matches!(
        dp.apply(vec![Op::CreatePort {
            host_if: "c".into(),
            name: Some("a".into()),
            mac: None
        }]),
        Err((0, DpError::NameTaken(_)))
    ));
    let e = dp
        .apply(vec![Op::EnableFeature {
            arc: vpg_graph::ArcId::Ip4Output,
            feature: "nope".into(),
            sw_if: 0,
        }])
        .unwrap_err();
    assert!(matches!(e.1, DpError::UnknownFeature { .. }));
    assert_eq!(dp.routes(), before);
    dp.stop();
}

#[test]
fn traffic_flows_after_commit() {
    let (mut dp, ports) = dataplane();
    dp.apply(setup_ops()).unwrap();
    let via = RoutePath::Via {
        next_hop: "10.0.2.2".parse().unwrap(),
        sw_if: 1,
    };
    dp.apply(vec![Op::AddRoute {
        prefix: "172.16.0.0/12".parse().unwrap(),
        path: via,
    }])
    .unwrap();
    send_udp(&dp, 0, 100);
    let mut got = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got < 100 && std::time::Instant::now() < deadline {
        got += ports.captured("b");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(got, 100);
    // Deleting the interface removes its routes and device.
    dp.apply(vec![Op::DeleteInterface { sw_if: 1 }]).unwrap();
    assert!(dp.routes().iter().all(|r| !matches!(
        r.path,
        RoutePath::Via { sw_if: 1, .. } | RoutePath::Attached { sw_if: 1 }
    )));
    dp.stop();
}

/// A data plane with ESP, keeping sequence numbers in `seq` (reserved 1024 at a time).
fn esp_dataplane(seq: Option<&std::path::Path>) -> (DataPlane, PgPorts) {
    let (mut dp, ports) = pg::dataplane(&vpgd::daemon::graph(|_| {}).unwrap(), 1, 64);
    if let Some(p) = seq {
        dp.keep_sequences(vpgd::espseq::SequenceFile::open(p, 1024).unwrap());
    }
    (dp, ports)
}

/// The two ports, the uplink's encrypt feature, one outbound SA (id `sa`, key byte `k`) and a
/// rule protecting 172.16.0.0/12 with it, as API items.
fn esp_items(sa: u32, k: u8) -> Vec<vpg_api::ConfigItem> {
    use vpg_api::esp::*;
    vec![
        vpg_api::ConfigItem::EnableFeature {
            arc: "ip4-output".into(),
            feature: "esp4-encrypt".into(),
            sw_if: 1,
        },
        vpg_api::ConfigItem::EspSaAdd(EspSaAdd {
            sa_id: sa,
            spi: 0x1000 + sa,
            direction: EspDirection::Out,
            mode: EspMode::Transport,
            tunnel_src: None,
            tunnel_dst: None,
            crypto: EspCrypto::AesGcm128,
            key: format!("{k:02x}").repeat(20),
            key_id: 1,
            esn: true,
            replay_window: None,
            worker: None,
            lifetime: None,
        }),
        vpg_api::ConfigItem::EspProtectAdd(EspProtectAdd {
            rule_id: 1,
            dst: Some("172.16.0.0/12".parse().unwrap()),
            tunnel: None,
            proto: None,
            port: None,
            sas: vec![sa],
            replace: true,
        }),
    ]
}

fn ops(items: Vec<vpg_api::ConfigItem>) -> Vec<Op> {
    items
        .into_iter()
        .map(|i| vpgd::service::to_op(i).unwrap())
        .collect()
}

/// Sends `n` packets towards 172.16.5.5 and returns the ESP sequence numbers leaving on "b".
fn esp_seqs(dp: &DataPlane, ports: &PgPorts, n: u64) -> Vec<u32> {
    send_udp(dp, 0, n);
    let mut seqs = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (seqs.len() as u64) < n && std::time::Instant::now() < deadline {
        for f in ports.frames("b") {
            assert_eq!(f[23], 50, "ESP");
            seqs.push(u32::from_be_bytes(f[38..42].try_into().unwrap()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    seqs
}

/// `[esp] sequence_file`: an outbound SA's numbers are reserved on disk ahead of use and a
/// restarted data plane given the same key continues after the reservation, so no AES-GCM nonce
/// repeats. A transaction whose reservation cannot be written is refused whole.
#[test]
fn outbound_sequence_numbers_continue_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("esp-seq.json");
    let route = |p: &str| Op::AddRoute {
        prefix: p.parse().unwrap(),
        path: RoutePath::Via {
            next_hop: "10.0.2.2".parse().unwrap(),
            sw_if: 1,
        },
    };
    let (mut dp, ports) = esp_dataplane(Some(&path));
    dp.apply(setup_ops()).unwrap();
    let mut t = ops(esp_items(11, 0xab));
    t.insert(0, route("172.16.0.0/12"));
    dp.apply(t).unwrap();
    let sa = &vpgd::esp::sa_details(&dp)[0];
    assert_eq!(sa.seq_reserved, Some(1024));
    assert_eq!(esp_seqs(&dp, &ports, 700), (1..=700).collect::<Vec<u32>>());
    // More than half used: the reservation thread's step extends it (1724 on disk).
    let seq = dp.sequences().unwrap().clone();
    assert_eq!(seq.lock().unwrap().extend().unwrap(), 1);
    assert_eq!(vpgd::esp::sa_details(&dp)[0].seq_reserved, Some(1724));
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(on_disk["reserved"][&sa.fingerprint], 1724);
    let rows = vpgd::esp::sequence_details(&dp);
    assert_eq!((rows.len(), rows[0].sa_id), (1, Some(11)));
    let sum = vpgd::esp::summary(&dp).sequences.unwrap();
    assert_eq!(
        (sum.file, sum.keys, sum.unreserved_drops),
        (path.display().to_string(), 1, 0)
    );
    dp.stop();
    drop(seq);

    // A restart: the same key continues after 1724.
    let (mut dp, ports) = esp_dataplane(Some(&path));
    dp.apply(setup_ops()).unwrap();
    let mut t = ops(esp_items(11, 0xab));
    t.insert(0, route("172.16.0.0/12"));
    dp.apply(t).unwrap();
    assert_eq!(esp_seqs(&dp, &ports, 5), [1725, 1726, 1727, 1728, 1729]);
    assert_eq!(vpgd::esp::sa_details(&dp)[0].seq_reserved, Some(2748));
    // The file cannot be written (its directory replaced by a file): a new outbound SA is
    // refused with the route beside it, nothing changes, the old SA goes on.
    std::fs::remove_dir_all(dir.path()).unwrap();
    std::fs::write(dir.path(), b"not a directory").unwrap();
    let before = (dp.routes(), dp.esp().sas().len());
    let mut t = ops(esp_items(12, 0xcd));
    t.retain(|op| !matches!(op, Op::EnableFeature { .. }));
    t.pop(); // the rule: keep rule 1 on SA 11
    t.insert(0, route("192.168.0.0/16"));
    let (i, e) = dp.apply(t).unwrap_err();
    assert_eq!(i, 1, "the SA's item");
    assert!(matches!(e, DpError::SequenceFile(_)), "{e}");
    assert!(e.to_string().contains("esp-seq.json"), "{e}");
    assert_eq!((dp.routes(), dp.esp().sas().len()), before);
    assert_eq!(esp_seqs(&dp, &ports, 2), [1730, 1731]);
    std::fs::remove_file(dir.path()).unwrap();
    dp.stop();

    // Without a sequence file a new data plane starts the key at 1 (what vpg-agent guards
    // against: it never installs a used key on such a vpgd).
    let (mut dp, ports) = esp_dataplane(None);
    dp.apply(setup_ops()).unwrap();
    let mut t = ops(esp_items(11, 0xab));
    t.insert(0, route("172.16.0.0/12"));
    dp.apply(t).unwrap();
    assert_eq!(esp_seqs(&dp, &ports, 2), [1, 2]);
    assert_eq!(vpgd::esp::summary(&dp).sequences, None);
    assert_eq!(vpgd::esp::sa_details(&dp)[0].seq_reserved, None);
    dp.stop();
}
