//! VXLAN through the whole graph of two nodes: pod A's packets routed into a tunnel on node A,
//! encapsulated, routed out the underlay, received on node B, decapsulated, routed to pod B.
//! Also: the tunnel MTU answered with ICMP fragmentation-needed, ARP through the tunnel, counters.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};
use vpg_graph::{ConfigSet, GraphSpec, TxNodes};
use vpg_ip4::ip4_local::LocalUdpPorts;
use vpg_ip4::RoutePath;
use vpg_tests::{udp_frame, Harness};
use vpg_vxlan::{TunnelKey, VxlanControl};

const POD_IF: u32 = 0;
const UPLINK: u32 = 1;
const TUNNEL: u32 = 2;

struct Node {
    h: Harness,
    vx: VxlanControl,
    pod_mac: [u8; 6],
    tun_mac: [u8; 6],
}

/// Node `n` (1 = A, 2 = B): pods in 10.n.0.0/24 (pod at .2), underlay 192.168.1.n/24, tunnel
/// address 10.255.0.n/24, a route to the other node's pods out of the tunnel; the far end's MAC
/// configured when `peer_mac`.
fn node(n: u8, peer_mac: bool) -> Node {
    let other = 3 - n;
    let mut spec = GraphSpec::new();
    vpg_vxlan::register(&mut spec);
    let mut h = Harness::with_spec(spec);
    let mac = |i: u8| [2, 0, 0, n, 0, i];
    h.add_interface(POD_IF, mac(0), &format!("10.{n}.0.1/24"));
    h.add_interface(UPLINK, mac(1), &format!("192.168.1.{n}/24"));
    h.add_neighbor(POD_IF, &format!("10.{n}.0.2"), [2, 0, 0, n, 9, 9]);
    h.add_neighbor(
        UPLINK,
        &format!("192.168.1.{other}"),
        [2, 0, 0, other, 0, 1],
    );
    let tun_mac = mac(2);
    let peer = EthernetAddress([2, 0, 0, other, 0, 2]);
    let ip4 = &mut h.ip4;
    ip4.add_interface(TUNNEL, "vxlan0", EthernetAddress(tun_mac))
        .unwrap();
    ip4.set_admin_up(TUNNEL, true).unwrap();
    ip4.set_mtu(TUNNEL, 1450).unwrap();
    ip4.add_address(TUNNEL, format!("10.255.0.{n}/24").parse().unwrap())
        .unwrap();
    let net: Ipv4Cidr = format!("10.{other}.0.0/16").parse().unwrap();
    ip4.add_route(net, RoutePath::Attached { sw_if: TUNNEL })
        .unwrap();
    let mut vx = VxlanControl::new();
    let key = TunnelKey {
        local: Ipv4Addr::new(192, 168, 1, n),
        remote: Ipv4Addr::new(192, 168, 1, other),
        vni: 42,
        port: 4789,
    };
    vx.add_tunnel(TUNNEL, key, peer_mac.then_some(peer))
        .unwrap();
    if peer_mac {
        ip4.set_peer_mac(TUNNEL, Some(peer)).unwrap();
    }
    let mut node = Node {
        h,
        vx,
        pod_mac: mac(0),
        tun_mac,
    };
    node.commit();
    node
}

impl Node {
    /// What vpgd publishes: the IPv4 tables, the tunnels, the tunnel's TX node, UDP 4789 to decap.
    fn commit(&mut self) {
        let layout = self.h.rt.layout().clone();
        let cfg = ConfigSet::new()
            .with(self.h.ip4.tables())
            .with(Arc::new(self.h.features.clone()))
            .with(self.vx.tables())
            .with(Arc::new(
                self.vx.tx_nodes(&layout, TxNodes::default()).unwrap(),
            ))
            .with(Arc::new(
                LocalUdpPorts::new(&layout, self.vx.local_udp_ports()).unwrap(),
            ));
        self.h.rt.reconfigure(Arc::new(cfg));
    }

    fn counters(&self, sw_if: u32) -> [u64; 5] {
        let c = &self.h.rt.stats().interfaces[sw_if as usize];
        [
            c.rx_packets.get(),
            c.rx_bytes.get(),
            c.tx_packets.get(),
            c.tx_bytes.get(),
            c.drops.get(),
        ]
    }
}

fn ipv4(f: &[u8]) -> etherparse::Ipv4Header {
    match SlicedPacket::from_ethernet(f).unwrap().net {
        Some(NetSlice::Ipv4(ip)) => ip.header().to_header(),
        _ => panic!("not ipv4"),
    }
}

