//! NAT44 in the graph with the packet generator: SNAT on an outside interface (TCP lifecycle
//! and timeouts on the injected clock, UDP, ICMP echo and errors), pool exhaustion and limits,
//! identity and never-NAT traffic, services (load balancing, stickiness, loopback), stale
//! sessions (the VPP-1266 shape), configuration changes, and the in2out/out2in round trip.

use proptest::prelude::*;
use std::net::Ipv4Addr;
use std::time::Duration;
use vpg_graph::wire::Ipv4Cidr;
use vpg_ip4::RoutePath;
use vpg_nat44::flow::parse;
use vpg_nat44::{Endpoint, Flow, IdentityMapping, Limits, PoolEntry, Role, StaticMapping};
use vpg_tests::Harness;

const IF0: [u8; 6] = [0x02, 0, 0, 0, 0, 0x10];
const IF1: [u8; 6] = [0x02, 0, 0, 0, 0, 0x11];
const IF2: [u8; 6] = [0x02, 0, 0, 0, 0, 0x12];
const POD2: [u8; 6] = [0x02, 0, 0, 0, 1, 0x02];
const POD3: [u8; 6] = [0x02, 0, 0, 0, 1, 0x03];
const CLIENT: [u8; 6] = [0x02, 0, 0, 0, 2, 0x02];
const GW: [u8; 6] = [0x02, 0, 0, 0, 3, 0xfe];
const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const FIN: u8 = 0x01;
const INSIDE: Role = Role {
    inside: true,
    outside: false,
};
const OUTSIDE: Role = Role {
    inside: false,
    outside: true,
};
const NODE_IP: &str = "192.0.2.1";
const VIP: &str = "10.96.0.10";

fn ip(s: &str) -> u32 {
    s.parse::<Ipv4Addr>().unwrap().to_bits()
}

/// Interface 0 (inside): pods 10.1.1.2 and 10.1.1.3 behind 10.1.1.1/24. Interface 1 (outside):
/// the uplink 192.0.2.1/24, default route via 192.0.2.254, which is also the pool address.
/// Interface 2 (inside): a client pod 10.1.2.2 behind 10.1.2.1/24. The cluster network
/// 10.0.0.0/8 is never translated.
fn gateway() -> Harness {
    let mut h = Harness::new();
    h.add_interface(0, IF0, "10.1.1.1/24");
    h.add_interface(1, IF1, "192.0.2.1/24");
    h.add_interface(2, IF2, "10.1.2.1/24");
    h.add_neighbor(0, "10.1.1.2", POD2);
    h.add_neighbor(0, "10.1.1.3", POD3);
    h.add_neighbor(2, "10.1.2.2", CLIENT);
    h.add_neighbor(1, "192.0.2.254", GW);
    h.ip4
        .add_route(
            "0.0.0.0/0".parse::<Ipv4Cidr>().unwrap(),
            RoutePath::Via {
                next_hop: "192.0.2.254".parse().unwrap(),
                sw_if: 1,
            },
        )
        .unwrap();
    h.nat.add_pool(PoolEntry::Interface(1), |_| true).unwrap();
    h.nat
        .set_never_nat(vec![("10.0.0.0".parse().unwrap(), 8)])
        .unwrap();
    h.set_nat(0, INSIDE);
    h.set_nat(2, INSIDE);
    h.set_nat(1, OUTSIDE);
    h
}

fn builder(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
) -> etherparse::PacketBuilderStep<etherparse::IpHeaders> {
    etherparse::PacketBuilder::ethernet2(src_mac, dst_mac).ipv4(
        src.parse::<Ipv4Addr>().unwrap().octets(),
        dst.parse::<Ipv4Addr>().unwrap().octets(),
        64,
    )
}

fn tcp(mac: ([u8; 6], [u8; 6]), src: (&str, u16), dst: (&str, u16), flags: u8) -> Vec<u8> {
    vpg_tests::tcp_frame(mac.0, mac.1, src, dst, flags)
}

