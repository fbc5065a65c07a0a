//! vpg's benchmark scenarios: each builds a graph, generates traffic with pg, runs on one pinned
//! core after a warm-up and reads the runtime counters (TSC clocks per packet per node).

pub mod acl;
pub mod afpacket;
pub mod esp;
pub mod forward;
pub mod nat44;
pub mod render;
pub mod report;
pub mod vxlan;

pub use report::ScenarioReport;

/// A named scenario.
pub struct Scenario {
    /// Name given on the command line.
    pub name: &'static str,
    /// What it measures.
    pub about: &'static str,
    /// Runs it.
    pub run: fn(&RunOptions) -> anyhow::Result<ScenarioReport>,
}

/// How long and where to run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Packets to send before measuring.
    pub warmup_packets: u64,
    /// Packets to measure.
    pub packets: u64,
    /// CPU to pin to.
    pub cpu: usize,
    /// Buffer memory on huge pages when offered.
    pub huge_pages: bool,
    /// Distinct destinations the generator cycles through (ip4-forward scenarios).
    pub flows: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            warmup_packets: 2_000_000,
            packets: 20_000_000,
            cpu: 1,
            huge_pages: true,
            flows: forward::FLOWS,
        }
    }
}

/// Every scenario.
pub fn scenarios() -> Vec<Scenario> {
    vec![
        Scenario {
            name: "ip4-forward-1-route",
            about: "UDP/IPv4 64-byte frames forwarded by ethernet-input, ip4-input, ip4-lookup, ip4-rewrite with one /8 route",
            run: forward::one_route,
        },
        Scenario {
            name: "ip4-forward-10k-routes",
            about: "the same with 10k random /8-/32 routes, traffic to random covered destinations",
            run: forward::ten_k_routes,
        },
        Scenario {
            name: "ip4-forward-1m-routes",
            about: "the same with 1M random /8-/32 routes; runs the 1-route case in the same process as its baseline",
            run: forward::one_m_routes,
        },
        Scenario {
            name: "vxlan-encap",
            about: "64-byte pod frames routed into one VXLAN tunnel, 65k flows: vxlan4-encap's clocks",
            run: vxlan::encap_1,
        },
        Scenario {
            name: "vxlan-encap-1000-tunnels",
            about: "the same spread over 1,000 tunnels",
            run: vxlan::encap_1000,
        },
        Scenario {
            name: "vxlan-decap",
            about: "VXLAN with 64-byte inner frames from one tunnel to a local pod, 4k flows: vxlan4-decap's clocks",
            run: vxlan::decap_1,
        },
        Scenario {
            name: "vxlan-decap-1000-tunnels",
            about: "the same from 1,000 tunnels in turn (the last-tunnel cache misses every packet)",
            run: vxlan::decap_1000,
        },
        Scenario {
            name: "esp-encrypt-64",
            about: "64-byte pod frames out an uplink through esp4-encrypt (transport, AES-128-GCM): its clocks vs the raw seal of the fastest crate in the same run",
            run: esp::encrypt_64,
        },
        Scenario {
            name: "esp-encrypt-1400",
            about: "the same with 1400-byte frames",
            run: esp::encrypt_1400,
        },
        Scenario {
            name: "esp-decrypt-1400",
            about: "ESP tunnel-mode packets carrying 1400-byte IPv4 to a pod through esp4-decrypt: its clocks vs the raw open in the same run",
            run: esp::decrypt_1400,
        },
        Scenario {
            name: "esp-vxlan-1w",
            about: "1400-byte pod frames into VXLAN protected by ESP transport, one worker: Gbit/s, esp4-encrypt clocks vs raw seal",
            run: esp::vxlan_1w,
        },
        Scenario {
            name: "esp-vxlan-2w",
            about: "the same on two workers (one SA each, no handoff), with one worker in the same run for the scaling ratio",
            run: esp::vxlan_2w,
        },
        Scenario {
            name: "afpacket-forward",
            about: "iperf3 UDP 64-byte and TCP between two namespaces through vpgd's AF_PACKET rings vs the kernel, same run; vpgd idle CPU over 10 s (root)",
            run: afpacket::afpacket_forward,
        },
        Scenario {
            name: "acl-classify-acl1_1k",
            about: "classifier alone on ClassBench acl1_1k (925 rules, 1M headers), dpdk-test-acl best in the same run",
            run: |o| acl::classify("acl1_1k", o),
        },
        Scenario {
            name: "acl-classify-acl1_10k",
            about: "the same on acl1_10k (9,749 rules)",
            run: |o| acl::classify("acl1_10k", o),
        },
        Scenario {
            name: "acl-classify-fw1_1k",
            about: "the same on fw1_1k (842 rules)",
            run: |o| acl::classify("fw1_1k", o),
        },
        Scenario {
            name: "acl-classify-fw1_10k",
            about: "the same on fw1_10k (9,761 rules)",
            run: |o| acl::classify("fw1_10k", o),
        },
        Scenario {
            name: "acl-stateless-acl1_1k",
            about: "acl-in-ip4 in the forwarding graph with acl1_1k's rules, frames from its trace",
            run: |o| acl::stateless("acl1_1k", o),
        },
        Scenario {
            name: "acl-stateless-acl1_10k",
            about: "the same with acl1_10k",
            run: |o| acl::stateless("acl1_10k", o),
        },
        Scenario {
            name: "acl-stateless-fw1_1k",
            about: "the same with fw1_1k",
            run: |o| acl::stateless("fw1_1k", o),
        },
        Scenario {
            name: "acl-stateless-fw1_10k",
            about: "the same with fw1_10k",
            run: |o| acl::stateless("fw1_10k", o),
        },
        Scenario {
            name: "acl-stateful-10k-flows",
            about: "acl-in-ip4 with permit+reflect: 10k UDP flows, every measured packet a session hit",
            run: acl::stateful,
        },
        Scenario {
            name: "nat44-in2out-64k-sessions",
            about: "nat44-in2out (SNAT on the uplink): 64-byte UDP, 64k sessions, every measured packet a session hit",
            run: |o| nat44::in2out(std::env::var("NATFLOWS").ok().and_then(|v| v.parse().ok()).unwrap_or(65_536), o),
        },
        Scenario {
            name: "nat44-in2out-1m-sessions",
            about: "the same with 1M sessions",
            run: |o| nat44::in2out(1 << 20, o),
        },
        Scenario {
            name: "nat44-out2in-64k-sessions",
            about: "nat44-out2in: the replies of 64k SNAT sessions arriving on the uplink",
            run: nat44::out2in,
        },
        Scenario {
            name: "nat44-session-setup",
            about: "nat44-in2out creating a session for every packet (2M new flows): new sessions per second on one core",
            run: nat44::setup,
        },
        Scenario {
            name: "render-full",
            about: "renderer: full render of node-0 (1k pods/100 policies, 10k pods/1k policies, 100 nodes) and its ACL change set; ms and RSS in details",
            run: render::full,
        },
        Scenario {
            name: "render-event",
            about: "renderer: one pod added/removed (remote, local egress-isolated), relabelled, one policy changed at both scales, each with its ACL change set; µs in details",
            run: render::event,
        },
    ]
}
