//! The `esp-*` scenarios.
//!
//! - `esp-encrypt-64`, `esp-encrypt-1400`: pod frames of that size (Ethernet included) routed out
//!   the uplink, where a protect rule sends them through `esp4-encrypt` (transport mode,
//!   AES-128-GCM, the shipped backend). `cycles_per_packet` is `esp4-encrypt`'s own.
//! - `esp-decrypt-1400`: ESP tunnel-mode packets carrying 1400-byte IPv4 packets to a pod,
//!   decrypted by `esp4-decrypt` (anti-replay off: the generator repeats its images, which a
//!   window would drop as replays; the window costs a few instructions either way).
//! - `esp-vxlan-1w`, `esp-vxlan-2w`: 1400-byte pod frames into a VXLAN tunnel whose underlay
//!   packets ESP protects, one graph per worker on its own core, one SA per worker (so no
//!   handoff): aggregate Gbit/s, and the ratio of 2 workers to 1 measured in the same run.
//!
//! The baseline of every scenario is the raw AES-GCM seal (or open) of the same payload by the
//! fastest backend, measured in the same run in TSC clocks: `ratio` is the node's clocks over
//! the raw seal's, so 1.25 means ESP framing, anti-replay and the graph cost a fifth.

use crate::forward::measure;
use crate::report::ScenarioReport;
use crate::RunOptions;
use anyhow::Context;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::Arc;
use vpg_esp::crypto::{Backend, Job, KeyMaterial, ICV_LEN};
use vpg_esp::packet::{self, SealParams, ESP_FRONT, NEXT_IPV4, TUNNEL_FRONT};
use vpg_esp::{Direction, EspControl, Mode, ProtectRule, SaConfig, DECRYPT_NODE, ENCRYPT_NODE};
use vpg_graph::pg::{PgInput, Stream, StreamTemplate, Vary, PG_INPUT};
use vpg_graph::wire::{checksum, EthernetAddress};
use vpg_graph::{
    ArcId, BufferMemory, ConfigSet, FeatureConfig, GraphSpec, InterfaceOutput, NullDevice, Runtime,
    RuntimeConfig, Time, TxNodes,
};
use vpg_ip4::ip4_local::LocalUdpPorts;
use vpg_ip4::{Ip4Control, RoutePath};
use vpg_vxlan::{TunnelKey, VxlanControl};

const POD_IF: u32 = 0;
const UPLINK: u32 = 1;
const TUNNEL: u32 = 2;
const MAC_POD: [u8; 6] = [0x02, 0, 0, 0, 0, 1];
const MAC_UPLINK: [u8; 6] = [0x02, 0, 0, 0, 0, 2];
const POD_HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 9, 1];
const NH_MAC: [u8; 6] = [0x02, 0, 0, 0, 9, 2];
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
const POD_HOST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

/// The AES-GCM backend of the scenarios' SAs: `$VPG_BENCH_ESP_BACKEND` (`native`, `ring`,
/// `aes-gcm`, `aws-lc-rs`, `auto`) to compare backends through the same graph, else the
/// shipped default.
fn backend() -> Backend {
    std::env::var("VPG_BENCH_ESP_BACKEND")
        .ok()
        .and_then(|n| Backend::from_name(&n))
        .unwrap_or(Backend::DEFAULT)
}

fn keymat() -> KeyMaterial {
    keymat_n(0)
}

/// Key `n` (each outbound SA has its own key: one key under two SAs would repeat nonces).
fn keymat_n(n: u8) -> KeyMaterial {
    KeyMaterial::new((0..20u8).map(|i| i.wrapping_mul(29) ^ 0x5a ^ n).collect()).expect("20 bytes")
}

/// `esp-encrypt-64`.
pub fn encrypt_64(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    encrypt("esp-encrypt-64", 64, o)
}

/// `esp-encrypt-1400`.
pub fn encrypt_1400(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    encrypt("esp-encrypt-1400", 1400, o)
}