fn udp(mac: ([u8; 6], [u8; 6]), src: (&str, u16), dst: (&str, u16)) -> Vec<u8> {
    let b = builder(mac.0, mac.1, src.0, dst.0).udp(src.1, dst.1);
    let mut out = Vec::new();
    b.write(&mut out, b"payload").unwrap();
    out
}

fn echo(mac: ([u8; 6], [u8; 6]), src: &str, dst: &str, id: u16, reply: bool) -> Vec<u8> {
    let b = builder(mac.0, mac.1, src, dst);
    let mut out = Vec::new();
    if reply {
        b.icmpv4_echo_reply(id, 1).write(&mut out, b"ping").unwrap();
    } else {
        b.icmpv4_echo_request(id, 1)
            .write(&mut out, b"ping")
            .unwrap();
    }
    out
}

/// Into interface 0 from pod 10.1.1.2.
const FROM_POD2: ([u8; 6], [u8; 6]) = (IF0, POD2);
/// Into interface 1 from the gateway.
const FROM_NET: ([u8; 6], [u8; 6]) = (IF1, GW);
/// Into interface 2 from the client pod.
const FROM_CLIENT: ([u8; 6], [u8; 6]) = (IF2, CLIENT);

/// The flow of a captured frame, after checking every checksum against etherparse.
fn flow_of(frame: &[u8]) -> Flow {
    let p = etherparse::SlicedPacket::from_ethernet(frame).expect("parses");
    if let Some(etherparse::NetSlice::Ipv4(v4)) = &p.net {
        let h = v4.header().to_header();
        assert_eq!(h.header_checksum, h.calc_header_checksum(), "IP checksum");
        let payload = v4.payload().payload;
        match &p.transport {
            Some(etherparse::TransportSlice::Tcp(t)) => assert_eq!(
                t.checksum(),
                t.to_header()
                    .calc_checksum_ipv4(&h, &payload[t.header_len()..])
                    .unwrap(),
                "TCP checksum"
            ),
            Some(etherparse::TransportSlice::Udp(u)) if u.checksum() != 0 => assert_eq!(
                u.checksum(),
                u.to_header().calc_checksum_ipv4(&h, &payload[8..]).unwrap(),
                "UDP checksum"
            ),
            Some(etherparse::TransportSlice::Icmpv4(_)) => {
                assert_eq!(vpg_graph::wire::checksum::data(payload), 0, "ICMP checksum")
            }
            _ => {}
        }
    }
    parse(&frame[14..]).expect("IPv4").flow
}

fn one(frames: Vec<Vec<u8>>) -> Flow {
    assert_eq!(frames.len(), 1, "exactly one packet out");
    flow_of(&frames[0])
}

fn flow(src: &str, sport: u16, dst: &str, dport: u16, proto: u8) -> Flow {
    Flow {
        src: ip(src),
        dst: ip(dst),
        sport,
        dport,
        proto,
    }
}

/// A packet through the NAT nodes that concerns no session: it makes the worker run its
/// per-frame work (configuration sync, expiry). Nodes only run when packets arrive.
fn tick(h: &mut Harness) {
    h.send(0, vec![udp(FROM_POD2, ("10.1.1.2", 9), ("10.2.0.9", 9))]);
    h.captured(1);
}

fn secs(h: &mut Harness, s: u64) {
    h.now = h.now + Duration::from_secs(s);
}

