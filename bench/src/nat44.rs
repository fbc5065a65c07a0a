//! The NAT44 scenarios. pg0 is inside, pg1 outside (the uplink, output-feature SNAT, its
//! address the pool); 64-byte UDP frames.
//!
//! - `nat44-in2out-64k-sessions`, `nat44-in2out-1m-sessions`: every measured packet hits an
//!   existing session in `nat44-in2out`. Sessions are made by a first pass in one order and
//!   measured in another (sessions sit at their hash's slot anyway, so either order reads the
//!   table at random).
//! - `nat44-out2in-64k-sessions`: the replies of those sessions arriving on pg1.
//! - `nat44-session-setup`: every packet a new flow; new sessions per second on one core.

use crate::forward::{default_route_tables, forwarding_runtime_with_flows, measure};
use crate::report::ScenarioReport;
use crate::RunOptions;
use anyhow::Context;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;
use vpg_graph::pg::{PgInput, Stream, PG_INPUT};
use vpg_graph::time::Clock;
use vpg_graph::{ConfigSet, FeatureConfig, Runtime};
use vpg_nat44::{Limits, Nat44Control, PoolEntry, Role, SessionTable};

const POOL: u32 = 0xc612_0001; // 198.18.0.1, pg1's address
const MAC_IN: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_OUT: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const PEER: [u8; 6] = [0x02, 0, 0, 0, 0, 9];

/// A 64-byte Ethernet/IPv4/UDP frame to `dst_mac` (no UDP checksum, as a generator sends).
pub fn udp_frame(dst_mac: [u8; 6], src: u32, sport: u16, dst: u32, dport: u16) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&dst_mac);
    f[6..12].copy_from_slice(&PEER);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = 17;
    ip[12..16].copy_from_slice(&src.to_be_bytes());
    ip[16..20].copy_from_slice(&dst.to_be_bytes());
    let ck = vpg_graph::wire::checksum::data(ip);
    ip[10..12].copy_from_slice(&ck.to_be_bytes());
    f[34..36].copy_from_slice(&sport.to_be_bytes());
    f[36..38].copy_from_slice(&dport.to_be_bytes());
    f[38..40].copy_from_slice(&30u16.to_be_bytes());
    f
}

/// Inside flow `i`: many hosts, many remote ends, every flow distinct.
fn inside_flow(i: u32) -> Vec<u8> {
    udp_frame(
        MAC_IN,
        0x0a00_0000 | (i >> 12),    // 10.0.0.0/8 hosts, 4096 flows each
        1024 + (i & 0xfff) as u16,  // their source ports
        0xcb00_0000 | (i & 0xffff), // 203.0.0.0/16 remote ends
        53,
    )
}

/// The forwarding graph with SNAT on pg1 for `sessions` sessions and `images` on pg0.
pub fn nat_runtime(
    o: &RunOptions,
    sessions: usize,
    images: Vec<Vec<u8>>,
) -> anyhow::Result<(Runtime, BTreeMap<String, String>)> {
    let (mut rt, details) = forwarding_runtime_with_flows(1, o.huge_pages, 16384, 1)?;
    let ip4 = default_route_tables()?;
    let mut nat = Nat44Control::new(1);
    nat.add_pool(PoolEntry::Interface(1), |_| true)?;
    nat.set_limits(Limits {
        sessions_per_worker: sessions,
        sessions_per_address: 0,
    })?;
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
        nat.set_interface(sw_if, role, |_| true)?;
        for (arc, node, on) in nat.features_for(role) {
            if on {
                let p = rt
                    .layout()
                    .feature_position(arc, node)
                    .with_context(|| format!("{node} in the graph"))?;
                features.enable(arc, sw_if, p);
            }
        }
    }
    let addr_of = |i: u32| (i == 1).then(|| std::net::Ipv4Addr::from_bits(POOL));
    rt.reconfigure(Arc::new(
        ConfigSet::new()
            .with(ip4.tables())
            .with(nat.tables(&addr_of))
            .with(Arc::new(features)),
    ));
    set_stream(&mut rt, 0, images)?;
    Ok((rt, details))
}

