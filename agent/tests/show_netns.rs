//! `vpgctl show policy tables|pod NS/NAME` and `vpgctl show node` against a real vpgd and
//! vpg-agent: vpgd in a network namespace, three pods (veths whose host ends vpgd attaches, CNI
//! records as vpg-cni writes them), an uplink veth, the cluster from a manifest directory
//! (namespace, pods, two nodes, a service, three NetworkPolicies). Checked: the tables name the
//! right policies (a rule two policies admit names both), pods, interfaces and tables, their ACL
//! ids are the ACLs vpgd holds under the same tags, a pod's view has both directions, an
//! unknown pod and a dead agent are clear errors (exit 1). No traffic: node_netns.rs covers
//! what the configuration does. Needs root and iproute2 (scripts/setup.sh); skipped with the
//! reason printed only where the kernel refuses namespaces.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use vpg_io::netns::{self, NetNs};

mod common;

use common::{bins, terminate, write_node_toml, write_vpgd_toml, AGENT};

/// `vpg` + 12 hex digits, unique per process: vpg-cni's host veth naming.
fn pod_ifname(n: u32) -> String {
    format!("vpg{:06x}{:06x}", std::process::id() & 0xff_ffff, 0x100 + n)
}

const MANIFESTS: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: default}
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: default, labels: {app: client}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.1.1.2}
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default, labels: {app: web, monitored: "yes"}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.1.1.3}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: default, labels: {app: db, monitored: "yes"}}
spec: {nodeName: n1, containers: [{name: c, image: x}]}
status: {phase: Running, podIP: 10.1.1.4}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: ClusterIP
  clusterIP: 10.96.0.10
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080, protocol: TCP}]
---
apiVersion: v1
kind: Endpoints
metadata: {name: web, namespace: default}
subsets:
- addresses: [{ip: 10.1.1.3, nodeName: n1}]
  ports: [{name: http, port: 8080, protocol: TCP}]
---
# web admits the client on 8080.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-web, namespace: default}
spec:
  podSelector: {matchLabels: {app: web}}
  ingress: [{from: [{podSelector: {matchLabels: {app: client}}}], ports: [{port: 8080}]}]
---
# Monitored pods admit the monitoring network on 9100, and the client on 8080 too (the same
# admission as allow-web's for web: that rule names both policies).
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-monitoring, namespace: default}
spec:
  podSelector: {matchLabels: {monitored: "yes"}}
  ingress:
  - from: [{ipBlock: {cidr: 192.0.2.0/24}}]
    ports: [{port: 9100}]
  - from: [{podSelector: {matchLabels: {app: client}}}]
    ports: [{port: 8080}]
---
# The client may open only web:8080 and DNS anywhere.
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: default}
spec:
  podSelector: {matchLabels: {app: client}}
  policyTypes: [Egress]
  egress:
  - to: [{podSelector: {matchLabels: {app: web}}}]
    ports: [{port: 8080}]
  - ports: [{port: 53, protocol: UDP}]
"#;

struct Lab {
    _pods: Vec<NetNs>,
    _node: NetNs,
    dir: PathBuf,
    vpgctl: PathBuf,
    vpgd: Option<Child>,
    agent: Option<Child>,
}