#[test]
fn tcp_lifecycle_and_timeouts() {
    let mut h = gateway();
    h.trace_add("nat44-in2out", 10);
    h.send(
        0,
        vec![tcp(FROM_POD2, ("10.1.1.2", 40000), ("8.8.8.8", 443), SYN)],
    );
    let out = one(h.captured(1));
    assert_eq!(
        out,
        flow(NODE_IP, 40000, "8.8.8.8", 443, 6),
        "source port kept"
    );
    let trace = h.trace();
    assert!(
        trace.contains("new session ") && trace.contains(" (dynamic)"),
        "{trace}"
    );
    h.send(
        1,
        vec![tcp(FROM_NET, ("8.8.8.8", 443), (NODE_IP, 40000), SYN | ACK)],
    );
    assert_eq!(
        one(h.captured(0)),
        flow("8.8.8.8", 443, "10.1.1.2", 40000, 6)
    );
    assert_eq!(h.nat_sessions()[0].state(), "established");
    // Established: 7440 s of idleness allowed.
    secs(&mut h, 7000);
    h.send(
        0,
        vec![tcp(FROM_POD2, ("10.1.1.2", 40000), ("8.8.8.8", 443), ACK)],
    );
    assert_eq!(one(h.captured(1)).sport, 40000);
    secs(&mut h, 7441);
    h.send(
        1,
        vec![tcp(FROM_NET, ("8.8.8.8", 443), (NODE_IP, 40000), ACK)],
    );
    assert!(h.captured(0).is_empty(), "timed out: no longer translated");
    assert_eq!(h.error("nat44-out2in", "no-session"), 1);
    assert!(h.nat_sessions().is_empty());
    // Transitory: 240 s.
    h.send(
        0,
        vec![tcp(FROM_POD2, ("10.1.1.2", 40001), ("8.8.8.8", 443), SYN)],
    );
    assert_eq!(h.captured(1).len(), 1);
    assert_eq!(h.nat_sessions()[0].state(), "transitory");
    secs(&mut h, 239);
    tick(&mut h);
    assert_eq!(h.nat_sessions().len(), 1);
    secs(&mut h, 2);
    tick(&mut h);
    assert!(h.nat_sessions().is_empty(), "reclaimed by the wheel");
    assert!(h.error("nat44-out2in", "expired") + h.error("nat44-in2out", "expired") >= 2);
    // Closing: FIN makes an established session transitory again.
    h.send(
        0,
        vec![tcp(FROM_POD2, ("10.1.1.2", 40002), ("8.8.8.8", 443), SYN)],
    );
    h.send(
        1,
        vec![tcp(FROM_NET, ("8.8.8.8", 443), (NODE_IP, 40002), SYN | ACK)],
    );
    h.send(
        0,
        vec![tcp(
            FROM_POD2,
            ("10.1.1.2", 40002),
            ("8.8.8.8", 443),
            FIN | ACK,
        )],
    );
    assert_eq!(h.nat_sessions()[0].state(), "closing");
    secs(&mut h, 241);
    tick(&mut h);
    assert!(h.nat_sessions().is_empty());
}

#[test]
fn udp_icmp_echo_and_icmp_error() {
    let mut h = gateway();
    h.send(0, vec![udp(FROM_POD2, ("10.1.1.2", 5000), ("8.8.8.8", 53))]);
    let out = one(h.captured(1));
    assert_eq!((out.src, out.sport), (ip(NODE_IP), 5000));
    h.send(1, vec![udp(FROM_NET, ("8.8.8.8", 53), (NODE_IP, 5000))]);
    assert_eq!(
        one(h.captured(0)),
        flow("8.8.8.8", 53, "10.1.1.2", 5000, 17)
    );

    // Echo: identifier 7 is below the port range, so it changes, and changes back.
    h.send(0, vec![echo(FROM_POD2, "10.1.1.2", "1.1.1.1", 7, false)]);
    let out = one(h.captured(1));
    assert_eq!(out.src, ip(NODE_IP));
    assert!(out.sport >= 1024, "identifier from the port range");
    h.send(1, vec![echo(FROM_NET, "1.1.1.1", NODE_IP, out.sport, true)]);
    assert_eq!(one(h.captured(0)), flow("1.1.1.1", 0, "10.1.1.2", 7, 1));

    // An ICMP error about the UDP flow, from a router on the way: the quoted packet is ours
    // as sent (node address); the pod gets it quoting its own packet.
    let sent = udp(FROM_NET, (NODE_IP, 5000), ("8.8.8.8", 53));
    let mut err = Vec::new();
    builder(IF1, GW, "198.51.100.1", NODE_IP)
        .icmpv4(etherparse::Icmpv4Type::DestinationUnreachable(
            etherparse::icmpv4::DestUnreachableHeader::Port,
        ))
        .write(&mut err, &sent[14..])
        .unwrap();
    h.send(1, vec![err]);
    let got = h.captured(0);
    assert_eq!(got.len(), 1);
    let f = &got[0];
    assert_eq!(
        &f[26..30],
        &[198, 51, 100, 1],
        "the router stays the source"
    );
    assert_eq!(&f[30..34], &[10, 1, 1, 2]);
    flow_of(f);
    let quoted = &f[14 + 28..];
    assert_eq!(&quoted[12..16], &[10, 1, 1, 2], "quoted source is the pod");
    assert_eq!(u16::from_be_bytes([quoted[20], quoted[21]]), 5000);
    assert_eq!(vpg_graph::wire::checksum::data(&quoted[..20]), 0);
}

