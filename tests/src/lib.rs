//! Test harness: a graph with the packet generator as input and capture devices as outputs, run
//! on one runtime in the test's thread with controllable time (VPP's pg idea, quinn's `Pair`).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::pg::{PgCapture, PgInput, Stream, PG_INPUT};
use vpg_graph::show::{self, ErrorRow};
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};
use vpg_graph::{
    BufferPool, ConfigSet, FeatureConfig, GraphSpec, InterfaceOutput, Runtime, RuntimeConfig, Time,
    INTERFACE_OUTPUT,
};
use vpg_ip4::control::Ip4Control;

/// A forwarding graph on one runtime.
pub struct Harness {
    /// The runtime (one worker, driven by the test).
    pub rt: Runtime,
    /// IPv4 control state.
    pub ip4: Ip4Control,
    /// Feature enablement.
    pub features: FeatureConfig,
    /// ACL control state (its nodes are in every harness graph, off until enabled).
    pub acl: vpg_acl::AclControl,
    /// NAT44 control state (its nodes are in every harness graph, off until enabled).
    pub nat: vpg_nat44::Nat44Control,
    captures: HashMap<u32, crossbeam_channel::Receiver<Vec<u8>>>,
    /// Time the next dispatch sees.
    pub now: Time,
}

impl Default for Harness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness {
    /// The IPv4 graph with pg input, 4096 buffers.
    pub fn new() -> Self {
        Self::with_spec(GraphSpec::new())
    }

    /// The IPv4 graph plus whatever `spec` already holds.
    pub fn with_spec(mut spec: GraphSpec) -> Self {
        vpg_ip4::register(&mut spec);
        vpg_acl::register(&mut spec);
        vpg_nat44::register(&mut spec);
        spec.node(|| PgInput::new("ethernet-input"));
        let layout = spec.build().expect("graph builds");
        let pool = BufferPool::with_count(4096, false).expect("buffer memory");
        let rt = Runtime::new(&layout, 0, pool, &RuntimeConfig::default());
        Self {
            rt,
            ip4: Ip4Control::new(),
            features: FeatureConfig::default(),
            acl: vpg_acl::AclControl::new(1),
            nat: vpg_nat44::Nat44Control::new(1),
            captures: HashMap::new(),
            now: Time::from_secs(1),
        }
    }

    /// Adds an up interface with an address and a capture device.
    pub fn add_interface(&mut self, sw_if: u32, mac: [u8; 6], addr: &str) {
        self.ip4
            .add_interface(sw_if, &format!("pg{sw_if}"), EthernetAddress(mac))
            .unwrap();
        self.ip4.set_admin_up(sw_if, true).unwrap();
        self.ip4
            .add_address(sw_if, addr.parse::<Ipv4Cidr>().unwrap())
            .unwrap();
        let (dev, rx) = PgCapture::new();
        let out = self
            .rt
            .node_mut::<InterfaceOutput>(INTERFACE_OUTPUT)
            .unwrap();
        out.set_device(sw_if, Some(Box::new(dev)));
        self.captures.insert(sw_if, rx);
        self.commit();
    }

    /// Adds a neighbor.
    pub fn add_neighbor(&mut self, sw_if: u32, ip: &str, mac: [u8; 6]) {
        self.ip4
            .add_neighbor(sw_if, ip.parse::<Ipv4Addr>().unwrap(), EthernetAddress(mac))
            .unwrap();
        self.commit();
    }

    /// Publishes the control state to the runtime (between frames).
    pub fn commit(&mut self) {
        let ip4 = &self.ip4;
        let addr_of = |i: u32| {
            ip4.interfaces()
                .find(|x| x.sw_if == i)
                .and_then(|x| x.primary_address())
        };
        let cfg = ConfigSet::new()
            .with(self.ip4.tables())
            .with(self.acl.tables())
            .with(self.nat.tables(&addr_of))
            .with(Arc::new(self.features.clone()));
        self.rt.reconfigure(Arc::new(cfg));
    }

    /// Sets an interface's ACL list in one direction and enables or disables the ACL feature to
    /// match, as vpgd does.
    pub fn set_acls(&mut self, sw_if: u32, input: bool, ids: Vec<u32>) {
        let on = self.acl.set_interface(sw_if, input, ids).expect("acl list");
        let (arc, node) = if input {
            (vpg_graph::ArcId::Ip4Unicast, "acl-in-ip4")
        } else {
            (vpg_graph::ArcId::Ip4Output, "acl-out-ip4")
        };
        let p = self
            .rt
            .layout()
            .feature_position(arc, node)
            .expect("acl feature");
        if on {
            self.features.enable(arc, sw_if, p);
        } else {
            self.features.disable(arc, sw_if, p);
        }
        self.commit();
    }

    /// Sets an interface's NAT44 role and the features it needs, as vpgd does.
    pub fn set_nat(&mut self, sw_if: u32, role: vpg_nat44::Role) {
        self.nat
            .set_interface(sw_if, role, |_| true)
            .expect("nat role");
        for (arc, node, on) in self.nat.features_for(role) {
            let p = self
                .rt
                .layout()
                .feature_position(arc, node)
                .expect("nat feature");
            if on {
                self.features.enable(arc, sw_if, p);
            } else {
                self.features.disable(arc, sw_if, p);
            }
        }
        self.commit();
    }

