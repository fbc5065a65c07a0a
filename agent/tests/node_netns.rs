//! vpg-agent driving a real vpgd on one node, with pods in network namespaces: two pods
//! (veths whose host ends vpgd attaches, CNI records written as vpg-cni writes them), an
//! "internet" namespace behind the uplink, cluster state from a manifest directory (the
//! embedded store, the reflector inside the agent), and a second node known only from its
//! record (a tunnel and a route towards it). The agent reaches vpgd through a proxy in this
//! test that counts configuration requests.
//!
//! Checked, in one sequence: pod to pod and pod to internet (SNAT to the node address) and a
//! service work; an agent restart with nothing changed makes zero configuration calls and loses
//! no packet of a ping running through it; a policy added while the agent is down is enforced
//! after it starts; a vpgd restart is noticed and replayed, and traffic resumes (the gap is
//! printed). Encryption is on (the IPsec key secret in the manifests): the SAs and protect rule
//! towards n2 are part of the configuration the restart must leave alone; after the vpgd
//! restart the outbound key (used before) goes in again and continues after the sequence
//! numbers vpgd's sequence file reserved; after a restart that lost the file it is withheld
//! until the key is rotated. Needs root, iproute2, ping, python3 (scripts/setup.sh); skipped
//! with the reason printed only where the kernel refuses namespaces.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use vpg_io::netns::{self, NetNs};

mod common;

use common::{terminate, write_node_toml, write_vpgd_toml, AGENT};

/// vpgd, as the workspace builds it now.
fn vpgd_bin() -> PathBuf {
    common::bins().0
}

/// Forwards connections from `listen` to `upstream`, counting configuration requests
/// (`config` and `transaction`) and all requests.
struct CountingProxy {
    config: Arc<AtomicU64>,
    requests: Arc<AtomicU64>,
}

impl CountingProxy {
    fn start(listen: &Path, upstream: PathBuf) -> CountingProxy {
        let l = UnixListener::bind(listen).unwrap();
        let config = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let (c, r) = (config.clone(), requests.clone());
        std::thread::spawn(move || {
            for client in l.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = UnixStream::connect(&upstream) else {
                    // vpgd is down: the agent sees the connection close.
                    continue;
                };
                let (c, r) = (c.clone(), r.clone());
                let (mut cr, mut sw) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                std::thread::spawn(move || {
                    // Client to server, frame by frame: a 4-byte length, then JSON.
                    loop {
                        let mut len = [0u8; 4];
                        if cr.read_exact(&mut len).is_err() {
                            break;
                        }
                        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                        if cr.read_exact(&mut body).is_err() {
                            break;
                        }
                        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) {
                            match v["request"].as_str() {
                                Some("config") | Some("transaction") => {
                                    c.fetch_add(1, Ordering::SeqCst);
                                    r.fetch_add(1, Ordering::SeqCst);
                                }
                                Some(_) => {
                                    r.fetch_add(1, Ordering::SeqCst);
                                }
                                None => {}
                            }
                        }
                        if sw
                            .write_all(&len)
                            .and_then(|()| sw.write_all(&body))
                            .is_err()
                        {
                            break;
                        }
                    }
                    let _ = sw.shutdown(std::net::Shutdown::Both);
                });
                let (mut sr, mut cw) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut sr, &mut cw);
                    let _ = cw.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        CountingProxy { config, requests }
    }

    fn config_calls(&self) -> u64 {
        self.config.load(Ordering::SeqCst)
    }
}

/// `vpg` + 12 hex digits, unique per process and call: vpg-cni's host veth naming.
fn pod_ifname(n: u32) -> String {
    format!("vpg{:06x}{:06x}", std::process::id() & 0xff_ffff, n)
}

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Pod
metadata: {name: pod1, namespace: default, labels: {app: a}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.1.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: pod2, namespace: default, labels: {app: b}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.1.1.3}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.10
  selector: {app: b}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: default}
