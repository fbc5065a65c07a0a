//! The `vxlan-*` scenarios: 64-byte inner frames encapsulated by `vxlan4-encap` (pod traffic
//! routed into tunnels) or decapsulated by `vxlan4-decap` (VXLAN from the underlay to local
//! pods), with one tunnel or 1,000. `cycles_per_packet` is the VXLAN node's own; `nodes` has the
//! rest of the path (ethernet-input, ip4-*, interface-output twice for encap).

use crate::forward::measure;
use crate::report::ScenarioReport;
use crate::RunOptions;
use anyhow::Context;
use rand::{rngs::SmallRng, Rng, SeedableRng};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_graph::pg::{PgInput, Stream, StreamTemplate, Vary, PG_INPUT};
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};
use vpg_graph::{
    BufferMemory, ConfigSet, GraphSpec, InterfaceOutput, NullDevice, Runtime, RuntimeConfig,
    TxNodes,
};
use vpg_ip4::ip4_local::LocalUdpPorts;
use vpg_ip4::{Ip4Control, RoutePath};
use vpg_vxlan::tunnel::{TunnelData, ENCAP_LEN};
use vpg_vxlan::{TunnelKey, VxlanControl, DECAP_NODE, ENCAP_NODE};

const POD_IF: u32 = 0;
const UPLINK: u32 = 1;
const FIRST_TUNNEL: u32 = 2;
const MAC_POD: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_UPLINK: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const POD_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 9, 1];
const UNDERLAY_NH_MAC: [u8; 6] = [0x02, 0, 0, 0, 9, 2];
const LOCAL_VTEP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const SEED: u64 = 0x7e5;
/// Inner frame size (Ethernet, IPv4, UDP and payload).
const INNER_SIZE: usize = 64;
/// Decap images (VXLAN packets pg cycles through): 4,096 × 114 bytes stays in L2.
const DECAP_IMAGES: usize = 4096;

/// `vxlan-encap`: one tunnel.
pub fn encap_1(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    run(true, 1, o)
}

/// `vxlan-encap-1000-tunnels`.
pub fn encap_1000(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    run(true, 1000, o)
}

/// `vxlan-decap`: one tunnel.
pub fn decap_1(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    run(false, 1, o)
}

/// `vxlan-decap-1000-tunnels`.
pub fn decap_1000(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    run(false, 1000, o)
}

fn tunnel_mac(i: u32) -> [u8; 6] {
    [0x02, 0xaa, 0, 0, (i >> 8) as u8, i as u8]
}

fn peer_mac(i: u32) -> [u8; 6] {
    [0x02, 0xbb, 0, 0, (i >> 8) as u8, i as u8]
}

/// Tunnel `i`'s far VTEP: 198.19.0.0/16, routed via the underlay neighbor.
fn remote(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 19, 0, 1)) + i)
}

/// Tunnel `i`'s pod network: 10.0.0.0/8 for a single tunnel, else 10.i.0.0/16 style /24s.
fn pod_net(i: u32, n: u32) -> Ipv4Cidr {
    if n == 1 {
        "10.0.0.0/8".parse().expect("valid")
    } else {
        Ipv4Cidr::new(Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 0), 24).expect("valid")
    }
}

/// The node's tables: a pod interface, an uplink, `n` tunnels with routes to their pod networks.
fn runtime(
    n: u32,
    huge_pages: bool,
) -> anyhow::Result<(Runtime, Ip4Control, VxlanControl, ConfigSet)> {
    let mut spec = GraphSpec::new();
    vpg_ip4::register(&mut spec);
    vpg_vxlan::register(&mut spec);
    spec.node(|| PgInput::new("ethernet-input"));
    let layout = spec.build()?;
    let pool = BufferMemory::new(16384, huge_pages)?
        .split(1)
        .pop()
        .context("one pool")?;
    let mut rt = Runtime::new(&layout, 0, pool, &RuntimeConfig::default());
    let out = rt
        .node_mut::<InterfaceOutput>(vpg_graph::INTERFACE_OUTPUT)
        .context("interface-output")?;
    out.set_device(POD_IF, Some(Box::new(NullDevice::default())));
    out.set_device(UPLINK, Some(Box::new(NullDevice::default())));
    let mut ip4 = Ip4Control::new();
    let mut vx = VxlanControl::new();
    ip4.add_interface(POD_IF, "pod0", EthernetAddress(MAC_POD))?;
    ip4.add_interface(UPLINK, "up0", EthernetAddress(MAC_UPLINK))?;
    for (i, a) in [(POD_IF, "192.0.2.1/24"), (UPLINK, "198.18.0.1/24")] {
        ip4.set_admin_up(i, true)?;
        ip4.add_address(i, a.parse()?)?;
    }
    ip4.add_neighbor(
        POD_IF,
        Ipv4Addr::new(192, 0, 2, 2),
        EthernetAddress(POD_HOST_MAC),
    )?;
    let nh = Ipv4Addr::new(198, 18, 0, 2);
    ip4.add_neighbor(UPLINK, nh, EthernetAddress(UNDERLAY_NH_MAC))?;
    ip4.add_route(
        "198.19.0.0/16".parse()?,
        RoutePath::Via {
            next_hop: nh,
            sw_if: UPLINK,
        },
    )?;
    let mut routes = Vec::new();
    for i in 0..n {
        let sw_if = FIRST_TUNNEL + i;
        let key = TunnelKey {
            local: LOCAL_VTEP,
            remote: remote(i),
            vni: 1000 + i,
            port: 4789,
        };
        vx.add_tunnel(sw_if, key, Some(EthernetAddress(peer_mac(i))))?;
        ip4.add_interface(sw_if, &format!("vxlan{i}"), EthernetAddress(tunnel_mac(i)))?;
        ip4.set_admin_up(sw_if, true)?;
        ip4.set_mtu(sw_if, 1450)?;
        ip4.set_peer_mac(sw_if, Some(EthernetAddress(peer_mac(i))))?;
        routes.push((pod_net(i, n), RoutePath::Attached { sw_if }));
    }
    ip4.add_routes(routes)?;
    let cfg = ConfigSet::new()
        .with(ip4.tables())
        .with(vx.tables())
        .with(Arc::new(
            vx.tx_nodes(&layout, TxNodes::default())
                .context("vxlan nodes registered")?,
        ))
        .with(Arc::new(LocalUdpPorts::new(&layout, vx.local_udp_ports())?));
    rt.reconfigure(Arc::new(cfg.clone()));
    Ok((rt, ip4, vx, cfg))
}