/// The raw seal (or open) of `len` bytes with an 8-byte AAD by every backend, one packet per
/// call and in batches of eight (what the nodes hand over): the fastest's name and TSC clocks
/// per packet.
fn raw_baseline(len: usize, open: bool) -> (String, f64) {
    let m = keymat();
    let mut best = (String::new(), f64::MAX);
    for &be in Backend::available() {
        let Ok(c) = m.cipher(be) else { continue };
        let aad = [0, 0, 1, 0, 0, 0, 0, 1];
        let nonce = [7u8; 12];
        let mut data = vec![vec![0x5au8; len]; packet::BATCH];
        let tag = c.seal(&nonce, &aad, &mut data[0].clone());
        for batch in [1, packet::BATCH] {
            let n = if len > 512 { 200_000 } else { 1_000_000 } / batch;
            let mut clocks = u64::MAX;
            // Best of five rounds: the machine is shared, the minimum is the least disturbed.
            for _ in 0..5 {
                let t0 = vpg_graph::sys::rdtsc();
                for _ in 0..n {
                    let mut jobs: [Job<'_>; packet::BATCH] = Default::default();
                    for (j, d) in jobs.iter_mut().zip(data.iter_mut()) {
                        *j = Job {
                            tag,
                            ..Job::new(nonce, &aad, d)
                        };
                    }
                    if open {
                        c.open_batch(&mut jobs[..batch]);
                    } else {
                        c.seal_batch(&mut jobs[..batch]);
                    }
                    std::hint::black_box(&jobs[0].tag);
                }
                clocks = clocks.min(vpg_graph::sys::rdtsc() - t0);
            }
            let per = clocks as f64 / (n * batch) as f64;
            if per < best.1 {
                best = (
                    format!("{}{}", be.name(), if batch > 1 { " x8" } else { "" }),
                    per,
                );
            }
        }
    }
    best
}

/// IPv4, the uplink and the pod interface, ESP on the uplink's arcs.
fn base(
    spec: GraphSpec,
    worker: usize,
    huge_pages: bool,
) -> anyhow::Result<(Runtime, Ip4Control, FeatureConfig)> {
    let mut spec = spec;
    vpg_ip4::register(&mut spec);
    vpg_esp::register(&mut spec);
    spec.node(|| PgInput::new("ethernet-input"));
    let layout = spec.build()?;
    let pool = BufferMemory::new(16384, huge_pages)?
        .split(1)
        .pop()
        .context("one pool")?;
    let mut rt = Runtime::new(&layout, worker, pool, &RuntimeConfig::default());
    let out = rt
        .node_mut::<InterfaceOutput>(vpg_graph::INTERFACE_OUTPUT)
        .context("interface-output")?;
    out.set_device(POD_IF, Some(Box::new(NullDevice::default())));
    out.set_device(UPLINK, Some(Box::new(NullDevice::default())));
    let mut ip4 = Ip4Control::new();
    ip4.add_interface(POD_IF, "pod0", EthernetAddress(MAC_POD))?;
    ip4.add_interface(UPLINK, "up0", EthernetAddress(MAC_UPLINK))?;
    for (i, a) in [(POD_IF, "192.0.2.1/24"), (UPLINK, "198.18.0.1/24")] {
        ip4.set_admin_up(i, true)?;
        ip4.add_address(i, a.parse()?)?;
    }
    ip4.add_neighbor(POD_IF, POD_HOST, EthernetAddress(POD_HOST_MAC))?;
    ip4.add_neighbor(UPLINK, PEER, EthernetAddress(NH_MAC))?;
    let mut features = FeatureConfig::default();
    for (arc, f) in [
        (ArcId::Ip4Output, ENCRYPT_NODE),
        (ArcId::Ip4Unicast, DECRYPT_NODE),
    ] {
        let p = layout.feature_position(arc, f).context("esp feature")?;
        features.enable(arc, UPLINK, p);
    }
    Ok((rt, ip4, features))
}

/// Pins the calling thread to `cpu`; what the report says about it.
fn pin(cpu: usize) -> String {
    match vpg_graph::sys::pin_current_thread(cpu) {
        Ok(()) => cpu.to_string(),
        Err(e) => format!("not pinned: {e}"),
    }
}

fn finish(
    mut report: ScenarioReport,
    mut details: BTreeMap<String, String>,
    baseline: (String, f64),
    what: &str,
) -> ScenarioReport {
    details.insert("baseline_backend".into(), baseline.0.clone());
    details.insert("node_backend".into(), backend().effective().name().into());
    report.details.append(&mut details);
    report.baseline = Some(format!("raw {what} ({}) in the same run", baseline.0));
    report.baseline_cycles_per_packet = Some(baseline.1);
    report.ratio = Some(report.cycles_per_packet / baseline.1);
    report
}

/// The `esp-encrypt-*` graph with its generator loaded: `frame`-byte pod frames to 10.0.0.0/8,
/// protected in transport mode on the uplink (also the no-allocation test's subject).
pub fn encrypt_runtime(frame: usize, huge_pages: bool) -> anyhow::Result<Runtime> {
    let (mut rt, mut ip4, features) = base(GraphSpec::new(), 0, huge_pages)?;
    ip4.add_route(
        "10.0.0.0/8".parse()?,
        RoutePath::Via {
            next_hop: PEER,
            sw_if: UPLINK,
        },
    )?;
    let mut esp = EspControl::new(1);
    esp.add_sa(
        1,
        SaConfig {
            esn: true,
            backend: Some(backend()),
            ..SaConfig::transport(0x1001, Direction::Outbound, keymat(), 1)
        },
        Time::ZERO,
    )?;
    esp.set_rule(
        1,
        ProtectRule {
            dst: Ipv4Addr::new(10, 0, 0, 0),
            len: 8,
            proto: None,
            port: None,
            sas: vec![1],
        },
        false,
    )?;
    esp.set_mtus(vec![1500, 1500]);
    rt.reconfigure(Arc::new(
        ConfigSet::new()
            .with(ip4.tables())
            .with(Arc::new(features))
            .with(esp.tables()),
    ));
    let images = StreamTemplate::udp4(
        POD_HOST_MAC,
        MAC_POD,
        POD_HOST,
        Ipv4Addr::new(10, 0, 0, 1),
        frame,
    )
    .vary(Vary::SrcPort {
        start: 1024,
        count: 4096,
    })
    .flows(1024)
    .build();
    rt.node_mut::<PgInput>(PG_INPUT)
        .context("pg-input")?
        .add_stream(Stream::new("esp-encrypt", POD_IF, images));
    Ok(rt)
}

fn encrypt(name: &str, frame: usize, o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let mut details = BTreeMap::new();
    details.insert("pinned_cpu".into(), pin(o.cpu));
    let mut rt = encrypt_runtime(frame, o.huge_pages)?;
    // The payload sealed: the IPv4 payload of a frame of this size.
    let payload = frame - 14 - 20 + packet::tail_len(frame - 34) - ICV_LEN;
    details.insert("frame_bytes".into(), frame.to_string());
    details.insert("sealed_bytes".into(), payload.to_string());
    let baseline = raw_baseline(payload, false);
    let report = measure(name, &mut rt, o, &[ENCRYPT_NODE])?;
    details.insert(
        "gbit_per_s_of_frames".into(),
        format!("{:.2}", report.mpps * frame as f64 * 8.0 / 1000.0),
    );
    Ok(finish(report, details, baseline, "seal"))
}

/// The `esp-decrypt-1400` graph with its generator loaded: ESP tunnel-mode packets to this
/// node carrying 1400-byte IPv4 packets to the pod (also the no-allocation test's subject).
pub fn decrypt_runtime(huge_pages: bool) -> anyhow::Result<Runtime> {
    let (mut rt, ip4, features) = base(GraphSpec::new(), 0, huge_pages)?;
    let mut esp = EspControl::new(1);
    let tunnel = Mode::Tunnel {
        src: PEER,
        dst: LOCAL,
    };
    esp.add_sa(
        2,
        SaConfig {
            mode: tunnel,
            replay_window: 0,
            backend: Some(backend()),
            ..SaConfig::transport(0x2001, Direction::Inbound, keymat(), 1)
        },
        Time::ZERO,
    )?;
    rt.reconfigure(Arc::new(
        ConfigSet::new()
            .with(ip4.tables())
            .with(Arc::new(features))
            .with(esp.tables()),
    ));
    // Inner: 1400-byte IPv4/UDP packets to the pod host; sealed by the far gateway.
    let inner = StreamTemplate::udp4(
        [0; 6],
        [0; 6],
        Ipv4Addr::new(10, 9, 0, 1),
        POD_HOST,
        1400 + 14,
    )
    .vary(Vary::SrcPort {
        start: 1024,
        count: 4096,
    })
    .flows(1024)
    .build();
    let cipher = keymat().cipher(Backend::DEFAULT)?;
    let params = SealParams {
        cipher: &*cipher,
        salt: keymat().salt(),
        spi: 0x2001,
        esn: false,
    };
    let images: Vec<Vec<u8>> = inner
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let ip = &f[14..];
            let len = ip.len();
            let mut p = vec![0u8; 14 + TUNNEL_FRONT + len + packet::tail_len(len)];
            p[0..6].copy_from_slice(&MAC_UPLINK);
            p[6..12].copy_from_slice(&NH_MAC);
            p[12..14].copy_from_slice(&[0x08, 0x00]);
            let total = (p.len() - 14) as u16;
            let h = &mut p[14..34];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&total.to_be_bytes());
            h[8] = 64;
            h[9] = 50;
            h[12..16].copy_from_slice(&PEER.octets());
            h[16..20].copy_from_slice(&LOCAL.octets());
            let c = checksum::data(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
            p[34 + ESP_FRONT..34 + ESP_FRONT + len].copy_from_slice(ip);
            packet::seal(&params, i as u64 + 1, &mut p[34..], len, NEXT_IPV4);
            p
        })
        .collect();
    rt.node_mut::<PgInput>(PG_INPUT)
        .context("pg-input")?
        .add_stream(Stream::new("esp-decrypt", UPLINK, images));
    Ok(rt)
}

