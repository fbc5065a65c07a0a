//! ESP through the whole graph of two nodes: pod traffic in VXLAN between the nodes, protected
//! by ESP transport mode on the uplink (node A's `esp4-encrypt`, node B's `esp4-decrypt`); a
//! site-to-site tunnel-mode SA; "encryption required" with no SA; tampering, replays,
//! lifetimes, the end of the sequence space, and key rotation under traffic with no loss.

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;
use vpg_esp::{
    Direction, EspControl, EspDecrypt, EspEncrypt, KeyMaterial, Lifetime, Limits, Mode,
    ProtectRule, SaConfig, DECRYPT_NODE, ENCRYPT_NODE,
};
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};
use vpg_graph::{ArcId, ConfigSet, GraphSpec, TxNodes};
use vpg_ip4::ip4_local::LocalUdpPorts;
use vpg_ip4::RoutePath;
use vpg_tests::{udp_frame, Harness};
use vpg_vxlan::{TunnelKey, VxlanControl};

const POD_IF: u32 = 0;
const UPLINK: u32 = 1;
const TUNNEL: u32 = 2;
/// SA ids on every node: outbound and inbound of key generation `g` are 10g+1 and 10g+2.
const fn out_id(g: u8) -> u32 {
    10 * g as u32 + 1
}
const fn in_id(g: u8) -> u32 {
    10 * g as u32 + 2
}
/// The rule protecting VXLAN to the other node.
const RULE: u32 = 1;

struct Node {
    n: u8,
    h: Harness,
    vx: VxlanControl,
    esp: EspControl,
    pod_mac: [u8; 6],
}

/// Key material of generation `g` for traffic from node `from`.
fn key(g: u8, from: u8) -> KeyMaterial {
    KeyMaterial::new((0..20).map(|i| i * 3 + g * 16 + from).collect()).unwrap()
}

/// The SPI the receiving node `to` chose for generation `g`.
fn spi(g: u8, to: u8) -> u32 {
    0x1000 * u32::from(to) + u32::from(g)
}

/// Node `n` (1 = A, 2 = B) as in the VXLAN test, with ESP on its uplink: SAs of key
/// generation 1 in transport mode and a rule protecting VXLAN to the other node.
fn node(n: u8) -> Node {
    let other = 3 - n;
    let mut spec = GraphSpec::new();
    vpg_vxlan::register(&mut spec);
    vpg_esp::register(&mut spec);
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
    let peer = EthernetAddress([2, 0, 0, other, 0, 2]);
    let ip4 = &mut h.ip4;
    ip4.add_interface(TUNNEL, "vxlan0", EthernetAddress(mac(2)))
        .unwrap();
    ip4.set_admin_up(TUNNEL, true).unwrap();
    // 1500 less VXLAN's 50 and ESP transport's at most 37.
    ip4.set_mtu(TUNNEL, 1400).unwrap();
    let net: Ipv4Cidr = format!("10.{other}.0.0/16").parse().unwrap();
    ip4.add_route(net, RoutePath::Attached { sw_if: TUNNEL })
        .unwrap();
    ip4.set_peer_mac(TUNNEL, Some(peer)).unwrap();
    let mut vx = VxlanControl::new();
    let tkey = TunnelKey {
        local: Ipv4Addr::new(192, 168, 1, n),
        remote: Ipv4Addr::new(192, 168, 1, other),
        vni: 42,
        port: 4789,
    };
    vx.add_tunnel(TUNNEL, tkey, Some(peer)).unwrap();
    let layout = h.rt.layout().clone();
    for (arc, f) in [
        (ArcId::Ip4Output, ENCRYPT_NODE),
        (ArcId::Ip4Unicast, DECRYPT_NODE),
    ] {
        let p = layout.feature_position(arc, f).unwrap();
        h.features.enable(arc, UPLINK, p);
    }
    let mut node = Node {
        n,
        h,
        vx,
        esp: EspControl::new(1),
        pod_mac: mac(0),
    };
    node.add_generation(1, SaConfig::transport);
    node.esp.set_mtus(vec![1500, 1500, 1400]);
    node.protect(vec![out_id(1)]);
    node
}