#[test]
fn pool_exhaustion_and_limits() {
    let mut h = gateway();
    h.nat.set_port_range(1024, 1027).unwrap();
    h.commit();
    let frames = (0..5)
        .map(|k| udp(FROM_POD2, ("10.1.1.2", 5000 + k), ("8.8.8.8", 53)))
        .collect();
    h.send(0, frames);
    let mut ports: Vec<u16> = h.captured(1).iter().map(|f| flow_of(f).sport).collect();
    ports.sort_unstable();
    assert_eq!(ports, vec![1024, 1025, 1026, 1027], "each port once");
    assert_eq!(h.error("nat44-in2out", "out-of-ports"), 1);
    // Endpoint-dependent: another destination may reuse the ports.
    h.send(0, vec![udp(FROM_POD2, ("10.1.1.2", 5000), ("8.8.4.4", 53))]);
    assert_eq!(h.captured(1).len(), 1);

    // Per-worker and per-address limits.
    let mut h = gateway();
    h.nat
        .set_limits(Limits {
            sessions_per_worker: 3,
            sessions_per_address: 2,
        })
        .unwrap();
    h.commit();
    let frames = (0..3)
        .map(|k| udp(FROM_POD2, ("10.1.1.2", 6000 + k), ("8.8.8.8", 53)))
        .collect();
    h.send(0, frames);
    assert_eq!(h.captured(1).len(), 2);
    assert_eq!(h.error("nat44-in2out", "address-limit"), 1);
    let from3 = |p| tcp((IF0, POD3), ("10.1.1.3", p), ("8.8.8.8", 80), SYN);
    h.send(0, vec![from3(7000), from3(7001)]);
    assert_eq!(h.captured(1).len(), 1);
    assert_eq!(h.error("nat44-in2out", "session-limit"), 1);
    // Once the UDP sessions time out, the full table makes room.
    secs(&mut h, 301);
    h.send(0, vec![from3(7002)]);
    assert_eq!(h.captured(1).len(), 1);
}

#[test]
fn identity_never_nat_and_unsolicited() {
    let mut h = gateway();
    h.nat
        .add_identity(IdentityMapping {
            addr: NODE_IP.parse().unwrap(),
            proto: Some(17),
            port: 4789,
            tag: "vxlan".into(),
        })
        .unwrap();
    h.nat
        .add_identity(IdentityMapping {
            addr: "10.1.1.3".parse().unwrap(),
            proto: None,
            port: 0,
            tag: "host".into(),
        })
        .unwrap();
    h.commit();
    // Never-NAT: the cluster network keeps pod addresses.
    h.send(
        0,
        vec![udp(FROM_POD2, ("10.1.1.2", 5000), ("10.2.0.5", 80))],
    );
    assert_eq!(one(h.captured(1)).src, ip("10.1.1.2"));
    assert_eq!(h.error("nat44-in2out", "never-nat"), 1);
    // Identity: an inside host that is never translated.
    h.send(
        0,
        vec![udp((IF0, POD3), ("10.1.1.3", 5000), ("8.8.8.8", 80))],
    );
    assert_eq!(one(h.captured(1)).src, ip("10.1.1.3"));
    // Identity on the node address: VXLAN reaches the node, no NAT drop.
    h.send(
        1,
        vec![udp(FROM_NET, ("192.0.2.254", 4789), (NODE_IP, 4789))],
    );
    assert_eq!(h.error("nat44-out2in", "no-session"), 0);
    // Unsolicited traffic to the pool address is dropped; pings reach the node.
    h.send(
        1,
        vec![tcp(FROM_NET, ("8.8.8.8", 443), (NODE_IP, 8080), SYN)],
    );
    assert_eq!(h.error("nat44-out2in", "no-session"), 1);
    h.send(1, vec![echo(FROM_NET, "8.8.8.8", NODE_IP, 99, false)]);
    let reply = one(h.captured(1));
    assert_eq!(
        reply,
        flow(NODE_IP, 0, "8.8.8.8", 99, 1),
        "the node answers"
    );
    assert!(
        h.nat_sessions().is_empty(),
        "nothing of this made a session"
    );
}

