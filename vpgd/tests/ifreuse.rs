//! Interface indices are reused: a new interface takes the lowest free index, the limit is on
//! interfaces that exist at once, and a reused index starts clean (counters at zero, nothing of
//! the old interface's routes, neighbors, ACL lists and sessions, NAT44 role, features).

use std::time::{Duration, Instant};
use vpg_api::ConfigItem;
use vpg_graph::Time;
use vpgd::dataplane::{DataPlane, DpError, Op, OpResult};

mod pg;
use pg::{send_udp, PgPorts};

/// vpgd's whole graph on two workers.
fn dataplane(max: usize) -> (DataPlane, PgPorts) {
    pg::dataplane(&vpgd::daemon::graph(|_| {}).unwrap(), 2, max)
}

fn port(host_if: &str) -> Op {
    Op::CreatePort {
        host_if: host_if.into(),
        name: None,
        mac: None,
    }
}

fn tunnel(vni: u32) -> Op {
    Op::CreateVxlanTunnel {
        key: vpg_vxlan::TunnelKey {
            local: "192.168.1.1".parse().unwrap(),
            remote: "192.168.1.2".parse().unwrap(),
            vni,
            port: 4789,
        },
        name: None,
        mac: None,
        remote_mac: None,
    }
}

fn created(r: &[OpResult]) -> Vec<u32> {
    r.iter()
        .filter_map(|r| match r {
            OpResult::Interface(i) => Some(*i),
            OpResult::Done => None,
        })
        .collect()
}

/// An API item, as JSON (what vpgctl and the agent send).
fn item(json: &str) -> Op {
    let it: ConfigItem = serde_json::from_str(json).unwrap();
    vpgd::service::to_op(it).unwrap()
}

/// Waits until every worker has run what was queued for it before.
fn settle(dp: &DataPlane) {
    for w in 0..dp.workers().len() {
        dp.workers().exec(w, |_| ()).unwrap();
    }
}

fn counters(dp: &DataPlane, sw_if: u32) -> vpg_api::interface::InterfaceCounters {
    vpgd::service::if_counters(&dp.workers().stats(), sw_if)
}

#[test]
fn the_lowest_free_index_is_reused_by_ports_and_tunnels() {
    let (mut dp, _) = dataplane(64);
    let r = dp
        .apply(vec![port("a"), port("b"), port("c"), port("d"), tunnel(1)])
        .unwrap();
    assert_eq!(created(&r), [0, 1, 2, 3, 4]);
    assert_eq!(dp.next_sw_if(), 5);
    dp.apply(vec![
        Op::DeleteInterface { sw_if: 3 },
        Op::DeleteInterface { sw_if: 1 },
    ])
    .unwrap();
    assert_eq!(dp.next_sw_if(), 1, "the lowest free index");
    // A tunnel and a port fill the holes, lowest first; then the end grows again.
    let r = dp.apply(vec![tunnel(2), port("e"), port("f")]).unwrap();
    assert_eq!(created(&r), [1, 3, 5]);
    // A tunnel's index is freed like a port's, also through delete_interface.
    dp.apply(vec![Op::DeleteVxlanTunnel { sw_if: 4 }]).unwrap();
    dp.apply(vec![Op::DeleteInterface { sw_if: 1 }]).unwrap();
    let r = dp.apply(vec![port("g"), tunnel(3)]).unwrap();
    assert_eq!(created(&r), [1, 4]);
    // Deleted and recreated in one transaction: the same index, even the same host interface.
    let r = dp
        .apply(vec![Op::DeleteInterface { sw_if: 0 }, port("a")])
        .unwrap();
    assert_eq!(created(&r), [0]);
    let names: Vec<(u32, String)> = dp
        .interfaces()
        .into_iter()
        .map(|(i, p, _)| (i, p.name))
        .collect();
    assert_eq!(
        names,
        [
            (0, "a".to_string()),
            (1, "g".into()),
            (2, "c".into()),
            (3, "e".into()),
            (4, "vxlan_tunnel4".into()),
            (5, "f".into())
        ]
    );
    dp.stop();
}