type Make = fn(u32, Direction, KeyMaterial, u8) -> SaConfig;

impl Node {
    fn other(&self) -> u8 {
        3 - self.n
    }

    /// Adds the outbound and inbound SAs of key generation `g`.
    fn add_generation(&mut self, g: u8, make: Make) {
        let (n, o, now) = (self.n, self.other(), self.h.now);
        self.esp
            .add_sa(
                out_id(g),
                make(spi(g, o), Direction::Outbound, key(g, n), g),
                now,
            )
            .unwrap();
        self.esp
            .add_sa(
                in_id(g),
                make(spi(g, n), Direction::Inbound, key(g, o), g),
                now,
            )
            .unwrap();
        self.commit();
    }

    /// VXLAN to the other node must leave encrypted by `sas`.
    fn protect(&mut self, sas: Vec<u32>) {
        let rule = ProtectRule {
            dst: Ipv4Addr::new(192, 168, 1, self.other()),
            len: 32,
            proto: Some(17),
            port: Some(4789),
            sas,
        };
        self.esp.set_rule(RULE, rule, true).unwrap();
        self.commit();
    }

    fn commit(&mut self) {
        let layout = self.h.rt.layout().clone();
        let cfg = ConfigSet::new()
            .with(self.h.ip4.tables())
            .with(self.h.acl.tables())
            .with(Arc::new(self.h.features.clone()))
            .with(self.vx.tables())
            .with(Arc::new(
                self.vx.tx_nodes(&layout, TxNodes::default()).unwrap(),
            ))
            .with(Arc::new(
                LocalUdpPorts::new(&layout, self.vx.local_udp_ports()).unwrap(),
            ))
            .with(self.esp.tables());
        self.h.rt.reconfigure(Arc::new(cfg));
    }

    /// `count` pod frames to the other node's pod, each payload tagged with `first + i`.
    fn pod_frames(&self, first: u32, count: u32) -> Vec<Vec<u8>> {
        let (n, o) = (self.n, self.other());
        (first..first + count)
            .map(|i| {
                let mut payload = b"SECRET-PAYLOAD-".to_vec();
                payload.extend_from_slice(&i.to_be_bytes());
                payload.resize(300, 0x5a);
                udp_frame(
                    self.pod_mac,
                    [2, 0, 0, n, 9, 9],
                    &format!("10.{n}.0.2"),
                    &format!("10.{o}.0.2"),
                    64,
                    &payload,
                )
            })
            .collect()
    }

    /// SA `id`'s sequence state (what vpgd's sequence file keeps).
    fn sequence(&self, id: u32) -> vpg_esp::SaSequence {
        self.esp
            .sequences()
            .into_iter()
            .find(|s| s.id == id)
            .unwrap()
    }

    fn encrypt_counters(&mut self, sa: u32) -> vpg_esp::SaCounters {
        let gen = self.esp.sas().iter().find(|e| e.id == sa).unwrap().gen;
        let n = self.h.rt.node_mut::<EspEncrypt>(ENCRYPT_NODE).unwrap();
        n.sa_counters()
            .into_iter()
            .find(|(g, _)| *g == gen)
            .map(|(_, c)| c)
            .unwrap_or_default()
    }

    fn decrypt_counters(&mut self, sa: u32) -> vpg_esp::SaCounters {
        let gen = self.esp.sas().iter().find(|e| e.id == sa).unwrap().gen;
        let n = self.h.rt.node_mut::<EspDecrypt>(DECRYPT_NODE).unwrap();
        n.sa_counters()
            .into_iter()
            .find(|(g, _)| *g == gen)
            .map(|(_, c)| c)
            .unwrap_or_default()
    }
}

