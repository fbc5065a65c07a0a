//! vpgd forwarding real traffic between two hosts in their own network namespaces: the hosts
//! reach each other only through vpgd's AF_PACKET interfaces in a third namespace. Needs root and
//! iproute2, ping, python3 (scripts/setup.sh); skipped with the reason printed only where the
//! kernel refuses namespaces.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};
use vpg_io::netns::{self, NetNs};

const VPGD: &str = env!("CARGO_BIN_EXE_vpgd");
const VPGCTL: &str = env!("CARGO_BIN_EXE_vpgctl");

struct Lab {
    a: NetNs,
    b: NetNs,
    r: NetNs,
    dir: PathBuf,
    rb: String,
    hb: String,
    vpgd: Option<Child>,
}

impl Lab {
    fn new() -> Option<Self> {
        Self::with_workers(1)
    }

    fn with_workers(workers: usize) -> Option<Self> {
        if let Some(why) = netns::unavailable() {
            eprintln!("skipping vpgd namespace test: {why}");
            return None;
        }
        let (a, b, r) = (
            NetNs::new("vha").unwrap(),
            NetNs::new("vhb").unwrap(),
            NetNs::new("vr").unwrap(),
        );
        let (ha, ra, hb, rb) = (
            netns::unique("ha"),
            netns::unique("ra"),
            netns::unique("hb"),
            netns::unique("rb"),
        );
        netns::veth(&ha, &a, &ra, &r).unwrap();
        netns::veth(&hb, &b, &rb, &r).unwrap();
        for (ns, dev, addr, gw) in [
            (&a, &ha, "10.0.1.2/24", "10.0.1.1"),
            (&b, &hb, "10.0.2.2/24", "10.0.2.1"),
        ] {
            ns.exec(&["ip", "addr", "add", addr, "dev", dev]).unwrap();
            ns.exec(&["ip", "route", "add", "default", "via", gw])
                .unwrap();
            // A host's kernel would hand a veth 64 KiB TCP segments for the peer to split (GSO);
            // vpg's buffers hold one frame, so hosts attached to it segment themselves, as pods
            // on Contiv-VPP do. (Checksum offload may stay on: af-packet-input completes those.)
            ns.exec(&["ethtool", "-K", dev, "tso", "off", "gso", "off"])
                .unwrap();
        }
        // The router namespace's kernel must not answer for or route these subnets itself.
        r.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"]).unwrap();
        for d in [&ra, &rb] {
            let _ = r.exec(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{d}.disable_ipv6=1"),
            ]);
        }
        let dir = std::env::temp_dir().join(netns::unique("vpgd-test-"));
        std::fs::create_dir_all(&dir).unwrap();
        let cfg = format!(
            "[workers]\ncount = {workers}\n[buffers]\nper_worker = 8192\n[api]\nsocket = \"{d}/api.sock\"\n[stats]\nsegment = \"{d}/stats\"\n\
             [[interface]]\nhost_if = \"{ra}\"\nname = \"up0\"\naddresses = [\"10.0.1.1/24\"]\n\
             [[interface]]\nhost_if = \"{rb}\"\nname = \"up1\"\naddresses = [\"10.0.2.1/24\"]\n",
            d = dir.display(),
            workers = workers
        );
        std::fs::write(dir.join("vpgd.toml"), cfg).unwrap();
        let mut lab = Lab {
            a,
            b,
            r,
            dir,
            rb,
            hb,
            vpgd: None,
        };
        lab.start();
        Some(lab)
    }

    fn start(&mut self) {
        let sock = self.dir.join("api.sock");
        let _ = std::fs::remove_file(&sock);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.r.name, VPGD, "--config"])
            .arg(self.dir.join("vpgd.toml"))
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.vpgd = Some(child);
        let t0 = Instant::now();
        while !sock.exists() {
            assert!(t0.elapsed() < Duration::from_secs(20), "vpgd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(c) = self.vpgd.take() {
            common::terminate(c);
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(VPGCTL)
            .arg("--socket")
            .arg(self.dir.join("api.sock"))
            .arg("--stats")
            .arg(self.dir.join("stats"))
            .args(args)
            .output()
            .unwrap()
    }

    fn ctl_json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let o = self.ctl(&a);
        assert!(
            o.status.success(),
            "vpgctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        serde_json::from_slice(&o.stdout).unwrap()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ping(ns: &NetNs, dst: &str, count: u32) -> u32 {
    ns.ping(dst, count)
}

const TCP_SERVER: &str = r#"
import socket, hashlib, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5001)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30); h = hashlib.sha256(); n = 0
while True:
    d = c.recv(65536)
    if not d: break
    h.update(d); n += len(d)
