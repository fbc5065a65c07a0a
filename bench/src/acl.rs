//! The ACL scenarios: `acl-classify-<set>` (pure classification of a ClassBench trace, with
//! DPDK's `dpdk-test-acl` run on the same files in the same run as the baseline),
//! `acl-stateless-<set>` (the `acl-in-ip4` node in the forwarding graph on frames built from the
//! trace) and `acl-stateful-10k-flows` (reflective session hits).

use crate::forward::{forwarding_runtime_with_flows, measure};
use crate::report::ScenarioReport;
use crate::RunOptions;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;
use vpg_acl::classbench::{data_dir, read_rules, read_trace};
use vpg_acl::classify::{linear, Classifier};
use vpg_acl::{Acl, AclControl, Action, PacketKey, PortRange, Rule};
use vpg_graph::pg::{PgInput, Stream, PG_INPUT};
use vpg_graph::wire::Ipv4Cidr;
use vpg_graph::{ArcId, ConfigSet, FeatureConfig, Runtime};

fn classbench_dir() -> anyhow::Result<PathBuf> {
    data_dir(Path::new(env!("CARGO_MANIFEST_DIR"))).context(
        "ClassBench data not found: set VPG_CLASSBENCH_DIR or keep shared/bench/classbench beside the checkout",
    )
}

/// Classification passes over the 1M-header trace.
const PASSES: usize = 3;

/// `acl-classify-<set>`.
pub fn classify(set: &'static str, o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let pinned = vpg_graph::sys::pin_current_thread(o.cpu);
    let dir = classbench_dir()?;
    let rules_path = dir.join(format!("{set}.rules"));
    let rules = read_rules(&rules_path)?;
    let trace = read_trace(&dir.join(format!("{set}.trace.gz")), usize::MAX)?;
    let t0 = Instant::now();
    let c = Classifier::compile(&rules);
    let compile = t0.elapsed();
    let mut out = vec![0u32; 256];
    // Warm-up pass, then PASSES measured passes in bursts of 256 (dpdk-test-acl's tracestep).
    let mut check = 0u64;
    for chunk in trace.chunks(256) {
        c.classify_batch(chunk, &mut out);
        check = check.wrapping_add(out[0] as u64);
    }
    let t0 = Instant::now();
    let c0 = vpg_graph::sys::rdtsc();
    for _ in 0..PASSES {
        for chunk in trace.chunks(256) {
            c.classify_batch(chunk, &mut out[..chunk.len()]);
            check = check.wrapping_add(out[0] as u64);
        }
    }
    let cycles = vpg_graph::sys::rdtsc() - c0;
    let seconds = t0.elapsed().as_secs_f64();
    let packets = (trace.len() * PASSES) as u64;
    let ours = cycles as f64 / packets as f64;
    // The naive reference on a sample (it is 100x slower).
    let sample = &trace[..trace.len().min(20_000)];
    let l0 = vpg_graph::sys::rdtsc();
    for k in sample {
        check = check.wrapping_add(linear::first_match(&rules, k) as u64);
    }
    let linear_cpp = (vpg_graph::sys::rdtsc() - l0) as f64 / sample.len() as f64;
    let mut details = BTreeMap::new();
    details.insert("rules".into(), rules.len().to_string());
    details.insert(
        "compile_ms".into(),
        format!("{:.1}", compile.as_secs_f64() * 1e3),
    );
    details.insert(
        "classifier_mib".into(),
        format!("{:.1}", c.shape().bytes as f64 / 1048576.0),
    );
    details.insert(
        "linear_scan_cycles_per_packet".into(),
        format!("{linear_cpp:.0}"),
    );
    details.insert("checksum".into(), (check % 1000).to_string());
    details.insert(
        "pinned_cpu".into(),
        pinned.map_or_else(|e| format!("not pinned: {e}"), |()| o.cpu.to_string()),
    );
    let (baseline, base_cpp) = match dpdk_best(&rules_path, &dir, set, trace.len(), o.cpu) {
        Ok((alg, cpp, mpps)) => {
            details.insert("dpdk_mpps".into(), format!("{mpps:.1}"));
            (
                Some(format!("dpdk-test-acl best ({alg}), same run")),
                Some(cpp),
            )
        }
        Err(e) => {
            details.insert("dpdk".into(), format!("not run: {e:#}"));
            (None, None)
        }
    };
    let mut nodes = BTreeMap::new();
    nodes.insert("classifier".into(), ours);
    Ok(ScenarioReport {
        scenario: format!("acl-classify-{set}"),
        packets,
        seconds,
        mpps: packets as f64 / seconds / 1e6,
        cycles_per_packet: ours,
        vectors_per_call: 256.0,
        nodes,
        buffer_pages: "none (no buffers)".into(),
        details,
        ratio: base_cpp.map(|b| ours / b),
        baseline,
        baseline_cycles_per_packet: base_cpp,
    })
}