/// `esp-decrypt-1400`.
pub fn decrypt_1400(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let name = "esp-decrypt-1400";
    let mut details = BTreeMap::new();
    details.insert("pinned_cpu".into(), pin(o.cpu));
    let mut rt = decrypt_runtime(o.huge_pages)?;
    let payload = 1400 + packet::tail_len(1400) - ICV_LEN;
    details.insert("inner_ip_bytes".into(), "1400".into());
    details.insert("opened_bytes".into(), payload.to_string());
    let baseline = raw_baseline(payload, true);
    let report = measure(name, &mut rt, o, &[DECRYPT_NODE])?;
    Ok(finish(report, details, baseline, "open"))
}

/// One worker's graph for the VXLAN-over-ESP scenarios: pod → vxlan4-encap → ip4-lookup →
/// ip4-rewrite → esp4-encrypt (transport, the worker's own SA) → uplink.
fn vxlan_worker(worker: usize, workers: usize, huge_pages: bool) -> anyhow::Result<Runtime> {
    let mut spec = GraphSpec::new();
    vpg_vxlan::register(&mut spec);
    let (mut rt, mut ip4, features) = base(spec, worker, huge_pages)?;
    let layout = rt.layout().clone();
    let peer_mac = EthernetAddress([0x02, 0xbb, 0, 0, 0, 1]);
    ip4.add_interface(TUNNEL, "vx0", EthernetAddress([0x02, 0xaa, 0, 0, 0, 1]))?;
    ip4.set_admin_up(TUNNEL, true)?;
    ip4.set_mtu(TUNNEL, 1400)?;
    ip4.set_peer_mac(TUNNEL, Some(peer_mac))?;
    ip4.add_route("10.0.0.0/8".parse()?, RoutePath::Attached { sw_if: TUNNEL })?;
    let mut vx = VxlanControl::new();
    vx.add_tunnel(
        TUNNEL,
        TunnelKey {
            local: LOCAL,
            remote: PEER,
            vni: 42,
            port: 4789,
        },
        Some(peer_mac),
    )?;
    let mut esp = EspControl::new(workers);
    let mut sas = Vec::new();
    for w in 0..workers as u32 {
        esp.add_sa(
            10 + w,
            SaConfig {
                esn: true,
                worker: Some(w),
                backend: Some(backend()),
                ..SaConfig::transport(0x1000 + w, Direction::Outbound, keymat_n(w as u8), 1)
            },
            Time::ZERO,
        )?;
        sas.push(10 + w);
    }
    esp.set_rule(
        1,
        ProtectRule {
            dst: PEER,
            len: 32,
            proto: Some(17),
            port: Some(4789),
            sas,
        },
        false,
    )?;
    esp.set_mtus(vec![1500, 1500, 1400]);
    rt.reconfigure(Arc::new(
        ConfigSet::new()
            .with(ip4.tables())
            .with(Arc::new(features))
            .with(vx.tables())
            .with(Arc::new(
                vx.tx_nodes(&layout, TxNodes::default())
                    .context("vxlan nodes")?,
            ))
            .with(Arc::new(LocalUdpPorts::new(&layout, vx.local_udp_ports())?))
            .with(esp.tables()),
    ));
    // 1400-byte frames: 1386 bytes of IP, within the tunnel's 1400 MTU.
    let images = StreamTemplate::udp4(
        POD_HOST_MAC,
        MAC_POD,
        POD_HOST,
        Ipv4Addr::new(10, 0, 0, 1),
        1400,
    )
    .vary(Vary::SrcPort {
        start: 1024,
        count: 4096,
    })
    .flows(1024)
    .build();
    rt.node_mut::<PgInput>(PG_INPUT)
        .context("pg-input")?
        .add_stream(Stream::new("esp-vxlan", POD_IF, images));
    Ok(rt)
}

