//! vxlan4-encap and vxlan4-decap in a small graph, with stand-ins for the IPv4 nodes around them:
//! encapsulated headers checked against etherparse, encap then decap gives back the frame, source
//! ports per flow, each decap drop under its own counter, MAC learning. (The full graph with the
//! real IPv4 nodes is tested in `tests/tests/vxlan.rs`.)

use etherparse::{NetSlice, SlicedPacket, TransportSlice};
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::pg::{PgCapture, PgInput, Stream, PG_INPUT};
use vpg_graph::wire::EthernetAddress;
use vpg_graph::{
    BufferPool, ConfigSet, Ctx, GraphSpec, InterfaceOutput, Node, NodeRegistration, Runtime,
    RuntimeConfig, Time, Vector, INTERFACE_OUTPUT,
};
use vpg_vxlan::tunnel::SRC_PORT_MIN;
use vpg_vxlan::{LearnedPeer, TunnelKey, VxlanControl, VxlanDecap};

const UPLINK: u32 = 0;

/// Stand-in for the IPv4 nodes: `ip4-lookup` sends everything out the uplink, `ip4-local`
/// strips the Ethernet header and hands on to its first added next node (vxlan4-decap), and
/// `ethernet-input` sends a frame back out the interface it arrived on.
struct Stub(&'static str);

impl Node for Stub {
    type Trace = u8;
    fn registration(&self) -> NodeRegistration {
        let next: &[&str] = if self.0 == "ip4-local" {
            &[]
        } else {
            &[INTERFACE_OUTPUT]
        };
        NodeRegistration::internal(self.0, next, &[])
    }
    fn process(&mut self, cx: &mut Ctx<'_, u8>, v: &mut Vector) {
        for k in 0..v.len {
            let b = cx.buffers.get_mut(v.buffers[k]);
            match self.0 {
                "ip4-lookup" => b.hdr.tx_if = UPLINK,
                "ip4-local" => {
                    b.advance(14);
                }
                _ => b.hdr.tx_if = b.hdr.rx_if,
            }
            v.nexts[k] = 0;
        }
    }
}

struct Node2 {
    rt: Runtime,
    vxlan: VxlanControl,
    caps: Vec<(u32, crossbeam_channel::Receiver<Vec<u8>>)>,
}

impl Node2 {
    /// pg feeds `entry` (ethernet-input for encap tests, ip4-local for decap tests).
    fn new(entry: &'static str) -> Self {
        let mut g = GraphSpec::new();
        g.node(|| Stub("ip4-lookup"))
            .node(|| Stub("ip4-local"))
            .node(|| Stub("ethernet-input"))
            .node(move || PgInput::new(entry));
        vpg_vxlan::register(&mut g);
        let layout = g.build().unwrap();
        let pool = BufferPool::with_count(2048, false).unwrap();
        let mut rt = Runtime::new(&layout, 0, pool, &RuntimeConfig::default());
        let mut caps = Vec::new();
        for sw_if in 0..8 {
            let (dev, rx) = PgCapture::new();
            rt.node_mut::<InterfaceOutput>(INTERFACE_OUTPUT)
                .unwrap()
                .set_device(sw_if, Some(Box::new(dev)));
            caps.push((sw_if, rx));
        }
        Self {
            rt,
            vxlan: VxlanControl::new(),
            caps,
        }
    }

    /// Publishes the tunnels; with `tx`, tunnel interfaces send through vxlan4-encap.
    fn commit(&mut self, tx: bool) {
        let mut cfg = ConfigSet::new().with(self.vxlan.tables());
        if tx {
            let t = self
                .vxlan
                .tx_nodes(self.rt.layout(), Default::default())
                .unwrap();
            cfg = cfg.with(Arc::new(t));
        }
        self.rt.reconfigure(Arc::new(cfg));
    }

    fn send(&mut self, rx_if: u32, frames: Vec<Vec<u8>>) {
        let n = frames.len() as u64;
        let pg = self.rt.node_mut::<PgInput>(PG_INPUT).unwrap();
        pg.clear();
        pg.add_stream(Stream::new("t", rx_if, frames).with_limit(n));
        for _ in 0..100 {
            if self.rt.dispatch(Time::ZERO) == 0 && self.rt.pending() == 0 {
                break;
            }
        }
    }

    fn captured(&self, sw_if: u32) -> Vec<Vec<u8>> {
        self.caps[sw_if as usize].1.try_iter().collect()
    }

    fn error(&self, node: &str, name: &str) -> u64 {
        vpg_graph::show::error_rows(self.rt.layout(), std::slice::from_ref(self.rt.stats()))
            .iter()
            .find(|r| r.node == node && r.name == name)
            .map_or(0, |r| r.count)
    }
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn key(local: &str, remote: &str, vni: u32) -> TunnelKey {
    TunnelKey {
        local: ip(local),
        remote: ip(remote),
        vni,
        port: 4789,
    }
}

const POD_MAC: [u8; 6] = [2, 0, 0, 0, 1, 1];
const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 2, 2];

/// An inner TCP frame from pod 10.1.0.2 to 10.2.0.`host`, ports given.
fn inner(host: u8, sport: u16, payload: &[u8]) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(POD_MAC, PEER_MAC)
        .ipv4([10, 1, 0, 2], [10, 2, 0, host], 63)
        .tcp(sport, 80, 1000, 64000);
    let mut out = Vec::new();
    b.write(&mut out, payload).unwrap();
    out
}

