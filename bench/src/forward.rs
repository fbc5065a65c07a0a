//! The `ip4-forward-*` scenarios: 64-byte UDP frames in on one interface, routed out another to
//! one neighbor, through ethernet-input, ip4-input, ip4-lookup and ip4-rewrite.

use crate::report::ScenarioReport;
use crate::RunOptions;
use anyhow::Context;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Instant;
use vpg_graph::pg::{PgInput, Stream, StreamTemplate, PG_INPUT};
use vpg_graph::wire::{EthernetAddress, Ipv4Cidr};
use vpg_graph::{
    BufferMemory, ConfigSet, GraphSpec, InterfaceOutput, NullDevice, Runtime, RuntimeConfig,
};
use vpg_ip4::fib::testgen;
use vpg_ip4::{Ip4Control, RoutePath};

/// The nodes whose clocks make up `cycles_per_packet`.
pub const FORWARD_NODES: [&str; 4] = ["ethernet-input", "ip4-input", "ip4-lookup", "ip4-rewrite"];
/// Distinct destinations (flows) the generator cycles through.
pub const FLOWS: usize = 65_536;
const MAC_IN: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_OUT: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const NEIGHBOR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 3];
const SEED: u64 = 0x5eed;
/// Neighbors the routes are spread over.
pub const NEXT_HOPS: usize = 250;

/// `ip4-forward-1-route`.
pub fn one_route(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    run_forward("ip4-forward-1-route", 1, o)
}

/// `ip4-forward-10k-routes`.
pub fn ten_k_routes(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    run_forward("ip4-forward-10k-routes", 10_000, o)
}

/// `ip4-forward-1m-routes`, with the 1-route case as its baseline in the same process.
pub fn one_m_routes(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let base = run_forward("ip4-forward-1-route", 1, o)?;
    let mut r = run_forward("ip4-forward-1m-routes", 1_000_000, o)?;
    r.baseline = Some("ip4-forward-1-route, same process".into());
    r.baseline_cycles_per_packet = Some(base.cycles_per_packet);
    r.ratio = Some(r.cycles_per_packet / base.cycles_per_packet);
    Ok(r)
}

/// Routes for a scenario: one /8, or `n` random /8–/32 prefixes.
fn routes(n: usize) -> Vec<(Ipv4Addr, u8)> {
    if n == 1 {
        vec![(Ipv4Addr::new(10, 0, 0, 0), 8)]
    } else {
        testgen::random_routes(n, SEED)
    }
}

/// pg0 (192.0.2.1/24, in) and pg1 (198.18.0.1/24, out) with a default route out of pg1 via
/// 198.18.0.2: every destination is covered (the ACL and NAT scenarios).
pub fn default_route_tables() -> anyhow::Result<Ip4Control> {
    let mut ip4 = Ip4Control::new();
    ip4.add_interface(0, "pg0", EthernetAddress(MAC_IN))?;
    ip4.add_interface(1, "pg1", EthernetAddress(MAC_OUT))?;
    for (i, a) in [(0, "192.0.2.1/24"), (1, "198.18.0.1/24")] {
        ip4.set_admin_up(i, true)?;
        ip4.add_address(i, a.parse::<Ipv4Cidr>()?)?;
    }
    let nh = Ipv4Addr::new(198, 18, 0, 2);
    ip4.add_neighbor(1, nh, EthernetAddress(NEIGHBOR_MAC))?;
    ip4.add_route(
        "0.0.0.0/0".parse()?,
        RoutePath::Via {
            next_hop: nh,
            sw_if: 1,
        },
    )?;
    Ok(ip4)
}

/// Builds the forwarding graph and its tables; returns the runtime and a description.
pub fn forwarding_runtime(
    n_routes: usize,
    huge_pages: bool,
    buffers: u32,
) -> anyhow::Result<(Runtime, BTreeMap<String, String>)> {
    forwarding_runtime_with_flows(n_routes, huge_pages, buffers, FLOWS)
}

