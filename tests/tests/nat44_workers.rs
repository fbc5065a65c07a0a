//! NAT44 on two worker threads: sessions are owned by one worker and packets that arrive on the
//! other are handed off to it. Dynamic SNAT: the outside port names the owner. Services: a
//! hash of the client endpoint names it, whichever worker the request or the reply arrives on.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use vpg_graph::pg::{PgCapture, PgInput, Stream, PG_INPUT};
use vpg_graph::show;
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};
use vpg_graph::{
    ConfigSet, FeatureConfig, GraphSpec, InterfaceOutput, WorkerOptions, Workers, INTERFACE_OUTPUT,
};
use vpg_ip4::{Ip4Control, RoutePath};
use vpg_nat44::flow::parse;
use vpg_nat44::{Endpoint, Flow, Nat44Control, PoolEntry, Role, StaticMapping};

const IF0: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const IF1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const POD: [u8; 6] = [0x02, 0, 0, 0, 1, 0x02];
const GW: [u8; 6] = [0x02, 0, 0, 0, 3, 0xfe];

fn udp(mac: ([u8; 6], [u8; 6]), src: (&str, u16), dst: (&str, u16)) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(mac.1, mac.0)
        .ipv4(
            src.0.parse::<Ipv4Addr>().unwrap().octets(),
            dst.0.parse::<Ipv4Addr>().unwrap().octets(),
            64,
        )
        .udp(src.1, dst.1);
    let mut out = Vec::new();
    b.write(&mut out, b"x").unwrap();
    out
}

fn ip(s: &str) -> u32 {
    s.parse::<Ipv4Addr>().unwrap().to_bits()
}

struct TwoWorkers {
    w: Workers,
    captures: Vec<Vec<crossbeam_channel::Receiver<Vec<u8>>>>,
}

impl TwoWorkers {
    /// Interface 0 inside (pods 10.1.1.0/24), interface 1 outside (192.0.2.1/24, the pool),
    /// and a service 10.96.0.10:53/udp on pods 10.1.1.2 and 10.1.1.3.
    fn start() -> Self {
        let mut spec = GraphSpec::new();
        vpg_ip4::register(&mut spec);
        vpg_acl::register(&mut spec);
        vpg_nat44::register(&mut spec);
        spec.node(|| PgInput::new("ethernet-input"));
        let layout = spec.build().unwrap();
        let opts = WorkerOptions {
            workers: 2,
            buffers_per_worker: 8192,
            huge_pages: false,
            ..Default::default()
        };
        let w = Workers::start(&layout, &opts).unwrap();
        let mut ip4 = Ip4Control::new();
        for (sw_if, mac, addr) in [(0, IF0, "10.1.1.1/24"), (1, IF1, "192.0.2.1/24")] {
            ip4.add_interface(sw_if, &format!("pg{sw_if}"), EthernetAddress(mac))
                .unwrap();
            ip4.set_admin_up(sw_if, true).unwrap();
            ip4.add_address(sw_if, addr.parse::<Ipv4Cidr>().unwrap())
                .unwrap();
        }
        for pod in ["10.1.1.2", "10.1.1.3"] {
            ip4.add_neighbor(0, pod.parse().unwrap(), EthernetAddress(POD))
                .unwrap();
        }
        ip4.add_neighbor(1, "192.0.2.254".parse().unwrap(), EthernetAddress(GW))
            .unwrap();
        ip4.add_route(
            "0.0.0.0/0".parse().unwrap(),
            RoutePath::Via {
                next_hop: "192.0.2.254".parse().unwrap(),
                sw_if: 1,
            },
        )
        .unwrap();
        let mut nat = Nat44Control::new(2);
        nat.add_pool(PoolEntry::Address("192.0.2.1".parse().unwrap()), |_| true)
            .unwrap();
        nat.add_mapping(StaticMapping {
            external: "10.96.0.10".parse().unwrap(),
            proto: Some(17),
            external_port: 53,
            locals: ["10.1.1.2", "10.1.1.3"]
                .iter()
                .map(|a| Endpoint {
                    addr: a.parse().unwrap(),
                    port: 5353,
                    weight: 1,
                })
                .collect(),
            out2in_only: true,
            tag: "dns".into(),
        })
        .unwrap();
        let mut features = FeatureConfig::default();
        for (sw_if, role) in [
            (
                0,
                Role {
                    inside: true,
                    outside: false,
                },
            ),
            (
                1,
                Role {
                    inside: false,
                    outside: true,
                },
            ),
        ] {
            nat.set_interface(sw_if, role, |_| true).unwrap();
            for (arc, node, on) in nat.features_for(role) {
                if on {
                    features.enable(arc, sw_if, layout.feature_position(arc, node).unwrap());
                }
            }
        }
        let cfg = ConfigSet::new()
            .with(ip4.tables())
            .with(nat.tables(&|_| None))
            .with(Arc::new(features));
        w.configure(Arc::new(cfg));
        let mut captures = Vec::new();
        for worker in 0..2 {
            let mut per_if = Vec::new();
            for sw_if in 0..2u32 {
                let (dev, rx) = PgCapture::new();
                w.exec(worker, move |rt| {
                    rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT)
                        .unwrap()
                        .set_device(sw_if, Some(Box::new(dev)));
                })
                .unwrap();
                per_if.push(rx);
            }
            captures.push(per_if);
        }
        TwoWorkers { w, captures }
    }

    fn send(&self, worker: usize, rx_if: u32, frames: Vec<Vec<u8>>) {
        let n = frames.len() as u64;
        self.w
            .exec(worker, move |rt| {
                let pg = rt.node_mut::<PgInput>(PG_INPUT).unwrap();
                pg.clear();
                pg.add_stream(Stream::new("t", rx_if, frames).with_limit(n));
            })
            .unwrap();
    }

    /// Waits for `n` packets out of `sw_if` (any worker) and returns their flows with the
    /// worker that sent them.
    fn collect(&self, sw_if: u32, n: usize) -> Vec<(usize, Flow)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < deadline {
            for (w, per_if) in self.captures.iter().enumerate() {
                for f in per_if[sw_if as usize].try_iter() {
                    out.push((w, parse(&f[14..]).unwrap().flow));
                }
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        out
    }

    fn error(&self, node: &str, name: &str, worker: usize) -> u64 {
        let stats = self.w.stats();
        show::error_rows(self.w.layout(), &stats[worker..=worker])
            .iter()
            .find(|r| r.node == node && r.name == name)
            .map_or(0, |r| r.count)
    }
}

