//! VXLAN between two "nodes" in network namespaces, each with a pod namespace behind it: vpgd
//! against the Linux kernel's `vxlan` device, and vpgd against vpgd. Ping and a TCP transfer in
//! both directions; the pods see each other's real addresses; `show vxlan tunnels` accounts for
//! every packet. Needs root, iproute2, ethtool, ping and python3 (scripts/setup.sh); skipped
//! with the reason printed only where the kernel refuses namespaces or vxlan devices.
//!
//! ```text
//! pod A ── pod0 [vpgd A] up0 ──── underlay 192.168.100.0/24 ──── [node B] ── pod B
//! 10.1.0.2    10.1.0.1  vx0 10.255.0.1            vxlan0 / vx0 10.255.0.2  10.2.0.1   10.2.0.2
//! ```

mod common;

use common::Vpgd;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vpg_io::netns::{self, NetNs};

const VNI: &str = "42";

impl Vpgd {
    /// The tunnel `vx0` as `show vxlan tunnels --json` gives it.
    fn tunnel(&self) -> serde_json::Value {
        let v = self.json(&["show", "vxlan", "tunnels"]);
        v.as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "vx0")
            .cloned()
            .unwrap_or_else(|| panic!("no vx0 in {v}"))
    }

    fn error(&self, node: &str, name: &str) -> u64 {
        let v = self.json(&["show", "errors"]);
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["node"] == node && e["name"] == name)
            .map(|e| e["count"].as_u64().unwrap())
            .sum()
    }
}

/// A pod namespace with `dev` at `addr` routing everything to `gw`.
fn pod(ns: &NetNs, dev: &str, addr: &str, gw: &str) {
    ns.exec(&["ip", "addr", "add", addr, "dev", dev]).unwrap();
    ns.exec(&["ip", "route", "add", "default", "via", gw])
        .unwrap();
    // vpg's buffers hold one frame, and a kernel node forwards what it gets: pods segment
    // themselves (as on Contiv-VPP), so no 64 KiB GSO packet reaches an AF_PACKET ring.
    ns.exec(&["ethtool", "-K", dev, "tso", "off", "gso", "off"])
        .unwrap();
}

fn ping(ns: &NetNs, dst: &str, count: u32) -> u32 {
    ns.ping(dst, count)
}

/// Receives one connection; prints the peer's address, the byte count and the sha256.
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

/// Sends 4 MiB to argv[1]; prints its own address, the byte count and the sha256.
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

/// A TCP transfer from `from` to `to_addr` in `to`; the server must see the client's own
/// address (no NAT on the way) and the bytes intact.
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

/// B's kernel `vxlan0` counters: (rx packets, tx packets).
fn kernel_counts(ns: &NetNs, dev: &str) -> (u64, u64) {
    let o = ns.exec(&["ip", "-s", "-j", "link", "show", dev]).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let s = &v[0]["stats64"];
    (
        s["rx"]["packets"].as_u64().unwrap(),
        s["tx"]["packets"].as_u64().unwrap(),
    )
}

fn counter(t: &serde_json::Value, c: &str) -> u64 {
    t["counters"][c].as_u64().unwrap()
}

/// Node A: vpgd with pod A behind it and an underlay veth to node B's namespace `b`. Returns
/// vpgd, pod A's namespace, and the underlay end in `b`.
fn node_a(b: &NetNs, tunnel_extra: &str) -> (Vpgd, NetNs, String) {
    let (ra, pa) = (NetNs::new("vxa").unwrap(), NetNs::new("vxpa").unwrap());
    let (pod_if, a_pod, a_ul, b_ul) = (
        netns::unique("p"),
        netns::unique("ap"),
        netns::unique("au"),
        netns::unique("bu"),
    );
    netns::veth(&pod_if, &pa, &a_pod, &ra).unwrap();
    netns::veth(&a_ul, &ra, &b_ul, b).unwrap();
    pod(&pa, &pod_if, "10.1.0.2/24", "10.1.0.1");
    let vpgd = Vpgd::start(
        ra,
        1,
        &format!(
            "[[interface]]\nhost_if = \"{a_pod}\"\nname = \"pod0\"\naddresses = [\"10.1.0.1/24\"]\n\
             [[interface]]\nhost_if = \"{a_ul}\"\nname = \"up0\"\naddresses = [\"192.168.100.1/24\"]\n\
             [[vxlan_tunnel]]\nlocal = \"192.168.100.1\"\nremote = \"192.168.100.2\"\nvni = {VNI}\nname = \"vx0\"\n\
             addresses = [\"10.255.0.1/24\"]\n{tunnel_extra}"
        ),
    );
    (vpgd, pa, b_ul)
}