impl Lab {
    fn new() -> Option<Lab> {
        if let Some(why) = netns::unavailable() {
            eprintln!("skipping vpgctl show namespace test: {why}");
            return None;
        }
        let (vpgd_bin, vpgctl) = bins();
        let node = NetNs::new("sn").unwrap();
        let dir = std::env::temp_dir().join(netns::unique("vpg-show-"));
        std::fs::create_dir_all(dir.join("m")).unwrap();
        std::fs::create_dir_all(dir.join("cni/pods")).unwrap();
        std::fs::write(dir.join("m/cluster.yaml"), MANIFESTS).unwrap();
        std::fs::write(dir.join("m/nodes.yaml"), common::NODES).unwrap();
        let mut pods = Vec::new();
        for (k, (name, ip)) in [
            ("client", "10.1.1.2"),
            ("web", "10.1.1.3"),
            ("db", "10.1.1.4"),
        ]
        .into_iter()
        .enumerate()
        {
            let pod = NetNs::new("spod").unwrap();
            let host = pod_ifname(k as u32);
            netns::veth("eth0", &pod, &host, &node).unwrap();
            let mac = netns::mac_of(&pod, "eth0").unwrap();
            let mac = mac.map(|b| format!("{b:02x}")).join(":");
            // The record vpg-cni writes (docs/cni.md).
            let rec = serde_json::json!({
                "version": 1, "network": "vpg", "containerId": format!("s{k}"),
                "podNamespace": "default", "podName": name, "podUid": null,
                "netns": format!("/var/run/netns/{}", pod.name), "ifname": "eth0",
                "mac": mac, "hostIfname": host, "hostMac": "02:00:00:00:00:01",
                "hostNetns": null, "ip": ip, "prefixLen": 32, "podCidr": "10.1.1.0/24",
                "gateway": "10.1.1.1", "mtu": 1500, "created": "2024-01-01T00:00:00Z"
            });
            std::fs::write(
                dir.join(format!("cni/pods/s{k}@eth0.json")),
                serde_json::to_vec_pretty(&rec).unwrap(),
            )
            .unwrap();
            pods.push(pod);
        }
        let up = netns::unique("sup");
        let outside = NetNs::new("sout").unwrap();
        netns::veth("eth0", &outside, &up, &node).unwrap();
        pods.push(outside);
        write_vpgd_toml(&dir, 4096);
        write_node_toml(&dir, "api.sock", &up, "");
        let vpgd = Command::new("ip")
            .args(["netns", "exec", &node.name])
            .arg(vpgd_bin)
            .arg("--config")
            .arg(dir.join("vpgd.toml"))
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut lab = Lab {
            _pods: pods,
            _node: node,
            dir,
            vpgctl,
            vpgd: Some(vpgd),
            agent: None,
        };
        let t0 = Instant::now();
        while !lab.dir.join("api.sock").exists() {
            assert!(t0.elapsed() < Duration::from_secs(20), "vpgd did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        lab.agent = Some(
            Command::new(AGENT)
                .args(["run", "--config"])
                .arg(lab.dir.join("node.toml"))
                .env("RUST_LOG", "warn")
                .stderr(Stdio::inherit())
                .spawn()
                .unwrap(),
        );
        Some(lab)
    }

    /// vpgctl with this node's sockets; the agent's through the environment variable.
    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(&self.vpgctl)
            .arg("--socket")
            .arg(self.dir.join("api.sock"))
            .env("VPG_AGENT_SOCKET", self.dir.join("agent.sock"))
            .args(args)
            .output()
            .unwrap()
    }

