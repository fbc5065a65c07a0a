//! `vpg-demo`: a two-node cluster on one machine, built from network namespaces, checked on
//! real traffic, and removed again (docs/demo.md).
//!
//! ```text
//!  pods (netns) ═veth═ node n1 (netns: vpgd + vpg-agent) ─uplink─┐
//!                                                                 ├─ br0 in "internet" (netns):
//!  pods (netns) ═veth═ node n2 (netns: vpgd + vpg-agent) ─uplink─┘   192.168.100.254, 203.0.113.1
//! ```
//!
//! Pods are created by `vpg-cni` exactly as a runtime runs it; each agent reflects the cluster
//! from the same manifest directory into its own embedded store; the demo then runs a
//! reachability matrix (policies, the overlay, a service, SNAT), prints vpg's tables, and
//! cleans up on every exit path. The exit status is non-zero when any expectation fails.

mod capture;
mod cleanup;
mod cluster;
mod traffic;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::Value;

use traffic::{Cell, Probe};

/// A node of the demo: its name in the manifests, its addresses, and where its files are.
struct Node {
    name: String,
    netns: String,
    ip: String,
    cidr: String,
    dir: PathBuf,
    /// The agent's log.
    log: PathBuf,
}

/// The binaries the demo drives.
struct Bins {
    vpgd: PathBuf,
    vpgctl: PathBuf,
    agent: PathBuf,
    cni: PathBuf,
}

const UNDERLAY_GW: &str = "192.168.100.254";
/// The pods' and the VXLAN tunnels' MTU with encryption: ESP's 37 bytes around the 1450-byte
/// VXLAN packet would not fit the underlay's 1500.
const ENCRYPTED_MTU: u32 = 1400;
const INTERNET: &str = "203.0.113.1";

fn main() {
    let t0 = Instant::now();
    let code = match run() {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("vpg-demo: {e:#}");
            2
        }
    };
    // Every path out of `run` has cleaned up already (its guard); report and leave.
    println!(
        "\ntotal time {:.1} s (with the build check)",
        t0.elapsed().as_secs_f64()
    );
    std::process::exit(code);
}

fn section(title: &str) {
    println!("\n=== {title} ===");
}

/// Runs a command and returns its stdout, or an error with its stderr.
fn sh(cmd: &str, args: &[&str]) -> Result<String> {
    let o = Command::new(cmd)
        .args(args)
        .output()
        .with_context(|| format!("running {cmd} (scripts/setup.sh installs the tools)"))?;
    if !o.status.success() {
        bail!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// Finds vpgd, vpgctl, vpg-agent and vpg-cni beside this binary; under cargo (or when one is
/// missing) builds them first with this binary's profile, so they are never stale.
fn binaries() -> Result<Bins> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("binary directory")?.to_path_buf();
    let bins = Bins {
        vpgd: dir.join("vpgd"),
        vpgctl: dir.join("vpgctl"),
        agent: dir.join("vpg-agent"),
        cni: dir.join("vpg-cni"),
    };
    let all = [&bins.vpgd, &bins.vpgctl, &bins.agent, &bins.cni];
    let cargo = std::env::var("CARGO").ok();
    if cargo.is_some() || all.iter().any(|b| !b.exists()) {
        let mut c = Command::new(cargo.unwrap_or_else(|| "cargo".into()));
        c.args([
            "build",
            "-q",
            "-p",
            "vpgd",
            "-p",
            "vpg-agent",
            "-p",
            "vpg-cni",
        ]);
        if dir.ends_with("release") {
            c.arg("--release");
        }
        eprintln!("building vpgd, vpgctl, vpg-agent, vpg-cni ...");
        let ok = c.status().map(|s| s.success()).unwrap_or(false);
        if !ok || all.iter().any(|b| !b.exists()) {
            bail!(
                "cannot build vpgd, vpg-agent and vpg-cni next to {}",
                exe.display()
            );
        }
    }
    Ok(bins)
}

/// Creates and registers a network namespace.
fn netns(name: &str) -> Result<String> {
    cleanup::netns(name).map_err(|e| anyhow!(e))?;
    sh("ip", &["-n", name, "link", "set", "lo", "up"])?;
    Ok(name.to_string())
}

/// `ip -n NS ...`
fn ipn(ns: &str, args: &[&str]) -> Result<String> {
    let mut a = vec!["-n", ns];
    a.extend_from_slice(args);
    sh("ip", &a)
}

/// Starts `prog` inside `ns` (`ip netns exec` replaces itself with it), stderr to `log`.
fn spawn_in(name: &str, ns: &str, prog: &Path, args: &[&str], log: &Path) -> Result<()> {
    cleanup::spawn(
        name,
        Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(prog)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?),
    )
    .with_context(|| format!("starting {}", prog.display()))?;
    Ok(())
}

