//! NAT44 through vpgd with real traffic between network namespaces: three pod namespaces on
//! inside interfaces, an "internet" namespace behind the uplink (outside, its address the
//! pool). Pods browse the internet through SNAT (the server sees only the node address; ping and
//! UDP work), unsolicited traffic to the node address is dropped, a service VIP balances across
//! two pods (the backends see the client pod's address), and a pod reaches a service whose only
//! backend is itself. Configured with vpgctl; `vpgctl show nat44 …` accounts for it. Needs root,
//! iproute2, ping, python3 (scripts/setup.sh); skipped with the reason printed only where the
//! kernel refuses namespaces.

mod common;

use common::Vpgd;

use std::process::{Child, Command, Stdio};
use vpg_io::netns::{self, NetNs};

struct Lab {
    pods: Vec<NetNs>,
    inet: NetNs,
    vpgd: Vpgd,
}

impl Lab {
    fn new(workers: usize) -> Option<Self> {
        if let Some(why) = netns::unavailable() {
            eprintln!("skipping NAT44 namespace test: {why}");
            return None;
        }
        let node = NetNs::new("vn").unwrap();
        let inet = NetNs::new("vinet").unwrap();
        let pods: Vec<NetNs> = (1..=3).map(|_| NetNs::new("vpod").unwrap()).collect();
        let mut ifaces = String::new();
        let mut links = Vec::new();
        for (k, pod) in pods.iter().enumerate() {
            let (inner, outer) = (netns::unique("eth"), netns::unique("p"));
            netns::veth(&inner, pod, &outer, &node).unwrap();
            let n = k + 1;
            links.push((pod, inner, format!("10.1.{n}.2/24"), format!("10.1.{n}.1")));
            ifaces += &format!(
                "[[interface]]\nhost_if = \"{outer}\"\nname = \"pod{n}\"\naddresses = [\"10.1.{n}.1/24\"]\n"
            );
        }
        let (inner, outer) = (netns::unique("eth"), netns::unique("up"));
        netns::veth(&inner, &inet, &outer, &node).unwrap();
        links.push((&inet, inner, "192.0.2.254/24".into(), String::new()));
        ifaces += &format!(
            "[[interface]]\nhost_if = \"{outer}\"\nname = \"up0\"\naddresses = [\"192.0.2.1/24\"]\n"
        );
        for (ns, dev, addr, gw) in &links {
            ns.exec(&["ip", "addr", "add", addr, "dev", dev]).unwrap();
            if !gw.is_empty() {
                ns.exec(&["ip", "route", "add", "default", "via", gw])
                    .unwrap();
            }
            // vpg's buffers hold one frame: hosts segment themselves (see netns.rs).
            ns.exec(&["ethtool", "-K", dev, "tso", "off", "gso", "off"])
                .unwrap();
        }
        let lab = Lab {
            pods,
            inet,
            vpgd: Vpgd::start(node, workers as u32, &ifaces),
        };
        // The node: default route to the internet; SNAT on the uplink for the pods; the
        // cluster network never translated.
        for args in [
            &["route", "add", "0.0.0.0/0", "via", "192.0.2.254", "up0"][..],
            &["nat44", "pool", "add", "--interface", "up0"][..],
            &["nat44", "interface", "up0", "outside"][..],
            &["nat44", "interface", "pod1", "inside"][..],
            &["nat44", "interface", "pod2", "inside"][..],
            &["nat44", "interface", "pod3", "inside"][..],
            &["nat44", "set", "never-nat", "10.0.0.0/8"][..],
        ] {
            lab.ok(args);
        }
        Some(lab)
    }

    fn ctl(&self, args: &[&str]) -> std::process::Output {
        self.vpgd.ctl(args)
    }

    fn ok(&self, args: &[&str]) -> String {
        self.vpgd.ctl_ok(args)
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        self.vpgd.json(args)
    }
}

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