print(n, h.hexdigest())
"#;

const TCP_CLIENT: &str = r#"
import socket, hashlib, random, time
r = random.Random(7); data = bytes(r.getrandbits(8) for _ in range(1 << 20)) * 8
for _ in range(50):
    try:
        c = socket.create_connection(("10.0.2.2", 5001), timeout=5); break
    except OSError:
        time.sleep(0.2)
c.sendall(data); c.close()
print(len(data), hashlib.sha256(data).hexdigest())
"#;

const UDP_SERVER: &str = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 5002)); s.settimeout(3)
ok = 0
try:
    while True:
        d, _ = s.recvfrom(2048)
        i = int.from_bytes(d[:4], "big")
        if len(d) == 1000 and d[4:] == bytes([i % 251]) * 996: ok += 1
except socket.timeout:
    pass
print(ok)
"#;

const UDP_CLIENT: &str = r#"
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(500):
    s.sendto(i.to_bytes(4, "big") + bytes([i % 251]) * 996, ("10.0.2.2", 5002))
    if i % 50 == 0: time.sleep(0.01)
print(500)
"#;

fn python(ns: &NetNs, script: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "python3", "-c", script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn wait_out(c: Child) -> String {
    let o = c.wait_with_output().unwrap();
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn counter(v: &serde_json::Value, name: &str, field: &str) -> u64 {
    v.as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .map(|d| d["counters"][field].as_u64().unwrap())
        .unwrap_or_else(|| panic!("no interface {name} in {v}"))
}

fn error_count(v: &serde_json::Value, node: &str, name: &str) -> u64 {
    v.as_array()
        .unwrap()
        .iter()
        .filter(|e| e["node"] == node && e["name"] == name)
        .map(|e| e["count"].as_u64().unwrap())
        .sum()
}

#[test]
fn hosts_talk_only_through_vpgd_and_counters_show_it() {
    let Some(lab) = Lab::new() else { return };
    // Ping: the first request may be consumed by glean while vpgd ARPs for host B.
    let got = ping(&lab.a, "10.0.2.2", 10);
    assert!(got >= 8, "ping through vpgd: {got}/10 replies");
    // vpgd itself answers pings to its addresses.
    assert_eq!(ping(&lab.a, "10.0.1.1", 3), 3);
    assert!(ping(&lab.a, "10.0.2.1", 3) >= 2);

    // A TCP transfer of 8 MiB, content checked end to end.
    let server = python(&lab.b, TCP_SERVER);
    std::thread::sleep(Duration::from_millis(300));
    let client = wait_out(python(&lab.a, TCP_CLIENT));
    let received = wait_out(server);
    assert!(!client.is_empty(), "client failed");
    assert_eq!(received, client, "bytes and sha256 match end to end");

    // UDP: 500 datagrams of 1,000 bytes, counted and checked by the receiver.
    let server = python(&lab.b, UDP_SERVER);
    std::thread::sleep(Duration::from_millis(300));
    let sent = wait_out(python(&lab.a, UDP_CLIENT));
    let got = wait_out(server);
    assert_eq!(sent, "500");
    let n: u32 = got.parse().unwrap_or(0);
    assert!(n >= 490, "UDP datagrams received intact: {n}/500");

    // vpgctl: interface counters match the traffic, runtime shows the nodes that moved it.
    let itfs = lab.ctl_json(&["show", "interfaces"]);
    assert!(counter(&itfs, "up0", "rx_bytes") > 8 << 20, "{itfs}");
    assert!(counter(&itfs, "up1", "tx_bytes") > 8 << 20);
    assert!(counter(&itfs, "up1", "rx_packets") > 10);
    let rt = lab.ctl_json(&["show", "runtime"]);
    for node in [
        "af-packet-input",
        "ethernet-input",
        "ip4-input",
        "ip4-lookup",
        "ip4-rewrite",
        "interface-output",
    ] {
        let v: u64 = rt
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["node"] == node)
            .map(|r| r["vectors"].as_u64().unwrap())
            .sum();
        assert!(v > 5000, "{node} saw {v} packets");
    }
    let fib = lab.ctl_json(&["show", "fib"]);
    assert!(
        fib.to_string().contains("10.0.2.2/32"),
        "host B learned as a neighbor: {fib}"
    );
    let text = lab.ctl(&["show", "interfaces"]);
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(
        t.contains("up0") && t.contains("total") && t.contains("MB"),
        "{t}"
    );
}

#[test]
fn bad_api_input_changes_nothing() {
    let Some(lab) = Lab::new() else { return };
    let before = lab.ctl_json(&["show", "fib"]);
    for (args, want) in [
        (
            vec!["route", "add", "10.9.0.0/16", "via", "10.0.2.2", "7"],
            "interface 7",
        ),
        (vec!["route", "add", "10.9.0.1/16", "drop"], "host bits"),
        (vec!["set", "up0", "mtu", "20"], "mtu"),
        (vec!["create", "af-packet", "nosuchif0"], "nosuchif0"),
    ] {
        let o = lab.ctl(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    lab.ctl(&["route", "add", "10.8.0.0/16", "drop"]);
    let dup = lab.ctl(&["route", "add", "10.8.0.0/16", "drop"]);
    assert!(
        String::from_utf8_lossy(&dup.stderr).contains("route 10.8.0.0/16 already exists"),
        "{}",
        String::from_utf8_lossy(&dup.stderr)
    );
    lab.ctl(&["route", "del", "10.8.0.0/16"]);
    // A transaction with one bad item applies none.
    let file = lab.dir.join("txn.yaml");
    std::fs::write(
        &file,
        "- {op: add_route, prefix: 10.5.0.0/16, path: {kind: drop}}\n- {op: add_route, prefix: 10.6.0.0/16, path: {kind: via, next_hop: 10.0.2.2, sw_if: 9}}\n",
    )
    .unwrap();
    let o = lab.ctl(&["apply", file.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("item 1"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(lab.ctl_json(&["show", "fib"]), before, "nothing changed");
    // Garbage and a wrong version on the raw socket get error replies.
    let sock = lab.dir.join("api.sock");
    let mut c = vpg_api::Client::connect(&sock, "test").unwrap();
    assert!(matches!(c.raw(b"garbage"), Ok(vpg_api::Reply::Error(_))));
    assert!(vpg_api::Client::connect_as(&sock, "old", 99, 0).is_err());
    // And the good transaction applies whole.
    std::fs::write(&file, "items:\n- {op: add_route, prefix: 10.5.0.0/16, path: {kind: drop}}\n- {op: add_route, prefix: 10.6.0.0/16, path: {kind: attached, sw_if: 1}}\n").unwrap();
    let o = lab.ctl(&["apply", file.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let fib = lab.ctl_json(&["show", "fib"]).to_string();
    assert!(fib.contains("10.5.0.0/16") && fib.contains("10.6.0.0/16"));
}

const RAW_SENDER: &str = r#"
import socket, sys
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((sys.argv[1], 0))
dst = bytes.fromhex(sys.argv[2].replace(":", ""))
src = b"\x02\x00\x00\x00\x00\x99"
s.send(dst + src + b"\x08\x00")                                   # IPv4 ethertype, no IPv4 header
s.send(dst + src + b"\x08\x00" + b"\x45\x00\x00\x1c" + b"\x00" * 24)  # bad checksum
s.send(dst + src + b"\x88\xb5" + b"x" * 50)                        # unknown ethertype
s.send(dst + src + b"\x08\x00" + b"\x45" + b"\x00" * 4000)          # larger than a buffer
"#;

#[test]
fn malformed_and_oversized_frames_are_counted_and_dropped() {
    let Some(lab) = Lab::new() else { return };
    lab.b
        .exec(&["ip", "link", "set", &lab.hb, "mtu", "9000"])
        .unwrap();
    lab.r
        .exec(&["ip", "link", "set", &lab.rb, "mtu", "9000"])
        .unwrap();
    let itfs = lab.ctl_json(&["show", "interfaces"]);
    let mac = itfs
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "up1")
        .unwrap()["mac"]
        .as_str()
        .unwrap()
        .to_string();
    let o = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.b.name,
            "python3",
            "-c",
            RAW_SENDER,
            &lab.hb,
            &mac,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let e = lab.ctl_json(&["show", "errors"]);
        let counts = [
            error_count(&e, "ip4-input", "too-short"),
            error_count(&e, "ip4-input", "bad-checksum"),
            // The hosts' IPv6 chatter counts here too.
            error_count(&e, "ethernet-input", "unknown-ethertype").min(1),
            error_count(&e, "af-packet-input", "oversized"),
        ];
        if counts == [1, 1, 1, 1] {
            break;
        }
        assert!(Instant::now() < deadline, "errors: {e}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = String::from_utf8_lossy(&lab.ctl(&["show", "errors"]).stdout).to_string();
    assert!(text.contains("IPv4 header checksum is wrong"), "{text}");
}

#[test]
fn traffic_resumes_after_vpgd_restarts() {
    let Some(mut lab) = Lab::new() else { return };
    assert!(ping(&lab.a, "10.0.2.2", 5) >= 3);
    // Ping every 100 ms for 6 s while vpgd restarts in the middle.
    let pinger = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.a.name,
            "ping",
            "-n",
            "-q",
            "-c",
            "60",
            "-i",
            "0.1",
            "-W",
            "1",
            "10.0.2.2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let t0 = Instant::now();
    lab.stop();
    lab.start();
    let restart = t0.elapsed();
    let out = wait_out(pinger);
    let received: u32 = out
        .split(", ")
        .find_map(|p| {
            p.strip_suffix(" received")
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0);
    eprintln!(
        "vpgd restart took {restart:?}; ping: {received}/60 replies, {} lost",
        60 - received
    );
    assert!(received >= 30, "traffic resumed after the restart: {out}");
    // The last pings all got through: forwarding is back.
    assert_eq!(ping(&lab.a, "10.0.2.2", 5), 5);
}

#[test]
fn two_workers_share_the_interfaces_through_fanout() {
    let Some(lab) = Lab::with_workers(2) else {
        return;
    };
    assert!(ping(&lab.a, "10.0.2.2", 10) >= 8);
    let server = python(&lab.b, TCP_SERVER);
    std::thread::sleep(Duration::from_millis(300));
    let client = wait_out(python(&lab.a, TCP_CLIENT));
    assert!(!client.is_empty());
    assert_eq!(wait_out(server), client, "content intact with two workers");
    let rt = lab.ctl_json(&["show", "runtime"]);
    let workers: std::collections::BTreeSet<u64> = rt
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["node"] == "af-packet-input")
        .map(|r| r["worker"].as_u64().unwrap())
        .collect();
    assert_eq!(workers.len(), 2, "both workers poll: {rt}");
}

#[test]
fn malformed_config_exits_non_zero_naming_the_field() {
    let dir = std::env::temp_dir().join(netns::unique("vpgd-badcfg-"));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("bad.toml");
    std::fs::write(&f, "[workers]\ncount = 0\n").unwrap();
    let o = Command::new(VPGD).arg("--config").arg(&f).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("workers.count: 0 is out of range"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::write(&f, "[buffers]\nper_wroker = 5\n").unwrap();
    let o = Command::new(VPGD).arg("--config").arg(&f).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("per_wroker"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(VPGD)
        .arg("--config")
        .arg(dir.join("missing.toml"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    std::fs::remove_dir_all(&dir).unwrap();
}

const TCP_LISTEN_TWO: &str = r#"
import socket, select, time
ss = []
for p in (5001, 5003):
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", p)); s.listen(4); ss.append(s)
end = time.time() + 12; n = 0
while time.time() < end:
    r, _, _ = select.select(ss, [], [], 0.5)
    for s in r:
        c, _ = s.accept(); c.sendall(b"hello"); c.close(); n += 1
print(n)
"#;

const TCP_TRY_TWO: &str = r#"
import socket, time
time.sleep(0.5)
out = []
for p in (5001, 5003):
    try:
        c = socket.create_connection(("10.0.2.2", p), timeout=2)
        out.append("%d:%s" % (p, c.recv(5).decode())); c.close()
    except OSError:
        out.append("%d:blocked" % p)
print(" ".join(out))
"#;

#[test]
fn acl_blocks_one_tcp_port_allows_another_and_reflects() {
    let Some(lab) = Lab::new() else { return };
    assert!(ping(&lab.a, "10.0.2.2", 3) >= 2, "baseline reachability");
    // ACL 1 on up1's output (towards host B): port 5003 denied, everything else permitted.
    for args in [
        &[
            "acl",
            "add",
            "1",
            "--tag",
            "block-5003",
            "--rule",
            "deny proto tcp dport 5003",
            "--rule",
            "permit",
        ][..],
        &["acl", "set", "up1", "out", "1"][..],
    ] {
        let o = lab.ctl(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let server = python(&lab.b, TCP_LISTEN_TWO);
    let got = wait_out(python(&lab.a, TCP_TRY_TWO));
    assert_eq!(got, "5001:hello 5003:blocked");
    let _ = wait_out(server);
    let acl = lab.ctl_json(&["show", "acl", "1"]);
    let hits = &acl[0]["hits"];
    let deny_hits = hits[0].as_u64().unwrap();
    let permit_hits = hits[1].as_u64().unwrap();
    assert!(
        deny_hits >= 1,
        "the SYNs to 5003 (with retries) hit rule 0: {acl}"
    );
    assert!(
        permit_hits >= 3,
        "SYN, ACK and data to 5001 hit rule 1: {acl}"
    );
    let errors = lab.ctl_json(&["show", "errors"]);
    assert_eq!(
        error_count(&errors, "acl-out-ip4", "deny"),
        deny_hits,
        "{errors}"
    );
    // acl match names the rule.
    let m = lab.ctl(&[
        "acl",
        "match",
        "up1",
        "out",
        "tcp",
        "10.0.1.2:40000",
        "10.0.2.2:5003",
    ]);
    let text = String::from_utf8_lossy(&m.stdout);
    assert!(
        text.starts_with("deny") && text.contains("acl 1 (block-5003) rule 0"),
        "{text}"
    );

    // Reflect: host A's own connections are remembered on up0's input; up0's output denies
    // everything else, so B can answer A but not start anything.
    for args in [
        &["acl", "set", "up1", "out"][..],
        &["acl", "add", "10", "--rule", "permit+reflect"][..],
        &["acl", "add", "20", "--rule", "deny"][..],
        &["acl", "set", "up0", "in", "10"][..],
        &["acl", "set", "up0", "out", "20"][..],
    ] {
        let o = lab.ctl(args);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let got = ping(&lab.a, "10.0.2.2", 3);
    assert!(
        got >= 2,
        "A's pings are answered through the session: {got}/3; errors {}; sessions {}",
        lab.ctl_json(&["show", "errors"]),
        lab.ctl_json(&["show", "acl", "sessions"])
    );
    assert_eq!(ping(&lab.b, "10.0.1.2", 2), 0, "B cannot reach A");
    let sessions = lab.ctl_json(&["show", "acl", "sessions"]);
    assert!(
        sessions
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["proto"] == 1 && s["src"] == "10.0.1.2" && s["dst"] == "10.0.2.2"),
        "{sessions}"
    );
    // Deleting an ACL in use is refused, naming the users.
    let o = lab.ctl(&["acl", "del", "20"]);
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("in use"),
        "{o:?}"
    );
    // A bad rule is refused whole, naming the ACL and rule.
    let o = lab.ctl(&[
        "acl",
        "add",
        "20",
        "--rule",
        "permit",
        "--rule",
        "deny proto tcp dport 90-80",
    ]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("acl 20 rule 1") && err.contains("inverted"),
        "{err}"
    );
    assert_eq!(
        lab.ctl_json(&["show", "acl", "20"])[0]["rules"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}