/// The sequence numbers (tags) of delivered pod frames.
fn tags(frames: &[Vec<u8>]) -> Vec<u32> {
    frames
        .iter()
        .map(|f| {
            let p = SlicedPacket::from_ethernet(f).unwrap();
            let Some(TransportSlice::Udp(u)) = p.transport else {
                panic!("not udp")
            };
            let d = u.payload();
            assert!(d.starts_with(b"SECRET-PAYLOAD-"));
            u32::from_be_bytes(d[15..19].try_into().unwrap())
        })
        .collect()
}

/// Every frame is IPv4 ESP between the nodes, and the payload appears nowhere in clear.
fn assert_only_esp(frames: &[Vec<u8>]) {
    for f in frames {
        let p = SlicedPacket::from_ethernet(f).unwrap();
        let Some(NetSlice::Ipv4(ip)) = &p.net else {
            panic!("not ipv4")
        };
        let h = ip.header().to_header();
        assert_eq!(h.protocol, etherparse::IpNumber(50), "ESP");
        assert_eq!(h.header_checksum, h.calc_header_checksum());
        assert_eq!(usize::from(h.total_len), f.len() - 14);
        assert!(
            !f.windows(6).any(|w| w == b"SECRET"),
            "clear text on the wire"
        );
    }
}

#[test]
fn vxlan_between_nodes_leaves_only_as_esp_and_arrives_intact() {
    let mut a = node(1);
    let mut b = node(2);
    a.h.trace_add("esp4-encrypt", 1);
    a.h.send(POD_IF, a.pod_frames(0, 20));
    let wire = a.h.captured(UPLINK);
    assert_eq!(wire.len(), 20, "{:?}", a.h.errors());
    assert_only_esp(&wire);
    for (i, f) in wire.iter().enumerate() {
        // Transport mode: the VXLAN packet's addresses, SPI and sequence numbers in order.
        assert_eq!(&f[26..34], &[192, 168, 1, 1, 192, 168, 1, 2]);
        assert_eq!(f[34..38], spi(1, 2).to_be_bytes());
        assert_eq!(f[38..42], (i as u32 + 1).to_be_bytes());
        assert_eq!(
            f[42..50],
            (i as u64 + 1).to_be_bytes(),
            "IV = sequence number"
        );
    }
    assert!(
        a.h.trace()
            .contains("esp: rule 1 sa 11 spi 0x00002001 key 1 seq 1 transport"),
        "{}",
        a.h.trace()
    );
    b.h.trace_add("esp4-decrypt", 1);
    b.h.send(UPLINK, wire);
    let delivered = b.h.captured(POD_IF);
    assert_eq!(
        tags(&delivered),
        (0..20).collect::<Vec<_>>(),
        "{:?}",
        b.h.errors()
    );
    assert!(
        b.h.trace().contains("decrypted, next header 17"),
        "{}",
        b.h.trace()
    );
    assert_eq!(a.h.error(ENCRYPT_NODE, "encrypted"), 20);
    assert_eq!(b.h.error(DECRYPT_NODE, "decrypted"), 20);
    assert_eq!(b.h.error("ip4-local", "udp-handed-on"), 20);
    let c = a.encrypt_counters(out_id(1));
    assert_eq!((c.packets, c.seq), (20, 20));
    // Payload protected: the VXLAN packet behind the IPv4 header.
    assert_eq!(c.bytes, 20 * (8 + 8 + 14 + 20 + 8 + 300));
    let c = b.decrypt_counters(in_id(1));
    assert_eq!(
        (c.packets, c.seq, c.auth_failures, c.replays),
        (20, 20, 0, 0)
    );
    // And back: B's reply leaves encrypted by its own SA and A decrypts it.
    b.h.send(POD_IF, b.pod_frames(100, 3));
    let wire = b.h.captured(UPLINK);
    assert_only_esp(&wire);
    a.h.send(UPLINK, wire);
    assert_eq!(tags(&a.h.captured(POD_IF)), vec![100, 101, 102]);
    // Traffic no rule covers stays in clear (the underlay's own ping).
    let ping = vpg_tests::ping_frame(
        [2, 0, 0, 1, 0, 1],
        [2, 0, 0, 2, 0, 1],
        "192.168.1.2",
        "192.168.1.1",
        64,
    );
    a.h.send(UPLINK, vec![ping]);
    let reply = a.h.captured(UPLINK);
    assert_eq!(reply.len(), 1);
    assert_eq!(reply[0][14 + 9], 1, "ICMP, not protected");
}

