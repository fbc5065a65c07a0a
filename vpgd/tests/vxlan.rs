//! VXLAN tunnels in the daemon: created and deleted whole inside transactions, listed as
//! interfaces, far-end MAC learned, dumped through the API service.

use std::net::Ipv4Addr;
use vpg_api::{ConfigItem, Details, Reply, Request};
use vpg_graph::{Runtime, WorkerOptions, Workers};
use vpg_ip4::RoutePath;
use vpg_vxlan::TunnelKey;
use vpgd::dataplane::{DataPlane, DpError, Installer, Op, OpResult, PortBackend};
use vpgd::service::Service;

/// Ports that attach to nothing (tunnels need none).
struct NoPorts;

impl PortBackend for NoPorts {
    fn host_mac(&self, _: &str) -> Option<[u8; 6]> {
        None
    }
    fn attach(&mut self, _: &str, workers: usize) -> Result<Vec<Installer>, String> {
        Ok((0..workers)
            .map(|_| Box::new(|_: &mut Runtime, _| {}) as Installer)
            .collect())
    }
    fn detach(&self) -> Installer {
        Box::new(|_: &mut Runtime, _| {})
    }
}

fn dataplane() -> DataPlane {
    let layout = vpgd::daemon::graph(|_| {}).unwrap();
    let w = Workers::start(
        &layout,
        &WorkerOptions {
            workers: 1,
            buffers_per_worker: 2048,
            ..Default::default()
        },
    )
    .unwrap();
    DataPlane::new(w, Box::new(NoPorts), 64)
}

fn key(vni: u32) -> TunnelKey {
    TunnelKey {
        local: Ipv4Addr::new(192, 168, 1, 1),
        remote: Ipv4Addr::new(192, 168, 1, 2),
        vni,
        port: 4789,
    }
}

fn create(vni: u32) -> Op {
    Op::CreateVxlanTunnel {
        key: key(vni),
        name: None,
        mac: None,
        remote_mac: None,
    }
}

#[test]
fn tunnels_are_interfaces_created_and_deleted_whole() {
    let mut dp = dataplane();
    // A duplicate in the same transaction refuses both.
    let e = dp.apply(vec![create(42), create(42)]).unwrap_err();
    assert_eq!(e.0, 1);
    assert!(matches!(e.1, DpError::Vxlan(_)), "{:?}", e.1);
    assert!(dp.vxlan_tunnels().is_empty() && dp.interfaces().is_empty());
    let r = dp
        .apply(vec![
            create(42),
            Op::AddAddress {
                sw_if: 0,
                prefix: "10.255.0.1/24".parse().unwrap(),
            },
            Op::AddRoute {
                prefix: "10.2.0.0/16".parse().unwrap(),
                path: RoutePath::Attached { sw_if: 0 },
            },
        ])
        .unwrap();
    assert_eq!(r[0], OpResult::Interface(0));
    let itfs = dp.interfaces();
    assert_eq!(itfs.len(), 1);
    let (sw_if, port, itf) = &itfs[0];
    assert_eq!(
        (*sw_if, port.name.as_str(), port.host_if.as_str()),
        (0, "vxlan_tunnel0", "")
    );
    assert_eq!((itf.mtu, itf.admin_up), (1450, true));
    assert_eq!(
        itf.mac.0,
        [2, 192, 168, 1, 1, 0],
        "derived from the local VTEP"
    );
    let adj = |dp: &DataPlane| {
        let r = dp
            .routes()
            .into_iter()
            .find(|r| r.prefix.to_string() == "10.2.0.0/16")
            .unwrap();
        dp.adjacency_text(r.adj)
    };
    assert!(
        adj(&dp).starts_with("glean"),
        "far end unknown: {}",
        adj(&dp)
    );
    // Learning the far end's MAC resolves the route.
    dp.apply(vec![Op::LearnVxlanPeer {
        sw_if: 0,
        mac: [2, 0, 0, 0, 0, 9],
    }])
    .unwrap();
    assert_eq!(adj(&dp), "rewrite peer 02:00:00:00:00:09 if 0");
    let (t, _) = &dp.vxlan_tunnels()[0];
    assert!(t.learned);
    // Names are unique among all interfaces.
    let e = dp
        .apply(vec![Op::CreateVxlanTunnel {
            key: key(43),
            name: Some("vxlan_tunnel0".into()),
            mac: None,
            remote_mac: None,
        }])
        .unwrap_err();
    assert_eq!(e.1, DpError::NameTaken("vxlan_tunnel0".into()));
    // delete_interface removes a tunnel too, with its routes.
    dp.apply(vec![Op::DeleteInterface { sw_if: 0 }]).unwrap();
    assert!(dp.vxlan_tunnels().is_empty() && dp.interfaces().is_empty());
    assert!(!dp
        .routes()
        .iter()
        .any(|r| r.prefix.to_string() == "10.2.0.0/16"));
    assert!(dp.apply(vec![Op::DeleteVxlanTunnel { sw_if: 0 }]).is_err());
    dp.stop();
}