    /// vpgctl's standard output, which must succeed.
    fn show(&self, args: &[&str]) -> String {
        let o = self.ctl(args);
        assert!(
            o.status.success(),
            "vpgctl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    fn wait_in_sync(&self) {
        let t0 = Instant::now();
        loop {
            let o = Command::new(AGENT)
                .args(["status", "--json", "--socket"])
                .arg(self.dir.join("agent.sock"))
                .output()
                .unwrap();
            if let Ok(s) = serde_json::from_slice::<serde_json::Value>(&o.stdout) {
                if s["state"] == "in-sync" && s["pods"] == 3 {
                    return;
                }
                assert!(t0.elapsed() < Duration::from_secs(30), "not in sync: {s:#}");
            }
            assert!(t0.elapsed() < Duration::from_secs(30), "no agent status");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(a) = self.agent.take() {
            terminate(a);
        }
        if let Some(v) = self.vpgd.take() {
            terminate(v);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The table of `text` (blocks are separated by blank lines) that contains `line`.
fn table_with<'a>(text: &'a str, line: &str) -> &'a str {
    text.split("\n\n")
        .find(|b| b.contains(line))
        .unwrap_or_else(|| panic!("no table with '{line}' in\n{text}"))
}

/// A line of `show node`: the object's name in its column, then its detail.
fn obj(name: &str, detail: &str) -> String {
    format!("  {name:<34} {detail}")
}

#[test]
fn vpgctl_shows_policy_tables_pods_and_node() {
    let Some(mut lab) = Lab::new() else { return };
    lab.wait_in_sync();

    // Every table, with its ACL in vpgd, pods, interfaces, rules and where they come from.
    let tables = lab.show(&["show", "policy", "tables"]);
    eprintln!("{tables}");
    // The client (egress-isolated) has a section in every local table: its own, web's and
    // db's are three different tables.
    assert!(
        tables.starts_with("node n1: 3 local tables; reflect acl 1000 on the input"),
        "{tables}"
    );
    let web = table_with(&tables, "pods:       default/web\n");
    assert!(
        web.contains(&format!("output of:  {}\n", pod_ifname(1))),
        "{web}"
    );
    // The client's section: its egress meets web's ingress, which two policies admit.
    assert!(
        web.contains("permit  10.1.1.2/32        0.0.0.0/0          tcp   8080        egress of default/client")
            && web.contains(
                "default/allow-monitoring ingress[1], default/allow-web ingress[0], default/client-egress egress[0]"
            ),
        "{web}"
    );
    assert!(
        web.contains("permit  192.0.2.0/24       0.0.0.0/0          tcp   9100        ingress                       default/allow-monitoring ingress[0]"),
        "{web}"
    );
    assert!(
        web.contains("deny    0.0.0.0/0          0.0.0.0/0          any   any         isolation                     default/allow-monitoring ingress, default/allow-web ingress"),
        "{web}"
    );
    let global = table_with(&tables, "global table gt-");
    assert!(global.contains("(acl 1001)"), "{global}");
    assert!(
        global.contains("output of:  up0 vxc0000202"),
        "the uplink and the tunnel to n2: {global}"
    );
    assert!(
        global.contains(
            "udp   53          egress of default/client      default/client-egress egress[1]"
        ),
        "{global}"
    );

    // The ACL ids are vpgd's ACLs under the same tags.
    let v: serde_json::Value =
        serde_json::from_str(&lab.show(&["--json", "show", "policy", "tables"])).unwrap();
    let acls: serde_json::Value =
        serde_json::from_str(&lab.show(&["--json", "show", "acl"])).unwrap();
    let tag_of = |id: u64| -> String {
        acls.as_array()
            .unwrap()
            .iter()
            .find(|a| a["acl_id"] == id)
            .map(|a| a["tag"].as_str().unwrap().to_string())
            .unwrap_or_else(|| panic!("no acl {id} in vpgd: {acls:#}"))
    };
    let ts = v["tables"].as_array().unwrap();
    assert_eq!(ts.len(), 4, "{v:#}");
    for t in ts {
        let id = t["acl_id"].as_u64().expect("every table is installed");
        assert_eq!(tag_of(id), t["id"].as_str().unwrap(), "{t:#}");
        assert_eq!(
            t["rules"].as_array().unwrap().len(),
            acls.as_array()
                .unwrap()
                .iter()
                .find(|a| a["acl_id"] == id)
                .unwrap()["rules"]
                .as_array()
                .unwrap()
                .len()
        );
    }

    // One pod, both directions.
    let pod = lab.show(&["show", "policy", "pod", "default/client"]);
    eprintln!("{pod}");
    assert!(
        pod.starts_with(&format!(
            "pod default/client 10.1.1.2 on node n1, interface {}\n\
             isolated for ingress by: (none)\n\
             isolated for egress by:  default/client-egress\n",
            pod_ifname(0)
        )),
        "{pod}"
    );
    assert!(pod.contains("to the pod: local table lt-"), "{pod}");
    assert!(pod.contains("from the pod, leaving the node: global table gt-"));
    assert!(
        pod.contains("from the pod to default/web: local table lt-"),
        "{pod}"
    );
    let web = lab.show(&["show", "policy", "pod", "default/web"]);
    assert!(
        web.contains("isolated for ingress by: default/allow-monitoring, default/allow-web"),
        "{web}"
    );
    let db = lab.show(&["show", "policy", "pod", "default/db"]);
    assert!(
        db.contains("default/allow-monitoring ingress[0]") && !db.contains("allow-web"),
        "db's own view names only its policies: {db}"
    );

    // An unknown pod: a clear error, exit 1.
    let o = lab.ctl(&["show", "policy", "pod", "default/nope"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "no pod default/nope on node n1; its pods: default/client, default/web, default/db"
        ),
        "{err}"
    );

    // What the agent configured, and why.
    let node = lab.show(&["show", "node"]);
    eprintln!("{node}");
    assert!(
        node.starts_with("node n1: in-sync, configuration applied "),
        "{node}"
    );
    for want in [
        format!("\nuplink (2)\n{}", obj("interface up0", "af-packet ")),
        "why: uplink ".into(),
        "\npods (3)\n".into(),
        obj(&format!("interface {}", pod_ifname(0)), "af-packet "),
        "why: pod default/client".into(),
        format!(
            "\ntunnels (1)\n{}",
            obj(
                "interface vxc0000202",
                "vxlan 192.0.2.1 -> 192.0.2.2 vni 10"
            )
        ),
        "why: VXLAN tunnel to node n2".into(),
        obj("route 10.1.2.0/24", "dev vxc0000202"),
        obj(
            "nat44 mapping 10.96.0.10:80/tcp",
            "-> 10.1.1.3:8080, out2in-only, tag default/web:http",
        ),
        "why: service default/web port http cluster IP".into(),
        obj("acl global", "acl 1001 tag gt-"),
    ] {
        assert!(node.contains(&want), "'{want}' missing:\n{node}");
    }
    let v: serde_json::Value =
        serde_json::from_str(&lab.show(&["show", "node", "--json"])).unwrap();
    assert_eq!(v["pods"].as_array().unwrap().len(), 3, "{v:#}");

    // A dead agent: an error naming the socket, exit 1.
    if let Some(a) = lab.agent.take() {
        terminate(a);
    }
    let o = lab.ctl(&["show", "node"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        err.contains(&format!("{}", lab.dir.join("agent.sock").display()))
            && err.contains("is vpg-agent running"),
        "{err}"
    );
}