#[test]
fn return_traffic_is_handed_to_the_worker_owning_the_port() {
    let t = TwoWorkers::start();
    let flows = 200u16;
    t.send(
        0,
        0,
        (0..flows)
            .map(|k| udp((IF0, POD), ("10.1.1.2", 20000 + k), ("8.8.8.8", 53)))
            .collect(),
    );
    let out = t.collect(1, flows as usize);
    assert_eq!(out.len(), flows as usize);
    let slice0 = vpg_nat44::ports::PortSlices::new(1024, 65535, 2).slice(0);
    for (_, f) in &out {
        assert_eq!(f.src, ip("192.0.2.1"));
        assert!(
            slice0.contains(&(f.sport as u32)),
            "worker 0's port slice: {}",
            f.sport
        );
    }
    // Every reply arrives on worker 1; worker 0 owns the sessions.
    t.send(
        1,
        1,
        out.iter()
            .map(|(_, f)| udp((IF1, GW), ("8.8.8.8", 53), ("192.0.2.1", f.sport)))
            .collect(),
    );
    let back = t.collect(0, flows as usize);
    assert_eq!(back.len(), flows as usize, "every reply translated");
    let mut ports: Vec<u16> = back
        .iter()
        .map(|(w, f)| {
            assert_eq!(*w, 0, "translated on the owner");
            assert_eq!(f.dst, ip("10.1.1.2"));
            f.dport
        })
        .collect();
    ports.sort_unstable();
    assert_eq!(ports, (20000..20000 + flows).collect::<Vec<_>>());
    assert_eq!(
        t.error("nat44-out2in-handoff", "handed-off", 1),
        flows as u64
    );
    assert_eq!(t.error("nat44-out2in", "no-session", 0), 0);
    t.w.stop();
}

#[test]
fn service_sessions_follow_the_client_whichever_worker_sees_a_packet() {
    let t = TwoWorkers::start();
    let clients = 100u16;
    // Requests arrive on worker 0, from outside clients to the VIP.
    t.send(
        0,
        1,
        (0..clients)
            .map(|k| udp((IF1, GW), ("198.51.100.7", 30000 + k), ("10.96.0.10", 53)))
            .collect(),
    );
    let there = t.collect(0, clients as usize);
    assert_eq!(there.len(), clients as usize);
    let owners: std::collections::HashSet<usize> = there.iter().map(|(w, _)| *w).collect();
    assert_eq!(owners.len(), 2, "sessions spread over both workers");
    // Replies from the endpoints arrive on worker 1.
    t.send(
        1,
        0,
        there
            .iter()
            .map(|(_, f)| {
                let ep = Ipv4Addr::from_bits(f.dst).to_string();
                udp((IF0, POD), (&ep, 5353), ("198.51.100.7", f.sport))
            })
            .collect(),
    );
    let back = t.collect(1, clients as usize);
    assert_eq!(back.len(), clients as usize, "every reply translated back");
    for (w, f) in &back {
        assert!(
            f.src == ip("10.96.0.10") && f.sport == 53,
            "worker {w}: {f}; handed off {} / {}",
            t.error("nat44-out2in-handoff", "handed-off", 0),
            t.error("nat44-out2in-handoff", "handed-off", 1)
        );
    }
    t.w.stop();
}