/// Prepends a dummy Ethernet header (the decap tests' stand-in ip4-local strips it).
fn eth(ip_packet: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
    f.extend_from_slice(ip_packet);
    f
}

/// A VXLAN packet built by etherparse (outer IPv4 and UDP) around `inner`.
fn vxlan_packet(src: &str, dst: &str, port: u16, flags: u8, vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut payload = vec![flags, 0, 0, 0];
    payload.extend_from_slice(&(vni << 8).to_be_bytes());
    payload.extend_from_slice(inner);
    let b =
        etherparse::PacketBuilder::ipv4(ip(src).octets(), ip(dst).octets(), 64).udp(50000, port);
    let mut out = Vec::new();
    b.write(&mut out, &payload).unwrap();
    out
}

#[test]
fn encap_writes_headers_etherparse_accepts_and_decap_restores_the_frame() {
    // Node A encapsulates on tunnel interface 2.
    let mut a = Node2::new("ethernet-input");
    a.vxlan
        .add_tunnel(2, key("192.168.1.1", "192.168.1.2", 0xabcdef), None)
        .unwrap();
    a.commit(true);
    let frames: Vec<Vec<u8>> = (0..20u8)
        .map(|i| inner(i, 1000 + u16::from(i), &[i; 100]))
        .collect();
    a.send(2, frames.clone());
    let out = a.captured(UPLINK);
    assert_eq!(out.len(), 20);
    assert!(
        a.captured(2).is_empty(),
        "nothing left on the tunnel's own device"
    );
    for (f, orig) in out.iter().zip(&frames) {
        let p = SlicedPacket::from_ip(f).unwrap();
        let Some(NetSlice::Ipv4(ip4)) = &p.net else {
            panic!("not ipv4")
        };
        let h = ip4.header().to_header();
        assert_eq!(
            h.header_checksum,
            h.calc_header_checksum(),
            "outer checksum"
        );
        assert_eq!(h.total_len as usize, f.len());
        assert_eq!(h.total_len as usize, orig.len() + 36);
        assert_eq!(
            (h.source, h.destination),
            ([192, 168, 1, 1], [192, 168, 1, 2])
        );
        assert_eq!((h.time_to_live, h.dont_fragment), (64, false));
        let Some(TransportSlice::Udp(udp)) = p.transport else {
            panic!("not udp")
        };
        assert_eq!(udp.destination_port(), 4789);
        assert!(udp.source_port() >= SRC_PORT_MIN);
        assert_eq!(udp.checksum(), 0, "RFC 7348: UDP checksum zero");
        assert_eq!(udp.length() as usize, orig.len() + 16);
        let vx = udp.payload();
        assert_eq!(&vx[..8], &[0x08, 0, 0, 0, 0xab, 0xcd, 0xef, 0]);
        assert_eq!(&vx[8..], &orig[..], "inner frame untouched");
    }
    // Node B decapsulates them on its tunnel (the mirror image) at interface 5.
    let mut b = Node2::new("ip4-local");
    b.vxlan
        .add_tunnel(5, key("192.168.1.2", "192.168.1.1", 0xabcdef), None)
        .unwrap();
    b.commit(false);
    b.send(UPLINK, out.iter().map(|o| eth(o)).collect());
    assert_eq!(b.captured(5), frames, "decap returns the original frames");
    let c = &b.rt.stats().interfaces[5];
    assert_eq!(c.rx_packets.get(), 20, "received on the tunnel interface");
    let bytes: usize = frames.iter().map(Vec::len).sum();
    assert_eq!(c.rx_bytes.get(), bytes as u64);
    assert_eq!(a.rt.stats().interfaces[2].tx_packets.get(), 20);
}

