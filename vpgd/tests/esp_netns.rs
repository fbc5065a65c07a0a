//! ESP between "nodes" in network namespaces, each with a pod namespace behind it.
//!
//! - vpgd against vpgd, two workers each, VXLAN protected by ESP transport mode with one SA per
//!   worker per direction: ping and TCP both ways, a capture on the underlay sees only ESP
//!   between the nodes and never the pods' bytes, key rotation under a continuous ping loses
//!   nothing, and the audit counters add up.
//! - vpgd against the Linux kernel (`ip xfrm`, `rfc4106(gcm(aes))`), transport mode carrying
//!   VXLAN and tunnel mode: runs only where the kernel has ESP and GCM, and says so otherwise
//!   (the project's machine kind has neither: CONFIG_INET_ESP and CONFIG_CRYPTO_GCM are off).
//!
//! Needs root, iproute2, ethtool, ping and python3 (scripts/setup.sh).
//!
//! ```text
//! pod A ── pod0 [vpgd A] up0 ──── underlay 192.168.100.0/24 (ESP only) ──── [node B] ── pod B
//! 10.1.0.2    10.1.0.1  vx0                                               vx0   10.2.0.1   10.2.0.2
//! ```

mod common;

use common::Vpgd;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;
use vpg_io::netns::{self, NetNs};

/// Key material (AES-128 key ‖ salt) of generation `g` for traffic from node `from` (1 or 2).
fn key(g: u8, from: u8) -> String {
    worker_key(g, from, 0)
}

/// The key of worker `w`'s SA: each outbound SA has its own (vpgd refuses two outbound SAs
/// under one key, which would repeat nonces).
fn worker_key(g: u8, from: u8, w: u8) -> String {
    (0..20u8)
        .map(|i| format!("{:02x}", i.wrapping_mul(7) ^ (g << 4) ^ from ^ (w << 2)))
        .collect()
}

/// The SPI node `to` chose for generation `g`, worker `w`.
fn spi(g: u8, to: u8, w: u8) -> String {
    format!(
        "{:#x}",
        0x1000 * u32::from(to) + 0x10 * u32::from(g) + u32::from(w)
    )
}

impl Vpgd {
    /// Adds an SA with its key in a file (keys stay off command lines).
    fn sa(&self, id: u32, spi: &str, dir: &str, key: &str, key_id: u8, worker: Option<u8>) {
        let f = self.dir.join(format!("key-{id}"));
        std::fs::write(&f, key).unwrap();
        let (id, kid, w) = (
            id.to_string(),
            key_id.to_string(),
            worker.map(|w| w.to_string()),
        );
        let mut args = vec![
            "esp",
            "sa",
            "add",
            &id,
            "--spi",
            spi,
            "--dir",
            dir,
            "--key-file",
            f.to_str().unwrap(),
            "--key-id",
            &kid,
        ];
        if let Some(w) = &w {
            args.extend(["--worker", w]);
        }
        self.ctl_ok(&args);
    }

    fn summary(&self) -> serde_json::Value {
        self.json(&["show", "esp", "summary"])[0].clone()
    }
}

fn pod(ns: &NetNs, dev: &str, addr: &str, gw: &str) {
    ns.exec(&["ip", "addr", "add", addr, "dev", dev]).unwrap();
    ns.exec(&["ip", "route", "add", "default", "via", gw])
        .unwrap();
    ns.exec(&["ethtool", "-K", dev, "tso", "off", "gso", "off"])
        .unwrap();
}

/// Counts the IPv4 frames on an interface by protocol until a stop file appears, and how many
/// carry the marker bytes the pods' pings are padded with.
const SNIFFER: &str = r#"
import socket, sys, os, json
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind((sys.argv[1], 0)); s.settimeout(0.2)
protos = {}; leaks = 0
while not os.path.exists(sys.argv[2]):
    try: f = s.recv(65535)
    except socket.timeout: continue
    if len(f) < 34 or f[12:14] != b"\x08\x00": continue
    protos[str(f[23])] = protos.get(str(f[23]), 0) + 1
    if b"\x5e\xc2\xe7\x5e\xc2\xe7" in f: leaks += 1
print(json.dumps({"protos": protos, "leaks": leaks}))
"#;

/// Pattern the pods' pings carry (`ping -p`): found on the wire only if something leaked.
const MARK: &str = "5ec2e75ec2e75ec2e75ec2e75ec2e75e";