#[test]
fn the_limit_is_on_interfaces_at_once() {
    let max = vpgd::daemon::MAX_INTERFACES;
    let (mut dp, _) = dataplane(max);
    let ops: Vec<Op> = (0..max).map(|k| port(&format!("p{k}"))).collect();
    let r = dp.apply(ops).unwrap();
    assert_eq!(created(&r).len(), max);
    let (i, e) = dp.apply(vec![port("one-more")]).unwrap_err();
    assert_eq!((i, &e), (0, &DpError::TooManyInterfaces(max)));
    assert!(e.to_string().contains("at once"), "{e}");
    let (_, e) = dp.apply(vec![tunnel(9)]).unwrap_err();
    assert_eq!(e, DpError::TooManyInterfaces(max));
    // One goes, one may come, at its index.
    dp.apply(vec![Op::DeleteInterface { sw_if: 700 }]).unwrap();
    let r = dp.apply(vec![port("one-more")]).unwrap();
    assert_eq!(created(&r), [700]);
    assert!(dp.apply(vec![tunnel(9)]).is_err());
    // Delete and create in one transaction at the limit.
    let r = dp
        .apply(vec![Op::DeleteInterface { sw_if: 5 }, tunnel(9)])
        .unwrap();
    assert_eq!(created(&r), [5]);
    dp.stop();
}

#[test]
fn a_refused_transaction_takes_no_index() {
    let (mut dp, _) = dataplane(4);
    dp.apply(vec![port("a"), port("b")]).unwrap();
    dp.apply(vec![Op::DeleteInterface { sw_if: 0 }]).unwrap();
    // Refused after its creations: by a later item, by a failing attach, by the limit.
    let bad_route = Op::AddRoute {
        prefix: "10.9.0.0/16".parse().unwrap(),
        path: vpg_ip4::RoutePath::Attached { sw_if: 9 },
    };
    assert!(dp.apply(vec![port("c"), tunnel(1), bad_route]).is_err());
    assert!(matches!(
        dp.apply(vec![port("c"), port("bad0")]),
        Err((1, DpError::Attach { .. }))
    ));
    assert!(matches!(
        dp.apply(vec![port("c"), port("d"), port("e"), port("f")]),
        Err((3, DpError::TooManyInterfaces(4)))
    ));
    assert_eq!(dp.next_sw_if(), 0);
    assert_eq!(dp.interfaces().len(), 1);
    let r = dp.apply(vec![port("c"), port("d"), port("e")]).unwrap();
    assert_eq!(created(&r), [0, 2, 3]);
    dp.stop();
}

#[test]
fn thousands_of_pod_lifetimes_never_reach_the_limit() {
    // A node that keeps two pods and the uplink while 3000 pods come and go, two at a time;
    // without reuse, the 6th creation would already fail.
    let (mut dp, _) = dataplane(5);
    dp.apply(vec![port("up0"), port("pod-a"), port("pod-b")])
        .unwrap();
    let mut highest = 0;
    for k in 0..1500 {
        let r = dp
            .apply(vec![port(&format!("x{k}")), tunnel(1 + k % 2)])
            .unwrap_or_else(|(i, e)| panic!("cycle {k}: item {i}: {e}"));
        let got = created(&r);
        highest = highest.max(got[1]);
        dp.apply(
            got.iter()
                .map(|&sw_if| Op::DeleteInterface { sw_if })
                .collect(),
        )
        .unwrap();
    }
    assert_eq!(highest, 4);
    assert_eq!(dp.interfaces().len(), 3);
    dp.stop();
}