/// The images copied in playback order, so the generator reads them one after another as a
/// NIC fills its ring (a shuffled `Vec` of the original allocations would make the generator's
/// own reads random and charge their cache misses to the nodes under test).
fn contiguous(images: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    images.iter().map(|v| v.to_vec()).collect()
}

fn set_stream(rt: &mut Runtime, rx_if: u32, images: Vec<Vec<u8>>) -> anyhow::Result<()> {
    let pg = rt.node_mut::<PgInput>(PG_INPUT).context("pg-input")?;
    pg.clear();
    pg.add_stream(Stream::new("nat", rx_if, images));
    Ok(())
}

/// Runs until `n` more packets were generated.
fn run_packets(rt: &mut Runtime, n: u64) -> anyhow::Result<()> {
    let pg = rt.layout().node_index(PG_INPUT).context("pg")? as usize;
    let stats = rt.stats().clone();
    let start = stats.nodes[pg].vectors.get();
    let clock = vpg_graph::time::SystemClock::default();
    while stats.nodes[pg].vectors.get() < start + n {
        rt.dispatch(clock.now());
    }
    Ok(())
}

fn sessions(rt: &mut Runtime) -> Vec<vpg_nat44::Session> {
    rt.locals_mut()
        .get::<SessionTable>()
        .map(|t| t.iter().map(|(_, s)| *s).collect())
        .unwrap_or_default()
}

/// Builds `flows` sessions with a pass in one order; returns the runtime streaming them in
/// another.
fn established(o: &RunOptions, flows: u32) -> anyhow::Result<(Runtime, BTreeMap<String, String>)> {
    let mut images: Vec<Vec<u8>> = (0..flows).map(inside_flow).collect();
    let capacity = (flows as usize + flows as usize / 8)
        .clamp(1024, vpg_nat44::session::MAX_SESSIONS.max(flows as usize));
    let (mut rt, mut details) = nat_runtime(o, capacity, images.clone())?;
    let t0 = Instant::now();
    run_packets(&mut rt, flows as u64)?;
    details.insert(
        "setup_pass_ms".into(),
        format!("{:.0}", t0.elapsed().as_secs_f64() * 1e3),
    );
    let made = rt.locals_mut().get::<SessionTable>().map_or(0, |t| t.len());
    anyhow::ensure!(
        made == flows as usize,
        "{made} sessions made for {flows} flows"
    );
    details.insert("sessions".into(), made.to_string());
    // What backs the session tables: transparent huge pages when the kernel gave them.
    if let Ok(r) = std::fs::read_to_string("/proc/self/smaps_rollup") {
        if let Some(l) = r.lines().find(|l| l.starts_with("AnonHugePages:")) {
            details.insert(
                "process_anon_huge_kib".into(),
                l.split_whitespace().nth(1).unwrap_or("?").to_string(),
            );
        }
    }
    images.shuffle(&mut rand::rngs::StdRng::seed_from_u64(0x5eed));
    let images = contiguous(images);
    set_stream(&mut rt, 0, images)?;
    Ok((rt, details))
}

fn report(
    name: &str,
    rt: &mut Runtime,
    o: &RunOptions,
    node: &str,
    mut details: BTreeMap<String, String>,
    pinned: std::io::Result<()>,
) -> anyhow::Result<ScenarioReport> {
    details.insert(
        "pinned_cpu".into(),
        pinned.map_or_else(|e| format!("not pinned: {e}"), |()| o.cpu.to_string()),
    );
    let r = measure(name, rt, o, &[node])?;
    let rows = vpg_graph::show::error_rows(rt.layout(), std::slice::from_ref(rt.stats()));
    for e in rows.iter().filter(|e| e.node.starts_with("nat44")) {
        details.insert(format!("{}.{}", e.node, e.name), e.count.to_string());
    }
    Ok(ScenarioReport {
        details: details.into_iter().chain(r.details.clone()).collect(),
        ..r
    })
}