fn service(h: &mut Harness, proto: u8, port: u16, locals: &[(&str, u16)]) {
    h.nat
        .add_mapping(StaticMapping {
            external: VIP.parse().unwrap(),
            proto: Some(proto),
            external_port: port,
            locals: locals
                .iter()
                .map(|&(a, p)| Endpoint {
                    addr: a.parse().unwrap(),
                    port: p,
                    weight: 1,
                })
                .collect(),
            out2in_only: true,
            tag: "default/web".into(),
        })
        .unwrap();
    h.commit();
}

#[test]
fn service_balances_sticks_and_replies_come_from_the_vip() {
    let mut h = gateway();
    service(&mut h, 6, 80, &[("10.1.1.2", 8080), ("10.1.1.3", 8080)]);
    let frames = (0..64)
        .map(|k| tcp(FROM_CLIENT, ("10.1.2.2", 30000 + k), (VIP, 80), SYN))
        .collect();
    h.send(2, frames);
    let got: Vec<Flow> = h.captured(0).iter().map(|f| flow_of(f)).collect();
    assert_eq!(got.len(), 64);
    let to2 = got.iter().filter(|f| f.dst == ip("10.1.1.2")).count();
    assert!((16..=48).contains(&to2), "both endpoints used: {to2} of 64");
    assert!(
        got.iter()
            .all(|f| f.src == ip("10.1.2.2") && f.dport == 8080),
        "the backend sees the client's address"
    );
    // The same connection sticks to its endpoint.
    let first = got[0];
    h.send(
        2,
        vec![tcp(FROM_CLIENT, ("10.1.2.2", 30000), (VIP, 80), ACK)],
    );
    assert_eq!(one(h.captured(0)).dst, first.dst);
    // The reply leaves as the VIP.
    let mac = if first.dst == ip("10.1.1.2") {
        POD2
    } else {
        POD3
    };
    let ep = Ipv4Addr::from_bits(first.dst).to_string();
    h.send(
        0,
        vec![tcp((IF0, mac), (&ep, 8080), ("10.1.2.2", 30000), SYN | ACK)],
    );
    assert_eq!(one(h.captured(2)), flow(VIP, 80, "10.1.2.2", 30000, 6));
    assert_eq!(h.error("nat44-out2in", "created"), 64);
}

