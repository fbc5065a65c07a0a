//! `afpacket-forward`: UDP 64-byte frames and TCP between two hosts in their own network
//! namespaces, routed by the Linux kernel (the baseline) and then by vpgd on AF_PACKET rings, in
//! one run; and vpgd's CPU use when idle. Needs root, iproute2, ethtool and iperf3
//! (`scripts/setup.sh`).

use crate::report::ScenarioReport;
use crate::RunOptions;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};
use vpg_io::netns::{self, NetNs};
use vpgd::config::Config;
use vpgd::service::Service;

const SECONDS: u32 = 4;

struct Lab {
    a: NetNs,
    b: NetNs,
    r: NetNs,
    ra: String,
    rb: String,
}

fn lab() -> anyhow::Result<Lab> {
    if let Some(why) = netns::unavailable() {
        bail!("afpacket-forward needs network namespaces: {why}");
    }
    if netns::run("iperf3", &["--version"]).is_err() {
        bail!("afpacket-forward needs iperf3 (run scripts/setup.sh)");
    }
    let err = anyhow::Error::msg;
    let (a, b, r) = (
        NetNs::new("bha").map_err(err)?,
        NetNs::new("bhb").map_err(err)?,
        NetNs::new("br").map_err(err)?,
    );
    let (ha, ra, hb, rb) = (
        netns::unique("ha"),
        netns::unique("ra"),
        netns::unique("hb"),
        netns::unique("rb"),
    );
    netns::veth(&ha, &a, &ra, &r).map_err(err)?;
    netns::veth(&hb, &b, &rb, &r).map_err(err)?;
    for (ns, dev, addr, gw) in [
        (&a, &ha, "10.0.1.2/24", "10.0.1.1"),
        (&b, &hb, "10.0.2.2/24", "10.0.2.1"),
    ] {
        ns.exec(&["ip", "addr", "add", addr, "dev", dev])
            .map_err(err)?;
        ns.exec(&["ip", "route", "add", "default", "via", gw])
            .map_err(err)?;
        ns.exec(&["ethtool", "-K", dev, "tso", "off", "gso", "off"])
            .map_err(err)?;
    }
    Ok(Lab { a, b, r, ra, rb })
}

/// Runs iperf3 from host A to host B; returns (packets or bytes received per second, JSON).
fn iperf(l: &Lab, udp: bool) -> anyhow::Result<f64> {
    let mut server = Command::new("ip")
        .args([
            "netns", "exec", &l.b.name, "iperf3", "-s", "-1", "-p", "5201",
        ])
        .stdout(std::process::Stdio::null())
        .spawn()?;
    std::thread::sleep(Duration::from_millis(300));
    let t = SECONDS.to_string();
    let mut args = vec![
        "netns", "exec", &l.a.name, "iperf3", "-c", "10.0.2.2", "-p", "5201", "-t", &t, "--json",
    ];
    if udp {
        // 22 bytes of payload: 64-byte Ethernet frames (14 + 20 + 8 + 22).
        args.extend(["-u", "-b", "0", "-l", "22"]);
    }
    let out = Command::new("ip").args(&args).output()?;
    let _ = server.wait();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).context("iperf3 output")?;
    let end = &v["end"];
    Ok(if udp {
        let s = &end["sum"];
        let sent = s["packets"].as_f64().unwrap_or(0.0);
        let lost = s["lost_packets"].as_f64().unwrap_or(0.0);
        (sent - lost) / s["seconds"].as_f64().unwrap_or(1.0).max(0.001)
    } else {
        end["sum_received"]["bits_per_second"]
            .as_f64()
            .unwrap_or(0.0)
    })
}