struct Sniffer {
    child: Child,
    stop: PathBuf,
}

impl Sniffer {
    fn start(ns: &NetNs, dev: &str) -> Self {
        let stop = std::env::temp_dir().join(netns::unique("esp-sniff-stop"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "python3", "-c", SNIFFER, dev])
            .arg(&stop)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        Self { child, stop }
    }

    fn finish(self) -> serde_json::Value {
        std::fs::write(&self.stop, "").unwrap();
        let o = self.child.wait_with_output().unwrap();
        let _ = std::fs::remove_file(&self.stop);
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

/// Pings with the marker pattern; returns replies received.
fn ping(ns: &NetNs, dst: &str, count: u32, interval: &str) -> u32 {
    let n = count.to_string();
    let args = [
        "netns", "exec", &ns.name, "ping", "-n", "-q", "-c", &n, "-i", interval, "-W", "1", "-p",
        MARK, dst,
    ];
    // ping's exit status is ignored: losses are what the tests measure.
    let Ok(o) = Command::new("ip").args(args).output() else {
        return 0;
    };
    String::from_utf8_lossy(&o.stdout)
        .split(", ")
        .find_map(|p| {
            p.strip_suffix(" received")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

const TCP_SERVER: &str = r#"
import socket, hashlib
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); s.settimeout(30)
c, peer = s.accept(); c.settimeout(30); h = hashlib.sha256(); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    h.update(d); n += len(d)
print(peer[0], n, h.hexdigest())
"#;

const TCP_CLIENT: &str = r#"
import socket, hashlib, random, sys, time
r = random.Random(7); data = bytes(r.getrandbits(8) for _ in range(1 << 20)) * 4
for _ in range(50):
    try:
        c = socket.create_connection((sys.argv[1], 5001), timeout=5); break
    except OSError:
        time.sleep(0.2)
me = c.getsockname()[0]
c.sendall(data); c.close()
print(me, len(data), hashlib.sha256(data).hexdigest())
"#;

/// 64 UDP flows (source ports 40000–40063), 5 datagrams each, to argv[1]:9999.
const UDP_FLOWS: &str = r#"
import socket, sys, time
for p in range(40000, 40064):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", p))
    for _ in range(5):
        s.sendto(b"flow", (sys.argv[1], 9999)); time.sleep(0.001)
    s.close()
"#;

fn python(ns: &NetNs, script: &str, args: &[&str]) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", script])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_out(c: Child) -> String {
    let o = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn tcp(from: &NetNs, from_addr: &str, to: &NetNs, to_addr: &str) {
    let server = python(to, TCP_SERVER, &[]);
    std::thread::sleep(Duration::from_millis(300));
    let client = wait_out(python(from, TCP_CLIENT, &[to_addr]));
    let received = wait_out(server);
    assert!(
        client.starts_with(from_addr),
        "client {from_addr} -> {to_addr} failed: '{client}'"
    );
    assert_eq!(received, client, "peer address, bytes and sha256 match");
}

fn mac_text(ns: &NetNs, dev: &str) -> String {
    netns::mac_of(ns, dev)
        .unwrap()
        .map(|o| format!("{o:02x}"))
        .join(":")
}

/// The ESP frames in a sniffer's report, and that nothing else passed between the nodes.
fn assert_only_esp(report: &serde_json::Value) -> u64 {
    let protos = report["protos"].as_object().unwrap();
    let esp = protos.get("50").and_then(|v| v.as_u64()).unwrap_or(0);
    let other: Vec<_> = protos.iter().filter(|(k, _)| *k != "50").collect();
    assert!(other.is_empty(), "non-ESP IPv4 on the underlay: {report}");
    assert_eq!(report["leaks"], 0, "pod bytes seen in clear: {report}");
    esp
}

#[test]
fn two_vpgd_nodes_encrypt_vxlan_with_one_sa_per_worker_and_rotate_without_loss() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping esp namespace test: {why}");
        return;
    }
    let (ra, rb) = (NetNs::new("espa").unwrap(), NetNs::new("espb").unwrap());
    let (pa, pb) = (NetNs::new("esppa").unwrap(), NetNs::new("esppb").unwrap());
    let names: Vec<String> = ["p", "ap", "p", "bp", "au", "bu"]
        .iter()
        .map(|p| netns::unique(p))
        .collect();
    let (pa_if, a_pod, pb_if, b_pod, a_ul, b_ul) = (
        &names[0], &names[1], &names[2], &names[3], &names[4], &names[5],
    );
    netns::veth(pa_if, &pa, a_pod, &ra).unwrap();
    netns::veth(pb_if, &pb, b_pod, &rb).unwrap();
    netns::veth(a_ul, &ra, b_ul, &rb).unwrap();
    pod(&pa, pa_if, "10.1.0.2/24", "10.1.0.1");
    pod(&pb, pb_if, "10.2.0.2/24", "10.2.0.1");
    let node = |ns: NetNs, n: u8, pod_if: &str, ul: &str| {
        let o = 3 - n;
        Vpgd::start(
            ns,
            2,
            &format!(
                "[[interface]]\nhost_if = \"{pod_if}\"\nname = \"pod0\"\naddresses = [\"10.{n}.0.1/24\"]\n\
                 [[interface]]\nhost_if = \"{ul}\"\nname = \"up0\"\naddresses = [\"192.168.100.{n}/24\"]\n\
                 [[vxlan_tunnel]]\nlocal = \"192.168.100.{n}\"\nremote = \"192.168.100.{o}\"\nvni = 42\nname = \"vx0\"\n\
                 mac = \"02:00:00:00:0{n}:01\"\nremote_mac = \"02:00:00:00:0{o}:01\"\nmtu = 1400\n"
            ),
        )
    };
    let a = node(ra, 1, a_pod, a_ul);
    let b = node(rb, 2, b_pod, b_ul);
    let ul_mac = |v: &Vpgd| {
        v.json(&["show", "interfaces"])
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == "up0")
            .unwrap()["mac"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (a_mac, b_mac) = (ul_mac(&a), ul_mac(&b));
    a.ctl_ok(&["neighbor", "add", "up0", "192.168.100.2", &b_mac]);
    b.ctl_ok(&["neighbor", "add", "up0", "192.168.100.1", &a_mac]);
    a.ctl_ok(&["route", "add", "10.2.0.0/16", "dev", "vx0"]);
    b.ctl_ok(&["route", "add", "10.1.0.0/16", "dev", "vx0"]);
    // Generation 1: per direction one SA per worker (distinct SPIs, owned by that worker).
    let generation = |v: &Vpgd, n: u8, g: u8| {
        let o = 3 - n;
        for w in 0..2u8 {
            let base = 100 * u32::from(g) + 10 * u32::from(w);
            v.sa(
                base + 1,
                &spi(g, o, w),
                "out",
                &worker_key(g, n, w),
                g,
                Some(w),
            );
            v.sa(
                base + 2,
                &spi(g, n, w),
                "in",
                &worker_key(g, o, w),
                g,
                Some(w),
            );
        }
    };
    let out_sas = |g: u32| [format!("{}", 100 * g + 1), format!("{}", 100 * g + 11)];
    for (v, n) in [(&a, 1u8), (&b, 2u8)] {
        generation(v, n, 1);
        let [s0, s1] = out_sas(1);
        v.ctl_ok(&[
            "esp", "protect", "add", "1", "--tunnel", "vx0", "--sa", &s0, "--sa", &s1,
        ]);
        v.ctl_ok(&["esp", "interface", "up0", "on"]);
    }
    let sniff = Sniffer::start(&b.ns, b_ul);
    assert!(
        ping(&pa, "10.2.0.2", 10, "0.2") >= 9,
        "pod A -> pod B over ESP"
    );
    assert!(
        ping(&pb, "10.1.0.2", 10, "0.2") >= 9,
        "pod B -> pod A over ESP"
    );
    tcp(&pa, "10.1.0.2", &pb, "10.2.0.2");
    tcp(&pb, "10.2.0.2", &pa, "10.1.0.2");

    // Rotation to generation 2 under a continuous ping both ways: no reply may be lost.
    let pinger = |ns: &NetNs, dst: &str| {
        let ns_name = ns.name.clone();
        let dst = dst.to_string();
        std::thread::spawn(move || {
            let o = Command::new("ip")
                .args([
                    "netns", "exec", &ns_name, "ping", "-n", "-q", "-c", "400", "-i", "0.01", "-W",
                    "1", "-p", MARK, &dst,
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout).to_string()
        })
    };
    let (p1, p2) = (pinger(&pa, "10.2.0.2"), pinger(&pb, "10.1.0.2"));
    std::thread::sleep(Duration::from_millis(500));
    // 1. New inbound (and outbound) SAs on both nodes; 2. each switches its outbound;
    // 3. the old ones retire after a grace period.
    generation(&a, 1, 2);
    generation(&b, 2, 2);
    std::thread::sleep(Duration::from_millis(300));
    for v in [&a, &b] {
        let [s0, s1] = out_sas(2);
        v.ctl_ok(&[
            "esp",
            "protect",
            "add",
            "1",
            "--tunnel",
            "vx0",
            "--sa",
            &s0,
            "--sa",
            &s1,
            "--replace",
        ]);
    }
    std::thread::sleep(Duration::from_millis(300));
    for v in [&a, &b] {
        for id in ["101", "102", "111", "112"] {
            v.ctl_ok(&["esp", "sa", "retire", id, "--grace", "2"]);
        }
    }
    for (name, p) in [("A -> B", p1), ("B -> A", p2)] {
        let out = p.join().unwrap();
        assert!(
            out.contains("400 packets transmitted, 400 received"),
            "{name} lost packets across the rotation: {out}"
        );
    }
    // Many flows, so the interfaces' fanout spreads them over both workers (each worker then
    // encrypts with its own SA, and what arrives on the other worker is handed to the owner).
    wait_out(python(&pa, UDP_FLOWS, &["10.2.0.2"]));
    wait_out(python(&pb, UDP_FLOWS, &["10.1.0.2"]));
    std::thread::sleep(Duration::from_millis(300));
    let report = sniff.finish();
    let esp_frames = assert_only_esp(&report);

    // The audit adds up: nothing left in clear, nothing failed, both generations used, keys
    // shown only as fingerprints.
    let mut decrypted = 0;
    for v in [&a, &b] {
        let s = v.summary();
        assert_eq!(s["would_have_left_in_clear"], 0, "{s}");
        assert_eq!(s["auth_failures"], 0, "{s}");
        assert_eq!(s["replays"], 0, "{s}");
        decrypted += s["decrypted"].as_u64().unwrap();
        let sas = v.json(&["show", "esp", "sa"]);
        let text = sas.to_string();
        assert!(
            !text.contains(&key(1, 1)) && !text.contains(&key(1, 2)),
            "a key in a dump"
        );
        for g in [1u64, 2] {
            let used: u64 = sas
                .as_array()
                .unwrap()
                .iter()
                .filter(|s| s["key_id"] == g)
                .map(|s| s["counters"]["packets"].as_u64().unwrap())
                .sum();
            assert!(used > 0, "generation {g} carried nothing: {sas}");
        }
        let table = v.ctl_ok(&["show", "esp", "sa"]);
        assert!(
            table.contains("retiring") || table.contains("expired"),
            "{table}"
        );
    }
    // The capture (a Python reader that cannot keep up with TCP bursts, so a lower bound)
    // saw ESP, and the two nodes decrypted thousands of packets.
    assert!(
        esp_frames > 100 && decrypted > 1000,
        "esp frames {esp_frames}, decrypted {decrypted}"
    );
    // Both workers carried encrypted traffic (each SA has one owner worker, so the SAs with
    // packets name the workers that did the work).
    let mut owners = std::collections::BTreeSet::new();
    for v in [&a, &b] {
        for s in v.json(&["show", "esp", "sa"]).as_array().unwrap() {
            if s["counters"]["packets"].as_u64().unwrap() > 0 {
                owners.insert(s["worker"].as_u64().unwrap());
            }
        }
    }
    assert_eq!(owners.into_iter().collect::<Vec<_>>(), vec![0, 1]);
}

/// Whether the kernel here can do `rfc4106(gcm(aes))` ESP: the reason when not.
fn kernel_esp_unavailable() -> Option<String> {
    let probe = match NetNs::new("espprobe") {
        Ok(p) => p,
        Err(e) => return Some(e),
    };
    let r = probe.ip(&[
        "xfrm",
        "state",
        "add",
        "src",
        "192.0.2.1",
        "dst",
        "192.0.2.2",
        "proto",
        "esp",
        "spi",
        "0x100",
        "mode",
        "transport",
        "aead",
        "rfc4106(gcm(aes))",
        "0x0102030405060708090a0b0c0d0e0f1011121314",
        "128",
    ]);
    match r {
        Ok(_) => None,
        Err(e) => Some(format!(
            "the kernel refuses an rfc4106(gcm(aes)) ESP state ({}): it needs CONFIG_INET_ESP and CONFIG_CRYPTO_GCM",
            e.trim()
        )),
    }
}

#[test]
fn vpgd_and_the_linux_kernel_speak_esp_in_transport_and_tunnel_mode() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping esp kernel interop test: {why}");
        return;
    }
    if let Some(why) = kernel_esp_unavailable() {
        eprintln!("skipping esp kernel interop test: {why}");
        return;
    }
    let (ra, b) = (NetNs::new("espka").unwrap(), NetNs::new("espkb").unwrap());
    let (pa, pb) = (NetNs::new("espkpa").unwrap(), NetNs::new("espkpb").unwrap());
    let names: Vec<String> = ["p", "ap", "p", "bp", "au", "bu"]
        .iter()
        .map(|p| netns::unique(p))
        .collect();
    let (pa_if, a_pod, pb_if, b_pod, a_ul, b_ul) = (
        &names[0], &names[1], &names[2], &names[3], &names[4], &names[5],
    );
    netns::veth(pa_if, &pa, a_pod, &ra).unwrap();
    netns::veth(pb_if, &pb, b_pod, &b).unwrap();
    netns::veth(a_ul, &ra, b_ul, &b).unwrap();
    pod(&pa, pa_if, "10.1.0.2/24", "10.1.0.1");
    pod(&pb, pb_if, "10.2.0.2/24", "10.2.0.1");
    // Pod A's MTU leaves room for ESP tunnel mode (vpgd does not answer DF packets too big for
    // the outer MTU in tunnel mode).
    pa.exec(&["ip", "link", "set", pa_if, "mtu", "1400"])
        .unwrap();
    let a = Vpgd::start(
        ra,
        1,
        &format!(
            "[[interface]]\nhost_if = \"{a_pod}\"\nname = \"pod0\"\naddresses = [\"10.1.0.1/24\"]\n\
             [[interface]]\nhost_if = \"{a_ul}\"\nname = \"up0\"\naddresses = [\"192.168.100.1/24\"]\n\
             [[vxlan_tunnel]]\nlocal = \"192.168.100.1\"\nremote = \"192.168.100.2\"\nvni = 42\nname = \"vx0\"\n\
             addresses = [\"10.255.0.1/24\"]\nmtu = 1400\n"
        ),
    );
    let run = |cmd: String| {
        let args: Vec<&str> = cmd.split(' ').collect();
        b.exec(&args).unwrap_or_else(|e| panic!("{cmd}: {e}"));
    };
    let state = |spi: &str, src: &str, dst: &str, mode: &str, k: String| {
        format!(
            "ip xfrm state add src {src} dst {dst} proto esp spi {spi} mode {mode} replay-window 64 aead rfc4106(gcm(aes)) 0x{k} 128"
        )
    };
    // Transport mode carrying VXLAN: the kernel protects its vxlan device's UDP to port 4789.
    for cmd in [
        "sysctl -qw net.ipv4.ip_forward=1".to_string(),
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1".into(),
        format!("ip addr add 192.168.100.2/24 dev {b_ul}"),
        format!("ethtool -K {b_ul} tx off tso off gso off"),
        format!("ip addr add 10.2.0.1/24 dev {b_pod}"),
        format!("ip link add vxlan0 type vxlan id 42 local 192.168.100.2 remote 192.168.100.1 dstport 4789 dev {b_ul}"),
        "ip addr add 10.255.0.2/24 dev vxlan0".into(),
        "ip link set vxlan0 mtu 1400".into(),
        "ip link set vxlan0 up".into(),
        "ip route add 10.1.0.0/16 via 10.255.0.1 dev vxlan0".into(),
        state("0x2001", "192.168.100.1", "192.168.100.2", "transport", key(1, 1)),
        state("0x1001", "192.168.100.2", "192.168.100.1", "transport", key(1, 2)),
        "ip xfrm policy add src 192.168.100.2 dst 192.168.100.1 proto udp dport 4789 dir out tmpl src 192.168.100.2 dst 192.168.100.1 proto esp mode transport".into(),
        "ip xfrm policy add src 192.168.100.1 dst 192.168.100.2 proto udp dport 4789 dir in tmpl src 192.168.100.1 dst 192.168.100.2 proto esp mode transport".into(),
    ] {
        run(cmd);
    }
    a.ctl_ok(&[
        "neighbor",
        "add",
        "up0",
        "192.168.100.2",
        &mac_text(&b, b_ul),
    ]);
    a.ctl_ok(&["route", "add", "10.2.0.0/16", "dev", "vx0"]);
    a.sa(1, "0x2001", "out", &key(1, 1), 1, None);
    a.sa(2, "0x1001", "in", &key(1, 2), 1, None);
    a.ctl_ok(&["esp", "protect", "add", "1", "--tunnel", "vx0", "--sa", "1"]);
    a.ctl_ok(&["esp", "interface", "up0", "on"]);
    let sniff = Sniffer::start(&b, b_ul);
    // The kernel speaks first: vpgd learns its vxlan MAC from what it decrypts and decapsulates.
    assert!(
        ping(&pb, "10.1.0.2", 10, "0.2") >= 8,
        "kernel pod -> vpgd pod (transport/VXLAN)"
    );
    assert_eq!(
        ping(&pa, "10.2.0.2", 10, "0.2"),
        10,
        "vpgd pod -> kernel pod"
    );
    tcp(&pa, "10.1.0.2", &pb, "10.2.0.2");
    tcp(&pb, "10.2.0.2", &pa, "10.1.0.2");
    assert!(assert_only_esp(&sniff.finish()) > 0);

    // Tunnel mode between the gateways, no VXLAN: the pods' networks through ESP directly.
    for cmd in [
        "ip route del 10.1.0.0/16".to_string(),
        "ip xfrm policy flush".into(),
        "ip xfrm state flush".into(),
        "ip route add 10.1.0.0/16 via 192.168.100.1".into(),
        state("0x2003", "192.168.100.1", "192.168.100.2", "tunnel", key(3, 1)),
        state("0x1003", "192.168.100.2", "192.168.100.1", "tunnel", key(3, 2)),
        "ip xfrm policy add src 10.2.0.0/16 dst 10.1.0.0/16 dir out tmpl src 192.168.100.2 dst 192.168.100.1 proto esp mode tunnel".into(),
        "ip xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir in tmpl src 192.168.100.1 dst 192.168.100.2 proto esp mode tunnel".into(),
        "ip xfrm policy add src 10.1.0.0/16 dst 10.2.0.0/16 dir fwd tmpl src 192.168.100.1 dst 192.168.100.2 proto esp mode tunnel".into(),
    ] {
        run(cmd);
    }
    a.ctl_ok(&["esp", "protect", "del", "1"]);
    a.ctl_ok(&["route", "del", "10.2.0.0/16"]);
    a.ctl_ok(&["route", "add", "10.2.0.0/16", "via", "192.168.100.2", "up0"]);
    for (id, spi, dir, k) in [
        (3, "0x2003", "out", key(3, 1)),
        (4, "0x1003", "in", key(3, 2)),
    ] {
        let f = a.dir.join(format!("key-{id}"));
        std::fs::write(&f, &k).unwrap();
        let id = id.to_string();
        let (src, dst) = if dir == "out" {
            ("192.168.100.1", "192.168.100.2")
        } else {
            ("192.168.100.2", "192.168.100.1")
        };
        a.ctl_ok(&[
            "esp",
            "sa",
            "add",
            &id,
            "--spi",
            spi,
            "--dir",
            dir,
            "--key-file",
            f.to_str().unwrap(),
            "--key-id",
            "3",
            "--tunnel-src",
            src,
            "--tunnel-dst",
            dst,
        ]);
    }
    a.ctl_ok(&[
        "esp",
        "protect",
        "add",
        "2",
        "--dst",
        "10.2.0.0/16",
        "--sa",
        "3",
    ]);
    let sniff = Sniffer::start(&b, b_ul);
    assert!(
        ping(&pa, "10.2.0.2", 10, "0.2") >= 9,
        "tunnel mode: vpgd pod -> kernel pod"
    );
    assert!(
        ping(&pb, "10.1.0.2", 10, "0.2") >= 9,
        "tunnel mode: kernel pod -> vpgd pod"
    );
    tcp(&pa, "10.1.0.2", &pb, "10.2.0.2");
    tcp(&pb, "10.2.0.2", &pa, "10.1.0.2");
    assert!(assert_only_esp(&sniff.finish()) > 0);
    assert_eq!(a.summary()["auth_failures"], 0);
}