#[test]
fn source_port_is_stable_per_flow_and_differs_between_flows() {
    let mut a = Node2::new("ethernet-input");
    a.vxlan
        .add_tunnel(2, key("192.168.1.1", "192.168.1.2", 1), None)
        .unwrap();
    a.commit(true);
    let flows: Vec<Vec<u8>> = (0..200u16).map(|i| inner(9, 2000 + i, b"x")).collect();
    let port = |f: &Vec<u8>| u16::from_be_bytes([f[20], f[21]]);
    a.send(2, flows.clone());
    let first: Vec<u16> = a.captured(UPLINK).iter().map(port).collect();
    // The same flows again, with other payloads: the same ports.
    let again: Vec<Vec<u8>> = (0..200u16)
        .map(|i| inner(9, 2000 + i, b"other payload"))
        .collect();
    a.send(2, again);
    let second: Vec<u16> = a.captured(UPLINK).iter().map(port).collect();
    assert_eq!(first, second);
    assert!(first.iter().all(|&p| p >= SRC_PORT_MIN));
    let distinct: std::collections::BTreeSet<_> = first.iter().collect();
    assert!(
        distinct.len() > 190,
        "{} ports for 200 flows",
        distinct.len()
    );
}

#[test]
fn encap_to_an_interface_without_tunnel_is_counted() {
    let mut a = Node2::new("ethernet-input");
    a.vxlan
        .add_tunnel(2, key("192.168.1.1", "192.168.1.2", 1), None)
        .unwrap();
    let layout = a.rt.layout().clone();
    // Interface 3 sends to vxlan4-encap but has no tunnel (deleted while packets were queued).
    let mut tx = a.vxlan.tx_nodes(&layout, Default::default()).unwrap();
    tx.set(3, layout.next_slot(INTERFACE_OUTPUT, "vxlan4-encap"));
    let cfg = ConfigSet::new().with(a.vxlan.tables()).with(Arc::new(tx));
    a.rt.reconfigure(Arc::new(cfg));
    a.send(3, vec![inner(1, 1, b"x"); 3]);
    assert!(a.captured(UPLINK).is_empty());
    assert_eq!(a.error("vxlan4-encap", "no-tunnel"), 3);
    // Counted once as the tunnel's drop (by vxlan4-encap) and once as the arrival interface's
    // (by error-drop); the stand-in graph sends from interface 3 to itself.
    assert_eq!(a.rt.stats().interfaces[3].drops.get(), 6);
}