#[test]
fn stale_sessions_never_rewrite_later_traffic() {
    // VPP-1266: a reply from a pod must not be rewritten to a service VIP by an older session.
    let mut h = gateway();
    service(&mut h, 6, 80, &[("10.1.1.2", 8080)]);
    service(&mut h, 17, 53, &[("10.1.1.2", 5353)]);
    h.send(
        2,
        vec![tcp(FROM_CLIENT, ("10.1.2.2", 33000), (VIP, 80), SYN)],
    );
    h.send(
        0,
        vec![tcp(
            FROM_POD2,
            ("10.1.1.2", 8080),
            ("10.1.2.2", 33000),
            SYN | ACK,
        )],
    );
    assert_eq!(one(h.captured(2)).src, ip(VIP));
    h.captured(0);
    h.send(
        2,
        vec![tcp(FROM_CLIENT, ("10.1.2.2", 33000), (VIP, 80), FIN | ACK)],
    );
    h.send(
        0,
        vec![tcp(
            FROM_POD2,
            ("10.1.1.2", 8080),
            ("10.1.2.2", 33000),
            FIN | ACK,
        )],
    );
    h.captured(0);
    h.captured(2);
    // The pod now opens its own connection that happens to use the same ports.
    h.send(
        0,
        vec![tcp(FROM_POD2, ("10.1.1.2", 8080), ("10.1.2.2", 33000), SYN)],
    );
    assert_eq!(
        one(h.captured(2)),
        flow("10.1.1.2", 8080, "10.1.2.2", 33000, 6),
        "not rewritten to the VIP"
    );
    assert_eq!(h.error("nat44-out2in", "stale"), 1);

    // UDP: once the session has timed out (reclaimed or not), the pod's packets are its own.
    h.send(2, vec![udp(FROM_CLIENT, ("10.1.2.2", 40000), (VIP, 53))]);
    h.send(
        0,
        vec![udp(FROM_POD2, ("10.1.1.2", 5353), ("10.1.2.2", 40000))],
    );
    assert_eq!(one(h.captured(2)).src, ip(VIP));
    secs(&mut h, 301);
    h.send(
        0,
        vec![udp(FROM_POD2, ("10.1.1.2", 5353), ("10.1.2.2", 40000))],
    );
    assert_eq!(one(h.captured(2)).src, ip("10.1.1.2"));
}

#[test]
fn a_pod_reaches_a_service_whose_only_endpoint_is_itself() {
    let mut h = gateway();
    h.nat.set_loopback(Some("10.1.1.254".parse().unwrap()));
    service(&mut h, 6, 80, &[("10.1.1.2", 8080)]);
    h.send(0, vec![tcp(FROM_POD2, ("10.1.1.2", 41000), (VIP, 80), SYN)]);
    let there = one(h.captured(0));
    assert_eq!((there.dst, there.dport), (ip("10.1.1.2"), 8080));
    assert_eq!(
        there.src,
        ip("10.1.1.254"),
        "seen from the loopback address"
    );
    let back = tcp(
        FROM_POD2,
        ("10.1.1.2", 8080),
        ("10.1.1.254", there.sport),
        SYN | ACK,
    );
    h.send(0, vec![back]);
    assert_eq!(one(h.captured(0)), flow(VIP, 80, "10.1.1.2", 41000, 6));
}

#[test]
fn configuration_changes_purge_what_they_invalidate() {
    let mut h = gateway();
    service(&mut h, 6, 80, &[("10.1.1.2", 8080), ("10.1.1.3", 8080)]);
    h.send(0, vec![udp(FROM_POD2, ("10.1.1.2", 5000), ("8.8.8.8", 53))]);
    h.send(
        2,
        vec![tcp(FROM_CLIENT, ("10.1.2.2", 30000), (VIP, 80), SYN)],
    );
    assert_eq!(h.nat_sessions().len(), 2);
    // Endpoints change: the DNAT session to a removed endpoint goes; the SNAT one stays.
    let ep = Ipv4Addr::from_bits(one(h.captured(0)).dst).to_string();
    let other = if ep == "10.1.1.2" {
        "10.1.1.3"
    } else {
        "10.1.1.2"
    };
    service(&mut h, 6, 80, &[(other, 8080)]);
    tick(&mut h);
    assert_eq!(h.nat_sessions().len(), 1);
    assert_eq!(h.error("nat44-out2in", "purged"), 1);
    // The pool address goes: its sessions go.
    h.nat.del_pool(PoolEntry::Interface(1)).unwrap();
    h.commit();
    tick(&mut h);
    assert!(h.nat_sessions().is_empty());
    h.send(0, vec![udp(FROM_POD2, ("10.1.1.2", 5000), ("8.8.8.8", 53))]);
    assert!(h.captured(1).is_empty());
    assert_eq!(h.error("nat44-in2out", "out-of-ports"), 1, "empty pool");
    // The interface's address changes: the pool follows it.
    h.nat.add_pool(PoolEntry::Interface(1), |_| true).unwrap();
    h.ip4
        .del_address(1, "192.0.2.1/24".parse().unwrap())
        .unwrap();
    h.ip4
        .add_address(1, "192.0.2.9/24".parse().unwrap())
        .unwrap();
    h.commit();
    h.send(0, vec![udp(FROM_POD2, ("10.1.1.2", 5000), ("8.8.8.8", 53))]);
    assert_eq!(one(h.captured(1)).src, ip("192.0.2.9"));
}