#[test]
fn encryption_required_without_an_sa_drops_and_counts() {
    let mut a = node(1);
    // The rule exists (encryption required to B) but names no SA yet.
    a.protect(vec![]);
    a.h.send(POD_IF, a.pod_frames(0, 7));
    assert!(a.h.captured(UPLINK).is_empty(), "nothing leaves in clear");
    assert_eq!(a.h.error(ENCRYPT_NODE, "no-sa"), 7);
    let rules =
        a.h.rt
            .node_mut::<EspEncrypt>(ENCRYPT_NODE)
            .unwrap()
            .rule_counters();
    assert_eq!(
        rules,
        vec![(
            RULE,
            vpg_esp::RuleCounters {
                protected: 0,
                no_sa: 7
            }
        )]
    );
    // An SA past its hard lifetime is no SA either.
    let hard = Lifetime {
        hard: Limits {
            seconds: Some(10),
            ..Limits::default()
        },
        ..Lifetime::default()
    };
    a.esp
        .add_sa(
            99,
            SaConfig {
                lifetime: hard,
                ..SaConfig::transport(0x99, Direction::Outbound, key(9, 1), 9)
            },
            a.h.now,
        )
        .unwrap();
    a.protect(vec![99]);
    a.h.send(POD_IF, a.pod_frames(0, 1));
    assert_eq!(a.h.captured(UPLINK).len(), 1);
    a.h.now = a.h.now + Duration::from_secs(10);
    a.h.send(POD_IF, a.pod_frames(1, 2));
    assert!(a.h.captured(UPLINK).is_empty());
    assert_eq!(a.h.error(ENCRYPT_NODE, "no-sa"), 9);
}

#[test]
fn tampering_fails_authentication_and_replays_are_dropped() {
    let mut a = node(1);
    let mut b = node(2);
    a.h.send(POD_IF, a.pod_frames(0, 4));
    let wire = a.h.captured(UPLINK);
    // A bit flipped in the IV, in the ciphertext, in the ICV; the SPI's low byte changed to
    // an unknown SPI (passed on: ip4-local then drops it).
    let mut bad = Vec::new();
    for at in [44, 100, wire[0].len() - 1] {
        let mut f = wire[0].clone();
        f[at] ^= 0x10;
        bad.push(f);
    }
    let mut f = wire[1].clone();
    f[37] ^= 0xff;
    bad.push(f);
    b.h.send(UPLINK, bad);
    assert!(b.h.captured(POD_IF).is_empty());
    assert_eq!(b.h.error(DECRYPT_NODE, "auth-failed"), 3);
    assert_eq!(b.h.error(DECRYPT_NODE, "unknown-spi"), 1);
    assert_eq!(b.decrypt_counters(in_id(1)).auth_failures, 3);
    // A failed packet does not move the window: the genuine one still gets in.
    b.h.send(UPLINK, wire.clone());
    assert_eq!(tags(&b.h.captured(POD_IF)), vec![0, 1, 2, 3]);
    // Replays: all four again, and a duplicate inside one frame.
    b.h.send(UPLINK, wire.clone());
    assert!(b.h.captured(POD_IF).is_empty());
    a.h.send(POD_IF, a.pod_frames(4, 1));
    let fresh = a.h.captured(UPLINK);
    b.h.send(UPLINK, vec![fresh[0].clone(), fresh[0].clone()]);
    assert_eq!(tags(&b.h.captured(POD_IF)), vec![4]);
    assert_eq!(b.h.error(DECRYPT_NODE, "replay"), 5);
    assert_eq!(b.decrypt_counters(in_id(1)).replays, 5);
}