fn wait_for(what: &str, secs: u64, mut ok: impl FnMut() -> bool) -> Result<Duration> {
    let t0 = Instant::now();
    while !ok() {
        if t0.elapsed() > Duration::from_secs(secs) {
            bail!("timed out after {secs} s waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Ok(t0.elapsed())
}

impl Node {
    fn vpgctl(&self, bins: &Bins, args: &[&str]) -> String {
        let o = Command::new(&bins.vpgctl)
            .arg("--socket")
            .arg(self.dir.join("api.sock"))
            .arg("--stats")
            .arg(self.dir.join("stats"))
            .arg("--agent-socket")
            .arg(self.dir.join("agent.sock"))
            .args(args)
            .output();
        match o {
            Ok(o) => {
                String::from_utf8_lossy(&o.stdout).into_owned()
                    + &String::from_utf8_lossy(&o.stderr)
            }
            Err(e) => e.to_string(),
        }
    }

    fn status(&self, bins: &Bins, json: bool) -> Option<String> {
        let mut c = Command::new(&bins.agent);
        c.args(["status", "--socket"])
            .arg(self.dir.join("agent.sock"));
        if json {
            c.arg("--json");
        }
        let o = c.output().ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).into_owned())
    }

    /// What to look at when the node does not do what was expected: the agent's state, notes
    /// and exclusions, vpgd's error counters, the end of the agent's log.
    fn diagnostics(&self, bins: &Bins) -> String {
        let mut out = format!("--- node {}\n", self.name);
        if let Some(s) = self.status_json(bins) {
            out += &format!(
                "agent: state {} pods {} services {} tunnels {} last error {}\nnotes: {}\nexcluded: {}\n",
                s["state"], s["pods"], s["services"], s["tunnels"], s["last_error"], s["notes"], s["excluded"]
            );
        }
        out += &self.vpgctl(bins, &["show", "errors"]);
        out += &self.vpgctl(bins, &["show", "esp", "summary"]);
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(15).collect();
        out += "agent log (last lines):\n";
        for l in tail.iter().rev() {
            out += &format!("  {l}\n");
        }
        out
    }

    fn status_json(&self, bins: &Bins) -> Option<Value> {
        serde_json::from_str(&self.status(bins, true)?).ok()
    }
}

fn run() -> Result<bool> {
    let manifests = std::env::args()
        .skip_while(|a| a != "--manifests")
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/demo"));
    let docs = cluster::load(&manifests)?;
    let pods = cluster::pods(&docs)?;
    if !rustix::process::geteuid().is_root() {
        bail!("the demo needs root (network namespaces): sudo -E cargo run --release -p vpg-demo");
    }
    let t_build = Instant::now();
    let bins = binaries()?;
    let build = t_build.elapsed();
    cleanup::on_signal_cleanup()?;
    let _guard = cleanup::Guard;
    // Logs outlive a failed run; removed after a passing or interrupted one.
    let logs = std::env::temp_dir().join(format!("vpg-demo-{}-logs", std::process::id()));
    cleanup::dir(logs.clone())?;
    let r = demo(&bins, &docs, &pods, &logs, build);
    if !matches!(r, Ok(true)) {
        cleanup::keep(&logs);
        println!("logs kept in {}", logs.display());
    }
    r
}

/// The demo proper, once the binaries exist and cleanup is armed.
fn demo(
    bins: &Bins,
    docs: &[Value],
    pods: &[cluster::Pod],
    logs: &Path,
    build: Duration,
) -> Result<bool> {
    let t_start = Instant::now();
    let mut timings: Vec<(String, Duration)> = Vec::new();
    let t_setup = Instant::now();
    // Encryption between the nodes is on when the manifests hold the cluster's IPsec key.
    let encryption = docs.iter().any(|d| {
        d["kind"] == "Secret"
            && d["metadata"]["namespace"] == "kube-system"
            && d["metadata"]["name"] == "vpg-ipsec-keys"
    });

    // Names unique to this run, so a second demo (or the CI test) beside it never collides.
    let tag = format!("vd{:x}", std::process::id());
    let tmp = std::env::temp_dir().join(format!("vpg-demo-{}", std::process::id()));
    cleanup::dir(tmp.clone())?;
    std::fs::create_dir_all(tmp.join("manifests"))?;

    section("topology");
    // The underlay: a bridge in the "internet" namespace joins both uplinks; it is also their
    // default gateway, and the internet server lives behind it.
    let inet = netns(&format!("{tag}-internet"))?;
    ipn(&inet, &["link", "add", "br0", "type", "bridge"])?;
    ipn(
        &inet,
        &["addr", "add", &format!("{UNDERLAY_GW}/24"), "dev", "br0"],
    )?;
    ipn(&inet, &["link", "set", "br0", "up"])?;
    ipn(
        &inet,
        &["addr", "add", &format!("{INTERNET}/32"), "dev", "lo"],
    )?;
    let mut nodes = Vec::new();
    for (k, name) in ["n1", "n2"].into_iter().enumerate() {
        let node_doc = docs
            .iter()
            .find(|d| d["kind"] == "Node" && d["metadata"]["name"] == name)
            .ok_or_else(|| anyhow!("no Node {name} in the manifests"))?;
        let ip = node_doc["status"]["addresses"][0]["address"]
            .as_str()
            .context("Node internal IP")?
            .to_string();
        let cidr = node_doc["spec"]["podCIDR"]
            .as_str()
            .context("Node podCIDR")?
            .to_string();
        let ns = netns(&format!("{tag}-{name}"))?;
        let port = format!("port{}", k + 1);
        ipn(
            &inet,
            &[
                "link", "add", &port, "type", "veth", "peer", "name", "uplink", "netns", &ns,
            ],
        )?;
        ipn(&inet, &["link", "set", &port, "master", "br0", "up"])?;
        ipn(&ns, &["link", "set", "uplink", "up"])?;
        // vpg's buffers hold one frame: the kernel sides must not send super-frames.
        sh(
            "ip",
            &[
                "netns", "exec", &inet, "ethtool", "-K", &port, "tso", "off", "gso", "off",
            ],
        )?;
        sh(
            "ip",
            &[
                "netns",
                "exec",
                &ns,
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=0",
            ],
        )?;
        let dir = tmp.join(name);
        std::fs::create_dir_all(dir.join("cni"))?;
        nodes.push(Node {
            name: name.to_string(),
            netns: ns,
            ip,
            cidr,
            dir,
            log: logs.join(format!("agent-{name}.log")),
        });
    }
    sh(
        "ip",
        &[
            "netns", "exec", &inet, "ethtool", "-K", "br0", "tso", "off", "gso", "off",
        ],
    )?;
    for n in &nodes {
        println!(
            "node {}: netns {}, uplink {}/24 (gateway {UNDERLAY_GW}), pod CIDR {}",
            n.name, n.netns, n.ip, n.cidr
        );
    }
    println!("internet: netns {inet}, bridge br0 {UNDERLAY_GW}/24, server {INTERNET}");

    // vpgd on each node.
    for n in &nodes {
        let d = n.dir.display();
        std::fs::write(
            n.dir.join("vpgd.toml"),
            format!(
                "[workers]\ncount = 1\n[buffers]\nper_worker = 8192\n[api]\nsocket = \"{d}/api.sock\"\n[stats]\nsegment = \"{d}/stats\"\n[esp]\nsequence_file = \"{d}/esp-sequences.json\"\n"
            ),
        )?;
        let cfg = n.dir.join("vpgd.toml");
        spawn_in(
            &format!("vpgd {}", n.name),
            &n.netns,
            &bins.vpgd,
            &["--config", &cfg.to_string_lossy()],
            &logs.join(format!("vpgd-{}.log", n.name)),
        )?;
    }
    for n in &nodes {
        wait_for(&format!("vpgd on {}", n.name), 20, || {
            n.dir.join("api.sock").exists()
        })?;
    }

    // The cluster as the API server holds it before any pod runs, then the agents.
    let cluster_file = tmp.join("manifests/cluster.json");
    cluster::write_list(&cluster_file, docs)?;
    for n in &nodes {
        let d = n.dir.display();
        std::fs::write(
            n.dir.join("node.toml"),
            format!(
                r#"node = "{name}"
vpgd_socket = "{d}/api.sock"
cni_data_dir = "{d}/cni"
status_socket = "{d}/agent.sock"
[uplink]
host_if = "uplink"
name = "up0"
address = "{ip}/24"
gateway = "{UNDERLAY_GW}"
[pods]
cidr = "{cidr}"
[cluster]
networks = ["10.1.0.0/16", "10.96.0.0/12"]
[overlay]
vni = 10
[store]
embedded = "{d}/agent.redb"
manifests = "{m}"
scan_interval_ms = 100
[timing]
debounce_ms = 50
pod_poll_ms = 100
probe_ms = 200
max_backoff_ms = 1000
{enc}"#,
                name = n.name,
                ip = n.ip,
                cidr = n.cidr,
                m = tmp.join("manifests").display(),
                // The rotation step: outbound switches 1 s after a new key, the old inbound SAs
                // accept for 3 s more (the defaults, 2 s and 30 s, suit a real cluster).
                enc = if encryption {
                    format!(
                        "[encryption]\nenabled = true\ntunnel_mtu = {ENCRYPTED_MTU}\nswitch_delay_ms = 1000\ngrace_s = 3\nused_keys = \"{d}/esp-used.json\"\n"
                    )
                } else {
                    String::new()
                },
            ),
        )?;
        let cfg = n.dir.join("node.toml");
        spawn_in(
            &format!("vpg-agent {}", n.name),
            &n.netns,
            &bins.agent,
            &["run", "--config", &cfg.to_string_lossy()],
            &logs.join(format!("agent-{}.log", n.name)),
        )?;
    }
    for n in &nodes {
        let took = wait_for(&format!("vpg-agent on {} in sync", n.name), 30, || {
            n.status_json(bins)
                .is_some_and(|s| s["state"] == "in-sync" && s["tunnels"] == 1)
        })?;
        timings.push((format!("agent {} start to in-sync", n.name), took));
    }
    println!("vpgd and vpg-agent running on n1 and n2 (each agent reflects {} into its own embedded store)",
        tmp.join("manifests").display());
    if encryption {
        println!(
            "encryption: on (secret kube-system/vpg-ipsec-keys): ESP transport mode around the VXLAN packets between n1 and n2, pod and tunnel MTU {ENCRYPTED_MTU}"
        );
    } else {
        println!("encryption: off (no secret kube-system/vpg-ipsec-keys in the manifests)");
    }

    // Pods, through vpg-cni as the runtime runs it.
    section("pods (CNI ADD through vpg-cni)");
    let mut ips = BTreeMap::new();
    let mut pod_ns = BTreeMap::new();
    let mut cni_dels = Vec::new();
    for (k, p) in pods.iter().enumerate() {
        let node = nodes
            .iter()
            .find(|n| n.name == p.node)
            .ok_or_else(|| anyhow!("pod {}/{}: no node {}", p.namespace, p.name, p.node))?;
        let ns = netns(&format!("{tag}-pod{k}"))?;
        let container = format!("{tag}c{k}");
        let mut config = serde_json::json!({
            "cniVersion": "1.0.0", "name": "vpg", "type": "vpg-cni",
            "podCIDR": node.cidr, "dataDir": node.dir.join("cni"),
            "hostNetns": format!("/var/run/netns/{}", node.netns),
        });
        if encryption {
            config["mtu"] = ENCRYPTED_MTU.into();
        }
        let env = [
            ("CNI_CONTAINERID", container.clone()),
            ("CNI_NETNS", format!("/var/run/netns/{ns}")),
            ("CNI_IFNAME", "eth0".to_string()),
            (
                "CNI_PATH",
                bins.cni.parent().unwrap_or(Path::new("/")).display().to_string(),
            ),
            (
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={container}",
                    p.namespace, p.name
                ),
            ),
        ];
        let t = Instant::now();
        let result = cni(bins, "ADD", &env, &config)?;
        let took = t.elapsed();
        let addr = result["ips"][0]["address"]
            .as_str()
            .context("CNI result without an address")?;
        let ip = addr.split('/').next().unwrap_or(addr).to_string();
        let labels: Vec<String> = p.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<16} on {}  {:<10} {:<10} host if {}  ADD {} ms",
            format!("{}/{}", p.namespace, p.name),
            p.node,
            ip,
            labels.join(","),
            result["interfaces"][0]["name"].as_str().unwrap_or("?"),
            took.as_millis()
        );
        timings.push((format!("CNI ADD {}/{}", p.namespace, p.name), took));
        ips.insert(format!("{}/{}", p.namespace, p.name), ip);
        pod_ns.insert(format!("{}/{}", p.namespace, p.name), ns);
        cni_dels.push((env, config));
    }

    // The kubelet reports the addresses; the endpoints controller fills the service.
    let full = cluster::with_pods(docs, &ips);
    cluster::write_list(&cluster_file, &full)?;
    let t = Instant::now();
    for n in &nodes {
        let local = pods.iter().filter(|p| p.node == n.name).count();
        wait_for(
            &format!("vpg-agent on {} to configure its pods", n.name),
            30,
            || {
                n.status_json(bins).is_some_and(|s| {
                    s["state"] == "in-sync" && s["pods"] == local && s["services"] == 1
                })
            },
        )
        .map_err(|e| e.context(n.diagnostics(bins)))?;
    }
    timings.push((
        "pod addresses and endpoints in the store to both nodes configured".into(),
        t.elapsed(),
    ));

    // Servers: every pod answers on its container ports; the internet on port 80.
    let mut servers = Vec::new();
    for p in pods {
        let key = format!("{}/{}", p.namespace, p.name);
        if !p.ports.is_empty() {
            traffic::start_server(&format!("server {key}"), &pod_ns[&key], &p.name, &p.ports)?;
            servers.push(key);
        }
    }
    traffic::start_server("server internet", &inet, "internet", &[80])?;
    timings.push((
        "setup (namespaces to traffic-ready)".into(),
        t_setup.elapsed(),
    ));

    // The underlay's first packets wait for ARP between the nodes (vpgd drops a packet to an
    // unresolved neighbor and throttles its requests to one a second, as VPP does): on a
    // loaded machine that cost the first pings of the matrix. One cross-node ping each way
    // until answered resolves both nodes first, so the matrix measures the steady state.
    let t = Instant::now();
    for (from, to) in [
        ("shop/client-1", "shop/client-2"),
        ("shop/client-2", "shop/client-1"),
    ] {
        if let (Some(ns), Some(dst)) = (pod_ns.get(from), ips.get(to)) {
            let _ = wait_for(&format!("a first reply {from} -> {to}"), 10, || {
                cleanup::output(
                    Command::new("ip")
                        .args([
                            "netns", "exec", ns, "ping", "-n", "-q", "-c", "1", "-W", "0.3", dst,
                        ])
                        .stdout(Stdio::null()),
                    b"",
                )
                .is_ok_and(|o| o.status.success())
            });
        }
    }
    timings.push((
        "first cross-node replies (underlay ARP resolved)".into(),
        t.elapsed(),
    ));

    section("reachability matrix (real TCP connections and pings)");
    let mut cells = cells(pods, &ips, &pod_ns, &nodes)?;
    // With encryption, a capture on the underlay (both nodes' bridge ports) runs beside them.
    let capture = if encryption {
        let node_ip = |n: &Node| -> Result<std::net::Ipv4Addr> {
            n.ip.parse()
                .with_context(|| format!("node {} IP {}", n.name, n.ip))
        };
        Some(capture::start(
            &inet,
            &["port1", "port2"],
            capture::Filter {
                nodes: [node_ip(&nodes[0])?, node_ip(&nodes[1])?],
                pods: (std::net::Ipv4Addr::new(10, 1, 0, 0), 16),
            },
        )?)
    } else {
        None
    };
    let t = Instant::now();
    let mut outcomes = traffic::run_all(&cells);
    timings.push(("reachability matrix".into(), t.elapsed()));
    if let Some(c) = capture {
        let stats = c.finish()?;
        cells.push(Cell {
            from: "underlay n1 <-> n2".into(),
            to: "bridge ports (AF_PACKET)".into(),
            path: "while the checks ran",
            netns: inet.clone(),
            probe: Probe::Capture,
            allow: true,
            peer: None,
            servers: vec![],
        });
        outcomes.push(traffic::Outcome {
            reached: stats.encrypted(),
            seen: stats.summary(),
            pass: stats.encrypted(),
        });
    }
    if encryption {
        let t = Instant::now();
        let (cell, outcome) = rotate_key(bins, &nodes, &cluster_file, &full, &ips, &pod_ns)?;
        timings.push((
            "key rotation under pings, to the old SAs removed".into(),
            t.elapsed(),
        ));
        cells.push(cell);
        outcomes.push(outcome);
        let t = Instant::now();
        let (cell, outcome) = restart_vpgd(bins, &nodes, logs, &ips, &pod_ns)?;
        timings.push((
            "vpgd restart on n1 under pings, to the agent's replay and back".into(),
            t.elapsed(),
        ));
        cells.push(cell);
        outcomes.push(outcome);
    }
    print!("{}", traffic::matrix(&cells, &outcomes));
    let passed = outcomes.iter().filter(|o| o.pass).count();
    let ok = passed == cells.len();

    let n1 = &nodes[0];
    section("n1: vpg-agent render (NetworkPolicy tables for node n1)");
    let render = Command::new(&bins.agent)
        .args(["render", "--node", "n1", "--cluster"])
        .arg(&cluster_file)
        .output()?;
    print!("{}", String::from_utf8_lossy(&render.stdout));
    section("n1: vpgctl show acl");
    print!("{}", n1.vpgctl(bins, &["show", "acl"]));
    // The agent's tables with the policy each rule came from, one pod's view, and why every
    // object on the node exists.
    for args in [
        &["show", "policy", "tables"][..],
        &["show", "policy", "pod", "data/db-1"][..],
        &["show", "node"][..],
    ] {
        section(&format!("n1: vpgctl {}", args.join(" ")));
        print!("{}", n1.vpgctl(bins, args));
    }
    section("n1: vpgctl show nat44 sessions");
    print!("{}", n1.vpgctl(bins, &["show", "nat44", "sessions"]));
    for n in &nodes {
        section(&format!("{}: vpgctl show vxlan tunnels", n.name));
        print!("{}", n.vpgctl(bins, &["show", "vxlan", "tunnels"]));
    }
    if encryption {
        for n in &nodes {
            section(&format!("{}: vpgctl show esp sa", n.name));
            print!("{}", n.vpgctl(bins, &["show", "esp", "sa"]));
        }
        section("n1: vpgctl show esp protect");
        print!("{}", n1.vpgctl(bins, &["show", "esp", "protect"]));
    }
    for n in &nodes {
        section(&format!("{}: vpg-agent status", n.name));
        print!(
            "{}",
            n.status(bins, false)
                .unwrap_or_else(|| "(no answer)\n".into())
        );
    }
    if !ok {
        for n in &nodes {
            section(&format!("{}: diagnostics (a check failed)", n.name));
            print!("{}", n.vpgctl(bins, &["show", "fib"]));
            print!("{}", n.diagnostics(bins));
        }
    }

    // Tear down as a runtime would (CNI DEL), then everything else (the guard).
    let t = Instant::now();
    for (env, config) in &cni_dels {
        if let Err(e) = cni(bins, "DEL", env, config) {
            eprintln!("CNI DEL: {e:#}");
        }
    }
    if !ok {
        cleanup::keep(logs);
    }
    cleanup::cleanup();
    timings.push(("CNI DEL of all pods and cleanup".into(), t.elapsed()));

    section("timings");
    for (what, d) in &timings {
        println!("{:<66} {:>8.1} ms", what, d.as_secs_f64() * 1e3);
    }
    println!(
        "{:<66} {:>8.1} s",
        "demo run (after the build check)",
        t_start.elapsed().as_secs_f64()
    );
    println!(
        "{:<66} {:>8.1} s",
        "build check (cargo build of vpgd, vpg-agent, vpg-cni)",
        build.as_secs_f64()
    );
    section("result");
    println!(
        "{passed}/{} checks as expected: overall {}",
        cells.len(),
        if ok { "PASS" } else { "FAIL" }
    );
    Ok(ok)
}