/// Runs `dpdk-test-acl` with the scalar, sse and avx2 methods on the same files; returns the
/// best (method, cycles per packet, Mpps).
fn dpdk_best(
    rules: &Path,
    dir: &Path,
    set: &str,
    lines: usize,
    cpu: usize,
) -> anyhow::Result<(String, f64, f64)> {
    let bin = "dpdk-test-acl";
    if Command::new(bin).arg("--help").output().is_err() {
        bail!("{bin} is not installed (scripts/bench.sh installs Debian's dpdk-dev)");
    }
    // dpdk-test-acl reads a plain-text trace: unpack ours once.
    let plain = std::env::temp_dir().join(format!("vpg-bench-{set}.trace"));
    if !plain.exists() {
        let mut gz = vpg_acl::classbench::open(&dir.join(format!("{set}.trace.gz")))?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(&plain)?);
        std::io::copy(&mut gz, &mut f)?;
        f.flush()?;
    }
    let mut best: Option<(String, f64, f64)> = None;
    for alg in ["scalar", "sse", "avx2"] {
        let o = Command::new(bin)
            .args([
                "-l",
                &cpu.to_string(),
                "--no-pci",
                "--no-huge",
                "-m",
                "1024",
                "--log-level=0",
                "--",
            ])
            .arg(format!("--rulesf={}", rules.display()))
            .arg(format!("--tracef={}", plain.display()))
            .arg(format!("--tracenum={lines}"))
            .args(["--verbose=0", "--iter=3", &format!("--alg={alg}")])
            .output()
            .with_context(|| format!("running {bin}"))?;
        let text = String::from_utf8_lossy(&o.stdout);
        // "… 93471352 cycles (0.04 sec), 93.47 cycles/pkt, 27816009.34 pkt/sec"
        let Some(line) = text.lines().find(|l| l.contains("cycles/pkt")) else {
            continue; // a method this CPU lacks
        };
        let num_before = |tag: &str| -> Option<f64> {
            let i = line.find(tag)?;
            line[..i]
                .split_whitespace()
                .last()?
                .trim_matches(',')
                .parse()
                .ok()
        };
        if let (Some(cpp), Some(pps)) = (num_before("cycles/pkt"), num_before("pkt/sec")) {
            if best.as_ref().is_none_or(|b| cpp < b.1) {
                best = Some((alg.to_string(), cpp, pps / 1e6));
            }
        }
    }
    best.context("dpdk-test-acl printed no result")
}

/// A 64-byte Ethernet/IPv4 frame carrying `k` (ports, or ICMP type/code, in the first L4 bytes).
pub fn frame(k: &PacketKey) -> Vec<u8> {
    let mut f = vec![0u8; 64];
    f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
    f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 9]);
    f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    let ip = &mut f[14..34];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&50u16.to_be_bytes());
    ip[8] = 64;
    ip[9] = k.proto;
    ip[12..16].copy_from_slice(&k.src.to_be_bytes());
    ip[16..20].copy_from_slice(&k.dst.to_be_bytes());
    let mut s = 0u32;
    for c in ip.chunks(2) {
        s += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    while s > 0xffff {
        s = (s & 0xffff) + (s >> 16);
    }
    ip[10..12].copy_from_slice(&(!(s as u16)).to_be_bytes());
    if k.proto == 1 {
        f[34] = k.sport as u8;
        f[35] = k.dport as u8;
    } else {
        f[34..36].copy_from_slice(&k.sport.to_be_bytes());
        f[36..38].copy_from_slice(&k.dport.to_be_bytes());
        f[46] = 0x50; // TCP data offset
    }
    f
}

/// The forwarding graph with a default route out, ACL list `acl` on pg0's input, and `images`.
pub fn acl_runtime(
    o: &RunOptions,
    acl: Acl,
    images: Vec<Vec<u8>>,
) -> anyhow::Result<(Runtime, BTreeMap<String, String>)> {
    let (mut rt, mut details) = forwarding_runtime_with_flows(1, o.huge_pages, 16384, 1)?;
    // Replace the forwarding scenario's table with one whose default route covers every trace
    // destination, and add the ACL feature.
    let ip4 = crate::forward::default_route_tables()?;
    let mut ctl = AclControl::new(1);
    let rules = acl.rules.len();
    let id = acl.id;
    let t0 = Instant::now();
    ctl.add_replace(acl)?;
    ctl.set_interface(0, true, vec![id])?;
    details.insert(
        "acl_compile_ms".into(),
        format!("{:.1}", t0.elapsed().as_secs_f64() * 1e3),
    );
    details.insert("rules".into(), rules.to_string());
    let mut features = FeatureConfig::default();
    let p = rt
        .layout()
        .feature_position(ArcId::Ip4Unicast, vpg_acl::AclIn::NAME)
        .context("acl-in-ip4 in the graph")?;
    features.enable(ArcId::Ip4Unicast, 0, p);
    let pg = rt.node_mut::<PgInput>(PG_INPUT).context("pg-input")?;
    pg.clear();
    details.insert("flows".into(), images.len().to_string());
    pg.add_stream(Stream::new("acl", 0, images));
    rt.reconfigure(Arc::new(
        ConfigSet::new()
            .with(ip4.tables())
            .with(ctl.tables())
            .with(Arc::new(features)),
    ));
    Ok((rt, details))
}