#[test]
fn lifetimes_soft_and_hard_and_the_end_of_the_sequence_space() {
    let mut a = node(1);
    let lt = Lifetime {
        soft: Limits {
            packets: Some(3),
            ..Limits::default()
        },
        hard: Limits {
            packets: Some(5),
            ..Limits::default()
        },
    };
    a.esp
        .add_sa(
            50,
            SaConfig {
                lifetime: lt,
                ..SaConfig::transport(0x50, Direction::Outbound, key(5, 1), 5)
            },
            a.h.now,
        )
        .unwrap();
    a.protect(vec![50]);
    a.h.send(POD_IF, a.pod_frames(0, 8));
    assert_eq!(a.h.captured(UPLINK).len(), 5, "the hard limit");
    assert_eq!(a.h.error(ENCRYPT_NODE, "sa-soft-expired"), 1);
    assert_eq!(a.h.error(ENCRYPT_NODE, "sa-hard-expired"), 1);
    assert_eq!(a.h.error(ENCRYPT_NODE, "no-sa"), 3);
    let c = a.encrypt_counters(50);
    assert!(c.soft_expired && c.hard_expired && c.packets == 5);
    // With a second SA in the rule, traffic moves to it instead.
    a.protect(vec![50, out_id(1)]);
    a.h.send(POD_IF, a.pod_frames(0, 2));
    let w = a.h.captured(UPLINK);
    assert_eq!(w.len(), 2);
    assert_eq!(w[0][34..38], spi(1, 2).to_be_bytes());

    // 32-bit sequence numbers end at 2^32 - 1: the SA stops there.
    let mut a = node(1);
    let mut b = node(2);
    let gen = a.esp.sas().iter().find(|e| e.id == out_id(1)).unwrap().gen;
    let enc = a.h.rt.node_mut::<EspEncrypt>(ENCRYPT_NODE).unwrap();
    assert!(enc.set_sequence(gen, u64::from(u32::MAX) - 2));
    a.h.send(POD_IF, a.pod_frames(0, 4));
    let w = a.h.captured(UPLINK);
    assert_eq!(w.len(), 2, "…fffe and …ffff");
    assert_eq!(w[1][38..42], [0xff; 4]);
    assert_eq!(a.h.error(ENCRYPT_NODE, "no-sa"), 2);
    assert_eq!(a.h.error(ENCRYPT_NODE, "sa-hard-expired"), 1);
    // The receiver accepts them (far ahead of its window is fine).
    b.h.send(UPLINK, w);
    assert_eq!(tags(&b.h.captured(POD_IF)), vec![0, 1]);
}

#[test]
fn extended_sequence_numbers_cross_two_to_the_32() {
    let esn = |spi, d, k, g| SaConfig {
        esn: true,
        ..SaConfig::transport(spi, d, k, g)
    };
    let mut a = node(1);
    let mut b = node(2);
    a.add_generation(2, esn);
    b.add_generation(2, esn);
    a.protect(vec![out_id(2)]);
    let gen = a.esp.sas().iter().find(|e| e.id == out_id(2)).unwrap().gen;
    let enc = a.h.rt.node_mut::<EspEncrypt>(ENCRYPT_NODE).unwrap();
    assert!(enc.set_sequence(gen, u64::from(u32::MAX) - 3));
    a.h.send(POD_IF, a.pod_frames(0, 8));
    let w = a.h.captured(UPLINK);
    assert_eq!(w.len(), 8, "{:?}", a.h.errors());
    assert_eq!(w[3][38..42], [0, 0, 0, 0], "low half wraps");
    assert_eq!(
        w[3][42..50],
        (1u64 << 32).to_be_bytes(),
        "IV is the full number"
    );
    b.h.send(UPLINK, w.clone());
    assert_eq!(
        tags(&b.h.captured(POD_IF)),
        (0..8).collect::<Vec<_>>(),
        "{:?}",
        b.h.errors()
    );
    assert_eq!(b.decrypt_counters(in_id(2)).seq, (1u64 << 32) + 4);
    b.h.send(UPLINK, w[3..5].to_vec());
    assert_eq!(
        b.h.error(DECRYPT_NODE, "replay"),
        2,
        "replays across the wrap too"
    );
}