/// Rotates the cluster's IPsec key (a new key id and fresh key material in the secret) while
/// client-1 and client-2 ping each other every 20 ms across the nodes: no reply may be lost,
/// and afterwards each node holds only the new key's SAs (the old inbound ones retired, then
/// deleted after their grace period).
fn rotate_key(
    bins: &Bins,
    nodes: &[Node],
    cluster_file: &Path,
    docs: &[Value],
    ips: &BTreeMap<String, String>,
    pod_ns: &BTreeMap<String, String>,
) -> Result<(Cell, traffic::Outcome)> {
    let (a, b) = ("shop/client-1", "shop/client-2");
    let get = |m: &BTreeMap<String, String>, k: &str| pod_entry(m, k, "rotation");
    let key_ids = |n: &Node| -> Vec<u64> {
        serde_json::from_str::<Value>(&n.vpgctl(bins, &["--json", "show", "esp", "sa"]))
            .ok()
            .and_then(|v| {
                v.as_array()
                    .map(|a| a.iter().filter_map(|s| s["key_id"].as_u64()).collect())
            })
            .unwrap_or_default()
    };
    let old = key_ids(&nodes[0]).first().copied().unwrap_or(1);
    let new_id = old % 255 + 1;
    // Fresh key material, as an operator makes it (`head -c 20 /dev/urandom | xxd -p`).
    let mut key = [0u8; 20];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut key)?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let mut rotated = docs.to_vec();
    for d in rotated.iter_mut().filter(|d| d["kind"] == "Secret") {
        d["stringData"] = serde_json::json!({
            "keys": format!("{new_id}+ rfc4106(gcm(aes)) {hex} 128")
        });
        d.as_object_mut().map(|o| o.remove("data"));
    }
    // Pings both ways for 4 s: across the 1 s switch delay and well into the grace period.
    let t0 = Instant::now();
    let mut pingers = Vec::new();
    for (from, to) in [(a, b), (b, a)] {
        pingers.push(pinger(get(pod_ns, from)?, get(ips, to)?, 200));
    }
    std::thread::sleep(Duration::from_millis(500));
    cluster::write_list(cluster_file, &rotated)?;
    println!("\nkey rotation: key id {old} -> {new_id} written to the secret while client-1 and client-2 ping each other every 20 ms");
    let mut sent = 0;
    let mut got = 0;
    for p in pingers {
        let (s, g) = p
            .join()
            .map_err(|_| anyhow!("rotation pinger panicked"))??;
        sent += s;
        got += g;
    }
    // The old key's SAs: retired at the switch, deleted once their grace period is over.
    let gone = wait_for("the old key's SAs to go", 20, || {
        nodes.iter().all(|n| {
            let ids = key_ids(n);
            !ids.is_empty() && ids.iter().all(|k| *k == new_id)
        })
    });
    let seen = match &gone {
        Ok(_) => format!(
            "{got}/{sent} replies; only key {new_id}'s SAs left {:.1} s after the write",
            t0.elapsed().as_secs_f64() - 0.5
        ),
        Err(e) => format!("{got}/{sent} replies; {e}"),
    };
    let pass = sent >= 380 && got == sent && gone.is_ok();
    Ok((
        Cell {
            from: format!("{a} <-> {b}"),
            to: format!("key id {old} -> {new_id}"),
            path: "cross-node, key rotation",
            netns: String::new(),
            probe: Probe::Rotation,
            allow: true,
            peer: None,
            servers: vec![],
        },
        traffic::Outcome {
            reached: got == sent && sent > 0,
            seen,
            pass,
        },
    ))
}