#[test]
fn the_api_creates_dumps_and_refuses_tunnels() {
    let svc = Service::new(dataplane(), "/dev/null".into());
    let call = |req: Request| {
        let mut replies = Vec::new();
        svc.handle(req, &mut |r| replies.push(r));
        replies
    };
    let item = ConfigItem::CreateVxlanTunnel {
        local: Ipv4Addr::new(192, 168, 1, 1),
        remote: Ipv4Addr::new(192, 168, 1, 2),
        vni: 7,
        port: None,
        name: Some("vx0".into()),
        mac: None,
        remote_mac: Some("02:00:00:00:00:02".parse().unwrap()),
    };
    assert_eq!(
        call(Request::Config { item: item.clone() }),
        vec![Reply::Ok { sw_if: Some(0) }]
    );
    let Reply::Error(e) = &call(Request::Config { item })[0] else {
        panic!("duplicate accepted")
    };
    assert_eq!(e.code, vpg_api::ErrorCode::AlreadyExists);
    assert!(e.to_string().contains("vni 7"), "{e}");
    let r = call(Request::DumpVxlanTunnels);
    assert_eq!(r.len(), 2);
    let Reply::Details(Details::VxlanTunnel(t)) = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(
        (t.name.as_str(), t.vni, t.port, t.mtu),
        ("vx0", 7, 4789, 1450)
    );
    assert_eq!(t.remote_mac.unwrap().to_string(), "02:00:00:00:00:02");
    assert!(!t.remote_mac_learned);
    assert_eq!(r[1], Reply::Done);
    let r = call(Request::DumpInterfaces);
    assert!(matches!(&r[0], Reply::Details(Details::Interface(i)) if i.name == "vx0"));
    let Reply::Error(e) = &call(Request::Config {
        item: ConfigItem::DeleteVxlanTunnel { sw_if: 5 },
    })[0] else {
        panic!()
    };
    assert_eq!(e.code, vpg_api::ErrorCode::NotFound);
    assert_eq!(
        call(Request::Config {
            item: ConfigItem::DeleteVxlanTunnel { sw_if: 0 }
        }),
        vec![Reply::Ok { sw_if: None }]
    );
    assert_eq!(call(Request::DumpVxlanTunnels), vec![Reply::Done]);
    svc.with(|dp| dp.shutdown());
}

#[test]
fn tunnels_take_acls_and_drop_them_when_deleted() {
    use vpgd::acl::AclOp;
    let mut dp = dataplane();
    let permit: vpg_api::acl::AclRule = serde_json::from_str(r#"{"action": "permit"}"#).unwrap();
    let acl = vpgd::acl::add_replace(7, "global".into(), &[permit]).unwrap();
    let set = |input| {
        Op::Acl(AclOp::SetInterface {
            sw_if: 0,
            input,
            acls: vec![7],
        })
    };
    // The agent's global table sits on the output of every tunnel, reflect on its input.
    dp.apply(vec![create(42), Op::Acl(acl), set(true), set(false)])
        .unwrap();
    let lists = vpgd::acl::interfaces(&dp);
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert_eq!(lists[0].sw_if, 0);
    // Deleting the tunnel takes its lists along, so the ACL is free to delete.
    dp.apply(vec![Op::DeleteInterface { sw_if: 0 }]).unwrap();
    assert!(vpgd::acl::interfaces(&dp).is_empty());
    dp.apply(vec![Op::Acl(AclOp::Delete(7))]).unwrap();
}