#[test]
fn key_rotation_under_traffic_loses_nothing() {
    let mut a = node(1);
    let mut b = node(2);
    let mut sent = 0u32;
    let mut delivered = Vec::new();
    // Packets in flight: the last 10 of each round reach B in the next round, after that
    // round's packets, so old-key packets arrive after B has the new key and after A switched.
    let mut held: Vec<Vec<u8>> = Vec::new();
    let mut old_key_packet = None;
    for round in 0..12u32 {
        a.h.now = a.h.now + Duration::from_secs(1);
        b.h.now = a.h.now;
        match round {
            // 1. Both nodes install key 2: inbound usable at once, outbound not yet chosen.
            3 => {
                a.add_generation(2, SaConfig::transport);
                b.add_generation(2, SaConfig::transport);
            }
            // 2. A's outbound traffic switches to key 2 in one snapshot.
            5 => a.protect(vec![out_id(2)]),
            // 3. The old SAs retire after a grace period longer than anything is in flight.
            6 => {
                for n in [&mut a, &mut b] {
                    let now = n.h.now;
                    for id in [out_id(1), in_id(1)] {
                        n.esp.retire_sa(id, Duration::from_secs(3), now).unwrap();
                    }
                    n.commit();
                }
            }
            _ => {}
        }
        a.h.send(POD_IF, a.pod_frames(sent, 50));
        sent += 50;
        let mut wire = a.h.captured(UPLINK);
        assert_eq!(wire.len(), 50, "round {round}: {:?}", a.h.errors());
        assert_only_esp(&wire);
        if round == 0 {
            old_key_packet = Some(wire[0].clone());
        }
        let keep = if round == 11 { 0 } else { 10 };
        let next_held = wire.split_off(wire.len() - keep);
        wire.append(&mut held);
        held = next_held;
        b.h.send(UPLINK, wire);
        delivered.extend(tags(&b.h.captured(POD_IF)));
    }
    delivered.sort_unstable();
    assert_eq!(
        delivered,
        (0..sent).collect::<Vec<_>>(),
        "{:?}",
        b.h.errors()
    );
    assert_eq!(b.h.error(DECRYPT_NODE, "replay"), 0);
    assert_eq!(b.h.error(DECRYPT_NODE, "sa-expired"), 0);
    let old = b.decrypt_counters(in_id(1)).packets;
    let new = b.decrypt_counters(in_id(2)).packets;
    assert_eq!(
        (old, new),
        (250, u64::from(sent) - 250),
        "rounds 0-4 used key 1"
    );
    // After the grace period the old inbound SA takes nothing more.
    b.h.send(UPLINK, vec![old_key_packet.unwrap()]);
    assert!(b.h.captured(POD_IF).is_empty());
    assert_eq!(b.h.error(DECRYPT_NODE, "sa-expired"), 1);
    // The dump shows both keys by id and fingerprint, never the key itself.
    let sas = b.esp.sas();
    assert_eq!(
        sas.iter().map(|e| e.key_id).collect::<Vec<_>>(),
        vec![1, 1, 2, 2]
    );
    assert!(sas[0].retire_at.is_some() && sas[2].retire_at.is_none());
    assert_eq!(sas[1].fingerprint, key(1, 1).fingerprint());
}