/// [`forwarding_runtime`] with a given number of flows.
pub fn forwarding_runtime_with_flows(
    n_routes: usize,
    huge_pages: bool,
    buffers: u32,
    flows: usize,
) -> anyhow::Result<(Runtime, BTreeMap<String, String>)> {
    let mut spec = GraphSpec::new();
    vpg_ip4::register(&mut spec);
    // The ACL and NAT features are registered as in vpgd (off unless a scenario enables them).
    vpg_acl::register(&mut spec);
    vpg_nat44::register(&mut spec);
    spec.node(|| PgInput::new("ethernet-input"));
    let layout = spec.build()?;
    let pool = BufferMemory::new(buffers, huge_pages)?
        .split(1)
        .pop()
        .context("one pool")?;
    let mut rt = Runtime::new(&layout, 0, pool, &RuntimeConfig::default());
    let out = rt
        .node_mut::<InterfaceOutput>(vpg_graph::INTERFACE_OUTPUT)
        .context("interface-output")?;
    out.set_device(1, Some(Box::new(NullDevice::default())));
    out.set_device(0, Some(Box::new(NullDevice::default())));

    let mut ip4 = Ip4Control::new();
    let in_net: Ipv4Cidr = "192.0.2.1/24".parse()?;
    let out_net: Ipv4Cidr = "198.18.0.1/24".parse()?;
    let nh = Ipv4Addr::new(198, 18, 0, 2);
    ip4.add_interface(0, "pg0", EthernetAddress(MAC_IN))?;
    ip4.add_interface(1, "pg1", EthernetAddress(MAC_OUT))?;
    for (i, a) in [(0, in_net), (1, out_net)] {
        ip4.set_admin_up(i, true)?;
        ip4.add_address(i, a)?;
    }
    // Routes are spread over NEXT_HOPS neighbors, as a real table's are: with one next hop for
    // every route the FIB would merge adjacent equal ranges and a million routes would collapse
    // to almost nothing, which would flatter the lookup.
    let hops: Vec<Ipv4Addr> = (0..NEXT_HOPS)
        .map(|i| Ipv4Addr::new(198, 18, 0, 2 + i as u8))
        .collect();
    for (i, h) in hops.iter().enumerate() {
        let mut mac = NEIGHBOR_MAC;
        mac[5] = i as u8;
        ip4.add_neighbor(1, *h, EthernetAddress(mac))?;
    }
    let table = routes(n_routes);
    let t0 = Instant::now();
    // Interface subnets are in the table already; a random prefix equal to one is skipped.
    let reserved = |p: Ipv4Addr, l: u8| {
        (p, l) == (in_net.network().address(), 24)
            || (p, l) == (out_net.network().address(), 24)
            || (l == 32 && (in_net.network().contains(p) || out_net.network().contains(p)))
    };
    let routes = table
        .iter()
        .filter(|(p, l)| !reserved(*p, *l))
        .enumerate()
        .map(|(i, &(p, l))| {
            let next_hop = if n_routes == 1 {
                nh
            } else {
                hops[i % hops.len()]
            };
            (
                Ipv4Cidr::new(p, l).expect("len <= 32"),
                RoutePath::Via { next_hop, sw_if: 1 },
            )
        });
    let n = ip4.add_routes(routes)?;
    let load = t0.elapsed();
    let tables = ip4.tables();
    // Destinations inside the routes, minus the interface subnets (those are not forwarded).
    let dsts: Vec<u32> = testgen::covered_destinations(&table, flows, SEED ^ 1)
        .into_iter()
        .filter(|&d| {
            !in_net.network().contains(Ipv4Addr::from(d))
                && !out_net.network().contains(Ipv4Addr::from(d))
        })
        .collect();
    let flows = dsts.len();
    // One image; pg writes each flow's destination into it per packet (4 bytes per flow).
    let images = StreamTemplate::udp4(
        [0x02, 0, 0, 0, 0, 9],
        MAC_IN,
        Ipv4Addr::new(192, 0, 2, 2),
        Ipv4Addr::new(10, 0, 0, 1),
        64,
    )
    .build();
    rt.node_mut::<PgInput>(PG_INPUT)
        .context("pg-input")?
        .add_stream(Stream::new("bench", 0, images).with_destinations(dsts));
    rt.reconfigure(Arc::new(ConfigSet::new().with(tables.clone())));
    let mut details = BTreeMap::new();
    details.insert("routes".into(), n.to_string());
    details.insert("fib_entries".into(), ip4.fib_len().to_string());
    details.insert(
        "fib_memory_mib".into(),
        format!("{:.1}", tables.fib.memory_bytes() as f64 / 1048576.0),
    );
    details.insert(
        "route_load_seconds".into(),
        format!("{:.2}", load.as_secs_f64()),
    );
    details.insert("flows".into(), flows.to_string());
    details.insert(
        "next_hops".into(),
        if n_routes == 1 {
            "1".into()
        } else {
            NEXT_HOPS.to_string()
        },
    );
    Ok((rt, details))
}

fn run_forward(name: &str, n_routes: usize, o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let pinned = vpg_graph::sys::pin_current_thread(o.cpu);
    let (mut rt, mut details) =
        forwarding_runtime_with_flows(n_routes, o.huge_pages, 16384, o.flows)?;
    details.insert(
        "pinned_cpu".into(),
        match pinned {
            Ok(()) => o.cpu.to_string(),
            Err(e) => format!("not pinned: {e}"),
        },
    );
    let report = measure(name, &mut rt, o, &FORWARD_NODES)?;
    Ok(ScenarioReport {
        details: details.into_iter().chain(report.details).collect(),
        ..report
    })
}

/// Runs the graph: warm-up, clear the counters, then `o.packets` measured packets.
pub fn measure(
    name: &str,
    rt: &mut Runtime,
    o: &RunOptions,
    measured: &[&str],
) -> anyhow::Result<ScenarioReport> {
    let layout = rt.layout().clone();
    let pg = layout.node_index(PG_INPUT).context("pg-input")? as usize;
    let stats = rt.stats().clone();
    let sent = |s: &vpg_graph::counters::WorkerStats| s.nodes[pg].vectors.get();
    let clock = vpg_graph::time::SystemClock::default();
    use vpg_graph::time::Clock;
    while sent(&stats) < o.warmup_packets {
        rt.dispatch(clock.now());
    }
    stats.clear_runtime();
    let t0 = Instant::now();
    while sent(&stats) < o.packets {
        rt.dispatch(clock.now());
    }
    let seconds = t0.elapsed().as_secs_f64();
    let packets = sent(&stats);
    let rows = vpg_graph::show::runtime_rows(&layout, std::slice::from_ref(&stats));
    let fig = crate::report::node_figures(&rows, packets, |r| measured.contains(&r.node.as_str()));
    let mut details = BTreeMap::new();
    let drops: u64 = vpg_graph::show::error_rows(&layout, std::slice::from_ref(&stats))
        .iter()
        .map(|e| e.count)
        .sum();
    details.insert("errors".into(), drops.to_string());
    Ok(ScenarioReport {
        scenario: name.into(),
        packets,
        seconds,
        mpps: packets as f64 / seconds / 1e6,
        cycles_per_packet: fig.cycles_per_packet,
        vectors_per_call: fig.vectors_per_call,
        nodes: fig.nodes,
        buffer_pages: rt.pool().backing().to_string(),
        details,
        baseline: None,
        baseline_cycles_per_packet: None,
        ratio: None,
    })
}