/// `acl-stateless-<set>`: the set's rules (all permit, so packets flow) on the input of pg0.
pub fn stateless(set: &'static str, o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let pinned = vpg_graph::sys::pin_current_thread(o.cpu);
    let dir = classbench_dir()?;
    let keys = read_rules(&dir.join(format!("{set}.rules")))?;
    let trace = read_trace(&dir.join(format!("{set}.trace.gz")), 65_536)?;
    let rules = keys.iter().map(rule_of).collect::<Vec<_>>();
    let acl = Acl {
        id: 1,
        tag: set.into(),
        rules,
    };
    let images = trace.iter().map(frame).collect();
    let (mut rt, mut details) = acl_runtime(o, acl, images)?;
    details.insert(
        "pinned_cpu".into(),
        pinned.map_or_else(|e| format!("not pinned: {e}"), |()| o.cpu.to_string()),
    );
    let r = measure(
        &format!("acl-stateless-{set}"),
        &mut rt,
        o,
        &[vpg_acl::AclIn::NAME],
    )?;
    Ok(ScenarioReport {
        details: details.into_iter().chain(r.details.clone()).collect(),
        ..r
    })
}

/// A ClassBench rule as a permit rule (ClassBench's wildcard protocol with port ranges is not a
/// valid VPP rule, so such rules keep their ports only for TCP/UDP).
fn rule_of(k: &vpg_acl::rule::RuleKey) -> Rule {
    let cidr = |(lo, hi): (u32, u32)| {
        let len = (hi ^ lo).leading_zeros() as u8;
        let len = if hi ^ lo == 0 { 32 } else { len };
        Ipv4Cidr::new(std::net::Ipv4Addr::from_bits(lo), len).expect("len <= 32")
    };
    let proto = k.proto.unwrap_or(0);
    let ports = matches!(proto, 6 | 17 | 132);
    Rule {
        action: Action::Permit,
        src: cidr(k.src),
        dst: cidr(k.dst),
        proto,
        sport: if ports {
            PortRange {
                lo: k.sport.0,
                hi: k.sport.1,
            }
        } else {
            PortRange::ANY
        },
        dport: if ports {
            PortRange {
                lo: k.dport.0,
                hi: k.dport.1,
            }
        } else {
            PortRange::ANY
        },
        tcp_flags_value: 0,
        tcp_flags_mask: 0,
    }
}

/// `acl-stateful-10k-flows`: permit+reflect on pg0's input, 10k UDP flows; after the warm-up
/// every packet hits its session.
pub fn stateful(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let pinned = vpg_graph::sys::pin_current_thread(o.cpu);
    let acl = Acl {
        id: 1,
        tag: "reflect".into(),
        rules: vec![Rule::any(Action::PermitReflect)],
    };
    let images = (0..10_000u32)
        .map(|i| {
            frame(&PacketKey {
                src: 0xc000_0202,
                dst: 0x0a00_0000 + i,
                sport: 1024 + (i % 50_000) as u16,
                dport: 53,
                proto: 17,
                ..Default::default()
            })
        })
        .collect();
    let (mut rt, mut details) = acl_runtime(o, acl, images)?;
    details.insert(
        "pinned_cpu".into(),
        pinned.map_or_else(|e| format!("not pinned: {e}"), |()| o.cpu.to_string()),
    );
    let r = measure(
        "acl-stateful-10k-flows",
        &mut rt,
        o,
        &[vpg_acl::AclIn::NAME],
    )?;
    let rows = vpg_graph::show::error_rows(rt.layout(), std::slice::from_ref(rt.stats()));
    let get = |n: &str| {
        rows.iter()
            .find(|e| e.node == vpg_acl::AclIn::NAME && e.name == n)
            .map_or(0, |e| e.count)
    };
    details.insert("session_hits".into(), get("session-hit").to_string());
    details.insert(
        "sessions_created".into(),
        get("session-created").to_string(),
    );
    Ok(ScenarioReport {
        details: details.into_iter().chain(r.details.clone()).collect(),
        ..r
    })
}