#[test]
fn tunnel_mode_between_sites() {
    // Site A (10.1.0.0/24) and site B (10.2.0.0/24) behind gateways 192.168.1.1 and .2, no
    // VXLAN: the route to the far site goes to the far gateway, and the protect rule wraps
    // everything for it in ESP between the gateways.
    let tunnel = |n: u8| Mode::Tunnel {
        src: Ipv4Addr::new(192, 168, 1, n),
        dst: Ipv4Addr::new(192, 168, 1, 3 - n),
    };
    let mut nodes = Vec::new();
    for n in [1u8, 2] {
        let o = 3 - n;
        let mut x = node(n);
        x.h.ip4
            .del_route(format!("10.{o}.0.0/16").parse().unwrap())
            .unwrap();
        x.h.ip4
            .add_route(
                format!("10.{o}.0.0/16").parse().unwrap(),
                RoutePath::Via {
                    next_hop: Ipv4Addr::new(192, 168, 1, o),
                    sw_if: UPLINK,
                },
            )
            .unwrap();
        let now = x.h.now;
        x.esp
            .add_sa(
                31,
                SaConfig {
                    mode: tunnel(n),
                    ..SaConfig::transport(spi(3, o), Direction::Outbound, key(3, n), 3)
                },
                now,
            )
            .unwrap();
        x.esp
            .add_sa(
                32,
                SaConfig {
                    mode: Mode::Tunnel {
                        src: Ipv4Addr::new(192, 168, 1, o),
                        dst: Ipv4Addr::new(192, 168, 1, n),
                    },
                    ..SaConfig::transport(spi(3, n), Direction::Inbound, key(3, o), 3)
                },
                now,
            )
            .unwrap();
        x.esp
            .set_rule(
                2,
                ProtectRule {
                    dst: Ipv4Addr::new(10, o, 0, 0),
                    len: 16,
                    proto: None,
                    port: None,
                    sas: vec![31],
                },
                false,
            )
            .unwrap();
        x.commit();
        nodes.push(x);
    }
    let (a, b) = nodes.split_at_mut(1);
    let (a, b) = (&mut a[0], &mut b[0]);
    a.h.send(POD_IF, a.pod_frames(0, 5));
    let wire = a.h.captured(UPLINK);
    assert_eq!(wire.len(), 5, "{:?}", a.h.errors());
    assert_only_esp(&wire);
    for f in &wire {
        assert_eq!(
            &f[26..34],
            &[192, 168, 1, 1, 192, 168, 1, 2],
            "between the gateways"
        );
        assert_eq!(f[14 + 8], 63, "outer routed once");
        assert_eq!(f[34..38], spi(3, 2).to_be_bytes());
    }
    b.h.send(UPLINK, wire);
    let got = b.h.captured(POD_IF);
    assert_eq!(tags(&got), (0..5).collect::<Vec<_>>(), "{:?}", b.h.errors());
    let p = SlicedPacket::from_ethernet(&got[0]).unwrap();
    let Some(NetSlice::Ipv4(ip)) = &p.net else {
        panic!()
    };
    let h = ip.header().to_header();
    assert_eq!((h.source, h.destination), ([10, 1, 0, 2], [10, 2, 0, 2]));
    assert_eq!(h.time_to_live, 62, "inner routed by both gateways");
}