#[test]
fn pod_to_pod_through_the_tunnel_keeps_addresses_and_counts_every_packet() {
    let mut a = node(1, true);
    let mut b = node(2, true);
    let payload: Vec<u8> = (0..200u8).collect();
    let frames: Vec<Vec<u8>> = (0..10)
        .map(|_| {
            udp_frame(
                a.pod_mac,
                [2, 0, 0, 1, 9, 9],
                "10.1.0.2",
                "10.2.0.2",
                64,
                &payload,
            )
        })
        .collect();
    a.h.send(POD_IF, frames);
    let outer = a.h.captured(UPLINK);
    assert_eq!(outer.len(), 10, "errors: {:?}", a.h.errors());
    for f in &outer {
        assert_eq!(&f[0..6], &[2, 0, 0, 2, 0, 1], "underlay next hop's MAC");
        let o = ipv4(f);
        assert_eq!(
            (o.source, o.destination),
            ([192, 168, 1, 1], [192, 168, 1, 2])
        );
        assert_eq!(o.time_to_live, 63, "outer routed once");
        assert_eq!(o.header_checksum, o.calc_header_checksum());
        // The inner frame: the far end's MAC from the tunnel's MAC, TTL decremented once.
        let inner = &f[14 + 36..];
        assert_eq!(&inner[0..6], &[2, 0, 0, 2, 0, 2], "far end's MAC");
        assert_eq!(&inner[6..12], &a.tun_mac);
        assert_eq!(ipv4(inner).time_to_live, 63);
    }
    b.h.send(UPLINK, outer);
    let delivered = b.h.captured(POD_IF);
    assert_eq!(delivered.len(), 10, "errors: {:?}", b.h.errors());
    for f in &delivered {
        assert_eq!(&f[0..6], &[2, 0, 0, 2, 9, 9], "pod B's MAC");
        assert_eq!(&f[6..12], &b.pod_mac);
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!()
        };
        let h = ip.header().to_header();
        assert_eq!(
            (h.source, h.destination),
            ([10, 1, 0, 2], [10, 2, 0, 2]),
            "real addresses"
        );
        assert_eq!(h.time_to_live, 62);
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        let Some(TransportSlice::Udp(u)) = p.transport else {
            panic!()
        };
        assert_eq!(u.payload(), &payload[..]);
    }
    let inner_len = (14 + 20 + 8 + 200) as u64;
    assert_eq!(
        a.counters(TUNNEL),
        [0, 0, 10, 10 * inner_len, 0],
        "A's tunnel sent 10"
    );
    assert_eq!(
        b.counters(TUNNEL),
        [10, 10 * inner_len, 0, 0, 0],
        "B's tunnel got 10"
    );
    // Nothing dropped: the only counts are ip4-local handing UDP 4789 on.
    assert!(a.h.errors().is_empty(), "{:?}", a.h.errors());
    assert_eq!(b.h.errors().len(), 1, "{:?}", b.h.errors());
    assert_eq!(b.h.error("ip4-local", "udp-handed-on"), 10);
    // The reply direction works the same way.
    let back = udp_frame(
        b.pod_mac,
        [2, 0, 0, 2, 9, 9],
        "10.2.0.2",
        "10.1.0.2",
        64,
        b"back",
    );
    b.h.send(POD_IF, vec![back]);
    a.h.send(UPLINK, b.h.captured(UPLINK));
    assert_eq!(a.h.captured(POD_IF).len(), 1);
}