    /// The NAT44 sessions of this worker.
    pub fn nat_sessions(&mut self) -> Vec<vpg_nat44::Session> {
        self.rt
            .locals_mut()
            .get::<vpg_nat44::SessionTable>()
            .map(|t| t.iter().map(|(_, s)| *s).collect())
            .unwrap_or_default()
    }

    /// Sends `frames` as if received on `rx_if` and runs the graph until they are processed.
    pub fn send(&mut self, rx_if: u32, frames: Vec<Vec<u8>>) {
        let n = frames.len() as u64;
        let pg = self.rt.node_mut::<PgInput>(PG_INPUT).unwrap();
        pg.clear();
        pg.add_stream(Stream::new("test", rx_if, frames).with_limit(n));
        self.run();
    }

    /// Runs dispatch loops until the generator is done and nothing is pending.
    pub fn run(&mut self) {
        for _ in 0..10_000 {
            let produced = self.rt.dispatch(self.now);
            if produced == 0 && self.rt.pending() == 0 {
                break;
            }
        }
    }

    /// Packets transmitted on `sw_if` since the last call.
    pub fn captured(&self, sw_if: u32) -> Vec<Vec<u8>> {
        self.captures
            .get(&sw_if)
            .map(|rx| rx.try_iter().collect())
            .unwrap_or_default()
    }

    /// Non-zero error counters.
    pub fn errors(&self) -> Vec<ErrorRow> {
        show::error_rows(self.rt.layout(), std::slice::from_ref(self.rt.stats()))
    }

    /// The count of `node`'s error `name` (0 when absent).
    pub fn error(&self, node: &str, name: &str) -> u64 {
        self.errors()
            .iter()
            .find(|r| r.node == node && r.name == name)
            .map_or(0, |r| r.count)
    }

    /// Traces the next `count` packets entering `node`.
    pub fn trace_add(&mut self, node: &str, count: u32) {
        self.rt.trace_add(node, count).expect("node exists");
    }

    /// `show trace` text.
    pub fn trace(&self) -> String {
        show::trace_text(0, &self.rt.trace_lines())
    }

    /// `show runtime` text.
    pub fn runtime(&self) -> String {
        show::runtime_text(self.rt.layout(), std::slice::from_ref(self.rt.stats()))
    }
}

/// Builds an Ethernet/IPv4/TCP frame (TTL 64) with `flags` (FIN 0x01, SYN 0x02, RST 0x04, ACK
/// 0x10) and correct checksums.
pub fn tcp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: (&str, u16),
    dst: (&str, u16),
    flags: u8,
) -> Vec<u8> {
    let s: Ipv4Addr = src.0.parse().unwrap();
    let d: Ipv4Addr = dst.0.parse().unwrap();
    let mut b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(s.octets(), d.octets(), 64)
        .tcp(src.1, dst.1, 1000, 65535);
    if flags & 0x01 != 0 {
        b = b.fin();
    }
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x04 != 0 {
        b = b.rst();
    }
    if flags & 0x10 != 0 {
        b = b.ack(1);
    }
    let mut out = Vec::with_capacity(b.size(0));
    b.write(&mut out, &[]).unwrap();
    out
}

/// Builds an Ethernet/IPv4/UDP frame with correct checksums.
pub fn udp_frame(
    dst_mac: [u8; 6],
    src_mac: [u8; 6],
    src: &str,
    dst: &str,
    ttl: u8,
    payload: &[u8],
) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(
            src.parse::<Ipv4Addr>().unwrap().octets(),
            dst.parse::<Ipv4Addr>().unwrap().octets(),
            ttl,
        )
        .udp(1234, 5678);
    let mut out = Vec::with_capacity(b.size(payload.len()));
    b.write(&mut out, payload).unwrap();
    out
}

/// Builds an Ethernet/IPv4/ICMP echo request.
pub fn ping_frame(dst_mac: [u8; 6], src_mac: [u8; 6], src: &str, dst: &str, ttl: u8) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(src_mac, dst_mac)
        .ipv4(
            src.parse::<Ipv4Addr>().unwrap().octets(),
            dst.parse::<Ipv4Addr>().unwrap().octets(),
            ttl,
        )
        .icmpv4_echo_request(7, 1);
    let mut out = Vec::new();
    b.write(&mut out, b"ping payload").unwrap();
    out
}

/// Builds an ARP request from `sha`/`spa` for `tpa`.
pub fn arp_request(sha: [u8; 6], spa: &str, tpa: &str) -> Vec<u8> {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&sha);
    f.extend_from_slice(&[0x08, 0x06, 0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&sha);
    f.extend_from_slice(&spa.parse::<Ipv4Addr>().unwrap().octets());
    f.extend_from_slice(&[0; 6]);
    f.extend_from_slice(&tpa.parse::<Ipv4Addr>().unwrap().octets());
    f
}