/// Pod `k`'s entry in `m` (its address or namespace), which the demo's `step` needs.
fn pod_entry(m: &BTreeMap<String, String>, k: &str, step: &str) -> Result<String> {
    m.get(k)
        .cloned()
        .ok_or_else(|| anyhow!("the {step} step needs pod {k} in the manifests"))
}

/// Pings `dst` from netns `ns` `count` times, every 20 ms, in a thread: (transmitted, received).
fn pinger(ns: String, dst: String, count: u32) -> std::thread::JoinHandle<Result<(u32, u32)>> {
    std::thread::spawn(move || -> Result<(u32, u32)> {
        let o = cleanup::output(
            Command::new("ip")
                .args(["netns", "exec", &ns, "ping", "-n", "-q"])
                .args(["-c", &count.to_string(), "-i", "0.02", "-W", "1", &dst])
                .stdout(Stdio::piped()),
            b"",
        )?;
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        let nums: Vec<u32> = out
            .lines()
            .find(|l| l.contains("transmitted"))
            .unwrap_or_default()
            .split(", ")
            .filter_map(|p| p.split_whitespace().next()?.parse().ok())
            .collect();
        Ok((
            nums.first().copied().unwrap_or(0),
            nums.get(1).copied().unwrap_or(0),
        ))
    })
}