/// With sequence reservation on (vpgd with a sequence file), a new outbound SA sends nothing
/// until the control side has reserved sequence numbers for it, starts after the number it is
/// given (a restarted vpgd continues after what the previous one reserved for the key), stops
/// at the reservation's end (counted drops, never a number that is not on disk) and goes on
/// without a gap once the limit is raised. The receiver takes the jump.
#[test]
fn reserved_sequence_numbers_limit_and_continue() {
    let mut a = node(1);
    let mut b = node(2);
    b.add_generation(3, SaConfig::transport);
    a.esp.set_sequence_reservation(true);
    let now = a.h.now;
    let add_out = |a: &mut Node| {
        a.esp
            .add_sa(
                out_id(3),
                SaConfig::transport(spi(3, 2), Direction::Outbound, key(3, 1), 3),
                now,
            )
            .unwrap()
    };
    add_out(&mut a);
    let seq = |a: &Node| a.sequence(out_id(3));
    // Published before any reservation: nothing leaves.
    a.protect(vec![out_id(3)]);
    a.h.send(POD_IF, a.pod_frames(0, 2));
    assert!(a.h.captured(UPLINK).is_empty());
    assert_eq!(a.h.error(ENCRYPT_NODE, "seq-unreserved"), 2);
    assert_eq!(seq(&a).shared.seq_used(), 0);

    // As vpgd does for a key it reserved up to 1000 before a restart: a new SA, given its
    // start and limit before it is published.
    a.esp.del_rule(RULE).unwrap();
    a.esp.del_sa(out_id(3)).unwrap();
    a.commit();
    add_out(&mut a);
    seq(&a).shared.start_sequence(1000, 1003);
    a.protect(vec![out_id(3)]);
    a.h.send(POD_IF, a.pod_frames(0, 5));
    let w = a.h.captured(UPLINK);
    let seqs: Vec<u32> = w
        .iter()
        .map(|f| u32::from_be_bytes(f[38..42].try_into().unwrap()))
        .collect();
    assert_eq!(seqs, [1001, 1002, 1003]);
    assert_eq!(a.h.error(ENCRYPT_NODE, "seq-unreserved"), 4);
    assert_eq!(a.encrypt_counters(out_id(3)).drops, 2);
    b.h.send(UPLINK, w.clone());
    assert_eq!(tags(&b.h.captured(POD_IF)), vec![0, 1, 2]);
    let first = w;

    // The limit raised: the next packets continue without a gap.
    seq(&a).shared.raise_limit(2000);
    seq(&a).shared.raise_limit(1500); // never lowered
    a.h.send(POD_IF, a.pod_frames(3, 2));
    let w = a.h.captured(UPLINK);
    assert_eq!(w[0][38..42], 1004u32.to_be_bytes());
    assert_eq!(w[1][38..42], 1005u32.to_be_bytes());
    assert_eq!(seq(&a).shared.seq_used(), 1005);
    assert_eq!(seq(&a).shared.seq_limit(), 2000);
    b.h.send(UPLINK, w.clone());
    assert_eq!(tags(&b.h.captured(POD_IF)), vec![3, 4]);
    let in_seq = |b: &Node| b.sequence(in_id(3));
    assert_eq!(in_seq(&b).shared.seq_used(), 1005, "how far b accepted");

    // b restarts with its inbound SA: given how far it had accepted, its window refuses every
    // packet captured before (no replay after a restart) and takes the sender's next ones.
    b.esp.del_sa(in_id(3)).unwrap();
    b.commit();
    b.esp
        .add_sa(
            in_id(3),
            SaConfig::transport(spi(3, 2), Direction::Inbound, key(3, 1), 3),
            now,
        )
        .unwrap();
    in_seq(&b).shared.start_sequence(1005, u64::MAX);
    b.commit();
    b.h.send(UPLINK, first.into_iter().chain(w).collect());
    assert!(b.h.captured(POD_IF).is_empty());
    assert_eq!(b.decrypt_counters(in_id(3)).replays, 5);
    a.h.send(POD_IF, a.pod_frames(5, 2));
    b.h.send(UPLINK, a.h.captured(UPLINK));
    assert_eq!(tags(&b.h.captured(POD_IF)), vec![5, 6]);
}

/// Two outbound SAs under one key would both count nonces from their start: refused.
#[test]
fn one_key_per_outbound_sa() {
    let mut a = node(1);
    let now = a.h.now;
    let e = a
        .esp
        .add_sa(
            77,
            SaConfig::transport(0x77, Direction::Outbound, key(1, 1), 1),
            now,
        )
        .unwrap_err();
    assert_eq!(e, vpg_esp::EspError::KeyInUse { sa: out_id(1) });
    assert!(e.to_string().contains("repeat AES-GCM nonces"), "{e}");
    // Inbound SAs may share a key with an outbound one (the far end's outbound).
    a.esp
        .add_sa(
            78,
            SaConfig::transport(0x78, Direction::Inbound, key(1, 1), 1),
            now,
        )
        .unwrap();
}