#[test]
fn each_decap_fault_has_its_own_counter_and_the_cache_keeps_tunnels_apart() {
    let mut b = Node2::new("ip4-local");
    b.vxlan
        .add_tunnel(5, key("192.168.1.2", "192.168.1.1", 42), None)
        .unwrap();
    b.vxlan
        .add_tunnel(6, key("192.168.1.2", "192.168.1.3", 43), None)
        .unwrap();
    b.commit(false);
    let f = inner(1, 1, b"payload");
    let good5 = vxlan_packet("192.168.1.1", "192.168.1.2", 4789, 0x08, 42, &f);
    let good6 = vxlan_packet("192.168.1.3", "192.168.1.2", 4789, 0x08, 43, &f);
    let mut bad_len = good5.clone();
    bad_len[25] ^= 1;
    let short = vxlan_packet("192.168.1.1", "192.168.1.2", 4789, 0x08, 42, &f[..13]);
    let frames = vec![
        good5.clone(),
        good6.clone(),
        good5.clone(),
        good6,
        short,
        bad_len,
        vxlan_packet("192.168.1.1", "192.168.1.2", 4789, 0x00, 42, &f),
        vxlan_packet("192.168.1.1", "192.168.1.2", 4789, 0x08, 7, &f),
        vxlan_packet("192.168.1.9", "192.168.1.2", 4789, 0x08, 42, &f),
        vxlan_packet("192.168.1.1", "192.168.1.2", 8472, 0x08, 42, &f),
        vxlan_packet("192.168.1.1", "192.168.1.2", 4789, 0xff, 42, &f),
    ];
    b.send(UPLINK, frames.iter().map(|p| eth(p)).collect());
    assert_eq!(b.captured(5).len(), 3, "reserved flag bits ignored");
    assert_eq!(b.captured(6).len(), 2);
    for (name, n) in [
        ("too-short", 1),
        ("bad-udp-length", 1),
        ("bad-flags", 1),
        ("no-such-vni", 1),
        ("no-such-tunnel", 2),
    ] {
        assert_eq!(b.error("vxlan4-decap", name), n, "{name}");
    }
    assert_eq!(b.rt.stats().interfaces[UPLINK as usize].drops.get(), 6);
}

#[test]
fn decap_reports_the_far_end_mac_once_unless_configured() {
    let mut b = Node2::new("ip4-local");
    b.vxlan
        .add_tunnel(5, key("192.168.1.2", "192.168.1.1", 42), None)
        .unwrap();
    b.vxlan
        .add_tunnel(
            6,
            key("192.168.1.2", "192.168.1.3", 42),
            Some(EthernetAddress([2, 9, 9, 9, 9, 9])),
        )
        .unwrap();
    b.commit(false);
    let (tx, rx) = crossbeam_channel::bounded(8);
    b.rt.node_mut::<VxlanDecap>("vxlan4-decap")
        .unwrap()
        .set_learn_sender(tx);
    let f = inner(1, 1, b"payload");
    let p5 = vxlan_packet("192.168.1.1", "192.168.1.2", 4789, 0x08, 42, &f);
    let p6 = vxlan_packet("192.168.1.3", "192.168.1.2", 4789, 0x08, 42, &f);
    b.send(UPLINK, vec![eth(&p5), eth(&p6), eth(&p5), eth(&p5)]);
    let learned: Vec<LearnedPeer> = rx.try_iter().collect();
    assert_eq!(
        learned.iter().map(|l| (l.sw_if, l.mac)).collect::<Vec<_>>(),
        vec![(5, EthernetAddress(POD_MAC))]
    );
    // Once the control side has it, the snapshot stops further reports.
    assert_eq!(
        b.vxlan.learn_mac(5, EthernetAddress(POD_MAC)),
        Ok(Some(EthernetAddress(POD_MAC)))
    );
    b.commit(false);
    b.send(UPLINK, vec![eth(&p5)]);
    assert!(rx.try_iter().next().is_none());
    assert_eq!(b.error("vxlan4-decap", "mac-learned"), 1);
}
