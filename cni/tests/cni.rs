//! vpg-cni driven as a runtime drives it: the built binary, `CNI_*` variables, the network
//! configuration on stdin, the result or error JSON read from stdout.
//!
//! The namespace tests need root and iproute2/ethtool (scripts/setup.sh); they are skipped, with
//! the reason printed, only where the kernel refuses namespaces (`vpg_io::netns::unavailable`).
//! The protocol tests (VERSION, bad configuration, bad environment, a namespace that does not
//! exist) need neither and always run.

use serde_json::{json, Value};
use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use tempfile::TempDir;
use vpg_io::netns::{self, NetNs};

const BIN: &str = env!("CARGO_BIN_EXE_vpg-cni");

/// What one invocation printed and how it exited.
#[derive(Debug)]
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {:?}", self.stdout))
    }

    /// The error object, checked for the spec's shape; panics if the call succeeded.
    fn error(&self) -> (u64, String) {
        assert!(!self.ok, "expected an error, got success: {}", self.stdout);
        let v = self.json();
        let code = v["code"].as_u64().expect("code is a number");
        let msg = v["msg"].as_str().expect("msg is a string").to_string();
        assert!(v["cniVersion"].is_string(), "{v}");
        assert!(!self.stderr.is_empty(), "a log line on stderr too");
        (code, msg)
    }

    fn success(&self) -> &Self {
        assert!(
            self.ok,
            "expected success:\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the plugin with only PATH from our environment (runtimes pass little else), `vars`
/// and `stdin`; `ns` runs it inside a named namespace (`ip netns exec`).
fn invoke_in(ns: Option<&NetNs>, vars: &[(&str, &str)], stdin: &str) -> Out {
    let mut cmd = match ns {
        Some(n) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &n.name, BIN]);
            c
        }
        None => Command::new(BIN),
    };
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(vars.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run vpg-cni");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    Out {
        ok: o.status.success(),
        stdout: String::from_utf8_lossy(&o.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn invoke(vars: &[(&str, &str)], stdin: &str) -> Out {
    invoke_in(None, vars, stdin)
}

/// A node: the namespace vpgd would run in (the host ends land there) and a data directory.
struct Node {
    host: NetNs,
    data: TempDir,
    cidr: &'static str,
}

/// A pod sandbox: its namespace and container id.
struct Pod {
    ns: NetNs,
    id: String,
}

impl Pod {
    fn netns(&self) -> String {
        format!("/var/run/netns/{}", self.ns.name)
    }
}

fn lab(cidr: &'static str) -> Option<Node> {
    if let Some(why) = netns::unavailable() {
        eprintln!("skipping vpg-cni namespace test: {why}");
        return None;
    }
    Some(Node {
        host: NetNs::new("cnh").unwrap(),
        data: tempfile::tempdir().unwrap(),
        cidr,
    })
}

impl Node {
    fn pod(&self) -> Pod {
        let ns = NetNs::new("cnp").unwrap();
        let id = format!("ctr-{}", ns.name);
        Pod { ns, id }
    }

    fn conf_value(&self, version: &str) -> Value {
        json!({
            "cniVersion": version,
            "name": "vpg",
            "type": "vpg-cni",
            "podCIDR": self.cidr,
            "dataDir": self.data.path(),
            "hostNetns": self.host.name,
        })
    }

    fn conf(&self) -> String {
        self.conf_value("1.0.0").to_string()
    }

    fn run(&self, cmd: &str, pod: &Pod, conf: &str) -> Out {
        let netns = pod.netns();
        invoke(
            &[
                ("CNI_COMMAND", cmd),
                ("CNI_CONTAINERID", &pod.id),
                ("CNI_NETNS", &netns),
                ("CNI_IFNAME", "eth0"),
                (
                    "CNI_ARGS",
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_UID=u-1",
                ),
                ("CNI_PATH", "/opt/cni/bin"),
            ],
            conf,
        )
    }

    fn add(&self, pod: &Pod) -> Value {
        self.run("ADD", pod, &self.conf()).success().json()
    }

    fn check(&self, pod: &Pod, prev: &Value) -> Out {
        let mut c = self.conf_value("1.0.0");
        c["prevResult"] = prev.clone();
        self.run("CHECK", pod, &c.to_string())
    }

    fn del(&self, pod: &Pod) {
        self.run("DEL", pod, &self.conf()).success();
    }

    fn record_path(&self, pod: &Pod) -> PathBuf {
        self.data.path().join(format!("pods/{}@eth0.json", pod.id))
    }

    fn ipam_files(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.data.path().join("ipam/vpg"))
            .map(|rd| {
                rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n != "last_reserved_ip")
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// The vpg host ends in the host namespace.
    fn host_links(&self) -> Vec<String> {
        links(&self.host)
            .into_iter()
            .filter(|l| l.starts_with("vpg"))
            .collect()
    }
}

fn links(ns: &NetNs) -> Vec<String> {
    let o = ns.ip(&["-j", "link", "show"]).unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// `ip -j addr show dev DEV` inside `ns`.
fn addr(ns: &NetNs, dev: &str) -> Value {
    let o = ns.ip(&["-j", "addr", "show", "dev", dev]).unwrap();
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    v[0].clone()
}

fn routes(ns: &NetNs) -> Vec<Value> {
    let o = ns.ip(&["-j", "-4", "route", "show"]).unwrap();
    serde_json::from_slice::<Value>(&o.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn ipv4(link: &Value) -> Vec<String> {
    link["addr_info"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn is_up(link: &Value) -> bool {
    link["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

/// The pod address of an ADD result (`ips[0].address` without the prefix).
fn pod_ip(result: &Value) -> String {
    let a = result["ips"][0]["address"].as_str().unwrap();
    a.split('/').next().unwrap().to_string()
}

#[test]
fn add_check_del_as_a_runtime_would() {
    let Some(node) = lab("10.1.1.0/24") else {
        return;
    };
    let pod = node.pod();
    let r = node.add(&pod);

    // The result: the spec's shape, in the configuration's version.
    assert_eq!(r["cniVersion"], "1.0.0");
    let ifs = r["interfaces"].as_array().unwrap();
    assert_eq!(ifs.len(), 2, "{r}");
    let host_if = ifs[0]["name"].as_str().unwrap().to_string();
    assert!(
        host_if.starts_with("vpg") && host_if.len() <= 15,
        "{host_if}"
    );
    assert!(
        ifs[0].get("sandbox").is_none(),
        "the host end has no sandbox"
    );
    assert_eq!(ifs[1]["name"], "eth0");
    assert_eq!(ifs[1]["sandbox"], pod.netns());
    let mac = ifs[1]["mac"].as_str().unwrap().to_string();
    assert_eq!(mac.len(), 17);
    assert_eq!(r["ips"][0]["address"], "10.1.1.2/32");
    assert_eq!(r["ips"][0]["gateway"], "10.1.1.1");
    assert_eq!(r["ips"][0]["interface"], 1);
    assert!(
        r["ips"][0].get("version").is_none(),
        "no version field from 1.0.0 on"
    );
    assert_eq!(r["routes"], json!([{"dst": "0.0.0.0/0", "gw": "10.1.1.1"}]));
    assert!(
        r["interfaces"][1].get("mtu").is_none(),
        "mtu arrives in 1.1.0"
    );

    // The pod side: /32, up, MTU, the two routes, offloads off.
    let eth0 = addr(&pod.ns, "eth0");
    assert_eq!(ipv4(&eth0), ["10.1.1.2/32"]);
    assert!(is_up(&eth0));
    assert_eq!(eth0["mtu"], 1450);
    assert_eq!(eth0["address"], mac.as_str());
    let rt = routes(&pod.ns);
    assert!(
        rt.iter()
            .any(|x| x["dst"] == "default" && x["gateway"] == "10.1.1.1" && x["dev"] == "eth0"),
        "{rt:?}"
    );
    assert!(
        rt.iter()
            .any(|x| x["dst"] == "10.1.1.1" && x["scope"] == "link" && x["dev"] == "eth0"),
        "{rt:?}"
    );
    let k = pod.ns.exec(&["ethtool", "-k", "eth0"]).unwrap();
    let k = String::from_utf8_lossy(&k.stdout);
    assert!(k.contains("tcp-segmentation-offload: off"), "{k}");
    assert!(k.contains("generic-segmentation-offload: off"), "{k}");

    // The host side: in hostNetns, up, same MTU, no address.
    let h = addr(&node.host, &host_if);
    assert!(is_up(&h));
    assert_eq!(h["mtu"], 1450);
    assert!(ipv4(&h).is_empty());
    assert!(
        !h["addr_info"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["family"] == "inet6"),
        "IPv6 is off on the host end: {h}"
    );
    assert_eq!(h["address"], ifs[0]["mac"]);

    // The record handed to the agent, and the IPAM file.
    let rec: Value =
        serde_json::from_slice(&std::fs::read(node.record_path(&pod)).unwrap()).unwrap();
    assert_eq!(rec["version"], 1);
    assert_eq!(rec["network"], "vpg");
    assert_eq!(rec["containerId"], pod.id.as_str());
    assert_eq!(rec["podNamespace"], "default");
    assert_eq!(rec["podName"], "web-0");
    assert_eq!(rec["podUid"], "u-1");
    assert_eq!(rec["netns"], pod.netns());
    assert_eq!(rec["ifname"], "eth0");
    assert_eq!(rec["mac"], mac.as_str());
    assert_eq!(rec["hostIfname"], host_if.as_str());
    assert_eq!(rec["hostMac"], ifs[0]["mac"]);
    assert_eq!(
        rec["hostNetns"],
        format!("/var/run/netns/{}", node.host.name)
    );
    assert_eq!(rec["ip"], "10.1.1.2");
    assert_eq!(rec["prefixLen"], 32);
    assert_eq!(rec["podCidr"], "10.1.1.0/24");
    assert_eq!(rec["gateway"], "10.1.1.1");
    assert_eq!(rec["mtu"], 1450);
    assert!(rec["created"].as_str().unwrap().ends_with('Z'));
    assert_eq!(node.ipam_files(), ["10.1.1.2"]);
    let owner = std::fs::read_to_string(node.data.path().join("ipam/vpg/10.1.1.2")).unwrap();
    assert_eq!(owner, format!("{}\neth0\n", pod.id));

    // CHECK passes right after ADD and prints nothing.
    let c = node.check(&pod, &r);
    c.success();
    assert_eq!(c.stdout, "");

    // Tampering is found, each kind named.
    pod.ns.ip(&["route", "del", "default"]).unwrap();
    let (code, msg) = node.check(&pod, &r).error();
    assert_eq!(code, 103);
    assert!(msg.contains("no route 0.0.0.0/0 via 10.1.1.1"), "{msg}");
    pod.ns
        .ip(&["route", "add", "default", "via", "10.1.1.1", "dev", "eth0"])
        .unwrap();
    node.check(&pod, &r).success();
    pod.ns
        .ip(&["addr", "del", "10.1.1.2/32", "dev", "eth0"])
        .unwrap();
    let (code, msg) = node.check(&pod, &r).error();
    assert_eq!(code, 103);
    assert!(msg.contains("lacks address 10.1.1.2/32"), "{msg}");
    pod.ns
        .ip(&["addr", "add", "10.1.1.2/32", "dev", "eth0"])
        .unwrap();
    // Removing the last address flushed the routes through eth0: put them back as ADD made them.
    for r in [
        &[
            "route",
            "replace",
            "10.1.1.1/32",
            "dev",
            "eth0",
            "scope",
            "link",
        ][..],
        &[
            "route", "replace", "default", "via", "10.1.1.1", "dev", "eth0",
        ][..],
    ] {
        pod.ns.ip(r).unwrap();
    }
    node.check(&pod, &r).success();
    node.host.ip(&["link", "set", &host_if, "down"]).unwrap();
    let (code, msg) = node.check(&pod, &r).error();
    assert_eq!(code, 103);
    assert!(msg.contains("is down"), "{msg}");
    node.host.ip(&["link", "set", &host_if, "up"]).unwrap();
    // A prevResult from another ADD (a different MAC) does not match.
    let mut other = r.clone();
    other["interfaces"][1]["mac"] = json!("02:00:00:00:00:01");
    let (code, msg) = node.check(&pod, &other).error();
    assert_eq!(code, 103);
    assert!(msg.contains("has MAC"), "{msg}");
    // A missing record is a failure too: the agent would not know the pod.
    let saved = std::fs::read(node.record_path(&pod)).unwrap();
    std::fs::remove_file(node.record_path(&pod)).unwrap();
    let (code, msg) = node.check(&pod, &r).error();
    assert_eq!(code, 103);
    assert!(msg.contains("pod record is missing"), "{msg}");
    std::fs::write(node.record_path(&pod), saved).unwrap();
    node.check(&pod, &r).success();

    // DEL removes everything; DEL again is fine; so is DEL after the namespace is gone and DEL
    // without CNI_NETNS.
    node.del(&pod);
    assert!(!links(&pod.ns).contains(&"eth0".to_string()));
    assert!(node.host_links().is_empty());
    assert!(!node.record_path(&pod).exists());
    assert!(node.ipam_files().is_empty());
    node.del(&pod);
    let (code, _) = node.check(&pod, &r).error();
    assert_eq!(code, 103, "CHECK after DEL fails");
    let gone = Pod {
        ns: NetNs::new("cnp").unwrap(),
        id: pod.id.clone(),
    };
    let gone_path = gone.netns();
    drop(gone);
    invoke(
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", &pod.id),
            ("CNI_NETNS", &gone_path),
            ("CNI_IFNAME", "eth0"),
        ],
        &node.conf(),
    )
    .success();
    invoke(
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", &pod.id),
            ("CNI_IFNAME", "eth0"),
        ],
        &node.conf(),
    )
    .success();
}

#[test]
fn del_after_the_pod_namespace_is_gone_frees_the_address() {
    let Some(node) = lab("10.1.5.0/24") else {
        return;
    };
    let pod = node.pod();
    node.add(&pod);
    let id = pod.id.clone();
    let netns = pod.netns();
    // The runtime removed the sandbox first: the kernel destroys the veth with it, but
    // asynchronously, so the host end may still be there when DEL comes.
    drop(pod);
    invoke(
        &[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", &id),
            ("CNI_NETNS", &netns),
            ("CNI_IFNAME", "eth0"),
        ],
        &node.conf(),
    )
    .success();
    assert!(node.ipam_files().is_empty());
    assert_eq!(
        std::fs::read_dir(node.data.path().join("pods"))
            .unwrap()
            .count(),
        0
    );
    let t0 = std::time::Instant::now();
    while !node.host_links().is_empty() {
        assert!(t0.elapsed().as_secs() < 5, "host end left behind");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn addresses_are_distinct_not_reused_at_once_and_safe_under_concurrency() {
    let Some(node) = lab("10.1.2.0/24") else {
        return;
    };
    let (a, b) = (node.pod(), node.pod());
    assert_eq!(pod_ip(&node.add(&a)), "10.1.2.2");
    assert_eq!(pod_ip(&node.add(&b)), "10.1.2.3");
    node.del(&a);
    // .2 is free, but the next pod gets .4: a freed address is not handed out at once.
    let c = node.pod();
    assert_eq!(pod_ip(&node.add(&c)), "10.1.2.4");

    // Eight ADDs at once (the runtime may run different containers in parallel): eight distinct
    // addresses, eight records, eight host ends.
    let pods: Vec<Pod> = (0..8).map(|_| node.pod()).collect();
    let ips: Vec<String> = std::thread::scope(|s| {
        let hs: Vec<_> = pods
            .iter()
            .map(|p| s.spawn(|| pod_ip(&node.add(p))))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let distinct: HashSet<&String> = ips.iter().collect();
    assert_eq!(distinct.len(), 8, "{ips:?}");
    assert!(!ips.contains(&"10.1.2.3".to_string()) && !ips.contains(&"10.1.2.4".to_string()));
    assert_eq!(node.ipam_files().len(), 10);
    assert_eq!(node.host_links().len(), 10);
    for p in pods.iter().chain([&b, &c]) {
        assert!(node.record_path(p).exists());
        node.del(p);
    }
    assert!(node.ipam_files().is_empty());
    assert!(node.host_links().is_empty());
}

#[test]
fn exhaustion_and_duplicate_add_are_cni_errors_that_leave_nothing_behind() {
    // A /30 holds the gateway (.1) and one pod (.2).
    let Some(node) = lab("10.1.3.0/30") else {
        return;
    };
    let (a, b) = (node.pod(), node.pod());
    let r = node.add(&a);
    assert_eq!(pod_ip(&r), "10.1.3.2");
    let (code, msg) = node.run("ADD", &b, &node.conf()).error();
    assert_eq!(code, 100, "{msg}");
    assert!(msg.contains("no free address"), "{msg}");
    assert_eq!(node.ipam_files(), ["10.1.3.2"]);
    assert_eq!(node.host_links().len(), 1);
    assert!(!links(&b.ns).contains(&"eth0".to_string()));
    assert!(!node.record_path(&b).exists());
    // STATUS (1.1.0) says the plugin cannot serve ADD now.
    let st = invoke(
        &[("CNI_COMMAND", "STATUS")],
        &node.conf_value("1.1.0").to_string(),
    );
    assert_eq!(st.error().0, 50);

    // ADD again for the same attachment: refused, the first one intact.
    let (code, msg) = node.run("ADD", &a, &node.conf()).error();
    assert_eq!(code, 102, "{msg}");
    node.check(&a, &r).success();

    node.del(&a);
    invoke(
        &[("CNI_COMMAND", "STATUS")],
        &node.conf_value("1.1.0").to_string(),
    )
    .success();
    node.add(&b);
}

#[test]
fn host_end_lands_in_the_plugins_namespace_without_host_netns() {
    let Some(node) = lab("10.1.4.0/24") else {
        return;
    };
    let pod = node.pod();
    let mut conf = node.conf_value("1.1.0");
    conf.as_object_mut().unwrap().remove("hostNetns");
    let netns = pod.netns();
    let vars = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", pod.id.as_str()),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
    ];
    // The runtime runs the plugin in what is, here, the node's namespace.
    let r = invoke_in(Some(&node.host), &vars, &conf.to_string())
        .success()
        .json();
    assert_eq!(r["cniVersion"], "1.1.0");
    assert_eq!(
        r["interfaces"][1]["mtu"], 1450,
        "1.1.0 results carry the MTU"
    );
    assert_eq!(
        r["routes"][1],
        json!({"dst": "10.1.4.1/32", "scope": 253}),
        "and the on-link route"
    );
    let host_if = r["interfaces"][0]["name"].as_str().unwrap();
    assert_eq!(node.host_links(), [host_if]);
    let rec: Value =
        serde_json::from_slice(&std::fs::read(node.record_path(&pod)).unwrap()).unwrap();
    assert_eq!(rec["hostNetns"], Value::Null);
    assert!(is_up(&addr(&node.host, host_if)));
    assert_eq!(ipv4(&addr(&pod.ns, "eth0")), ["10.1.4.2/32"]);
    let mut check = conf.clone();
    check["prevResult"] = r.clone();
    let mut vars_check = vars;
    vars_check[0] = ("CNI_COMMAND", "CHECK");
    invoke_in(Some(&node.host), &vars_check, &check.to_string()).success();
    let mut vars_del = vars;
    vars_del[0] = ("CNI_COMMAND", "DEL");
    invoke_in(Some(&node.host), &vars_del, &conf.to_string()).success();
    assert!(node.host_links().is_empty());
}

#[test]
fn older_versions_get_their_result_format() {
    let Some(node) = lab("10.1.6.0/24") else {
        return;
    };
    let pod = node.pod();
    let r = node
        .run("ADD", &pod, &node.conf_value("0.4.0").to_string())
        .success()
        .json();
    assert_eq!(r["cniVersion"], "0.4.0");
    assert_eq!(r["ips"][0]["version"], "4");
    let mut c = node.conf_value("0.4.0");
    c["prevResult"] = r.clone();
    node.run("CHECK", &pod, &c.to_string()).success();
    // CHECK did not exist before 0.4.0.
    let mut c = node.conf_value("0.3.1");
    c["prevResult"] = r;
    let (code, msg) = node.run("CHECK", &pod, &c.to_string()).error();
    assert_eq!(code, 1, "{msg}");
    node.del(&pod);
}

#[test]
fn add_appends_its_attachment_to_a_prev_result() {
    let Some(node) = lab("10.1.8.0/24") else {
        return;
    };
    let pod = node.pod();
    // A plugin before us in the chain reported an interface of its own.
    let prev = json!({
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "lo", "sandbox": pod.netns()}],
        "ips": [{"address": "127.0.0.1/8", "interface": 0}],
        "dns": {"nameservers": ["10.96.0.10"]}
    });
    let mut c = node.conf_value("1.0.0");
    c["prevResult"] = prev;
    let r = node.run("ADD", &pod, &c.to_string()).success().json();
    let names: Vec<&str> = r["interfaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{r}");
    assert_eq!(names[0], "lo");
    assert_eq!(names[2], "eth0");
    assert_eq!(r["ips"][0]["address"], "127.0.0.1/8");
    assert_eq!(r["ips"][1]["address"], "10.1.8.2/32");
    assert_eq!(
        r["ips"][1]["interface"], 2,
        "indices follow the earlier interfaces"
    );
    assert_eq!(r["dns"]["nameservers"][0], "10.96.0.10");
    // CHECK finds our interface in the merged result.
    node.check(&pod, &r).success();
    node.del(&pod);
}

#[test]
fn gc_removes_attachments_the_runtime_no_longer_lists() {
    let Some(node) = lab("10.1.7.0/24") else {
        return;
    };
    let (keep, stale) = (node.pod(), node.pod());
    let rk = node.add(&keep);
    node.add(&stale);
    assert_eq!(node.host_links().len(), 2);
    let mut gc = node.conf_value("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": keep.id, "ifname": "eth0"}]);
    let o = invoke(
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")],
        &gc.to_string(),
    );
    o.success();
    assert_eq!(o.stdout, "");
    assert_eq!(node.ipam_files(), ["10.1.7.2"]);
    assert!(node.record_path(&keep).exists());
    assert!(!node.record_path(&stale).exists());
    assert_eq!(
        node.host_links(),
        [rk["interfaces"][0]["name"].as_str().unwrap()]
    );
    node.check(&keep, &rk).success();
    // Without the list GC refuses rather than removing everything.
    let (code, msg) = invoke(
        &[("CNI_COMMAND", "GC")],
        &node.conf_value("1.1.0").to_string(),
    )
    .error();
    assert_eq!(code, 7, "{msg}");
    node.del(&keep);
}

// ---- Protocol tests: no namespace needed. ----

fn base_conf(dir: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": "vpg", "type": "vpg-cni", "podCIDR": "10.1.9.0/24", "dataDir": dir})
}

fn add_vars(netns: &str) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", "ADD".into()),
        ("CNI_CONTAINERID", "c0ffee".into()),
        ("CNI_NETNS", netns.into()),
        ("CNI_IFNAME", "eth0".into()),
    ]
}

fn run_vars(vars: &[(&'static str, String)], stdin: &str) -> Out {
    let v: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    invoke(&v, stdin)
}

#[test]
fn version_lists_the_supported_versions() {
    let v = invoke(&[("CNI_COMMAND", "VERSION")], r#"{"cniVersion":"1.0.0"}"#)
        .success()
        .json();
    assert_eq!(v["cniVersion"], "1.0.0");
    let s: Vec<&str> = v["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap())
        .collect();
    assert_eq!(s, ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]);
    // A probe with no usable input still answers, in the newest version.
    let v = invoke(&[("CNI_COMMAND", "VERSION")], "").success().json();
    assert_eq!(v["cniVersion"], "1.1.0");
}

#[test]
fn bad_configuration_is_answered_with_error_json_naming_the_field() {
    let d = tempfile::tempdir().unwrap();
    let vars = add_vars("/var/run/netns/none");
    let cases: Vec<(String, u64, &str)> = vec![
        ("{ not json".into(), 6, "not valid JSON"),
        ("[]".into(), 6, "network configuration: expected an object"),
        (
            {
                let mut c = base_conf(d.path());
                c["podCIDR"] = json!("10.1.9.0/33");
                c.to_string()
            },
            7,
            "podCIDR:",
        ),
        (
            {
                let mut c = base_conf(d.path());
                c.as_object_mut().unwrap().remove("podCIDR");
                c.to_string()
            },
            7,
            "podCIDR: missing",
        ),
        (
            {
                let mut c = base_conf(d.path());
                c["mtu"] = json!("big");
                c.to_string()
            },
            6,
            "mtu: expected a number",
        ),
        (
            {
                let mut c = base_conf(d.path());
                c["gateway"] = json!("192.168.0.1");
                c.to_string()
            },
            7,
            "gateway:",
        ),
        (
            {
                let mut c = base_conf(d.path());
                c["cniVersion"] = json!("2.0.0");
                c.to_string()
            },
            1,
            "cniVersion:",
        ),
        (
            {
                let mut c = base_conf(d.path());
                c.as_object_mut().unwrap().remove("name");
                c.to_string()
            },
            7,
            "name: missing",
        ),
    ];
    for (conf, want, text) in cases {
        let o = run_vars(&vars, &conf);
        let (code, msg) = o.error();
        assert_eq!(code, want, "{conf}: {msg}");
        assert!(msg.contains(text), "{conf}: {msg}");
    }
    // Nothing was allocated by any of them.
    assert!(!d.path().join("ipam").exists());
}

#[test]
fn bad_environment_and_missing_namespaces_are_cni_errors() {
    let d = tempfile::tempdir().unwrap();
    let conf = base_conf(d.path()).to_string();
    let e = |vars: &[(&'static str, String)]| run_vars(vars, &conf).error();

    let mut v = add_vars("/var/run/netns/none");
    v.retain(|(k, _)| *k != "CNI_NETNS");
    let (code, msg) = e(&v);
    assert_eq!((code, msg.as_str()), (4, "CNI_NETNS: missing"));

    // A namespace path that does not exist: the container is unknown (code 3).
    let (code, msg) = e(&add_vars("/var/run/netns/vpg-cni-test-does-not-exist"));
    assert_eq!(code, 3, "{msg}");
    assert!(
        msg.contains("CNI_NETNS") && msg.contains("does not exist"),
        "{msg}"
    );
    let mut check = base_conf(d.path());
    check["prevResult"] = json!({"cniVersion": "1.0.0", "interfaces": [], "ips": []});
    let mut cv = add_vars("/var/run/netns/vpg-cni-test-does-not-exist");
    cv[0].1 = "CHECK".into();
    let (code, _) = run_vars(&cv, &check.to_string()).error();
    assert_eq!(code, 3);
    // A path that is not a namespace.
    let f = d.path().join("not-a-netns");
    std::fs::write(&f, "x").unwrap();
    let (code, msg) = e(&add_vars(f.to_str().unwrap()));
    assert!(code == 4 || code == 5, "{code}: {msg}");
    assert!(msg.starts_with("CNI_NETNS:"), "{msg}");

    let mut v = add_vars("/var/run/netns/none");
    v[0].1 = "FROB".into();
    let (code, msg) = e(&v);
    assert_eq!(code, 4);
    assert!(msg.contains("CNI_COMMAND: unknown command 'FROB'"), "{msg}");
    let (code, msg) = run_vars(&[], &conf).error();
    assert_eq!((code, msg.as_str()), (4, "CNI_COMMAND: missing"));

    for (k, bad) in [
        ("CNI_CONTAINERID", "../../etc"),
        ("CNI_IFNAME", "this-is-too-long0"),
        ("CNI_IFNAME", "a/b"),
        ("CNI_ARGS", "K8S_POD_NAME"),
    ] {
        let mut v = add_vars("/var/run/netns/none");
        v.retain(|(x, _)| *x != k);
        v.push((k, bad.into()));
        let (code, msg) = e(&v);
        assert_eq!(code, 4, "{k}={bad}: {msg}");
        assert!(msg.starts_with(k), "{k}={bad}: {msg}");
    }
    // CHECK without prevResult is an invalid configuration.
    let mut cv = add_vars("/var/run/netns/none");
    cv[0].1 = "CHECK".into();
    let (code, msg) = run_vars(&cv, &conf).error();
    assert_eq!(code, 7);
    assert!(msg.starts_with("prevResult:"), "{msg}");
    assert!(!d.path().join("ipam").exists());
}