/// Restarts vpgd on n1 (SIGTERM, then started again with the same configuration) while
/// client-1 on n1 pings client-2 on n2 every 20 ms. n1's agent notices and replays the whole
/// configuration; the outbound SA's key was used before, and vpgd's sequence file recorded how
/// far: the SA goes in again and continues after that reservation (a new AES-GCM nonce for
/// every packet, so no key rotation is needed), and n2's anti-replay window takes the jump. The
/// inbound SA from n2 starts its window after what the stopped vpgd had accepted (recorded at
/// shutdown). Passes when the pings resume, the gap is short, the SA continued past its old
/// reservation, the inbound window was recorded and n2 counted no replay.
fn restart_vpgd(
    bins: &Bins,
    nodes: &[Node],
    logs: &Path,
    ips: &BTreeMap<String, String>,
    pod_ns: &BTreeMap<String, String>,
) -> Result<(Cell, traffic::Outcome)> {
    let (a, b) = ("shop/client-1", "shop/client-2");
    let get = |m: &BTreeMap<String, String>, k: &str| pod_entry(m, k, "restart");
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let sas = |n: &Node| -> Vec<Value> {
        serde_json::from_str::<Value>(&n.vpgctl(bins, &["--json", "show", "esp", "sa"]))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
    };
    // n1's outbound SA: (sequence number reserved up to, last one sent).
    let outbound = |n: &Node| -> (u64, u64) {
        sas(n)
            .iter()
            .filter(|s| s["direction"] == "out" && s["state"] == "active")
            .map(|s| {
                (
                    s["seq_reserved"].as_u64().unwrap_or(0),
                    s["counters"]["seq"].as_u64().unwrap_or(0),
                )
            })
            .max()
            .unwrap_or_default()
    };
    let replays = |n: &Node| -> u64 {
        sas(n)
            .iter()
            .filter_map(|s| s["counters"]["replays"].as_u64())
            .sum()
    };
    let (reserved_before, _) = outbound(n1);
    let replays_before = replays(n2);
    let connects = |n: &Node| {
        n.status_json(bins)
            .and_then(|s| s["vpgd_connects"].as_u64())
    };
    let connects_before = connects(n1).unwrap_or(0);

    let ping = pinger(get(pod_ns, a)?, get(ips, b)?, 300);
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "\nvpgd restart: vpgd on n1 stopped and started again while {a} pings {b} every 20 ms"
    );
    let t0 = Instant::now();
    cleanup::stop("vpgd n1");
    let _ = std::fs::remove_file(n1.dir.join("api.sock"));
    let cfg = n1.dir.join("vpgd.toml");
    spawn_in(
        "vpgd n1",
        &n1.netns,
        &bins.vpgd,
        &["--config", &cfg.to_string_lossy()],
        &logs.join("vpgd-n1-restarted.log"),
    )?;
    let synced = wait_for("n1's agent to replay into the new vpgd", 20, || {
        n1.status_json(bins).is_some_and(|s| {
            s["state"] == "in-sync" && s["vpgd_connects"].as_u64().unwrap_or(0) > connects_before
        })
    });
    let replayed = t0.elapsed();
    let (sent, got) = ping
        .join()
        .map_err(|_| anyhow!("restart pinger panicked"))??;
    // After the pinger: traffic flows (three more pings, at least one answered).
    let after = pinger(get(pod_ns, a)?, get(ips, b)?, 3)
        .join()
        .map_err(|_| anyhow!("restart pinger panicked"))??;
    let (reserved_after, seq_after) = outbound(n1);
    let replays_after = replays(n2);
    let continued = n1
        .status_json(bins)
        .and_then(|s| s["encryption"]["continued"].as_u64())
        .unwrap_or(0);
    // How far n1's inbound SA from n2 had accepted when vpgd stopped (written at shutdown):
    // the restarted SA's window starts there, so replayed old packets are refused.
    let accepted: u64 =
        serde_json::from_str::<Value>(&n1.vpgctl(bins, &["--json", "show", "esp", "sequences"]))
            .ok()
            .and_then(|v| {
                v.as_array()?
                    .iter()
                    .filter(|r| r["direction"] == "in" && !r["sa_id"].is_null())
                    .filter_map(|r| r["seq"].as_u64())
                    .max()
            })
            .unwrap_or(0);
    let lost_ms = u64::from(sent.saturating_sub(got)) * 20;
    let resumed = synced.is_ok() && after.1 > 0;
    let continues = seq_after > reserved_before && reserved_after > reserved_before;
    let seen = format!(
        "{got}/{sent} replies, gap ≈ {lost_ms} ms (agent replayed {:.1} s after the stop); SA continued at seq {seq_after} > {reserved_before} reserved before; inbound window from {accepted}; n2 replays +{}{}",
        replayed.as_secs_f64(),
        replays_after.saturating_sub(replays_before),
        synced.err().map(|e| format!("; {e}")).unwrap_or_default()
    );
    let pass = resumed
        && continues
        && accepted > 0
        && continued >= 1
        && replays_after == replays_before
        && lost_ms < 5_000;
    Ok((
        Cell {
            from: format!("{a} -> {b}"),
            to: "vpgd on n1 restarted".into(),
            path: "cross-node, encrypted, vpgd restart",
            netns: String::new(),
            probe: Probe::Restart,
            allow: true,
            peer: None,
            servers: vec![],
        },
        traffic::Outcome {
            reached: resumed,
            seen,
            pass,
        },
    ))
}