/// Two ports routed through each other; returns nothing, traffic is added by `send`.
fn two_ports(dp: &mut DataPlane) {
    dp.apply(vec![
        Op::CreatePort {
            host_if: "a".into(),
            name: None,
            mac: Some([2, 0, 0, 0, 0, 1]),
        },
        port("b"),
        Op::SetAdmin { sw_if: 0, up: true },
        Op::SetAdmin { sw_if: 1, up: true },
        item(r#"{"op":"add_address","sw_if":0,"prefix":"10.0.1.1/24"}"#),
        item(r#"{"op":"add_address","sw_if":1,"prefix":"10.0.2.1/24"}"#),
    ])
    .unwrap();
}

/// Everything that can name interface 1, besides its own settings.
fn dress_up_1(dp: &mut DataPlane) {
    dp.apply(vec![
        item(r#"{"op":"add_neighbor","sw_if":1,"ip":"10.0.2.2","mac":"02:00:00:00:09:02"}"#),
        item(r#"{"op":"add_route","prefix":"172.16.0.0/12","path":{"kind":"via","next_hop":"10.0.2.2","sw_if":1}}"#),
        item(r#"{"op":"add_route","prefix":"172.20.0.0/16","path":{"kind":"attached","sw_if":1}}"#),
        item(r#"{"op":"set_proxy_arp","sw_if":1,"prefixes":["10.5.0.0/16"]}"#),
        item(r#"{"op":"set_mtu","sw_if":1,"mtu":1400}"#),
        item(r#"{"op":"acl_add_replace","acl_id":10,"tag":"reflect","rules":[{"action":"permit+reflect"}]}"#),
        item(r#"{"op":"acl_add_replace","acl_id":11,"tag":"deny","rules":[{"action":"deny"}]}"#),
        item(r#"{"op":"acl_set_interface","sw_if":0,"direction":"input","acls":[10]}"#),
        item(r#"{"op":"acl_set_interface","sw_if":1,"direction":"input","acls":[10]}"#),
        item(r#"{"op":"acl_set_interface","sw_if":1,"direction":"output","acls":[11]}"#),
        item(r#"{"op":"nat44_set_interface","sw_if":1,"inside":true,"outside":true}"#),
        item(r#"{"op":"nat44_add_pool","sw_if":1}"#),
        item(r#"{"op":"enable_feature","arc":"ip4-output","feature":"esp4-encrypt","sw_if":1}"#),
    ])
    .unwrap();
}

/// 100 UDP packets from 10.0.1.2 to 172.16.5.5 into interface 0, on worker 1.
/// Sends 100 packets (10.0.1.2 to 172.16.5.5, into interface 0 on worker 1) and waits until
/// all of them left through host interface `out` (interface 1) and its counters show them.
fn send_through(dp: &DataPlane, ports: &PgPorts, out: &str) {
    send_udp(dp, 1, 100);
    let mut got = 0;
    wait_for(&format!("100 packets out of {out}"), || {
        got += ports.captured(out);
        got == 100
    });
    wait_for("the counters", || counters(dp, 1).tx_packets == 100);
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(10), "waited for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_reused_index_starts_clean() {
    let (mut dp, ports) = dataplane(64);
    two_ports(&mut dp);
    dress_up_1(&mut dp);
    // Traffic 0 -> 1, through interface 0's reflective ACL: a session on 0.
    dp.apply(vec![item(
        r#"{"op":"disable_feature","arc":"ip4-output","feature":"esp4-encrypt","sw_if":1}"#,
    )])
    .unwrap();
    dp.apply(vec![item(
        r#"{"op":"acl_set_interface","sw_if":1,"direction":"output","acls":[]}"#,
    )])
    .unwrap();
    dp.apply(vec![item(
        r#"{"op":"nat44_set_interface","sw_if":1,"inside":false,"outside":false}"#,
    )])
    .unwrap();
    send_through(&dp, &ports, "b");
    assert_eq!(counters(&dp, 0).rx_packets, 100);
    let filter = vpg_api::acl::SessionFilter::default();
    let sessions = vpgd::acl::sessions(&dp, &filter);
    assert!(
        sessions.iter().any(|s| s.sw_if == 0),
        "a session on 0: {sessions:?}"
    );
    dp.apply(vec![
        item(r#"{"op":"acl_set_interface","sw_if":1,"direction":"output","acls":[11]}"#),
        item(r#"{"op":"nat44_set_interface","sw_if":1,"inside":true,"outside":true}"#),
        item(r#"{"op":"enable_feature","arc":"ip4-output","feature":"esp4-encrypt","sw_if":1}"#),
    ])
    .unwrap();

    // Interface 1 goes; "c" comes and gets index 1.
    dp.apply(vec![Op::DeleteInterface { sw_if: 1 }]).unwrap();
    let r = dp.apply(vec![port("c")]).unwrap();
    assert_eq!(created(&r), [1]);
    settle(&dp);
    let zero = vpg_api::interface::InterfaceCounters::default();
    assert_eq!(counters(&dp, 1), zero, "a new interface starts at zero");
    assert_eq!(counters(&dp, 0).rx_packets, 100, "others keep theirs");
    // Its settings are a new interface's: admin down, MTU 1500, no addresses, no proxy ARP.
    let c = dp.interfaces()[1].2.clone();
    assert_eq!(
        (
            c.name.as_str(),
            c.admin_up,
            c.mtu,
            c.addresses.len(),
            c.proxy_arp.len()
        ),
        ("c", false, 1500, 0, 0)
    );
    let uses_1 = |p: &vpg_ip4::RoutePath| {
        matches!(
            p,
            vpg_ip4::RoutePath::Via { sw_if: 1, .. } | vpg_ip4::RoutePath::Attached { sw_if: 1 }
        )
    };
    assert!(
        dp.routes().iter().all(|r| !uses_1(&r.path)),
        "no route through 1"
    );
    assert!(
        dp.neighbors().iter().all(|n| n.sw_if != 1),
        "no neighbor on 1"
    );
    assert!(
        dp.acl().interfaces().iter().all(|(i, _, _)| *i != 1),
        "no ACL list on 1"
    );
    assert!(dp.nat().interfaces().all(|(i, _)| i != 1), "no NAT44 role");
    assert!(
        dp.nat().pool().is_empty(),
        "no pool entry following 1: {:?}",
        dp.nat().pool()
    );
    assert!(
        dp.features().iter().all(|(_, _, i)| *i != 1),
        "no feature on 1: {:?}",
        dp.features()
    );

    // Interface 0 goes too: its ACL sessions go from every worker.
    dp.apply(vec![Op::DeleteInterface { sw_if: 0 }]).unwrap();
    settle(&dp);
    let left = vpgd::acl::sessions(&dp, &filter);
    assert!(left.is_empty(), "sessions of a deleted interface: {left:?}");
    dp.stop();
}

#[test]
fn traffic_on_a_reused_index_counts_from_zero() {
    let (mut dp, ports) = dataplane(64);
    two_ports(&mut dp);
    dress_up_1(&mut dp);
    dp.apply(vec![
        item(r#"{"op":"acl_set_interface","sw_if":1,"direction":"output","acls":[]}"#),
        item(r#"{"op":"nat44_set_interface","sw_if":1,"inside":false,"outside":false}"#),
        item(r#"{"op":"disable_feature","arc":"ip4-output","feature":"esp4-encrypt","sw_if":1}"#),
    ])
    .unwrap();
    send_through(&dp, &ports, "b");
    // Delete and recreate on another host interface, in one transaction, with its route.
    dp.apply(vec![
        Op::DeleteInterface { sw_if: 1 },
        port("c"),
        Op::SetAdmin { sw_if: 1, up: true },
        item(r#"{"op":"add_address","sw_if":1,"prefix":"10.0.2.1/24"}"#),
        item(r#"{"op":"add_neighbor","sw_if":1,"ip":"10.0.2.2","mac":"02:00:00:00:09:02"}"#),
        item(r#"{"op":"add_route","prefix":"172.16.0.0/12","path":{"kind":"via","next_hop":"10.0.2.2","sw_if":1}}"#),
    ])
    .unwrap();
    settle(&dp);
    assert_eq!(counters(&dp, 1).tx_packets, 0);
    send_through(&dp, &ports, "c");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(counters(&dp, 1).tx_packets, 100, "exactly the new traffic");
    assert_eq!(ports.captured("b"), 0, "nothing went to the old port");
    dp.stop();
}

#[test]
fn reports_about_an_earlier_interface_are_not_applied_to_its_successor() {
    let (mut dp, _) = dataplane(64);
    let before = dp.workers().now();
    dp.apply(vec![port("a")]).unwrap();
    std::thread::sleep(Duration::from_millis(2));
    let while_a = dp.workers().now();
    assert!(dp.is_current(0, while_a));
    assert!(
        !dp.is_current(0, before),
        "made before the interface existed"
    );
    assert!(!dp.is_current(1, while_a), "no such interface");
    dp.apply(vec![Op::DeleteInterface { sw_if: 0 }]).unwrap();
    assert!(!dp.is_current(0, while_a), "the interface is gone");
    dp.apply(vec![port("b")]).unwrap();
    assert!(!dp.is_current(0, while_a), "about a, not b");
    std::thread::sleep(Duration::from_millis(2));
    assert!(dp.is_current(0, dp.workers().now()));
    assert!(!dp.is_current(0, Time::ZERO));
    dp.stop();
}

#[test]
fn a_tunnel_an_esp_rule_is_bound_to_is_not_deleted_under_it() {
    let (mut dp, _) = dataplane(64);
    let r = dp.apply(vec![port("up0"), tunnel(7)]).unwrap();
    assert_eq!(created(&r), [0, 1]);
    dp.apply(vec![
        item(&format!(
            r#"{{"op":"esp_sa_add","sa_id":1,"spi":256,"direction":"out","mode":"transport","crypto":"aes-gcm-128","key":"{}","key_id":1}}"#,
            "11".repeat(20)
        )),
        item(r#"{"op":"esp_protect_add","rule_id":3,"tunnel":1,"sas":[1]}"#),
    ])
    .unwrap();
    for del in [
        Op::DeleteInterface { sw_if: 1 },
        Op::DeleteVxlanTunnel { sw_if: 1 },
    ] {
        let (_, e) = dp.apply(vec![del]).unwrap_err();
        assert_eq!(
            e,
            DpError::InterfaceInUse {
                sw_if: 1,
                by: "esp protect rule 3".into()
            }
        );
        let api = vpgd::service::api_error(&e);
        assert_eq!(api.code, vpg_api::ErrorCode::Failed);
        assert!(api.message.contains("esp protect rule 3"), "{api}");
    }
    // The rule first, then the tunnel: a new tunnel at its index is no rule's tunnel.
    dp.apply(vec![
        item(r#"{"op":"esp_protect_del","rule_id":3}"#),
        Op::DeleteVxlanTunnel { sw_if: 1 },
        tunnel(8),
    ])
    .unwrap();
    assert_eq!(dp.esp_tunnels(), []);
    dp.stop();
}