fn run(encap: bool, n: u32, o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let pinned = vpg_graph::sys::pin_current_thread(o.cpu);
    let (mut rt, _ip4, _vx, _cfg) = runtime(n, o.huge_pages)?;
    let mut rng = SmallRng::seed_from_u64(SEED);
    let mut details = BTreeMap::new();
    let stream = if encap {
        // Pod traffic to random hosts in random tunnels' pod networks: `o.flows` destinations.
        let dsts: Vec<u32> = (0..o.flows)
            .map(|_| {
                let net = pod_net(rng.gen_range(0..n), n);
                let host_bits = 32 - u32::from(net.prefix_len());
                let host = rng.gen_range(1..(1u32 << host_bits) - 1);
                u32::from(net.address()) | host
            })
            .collect();
        details.insert("flows".into(), dsts.len().to_string());
        let images = StreamTemplate::udp4(
            POD_HOST_MAC,
            MAC_POD,
            Ipv4Addr::new(192, 0, 2, 2),
            Ipv4Addr::new(10, 0, 0, 1),
            INNER_SIZE,
        )
        .build();
        Stream::new("vxlan-encap", POD_IF, images).with_destinations(dsts)
    } else {
        // VXLAN from the tunnels' far ends (round robin, so with 1,000 tunnels consecutive
        // packets come from different tunnels) to the local pod, inner flows by source port.
        let inner = StreamTemplate::udp4(
            [0; 6],
            [0; 6],
            Ipv4Addr::new(10, 9, 0, 1),
            Ipv4Addr::new(192, 0, 2, 2),
            INNER_SIZE,
        )
        .vary(Vary::SrcPort {
            start: 1024,
            count: 60000,
        })
        .flows(DECAP_IMAGES)
        .build();
        let images: Vec<Vec<u8>> = inner
            .into_iter()
            .enumerate()
            .map(|(j, mut f)| {
                let i = j as u32 % n;
                f[0..6].copy_from_slice(&tunnel_mac(i));
                f[6..12].copy_from_slice(&peer_mac(i));
                // The far end's encapsulation: its own tunnel, seen from there.
                let far = TunnelKey {
                    local: remote(i),
                    remote: LOCAL_VTEP,
                    vni: 1000 + i,
                    port: 4789,
                };
                let mut outer = [0u8; ENCAP_LEN];
                TunnelData::new(&far, 0).write(
                    &mut outer,
                    f.len() as u16,
                    49152 + rng.gen_range(0..16384),
                );
                let mut p = Vec::with_capacity(14 + ENCAP_LEN + f.len());
                p.extend_from_slice(&MAC_UPLINK);
                p.extend_from_slice(&UNDERLAY_NH_MAC);
                p.extend_from_slice(&[0x08, 0x00]);
                p.extend_from_slice(&outer);
                p.extend_from_slice(&f);
                p
            })
            .collect();
        details.insert("flows".into(), images.len().to_string());
        Stream::new("vxlan-decap", UPLINK, images)
    };
    rt.node_mut::<PgInput>(PG_INPUT)
        .context("pg-input")?
        .add_stream(stream);
    details.insert("tunnels".into(), n.to_string());
    details.insert("inner_frame_bytes".into(), INNER_SIZE.to_string());
    details.insert(
        "pinned_cpu".into(),
        match pinned {
            Ok(()) => o.cpu.to_string(),
            Err(e) => format!("not pinned: {e}"),
        },
    );
    let (name, node) = match (encap, n) {
        (true, 1) => ("vxlan-encap", ENCAP_NODE),
        (true, _) => ("vxlan-encap-1000-tunnels", ENCAP_NODE),
        (false, 1) => ("vxlan-decap", DECAP_NODE),
        (false, _) => ("vxlan-decap-1000-tunnels", DECAP_NODE),
    };
    let report = measure(name, &mut rt, o, &[node])?;
    Ok(ScenarioReport {
        details: details.into_iter().chain(report.details).collect(),
        ..report
    })
}