/// Accepts up to `n` TCP connections on `port` (until 3 s pass without one, after the first);
/// answers each with "NAME PEER_ADDRESS"; prints the peers it saw.
const TCP_SERVER: &str = r#"
import socket, sys
name, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(16); s.settimeout(20)
seen = []
try:
    for _ in range(n):
        c, peer = s.accept(); c.settimeout(5); s.settimeout(3)
        try:
            c.recv(100); c.sendall(f"{name} {peer[0]}".encode())
        except OSError:
            pass
        c.close(); seen.append(peer[0])
except socket.timeout:
    pass
print(" ".join(sorted(set(seen))))
"#;

/// Connects `n` times to ADDR:PORT (trying up to TRIES times, default 50, while the server
/// starts); prints each answer.
const TCP_CLIENT: &str = r#"
import socket, sys, time
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tries = int(sys.argv[4]) if len(sys.argv) > 4 else 50
out = []
for i in range(n):
    for _ in range(tries):
        try:
            c = socket.create_connection((addr, port), timeout=3); break
        except OSError:
            time.sleep(0.2)
    else:
        out.append("failed"); continue
    c.sendall(b"hi"); out.append(c.recv(100).decode() or "empty"); c.close()
print("\n".join(out))
"#;

/// Echoes UDP datagrams on 5002 for a few seconds.
const UDP_ECHO: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5002)); s.settimeout(4)
try:
    while True:
        d, peer = s.recvfrom(2048); s.sendto(d + peer[0].encode(), peer)
except socket.timeout:
    pass
"#;

/// Sends 20 datagrams to ADDR:5002; prints how many came back and the source they saw.
const UDP_CLIENT: &str = r#"
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1)
ok, seen = 0, set()
time.sleep(0.3)
for i in range(20):
    s.sendto(b"%04d" % i, (sys.argv[1], 5002))
    try:
        d, _ = s.recvfrom(2048); ok += d[:4] == b"%04d" % i; seen.add(d[4:].decode())
    except socket.timeout:
        pass
print(ok, " ".join(sorted(seen)))
"#;

fn error_count(v: &serde_json::Value, node: &str, name: &str) -> u64 {
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"] == node && e["name"] == name)
        .map(|e| e["count"].as_u64().unwrap())
        .sum()
}