#[test]
fn vpgd_and_the_linux_kernel_vxlan_device_carry_pod_traffic_both_ways() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping vxlan namespace test: {why}");
        return;
    }
    let b = NetNs::new("vxb").unwrap();
    let probe = b.ip(&[
        "link", "add", "vxprobe", "type", "vxlan", "id", "1", "dstport", "4789",
    ]);
    if let Err(e) = probe {
        eprintln!("skipping vxlan namespace test: the kernel has no vxlan devices: {e}");
        return;
    }
    b.ip(&["link", "del", "vxprobe"]).unwrap();
    let (a, pa, b_ul) = node_a(&b, "");
    a.ctl_ok(&["route", "add", "10.2.0.0/16", "dev", "vx0"]);

    // Node B: a plain Linux kernel with a vxlan device and pod B behind it.
    let pb = NetNs::new("vxpb").unwrap();
    let (b_pod, pod_if) = (netns::unique("bp"), netns::unique("p"));
    netns::veth(&b_pod, &b, &pod_if, &pb).unwrap();
    pod(&pb, &pod_if, "10.2.0.2/24", "10.2.0.1");
    for cmd in [
        "sysctl -qw net.ipv4.ip_forward=1",
        "sysctl -qw net.ipv6.conf.all.disable_ipv6=1",
        "sysctl -qw net.ipv6.conf.default.disable_ipv6=1",
    ] {
        b.exec(&cmd.split(' ').collect::<Vec<_>>()).unwrap();
    }
    let b_cmds = [
        format!("ip addr add 192.168.100.2/24 dev {b_ul}"),
        // A NIC would fill in checksums the stack left to offload; a veth passes them on
        // unfilled, and AF_PACKET cannot tell where an encapsulated one is. The kernel fills
        // them in here, as the NIC would.
        format!("ethtool -K {b_ul} tx off tso off gso off"),
        format!("ip link add vxlan0 type vxlan id {VNI} local 192.168.100.2 remote 192.168.100.1 dstport 4789 dev {b_ul}"),
        "ip addr add 10.255.0.2/24 dev vxlan0".into(),
        "ip link set vxlan0 up".into(),
        format!("ip addr add 10.2.0.1/24 dev {b_pod}"),
        "ip route add 10.1.0.0/16 via 10.255.0.1 dev vxlan0".into(),
    ];
    for cmd in &b_cmds {
        b.exec(&cmd.split(' ').collect::<Vec<_>>()).unwrap();
    }
    let kernel_mac = netns::mac_of(&b, "vxlan0").unwrap();
    // Node B's underlay MAC is known up front. Otherwise vpgd may not have learned it yet when
    // its first encapsulated packet leaves: ip4-glean turns that packet into an ARP request
    // (counted there), the tunnel counts a packet the kernel never gets, and the exact
    // accounting below is off by one.
    let b_ul_mac = netns::mac_of(&b, &b_ul).unwrap();
    let b_ul_mac = b_ul_mac.map(|o| format!("{o:02x}")).join(":");
    a.ctl_ok(&["neighbor", "add", "up0", "192.168.100.2", &b_ul_mac]);

    // Pod B speaks first: node B ARPs for 10.255.0.1 through the tunnel, vpgd answers through
    // it, and learns node B's inner MAC from what it decapsulates. First contact resolves
    // neighbors on every hop (the underlay, the tunnel, pod A), and what arrives meanwhile is
    // dropped by vpgd's ip4-glean (as VPP does) or delayed by the kernel's ARP retries.
    assert!(ping(&pa, "10.1.0.1", 2) >= 1, "pod A reaches its gateway");
    let got = ping(&pb, "10.1.0.2", 10);
    assert!(got >= 1, "pod B -> pod A through the tunnel: {got}/10");
    let t = a.tunnel();
    let mac = kernel_mac.map(|o| format!("{o:02x}")).join(":");
    assert_eq!(t["remote_mac"], mac.as_str(), "{t}");
    assert_eq!(t["remote_mac_learned"], true);
    // Resolved, nothing is lost any more.
    assert_eq!(ping(&pb, "10.1.0.2", 10), 10, "pod B -> pod A");
    assert_eq!(ping(&pa, "10.2.0.2", 10), 10, "pod A -> pod B");

    tcp(&pa, "10.1.0.2", &pb, "10.2.0.2");
    tcp(&pb, "10.2.0.2", &pa, "10.1.0.2");
    // Pod A's 1500-byte segments do not fit the 1450-byte tunnel: vpgd told it so.
    assert!(a.error("ip4-rewrite", "fragmentation-needed") > 0);

    // Every packet is accounted for: what vpgd sent into the tunnel the kernel received out of
    // its vxlan device, and the other way round.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let t = a.tunnel();
        let (k_rx, k_tx) = kernel_counts(&b, "vxlan0");
        let ours = (counter(&t, "tx_packets"), counter(&t, "rx_packets"));
        if ours == (k_rx, k_tx) {
            assert!(counter(&t, "tx_bytes") > 4 << 20 && counter(&t, "rx_bytes") > 4 << 20);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "vpgd tunnel tx/rx {ours:?} vs kernel vxlan0 rx/tx {:?}: {t}",
            (k_rx, k_tx)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let text = a.ctl_ok(&["show", "vxlan", "tunnels"]);
    assert!(
        text.contains("vx0")
            && text.contains("192.168.100.1 -> 192.168.100.2")
            && text.contains("(learned)"),
        "{text}"
    );
}