/// This thread's scheduler figures from `/proc/thread-self/schedstat`: nanoseconds on a CPU
/// and nanoseconds runnable but waiting for one (zeros where the kernel does not say).
fn schedstat() -> (u64, u64) {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut f = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

/// One worker's run: its report; over the same call (warm-up included), wall seconds, seconds
/// on a CPU and seconds waiting for one.
struct WorkerRun {
    report: ScenarioReport,
    wall_s: f64,
    on_cpu_s: f64,
    wait_s: f64,
}

/// Runs `workers` graphs on as many cores for `o.packets` packets each (each graph has its own
/// generator, as VPP's pg runs inside each worker: no other thread feeds them); returns
/// per-worker runs and the aggregate packets per second.
fn vxlan_run(workers: usize, o: &RunOptions) -> anyhow::Result<(Vec<WorkerRun>, f64)> {
    let handles: Vec<_> = (0..workers)
        .map(|w| {
            let o = RunOptions {
                cpu: (o.cpu + w) % std::thread::available_parallelism().map_or(1, |n| n.get()),
                ..o.clone()
            };
            std::thread::spawn(move || -> anyhow::Result<WorkerRun> {
                let _ = vpg_graph::sys::pin_current_thread(o.cpu);
                let mut rt = vxlan_worker(w, workers, o.huge_pages)?;
                let (cpu0, wait0) = schedstat();
                let t0 = std::time::Instant::now();
                let report = measure("esp-vxlan", &mut rt, &o, &[ENCRYPT_NODE, "vxlan4-encap"])?;
                let wall_s = t0.elapsed().as_secs_f64();
                let (cpu1, wait1) = schedstat();
                Ok(WorkerRun {
                    report,
                    wall_s,
                    on_cpu_s: cpu1.saturating_sub(cpu0) as f64 / 1e9,
                    wait_s: wait1.saturating_sub(wait0) as f64 / 1e9,
                })
            })
        })
        .collect();
    let mut runs = Vec::new();
    let mut pps = 0.0;
    for h in handles {
        let r = h.join().map_err(|_| anyhow::anyhow!("worker panicked"))??;
        pps += r.report.packets as f64 / r.report.seconds;
        runs.push(r);
    }
    Ok((runs, pps))
}

/// Packets per second of CPU time the workers actually got (0 when the kernel does not say).
fn per_cpu_second(runs: &[WorkerRun]) -> f64 {
    let cpu: f64 = runs.iter().map(|r| r.on_cpu_s).sum();
    let packets: u64 = runs.iter().map(|r| r.report.packets).sum();
    if cpu > 0.0 {
        packets as f64 / cpu
    } else {
        0.0
    }
}

fn vxlan_report(
    name: &str,
    workers: usize,
    o: &RunOptions,
    compare_one: bool,
) -> anyhow::Result<ScenarioReport> {
    let (runs, pps) = vxlan_run(workers, o)?;
    let reports: Vec<&ScenarioReport> = runs.iter().map(|r| &r.report).collect();
    let mut details = BTreeMap::new();
    details.insert("workers".into(), workers.to_string());
    details.insert(
        "aggregate_gbit_per_s_of_frames".into(),
        format!("{:.2}", pps * 1400.0 * 8.0 / 1e9),
    );
    let mut report = reports[0].clone();
    report.scenario = name.into();
    report.packets = reports.iter().map(|r| r.packets).sum();
    report.mpps = pps / 1e6;
    report.cycles_per_packet =
        reports.iter().map(|r| r.cycles_per_packet).sum::<f64>() / reports.len() as f64;
    for (w, r) in runs.iter().enumerate() {
        details.insert(format!("worker{w}_mpps"), format!("{:.3}", r.report.mpps));
        // The share of the run the worker spent on its CPU, and what it waited for one
        // (other processes on the machine): the part of any shortfall that is not ours.
        details.insert(
            format!("worker{w}_on_cpu_share"),
            format!("{:.2}", r.on_cpu_s / r.wall_s),
        );
        details.insert(
            format!("worker{w}_runqueue_wait_s"),
            format!("{:.3}", r.wait_s),
        );
    }
    if compare_one {
        // One worker in the same run, for the scaling ratio.
        let (one_runs, one) = vxlan_run(1, o)?;
        details.insert("one_worker_mpps".into(), format!("{:.3}", one / 1e6));
        details.insert("scaling_vs_one_worker".into(), format!("{:.2}", pps / one));
        details.insert(
            "one_worker_on_cpu_share".into(),
            format!("{:.2}", one_runs[0].on_cpu_s / one_runs[0].wall_s),
        );
        // Throughput per CPU-second the workers got, two workers against one: 1.0 means
        // the workers slow each other down not at all once on a CPU (no shared state, no
        // cache-line traffic); below 1, sharing a physical core or memory.
        let (two_eff, one_eff) = (per_cpu_second(&runs), per_cpu_second(&one_runs));
        if one_eff > 0.0 {
            details.insert(
                "packets_per_cpu_second_2w_vs_1w".into(),
                format!("{:.2}", two_eff / one_eff),
            );
        }
        // What the machine allows: the same raw work on one and on two pinned threads.
        let (aes, int) = machine_scaling(o.cpu);
        details.insert("machine_scaling_raw_seal".into(), format!("{aes:.2}"));
        details.insert("machine_scaling_integer".into(), format!("{int:.2}"));
    }
    report.details.append(&mut details);
    let baseline = raw_baseline(1400 - 34 + 50, false);
    report.baseline = Some(format!("raw seal ({}) in the same run", baseline.0));
    report.baseline_cycles_per_packet = Some(baseline.1);
    report.ratio = Some(report.nodes.get(ENCRYPT_NODE).copied().unwrap_or(0.0) / baseline.1);
    Ok(report)
}

/// How two threads pinned to `cpu` and the next CPU scale against one, for the raw seal of a
/// 1400-byte frame's ESP payload (AES and carry-less multiply units) and for a plain integer
/// loop: the ceiling the machine puts on `esp-vxlan-2w`. On a VM whose two vCPUs are hyperthreads
/// of one core, or share it with other work, the ratios fall short of 2 whatever the graph does.
/// Best of three tries each.
fn machine_scaling(cpu: usize) -> (f64, f64) {
    fn seal_work() {
        let m = keymat();
        let Ok(c) = m.cipher(Backend::DEFAULT) else {
            return;
        };
        let mut d = vec![0x5au8; 1416];
        for i in 0..60_000u32 {
            let mut n = [0u8; 12];
            n[..4].copy_from_slice(&i.to_be_bytes());
            std::hint::black_box(c.seal(&n, &[0; 8], &mut d));
        }
    }
    fn int_work() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..200_000_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        std::hint::black_box(x);
    }
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = |threads: usize, work: fn()| -> f64 {
        let t0 = std::time::Instant::now();
        let hs: Vec<_> = (0..threads)
            .map(|t| {
                std::thread::spawn(move || {
                    let _ = vpg_graph::sys::pin_current_thread((cpu + t) % cpus);
                    work();
                })
            })
            .collect();
        for h in hs {
            let _ = h.join();
        }
        threads as f64 / t0.elapsed().as_secs_f64()
    };
    let best = |threads: usize, work: fn()| (0..3).map(|_| run(threads, work)).fold(0.0, f64::max);
    let aes = best(2, seal_work) / best(1, seal_work);
    let int = best(2, int_work) / best(1, int_work);
    (aes, int)
}

/// `esp-vxlan-1w`.
pub fn vxlan_1w(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    vxlan_report("esp-vxlan-1w", 1, o, false)
}

/// `esp-vxlan-2w`: two workers, and one in the same run for the ratio.
pub fn vxlan_2w(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    vxlan_report("esp-vxlan-2w", 2, o, true)
}