/// CPU seconds this process has used.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let f: Vec<&str> = s
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// The scenario.
pub fn afpacket_forward(o: &RunOptions) -> anyhow::Result<ScenarioReport> {
    let l = lab()?;
    let err = anyhow::Error::msg;
    // Baseline: the kernel of the router namespace forwards.
    l.r.exec(&["ip", "addr", "add", "10.0.1.1/24", "dev", &l.ra])
        .map_err(err)?;
    l.r.exec(&["ip", "addr", "add", "10.0.2.1/24", "dev", &l.rb])
        .map_err(err)?;
    l.r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        .map_err(err)?;
    l.a.exec(&["ping", "-c", "2", "-W", "1", "10.0.2.2"])
        .map_err(err)?;
    let kernel_udp = iperf(&l, true)?;
    let kernel_tcp = iperf(&l, false)?;
    l.r.exec(&["ip", "addr", "flush", "dev", &l.ra])
        .map_err(err)?;
    l.r.exec(&["ip", "addr", "flush", "dev", &l.rb])
        .map_err(err)?;
    l.r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"])
        .map_err(err)?;

    // vpgd, in this process, on one worker pinned to `o.cpu`.
    let dir = std::env::temp_dir().join(netns::unique("vpg-bench-"));
    std::fs::create_dir_all(&dir)?;
    let cfg = Config::parse(&format!(
        "[workers]\ncount = 1\ncpus = [{cpu}]\n[buffers]\nper_worker = 16384\nhuge_pages = {huge}\n[api]\nsocket = \"{d}/api.sock\"\n\
         [stats]\nsegment = \"{d}/stats\"\n[[interface]]\nhost_if = \"{ra}\"\naddresses = [\"10.0.1.1/24\"]\n\
         [[interface]]\nhost_if = \"{rb}\"\naddresses = [\"10.0.2.1/24\"]\n",
        cpu = o.cpu,
        huge = o.huge_pages,
        d = dir.display(),
        ra = l.ra,
        rb = l.rb
    ))?;
    let r_name = l.r.name.clone();
    let svc = std::thread::spawn(move || -> anyhow::Result<Service> {
        vpg_io::afpacket::enter_netns(&r_name)?;
        vpgd::daemon::start_service(&cfg)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("vpgd thread panicked"))??;
    l.a.exec(&["ping", "-c", "3", "-i", "0.2", "-W", "1", "10.0.2.2"])
        .map_err(err)?;
    let stats = svc.with(|dp| dp.workers().stats());
    stats.iter().for_each(|s| s.clear_runtime());
    let t0 = Instant::now();
    let vpg_udp = iperf(&l, true)?;
    let udp_secs = t0.elapsed().as_secs_f64();
    let (rows, pages) = svc.with(|dp| {
        (
            vpg_graph::show::runtime_rows(dp.layout(), &dp.workers().stats()),
            dp.workers().backing().to_string(),
        )
    });
    let vpg_tcp = iperf(&l, false)?;

    // Idle: no traffic for 10 s; what does vpgd's worker cost?
    std::thread::sleep(Duration::from_millis(500));
    let c0 = cpu_seconds();
    let i0 = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let idle_pct = (cpu_seconds() - c0) / i0.elapsed().as_secs_f64() * 100.0;
    svc.with(|dp| dp.shutdown());
    let _ = std::fs::remove_dir_all(&dir);

    let forwarded = rows
        .iter()
        .filter(|r| r.node == "ip4-rewrite")
        .map(|r| r.vectors)
        .sum::<u64>()
        .max(1);
    // Idle polls of the input node are not packet work.
    let fig = crate::report::node_figures(&rows, forwarded, |r| r.vectors > 0);
    let mut details = BTreeMap::new();
    details.insert("udp64_pps_vpg".into(), format!("{vpg_udp:.0}"));
    details.insert("udp64_pps_kernel".into(), format!("{kernel_udp:.0}"));
    details.insert("tcp_gbps_vpg".into(), format!("{:.2}", vpg_tcp / 1e9));
    details.insert("tcp_gbps_kernel".into(), format!("{:.2}", kernel_tcp / 1e9));
    details.insert(
        "tcp_ratio".into(),
        format!("{:.2}", vpg_tcp / kernel_tcp.max(1.0)),
    );
    details.insert("idle_cpu_percent_10s".into(), format!("{idle_pct:.2}"));
    details.insert(
        "ratio_is".into(),
        "UDP 64-byte packets/s through vpgd divided by the kernel's (higher is better)".into(),
    );
    Ok(ScenarioReport {
        scenario: "afpacket-forward".into(),
        packets: forwarded,
        seconds: udp_secs,
        mpps: vpg_udp / 1e6,
        cycles_per_packet: fig.cycles_per_packet,
        vectors_per_call: fig.vectors_per_call,
        nodes: fig.nodes,
        buffer_pages: pages,
        details,
        baseline: Some("Linux kernel IPv4 forwarding between the same namespaces, same run".into()),
        baseline_cycles_per_packet: None,
        ratio: Some(vpg_udp / kernel_udp.max(1.0)),
    })
}