#[test]
fn two_vpgd_nodes_carry_pod_traffic_both_ways() {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping vxlan namespace test: {why}");
        return;
    }
    // Node B's namespace comes first (node A's underlay veth lands in it), then its vpgd.
    let rb = NetNs::new("vxb").unwrap();
    // A knows B's inner MAC from its configuration; B learns A's.
    let (a, pa, b_ul) = node_a(
        &rb,
        "mac = \"02:00:00:00:0a:01\"\nremote_mac = \"02:00:00:00:0b:01\"\n",
    );
    let pb = NetNs::new("vxpb").unwrap();
    let (b_pod, pod_if) = (netns::unique("bp"), netns::unique("p"));
    netns::veth(&pod_if, &pb, &b_pod, &rb).unwrap();
    pod(&pb, &pod_if, "10.2.0.2/24", "10.2.0.1");
    let b = Vpgd::start(
        rb,
        1,
        &format!(
            "[[interface]]\nhost_if = \"{b_pod}\"\nname = \"pod0\"\naddresses = [\"10.2.0.1/24\"]\n\
             [[interface]]\nhost_if = \"{b_ul}\"\nname = \"up0\"\naddresses = [\"192.168.100.2/24\"]\n\
             [[vxlan_tunnel]]\nlocal = \"192.168.100.2\"\nremote = \"192.168.100.1\"\nvni = {VNI}\nname = \"vx0\"\n\
             mac = \"02:00:00:00:0b:01\"\naddresses = [\"10.255.0.2/24\"]\n"
        ),
    );
    // A routes straight out of the tunnel; B through A's tunnel address (resolved by ARP
    // through the tunnel, or by the MAC it learns).
    a.ctl_ok(&["route", "add", "10.2.0.0/16", "dev", "vx0"]);
    b.ctl_ok(&["route", "add", "10.1.0.0/16", "via", "10.255.0.1", "vx0"]);
    // The underlay neighbors are known up front: otherwise the first encapsulated packet each
    // way would become an ARP request for the other node (ip4-glean counts it), counted as sent
    // by one tunnel but never received by the other, and the exact accounting below would be off.
    let b_ul_mac = netns::mac_of(&b.ns, &b_ul)
        .unwrap()
        .map(|o| format!("{o:02x}"))
        .join(":");
    a.ctl_ok(&["neighbor", "add", "up0", "192.168.100.2", &b_ul_mac]);
    let itfs = a.json(&["show", "interfaces"]);
    let up0 = itfs
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "up0")
        .unwrap();
    b.ctl_ok(&[
        "neighbor",
        "add",
        "up0",
        "192.168.100.1",
        up0["mac"].as_str().unwrap(),
    ]);

    let got = ping(&pa, "10.2.0.2", 10);
    assert!(got >= 8, "pod A -> pod B: {got}/10");
    assert!(ping(&pb, "10.1.0.2", 10) >= 9, "pod B -> pod A");
    let tb = b.tunnel();
    assert_eq!(tb["remote_mac"], "02:00:00:00:0a:01", "{tb}");
    assert_eq!(tb["remote_mac_learned"], true);
    assert_eq!(a.tunnel()["remote_mac_learned"], false, "configured");

    tcp(&pa, "10.1.0.2", &pb, "10.2.0.2");
    tcp(&pb, "10.2.0.2", &pa, "10.1.0.2");

    // What one tunnel sent, the other received.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (ta, tb) = (a.tunnel(), b.tunnel());
        let a_out = (counter(&ta, "tx_packets"), counter(&ta, "rx_packets"));
        let b_in = (counter(&tb, "rx_packets"), counter(&tb, "tx_packets"));
        if a_out == b_in {
            assert!(counter(&ta, "tx_bytes") > 4 << 20 && counter(&tb, "tx_bytes") > 4 << 20);
            assert_eq!(
                counter(&ta, "drops") + counter(&tb, "drops"),
                0,
                "{ta} {tb}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "A tunnel tx/rx {a_out:?} vs B tunnel rx/tx {b_in:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