fn internet_and_services(workers: usize) {
    let Some(lab) = Lab::new(workers) else { return };
    let pod1 = &lab.pods[0];

    // A pod reaches a TCP server on the internet, which sees only the node's address.
    let server = python(&lab.inet, TCP_SERVER, &["inet", "5001", "3"]);
    let got = wait_out(python(pod1, TCP_CLIENT, &["192.0.2.254", "5001", "3"]));
    assert_eq!(got, "inet 192.0.2.1\ninet 192.0.2.1\ninet 192.0.2.1");
    assert_eq!(wait_out(server), "192.0.2.1", "only the node address");
    // Ping and UDP.
    assert!(pod1.ping("192.0.2.254", 3) >= 2, "ping through SNAT");
    let echo = python(&lab.inet, UDP_ECHO, &[]);
    let got = wait_out(python(pod1, UDP_CLIENT, &["192.0.2.254"]));
    let _ = wait_out(echo);
    let (n, seen) = got.split_once(' ').unwrap_or((&got, ""));
    assert!(n.parse::<u32>().unwrap() >= 18, "UDP replies: {got}");
    assert_eq!(seen, "192.0.2.1");
    let sessions = lab.json(&["show", "nat44", "sessions", "addr", "10.1.1.2"]);
    let kinds: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert!(
        sessions.as_array().unwrap().len() >= 5 && kinds.iter().all(|k| *k == "dynamic"),
        "3 TCP, 1 UDP, 1 ICMP: {sessions}"
    );
    assert!(sessions
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["outside"]["src"] == "192.0.2.1"));

    // Unsolicited traffic to the node address is dropped.
    let errors_before = error_count(&lab.json(&["show", "errors"]), "nat44-out2in", "no-session");
    let got = wait_out(python(
        &lab.inet,
        TCP_CLIENT,
        &["192.0.2.1", "6000", "1", "1"],
    ));
    assert_eq!(got, "failed");
    let errors = lab.json(&["show", "errors"]);
    assert!(
        error_count(&errors, "nat44-out2in", "no-session") > errors_before,
        "{errors}"
    );

    // A service: 10.96.0.10:8080 balances over pod2 and pod3; they see pod1's address.
    lab.ok(&[
        "nat44",
        "mapping",
        "add",
        "10.96.0.10:8080/tcp",
        "10.1.2.2:8080",
        "10.1.3.2:8080",
        "--tag",
        "default/web",
    ]);
    let s2 = python(&lab.pods[1], TCP_SERVER, &["pod2", "8080", "12"]);
    let s3 = python(&lab.pods[2], TCP_SERVER, &["pod3", "8080", "12"]);
    let got = wait_out(python(pod1, TCP_CLIENT, &["10.96.0.10", "8080", "12"]));
    let answers: Vec<&str> = got.lines().collect();
    assert_eq!(answers.len(), 12, "{got}");
    assert!(answers.contains(&"pod2 10.1.1.2"), "pod2 used: {got}");
    assert!(answers.contains(&"pod3 10.1.1.2"), "pod3 used: {got}");
    assert!(
        answers.iter().all(|a| a.ends_with(" 10.1.1.2")),
        "the backends see the client pod: {got}"
    );
    assert_eq!(wait_out(s2), "10.1.1.2");
    assert_eq!(wait_out(s3), "10.1.1.2");
    let maps = lab.json(&["show", "nat44", "mappings"]);
    assert!(
        maps[0]["sessions"].as_u64().unwrap() >= 12,
        "the mapping accounts for its sessions: {maps}"
    );

    // A service whose only backend is the client itself.
    lab.ok(&[
        "nat44",
        "mapping",
        "add",
        "10.96.0.11:9090/tcp",
        "10.1.1.2:9090",
    ]);
    let me = python(pod1, TCP_SERVER, &["self", "9090", "2"]);
    let got = wait_out(python(pod1, TCP_CLIENT, &["10.96.0.11", "9090", "2"]));
    let _ = wait_out(me);
    assert!(
        got.lines().count() == 2 && got.lines().all(|l| l.starts_with("self ")),
        "{got}"
    );
    let loopback = lab.json(&["show", "nat44", "sessions", "kind", "loopback"]);
    assert!(!loopback.as_array().unwrap().is_empty(), "{loopback}");

    // The summary and text tables explain it all.
    let summary = lab.json(&["show", "nat44", "summary"]);
    let s = &summary[0];
    assert_eq!(s["workers"].as_array().unwrap().len(), workers);
    assert!(s["addresses"][0]["ports_tcp"].as_u64().unwrap() >= 1, "{s}");
    let text = lab.ok(&["show", "nat44", "sessions", "--detail"]);
    assert!(text.contains("mapping 10.96.0.10:8080"), "{text}");
    let text = lab.ok(&["show", "nat44", "addresses"]);
    assert!(text.starts_with("192.0.2.1 (interface"), "{text}");

    // Bad input is refused whole, naming what is wrong.
    let o = lab.ctl(&[
        "nat44",
        "mapping",
        "add",
        "10.96.0.12:80/tcp",
        "10.1.1.2:80@0",
    ]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("weight 0"),
        "{o:?}"
    );
    let o = lab.ctl(&["nat44", "interface", "9", "inside"]);
    assert!(!o.status.success());
    assert_eq!(
        lab.json(&["show", "nat44", "mappings"])
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn pods_reach_the_internet_and_services_through_nat44() {
    internet_and_services(1);
}

#[test]
fn the_same_on_two_workers() {
    internet_and_services(2);
}