/// `nat44-in2out-64k-sessions` and `nat44-in2out-1m-sessions`.
pub fn in2out(flows: u32, o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let pinned = vpg_graph::sys::pin_current_thread(o.cpu);
    let (mut rt, details) = established(o, flows)?;
    let name = if flows >= 1 << 20 {
        "nat44-in2out-1m-sessions"
    } else {
        "nat44-in2out-64k-sessions"
    };
    report(name, &mut rt, o, vpg_nat44::IN2OUT, details, pinned)
}

/// `nat44-out2in-64k-sessions`: the replies of 64k sessions.
pub fn out2in(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let pinned = vpg_graph::sys::pin_current_thread(o.cpu);
    let (mut rt, details) = established(o, 65_536)?;
    let mut replies: Vec<Vec<u8>> = sessions(&mut rt)
        .iter()
        .map(|s| udp_frame(MAC_OUT, s.o.dst, s.o.dport, s.o.src, s.o.sport))
        .collect();
    replies.shuffle(&mut rand::rngs::StdRng::seed_from_u64(0x0ddba11));
    let replies = contiguous(replies);
    set_stream(&mut rt, 1, replies)?;
    report(
        "nat44-out2in-64k-sessions",
        &mut rt,
        o,
        vpg_nat44::OUT2IN,
        details,
        pinned,
    )
}

/// `nat44-session-setup`: 2M distinct flows, each packet a new session (the table holds them
/// all, so nothing is reclaimed on the way); new sessions per second of `nat44-in2out`'s clocks
/// and of the whole graph's wall time.
pub fn setup(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let pinned = vpg_graph::sys::pin_current_thread(o.cpu);
    let flows: u32 = 2 << 20;
    let images: Vec<Vec<u8>> = (0..flows).map(inside_flow).collect();
    // The table (2M sessions, ~200 MiB) is made by the first packet: one flow of its own
    // first, so that building it is not counted against session setup.
    let (mut rt, mut details) = nat_runtime(o, flows as usize + 1, vec![inside_flow(flows)])?;
    run_packets(&mut rt, 1)?;
    set_stream(&mut rt, 0, images)?;
    details.insert(
        "pinned_cpu".into(),
        pinned.map_or_else(|e| format!("not pinned: {e}"), |()| o.cpu.to_string()),
    );
    let layout = rt.layout().clone();
    let stats = rt.stats().clone();
    stats.clear_runtime();
    let t0 = Instant::now();
    let c0 = vpg_graph::sys::rdtsc();
    run_packets(&mut rt, flows as u64)?;
    let seconds = t0.elapsed().as_secs_f64();
    // The TSC rate, from this run's own wall time.
    let hz = (vpg_graph::sys::rdtsc() - c0) as f64 / seconds;
    let made = rt.locals_mut().get::<SessionTable>().map_or(0, |t| t.len()) as u64;
    anyhow::ensure!(
        made == flows as u64 + 1,
        "{made} sessions for {flows} flows"
    );
    let made = made - 1;
    let rows = vpg_graph::show::runtime_rows(&layout, std::slice::from_ref(&stats));
    let fig = crate::report::node_figures(&rows, made, |r| r.node == vpg_nat44::IN2OUT);
    details.insert(
        "node_sessions_per_second".into(),
        format!("{:.0}", hz / fig.cycles_per_packet),
    );
    details.insert(
        "graph_sessions_per_second".into(),
        format!("{:.0}", made as f64 / seconds),
    );
    details.insert("tsc_hz".into(), format!("{hz:.0}"));
    Ok(ScenarioReport {
        scenario: "nat44-session-setup".into(),
        packets: made,
        seconds,
        mpps: made as f64 / seconds / 1e6,
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