subsets:
- addresses: [{ip: 10.1.1.3, nodeName: n1}]
  ports: [{name: http, port: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Secret
metadata: {name: vpg-ipsec-keys, namespace: kube-system}
stringData: {keys: "1+ rfc4106(gcm(aes)) 6a0b1c2d3e4f5061728394a5b6c7d8e9f0011223 128"}
"#;

/// The same secret with a new key id and key (a rotation).
const KEY2: &str = r#"
apiVersion: v1
kind: Secret
metadata: {name: vpg-ipsec-keys, namespace: kube-system}
stringData: {keys: "2+ rfc4106(gcm(aes)) 11223344556677889900aabbccddeeff12345678 128"}
"#;

const DENY_B: &str = r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-b, namespace: default}
spec:
  podSelector: {matchLabels: {app: b}}
  policyTypes: [Ingress]
"#;

struct Lab {
    pods: Vec<NetNs>,
    inet: NetNs,
    node: NetNs,
    dir: PathBuf,
    vpgd: Option<Child>,
    agent: Option<Child>,
    proxy: CountingProxy,
}

impl Lab {
    fn new() -> Option<Lab> {
        if let Some(why) = netns::unavailable() {
            eprintln!("skipping agent namespace test: {why}");
            return None;
        }
        let node = NetNs::new("an").unwrap();
        let inet = NetNs::new("ainet").unwrap();
        let dir = std::env::temp_dir().join(netns::unique("vpg-agent-"));
        std::fs::create_dir_all(dir.join("m")).unwrap();
        std::fs::create_dir_all(dir.join("cni/pods")).unwrap();
        std::fs::write(dir.join("m/cluster.yaml"), MANIFESTS).unwrap();
        std::fs::write(dir.join("m/nodes.yaml"), common::NODES).unwrap();
        let mut pods = Vec::new();
        for (k, ip) in ["10.1.1.2", "10.1.1.3"].into_iter().enumerate() {
            let pod = NetNs::new("apod").unwrap();
            let host = pod_ifname(k as u32);
            netns::veth("eth0", &pod, &host, &node).unwrap();
            pod.exec(&["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"])
                .unwrap();
            pod.exec(&["ip", "route", "add", "10.1.1.1", "dev", "eth0"])
                .unwrap();
            pod.exec(&[
                "ip", "route", "add", "default", "via", "10.1.1.1", "dev", "eth0",
            ])
            .unwrap();
            // vpg's buffers hold one frame: hosts segment themselves.
            pod.exec(&["ethtool", "-K", "eth0", "tso", "off", "gso", "off"])
                .unwrap();
            let mac = netns::mac_of(&pod, "eth0").unwrap();
            let mac = mac.map(|b| format!("{b:02x}")).join(":");
            // The record vpg-cni writes (docs/cni.md).
            let name = format!("pod{}", k + 1);
            let rec = serde_json::json!({
                "version": 1, "network": "vpg", "containerId": format!("c{k}"),
                "podNamespace": "default", "podName": name, "podUid": null,
                "netns": format!("/var/run/netns/{}", pod.name), "ifname": "eth0",
                "mac": mac, "hostIfname": host, "hostMac": "02:00:00:00:00:01",
                "hostNetns": null, "ip": ip, "prefixLen": 32, "podCidr": "10.1.1.0/24",
                "gateway": "10.1.1.1", "mtu": 1500, "created": "2024-01-01T00:00:00Z"
            });
            std::fs::write(
                dir.join(format!("cni/pods/c{k}@eth0.json")),
                serde_json::to_vec_pretty(&rec).unwrap(),
            )
            .unwrap();
            pods.push(pod);
        }
        let up = netns::unique("aup");
        netns::veth("eth0", &inet, &up, &node).unwrap();
        inet.exec(&["ip", "addr", "add", "192.0.2.254/24", "dev", "eth0"])
            .unwrap();
        // A server beyond the gateway: the node network itself is never NATed.
        inet.exec(&["ip", "addr", "add", "203.0.113.1/32", "dev", "lo"])
            .unwrap();
        inet.exec(&["ethtool", "-K", "eth0", "tso", "off", "gso", "off"])
            .unwrap();
        node.exec(&["sysctl", "-qw", "net.ipv4.ip_forward=0"])
            .unwrap();
        write_vpgd_toml(&dir, 8192);
        write_node_toml(
            &dir,
            "proxy.sock",
            &up,
            &format!(
                "max_backoff_ms = 500\n[encryption]\nenabled = true\nswitch_delay_ms = 300\ngrace_s = 2\nused_keys = \"{}/esp-used.json\"\n",
                dir.display()
            ),
        );
        let proxy = CountingProxy::start(&dir.join("proxy.sock"), dir.join("api.sock"));
        let mut lab = Lab {
            pods,
            inet,
            node,
            dir,
            vpgd: None,
            agent: None,
            proxy,
        };
        lab.start_vpgd();
        Some(lab)
    }

    fn start_vpgd(&mut self) {
        let sock = self.dir.join("api.sock");
        let _ = std::fs::remove_file(&sock);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.node.name])
            .arg(vpgd_bin())
            .arg("--config")
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

    fn stop_vpgd(&mut self) {
        if let Some(c) = self.vpgd.take() {
            terminate(c);
        }
    }

    fn start_agent(&mut self) {
        let child = Command::new(AGENT)
            .args(["run", "--config"])
            .arg(self.dir.join("node.toml"))
            .env("RUST_LOG", "info")
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.agent = Some(child);
    }

    fn stop_agent(&mut self) {
        if let Some(c) = self.agent.take() {
            terminate(c);
        }
    }

    /// vpgctl's output (diagnostics for failures).
    fn ctl(&self, args: &[&str]) -> String {
        let bin = vpgd_bin().with_file_name("vpgctl");
        let o = Command::new(bin)
            .arg("--socket")
            .arg(self.dir.join("api.sock"))
            .arg("--stats")
            .arg(self.dir.join("stats"))
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

    /// `vpgctl --json ARGS`, parsed.
    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut a = vec!["--json"];
        a.extend_from_slice(args);
        let out = self.ctl(&a);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("vpgctl {args:?}: {e}: {out}"))
    }

    /// What vpgd shows, for a failure message.
    fn diag(&self) -> String {
        [
            "interfaces",
            "fib",
            "neighbors",
            "errors",
            "acl",
            "nat44 sessions",
            "nat44 interfaces",
        ]
        .iter()
        .map(|t| {
            let mut a = vec!["show"];
            a.extend(t.split(' '));
            format!("== show {t}\n{}", self.ctl(&a))
        })
        .collect()
    }

    fn status(&self) -> Option<serde_json::Value> {
        let o = Command::new(AGENT)
            .args(["status", "--json", "--socket"])
            .arg(self.dir.join("agent.sock"))
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| serde_json::from_slice(&o.stdout).ok())
            .flatten()
    }

    /// Waits until the agent reports in-sync with at least `resyncs` resyncs done.
    fn wait_in_sync(&self, resyncs: u64) -> serde_json::Value {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.status() {
                if s["state"] == "in-sync" && s["resyncs"].as_u64().unwrap_or(0) >= resyncs {
                    return s;
                }
                assert!(
                    t0.elapsed() < Duration::from_secs(20),
                    "agent not in sync: {s:#}"
                );
            }
            assert!(t0.elapsed() < Duration::from_secs(20), "no agent status");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Lab {
    /// A pod namespace with its veth, addressed as vpg-cni would; returns it and its record.
    fn add_pod(&self, k: u32, name: &str, ip: &str) -> (NetNs, serde_json::Value) {
        let pod = NetNs::new("apod").unwrap();
        let host = pod_ifname(k);
        netns::veth("eth0", &pod, &host, &self.node).unwrap();
        for args in [
            &["ip", "addr", "add", &format!("{ip}/32"), "dev", "eth0"][..],
            &["ip", "route", "add", "10.1.1.1", "dev", "eth0"][..],
            &[
                "ip", "route", "add", "default", "via", "10.1.1.1", "dev", "eth0",
            ][..],
            // vpg's buffers hold one frame: hosts segment themselves.
            &["ethtool", "-K", "eth0", "tso", "off", "gso", "off"][..],
        ] {
            pod.exec(args).unwrap();
        }
        let mac = netns::mac_of(&pod, "eth0").unwrap();
        let mac = mac.map(|b| format!("{b:02x}")).join(":");
        // The record vpg-cni writes (docs/cni.md).
        let rec = serde_json::json!({
            "version": 1, "network": "vpg", "containerId": format!("c{k}"),
            "podNamespace": "default", "podName": name, "podUid": null,
            "netns": format!("/var/run/netns/{}", pod.name), "ifname": "eth0",
            "mac": mac, "hostIfname": host, "hostMac": "02:00:00:00:00:01",
            "hostNetns": null, "ip": ip, "prefixLen": 32, "podCidr": "10.1.1.0/24",
            "gateway": "10.1.1.1", "mtu": 1500, "created": "2024-01-01T00:00:00Z"
        });
        (pod, rec)
    }

    fn write_record(&self, k: u32, rec: &serde_json::Value) {
        // As vpg-cni does: a hidden temporary file renamed into place.
        let tmp = self.dir.join(format!("cni/pods/.c{k}@eth0.json.tmp"));
        std::fs::write(&tmp, serde_json::to_vec_pretty(rec).unwrap()).unwrap();
        std::fs::rename(tmp, self.dir.join(format!("cni/pods/c{k}@eth0.json"))).unwrap();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        self.stop_agent();
        self.stop_vpgd();
        let _ = std::fs::remove_dir_all(&self.dir);
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

/// Accepts up to N TCP connections on PORT (3 s after the last); answers each with
/// "NAME PEER"; prints the peers.
const TCP_SERVER: &str = r#"
import socket, sys
name, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(16); s.settimeout(10)
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

/// Connects N times to ADDR:PORT (up to TRIES attempts each, 0.2 s apart); prints answers.
const TCP_CLIENT: &str = r#"
import socket, sys, time
addr, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
tries = int(sys.argv[4]) if len(sys.argv) > 4 else 8
out = []
for i in range(n):
    for _ in range(tries):
        try:
            c = socket.create_connection((addr, port), timeout=1); break
        except OSError:
            time.sleep(0.2)
    else:
        out.append("failed"); continue
    c.sendall(b"hi"); out.append(c.recv(100).decode() or "empty"); c.close()
print("\n".join(out))
"#;

/// Pings DST every 50 ms until the first reply, for up to SECS; prints the seconds it took
/// ("none" without a reply).
const FIRST_REPLY: &str = r#"
import subprocess, sys, time
dst, secs = sys.argv[1], float(sys.argv[2])
t0 = time.time()
while time.time() - t0 < secs:
    if subprocess.call(["ping", "-n", "-q", "-c", "1", "-W", "0.2", dst], stdout=subprocess.DEVNULL) == 0:
        print("%.3f" % (time.time() - t0)); sys.exit(0)
    time.sleep(0.05)
print("none")
"#;

fn ping_count(ns: &NetNs, dst: &str, count: u32, interval: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &ns.name, "ping", "-n", "-q", "-c"])
        .arg(count.to_string())
        .args(["-i", interval, "-W", "1", dst])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

/// (transmitted, received) from ping's summary.
fn ping_result(c: Child) -> (u32, u32) {
    let out = wait_out(c);
    let line = out
        .lines()
        .find(|l| l.contains("transmitted"))
        .unwrap_or_default()
        .to_string();
    let nums: Vec<u32> = line
        .split(", ")
        .filter_map(|p| p.split_whitespace().next()?.parse().ok())
        .collect();
    (
        nums.first().copied().unwrap_or(0),
        nums.get(1).copied().unwrap_or(0),
    )
}

#[test]
fn agent_configures_a_node_and_restarts_safely() {
    let Some(mut lab) = Lab::new() else { return };
    let t_start = Instant::now();
    lab.start_agent();
    let st = lab.wait_in_sync(1);
    assert_eq!(st["pods"], 2, "{st:#}");
    assert_eq!(st["tunnels"], 1, "{st:#}");
    assert_eq!(st["services"], 1, "{st:#}");
    assert_eq!(
        st["transactions"], 1,
        "everything in one transaction: {st:#}"
    );
    assert!(st["objects"]["route 10.1.2.0/24"]
        .as_str()
        .unwrap()
        .contains("node n2"));
    eprintln!("agent in sync {:?} after start", t_start.elapsed());
    // Encryption towards n2: one SA each way, a rule for all traffic to its node IP, the
    // ESP identity; keys shown only as fingerprints.
    let enc = &st["encryption"];
    assert_eq!(enc["key_id"], 1, "{st:#}");
    assert_eq!(enc["sas"], 2, "{st:#}");
    let sas = lab.json(&["show", "esp", "sa"]);
    assert_eq!(sas.as_array().unwrap().len(), 2, "{sas:#}");
    assert!(!sas.to_string().contains("6a0b1c2d"), "a key in a dump");
    let rules = lab.json(&["show", "esp", "protect"]);
    assert_eq!(rules[0]["dst"], "192.0.2.2/32", "{rules:#}");
    assert_eq!(rules[0]["sas"].as_array().unwrap().len(), 1, "{rules:#}");
    assert!(
        st["objects"]["nat44 identity 192.0.2.1/50"].is_string(),
        "{st:#}"
    );
    let pods = std::mem::take(&mut lab.pods);
    let (pod1, pod2) = (&pods[0], &pods[1]);

    // Pod to pod on the node, pod to the internet through SNAT, a service.
    assert!(pod1.ping("10.1.1.3", 3) >= 2, "pod1 -> pod2");
    assert!(pod2.ping("10.1.1.2", 3) >= 2, "pod2 -> pod1");
    let server = python(&lab.inet, TCP_SERVER, &["inet", "5001", "2"]);
    let got = wait_out(python(pod1, TCP_CLIENT, &["203.0.113.1", "5001", "2"]));
    assert_eq!(
        got,
        "inet 192.0.2.1\ninet 192.0.2.1",
        "SNAT to the node IP\n{}",
        lab.diag()
    );
    assert_eq!(wait_out(server), "192.0.2.1");
    let server = python(pod2, TCP_SERVER, &["pod2", "8080", "2"]);
    let got = wait_out(python(pod1, TCP_CLIENT, &["10.96.0.10", "80", "2"]));
    assert_eq!(
        got, "pod2 10.1.1.2\npod2 10.1.1.2",
        "service to pod2, client address kept"
    );
    let _ = wait_out(server);

    // A pod added while the agent runs: from its CNI record to traffic; then deleted.
    let (pod3, rec) = lab.add_pod(3, "pod3", "10.1.1.4");
    let tx = lab.status().unwrap()["transactions"].as_u64().unwrap();
    let t0 = Instant::now();
    lab.write_record(3, &rec);
    while lab.status().unwrap()["transactions"].as_u64().unwrap() == tx {
        assert!(t0.elapsed() < Duration::from_secs(10), "pod3 configured");
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "CNI record written to its transaction applied: {:?} (record poll 100 ms, debounce 50 ms)",
        t0.elapsed()
    );
    // (Pinging before that would measure the kernel's 1 s ARP retry, not the agent.)
    let took = wait_out(python(&pod3, FIRST_REPLY, &["10.1.1.2", "10"]));
    assert_ne!(took, "none", "pod3 reaches pod1\n{}", lab.diag());
    eprintln!("then first ping reply from the new pod after {took} s");
    std::fs::remove_file(lab.dir.join("cni/pods/c3@eth0.json")).unwrap();
    let t0 = Instant::now();
    while lab.ctl(&["show", "interfaces"]).contains(&pod_ifname(3)) {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "pod3's interface stays"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(pod3);
    assert_eq!(lab.wait_in_sync(1)["pods"], 2);

    // Agent restart with nothing changed: zero configuration calls, no packet lost.
    let pinger = ping_count(pod1, "10.1.1.3", 60, "0.05");
    std::thread::sleep(Duration::from_millis(300));
    let calls = lab.proxy.config_calls();
    let t0 = Instant::now();
    lab.stop_agent();
    lab.start_agent();
    let st = lab.wait_in_sync(1);
    eprintln!("agent restart to in-sync: {:?}", t0.elapsed());
    assert_eq!(st["transactions"], 0, "{st:#}");
    assert_eq!(
        lab.proxy.config_calls(),
        calls,
        "no configuration call after a restart with nothing changed"
    );
    assert!(
        lab.proxy.requests.load(Ordering::SeqCst) > calls,
        "it did dump"
    );
    let (sent, got) = ping_result(pinger);
    assert!(
        sent >= 55 && got == sent,
        "ping through the restart: {got}/{sent}"
    );

    // A policy added while the agent is down is enforced when it starts.
    lab.stop_agent();
    std::fs::write(lab.dir.join("m/policy.yaml"), DENY_B).unwrap();
    let calls = lab.proxy.config_calls();
    lab.start_agent();
    let st = lab.wait_in_sync(1);
    assert_eq!(st["transactions"], 1, "{st:#}");
    assert_eq!(lab.proxy.config_calls(), calls + 1);
    assert_eq!(st["local_tables"], 1, "{st:#}");
    assert_eq!(pod1.ping("10.1.1.3", 3), 0, "pod2 is isolated");
    assert!(
        pod2.ping("10.1.1.2", 3) >= 2,
        "pod2's own connections and their replies pass"
    );
    assert!(pod2.ping("203.0.113.1", 2) >= 1, "pod2 -> internet");

    // Policy changes while the agent runs: removed (time to enforcement), then added again.
    let tx = lab.status().unwrap()["transactions"].as_u64().unwrap();
    let t0 = Instant::now();
    std::fs::remove_file(lab.dir.join("m/policy.yaml")).unwrap();
    while lab.status().unwrap()["transactions"].as_u64().unwrap() == tx {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the policy's removal applied"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    eprintln!(
        "policy manifest removed to its transaction applied: {:?} (manifest scan 100 ms, debounce 50 ms)",
        t0.elapsed()
    );
    assert!(pod1.ping("10.1.1.3", 2) >= 1, "pod2 reachable again");
    let tx = lab.status().unwrap()["transactions"].as_u64().unwrap();
    std::fs::write(lab.dir.join("m/policy.yaml"), DENY_B).unwrap();
    let t0 = Instant::now();
    while lab.status().unwrap()["transactions"].as_u64().unwrap() == tx {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "the policy came back"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "policy manifest added to its transaction applied: {:?}",
        t0.elapsed()
    );
    assert_eq!(pod1.ping("10.1.1.3", 2), 0, "pod2 is isolated again");

    // A record whose host veth does not exist: vpgd refuses that pod's interface; the agent
    // leaves it out and keeps the rest; removing the record clears it.
    let ghost = pod_ifname(99);
    let rec = std::fs::read_to_string(lab.dir.join("cni/pods/c0@eth0.json"))
        .unwrap()
        .replace(&pod_ifname(0), &ghost)
        .replace("10.1.1.2", "10.1.1.9")
        .replace("\"pod1\"", "\"ghost\"");
    std::fs::write(lab.dir.join("cni/pods/c9@eth0.json"), rec).unwrap();
    let t0 = Instant::now();
    let st = loop {
        let st = lab.status().unwrap();
        if st["excluded"].as_array().is_some_and(|e| !e.is_empty()) && st["state"] == "in-sync" {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "{st:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(st["excluded"][0], ghost.as_str(), "{st:#}");
    assert!(lab.ctl(&["show", "interfaces"]).contains(&pod_ifname(1)));
    assert!(
        pod2.ping("10.1.1.2", 2) >= 1,
        "the other pods are unaffected"
    );
    std::fs::remove_file(lab.dir.join("cni/pods/c9@eth0.json")).unwrap();
    let t0 = Instant::now();
    while lab.status().unwrap()["excluded"]
        .as_array()
        .is_some_and(|e| !e.is_empty())
    {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    }

    // vpgd restart: the agent notices, replays, traffic resumes; the policy still holds.
    let t0 = Instant::now();
    lab.stop_vpgd();
    lab.start_vpgd();
    let waiter = python(pod2, FIRST_REPLY, &["10.1.1.2", "15"]);
    let gap = wait_out(waiter);
    eprintln!(
        "vpgd restart: traffic back {gap} s after vpgd's socket returned ({:?} since stop)",
        t0.elapsed()
    );
    assert_ne!(gap, "none", "traffic resumed after the vpgd restart");
    let st = lab.wait_in_sync(1);
    assert!(st["vpgd_connects"].as_u64().unwrap() >= 2, "{st:#}");
    assert_eq!(pod1.ping("10.1.1.3", 2), 0, "the policy was replayed too");
    let server = python(&lab.inet, TCP_SERVER, &["inet", "5002", "1"]);
    let got = wait_out(python(pod1, TCP_CLIENT, &["203.0.113.1", "5002", "1"]));
    assert_eq!(got, "inet 192.0.2.1", "SNAT after the replay");
    let _ = wait_out(server);

    // The outbound key towards n2 was used by the vpgd that just lost it. vpgd's sequence
    // file recorded it: the SA goes in again and continues after the numbers reserved before
    // the restart (no AES-GCM nonce repeats), and the protect rule uses it.
    assert_eq!(st["encryption"]["withheld"], 0, "{st:#}");
    assert_eq!(st["encryption"]["continued"], 1, "{st:#}");
    let out_sa = |lab: &Lab| {
        lab.json(&["show", "esp", "sa"])
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["direction"] == "out")
            .cloned()
            .unwrap()
    };
    let sa = out_sa(&lab);
    let reserved = sa["seq_reserved"].as_u64().unwrap();
    assert!(
        reserved >= 2 << 22,
        "{sa:#}: past the first life's reservation"
    );
    assert_eq!(
        lab.json(&["show", "esp", "protect"])[0]["sas"],
        serde_json::json!([sa["sa_id"]])
    );
    // Traffic to n2's pods is encrypted with it, from the reservation on (n2's node address
    // answers ARP from the "internet" namespace now, which drops the ESP it gets).
    lab.inet
        .exec(&["ip", "addr", "add", "192.0.2.2/32", "dev", "eth0"])
        .unwrap();
    pod1.ping("10.1.2.2", 3);
    let sa = out_sa(&lab);
    let seq = sa["counters"]["seq"].as_u64().unwrap();
    assert!(
        seq > reserved - (1 << 22) && sa["counters"]["packets"].as_u64().unwrap() >= 1,
        "{sa:#}"
    );
    eprintln!("after the vpgd restart the outbound SA continues at sequence number {seq} (reserved up to {reserved})");

    // A vpgd whose sequence file is lost has no record of the key: reinstalling it would
    // repeat nonces, so it is withheld (traffic to n2 dropped, not sent in clear) until the
    // key is rotated; then the new key's SAs go in and the old inbound one retires.
    lab.stop_vpgd();
    std::fs::remove_file(lab.dir.join("esp-seq.json")).unwrap();
    lab.start_vpgd();
    let t0 = Instant::now();
    let st = loop {
        let st = lab.status().unwrap();
        if st["state"] == "in-sync" && st["encryption"]["withheld"] == 1 {
            break st;
        }
        assert!(t0.elapsed() < Duration::from_secs(15), "{st:#}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(
        st["notes"].to_string().contains("rotate the cluster's key"),
        "{st:#}"
    );
    assert_eq!(
        lab.json(&["show", "esp", "protect"])[0]["sas"],
        serde_json::json!([])
    );
    std::fs::write(lab.dir.join("m/key.yaml"), KEY2).unwrap();
    let t0 = Instant::now();
    loop {
        let st = lab.status().unwrap();
        let sas = lab.json(&["show", "esp", "sa"]);
        let ids: Vec<u64> = sas
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["key_id"].as_u64().unwrap())
            .collect();
        if st["encryption"]["withheld"] == 0 && ids == [2, 2] {
            let rules = lab.json(&["show", "esp", "protect"]);
            assert_eq!(rules[0]["sas"].as_array().unwrap().len(), 1, "{rules:#}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(15),
            "rotation to key 2 and the old SA's removal: {st:#} {sas:#}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "key rotated in the manifests to the old inbound SA gone: {:?}",
        t0.elapsed()
    );

    // The status command's text form.
    let o = Command::new(AGENT)
        .args(["status", "--config"])
        .arg(lab.dir.join("node.toml"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && text.contains("state:         in-sync"),
        "{text}"
    );
    eprintln!("{text}");
    eprintln!("whole test: {:?}", t_start.elapsed());
}