/// Runs vpg-cni as a runtime does; returns the result JSON (ADD) or null.
fn cni(bins: &Bins, command: &str, env: &[(&str, String)], config: &Value) -> Result<Value> {
    let o = cleanup::output(
        Command::new(&bins.cni)
            .env("CNI_COMMAND", command)
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        config.to_string().as_bytes(),
    )
    .context("running vpg-cni")?;
    let out = String::from_utf8_lossy(&o.stdout);
    if !o.status.success() {
        bail!("vpg-cni {command}: {}", out.trim());
    }
    if out.trim().is_empty() {
        return Ok(Value::Null);
    }
    Ok(serde_json::from_str(&out)?)
}

/// The checks: what the example policies allow and block, on one node and across, the service,
/// and the internet through SNAT.
fn cells(
    pods: &[cluster::Pod],
    ips: &BTreeMap<String, String>,
    pod_ns: &BTreeMap<String, String>,
    nodes: &[Node],
) -> Result<Vec<Cell>> {
    let ip = |k: &str| -> Result<String> {
        ips.get(k)
            .cloned()
            .ok_or_else(|| anyhow!("the checks need pod {k} in the manifests"))
    };
    let ns_of = |k: &str| -> Result<String> {
        pod_ns
            .get(k)
            .cloned()
            .ok_or_else(|| anyhow!("the checks need pod {k} in the manifests"))
    };
    let node_of = |k: &str| {
        pods.iter()
            .find(|p| format!("{}/{}", p.namespace, p.name) == k)
    };
    let path = |a: &str, b: &str| match (node_of(a), node_of(b)) {
        (Some(x), Some(y)) if x.node == y.node => "same node",
        _ => "cross-node",
    };
    let mut cells = Vec::new();
    let mut tcp = |from: &str, to: &str, port: u16, allow: bool| -> Result<()> {
        cells.push(Cell {
            from: from.into(),
            to: format!("{to}:{port}"),
            path: path(from, to),
            netns: ns_of(from)?,
            probe: Probe::Tcp {
                addr: ip(to)?,
                port,
                count: 1,
            },
            allow,
            peer: allow.then(|| ip(from)).transpose()?,
            servers: if allow {
                vec![to.split('/').nth(1).unwrap_or(to).to_string()]
            } else {
                vec![]
            },
        });
        Ok(())
    };
    tcp("shop/client-1", "shop/web-1", 8080, true)?;
    tcp("shop/client-1", "shop/web-2", 8080, true)?;
    tcp("shop/client-2", "shop/web-1", 8080, true)?;
    tcp("shop/web-1", "data/db-1", 5432, true)?;
    tcp("shop/web-2", "data/db-1", 5432, true)?;
    tcp("shop/client-1", "data/db-1", 5432, false)?;
    tcp("shop/client-2", "data/db-1", 5432, false)?;
    tcp("data/db-1", "data/db-2", 5432, false)?;
    tcp("data/db-2", "shop/web-2", 8080, false)?;
    tcp("data/db-1", "shop/web-2", 8080, false)?;
    let ping = |from: &str, to: &str, allow: bool| -> Result<Cell> {
        Ok(Cell {
            from: from.into(),
            to: to.into(),
            path: path(from, to),
            netns: ns_of(from)?,
            probe: Probe::Ping { addr: ip(to)? },
            allow,
            peer: None,
            servers: vec![],
        })
    };
    cells.push(ping("shop/client-1", "shop/client-2", true)?);
    cells.push(ping("shop/client-2", "data/db-1", false)?);
    // The service: both backends answer, and they see the client's own address.
    cells.push(Cell {
        from: "shop/client-1".into(),
        to: "service shop/web 10.96.0.10:80".into(),
        path: "service",
        netns: ns_of("shop/client-1")?,
        probe: Probe::Tcp {
            addr: "10.96.0.10".into(),
            port: 80,
            count: 16,
        },
        allow: true,
        peer: Some(ip("shop/client-1")?),
        servers: vec!["web-1".into(), "web-2".into()],
    });
    // The internet: the server sees the client's node address (SNAT on the uplink).
    for (from, node) in [("shop/client-1", &nodes[0]), ("shop/client-2", &nodes[1])] {
        cells.push(Cell {
            from: from.into(),
            to: format!("internet {INTERNET}:80"),
            path: "internet (SNAT)",
            netns: ns_of(from)?,
            probe: Probe::Tcp {
                addr: INTERNET.into(),
                port: 80,
                count: 1,
            },
            allow: true,
            peer: Some(node.ip.clone()),
            servers: vec!["internet".into()],
        });
    }
    cells.push(Cell {
        from: "data/db-1".into(),
        to: format!("internet {INTERNET}:80"),
        path: "internet (SNAT)",
        netns: ns_of("data/db-1")?,
        probe: Probe::Tcp {
            addr: INTERNET.into(),
            port: 80,
            count: 1,
        },
        allow: false,
        peer: None,
        servers: vec![],
    });
    Ok(cells)
}