#[test]
fn timeouts_are_configurable() {
    let mut h = gateway();
    h.nat
        .set_timeouts(vpg_nat44::Timeouts {
            udp: Duration::from_secs(5),
            ..Default::default()
        })
        .unwrap();
    h.commit();
    h.send(0, vec![udp(FROM_POD2, ("10.1.1.2", 5000), ("8.8.8.8", 53))]);
    secs(&mut h, 6);
    h.send(1, vec![udp(FROM_NET, ("8.8.8.8", 53), (NODE_IP, 5000))]);
    assert!(h.captured(0).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    /// Out through SNAT, then the reply back in: the pod gets exactly its flow reversed.
    #[test]
    fn in2out_then_out2in_is_the_identity(
        pod in prop::sample::select(vec![("10.1.1.2", POD2), ("10.1.1.3", POD3)]),
        sport in 1u16..,
        remote in (1u8..224, any::<u8>(), any::<u8>(), 1u8..255),
        dport in 1u16..,
        kind in 0u8..3,
    ) {
        prop_assume!(remote.0 != 10 && remote.0 != 127);
        let remote = Ipv4Addr::new(remote.0, remote.1, remote.2, remote.3).to_string();
        let mut h = gateway();
        let (frame, proto) = match kind {
            0 => (tcp((IF0, pod.1), (pod.0, sport), (&remote, dport), SYN), 6),
            1 => (udp((IF0, pod.1), (pod.0, sport), (&remote, dport)), 17),
            _ => (echo((IF0, pod.1), pod.0, &remote, sport, false), 1),
        };
        h.send(0, vec![frame]);
        let out = one(h.captured(1));
        prop_assert_eq!(out.src, ip(NODE_IP));
        prop_assert_eq!(out.dst, ip(&remote));
        let reply = match kind {
            0 => tcp(FROM_NET, (&remote, dport), (NODE_IP, out.sport), SYN | ACK),
            1 => udp(FROM_NET, (&remote, dport), (NODE_IP, out.sport)),
            _ => echo(FROM_NET, &remote, NODE_IP, out.sport, true),
        };
        h.send(1, vec![reply]);
        let back = one(h.captured(0));
        let original = if proto == 1 {
            flow(pod.0, sport, &remote, 0, 1)
        } else {
            flow(pod.0, sport, &remote, dport, proto)
        };
        prop_assert_eq!(back, original.reverse());
    }
}

#[test]
fn an_outside_client_reaches_a_service_and_the_reply_is_not_snated() {
    let mut h = gateway();
    service(&mut h, 17, 53, &[("10.1.1.2", 5353)]);
    h.send(1, vec![udp(FROM_NET, ("198.51.100.7", 30000), (VIP, 53))]);
    assert_eq!(
        one(h.captured(0)),
        flow("198.51.100.7", 30000, "10.1.1.2", 5353, 17)
    );
    h.trace_add("nat44-out2in", 5);
    h.trace_add("nat44-in2out", 5);
    h.send(
        0,
        vec![udp(FROM_POD2, ("10.1.1.2", 5353), ("198.51.100.7", 30000))],
    );
    assert_eq!(
        one(h.captured(1)),
        flow(VIP, 53, "198.51.100.7", 30000, 17),
        "{}",
        h.trace()
    );
}