#[test]
fn packets_too_big_for_the_tunnel_get_fragmentation_needed() {
    let mut a = node(1, true);
    let pod_mac = a.pod_mac;
    let big = |df: bool| {
        let mut f = udp_frame(
            pod_mac,
            [2, 0, 0, 1, 9, 9],
            "10.1.0.2",
            "10.2.0.2",
            64,
            &[7; 1472],
        );
        // etherparse sets DF; set or clear it as asked.
        f[14 + 6] = if df { 0x40 } else { 0 };
        f[14 + 10..14 + 12].fill(0);
        let c = vpg_graph::wire::checksum::data(&f[14..34]);
        f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        f
    };
    // 1500 bytes of IP: fits a 1500 underlay only without the 50 bytes of VXLAN.
    a.h.send(POD_IF, vec![big(true), big(false)]);
    assert!(a.h.captured(UPLINK).is_empty(), "nothing too big leaves");
    let icmp = a.h.captured(POD_IF);
    assert_eq!(icmp.len(), 1, "{:?}", a.h.errors());
    let p = SlicedPacket::from_ethernet(&icmp[0]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    assert_eq!(ip.header().destination(), [10, 1, 0, 2]);
    assert_eq!(ip.header().source(), [10, 1, 0, 1]);
    let Some(TransportSlice::Icmpv4(m)) = p.transport else {
        panic!("not icmp")
    };
    let b = m.slice();
    assert_eq!((b[0], b[1]), (3, 4), "fragmentation needed");
    assert_eq!(
        u16::from_be_bytes([b[6], b[7]]),
        1450,
        "next-hop MTU is the tunnel's"
    );
    assert_eq!(a.h.error("ip4-rewrite", "fragmentation-needed"), 1);
    assert_eq!(a.h.error("ip4-rewrite", "mtu-exceeded"), 1);
    // Raising the tunnel MTU lets it through (the underlay then decides).
    a.h.ip4.set_mtu(TUNNEL, 1500).unwrap();
    a.commit();
    a.h.send(POD_IF, vec![big(true)]);
    assert_eq!(
        a.h.error("ip4-rewrite", "mtu-exceeded"),
        2,
        "outer 1550 > uplink 1500"
    );
}

#[test]
fn arp_crosses_the_tunnel_and_decap_learns_the_far_end() {
    // Neither side knows the other's MAC. A route via B's tunnel address makes A ask by ARP.
    let mut a = node(1, false);
    let mut b = node(2, false);
    a.h.ip4
        .add_route(
            "10.9.0.0/16".parse().unwrap(),
            RoutePath::Via {
                next_hop: Ipv4Addr::new(10, 255, 0, 2),
                sw_if: TUNNEL,
            },
        )
        .unwrap();
    a.commit();
    let (tx, learned) = crossbeam_channel::bounded(4);
    b.h.rt
        .node_mut::<vpg_vxlan::VxlanDecap>("vxlan4-decap")
        .unwrap()
        .set_learn_sender(tx);
    a.h.send(
        POD_IF,
        vec![udp_frame(
            a.pod_mac,
            [2, 0, 0, 1, 9, 9],
            "10.1.0.2",
            "10.9.0.5",
            64,
            b"x",
        )],
    );
    let req = a.h.captured(UPLINK);
    assert_eq!(req.len(), 1, "ARP request encapsulated: {:?}", a.h.errors());
    let inner = &req[0][14 + 36..];
    assert_eq!(&inner[0..6], &[0xff; 6]);
    assert_eq!(&inner[12..14], &[8, 6], "an ARP request inside");
    b.h.send(UPLINK, req);
    assert_eq!(b.h.error("arp-input", "replies-sent"), 1);
    assert_eq!(
        learned
            .try_iter()
            .map(|l| (l.sw_if, l.mac))
            .collect::<Vec<_>>(),
        vec![(TUNNEL, EthernetAddress(a.tun_mac))],
        "B learned A's tunnel MAC from the decapsulated frame"
    );
    let reply = b.h.captured(UPLINK);
    assert_eq!(reply.len(), 1, "ARP reply encapsulated back");
    a.h.send(UPLINK, reply);
    assert_eq!(a.h.error("arp-input", "replies-received"), 1);
    assert_eq!(a.counters(TUNNEL)[0], 1, "the reply arrived on A's tunnel");
}

#[test]
fn a_tunnel_that_is_down_drops_and_counts_what_it_receives() {
    let mut a = node(1, true);
    let mut b = node(2, true);
    b.h.ip4.set_admin_up(TUNNEL, false).unwrap();
    b.commit();
    a.h.send(
        POD_IF,
        vec![
            udp_frame(
                a.pod_mac,
                [2, 0, 0, 1, 9, 9],
                "10.1.0.2",
                "10.2.0.2",
                64,
                b"x"
            );
            3
        ],
    );
    b.h.send(UPLINK, a.h.captured(UPLINK));
    assert!(b.h.captured(POD_IF).is_empty());
    assert_eq!(b.h.error("ethernet-input", "interface-down"), 3);
    assert_eq!(b.counters(TUNNEL)[4], 3, "drops charged to the tunnel");
    // With no tunnel left, ip4-local no longer hands port 4789 to vxlan4-decap.
    b.vx.del_tunnel(TUNNEL).unwrap();
    b.commit();
    a.h.send(
        POD_IF,
        vec![udp_frame(
            a.pod_mac,
            [2, 0, 0, 1, 9, 9],
            "10.1.0.2",
            "10.2.0.2",
            64,
            b"x",
        )],
    );
    b.h.send(UPLINK, a.h.captured(UPLINK));
    assert_eq!(
        b.h.error("ip4-local", "unknown-protocol"),
        1,
        "no tunnel port any more"
    );
}
